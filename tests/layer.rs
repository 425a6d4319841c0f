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
    BasicCredentials, BuildError, Decision, Identity, ProxyAuthLayer, StaticUsers, Validator,
};

/// A marker an outer layer puts in the extensions, to prove the layer keeps them.
#[derive(Clone)]
struct Marker(&'static str);

/// Serves `layer` in front of an echo service on 127.0.0.1:0. The echo answers 200 with one line
/// per fact the tests check: the identity, what it saw of the credential fields, the marker.
async fn serve<V: Validator>(layer: ProxyAuthLayer<V>) -> SocketAddr {
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
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client")
}

fn basic(user: &str, password: &str) -> String {
    BasicCredentials::new(user, password)
        .expect("valid credentials")
        .encode()
}

async fn get(
    addr: SocketAddr,
    headers: &[(&str, &str)],
) -> (StatusCode, reqwest::header::HeaderMap, String) {
    let mut request = client().get(format!("http://{addr}/"));
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
