//! The layer in a real hyper server on 127.0.0.1, driven by a real client (reqwest): validator
//! outcomes (403, 503, async, composed), header handling and build-time errors.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::{AUTHORIZATION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_proxy_auth::validator::{from_async_fn, from_fn};
use tower_proxy_auth::{
    BasicCredentials, BuildError, ClientAddr, Decision, FailureThrottle, Identity, ProxyAuthLayer,
    StaticUsers, Validator,
};

/// A marker an outer layer puts in the extensions, to prove the layer keeps them.
#[derive(Clone)]
struct Marker(&'static str);

/// Serves `layer` in front of an echo service on 127.0.0.1:0. The echo answers 200 with one line
/// per fact the tests check: the identity, what it saw of the credential fields, the marker.
async fn serve(layer: ProxyAuthLayer) -> SocketAddr {
    let echo = tower::service_fn(|req: Request<Incoming>| async move {
        let line = |name: &str, value: Option<&str>| format!("{name}={}\n", value.unwrap_or("-"));
        let header = |h| req.headers().get(h).and_then(|v| v.to_str().ok());
        let body = [
            line(
                "user",
                req.extensions().get::<Identity>().map(Identity::user),
            ),
            line("proxy-authorization", header(PROXY_AUTHORIZATION)),
            line("authorization", header(AUTHORIZATION)),
            line("marker", req.extensions().get::<Marker>().map(|m| m.0)),
        ]
        .concat();
        Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
            bytes::Bytes::from(body),
        )))
    });
    let service = ServiceBuilder::new()
        .map_request(|mut req: Request<Incoming>| {
            req.extensions_mut().insert(Marker("outer"));
            req
        })
        .layer(layer)
        .service(echo);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, peer)) = listener.accept().await {
            let service = ServiceBuilder::new()
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut().insert(ClientAddr(peer));
                    req
                })
                .service(service.clone());
            let service = TowerToHyperService::new(service);
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

fn client() -> reqwest::Client {
    client_from([127, 0, 0, 1])
}

/// A client whose connections come from `local`, a loopback address (127.0.0.0/8).
fn client_from(local: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from(local))
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

fn basic(user: &str, password: &str) -> String {
    BasicCredentials::new(user, password)
        .expect("valid credentials")
        .encode()
}

type Answer = (StatusCode, reqwest::header::HeaderMap, String);

async fn get(addr: SocketAddr, headers: &[(&str, &str)]) -> Answer {
    get_with(&client(), addr, headers).await
}

async fn get_with(client: &reqwest::Client, addr: SocketAddr, headers: &[(&str, &str)]) -> Answer {
    let mut request = client.get(format!("http://{addr}/"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("response");
    let status = response.status();
    let headers = response.headers().clone();
    (status, headers, response.text().await.expect("body"))
}

fn alice() -> StaticUsers {
    StaticUsers::new().with_user("alice", "s3cret")
}

#[tokio::test]
async fn accepted_request_loses_credentials_and_gains_identity_and_keeps_extensions() {
    let addr = serve(ProxyAuthLayer::new(alice())).await;
    let (status, _, body) = get(addr, &[("proxy-authorization", &basic("alice", "s3cret"))]).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        "user=alice\nproxy-authorization=-\nauthorization=-\nmarker=outer\n"
    );
}

#[tokio::test]
async fn keep_proxy_authorization_is_opt_in() {
    let layer = ProxyAuthLayer::builder(alice())
        .keep_proxy_authorization(true)
        .build()
        .expect("layer");
    let addr = serve(layer).await;
    let creds = basic("alice", "s3cret");
    let (status, _, body) = get(addr, &[("proxy-authorization", &creds)]).await;
    assert_eq!(status, 200);
    assert!(
        body.contains(&format!("proxy-authorization={creds}\n")),
        "{body}"
    );
}

#[tokio::test]
async fn authorization_is_never_read_and_passes_through_untouched() {
    let addr = serve(ProxyAuthLayer::new(alice())).await;
    let creds = basic("alice", "s3cret");
    let (status, headers, _) = get(addr, &[("authorization", &creds)]).await;
    assert_eq!(status, 407);
    assert!(headers.contains_key(PROXY_AUTHENTICATE));

    let (status, _, body) = get(
        addr,
        &[
            ("proxy-authorization", &creds),
            ("authorization", "Bearer origin-token"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        body.contains("authorization=Bearer origin-token\n"),
        "{body}"
    );
}

#[tokio::test]
async fn custom_realm_is_escaped_in_the_challenge() {
    let layer = ProxyAuthLayer::builder(alice())
        .realm(r#"Corp "east" \ proxy"#)
        .build()
        .expect("layer");
    let addr = serve(layer).await;
    let (status, headers, body) = get(addr, &[]).await;
    assert_eq!(status, 407);
    assert_eq!(
        headers[PROXY_AUTHENTICATE],
        r#"Basic realm="Corp \"east\" \\ proxy", charset="UTF-8""#
    );
    assert!(!body.is_empty());
}

#[test]
fn realm_with_control_characters_is_an_error_value() {
    for realm in ["a\r\nSet-Cookie: x", "tab\there", "nul\0", "del\x7f"] {
        let err = ProxyAuthLayer::builder(alice())
            .realm(realm)
            .build()
            .expect_err(realm);
        assert!(matches!(err, BuildError::InvalidRealm(_)));
        assert!(err.to_string().contains("control character"), "{err}");
    }
}

#[tokio::test]
async fn ambiguous_credentials_get_400_without_challenge() {
    let addr = serve(ProxyAuthLayer::new(alice())).await;
    let good = basic("alice", "s3cret");
    let (status, headers, _) = get(
        addr,
        &[
            ("proxy-authorization", &good),
            ("proxy-authorization", &good),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(!headers.contains_key(PROXY_AUTHENTICATE));
    let joined = format!("{good}, {good}");
    let (status, _, _) = get(addr, &[("proxy-authorization", &joined)]).await;
    assert_eq!(status, 400);
}

/// Allows alice, forbids her anything but GET /allowed, rejects everyone else.
fn per_target_rule() -> impl Validator {
    from_fn(|creds: &BasicCredentials, req: &Parts| {
        if creds.user_id() != "alice" || creds.password() != b"s3cret" {
            return Ok::<_, Infallible>(Decision::Reject);
        }
        if req.uri.path() != "/allowed" {
            return Ok(Decision::Forbid);
        }
        Ok(Decision::Allow(Identity::new("alice")))
    })
}

#[tokio::test]
async fn sync_callback_forbid_gives_403_without_challenge() {
    let addr = serve(ProxyAuthLayer::new(per_target_rule())).await;
    let creds = basic("alice", "s3cret");
    let response = client()
        .get(format!("http://{addr}/allowed"))
        .header("proxy-authorization", &creds)
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    let (status, headers, body) = get(addr, &[("proxy-authorization", &creds)]).await;
    assert_eq!(status, 403);
    assert!(!headers.contains_key(PROXY_AUTHENTICATE));
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(headers["content-length"], body.len().to_string().as_str());
    let (status, _, _) = get(addr, &[("proxy-authorization", &basic("alice", "nope"))]).await;
    assert_eq!(status, 407);
}

#[tokio::test]
async fn sync_callback_error_gives_503_and_never_lets_through() {
    let down = from_fn(|_: &BasicCredentials, _: &Parts| {
        Err::<Decision, _>(std::io::Error::other("user store unreachable"))
    });
    let addr = serve(ProxyAuthLayer::new(down)).await;
    let (status, headers, body) =
        get(addr, &[("proxy-authorization", &basic("alice", "s3cret"))]).await;
    assert_eq!(status, 503);
    assert!(!headers.contains_key(PROXY_AUTHENTICATE));
    assert!(!body.contains("user="), "{body}");
}

#[tokio::test]
async fn async_callback_allows_forbids_and_fails() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let remote = from_async_fn(move |creds: BasicCredentials, req: &Parts| {
        counter.fetch_add(1, Ordering::SeqCst);
        let path = req.uri.path().to_owned();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            match (creds.user_id(), path.as_str()) {
                ("down", _) => Err("store unreachable"),
                ("bob", "/") => Ok(Decision::Allow(Identity::new("bob"))),
                ("bob", _) => Ok(Decision::Forbid),
                _ => Ok(Decision::Reject),
            }
        }
    });
    let addr = serve(ProxyAuthLayer::new(remote)).await;
    let (status, _, body) = get(addr, &[("proxy-authorization", &basic("bob", "x"))]).await;
    assert_eq!(
        (status, body.lines().next()),
        (StatusCode::OK, Some("user=bob"))
    );
    let (status, _, _) = get(addr, &[("proxy-authorization", &basic("down", "x"))]).await;
    assert_eq!(status, 503);
    let (status, _, _) = get(addr, &[("proxy-authorization", &basic("eve", "x"))]).await;
    assert_eq!(status, 407);
    let forbidden = client()
        .get(format!("http://{addr}/admin"))
        .header("proxy-authorization", basic("bob", "x"))
        .send()
        .await
        .expect("response");
    assert_eq!(forbidden.status(), 403);
    assert_eq!(calls.load(Ordering::SeqCst), 4);
}

#[tokio::test]
async fn or_tries_the_second_validator_only_after_a_reject() {
    let second_calls = Arc::new(AtomicUsize::new(0));
    let counter = second_calls.clone();
    let fallback = from_async_fn(move |creds: BasicCredentials, _: &Parts| {
        counter.fetch_add(1, Ordering::SeqCst);
        async move {
            Ok::<_, Infallible>(if creds.user_id() == "carol" && creds.password() == b"c" {
                Decision::Allow(Identity::new("carol"))
            } else {
                Decision::Reject
            })
        }
    });
    let addr = serve(ProxyAuthLayer::new(alice().or(fallback))).await;
    let (status, _, body) = get(addr, &[("proxy-authorization", &basic("alice", "s3cret"))]).await;
    assert_eq!(
        (status, body.lines().next()),
        (StatusCode::OK, Some("user=alice"))
    );
    assert_eq!(second_calls.load(Ordering::SeqCst), 0);
    let (status, _, body) = get(addr, &[("proxy-authorization", &basic("carol", "c"))]).await;
    assert_eq!(
        (status, body.lines().next()),
        (StatusCode::OK, Some("user=carol"))
    );
    let (status, _, _) = get(addr, &[("proxy-authorization", &basic("carol", "x"))]).await;
    assert_eq!(status, 407);
    assert_eq!(second_calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn or_after_an_outage_reports_503_not_407() {
    let down = from_async_fn(|_: BasicCredentials, _: &Parts| async {
        Err::<Decision, _>("ldap unreachable")
    });
    let addr = serve(ProxyAuthLayer::new(down.or(alice()))).await;
    let (status, _, _) = get(addr, &[("proxy-authorization", &basic("alice", "s3cret"))]).await;
    assert_eq!(status, 200, "the second validator still allows");
    let (status, _, _) = get(addr, &[("proxy-authorization", &basic("alice", "wrong"))]).await;
    assert_eq!(
        status, 503,
        "a reject after an outage is not proof of a wrong password"
    );
}

#[tokio::test]
async fn boxed_validator_works_in_the_layer() {
    let layer = ProxyAuthLayer::new(alice().boxed());
    let addr = serve(layer).await;
    let (status, _, _) = get(addr, &[("proxy-authorization", &basic("alice", "s3cret"))]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn oversized_credentials_get_431_and_the_connection_closes() {
    let layer = ProxyAuthLayer::builder(alice())
        .max_credentials_bytes(1024)
        .build()
        .expect("layer");
    let addr = serve(layer).await;
    let big = format!("Basic {}", "A".repeat(1024));
    let (status, headers, body) = get(addr, &[("proxy-authorization", &big)]).await;
    assert_eq!(status, 431);
    assert_eq!(headers["connection"], "close");
    assert!(!body.is_empty());
    // At the limit exactly, the value is parsed (and here rejected as wrong).
    let at_limit = format!("Basic {}", "A".repeat(1024 - 6));
    let (status, _, _) = get(addr, &[("proxy-authorization", &at_limit)]).await;
    assert_eq!(status, 407);
}

#[tokio::test]
async fn default_limit_keeps_a_16_kib_token_on_the_407_path() {
    let addr = serve(ProxyAuthLayer::new(alice())).await;
    let token = format!("Basic {}", "A".repeat(16 * 1024));
    let (status, headers, _) = get(addr, &[("proxy-authorization", &token)]).await;
    assert_eq!(status, 407);
    assert!(!headers.contains_key("connection"));
    let over = format!(
        "Basic {}",
        "A".repeat(tower_proxy_auth::DEFAULT_MAX_CREDENTIALS_BYTES)
    );
    let (status, _, _) = get(addr, &[("proxy-authorization", &over)]).await;
    assert_eq!(status, 431);
}

#[tokio::test]
async fn rejecting_a_request_with_an_unread_body_says_connection_close() {
    let addr = serve(ProxyAuthLayer::new(alice())).await;
    let response = client()
        .post(format!("http://{addr}/upload"))
        .body(vec![b'x'; 100_000])
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 407);
    assert_eq!(response.headers()["connection"], "close");
    let (status, headers, _) = get(addr, &[]).await;
    assert_eq!(status, 407);
    assert!(
        !headers.contains_key("connection"),
        "a bodiless 407 keeps the connection"
    );
}

/// A validator that counts its calls, for proving the throttle answers without asking it.
fn counted(users: StaticUsers) -> (impl Validator, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let validator = from_fn(move |creds: &BasicCredentials, _: &Parts| {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Infallible>(match users.check(creds.user_id(), creds.password()) {
            Some(identity) => Decision::Allow(identity.clone()),
            None => Decision::Reject,
        })
    });
    (validator, calls)
}

// The throttle tests below were rewritten for the policy of the throttle issue: failures count
// per (user, address), per address and per user; the same wrong credentials repeated count
// once; one user's failures no longer lock another out at the same address.

#[tokio::test]
async fn throttle_counts_wrong_credentials_only_and_answers_429_without_the_validator() {
    let (validator, calls) = counted(alice().with_user("bob", "b0b"));
    let throttle = FailureThrottle::new(3, std::time::Duration::from_secs(60));
    let layer = ProxyAuthLayer::builder(validator)
        .throttle(throttle)
        .build()
        .expect("layer");
    let addr = serve(layer).await;
    // Requests without credentials never count.
    for _ in 0..10 {
        assert_eq!(get(addr, &[]).await.0, 407);
    }
    // Three distinct wrong passwords for alice (from 127.0.0.1), then alice is throttled at
    // this address, even with the right password, and the validator is not asked.
    for i in 0..3 {
        let guess = format!("guess-{i}");
        let (status, _, _) = get(addr, &[("proxy-authorization", &basic("alice", &guess))]).await;
        assert_eq!(status, 407);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let (status, headers, _) =
        get(addr, &[("proxy-authorization", &basic("alice", "s3cret"))]).await;
    assert_eq!(status, 429);
    let retry_after: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=120).contains(&retry_after), "{retry_after}");
    assert!(!headers.contains_key(PROXY_AUTHENTICATE));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "no validator call while throttled"
    );
    // Another user at the same address is not locked out by alice's failures.
    let (status, _, _) = get(addr, &[("proxy-authorization", &basic("bob", "b0b"))]).await;
    assert_eq!(status, 200);
    let other = client_from([127, 0, 0, 2]);
    let (status, _, _) = get_with(
        &other,
        addr,
        &[("proxy-authorization", &basic("alice", "s3cret"))],
    )
    .await;
    assert_eq!(
        status, 200,
        "alice from another address is not throttled by the pair's count"
    );
}

#[tokio::test]
async fn the_same_wrong_credentials_repeated_count_once_and_skip_the_validator() {
    let (validator, calls) = counted(alice());
    let throttle = FailureThrottle::new(3, std::time::Duration::from_secs(60));
    let layer = ProxyAuthLayer::builder(validator)
        .throttle(throttle.clone())
        .build()
        .expect("layer");
    let addr = serve(layer).await;
    for _ in 0..20 {
        let (status, _, _) = get(addr, &[("proxy-authorization", &basic("alice", "stale"))]).await;
        assert_eq!(status, 407);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "asked once, then answered from memory"
    );
    let standing = throttle
        .standing(b"alice", Some([127, 0, 0, 1].into()))
        .expect("in memory");
    assert!(standing.pair.value() <= 1.0, "{standing:?}");
    let (status, _, _) = get(addr, &[("proxy-authorization", &basic("alice", "s3cret"))]).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn throttle_looks_the_same_for_unknown_and_existing_users() {
    let throttle = FailureThrottle::new(2, std::time::Duration::from_secs(60));
    let layer = ProxyAuthLayer::builder(alice())
        .throttle(throttle)
        .build()
        .expect("layer");
    let addr = serve(layer).await;
    let mut answers = Vec::new();
    for (n, user) in ["alice", "nobody"].into_iter().enumerate() {
        // A fresh address per user, so only the user's counts matter.
        let client = client_from([127, 0, 0, 10 + n as u8]);
        let mut statuses = Vec::new();
        let mut last = None;
        for i in 0..4 {
            let (status, headers, body) = get_with(
                &client,
                addr,
                &[("proxy-authorization", &basic(user, &format!("wrong-{i}")))],
            )
            .await;
            statuses.push(status.as_u16());
            last = Some((headers.get("content-type").cloned(), body));
        }
        answers.push((statuses, last));
    }
    assert_eq!(answers[0].0, [407, 407, 429, 429]);
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn throttle_window_ends_and_the_right_password_works_again() {
    let throttle = FailureThrottle::new(2, std::time::Duration::from_secs(1));
    let layer = ProxyAuthLayer::builder(alice())
        .throttle(throttle)
        .build()
        .expect("layer");
    let addr = serve(layer).await;
    for i in 0..2 {
        get(
            addr,
            &[(
                "proxy-authorization",
                &basic("alice", &format!("wrong-{i}")),
            )],
        )
        .await;
    }
    let good = basic("alice", "s3cret");
    assert_eq!(get(addr, &[("proxy-authorization", &good)]).await.0, 429);
    // The sliding window: the two failures fade out over the next second.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(get(addr, &[("proxy-authorization", &good)]).await.0, 200);
}

#[tokio::test]
async fn throttle_memory_stays_fixed_under_a_flood_of_user_names() {
    let store =
        tower_proxy_auth::throttle::MemoryThrottleStore::new(std::time::Duration::from_secs(60));
    let bytes = store.table_bytes();
    let throttle = FailureThrottle::new(1_000, std::time::Duration::from_secs(60))
        .per_address(1_000_000)
        .store(store);
    let layer = ProxyAuthLayer::builder(alice())
        .throttle(throttle)
        .build()
        .expect("layer");
    let addr = serve(layer).await;
    let client = client();
    let mut flood = tokio::task::JoinSet::new();
    for worker in 0..8 {
        let client = client.clone();
        flood.spawn(async move {
            for i in 0..500 {
                let creds = basic(&format!("flood-{worker}-{i}"), "x");
                let (status, _, _) =
                    get_with(&client, addr, &[("proxy-authorization", &creds)]).await;
                assert!(status == 407 || status == 429, "{status}");
            }
        });
    }
    while let Some(done) = flood.join_next().await {
        done.expect("flood worker");
    }
    // Fixed tables: 4,000 names later, the same size (the familiar pairs only grow with
    // successes).
    assert_eq!(bytes, 1_572_864, "{bytes}");
    let (status, _, _) = get(addr, &[("proxy-authorization", &basic("alice", "s3cret"))]).await;
    assert_eq!(status, 200);
}

/// A validator that takes 300 ms to say no, and how often it was asked.
fn slow_reject() -> (impl Validator, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let slow = from_async_fn(move |_: BasicCredentials, _: &Parts| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            Ok::<_, Infallible>(Decision::Reject)
        }
    });
    (slow, calls)
}

#[tokio::test]
async fn concurrent_guesses_against_a_slow_validator_cannot_overrun_the_throttle() {
    let throttle = FailureThrottle::new(3, std::time::Duration::from_secs(60));
    let guesses = vec![("alice".to_owned(), [127, 0, 0, 1]); 20];
    let (statuses, calls) = guesses_in_flight(throttle, guesses).await;
    // At most two slow checks at once per address (the rest are shed with 503 before the
    // validator starts), and never more checks than the pair's limit.
    let checked = statuses.iter().filter(|&&s| s == 407).count();
    assert_eq!(checked, 2, "{statuses:?}");
    assert!(calls <= 3, "{statuses:?}");
    assert!(
        statuses.iter().all(|&s| s == 407 || s == 503 || s == 429),
        "{statuses:?}"
    );
}

#[tokio::test]
async fn a_success_does_not_clear_the_failures_counted_for_a_user() {
    let throttle = FailureThrottle::new(3, std::time::Duration::from_secs(60)).per_user(3);
    let layer = ProxyAuthLayer::builder(alice())
        .throttle(throttle)
        .build()
        .expect("layer");
    let addr = serve(layer).await;
    let good = basic("alice", "s3cret");
    // Alice succeeds from her own address first: it becomes familiar.
    assert_eq!(get(addr, &[("proxy-authorization", &good)]).await.0, 200);
    // Guesses from rotating addresses, while alice's own client keeps succeeding.
    let mut statuses = Vec::new();
    for n in 0..4u8 {
        let attacker = client_from([127, 0, 1, n]);
        let creds = basic("alice", &format!("guess-{n}"));
        statuses.push(
            get_with(&attacker, addr, &[("proxy-authorization", &creds)])
                .await
                .0,
        );
        statuses.push(get(addr, &[("proxy-authorization", &good)]).await.0);
    }
    let codes: Vec<u16> = statuses.iter().map(|s| s.as_u16()).collect();
    // Her successes do not reset the per-user count: the fourth guess is refused; her familiar
    // address keeps working throughout.
    assert_eq!(codes, [407, 200, 407, 200, 407, 200, 429, 200]);
}

/// Guesses sent all at once, `(user, client address)` each, against a validator that takes
/// 300 ms to say no; the statuses, sorted, and how often the validator was asked.
async fn guesses_in_flight(
    throttle: FailureThrottle,
    guesses: Vec<(String, [u8; 4])>,
) -> (Vec<u16>, usize) {
    let (slow, calls) = slow_reject();
    let layer = ProxyAuthLayer::builder(slow)
        .throttle(throttle)
        .build()
        .expect("layer");
    let addr = serve(layer).await;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (user, from)) in guesses.into_iter().enumerate() {
        tasks.spawn(async move {
            let creds = basic(&user, &format!("guess-{i}"));
            get_with(&client_from(from), addr, &[("proxy-authorization", &creds)])
                .await
                .0
                .as_u16()
        });
    }
    let mut statuses = tasks.join_all().await;
    statuses.sort_unstable();
    (statuses, calls.load(Ordering::SeqCst))
}

/// 5 of the 20 guesses reached the validator (407), the other 15 got 429 without it.
fn five_of_twenty_checked((statuses, calls): (Vec<u16>, usize)) {
    let mut expected = vec![407; 5];
    expected.extend([429; 15]);
    assert_eq!(statuses, expected);
    assert_eq!(calls, 5);
}

#[tokio::test]
async fn guesses_in_flight_at_once_from_20_addresses_get_no_more_than_the_user_limit() {
    // Per-user limit 5; 20 guesses at alice from 127.0.2.0 to 127.0.2.19, all in flight at
    // once: the attempts in flight count toward the limit, so 5 reach the validator and the
    // other 15 get 429 without it.
    let throttle = FailureThrottle::new(3, std::time::Duration::from_secs(60)).per_user(5);
    let guesses = (0..20)
        .map(|i| ("alice".to_owned(), [127, 0, 2, i]))
        .collect();
    five_of_twenty_checked(guesses_in_flight(throttle, guesses).await);
}

#[tokio::test]
async fn guesses_in_flight_at_once_at_20_users_get_no_more_than_the_address_limit() {
    // Per-address limit 5 (and room for 50 slow checks per address, so none is shed); 20
    // guesses from 127.0.3.1 at 20 names, all in flight at once: 5 reach the validator.
    let throttle = FailureThrottle::new(3, std::time::Duration::from_secs(60))
        .per_address(5)
        .max_pending_per_address(50);
    let guesses = (0..20)
        .map(|i| (format!("user{i}"), [127, 0, 3, 1]))
        .collect();
    five_of_twenty_checked(guesses_in_flight(throttle, guesses).await);
}

#[tokio::test]
async fn guesses_in_flight_against_a_store_given_to_the_throttle_get_no_more_than_the_limit() {
    // As above with the per-user limit, the counts in a `MemoryThrottleStore` passed in with
    // `store` (a store that answers at once, like the default one).
    let store =
        tower_proxy_auth::throttle::MemoryThrottleStore::new(std::time::Duration::from_secs(60));
    let throttle = FailureThrottle::new(3, std::time::Duration::from_secs(60))
        .per_user(5)
        .store(store);
    let guesses = (0..20)
        .map(|i| ("alice".to_owned(), [127, 0, 4, i]))
        .collect();
    five_of_twenty_checked(guesses_in_flight(throttle, guesses).await);
}
