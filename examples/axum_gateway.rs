//! An axum gateway with both kinds of authentication, beside tower-http's `TraceLayer`.
//!
//! - `GET /whoami` is a proxy-style route: clients reach the gateway as a proxy and send
//!   `Proxy-Authorization` (`curl -x`); without it they get 407 and `Proxy-Authenticate`.
//! - `GET /api/me` is an API route of the gateway itself (an origin): clients send
//!   `Authorization` (`curl -u`); without it they get 401, `WWW-Authenticate` and a JSON body.
//!
//! Handlers read the user with the `Identity` extractor (cargo feature `axum`).
//!
//! ```text
//! cargo run --example axum_gateway            # listens on 127.0.0.1:3000
//! curl -x http://alice:s3cret@127.0.0.1:3000 http://anything.example/whoami
//! curl -u alice:s3cret http://127.0.0.1:3000/api/me
//! ```

use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;
use tower_proxy_auth::{Identity, Party, ProxyAuthLayer, RejectionBody, StaticUsers};

/// The gateway's router.
pub fn app() -> Router {
    let users = StaticUsers::new()
        .with_user("alice", "s3cret")
        .with_user("bob", "hunter2");
    let proxy_auth = ProxyAuthLayer::builder(users.clone())
        .realm("gateway")
        .build()
        .expect("a valid realm");
    let api_auth = ProxyAuthLayer::builder(users)
        .party(Party::Origin)
        .realm("gateway api")
        .render_rejection(|rejection, _request| {
            RejectionBody::json(format!(
                "{{\"error\":\"{}\",\"reason\":\"{}\"}}\n",
                rejection.outcome(),
                rejection.reason()
            ))
        })
        .build()
        .expect("a valid realm");
    let api = Router::new().route("/me", get(me)).layer(api_auth);
    Router::new()
        .route("/whoami", get(whoami))
        // Covers the routes added before it only: /whoami, not /api.
        .route_layer(proxy_auth)
        .nest("/api", api)
        .layer(TraceLayer::new_for_http())
}

async fn whoami(user: Identity) -> String {
    format!("hello {}\n", user.user())
}

async fn me(user: Identity) -> String {
    format!(
        "{{\"user\":\"{}\",\"scheme\":\"{}\"}}\n",
        user.user(),
        user.scheme().unwrap_or("-")
    )
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=debug".into()),
        )
        .init();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on {}", listener.local_addr()?);
    println!("try: curl -x http://alice:s3cret@127.0.0.1:3000 http://gateway.example/whoami");
    println!("     curl -u alice:s3cret http://127.0.0.1:3000/api/me");
    axum::serve(listener, app()).await
}
