//! Arbitrary bytes as a credentials field value, through the scheme-neutral syntax parser.
//!
//! Asserts, for every input: `parse_credentials` never panics; an accepted scheme is a token
//! and `is_scheme` matches it case-insensitively; a token68 is only token68 characters and
//! `=` padding; an auth-param list has distinct (case-insensitive) names, at most `MAX_PARAMS`
//! of them, and serialising it (`to_bytes`) and parsing again gives the same parameters, byte
//! for byte; `Debug` never shows a token68 or a parameter value. The same bytes as a bare list
//! (`AuthParams::parse`) obey the same round trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_proxy_auth::syntax::{parse_credentials, AuthParams, CredentialsData, MAX_PARAMS};

fn check_list(params: &AuthParams<'_>) {
    assert!(params.len() <= MAX_PARAMS);
    let names: Vec<String> = params.iter().map(|p| p.name().to_ascii_lowercase()).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a parameter name twice: {names:?}");
    let bytes = params.to_bytes();
    let again = AuthParams::parse(&bytes).expect("a serialised list parses");
    assert_eq!(&again, params, "round trip changed the list");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(credentials) = parse_credentials(data) {
        let scheme = credentials.scheme();
        assert!(!scheme.is_empty());
        assert!(credentials.is_scheme(&scheme.to_ascii_uppercase()));
        let debug = format!("{credentials:?}");
        match credentials.data() {
            CredentialsData::Empty => {}
            CredentialsData::Token68(token) => {
                let bytes = token.as_bytes();
                let body = bytes.iter().take_while(|&&b| b != b'=').count();
                assert!(body > 0);
                assert!(bytes[..body]
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b)));
                assert!(bytes[body..].iter().all(|&b| b == b'='));
                // (A token68 that is also part of the scheme name shows up as the scheme.)
                if bytes.len() >= 4 && !scheme.contains(token.as_str()) {
                    assert!(!debug.contains(token.as_str()), "Debug shows the token68");
                }
            }
            CredentialsData::Params(params) => {
                check_list(params);
                for p in params.iter() {
                    let shown = String::from_utf8_lossy(p.value());
                    // (A value that is also part of the scheme or of a name shows up as those.)
                    let elsewhere = scheme.contains(shown.as_ref())
                        || params.iter().any(|q| q.name().contains(shown.as_ref()));
                    if p.value().len() >= 8 && !elsewhere {
                        assert!(!debug.contains(shown.as_ref()), "Debug shows a value");
                    }
                }
            }
        }
    }
    if let Ok(params) = AuthParams::parse(data) {
        check_list(&params);
    }
});
