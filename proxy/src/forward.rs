//! HTTP forwarding: an absolute-form request (`GET http://host/path HTTP/1.1`) is sent to its
//! origin over a pool of reused connections and the answer comes back.
//!
//! - Both ways, the hop-by-hop and proxy authentication fields are removed from the header and
//!   trailer sections ([`HopByHop`]): the origin never sees a client's `Proxy-Authorization`
//!   (in a trailer neither), and the client never sees an origin's `Proxy-Authenticate` or
//!   `Proxy-Authentication-Info` (RFC 9110 §11.7.1: they are for the next outbound client, which
//!   is the proxy). This runs inside the authentication layer, so the layer's own
//!   `Proxy-Authentication-Info` (Digest's `rspauth`) is added after it and reaches the client.
//! - `Via` is added (RFC 9110 §7.6.3); `Host` is set from the target (RFC 9112 §3.2.2).
//! - The one retry: a pooled connection can be closed by the origin just as it is reused (an
//!   origin whose keep-alive timeout is shorter than the pool's). An idempotent request without
//!   a body (RFC 9110 §9.2.2) whose connection was closed or reset before any response is sent
//!   once more on a new connection; anything else gets 502.

use std::error::Error as StdError;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::Scheme;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpInfo;
use tracing::debug;

use crate::hop_by_hop::{HopByHop, StripTrailers};
use crate::proxy::{ForwardProxy, ProxyBody, Upstream};
use crate::reply::{text, ErrorChain};
use crate::targets::TargetRefused;

/// The body sent to an origin: the client's (its trailers cleaned), or none when a request is
/// sent again.
pub(crate) type OriginBody = http_body_util::Either<StripTrailers<Incoming>, Empty<Bytes>>;

impl ForwardProxy {
    pub(crate) async fn forward(&self, mut request: Request<Incoming>) -> Response<ProxyBody> {
        let uri = request.uri();
        let Some(authority) = uri.authority() else {
            return text(
                StatusCode::BAD_REQUEST,
                "Bad request: a proxy needs an absolute-form target (http://host/path) or CONNECT\n",
            );
        };
        if uri.scheme() != Some(&Scheme::HTTP) {
            return text(
                StatusCode::BAD_REQUEST,
                "Bad request: only http:// targets are forwarded; use CONNECT for https\n",
            );
        }
        if let Err(refused) = self.targets.check_host(authority.host()) {
            debug!(error = %refused, "target refused");
            return crate::reply::refused();
        }
        let received = request.version();
        let headers = request.headers_mut();
        let removed = HopByHop::remove(headers);
        // RFC 9112 §3.2.2: the Host of an absolute-form request is the target's; the client
        // sets it from the URI.
        headers.remove(header::HOST);
        append_via(headers, received);
        *request.version_mut() = Version::HTTP_11;

        let replay = Replay::of(&request);
        let request = request.map(|body| OriginBody::Left(removed.strip_trailers(body)));
        let mut result = self.client.request(request).await;
        if let (Err(e), Some(replay)) = (&result, replay) {
            if origin_dropped_connection(e) {
                debug!(error = %ErrorChain(e), "origin dropped the connection; retrying once");
                result = self.client.request(replay.into_request()).await;
            }
        }
        match result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                let removed = HopByHop::remove(&mut parts.headers);
                append_via(&mut parts.headers, parts.version);
                parts.version = Version::HTTP_11;
                if let Some(info) = parts.extensions.remove::<HttpInfo>() {
                    parts.extensions.insert(Upstream(info.remote_addr()));
                }
                Response::from_parts(parts, removed.strip_trailers(body).boxed())
            }
            Err(e) if TargetRefused::in_chain(&e) => {
                debug!(error = %ErrorChain(&e), "target refused");
                crate::reply::refused()
            }
            Err(e) => {
                debug!(error = %ErrorChain(&e), "origin request failed");
                text(
                    StatusCode::BAD_GATEWAY,
                    "Bad gateway: the origin could not be reached or failed\n",
                )
            }
        }
    }
}

/// What it takes to send a bodyless idempotent request again.
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Replay {
    /// `Some` for a request with an idempotent method (RFC 9110 §9.2.2) and no body.
    fn of(request: &Request<Incoming>) -> Option<Self> {
        let idempotent = matches!(
            *request.method(),
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        (idempotent && hyper::body::Body::is_end_stream(request.body())).then(|| Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        })
    }

    fn into_request(self) -> Request<OriginBody> {
        let mut request = Request::new(OriginBody::Right(Empty::new()));
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        *request.version_mut() = Version::HTTP_11;
        request
    }
}

/// Whether the origin dropped the connection after the request went out and before any byte
/// of a response came back: hyper's "connection closed before message completed", or a reset
/// (an origin that had already closed answers the request's bytes with RST).
fn origin_dropped_connection(error: &hyper_util::client::legacy::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            if e.is_incomplete_message() {
                return true;
            }
        } else if let Some(e) = e.downcast_ref::<std::io::Error>() {
            return matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe);
        }
        source = e.source();
    }
    false
}

/// `Via` values per received protocol (RFC 9110 §7.6.3), built at compile time.
const VIA_09: HeaderValue = HeaderValue::from_static("0.9 tower-proxy-auth");
const VIA_10: HeaderValue = HeaderValue::from_static("1.0 tower-proxy-auth");
const VIA_11: HeaderValue = HeaderValue::from_static("1.1 tower-proxy-auth");
const VIA_2: HeaderValue = HeaderValue::from_static("2 tower-proxy-auth");
const VIA_3: HeaderValue = HeaderValue::from_static("3 tower-proxy-auth");

/// Appends `Via: <received-protocol> tower-proxy-auth` (RFC 9110 §7.6.3).
fn append_via(headers: &mut HeaderMap, received: Version) {
    let value = match received {
        Version::HTTP_09 => VIA_09,
        Version::HTTP_10 => VIA_10,
        Version::HTTP_2 => VIA_2,
        Version::HTTP_3 => VIA_3,
        _ => VIA_11,
    };
    headers.append(header::VIA, value);
}
