//! An axum gateway behind proxy authentication.
//!
//! `ProxyAuthLayer` stacks on an axum `Router` beside tower-http's `TraceLayer`; the handler
//! reads the authenticated user from the request's extensions.
//!
//! ```text
//! cargo run --example axum_gateway            # listens on 127.0.0.1:3000
//! curl -x http://alice:s3cret@127.0.0.1:3000 http://anything.example/whoami
//! ```

use axum::routing::get;
use axum::{Extension, Router};
use tower::ServiceBuilder;
use tower_http::trace::TraceLayer;
use tower_proxy_auth::{Identity, ProxyAuthLayer, StaticUsers};

/// The gateway: `GET /whoami` answers `hello <user>` to an authenticated client.
pub fn app() -> Router {
    let users = StaticUsers::new()
        .with_user("alice", "s3cret")
        .with_user("bob", "hunter2");
    Router::new().route("/whoami", get(whoami)).layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(ProxyAuthLayer::new(users)),
    )
}

async fn whoami(Extension(identity): Extension<Identity>) -> String {
    format!("hello {}\n", identity.user())
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
    axum::serve(listener, app()).await
}
