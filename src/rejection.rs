//! The responses the layer makes itself, and what it does to an accepted request.
//!
//! Each rejection is complete: a status, `Content-Type: text/plain; charset=utf-8`, a short
//! non-empty body with an exact `Content-Length`, and no `Connection: close`, because many
//! clients send credentials only after a 407 and retry on the same connection. The exceptions:
//! a 431 closes (the client sent too much to trust the rest of its stream), and so does any
//! rejection of an HTTP/1.x request whose body is left unread, since the server cannot find the
//! next request behind it.

use bytes::Bytes;
use http::header::{
    CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, RETRY_AFTER,
    TRANSFER_ENCODING,
};
use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, Version};

use crate::challenge::Realm;
use crate::log_limit::LogLimit;
use crate::validator::{Decision, ValidatorError};
use crate::FailureThrottle;

/// What the layer was configured with, shared by every clone of the service.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) challenge: HeaderValue,
    pub(crate) realm: Realm,
    pub(crate) keep_proxy_authorization: bool,
    pub(crate) max_credentials_bytes: usize,
    pub(crate) throttle: Option<FailureThrottle>,
    /// Keeps a validator outage from logging one line per request.
    pub(crate) validator_errors: LogLimit,
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
    /// 431 and `Connection: close`: `Proxy-Authorization` is over the size limit.
    TooLarge,
    /// 429 with `Retry-After` (whole seconds, at least 1): too many wrong credentials.
    TooManyRequests {
        /// Seconds until the window ends.
        retry_after: u64,
    },
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
            Self::TooLarge => (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "Proxy-Authorization is too large\n",
            ),
            Self::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed proxy authentication attempts; retry later\n",
            ),
        }
    }

    /// The response, with the body as bytes; the layer wraps it in its body type.
    ///
    /// `unread_body` is whether the request announced a body the layer leaves unread; on
    /// HTTP/1.x the server cannot reuse such a connection, so the response says
    /// `Connection: close` instead of letting the client find a closed socket (RFC 9112 §9.6).
    pub(crate) fn into_response(self, config: &Config, unread_body: bool) -> Response<Bytes> {
        let (status, text) = self.status_and_text();
        let mut response = Response::new(Bytes::from_static(text.as_bytes()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.reserve(4);
        match self {
            Self::Challenge => {
                headers.insert(PROXY_AUTHENTICATE, config.challenge.clone());
            }
            Self::TooLarge => {
                headers.insert(CONNECTION, HeaderValue::from_static("close"));
            }
            Self::TooManyRequests { retry_after } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_after));
            }
            Self::Forbidden | Self::BadRequest | Self::Unavailable => {}
        }
        if unread_body {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(CONTENT_LENGTH, HeaderValue::from(text.len()));
        response
    }
}

/// Whether an HTTP/1.x request announced a body (`Transfer-Encoding`, or a `Content-Length` other
/// than 0) that a rejection leaves unread. HTTP/2 and later reset the stream instead.
pub(crate) fn has_unread_body(request: &Parts) -> bool {
    request.version <= Version::HTTP_11
        && (request.headers.contains_key(TRANSFER_ENCODING)
            || request
                .headers
                .get(CONTENT_LENGTH)
                .is_some_and(|len| len.as_bytes().iter().any(|&b| b != b'0')))
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
            if let Some(throttle) = &config.throttle {
                throttle.record_failure(user_id, request);
            }
            Err(Rejection::Challenge)
        }
        Ok(Decision::Forbid) => {
            tracing::debug!(user = user_id, method = %request.method, target = %request.uri, "authenticated user forbidden");
            Err(Rejection::Forbidden)
        }
        Err(error) => {
            if let Some(suppressed) = config.validator_errors.admit() {
                tracing::error!(
                    user = user_id,
                    %error,
                    suppressed,
                    "proxy credentials validator failed (503); at most one such line a second, `suppressed` counts the failures left out since the last"
                );
            }
            Err(Rejection::Unavailable)
        }
    }
}
