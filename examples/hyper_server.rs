//! The smallest complete server around the layer: hyper-util's auto (HTTP/1.1 and HTTP/2)
//! connection builder with upgrades, one task per connection, the client address for the
//! layer's throttle and logs, and a handler that greets the user.
//!
//! ```text
//! cargo run --example hyper_server -- 127.0.0.1:3000
//! curl -x http://alice:s3cret@127.0.0.1:3000 http://any.example/      # hello alice
//! curl -p -x http://alice:s3cret@127.0.0.1:3000 http://any.example/   # CONNECT, then echoed
//! ```
//!
//! A CONNECT is answered 200 and the upgraded connection echoes what it receives, to show
//! where a proxy would relay (the forward proxy in `proxy/` connects to the target instead).

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_proxy_auth::{ClientAddr, Identity, ProxyAuthLayer, StaticUsers};

async fn handle(mut request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let user = request
        .extensions()
        .get::<Identity>()
        .map(|i| i.user().to_owned());
    if request.method() == Method::CONNECT {
        let upgrade = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            if let Ok(upgraded) = upgrade.await {
                let (mut reader, mut writer) = tokio::io::split(TokioIo::new(upgraded));
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            }
        });
        return Ok(Response::new(Full::default()));
    }
    let text = format!("hello {}\n", user.unwrap_or_default());
    Ok(Response::new(Full::new(Bytes::from(text))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned())
        .parse()?;
    let users = StaticUsers::new().with_user("alice", "s3cret");
    let layer = ProxyAuthLayer::builder(users)
        .realm("hyper example")
        .build()?;

    let listener = TcpListener::bind(addr).await?;
    println!("listening on {}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        let service = ServiceBuilder::new()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ClientAddr(peer));
                request
            })
            .layer(layer.clone())
            .service_fn(handle);
        tokio::spawn(async move {
            let server = auto::Builder::new(TokioExecutor::new());
            let connection = server.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            if let Err(e) = connection.await {
                eprintln!("connection from {peer}: {e}");
            }
        });
    }
}
