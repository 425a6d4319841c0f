//! Arbitrary Digest credentials through a layer offering Digest (every algorithm) and Basic
//! with `StaticUsers`, polled once with a no-op waker (`StaticUsers` and the in-memory replay
//! store answer at once).
//!
//! Input: the first byte picks the method (GET, CONNECT, POST) and whether the value is sent
//! after `Digest ` or as it is; the rest is the value. With a valid nonce missing (the fuzzer
//! cannot forge the HMAC), no input may be accepted.
//!
//! Asserts: the future is ready at once and nothing panics; the status is 400 or 407 (never
//! 200); a 407 carries one `Proxy-Authenticate` line per offered algorithm plus Basic's; a 400
//! carries none; every rejection's `Content-Length` is its body's length.

#![no_main]

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_LENGTH, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use http::{Method, Request, Response};
use http_body::Body as _;
use http_body_util::Full;
use libfuzzer_sys::fuzz_target;
use tower_layer::Layer as _;
use tower_proxy_auth::scheme::digest::{Algorithm, Digest};
use tower_proxy_auth::scheme::Basic;
use tower_proxy_auth::{ProxyAuthLayer, StaticUsers};
use tower_service::Service;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let method = [Method::GET, Method::CONNECT, Method::POST][usize::from(first % 3)].clone();
    let mut value = if first & 0x80 == 0 { b"Digest ".to_vec() } else { Vec::new() };
    value.extend_from_slice(rest);
    let Ok(value) = HeaderValue::from_bytes(&value) else {
        return;
    };
    let users = || StaticUsers::with_realm("proxy").with_user("Mufasa", "Circle of Life");
    let layer = ProxyAuthLayer::offering(Digest::new().algorithms(Algorithm::ALL), users())
        .offer(Basic::new(), users())
        .build()
        .expect("layer");
    let inner = tower::service_fn(|_req: Request<()>| {
        std::future::ready(Ok::<_, Infallible>(Response::new(Full::new(Bytes::new()))))
    });
    let mut service = layer.layer(inner);
    let target = if method == Method::CONNECT { "origin.test:443" } else { "http://origin.test/x" };
    let mut request = Request::builder().method(method).uri(target).body(()).expect("request");
    request.headers_mut().insert(PROXY_AUTHORIZATION, value);
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(Ok(response)) = pin!(service.call(request)).poll(&mut cx) else {
        panic!("not ready at once");
    };
    let status = response.status().as_u16();
    assert!(status == 400 || status == 407, "status {status}");
    let challenges = response.headers().get_all(PROXY_AUTHENTICATE).iter().count();
    assert_eq!(challenges, if status == 407 { Algorithm::ALL.len() + 1 } else { 0 });
    let length: u64 = response.headers()[CONTENT_LENGTH].to_str().unwrap().parse().unwrap();
    assert_eq!(Some(length), response.body().size_hint().exact());
});
