//! Squid helpers through the layer, in one run:
//!
//! - `accept, StaticUsers` against `accept, cached Squid helper`: a client whose credentials
//!   the helper (`basic_ncsa_auth` over a bcrypt file) accepted once, answered from the cache
//!   (target: at least 0.9× the throughput of `StaticUsers`, i.e. at most 1.11× its time);
//! - `uncached checks, 4 × basic_ncsa_auth (apr1)`: 64 distinct users checked at once with no
//!   cache, each by one of 4 children over a file made by `htpasswd -m`; criterion reports
//!   the checks per second.
//!
//! Needs Debian's `squid` (the helpers) and `apache2-utils` (`htpasswd`).
//!
//! ```text
//! cargo bench --bench squid_helper
//! ```

use std::ffi::OsStr;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use http::header::PROXY_AUTHORIZATION;
use http::{HeaderValue, Request};
use tower::{Layer, Service, ServiceExt};
use tower_proxy_auth::store::squid_helper::SquidHelper;
use tower_proxy_auth::{BasicCredentials, ProxyAuthLayer, StaticUsers};

mod support;

use support::{inner, now, Body};

/// `basic_ncsa_auth` from Debian's `squid` package: on PATH or in /usr/lib/squid.
fn basic_ncsa_auth() -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain([PathBuf::from("/usr/lib/squid")])
        .map(|dir| dir.join("basic_ncsa_auth"))
        .find(|path| path.is_file())
        .expect("basic_ncsa_auth not found: apt-get install -y squid")
}

/// A password file made by `htpasswd` with `flag` for `users`.
fn password_file(dir: &Path, flag: &str, users: &[(String, String)]) -> PathBuf {
    let file = dir.join(format!("passwd{flag}"));
    for (i, (user, password)) in users.iter().enumerate() {
        let mut command = std::process::Command::new("htpasswd");
        command.arg("-b").arg(flag);
        if i == 0 {
            command.arg("-c");
        }
        let status = command
            .args([file.as_os_str(), OsStr::new(user), OsStr::new(password)])
            .stderr(std::process::Stdio::null())
            .status()
            .expect("htpasswd: apt-get install -y apache2-utils");
        assert!(status.success(), "htpasswd failed");
    }
    file
}

fn header(user: &str, password: &str) -> HeaderValue {
    HeaderValue::from_str(
        &BasicCredentials::new(user, password)
            .expect("creds")
            .encode(),
    )
    .expect("header")
}

fn request(value: &HeaderValue) -> Request<Body> {
    Request::builder()
        .uri("http://origin.example/index.html")
        .header("host", "origin.example")
        .header("user-agent", "curl/8.0")
        .header(PROXY_AUTHORIZATION, value.clone())
        .body(Body::new())
        .expect("request")
}

fn cached_accept(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let users = [("alice".to_owned(), "s3cret".to_owned())];
    let file = password_file(dir.path(), "-B", &users);
    let good = header("alice", "s3cret");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let helper = runtime.block_on(async {
        SquidHelper::new(basic_ncsa_auth())
            .arg(&file)
            .children(1)
            .credentials_ttl(Duration::from_secs(3600))
            .basic()
            .expect("helper")
    });
    let mut with_helper = ProxyAuthLayer::new(helper.clone()).layer(inner());
    // The first check goes to the helper; every later one is a cache hit, ready at once.
    let status = runtime.block_on(async {
        let response = with_helper.ready().await.expect("ready");
        response.call(request(&good)).await.expect("call").status()
    });
    assert_eq!(status, 200, "basic_ncsa_auth accepts alice");

    let mut with_static =
        ProxyAuthLayer::new(StaticUsers::new().with_user("alice", "s3cret")).layer(inner());
    now(with_static.ready()).expect("ready");

    alternating(&mut with_static, &mut with_helper, &good);

    let mut group = c.benchmark_group("accept");
    group.bench_function("StaticUsers", |b| {
        b.iter_batched(
            || request(&good),
            |req| black_box(now(with_static.call(req))),
            BatchSize::SmallInput,
        )
    });
    group.bench_function("cached Squid helper", |b| {
        b.iter_batched(
            || request(&good),
            |req| black_box(now(with_helper.call(req))),
            BatchSize::SmallInput,
        )
    });
    group.finish();
    assert!(helper.stats().hits > 0);
    drop(with_helper);
    drop(helper);
    drop(runtime);
}

/// The two accept paths timed in alternating rounds of 20,000 requests each, 60 rounds: the
/// median and the fastest round's time per request of each, and their ratios, robust against
/// a machine whose load drifts during the run (criterion times one after the other).
fn alternating<A, B>(a: &mut A, b: &mut B, good: &HeaderValue)
where
    A: Service<Request<Body>>,
    B: Service<Request<Body>>,
{
    // `ALTERNATING_ROUNDS=1` for a run under callgrind (instruction counts per request).
    let rounds: usize = std::env::var("ALTERNATING_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(60);
    const PER_ROUND: u32 = 20_000;
    let round = |service: &mut dyn FnMut(Request<Body>)| {
        let requests: Vec<Request<Body>> = (0..PER_ROUND).map(|_| request(good)).collect();
        let started = std::time::Instant::now();
        for req in requests {
            service(req);
        }
        started.elapsed().as_nanos() as f64 / f64::from(PER_ROUND)
    };
    let (mut times_a, mut times_b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        times_a.push(round(&mut |req| drop(black_box(now(a.call(req))))));
        times_b.push(round(&mut |req| drop(black_box(now(b.call(req))))));
    }
    times_a.sort_by(f64::total_cmp);
    times_b.sort_by(f64::total_cmp);
    let (median_a, median_b) = (times_a[rounds / 2], times_b[rounds / 2]);
    let (min_a, min_b) = (times_a[0], times_b[0]);
    println!(
        "alternating rounds ({rounds} × {PER_ROUND} requests each): StaticUsers accept \
         {median_a:.0} ns median / {min_a:.0} ns fastest round, cached Squid helper accept \
         {median_b:.0} / {min_b:.0} ns; helper throughput = {:.3}× StaticUsers (medians), \
         {:.3}× (fastest rounds)",
        median_a / median_b,
        min_a / min_b
    );
}

fn uncached_checks(c: &mut Criterion) {
    const AT_ONCE: usize = 64;
    let dir = tempfile::tempdir().expect("tempdir");
    let users: Vec<(String, String)> = (0..AT_ONCE)
        .map(|i| (format!("user{i}"), format!("password {i}")))
        .collect();
    let file = password_file(dir.path(), "-m", &users);
    let headers: Vec<HeaderValue> = users.iter().map(|(u, p)| header(u, p)).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let helper = runtime.block_on(async {
        SquidHelper::new(basic_ncsa_auth())
            .arg(&file)
            .children(4)
            .queue(AT_ONCE)
            .credentials_ttl(Duration::ZERO)
            .basic()
            .expect("helper")
    });
    // The inner service of `support`, with a future known to be `Send` (the checks run on
    // tasks).
    let answer = tower::service_fn(|_req: Request<Body>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Body::new()))
    });
    let service = ProxyAuthLayer::new(helper.clone()).layer(answer);
    let round = || {
        let service = service.clone();
        let headers = headers.clone();
        async move {
            let mut checks = tokio::task::JoinSet::new();
            for value in headers {
                let service = service.clone();
                checks.spawn(async move { service.oneshot(request(&value)).await });
            }
            while let Some(done) = checks.join_next().await {
                let response = done.expect("task").expect("call");
                assert_eq!(response.status(), 200);
            }
        }
    };
    runtime.block_on(round());

    let mut group = c.benchmark_group("uncached checks");
    group.throughput(Throughput::Elements(AT_ONCE as u64));
    group.sample_size(20);
    group.bench_function("4 × basic_ncsa_auth (apr1)", |b| {
        b.to_async(&runtime).iter(round)
    });
    group.finish();
    assert_eq!(helper.stats().hits, 0);
}

criterion_group!(benches, cached_accept, uncached_checks);
criterion_main!(benches);
