//! The client's network address, as a request extension.
//!
//! A server inserts [`ClientAddr`] into each request's extensions (the example proxy does it for
//! every accepted connection); the failure throttle and logs read it from there. Servers that
//! already carry the address in another type (axum's `ConnectInfo<SocketAddr>`) can point the
//! throttle at that type instead, see [`FailureThrottle::client_addr_from`](crate::FailureThrottle::client_addr_from).

use std::net::SocketAddr;

/// The peer address of the connection a request arrived on.
///
/// ```
/// use std::net::SocketAddr;
/// use tower_proxy_auth::ClientAddr;
///
/// let mut request = http::Request::new(());
/// let peer: SocketAddr = "127.0.0.1:50000".parse().unwrap();
/// request.extensions_mut().insert(ClientAddr(peer));
/// assert_eq!(request.extensions().get::<ClientAddr>().map(|a| a.0), Some(peer));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub SocketAddr);
