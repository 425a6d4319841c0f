//! Parsing the `Proxy-Authorization` field into Basic credentials.
//!
//! The grammar is RFC 9110 §11.4 (`credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`)
//! with the Basic scheme of RFC 7617 §2: the token68 is the standard base64 encoding (RFC 4648 §4)
//! of `user-id ":" password`. The parser is strict where leniency would be ambiguous (two field
//! lines, two credentials in one value) and defines an answer for every other malformed input, so
//! the layer can turn each [`CredentialsError`] into a response without ever panicking.

use std::fmt;

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use http::header::{HeaderMap, PROXY_AUTHORIZATION};
use zeroize::Zeroizing;

/// Standard alphabet (RFC 4648 §4); padding optional, but nothing may follow it, and the unused
/// trailing bits must be zero, so every accepted token has exactly one decoding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The `user-id:password` pair of a Basic `Proxy-Authorization` field (RFC 7617 §2).
///
/// Both halves are the exact decoded bytes: nothing is percent-decoded, trimmed or replaced. The
/// user-id is valid UTF-8 (the parser refuses anything else); the password is raw bytes, since RFC
/// 7617 leaves its encoding to the client, and is zeroized when the value is dropped.
///
/// `Debug` prints the user-id and hides the password.
///
/// ```
/// use tower_proxy_auth::BasicCredentials;
///
/// let creds = BasicCredentials::new("Aladdin", "open sesame").unwrap();
/// assert_eq!(creds.user_id(), "Aladdin");
/// assert_eq!(creds.password(), b"open sesame");
/// assert_eq!(creds.encode(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
/// assert!(!format!("{creds:?}").contains("sesame"));
/// ```
#[derive(Clone)]
pub struct BasicCredentials {
    /// `user-id ":" password`, as decoded.
    decoded: Zeroizing<Vec<u8>>,
    /// Index of the first `:` in `decoded`.
    colon: usize,
}

impl BasicCredentials {
    /// Builds credentials from a user-id and a password, as a client would send them.
    ///
    /// # Errors
    ///
    /// [`CredentialsError::InvalidUserId`] when the user-id holds a `:` or a control character,
    /// [`CredentialsError::ControlCharacter`] when the password holds a control character
    /// (RFC 7617 §2 forbids both).
    pub fn new(user_id: &str, password: impl AsRef<[u8]>) -> Result<Self, CredentialsError> {
        let password = password.as_ref();
        if user_id.bytes().any(|b| b == b':' || is_ctl(b)) {
            return Err(CredentialsError::InvalidUserId);
        }
        if password.iter().copied().any(is_ctl) {
            return Err(CredentialsError::ControlCharacter);
        }
        let mut decoded = Zeroizing::new(Vec::with_capacity(user_id.len() + 1 + password.len()));
        decoded.extend_from_slice(user_id.as_bytes());
        decoded.push(b':');
        decoded.extend_from_slice(password);
        Ok(Self {
            decoded,
            colon: user_id.len(),
        })
    }

    /// Parses the `Proxy-Authorization` field of a request.
    ///
    /// Returns `Ok(None)` when the field is absent, `Ok(Some(_))` for one well-formed Basic
    /// credential. The `Authorization` field is never read.
    ///
    /// # Errors
    ///
    /// [`CredentialsError::Ambiguous`] for two field lines or two comma-joined credentials (the
    /// layer answers 400); any other variant for a malformed value (the layer answers 407).
    pub fn from_headers(headers: &HeaderMap) -> Result<Option<Self>, CredentialsError> {
        let (_, field) = proxy_authorization(headers);
        match field? {
            Some(value) => Self::parse(value).map(Some),
            None => Ok(None),
        }
    }

    /// Parses one `Proxy-Authorization` field value, such as `Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==`.
    ///
    /// Rules (RFC 9110 §11.4, RFC 7617 §2): whitespace around the value is ignored; the scheme is
    /// matched case-insensitively; one or more spaces separate it from the token68; the token68 is
    /// standard base64 (padding optional, nothing after it); the decoded value splits at its first
    /// `:`; the user-id must be UTF-8; neither part may hold a control character.
    ///
    /// # Errors
    ///
    /// One [`CredentialsError`] variant per rule broken.
    pub fn parse(value: &[u8]) -> Result<Self, CredentialsError> {
        let value = value.trim_ascii();
        let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
            Some(i) => (&value[..i], value[i..].trim_ascii_start()),
            None => (value, &b""[..]),
        };
        if !scheme.eq_ignore_ascii_case(b"basic") {
            // A comma-joined Basic credential behind another scheme is still two credentials.
            if value
                .split(|&b| b == b',')
                .skip(1)
                .any(|item| starts_with_basic(item.trim_ascii_start()))
            {
                return Err(CredentialsError::Ambiguous);
            }
            return Err(CredentialsError::UnsupportedScheme);
        }
        if rest.contains(&b',') {
            // Two non-empty elements are two credentials; a stray comma is just malformed.
            let elements = value
                .split(|&b| b == b',')
                .filter(|e| !e.trim_ascii().is_empty())
                .count();
            return Err(if elements > 1 {
                CredentialsError::Ambiguous
            } else {
                CredentialsError::InvalidBase64
            });
        }
        if rest.is_empty() {
            return Err(CredentialsError::MissingToken);
        }
        let decoded = Zeroizing::new(
            BASE64
                .decode(rest)
                .map_err(|_| CredentialsError::InvalidBase64)?,
        );
        let colon = decoded
            .iter()
            .position(|&b| b == b':')
            .ok_or(CredentialsError::MissingColon)?;
        if decoded.iter().copied().any(is_ctl) {
            return Err(CredentialsError::ControlCharacter);
        }
        if std::str::from_utf8(&decoded[..colon]).is_err() {
            return Err(CredentialsError::InvalidUserId);
        }
        Ok(Self { decoded, colon })
    }

    /// The user-id: the decoded bytes before the first `:`, as UTF-8.
    pub fn user_id(&self) -> &str {
        // Checked in every constructor; the fallback is unreachable.
        std::str::from_utf8(&self.decoded[..self.colon]).unwrap_or_default()
    }

    /// The password: every decoded byte after the first `:` (it may itself hold `:`).
    pub fn password(&self) -> &[u8] {
        &self.decoded[self.colon + 1..]
    }

    /// The password as UTF-8, or `None` when its bytes are not UTF-8.
    pub fn password_str(&self) -> Option<&str> {
        std::str::from_utf8(self.password()).ok()
    }

    /// The field value a client sends for these credentials: `Basic <base64(user-id:password)>`.
    ///
    /// Useful for tests and for a proxy that authenticates to a parent proxy. The returned string
    /// holds the password in reversible form: treat it as a secret.
    pub fn encode(&self) -> String {
        let mut out = String::from("Basic ");
        BASE64.encode_string(&*self.decoded, &mut out);
        out
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials")
            .field("user_id", &self.user_id())
            .field("password", &"<redacted>")
            .finish()
    }
}

/// One pass over the `Proxy-Authorization` field lines: their total size in bytes, and the one
/// value (`None` when absent, [`CredentialsError::Ambiguous`] for two or more lines).
pub(crate) fn proxy_authorization(
    headers: &HeaderMap,
) -> (usize, Result<Option<&[u8]>, CredentialsError>) {
    let mut size = 0;
    let mut lines = 0;
    let mut first = None;
    for value in headers.get_all(PROXY_AUTHORIZATION) {
        size += value.len();
        lines += 1;
        first.get_or_insert(value.as_bytes());
    }
    let field = if lines > 1 {
        Err(CredentialsError::Ambiguous)
    } else {
        Ok(first)
    };
    (size, field)
}

fn starts_with_basic(item: &[u8]) -> bool {
    item.len() > 5 && item[..5].eq_ignore_ascii_case(b"basic") && item[5] == b' '
}

/// CTL in RFC 5234 Appendix B.1: `%x00-1F / %x7F`.
fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// Why a `Proxy-Authorization` field could not be used.
///
/// The layer answers [`Ambiguous`](Self::Ambiguous) with 400 Bad Request and every other variant
/// with 407 and the challenge, as if no credentials had been sent (RFC 9110 §15.5.8). The
/// `Display` text names the rule and never quotes the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialsError {
    /// Two `Proxy-Authorization` field lines, or two credentials joined by a comma in one value.
    Ambiguous,
    /// An auth-scheme other than `Basic`.
    UnsupportedScheme,
    /// `Basic` with no token68 after it.
    MissingToken,
    /// The token68 is not standard base64 (RFC 4648 §4): a character outside the alphabet, the
    /// URL-safe alphabet, data after the padding, or non-zero trailing bits.
    InvalidBase64,
    /// The decoded value has no `:` between user-id and password.
    MissingColon,
    /// The decoded value holds a control character (RFC 7617 §2).
    ControlCharacter,
    /// The user-id is not UTF-8, or holds a `:` or a control character.
    InvalidUserId,
}

impl fmt::Display for CredentialsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Ambiguous => "more than one credential in Proxy-Authorization",
            Self::UnsupportedScheme => "unsupported auth-scheme (only Basic is accepted)",
            Self::MissingToken => "Basic credentials without a token68",
            Self::InvalidBase64 => "Basic token68 is not standard base64",
            Self::MissingColon => "decoded Basic credentials hold no ':'",
            Self::ControlCharacter => "Basic credentials hold a control character",
            Self::InvalidUserId => "Basic user-id is not UTF-8 or holds ':' or a control character",
        })
    }
}

impl std::error::Error for CredentialsError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<BasicCredentials, CredentialsError> {
        BasicCredentials::parse(s.as_bytes())
    }

    #[test]
    fn rfc7617_examples() {
        let c = parse("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==").unwrap();
        assert_eq!(
            (c.user_id(), c.password()),
            ("Aladdin", &b"open sesame"[..])
        );
        let c = parse("Basic dGVzdDoxMjPCow==").unwrap();
        assert_eq!((c.user_id(), c.password_str()), ("test", Some("123£")));
    }

    #[test]
    fn scheme_case_spaces_and_trim() {
        for v in [
            "basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "BASIC QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "Basic   QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "  Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\t ",
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ",
        ] {
            assert_eq!(parse(v).unwrap().user_id(), "Aladdin", "{v}");
        }
    }

    #[test]
    fn password_keeps_colons() {
        let c = BasicCredentials::new("u", "pa:ss:word").unwrap();
        let back = parse(&c.encode()).unwrap();
        assert_eq!((back.user_id(), back.password()), ("u", &b"pa:ss:word"[..]));
    }

    #[test]
    fn malformed_values() {
        use CredentialsError::*;
        let b64 = |s: &[u8]| format!("Basic {}", BASE64.encode(s));
        let cases: Vec<(String, CredentialsError)> = vec![
            ("Basic".into(), MissingToken),
            ("Basic    ".into(), MissingToken),
            ("Basic !!!!".into(), InvalidBase64),
            ("Bearer abc".into(), UnsupportedScheme),
            ("Basicdm9vOmJhcg==".into(), UnsupportedScheme),
            (b64(b"nocolon"), MissingColon),
            ("Basic dXNlcjpw-XNz".into(), InvalidBase64), // URL-safe '-'
            ("Basic dTpw_w==".into(), InvalidBase64),     // URL-safe '_'
            ("Basic dTpw==AAAA".into(), InvalidBase64),   // data after padding
            ("Basic dTpx=".into(), InvalidBase64),        // bad padding
            ("Basic dTpx dTpx".into(), InvalidBase64),
            (b64(b"u:p\x00"), ControlCharacter),
            (b64(b"u\r\n:p"), ControlCharacter),
            (b64(b"\xff\xfe:p"), InvalidUserId),
            (format!("Basic {}", "A".repeat(16 * 1024)), MissingColon),
            ("Basic dTpw, Basic dTpx".into(), Ambiguous),
            ("Basic dTpw,dTpx".into(), Ambiguous),
            ("Bearer x, Basic dTpx".into(), Ambiguous),
            ("Basic dTpw,".into(), InvalidBase64),
            ("Basic dTpw , ".into(), InvalidBase64),
            ("".into(), UnsupportedScheme),
        ];
        for (value, want) in cases {
            assert_eq!(parse(&value).err(), Some(want), "{value:.40}");
        }
    }

    #[test]
    fn non_utf8_password_is_kept_as_bytes() {
        let c = parse(&format!("Basic {}", BASE64.encode(b"u:\xa3\xff"))).unwrap();
        assert_eq!(c.password(), b"\xa3\xff");
        assert_eq!(c.password_str(), None);
    }

    #[test]
    fn never_percent_decoded() {
        let c = parse(&format!("Basic {}", BASE64.encode(b"a%40b:p%3A"))).unwrap();
        assert_eq!((c.user_id(), c.password()), ("a%40b", &b"p%3A"[..]));
    }

    #[test]
    fn two_field_lines_are_ambiguous() {
        let mut h = HeaderMap::new();
        h.append(PROXY_AUTHORIZATION, "Basic dTpw".parse().unwrap());
        h.append(PROXY_AUTHORIZATION, "Basic dTpw".parse().unwrap());
        assert_eq!(
            BasicCredentials::from_headers(&h).err(),
            Some(CredentialsError::Ambiguous)
        );
        assert!(BasicCredentials::from_headers(&HeaderMap::new())
            .unwrap()
            .is_none());
    }

    #[test]
    fn constructor_refuses_what_parse_refuses() {
        assert!(BasicCredentials::new("a:b", "p").is_err());
        assert!(BasicCredentials::new("a", "p\n").is_err());
        assert!(BasicCredentials::new("", "").is_ok());
    }

    #[test]
    fn debug_hides_password() {
        let c = BasicCredentials::new("alice", "hunter2").unwrap();
        let dbg = format!("{c:?}");
        assert!(dbg.contains("alice") && !dbg.contains("hunter2"));
    }
}
