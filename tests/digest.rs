//! The Digest scheme through the layer in a real server on 127.0.0.1, driven by raw HTTP/1.1
//! and a Digest client of the tests' own (tests/support): challenges, responses, replays,
//! stale and forged nonces, uri checks, several instances, both parties.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use tower::ServiceBuilder;
use tower_proxy_auth::scheme::digest::{
    Algorithm, Digest, MemoryReplayStore, NonceId, NonceKey, ReplayStore, ReplayVerdict,
};
use tower_proxy_auth::scheme::Basic;
use tower_proxy_auth::{Answer, Identity, Party, ProxyAuthLayer, StaticUsers, ValidatorError};

use support::{
    challenge_params, htdigest, request_head, serve, DigestAnswer, RawConn, RawResponse,
};

fn users() -> StaticUsers {
    StaticUsers::with_realm("proxy").with_user("Mufasa", "Circle of Life")
}

fn digest_layer(digest: Digest) -> ProxyAuthLayer {
    ProxyAuthLayer::offering(digest, users())
        .offer(Basic::new(), users())
        .build()
        .unwrap()
}

async fn start(layer: ProxyAuthLayer) -> SocketAddr {
    serve(
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|req: http::Request<_>| {
                let who = req
                    .extensions()
                    .get::<Identity>()
                    .map(|i| format!("{} {}", i.user(), i.scheme().unwrap_or("-")));
                async move { Ok::<_, Infallible>(http::Response::new(who.unwrap_or_default())) }
            }),
    )
    .await
}

/// One request on its own connection.
async fn send(
    addr: SocketAddr,
    method: &str,
    target: &str,
    credentials: Option<&str>,
) -> RawResponse {
    let host = if method == "CONNECT" {
        target
    } else {
        "origin.test"
    };
    let mut fields = vec![("Host", host)];
    if let Some(value) = credentials {
        fields.push(("Proxy-Authorization", value));
    }
    let mut conn = RawConn::connect(addr).await;
    conn.send(request_head(method, target, &fields)).await;
    conn.read_response_to(method).await
}

fn mufasa<'a>(uri: &'a str, nc: u32) -> DigestAnswer<'a> {
    DigestAnswer {
        user: "Mufasa",
        password: "Circle of Life",
        method: "GET",
        uri,
        nc,
        cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
    }
}

#[tokio::test]
async fn challenges_in_order_then_each_algorithm_authenticates_with_rspauth() {
    let addr = start(digest_layer(Digest::new().algorithms([
        Algorithm::Sha256,
        Algorithm::Sha512_256,
        Algorithm::Md5,
        Algorithm::Sha256Sess,
        Algorithm::Md5Sess,
    ])))
    .await;
    let first = send(addr, "GET", "http://origin.test/dir/index.html", None).await;
    assert_eq!(first.status, 407);
    let challenges = first.header_values("proxy-authenticate");
    let order: Vec<String> = challenges
        .iter()
        .map(|c| {
            challenge_params(c)
                .get("algorithm")
                .cloned()
                .unwrap_or_else(|| c.split(' ').next().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        order,
        [
            "SHA-256",
            "SHA-512-256",
            "MD5",
            "SHA-256-sess",
            "MD5-sess",
            "Basic"
        ]
    );
    for c in &challenges[..5] {
        let p = challenge_params(c);
        assert_eq!(
            (
                p["realm"].as_str(),
                p["qop"].as_str(),
                p["charset"].as_str()
            ),
            ("proxy", "auth", "UTF-8")
        );
        assert_eq!(
            p["userhash"], "true",
            "StaticUsers can find users by userhash"
        );
        assert!(!p.contains_key("stale"));
        assert_eq!(p["nonce"].len(), 55);
    }
    // Every challenge has a nonce of its own.
    let nonces: std::collections::HashSet<_> = challenges[..5]
        .iter()
        .map(|c| challenge_params(c)["nonce"].clone())
        .collect();
    assert_eq!(nonces.len(), 5);

    for algorithm in ["SHA-256", "SHA-512-256", "MD5", "SHA-256-sess", "MD5-sess"] {
        let challenge = first.digest_challenge(algorithm);
        // curl and Chromium send the path; urllib the absolute URI: both name the target.
        for uri in ["/dir/index.html", "http://origin.test/dir/index.html"] {
            let (credentials, rspauth) =
                mufasa(uri, if uri.starts_with('/') { 1 } else { 2 }).credentials(&challenge);
            let ok = send(
                addr,
                "GET",
                "http://origin.test/dir/index.html",
                Some(&credentials),
            )
            .await;
            assert_eq!(ok.status, 200, "{algorithm} {uri}: {ok:#?}");
            assert_eq!(ok.text(), "Mufasa Digest");
            let info = challenge_params(&format!(
                "x {}",
                ok.header("proxy-authentication-info").expect("info")
            ));
            assert_eq!(info["rspauth"], rspauth, "{algorithm}");
            assert_eq!(info["qop"], "auth");
            assert_eq!(
                info["cnonce"],
                "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
            );
        }
    }
}

#[tokio::test]
async fn a_replayed_count_is_refused_the_next_count_and_out_of_order_ones_pass() {
    let addr = start(digest_layer(Digest::new())).await;
    let first = send(addr, "GET", "http://origin.test/", None).await;
    let challenge = first.digest_challenge("SHA-256");
    let (once, _) = mufasa("/", 1).credentials(&challenge);
    assert_eq!(
        send(addr, "GET", "http://origin.test/", Some(&once))
            .await
            .status,
        200
    );
    let replay = send(addr, "GET", "http://origin.test/", Some(&once)).await;
    assert_eq!(replay.status, 407);
    assert!(replay
        .header_values("proxy-authenticate")
        .iter()
        .all(|c| !c.contains("stale")));
    for nc in [2, 5, 3, 4] {
        let (next, _) = mufasa("/", nc).credentials(&challenge);
        assert_eq!(
            send(addr, "GET", "http://origin.test/", Some(&next))
                .await
                .status,
            200,
            "nc {nc}"
        );
    }
    let (again, _) = mufasa("/", 3).credentials(&challenge);
    assert_eq!(
        send(addr, "GET", "http://origin.test/", Some(&again))
            .await
            .status,
        407
    );
}

#[tokio::test]
async fn wrong_passwords_unknown_users_and_forged_nonces_get_challenges_without_stale() {
    let addr = start(digest_layer(Digest::new())).await;
    let first = send(addr, "GET", "http://origin.test/", None).await;
    let challenge = first.digest_challenge("SHA-256");
    let mut wrong = mufasa("/", 1);
    wrong.password = "Circle Of Life";
    let mut unknown = mufasa("/", 1);
    unknown.user = "Scar";
    let forged = challenge.replace(&challenge_params(&challenge)["nonce"][..10], "AAAAAAAAAA");
    for (credentials, what) in [
        (wrong.credentials(&challenge).0, "wrong password"),
        (unknown.credentials(&challenge).0, "unknown user"),
        (mufasa("/", 1).credentials(&forged).0, "forged nonce"),
    ] {
        let response = send(addr, "GET", "http://origin.test/", Some(&credentials)).await;
        assert_eq!(response.status, 407, "{what}");
        assert!(
            response
                .header_values("proxy-authenticate")
                .iter()
                .all(|c| !c.contains("stale")),
            "{what}"
        );
    }
}

#[tokio::test]
async fn uri_must_name_the_request_target_and_connect_wants_its_authority() {
    let addr = start(digest_layer(Digest::new())).await;
    let first = send(addr, "GET", "http://origin.test/a", None).await;
    let challenge = first.digest_challenge("SHA-256");
    let (other, _) = mufasa("/b", 1).credentials(&challenge);
    let mismatch = send(addr, "GET", "http://origin.test/a", Some(&other)).await;
    assert_eq!(mismatch.status, 400);
    assert!(mismatch.header_values("proxy-authenticate").is_empty());

    // CONNECT: `uri` is exactly host:port. A response computed correctly over "/" is refused.
    let first = send(addr, "CONNECT", "origin.test:443", None).await;
    let challenge = first.digest_challenge("SHA-256");
    let mut slash = mufasa("/", 1);
    slash.method = "CONNECT";
    let (credentials, _) = slash.credentials(&challenge);
    assert_eq!(
        send(addr, "CONNECT", "origin.test:443", Some(&credentials))
            .await
            .status,
        400
    );
    let mut authority = mufasa("origin.test:443", 2);
    authority.method = "CONNECT";
    let (credentials, _) = authority.credentials(&challenge);
    assert_eq!(
        send(addr, "CONNECT", "origin.test:443", Some(&credentials))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn an_expired_nonce_with_the_right_response_is_stale_and_a_fresh_one_works() {
    let addr = start(digest_layer(
        Digest::new().nonce_lifetime(Duration::from_secs(1)),
    ))
    .await;
    let first = send(addr, "GET", "http://origin.test/", None).await;
    let challenge = first.digest_challenge("SHA-256");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (late, _) = mufasa("/", 1).credentials(&challenge);
    let stale = send(addr, "GET", "http://origin.test/", Some(&late)).await;
    assert_eq!(stale.status, 407);
    let renewed = stale.digest_challenge("SHA-256");
    assert_eq!(challenge_params(&renewed)["stale"], "true");
    // Only the scheme whose nonce was stale says so.
    assert!(stale
        .header_values("proxy-authenticate")
        .iter()
        .any(|c| c.starts_with("Basic ")));
    let mut wrong = mufasa("/", 1);
    wrong.password = "nope";
    let no_stale = send(
        addr,
        "GET",
        "http://origin.test/",
        Some(&wrong.credentials(&challenge).0),
    )
    .await;
    assert!(no_stale
        .header_values("proxy-authenticate")
        .iter()
        .all(|c| !c.contains("stale")));
    // The client retries with the fresh nonce without asking the user again.
    let (retry, _) = mufasa("/", 1).credentials(&renewed);
    assert_eq!(
        send(addr, "GET", "http://origin.test/", Some(&retry))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn instances_sharing_a_key_know_each_others_nonces_and_another_key_does_not() {
    let key = || NonceKey::from_bytes(b"one key for every instance of the fleet").unwrap();
    let a = start(digest_layer(Digest::new().nonce_key(key()))).await;
    let b = start(digest_layer(Digest::new().nonce_key(key()))).await;
    let c = start(digest_layer(Digest::new().nonce_key(
        NonceKey::from_bytes(b"a key of its own, not the fleet's").unwrap(),
    )))
    .await;
    let first = send(a, "GET", "http://origin.test/", None).await;
    let challenge = first.digest_challenge("SHA-256");
    let (credentials, _) = mufasa("/", 1).credentials(&challenge);
    // B verifies A's nonce. Its replay store is its own, so rather than accept counts it has
    // never seen (a replay of a request A took would pass), it answers stale=true: the client
    // retries with B's nonce without asking the user.
    let on_b = send(b, "GET", "http://origin.test/", Some(&credentials)).await;
    assert_eq!(on_b.status, 407);
    let renewed = on_b.digest_challenge("SHA-256");
    assert_eq!(challenge_params(&renewed)["stale"], "true");
    assert_eq!(
        send(
            b,
            "GET",
            "http://origin.test/",
            Some(&mufasa("/", 1).credentials(&renewed).0)
        )
        .await
        .status,
        200
    );
    // C, with another key, sees a forgery: no stale.
    let on_c = send(c, "GET", "http://origin.test/", Some(&credentials)).await;
    assert_eq!(on_c.status, 407);
    assert!(on_c
        .header_values("proxy-authenticate")
        .iter()
        .all(|h| !h.contains("stale")));
    // A itself takes its own nonce.
    assert_eq!(
        send(a, "GET", "http://origin.test/", Some(&credentials))
            .await
            .status,
        200
    );
}

/// A replay store every instance shares: here one [`MemoryReplayStore`] (its clones share
/// their shards) seen by two layers in this process, standing for a networked store.
#[derive(Clone)]
struct SharedStore(MemoryReplayStore);

impl ReplayStore for SharedStore {
    fn record(
        &self,
        nonce: &NonceId,
        nc: u32,
        lifetime: Duration,
    ) -> Answer<Result<ReplayVerdict, ValidatorError>> {
        self.0.record(nonce, nc, lifetime)
    }

    fn is_shared(&self) -> bool {
        true
    }
}

/// With a shared replay store, instance B takes the nonce A issued at once (200, no stale
/// round trip), and a count A took is a replay at B.
#[tokio::test]
async fn with_a_shared_replay_store_another_instance_accepts_the_nonce_and_refuses_its_replay() {
    let key = || NonceKey::from_bytes(b"one key for every instance of the fleet").unwrap();
    let store = SharedStore(MemoryReplayStore::new(1_000, Duration::from_secs(300)));
    let a = start(digest_layer(
        Digest::new().nonce_key(key()).replay_store(store.clone()),
    ))
    .await;
    let b = start(digest_layer(
        Digest::new().nonce_key(key()).replay_store(store),
    ))
    .await;
    let first = send(a, "GET", "http://origin.test/", None).await;
    let challenge = first.digest_challenge("SHA-256");
    let (one, _) = mufasa("/", 1).credentials(&challenge);
    let on_b = send(b, "GET", "http://origin.test/", Some(&one)).await;
    assert_eq!(on_b.status, 200, "{on_b:#?}");
    assert_eq!(on_b.text(), "Mufasa Digest");
    // The same count again, at A: refused, and not as stale.
    let replayed = send(a, "GET", "http://origin.test/", Some(&one)).await;
    assert_eq!(replayed.status, 407);
    assert!(replayed
        .header_values("proxy-authenticate")
        .iter()
        .all(|h| !h.contains("stale")));
    // The next count, at A.
    let (two, _) = mufasa("/", 2).credentials(&challenge);
    assert_eq!(
        send(a, "GET", "http://origin.test/", Some(&two))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn origin_mode_uses_www_authenticate_and_authentication_info() {
    let layer = ProxyAuthLayer::offering(
        Digest::new(),
        StaticUsers::with_realm("api").with_user("Mufasa", "Circle of Life"),
    )
    .party(Party::Origin)
    .realm("api")
    .build()
    .unwrap();
    let addr = start(layer).await;
    let mut conn = RawConn::connect(addr).await;
    conn.send(request_head(
        "GET",
        "/dir/index.html",
        &[("Host", "api.test")],
    ))
    .await;
    let first = conn.read_response().await;
    assert_eq!(first.status, 401);
    let challenge = first.header_values("www-authenticate")[0].to_owned();
    let (credentials, rspauth) = mufasa("/dir/index.html", 1).credentials(&challenge);
    conn.send(request_head(
        "GET",
        "/dir/index.html",
        &[("Host", "api.test"), ("Authorization", &credentials)],
    ))
    .await;
    let ok = conn.read_response().await;
    assert_eq!(ok.status, 200, "{ok:#?}");
    let info = challenge_params(&format!("x {}", ok.header("authentication-info").unwrap()));
    assert_eq!(info["rspauth"], rspauth);
}

#[test]
fn a_mismatched_static_users_realm_is_a_build_error() {
    let err = ProxyAuthLayer::offering(Digest::new(), StaticUsers::new().with_user("a", "b"))
        .realm("corp")
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("StaticUsers::with_realm(\"corp\")"),
        "{err}"
    );
}

#[tokio::test]
async fn an_htdigest_file_made_by_htdigest_serves_md5_and_follows_changes() {
    use tower_proxy_auth::store::Htdigest;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.htdigest");
    htdigest(&file, "proxy", "Mufasa", "Circle of Life", true);
    let users = Htdigest::builder()
        .watch_interval(Duration::from_millis(50))
        .open(&file)
        .unwrap();
    let layer = ProxyAuthLayer::offering(Digest::new(), users.clone())
        .build()
        .unwrap();
    let addr = start(layer).await;
    let first = send(addr, "GET", "http://origin.test/", None).await;
    // The file holds MD5 HA1s only: SHA-256 is left out of the default offer.
    assert_eq!(first.offered_algorithms(), ["MD5"]);
    let challenge = first.digest_challenge("MD5");
    assert_eq!(
        send(
            addr,
            "GET",
            "http://origin.test/",
            Some(&mufasa("/", 1).credentials(&challenge).0)
        )
        .await
        .status,
        200
    );

    // `htdigest` changes the password: the new one works once the watcher has seen it.
    htdigest(&file, "proxy", "Mufasa", "new life", false);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while users.generation() < 2 {
        assert!(std::time::Instant::now() < deadline, "reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut changed = mufasa("/", 2);
    changed.password = "new life";
    assert_eq!(
        send(
            addr,
            "GET",
            "http://origin.test/",
            Some(&changed.credentials(&challenge).0)
        )
        .await
        .status,
        200
    );
    assert_eq!(
        send(
            addr,
            "GET",
            "http://origin.test/",
            Some(&mufasa("/", 3).credentials(&challenge).0)
        )
        .await
        .status,
        407
    );

    // A layer whose realm the file does not have fails to build, naming it.
    let err = ProxyAuthLayer::offering(Digest::new(), users)
        .realm("corp")
        .build()
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("no user in the layer's realm \"corp\""),
        "{err}"
    );
}
