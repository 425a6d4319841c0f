//! [`from_service`]: any `tower::Service` as a password validator.
//!
//! A remote user store (an HTTP API, a database behind a client) is often a `tower::Service`
//! already, or easy to make one; as such it gets tower's middleware for free:
//! `ServiceBuilder::new().timeout(..).concurrency_limit(..).load_shed()` bounds how long a
//! check may take and how many run at once, and sheds the rest. A shed check
//! (`tower::load_shed::error::Overloaded`) becomes an overloaded [`ValidatorError`] (503, and
//! the failure throttle counts it against the sender's address); any other error an
//! unavailable one (503); never an open door.

use std::error::Error as StdError;
use std::fmt;
use std::future::poll_fn;

use http::request::Parts;
use tower_service::Service;

use super::{IntoDecision, Validation, Validator, ValidatorError};
use crate::scheme::basic::BasicCredentials;

/// What a validator service is asked: the credentials and the request they came with.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Check {
    /// The Basic credentials (`Debug` hides the password).
    pub credentials: BasicCredentials,
    /// The request's method, URI, version, headers and extensions (a copy).
    pub request: Parts,
}

/// A validator from a `tower::Service<Check>` whose response is a [`Decision`](crate::Decision) (or anything
/// [`IntoDecision`]). Each check clones the service, drives it to readiness and calls it, as
/// `ServiceExt::oneshot` does, so layers that share state between clones (concurrency limits,
/// buffers) apply across requests.
///
/// ```
/// use std::time::Duration;
/// use tower::ServiceBuilder;
/// use tower_proxy_auth::validator::{from_service, Check};
/// use tower_proxy_auth::{Decision, Identity, ProxyAuthLayer};
///
/// let store = ServiceBuilder::new()
///     .load_shed()
///     .concurrency_limit(16)
///     .timeout(Duration::from_secs(2))
///     .service_fn(|check: Check| async move {
///         // ask the remote store
///         let ok = check.credentials.user_id() == "alice" && check.credentials.password() == b"s3cret";
///         Ok::<_, std::io::Error>(if ok { Decision::Allow(Identity::new("alice")) } else { Decision::Reject })
///     });
/// let layer = ProxyAuthLayer::new(from_service(store));
/// ```
pub fn from_service<S>(service: S) -> ServiceValidator<S>
where
    S: Service<Check> + Clone + Send + Sync + 'static,
    S::Response: IntoDecision,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    S::Future: Send + 'static,
{
    ServiceValidator { service }
}

/// The validator made by [`from_service`].
#[derive(Clone)]
pub struct ServiceValidator<S> {
    service: S,
}

impl<S> fmt::Debug for ServiceValidator<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceValidator(..)")
    }
}

/// A service's error as a validator error: shed checks are overloaded, the rest unavailable.
fn service_error(error: Box<dyn StdError + Send + Sync>) -> ValidatorError {
    if error.is::<tower::load_shed::error::Overloaded>() {
        return ValidatorError::overloaded(error);
    }
    match error.downcast::<ValidatorError>() {
        Ok(validator_error) => *validator_error,
        Err(other) => ValidatorError::new(other),
    }
}

impl<S> Validator for ServiceValidator<S>
where
    S: Service<Check> + Clone + Send + Sync + 'static,
    S::Response: IntoDecision,
    S::Error: Into<Box<dyn StdError + Send + Sync>>,
    S::Future: Send + 'static,
{
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        let mut service = self.service.clone();
        let check = Check {
            credentials: credentials.clone(),
            request: request.clone(),
        };
        Validation::pending(async move {
            poll_fn(|cx| service.poll_ready(cx))
                .await
                .map_err(|e| service_error(e.into()))?;
            let response = service
                .call(check)
                .await
                .map_err(|e| service_error(e.into()))?;
            response.into_decision()
        })
    }
}

impl From<Check> for (BasicCredentials, Parts) {
    fn from(check: Check) -> Self {
        (check.credentials, check.request)
    }
}
