//! Which party the layer authenticates for: a proxy (407) or an origin (401).
//!
//! RFC 9110 §11 defines the same exchange twice. A proxy asks with `407 Proxy Authentication
//! Required` and `Proxy-Authenticate` (§11.7.1, §15.5.8), reads `Proxy-Authorization`
//! (§11.7.2) and answers success with `Proxy-Authentication-Info` (§11.7.3); an origin uses
//! `401 Unauthorized`, `WWW-Authenticate` (§11.6.1), `Authorization` (§11.6.2) and
//! `Authentication-Info` (§11.6.3). Everything else is the same, so the party is one setting,
//! not a second code path.

use http::header::{
    HeaderName, AUTHORIZATION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, WWW_AUTHENTICATE,
};
use http::StatusCode;

/// The party whose credentials the layer checks; chosen with
/// [`ProxyAuthLayerBuilder::party`](crate::ProxyAuthLayerBuilder::party).
///
/// ```
/// use tower_proxy_auth::Party;
///
/// assert_eq!(Party::Proxy.challenge_status(), 407);
/// assert_eq!(Party::Origin.credentials_header(), "authorization");
/// assert_eq!(Party::Origin.info_header(), "authentication-info");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Party {
    /// A proxy: `Proxy-Authorization`, 407, `Proxy-Authenticate`, `Proxy-Authentication-Info`.
    /// `Authorization` passes through untouched, for the origin.
    #[default]
    Proxy,
    /// An origin (an API, a gateway that is the server): `Authorization`, 401,
    /// `WWW-Authenticate`, `Authentication-Info`. `Proxy-Authorization` passes through
    /// untouched.
    Origin,
}

const PROXY_AUTHENTICATION_INFO: HeaderName = HeaderName::from_static("proxy-authentication-info");
const AUTHENTICATION_INFO: HeaderName = HeaderName::from_static("authentication-info");

impl Party {
    /// The field the client's credentials arrive in: `Proxy-Authorization` or `Authorization`.
    pub fn credentials_header(self) -> HeaderName {
        match self {
            Self::Proxy => PROXY_AUTHORIZATION,
            Self::Origin => AUTHORIZATION,
        }
    }

    /// The field that carries challenges: `Proxy-Authenticate` or `WWW-Authenticate`.
    pub fn challenge_header(self) -> HeaderName {
        match self {
            Self::Proxy => PROXY_AUTHENTICATE,
            Self::Origin => WWW_AUTHENTICATE,
        }
    }

    /// The field a scheme's success step writes: `Proxy-Authentication-Info` or
    /// `Authentication-Info`.
    pub fn info_header(self) -> HeaderName {
        match self {
            Self::Proxy => PROXY_AUTHENTICATION_INFO,
            Self::Origin => AUTHENTICATION_INFO,
        }
    }

    /// The status of a response that asks for credentials: 407 or 401.
    pub fn challenge_status(self) -> StatusCode {
        match self {
            Self::Proxy => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            Self::Origin => StatusCode::UNAUTHORIZED,
        }
    }

    /// `"proxy"` or `"origin"`, for logs and metrics labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Proxy => "proxy",
            Self::Origin => "origin",
        }
    }
}
