//! The layer beside tower-http's layers in one `ServiceBuilder`, on an axum `Router`, and the
//! `Identity` extractor (cargo feature `axum`): real servers on 127.0.0.1, reqwest and curl.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use http::StatusCode;
use tower::ServiceBuilder;
use tower_http::cors::CorsLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_proxy_auth::extract::MissingIdentity;
use tower_proxy_auth::{Identity, Party, ProxyAuthLayer, StaticUsers};

use support::curl;

fn users() -> StaticUsers {
    StaticUsers::new().with_user("alice", "s3cret")
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn whoami(user: Identity) -> String {
    format!("hello {} ({})\n", user.user(), user.scheme().unwrap_or("-"))
}

async fn slow(user: Identity) -> String {
    tokio::time::sleep(Duration::from_secs(3)).await;
    format!("late {}\n", user.user())
}

async fn maybe(user: Option<Identity>) -> String {
    user.map_or_else(|| "anonymous\n".to_owned(), |u| format!("{}\n", u.user()))
}

/// The stack the issue names, exactly: before `ResponseBody: Default`, `CorsLayer` and
/// `TimeoutLayer` did not compile around this layer.
fn stacked_app() -> Router {
    let auth = ProxyAuthLayer::builder(users())
        .party(Party::Origin)
        .build()
        .unwrap();
    Router::new()
        .route("/whoami", get(whoami))
        .route("/slow", get(slow))
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(CorsLayer::permissive())
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(1),
                ))
                .layer(auth),
        )
}

#[tokio::test]
async fn auth_inside_trace_cors_and_timeout_on_an_axum_router() {
    let addr = serve(stacked_app()).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/whoami");

    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    // CORS wraps the 401 too, so a browser script can read why it was refused.
    let response = client
        .get(&url)
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");

    let response = client
        .get(&url)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "hello alice (Basic)\n");

    // A CORS preflight carries no credentials (browsers never send them on OPTIONS): the
    // CORS layer, outside the auth layer, answers it.
    let response = client
        .request(http::Method::OPTIONS, &url)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response
        .headers()
        .contains_key("access-control-allow-methods"));

    // The timeout covers what runs inside it: the validator and the handler.
    let out = curl(&[
        "-w",
        " %{http_code}",
        "-u",
        "alice:s3cret",
        &format!("http://{addr}/slow"),
    ])
    .await;
    assert!(out.stdout.ends_with(" 408"), "{}", out.stdout);
}

#[tokio::test]
async fn the_identity_extractor_and_its_optional_form() {
    let app = Router::new()
        .route("/whoami", get(whoami))
        .route("/maybe", get(maybe))
        .layer(ProxyAuthLayer::new(users()))
        // Added after the layer: not covered by it.
        .route("/uncovered", get(whoami))
        .route("/uncovered-maybe", get(maybe));
    let addr = serve(app).await;
    let client = reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::http(format!("http://{addr}"))
                .unwrap()
                .basic_auth("alice", "s3cret"),
        )
        .build()
        .unwrap();
    let get_text = |path: &'static str| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://gateway.test{path}"))
                .send()
                .await
                .unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    assert_eq!(
        get_text("/whoami").await,
        (StatusCode::OK, "hello alice (Basic)\n".to_owned())
    );
    assert_eq!(
        get_text("/maybe").await,
        (StatusCode::OK, "alice\n".to_owned())
    );
    // A route the layer does not cover: the extractor says why instead of a bare 500.
    assert_eq!(
        get_text("/uncovered").await,
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            MissingIdentity::TEXT.to_owned()
        )
    );
    assert!(MissingIdentity::TEXT.contains("route_layer"));
    assert_eq!(
        get_text("/uncovered-maybe").await,
        (StatusCode::OK, "anonymous\n".to_owned())
    );
}
