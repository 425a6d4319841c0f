//! The proxy's own short answers (400, 403, 502) and the error display its debug lines use.

use std::error::Error as StdError;
use std::fmt;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Empty, Full};

use crate::proxy::ProxyBody;

/// A `text/plain` answer of the proxy's own.
pub(crate) fn text(status: StatusCode, message: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(message.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The 403 for a target the [`TargetPolicy`](crate::targets::TargetPolicy) refuses.
pub(crate) fn refused() -> Response<ProxyBody> {
    text(
        StatusCode::FORBIDDEN,
        "Forbidden: the target is a loopback, private, link-local or reserved address (the proxy's operator opens them with --allow-private-targets)\n",
    )
}

pub(crate) fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Displays an error with its sources: `a: b: c`.
pub(crate) struct ErrorChain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}
