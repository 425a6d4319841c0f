//! Resource limits of the forward proxy (`proxy/`) on the origin side, through the real proxy:
//! the pool of origin connections (`--origin-idle-timeout`, `--max-idle-per-origin`) and the
//! idle timeout of CONNECT tunnels (`--tunnel-idle-timeout`). Together with the allocator's
//! settings (`proxy/src/allocator.rs`) they decide how long the proxy holds
//! descriptors and memory after its clients have gone.
//!
//! The origin and the tunnel target here are raw servers that record each TCP connection they
//! accept and when it ends, so the tests see what the proxy does with its upstream sockets.
//! Every proxy runs with `--worker-threads 1`, the current-thread runtime the benchmarks use.
//! Everything runs on 127.0.0.1 and every wait is bounded.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use support::{basic, proxy_get, ExampleProcess, TIMEOUT};

const USER: &str = "limits";
const PASSWORD: &str = "Limits-Pass-41c9";

fn credentials() -> String {
    basic(USER, PASSWORD.as_bytes())
}

fn proxy(extra: &[&str]) -> ExampleProcess {
    let mut args = vec!["--worker-threads", "1"];
    args.extend_from_slice(extra);
    support::start_proxy_with_user(USER, PASSWORD, &args)
}

/// One accepted TCP connection: once the peer has closed it, when.
#[derive(Debug, Clone, Copy)]
struct Lifetime {
    closed: Option<Instant>,
}

/// A server on 127.0.0.1:0 that records every connection's lifetime. As an HTTP origin it
/// answers each request head with a keep-alive `200` and a 2-byte body; as a tunnel target
/// it echoes what it reads.
struct RecordingServer {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<Lifetime>>>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Copy)]
enum Behaviour {
    Http,
    /// Answers the first request of each connection; closes on reading the second, as an
    /// origin whose keep-alive timeout ends just as the proxy reuses the connection.
    HttpClosingOnSecond,
    /// The same, closing with a reset (RST), as an origin that had already closed does when
    /// the request's bytes arrive.
    HttpResettingOnSecond,
    Echo,
}

impl RecordingServer {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local_addr");
        let connections = Arc::new(Mutex::new(Vec::new()));
        let log = connections.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let index = {
                    let mut log = log.lock().unwrap();
                    log.push(Lifetime { closed: None });
                    log.len() - 1
                };
                let log = log.clone();
                tokio::spawn(async move {
                    serve(stream, behaviour).await;
                    log.lock().unwrap()[index].closed = Some(Instant::now());
                });
            }
        });
        Self {
            addr,
            connections,
            task,
        }
    }

    fn connections(&self) -> Vec<Lifetime> {
        self.connections.lock().unwrap().clone()
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits (at most `limit`) until every connection accepted so far has been closed.
    async fn all_closed_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.connections().iter().all(|c| c.closed.is_some()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }
}

impl Drop for RecordingServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves one connection until the peer closes it (or 60 s pass).
async fn serve(mut stream: TcpStream, behaviour: Behaviour) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut answered = 0u32;
    loop {
        let read = tokio::time::timeout(Duration::from_secs(60), stream.read(&mut chunk)).await;
        let n = match read {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        match behaviour {
            Behaviour::Echo => {
                if stream.write_all(&chunk[..n]).await.is_err() {
                    return;
                }
            }
            Behaviour::Http | Behaviour::HttpClosingOnSecond | Behaviour::HttpResettingOnSecond => {
                buf.extend_from_slice(&chunk[..n]);
                // Requests without a body: one answer per complete head.
                while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    buf.drain(..end + 4);
                    answered += 1;
                    match behaviour {
                        _ if answered == 1 => {}
                        Behaviour::HttpClosingOnSecond => return,
                        Behaviour::HttpResettingOnSecond => {
                            // A zero linger makes the close a reset; it never blocks.
                            #[allow(deprecated)]
                            let _ = stream.set_linger(Some(Duration::ZERO));
                            return;
                        }
                        _ => {}
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

async fn get_ok(p: &ExampleProcess, url: &str) {
    let response = proxy_get(p.addr(), url, &[("Proxy-Authorization", &credentials())]).await;
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "ok");
}

#[tokio::test]
async fn an_idle_origin_connection_is_reused_then_closed_after_the_origin_idle_timeout() {
    let origin = RecordingServer::start(Behaviour::Http).await;
    let p = proxy(&["--origin-idle-timeout", "1"]);
    // Two clients one after the other: the second request reuses the pooled connection.
    get_ok(&p, &origin.url("/one")).await;
    get_ok(&p, &origin.url("/two")).await;
    let connections = origin.connections();
    assert_eq!(connections.len(), 1, "{connections:?}");
    let last_use = Instant::now();
    // hyper-util's pool sweeps every timeout period, so an entry goes within 2 timeouts.
    assert!(
        origin.all_closed_within(Duration::from_secs(5)).await,
        "the pooled connection was still open 5 s after its last use: {:?}",
        origin.connections()
    );
    let closed = origin.connections()[0].closed.expect("closed");
    let idle_for = closed.duration_since(last_use);
    assert!(
        idle_for >= Duration::from_millis(900),
        "closed after only {idle_for:?} idle"
    );
    // A new request after that opens a new connection and works.
    get_ok(&p, &origin.url("/three")).await;
    assert_eq!(origin.connections().len(), 2);
}

#[tokio::test]
async fn without_pooling_every_request_gets_its_own_origin_connection() {
    let origin = RecordingServer::start(Behaviour::Http).await;
    let p = proxy(&["--max-idle-per-origin", "0"]);
    for path in ["/a", "/b", "/c"] {
        get_ok(&p, &origin.url(path)).await;
    }
    assert_eq!(origin.connections().len(), 3);
    // Nothing is kept: each connection closes once its response is done.
    assert!(
        origin.all_closed_within(TIMEOUT).await,
        "{:?}",
        origin.connections()
    );
}

#[tokio::test]
async fn a_get_on_a_connection_the_origin_just_closed_is_retried_once() {
    for behaviour in [
        Behaviour::HttpClosingOnSecond,
        Behaviour::HttpResettingOnSecond,
    ] {
        let origin = RecordingServer::start(behaviour).await;
        let p = proxy(&[]);
        get_ok(&p, &origin.url("/first")).await;
        // Reuses the pooled connection, which the origin closes (or resets) on reading this
        // request; the proxy sends it again on a new connection.
        get_ok(&p, &origin.url("/second")).await;
        assert_eq!(origin.connections().len(), 2);
        assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
    }
}

#[tokio::test]
async fn a_post_on_a_connection_the_origin_just_closed_gets_502_and_is_not_sent_again() {
    let origin = RecordingServer::start(Behaviour::HttpClosingOnSecond).await;
    let p = proxy(&[]);
    get_ok(&p, &origin.url("/first")).await;
    let response = support::proxy_request(
        p.addr(),
        "POST",
        &origin.url("/order"),
        &[
            ("Proxy-Authorization", &credentials()),
            ("Content-Length", "5"),
        ],
        b"pizza",
    )
    .await;
    assert_eq!(response.status, 502, "{}", response.text());
    // A non-idempotent request is never sent twice (RFC 9110 §9.2.2).
    assert_eq!(origin.connections().len(), 1);
}

async fn open_tunnel(p: &ExampleProcess, target: SocketAddr) -> TcpStream {
    support::open_tunnel(p.addr(), target, &credentials()).await
}

/// Sends `bytes` through the tunnel and reads the echo back.
async fn echo(tunnel: &mut TcpStream, bytes: &[u8]) {
    tunnel.write_all(bytes).await.expect("write");
    let mut back = vec![0u8; bytes.len()];
    tokio::time::timeout(TIMEOUT, tunnel.read_exact(&mut back))
        .await
        .expect("echo timed out")
        .expect("echo");
    assert_eq!(back, bytes);
}

#[tokio::test]
async fn a_silent_tunnel_is_closed_after_the_tunnel_idle_timeout() {
    let target = RecordingServer::start(Behaviour::Echo).await;
    let p = proxy(&["--tunnel-idle-timeout", "1"]);
    let mut tunnel = open_tunnel(&p, target.addr).await;
    echo(&mut tunnel, b"hello").await;
    let last_byte = Instant::now();

    let mut rest = [0u8; 16];
    let end = tokio::time::timeout(Duration::from_secs(5), tunnel.read(&mut rest))
        .await
        .expect("the silent tunnel was still open 5 s after its last byte");
    assert!(matches!(end, Ok(0) | Err(_)), "{end:?}");
    let idle_for = last_byte.elapsed();
    assert!(
        idle_for >= Duration::from_millis(900),
        "closed after only {idle_for:?} idle"
    );
    // The target's side is closed too, and the proxy goes on serving tunnels.
    assert!(target.all_closed_within(TIMEOUT).await);
    let mut again = open_tunnel(&p, target.addr).await;
    echo(&mut again, b"again").await;
    assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
}

#[tokio::test]
async fn a_busy_tunnel_outlives_the_tunnel_idle_timeout() {
    let target = RecordingServer::start(Behaviour::Echo).await;
    let p = proxy(&["--tunnel-idle-timeout", "1"]);
    let mut tunnel = open_tunnel(&p, target.addr).await;
    // Bytes every 300 ms for 3 s: three times the idle timeout, never idle for one.
    let started = Instant::now();
    let mut round = 0u32;
    while started.elapsed() < Duration::from_secs(3) {
        echo(&mut tunnel, format!("round {round}").as_bytes()).await;
        round += 1;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(round >= 8, "only {round} rounds");
    assert_eq!(target.connections().len(), 1);
    assert!(target.connections()[0].closed.is_none());
}

#[tokio::test]
async fn the_largest_timeouts_are_accepted_and_never_panic() {
    let origin = RecordingServer::start(Behaviour::Http).await;
    let target = RecordingServer::start(Behaviour::Echo).await;
    // 365 days, the largest any SECONDS flag takes.
    let max = (365 * 24 * 60 * 60).to_string();
    let p = proxy(&[
        "--origin-idle-timeout",
        &max,
        "--tunnel-idle-timeout",
        &max,
        "--auth-failure-window",
        &max,
        "--header-read-timeout",
        &max,
        "--connect-timeout",
        &max,
    ]);
    get_ok(&p, &origin.url("/max")).await;
    let mut tunnel = open_tunnel(&p, target.addr).await;
    echo(&mut tunnel, b"max").await;
    let wrong = basic(USER, b"wrong");
    let response = proxy_get(
        p.addr(),
        &origin.url("/"),
        &[("Proxy-Authorization", &wrong)],
    )
    .await;
    assert_eq!(response.status, 407);
    // Give the tunnel task time to compute its deadline, then look for a panic.
    tokio::time::sleep(Duration::from_millis(200)).await;
    echo(&mut tunnel, b"still open").await;
    assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
}

#[tokio::test]
async fn limit_flags_refuse_unusable_values() {
    for (flag, value) in [
        ("--origin-idle-timeout", "0"),
        ("--tunnel-idle-timeout", "0"),
        ("--max-idle-per-origin", "-1"),
        ("--max-idle-per-origin", "many"),
        // One second over 365 days, and the value that once overflowed hyper's timer.
        ("--header-read-timeout", "31536001"),
        ("--header-read-timeout", "18446744073709551615"),
        ("--tunnel-idle-timeout", "18446744073709551615"),
        ("--auth-failure-window", "18446744073709551615"),
        ("--shutdown-grace", "31536001"),
        // u64::MAX worker threads overflowed inside tokio's builder; 0 and > 1024 are refused.
        ("--worker-threads", "0"),
        ("--worker-threads", "1025"),
        ("--worker-threads", "18446744073709551615"),
        // A limit below any usable credentials would make every request a 431.
        ("--max-credentials-bytes", "0"),
        ("--max-credentials-bytes", "63"),
    ] {
        let arg = format!("{flag}={value}");
        let run = support::run_example_to_exit(support::PROXY, &[arg.as_str()], TIMEOUT);
        assert_eq!(run.status.code(), Some(2), "{arg}: {}", run.stderr);
        assert!(run.stderr.contains(flag), "{arg}: {}", run.stderr);
    }
}

/// The example's jemalloc settings reach jemalloc. jemalloc reads them before `main` from the
/// `malloc_conf` symbol the example exports; were the symbol misnamed (tikv-jemalloc-sys adds a
/// `_rjem_` prefix), jemalloc would silently keep its defaults and hold 2-3 times the idle
/// memory after a burst of clients (BENCHMARKS.md). jemalloc's `confirm_conf` option, read from
/// `_RJEM_MALLOC_CONF`, makes it print every setting it applies and where it came from.
#[cfg(target_os = "linux")]
#[test]
fn the_allocator_settings_reach_jemalloc() {
    let finished = support::run_example_to_exit_with_env(
        support::PROXY,
        &["--help"],
        &[("_RJEM_MALLOC_CONF", "confirm_conf:true")],
        TIMEOUT,
    );
    assert!(finished.status.success(), "{}", finished.stderr);
    let from_symbol = finished
        .stderr
        .lines()
        .find(|line| line.contains("string pointed to by the global variable malloc_conf)"))
        .unwrap_or_else(|| panic!("no malloc_conf line in:\n{}", finished.stderr));
    for setting in [
        "background_thread:true",
        "dirty_decay_ms:1000",
        "tcache_max:4096",
        "slab_sizes:8192-10240:32",
    ] {
        assert!(
            from_symbol.contains(setting),
            "{setting} missing: {from_symbol}"
        );
        assert!(
            finished
                .stderr
                .contains(&format!("-- Set conf value: {setting}")),
            "{setting} not applied:\n{}",
            finished.stderr
        );
    }
}
