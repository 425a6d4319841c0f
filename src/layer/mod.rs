//! The middleware: [`ProxyAuthLayer`], [`ProxyAuth`] and [`ResponseFuture`].
//!
//! For every request the service reads the party's credentials field (RFC 9110 §11.6.2,
//! §11.7.2) and sends it one way through the stages: syntax, the offered scheme (with the
//! throttle and the scheme's validator), decide, then either the inner service (credentials
//! removed, an [`Identity`](crate::Identity) in the extensions, the scheme's
//! `*-Authentication-Info` added to its response) or a response of its own. It never reads,
//! buffers or replaces the request body and keeps every extension, so a CONNECT request's
//! upgrade handle reaches the inner service.

mod builder;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

pub(crate) use builder::Config;
pub use builder::{BuildError, ProxyAuthLayerBuilder, DEFAULT_MAX_CREDENTIALS_BYTES};

use crate::decide::{self, Action, Input};
use crate::offer::Step;
use crate::outcome::{Answer, BoxFuture};
use crate::realm::Realm;
use crate::respond::{self, ResponseBody};
use crate::scheme::basic::Basic;
use crate::scheme::Scheme;
use crate::syntax;
use crate::validator::{Answers, Validator};

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
#[derive(Clone)]
pub struct ProxyAuthLayer {
    config: Arc<Config>,
}

impl ProxyAuthLayer {
    /// A proxy layer offering Basic checked by `validator`, with the default realm
    /// ([`DEFAULT_REALM`](crate::DEFAULT_REALM)) and the credentials removed from accepted
    /// requests. The same as `ProxyAuthLayer::builder(validator).build()`, which cannot fail
    /// with these options.
    pub fn new<V: Validator>(validator: V) -> Self {
        match Self::builder(validator).build() {
            Ok(layer) => layer,
            // The default realm is valid and Basic accepts any realm.
            Err(error) => unreachable!("Basic with the default realm always builds: {error}"),
        }
    }

    /// Starts a builder offering Basic checked by `validator`; set the realm, the party, more
    /// schemes and other options there.
    pub fn builder<V: Validator>(validator: V) -> ProxyAuthLayerBuilder {
        Self::offering(Basic::new(), validator)
    }

    /// Starts a builder offering `scheme` first, checked by `validator` (a validator kind that
    /// answers the scheme's questions; see [`Answers`]).
    pub fn offering<S: Scheme, V: Answers<S>>(scheme: S, validator: V) -> ProxyAuthLayerBuilder {
        ProxyAuthLayerBuilder::offering(scheme, validator)
    }

    /// The realm the challenges name.
    pub fn realm(&self) -> &Realm {
        &self.config.realm
    }
}

impl fmt::Debug for ProxyAuthLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyAuthLayer")
            .field("config", &self.config)
            .finish()
    }
}

impl<S> Layer<S> for ProxyAuthLayer {
    type Service = ProxyAuth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ProxyAuth {
            inner,
            config: self.config.clone(),
        }
    }
}

/// Middleware that requires authentication, made by [`ProxyAuthLayer`].
///
/// For every request it reads the credentials field, runs the offered scheme and its
/// validator, and then either calls the inner service with the credentials removed and an
/// [`Identity`](crate::Identity) in the extensions, or answers itself: 401/407 with the
/// challenges, 400, 403, 429, 431 or 503 (see [`Rejection`](crate::Rejection)). It never reads,
/// buffers or replaces the request body and keeps every extension (a CONNECT request's upgrade
/// handle reaches the inner service).
///
/// `ProxyAuth<S>` is a `Service<Request<ReqBody>>` for any inner `S:
/// Service<Request<ReqBody>, Response = Response<ResBody>> + Clone`; its response body is
/// [`ResponseBody<ResBody>`]. It is `Clone` when `S` is, and `poll_ready` is the inner
/// service's. The inner service is cloned only when a validator answers asynchronously (the
/// ready one is taken, a clone left in its place, as tower-http's `AsyncRequireAuthorization`
/// does); a validator that answers at once costs no clone.
#[derive(Clone)]
pub struct ProxyAuth<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> ProxyAuth<S> {
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

impl<S: fmt::Debug> fmt::Debug for ProxyAuth<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyAuth")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish()
    }
}

/// Where one request stands after the synchronous stages.
enum Flow {
    Decided(Action),
    /// An offered scheme waits for its validator (or its replay store).
    Waiting {
        scheme: &'static str,
        step: BoxFuture<Step>,
    },
}

/// Syntax, then the offered scheme; decides at once unless the scheme must wait.
fn authenticate(config: &Config, request: &Parts) -> Flow {
    let cx = decide::Context {
        party: config.party,
        schemes: &config.schemes,
        validator_errors: &config.validator_errors,
        overloads: &config.overloads,
    };
    let (size, field) = syntax::credentials_field(&request.headers, &config.credentials_header);
    let input = if size > config.max_credentials_bytes {
        Input::TooLarge { size }
    } else {
        match field.and_then(|value| value.map(syntax::parse_credentials).transpose()) {
            Err(error) => Input::Syntax(error),
            Ok(None) => Input::Missing,
            Ok(Some(credentials)) => match config.schemes.find(&credentials) {
                None => Input::UnsupportedScheme(credentials.scheme()),
                Some(offer) => {
                    let scheme = offer.name();
                    match offer.authenticate(&credentials, request, config.throttle.as_ref()) {
                        Answer::Ready(step) => Input::Step { scheme, step },
                        Answer::Pending(step) => return Flow::Waiting { scheme, step },
                    }
                }
            },
        }
    };
    Flow::Decided(decide::decide(input, &cx))
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ProxyAuth<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let (parts, body) = request.into_parts();
        match authenticate(&self.config, &parts) {
            Flow::Decided(action) => act(action, &mut self.inner, parts, body, &self.config),
            Flow::Waiting { scheme, step } => {
                // Take the service that was driven to readiness, leave a clone behind.
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                ResponseFuture {
                    state: State::Waiting {
                        step,
                        pending: Some(Box::new(Pending {
                            inner,
                            parts,
                            body,
                            scheme,
                            config: self.config.clone(),
                        })),
                    },
                }
            }
        }
    }
}

/// Carries out a decision: forward to `inner`, or answer with the rejection.
fn act<S, ReqBody>(
    action: Action,
    inner: &mut S,
    mut parts: Parts,
    body: ReqBody,
    config: &Config,
) -> ResponseFuture<S, ReqBody>
where
    S: Service<Request<ReqBody>>,
{
    match action {
        Action::Forward { identity, info } => {
            if !config.keep_credentials {
                parts.headers.remove(&config.credentials_header);
            }
            parts.extensions.insert(identity);
            ResponseFuture {
                state: State::Calling {
                    future: inner.call(Request::from_parts(parts, body)),
                    info: info.map(|value| (config.info_header.clone(), value)),
                },
            }
        }
        Action::Reject(rejection) => ResponseFuture {
            state: State::Rejected {
                response: Some(respond::render(&rejection, &parts, config.render.as_ref())),
            },
        },
    }
}

/// What a request waiting for its validator holds on to; boxed so that the future stays small
/// on the synchronous paths.
struct Pending<S, ReqBody> {
    inner: S,
    parts: Parts,
    body: ReqBody,
    scheme: &'static str,
    config: Arc<Config>,
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
        Waiting {
            step: BoxFuture<Step>,
            pending: Option<Box<Pending<S, ReqBody>>>,
        },
        Calling {
            #[pin]
            future: S::Future,
            info: Option<(HeaderName, HeaderValue)>,
        },
        Rejected {
            response: Option<Response<bytes::Bytes>>,
        },
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
                StateProj::Calling { future, info } => {
                    let mut response = ready!(future.poll(cx))?;
                    if let Some((name, value)) = info.take() {
                        response.headers_mut().append(name, value);
                    }
                    return Poll::Ready(Ok(response.map(ResponseBody::new)));
                }
                StateProj::Rejected { response } => {
                    let response = response.take().map(|r| r.map(ResponseBody::rejection));
                    // Polled again after completion: answer with a 500 rather than panic.
                    return Poll::Ready(Ok(response.unwrap_or_else(polled_after_completion)));
                }
                StateProj::Waiting { step, pending } => {
                    let step = ready!(step.as_mut().poll(cx));
                    let Some(pending) = pending.take() else {
                        return Poll::Ready(Ok(polled_after_completion()));
                    };
                    let Pending {
                        mut inner,
                        parts,
                        body,
                        scheme,
                        config,
                    } = *pending;
                    let cx = decide::Context {
                        party: config.party,
                        schemes: &config.schemes,
                        validator_errors: &config.validator_errors,
                        overloads: &config.overloads,
                    };
                    let action = decide::decide(Input::Step { scheme, step }, &cx);
                    act(action, &mut inner, parts, body, &config).state
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
