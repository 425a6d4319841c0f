//! The middleware: [`ProxyAuthLayer`], [`ProxyAuth`] and [`ResponseFuture`].
//!
//! For every request the service reads `Proxy-Authorization` (RFC 9110 §11.7.2), asks the
//! [`Validator`], and then either calls the inner service with the credentials removed and an
//! [`Identity`](crate::Identity) in the extensions, or answers itself: 407 with the
//! `Proxy-Authenticate` challenge (RFC 9110 §11.7.1, §15.5.8), 403, 400 or 503. It never reads,
//! buffers or replaces the request body and keeps every extension, so a CONNECT request's upgrade
//! handle reaches the inner service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::request::Parts;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::body::ResponseBody;
use crate::challenge::{InvalidRealm, Realm};
use crate::credentials::{proxy_authorization, BasicCredentials, CredentialsError};
use crate::log_limit::LogLimit;
use crate::rejection::{apply, has_unread_body, Config, Rejection};
use crate::throttle::Attempt;
use crate::validator::{BoxValidationFuture, Validation, Validator};
use crate::FailureThrottle;

/// Applies [`ProxyAuth`] to a service.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_proxy_auth::{ProxyAuthLayer, StaticUsers};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let layer = ProxyAuthLayer::builder(StaticUsers::new().with_user("alice", "s3cret"))
///     .realm("corp proxy")
///     .build()?;
/// let service = ServiceBuilder::new().layer(layer).service_fn(|_req: Request<String>| async {
///     Ok::<_, Infallible>(Response::new(String::from("hello")))
/// });
///
/// let response = service.oneshot(Request::new(String::new())).await?;
/// assert_eq!(response.status(), 407);
/// assert_eq!(
///     response.headers()["proxy-authenticate"],
///     "Basic realm=\"corp proxy\", charset=\"UTF-8\""
/// );
/// # Ok(())
/// # }
/// ```
pub struct ProxyAuthLayer<V> {
    validator: Arc<V>,
    config: Arc<Config>,
}

impl<V: Validator> ProxyAuthLayer<V> {
    /// A layer with `validator`, the default realm ([`DEFAULT_REALM`](crate::DEFAULT_REALM)) and
    /// `Proxy-Authorization` removed from accepted requests.
    pub fn new(validator: V) -> Self {
        Self::builder(validator).build_with(Realm::default())
    }

    /// Starts a [`ProxyAuthLayerBuilder`] to set the realm and other options.
    pub fn builder(validator: V) -> ProxyAuthLayerBuilder<V> {
        ProxyAuthLayerBuilder {
            validator,
            realm: Ok(Realm::default()),
            keep_proxy_authorization: false,
            max_credentials_bytes: DEFAULT_MAX_CREDENTIALS_BYTES,
            throttle: None,
        }
    }

    /// The realm the challenge names.
    pub fn realm(&self) -> &Realm {
        &self.config.realm
    }
}

impl<V> Clone for ProxyAuthLayer<V> {
    fn clone(&self) -> Self {
        Self {
            validator: self.validator.clone(),
            config: self.config.clone(),
        }
    }
}

impl<V> fmt::Debug for ProxyAuthLayer<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyAuthLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, V> Layer<S> for ProxyAuthLayer<V> {
    type Service = ProxyAuth<S, V>;

    fn layer(&self, inner: S) -> Self::Service {
        ProxyAuth {
            inner,
            validator: self.validator.clone(),
            config: self.config.clone(),
        }
    }
}

/// Options for a [`ProxyAuthLayer`]; [`build`](Self::build) checks them.
#[derive(Debug)]
pub struct ProxyAuthLayerBuilder<V> {
    validator: V,
    realm: Result<Realm, InvalidRealm>,
    keep_proxy_authorization: bool,
    max_credentials_bytes: usize,
    throttle: Option<FailureThrottle>,
}

/// Default limit on the `Proxy-Authorization` field: 64 KiB, Squid's `request_header_max_size`.
///
/// Far above any Basic credentials (a few hundred bytes) and room for large Negotiate tokens,
/// yet small enough that decoding an oversized value is never the work an attacker gets for
/// free. Lower it with [`ProxyAuthLayerBuilder::max_credentials_bytes`].
pub const DEFAULT_MAX_CREDENTIALS_BYTES: usize = 64 * 1024;

impl<V: Validator> ProxyAuthLayerBuilder<V> {
    /// The realm named in the challenge (RFC 9110 §11.5), shown by browsers in their login
    /// prompt. Written as a quoted-string with `"` and `\` escaped; a control character makes
    /// [`build`](Self::build) fail. Default: [`DEFAULT_REALM`](crate::DEFAULT_REALM).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Realm::new(realm);
        self
    }

    /// Keeps `Proxy-Authorization` on accepted requests instead of removing it, for a parent
    /// proxy that shares the same credentials. Default: `false` (removed; RFC 9110 §11.7.2 says
    /// a proxy consumes the credentials meant for it).
    pub fn keep_proxy_authorization(mut self, keep: bool) -> Self {
        self.keep_proxy_authorization = keep;
        self
    }

    /// The largest `Proxy-Authorization` accepted, in bytes (all field lines together). Checked
    /// before any decoding or hashing; a larger one gets `431 Request Header Fields Too Large`
    /// (RFC 6585 §5) with `Connection: close`. Default: [`DEFAULT_MAX_CREDENTIALS_BYTES`].
    pub fn max_credentials_bytes(mut self, limit: usize) -> Self {
        self.max_credentials_bytes = limit;
        self
    }

    /// Throttles repeated wrong credentials per user name and client address (429 with
    /// `Retry-After`); see [`FailureThrottle`]. Default: off in the layer (the example proxy turns
    /// it on).
    pub fn throttle(mut self, throttle: FailureThrottle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Builds the layer; the challenge header value is made here, once.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidRealm`] when the realm holds a control character.
    pub fn build(self) -> Result<ProxyAuthLayer<V>, BuildError> {
        let realm = self.realm.clone().map_err(BuildError::InvalidRealm)?;
        Ok(self.build_with(realm))
    }

    fn build_with(self, realm: Realm) -> ProxyAuthLayer<V> {
        ProxyAuthLayer {
            validator: Arc::new(self.validator),
            config: Arc::new(Config {
                challenge: realm.basic_challenge(),
                realm,
                keep_proxy_authorization: self.keep_proxy_authorization,
                max_credentials_bytes: self.max_credentials_bytes,
                throttle: self.throttle,
                validator_errors: LogLimit::new(),
            }),
        }
    }
}

/// Why a [`ProxyAuthLayer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The realm holds a control character.
    InvalidRealm(InvalidRealm),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRealm(e) => write!(f, "invalid realm: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidRealm(e) => Some(e),
        }
    }
}

/// Middleware that requires proxy authentication, made by [`ProxyAuthLayer`].
///
/// For every request it reads `Proxy-Authorization` (RFC 9110 §11.7.2), asks the [`Validator`],
/// and then either calls the inner service with the credentials removed and an
/// [`Identity`](crate::Identity) in the extensions, or answers itself: 407 with the challenge,
/// 403, 400, 429, 431 or 503. It never reads, buffers or replaces the request body and keeps
/// every extension (a CONNECT request's upgrade handle reaches the inner service).
///
/// `ProxyAuth<S, V>` is a `Service<Request<ReqBody>>` for any inner `S:
/// Service<Request<ReqBody>, Response = Response<ResBody>> + Clone`; its response body is
/// [`ResponseBody<ResBody>`]. It is `Clone` when `S` is, and `poll_ready` is the inner
/// service's. The inner service is cloned only when a validator answers asynchronously (the
/// ready one is taken, a clone left in its place, as tower-http's `AsyncRequireAuthorization`
/// does); a validator that answers at once costs no clone.
pub struct ProxyAuth<S, V> {
    inner: S,
    validator: Arc<V>,
    config: Arc<Config>,
}

impl<S, V> ProxyAuth<S, V> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, V> Clone for ProxyAuth<S, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            validator: self.validator.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S: fmt::Debug, V> fmt::Debug for ProxyAuth<S, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyAuth")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S, V, ReqBody, ResBody> Service<Request<ReqBody>> for ProxyAuth<S, V>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    V: Validator,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (mut parts, body) = request.into_parts();
        // One lookup gives the size (checked before any decoding) and the field value.
        let (size, field) = proxy_authorization(&parts.headers);
        if size > self.config.max_credentials_bytes {
            tracing::debug!(size, "Proxy-Authorization over the size limit");
            return ResponseFuture::rejected(Rejection::TooLarge, &self.config, &parts);
        }
        let credentials =
            match field.and_then(|value| value.map(BasicCredentials::parse).transpose()) {
                Ok(Some(credentials)) => credentials,
                Ok(None) => {
                    tracing::trace!("no proxy credentials");
                    return ResponseFuture::rejected(Rejection::Challenge, &self.config, &parts);
                }
                Err(error) => {
                    tracing::debug!(%error, "unusable proxy credentials");
                    let rejection = match error {
                        CredentialsError::Ambiguous => Rejection::BadRequest,
                        _ => Rejection::Challenge,
                    };
                    return ResponseFuture::rejected(rejection, &self.config, &parts);
                }
            };
        if let Some(throttle) = &self.config.throttle {
            if let Some(wait) = throttle.retry_after(credentials.user_id(), &parts) {
                tracing::debug!(
                    user = credentials.user_id(),
                    "proxy authentication throttled"
                );
                let retry_after = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return ResponseFuture::rejected(
                    Rejection::TooManyRequests { retry_after },
                    &self.config,
                    &parts,
                );
            }
        }
        match self.validator.validate(&credentials, &parts) {
            Validation::Ready(outcome) => {
                match apply(outcome, credentials.user_id(), &mut parts, &self.config) {
                    Ok(()) => {
                        ResponseFuture::calling(self.inner.call(Request::from_parts(parts, body)))
                    }
                    Err(rejection) => ResponseFuture::rejected(rejection, &self.config, &parts),
                }
            }
            Validation::Pending(validation) => {
                // Take the service that was driven to readiness, leave a clone behind.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let attempt = self
                    .config
                    .throttle
                    .as_ref()
                    .map(|t| t.begin_attempt(credentials.user_id(), &parts));
                ResponseFuture {
                    state: State::Validating {
                        validation,
                        pending: Some(Box::new(Pending {
                            inner,
                            parts,
                            body,
                            credentials,
                            config: self.config.clone(),
                            _attempt: attempt,
                        })),
                    },
                }
            }
        }
    }
}

/// What a request waiting for its validator holds on to; boxed so that the future stays small
/// on the synchronous paths.
struct Pending<S, ReqBody> {
    inner: S,
    parts: Parts,
    body: ReqBody,
    credentials: BasicCredentials,
    config: Arc<Config>,
    /// Counts against the failure throttle until the validator has answered (and a failure,
    /// if any, has been recorded).
    _attempt: Option<Attempt>,
}

pin_project! {
    /// Response future of [`ProxyAuth`].
    pub struct ResponseFuture<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<S, ReqBody>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<S, ReqBody>
    where
        S: Service<Request<ReqBody>>,
    {
        Validating {
            validation: BoxValidationFuture,
            pending: Option<Box<Pending<S, ReqBody>>>,
        },
        Calling {
            #[pin]
            future: S::Future,
        },
        Rejected {
            response: Option<Response<bytes::Bytes>>,
        },
    }
}

impl<S, ReqBody> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn calling(future: S::Future) -> Self {
        Self {
            state: State::Calling { future },
        }
    }

    fn rejected(rejection: Rejection, config: &Config, request: &Parts) -> Self {
        Self {
            state: State::Rejected {
                response: Some(rejection.into_response(config, has_unread_body(request))),
            },
        }
    }
}

impl<S, ReqBody, ResBody> Future for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project().state.project() {
                StateProj::Calling { future } => {
                    let response = ready!(future.poll(cx))?;
                    return Poll::Ready(Ok(response.map(ResponseBody::new)));
                }
                StateProj::Rejected { response } => {
                    let response = response.take().map(|r| r.map(ResponseBody::rejection));
                    // Polled again after completion: answer with a 500 rather than panic.
                    return Poll::Ready(Ok(response.unwrap_or_else(polled_after_completion)));
                }
                StateProj::Validating {
                    validation,
                    pending,
                } => {
                    let outcome = ready!(validation.as_mut().poll(cx));
                    let Some(pending) = pending.take() else {
                        return Poll::Ready(Ok(polled_after_completion()));
                    };
                    let Pending {
                        mut inner,
                        mut parts,
                        body,
                        credentials,
                        config,
                        _attempt,
                    } = *pending;
                    match apply(outcome, credentials.user_id(), &mut parts, &config) {
                        Ok(()) => State::Calling {
                            future: inner.call(Request::from_parts(parts, body)),
                        },
                        Err(rejection) => State::Rejected {
                            response: Some(
                                rejection.into_response(&config, has_unread_body(&parts)),
                            ),
                        },
                    }
                }
            };
            self.as_mut().project().state.set(next);
        }
    }
}

fn polled_after_completion<B>() -> Response<ResponseBody<B>> {
    let mut response = Response::new(ResponseBody::rejection(bytes::Bytes::new()));
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response
}

impl<S, ReqBody> fmt::Debug for ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
