//! Arbitrary bytes as a `Proxy-Authorization` field value.
//!
//! Asserts, for every input: `parse` never panics; whatever it accepts has a user-id without
//! `:` or control characters and a password without control characters, `encode()` is a valid
//! field value that parses back to the same pair, `new` accepts the same pair and encodes it
//! the same way, and `Debug` shows the user-id and hides the password. When the bytes are a
//! valid `HeaderValue`, `from_headers` agrees with `parse` for one field line and answers
//! `Ambiguous` for two.

#![no_main]

use http::header::{HeaderMap, HeaderValue, PROXY_AUTHORIZATION};
use libfuzzer_sys::fuzz_target;
use tower_proxy_auth::{BasicCredentials, CredentialsError};

fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn check_accepted(creds: &BasicCredentials) {
    let user = creds.user_id();
    let password = creds.password();
    assert!(!user.contains(':'), "user-id holds ':'");
    assert!(
        !user.bytes().any(is_ctl),
        "user-id holds a control character"
    );
    assert!(
        !password.iter().copied().any(is_ctl),
        "password holds a control character"
    );
    assert_eq!(
        creds.password_str().map(str::as_bytes),
        std::str::from_utf8(password).ok().map(str::as_bytes)
    );

    let encoded = creds.encode();
    assert!(encoded.starts_with("Basic "));
    assert!(
        HeaderValue::from_str(&encoded).is_ok(),
        "encode() is not a field value"
    );
    let back = BasicCredentials::parse(encoded.as_bytes()).expect("encode() must re-parse");
    assert_eq!(back.user_id(), user);
    assert_eq!(back.password(), password);

    let made = BasicCredentials::new(user, password).expect("new() refuses what parse() accepted");
    assert_eq!(made.encode(), encoded);

    assert_eq!(
        format!("{creds:?}"),
        format!("BasicCredentials {{ user_id: {user:?}, password: \"<redacted>\" }}")
    );
}

fuzz_target!(|data: &[u8]| {
    let parsed = BasicCredentials::parse(data);
    if let Ok(creds) = &parsed {
        check_accepted(creds);
    }

    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(PROXY_AUTHORIZATION, value.clone());
    match (&parsed, BasicCredentials::from_headers(&headers)) {
        (Ok(a), Ok(Some(b))) => {
            assert_eq!(a.user_id(), b.user_id());
            assert_eq!(a.password(), b.password());
        }
        (Err(a), Err(b)) => assert_eq!(*a, b),
        (a, b) => panic!("from_headers disagrees with parse: {a:?} vs {b:?}"),
    }
    headers.append(PROXY_AUTHORIZATION, value);
    assert_eq!(
        BasicCredentials::from_headers(&headers).err(),
        Some(CredentialsError::Ambiguous)
    );
});
