//! The validator combinators through the layer in a real server: a `tower::Service` as a
//! validator with tower's timeout, concurrency limit and load shedding; `Cached` in front of a
//! slow remote check; `Blocking` for a synchronous slow one.

mod support;

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use tower::ServiceBuilder;
use tower_proxy_auth::validator::{from_async_fn, from_service, Cached, Check};
#[cfg(feature = "blocking")]
use tower_proxy_auth::validator::{from_fn, Blocking, BlockingPool};
use tower_proxy_auth::{BasicCredentials, Decision, Identity, ProxyAuthLayer, Validator};

use support::{request_head, serve, RawConn};

async fn serve_validator(validator: impl Validator) -> std::net::SocketAddr {
    let layer = ProxyAuthLayer::new(validator);
    serve(
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|req: http::Request<_>| {
                let user = req
                    .extensions()
                    .get::<Identity>()
                    .map(|i| i.user().to_owned());
                async move { Ok::<_, Infallible>(http::Response::new(user.unwrap_or_default())) }
            }),
    )
    .await
}

async fn status(addr: std::net::SocketAddr, user: &str, password: &str) -> u16 {
    let creds = BasicCredentials::new(user, password).unwrap().encode();
    let mut conn = RawConn::connect(addr).await;
    conn.send(request_head(
        "GET",
        "http://origin.test/",
        &[("Host", "origin.test"), ("Proxy-Authorization", &creds)],
    ))
    .await;
    conn.read_response().await.status
}

#[tokio::test]
async fn a_tower_service_with_timeout_concurrency_limit_and_load_shedding() {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (running2, peak2) = (running.clone(), peak.clone());
    let store = ServiceBuilder::new()
        .load_shed()
        .concurrency_limit(2)
        .timeout(Duration::from_millis(500))
        .service_fn(move |check: Check| {
            let (running, peak) = (running2.clone(), peak2.clone());
            async move {
                /// Counts a running check until it ends or is dropped (by the timeout).
                struct Running(Arc<AtomicUsize>);
                impl Drop for Running {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                let _running = Running(running);
                peak.fetch_max(now, Ordering::SeqCst);
                let delay = match check.credentials.user_id() {
                    "slow" => 2_000,
                    _ => 200,
                };
                tokio::time::sleep(Duration::from_millis(delay)).await;
                Ok::<_, Infallible>(if check.credentials.password() == b"right" {
                    Decision::Allow(Identity::new(check.credentials.user_id()))
                } else {
                    Decision::Reject
                })
            }
        });
    let addr = serve_validator(from_service(store)).await;
    assert_eq!(status(addr, "alice", "right").await, 200);
    assert_eq!(status(addr, "alice", "wrong").await, 407);
    // Past the timeout: 503, never allowed.
    assert_eq!(status(addr, "slow", "right").await, 503);

    // Ten at once against a limit of two: two are checked, the rest are shed with 503.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..10 {
        set.spawn(async move { status(addr, &format!("user{i}"), "right").await });
    }
    let mut statuses = Vec::new();
    while let Some(s) = set.join_next().await {
        statuses.push(s.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 503).count(),
        8,
        "{statuses:?}"
    );
    assert!(peak.load(Ordering::SeqCst) <= 2);
}

#[tokio::test]
async fn cached_answers_repeated_credentials_without_asking_again() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let remote = from_async_fn(move |creds: BasicCredentials, _: &Parts| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if creds.password() == b"s3cret" {
                Decision::Allow(Identity::new(creds.user_id()))
            } else {
                Decision::Reject
            }
        }
    });
    let cached = Cached::new(remote).negative_ttl(Duration::from_millis(300));
    let addr = serve_validator(cached.clone()).await;

    // Eight at once with the same credentials: one remote check.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        set.spawn(async move { status(addr, "alice", "s3cret").await });
    }
    while let Some(s) = set.join_next().await {
        assert_eq!(s.unwrap(), 200);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    for _ in 0..5 {
        assert_eq!(status(addr, "alice", "s3cret").await, 200);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // A wrong password is remembered for the negative TTL only.
    assert_eq!(status(addr, "alice", "typo").await, 407);
    assert_eq!(status(addr, "alice", "typo").await, 407);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(status(addr, "alice", "typo").await, 407);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let stats = cached.stats();
    assert_eq!(stats.hits + stats.coalesced, 5 + 7 + 1, "{stats:?}");
}

#[cfg(feature = "blocking")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_runs_a_slow_synchronous_check_off_the_runtime_and_sheds_past_its_queue() {
    let slow = from_fn(|creds: &BasicCredentials, _: &Parts| {
        std::thread::sleep(Duration::from_millis(300));
        if creds.password() == b"pw" {
            Decision::Allow(Identity::new(creds.user_id()))
        } else {
            Decision::Reject
        }
    });
    let pool = BlockingPool::new(1, 1);
    let addr = serve_validator(Blocking::new(slow, pool.clone())).await;
    // While checks run, the runtime's workers still answer requests without credentials.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..4 {
        set.spawn(async move { status(addr, &format!("u{i}"), "pw").await });
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    let mut conn = RawConn::connect(addr).await;
    conn.send(request_head(
        "GET",
        "http://origin.test/",
        &[("Host", "origin.test")],
    ))
    .await;
    assert_eq!(conn.read_response().await.status, 407);
    assert!(started.elapsed() < Duration::from_millis(250));
    let mut statuses = Vec::new();
    while let Some(s) = set.join_next().await {
        statuses.push(s.unwrap());
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 200, 503, 503],
        "one running, one waiting, two shed"
    );
    assert_eq!((pool.started(), pool.shed()), (2, 2));
}
