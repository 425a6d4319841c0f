//! A relay in front of the proxy for real clients: it records every request head a client
//! sends (so a test can read which Digest algorithm the client chose from its
//! `Proxy-Authorization`), and it passes on only requests for loopback targets.
//!
//! A browser sends requests of its own to whatever proxy it is given (Chromium: update checks
//! to `update.googleapis.com`, sign-in to `accounts.google.com`), and once it holds the proxy's
//! credentials it may answer their challenges too; the proxy would then connect out. The relay
//! closes the connection of any request whose target is not on 127.0.0.0/8, `localhost` or
//! `[::1]` before the proxy sees it, so the tests' traffic stays on this machine whatever a
//! client does.
//!
//! It reads HTTP/1.1 request heads on each connection in turn; bodies framed by
//! `Content-Length` pass unread; after a CONNECT head, once the client starts a TLS handshake,
//! everything passes unread (the tunnel, to a target already checked). A chunked request body
//! is refused (no client relayed by the tests sends one).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// The largest request head the relay reads.
const MAX_HEAD: usize = 64 * 1024;

/// One request head as a client sent it through a [`LoopbackRelay`].
#[derive(Debug, Clone)]
pub struct RelayedRequest {
    /// The method, as sent.
    pub method: String,
    /// The request-target, as sent.
    pub target: String,
    /// The whole head, request line and field lines.
    pub head: String,
    /// Why the relay closed the connection instead of passing the request on; `None` when it
    /// passed it on.
    pub refused: Option<&'static str>,
}

impl RelayedRequest {
    /// The value of the first field `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// A TCP relay on 127.0.0.1:0 to `upstream` that records request heads and passes on only
/// those for loopback targets (module docs). Stopped, with its connections, on drop.
pub struct LoopbackRelay {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<RelayedRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackRelay {
    /// Starts a relay to `upstream` (the proxy).
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay local_addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                connections.spawn(relay(client, upstream, log.clone()));
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    /// The relay's address: give it to the client as its proxy.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request head seen so far, oldest first.
    pub fn requests(&self) -> Vec<RelayedRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests the relay refused (non-loopback targets).
    pub fn refused(&self) -> Vec<RelayedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.refused.is_some())
            .collect()
    }

    /// The `Proxy-Authorization` values of the requests passed on, oldest first.
    pub fn proxy_authorizations(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.refused.is_none())
            .filter_map(|r| r.header("proxy-authorization").map(str::to_owned))
            .collect()
    }
}

impl Drop for LoopbackRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `host` (as in a URI's authority, IPv6 in brackets) names this machine.
fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why a request must not pass, or `None`: its target (absolute-form or authority-form) or,
/// for an origin-form target (a request inside a tunnel, or one the proxy answers 400), its
/// `Host` names something other than this machine.
fn refusal(request: &RelayedRequest) -> Option<&'static str> {
    let host = if request.target.starts_with('/') {
        request.header("host").unwrap_or_default().to_owned()
    } else {
        match request.target.parse::<http::Uri>() {
            Ok(uri) => uri.host().unwrap_or_default().to_owned(),
            Err(_) => return Some("unparsable request-target"),
        }
    };
    let host = host
        .parse::<http::uri::Authority>()
        .map(|a| a.host().to_owned())
        .unwrap_or(host);
    (!is_loopback_host(&host)).then_some("target not on loopback")
}

async fn relay(client: TcpStream, upstream: SocketAddr, log: Arc<Mutex<Vec<RelayedRequest>>>) {
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let (mut from_client, to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let mut back = tokio::spawn(async move {
        let mut to_client = to_client;
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    });
    let _ = forward_requests(&mut from_client, &mut to_server, &log).await;
    let _ = to_server.shutdown().await;
    // The answers to what was passed on still reach the client; a refusal closes at once.
    let refused = log
        .lock()
        .unwrap()
        .last()
        .is_some_and(|r| r.refused.is_some());
    if refused {
        back.abort();
    } else {
        let _ = (&mut back).await;
    }
}

/// Passes request heads (and their bodies) on until the client stops, a tunnel ends, or a
/// request is refused.
async fn forward_requests(
    from_client: &mut OwnedReadHalf,
    to_server: &mut OwnedWriteHalf,
    log: &Mutex<Vec<RelayedRequest>>,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let head_len = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > MAX_HEAD || !read_more(from_client, &mut buf).await? {
                return Ok(());
            }
        };
        let head_bytes: Vec<u8> = buf.drain(..head_len).collect();
        let head = String::from_utf8_lossy(&head_bytes).into_owned();
        let mut request_line = head.split("\r\n").next().unwrap_or_default().split(' ');
        let method = request_line.next().unwrap_or_default().to_owned();
        let target = request_line.next().unwrap_or_default().to_owned();
        let mut request = RelayedRequest {
            method: method.clone(),
            target,
            head,
            refused: None,
        };
        request.refused = refusal(&request);
        let chunked = request
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if request.refused.is_none() && chunked {
            request.refused = Some("chunked request body");
        }
        let length: usize = match request.header("content-length").map(str::parse) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                request.refused = request.refused.or(Some("bad Content-Length"));
                0
            }
        };
        let refused = request.refused.is_some();
        log.lock().unwrap().push(request);
        if refused {
            return Ok(());
        }
        to_server.write_all(&head_bytes).await?;
        if method == "CONNECT" {
            // A TLS record next (0x16, a handshake) is the tunnel's first byte: pass the rest
            // unread. Anything else is read as a request head again (another CONNECT after a
            // 407 on the same connection, or HTTP inside a tunnel to a loopback target).
            if buf.is_empty() && !read_more(from_client, &mut buf).await? {
                return Ok(());
            }
            if buf[0] == 0x16 {
                to_server.write_all(&buf).await?;
                tokio::io::copy(from_client, to_server).await?;
                return Ok(());
            }
            continue;
        }
        let mut left = length;
        while left > 0 {
            if buf.is_empty() && !read_more(from_client, &mut buf).await? {
                return Ok(());
            }
            let n = left.min(buf.len());
            to_server.write_all(&buf[..n]).await?;
            buf.drain(..n);
            left -= n;
        }
    }
}

/// Reads more bytes into `buf`; `false` at end of stream.
async fn read_more(from: &mut OwnedReadHalf, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut chunk = [0u8; 8192];
    let n = from.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n > 0)
}
