//! The layer's cost per request, next to a bare service and tower-http's Basic check.
//!
//! Every variant drives the same trivial inner service with one request built outside the
//! timed part; the futures complete on their first poll, so no runtime is involved. The
//! response is dropped inside the timed part, as a server drops each response once written:
//! criterion's `iter_batched` would otherwise keep a whole batch of them alive, and a response
//! that owns heap (Digest's `Proxy-Authentication-Info` and the header map made for it) would
//! then be timed allocating fresh memory, a cost no server pays.
//!
//! ```text
//! cargo bench --bench layer
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::header::{AUTHORIZATION, PROXY_AUTHORIZATION};
use http::{HeaderValue, Request, Response};
use tower::{Layer, Service, ServiceExt};
use tower_http::validate_request::ValidateRequestHeaderLayer;
use tower_proxy_auth::scheme::digest::{Algorithm, Digest};
use tower_proxy_auth::{
    BasicCredentials, ClientAddr, FailureThrottle, ProxyAuthLayer, StaticUsers,
};

#[path = "../tests/support/digest_client.rs"]
#[allow(dead_code)]
mod digest_client;
mod support;

use digest_client::DigestAnswer;

use support::{inner, now, Body};

fn request(header: Option<(http::HeaderName, &HeaderValue)>) -> Request<Body> {
    request_to("http://origin.example/index.html", header)
}

fn request_to(uri: &str, header: Option<(http::HeaderName, &HeaderValue)>) -> Request<Body> {
    let mut request = Request::builder()
        .uri(uri)
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
    bench_with(c, name, service, || request(header.clone()), want);
}

/// Like [`bench`], with each request made (outside the timed part) by `make`.
fn bench_with<S>(
    c: &mut Criterion,
    name: &str,
    service: S,
    mut make: impl FnMut() -> Request<Body>,
    want: u16,
) where
    S: Service<Request<Body>> + Clone,
    S::Response: HasStatus,
    S::Error: std::fmt::Debug,
{
    let mut service = service;
    now(service.ready()).expect("ready");
    let status = now(service.call(make())).expect("call").status();
    assert_eq!(status, want, "{name}: unexpected status");
    c.bench_function(name, |b| {
        b.iter_batched(
            &mut make,
            // Dropped in the timed part (see the module docs).
            |req| drop(black_box(now(service.call(req)))),
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
    throttled(c, &one, &good, &wrong);
    digest(c, &good);
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

/// A request from `addr` (the `ClientAddr` a server inserts).
fn from_addr(addr: [u8; 4], header: (http::HeaderName, &HeaderValue)) -> Request<Body> {
    let mut request = request(Some(header));
    let addr = std::net::SocketAddr::from((addr, 40_000));
    request.extensions_mut().insert(ClientAddr(addr));
    request
}

/// The throttle's cost on the accept path, requests carrying a client address: off, on, and on
/// with 1,000 (user, address) keys holding failures.
fn throttled(c: &mut Criterion, users: &StaticUsers, good: &HeaderValue, wrong: &HeaderValue) {
    let good = || from_addr([192, 0, 2, 1], (PROXY_AUTHORIZATION, good));
    bench_with(
        c,
        "throttle off, accept from an address",
        ProxyAuthLayer::new(users.clone()).layer(inner()),
        good,
        200,
    );
    bench_with(
        c,
        "throttle on, accept from an address",
        ProxyAuthLayer::builder(users.clone())
            .throttle(FailureThrottle::default())
            .build()
            .expect("layer")
            .layer(inner()),
        good,
        200,
    );
    let mut service = ProxyAuthLayer::builder(users.clone())
        .throttle(FailureThrottle::default())
        .build()
        .expect("layer")
        .layer(inner());
    for i in 0..1_000u32 {
        let [_, _, hi, lo] = i.to_be_bytes();
        now(service.ready()).expect("ready");
        let answer = now(service.call(from_addr([10, 1, hi, lo], (PROXY_AUTHORIZATION, wrong))));
        assert_eq!(answer.expect("call").status(), 407);
    }
    bench_with(
        c,
        "throttle on, 1000 failing keys, accept from an address",
        service,
        good,
        200,
    );
}

/// Digest (SHA-256) accept: parameter parsing, nonce check, replay store, response compare; each
/// request with the next `nc` (computed outside the timed part), against Basic in the same run.
fn digest(c: &mut Criterion, basic: &HeaderValue) {
    let users = || StaticUsers::with_realm("proxy").with_user("alice", "s3cret");
    bench(
        c,
        "Basic accept (realm proxy), for Digest",
        ProxyAuthLayer::builder(users())
            .realm("proxy")
            .build()
            .expect("layer")
            .layer(inner()),
        Some((PROXY_AUTHORIZATION, basic)),
        200,
    );
    digest_accept(c, "Digest SHA-256 accept", None, None);
    digest_paired(c, basic);
    // The throttle's counted way (a Digest response never repeats, so it has no fast path):
    // each attempt's place among those in flight, taken and given up under the gate.
    digest_accept(
        c,
        "Digest SHA-256 + throttle, accept from an address",
        Some(FailureThrottle::default()),
        Some([192, 0, 2, 1]),
    );
}

/// Digest SHA-256 accepts through a layer with `throttle`, from `addr` (no `ClientAddr` when
/// `None`), each request with the next `nc` (computed outside the timed part).
fn digest_accept(
    c: &mut Criterion,
    name: &str,
    throttle: Option<FailureThrottle>,
    addr: Option<[u8; 4]>,
) {
    let (service, make) = digest_layer(throttle, addr);
    bench_with(c, name, service, make, 200);
}

/// A Digest SHA-256 layer with `throttle` over the inner service, and what makes its requests:
/// from `addr` (no `ClientAddr` when `None`), each with the next `nc`.
fn digest_layer(
    throttle: Option<FailureThrottle>,
    addr: Option<[u8; 4]>,
) -> (
    impl Service<Request<Body>, Response: HasStatus, Error: std::fmt::Debug> + Clone,
    impl FnMut() -> Request<Body>,
) {
    let users = StaticUsers::with_realm("proxy").with_user("alice", "s3cret");
    let mut builder =
        ProxyAuthLayer::offering(Digest::new().algorithms([Algorithm::Sha256]), users)
            .realm("proxy");
    if let Some(throttle) = throttle {
        builder = builder.throttle(throttle);
    }
    let mut service = builder.build().expect("layer").layer(inner());
    now(service.ready()).expect("ready");
    let rejected = now(service.call(request(None))).expect("call");
    let challenge = rejected
        .headers()
        .get_all(http::header::PROXY_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("Digest"))
        .expect("a Digest challenge")
        .to_owned();
    let mut nc = 0;
    let make = move || {
        nc += 1;
        let answer = DigestAnswer {
            user: "alice",
            password: "s3cret",
            method: "GET",
            uri: "/index.html",
            nc,
            cnonce: "0a4f113b",
        };
        let value = HeaderValue::from_str(&answer.credentials(&challenge).0).expect("header");
        match addr {
            Some(addr) => from_addr(addr, (PROXY_AUTHORIZATION, &value)),
            None => request(Some((PROXY_AUTHORIZATION, &value))),
        }
    };
    (service, make)
}

/// The Digest bound measured in pairs. Two benches measured seconds apart carry the machine's
/// drift into their ratio (on the VM of BENCHMARKS.md the same Basic bench moved between 0.5
/// and 0.95 µs within an hour), so here each sample times its Digest accepts and as many Basic
/// accepts in alternating batches of 64, so that both see the same moment of the machine.
/// Criterion reports the Digest time; the median and quartiles of the samples' Digest/Basic
/// ratios are printed after it.
fn digest_paired(c: &mut Criterion, basic: &HeaderValue) {
    const BATCH: u64 = 64;
    let users = StaticUsers::with_realm("proxy").with_user("alice", "s3cret");
    let mut basic_service = ProxyAuthLayer::builder(users)
        .realm("proxy")
        .build()
        .expect("layer")
        .layer(inner());
    now(basic_service.ready()).expect("ready");
    let (mut digest_service, mut make_digest) = digest_layer(None, None);
    let mut ratios = Vec::new();
    c.bench_function("Digest SHA-256 accept, paired with Basic", |b| {
        b.iter_custom(|iters| {
            let (mut basic_time, mut digest_time) = (Duration::ZERO, Duration::ZERO);
            let mut left = iters;
            while left > 0 {
                let n = left.min(BATCH);
                let basics: Vec<_> = (0..n)
                    .map(|_| request(Some((PROXY_AUTHORIZATION, basic))))
                    .collect();
                let digests: Vec<_> = (0..n).map(|_| make_digest()).collect();
                basic_time += accept_all(&mut basic_service, basics);
                digest_time += accept_all(&mut digest_service, digests);
                left -= n;
            }
            ratios.push(digest_time.as_secs_f64() / basic_time.as_secs_f64());
            digest_time
        })
    });
    // The samples are the last calls (the warm-up's come first).
    let mut samples = ratios.split_off(ratios.len().saturating_sub(100));
    samples.sort_by(f64::total_cmp);
    if let Some(&median) = samples.get(samples.len() / 2) {
        println!(
            "Digest SHA-256 accept / Basic accept, paired: median {median:.2}x \
             (quartiles {:.2}x-{:.2}x, {} samples)",
            samples[samples.len() / 4],
            samples[samples.len() * 3 / 4],
            samples.len()
        );
    }
}

/// How long `service` takes to accept `requests` one after another, each response dropped in
/// the timed part (see the module docs).
fn accept_all<S>(service: &mut S, requests: Vec<Request<Body>>) -> Duration
where
    S: Service<Request<Body>, Response: HasStatus, Error: std::fmt::Debug>,
{
    let start = Instant::now();
    for req in requests {
        let response = now(service.call(req)).expect("call");
        assert_eq!(response.status(), 200);
        drop(black_box(response));
    }
    start.elapsed()
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
