//! Validators: who decides whether credentials are good.
//!
//! The layer parses `Proxy-Authorization` and hands the [`BasicCredentials`] and the request's
//! [`Parts`] (method, URI or CONNECT authority, headers, extensions) to a [`Validator`], which
//! answers with a [`Decision`], or an error when its store cannot be consulted. The request
//! parts let a validator apply per-target rules or read a client address an earlier layer put in
//! the extensions, without a change to the trait.
//!
//! A validator that can decide at once (an in-memory table, a cache hit) returns
//! [`Validation::Ready`] and costs no allocation; one that must wait (a remote store, a hash on a
//! blocking pool) returns [`Validation::Pending`] with a boxed future.

mod callback;
#[cfg(feature = "htpasswd")]
#[cfg_attr(docsrs, doc(cfg(feature = "htpasswd")))]
pub mod htpasswd;
mod or;
mod static_users;

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::request::Parts;

use crate::{BasicCredentials, Identity};

pub use callback::{from_async_fn, from_fn, AsyncFnValidator, FnValidator};
#[cfg(feature = "htpasswd")]
pub use htpasswd::{Htpasswd, HtpasswdBuilder, HtpasswdError, HtpasswdStats};
pub use or::Or;
pub use static_users::StaticUsers;

/// A boxed, sendable future that yields a validator's answer.
pub type BoxValidationFuture =
    Pin<Box<dyn Future<Output = Result<Decision, ValidatorError>> + Send>>;

/// What a validator decided about one request's credentials.
#[derive(Debug, Clone)]
pub enum Decision {
    /// The credentials are good: the request goes on, carrying this identity in its extensions.
    Allow(Identity),
    /// Unknown user or wrong password: 407 with the challenge, so the client may try again
    /// (RFC 9110 §15.5.8).
    Reject,
    /// Authenticated, but not allowed to make this request (for example a per-user rule on the
    /// CONNECT target): 403 without a challenge (RFC 9110 §15.5.4).
    Forbid,
}

/// A validator's answer: ready now, or a future.
pub enum Validation {
    /// Decided without waiting.
    Ready(Result<Decision, ValidatorError>),
    /// Decided later; the future owns everything it needs (it must be `'static`).
    Pending(BoxValidationFuture),
}

impl Validation {
    /// Wraps a future as [`Validation::Pending`].
    pub fn pending<F>(future: F) -> Self
    where
        F: Future<Output = Result<Decision, ValidatorError>> + Send + 'static,
    {
        Self::Pending(Box::pin(future))
    }
}

impl From<Decision> for Validation {
    fn from(decision: Decision) -> Self {
        Self::Ready(Ok(decision))
    }
}

impl From<Result<Decision, ValidatorError>> for Validation {
    fn from(result: Result<Decision, ValidatorError>) -> Self {
        Self::Ready(result)
    }
}

impl fmt::Debug for Validation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            Self::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// Decides whether Basic credentials are good for a request.
///
/// Implementations must not log or keep the password, and should take the same time for an
/// unknown user as for a wrong password. A validator that fails to reach its store returns
/// `Err`; the layer answers 503 and never lets the request through.
///
/// ```
/// use http::request::Parts;
/// use tower_proxy_auth::{BasicCredentials, Decision, Identity, Validation, Validator};
///
/// /// Allows anyone whose user-id starts with "guest-", only for GET.
/// struct Guests;
///
/// impl Validator for Guests {
///     fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
///         if !credentials.user_id().starts_with("guest-") {
///             return Decision::Reject.into();
///         }
///         if request.method != http::Method::GET {
///             return Decision::Forbid.into();
///         }
///         Decision::Allow(Identity::new(credentials.user_id())).into()
///     }
/// }
/// ```
pub trait Validator: Send + Sync + 'static {
    /// Decides about `credentials` for the request described by `request`.
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation;

    /// Tries `self` first and `other` when `self` rejects; see [`Or`] for the exact rules.
    fn or<V: Validator>(self, other: V) -> Or<Self, V>
    where
        Self: Sized,
    {
        Or::new(self, other)
    }

    /// Erases the type, for when it must be named (struct fields, runtime choices).
    fn boxed(self) -> BoxValidator
    where
        Self: Sized,
    {
        BoxValidator(Arc::new(self))
    }
}

impl<V: Validator + ?Sized> Validator for Arc<V> {
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        (**self).validate(credentials, request)
    }
}

impl<V: Validator + ?Sized> Validator for Box<V> {
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        (**self).validate(credentials, request)
    }
}

/// A type-erased, cheaply cloneable [`Validator`].
///
/// ```
/// use tower_proxy_auth::{validator::from_fn, BoxValidator, Decision, StaticUsers, Validator};
///
/// let choose_static = true;
/// let v: BoxValidator = if choose_static {
///     StaticUsers::new().with_user("alice", "s3cret").boxed()
/// } else {
///     from_fn(|_, _| Ok::<_, std::io::Error>(Decision::Reject)).boxed()
/// };
/// ```
#[derive(Clone)]
pub struct BoxValidator(Arc<dyn Validator>);

impl Validator for BoxValidator {
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        self.0.validate(credentials, request)
    }

    fn boxed(self) -> BoxValidator {
        self
    }
}

impl fmt::Debug for BoxValidator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxValidator(..)")
    }
}

/// A validator could not decide: its store is unreachable, a file is unreadable, a task panicked.
///
/// The layer answers 503 Service Unavailable and logs the `Display` text, so an error must never
/// carry a password or a raw header.
pub struct ValidatorError(Box<dyn StdError + Send + Sync>);

impl ValidatorError {
    /// Wraps any error (or a message: `&str` and `String` convert too).
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self(error.into())
    }

    /// The wrapped error.
    pub fn into_inner(self) -> Box<dyn StdError + Send + Sync> {
        self.0
    }
}

impl fmt::Debug for ValidatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ValidatorError").field(&self.0).finish()
    }
}

impl fmt::Display for ValidatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl StdError for ValidatorError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.0)
    }
}
