//! The forward proxy as a tower `Service`: absolute-form requests are forwarded
//! (`src/forward.rs`), `CONNECT` opens a tunnel ([`tunnel`](crate::tunnel)), anything
//! else gets 400. Put an authentication layer around it (`ProxyAuthLayer`) and serve it with
//! hyper's HTTP/1.1 server with upgrades on.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::dns::GaiResolver;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::sync::oneshot;
use tower::Service;
use tower_proxy_auth::Identity;

use crate::forward::OriginBody;
use crate::reply::text;
use crate::targets::{CheckedResolver, TargetPolicy};
use crate::tunnel::Relayed;

/// The body the proxy answers with: the origin's, or a short text of its own.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The connector to origins and CONNECT targets: name resolution checked by the target policy.
pub(crate) type Connector = HttpConnector<CheckedResolver<GaiResolver>>;

/// A forward HTTP/1.1 proxy service: HTTP forwarding over a pool of reused origin connections
/// (with the one retry of `src/forward.rs`), CONNECT tunnels, a [`TargetPolicy`] on
/// both.
///
/// - A request whose target carries user-info (`http://user:pass@host/`, RFC 9110 §4.2.4), or a
///   `CONNECT` whose target is not `host:port` (RFC 9110 §9.3.6), gets 400; an origin-form
///   request (`GET /`) gets 400; a target the policy refuses gets 403; an origin or target
///   that cannot be reached gets 502.
/// - The request's [`Identity`] (put there by the authentication layer) is copied to the
///   response, so that a log layer outside the authentication layer can name the user.
/// - Responses carry an [`Upstream`] extension (the address connected to) when one was used,
///   and a CONNECT 200 carries a [`TunnelReport`].
///
/// ```no_run
/// use std::time::Duration;
/// use tower_proxy_auth_proxy::{targets::TargetPolicy, ForwardProxy};
///
/// let proxy = ForwardProxy::builder()
///     .connect_timeout(Duration::from_secs(5))
///     .targets(TargetPolicy::new())
///     .build();
/// # let _ = proxy;
/// ```
#[derive(Clone)]
pub struct ForwardProxy {
    pub(crate) client: Client<Connector, OriginBody>,
    pub(crate) connector: Connector,
    pub(crate) connect_timeout: Duration,
    pub(crate) tunnel_idle_timeout: Duration,
    pub(crate) targets: TargetPolicy,
}

/// Settings of a [`ForwardProxy`]; see each method for its default.
#[derive(Debug, Clone)]
pub struct ForwardProxyBuilder {
    connect_timeout: Duration,
    origin_idle_timeout: Duration,
    max_idle_per_origin: usize,
    tunnel_idle_timeout: Duration,
    targets: TargetPolicy,
}

impl Default for ForwardProxyBuilder {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            origin_idle_timeout: Duration::from_secs(30),
            max_idle_per_origin: 1024,
            tunnel_idle_timeout: Duration::from_secs(600),
            targets: TargetPolicy::new(),
        }
    }
}

impl ForwardProxyBuilder {
    /// How long a TCP connection to an origin or a CONNECT target may take (default 10 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an unused origin connection is kept for reuse (default 30 s); it is closed
    /// between 1 and 2 times this after its last use (the pool is swept once per period).
    pub fn origin_idle_timeout(mut self, timeout: Duration) -> Self {
        self.origin_idle_timeout = timeout;
        self
    }

    /// Unused connections kept per origin (scheme, host, port); 0 turns reuse off (default
    /// 1,024).
    pub fn max_idle_per_origin(mut self, max: usize) -> Self {
        self.max_idle_per_origin = max;
        self
    }

    /// How long a CONNECT tunnel may pass no byte either way before it is closed (default
    /// 600 s).
    pub fn tunnel_idle_timeout(mut self, timeout: Duration) -> Self {
        self.tunnel_idle_timeout = timeout;
        self
    }

    /// Which target addresses may be connected to (default: [`TargetPolicy::new`], internal
    /// addresses refused).
    pub fn targets(mut self, policy: TargetPolicy) -> Self {
        self.targets = policy;
        self
    }

    /// The proxy. Needs a Tokio runtime with time enabled when it serves requests.
    pub fn build(self) -> ForwardProxy {
        let resolver = CheckedResolver::new(GaiResolver::new(), self.targets);
        let mut connector = HttpConnector::new_with_resolver(resolver);
        connector.set_connect_timeout(Some(self.connect_timeout));
        connector.set_nodelay(true);
        // A bounded pool: after a burst of clients leaves, at most `max_idle_per_origin`
        // connections per origin stay open, and none longer than `origin_idle_timeout`.
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.origin_idle_timeout)
            .pool_max_idle_per_host(self.max_idle_per_origin)
            .build(connector.clone());
        ForwardProxy {
            client,
            connector,
            connect_timeout: self.connect_timeout,
            tunnel_idle_timeout: self.tunnel_idle_timeout,
            targets: self.targets,
        }
    }
}

impl ForwardProxy {
    /// The settings, at their defaults.
    pub fn builder() -> ForwardProxyBuilder {
        ForwardProxyBuilder::default()
    }

    async fn handle(self, request: Request<Incoming>) -> Response<ProxyBody> {
        let identity = request.extensions().get::<Identity>().cloned();
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
}

impl Service<Request<Incoming>> for ForwardProxy {
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

/// In a response's extensions: the address of the origin or CONNECT target the proxy was
/// connected to for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upstream(pub SocketAddr);

/// In the extensions of a CONNECT 200: how the tunnel went, once it has ended.
#[derive(Debug, Clone)]
pub struct TunnelReport(Arc<Mutex<Option<oneshot::Receiver<Relayed>>>>);

/// The sending half of a [`TunnelReport`], held by the tunnel task.
pub(crate) struct TunnelReporter(oneshot::Sender<Relayed>);

impl TunnelReport {
    pub(crate) fn channel() -> (TunnelReporter, Self) {
        let (tx, rx) = oneshot::channel();
        (TunnelReporter(tx), Self(Arc::new(Mutex::new(Some(rx)))))
    }

    /// Waits for the tunnel to end and returns how it went; `None` when the tunnel never
    /// started (the upgrade failed) or when the report was already taken.
    pub async fn ended(&self) -> Option<Relayed> {
        let receiver = self.0.lock().ok()?.take()?;
        receiver.await.ok()
    }
}

impl TunnelReporter {
    pub(crate) fn send(self, relayed: Relayed) {
        let _ = self.0.send(relayed);
    }
}
