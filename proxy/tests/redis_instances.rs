//! Three `forward-proxy` processes on one Redis with one `--digest-key-file` behave as one
//! (issue 13; cargo feature `redis`): a nonce issued by A is accepted by B and the same
//! (nonce, nc) refused by C; wrong passwords spread over A, B and C reach the limit as if sent
//! to one; a user locked on A is locked on B; Redis stopped during the run gets the documented
//! answers within the timeout, and restarted, shared behaviour comes back without restarting
//! the proxies.
//!
//! Each test starts its own `redis-server` (tests/support/redis_server.rs: a free loopback
//! port, persistence off, stopped by PID) and its own proxies on 127.0.0.1 port 0, forwarding to
//! an origin of the test's own on 127.0.0.1.

#[path = "../../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::redis_server::RedisServer;
use support::{
    answered_within, basic, digest_refused, digest_stale, proxy_get, DigestAnswer, ExampleProcess,
    Origin, RawResponse, PROXY,
};

const ALICE: &str = "alice's password";
const BOB: &str = "bob's password";
/// The key file of the fleet: the nonce key, and (derived with a label of its own) the key of
/// the throttle's hashes.
const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n";
/// Failures allowed per (user, address) in the window.
const MAX_FAILURES: &str = "3";
/// `--redis-timeout-ms`.
const REDIS_TIMEOUT_MS: &str = "100";
/// The most a request may take while Redis fails: the timeout, and room for a loaded machine.
const BOUND: Duration = Duration::from_millis(1500);

/// A fleet: a Redis, a key file, an origin, and proxies started on them.
struct Fleet {
    redis: RedisServer,
    key_file: tempfile::NamedTempFile,
    origin: Origin,
}

impl Fleet {
    async fn new() -> Self {
        let redis = RedisServer::start();
        let key_file = tempfile::NamedTempFile::new().expect("a temporary key file");
        std::fs::write(key_file.path(), KEY).expect("write the key file");
        Self {
            redis,
            key_file,
            origin: Origin::start().await,
        }
    }

    /// One `forward-proxy` with Digest (SHA-256) then Basic for alice and bob, its state on
    /// this fleet's Redis (with `redis`) or in its own memory (without).
    fn proxy(&self, redis: bool) -> ExampleProcess {
        let key_file = self
            .key_file
            .path()
            .to_str()
            .expect("a UTF-8 temporary path");
        let url = self.redis.url();
        let alice = format!("alice:{ALICE}");
        let bob = format!("bob:{BOB}");
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--allow-private-targets",
            "--access-log",
            "none",
            "--realm",
            "proxy",
            "--user",
            &alice,
            "--user",
            &bob,
            "--auth",
            "digest,basic",
            "--digest-algorithms",
            "SHA-256",
            "--digest-key-file",
            key_file,
            "--max-auth-failures",
            MAX_FAILURES,
        ];
        if redis {
            args.extend([
                "--redis-url",
                &url,
                "--redis-prefix",
                "fleet",
                "--redis-timeout-ms",
                REDIS_TIMEOUT_MS,
            ]);
        }
        ExampleProcess::start(PROXY, &args)
    }

    /// Three instances on the Redis.
    fn three(&self) -> [ExampleProcess; 3] {
        [self.proxy(true), self.proxy(true), self.proxy(true)]
    }

    fn url(&self) -> String {
        self.origin.url("/")
    }

    /// One request through `proxy` on its own connection.
    async fn get(&self, proxy: &ExampleProcess, credentials: Option<&str>) -> RawResponse {
        let fields: Vec<(&str, &str)> = credentials
            .map(|c| ("Proxy-Authorization", c))
            .into_iter()
            .collect();
        proxy_get(proxy.addr(), &self.url(), &fields).await
    }

    /// As [`Fleet::get`], asserting that the answer came within [`BOUND`].
    async fn timed(&self, proxy: &ExampleProcess, credentials: Option<&str>) -> RawResponse {
        answered_within(BOUND, self.get(proxy, credentials)).await
    }

    /// A fresh SHA-256 challenge from `proxy`.
    async fn challenge(&self, proxy: &ExampleProcess) -> String {
        let response = self.get(proxy, None).await;
        assert_eq!(response.status, 407, "{response:#?}");
        response.digest_challenge("SHA-256")
    }

    /// Alice's Digest credentials for `challenge` with count `nc`.
    fn digest(&self, challenge: &str, nc: u32) -> String {
        let url = self.url();
        DigestAnswer {
            user: "alice",
            password: ALICE,
            method: "GET",
            uri: &url,
            nc,
            cnonce: "0a4f113b",
        }
        .credentials(challenge)
        .0
    }

    /// Waits (at most 10 s) until a nonce issued by `a` is accepted by `b`: shared again.
    /// Until then, never an acceptance: only `stale=true`.
    async fn until_shared(&self, a: &ExampleProcess, b: &ExampleProcess) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let response = self
                .get(b, Some(&self.digest(&self.challenge(a).await, 1)))
                .await;
            if response.status == 200 {
                return;
            }
            assert!(is_stale(&response), "{response:#?}");
            assert!(Instant::now() < deadline, "not shared again within 10 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn is_stale(response: &RawResponse) -> bool {
    digest_stale(response, "SHA-256")
}

fn not_stale_407(response: &RawResponse) -> bool {
    digest_refused(response, "SHA-256")
}

#[tokio::test]
async fn a_nonce_issued_by_a_is_accepted_by_b_and_the_same_nc_refused_by_c() {
    let fleet = Fleet::new().await;
    let [a, b, c] = fleet.three();
    let nonce = fleet.challenge(&a).await;
    let first = fleet.get(&b, Some(&fleet.digest(&nonce, 1))).await;
    assert_eq!(first.status, 200, "{first:#?}");
    assert_eq!(first.text(), support::ORIGIN_BODY);
    let replayed = fleet.get(&c, Some(&fleet.digest(&nonce, 1))).await;
    assert!(not_stale_407(&replayed), "{replayed:#?}");
    // Its next count is taken once, wherever it lands.
    assert_eq!(
        fleet.get(&c, Some(&fleet.digest(&nonce, 2))).await.status,
        200
    );
    assert!(not_stale_407(
        &fleet.get(&a, Some(&fleet.digest(&nonce, 2))).await
    ));
    // The nonce counts are on Redis under the prefix; the keys hold no user name.
    let keys = fleet.redis.keys();
    assert!(
        keys.iter().any(|k| k.starts_with("fleet:proxy:dn:")),
        "{keys:?}"
    );
    assert!(!keys.iter().any(|k| k.contains("alice")), "{keys:?}");
}

#[tokio::test]
async fn without_redis_another_instances_nonce_gets_stale() {
    // The baseline: instances sharing only the key file verify each other's nonces, but each
    // knows only the counts it took, so rather than accept a count it never saw (a replay
    // would pass) it answers stale=true: one round trip more whenever a client changes
    // instance.
    let fleet = Fleet::new().await;
    let [a, b] = [fleet.proxy(false), fleet.proxy(false)];
    let nonce = fleet.challenge(&a).await;
    let credentials = fleet.digest(&nonce, 1);
    let on_b = fleet.get(&b, Some(&credentials)).await;
    assert!(is_stale(&on_b), "{on_b:#?}");
    assert_eq!(fleet.get(&a, Some(&credentials)).await.status, 200);
    assert!(fleet.redis.keys().is_empty());
}

#[tokio::test]
async fn wrong_passwords_spread_over_a_b_and_c_reach_the_limit_as_if_sent_to_one() {
    let fleet = Fleet::new().await;
    let three = fleet.three();
    let one = fleet.proxy(false);
    // Distinct wrong passwords for bob, then his right one.
    let attempts = ["guess 1", "guess 2", "guess 3", "guess 4", BOB, BOB];
    let mut spread = Vec::new();
    let mut single = Vec::new();
    for (i, password) in attempts.iter().enumerate() {
        let credentials = basic("bob", password.as_bytes());
        spread.push(fleet.get(&three[i % 3], Some(&credentials)).await.status);
        single.push(fleet.get(&one, Some(&credentials)).await.status);
    }
    assert_eq!(spread, [407, 407, 407, 429, 429, 429]);
    assert_eq!(spread, single);
    // Alice, at the same address, is not limited by bob's failures, on any instance.
    let alice = basic("alice", ALICE.as_bytes());
    for proxy in &three {
        assert_eq!(fleet.get(proxy, Some(&alice)).await.status, 200);
    }
}

#[tokio::test]
async fn a_user_locked_on_a_is_locked_on_b() {
    let fleet = Fleet::new().await;
    let [a, b, c] = fleet.three();
    for i in 1..=3 {
        let guess = basic("bob", format!("guess {i}").as_bytes());
        assert_eq!(fleet.get(&a, Some(&guess)).await.status, 407);
    }
    let guess = basic("bob", b"guess 4");
    let locked = fleet.get(&a, Some(&guess)).await;
    assert_eq!(locked.status, 429, "{locked:#?}");
    assert!(locked.header("retry-after").is_some(), "{locked:#?}");
    // B and C never saw bob: locked there at once, his right password included, by Basic and
    // by Digest.
    let right = basic("bob", BOB.as_bytes());
    assert_eq!(fleet.get(&b, Some(&right)).await.status, 429);
    let nonce = fleet.challenge(&c).await;
    let bob_digest = DigestAnswer {
        user: "bob",
        password: BOB,
        method: "GET",
        uri: &fleet.url(),
        nc: 1,
        cnonce: "0a4f113b",
    }
    .credentials(&nonce)
    .0;
    assert_eq!(fleet.get(&c, Some(&bob_digest)).await.status, 429);
}

#[tokio::test]
async fn redis_stopped_during_a_run_then_restarted_without_restarting_the_proxies() {
    let mut fleet = Fleet::new().await;
    let [a, b, c] = fleet.three();
    let before = fleet.challenge(&a).await;
    assert_eq!(
        fleet.get(&b, Some(&fleet.digest(&before, 1))).await.status,
        200
    );

    fleet.redis.stop();
    // Basic still answers, in time, counted in each instance's memory.
    let alice = basic("alice", ALICE.as_bytes());
    for proxy in [&a, &b, &c] {
        assert_eq!(fleet.timed(proxy, Some(&alice)).await.status, 200);
    }
    // Digest: the shared nonce's next count cannot be checked: stale=true, never 200.
    let unchecked = fleet.timed(&c, Some(&fleet.digest(&before, 2))).await;
    assert!(is_stale(&unchecked), "{unchecked:#?}");
    // The fresh nonce names C and is tracked in C's memory: taken once, on C only.
    let own = unchecked.digest_challenge("SHA-256");
    assert_eq!(
        fleet.timed(&c, Some(&fleet.digest(&own, 1))).await.status,
        200
    );
    assert!(not_stale_407(
        &fleet.timed(&c, Some(&fleet.digest(&own, 1))).await
    ));
    assert!(is_stale(
        &fleet.timed(&a, Some(&fleet.digest(&own, 2))).await
    ));
    // The throttle counts per instance meanwhile: bob's limit holds on A alone.
    for (i, status) in [407, 407, 407, 429].into_iter().enumerate() {
        let guess = basic("bob", format!("guess {i}").as_bytes());
        assert_eq!(fleet.timed(&a, Some(&guess)).await.status, status);
    }
    let guess = basic("bob", b"guess on b");
    assert_eq!(fleet.timed(&b, Some(&guess)).await.status, 407);
    // No proxy exited, none panicked; each logged that Redis is out of reach.
    for proxy in [&a, &b, &c] {
        let stderr = proxy.stderr();
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains("Redis out of reach"), "{stderr}");
    }

    fleet.redis.restart();
    fleet.until_shared(&a, &b).await;
    fleet.until_shared(&b, &c).await;
    fleet.until_shared(&c, &a).await;
    // The count B took before the outage, which the restarted Redis lost: not taken again.
    let replayed = fleet.get(&c, Some(&fleet.digest(&before, 1))).await;
    assert!(is_stale(&replayed), "{replayed:#?}");
    // Shared counts again: alice's guesses spread over the fleet reach her limit.
    for (i, proxy) in [&a, &b, &c].into_iter().enumerate() {
        let guess = basic("alice", format!("guess {i}").as_bytes());
        assert_eq!(fleet.get(proxy, Some(&guess)).await.status, 407);
    }
    let guess = basic("alice", b"guess 3");
    assert_eq!(fleet.get(&b, Some(&guess)).await.status, 429);
}

#[tokio::test]
async fn a_proxy_started_while_redis_is_down_joins_the_fleet_when_it_answers() {
    let mut fleet = Fleet::new().await;
    let a = fleet.proxy(true);
    fleet.redis.stop();
    let b = fleet.proxy(true);
    assert!(b.stderr().contains("keeps its own state"), "{}", b.stderr());
    let alice = basic("alice", ALICE.as_bytes());
    assert_eq!(fleet.timed(&b, Some(&alice)).await.status, 200);
    fleet.redis.restart();
    fleet.until_shared(&a, &b).await;
    fleet.until_shared(&b, &a).await;
}

/// Runs the proxy with `args` to its exit; its status code and stderr.
fn refused(args: &[&str]) -> (Option<i32>, String) {
    let done = support::run_example_to_exit(PROXY, args, Duration::from_secs(30));
    (done.status.code(), done.stderr)
}

#[tokio::test]
async fn bad_redis_flags_stop_the_proxy_naming_the_flag() {
    let fleet = Fleet::new().await;
    let key_file = fleet.key_file.path().to_str().unwrap();
    let url = fleet.redis.url();
    let base = ["--listen", "127.0.0.1:0", "--auth", "digest"];

    let (code, stderr) = refused(&[&base[..], &["--redis-url", &url]].concat());
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--digest-key-file"), "{stderr}");

    let (code, stderr) = refused(
        &[
            &base[..],
            &[
                "--digest-key-file",
                key_file,
                "--redis-url",
                "http://127.0.0.1:6379/",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--redis-url"), "{stderr}");

    let (code, stderr) = refused(&["--listen", "127.0.0.1:0", "--redis-prefix", "p"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--redis-url"), "{stderr}");

    // A Redis that evicts keys could lose a nonce's counts: refused, password not shown.
    fleet.redis.cli(&[
        "ACL", "SETUSER", "fleet", "on", ">hunter2", "~*", "&*", "+@all",
    ]);
    fleet
        .redis
        .cli(&["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]);
    let with_password = format!("redis://fleet:hunter2@127.0.0.1:{}/", fleet.redis.port());
    let (code, stderr) = refused(
        &[
            &base[..],
            &["--digest-key-file", key_file, "--redis-url", &with_password],
        ]
        .concat(),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("maxmemory-policy"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
