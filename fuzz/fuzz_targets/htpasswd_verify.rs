//! A fuzzed htpasswd hash field, then a password checked against it through the validator.
//!
//! Input: `<field>\n<password>`. The file `u:<field>` is loaded (plaintext allowed); when it
//! has a usable entry, `u` and an unknown user are validated with the password through
//! `Validator::validate` (cheap formats answer at once, slow ones on a Tokio blocking pool).
//! Fields with a bcrypt cost above 5 or SHA-crypt `rounds=` above 10,000 are skipped, so that
//! every input stays fast.
//!
//! Asserts: a hash the loader accepted is verified without a panic or a validator error (a
//! verification that failed would be a 503 for a well-formed file); an unknown user is
//! rejected; `{PLAIN}` and bare plaintext fields allow exactly their own text.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tower_proxy_auth::{store::htpasswd::HashFormat, HtpasswdBuilder};
use tower_proxy_auth::{BasicCredentials, Decision, Validation, Validator};

/// Apache's `apr_isspace`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Whether verifying `field` would take more than a few milliseconds.
fn too_slow(field: &str) -> bool {
    let number = |s: &str| -> u64 {
        let digits: String = s
            .chars()
            .take_while(char::is_ascii_digit)
            .take(12)
            .collect();
        digits.parse().unwrap_or(0)
    };
    if let Some(rest) = field.strip_prefix("$2").and_then(|r| r.get(2..)) {
        return number(rest) > 5;
    }
    match field.find("rounds=") {
        Some(i) => number(&field[i + "rounds=".len()..]) > 10_000,
        None => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(newline) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let (field, password) = (&data[..newline], &data[newline + 1..]);
    let Ok(field) = std::str::from_utf8(field) else {
        return;
    };
    if too_slow(field) {
        return;
    }
    static BASE: OnceLock<HtpasswdBuilder> = OnceLock::new();
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        HtpasswdBuilder::default()
            .cache_capacity(0)
            .watch(false)
            .allow_plaintext(true)
            .max_concurrent_verifications(1)
    });
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a Tokio runtime")
    });

    let Ok(users) = base
        .clone()
        .from_contents("verify.htpasswd", format!("u:{field}\n"))
    else {
        return;
    };
    let Some(format) = users.format("u") else {
        return;
    };
    let (Ok(known), Ok(unknown)) = (
        BasicCredentials::new("u", password),
        BasicCredentials::new("nobody", password),
    ) else {
        return;
    };
    let request = http::Request::new(()).into_parts().0;
    let check = |creds: &BasicCredentials| {
        let outcome = match users.validate(creds, &request) {
            Validation::Ready(outcome) => outcome,
            pending => runtime.block_on(pending.resolve()),
        };
        match outcome {
            Ok(Decision::Allow(identity)) => {
                assert_eq!(identity.user(), creds.user_id());
                true
            }
            Ok(Decision::Reject) => false,
            Ok(other) => panic!("an htpasswd file only allows or rejects, not {other:?}"),
            Err(e) => panic!("verification of a loaded {format:?} hash failed: {e}"),
        }
    };
    let allowed = check(&known);
    assert!(!check(&unknown), "an unknown user was allowed");

    // The field as the loader reads it: the line trimmed, up to a second ':'.
    let line = format!("u:{field}");
    let line = line.trim_matches(|c: char| c.is_ascii() && is_space(c as u8));
    let stored = line[2..].split(':').next().unwrap_or_default();
    let expected = match format {
        HashFormat::Plain => Some(&stored["{PLAIN}".len()..]),
        HashFormat::Bare => Some(stored),
        _ => None,
    };
    if let Some(expected) = expected {
        assert_eq!(allowed, expected.as_bytes() == password, "{format:?}");
    }
});
