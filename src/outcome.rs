//! What a check can conclude, shared by every scheme and validator kind: [`Decision`],
//! [`ValidatorError`], and [`Answer`], an answer that is ready now or comes later.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::Identity;

/// A boxed, sendable future that yields `T`.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A boxed, sendable future that yields a password validator's answer.
pub type BoxValidationFuture = BoxFuture<Result<Decision, ValidatorError>>;

/// What a validator decided about one request's credentials.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Decision {
    /// The credentials are good: the request goes on, carrying this identity in its extensions.
    Allow(Identity),
    /// Unknown user or wrong password: 401/407 with the challenges, so the client may try
    /// again (RFC 9110 §15.5.2, §15.5.8). Counted by the failure throttle.
    Reject,
    /// Authenticated, but not allowed to make this request (for example a per-user rule on the
    /// CONNECT target): 403 without a challenge (RFC 9110 §15.5.4).
    Forbid,
}

/// An answer that is ready now or comes later: what every validator kind returns.
///
/// A validator that can decide at once (an in-memory table, a cache hit) answers
/// [`Ready`](Self::Ready) and costs no allocation; one that must wait (a remote store, a hash on
/// a blocking pool) answers [`Pending`](Self::Pending) with a boxed future that owns what it
/// needs.
#[non_exhaustive]
pub enum Answer<T> {
    /// Decided without waiting.
    Ready(T),
    /// Decided later; the future must be `'static` (it owns everything it needs).
    Pending(BoxFuture<T>),
}

/// A password validator's answer: [`Answer`] of a [`Decision`] or a [`ValidatorError`].
pub type Validation = Answer<Result<Decision, ValidatorError>>;

impl<T> Answer<T> {
    /// Wraps a future as [`Answer::Pending`].
    pub fn pending<F>(future: F) -> Self
    where
        F: Future<Output = T> + Send + 'static,
    {
        Self::Pending(Box::pin(future))
    }

    /// The answer, waiting for it if it is pending.
    pub async fn resolve(self) -> T {
        match self {
            Self::Ready(value) => value,
            Self::Pending(future) => future.await,
        }
    }

    /// Maps the answer with `f`, now or when it arrives.
    pub fn map<U, F>(self, f: F) -> Answer<U>
    where
        T: 'static,
        F: FnOnce(T) -> U + Send + 'static,
    {
        match self {
            Self::Ready(value) => Answer::Ready(f(value)),
            Self::Pending(future) => Answer::pending(async move { f(future.await) }),
        }
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

impl<T: fmt::Debug> fmt::Debug for Answer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            Self::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// A validator could not decide: its store is unreachable, a file is unreadable, a task
/// panicked, or it is overloaded and shed the check.
///
/// The layer answers 503 Service Unavailable and never lets the request through. It logs the
/// `Display` text, so an error must never carry a password or a raw header.
///
/// ```
/// use tower_proxy_auth::ValidatorError;
///
/// let down = ValidatorError::new("ldap unreachable");
/// assert!(!down.is_overloaded());
/// let shed = ValidatorError::overloaded("verification queue is full");
/// assert!(shed.is_overloaded());
/// ```
#[derive(Clone)]
pub struct ValidatorError {
    kind: ValidatorErrorKind,
    error: Arc<dyn StdError + Send + Sync>,
}

/// What kind of failure a [`ValidatorError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ValidatorErrorKind {
    /// The store could not be consulted (down, unreadable, a task failed).
    Unavailable,
    /// The validator refused to start the check because it is at capacity (a full queue, a
    /// load-shedding layer). The failure throttle counts these against the sender's address.
    Overloaded,
}

impl ValidatorError {
    /// An [`Unavailable`](ValidatorErrorKind::Unavailable) error wrapping any error (or a
    /// message: `&str` and `String` convert too).
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind: ValidatorErrorKind::Unavailable,
            error: Arc::from(error.into()),
        }
    }

    /// An [`Overloaded`](ValidatorErrorKind::Overloaded) error: the check was shed, not failed.
    pub fn overloaded(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind: ValidatorErrorKind::Overloaded,
            error: Arc::from(error.into()),
        }
    }

    /// The kind of failure.
    pub fn kind(&self) -> ValidatorErrorKind {
        self.kind
    }

    /// Whether the check was shed because the validator is at capacity.
    pub fn is_overloaded(&self) -> bool {
        self.kind == ValidatorErrorKind::Overloaded
    }

    /// The wrapped error (shared: a `ValidatorError` is cheap to clone, so that requests
    /// waiting for one shared check all get its error).
    pub fn into_inner(self) -> Arc<dyn StdError + Send + Sync> {
        self.error
    }
}

impl fmt::Debug for ValidatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorError")
            .field("kind", &self.kind)
            .field("error", &self.error)
            .finish()
    }
}

impl fmt::Display for ValidatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl StdError for ValidatorError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.error)
    }
}
