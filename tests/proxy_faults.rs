//! Fault tests of the forward proxy (`proxy/`): origins and CONNECT targets that reset the
//! connection, clients that go away mid-request or trickle their header section, and the
//! failure throttle seen through the real proxy. Each fault has a defined outcome, the proxy
//! keeps serving afterwards, never panics and never logs a secret, and a combined run shows
//! that its open file descriptors and threads come back to the idle level (no leaked
//! connections or tunnel tasks) and that it still shuts down cleanly.
//!
//! Already covered in `tests/forward_proxy.rs` and not repeated here as single tests:
//! `connect_to_a_closed_port_gets_502` (a refused CONNECT target) and
//! `slow_header_is_cut_off_by_the_header_read_timeout` (a header section that stalls). This
//! file adds the case where the client keeps sending one byte a second, which must be cut off
//! all the same (the timeout bounds the whole header section, not the gap between reads), and
//! repeats the refused CONNECT inside the leak check.
//!
//! Everything runs on 127.0.0.1 and every wait is bounded (`support::TIMEOUT` unless stated).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use support::{
    basic, closed_port, proxy_get, read_until, read_until_bounded, request_head, ExampleProcess,
    Origin, RawConn, ORIGIN_BODY, TIMEOUT,
};

/// A password only these tests use, so finding it in the logs cannot be a coincidence.
const USER: &str = "fault";
const PASSWORD: &str = "Fault-Pass-7f3a";

fn credentials() -> String {
    basic(USER, PASSWORD.as_bytes())
}

/// Starts the proxy on 127.0.0.1:0 with the test user and `extra` arguments.
fn proxy(extra: &[&str]) -> ExampleProcess {
    support::start_proxy_with_user(USER, PASSWORD, extra)
}

/// Asserts what must hold of the proxy's logs after any fault: no panic, no secret.
fn assert_clean_logs(p: &ExampleProcess) {
    let logs = format!("{}{}", p.stdout(), p.stderr());
    assert!(!logs.contains("panicked"), "the proxy panicked:\n{logs}");
    for secret in [PASSWORD, credentials().as_str()] {
        assert!(!logs.contains(secret), "{secret:?} in the logs:\n{logs}");
    }
    let token = credentials();
    let token = token.trim_start_matches("Basic ");
    assert!(
        !logs.contains(token),
        "the credentials in the logs:\n{logs}"
    );
}

/// Asserts that the proxy still forwards a request on a new connection.
async fn assert_still_serving(p: &ExampleProcess, origin: &Origin) {
    let response = proxy_get(
        p.addr(),
        &origin.url("/still-serving"),
        &[("Proxy-Authorization", &credentials())],
    )
    .await;
    assert_eq!(response.status, 200, "{response:#?}\n{}", p.stderr());
    assert_eq!(response.text(), ORIGIN_BODY);
}

// ---------------------------------------------------------------------------------------------
// Servers that reset their connections.

/// What a [`ResetServer`] does with each connection before closing it with a TCP RST.
#[derive(Clone, Copy, Debug)]
enum ResetAfter {
    /// Read an HTTP request head (up to the empty line), then reset: an origin that fails.
    RequestHead,
    /// Read `ping`, answer `pong`, read `bye`, then reset: a CONNECT target that dies
    /// mid-tunnel, after traffic has gone through both ways.
    Exchange,
}

/// A TCP server on 127.0.0.1:0 that closes every connection with SO_LINGER 0 (an RST, not a
/// FIN). Stopped on drop.
struct ResetServer {
    addr: std::net::SocketAddr,
    resets: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl ResetServer {
    async fn start(mode: ResetAfter) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let resets = Arc::new(AtomicUsize::new(0));
        let counter = resets.clone();
        let task = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                connections.spawn(async move {
                    // Bounded, so a connection that never sends cannot keep the task.
                    let _ = tokio::time::timeout(TIMEOUT, reset_connection(stream, mode)).await;
                    counter.fetch_add(1, Ordering::SeqCst);
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Self { addr, resets, task }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// How many connections it has reset so far.
    fn resets(&self) -> usize {
        self.resets.load(Ordering::SeqCst)
    }
}

impl Drop for ResetServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn reset_connection(mut stream: TcpStream, mode: ResetAfter) {
    match mode {
        ResetAfter::RequestHead => {
            let _ = read_until(&mut stream, b"\r\n\r\n").await;
        }
        ResetAfter::Exchange => {
            if read_until(&mut stream, b"ping").await.is_ok() {
                let _ = stream.write_all(b"pong").await;
                let _ = read_until(&mut stream, b"bye").await;
            }
        }
    }
    // Deprecated because a positive linger blocks the thread in `drop`; a zero linger does
    // not block (the kernel sends the RST at once), which is exactly the fault wanted here.
    #[allow(deprecated)]
    stream
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER 0");
    drop(stream);
}

// ---------------------------------------------------------------------------------------------
// The fault scenarios. Each asserts its own outcome; `assert_still_serving` and
// `assert_clean_logs` are checked by the callers.

/// An origin that resets the connection after reading the request: the client gets 502, and
/// the same client connection then serves a request to a working origin.
async fn origin_resets(p: &ExampleProcess, reset: &ResetServer, good: &Origin) {
    let target = format!("http://{}/reset-me", reset.addr());
    let auth = credentials();
    let mut conn = RawConn::connect(p.addr()).await;
    conn.send(request_head(
        "GET",
        &target,
        &[
            ("Host", &reset.addr().to_string()),
            ("Proxy-Authorization", &auth),
        ],
    ))
    .await;
    let response = conn.read_response().await;
    assert_eq!(response.status, 502, "{response:#?}");
    assert!(!response.body.is_empty(), "{response:#?}");

    conn.send(request_head(
        "GET",
        &good.url("/after-reset"),
        &[
            ("Host", &good.addr().to_string()),
            ("Proxy-Authorization", &auth),
        ],
    ))
    .await;
    let response = conn.read_response().await;
    assert_eq!(response.status, 200, "{response:#?}");
    assert_eq!(response.text(), ORIGIN_BODY);
}

/// Opens a CONNECT tunnel with the test user's credentials.
async fn open_tunnel(p: &ExampleProcess, target: std::net::SocketAddr) -> TcpStream {
    support::open_tunnel(p.addr(), target, &credentials()).await
}

/// A CONNECT target that resets mid-tunnel (after bytes went both ways): the client's end of
/// the tunnel ends (end of stream or reset) instead of hanging.
async fn tunnel_target_resets(p: &ExampleProcess, target: &ResetServer) {
    let mut tunnel = open_tunnel(p, target.addr()).await;
    tunnel.write_all(b"ping").await.expect("write ping");
    read_until_bounded(&mut tunnel, b"pong").await;
    tunnel.write_all(b"bye").await.expect("write bye");
    let mut chunk = [0u8; 64];
    match tokio::time::timeout(TIMEOUT, tunnel.read(&mut chunk)).await {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!(
            "unexpected bytes from a reset tunnel: {:?}",
            String::from_utf8_lossy(&chunk[..n])
        ),
        Err(_) => panic!("the tunnel stayed open after its target reset the connection"),
    }
}

/// A CONNECT target that refuses the connection (a closed port): 502.
async fn connect_refused(p: &ExampleProcess) {
    let target = format!("127.0.0.1:{}", closed_port());
    let mut conn = RawConn::connect(p.addr()).await;
    conn.send(request_head(
        "CONNECT",
        &target,
        &[("Host", &target), ("Proxy-Authorization", &credentials())],
    ))
    .await;
    let response = conn.read_response_to("CONNECT").await;
    assert_eq!(response.status, 502, "{response:#?}");
}

/// A client that announces a 1000-byte body, sends 10 bytes and closes.
async fn client_leaves_mid_body(p: &ExampleProcess, origin: &Origin, path: &str) {
    let mut conn = RawConn::connect(p.addr()).await;
    let mut request = request_head(
        "POST",
        &origin.url(path),
        &[
            ("Host", &origin.addr().to_string()),
            ("Proxy-Authorization", &credentials()),
            ("Content-Type", "application/octet-stream"),
            ("Content-Length", "1000"),
        ],
    );
    request.push_str("0123456789");
    conn.send(request).await;
    drop(conn);
}

/// A client that closes right after part of its request line.
async fn client_leaves_mid_header(p: &ExampleProcess) {
    let mut conn = RawConn::connect(p.addr()).await;
    conn.send("GET http://127.0.0.1:9/partial HT").await;
    drop(conn);
}

/// A client that sends its header section one byte a second: the proxy closes the connection
/// once the header read timeout (`timeout`) has passed, although bytes keep arriving. Returns
/// how long that took.
async fn trickling_client_is_cut_off(p: &ExampleProcess, timeout: Duration) -> Duration {
    let head = request_head(
        "GET",
        "http://127.0.0.1:9/trickle",
        &[
            ("Host", "127.0.0.1:9"),
            ("Proxy-Authorization", &credentials()),
        ],
    );
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(p.addr()))
        .await
        .expect("connect timed out")
        .expect("connect to the proxy");
    let started = Instant::now();
    // The head is far longer than the number of seconds this loop may run.
    let limit = timeout + Duration::from_secs(6);
    assert!(head.len() as u64 > limit.as_secs());
    for byte in head.as_bytes() {
        assert!(
            started.elapsed() < limit,
            "still connected after {:?} of one byte a second",
            started.elapsed()
        );
        if stream.write_all(std::slice::from_ref(byte)).await.is_err() {
            return started.elapsed();
        }
        let mut chunk = [0u8; 256];
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut chunk)).await {
            Err(_) => {} // still open: send the next byte
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(n)) => panic!(
                "the proxy answered a partial header section: {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
        }
    }
    panic!("the whole header section was sent one byte a second without being cut off");
}

// ---------------------------------------------------------------------------------------------
// One fault per test.

#[tokio::test]
async fn origin_reset_gets_502_and_the_proxy_keeps_serving() {
    let good = Origin::start().await;
    let reset = ResetServer::start(ResetAfter::RequestHead).await;
    let p = proxy(&[]);
    origin_resets(&p, &reset, &good).await;
    // The GET is idempotent and had no answer: the proxy sends it once more (RFC 9110 §9.2.2),
    // the origin resets that connection too, and the client gets the 502.
    assert_eq!(
        reset.resets(),
        2,
        "the origin saw the request and one retry"
    );
    assert_still_serving(&p, &good).await;
    let line = p.wait_for_access(|l| l.target.ends_with("/reset-me")).await;
    assert_eq!(line.status, 502, "{line:?}");
    assert_clean_logs(&p);
}

#[tokio::test]
async fn connect_target_reset_mid_tunnel_ends_the_tunnel_and_the_proxy_keeps_serving() {
    let good = Origin::start().await;
    let target = ResetServer::start(ResetAfter::Exchange).await;
    let p = proxy(&[]);
    tunnel_target_resets(&p, &target).await;
    assert_eq!(target.resets(), 1);
    assert_still_serving(&p, &good).await;
    assert_clean_logs(&p);
}

#[tokio::test]
async fn client_closing_mid_body_does_not_hurt_the_proxy() {
    let good = Origin::start().await;
    let p = proxy(&[]);
    client_leaves_mid_body(&p, &good, "/abandoned-upload").await;
    // The abandoned request is answered (to nobody) and logged once; the origin never gets a
    // complete request.
    let line = p
        .wait_for_access(|l| l.target.ends_with("/abandoned-upload"))
        .await;
    assert_eq!(line.user, "fault", "{line:?}");
    assert_eq!(line.status, 502, "{line:?}");
    assert_still_serving(&p, &good).await;
    assert!(
        good.received().iter().all(|r| r.uri != "/abandoned-upload"),
        "{:#?}",
        good.received()
    );
    assert_clean_logs(&p);
}

#[tokio::test]
async fn client_closing_mid_header_line_does_not_hurt_the_proxy() {
    let good = Origin::start().await;
    let p = proxy(&[]);
    client_leaves_mid_header(&p).await;
    // Give the proxy a moment to see the end of stream before the next client arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_still_serving(&p, &good).await;
    assert!(
        !p.stdout().contains("/partial"),
        "an incomplete request was logged as handled:\n{}",
        p.stdout()
    );
    assert_clean_logs(&p);
}

#[tokio::test]
async fn header_sent_one_byte_a_second_is_cut_off_by_the_header_read_timeout() {
    let good = Origin::start().await;
    let p = proxy(&["--header-read-timeout", "2"]);
    let took = trickling_client_is_cut_off(&p, Duration::from_secs(2)).await;
    // Cut off by the 2 s timeout: not earlier (then it was something else), and well before
    // the head could have been completed.
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
    assert_still_serving(&p, &good).await;
    assert_clean_logs(&p);
}

// ---------------------------------------------------------------------------------------------
// All of them against one proxy: no leaked descriptors, threads or tunnel tasks.

/// Open file descriptors of process `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/<pid>/fd")
        .count()
}

/// Threads of process `pid`.
fn thread_count(pid: u32) -> usize {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/<pid>/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("Threads: line")
}

/// Slack over the idle level: a pooled origin connection or two that the pool may still hold.
const FD_SLACK: usize = 3;
const THREAD_SLACK: usize = 1;

#[cfg(target_os = "linux")]
#[tokio::test]
async fn faults_leave_no_leaked_descriptors_threads_or_tunnels() {
    const ROUNDS: usize = 10;
    const BURST: usize = 20;
    let good = Origin::start().await;
    let reset_origin = ResetServer::start(ResetAfter::RequestHead).await;
    let reset_target = ResetServer::start(ResetAfter::Exchange).await;
    let mut p = proxy(&["--header-read-timeout", "2", "--shutdown-grace", "5"]);
    let pid = p.pid();

    // Idle level, after one forwarded request (so the pool holds its connection to `good`).
    assert_still_serving(&p, &good).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let idle_fds = fd_count(pid);
    let idle_threads = thread_count(pid);

    for round in 0..ROUNDS {
        origin_resets(&p, &reset_origin, &good).await;
        tunnel_target_resets(&p, &reset_target).await;
        connect_refused(&p).await;
        client_leaves_mid_body(&p, &good, &format!("/abandoned-{round}")).await;
        client_leaves_mid_header(&p).await;
    }
    // A burst of concurrent tunnels whose target resets them, and of abandoned requests.
    let mut burst = tokio::task::JoinSet::new();
    let proxy_addr = p.addr();
    let target_addr = reset_target.addr();
    for _ in 0..BURST {
        burst.spawn(async move {
            let mut tunnel = TcpStream::connect(proxy_addr).await.expect("connect");
            let target = target_addr.to_string();
            let head = request_head(
                "CONNECT",
                &target,
                &[("Host", &target), ("Proxy-Authorization", &credentials())],
            );
            tunnel.write_all(head.as_bytes()).await.expect("write");
            let answer = read_until_bounded(&mut tunnel, b"\r\n\r\n").await;
            assert!(answer.starts_with(b"HTTP/1.1 200"));
            tunnel.write_all(b"ping").await.expect("ping");
            read_until_bounded(&mut tunnel, b"pong").await;
            tunnel.write_all(b"bye").await.expect("bye");
            let mut chunk = [0u8; 16];
            let end = tokio::time::timeout(TIMEOUT, tunnel.read(&mut chunk)).await;
            assert!(
                matches!(end, Ok(Ok(0)) | Ok(Err(_))),
                "tunnel did not end: {end:?}"
            );
        });
    }
    while let Some(done) = tokio::time::timeout(TIMEOUT * 2, burst.join_next())
        .await
        .expect("the burst did not finish in time")
    {
        done.expect("a burst task failed");
    }
    let took = trickling_client_is_cut_off(&p, Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_still_serving(&p, &good).await;
    assert_eq!(
        reset_origin.resets(),
        2 * ROUNDS,
        "each GET and its one retry"
    );
    assert_eq!(reset_target.resets(), ROUNDS + BURST);

    // Back to the idle level (bounded wait: closing is asynchronous).
    let deadline = Instant::now() + TIMEOUT;
    let (fds, threads) = loop {
        let now = (fd_count(pid), thread_count(pid));
        if (now.0 <= idle_fds + FD_SLACK && now.1 <= idle_threads + THREAD_SLACK)
            || Instant::now() >= deadline
        {
            break now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!(
        "proxy {pid}: descriptors idle {idle_fds} -> after the faults {fds}; \
         threads idle {idle_threads} -> after {threads}"
    );
    assert!(p.try_wait().is_none(), "the proxy exited:\n{}", p.stderr());
    assert!(
        fds <= idle_fds + FD_SLACK,
        "open descriptors: idle {idle_fds}, after the faults {fds}; /proc/{pid}/fd:\n{:?}",
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d
                .filter_map(|e| e.ok().and_then(|e| std::fs::read_link(e.path()).ok()))
                .collect::<Vec<_>>())
            .unwrap_or_default()
    );
    assert!(
        threads <= idle_threads + THREAD_SLACK,
        "threads: idle {idle_threads}, after the faults {threads}"
    );
    assert_clean_logs(&p);

    // No tunnel task or connection is stuck: Ctrl-C finds nothing in flight to wait for.
    let status = tokio::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .await
        .expect("run kill");
    assert!(status.success());
    let exit = p.wait_exit(Duration::from_secs(10)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit: {exit:?}\n{}",
        p.stderr()
    );
    p.wait_for_log(|l| l.contains("all connections closed"))
        .await;
    assert!(
        !p.stderr().contains("grace period over"),
        "something was still in flight at shutdown:\n{}",
        p.stderr()
    );
}

// ---------------------------------------------------------------------------------------------
// The failure throttle through the example's flags.

#[tokio::test]
async fn throttle_three_failures_then_429_until_the_window_ends() {
    let good = Origin::start().await;
    let p = proxy(&["--max-auth-failures", "3", "--auth-failure-window", "2"]);
    let url = good.url("/throttled");
    // Distinct wrong passwords: the same one repeated counts once (the throttle's policy).
    let wrong = |n: u8| basic(USER, format!("not-the-password-{n}").as_bytes());
    let right = credentials();

    // Requests without credentials never count, however many.
    for _ in 0..10 {
        assert_eq!(proxy_get(p.addr(), &url, &[]).await.status, 407);
    }
    for n in 1..=3 {
        let response = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &wrong(n))]).await;
        assert_eq!(response.status, 407, "wrong password #{n}: {response:#?}");
    }
    // Still none counted for a missing header: a request without credentials gets 407, not 429.
    assert_eq!(proxy_get(p.addr(), &url, &[]).await.status, 407);
    // The fourth attempt is refused even with the right password.
    let throttled = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &right)]).await;
    assert_eq!(throttled.status, 429, "{throttled:#?}");
    let retry_after: u64 = throttled
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    assert!(throttled.header("proxy-authenticate").is_none());
    assert!(good.received().is_empty(), "{:#?}", good.received());

    // Once the window is over, the right password works.
    tokio::time::sleep(Duration::from_secs(retry_after) + Duration::from_millis(200)).await;
    let response = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &right)]).await;
    assert_eq!(response.status, 200, "{response:#?}");
    assert_eq!(response.text(), ORIGIN_BODY);
    assert_eq!(good.received().len(), 1);

    p.wait_for_access(|l| l.target.ends_with("/throttled") && l.status == 429)
        .await;
    assert_clean_logs(&p);
    assert!(!p.stderr().contains("not-the-password"), "{}", p.stderr());
}
