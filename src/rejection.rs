//! The responses the layer makes itself, and what it does to an accepted request.
//!
//! Each rejection is complete: a status, `Content-Type: text/plain; charset=utf-8`, a short
//! non-empty body with an exact `Content-Length`, and no `Connection: close`, because many
//! clients send credentials only after a 407 and retry on the same connection.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode};

use crate::challenge::Realm;
use crate::validator::{Decision, ValidatorError};

/// What the layer was configured with, shared by every clone of the service.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) challenge: HeaderValue,
    pub(crate) realm: Realm,
    pub(crate) keep_proxy_authorization: bool,
}

/// Why the layer answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// 407 with the challenge: no, malformed or wrong credentials.
    Challenge,
    /// 403: authenticated, not allowed.
    Forbidden,
    /// 400: ambiguous credentials.
    BadRequest,
    /// 503: the validator failed.
    Unavailable,
}

impl Rejection {
    fn status_and_text(self) -> (StatusCode, &'static str) {
        match self {
            Self::Challenge => (
                StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                "Proxy authentication required\n",
            ),
            Self::Forbidden => (StatusCode::FORBIDDEN, "Forbidden\n"),
            Self::BadRequest => (
                StatusCode::BAD_REQUEST,
                "Bad request: more than one Proxy-Authorization credential\n",
            ),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Proxy authentication is unavailable\n",
            ),
        }
    }

    /// The response, with the body as bytes; the layer wraps it in its body type.
    pub(crate) fn into_response(self, config: &Config) -> Response<Bytes> {
        let (status, text) = self.status_and_text();
        let mut response = Response::new(Bytes::from_static(text.as_bytes()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.reserve(3);
        if self == Self::Challenge {
            headers.insert(PROXY_AUTHENTICATE, config.challenge.clone());
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
        response
    }
}

/// Applies a validator's result to the request: `Ok` when it may go on (credentials stripped,
/// identity inserted), the rejection otherwise. Logs at `debug` (and errors at `error`) without
/// the password or the raw header.
pub(crate) fn apply(
    outcome: Result<Decision, ValidatorError>,
    user_id: &str,
    request: &mut Parts,
    config: &Config,
) -> Result<(), Rejection> {
    match outcome {
        Ok(Decision::Allow(identity)) => {
            tracing::trace!(user = identity.user(), "proxy credentials accepted");
            if !config.keep_proxy_authorization {
                request.headers.remove(PROXY_AUTHORIZATION);
            }
            request.extensions.insert(identity);
            Ok(())
        }
        Ok(Decision::Reject) => {
            tracing::debug!(user = user_id, "proxy credentials rejected");
            Err(Rejection::Challenge)
        }
        Ok(Decision::Forbid) => {
            tracing::debug!(user = user_id, method = %request.method, target = %request.uri, "authenticated user forbidden");
            Err(Rejection::Forbidden)
        }
        Err(error) => {
            tracing::error!(user = user_id, %error, "proxy credentials validator failed");
            Err(Rejection::Unavailable)
        }
    }
}
