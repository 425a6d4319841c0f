//! The hook that writes the body (and extra fields) of the layer's own responses.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::request::Parts;

use crate::decide::Rejection;

/// The body and extra fields of a rejection, as a
/// [`render_rejection`](crate::ProxyAuthLayerBuilder::render_rejection) hook writes them.
///
/// The layer sets the status, the challenge field lines, `Retry-After`, `Content-Type` (from
/// here), an exact `Content-Length` and `Connection`; extra fields with those names are left
/// out, so a hook cannot make a response that misstates its own length or framing.
///
/// ```
/// use tower_proxy_auth::RejectionBody;
///
/// let body = RejectionBody::html("<h1>Sign in to use this proxy</h1>\n")
///     .header(http::header::CACHE_CONTROL, http::HeaderValue::from_static("no-store"));
/// assert_eq!(body.content_type(), "text/html; charset=utf-8");
/// ```
#[derive(Debug, Clone)]
pub struct RejectionBody {
    content_type: HeaderValue,
    body: Bytes,
    headers: HeaderMap,
}

impl RejectionBody {
    /// A body of `content_type`.
    pub fn new(content_type: HeaderValue, body: impl Into<Bytes>) -> Self {
        Self {
            content_type,
            body: body.into(),
            headers: HeaderMap::new(),
        }
    }

    /// A `text/plain; charset=utf-8` body.
    pub fn text(body: impl Into<Bytes>) -> Self {
        Self::new(HeaderValue::from_static("text/plain; charset=utf-8"), body)
    }

    /// A `text/html; charset=utf-8` body.
    pub fn html(body: impl Into<Bytes>) -> Self {
        Self::new(HeaderValue::from_static("text/html; charset=utf-8"), body)
    }

    /// An `application/json` body.
    pub fn json(body: impl Into<Bytes>) -> Self {
        Self::new(HeaderValue::from_static("application/json"), body)
    }

    /// The layer's own short text for `rejection` ([`Rejection::default_text`]).
    pub fn default_for(rejection: &Rejection) -> Self {
        Self::text(Bytes::from_static(rejection.default_text().as_bytes()))
    }

    /// Adds an extra field (appended; a name the layer sets itself is left out).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.append(name, value);
        self
    }

    /// The content type.
    pub fn content_type(&self) -> &HeaderValue {
        &self.content_type
    }

    /// The body.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    pub(crate) fn into_parts(self) -> (HeaderValue, Bytes, HeaderMap) {
        (self.content_type, self.body, self.headers)
    }
}

/// A rejection renderer, as the builder keeps it.
pub(crate) type RenderHook = Arc<dyn Fn(&Rejection, &Parts) -> RejectionBody + Send + Sync>;
