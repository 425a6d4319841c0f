//! Basic credentials checked by an HTTP auth service: Traefik's ForwardAuth, nginx's
//! `auth_request`, Envoy's `ext_authz` in HTTP mode, oauth2-proxy, Authelia, or a service of
//! your own. Cargo feature `forward-auth`.
//!
//! For each check not answered from the cache, [`ForwardAuth`] sends one request to a
//! configured URL, carrying the client's credentials field value unchanged and the original
//! request's method, URI and client address, and maps the answer:
//!
//! | the service answers | decision |
//! |---|---|
//! | 2xx | allow; the identity from a configured response field (else the user-id), chosen response fields attached as [`ForwardAuthHeaders`] |
//! | 401 or 407 | reject: 407/401 with the challenges |
//! | 403 | forbid: 403 |
//! | anything else, no answer within the timeout, no connection | unavailable: 503, never an open door |
//!
//! Only Basic credentials can be delegated this way. A Digest response is a hash over a nonce
//! this layer issued and the user's HA1: an auth service could check it only by holding the
//! nonce key and every HA1, which is a secrets source, not a check. Offer Digest with a
//! [`DigestSecrets`](crate::validator::DigestSecrets) source instead (an async lookup of the
//! HA1, [`secrets_from_async_fn`](crate::validator::secrets_from_async_fn)).
//!
//! Connections are pooled (hyper-util's client, HTTP/1.1 keep-alive); `https` URLs use rustls
//! with the ring provider and Mozilla's roots (webpki-roots), or only the CAs given.
//!
//! ```
//! use std::time::Duration;
//! use http::HeaderName;
//! use tower_proxy_auth::store::forward_auth::ForwardAuth;
//! use tower_proxy_auth::ProxyAuthLayer;
//!
//! let validator = ForwardAuth::to("http://127.0.0.1:9091/api/verify")
//!     .identity_from(HeaderName::from_static("remote-user"))
//!     .keep_response_header(HeaderName::from_static("remote-groups"))
//!     .timeout(Duration::from_secs(2))
//!     .credentials_ttl(Duration::from_secs(60))
//!     .build()?;
//! let layer = ProxyAuthLayer::new(validator);
//! # Ok::<(), tower_proxy_auth::store::forward_auth::ForwardAuthError>(())
//! ```

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, PROXY_AUTHORIZATION};
use http::request::Parts;
use http::{HeaderMap, Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use subtle::ConstantTimeEq as _;
use tokio::sync::Semaphore;

use crate::client_addr::ClientAddr;
use crate::identity::Identity;
use crate::outcome::{Decision, Validation, ValidatorError};
use crate::scheme::basic::BasicCredentials;
use crate::secret::RandomSourceError;
use crate::validator::{CacheSettings, Cached, Validator};

/// Default [`ForwardAuthBuilder::timeout`]: 5 seconds for the whole exchange.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default [`ForwardAuthBuilder::max_in_flight`]: 64 requests to the service at once.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;
/// Default [`ForwardAuthBuilder::queue`]: 256 checks waiting for one of those.
pub const DEFAULT_QUEUE: usize = 256;
/// How much of a response body is read (and dropped) so that the connection can be reused.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// The original request's method.
pub const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
/// The original request-target (absolute-form for a proxied request, `host:port` for CONNECT).
pub const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
/// The client's address.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;
type AddrSource = Arc<dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync>;

/// A password [`Validator`] that asks an HTTP auth service; see the
/// [module documentation](self). Made by [`ForwardAuth::to`]`(url)…`[`.build()`](ForwardAuthBuilder::build),
/// behind a [`Cached`].
///
/// The request to the service:
///
/// - the configured method (default `GET`) and URL, no body;
/// - the fields named by [`copy_header`](ForwardAuthBuilder::copy_header), copied from the
///   client's request, and those of [`with_header`](ForwardAuthBuilder::with_header);
/// - the client's credentials field value, unchanged (the `Proxy-Authorization` or
///   `Authorization` line that holds the credentials being checked), in
///   [`send_credentials_in`](ForwardAuthBuilder::send_credentials_in) (default
///   `Authorization`);
/// - `X-Forwarded-Method`, `X-Forwarded-Uri` (the request-target as received) and
///   `X-Forwarded-For` (the client's IP address, from [`ClientAddr`] or
///   [`client_addr_from`](ForwardAuthBuilder::client_addr_from)), always set here: values the
///   client sent under those names are never passed on.
///
/// The cache in front keys answers, and shares checks in flight, by the credentials *and*
/// everything else that is sent: the method, the request-target, the client address and the
/// copied header values ([`Validator::answer_context`]). An allow is remembered for the TTL for
/// that request alone, so a service may decide per target or per address; a forbid is never
/// remembered. With [`copy_header`](ForwardAuthBuilder::copy_header) of a header that differs
/// on every request, nothing is remembered.
///
/// At most [`max_in_flight`](ForwardAuthBuilder::max_in_flight) requests run at once, with at
/// most [`queue`](ForwardAuthBuilder::queue) more checks waiting; beyond that a check gets an
/// overloaded error at once (503; the failure throttle counts it against the sender's address).
#[derive(Clone)]
pub struct ForwardAuth {
    inner: Arc<Inner>,
}

struct Inner {
    url: Uri,
    /// The URL without query, for messages.
    shown: String,
    method: Method,
    copy: Vec<HeaderName>,
    fixed: HeaderMap,
    credentials_header: HeaderName,
    identity_header: Option<HeaderName>,
    keep: Vec<HeaderName>,
    timeout: Duration,
    client: HttpsClient,
    permits: Arc<Semaphore>,
    places: Arc<Semaphore>,
    max_in_flight: usize,
    queue: usize,
    client_addr: AddrSource,
}

/// The response fields of an auth service's 2xx that
/// [`keep_response_header`](ForwardAuthBuilder::keep_response_header) names, attached to the
/// [`Identity`]; read them with `identity.get::<ForwardAuthHeaders>()`.
#[derive(Debug, Clone, Default)]
pub struct ForwardAuthHeaders(HeaderMap);

impl ForwardAuthHeaders {
    /// The kept fields.
    pub fn headers(&self) -> &HeaderMap {
        &self.0
    }

    /// The first value of `name`, when it is text.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

impl ForwardAuth {
    /// Starts a forward-auth validator that asks `url` (`http` or `https`).
    pub fn to(url: impl Into<String>) -> ForwardAuthBuilder {
        ForwardAuthBuilder {
            url: url.into(),
            method: Method::GET,
            copy: Vec::new(),
            fixed: HeaderMap::new(),
            credentials_header: AUTHORIZATION,
            identity_header: None,
            keep: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            queue: DEFAULT_QUEUE,
            roots: Roots::Webpki,
            client_addr: Arc::new(|parts: &Parts| {
                parts.extensions.get::<ClientAddr>().map(|a| a.0.ip())
            }),
            cache: CacheSettings::default(),
        }
    }

    /// Checks running or waiting now.
    pub fn in_use(&self) -> usize {
        let inner = &self.inner;
        (inner.max_in_flight + inner.queue).saturating_sub(inner.places.available_permits())
    }

    /// The request to the service for `credentials` of `request`.
    fn auth_request(
        &self,
        credentials: &BasicCredentials,
        request: &Parts,
    ) -> Result<Request<Empty<Bytes>>, ValidatorError> {
        let inner = &self.inner;
        let mut auth = Request::builder()
            .method(inner.method.clone())
            .uri(inner.url.clone())
            .body(Empty::new())
            .map_err(|e| ValidatorError::new(format!("forward auth {}: {e}", inner.shown)))?;
        let headers = auth.headers_mut();
        for name in &inner.copy {
            for value in request.headers.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        for (name, value) in &inner.fixed {
            headers.append(name.clone(), value.clone());
        }
        for name in [&X_FORWARDED_METHOD, &X_FORWARDED_URI, &X_FORWARDED_FOR] {
            headers.remove(name);
        }
        headers.insert(
            inner.credentials_header.clone(),
            credentials_field(credentials, request),
        );
        if let Ok(method) = HeaderValue::from_str(request.method.as_str()) {
            headers.insert(X_FORWARDED_METHOD, method);
        }
        if let Ok(uri) = HeaderValue::from_str(&request.uri.to_string()) {
            headers.insert(X_FORWARDED_URI, uri);
        }
        if let Some(addr) = (inner.client_addr)(request) {
            if let Ok(addr) = HeaderValue::from_str(&addr.to_string()) {
                headers.insert(X_FORWARDED_FOR, addr);
            }
        }
        Ok(auth)
    }
}

/// The field value that carries `credentials`: the client's own line, unchanged, when one of
/// the two credentials fields holds exactly these credentials (the one the layer read), else
/// their canonical encoding. Never a field with other credentials: the answer is remembered
/// under these.
fn credentials_field(credentials: &BasicCredentials, request: &Parts) -> HeaderValue {
    for name in [PROXY_AUTHORIZATION, AUTHORIZATION] {
        let mut values = request.headers.get_all(&name).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            continue;
        };
        if let Ok(parsed) = BasicCredentials::parse(value.as_bytes()) {
            let same = parsed
                .user_id()
                .as_bytes()
                .ct_eq(credentials.user_id().as_bytes())
                & parsed.password().ct_eq(credentials.password());
            if bool::from(same) {
                let mut value = value.clone();
                value.set_sensitive(true);
                return value;
            }
        }
    }
    let mut value = HeaderValue::from_str(&credentials.encode())
        .unwrap_or_else(|_| HeaderValue::from_static("Basic"));
    value.set_sensitive(true);
    value
}

impl Validator for ForwardAuth {
    /// Everything of the request the service is sent besides the credentials: the method, the
    /// request-target, the client address and the copied header values, each part
    /// length-prefixed (the fixed headers are the same for every request).
    fn answer_context(&self, request: &Parts, context: &mut Vec<u8>) {
        fn part(context: &mut Vec<u8>, bytes: &[u8]) {
            context.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
            context.extend_from_slice(bytes);
        }
        // Written in place, its length set after (no string made for it: this runs before
        // every cache lookup).
        fn shown(context: &mut Vec<u8>, value: &dyn std::fmt::Display) {
            use std::io::Write as _;
            let at = context.len();
            context.extend_from_slice(&[0; 8]);
            // (Writing into a Vec cannot fail.)
            let _ = write!(context, "{value}");
            let len = (context.len() - at - 8) as u64;
            context[at..at + 8].copy_from_slice(&len.to_le_bytes());
        }
        let inner = &self.inner;
        part(context, request.method.as_str().as_bytes());
        shown(context, &request.uri);
        match (inner.client_addr)(request) {
            Some(addr) => {
                context.push(1);
                shown(context, &addr);
            }
            None => context.push(0),
        }
        for name in &inner.copy {
            let values = request.headers.get_all(name);
            context.extend_from_slice(&(values.iter().count() as u64).to_le_bytes());
            for value in values {
                part(context, value.as_bytes());
            }
        }
    }

    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        let inner = &self.inner;
        let Ok(place) = inner.places.clone().try_acquire_owned() else {
            return Validation::Ready(Err(ValidatorError::overloaded(format!(
                "forward auth {}: {} checks running and {} waiting; check refused, try again \
                 later",
                inner.shown, inner.max_in_flight, inner.queue
            ))));
        };
        let auth = match self.auth_request(credentials, request) {
            Ok(auth) => auth,
            Err(error) => return Validation::Ready(Err(error)),
        };
        let inner = inner.clone();
        let user: Arc<str> = Arc::from(credentials.user_id());
        Validation::pending(async move {
            let _place = place;
            let _permit = inner
                .permits
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| ValidatorError::new("forward auth: closed"))?;
            match tokio::time::timeout(inner.timeout, inner.ask(auth, user)).await {
                Ok(answer) => answer,
                Err(_) => Err(ValidatorError::new(format!(
                    "forward auth {}: no answer within {:?}",
                    inner.shown, inner.timeout
                ))),
            }
        })
    }
}

impl Inner {
    async fn ask(
        &self,
        auth: Request<Empty<Bytes>>,
        user: Arc<str>,
    ) -> Result<Decision, ValidatorError> {
        let response = self.client.request(auth).await.map_err(|e| {
            ValidatorError::new(format!("forward auth {}: {}", self.shown, error_chain(&e)))
        })?;
        let (parts, body) = response.into_parts();
        // Read what little body there is, so the connection goes back to the pool.
        let _ = Limited::new(body, MAX_BODY_BYTES).collect().await;
        match parts.status {
            status if status.is_success() => self.allow(&parts.headers, user),
            StatusCode::UNAUTHORIZED | StatusCode::PROXY_AUTHENTICATION_REQUIRED => {
                Ok(Decision::Reject)
            }
            StatusCode::FORBIDDEN => Ok(Decision::Forbid),
            status => Err(ValidatorError::new(format!(
                "forward auth {}: answered {status}",
                self.shown
            ))),
        }
    }

    fn allow(&self, headers: &HeaderMap, user: Arc<str>) -> Result<Decision, ValidatorError> {
        let identity = match &self.identity_header {
            Some(name) => match headers.get(name) {
                None => Identity::new(user),
                Some(value) => match value.to_str().map(str::trim) {
                    Ok(named) if !named.is_empty() => Identity::new(named),
                    _ => {
                        return Err(ValidatorError::new(format!(
                            "forward auth {}: {name} is empty or not text",
                            self.shown
                        )))
                    }
                },
            },
            None => Identity::new(user),
        };
        let mut kept = HeaderMap::new();
        for name in &self.keep {
            for value in headers.get_all(name) {
                kept.append(name.clone(), value.clone());
            }
        }
        Ok(Decision::Allow(identity.with(ForwardAuthHeaders(kept))))
    }
}

/// An error and its sources, one line (hyper's errors say little on their own).
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl fmt::Debug for ForwardAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("ForwardAuth")
            .field("url", &inner.shown)
            .field("method", &inner.method)
            .field("credentials_header", &inner.credentials_header)
            .field("timeout", &inner.timeout)
            .field("max_in_flight", &inner.max_in_flight)
            .field("queue", &inner.queue)
            .finish_non_exhaustive()
    }
}

/// Which CAs an `https` URL's certificate must chain to.
#[derive(Clone)]
enum Roots {
    /// Mozilla's, from webpki-roots.
    Webpki,
    /// Only these (DER).
    Only(Vec<CertificateDer<'static>>),
}

/// Options for a [`ForwardAuth`], from [`ForwardAuth::to`].
#[derive(Clone)]
pub struct ForwardAuthBuilder {
    url: String,
    method: Method,
    copy: Vec<HeaderName>,
    fixed: HeaderMap,
    credentials_header: HeaderName,
    identity_header: Option<HeaderName>,
    keep: Vec<HeaderName>,
    timeout: Duration,
    max_in_flight: usize,
    queue: usize,
    roots: Roots,
    client_addr: AddrSource,
    cache: CacheSettings,
}

impl ForwardAuthBuilder {
    /// The method of the requests to the service (default `GET`, as Traefik's ForwardAuth and
    /// nginx's `auth_request` send).
    pub fn method(mut self, method: Method) -> Self {
        self.method = method;
        self
    }

    /// Copies the client's field `name` (every line of it) into the request to the service
    /// (e.g. `x-request-id`, `user-agent`).
    pub fn copy_header(mut self, name: HeaderName) -> Self {
        self.copy.push(name);
        self
    }

    /// Sends `name: value` with every request to the service (e.g. a key the service wants;
    /// the value is marked sensitive).
    pub fn with_header(mut self, name: HeaderName, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        self.fixed.append(name, value);
        self
    }

    /// The field that carries the client's credentials field value to the service (default
    /// `Authorization`, what an auth service for origins reads).
    pub fn send_credentials_in(mut self, name: HeaderName) -> Self {
        self.credentials_header = name;
        self
    }

    /// The response field of a 2xx that names the user (e.g. `remote-user`, `x-auth-user`);
    /// without it, or when a 2xx lacks it, the identity is the credentials' user-id. A field
    /// that is present but empty or not text makes the check fail (503).
    pub fn identity_from(mut self, name: HeaderName) -> Self {
        self.identity_header = Some(name);
        self
    }

    /// Attaches the response field `name` of a 2xx to the identity, in [`ForwardAuthHeaders`]
    /// (e.g. `remote-groups`).
    pub fn keep_response_header(mut self, name: HeaderName) -> Self {
        self.keep.push(name);
        self
    }

    /// How long one exchange with the service may take, connecting included (default
    /// [`DEFAULT_TIMEOUT`]); past it the check fails with 503.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many requests to the service may run at once (at least 1; default
    /// [`DEFAULT_MAX_IN_FLIGHT`]).
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// How many checks may wait for a request slot (default [`DEFAULT_QUEUE`]); beyond it a
    /// check gets an overloaded error at once.
    pub fn queue(mut self, queue: usize) -> Self {
        self.queue = queue;
        self
    }

    /// Trusts only the CA certificates in the PEM file `path` for an `https` URL, instead of
    /// Mozilla's roots (an internal service with a private CA).
    ///
    /// # Errors
    ///
    /// [`ForwardAuthError::CaFile`] when the file cannot be read or holds no certificate.
    pub fn trust_ca_pem_file(self, path: impl AsRef<Path>) -> Result<Self, ForwardAuthError> {
        let path = path.as_ref();
        let pem = std::fs::read(path).map_err(|e| ForwardAuthError::CaFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        self.trust_ca_pem(&pem).map_err(|e| match e {
            ForwardAuthError::CaFile { reason, .. } => ForwardAuthError::CaFile {
                path: path.to_path_buf(),
                reason,
            },
            other => other,
        })
    }

    /// [`trust_ca_pem_file`](Self::trust_ca_pem_file) with the PEM text itself.
    ///
    /// # Errors
    ///
    /// [`ForwardAuthError::CaFile`] when it holds no certificate or a broken one.
    pub fn trust_ca_pem(mut self, pem: &[u8]) -> Result<Self, ForwardAuthError> {
        let bad = |reason: String| ForwardAuthError::CaFile {
            path: PathBuf::from("<pem>"),
            reason,
        };
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(e.to_string()))?;
        if certificates.is_empty() {
            return Err(bad("no certificate in it".to_owned()));
        }
        match &mut self.roots {
            Roots::Only(existing) => existing.extend(certificates),
            roots => *roots = Roots::Only(certificates),
        }
        Ok(self)
    }

    /// Where the client's IP address comes from (default: the [`ClientAddr`] extension the
    /// server inserted); e.g. axum's `ConnectInfo<SocketAddr>`.
    pub fn client_addr_from<F>(mut self, source: F) -> Self
    where
        F: Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static,
    {
        self.client_addr = Arc::new(source);
        self
    }

    /// How long an allow is remembered before the service is asked again (default
    /// [`DEFAULT_CACHE_TTL`](crate::validator::DEFAULT_CACHE_TTL); `Duration::ZERO` asks every time, identical checks in flight
    /// still shared).
    pub fn credentials_ttl(mut self, ttl: Duration) -> Self {
        self.cache.ttl = ttl;
        self
    }

    /// How long a reject is remembered (default: not at all).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.cache.negative_ttl = ttl;
        self
    }

    /// How many answers are remembered at most (default [`DEFAULT_CACHE_CAPACITY`](crate::validator::DEFAULT_CACHE_CAPACITY)).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache.capacity = capacity;
        self
    }

    /// The validator, behind a [`Cached`].
    ///
    /// # Errors
    ///
    /// [`ForwardAuthError::Url`] for a URL that is not absolute `http` or `https`, or that
    /// holds user information (`user:password@`: send what the service needs with
    /// [`with_header`](Self::with_header)); [`ForwardAuthError::Tls`] when rustls cannot be
    /// set up; [`ForwardAuthError::RandomSource`] when no key for the cache can be made.
    pub fn build(self) -> Result<Cached<ForwardAuth>, ForwardAuthError> {
        let bad_url = |reason: &'static str| ForwardAuthError::Url {
            url: without_user_info(&self.url),
            reason,
        };
        let url: Uri = self.url.parse().map_err(|_| bad_url("not a URI"))?;
        match url.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(bad_url("not an http or https URL")),
        }
        let authority = url.authority().ok_or_else(|| bad_url("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad_url("user information in a URL is not sent"));
        }
        let shown = format!(
            "{}://{}{}",
            url.scheme_str().unwrap_or("http"),
            authority,
            url.path()
        );
        let client = client(&self.roots, self.timeout)?;
        let places = self.max_in_flight.saturating_add(self.queue);
        let validator = ForwardAuth {
            inner: Arc::new(Inner {
                url,
                shown,
                method: self.method,
                copy: self.copy,
                fixed: self.fixed,
                credentials_header: self.credentials_header,
                identity_header: self.identity_header,
                keep: self.keep,
                timeout: self.timeout,
                client,
                permits: Arc::new(Semaphore::new(self.max_in_flight)),
                places: Arc::new(Semaphore::new(places)),
                max_in_flight: self.max_in_flight,
                queue: self.queue,
                client_addr: self.client_addr,
            }),
        };
        Ok(self
            .cache
            .apply(Cached::try_new(validator).map_err(ForwardAuthError::RandomSource)?))
    }
}

impl fmt::Debug for ForwardAuthBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardAuthBuilder")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// `url` with any user information (`user:password@`) replaced, for messages.
fn without_user_info(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://<user-info>{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The pooled client: HTTP/1.1, `http` or `https` (rustls with ring).
fn client(roots: &Roots, timeout: Duration) -> Result<HttpsClient, ForwardAuthError> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        Roots::Webpki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Roots::Only(certificates) => {
            for certificate in certificates {
                store
                    .add(certificate.clone())
                    .map_err(|e| ForwardAuthError::Tls(e.to_string()))?;
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ForwardAuthError::Tls(e.to_string()))?
        .with_root_certificates(store)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(timeout));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector))
}

/// A forward-auth validator could not be set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ForwardAuthError {
    /// The service's URL cannot be used.
    Url {
        /// The URL, as given, with any user information replaced by `<user-info>`.
        url: String,
        /// Why.
        reason: &'static str,
    },
    /// CA certificates could not be read.
    CaFile {
        /// The file (`<pem>` for PEM text).
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls could not be set up.
    Tls(String),
    /// The operating system's random source failed: no key for the cache's tags.
    RandomSource(RandomSourceError),
}

impl fmt::Display for ForwardAuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url { url, reason } => write!(f, "forward auth URL {url:?}: {reason}"),
            Self::CaFile { path, reason } => {
                write!(
                    f,
                    "forward auth CA certificates {}: {reason}",
                    path.display()
                )
            }
            Self::Tls(reason) => write!(f, "forward auth TLS: {reason}"),
            Self::RandomSource(error) => write!(f, "forward auth cache: {error}"),
        }
    }
}

impl std::error::Error for ForwardAuthError {}
