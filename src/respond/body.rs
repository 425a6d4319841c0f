//! The response body of [`ProxyAuth`](crate::ProxyAuth): the inner service's, or a rejection's.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

pin_project! {
    /// Either the inner service's body, passed through untouched, or the body of a rejection
    /// (401/407, 400, 403, 429, 431, 503) made by the layer.
    ///
    /// The layer wraps the body rather than asking the inner body type to be `Default` or
    /// `From<Bytes>`, as tower-http's `RequestBodyLimit` does, so it works in front of any
    /// service, including a proxy that returns hyper's `Incoming` from the origin. The rejection
    /// body reports its exact size. It is `Default` when the inner body is, so layers that need
    /// a default body (tower-http's `CorsLayer` and `TimeoutLayer`) can wrap this one.
    pub struct ResponseBody<B> {
        #[pin]
        kind: Kind<B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<B> {
        Inner { #[pin] body: B },
        Rejection { text: Option<Bytes> },
    }
}

impl<B> ResponseBody<B> {
    /// Wraps the inner service's body.
    pub fn new(body: B) -> Self {
        Self {
            kind: Kind::Inner { body },
        }
    }

    pub(crate) fn rejection(text: Bytes) -> Self {
        Self {
            kind: Kind::Rejection { text: Some(text) },
        }
    }
}

impl<B: Default> Default for ResponseBody<B> {
    /// The inner body's default.
    fn default() -> Self {
        Self::new(B::default())
    }
}

impl<B> Body for ResponseBody<B>
where
    B: Body,
    B::Data: From<Bytes>,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        match self.project().kind.project() {
            KindProj::Inner { body } => body.poll_frame(cx),
            KindProj::Rejection { text } => {
                Poll::Ready(text.take().map(|t| Ok(Frame::data(t.into()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Inner { body } => body.is_end_stream(),
            Kind::Rejection { text } => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Inner { body } => body.size_hint(),
            Kind::Rejection { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64))
            }
        }
    }
}

impl<B> std::fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::Inner { .. } => f.write_str("ResponseBody::Inner(..)"),
            Kind::Rejection { text } => f
                .debug_tuple("ResponseBody::Rejection")
                .field(&text.as_ref().map_or(0, Bytes::len))
                .finish(),
        }
    }
}
