//! Several instances as one on a real Redis (cargo feature `redis`): each test starts its own
//! `redis-server` (tests/support/redis_server.rs: a free loopback port, persistence off,
//! stopped by PID) and real layers served on 127.0.0.1, each instance with a connection of its
//! own, as separate processes would have, sharing one Redis and one key.
//!
//! The cases of issue 13: a nonce issued by A is accepted by B, the same (nonce, nc) is then
//! refused by C and nc + 1 accepted; wrong passwords spread over A, B and C reach the limit as
//! if sent to one; a user limited on A is limited on B at once; Redis stopped, paused, full
//! and restarted on the same port, with the documented answers and no request waiting beyond
//! the timeout.

mod support;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower::ServiceBuilder;
use tower_proxy_auth::scheme::digest::{
    Algorithm, Digest, MemoryReplayStore, NonceId, NonceKey, ReplayStore, ReplayVerdict,
};
use tower_proxy_auth::scheme::Basic;
use tower_proxy_auth::shared::redis::{RedisSetupError, RedisStores};
use tower_proxy_auth::validator::from_fn;
use tower_proxy_auth::{
    ClientAddr, Decision, FailureThrottle, Identity, ProxyAuthLayer, StaticUsers,
};

use support::redis_server::RedisServer;
use support::{answered_within, basic, digest_refused, digest_stale, proxy_get};
use support::{serve, DigestAnswer};
use support::{LogLines, RawResponse};

const REALM: &str = "proxy";
/// The key file every instance reads: the nonce key and the throttle's key come from it.
const KEY: &[u8] = b"one key file shared by every instance of the fleet";
const PREFIX: &str = "fleet";
const URL: &str = "http://origin.test/";
const ALICE: &str = "alice's password";
const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// The most a request may take while Redis fails: the timeout, and room for a loaded machine
/// (far below the 2 s connect timeout the tests set, so a request waiting for a connection
/// attempt would fail it).
const BOUND: Duration = Duration::from_millis(700);

fn users() -> StaticUsers {
    StaticUsers::with_realm(REALM)
        .with_user("alice", ALICE)
        .with_user("bob", "bob's password")
}

async fn stores(redis: &RedisServer) -> RedisStores {
    RedisStores::builder(redis.url())
        .prefix(PREFIX)
        .timeout(REDIS_TIMEOUT)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .expect("connect to the test's redis-server")
}

/// 3 failures per (user, address) in 60 s; the client address from `X-Test-Client-Addr` when
/// a test plays several addresses, else the TCP peer.
fn throttle() -> FailureThrottle {
    throttle_of(3)
}

/// As [`throttle`], with `max_failures` per (user, address).
fn throttle_of(max_failures: u32) -> FailureThrottle {
    FailureThrottle::new(max_failures, Duration::from_secs(60)).client_addr_from(|parts| {
        parts
            .headers
            .get("x-test-client-addr")
            .and_then(|v| v.to_str().ok()?.parse::<IpAddr>().ok())
            .or_else(|| parts.extensions.get::<ClientAddr>().map(|a| a.0.ip()))
    })
}

/// `throttle` counting on `stores`, its hashes keyed by the shared key file.
fn shared(throttle: FailureThrottle, stores: &RedisStores) -> FailureThrottle {
    let window = throttle.window();
    throttle
        .store(stores.throttle_store(window))
        .key_material(KEY)
        .expect("key material")
}

async fn serve_layer(layer: ProxyAuthLayer) -> SocketAddr {
    serve(
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|_req| async { Ok::<_, Infallible>(http::Response::new(String::new())) }),
    )
    .await
}

/// One instance on `stores`: Digest (SHA-256) then Basic for `users()`, the nonce key from the
/// key file, nonce counts and failure counts on Redis.
async fn instance_on(stores: &RedisStores, throttle: FailureThrottle) -> SocketAddr {
    let digest = Digest::new()
        .algorithms([Algorithm::Sha256])
        .nonce_key(NonceKey::from_bytes(KEY).unwrap())
        .replay_store(stores.replay_store(REALM));
    let layer = ProxyAuthLayer::offering(digest, users())
        .offer(Basic::new(), users())
        .realm(REALM)
        .throttle(shared(throttle, stores))
        .build()
        .unwrap();
    serve_layer(layer).await
}

/// The same instance with everything in its own memory (the baseline of one instance).
async fn memory_instance(throttle: FailureThrottle) -> SocketAddr {
    let digest = Digest::new()
        .algorithms([Algorithm::Sha256])
        .nonce_key(NonceKey::from_bytes(KEY).unwrap());
    let layer = ProxyAuthLayer::offering(digest, users())
        .offer(Basic::new(), users())
        .realm(REALM)
        .throttle(throttle)
        .build()
        .unwrap();
    serve_layer(layer).await
}

/// `n` instances, each with its own connection to `redis`.
async fn fleet(redis: &RedisServer, n: usize) -> Vec<SocketAddr> {
    fleet_with(redis, n, throttle).await
}

/// `n` instances with throttles made by `throttle`.
async fn fleet_with(
    redis: &RedisServer,
    n: usize,
    throttle: impl Fn() -> FailureThrottle,
) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(instance_on(&stores(redis).await, throttle()).await);
    }
    out
}

/// One request on its own connection, from `client` (an address for the throttle) if given.
async fn get(addr: SocketAddr, client: Option<&str>, credentials: Option<&str>) -> RawResponse {
    let mut fields = Vec::new();
    if let Some(client) = client {
        fields.push(("X-Test-Client-Addr", client));
    }
    if let Some(credentials) = credentials {
        fields.push(("Proxy-Authorization", credentials));
    }
    proxy_get(addr, URL, &fields).await
}

/// As [`get`], asserting that the answer came within [`BOUND`].
async fn timed(addr: SocketAddr, client: Option<&str>, credentials: Option<&str>) -> RawResponse {
    answered_within(BOUND, get(addr, client, credentials)).await
}

/// A fresh SHA-256 challenge from `addr`.
async fn challenge(addr: SocketAddr) -> String {
    let response = get(addr, None, None).await;
    assert_eq!(response.status, 407);
    response.digest_challenge("SHA-256")
}

/// Alice's Digest credentials for `challenge` with count `nc`.
fn digest(challenge: &str, nc: u32) -> String {
    DigestAnswer {
        user: "alice",
        password: ALICE,
        method: "GET",
        uri: "/",
        nc,
        cnonce: "0a4f113b",
    }
    .credentials(challenge)
    .0
}

fn is_stale(response: &RawResponse) -> bool {
    digest_stale(response, "SHA-256")
}

fn not_stale_407(response: &RawResponse) -> bool {
    digest_refused(response, "SHA-256")
}

/// Waits (at most 10 s) until a nonce issued by `a` is accepted by `b`: shared again.
async fn until_shared(a: SocketAddr, b: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = get(b, None, Some(&digest(&challenge(a).await, 1))).await;
        if response.status == 200 {
            return;
        }
        // Until then: never a false acceptance, only stale=true.
        assert!(is_stale(&response), "{response:#?}");
        assert!(Instant::now() < deadline, "not shared again within 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_nonce_issued_by_a_is_accepted_by_b_refused_on_c_and_its_next_count_accepted() {
    let redis = RedisServer::start();
    // A replay counts as a failure: a limit above the four replays below.
    let [a, b, c] = fleet_with(&redis, 3, || throttle_of(10)).await[..] else {
        unreachable!()
    };
    let nonce = challenge(a).await;
    assert_eq!(get(b, None, Some(&digest(&nonce, 1))).await.status, 200);
    let replayed = get(c, None, Some(&digest(&nonce, 1))).await;
    assert!(not_stale_407(&replayed), "{replayed:#?}");
    assert_eq!(get(c, None, Some(&digest(&nonce, 2))).await.status, 200);
    // Out of order across instances, within the window: each count once.
    assert_eq!(get(a, None, Some(&digest(&nonce, 5))).await.status, 200);
    assert_eq!(get(b, None, Some(&digest(&nonce, 3))).await.status, 200);
    assert!(not_stale_407(&get(c, None, Some(&digest(&nonce, 3))).await));
    assert_eq!(get(c, None, Some(&digest(&nonce, 4))).await.status, 200);
    assert!(not_stale_407(&get(a, None, Some(&digest(&nonce, 4))).await));
    assert!(not_stale_407(&get(b, None, Some(&digest(&nonce, 5))).await));
}

fn nonce_id(n: u8) -> NonceId {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    NonceId {
        id: [n; 16],
        issued_ms: now,
    }
}

#[tokio::test]
async fn the_redis_window_answers_every_count_as_the_memory_store_does() {
    let redis = RedisServer::start();
    let stores = stores(&redis).await;
    // Two instances' stores on one Redis, and the in-memory store, given the same counts.
    let (one, two) = (
        stores.replay_store(REALM),
        RedisStores::builder(redis.url())
            .prefix(PREFIX)
            .connect()
            .await
            .unwrap()
            .replay_store(REALM),
    );
    let lifetime = Duration::from_secs(300);
    let memory = MemoryReplayStore::new(1000, lifetime);
    // The memory store's own test sequence, then a pseudo-random walk over jumps, repeats and
    // counts far behind.
    let mut sequence: Vec<(u8, u32)> = [
        1, 1, 3, 2, 2, 131, 4, 4, 5, 3, 1000, 999, 131, 872, 873, 871,
    ]
    .iter()
    .map(|&nc| (1, nc))
    .collect();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut high = [1u32; 4];
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let n = (x % 4) as usize;
        let nc = match (x >> 8) % 6 {
            0 => high[n] + 1 + ((x >> 16) % 200) as u32,
            1 | 2 => high[n].saturating_sub(((x >> 16) % 140) as u32).max(1),
            _ => high[n] + 1,
        };
        high[n] = high[n].max(nc);
        sequence.push((10 + n as u8, nc));
    }
    for (i, (n, nc)) in sequence.into_iter().enumerate() {
        let id = nonce_id(n);
        let store = if i % 2 == 0 { &one } else { &two };
        let shared = store.record(&id, nc, lifetime).resolve().await.unwrap();
        assert_eq!(
            shared,
            memory.check(&id, nc),
            "step {i}: nonce {n}, nc {nc}"
        );
    }
}

#[tokio::test]
async fn wrong_passwords_spread_over_three_instances_reach_the_limit_as_if_sent_to_one() {
    let redis = RedisServer::start();
    let fleet = fleet(&redis, 3).await;
    let one = memory_instance(throttle()).await;
    // Distinct wrong passwords for bob (a repeated one counts once), then his right one.
    let attempts = [
        "guess 1",
        "guess 2",
        "guess 3",
        "guess 4",
        "bob's password",
        "bob's password",
    ];
    let mut spread = Vec::new();
    let mut single = Vec::new();
    for (i, password) in attempts.iter().enumerate() {
        let credentials = basic("bob", password.as_bytes());
        spread.push(get(fleet[i % 3], None, Some(&credentials)).await.status);
        single.push(get(one, None, Some(&credentials)).await.status);
    }
    assert_eq!(spread, [407, 407, 407, 429, 429, 429]);
    assert_eq!(spread, single);
    // Another user at the same address is not limited by bob's failures.
    for addr in &fleet {
        let alice = basic("alice", ALICE.as_bytes());
        assert_eq!(get(*addr, None, Some(&alice)).await.status, 200);
    }
}

#[tokio::test]
async fn a_user_limited_on_a_is_limited_on_b_at_once_and_familiar_addresses_are_shared() {
    let redis = RedisServer::start();
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(instance_on(&stores(&redis).await, throttle().per_user(4)).await);
    }
    let [a, b, c] = fleet[..] else { unreachable!() };
    let right = basic("alice", ALICE.as_bytes());
    // Alice at home, through A: her address becomes familiar (a write no request waits for).
    assert_eq!(get(a, Some("10.0.0.1"), Some(&right)).await.status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis
        .keys()
        .iter()
        .any(|k| k.starts_with(&format!("{PREFIX}:th:fam:")))
    {
        assert!(
            Instant::now() < deadline,
            "the familiar pair was not written"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Four guesses at alice from four addresses, spread over the instances, reach her limit.
    for (i, addr) in [a, b, c, a].into_iter().enumerate() {
        let guess = basic("alice", format!("guess {i}").as_bytes());
        let from = format!("10.0.1.{}", i + 1);
        assert_eq!(get(addr, Some(&from), Some(&guess)).await.status, 407);
    }
    // Limited on B at once, even with her right password, from a new address.
    let guess = basic("alice", b"guess 5");
    assert_eq!(get(b, Some("10.0.1.5"), Some(&guess)).await.status, 429);
    assert_eq!(get(c, Some("10.0.2.1"), Some(&right)).await.status, 429);
    // From home she gets in through C, which never saw her: familiar through Redis.
    assert_eq!(get(c, Some("10.0.0.1"), Some(&right)).await.status, 200);
}

#[tokio::test]
async fn repeated_wrong_credentials_count_once_across_the_fleet() {
    let redis = RedisServer::start();
    let calls = Arc::new(AtomicUsize::new(0));
    let mut fleet = Vec::new();
    for _ in 0..3 {
        let counted = calls.clone();
        let validator = from_fn(move |creds: &tower_proxy_auth::BasicCredentials, _: &_| {
            counted.fetch_add(1, Relaxed);
            if creds.user_id() == "bob" && creds.password() == b"bob's password" {
                Decision::Allow(Identity::new("bob"))
            } else {
                Decision::Reject
            }
        });
        let stores = stores(&redis).await;
        let layer = ProxyAuthLayer::builder(validator)
            .throttle(shared(throttle(), &stores))
            .build()
            .unwrap();
        fleet.push(serve_layer(layer).await);
    }
    // A stale password in a client's configuration, retried on every instance.
    let stale = basic("bob", b"last year's password");
    for i in 0..6 {
        assert_eq!(get(fleet[i % 3], None, Some(&stale)).await.status, 407);
    }
    assert_eq!(
        calls.load(Relaxed),
        1,
        "asked once for the repeated credentials"
    );
    // Counted once: two more distinct guesses, then the limit (3).
    for (i, guess) in ["guess 2", "guess 3"].iter().enumerate() {
        let credentials = basic("bob", guess.as_bytes());
        assert_eq!(
            get(fleet[i + 1], None, Some(&credentials)).await.status,
            407
        );
    }
    let last = basic("bob", b"guess 4");
    assert_eq!(get(fleet[0], None, Some(&last)).await.status, 429);
    assert_eq!(calls.load(Relaxed), 3);
}

#[tokio::test]
async fn redis_stopped_mid_run_then_restarted_on_the_same_port() {
    let mut redis = RedisServer::start();
    let [a, b, c] = fleet(&redis, 3).await[..] else {
        unreachable!()
    };
    let before = challenge(a).await;
    assert_eq!(get(b, None, Some(&digest(&before, 1))).await.status, 200);

    redis.stop();
    // Basic: a first attempt (no fast path) on each instance, counted in memory, in time.
    for (i, addr) in [a, b, c].into_iter().enumerate() {
        let from = format!("10.9.0.{i}");
        let right = basic("alice", ALICE.as_bytes());
        assert_eq!(timed(addr, Some(&from), Some(&right)).await.status, 200);
    }
    // Digest: the shared nonce's next count cannot be checked: stale=true, never 200.
    let unchecked = timed(c, None, Some(&digest(&before, 2))).await;
    assert!(is_stale(&unchecked), "{unchecked:#?}");
    // The fresh nonce names C and is tracked in C's memory: taken once, there only.
    let own = unchecked.digest_challenge("SHA-256");
    assert_eq!(timed(c, None, Some(&digest(&own, 1))).await.status, 200);
    assert!(not_stale_407(&timed(c, None, Some(&digest(&own, 1))).await));
    assert!(is_stale(&timed(a, None, Some(&digest(&own, 2))).await));
    // The throttle counts in each instance's memory: bob's limit holds on A alone.
    for (i, status) in [407, 407, 407, 429].into_iter().enumerate() {
        let guess = basic("bob", format!("guess {i}").as_bytes());
        assert_eq!(timed(a, None, Some(&guess)).await.status, status);
    }
    let guess = basic("bob", b"guess on b");
    assert_eq!(timed(b, None, Some(&guess)).await.status, 407);

    redis.restart();
    until_shared(a, b).await;
    until_shared(b, c).await;
    until_shared(c, a).await;
    // Redis lost every count: the count B took before the outage, replayed now, is not taken
    // again (the nonce predates the store's state: stale=true).
    let replayed = get(c, None, Some(&digest(&before, 1))).await;
    assert!(is_stale(&replayed), "{replayed:#?}");
    // C's own nonce from the outage is still C's.
    assert_eq!(get(c, None, Some(&digest(&own, 2))).await.status, 200);
    // Shared counts again: an unknown user's guesses spread over the fleet.
    for (i, addr) in [a, b, c].into_iter().enumerate() {
        let guess = basic("carol", format!("guess {i}").as_bytes());
        assert_eq!(get(addr, Some("10.8.0.1"), Some(&guess)).await.status, 407);
    }
    let guess = basic("carol", b"guess 3");
    assert_eq!(get(b, Some("10.8.0.1"), Some(&guess)).await.status, 429);
}

#[tokio::test]
async fn redis_paused_answers_within_the_timeout_and_resumes() {
    let redis = RedisServer::start();
    let [a, b] = fleet(&redis, 2).await[..] else {
        unreachable!()
    };
    let before = challenge(a).await;
    // A Redis that accepts connections and answers nothing: slow past any timeout.
    redis.signal("STOP");
    let right = basic("alice", ALICE.as_bytes());
    assert_eq!(timed(a, Some("10.7.0.1"), Some(&right)).await.status, 200);
    assert_eq!(timed(b, Some("10.7.0.2"), Some(&right)).await.status, 200);
    let unchecked = timed(b, None, Some(&digest(&before, 1))).await;
    assert!(is_stale(&unchecked), "{unchecked:#?}");
    let own = unchecked.digest_challenge("SHA-256");
    assert_eq!(timed(b, None, Some(&digest(&own, 1))).await.status, 200);
    for _ in 0..5 {
        assert_eq!(timed(a, Some("10.7.0.3"), Some(&right)).await.status, 200);
    }
    redis.signal("CONT");
    until_shared(a, b).await;
    until_shared(b, a).await;
}

#[tokio::test]
async fn redis_full_refuses_writes_and_nothing_is_accepted_unchecked() {
    let redis = RedisServer::start();
    let [a, b] = fleet(&redis, 2).await[..] else {
        unreachable!()
    };
    let before = challenge(a).await;
    assert_eq!(redis.cli(&["CONFIG", "SET", "maxmemory", "1"]).trim(), "OK");
    // The count cannot be recorded (OOM): never accepted.
    let unchecked = timed(b, None, Some(&digest(&before, 1))).await;
    assert!(is_stale(&unchecked), "{unchecked:#?}");
    let right = basic("alice", ALICE.as_bytes());
    assert_eq!(timed(a, Some("10.6.0.1"), Some(&right)).await.status, 200);
    let guess = basic("bob", b"guess while full");
    assert_eq!(timed(a, None, Some(&guess)).await.status, 407);
    assert_eq!(redis.cli(&["CONFIG", "SET", "maxmemory", "0"]).trim(), "OK");
    until_shared(a, b).await;
    // The count the full Redis could not take is taken now, once.
    assert_eq!(get(a, None, Some(&digest(&before, 1))).await.status, 200);
    assert!(not_stale_407(
        &get(b, None, Some(&digest(&before, 1))).await
    ));
}

#[tokio::test(flavor = "current_thread")]
async fn at_most_one_warning_a_second_while_redis_is_out_of_reach() {
    let lines = LogLines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("tower_proxy_auth=info")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let mut redis = RedisServer::start();
    let a = instance_on(&stores(&redis).await, throttle()).await;
    redis.stop();
    let start = Instant::now();
    for i in 0..30 {
        let from = format!("10.5.0.{i}");
        let guess = basic("bob", format!("guess {i}").as_bytes());
        assert_eq!(get(a, Some(&from), Some(&guess)).await.status, 407);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = start.elapsed().as_secs() + 1;
    let text = lines.text();
    let warnings = text.matches("Redis out of reach").count() as u64;
    assert!(
        (1..=seconds).contains(&warnings),
        "{warnings} warnings in {:?}:\n{text}",
        start.elapsed()
    );
    // Nothing of the requests' credentials in them.
    assert!(!text.contains("guess"), "{text}");
}

#[tokio::test]
async fn an_instance_starts_while_redis_is_down_and_joins_when_it_answers() {
    let mut redis = RedisServer::start();
    let b = instance_on(&stores(&redis).await, throttle()).await;
    redis.stop();
    let lazy = RedisStores::builder(redis.url())
        .prefix(PREFIX)
        .timeout(REDIS_TIMEOUT)
        .connect_lazy()
        .expect("stores without Redis");
    assert!(matches!(
        RedisStores::builder(redis.url())
            .connect_timeout(Duration::from_millis(300))
            .connect()
            .await,
        Err(RedisSetupError::Unreachable(_))
    ));
    let a = instance_on(&lazy, throttle()).await;
    // Serving on its own: Basic, and Digest with nonces of its own.
    let right = basic("alice", ALICE.as_bytes());
    assert_eq!(timed(a, None, Some(&right)).await.status, 200);
    let first = get(a, None, None).await;
    let nonce = first.digest_challenge("SHA-256");
    let response = timed(a, None, Some(&digest(&nonce, 1))).await;
    // The first nonce may have been issued as shared before the first call failed: then it
    // is answered stale=true with one of A's own.
    let own = if response.status == 200 {
        nonce
    } else {
        assert!(is_stale(&response), "{response:#?}");
        response.digest_challenge("SHA-256")
    };
    assert_eq!(timed(a, None, Some(&digest(&own, 2))).await.status, 200);
    redis.restart();
    until_shared(a, b).await;
    until_shared(b, a).await;
}

/// A CA and a server certificate for 127.0.0.1, made by openssl in `dir`.
fn certificates(dir: &std::path::Path) {
    let run = |args: &[&str]| {
        let status = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl (Debian package openssl)");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
        "-out",
        "server.pem",
    ]);
}

#[tokio::test]
async fn rediss_with_a_ca_of_the_tests_own() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let tls_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let (cert, key, ca) = (path("server.pem"), path("server.key"), path("ca.pem"));
    let tls_port_text = tls_port.to_string();
    let redis = RedisServer::start_with(&[
        "--tls-port",
        &tls_port_text,
        "--tls-cert-file",
        &cert,
        "--tls-key-file",
        &key,
        "--tls-ca-cert-file",
        &ca,
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}/");
    let stores = RedisStores::builder(&url)
        .prefix(PREFIX)
        .tls_root_certificate(std::fs::read(dir.path().join("ca.pem")).unwrap())
        .connect()
        .await
        .expect("rediss:// with the test CA");
    let store = stores.replay_store(REALM);
    let id = nonce_id(9);
    let lifetime = Duration::from_secs(300);
    let first = store.record(&id, 1, lifetime).resolve().await.unwrap();
    let second = store.record(&id, 1, lifetime).resolve().await.unwrap();
    assert_eq!(
        (first, second),
        (ReplayVerdict::Fresh, ReplayVerdict::Replayed)
    );
    // Over TLS, into the same server.
    assert_eq!(redis.keys().len(), 2, "{:?}", redis.keys());
    // A server whose certificate no trusted CA signed is refused.
    let untrusted = RedisStores::builder(&url)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await;
    assert!(
        matches!(untrusted, Err(RedisSetupError::Unreachable(_))),
        "{untrusted:?}"
    );
}

#[tokio::test]
async fn a_redis_that_evicts_keys_is_refused() {
    let redis = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]);
    let refused = RedisStores::builder(redis.url()).connect().await;
    let Err(error) = refused else {
        panic!("an evicting Redis was accepted")
    };
    assert!(matches!(&error, RedisSetupError::EvictingPolicy(p) if p == "allkeys-lru"));
    assert!(error.to_string().contains("noeviction"), "{error}");
}

#[tokio::test]
async fn keys_follow_the_documented_layout_hold_no_secret_and_memory_is_as_documented() {
    let redis = RedisServer::start();
    let [a, b] = fleet(&redis, 2).await[..] else {
        unreachable!()
    };
    let nonce = challenge(a).await;
    assert_eq!(get(b, None, Some(&digest(&nonce, 1))).await.status, 200);
    let right = basic("alice", ALICE.as_bytes());
    assert_eq!(get(a, Some("10.4.0.1"), Some(&right)).await.status, 200);
    let wrong = basic("alice", b"a wrong password");
    assert_eq!(get(b, Some("10.4.0.2"), Some(&wrong)).await.status, 407);
    // The familiar-pair write is not waited for.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let keys = redis.keys();
    let epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 60;
    let mut kinds = Vec::new();
    for key in &keys {
        let kind = if key == "fleet:since" {
            "since"
        } else if let Some(id) = key.strip_prefix("fleet:proxy:dn:") {
            {
                assert!(
                    id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()),
                    "{key}"
                );
                let ttl: u64 = redis.cli(&["PTTL", key]).trim().parse().unwrap();
                assert!((300_000..=360_000).contains(&ttl), "{key}: {ttl} ms");
                assert_eq!(redis.cli_bytes(&["GET", key]).len(), 20);
                let bytes: u64 = redis.cli(&["MEMORY", "USAGE", key]).trim().parse().unwrap();
                eprintln!("memory of one nonce's counts: {bytes} bytes");
                assert!(bytes <= 160, "{bytes} bytes for one nonce");
                "nonce"
            }
        } else if let Some(rest) = key.strip_prefix("fleet:th:") {
            let (table, tail) = rest.split_once(':').unwrap_or_else(|| panic!("{key}"));
            if table == "fam" {
                assert!(tail.len() == 32, "{key}");
                "familiar"
            } else {
                assert!(["pair", "user", "addr", "cred"].contains(&table), "{key}");
                let window: u64 = tail.parse().unwrap();
                assert!(window.abs_diff(epoch) <= 1, "{key}");
                let ttl: u64 = redis.cli(&["PTTL", key]).trim().parse().unwrap();
                assert!(ttl <= 180_000, "{key}: {ttl} ms");
                let bytes: u64 = redis.cli(&["MEMORY", "USAGE", key]).trim().parse().unwrap();
                eprintln!("memory of {key}: {bytes} bytes");
                assert!(bytes <= 300 * 1024, "{key}: {bytes} bytes");
                "window"
            }
        } else {
            panic!("a key outside the layout: {key}")
        };
        kinds.push(kind);
        // Nothing secret and nothing that names a user in any key or value.
        let value = redis.cli_bytes(&["GET", key]);
        for secret in [&b"alice"[..], ALICE.as_bytes(), b"a wrong password", KEY] {
            let found = |hay: &[u8]| hay.windows(secret.len()).any(|w| w == secret);
            assert!(!found(key.as_bytes()) && !found(&value), "{key}");
        }
    }
    kinds.sort();
    kinds.dedup();
    assert_eq!(kinds, ["familiar", "nonce", "since", "window"], "{keys:?}");
}

/// Requests at once whose admissions each wait a Redis round trip: none is refused for the
/// others waiting beside it (the attempts in flight count once the store has answered).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_good_requests_each_waiting_for_redis_gets_200_every_time() {
    let redis = RedisServer::start();
    let a = instance_on(&stores(&redis).await, throttle_of(10)).await;
    // 40 Digest requests at once (nc 1 to 40, one nonce) and 100 Basic ones before any
    // success from that address: each reads the counts from Redis before it is checked.
    let nonce = challenge(a).await;
    let mut tasks = tokio::task::JoinSet::new();
    for nc in 1..=40 {
        let credentials = digest(&nonce, nc);
        tasks.spawn(async move {
            (
                "digest",
                get(a, Some("10.9.0.1"), Some(&credentials)).await.status,
            )
        });
    }
    for _ in 0..100 {
        let credentials = basic("bob", b"bob's password");
        tasks.spawn(async move {
            (
                "basic",
                get(a, Some("10.9.0.2"), Some(&credentials)).await.status,
            )
        });
    }
    let mut statuses = tasks.join_all().await;
    statuses.sort_unstable();
    let mut expected = vec![("basic", 200); 100];
    expected.extend([("digest", 200); 40]);
    assert_eq!(statuses, expected);
}

/// A familiar pair that Redis lost (a restart without persistence, an eviction) is written
/// back by the next attempt from it, not only at the instance's next refresh.
#[tokio::test]
async fn a_familiar_pair_redis_lost_is_written_back_by_the_next_attempt() {
    let redis = RedisServer::start();
    let a = instance_on(&stores(&redis).await, throttle()).await;
    let familiar = || {
        redis
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(&format!("{PREFIX}:th:fam:")))
            .collect::<Vec<_>>()
    };
    let eventually = |want: bool| {
        let deadline = Instant::now() + Duration::from_secs(5);
        async move {
            while familiar().is_empty() == want {
                assert!(Instant::now() < deadline, "familiar keys: {:?}", familiar());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let right = basic("alice", ALICE.as_bytes());
    assert_eq!(get(a, Some("10.0.0.1"), Some(&right)).await.status, 200);
    eventually(true).await;
    for key in familiar() {
        redis.cli(&["DEL", &key]);
    }
    assert!(familiar().is_empty());
    // A Digest success (no fast path: its attempt reads the counts from Redis).
    let nonce = challenge(a).await;
    assert_eq!(
        get(a, Some("10.0.0.1"), Some(&digest(&nonce, 1)))
            .await
            .status,
        200
    );
    eventually(true).await;
}
