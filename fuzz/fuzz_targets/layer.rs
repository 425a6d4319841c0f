//! Arbitrary request headers through `ProxyAuthLayer::new(StaticUsers alice:s3cret)` in front
//! of a trivial service, driven by polling with a no-op waker (every path is synchronous with
//! `StaticUsers`).
//!
//! Input: the first byte picks the method (GET, POST, CONNECT, HEAD), the version (HTTP/1.1 or
//! HTTP/2) and whether the request announces a body; the rest is split into lines, each one
//! field line:
//! - `=<bytes>`: `Proxy-Authorization: Basic <base64(bytes)>` (lets the fuzzer reach the decoded
//!   space directly);
//! - `~<text>`: `Proxy-Authorization: <text repeated past 64 KiB>` (the size limit);
//! - `<name>:<value>` with a valid field name: that field;
//! - anything else: `Proxy-Authorization: <line>`.
//!
//! Asserts the exact status the rules give: 431 over 64 KiB of `Proxy-Authorization`, else
//! 407 with no field, 400 for two fields or a comma-joined pair, 407 for anything malformed or
//! wrong, and 200 only for exactly `alice:s3cret`, where the inner service sees an `Identity`
//! of `alice`, no `Proxy-Authorization` and every other field. Every rejection is complete
//! (`Content-Length` equal to its body), and a 407 carries the challenge.

#![no_main]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{
    HeaderName, HeaderValue, CONNECTION, CONTENT_LENGTH, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION,
};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower_layer::Layer as _;
use tower_proxy_auth::{BasicCredentials, CredentialsError, Identity, ProxyAuthLayer, StaticUsers};
use tower_service::Service;

/// The layer's default limit on `Proxy-Authorization` (`DEFAULT_MAX_CREDENTIALS_BYTES`).
const LIMIT: usize = 64 * 1024;

/// Answers 200 after checking what an accepted request carries.
#[derive(Clone)]
struct Inner {
    other_fields: usize,
}

impl Service<Request<()>> for Inner {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<()>) -> Self::Future {
        assert!(req.headers().get(PROXY_AUTHORIZATION).is_none());
        assert_eq!(
            req.extensions().get::<Identity>().map(Identity::user),
            Some("alice")
        );
        assert_eq!(req.headers().len(), self.other_fields);
        std::future::ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok")))))
    }
}

fn field(line: &[u8]) -> Option<(HeaderName, HeaderValue)> {
    let value = match line.split_first() {
        Some((b'=', rest)) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(rest);
            HeaderValue::from_str(&format!("Basic {b64}")).ok()?
        }
        Some((b'~', rest)) if !rest.is_empty() => {
            HeaderValue::from_bytes(&rest.repeat(LIMIT / rest.len() + 1)).ok()?
        }
        _ => {
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                if let Ok(name) = HeaderName::from_bytes(&line[..colon]) {
                    let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).ok()?;
                    return Some((name, value));
                }
            }
            HeaderValue::from_bytes(line).ok()?
        }
    };
    Some((PROXY_AUTHORIZATION, value))
}

fn expected(request: &Request<()>) -> StatusCode {
    let values: Vec<&HeaderValue> = request
        .headers()
        .get_all(PROXY_AUTHORIZATION)
        .iter()
        .collect();
    if values.iter().map(|v| v.len()).sum::<usize>() > LIMIT {
        return StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    }
    match values[..] {
        [] => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        [value] => match BasicCredentials::parse(value.as_bytes()) {
            Ok(c) if c.user_id() == "alice" && c.password() == b"s3cret" => StatusCode::OK,
            Err(CredentialsError::Ambiguous) => StatusCode::BAD_REQUEST,
            _ => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        },
        _ => StatusCode::BAD_REQUEST,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (method, uri) = match flags & 3 {
        0 => (Method::GET, "http://example.com/"),
        1 => (Method::POST, "http://example.com/upload"),
        2 => (Method::CONNECT, "example.com:443"),
        _ => (Method::HEAD, "http://example.com/"),
    };
    let version = if flags & 4 == 0 {
        Version::HTTP_11
    } else {
        Version::HTTP_2
    };
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .version(version)
        .body(())
        .expect("a valid request");
    if flags & 8 != 0 {
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("5"));
    }
    for line in rest.split(|&b| b == b'\n') {
        if let Some((name, value)) = field(line) {
            request.headers_mut().append(name, value);
        }
    }
    let want = expected(&request);
    let other_fields = request.headers().len()
        - request
            .headers()
            .get_all(PROXY_AUTHORIZATION)
            .iter()
            .count();

    let users = StaticUsers::new().with_user("alice", "s3cret");
    let mut service = ProxyAuthLayer::new(users).layer(Inner { other_fields });
    let mut cx = Context::from_waker(Waker::noop());
    assert!(service.poll_ready(&mut cx).is_ready());
    let mut future = pin!(service.call(request));
    let Poll::Ready(Ok(response)) = future.as_mut().poll(&mut cx) else {
        panic!("the layer did not answer at once with StaticUsers");
    };

    let status = response.status();
    assert_eq!(status, want);
    assert!(matches!(status.as_u16(), 200 | 400 | 407 | 431));
    if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        assert_eq!(
            response.headers()[PROXY_AUTHENTICATE],
            "Basic realm=\"proxy\", charset=\"UTF-8\""
        );
    }
    if status == StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE {
        assert_eq!(response.headers()[CONNECTION], "close");
    }
    let content_length = response.headers().get(CONTENT_LENGTH).cloned();
    let mut body = pin!(response.into_body());
    let mut bytes = Vec::new();
    while let Poll::Ready(Some(frame)) = body.as_mut().poll_frame(&mut cx) {
        if let Ok(data) = frame.expect("an infallible body").into_data() {
            bytes.extend_from_slice(&data);
        }
    }
    assert!(body.is_end_stream());
    if status == StatusCode::OK {
        assert_eq!(bytes, b"ok");
    } else {
        assert!(!bytes.is_empty());
        let content_length = content_length.expect("a rejection without Content-Length");
        assert_eq!(content_length, bytes.len().to_string().as_str());
    }
});
