//! Validators from closures, sync and async.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use http::request::Parts;

use super::{Decision, Validation, Validator, ValidatorError};
use crate::BasicCredentials;

/// A validator from a synchronous closure `Fn(&BasicCredentials, &Parts) -> Result<Decision, E>`.
///
/// The closure runs on the request's task, so it must not block: use [`from_async_fn`] for I/O.
/// An `Err` becomes a 503.
///
/// ```
/// use subtle::ConstantTimeEq;
/// use tower_proxy_auth::{validator::from_fn, Decision, Identity};
///
/// // Only alice, and only to port 443.
/// let v = from_fn(|creds, req| {
///     let good = creds.user_id().as_bytes().ct_eq(b"alice") & creds.password().ct_eq(b"s3cret");
///     if !bool::from(good) {
///         return Ok::<_, std::convert::Infallible>(Decision::Reject);
///     }
///     if req.uri.port_u16() != Some(443) {
///         return Ok(Decision::Forbid);
///     }
///     Ok(Decision::Allow(Identity::new("alice")))
/// });
/// # let _ = tower_proxy_auth::ProxyAuthLayer::new(v);
/// ```
pub fn from_fn<F, E>(f: F) -> FnValidator<F>
where
    F: Fn(&BasicCredentials, &Parts) -> Result<Decision, E> + Send + Sync + 'static,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    FnValidator { f }
}

/// A validator from an async closure `Fn(BasicCredentials, &Parts) -> impl Future<Output =
/// Result<Decision, E>>`.
///
/// The closure gets its own copy of the credentials; it reads what it needs from the request
/// parts before returning its future, which must be `'static` (an `async move` block that
/// borrows nothing). An `Err` becomes a 503.
///
/// ```
/// use http::request::Parts;
/// use tower_proxy_auth::{validator::from_async_fn, BasicCredentials, Decision, Identity};
///
/// let v = from_async_fn(|creds: BasicCredentials, req: &Parts| {
///     let target = req.uri.authority().map(|a| a.to_string());
///     async move {
///         // e.g. ask a user store over the network
///         tokio::task::yield_now().await;
///         let ok = creds.user_id() == "bob" && target.as_deref() != Some("blocked.example:443");
///         Ok::<_, std::io::Error>(if ok { Decision::Allow(Identity::new("bob")) } else { Decision::Reject })
///     }
/// });
/// # let _ = tower_proxy_auth::ProxyAuthLayer::new(v);
/// ```
pub fn from_async_fn<F, Fut, E>(f: F) -> AsyncFnValidator<F>
where
    F: Fn(BasicCredentials, &Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Decision, E>> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    AsyncFnValidator { f }
}

/// The validator made by [`from_fn`].
#[derive(Clone, Copy)]
pub struct FnValidator<F> {
    f: F,
}

impl<F, E> Validator for FnValidator<F>
where
    F: Fn(&BasicCredentials, &Parts) -> Result<Decision, E> + Send + Sync + 'static,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        Validation::Ready((self.f)(credentials, request).map_err(ValidatorError::new))
    }
}

impl<F> fmt::Debug for FnValidator<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnValidator(..)")
    }
}

/// The validator made by [`from_async_fn`].
#[derive(Clone, Copy)]
pub struct AsyncFnValidator<F> {
    f: F,
}

impl<F, Fut, E> Validator for AsyncFnValidator<F>
where
    F: Fn(BasicCredentials, &Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Decision, E>> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        let future = (self.f)(credentials.clone(), request);
        Validation::pending(async move { future.await.map_err(ValidatorError::new) })
    }
}

impl<F> fmt::Debug for AsyncFnValidator<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncFnValidator(..)")
    }
}
