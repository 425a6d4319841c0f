//! `credentials` (RFC 9110 §11.4): an auth-scheme, then a token68 or an auth-param list.
//!
//! ```text
//! credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//! token68     = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
//! ```
//!
//! One rule for the whitespace after the scheme, from the grammar: one or more SP. A tab there
//! (`Basic\tX`, `Basic \tX`) is malformed, wherever it sits. Whitespace around the whole field
//! value is not part of it (RFC 9110 §5.5) and is ignored.
//!
//! The field holds one credentials, not a list. A second one joined by a comma, as an
//! intermediary that merged two field lines would write (`Basic a, Basic b`), is
//! [`SyntaxError::MultipleCredentials`]: the layer answers 400 rather than pick one.

use std::fmt;

use super::chars::{is_ows, is_tchar, is_token68_char, span, trim_ows};
use super::params::AuthParams;
use super::SyntaxError;

/// One parsed credentials: its auth-scheme and what follows it. Knows no scheme.
///
/// ```
/// use tower_proxy_auth::syntax::{parse_credentials, CredentialsData};
///
/// let basic = parse_credentials(b"basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")?;
/// assert!(basic.is_scheme("Basic"));
/// let CredentialsData::Token68(token) = basic.data() else { unreachable!() };
/// assert_eq!(token.as_str(), "QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
///
/// let bare = parse_credentials(b"Negotiate")?;
/// assert!(matches!(bare.data(), CredentialsData::Empty));
/// # Ok::<(), tower_proxy_auth::syntax::SyntaxError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// A token: ASCII.
    scheme: &'a [u8],
    data: CredentialsData<'a>,
}

/// What follows the auth-scheme.
#[derive(Clone, PartialEq, Eq)]
pub enum CredentialsData<'a> {
    /// Nothing: the scheme alone.
    Empty,
    /// A token68, such as Basic's base64 (RFC 7617) or a Bearer token (RFC 6750).
    Token68(Token68<'a>),
    /// An auth-param list, such as Digest's (RFC 7616).
    Params(AuthParams<'a>),
}

/// A token68 (RFC 9110 §11.2): ASCII letters, digits, `-._~+/`, then `=` padding.
///
/// `Debug` shows its length only: a token68 is often a secret (Basic's base64 of a password,
/// a Bearer token).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Token68<'a>(&'a [u8]);

impl fmt::Debug for Token68<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token68(<{} bytes>)", self.0.len())
    }
}

impl<'a> Token68<'a> {
    /// The token's bytes (all ASCII).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// The token as text.
    pub fn as_str(&self) -> &'a str {
        // Only ASCII bytes are ever taken into a token68.
        std::str::from_utf8(self.0).unwrap_or_default()
    }
}

impl<'a> Credentials<'a> {
    /// The auth-scheme as sent.
    pub fn scheme(&self) -> &'a str {
        // A token is ASCII.
        std::str::from_utf8(self.scheme).unwrap_or_default()
    }

    /// Whether the auth-scheme is `name`, compared case-insensitively (RFC 9110 §11.1).
    pub fn is_scheme(&self, name: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(name.as_bytes())
    }

    /// What follows the scheme.
    pub fn data(&self) -> &CredentialsData<'a> {
        &self.data
    }
}

impl fmt::Debug for Credentials<'_> {
    /// The scheme and the shape of what follows; never a token68 or a parameter value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Credentials");
        d.field("scheme", &self.scheme());
        match &self.data {
            CredentialsData::Empty => d.field("data", &"empty"),
            CredentialsData::Token68(t) => d.field("token68_len", &t.0.len()),
            CredentialsData::Params(p) => d.field("params", p),
        };
        d.finish()
    }
}

impl fmt::Debug for CredentialsData<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("Empty"),
            Self::Token68(t) => write!(f, "Token68(<{} bytes>)", t.0.len()),
            Self::Params(p) => f.debug_tuple("Params").field(p).finish(),
        }
    }
}

/// Parses one credentials field value (RFC 9110 §11.4), with no knowledge of any scheme.
///
/// # Errors
///
/// A [`SyntaxError`] naming the rule broken; [`SyntaxError::MultipleCredentials`] is the one
/// the layer answers with 400, every other with a challenge.
pub fn parse_credentials(value: &[u8]) -> Result<Credentials<'_>, SyntaxError> {
    let value = trim_ows(value);
    if value.is_empty() {
        return Err(SyntaxError::Empty);
    }
    let scheme_len = span(value, is_tchar);
    if scheme_len == 0 {
        return Err(SyntaxError::InvalidScheme);
    }
    let scheme = &value[..scheme_len];
    let rest = &value[scheme_len..];
    if rest.is_empty() {
        return Ok(Credentials {
            scheme,
            data: CredentialsData::Empty,
        });
    }
    if rest[0] != b' ' {
        return Err(SyntaxError::MissingSpace);
    }
    // 1*SP; the value was trimmed, so something follows.
    let after = &rest[span(rest, |b| b == b' ')..];
    let chars = span(after, is_token68_char);
    let token68_len = chars + span(&after[chars..], |b| b == b'=');
    if chars > 0 {
        let tail = &after[token68_len..];
        if tail.is_empty() {
            return Ok(Credentials {
                scheme,
                data: CredentialsData::Token68(Token68(&after[..token68_len])),
            });
        }
        // A token68 then a comma: a second credentials if anything but empty elements
        // follows, otherwise a stray comma. Anything else after it is either an auth-param
        // list (`name=value`) or a malformed token68: the list parser tells.
        if tail.iter().find(|&&b| !is_ows(b)) == Some(&b',') {
            let more = tail.split(|&b| b == b',').any(|e| !trim_ows(e).is_empty());
            return Err(if more {
                SyntaxError::MultipleCredentials
            } else {
                SyntaxError::InvalidToken68
            });
        }
    }
    let params = AuthParams::parse(after).map_err(|e| match e {
        // "Basic abc def": neither a token68 nor a list.
        SyntaxError::InvalidParam if chars > 0 && !after[..chars + 1].contains(&b'=') => {
            SyntaxError::InvalidToken68
        }
        other => other,
    })?;
    Ok(Credentials {
        scheme,
        data: CredentialsData::Params(params),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(value: &str) -> Result<(String, String), SyntaxError> {
        parse_credentials(value.as_bytes()).map(|c| {
            let data = match c.data() {
                CredentialsData::Empty => "empty".to_owned(),
                CredentialsData::Token68(t) => format!("token68 {}", t.as_str()),
                CredentialsData::Params(p) => format!("params {p}"),
            };
            (c.scheme().to_owned(), data)
        })
    }

    #[test]
    fn token68_params_and_empty() {
        let ok = |v: &str, scheme: &str, data: &str| {
            assert_eq!(shape(v), Ok((scheme.to_owned(), data.to_owned())), "{v:?}");
        };
        ok(
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
            "Basic",
            "token68 QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        );
        ok("  basic   dTpw \t", "basic", "token68 dTpw");
        ok(
            "Bearer mF_9.B5f-4.1JqM",
            "Bearer",
            "token68 mF_9.B5f-4.1JqM",
        );
        ok("Negotiate", "Negotiate", "empty");
        ok("Basic   ", "Basic", "empty");
        ok(
            r#"Digest username="Mufasa", realm="x", nc=00000001"#,
            "Digest",
            r#"params username="Mufasa", realm="x", nc=00000001"#,
        );
        ok("Custom a=b", "Custom", "params a=b");
    }

    #[test]
    fn whitespace_after_the_scheme_is_one_or_more_sp_only() {
        assert_eq!(
            shape("Basic\tQWxhZGRpbjpvcGVuIHNlc2FtZQ==").err(),
            Some(SyntaxError::MissingSpace)
        );
        assert!(shape("Basic \tQWxhZGRpbjpvcGVuIHNlc2FtZQ==").is_err());
        assert!(shape("Basic \tdTpw").is_err());
        assert!(shape("Basic  \t dTpw").is_err());
        assert!(shape("Digest \tusername=\"a\"").is_err());
    }

    #[test]
    fn malformed_and_multiple() {
        use SyntaxError::*;
        for (value, want) in [
            ("", Empty),
            (" \t ", Empty),
            ("\"Basic\" x", InvalidScheme),
            ("=abc", InvalidScheme),
            ("Basic,dTpw", MissingSpace),
            ("Basicdm9vOmJhcg== x", MissingSpace),
            ("Basic dTpx dTpx", InvalidToken68),
            ("Basic !!!!", InvalidParam),
            ("Basic dTpw,", InvalidToken68),
            ("Basic dTpw , ", InvalidToken68),
            ("Basic dTpw, Basic dTpx", MultipleCredentials),
            ("Basic dTpw,dTpx", MultipleCredentials),
            ("Bearer x, Basic dTpx", MultipleCredentials),
            ("Digest a=1, Basic dTpx", MultipleCredentials),
            ("Digest a=1, a=2", DuplicateParam),
            ("Digest a=\"x", UnterminatedQuotedString),
        ] {
            assert_eq!(shape(value).err(), Some(want), "{value:?}");
        }
    }
}
