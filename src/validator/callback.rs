//! Validators from closures, sync and async.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use http::request::Parts;

use super::{Decision, Validation, Validator, ValidatorError};
use crate::scheme::basic::BasicCredentials;

/// What a validator closure may return: a plain [`Decision`] (for a check that cannot fail),
/// or `Result<Decision, E>` with any error type (an `Err` becomes a 503).
pub trait IntoDecision {
    /// The decision, or the error as a [`ValidatorError`].
    fn into_decision(self) -> Result<Decision, ValidatorError>;
}

impl IntoDecision for Decision {
    fn into_decision(self) -> Result<Decision, ValidatorError> {
        Ok(self)
    }
}

impl<E: Into<Box<dyn StdError + Send + Sync>>> IntoDecision for Result<Decision, E> {
    fn into_decision(self) -> Result<Decision, ValidatorError> {
        self.map_err(|e| {
            let error = e.into();
            // Keep an overloaded error's kind through the closure.
            match error.downcast::<ValidatorError>() {
                Ok(validator_error) => *validator_error,
                Err(other) => ValidatorError::new(other),
            }
        })
    }
}

/// A validator from a synchronous closure `Fn(&BasicCredentials, &Parts) -> R`, where `R` is a
/// [`Decision`] or a `Result<Decision, E>` ([`IntoDecision`]).
///
/// The closure runs on the request's task, so it must not block: use [`from_async_fn`] for I/O.
/// An `Err` becomes a 503.
///
/// ```
/// use tower_proxy_auth::{validator::from_fn, Decision, Identity};
///
/// // A check that cannot fail returns a plain Decision.
/// let v = from_fn(|creds, _req| {
///     if creds.user_id() == "guest" { Decision::Allow(Identity::new("guest")) } else { Decision::Reject }
/// });
/// # let _ = tower_proxy_auth::ProxyAuthLayer::new(v);
/// ```
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
pub fn from_fn<F, R>(f: F) -> FnValidator<F>
where
    F: Fn(&BasicCredentials, &Parts) -> R + Send + Sync + 'static,
    R: IntoDecision,
{
    FnValidator { f }
}

/// A validator from an async closure `Fn(BasicCredentials, &Parts) -> impl Future<Output = R>`,
/// where `R` is a [`Decision`] or a `Result<Decision, E>` ([`IntoDecision`]).
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
pub fn from_async_fn<F, Fut>(f: F) -> AsyncFnValidator<F>
where
    F: Fn(BasicCredentials, &Parts) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoDecision,
{
    AsyncFnValidator { f }
}

/// The validator made by [`from_fn`].
#[derive(Clone, Copy)]
pub struct FnValidator<F> {
    f: F,
}

impl<F, R> Validator for FnValidator<F>
where
    F: Fn(&BasicCredentials, &Parts) -> R + Send + Sync + 'static,
    R: IntoDecision,
{
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        Validation::Ready((self.f)(credentials, request).into_decision())
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

impl<F, Fut> Validator for AsyncFnValidator<F>
where
    F: Fn(BasicCredentials, &Parts) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'static,
    Fut::Output: IntoDecision,
{
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        let future = (self.f)(credentials.clone(), request);
        Validation::pending(async move { future.await.into_decision() })
    }
}

impl<F> fmt::Debug for AsyncFnValidator<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncFnValidator(..)")
    }
}
