//! Reading an htpasswd file into a table of users.
//!
//! The line format follows Apache httpd's `mod_authn_file` on Linux
//! (<https://httpd.apache.org/docs/2.4/programs/htpasswd.html>), which nginx's
//! `auth_basic_user_file` shares (<https://nginx.org/en/docs/http/ngx_http_auth_basic_module.html>):
//!
//! - one `user:hash` per line; `user:hash:comment` too (everything after a second `:` is
//!   ignored);
//! - leading and trailing whitespace of a line is ignored (so CRLF endings and trailing blanks
//!   are fine), as Apache's `ap_cfg_getline` does; whitespace inside the line is kept;
//! - empty lines and lines starting with `#` are skipped; a UTF-8 byte order mark at the start
//!   of the file is skipped;
//! - the user name is everything before the first `:`, compared byte for byte;
//! - when a user appears twice, the first line wins (Apache stops at the first match) and the
//!   later line is reported with a warning.
//!
//! Warnings at load (a line skipped in lenient mode, a duplicate user, a DES hash, an extreme
//! cost) name file and line, for the first [`LOGGED_PER_KIND`] of each kind per load; the rest of
//! a kind is counted in one summary line (`users.htpasswd: and 49,990 more duplicate users`), so a
//! file with many such lines does not flood the log at every reload.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::error::{HtpasswdError, LineErrorKind};
use super::format::HashFormat;
use super::hash::{
    is_extreme, FieldOptions, StoredHash, EXTREME_BCRYPT_COST, EXTREME_SHA_CRYPT_ROUNDS,
};

/// Options that change how lines are read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ParseOptions {
    pub(crate) lenient: bool,
    pub(crate) field: FieldOptions,
    /// How many verifications may run at once; only for the extreme-cost warning.
    pub(crate) slots: usize,
}

/// How many warnings of one kind a load logs one by one; the rest are counted in a summary.
pub(crate) const LOGGED_PER_KIND: usize = 10;

/// The kinds of warning a load can log per line.
#[derive(Debug, Clone, Copy)]
enum Warning {
    Skipped,
    Duplicate,
    Des,
    Extreme,
}

impl Warning {
    const ALL: [Self; 4] = [Self::Skipped, Self::Duplicate, Self::Des, Self::Extreme];

    /// What the summary line counts, plural.
    fn plural(self) -> String {
        match self {
            Self::Skipped => "unusable lines skipped (lenient mode)".to_owned(),
            Self::Duplicate => "duplicate users".to_owned(),
            Self::Des => "DES crypt hashes (only the first 8 bytes of a password count)".to_owned(),
            Self::Extreme => format!(
                "hashes above bcrypt cost {EXTREME_BCRYPT_COST} or {} SHA-crypt rounds (each \
                 verification holds a verification slot for seconds or more)",
                thousands(EXTREME_SHA_CRYPT_ROUNDS as usize)
            ),
        }
    }
}

/// The warnings of one load: the first [`LOGGED_PER_KIND`] of each kind are logged as they come,
/// the rest counted and summarised by [`finish`](Self::finish).
struct Warnings<'a> {
    file: &'a str,
    counts: [usize; Warning::ALL.len()],
}

impl<'a> Warnings<'a> {
    fn new(file: &'a str) -> Self {
        Self {
            file,
            counts: [0; Warning::ALL.len()],
        }
    }

    /// Logs `message` (which must name file and line, and never a hash or password) unless
    /// [`LOGGED_PER_KIND`] warnings of this kind were logged already.
    fn warn(&mut self, kind: Warning, message: fmt::Arguments<'_>) {
        let count = &mut self.counts[kind as usize];
        *count += 1;
        if *count <= LOGGED_PER_KIND {
            tracing::warn!("{message}");
        }
    }

    /// One summary line per kind with more warnings than were logged.
    fn finish(self) {
        for kind in Warning::ALL {
            let more = self.counts[kind as usize].saturating_sub(LOGGED_PER_KIND);
            if more > 0 {
                tracing::warn!(
                    "{}: and {} more {} (only the first {LOGGED_PER_KIND} of each kind are \
                     logged per load)",
                    self.file,
                    thousands(more),
                    kind.plural()
                );
            }
        }
    }
}

/// `n` with a comma between thousands: `49,990`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// A duration in seconds for a message: `0.4 seconds`, `13 seconds`,
/// `65536 seconds (about 18 hours)`.
fn seconds(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1} seconds")
    } else if s < 3600.0 {
        format!("{s:.0} seconds")
    } else {
        format!("{s:.0} seconds (about {:.0} hours)", s / 3600.0)
    }
}

/// What a user name maps to.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A usable hash.
    Usable(Entry),
    /// The user's first line was unusable and skipped in lenient mode: the user is refused.
    Never,
}

/// A usable line of one load: the stored hash, and the id of this (user, stored hash) pair.
pub(crate) struct Entry {
    pub(crate) hash: StoredHash,
    /// Names this user's hash: unique among the entries of every load in this process, except
    /// that a reload gives an entry whose user and stored hash are unchanged the id of the
    /// entry it replaces ([`Table::keep_ids_of`]). A cache in front keys its answers by it
    /// (the validator's answer version), so an answer found for one hash is never given for
    /// another. Never [`u64::MAX`].
    pub(crate) id: u64,
}

impl Entry {
    fn new(hash: StoredHash) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            hash,
            id: NEXT_ID.fetch_add(1, Relaxed),
        }
    }
}

impl fmt::Debug for Entry {
    /// The hash's format and cost and the id; never the hash text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("hash", &self.hash)
            .field("id", &self.id)
            .finish()
    }
}

/// The users of one load of a file. Never changed once in use: a reload builds a new one.
#[derive(Debug)]
pub(crate) struct Table {
    users: HashMap<Arc<str>, Slot>,
    usable: usize,
    dummy: Option<StoredHash>,
}

/// Apache's `apr_isspace`: space, `\t`, `\n`, `\v`, `\f`, `\r`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn trim(mut line: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = line {
        if !is_space(*first) {
            break;
        }
        line = rest;
    }
    while let [rest @ .., last] = line {
        if !is_space(*last) {
            break;
        }
        line = rest;
    }
    line
}

impl Table {
    /// Parses `contents`; `file` names it in errors and warnings.
    ///
    /// # Errors
    ///
    /// The first unusable line as [`HtpasswdError::Line`], unless `options.lenient`.
    pub(crate) fn parse(
        file: &Arc<str>,
        contents: &[u8],
        options: ParseOptions,
    ) -> Result<Self, HtpasswdError> {
        let mut warnings = Warnings::new(file);
        let parsed = Self::parse_lines(file, contents, options, &mut warnings);
        warnings.finish();
        parsed
    }

    fn parse_lines(
        file: &Arc<str>,
        contents: &[u8],
        options: ParseOptions,
        warnings: &mut Warnings<'_>,
    ) -> Result<Self, HtpasswdError> {
        let contents = contents.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(contents);
        let mut users: HashMap<Arc<str>, (usize, Slot)> = HashMap::new();
        let mut usable = 0;
        for (index, raw) in contents.split(|&b| b == b'\n').enumerate() {
            let line_no = index + 1;
            let line = trim(raw);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let fail = |kind| HtpasswdError::Line {
                file: file.clone(),
                line: line_no,
                kind,
            };
            let (user, slot) = match parse_line(line, options.field) {
                Ok((user, hash)) => (user, Slot::Usable(Entry::new(hash))),
                Err((user, kind)) => {
                    let error = fail(kind);
                    if !options.lenient {
                        return Err(error);
                    }
                    warnings.warn(
                        Warning::Skipped,
                        format_args!("{error}; line skipped (lenient mode)"),
                    );
                    match user {
                        Some(user) => (user, Slot::Never),
                        None => continue,
                    }
                }
            };
            if let Some((first, _)) = users.get(user) {
                warnings.warn(
                    Warning::Duplicate,
                    format_args!(
                        "{file}:{line_no}: duplicate user {user:?}; the entry on line {first} wins"
                    ),
                );
                continue;
            }
            if let Slot::Usable(entry) = &slot {
                usable += 1;
                let hash = &entry.hash;
                if hash.format() == HashFormat::Des {
                    warnings.warn(
                        Warning::Des,
                        format_args!(
                            "{file}:{line_no}: DES crypt hash for user {user:?}: only the first \
                             8 bytes of a password count"
                        ),
                    );
                } else if hash.is_extreme() {
                    let (what, bound) = if hash.format() == HashFormat::Bcrypt {
                        ("cost", EXTREME_BCRYPT_COST)
                    } else {
                        ("rounds", EXTREME_SHA_CRYPT_ROUNDS)
                    };
                    warnings.warn(
                        Warning::Extreme,
                        format_args!(
                            "{file}:{line_no}: {} {what} {} for user {user:?} is above {}: \
                             verification will take {} or more; it holds {} meanwhile",
                            hash.format(),
                            hash.cost(),
                            thousands(bound as usize),
                            seconds(hash.min_seconds()),
                            match options.slots {
                                1 => "the only verification slot".to_owned(),
                                n => format!("one of the {n} verification slots"),
                            },
                        ),
                    );
                }
            }
            users.insert(Arc::from(user), (line_no, slot));
        }
        let dummy = pick_dummy(users.values());
        Ok(Self {
            users: users
                .into_iter()
                .map(|(user, (_, slot))| (user, slot))
                .collect(),
            usable,
            dummy,
        })
    }

    /// Gives each entry whose user and stored hash (byte for byte) are those of an entry of
    /// `old` (the table this one replaces) that entry's id, so that what a cache remembered
    /// for it stays valid; changed and new entries keep their fresh ids.
    pub(crate) fn keep_ids_of(&mut self, old: &Table) {
        for (user, slot) in &mut self.users {
            if let (Slot::Usable(entry), Some(previous)) = (slot, old.entry(user)) {
                if entry.hash.text() == previous.hash.text() {
                    entry.id = previous.id;
                }
            }
        }
    }

    /// The entry for `user` (byte-for-byte match), with the shared user name.
    pub(crate) fn get(&self, user: &str) -> Option<(&Arc<str>, &Slot)> {
        self.users.get_key_value(user)
    }

    /// The number of users that can log in.
    pub(crate) fn len(&self) -> usize {
        self.usable
    }

    /// The usable entry of `user`, if any.
    pub(crate) fn entry(&self, user: &str) -> Option<&Entry> {
        match self.users.get(user) {
            Some(Slot::Usable(entry)) => Some(entry),
            _ => None,
        }
    }

    /// A stored hash of the file's most common format and cost, to verify an unknown user's
    /// password against (and then refuse it) so that the answer takes as long as for a known
    /// user. `None` when the file has no usable entry.
    pub(crate) fn dummy(&self) -> Option<&StoredHash> {
        self.dummy.as_ref()
    }
}

/// Splits a trimmed, non-comment line into a user and a checked hash. On failure, the user
/// name the line claims (if it is UTF-8) and why the line is unusable.
fn parse_line(
    line: &[u8],
    options: FieldOptions,
) -> Result<(&str, StoredHash), (Option<&str>, LineErrorKind)> {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        // Apache compares the whole line with the user name and finds an empty hash.
        return Err((std::str::from_utf8(line).ok(), LineErrorKind::MissingColon));
    };
    let user =
        std::str::from_utf8(&line[..colon]).map_err(|_| (None, LineErrorKind::UserNotUtf8))?;
    let rest = &line[colon + 1..];
    let field = match rest.iter().position(|&b| b == b':') {
        Some(end) => &rest[..end],
        None => rest,
    };
    let hash = StoredHash::parse(field, options).map_err(|kind| (Some(user), kind))?;
    Ok((user, hash))
}

/// The hash unknown users are verified against: the first-seen hash of the most common
/// (format, cost) among usable entries whose cost is not extreme (see
/// [`is_extreme`](super::hash::is_extreme)), so that a stray `$2y$31$` line cannot make every
/// unknown user hold a verification slot for hours. When every entry's cost is extreme, the
/// cheapest (first-seen on a tie) of the most common format. Ties between classes or formats go
/// to the one seen first.
fn pick_dummy<'a>(slots: impl Iterator<Item = &'a (usize, Slot)>) -> Option<StoredHash> {
    /// Entries of a class, its first line and that line's hash.
    struct Class<'a> {
        count: usize,
        line: usize,
        hash: &'a StoredHash,
    }
    let mut classes: HashMap<(HashFormat, u32), Class<'_>> = HashMap::new();
    for (line, slot) in slots {
        if let Slot::Usable(Entry { hash, .. }) = slot {
            let class = classes
                .entry((hash.format(), hash.cost()))
                .or_insert(Class {
                    count: 0,
                    line: *line,
                    hash,
                });
            class.count += 1;
            if *line < class.line {
                class.line = *line;
                class.hash = hash;
            }
        }
    }
    // More entries first, then the earlier line.
    let more = |a: (usize, usize), b: (usize, usize)| a.0.cmp(&b.0).then(b.1.cmp(&a.1));
    let within = classes
        .iter()
        .filter(|((format, cost), _)| !is_extreme(*format, *cost))
        .max_by(|(_, a), (_, b)| more((a.count, a.line), (b.count, b.line)));
    if let Some((_, class)) = within {
        return Some(class.hash.clone());
    }
    // All extreme: the most common format, at its lowest cost.
    let mut formats: HashMap<HashFormat, (usize, usize)> = HashMap::new();
    for ((format, _), class) in &classes {
        let f = formats.entry(*format).or_insert((0, class.line));
        f.0 += class.count;
        f.1 = f.1.min(class.line);
    }
    let (format, _) = formats.into_iter().max_by(|(_, a), (_, b)| more(*a, *b))?;
    classes
        .into_iter()
        .filter(|((f, _), _)| *f == format)
        .min_by(|((_, a_cost), a), ((_, b_cost), b)| a_cost.cmp(b_cost).then(a.line.cmp(&b.line)))
        .map(|(_, class)| class.hash.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT: &str = "$2y$05$M96TNtTJ5SDiW7BI8sXokeTsWApyyURpFQ.h47HqTNwzG07px5zSK";
    const APR1: &str = "$apr1$FEtdsrfL$VTC1O/uYYE9OlIAO/UWb8.";

    fn parse(contents: &str, lenient: bool) -> Result<Table, HtpasswdError> {
        let options = ParseOptions {
            lenient,
            ..ParseOptions::default()
        };
        Table::parse(&Arc::from("t.htpasswd"), contents.as_bytes(), options)
    }

    fn format_of(table: &Table, user: &str) -> Option<HashFormat> {
        match table.get(user) {
            Some((_, Slot::Usable(e))) => Some(e.hash.format()),
            _ => None,
        }
    }

    #[test]
    fn layout_rules() {
        let contents = format!(
            "\u{feff}# comment\r\n\r\n  \nalice:{BCRYPT}\r\nbob:{APR1}:Bob Example\n  carol:{APR1}  \t\r\nalice:{APR1}\n"
        );
        let t = parse(&contents, false).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(format_of(&t, "alice"), Some(HashFormat::Bcrypt)); // first wins
        assert_eq!(format_of(&t, "bob"), Some(HashFormat::Apr1));
        assert_eq!(format_of(&t, "carol"), Some(HashFormat::Apr1));
        assert!(t.get("Alice").is_none());
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let e = parse(&format!("# c\nalice:{BCRYPT}\nbob:hunter2\n"), false).unwrap_err();
        assert_eq!(e.to_string(), "t.htpasswd:3: unknown hash format");
        let e = parse("alice\n", false).unwrap_err();
        assert_eq!(
            (e.line(), e.kind()),
            (Some(1), Some(LineErrorKind::MissingColon))
        );
        let e = parse("alice:\n", false).unwrap_err();
        assert_eq!(e.kind(), Some(LineErrorKind::EmptyHash));
        let e = parse("alice::comment\n", false).unwrap_err();
        assert_eq!(e.kind(), Some(LineErrorKind::EmptyHash));
        // A space before the comment colon is part of the field, as in Apache: unusable.
        let e = parse(&format!("alice:{APR1} :c\n"), false).unwrap_err();
        assert_eq!(
            e.kind(),
            Some(LineErrorKind::MalformedHash(HashFormat::Apr1))
        );
    }

    #[test]
    fn lenient_skips_but_keeps_the_claim() {
        let t = parse(
            &format!("alice:\nalice:{BCRYPT}\nbob:{APR1}\ngarbage\ncarol:x\n"),
            true,
        )
        .unwrap();
        assert_eq!(t.len(), 1);
        assert!(matches!(t.get("alice"), Some((_, Slot::Never))));
        assert_eq!(format_of(&t, "bob"), Some(HashFormat::Apr1));
        assert!(matches!(t.get("carol"), Some((_, Slot::Never))));
    }

    #[test]
    fn dummy_is_most_common_class() {
        let t = parse(&format!("a:{APR1}\nb:{BCRYPT}\nc:{BCRYPT}\n"), false).unwrap();
        assert_eq!(
            t.dummy().map(|d| (d.format(), d.cost())),
            Some((HashFormat::Bcrypt, 5))
        );
        assert!(parse("# nothing\n", false).unwrap().dummy().is_none());
    }

    /// A bcrypt field of `cost`, right in shape; never verified here.
    fn bcrypt_at(cost: u32) -> String {
        format!("$2y${cost:02}{}", &BCRYPT[6..])
    }

    fn sha256_at(rounds: u32) -> String {
        format!("$5$rounds={rounds}$saltsalt${}", "a".repeat(43))
    }

    fn dummy_class(contents: &str) -> Option<(HashFormat, u32)> {
        let table = parse(contents, false).unwrap();
        table.dummy().map(|d| (d.format(), d.cost()))
    }

    #[test]
    fn dummy_is_never_an_extreme_cost_when_another_entry_is_not() {
        let b31 = bcrypt_at(31);
        let r = sha256_at(999_999_999);
        // Cost 31 is the most common class, but unknown users are verified at cost 5.
        let contents = format!("a:{b31}\nb:{b31}\nc:{b31}\nd:{r}\ne:{r}\nf:{BCRYPT}\n");
        assert_eq!(dummy_class(&contents), Some((HashFormat::Bcrypt, 5)));
        // At the bounds is not extreme: cost 17 and 1,000,000 rounds still count as usual.
        let b17 = bcrypt_at(17);
        let at_bound = sha256_at(1_000_000);
        let contents = format!("a:{b17}\nb:{b17}\nc:{APR1}\nd:{at_bound}\n");
        assert_eq!(dummy_class(&contents), Some((HashFormat::Bcrypt, 17)));
        let contents = format!("a:{b31}\nb:{at_bound}\nc:{at_bound}\nd:{b17}\n");
        assert_eq!(
            dummy_class(&contents),
            Some((HashFormat::Sha256Crypt, 1_000_000))
        );
    }

    #[test]
    fn all_extreme_takes_the_cheapest_of_the_most_common_format() {
        let contents = format!(
            "a:{}\nb:{}\nc:{}\nd:{}\ne:{}\nf:{}\n",
            bcrypt_at(31),
            bcrypt_at(31),
            bcrypt_at(20),
            bcrypt_at(25),
            sha256_at(2_000_000),
            sha256_at(2_000_000),
        );
        assert_eq!(dummy_class(&contents), Some((HashFormat::Bcrypt, 20)));
        // Formats tied on count: the one seen first.
        let contents = format!(
            "a:{}\nb:{}\nc:{}\n",
            sha256_at(3_000_000),
            bcrypt_at(30),
            sha256_at(2_000_000)
        );
        assert_eq!(
            dummy_class(&contents),
            Some((HashFormat::Sha256Crypt, 2_000_000))
        );
    }

    #[test]
    fn a_reload_keeps_the_ids_of_unchanged_entries_only() {
        const OTHER: &str = "$2y$05$1XF30RoosE6Dnyag0ntlSeV/xsSF4pKU3.Xk/q.5YS0z9UeBm2pOy";
        let old = parse(
            &format!("same:{BCRYPT}\nrehashed:{BCRYPT}\nremoved:{BCRYPT}\nskipped:{BCRYPT}\n"),
            false,
        )
        .unwrap();
        let mut new = parse(
            &format!("same:{BCRYPT}\nrehashed:{OTHER}\nadded:{BCRYPT}\nskipped:\n"),
            true,
        )
        .unwrap();
        let id = |t: &Table, user: &str| t.entry(user).map(|e| e.id);
        let fresh: Vec<_> = ["same", "rehashed", "added"]
            .iter()
            .map(|u| id(&new, u))
            .collect();
        new.keep_ids_of(&old);
        assert_eq!(id(&new, "same"), id(&old, "same"));
        assert_eq!(id(&new, "rehashed"), fresh[1]);
        assert_ne!(id(&new, "rehashed"), id(&old, "rehashed"));
        assert_eq!(id(&new, "added"), fresh[2]);
        assert!(matches!(new.get("skipped"), Some((_, Slot::Never))));
        // Every id of a load is new: none is shared with another load's entries.
        let again = parse(&format!("same:{BCRYPT}\n"), false).unwrap();
        assert_ne!(id(&again, "same"), id(&old, "same"));
    }

    #[test]
    fn numbers_in_messages() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(49_990), "49,990");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(seconds(0.125), "0.1 seconds");
        assert_eq!(seconds(8.0), "8.0 seconds");
        assert_eq!(seconds(250.0), "250 seconds");
        assert_eq!(seconds(65_536.0), "65536 seconds (about 18 hours)");
    }
}
