//! CONNECT tunnels: the byte relay between a client and its target, closed when either side
//! closes or when neither has sent anything for an idle timeout; and the proxy's CONNECT
//! handling around it (connect first, answer 200 only once the target is open).
//!
//! [`relay`] works on any two async byte streams, so it can be lifted on its own: hyper's
//! `Upgraded` connection and a `TcpStream`, two TLS streams, a test's in-memory pipes.
//!
//! ```no_run
//! # async fn demo(client: tokio::net::TcpStream) -> std::io::Result<()> {
//! use std::time::Duration;
//! use tower_proxy_auth_proxy::tunnel::{relay, RelayEnd};
//!
//! let target = tokio::net::TcpStream::connect("192.0.2.7:443").await?;
//! let relayed = relay(client, target, Duration::from_secs(600)).await;
//! println!("{} bytes up, {} down", relayed.up, relayed.down);
//! if let RelayEnd::IdleTimeout = relayed.end {
//!     println!("closed: nothing sent for 600 s");
//! }
//! # Ok(()) }
//! ```

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::{Scheme, Uri};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower::ServiceExt as _;
use tracing::debug;

use crate::proxy::{ForwardProxy, ProxyBody};
use crate::reply::{empty, text, ErrorChain};
use crate::targets::TargetRefused;

/// How a [`relay`] went: bytes read from each side and why it ended.
#[derive(Debug)]
#[non_exhaustive]
pub struct Relayed {
    /// Bytes read from the client and written to the target.
    pub up: u64,
    /// Bytes read from the target and written to the client.
    pub down: u64,
    /// Why the relay ended.
    pub end: RelayEnd,
}

/// Why a [`relay`] ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum RelayEnd {
    /// Both sides closed (each end-of-stream was passed on as a write shutdown).
    Closed,
    /// No byte was read from either side for the idle timeout.
    IdleTimeout,
    /// Reading or writing failed (a reset, a broken pipe).
    Failed(io::Error),
}

/// Relays bytes both ways between `client` and `target` until both sides have closed, an I/O
/// error, or `idle_timeout` passes with no byte read from either side; returns the byte counts
/// and the reason. Wakes once per idle period, not per byte. A timeout beyond what the clock
/// can represent never fires.
pub async fn relay<C, T>(client: C, target: T, idle_timeout: Duration) -> Relayed
where
    C: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let activity = Activity::new();
    let mut client = Watched::new(client, &activity, &activity.up);
    let mut target = Watched::new(target, &activity, &activity.down);
    let copying = tokio::io::copy_bidirectional(&mut client, &mut target);
    let end = tokio::select! {
        result = copying => match result {
            Ok(_) => RelayEnd::Closed,
            Err(e) => RelayEnd::Failed(e),
        },
        () = activity.idle_for(idle_timeout) => RelayEnd::IdleTimeout,
    };
    Relayed {
        up: activity.up.load(Ordering::Relaxed),
        down: activity.down.load(Ordering::Relaxed),
        end,
    }
}

/// What a tunnel has read: when last (milliseconds since it opened) and how much each way.
struct Activity {
    opened: tokio::time::Instant,
    last_read_ms: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: tokio::time::Instant::now(),
            last_read_ms: AtomicU64::new(0),
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_read_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once `timeout` has passed since the last read.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let since_open = Duration::from_millis(self.last_read_ms.load(Ordering::Relaxed));
            let Some(deadline) = self
                .opened
                .checked_add(since_open)
                .and_then(|last| last.checked_add(timeout))
            else {
                return std::future::pending().await;
            };
            if tokio::time::Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// An I/O object that records every read that returns bytes in an [`Activity`].
struct Watched<'a, T> {
    io: T,
    activity: &'a Activity,
    count: &'a AtomicU64,
}

impl<'a, T> Watched<'a, T> {
    fn new(io: T, activity: &'a Activity, count: &'a AtomicU64) -> Self {
        Self {
            io,
            activity,
            count,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.activity.touch();
            self.count.fetch_add(read as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl ForwardProxy {
    /// `CONNECT host:port`: connects to the target first (bounded by the connect timeout, after
    /// the target policy), answers 200 only once it is open, then relays on the upgraded
    /// connection in a task of its own. The request's extensions live in that task until the
    /// tunnel ends, so a guard the server put there (a connection slot, a shutdown tracker)
    /// covers the tunnel too.
    pub(crate) async fn tunnel(&self, mut request: Request<Incoming>) -> Response<ProxyBody> {
        let Some(authority) = request.uri().authority().cloned() else {
            return text(
                StatusCode::BAD_REQUEST,
                "Bad request: CONNECT needs a host:port target\n",
            );
        };
        if authority.port_u16().is_none() {
            return text(
                StatusCode::BAD_REQUEST,
                "Bad request: CONNECT needs a host:port target\n",
            );
        }
        if let Err(refused) = self.targets.check_host(authority.host()) {
            debug!(error = %refused, "CONNECT target refused");
            return crate::reply::refused();
        }
        let Ok(target) = Uri::builder()
            .scheme(Scheme::HTTP)
            .authority(authority.clone())
            .path_and_query("/")
            .build()
        else {
            return text(
                StatusCode::BAD_REQUEST,
                "Bad request: unusable CONNECT target\n",
            );
        };

        // Connect before answering, so a 200 always means an open tunnel.
        let connecting = self.connector.clone().oneshot(target);
        let upstream = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(io)) => io.into_inner(),
            Ok(Err(e)) if TargetRefused::in_chain(&e) => {
                debug!(error = %ErrorChain(&e), "CONNECT target refused");
                return crate::reply::refused();
            }
            Ok(Err(e)) => {
                debug!(error = %ErrorChain(&e), "CONNECT target unreachable");
                return text(
                    StatusCode::BAD_GATEWAY,
                    "Bad gateway: the CONNECT target could not be reached\n",
                );
            }
            Err(_) => {
                debug!("CONNECT target timed out");
                return text(
                    StatusCode::BAD_GATEWAY,
                    "Bad gateway: the CONNECT target did not answer in time\n",
                );
            }
        };
        let peer = upstream.peer_addr().ok();

        let upgrade = hyper::upgrade::on(&mut request);
        let guards = std::mem::take(request.extensions_mut());
        let idle_timeout = self.tunnel_idle_timeout;
        let (report, reported) = crate::proxy::TunnelReport::channel();
        tokio::spawn(async move {
            let _guards = guards;
            match upgrade.await {
                Ok(upgraded) => {
                    let relayed = relay(TokioIo::new(upgraded), upstream, idle_timeout).await;
                    match &relayed.end {
                        RelayEnd::Closed => debug!(relayed.up, relayed.down, "tunnel closed"),
                        RelayEnd::IdleTimeout => debug!(
                            relayed.up,
                            relayed.down,
                            idle_s = idle_timeout.as_secs(),
                            "tunnel closed: idle timeout"
                        ),
                        RelayEnd::Failed(e) => {
                            debug!(relayed.up, relayed.down, error = %e, "tunnel failed")
                        }
                    }
                    report.send(relayed);
                }
                Err(e) => debug!(error = %e, "CONNECT upgrade failed"),
            }
        });
        let mut response = Response::new(empty());
        response.extensions_mut().insert(reported);
        if let Some(peer) = peer {
            response
                .extensions_mut()
                .insert(crate::proxy::Upstream(peer));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    #[tokio::test]
    async fn relays_both_ways_and_counts() {
        let (client, mut client_end) = tokio::io::duplex(64);
        let (target, mut target_end) = tokio::io::duplex(64);
        let relaying = tokio::spawn(relay(client, target, Duration::from_secs(60)));
        client_end.write_all(b"ping").await.unwrap();
        let mut got = [0; 4];
        target_end.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        target_end.write_all(b"pong!").await.unwrap();
        let mut got = [0; 5];
        client_end.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"pong!");
        drop(client_end);
        drop(target_end);
        let relayed = relaying.await.unwrap();
        assert_eq!((relayed.up, relayed.down), (4, 5));
        assert!(
            matches!(relayed.end, RelayEnd::Closed | RelayEnd::Failed(_)),
            "{relayed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_tunnel_ends_after_the_timeout() {
        let (client, _client_end) = tokio::io::duplex(64);
        let (target, _target_end) = tokio::io::duplex(64);
        let relayed = relay(client, target, Duration::from_secs(5)).await;
        assert!(matches!(relayed.end, RelayEnd::IdleTimeout), "{relayed:?}");
    }
}
