//! The realm a layer's challenges name (RFC 9110 §11.5).

use std::fmt;

/// The realm used when none is configured: `proxy`.
pub const DEFAULT_REALM: &str = "proxy";

/// A validated realm: any text without control characters.
///
/// Challenges write it as a quoted-string (RFC 9110 §5.6.4), which cannot carry control
/// characters and which they would break out of (`\r\n`), so they are refused here, once, when
/// the layer is built.
///
/// ```
/// use tower_proxy_auth::Realm;
///
/// assert!(Realm::new("Corporate proxy \"east\"").is_ok());
/// assert!(Realm::new("bad\r\nSet-Cookie: x=y").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
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
        assert_eq!(Realm::new("Prüfung ✓").unwrap().as_str(), "Prüfung ✓");
    }
}
