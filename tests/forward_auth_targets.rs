//! Forward auth's cache and its sharing of checks in flight key an answer by the credentials
//! and by everything else the service is sent (method, target, client address, copied
//! headers), so a per-target decision made for one request is never used for another. (A
//! third hostile review found them keyed by the credentials alone: each test here let a
//! refused target in.)

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::response::IntoResponse;
use http::{HeaderMap, HeaderName, StatusCode};
use tower::ServiceBuilder;
use tower_proxy_auth::store::forward_auth::ForwardAuth;
use tower_proxy_auth::{Identity, ProxyAuthLayer};

use support::{basic, proxy_get, serve};

/// alice:s3cret may reach `allowed.test` (200, `x-auth-user: alice`), nothing else (403).
/// `public.test` is a bypass rule: 200 for anyone, without `x-auth-user` (as Authelia's
/// `bypass` policy or oauth2-proxy's skip-auth routes do). Every answer takes `delay`.
async fn per_target_service(delay: Duration) -> SocketAddr {
    let app = axum::Router::new().route(
        "/verify",
        axum::routing::any(move |headers: HeaderMap| async move {
            tokio::time::sleep(delay).await;
            let uri = headers
                .get("x-forwarded-uri")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if uri.starts_with("http://public.test/") {
                return StatusCode::OK.into_response();
            }
            let creds = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            if creds != basic("alice", b"s3cret") {
                return StatusCode::UNAUTHORIZED.into_response();
            }
            if uri.starts_with("http://allowed.test/") {
                (StatusCode::OK, [("x-auth-user", "alice")]).into_response()
            } else {
                StatusCode::FORBIDDEN.into_response()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn start(ttl: Duration, service: SocketAddr) -> SocketAddr {
    let validator = ForwardAuth::to(format!("http://{service}/verify"))
        .identity_from(HeaderName::from_static("x-auth-user"))
        .credentials_ttl(ttl)
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    serve(
        ServiceBuilder::new()
            .layer(ProxyAuthLayer::new(validator))
            .service_fn(|req: http::Request<_>| {
                let who = req
                    .extensions()
                    .get::<Identity>()
                    .map(|i| i.user().to_owned())
                    .unwrap_or_default();
                async move { Ok::<_, Infallible>(http::Response::new(format!("hello {who}"))) }
            }),
    )
    .await
}

async fn get(addr: SocketAddr, url: &str, user: &str, pw: &str) -> (u16, String) {
    let auth = basic(user, pw.as_bytes());
    let r = proxy_get(addr, url, &[("Proxy-Authorization", &auth)]).await;
    (r.status, r.text())
}

/// An allow remembered for one target does not answer for another.
#[tokio::test]
async fn a_403_target_is_let_in_by_the_allow_remembered_for_another_target() {
    let service = per_target_service(Duration::ZERO).await;
    let addr = start(Duration::from_secs(60), service).await;
    assert_eq!(
        get(addr, "http://denied.test/", "alice", "s3cret").await.0,
        403
    );
    assert_eq!(
        get(addr, "http://allowed.test/", "alice", "s3cret").await.0,
        200
    );
    let denied = get(addr, "http://denied.test/", "alice", "s3cret").await;
    assert_eq!(denied.0, 403, "denied.test after allowed.test: {denied:?}");
}

/// A check in flight for one target is not shared with a request for another.
#[tokio::test]
async fn with_a_zero_ttl_a_403_target_is_let_in_by_a_check_in_flight_for_another() {
    let service = per_target_service(Duration::from_millis(300)).await;
    let addr = start(Duration::ZERO, service).await;
    let allowed =
        tokio::spawn(async move { get(addr, "http://allowed.test/", "alice", "s3cret").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let denied = get(addr, "http://denied.test/", "alice", "s3cret").await;
    assert_eq!(allowed.await.unwrap().0, 200);
    assert_eq!(
        denied.0, 403,
        "denied.test while allowed.test was asked: {denied:?}"
    );
}

/// A 2xx without the `identity_from` field takes the client's own user-id as the identity (the
/// service accepted those credentials for that target), but that allow opens no other target.
#[tokio::test]
async fn a_bypass_target_makes_any_claimed_user_an_identity_for_every_target() {
    let service = per_target_service(Duration::ZERO).await;
    let addr = start(Duration::from_secs(60), service).await;
    assert_eq!(
        get(addr, "http://denied.test/", "admin", "guess").await.0,
        407
    );
    let public = get(addr, "http://public.test/", "admin", "guess").await;
    assert_eq!(public, (200, "hello admin".to_owned()));
    let denied = get(addr, "http://denied.test/", "admin", "guess").await;
    assert_eq!(
        denied.0, 407,
        "admin:guess on denied.test after public.test: {denied:?}"
    );
}
