//! Basic credentials (RFC 7617 §2): the token68 is the standard base64 encoding (RFC 4648 §4)
//! of `user-id ":" password`.
//!
//! The decoding is strict where leniency would be ambiguous (one decoding per token, no
//! control characters) and defines an answer for every malformed input, so the scheme can turn
//! each [`CredentialsError`] into a response without ever panicking. The surrounding grammar
//! (scheme, whitespace, token68 or parameters) is [`crate::syntax`]'s.

use std::fmt;
use std::sync::atomic::{
    AtomicBool, AtomicU64,
    Ordering::{Acquire, Relaxed, Release},
};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use http::header::{HeaderMap, PROXY_AUTHORIZATION};
use zeroize::{Zeroize as _, Zeroizing};

use crate::secret::{process_key, Tag};
use crate::syntax::{self, CredentialsData, SyntaxError};

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
    decoded: Decoded,
    /// Index of the first `:` in `decoded`.
    colon: usize,
    /// The tag of `decoded` under the process key, made on first use ([`Self::tag`]).
    tag: TagMemo,
}

/// A tag remembered once made. Plain atomics rather than a `OnceLock`: racing first uses
/// each compute the same value, so no lock or wake-up is needed, and the common case (made
/// once, read once more) costs a few loads and stores.
#[derive(Default)]
struct TagMemo {
    made: AtomicBool,
    halves: [AtomicU64; 2],
}

impl TagMemo {
    fn get_or_make(&self, make: impl FnOnce() -> Tag) -> Tag {
        if self.made.load(Acquire) {
            return Tag::from_halves([self.halves[0].load(Relaxed), self.halves[1].load(Relaxed)]);
        }
        let tag = make();
        let [a, b] = tag.halves();
        self.halves[0].store(a, Relaxed);
        self.halves[1].store(b, Relaxed);
        self.made.store(true, Release);
        tag
    }
}

impl Clone for TagMemo {
    fn clone(&self) -> Self {
        let copy = Self::default();
        if self.made.load(Acquire) {
            copy.halves[0].store(self.halves[0].load(Relaxed), Relaxed);
            copy.halves[1].store(self.halves[1].load(Relaxed), Relaxed);
            copy.made.store(true, Relaxed);
        }
        copy
    }
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
        let decoded = Decoded::from_parts(&[user_id.as_bytes(), b":", password]);
        Ok(Self {
            decoded,
            colon: user_id.len(),
            tag: TagMemo::default(),
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
        let (_, field) = syntax::credentials_field(headers, &PROXY_AUTHORIZATION);
        match field.map_err(|_| CredentialsError::Ambiguous)? {
            Some(value) => Self::parse(value).map(Some),
            None => Ok(None),
        }
    }

    /// Parses one credentials field value, such as `Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==`: the
    /// grammar of RFC 9110 §11.4 ([`syntax::parse_credentials`]), then
    /// [`decode`](Self::decode) of the token68.
    ///
    /// # Errors
    ///
    /// [`CredentialsError::Ambiguous`] for two comma-joined credentials,
    /// [`CredentialsError::UnsupportedScheme`] for another scheme, and one variant per rule of
    /// [`decode`](Self::decode) broken; a value that breaks the grammar after the `Basic`
    /// scheme is [`CredentialsError::InvalidBase64`].
    pub fn parse(value: &[u8]) -> Result<Self, CredentialsError> {
        match syntax::parse_credentials(value) {
            Err(SyntaxError::MultipleCredentials) => Err(CredentialsError::Ambiguous),
            Err(_) => {
                let value = value.trim_ascii_start();
                let scheme = &value[..value.iter().take_while(|&&b| is_tchar(b)).count()];
                Err(if scheme.eq_ignore_ascii_case(b"basic") {
                    CredentialsError::InvalidBase64
                } else {
                    CredentialsError::UnsupportedScheme
                })
            }
            Ok(credentials) if !credentials.is_scheme("Basic") => {
                Err(CredentialsError::UnsupportedScheme)
            }
            Ok(credentials) => match credentials.data() {
                CredentialsData::Token68(token) => Self::decode(token.as_bytes()),
                CredentialsData::Empty => Err(CredentialsError::MissingToken),
                CredentialsData::Params(_) => Err(CredentialsError::InvalidBase64),
            },
        }
    }

    /// Decodes the token68 of Basic credentials (RFC 7617 §2): standard base64 (padding
    /// optional, nothing after it, unused trailing bits zero, so every token has one decoding),
    /// split at the first `:`; the user-id must be UTF-8 and neither part may hold a control
    /// character.
    ///
    /// # Errors
    ///
    /// [`CredentialsError::InvalidBase64`], [`CredentialsError::MissingColon`],
    /// [`CredentialsError::ControlCharacter`], [`CredentialsError::InvalidUserId`].
    pub fn decode(token68: impl AsRef<[u8]>) -> Result<Self, CredentialsError> {
        let token68 = token68.as_ref();
        let decoded = Decoded::base64(token68)?;
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
        Ok(Self {
            decoded,
            colon,
            tag: TagMemo::default(),
        })
    }

    /// `user-id ":" password` as decoded: what the failure throttle recognises a repeated
    /// credential by (it keeps only a keyed hash of it).
    pub(crate) fn decoded(&self) -> &[u8] {
        &self.decoded
    }

    /// The user-id's bytes (UTF-8, checked when the credentials were made).
    /// The keyed tag of these credentials under this process's key (`None` only when the
    /// operating system's random source failed), computed once however many parts ask.
    pub(crate) fn tag(&self) -> Option<Tag> {
        let key = process_key().ok()?;
        Some(
            self.tag
                .get_or_make(|| key.tag_credentials(self.colon, self.decoded())),
        )
    }

    pub(crate) fn user_id_bytes(&self) -> &[u8] {
        &self.decoded[..self.colon]
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
        BASE64.encode_string(&self.decoded[..], &mut out);
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

use syntax::{is_ctl, is_tchar};

/// Decoded credentials up to this many bytes are held inline, without an allocation.
const INLINE: usize = 96;

/// `user-id ":" password` as decoded: inline up to [`INLINE`] bytes, on the heap beyond;
/// zeroized when dropped either way.
#[derive(Clone)]
enum Decoded {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Zeroizing<Vec<u8>>),
}

impl Decoded {
    fn from_parts(parts: &[&[u8]]) -> Self {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len <= INLINE {
            let mut bytes = [0u8; INLINE];
            let mut at = 0;
            for part in parts {
                bytes[at..at + part.len()].copy_from_slice(part);
                at += part.len();
            }
            Self::Inline {
                len: len as u8,
                bytes,
            }
        } else {
            Self::Heap(Zeroizing::new(parts.concat()))
        }
    }

    /// Decodes standard base64 (RFC 4648 §4) in the one strict form [`BASE64`] accepts.
    fn base64(token68: &[u8]) -> Result<Self, CredentialsError> {
        // At most 3 bytes per 4 characters.
        if token68.len() / 4 * 3 + 3 <= INLINE {
            let mut bytes = [0u8; INLINE];
            let len = BASE64
                .decode_slice(token68, &mut bytes)
                .map_err(|_| CredentialsError::InvalidBase64);
            match len {
                Ok(len) => Ok(Self::Inline {
                    len: len as u8,
                    bytes,
                }),
                Err(e) => {
                    bytes.zeroize();
                    Err(e)
                }
            }
        } else {
            BASE64
                .decode(token68)
                .map(|v| Self::Heap(Zeroizing::new(v)))
                .map_err(|_| CredentialsError::InvalidBase64)
        }
    }
}

impl std::ops::Deref for Decoded {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Self::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Self::Heap(v) => v,
        }
    }
}

impl Drop for Decoded {
    fn drop(&mut self) {
        // Only the bytes in use can hold anything: the rest was never written (a failed
        // decode zeroizes the whole buffer itself).
        if let Self::Inline { len, bytes } = self {
            bytes[..usize::from(*len)].zeroize();
        }
    }
}

/// Why Basic credentials could not be used.
///
/// The layer answers [`Ambiguous`](Self::Ambiguous) with 400 Bad Request and every other variant
/// with 401/407 and the challenges, as if no credentials had been sent (RFC 9110 §15.5.8). The
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

impl CredentialsError {
    /// A short, stable label for logs and metrics (`"invalid_base64"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ambiguous => "multiple_credentials",
            Self::UnsupportedScheme => "unsupported_scheme",
            Self::MissingToken => "missing_token68",
            Self::InvalidBase64 => "invalid_base64",
            Self::MissingColon => "missing_colon",
            Self::ControlCharacter => "control_character",
            Self::InvalidUserId => "invalid_user_id",
        }
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
