//! The parts of the `forward-proxy` binary a program of its own can lift: a forward HTTP/1.1
//! proxy service ([`ForwardProxy`]: HTTP forwarding with one retry, CONNECT tunnels), the
//! removal of hop-by-hop fields from header and trailer sections ([`hop_by_hop`]), the policy
//! that keeps clients away from the proxy host's internal addresses ([`targets`]), the
//! tunnel relay with its idle timeout ([`tunnel`]), and who the client is behind a load
//! balancer: trusted `X-Forwarded-For` / `Forwarded` fields ([`client_address`]) and HAProxy's
//! PROXY protocol ([`proxy_protocol`]).
//!
//! The binary (`src/main.rs`) adds the command line, the authentication set-up
//! (`tower_proxy_auth::ProxyAuthLayer` around [`ForwardProxy`]), the accept loop with its
//! connection limit and shutdown, TLS and the access log.
//!
//! ```no_run
//! use tower::ServiceBuilder;
//! use tower_proxy_auth::{ProxyAuthLayer, StaticUsers};
//! use tower_proxy_auth_proxy::ForwardProxy;
//!
//! # fn main() -> Result<(), tower_proxy_auth::BuildError> {
//! let auth = ProxyAuthLayer::builder(StaticUsers::new().with_user("alice", "s3cret")).build()?;
//! let service = ServiceBuilder::new().layer(auth).service(ForwardProxy::builder().build());
//! // Serve `service` per connection with hyper's http1 server, `.with_upgrades()` for CONNECT
//! // (tower-proxy-auth's examples/hyper_server.rs shows the loop).
//! # let _ = service;
//! # Ok(()) }
//! ```

pub mod client_address;
mod forward;
pub mod hop_by_hop;
mod proxy;
pub mod proxy_protocol;
mod reply;
pub mod targets;
pub mod tunnel;

pub use proxy::{ForwardProxy, ForwardProxyBuilder, ProxyBody, TunnelReport, Upstream};
