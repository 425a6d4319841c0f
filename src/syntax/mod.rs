//! The grammar of HTTP authentication (RFC 9110 §11), and nothing about any one scheme.
//!
//! - [`parse_credentials`]: `credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]`
//!   (§11.4), into a [`Credentials`] whose [`CredentialsData`] is empty, a token68, or an
//!   [`AuthParams`] list with quoted-strings unescaped (§5.6.4).
//! - [`credentials_field`]: the one credentials field line of a request, and the size of all of
//!   them, for the limit checked before any parsing.
//! - [`ChallengeBuilder`]: writes challenges (§11.3) and `*-Authentication-Info` lists
//!   (§11.6.3), quoting and escaping values.
//!
//! Schemes (`crate::scheme`) read what this module parsed; this module imports none of them.
//! Every input has a defined answer: a value or a [`SyntaxError`], never a panic.

mod chars;
mod credentials;
mod field;
mod params;
mod writer;

use std::fmt;

pub use credentials::{parse_credentials, Credentials, CredentialsData, Token68};
pub use field::credentials_field;
pub use params::{AuthParam, AuthParams, MAX_EMPTY_ELEMENTS, MAX_PARAMS};
pub use writer::ChallengeBuilder;

pub(crate) use chars::{is_ctl, is_hex, is_tchar};
pub(crate) use writer::{field_value, push_quoted};

/// Why a credentials field value does not follow RFC 9110 §11.4.
///
/// The `Display` text names the rule, never the input. The layer answers
/// [`MultipleCredentials`](Self::MultipleCredentials) with 400 Bad Request and every other
/// variant with a 401/407 challenge, as if no credentials had been sent (RFC 9110 §15.5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SyntaxError {
    /// The value is empty or only whitespace.
    Empty,
    /// The value does not start with an auth-scheme token.
    InvalidScheme,
    /// The auth-scheme is followed by something other than SP (a tab, a comma, a quote).
    MissingSpace,
    /// A token68 followed by something other than the end of the value.
    InvalidToken68,
    /// An element of the auth-param list is not `token BWS "=" BWS ( token / quoted-string )`.
    InvalidParam,
    /// A quoted-string without its closing `"`.
    UnterminatedQuotedString,
    /// The same parameter name twice (case-insensitively).
    DuplicateParam,
    /// More than [`MAX_PARAMS`] parameters.
    TooManyParams,
    /// More than [`MAX_EMPTY_ELEMENTS`] empty list elements.
    TooManyEmptyElements,
    /// Two field lines, or a second credentials joined by a comma.
    MultipleCredentials,
}

impl SyntaxError {
    /// A short, stable name for logs and metrics labels (`"invalid_param"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::InvalidScheme => "invalid_scheme",
            Self::MissingSpace => "missing_space",
            Self::InvalidToken68 => "invalid_token68",
            Self::InvalidParam => "invalid_param",
            Self::UnterminatedQuotedString => "unterminated_quoted_string",
            Self::DuplicateParam => "duplicate_param",
            Self::TooManyParams => "too_many_params",
            Self::TooManyEmptyElements => "too_many_empty_elements",
            Self::MultipleCredentials => "multiple_credentials",
        }
    }
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Empty => "empty credentials",
            Self::InvalidScheme => "credentials do not start with an auth-scheme token",
            Self::MissingSpace => "the auth-scheme is not followed by SP",
            Self::InvalidToken68 => "malformed token68",
            Self::InvalidParam => "malformed auth-param",
            Self::UnterminatedQuotedString => "unterminated quoted-string",
            Self::DuplicateParam => "an auth-param is given twice",
            Self::TooManyParams => "too many auth-params",
            Self::TooManyEmptyElements => "too many empty list elements",
            Self::MultipleCredentials => "more than one credentials",
        })
    }
}

impl std::error::Error for SyntaxError {}
