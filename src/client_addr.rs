//! What a server tells the layer about a request's connection, as request extensions: the
//! client's address ([`ClientAddr`]) and which connection it came on ([`ConnectionMarker`]).
//!
//! A server inserts [`ClientAddr`] into each request's extensions (the example proxy does it for
//! every accepted connection); the failure throttle and logs read it from there. Servers that
//! already carry the address in another type (axum's `ConnectInfo<SocketAddr>`) can point the
//! throttle at that type instead, see [`FailureThrottle::client_addr_from`](crate::FailureThrottle::client_addr_from).

use std::net::SocketAddr;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

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

/// Marks the requests of one connection, so that the failure throttle can count consecutive
/// failures on it and close a connection that loops on wrong credentials (see
/// [`FailureThrottle`](crate::FailureThrottle)).
///
/// A server makes one per accepted connection and inserts a clone into every request it reads
/// from that connection (the example proxy does). Clones share the count.
///
/// ```
/// use tower_proxy_auth::ConnectionMarker;
///
/// let marker = ConnectionMarker::new(); // when the connection is accepted
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(marker.clone()); // for each request on it
/// ```
#[derive(Debug, Clone, Default)]
pub struct ConnectionMarker {
    pub(crate) failures: Arc<AtomicU32>,
}

impl ConnectionMarker {
    /// A marker for a new connection.
    pub fn new() -> Self {
        Self::default()
    }
}
