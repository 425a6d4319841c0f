//! The layer's cost per request, next to a bare service and tower-http's Basic check.
//!
//! Every variant drives the same trivial inner service with one request built outside the
//! timed part; the futures complete on their first poll, so no runtime is involved.
//!
//! ```text
//! cargo bench --bench layer
//! ```

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::header::{AUTHORIZATION, PROXY_AUTHORIZATION};
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service, ServiceExt};
use tower_http::validate_request::ValidateRequestHeaderLayer;
use tower_proxy_auth::{BasicCredentials, FailureThrottle, ProxyAuthLayer, StaticUsers};

mod support;

use support::{inner, now, Body};

fn request(header: Option<(http::HeaderName, &HeaderValue)>) -> Request<Body> {
    let mut request = Request::builder()
        .uri("http://origin.example/index.html")
        .header("host", "origin.example")
        .header("user-agent", "curl/8.0")
        .header("accept", "*/*");
    if let Some((name, value)) = header {
        request = request.header(name, value.clone());
    }
    request.body(Body::new()).expect("request")
}

fn bench<S>(
    c: &mut Criterion,
    name: &str,
    service: S,
    header: Option<(http::HeaderName, &HeaderValue)>,
    want: u16,
) where
    S: Service<Request<Body>> + Clone,
    S::Response: HasStatus,
    S::Error: std::fmt::Debug,
{
    let mut service = service;
    now(service.ready()).expect("ready");
    let status = now(service.call(request(header.clone())))
        .expect("call")
        .status();
    assert_eq!(status, want, "{name}: unexpected status");
    c.bench_function(name, |b| {
        b.iter_batched(
            || request(header.clone()),
            |req| black_box(now(service.call(req))),
            BatchSize::SmallInput,
        )
    });
}

trait HasStatus {
    fn status(&self) -> u16;
}

impl<B> HasStatus for Response<B> {
    fn status(&self) -> u16 {
        Response::status(self).as_u16()
    }
}

fn layer(c: &mut Criterion) {
    let good = HeaderValue::from_str(
        &BasicCredentials::new("alice", "s3cret")
            .expect("creds")
            .encode(),
    )
    .expect("header");
    let wrong = HeaderValue::from_str(
        &BasicCredentials::new("alice", "wrong")
            .expect("creds")
            .encode(),
    )
    .expect("header");

    let unknown = HeaderValue::from_str(
        &BasicCredentials::new("carol", "wrong")
            .expect("creds")
            .encode(),
    )
    .expect("header");

    let one = StaticUsers::new().with_user("alice", "s3cret");
    let many: StaticUsers = (0..9_999)
        .map(|i| (format!("user{i}"), format!("password{i}")))
        .chain([("alice".to_owned(), "s3cret".to_owned())])
        .collect();

    bench(c, "bare inner service", inner(), None, 200);
    #[allow(deprecated)]
    let tower_http_basic = ValidateRequestHeaderLayer::basic("alice", "s3cret").layer(inner());
    bench(
        c,
        "tower-http basic, accept",
        tower_http_basic,
        Some((AUTHORIZATION, &good)),
        200,
    );
    bench(
        c,
        "proxy-auth 1 user, accept",
        ProxyAuthLayer::new(one.clone()).layer(inner()),
        Some((PROXY_AUTHORIZATION, &good)),
        200,
    );
    bench(
        c,
        "proxy-auth 1 user + throttle, accept",
        ProxyAuthLayer::builder(one.clone())
            .throttle(FailureThrottle::default())
            .build()
            .expect("layer")
            .layer(inner()),
        Some((PROXY_AUTHORIZATION, &good)),
        200,
    );
    bench(
        c,
        "proxy-auth 10000 users, accept",
        ProxyAuthLayer::new(many).layer(inner()),
        Some((PROXY_AUTHORIZATION, &good)),
        200,
    );
    bench(
        c,
        "proxy-auth reject, no credentials",
        ProxyAuthLayer::new(one.clone()).layer(inner()),
        None,
        407,
    );
    bench(
        c,
        "proxy-auth reject, wrong password",
        ProxyAuthLayer::new(one.clone()).layer(inner()),
        Some((PROXY_AUTHORIZATION, &wrong)),
        407,
    );
    // Same length as alice:wrong, so only existence differs.
    bench(
        c,
        "proxy-auth reject, unknown user",
        ProxyAuthLayer::new(one).layer(inner()),
        Some((PROXY_AUTHORIZATION, &unknown)),
        407,
    );
}

/// The parts of the accept path on their own: parsing the field, checking the password.
fn parts(c: &mut Criterion) {
    let good = BasicCredentials::new("alice", "s3cret")
        .expect("creds")
        .encode();
    c.bench_function("part: parse Basic credentials", |b| {
        b.iter(|| BasicCredentials::parse(black_box(good.as_bytes())))
    });
    let users = StaticUsers::new().with_user("alice", "s3cret");
    c.bench_function("part: StaticUsers::check", |b| {
        b.iter(|| {
            users
                .check(black_box("alice"), black_box(b"s3cret"))
                .is_some()
        })
    });
}

criterion_group!(benches, layer, parts);
criterion_main!(benches);
