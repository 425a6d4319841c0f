//! Helpers shared by the end-to-end tests: the compiled example binaries as child processes, an
//! in-process origin server that records what it received, a raw HTTP/1.1 client over a
//! `TcpStream`, and curl.
//!
//! Everything listens on and connects to 127.0.0.1 only, on ports picked by the OS, and every
//! wait is bounded so that a bug fails a test instead of hanging it.

#![allow(dead_code)]

pub mod redis_server;

use std::io::{BufRead as _, BufReader};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, Version};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// The bound on any single wait: a process start, a response, a connection.
pub const TIMEOUT: Duration = Duration::from_secs(15);

/// The body the default [`Origin`] answers with.
pub const ORIGIN_BODY: &str = "hello from the origin\n";

// ---------------------------------------------------------------------------------------------
// Example binaries.

/// The name of the forward proxy binary (the crate `tower-proxy-auth-proxy` in `proxy/`), for
/// [`example_path`], [`ExampleProcess::start`] and [`run_example_to_exit`].
pub const PROXY: &str = "forward-proxy";

/// The path of a compiled example, `target/<profile>/examples/<name>`, or of the proxy binary
/// ([`PROXY`]), `target/<profile>/forward-proxy`, found from this test binary's own path
/// (`target/<profile>/deps/<test>-<hash>`).
///
/// `cargo test` builds examples before integration tests, but `cargo test --test <name>` does
/// not, and the proxy is another package of the workspace, which would leave a stale or
/// missing binary. So when run by cargo (`CARGO` is set), the binary is first brought up to
/// date with `cargo build --example <name>` (or `cargo build -p tower-proxy-auth-proxy --bin
/// forward-proxy`, with `--features redis` when the tests are built with their crate's `redis`
/// feature) for the same profile and target directory (a no-op when it is fresh; it may wait
/// for cargo's build lock). Set `SUPPORT_NO_EXAMPLE_BUILD=1` to skip that step.
///
/// # Panics
///
/// When the build fails or the binary is missing, with a message saying how to build it.
pub fn example_path(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());

    let exe = std::env::current_exe().expect("cannot find the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary is not in target/<profile>/deps");
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let (path, build_args): (PathBuf, Vec<&str>) = if name == PROXY {
        (
            profile_dir.join(file),
            // The tests of a `redis` build drive the proxy's `--redis-*` flags.
            if cfg!(feature = "redis") {
                vec![
                    "-p",
                    "tower-proxy-auth-proxy",
                    "--bin",
                    PROXY,
                    "--features",
                    "redis",
                ]
            } else {
                vec!["-p", "tower-proxy-auth-proxy", "--bin", PROXY]
            },
        )
    } else {
        (
            profile_dir.join("examples").join(file),
            vec!["--example", name],
        )
    };

    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        if let (Some(cargo), None) = (
            std::env::var_os("CARGO"),
            std::env::var_os("SUPPORT_NO_EXAMPLE_BUILD"),
        ) {
            build(&cargo, &build_args, profile_dir);
        }
        built.push(name.to_owned());
    }
    drop(built);

    assert!(
        path.is_file(),
        "binary {} is missing; build it with `cargo build {}`",
        path.display(),
        build_args.join(" ")
    );
    path
}

/// `cargo build <what>` into the target directory and profile this test runs from.
fn build(cargo: &std::ffi::OsStr, what: &[&str], profile_dir: &std::path::Path) {
    let profile = match profile_dir.file_name().and_then(|p| p.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let target_dir = profile_dir.parent().expect("target/<profile> has a parent");
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let shown = what.join(" ");
    let mut command = Command::new(cargo);
    // Without the variables cargo sets for this test's own crate: a build script that reruns
    // when one changes (ring's, on CARGO_MANIFEST_DIR) would otherwise see them differ from a
    // plain `cargo build` and rebuild, each time the two alternate.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CARGO_PKG_")
            || name.starts_with("CARGO_BIN_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
            ]
            .contains(&&*name)
        {
            command.env_remove(&*name);
        }
    }
    let mut child = command
        .args(["build", "--quiet"])
        .args(what)
        .args(["--profile", profile])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run cargo to build {shown}: {e}"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    // Generous: the build may wait for another cargo holding the build lock.
    let deadline = Instant::now() + Duration::from_secs(900);
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait on cargo") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`cargo build {shown}` did not finish in 15 minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        status.success(),
        "`cargo build {shown}` failed ({status}):\n{}",
        stderr.lock().unwrap_or_else(|e| e.into_inner())
    );
}

fn example_command(name: &str, args: &[&str]) -> Command {
    let mut command = Command::new(example_path(name));
    command
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("RUST_LOG_STYLE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Collects everything a child writes to a pipe, on a thread, so the pipe never fills up.
fn drain<R: std::io::Read + Send + 'static>(mut reader: R) -> Arc<Mutex<String>> {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = text.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        loop {
            match reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => sink
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n])),
            }
        }
    });
    text
}

/// A running example server, killed when dropped.
pub struct ExampleProcess {
    child: Child,
    addr: SocketAddr,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl ExampleProcess {
    /// Starts example `name` with `args` and waits (bounded) for its `listening on <addr>` line
    /// on stdout.
    ///
    /// # Panics
    ///
    /// When the binary is missing, exits early, or does not print the line in time.
    pub fn start(name: &str, args: &[&str]) -> Self {
        Self::start_with_env(name, args, &[])
    }

    /// [`ExampleProcess::start`] with extra environment variables for the child (`RUST_LOG`
    /// is `info` unless given here).
    pub fn start_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = example_command(name, args)
            .envs(env.iter().copied())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
        let stderr = drain(child.stderr.take().expect("piped stderr"));
        let stdout_pipe = child.stdout.take().expect("piped stdout");

        // Read lines until `listening on`, then keep collecting the rest.
        let stdout = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = stdout.clone();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout_pipe).lines();
            let mut tx = Some(tx);
            while let Some(Ok(line)) = lines.next() {
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
                if let Some(addr) = line.strip_prefix("listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.trim().to_owned());
                    }
                }
            }
        });

        let addr = match rx.recv_timeout(TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "example {name} {args:?} did not print `listening on` within {TIMEOUT:?}\n\
                     stdout:\n{}\nstderr:\n{}",
                    stdout.lock().unwrap(),
                    stderr.lock().unwrap()
                );
            }
        };
        let addr = addr
            .parse()
            .unwrap_or_else(|e| panic!("bad address {addr:?} from example {name}: {e}"));
        Self {
            child,
            addr,
            stdout,
            stderr,
        }
    }

    /// The address the process listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything written to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Everything written to stderr (the logs) so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits (bounded) until stderr holds a line for which `pred` is true; returns that line.
    pub async fn wait_for_log(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(line) = self.stderr().lines().find(|l| pred(l)) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no matching log line within {TIMEOUT:?}; stderr:\n{}",
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The access log lines (`--access-log -`, the default, in the default `common` format)
    /// written to stdout so far, parsed.
    pub fn access_lines(&self) -> Vec<AccessLine> {
        self.stdout()
            .lines()
            .filter_map(AccessLine::parse)
            .collect()
    }

    /// Waits (bounded) until stdout holds an access log line for which `pred` is true.
    pub async fn wait_for_access(&self, pred: impl Fn(&AccessLine) -> bool) -> AccessLine {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(line) = self.access_lines().into_iter().find(|l| pred(l)) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no matching access log line within {TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout(),
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether the process has exited, and how.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits (bounded by `timeout`) for the process to exit by itself.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for ExampleProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of the proxy's access log in its `common` format,
/// `%h %l %u %t "%r" %>s %b %D`, split by a parser of the tests' own.
#[derive(Debug, Clone)]
pub struct AccessLine {
    /// The line as written.
    pub raw: String,
    pub client: String,
    pub user: String,
    pub method: String,
    pub target: String,
    pub status: u16,
    /// `None` for `-` (no body bytes).
    pub bytes: Option<u64>,
    pub micros: u64,
}

impl AccessLine {
    /// `None` when `line` is not an access log line (the banner, for instance).
    pub fn parse(line: &str) -> Option<Self> {
        let (head, rest) = line.split_once(" [")?;
        let mut head = head.splitn(3, ' ');
        let (client, _, user) = (head.next()?, head.next()?, head.next()?);
        let (_, rest) = rest.split_once("] \"")?;
        let (request, tail) = rest.rsplit_once("\" ")?;
        let mut request = request.splitn(2, ' ');
        let method = request.next()?;
        let target = request.next()?.rsplit_once(' ')?.0;
        let mut tail = tail.split(' ');
        let status = tail.next()?.parse().ok()?;
        let bytes = match tail.next()? {
            "-" => None,
            n => Some(n.parse().ok()?),
        };
        let micros = tail.next()?.parse().ok()?;
        Some(Self {
            raw: line.to_owned(),
            client: client.to_owned(),
            user: user.to_owned(),
            method: method.to_owned(),
            target: target.to_owned(),
            status,
            bytes,
            micros,
        })
    }
}

/// What a process that ran to its end left behind.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Starts the forward proxy ([`PROXY`]) on 127.0.0.1:0 with `args` and checks that it stops
/// by itself, unsuccessfully, with `expected` in its standard error (a flag that cannot work).
///
/// # Panics
///
/// When it starts, exits successfully or says something else.
pub fn assert_proxy_refuses(args: &[&str], expected: &str) {
    let mut all = vec!["--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    let finished = run_example_to_exit(PROXY, &all, Duration::from_secs(20));
    assert!(!finished.status.success(), "{args:?} started");
    assert!(
        finished.stderr.contains(expected),
        "{args:?}: {}",
        finished.stderr
    );
}

/// Runs example `name` with `args` and waits (bounded) for it to exit by itself.
///
/// # Panics
///
/// When it is still running after `timeout` (it is killed first).
pub fn run_example_to_exit(name: &str, args: &[&str], timeout: Duration) -> Finished {
    run_example_to_exit_with_env(name, args, &[], timeout)
}

/// [`run_example_to_exit`] with extra environment variables for the child.
pub fn run_example_to_exit_with_env(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Finished {
    let mut child = example_command(name, args)
        .envs(env.iter().copied())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
    let stdout = drain(child.stdout.take().expect("piped stdout"));
    let stderr = drain(child.stderr.take().expect("piped stderr"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "example {name} {args:?} still running after {timeout:?}; stderr:\n{}",
                stderr.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Let the drain threads see end-of-file.
    std::thread::sleep(Duration::from_millis(100));
    let stdout = stdout.lock().unwrap().clone();
    let stderr = stderr.lock().unwrap().clone();
    Finished {
        status,
        stdout,
        stderr,
    }
}

/// Starts the forward proxy ([`PROXY`]) on 127.0.0.1:0 with `args` and
/// `--allow-private-targets` (the tests' origins are on 127.0.0.1, which the proxy refuses by
/// default).
pub fn start_proxy(args: &[&str]) -> ExampleProcess {
    let mut all = vec!["--listen", "127.0.0.1:0", "--allow-private-targets"];
    all.extend_from_slice(args);
    ExampleProcess::start(PROXY, &all)
}

/// The status of a GET of `url` through `proxy` with Basic `user_password` (curl's `-U`).
pub async fn basic_status(proxy: &ExampleProcess, user_password: &str, url: &str) -> String {
    let proxy = format!("http://{}", proxy.addr());
    curl_status(&["-x", &proxy, "-U", user_password, url]).await
}

/// A GET of `http://origin.test/` through the proxy or layer at `addr` with Basic `user` and
/// `password`: the status and the body.
pub async fn basic_get(addr: SocketAddr, user: &str, password: &str) -> (u16, String) {
    let auth = basic(user, password.as_bytes());
    let response = proxy_get(
        addr,
        "http://origin.test/",
        &[("Proxy-Authorization", &auth)],
    )
    .await;
    (response.status, response.text())
}

/// Starts the forward proxy ([`PROXY`]) on 127.0.0.1:0 with one user and `extra` arguments,
/// and `--allow-private-targets`: the tests' origins are on 127.0.0.1, which the proxy refuses
/// by default.
pub fn start_proxy_with_user(user: &str, password: &str, extra: &[&str]) -> ExampleProcess {
    start_proxy_with_env(user, password, extra, &[])
}

/// [`start_proxy_with_user`] with extra environment variables for the proxy (`RUST_LOG`, for
/// the library's debug events).
pub fn start_proxy_with_env(
    user: &str,
    password: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> ExampleProcess {
    let user = format!("{user}:{password}");
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--allow-private-targets",
        "--user",
        user.as_str(),
    ];
    args.extend_from_slice(extra);
    ExampleProcess::start_with_env(PROXY, &args, env)
}

/// Opens a CONNECT tunnel to `target` through the proxy at `proxy` on a new connection, sending
/// `proxy_authorization`; returns the socket once the `200` head has been read.
///
/// # Panics
///
/// On any other answer, or when connecting or the answer takes longer than [`TIMEOUT`].
pub async fn open_tunnel(
    proxy: SocketAddr,
    target: SocketAddr,
    proxy_authorization: &str,
) -> TcpStream {
    let mut stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(proxy))
        .await
        .expect("connect timed out")
        .expect("connect to the proxy");
    let target = target.to_string();
    let head = request_head(
        "CONNECT",
        &target,
        &[
            ("Host", &target),
            ("Proxy-Authorization", proxy_authorization),
        ],
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // Nothing follows a CONNECT 200 until the client sends, so this cannot over-read.
    let answer = read_until_bounded(&mut stream, b"\r\n\r\n").await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "CONNECT answered {answer:?}"
    );
    stream
}

/// Reads until `needle` has been seen; returns everything read. Errors at end of stream.
pub async fn read_until(stream: &mut TcpStream, needle: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        seen.extend_from_slice(&chunk[..n]);
    }
    Ok(seen)
}

/// Reads until `needle` with [`TIMEOUT`] as the bound, panicking on timeout or end of stream.
pub async fn read_until_bounded(stream: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    tokio::time::timeout(TIMEOUT, read_until(stream, needle))
        .await
        .unwrap_or_else(|_| panic!("{:?} not received in time", String::from_utf8_lossy(needle)))
        .unwrap_or_else(|e| panic!("{:?} not received: {e}", String::from_utf8_lossy(needle)))
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// `Basic <base64(user:password)>`, for any bytes.
pub fn basic(user: &str, password: &[u8]) -> String {
    let mut decoded = user.as_bytes().to_vec();
    decoded.push(b':');
    decoded.extend_from_slice(password);
    format!("Basic {}", base64_encode(&decoded))
}

/// Standard base64 (RFC 4648 §4) with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// Origin server.

/// One request as an [`Origin`] received it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The trailer section of a chunked body, if it had one.
    pub trailers: Option<HeaderMap>,
}

/// What an [`Origin`] answers every request with.
#[derive(Debug, Clone)]
pub struct OriginResponse {
    pub status: u16,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    /// How long the origin waits, once it has read a request, before it answers (a slow
    /// origin); zero by default.
    pub delay: Duration,
}

impl Default for OriginResponse {
    fn default() -> Self {
        Self {
            status: 200,
            headers: vec![(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            body: Bytes::from_static(ORIGIN_BODY.as_bytes()),
            delay: Duration::ZERO,
        }
    }
}

/// A small HTTP/1.1 origin on 127.0.0.1:0, run in a tokio task of the test's runtime, that
/// answers every request with a fixed response and records what it received. Stopped on drop.
pub struct Origin {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<ReceivedRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Origin {
    /// An origin answering `200` with [`ORIGIN_BODY`].
    pub async fn start() -> Self {
        Self::start_with(OriginResponse::default()).await
    }

    /// An origin answering every request with `response`.
    pub async fn start_with(response: OriginResponse) -> Self {
        Self::start_serving(response, |stream| async move { Some(stream) }).await
    }

    /// An origin whose accepted connections go through `wrap` (a TLS handshake, for
    /// [`TlsOrigin`]) before HTTP/1.1 is served on them; `None` from `wrap` drops the
    /// connection.
    pub(crate) async fn start_serving<W, F, IO>(response: OriginResponse, wrap: W) -> Self
    where
        W: Fn(TcpStream) -> F + Send + 'static,
        F: std::future::Future<Output = Option<IO>> + Send + 'static,
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind origin on 127.0.0.1:0");
        let addr = listener.local_addr().expect("origin local_addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let response = Arc::new(response);
        let task = tokio::spawn(async move {
            // Connections live in the set, so aborting the task closes them all.
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let log = log.clone();
                let response = response.clone();
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let log = log.clone();
                    let response = response.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let collected = body.collect().await?;
                        let trailers = collected.trailers().cloned();
                        let body = collected.to_bytes();
                        log.lock().unwrap().push(ReceivedRequest {
                            method: parts.method,
                            uri: parts.uri,
                            version: parts.version,
                            headers: parts.headers,
                            body,
                            trailers,
                        });
                        tokio::time::sleep(response.delay).await;
                        let mut answer = Response::new(Full::new(response.body.clone()));
                        *answer.status_mut() =
                            http::StatusCode::from_u16(response.status).expect("status");
                        for (name, value) in &response.headers {
                            answer.headers_mut().append(name.clone(), value.clone());
                        }
                        Ok::<_, hyper::Error>(answer)
                    }
                });
                let wrapped = wrap(stream);
                connections.spawn(async move {
                    // A bounded handshake: a client that never finishes it holds no task.
                    let Ok(Some(io)) = tokio::time::timeout(TIMEOUT, wrapped).await else {
                        return;
                    };
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(io), service)
                        .await;
                });
                // Reap finished connections as we go.
                while connections.try_join_next().is_some() {}
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    /// The origin's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every request received so far, oldest first.
    pub fn received(&self) -> Vec<ReceivedRequest> {
        self.received.lock().unwrap().clone()
    }

    /// The only request received so far.
    ///
    /// # Panics
    ///
    /// When there were none or several.
    pub fn single_request(&self) -> ReceivedRequest {
        let received = self.received();
        assert_eq!(
            received.len(),
            1,
            "expected exactly one request at the origin, got {received:#?}"
        );
        received.into_iter().next().expect("one request")
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 over TCP.

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub reason: String,
    /// Field lines in order, as received (names keep their case).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// Every value of the field `name` (case-insensitive), in order.
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The single value of field `name`; `None` when absent.
    ///
    /// # Panics
    ///
    /// When the field appears more than once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let values = self.header_values(name);
        assert!(values.len() <= 1, "{name} appears {} times", values.len());
        values.first().copied()
    }

    /// The body as UTF-8 (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The `algorithm` of each `Proxy-Authenticate` challenge, in order.
    ///
    /// # Panics
    ///
    /// When a challenge has no `algorithm`.
    pub fn offered_algorithms(&self) -> Vec<String> {
        self.header_values("proxy-authenticate")
            .iter()
            .map(|c| challenge_params(c)["algorithm"].clone())
            .collect()
    }

    /// The first Digest challenge for `algorithm` (`SHA-256`) among the `Proxy-Authenticate`
    /// fields, then the `WWW-Authenticate` ones.
    ///
    /// # Panics
    ///
    /// When there is none.
    pub fn digest_challenge(&self, algorithm: &str) -> String {
        self.header_values("proxy-authenticate")
            .into_iter()
            .chain(self.header_values("www-authenticate"))
            .find(|c| {
                c.starts_with("Digest ")
                    && challenge_params(c)
                        .get("algorithm")
                        .is_some_and(|a| a == algorithm)
            })
            .unwrap_or_else(|| panic!("no {algorithm} challenge: {self:#?}"))
            .to_owned()
    }
}

/// A client connection that writes raw bytes and parses HTTP/1.1 responses itself, keeping
/// unread bytes between responses so one connection can carry several exchanges.
pub struct RawConn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    /// Connects (bounded) to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connect to {addr} timed out"))
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects (bounded) to `addr` from the local address `from`. Linux routes all of
    /// 127.0.0.0/8 to the loopback interface, so a test can be thousands of clients at distinct
    /// addresses (`127.1.2.3`, ...) with no set-up.
    pub async fn connect_from(from: IpAddr, addr: SocketAddr) -> Self {
        let socket = match from {
            IpAddr::V4(_) => TcpSocket::new_v4(),
            IpAddr::V6(_) => TcpSocket::new_v6(),
        }
        .expect("a TCP socket");
        socket
            .bind(SocketAddr::new(from, 0))
            .unwrap_or_else(|e| panic!("bind to {from}: {e}"));
        let stream = tokio::time::timeout(TIMEOUT, socket.connect(addr))
            .await
            .unwrap_or_else(|_| panic!("connect from {from} to {addr} timed out"))
            .unwrap_or_else(|e| panic!("connect from {from} to {addr}: {e}"));
        Self {
            stream,
            buf: Vec::new(),
        }
    }

    /// The socket, for raw use after a CONNECT `200`.
    ///
    /// # Panics
    ///
    /// When bytes already read are still unconsumed (they would be lost).
    pub fn into_stream(self) -> TcpStream {
        assert!(
            self.buf.is_empty(),
            "unread bytes: {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.stream
    }

    /// Writes `bytes` as they are.
    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        tokio::time::timeout(TIMEOUT, self.stream.write_all(bytes.as_ref()))
            .await
            .expect("write timed out")
            .expect("write failed");
    }

    /// Reads more bytes into the buffer; `false` at end of stream.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        let n = tokio::time::timeout(TIMEOUT, self.stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no data within {TIMEOUT:?}; buffered so far: {:?}",
                    String::from_utf8_lossy(&self.buf)
                )
            })
            .unwrap_or(0);
        self.buf.extend_from_slice(&chunk[..n]);
        n > 0
    }

    async fn take_line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..i].to_vec();
                self.buf.drain(..i + 2);
                return line;
            }
            assert!(self.fill().await, "connection closed inside a line");
        }
    }

    async fn take_exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(
                self.fill().await,
                "connection closed after {} of {n} body bytes",
                self.buf.len()
            );
        }
        self.buf.drain(..n).collect()
    }

    /// Reads one response to a request made with `method` (which decides whether a 2xx has a
    /// body: not for CONNECT or HEAD). The body is framed by `Transfer-Encoding: chunked`, else
    /// by `Content-Length`, else by the end of the connection.
    pub async fn read_response_to(&mut self, method: &str) -> RawResponse {
        let status_line = String::from_utf8(self.take_line().await).expect("UTF-8 status line");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        assert!(
            version.starts_with("HTTP/1."),
            "bad status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let reason = parts.next().unwrap_or_default().to_owned();

        let mut headers = Vec::new();
        loop {
            let line = self.take_line().await;
            if line.is_empty() {
                break;
            }
            let line = String::from_utf8(line).expect("UTF-8 field line");
            let (name, value) = line
                .split_once(':')
                .unwrap_or_else(|| panic!("bad field line {line:?}"));
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = RawResponse {
            status,
            reason,
            headers,
            body: Vec::new(),
        };

        let no_body = (100..200).contains(&status)
            || status == 204
            || status == 304
            || method.eq_ignore_ascii_case("HEAD")
            || (method.eq_ignore_ascii_case("CONNECT") && (200..300).contains(&status));
        if no_body {
            return response;
        }
        let chunked = response
            .header_values("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            loop {
                let size_line = String::from_utf8(self.take_line().await).expect("chunk size");
                let size_hex = size_line.split(';').next().unwrap_or_default().trim();
                let size = usize::from_str_radix(size_hex, 16)
                    .unwrap_or_else(|_| panic!("bad chunk size {size_line:?}"));
                if size == 0 {
                    // Trailer section up to the empty line.
                    while !self.take_line().await.is_empty() {}
                    break;
                }
                let data = self.take_exact(size).await;
                response.body.extend_from_slice(&data);
                assert!(self.take_line().await.is_empty(), "chunk without CRLF");
            }
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length
                .parse()
                .unwrap_or_else(|_| panic!("bad Content-Length {length:?}"));
            response.body = self.take_exact(length).await;
        } else {
            while self.fill().await {}
            response.body = std::mem::take(&mut self.buf);
        }
        response
    }

    /// Reads one response to a GET-like request.
    pub async fn read_response(&mut self) -> RawResponse {
        self.read_response_to("GET").await
    }

    /// Whether the peer closes the connection (or resets it) within `timeout`, with nothing
    /// sent before. Bytes received instead make it panic.
    pub async fn closed_within(&mut self, timeout: Duration) -> bool {
        let mut chunk = [0u8; 1024];
        match tokio::time::timeout(timeout, self.stream.read(&mut chunk)).await {
            Err(_) => false,
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(n)) => panic!(
                "expected the connection to close, got {:?}",
                String::from_utf8_lossy(&chunk[..n])
            ),
        }
    }
}

/// A client of the proxy at one source address, as curl or a browser is: it keeps its
/// connection open between requests and opens a new one after a response that says
/// `Connection: close`.
pub struct KeepAliveClient {
    proxy: SocketAddr,
    from: IpAddr,
    conn: Option<RawConn>,
    /// Connections opened so far.
    pub connections: usize,
}

impl KeepAliveClient {
    /// A client of the proxy at `proxy` from the local address `from` (see
    /// [`RawConn::connect_from`]); it connects on its first request.
    pub fn new(proxy: SocketAddr, from: IpAddr) -> Self {
        Self {
            proxy,
            from,
            conn: None,
            connections: 0,
        }
    }

    /// Sends an absolute-form GET for `url` (a `Host` field made from it, then `fields`) and
    /// reads the response.
    pub async fn get(&mut self, url: &str, fields: &[(&str, &str)]) -> RawResponse {
        let host = url
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.authority().map(|a| a.to_string()))
            .unwrap_or_else(|| panic!("not an absolute URL: {url}"));
        let mut all = vec![("Host", host.as_str())];
        all.extend_from_slice(fields);
        let head = request_head("GET", url, &all);
        if self.conn.is_none() {
            self.conn = Some(RawConn::connect_from(self.from, self.proxy).await);
            self.connections += 1;
        }
        let conn = self.conn.as_mut().expect("connected");
        conn.send(head).await;
        let response = conn.read_response().await;
        let close = response
            .header_values("connection")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("close"));
        if close {
            self.conn = None;
        }
        response
    }
}

/// Formats a request head: `METHOD target HTTP/1.1`, the given field lines, an empty line.
pub fn request_head(method: &str, target: &str, fields: &[(&str, &str)]) -> String {
    let mut head = format!("{method} {target} HTTP/1.1\r\n");
    for (name, value) in fields {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Sends one absolute-form GET for `url` through the proxy at `proxy` on a new connection and
/// reads the response; `fields` follow a `Host` field made from the URL.
pub async fn proxy_get(proxy: SocketAddr, url: &str, fields: &[(&str, &str)]) -> RawResponse {
    proxy_request(proxy, "GET", url, fields, b"").await
}

/// Sends one absolute-form `method` request for `url` with `body` through the proxy at `proxy`
/// on a new connection and reads the response; `fields` follow a `Host` field made from the URL
/// (a body needs its own `Content-Length` among them).
pub async fn proxy_request(
    proxy: SocketAddr,
    method: &str,
    url: &str,
    fields: &[(&str, &str)],
    body: &[u8],
) -> RawResponse {
    let host = url
        .parse::<Uri>()
        .ok()
        .and_then(|u| u.authority().map(|a| a.to_string()))
        .unwrap_or_else(|| panic!("not an absolute URL: {url}"));
    let mut all = vec![("Host", host.as_str())];
    all.extend_from_slice(fields);
    let mut conn = RawConn::connect(proxy).await;
    let mut request = request_head(method, url, &all).into_bytes();
    request.extend_from_slice(body);
    conn.send(request).await;
    conn.read_response_to(method).await
}

// ---------------------------------------------------------------------------------------------
// The failure throttle.

/// The proxy's default failure-counting window (`--auth-failure-window 60`).
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(60);

/// Waits, when needed, until the next `needed` of time lies inside one failure-counting window
/// of `window` (the throttle's windows start at multiples of `window` since the Unix epoch),
/// and returns how long it waited. Tests that assert exact counts use it: the throttle's
/// window slides, so across a boundary the previous window's failures weigh a little less
/// at once, which (by design) lets one more attempt through.
pub async fn wait_for_window_room(window: Duration, needed: Duration) -> Duration {
    let window_ms = window.as_millis();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis();
    let left_ms = window_ms - now_ms % window_ms;
    assert!(
        needed < window,
        "{needed:?} does not fit in a {window:?} window"
    );
    if left_ms > needed.as_millis() {
        return Duration::ZERO;
    }
    let wait = Duration::from_millis(u64::try_from(left_ms).expect("small") + 50);
    tokio::time::sleep(wait).await;
    wait
}

// ---------------------------------------------------------------------------------------------
// Tools.

/// The path of `program`, found on `PATH` (where Debian's packages put their programs).
///
/// # Panics
///
/// When it is not there, naming the Debian `package` to install: a missing tool fails a test,
/// never skips it.
pub fn require_tool(program: &str, package: &str) -> PathBuf {
    require_tool_in(program, package, &[])
}

/// [`require_tool`], also looking in `package_dirs` after `PATH`: where a package puts programs
/// that are not on `PATH`, such as Squid's helpers in `/usr/lib/squid`.
///
/// # Panics
///
/// When it is nowhere, naming the Debian `package` to install.
pub fn require_tool_in(program: &str, package: &str, package_dirs: &[&str]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(package_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .unwrap_or_else(|| {
            let also = if package_dirs.is_empty() {
                String::new()
            } else {
                format!(" nor in {package_dirs:?}")
            };
            panic!(
                "`{program}` is not on PATH{also}: install it with `apt-get install -y {package}` \
                 (scripts/test does so when run as root)"
            )
        })
}

/// Runs the tool `program` (from the Debian `package`, on `PATH`) with `args` and waits for
/// it (bounded); returns its stdout.
///
/// # Panics
///
/// When it cannot run (naming the package to install), does not finish in time, or fails (with
/// its stderr).
pub fn run_tool<S>(program: &str, package: &str, args: &[S]) -> String
where
    S: AsRef<std::ffi::OsStr> + std::fmt::Debug,
{
    let path = require_tool(program, package);
    let child = Command::new(&path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): apt-get install -y {package}",
                path.display()
            )
        });
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = finished
        .recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| panic!("{program} did not finish in time"))
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

// ---------------------------------------------------------------------------------------------
// curl.

/// What curl left behind.
#[derive(Debug)]
pub struct CurlOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl CurlOutput {
    /// Panics with curl's stderr unless it exited with 0.
    pub fn assert_success(&self) -> &Self {
        assert!(
            self.status.success(),
            "curl failed ({}): {}",
            self.status,
            self.stderr
        );
        self
    }
}

/// Runs `curl -sS --max-time 10 <args>` (bounded), with no proxy settings from the
/// environment.
pub async fn curl(args: &[&str]) -> CurlOutput {
    let mut command = tokio::process::Command::new("curl");
    command
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .env("NO_PROXY", "")
        .env("no_proxy", "")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("ALL_PROXY")
        .env_remove("all_proxy")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(TIMEOUT, command.output())
        .await
        .expect("curl did not finish in time")
        .expect("cannot run curl (apt-get install -y curl)");
    CurlOutput {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// [`curl`] with `args`, answer body discarded: the status code it got (`"200"`, `"407"`),
/// panicking with curl's stderr unless curl itself succeeded.
pub async fn curl_status(args: &[&str]) -> String {
    let mut all = vec!["-o", "/dev/null", "-w", "%{http_code}"];
    all.extend_from_slice(args);
    let out = curl(&all).await;
    out.assert_success();
    out.stdout
}

// ---------------------------------------------------------------------------------------------
// Log lines.

/// Log lines written by a `tracing_subscriber::fmt()` subscriber
/// (`.with_writer(move || lines.clone())`).
#[derive(Clone, Default)]
pub struct LogLines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogLines {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// Serving a tower service.

/// Serves `service` over HTTP/1.1 on 127.0.0.1 port 0 (with upgrades), inserting each
/// connection's peer as a [`tower_proxy_auth::ClientAddr`] and a per-connection
/// [`ConnectionId`]; returns the address.
pub async fn serve<S, B>(service: S) -> SocketAddr
where
    S: tower::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        let mut next_id = 0u64;
        while let Ok((stream, peer)) = listener.accept().await {
            next_id += 1;
            let id = ConnectionId(next_id);
            let service = tower::ServiceBuilder::new()
                .map_request(move |mut req: Request<Incoming>| {
                    req.extensions_mut()
                        .insert(tower_proxy_auth::ClientAddr(peer));
                    req.extensions_mut().insert(id);
                    req
                })
                .service(service.clone());
            let service = hyper_util::service::TowerToHyperService::new(service);
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades(),
            );
        }
    });
    addr
}

/// Which accepted connection a request came on (inserted by [`serve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnectionId(pub u64);

// A Digest client of the tests' own (RFC 7616), independent of the crate's code; the benches
// use it too.
mod digest_client;
#[allow(unused_imports)] // not every test binary uses the Digest client
pub use digest_client::{challenge_params, digest_hex, DigestAnswer};

// An HTTPS origin (rustls) with a certificate made by openssl, for the CONNECT tests.
mod tls_origin;
#[allow(unused_imports)] // not every test binary uses TLS
pub use tls_origin::{openssl, self_signed_certificate, spki_sha256_base64, TlsOrigin};

// A recording relay in front of the proxy that keeps real clients' traffic on loopback.
mod relay;
#[allow(unused_imports)] // not every test binary uses the relay
pub use relay::{LoopbackRelay, RelayedRequest};
/// Awaits `response`, asserting that it came within `bound` (a request that must not wait
/// for a server that fails).
pub async fn answered_within(
    bound: Duration,
    response: impl std::future::Future<Output = RawResponse>,
) -> RawResponse {
    let start = Instant::now();
    let response = response.await;
    assert!(
        start.elapsed() < bound,
        "a request waited {:?} (status {})",
        start.elapsed(),
        response.status
    );
    response
}

/// Whether `response` is a 407 whose `algorithm` challenge says `stale=true` (RFC 7616 §3.3:
/// the nonce was good but is not taken; the client retries with the new one).
pub fn digest_stale(response: &RawResponse, algorithm: &str) -> bool {
    response.status == 407
        && challenge_params(&response.digest_challenge(algorithm))
            .get("stale")
            .is_some_and(|s| s == "true")
}

/// Whether `response` is a 407 without `stale=true`: the credentials are refused (a replay, a
/// wrong password), not merely out of date.
pub fn digest_refused(response: &RawResponse, algorithm: &str) -> bool {
    response.status == 407 && !digest_stale(response, algorithm)
}

// ---------------------------------------------------------------------------------------------
// Programs from Debian packages that are not on PATH, and files made by tools.

/// One of Squid's helper programs (`basic_ncsa_auth`, `digest_file_auth`, `helper-mux`), from
/// Debian's `squid` package: on `PATH`, else where the installed package put it (`dpkg-query
/// -L squid`; `/usr/lib/squid` on Debian), else where other distributions put them.
pub fn squid_helper(name: &str) -> PathBuf {
    let listed = Command::new("dpkg-query")
        .args(["-L", "squid"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
        .unwrap_or_default();
    let mut dirs: Vec<&str> = listed
        .lines()
        .filter_map(|line| line.strip_suffix(name)?.strip_suffix('/'))
        .collect();
    dirs.extend(["/usr/lib/squid", "/usr/lib64/squid", "/usr/libexec/squid"]);
    require_tool_in(name, "squid", &dirs)
}

/// Adds (or, with `create`, writes anew) `user` in `realm` with `password` to the htdigest
/// file `file`, by Apache's `htdigest` (Debian's apache2-utils), which reads the password
/// twice from its terminal or stdin.
pub fn htdigest(file: &std::path::Path, realm: &str, user: &str, password: &str, create: bool) {
    use std::io::Write as _;
    let program = require_tool("htdigest", "apache2-utils");
    let mut command = Command::new(program);
    if create {
        command.arg("-c");
    }
    let mut child = command
        .arg(file)
        .arg(realm)
        .arg(user)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("htdigest runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    writeln!(stdin, "{password}\n{password}").expect("write to htdigest");
    drop(stdin);
    assert!(child.wait().expect("wait for htdigest").success());
}

/// Writes a shell script named `name` into `dir`, to be run as `sh <path>` (not executed
/// itself: a file just written can be "busy" for exec while another thread forks).
pub fn write_script(dir: &std::path::Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write script");
    path
}
