//! Arbitrary text as a realm.
//!
//! Asserts: `Realm::new` is `Ok` exactly when the text holds no control character (`Err` names
//! the offset of the first one); for an accepted realm, `Basic::challenge_for(&realm)` is
//! `Basic realm="<quoted-string>", charset="UTF-8"`, a valid field value, and reading the
//! quoted-string back (RFC 9110 §5.6.4) gives the realm exactly; the layer builder agrees.

#![no_main]

use std::convert::Infallible;

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;
use tower_proxy_auth::validator::from_fn;
use tower_proxy_auth::{Decision, ProxyAuthLayer, Realm};

const PREFIX: &str = "Basic realm=\"";
const SUFFIX: &str = ", charset=\"UTF-8\"";

/// Reads a quoted-string body (after the opening `"`): returns the unescaped text and what
/// follows the closing `"`, or `None` when it is not closed or holds a bare control character.
fn read_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => out.push(chars.next()?.1),
            c if c.is_ascii_control() && c != '\t' => return None,
            c => out.push(c),
        }
    }
    None
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let first_ctl = text.bytes().position(|b| b < 0x20 || b == 0x7f);
    let validator = || from_fn(|_, _| Ok::<_, Infallible>(Decision::Reject));
    let built = ProxyAuthLayer::builder(validator())
        .realm(text.as_ref())
        .build();

    match Realm::new(text.as_ref()) {
        Ok(realm) => {
            assert_eq!(
                first_ctl, None,
                "a realm with a control character was accepted"
            );
            assert_eq!(realm.as_str(), text);
            assert_eq!(realm.to_string(), text);
            let challenge = tower_proxy_auth::scheme::Basic::challenge_for(&realm);
            assert!(HeaderValue::from_bytes(challenge.as_bytes()).is_ok());
            let challenge = std::str::from_utf8(challenge.as_bytes()).expect("UTF-8 challenge");
            assert!(challenge.starts_with(PREFIX), "{challenge:?}");
            assert!(challenge.ends_with(SUFFIX), "{challenge:?}");
            let (unescaped, rest) =
                read_quoted(&challenge[PREFIX.len()..]).expect("an unterminated quoted-string");
            assert_eq!(
                unescaped, text,
                "the quoted-string does not give the realm back"
            );
            assert_eq!(rest, SUFFIX, "text after the realm's quoted-string");
            let layer = built.expect("the builder refused a valid realm");
            assert_eq!(layer.realm(), &realm);
        }
        Err(e) => {
            assert_eq!(
                Some(e.offset),
                first_ctl,
                "wrong offset or no control character"
            );
            assert!(built.is_err(), "the builder accepted an invalid realm");
        }
    }
});
