//! Building the `Proxy-Authenticate` challenge.
//!
//! RFC 9110 §11.7.1 sends the challenge in `Proxy-Authenticate` with every 407; RFC 7617 §2 gives
//! the Basic form `Basic realm="<realm>", charset="UTF-8"`. The realm is an auth-param written as
//! a quoted-string (RFC 9110 §5.6.4), so `"` and `\` are escaped and control characters, which a
//! quoted-string cannot carry and which would split the header, are refused. The value is built
//! once, when the layer is built, and shared by every response.

use std::fmt;

use http::HeaderValue;

/// The realm used when none is configured: `proxy`.
pub const DEFAULT_REALM: &str = "proxy";

/// A validated realm (RFC 9110 §11.5): any text without control characters.
///
/// ```
/// use tower_proxy_auth::Realm;
///
/// assert!(Realm::new("Corporate proxy \"east\"").is_ok());
/// assert!(Realm::new("bad\r\nSet-Cookie: x=y").is_err());
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Realm(String);

impl Realm {
    /// Checks `realm` for control characters (`%x00-1F`, `%x7F`; RFC 5234 Appendix B.1).
    ///
    /// # Errors
    ///
    /// [`InvalidRealm`] naming the byte offset of the first control character.
    pub fn new(realm: impl Into<String>) -> Result<Self, InvalidRealm> {
        let realm = realm.into();
        match realm.bytes().position(|b| b < 0x20 || b == 0x7f) {
            Some(offset) => Err(InvalidRealm { offset }),
            None => Ok(Self(realm)),
        }
    }

    /// The realm text, unescaped.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The Basic challenge for this realm: `Basic realm="<escaped realm>", charset="UTF-8"`.
    pub fn basic_challenge(&self) -> HeaderValue {
        let mut value = String::with_capacity(self.0.len() + 32);
        value.push_str("Basic realm=");
        push_quoted_string(&mut value, &self.0);
        value.push_str(", charset=\"UTF-8\"");
        // Control characters were refused in `new`; every other byte is valid in a field value.
        HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("Basic"))
    }
}

impl Default for Realm {
    fn default() -> Self {
        Self(DEFAULT_REALM.to_owned())
    }
}

impl fmt::Debug for Realm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Realm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Appends `text` as a quoted-string (RFC 9110 §5.6.4): `"` and `\` become quoted-pairs.
fn push_quoted_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A realm that holds a control character (CR, LF, NUL, TAB, DEL, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidRealm {
    /// Byte offset of the first control character.
    pub offset: usize,
}

impl fmt::Display for InvalidRealm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "realm holds a control character at byte {}; a quoted-string cannot carry it",
            self.offset
        )
    }
}

impl std::error::Error for InvalidRealm {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_challenge() {
        assert_eq!(
            Realm::default().basic_challenge(),
            "Basic realm=\"proxy\", charset=\"UTF-8\""
        );
    }

    #[test]
    fn escapes_quote_and_backslash() {
        let r = Realm::new(r#"a "b" \c"#).unwrap();
        assert_eq!(
            r.basic_challenge(),
            r#"Basic realm="a \"b\" \\c", charset="UTF-8""#
        );
    }

    #[test]
    fn utf8_realm_is_kept() {
        let r = Realm::new("Prüfung ✓").unwrap();
        assert_eq!(
            r.basic_challenge().as_bytes(),
            "Basic realm=\"Prüfung ✓\", charset=\"UTF-8\"".as_bytes()
        );
    }

    #[test]
    fn control_characters_refused() {
        for (realm, offset) in [
            ("a\rb", 1),
            ("\n", 0),
            ("ab\tc", 2),
            ("x\x7f", 1),
            ("\0", 0),
        ] {
            assert_eq!(Realm::new(realm), Err(InvalidRealm { offset }), "{realm:?}");
        }
    }
}
