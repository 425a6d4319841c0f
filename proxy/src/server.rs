//! The accept loop: the connection limit, TLS (when configured), one hyper HTTP/1.1 connection
//! per client with upgrades for CONNECT, the service stack per connection, and shutdown.
//!
//! Each connection: with `--proxy-protocol`, its PROXY header first (within
//! `--header-read-timeout`; none or a bad one closes the connection), then TLS if configured,
//! then HTTP/1.1. The stack per request, outermost first: the client address as a `ClientAddr`
//! extension (the TCP peer, the PROXY header's source, or what a `--trusted-proxy` names in
//! `--forwarded-header`; see `tower_proxy_auth_proxy::client_address`) and the connection's
//! `ConnectionMarker` (the throttle's connection rule) → the access log → one `Host` field
//! line (two get 400, RFC 9112 §3.2) → proxy authentication → the proxy.
//!
//! `--max-connections`: a slot is taken before each accept and given back when the connection
//! (or the CONNECT tunnel it became) closes. At the limit the proxy stops accepting: new
//! clients wait in the kernel's listen queue and are served as slots free up, rather than being
//! accepted and closed at once (which a client sees as a failure even when a slot frees a
//! moment later). Slow clients cannot hold slots for ever: `--header-read-timeout` bounds the
//! header section, the TLS handshake and idle keep-alive, `--tunnel-idle-timeout` silent
//! tunnels.
//!
//! Shutdown (Ctrl-C or SIGTERM): the listener closes, every connection finishes its request in
//! flight and closes, tunnels get `--shutdown-grace` seconds, then the access log is written
//! out.

use std::convert::Infallible;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tower::util::{Either, MapResponse};
use tower::{Service, ServiceBuilder};
use tower_proxy_auth::{ClientAddr, ConnectionMarker, ProxyAuth, ProxyAuthLayer, ResponseBody};
use tower_proxy_auth_proxy::client_address::{ClientAddress, TrustedProxies};
use tower_proxy_auth_proxy::proxy_protocol::{self, Prefixed};
use tower_proxy_auth_proxy::targets::TargetPolicy;
use tower_proxy_auth_proxy::{ForwardProxy, ProxyBody};
use tracing::{debug, info, warn};

use crate::access_log::{AccessLog, AccessLogLayer, Writer};
use crate::auth::AuthSetup;
use crate::cli::Args;

/// What the accept loop serves with, decided before the runtime starts.
pub struct Setup {
    pub auth: AuthSetup,
    pub access_log: Option<(AccessLog, Writer)>,
    #[cfg(feature = "tls")]
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Listens, serves until Ctrl-C or SIGTERM, then shuts down.
pub async fn run(args: Args, setup: Setup) -> Result<(), String> {
    let listener = TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;

    let (log, log_writer) = match setup.access_log {
        Some((log, writer)) => (Some(log), Some(writer)),
        None => (None, None),
    };
    let (stop_log, log_stopped) = watch::channel(false);
    let log_task = log_writer.map(|writer| tokio::spawn(writer.run(log_stopped)));

    #[cfg(feature = "tls")]
    let tls = setup.tls;
    #[cfg(not(feature = "tls"))]
    let tls: Option<()> = None;
    print_banner(local, &setup.auth, tls.is_some());

    // Every connection task and tunnel holds a clone of `in_flight`; when the last one is
    // dropped, `all_done` yields `None`.
    let (in_flight, mut all_done) = mpsc::channel::<Infallible>(1);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(
        usize::try_from(args.max_connections).unwrap_or(Semaphore::MAX_PERMITS),
    ));

    let proxy = ForwardProxy::builder()
        .connect_timeout(Duration::from_secs(args.connect_timeout))
        .origin_idle_timeout(Duration::from_secs(args.origin_idle_timeout))
        .max_idle_per_origin(args.max_idle_per_origin)
        .tunnel_idle_timeout(Duration::from_secs(args.tunnel_idle_timeout))
        .targets(TargetPolicy::new().allow_internal(args.allow_private_targets))
        .build();
    let authenticated = authenticated(proxy, setup.auth.layer.as_ref());
    let mut server = http1::Builder::new();
    server
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(args.header_read_timeout))
        .keep_alive(true);
    let client_address = client_address(&args);
    let connection = Arc::new(Connection {
        server,
        #[cfg(feature = "tls")]
        tls,
        handshake_timeout: Duration::from_secs(args.header_read_timeout),
        proxy_protocol: args.proxy_protocol,
        forwarded: (!client_address.trusted().is_empty()).then(|| Arc::new(client_address)),
    });

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => Arc::new(slot),
                Err(_) => break, // never closed
            },
            () = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let guard = Guard {
                        _slot: slot,
                        _in_flight: in_flight.clone(),
                    };
                    let stack = Stack {
                        guard,
                        log: log.clone(),
                        authenticated: authenticated.clone(),
                    };
                    tokio::spawn(connection.clone().serve(stream, peer, stack, shutdown_rx.clone()));
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
    drop(authenticated);
    drop(in_flight);
    let grace = Duration::from_secs(args.shutdown_grace);
    match tokio::time::timeout(grace, all_done.recv()).await {
        Ok(_) => info!("all connections closed"),
        Err(_) => warn!("grace period over: closing the remaining connections and tunnels"),
    }
    drop(log);
    let _ = stop_log.send(true);
    if let Some(task) = log_task {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    Ok(())
}

/// The client-address rule of `--trusted-proxy` and `--forwarded-header`, logged once.
fn client_address(args: &Args) -> ClientAddress {
    let trusted = args
        .trusted_proxies
        .iter()
        .fold(TrustedProxies::new(), |t, net| t.trust(*net));
    let field = args.forwarded_header.field();
    if !trusted.is_empty() {
        let nets: Vec<String> = trusted.nets().iter().map(ToString::to_string).collect();
        info!(
            trusted = %nets.join(","),
            field = field.map_or("none", |f| f.as_str()),
            proxy_protocol = args.proxy_protocol,
            "client addresses from trusted proxies"
        );
    } else if args.proxy_protocol {
        info!("client addresses from PROXY protocol headers (every connection must send one)");
    }
    ClientAddress::new(trusted, field)
}

fn print_banner(local: SocketAddr, auth: &AuthSetup, tls: bool) {
    let mut shown = local;
    if shown.ip().is_unspecified() {
        shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let scheme = if tls { "https" } else { "http" };
    let proxy_url = match &auth.hint_user {
        Some(user) => format!("{scheme}://{user}@{shown}"),
        None => format!("{scheme}://{shown}"),
    };
    let mut out = std::io::stdout().lock();
    // Tests read this line to learn the port; write errors (a closed pipe) are not fatal.
    let _ = writeln!(out, "listening on {local}");
    let _ = writeln!(out, "try: curl -x {proxy_url} http://example.com/");
    let _ = out.flush();
    if auth.is_demo() {
        warn!(
            "no --user given: using the demo user {:?}",
            crate::cli::DEMO_USER.0
        );
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

/// What a connection holds while it is open: its slot of `--max-connections` and its place in
/// the shutdown count. A CONNECT request carries a clone in its extensions, so the tunnel holds
/// both until it ends.
#[derive(Clone)]
struct Guard {
    _slot: Arc<OwnedSemaphorePermit>,
    _in_flight: mpsc::Sender<Infallible>,
}

// ---------------------------------------------------------------------------------------------
// The service stack.

type NoAuth =
    MapResponse<ForwardProxy, fn(Response<ProxyBody>) -> Response<ResponseBody<ProxyBody>>>;
type Authenticated = Either<ProxyAuth<ForwardProxy>, NoAuth>;

fn no_auth_body(response: Response<ProxyBody>) -> Response<ResponseBody<ProxyBody>> {
    response.map(ResponseBody::new)
}

/// The proxy behind the authentication layer, or without it (`--no-auth`).
fn authenticated(proxy: ForwardProxy, auth: Option<&ProxyAuthLayer>) -> Authenticated {
    match auth {
        Some(layer) => Either::Left(ServiceBuilder::new().layer(layer.clone()).service(proxy)),
        None => Either::Right(
            ServiceBuilder::new()
                .map_response(no_auth_body as fn(_) -> _)
                .service(proxy),
        ),
    }
}

/// What each connection's service stack is made of, besides its client address.
struct Stack {
    guard: Guard,
    log: Option<AccessLog>,
    authenticated: Authenticated,
}

/// The stack for a connection from `client` (the TCP peer or the PROXY header's source);
/// `forwarded` is the `--trusted-proxy` rule, when some proxy is trusted.
fn service_stack(
    client: SocketAddr,
    forwarded: Option<Arc<ClientAddress>>,
    Stack {
        guard,
        log,
        authenticated,
    }: Stack,
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
    // One marker per connection: the throttle closes a connection that keeps failing.
    let connection = ConnectionMarker::new();
    ServiceBuilder::new()
        .map_request(move |mut request: Request<Incoming>| {
            // Per request: one balancer connection may carry requests of many clients.
            let addr = match &forwarded {
                None => client,
                Some(rule) => match rule.client(client.ip(), request.headers()) {
                    ip if ip == client.ip() => client,
                    ip => SocketAddr::new(ip, 0),
                },
            };
            request.extensions_mut().insert(ClientAddr(addr));
            request.extensions_mut().insert(connection.clone());
            if request.method() == Method::CONNECT {
                request.extensions_mut().insert(guard.clone());
            }
            request
        })
        .layer(AccessLogLayer(log))
        .service(OneHost(authenticated))
}

/// Answers 400 to a request with more than one `Host` field line (RFC 9112 §3.2), before
/// authentication; passes every other request on.
#[derive(Clone)]
struct OneHost<S>(S);

type StackResponse = Response<ResponseBody<ProxyBody>>;

impl<S> Service<Request<Incoming>> for OneHost<S>
where
    S: Service<Request<Incoming>, Response = StackResponse, Error = Infallible>,
{
    type Response = StackResponse;
    type Error = Infallible;
    type Future = OneHostFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let mut hosts = request.headers().get_all(header::HOST).iter();
        if hosts.next().is_some() && hosts.next().is_some() {
            debug!("two Host field lines: 400");
            let mut response = Response::new(ResponseBody::new(
                Full::new(Bytes::from_static(
                    b"Bad request: more than one Host field line\n",
                ))
                .map_err(|never| match never {})
                .boxed(),
            ));
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            // The request's body, if any, is not read: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return OneHostFuture::Rejected {
                response: Some(response),
            };
        }
        OneHostFuture::Inner {
            future: self.0.call(request),
        }
    }
}

pin_project_lite::pin_project! {
    #[project = OneHostProj]
    enum OneHostFuture<F> {
        Rejected { response: Option<StackResponse> },
        Inner { #[pin] future: F },
    }
}

impl<F> Future for OneHostFuture<F>
where
    F: Future<Output = Result<StackResponse, Infallible>>,
{
    type Output = Result<StackResponse, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            OneHostProj::Rejected { response } => match response.take() {
                Some(response) => Poll::Ready(Ok(response)),
                None => Poll::Pending,
            },
            OneHostProj::Inner { future } => future.poll(cx),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Connections.

/// How each accepted connection is served.
struct Connection {
    server: http1::Builder,
    #[cfg(feature = "tls")]
    tls: Option<tokio_rustls::TlsAcceptor>,
    handshake_timeout: Duration,
    /// `--proxy-protocol`.
    proxy_protocol: bool,
    /// The `--trusted-proxy` rule, when some proxy is trusted.
    forwarded: Option<Arc<ClientAddress>>,
}

impl Connection {
    async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        stack: Stack,
        mut shutdown: watch::Receiver<bool>,
    ) {
        // Held until the connection (or the tunnel it became) closes.
        let _guard = stack.guard.clone();
        if let Err(e) = stream.set_nodelay(true) {
            debug!(%peer, error = %e, "cannot set TCP_NODELAY");
        }
        let Some((stream, client)) = self.proxy_header(stream, peer).await else {
            return;
        };
        let Some(stream) = self.handshake(stream, peer).await else {
            return;
        };
        let service = service_stack(client, self.forwarded.clone(), stack);
        let connection = self
            .server
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

    /// With `--proxy-protocol`, reads the PROXY header of a connection from `peer` (when
    /// `peer` is expected to send one: every peer, or with `--trusted-proxy` the trusted ones)
    /// and returns the stream with the bytes read past it, and the client address: the
    /// header's source, or `peer` when it names none (`LOCAL`, `UNKNOWN`). `None`: no valid
    /// header within the header read timeout; the connection is closed.
    async fn proxy_header(
        &self,
        mut stream: TcpStream,
        peer: SocketAddr,
    ) -> Option<(Prefixed<TcpStream>, SocketAddr)> {
        let expected = self.proxy_protocol
            && self
                .forwarded
                .as_ref()
                .is_none_or(|rule| rule.trusts(peer.ip()));
        if !expected {
            return Some((Prefixed::plain(stream), peer));
        }
        let read = proxy_protocol::read_header(&mut stream);
        match tokio::time::timeout(self.handshake_timeout, read).await {
            Ok(Ok((header, rest))) => {
                Some((Prefixed::new(rest, stream), header.source.unwrap_or(peer)))
            }
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "connection closed: no valid PROXY protocol header");
                None
            }
            Err(_) => {
                debug!(%peer, "connection closed: no PROXY protocol header in time");
                None
            }
        }
    }

    #[cfg(feature = "tls")]
    async fn handshake(&self, stream: Prefixed<TcpStream>, peer: SocketAddr) -> Option<Stream> {
        let Some(acceptor) = &self.tls else {
            return Some(Stream::Plain(stream));
        };
        match tokio::time::timeout(self.handshake_timeout, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => Some(Stream::Tls(Box::new(tls))),
            Ok(Err(e)) => {
                debug!(%peer, error = %e, "TLS handshake failed");
                None
            }
            Err(_) => {
                debug!(%peer, "TLS handshake timed out");
                None
            }
        }
    }

    #[cfg(not(feature = "tls"))]
    async fn handshake(&self, stream: Prefixed<TcpStream>, _peer: SocketAddr) -> Option<Stream> {
        let _ = self.handshake_timeout;
        Some(Stream::Plain(stream))
    }
}

/// A client connection: plain TCP, or TLS over TCP (either after the bytes read past a PROXY
/// header, if any).
enum Stream {
    Plain(Prefixed<TcpStream>),
    #[cfg(feature = "tls")]
    Tls(Box<tokio_rustls::server::TlsStream<Prefixed<TcpStream>>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, data),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s).poll_write(cx, data),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(feature = "tls")]
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
