//! The fields a proxy removes from every message it forwards, in the header section and in the
//! trailer section alike.
//!
//! RFC 9110 §7.6.1 makes some fields describe one connection only: `Connection` and every field
//! it names, plus `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding` and `Upgrade`. The
//! proxy authentication fields are meant for one hop too: `Proxy-Authorization` for the next
//! inbound proxy (§11.7.2), `Proxy-Authenticate` and `Proxy-Authentication-Info` for the next
//! outbound client (§11.7.1, §11.7.3). None of them may be passed on; a proxy that forwarded a
//! client's `Proxy-Authorization` would hand its users' passwords to every origin, and one that
//! forwarded an origin's `Proxy-Authenticate` would let the origin ask the client for them.
//!
//! A chunked message can carry fields after its body (RFC 9112 §7.1.2, RFC 9110 §6.5), and a
//! client may put any field there (`Trailer: Proxy-Authorization` and the field after the last
//! chunk), so the trailers are cleaned too: [`HopByHop::strip_trailers`] wraps a body and cleans
//! its trailer section as it passes.
//!
//! ```
//! use http::{HeaderMap, HeaderValue};
//! use tower_proxy_auth_proxy::hop_by_hop::HopByHop;
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("connection", HeaderValue::from_static("x-session"));
//! headers.insert("x-session", HeaderValue::from_static("1"));
//! headers.insert("proxy-authorization", HeaderValue::from_static("Basic YTpi"));
//! headers.insert("accept", HeaderValue::from_static("*/*"));
//! let removed = HopByHop::remove(&mut headers);
//! assert_eq!(headers.len(), 1); // only `accept` is left
//!
//! // The trailers of the same message lose the fields its `Connection` named as well.
//! let mut trailers = HeaderMap::new();
//! trailers.insert("x-session", HeaderValue::from_static("2"));
//! trailers.insert("proxy-authorization", HeaderValue::from_static("Basic YTpi"));
//! trailers.insert("x-checksum", HeaderValue::from_static("abc"));
//! removed.clean_trailers(&mut trailers);
//! assert_eq!(trailers.len(), 1); // only `x-checksum` is left
//! ```

use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{self, HeaderMap, HeaderName};
use http_body::{Body, Frame, SizeHint};

/// The hop-by-hop fields every hop removes (RFC 9110 §7.6.1), beyond those `Connection` lists.
pub const HOP_BY_HOP_FIELDS: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The proxy authentication fields, each meant for the next hop only: `Proxy-Authorization`
/// (RFC 9110 §11.7.2), `Proxy-Authenticate` (§11.7.1), `Proxy-Authentication-Info` (§11.7.3).
pub const PROXY_AUTH_FIELDS: [HeaderName; 3] = [
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("proxy-authentication-info"),
];

/// What [`HopByHop::remove`] took out of a header section: the field names `Connection` listed,
/// which the message's trailer section must lose as well.
#[derive(Debug, Clone, Default)]
pub struct HopByHop {
    listed: Vec<HeaderName>,
}

impl HopByHop {
    /// Removes from `headers` the fields of [`HOP_BY_HOP_FIELDS`], every field `Connection`
    /// names (names that are not valid field names are ignored), and the
    /// [`PROXY_AUTH_FIELDS`]; returns the names `Connection` listed.
    ///
    /// A section holding none of these costs one pass over its names and no allocation.
    pub fn remove(headers: &mut HeaderMap) -> Self {
        // Most messages carry none, or only `Connection`: one pass over the names decides.
        if !headers.keys().any(is_always_removed) {
            return Self::default();
        }
        let listed: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|value| value.as_bytes().split(|&b| b == b','))
            .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
            .collect();
        for name in listed
            .iter()
            .chain(&HOP_BY_HOP_FIELDS)
            .chain(&PROXY_AUTH_FIELDS)
        {
            headers.remove(name);
        }
        Self { listed }
    }

    /// Removes from a trailer section the same fields as [`HopByHop::remove`] did from the
    /// header section, and the names its `Connection` listed.
    pub fn clean_trailers(&self, trailers: &mut HeaderMap) {
        for name in self
            .listed
            .iter()
            .chain(&HOP_BY_HOP_FIELDS)
            .chain(&PROXY_AUTH_FIELDS)
        {
            trailers.remove(name);
        }
    }

    /// `body`, with [`HopByHop::clean_trailers`] applied to its trailer section (if it has one)
    /// as it passes. Data frames pass untouched.
    pub fn strip_trailers<B>(self, body: B) -> StripTrailers<B> {
        StripTrailers { body, fields: self }
    }
}

fn is_always_removed(name: &HeaderName) -> bool {
    HOP_BY_HOP_FIELDS.contains(name) || PROXY_AUTH_FIELDS.contains(name)
}

pin_project_lite::pin_project! {
    /// A body whose trailer section loses the hop-by-hop and proxy authentication fields
    /// ([`HopByHop::strip_trailers`]).
    #[derive(Debug)]
    pub struct StripTrailers<B> {
        #[pin]
        body: B,
        fields: HopByHop,
    }
}

impl<B: Body> Body for StripTrailers<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        match this.body.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_trailers() {
                    Ok(mut trailers) => {
                        this.fields.clean_trailers(&mut trailers);
                        Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                };
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use http_body_util::BodyExt as _;

    fn map(fields: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn removes_fixed_listed_and_proxy_auth_fields() {
        let mut headers = map(&[
            ("connection", "X-Foo, close , bad name"),
            ("connection", "x-bar"),
            ("x-foo", "1"),
            ("x-bar", "2"),
            ("keep-alive", "5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authorization", "Basic YTpi"),
            ("proxy-authenticate", "Basic realm=\"origin\""),
            ("proxy-authentication-info", "rspauth=\"x\""),
            ("trailer", "x-sum"),
            ("x-keep", "yes"),
        ]);
        let removed = HopByHop::remove(&mut headers);
        let left: Vec<_> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(left, ["trailer", "x-keep"]);
        assert_eq!(removed.listed, ["x-foo", "close", "x-bar"]);
    }

    #[test]
    fn a_clean_section_is_left_alone() {
        let mut headers = map(&[("accept", "*/*"), ("host", "a")]);
        let removed = HopByHop::remove(&mut headers);
        assert_eq!(headers.len(), 2);
        assert!(removed.listed.is_empty());
    }

    #[tokio::test]
    async fn trailers_lose_the_same_fields_and_data_passes() {
        let mut headers = map(&[("connection", "x-session")]);
        let removed = HopByHop::remove(&mut headers);
        let trailers = map(&[
            ("proxy-authorization", "Basic YTpi"),
            ("x-session", "2"),
            ("keep-alive", "5"),
            ("x-checksum", "abc"),
        ]);
        let body = http_body_util::Full::new(bytes::Bytes::from_static(b"body"))
            .with_trailers(async move { Some(Ok(trailers)) });
        let collected = removed.strip_trailers(body).collect().await.unwrap();
        let trailers = collected.trailers().cloned().unwrap();
        assert_eq!(
            trailers.keys().map(HeaderName::as_str).collect::<Vec<_>>(),
            ["x-checksum"]
        );
        assert_eq!(&collected.to_bytes()[..], b"body");
    }
}
