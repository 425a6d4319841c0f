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

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use super::cache::{Occupancy, Remembered};
use super::error::{HtpasswdError, LineErrorKind};
use super::hash::{FieldOptions, HashFormat, StoredHash};

/// Options that change how lines are read.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ParseOptions {
    pub(crate) lenient: bool,
    pub(crate) field: FieldOptions,
}

/// What a user name maps to.
#[derive(Debug)]
pub(crate) enum Slot {
    /// A usable hash.
    Usable(Entry),
    /// The user's first line was unusable and skipped in lenient mode: the user is refused.
    Never,
}

/// A usable line of one load: the stored hash and the success remembered for it (see
/// [`super::cache`]). A reload makes new entries, so a remembered success belongs to exactly
/// one (user, stored hash) pair.
pub(crate) struct Entry {
    pub(crate) hash: StoredHash,
    /// Unique among the entries of every load in this process; names the entry in the map of
    /// verifications in flight.
    pub(crate) id: u64,
    pub(crate) remembered: Remembered,
}

impl Entry {
    fn new(hash: StoredHash) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        Self {
            hash,
            id: NEXT_ID.fetch_add(1, Relaxed),
            remembered: Remembered::default(),
        }
    }
}

impl fmt::Debug for Entry {
    /// The hash's format and cost and whether a success is remembered; never the hash text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("hash", &self.hash)
            .field("id", &self.id)
            .field("remembered", &self.remembered)
            .finish()
    }
}

/// The users of one load of a file. Never changed after it is built (but for the successes its
/// entries remember): a reload builds a new one.
#[derive(Debug)]
pub(crate) struct Table {
    users: HashMap<Arc<str>, Slot>,
    usable: usize,
    dummy: Option<Entry>,
    /// How many entries remember a success.
    pub(crate) occupancy: Occupancy,
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
                    tracing::warn!("{error}; line skipped (lenient mode)");
                    match user {
                        Some(user) => (user, Slot::Never),
                        None => continue,
                    }
                }
            };
            if let Some((first, _)) = users.get(user) {
                tracing::warn!(
                    "{file}:{line_no}: duplicate user {user:?}; the entry on line {first} wins"
                );
                continue;
            }
            if let Slot::Usable(entry) = &slot {
                usable += 1;
                if entry.hash.format() == HashFormat::Des {
                    tracing::warn!(
                        "{file}:{line_no}: DES crypt hash for user {user:?}: only the first 8 \
                         bytes of a password count"
                    );
                }
            }
            users.insert(Arc::from(user), (line_no, slot));
        }
        let dummy = pick_dummy(users.values()).map(Entry::new);
        Ok(Self {
            users: users
                .into_iter()
                .map(|(user, (_, slot))| (user, slot))
                .collect(),
            usable,
            dummy,
            occupancy: Occupancy::default(),
        })
    }

    /// The entry for `user` (byte-for-byte match), with the shared user name.
    pub(crate) fn get(&self, user: &str) -> Option<(&Arc<str>, &Slot)> {
        self.users.get_key_value(user)
    }

    /// The number of users that can log in.
    pub(crate) fn len(&self) -> usize {
        self.usable
    }

    /// The usable entries.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&Arc<str>, &Entry)> {
        self.users.iter().filter_map(|(user, slot)| match slot {
            Slot::Usable(entry) => Some((user, entry)),
            Slot::Never => None,
        })
    }

    /// The usable entry of `user`, if any.
    pub(crate) fn entry(&self, user: &str) -> Option<&Entry> {
        match self.users.get(user) {
            Some(Slot::Usable(entry)) => Some(entry),
            _ => None,
        }
    }

    /// An entry holding a stored hash of the file's most common format and cost, to verify an
    /// unknown user's password against (and then refuse it) so that the answer takes as long
    /// as for a known user. It never remembers a success. `None` when the file has no usable
    /// entry.
    pub(crate) fn dummy(&self) -> Option<&Entry> {
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

/// The first-seen hash of the most common (format, cost) among usable entries.
fn pick_dummy<'a>(slots: impl Iterator<Item = &'a (usize, Slot)>) -> Option<StoredHash> {
    let mut classes: HashMap<(HashFormat, u32), (usize, usize, &StoredHash)> = HashMap::new();
    for (line, slot) in slots {
        if let Slot::Usable(Entry { hash, .. }) = slot {
            let class = classes
                .entry((hash.format(), hash.cost()))
                .or_insert((0, *line, hash));
            class.0 += 1;
            if *line < class.1 {
                class.1 = *line;
                class.2 = hash;
            }
        }
    }
    classes
        .into_values()
        .max_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)))
        .map(|(_, _, hash)| hash.clone())
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
            t.dummy().map(|d| (d.hash.format(), d.hash.cost())),
            Some((HashFormat::Bcrypt, 5))
        );
        assert!(parse("# nothing\n", false).unwrap().dummy().is_none());
    }
}
