//! Writing challenges (RFC 9110 §11.3) and `*-Authentication-Info` parameter lists.
//!
//! ```text
//! challenge = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! ```
//!
//! Values are written as tokens or quoted-strings (§5.6.4): `"` and `\` become quoted-pairs.
//! A quoted-string cannot carry control characters other than HTAB; the writer leaves them
//! out, so its output is always a valid field value. Callers keep them out in the first place
//! ([`Realm`](crate::Realm) refuses them when it is made).

use bytes::Bytes;
use http::HeaderValue;

use super::chars::{is_ctl, is_token, qdtext_run};

/// Builds one challenge, or one auth-param list, as a [`HeaderValue`].
///
/// ```
/// use tower_proxy_auth::syntax::ChallengeBuilder;
///
/// let challenge = ChallengeBuilder::new("Digest")
///     .quoted("realm", "a \"b\"")
///     .token("algorithm", "SHA-256")
///     .token("qop", "auth")
///     .finish();
/// assert_eq!(challenge, r#"Digest realm="a \"b\"", algorithm=SHA-256, qop=auth"#);
///
/// let info = ChallengeBuilder::params().token("nc", "00000001").finish();
/// assert_eq!(info, "nc=00000001");
/// ```
#[derive(Debug, Clone)]
#[must_use = "call .finish() to get the field value"]
pub struct ChallengeBuilder {
    out: Vec<u8>,
    /// Whether a parameter follows the scheme or an earlier parameter.
    params: usize,
    scheme: bool,
}

impl ChallengeBuilder {
    /// A challenge for `scheme` (an auth-scheme token such as `Basic`).
    pub fn new(scheme: &str) -> Self {
        let mut out = Vec::with_capacity(96);
        out.extend(scheme.bytes().filter(|&b| !is_ctl(b) && b != b' '));
        Self {
            out,
            params: 0,
            scheme: true,
        }
    }

    /// A bare parameter list, as `Authentication-Info` carries (RFC 9110 §11.6.3).
    pub fn params() -> Self {
        Self {
            out: Vec::new(),
            params: 0,
            scheme: false,
        }
    }

    /// Reserves room for `bytes` more bytes of output. A value that comes out exactly as long
    /// as the room reserved becomes the field value without another allocation or copy.
    pub fn reserve(mut self, bytes: usize) -> Self {
        self.out.reserve_exact(bytes);
        self
    }

    /// Adds `name="value"`, always quoted (RFC 7616 requires `realm`, `nonce`, `opaque` quoted).
    pub fn quoted(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.separator(name);
        push_quoted(&mut self.out, value.as_ref());
        self
    }

    /// Adds `name=value` as a token, or quoted when `value` is not a token.
    pub fn token(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        let value = value.as_ref();
        self.separator(name);
        if is_token(value) {
            self.out.extend_from_slice(value);
        } else {
            push_quoted(&mut self.out, value);
        }
        self
    }

    /// Adds a token68 (for example Basic's or Bearer's) after the scheme. Only valid as the one
    /// and only item of a challenge; characters outside the token68 alphabet are left out.
    pub fn token68(mut self, value: &str) -> Self {
        if self.scheme && self.params == 0 {
            self.out.push(b' ');
            self.out.extend(
                value
                    .bytes()
                    .filter(|&b| super::chars::is_token68_char(b) || b == b'='),
            );
            self.params = 1;
        }
        self
    }

    /// The field value.
    pub fn finish(self) -> HeaderValue {
        field_value(self.out)
    }

    fn separator(&mut self, name: &str) {
        if self.params > 0 {
            self.out.extend_from_slice(b", ");
        } else if self.scheme {
            self.out.push(b' ');
        }
        self.params += 1;
        if is_token(name.as_bytes()) {
            self.out.extend_from_slice(name.as_bytes());
        } else {
            self.out
                .extend(name.bytes().filter(|&b| super::chars::is_tchar(b)));
        }
        self.out.push(b'=');
    }
}

/// `out` as a field value, without a copy when its capacity is its length. Every byte the
/// writers here put in is a valid field-value byte (no CTL but HTAB), so this succeeds; the
/// fallback (an empty value) keeps it panic-free all the same.
pub(crate) fn field_value(out: Vec<u8>) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(out))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Appends `value` as a quoted-string: `"` and `\` escaped, control characters but HTAB left out.
pub(crate) fn push_quoted(out: &mut Vec<u8>, value: &[u8]) {
    out.reserve(value.len() + 2);
    out.push(b'"');
    // The common case: nothing to escape or leave out (qdtext is exactly that), one copy.
    if qdtext_run(value) == value.len() {
        out.extend_from_slice(value);
        out.push(b'"');
        return;
    }
    for &b in value {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        } else if is_ctl(b) && b != b'\t' {
            continue;
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_and_lists() {
        assert_eq!(
            ChallengeBuilder::new("Basic")
                .quoted("realm", "proxy")
                .quoted("charset", "UTF-8")
                .finish(),
            r#"Basic realm="proxy", charset="UTF-8""#
        );
        assert_eq!(ChallengeBuilder::new("Negotiate").finish(), "Negotiate");
        assert_eq!(
            ChallengeBuilder::new("Bearer").token68("abc+/=").finish(),
            "Bearer abc+/="
        );
        assert_eq!(
            ChallengeBuilder::params()
                .token("qop", "auth")
                .token("x", "two words")
                .finish(),
            r#"qop=auth, x="two words""#
        );
    }

    #[test]
    fn control_characters_never_reach_the_value() {
        let v = ChallengeBuilder::new("Basic")
            .quoted("realm", "a\r\nSet-Cookie: x\0")
            .finish();
        assert_eq!(v, r#"Basic realm="aSet-Cookie: x""#);
    }
}
