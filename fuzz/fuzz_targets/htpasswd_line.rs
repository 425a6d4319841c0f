//! Arbitrary bytes as an htpasswd file, loaded strict and lenient.
//!
//! Input: the first byte sets `allow_plaintext` (bit 0) and `refuse_des` (bit 1); the rest is
//! the file. Nothing is verified (a fuzzed bcrypt cost or `rounds=` could take minutes): this
//! target is about the line and field parser.
//!
//! Asserts, besides never panicking: a lenient load always succeeds; a strict load succeeds
//! exactly when every non-comment line loads on its own, and otherwise fails with
//! `name:line: kind` naming the first line that does not; and the lenient table holds, for each
//! user name a line claims, the verdict of that user's first line alone (first line wins, a bad
//! first line refuses the user), with `len()` the count of users so allowed.

#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tower_proxy_auth::{Htpasswd, HtpasswdBuilder};

const NAME: &str = "fuzz.htpasswd";

/// Apache's `apr_isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

fn trim(line: &[u8]) -> &[u8] {
    let start = line
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(start, |i| i + 1);
    &line[start..end]
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, contents)) = data.split_first() else {
        return;
    };
    // `HtpasswdBuilder::default()` asks the OS for the CPU count: do it once.
    static BASE: OnceLock<HtpasswdBuilder> = OnceLock::new();
    let base = BASE.get_or_init(|| HtpasswdBuilder::default().cache_capacity(0).watch(false));
    let builder = || {
        base.clone()
            .allow_plaintext(flags & 1 != 0)
            .refuse_des(flags & 2 != 0)
    };
    let load =
        |lenient: bool, contents: &[u8]| builder().lenient(lenient).from_contents(NAME, contents);

    let lenient: Htpasswd = load(true, contents).expect("a lenient load never fails");
    let strict = load(false, contents);

    // The lines as the loader sees them, each judged alone (behind a newline, so that a byte
    // order mark inside the file stays a part of its line).
    let body = contents.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(contents);
    let mut first_bad = None;
    let mut claims: HashMap<&str, bool> = HashMap::new();
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line = trim(raw);
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let alone = [b"\n", line].concat();
        let usable = load(false, &alone).is_ok();
        if !usable && first_bad.is_none() {
            first_bad = Some(index + 1);
        }
        let user = match line.iter().position(|&b| b == b':') {
            Some(colon) => &line[..colon],
            None => line,
        };
        if let Ok(user) = std::str::from_utf8(user) {
            claims.entry(user).or_insert(usable);
        }
    }

    match (&strict, first_bad) {
        (Ok(strict), None) => {
            assert_eq!(strict.len(), lenient.len());
            for user in claims.keys() {
                assert!(strict.contains(user), "strict load lost {user:?}");
            }
        }
        (Err(e), Some(line)) => {
            assert_eq!(e.line(), Some(line), "{e}");
            let kind = e.kind().expect("a line error");
            assert_eq!(e.to_string(), format!("{NAME}:{line}: {kind}"));
        }
        (Ok(_), Some(line)) => panic!("strict load accepted the file, but line {line} alone fails"),
        (Err(e), None) => panic!("strict load failed ({e}), but every line loads alone"),
    }
    for (user, usable) in &claims {
        assert_eq!(lenient.contains(user), *usable, "user {user:?}");
        assert_eq!(lenient.format(user).is_some(), *usable, "user {user:?}");
    }
    assert_eq!(lenient.len(), claims.values().filter(|&&u| u).count());
    assert_eq!(lenient.name(), NAME);
});
