//! A forward HTTP/1.1 proxy with Basic proxy authentication, built on hyper 1, hyper-util and
//! [`tower_proxy_auth::ProxyAuthLayer`].
//!
//! - Absolute-form requests (`GET http://host/path HTTP/1.1`) are forwarded to the origin over a
//!   pool of reused connections, with the hop-by-hop fields of RFC 9110 §7.6.1 removed in both
//!   directions (`Connection` and every field it lists, `Proxy-Connection`, `Keep-Alive`, `TE`,
//!   `Transfer-Encoding`, `Upgrade`) and a `Via` field added (RFC 9110 §7.6.3). The layer has
//!   already removed `Proxy-Authorization`. When the origin closes a pooled connection just as
//!   it is reused, an idempotent request without a body is sent once more on a new one.
//! - `CONNECT host:port` opens a TCP connection to the target first (bounded by the connect
//!   timeout), answers 200 only once it is open, and then relays bytes both ways. A target that
//!   cannot be reached gets 502, never a 200 followed by a dead socket.
//! - Any other request form gets 400; an origin that cannot be reached or that fails gets 502.
//! - Each request is logged once at `info` (client address, user or `-`, method, target, status,
//!   elapsed milliseconds); passwords and `Proxy-Authorization` values are never logged.
//! - A slow client cannot hold a connection for ever (`--header-read-timeout`), and Ctrl-C (or
//!   SIGTERM) stops accepting and gives in-flight connections and tunnels a bounded grace period.
//! - What stays open after clients leave is bounded: idle origin connections close after
//!   `--origin-idle-timeout` (at most `--max-idle-per-origin` per origin), silent tunnels after
//!   `--tunnel-idle-timeout`, and the allocator (jemalloc, set up in `allocator.rs`) hands what
//!   a burst of clients used back to the OS within seconds.
//! - `--worker-threads 1` runs everything on one thread (tokio's current-thread runtime): no
//!   cross-thread wake-ups, the most requests per CPU second (see BENCHMARKS.md).
//!
//! Run it with the embedded demo user `alice` / `s3cret`:
//!
//! ```text
//! cargo run --example forward_proxy
//! curl -x http://alice:s3cret@127.0.0.1:3128 http://example.com/
//! curl -p -x http://alice:s3cret@127.0.0.1:3128 https://example.com/
//! ```
//!
//! or with your own users (the password is everything after the first `:`):
//!
//! ```text
//! cargo run --example forward_proxy -- --listen 0.0.0.0:8080 --realm "corp proxy" \
//!     --user alice:s3cret --user bob:pa:ss:word
//! cargo run --example forward_proxy -- --no-auth     # same proxy without the layer
//! ```
//!
//! Passwords given with `--user` are visible to other local users in the process list; a real
//! deployment would read them from a file or a secret store. Logging follows `RUST_LOG`
//! (default `info`) and goes to stderr; stdout carries only the `listening on <addr>` line and
//! a ready-to-paste curl command.

use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tower::util::{Either, MapResponse};
use tower::{Service, ServiceBuilder, ServiceExt as _};
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tower_proxy_auth::{
    ClientAddr, FailureThrottle, Htpasswd, Identity, ProxyAuth, ProxyAuthLayer, ResponseBody,
    StaticUsers, Validator as _,
};
use tracing::{debug, info, warn, Span};
use tracing_subscriber::EnvFilter;

#[cfg(target_os = "linux")]
mod allocator;

/// The demo user the proxy starts with when no `--user` is given.
const DEMO_USER: (&str, &str) = ("alice", "s3cret");

/// The longest duration any `SECONDS` flag takes: 365 days. Beyond it some timers (hyper's
/// header read timeout among them) would overflow the clock and panic.
const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;

/// The parser of every `SECONDS` flag but `--shutdown-grace`: 1 to [`MAX_SECONDS`].
fn seconds() -> clap::builder::RangedU64ValueParser {
    clap::value_parser!(u64).range(1..=MAX_SECONDS)
}

/// A forward HTTP/1.1 proxy with Basic proxy authentication (tower-proxy-auth example).
#[derive(Parser, Debug)]
#[command(name = "forward_proxy", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port (the real address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3128")]
    listen: SocketAddr,

    /// Realm named in the Proxy-Authenticate challenge.
    #[arg(long, value_name = "TEXT", default_value = tower_proxy_auth::DEFAULT_REALM)]
    realm: String,

    /// A user, as NAME:PASSWORD (split at the first ':'; the password may hold ':').
    /// Repeatable. Without any --user or --htpasswd, the demo user alice:s3cret is used.
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_user)]
    users: Vec<UserArg>,

    /// An Apache/nginx htpasswd file of users (bcrypt, apr1, SHA, crypt(3) formats); reloaded
    /// when it changes. Combinable with --user (those are checked first).
    #[arg(long, value_name = "FILE")]
    htpasswd: Option<PathBuf>,

    /// Skip unusable lines of the htpasswd file with a warning naming file and line, instead of
    /// refusing to start.
    #[arg(long, requires = "htpasswd")]
    htpasswd_lenient: bool,

    /// Serve without proxy authentication (a baseline for benchmarks).
    #[arg(long, conflicts_with_all = ["users", "realm", "htpasswd"])]
    no_auth: bool,

    /// Wrong credentials allowed per user name and per client address within one window;
    /// past it, attempts get 429 with Retry-After until the window ends. 0 turns throttling off.
    #[arg(long, value_name = "N", default_value_t = FailureThrottle::DEFAULT_MAX_FAILURES)]
    max_auth_failures: u32,

    /// Length of the failure-counting window, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = FailureThrottle::DEFAULT_WINDOW.as_secs(),
          value_parser = seconds())]
    auth_failure_window: u64,

    /// Largest Proxy-Authorization accepted, in bytes (at least 64); larger gets 431 and the
    /// connection closes.
    #[arg(long, value_name = "BYTES", default_value_t = tower_proxy_auth::DEFAULT_MAX_CREDENTIALS_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(64..))]
    max_credentials_bytes: u64,

    /// Number of tokio worker threads, 1 to 1024 (default: one per core). 1 runs everything
    /// on one thread (tokio's current-thread runtime).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    worker_threads: Option<u16>,

    /// Seconds a client may take to send a request's header section; also bounds how long an
    /// idle keep-alive connection is held.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = seconds())]
    header_read_timeout: u64,

    /// Seconds to wait for a TCP connection to an origin or a CONNECT target.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = seconds())]
    connect_timeout: u64,

    /// Seconds an unused pooled origin connection is kept for reuse; it is closed between 1 and
    /// 2 times this after its last use (the pool is swept once per period). An origin that
    /// closes sooner (Apache httpd: 5 s, nginx: 75 s) can do so just as a request reuses the
    /// connection: idempotent requests without a body are then retried once, others get 502.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = seconds())]
    origin_idle_timeout: u64,

    /// Unused connections kept per origin (scheme, host, port) for reuse; beyond this, a
    /// connection is closed when its response ends. 0 turns pooling off. Keep it near the
    /// number of concurrent clients: below it, busy origins see connections closed and reopened.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_idle_per_origin: usize,

    /// Seconds a CONNECT tunnel may pass no bytes in either direction before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 600,
          value_parser = seconds())]
    tunnel_idle_timeout: u64,

    /// Seconds in-flight connections and tunnels get to finish after Ctrl-C.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    shutdown_grace: u64,
}

/// One `--user NAME:PASSWORD`; `Debug` hides the password.
#[derive(Clone)]
struct UserArg {
    name: String,
    password: String,
}

impl fmt::Debug for UserArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserArg")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

fn parse_user(value: &str) -> Result<UserArg, String> {
    let Some((name, password)) = value.split_once(':') else {
        return Err("expected NAME:PASSWORD (no ':' found)".to_owned());
    };
    if name.is_empty() {
        return Err("the user name is empty".to_owned());
    }
    // RFC 7617 §2: neither part may hold a control character, so such a user could never log in.
    if name.chars().any(char::is_control) {
        return Err("the user name holds a control character".to_owned());
    }
    if password.chars().any(char::is_control) {
        return Err("the password holds a control character".to_owned());
    }
    Ok(UserArg {
        name: name.to_owned(),
        password: password.to_owned(),
    })
}

/// The body the proxy service answers with: the origin's, or a short text of its own.
type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The body sent to an origin: the client's, or none when a request is sent again.
type OriginBody = http_body_util::Either<Incoming, Empty<Bytes>>;

/// How authentication is set up, decided from the command line before the runtime starts.
struct AuthSetup {
    layer: Option<ProxyAuthLayer>,
    /// What to print as the ready-to-paste proxy URL's user part.
    hint_user: Option<String>,
}

fn auth_setup(args: &Args) -> Result<AuthSetup, String> {
    if args.no_auth {
        return Ok(AuthSetup {
            layer: None,
            hint_user: None,
        });
    }
    let mut users = StaticUsers::new();
    let hint_user = if let Some(first) = args.users.first() {
        for user in &args.users {
            if users.contains(&user.name) {
                return Err(format!("--user {:?} is given more than once", user.name));
            }
            users.insert(user.name.as_str(), user.password.as_bytes());
        }
        format!("{}:PASSWORD", first.name)
    } else if args.htpasswd.is_some() {
        "USER:PASSWORD".to_owned()
    } else {
        users.insert(DEMO_USER.0, DEMO_USER.1);
        format!("{}:{}", DEMO_USER.0, DEMO_USER.1)
    };
    // Static users first: they answer at once, while an htpasswd user unknown to a file costs
    // a dummy hash verification.
    let validator = match &args.htpasswd {
        Some(path) => {
            let file = Htpasswd::builder()
                .lenient(args.htpasswd_lenient)
                .open(path)
                .map_err(|e| format!("--htpasswd: {e}"))?;
            info!(file = %path.display(), users = file.len(), "htpasswd file loaded");
            if users.is_empty() {
                file.boxed()
            } else {
                users.or(file).boxed()
            }
        }
        None => users.boxed(),
    };
    let mut builder = ProxyAuthLayer::builder(validator)
        .realm(args.realm.as_str())
        .max_credentials_bytes(usize::try_from(args.max_credentials_bytes).unwrap_or(usize::MAX));
    if args.max_auth_failures > 0 {
        builder = builder.throttle(FailureThrottle::new(
            args.max_auth_failures,
            Duration::from_secs(args.auth_failure_window),
        ));
    }
    let layer = builder.build().map_err(|e| format!("--realm: {e}"))?;
    Ok(AuthSetup {
        layer: Some(layer),
        hint_user: Some(hint_user),
    })
}

fn main() -> ExitCode {
    let args = Args::parse();

    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let auth = match auth_setup(&args) {
        Ok(auth) => auth,
        Err(message) => {
            eprintln!("forward_proxy: error: {message}");
            return ExitCode::from(2);
        }
    };

    // One worker: a current-thread runtime, with no work-stealing or cross-thread wake-ups.
    let mut runtime = match args.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(usize::from(n));
            runtime
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    // A worker with nothing to do hands its allocator cache back (see allocator.rs).
    #[cfg(target_os = "linux")]
    runtime.on_thread_park(allocator::release_thread_cache);
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("forward_proxy: error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args, auth));
    // Tunnels still open after the grace period are cut here.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("forward_proxy: error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, auth: AuthSetup) -> Result<(), String> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;

    print_banner(local, &auth);

    // Every connection task and tunnel holds a clone of `in_flight`; when the last one is
    // dropped, `all_done` yields `None`.
    let (in_flight, mut all_done) = mpsc::channel::<Infallible>(1);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let proxy = Proxy::new(&args, in_flight.clone());
    let mut server = http1::Builder::new();
    server
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(args.header_read_timeout))
        .keep_alive(true);
    let server = Arc::new(server);

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let service = service_stack(peer, proxy.clone(), auth.layer.as_ref());
                    tokio::spawn(serve_connection(
                        stream,
                        peer,
                        service,
                        server.clone(),
                        shutdown_rx.clone(),
                        in_flight.clone(),
                    ));
                }
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }

    drop(listener);
    info!(
        grace_s = args.shutdown_grace,
        "shutting down: no longer accepting"
    );
    // Ask every connection to finish its in-flight request and close.
    let _ = shutdown_tx.send(true);
    drop(proxy);
    drop(in_flight);
    let grace = Duration::from_secs(args.shutdown_grace);
    match tokio::time::timeout(grace, all_done.recv()).await {
        Ok(_) => info!("all connections closed"),
        Err(_) => warn!("grace period over: closing the remaining connections and tunnels"),
    }
    Ok(())
}

fn print_banner(local: SocketAddr, auth: &AuthSetup) {
    let mut shown = local;
    if shown.ip().is_unspecified() {
        shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let proxy_url = match &auth.hint_user {
        Some(user) => format!("http://{user}@{shown}"),
        None => format!("http://{shown}"),
    };
    let mut out = std::io::stdout().lock();
    // Tests read this line to learn the port; write errors (a closed pipe) are not fatal.
    let _ = writeln!(out, "listening on {local}");
    let _ = writeln!(out, "try: curl -x {proxy_url} http://example.com/");
    let _ = out.flush();
    if auth.hint_user.as_deref() == Some(&format!("{}:{}", DEMO_USER.0, DEMO_USER.1)) {
        warn!("no --user given: using the demo user {:?}", DEMO_USER.0);
    }
    if auth.layer.is_none() {
        warn!("--no-auth: anyone who can reach this address may use the proxy");
    }
}

/// Resolves on Ctrl-C or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

// ---------------------------------------------------------------------------------------------
// The service stack: client address -> log line -> proxy authentication -> proxy.

type NoAuth = MapResponse<Proxy, fn(Response<ProxyBody>) -> Response<ResponseBody<ProxyBody>>>;
type Authenticated = Either<ProxyAuth<Proxy>, NoAuth>;

fn no_auth_body(response: Response<ProxyBody>) -> Response<ResponseBody<ProxyBody>> {
    response.map(ResponseBody::new)
}

fn service_stack(
    peer: SocketAddr,
    proxy: Proxy,
    auth: Option<&ProxyAuthLayer>,
) -> impl Service<
    Request<Incoming>,
    Response = Response<
        impl hyper::body::Body<Data = Bytes, Error = hyper::Error> + Send + 'static,
    >,
    Error = Infallible,
    Future = impl Send,
> + Clone
       + Send
       + 'static {
    let authenticated: Authenticated = match auth {
        Some(layer) => Either::Left(ServiceBuilder::new().layer(layer.clone()).service(proxy)),
        None => Either::Right(
            ServiceBuilder::new()
                .map_response(no_auth_body as fn(_) -> _)
                .service(proxy),
        ),
    };
    ServiceBuilder::new()
        .map_request(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ClientAddr(peer));
            request
        })
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(RequestSpan)
                .on_request(())
                .on_response(LogLine)
                .on_body_chunk(())
                .on_eos(())
                .on_failure(()),
        )
        .service(authenticated)
}

/// A span per request holding the client address, method and target (never credentials).
#[derive(Debug, Clone, Copy)]
struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let client = request.extensions().get::<ClientAddr>().map(|c| c.0);
        tracing::info_span!(
            "request",
            client = %client.map_or_else(|| "-".to_owned(), |c| c.to_string()),
            method = %request.method(),
            target = %log_target(request.method(), request.uri()),
        )
    }
}

/// The one `info` line per request: user (or `-`), status, elapsed milliseconds.
#[derive(Debug, Clone, Copy)]
struct LogLine;

impl<B> OnResponse<B> for LogLine {
    fn on_response(self, response: &Response<B>, latency: Duration, _span: &Span) {
        let user = response.extensions().get::<Identity>().map(Identity::user);
        info!(
            user = %user.unwrap_or("-"),
            status = response.status().as_u16(),
            elapsed_ms = format_args!("{:.1}", latency.as_secs_f64() * 1000.0),
            "handled"
        );
    }
}

/// A 400 for targets no proxy should act on: user-info in the authority (RFC 9110 §4.2.4 makes
/// it an error; it would also put a password in logs and upstream), or a CONNECT target that is
/// not authority-form `host:port` (RFC 9110 §9.3.6).
fn refuse_target(request: &Request<Incoming>) -> Option<Response<ProxyBody>> {
    let uri = request.uri();
    let userinfo = uri.authority().is_some_and(|a| a.as_str().contains('@'));
    if userinfo {
        return Some(text(
            StatusCode::BAD_REQUEST,
            "Bad request: the target must not carry user-info (user:password@)\n",
        ));
    }
    if request.method() == Method::CONNECT
        && (uri.scheme().is_some()
            || uri
                .path_and_query()
                .is_some_and(|p| p.as_str() != "/" && !p.as_str().is_empty()))
    {
        return Some(text(
            StatusCode::BAD_REQUEST,
            "Bad request: CONNECT needs a host:port target\n",
        ));
    }
    None
}

/// The request target for logs, with any user-info left out of the authority.
fn log_target(method: &Method, uri: &Uri) -> String {
    let host_port = |a: &Authority| match a.port() {
        Some(port) => format!("{}:{port}", a.host()),
        None => a.host().to_owned(),
    };
    match (uri.scheme(), uri.authority()) {
        (_, Some(authority)) if method == Method::CONNECT => host_port(authority),
        (Some(scheme), Some(authority)) => format!(
            "{scheme}://{}{}",
            host_port(authority),
            uri.path_and_query().map_or("/", |p| p.as_str())
        ),
        _ => uri.path_and_query().map_or("/", |p| p.as_str()).to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Connections.

async fn serve_connection<S, B>(
    stream: TcpStream,
    peer: SocketAddr,
    service: S,
    server: Arc<http1::Builder>,
    mut shutdown: watch::Receiver<bool>,
    _in_flight: mpsc::Sender<Infallible>,
) where
    S: Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body<Data = Bytes, Error = hyper::Error> + Send + 'static,
{
    if let Err(e) = stream.set_nodelay(true) {
        debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let connection = server
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
        .with_upgrades();
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = async { let _ = shutdown.wait_for(|&stop| stop).await; } => {
            // Finish the request in flight (if any), then close.
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        if e.is_timeout() {
            debug!(%peer, "connection closed: header read timeout");
        } else {
            debug!(%peer, error = %e, "connection error");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The proxy service.

/// Forwards absolute-form requests through a pooled client and opens CONNECT tunnels.
#[derive(Clone)]
struct Proxy {
    client: Client<HttpConnector, OriginBody>,
    connector: HttpConnector,
    connect_timeout: Duration,
    tunnel_idle_timeout: Duration,
    in_flight: mpsc::Sender<Infallible>,
}

impl Proxy {
    fn new(args: &Args, in_flight: mpsc::Sender<Infallible>) -> Self {
        let connect_timeout = Duration::from_secs(args.connect_timeout);
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        // A bounded pool: after a burst of clients leaves, at most `max_idle_per_origin`
        // connections per origin stay open, and none longer than `origin_idle_timeout`.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(args.origin_idle_timeout))
            .pool_max_idle_per_host(args.max_idle_per_origin)
            .build(connector.clone());
        Self {
            client,
            connector,
            connect_timeout,
            tunnel_idle_timeout: Duration::from_secs(args.tunnel_idle_timeout),
            in_flight,
        }
    }

    async fn handle(self, request: Request<Incoming>) -> Response<ProxyBody> {
        // The user goes back to the log line, which runs outside the authentication layer;
        // not needed when that line is filtered out (e.g. `RUST_LOG=warn`).
        let identity = if Span::current().is_disabled() {
            None
        } else {
            request.extensions().get::<Identity>().cloned()
        };
        let mut response = if let Some(refusal) = refuse_target(&request) {
            refusal
        } else if request.method() == Method::CONNECT {
            self.tunnel(request).await
        } else {
            self.forward(request).await
        };
        if let Some(identity) = identity {
            response.extensions_mut().insert(identity);
        }
        response
    }

    async fn forward(&self, mut request: Request<Incoming>) -> Response<ProxyBody> {
        let uri = request.uri();
        if uri.authority().is_none() {
            return text(
                StatusCode::BAD_REQUEST,
                "Bad request: a proxy needs an absolute-form target (http://host/path) or CONNECT\n",
            );
        }
        if uri.scheme() != Some(&Scheme::HTTP) {
            return text(
                StatusCode::BAD_REQUEST,
                "Bad request: only http:// targets are forwarded; use CONNECT for https\n",
            );
        }
        let received = request.version();
        let headers = request.headers_mut();
        remove_hop_by_hop(headers);
        // RFC 9112 §3.2.2: the Host of an absolute-form request is the target's; the client
        // sets it from the URI.
        headers.remove(header::HOST);
        append_via(headers, received);
        *request.version_mut() = Version::HTTP_11;

        // A pooled connection can be closed by the origin just as it is reused (an origin
        // whose keep-alive timeout is shorter than --origin-idle-timeout). An idempotent request
        // without a body whose connection was closed or reset before any response is then sent
        // once more on a new connection (RFC 9110 §9.2.2); anything else gets the 502.
        let replay = Replay::of(&request);
        let mut result = self.client.request(request.map(OriginBody::Left)).await;
        if let (Err(e), Some(replay)) = (&result, replay) {
            if origin_dropped_connection(e) {
                debug!(error = %ErrorChain(e), "origin dropped the connection; retrying once");
                result = self.client.request(replay.into_request()).await;
            }
        }
        match result {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                append_via(&mut parts.headers, parts.version);
                parts.version = Version::HTTP_11;
                Response::from_parts(parts, body.boxed())
            }
            Err(e) => {
                debug!(error = %ErrorChain(&e), "origin request failed");
                text(
                    StatusCode::BAD_GATEWAY,
                    "Bad gateway: the origin could not be reached or failed\n",
                )
            }
        }
    }

    async fn tunnel(&self, mut request: Request<Incoming>) -> Response<ProxyBody> {
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
            Ok(Err(e)) => {
                debug!(target = %authority, error = %ErrorChain(&e), "CONNECT target unreachable");
                return text(
                    StatusCode::BAD_GATEWAY,
                    "Bad gateway: the CONNECT target could not be reached\n",
                );
            }
            Err(_) => {
                debug!(target = %authority, "CONNECT target timed out");
                return text(
                    StatusCode::BAD_GATEWAY,
                    "Bad gateway: the CONNECT target did not answer in time\n",
                );
            }
        };

        let upgrade = hyper::upgrade::on(&mut request);
        let in_flight = self.in_flight.clone();
        let idle_timeout = self.tunnel_idle_timeout;
        tokio::spawn(async move {
            let _in_flight = in_flight;
            match upgrade.await {
                Ok(upgraded) => {
                    relay(TokioIo::new(upgraded), upstream, idle_timeout, &authority).await
                }
                Err(e) => debug!(target = %authority, error = %e, "CONNECT upgrade failed"),
            }
        });
        Response::new(empty())
    }
}

/// Relays bytes both ways until either side closes, an I/O error, or `idle_timeout` passes
/// with no byte read from either side.
async fn relay<C, U>(client: C, upstream: U, idle_timeout: Duration, target: &Authority)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let last_read = LastRead::new();
    let mut client = Watched::new(client, &last_read);
    let mut upstream = Watched::new(upstream, &last_read);
    let copying = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::select! {
        result = copying => match result {
            Ok((up, down)) => debug!(%target, up, down, "tunnel closed"),
            Err(e) => debug!(%target, error = %e, "tunnel failed"),
        },
        () = last_read.idle_for(idle_timeout) => {
            debug!(%target, idle_s = idle_timeout.as_secs(), "tunnel closed: idle timeout");
        }
    }
}

/// When a tunnel last read a byte from either side, in milliseconds since the tunnel opened.
struct LastRead {
    opened: tokio::time::Instant,
    at_ms: AtomicU64,
}

impl LastRead {
    fn new() -> Self {
        Self {
            opened: tokio::time::Instant::now(),
            at_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.at_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once `timeout` has passed since the last read. Wakes once per timeout
    /// period, not per byte. A timeout beyond what the clock can represent never completes.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let since_open = Duration::from_millis(self.at_ms.load(Ordering::Relaxed));
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

/// An I/O object that records in a [`LastRead`] every read that returns bytes.
struct Watched<'a, T> {
    io: T,
    last_read: &'a LastRead,
}

impl<'a, T> Watched<'a, T> {
    fn new(io: T, last_read: &'a LastRead) -> Self {
        Self { io, last_read }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<'_, T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last_read.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<'_, T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// What it takes to send a bodyless idempotent request again.
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Replay {
    /// `Some` for a request with an idempotent method (RFC 9110 §9.2.2) and no body.
    fn of(request: &Request<Incoming>) -> Option<Self> {
        let idempotent = matches!(
            *request.method(),
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::TRACE
                | Method::PUT
                | Method::DELETE
        );
        (idempotent && hyper::body::Body::is_end_stream(request.body())).then(|| Self {
            method: request.method().clone(),
            uri: request.uri().clone(),
            headers: request.headers().clone(),
        })
    }

    fn into_request(self) -> Request<OriginBody> {
        let mut request = Request::new(OriginBody::Right(Empty::new()));
        *request.method_mut() = self.method;
        *request.uri_mut() = self.uri;
        *request.headers_mut() = self.headers;
        *request.version_mut() = Version::HTTP_11;
        request
    }
}

/// Whether the origin dropped the connection after the request went out and before any byte
/// of a response came back: hyper's "connection closed before message completed", or a reset
/// (an origin that had already closed answers the request's bytes with RST).
fn origin_dropped_connection(error: &hyper_util::client::legacy::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            if e.is_incomplete_message() {
                return true;
            }
        } else if let Some(e) = e.downcast_ref::<std::io::Error>() {
            return matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe);
        }
        source = e.source();
    }
    false
}

impl Service<Request<Incoming>> for Proxy {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move { Ok(this.handle(request).await) })
    }
}

/// The hop-by-hop fields every hop removes (RFC 9110 §7.6.1), beyond those `Connection` lists.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes the hop-by-hop fields of RFC 9110 §7.6.1: `Connection` and every field it names,
/// plus `Proxy-Connection`, `Keep-Alive`, `TE`, `Transfer-Encoding` and `Upgrade`.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none, or only `Connection`: one pass over the names decides.
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .filter_map(|name| HeaderName::from_bytes(name.trim_ascii()).ok())
        .collect();
    for name in listed.iter().chain(&HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// `Via` values per received protocol (RFC 9110 §7.6.3), built at compile time.
const VIA_09: HeaderValue = HeaderValue::from_static("0.9 tower-proxy-auth");
const VIA_10: HeaderValue = HeaderValue::from_static("1.0 tower-proxy-auth");
const VIA_11: HeaderValue = HeaderValue::from_static("1.1 tower-proxy-auth");
const VIA_2: HeaderValue = HeaderValue::from_static("2 tower-proxy-auth");
const VIA_3: HeaderValue = HeaderValue::from_static("3 tower-proxy-auth");

/// Appends `Via: <received-protocol> tower-proxy-auth` (RFC 9110 §7.6.3).
fn append_via(headers: &mut HeaderMap, received: Version) {
    let value = match received {
        Version::HTTP_09 => VIA_09,
        Version::HTTP_10 => VIA_10,
        Version::HTTP_2 => VIA_2,
        Version::HTTP_3 => VIA_3,
        _ => VIA_11,
    };
    headers.append(header::VIA, value);
}

fn text(status: StatusCode, message: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(message.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn empty() -> ProxyBody {
    Empty::new().map_err(|never| match never {}).boxed()
}

/// Displays an error with its sources: `a: b: c`.
struct ErrorChain<'a>(&'a (dyn StdError + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}
