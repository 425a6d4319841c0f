//! What the htpasswd validator costs once warm, and what loading a big file costs.
//!
//! - `accept_steady_state`: the same accepted request through `ProxyAuthLayer` and a trivial
//!   inner service, once with `StaticUsers` and once with `Htpasswd` holding one bcrypt cost-10
//!   user whose credentials are already in the cache (the steady state of a proxy: a client
//!   sends the same credentials on every request). A cache hit is answered without the blocking
//!   pool, so both futures complete on their first poll and no runtime is timed.
//! - `load_100k`: `Htpasswd::open` of a 100,000-user file (read, parse, shape checks, table),
//!   with unique `{SHA}` entries, and with bcrypt entries (one cost-10 hash text repeated, since
//!   loading checks a hash's shape and never computes it).
//!
//! ```text
//! cargo bench --bench htpasswd
//! ```

use std::hint::black_box;
use std::io::Write as _;
use std::time::Duration;

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http::header::PROXY_AUTHORIZATION;
use http::{HeaderValue, Request};
use sha1::Digest as _;
use tower::{Layer, Service, ServiceExt};
use tower_proxy_auth::Htpasswd;
use tower_proxy_auth::{BasicCredentials, ProxyAuthLayer, StaticUsers, Validator};

mod support;

use support::{inner, now, Body};

fn request(auth: &HeaderValue) -> Request<Body> {
    Request::builder()
        .uri("http://origin.example/index.html")
        .header("host", "origin.example")
        .header("user-agent", "curl/8.0")
        .header(PROXY_AUTHORIZATION, auth.clone())
        .body(Body::new())
        .expect("request")
}

fn accept<V: Validator>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    validator: V,
    auth: &HeaderValue,
) {
    let mut service = ProxyAuthLayer::new(validator).layer(inner());
    now(service.ready()).expect("ready");
    assert_eq!(
        now(service.call(request(auth))).expect("call").status(),
        200,
        "{name}"
    );
    c.bench_function(name, |b| {
        b.iter_batched(
            || request(auth),
            |req| black_box(now(service.call(req))),
            BatchSize::SmallInput,
        )
    });
}

fn accept_steady_state(c: &mut Criterion) {
    let credentials = BasicCredentials::new("alice", "correct horse").expect("credentials");
    let auth = HeaderValue::from_str(&credentials.encode()).expect("header");
    let hash = bcrypt::hash("correct horse", 10).expect("bcrypt");
    let htpasswd = Htpasswd::builder()
        .watch(false)
        .from_contents("bench.htpasswd", format!("alice:{hash}\n"))
        .expect("htpasswd");
    // Warm the cache: the first check runs bcrypt on the blocking pool.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let service = ProxyAuthLayer::new(htpasswd.clone()).layer(inner());
        let response = service.oneshot(request(&auth)).await.expect("call");
        assert_eq!(response.status(), 200);
    });
    assert_eq!(htpasswd.stats().verifications, 1);

    let mut group = c.benchmark_group("accept_steady_state");
    accept(
        &mut group,
        "static_users",
        StaticUsers::new().with_user("alice", "correct horse"),
        &auth,
    );
    accept(
        &mut group,
        "htpasswd_bcrypt10_cached",
        htpasswd.clone(),
        &auth,
    );
    group.finish();
    assert_eq!(
        htpasswd.stats().verifications,
        1,
        "every timed request was a cache hit"
    );
}

const USERS: usize = 100_000;

fn sha_file() -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    let mut out = std::io::BufWriter::new(file.as_file_mut());
    for i in 0..USERS {
        let digest = sha1::Sha1::digest(format!("password-{i}").as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        writeln!(out, "user-{i:06}:{{SHA}}{b64}").expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    file
}

fn bcrypt_file() -> tempfile::NamedTempFile {
    let hash = bcrypt::hash("password", 10).expect("bcrypt");
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    let mut out = std::io::BufWriter::new(file.as_file_mut());
    for i in 0..USERS {
        writeln!(out, "user-{i:06}:{hash}").expect("write");
    }
    out.flush().expect("flush");
    drop(out);
    file
}

fn load_100k(c: &mut Criterion) {
    let mut group = c.benchmark_group("load_100k");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(10));
    for (name, file) in [("sha1", sha_file()), ("bcrypt10", bcrypt_file())] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let users = Htpasswd::builder()
                    .watch(false)
                    .open(file.path())
                    .expect("load");
                assert_eq!(users.len(), USERS);
                black_box(users)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, accept_steady_state, load_100k);
criterion_main!(benches);
