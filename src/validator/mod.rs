//! Validators: who decides whether credentials are good, one kind per question a scheme asks.
//!
//! - [`Validator`]: the password check the Basic scheme asks. Implemented by
//!   [`StaticUsers`](crate::StaticUsers), [`Htpasswd`](crate::Htpasswd), Squid's Basic helpers
//!   and HTTP auth services (`store::squid_helper`, `store::forward_auth`), closures
//!   ([`from_fn`], [`from_async_fn`]), any `tower::Service` ([`from_service`], so tower's
//!   timeout, concurrency-limit and load-shed layers apply to a remote store) and
//!   combinations: [`Validator::or`], [`Cached`] (answers remembered, identical checks
//!   shared; for [`DigestSecrets`] sources too), [`Blocking`] (a slow synchronous check on
//!   a bounded [`BlockingPool`]).
//! - A token check for Bearer (RFC 6750) would be a kind of its own here, `Fn(&str, &Parts) ->
//!   Validation` over the token68, bound to a Bearer scheme through [`Answers`]; nothing in the
//!   layer would change. It is not built yet.
//!
//! [`Answers`] ties a validator kind to the scheme whose question it answers, so that
//! [`ProxyAuthLayerBuilder::offer`](crate::ProxyAuthLayerBuilder::offer) accepts a validator
//! only with a scheme it can serve.
//!
//! Every kind answers with the same shape: [`Answer::Ready`] when it
//! can decide at once (no allocation), [`Answer::Pending`] with a boxed
//! future otherwise, and a [`ValidatorError`] (503, never an open door) when its store cannot
//! be consulted, with [`ValidatorError::overloaded`] for a check it shed.

#[cfg(feature = "blocking")]
#[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
mod blocking;
mod cached;
mod callback;
mod digest;
mod or;
mod service;

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

use crate::outcome::Answer;
use crate::scheme::basic::{Basic, BasicCredentials};
use crate::scheme::{Scheme, Setup};

pub use crate::outcome::{
    BoxValidationFuture, Decision, Validation, ValidatorError, ValidatorErrorKind,
};
#[cfg(feature = "blocking")]
#[cfg_attr(docsrs, doc(cfg(feature = "blocking")))]
pub use blocking::{Blocking, BlockingPool, DEFAULT_MAX_QUEUED_PER_SLOT};
#[cfg(any(feature = "squid-helper", feature = "forward-auth"))]
pub(crate) use cached::CacheSettings;
pub use cached::{
    CacheStats, Cached, DEFAULT_CAPACITY as DEFAULT_CACHE_CAPACITY,
    DEFAULT_TTL as DEFAULT_CACHE_TTL,
};
pub use callback::{from_async_fn, from_fn, AsyncFnValidator, FnValidator, IntoDecision};
pub use digest::{
    secrets_from_async_fn, secrets_from_fn, AsyncSecretsFn, DigestSecrets, SecretLookup, SecretsFn,
    SecretsOr,
};
pub use or::Or;
pub use service::{from_service, Check, ServiceValidator};

/// A validator kind that answers the questions of scheme `S`.
///
/// Implemented for every password [`Validator`] with [`Basic`]. A new scheme comes with the
/// kind its question needs, bound to it with an impl of this trait.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot answer the questions of the `{S}` scheme",
    label = "not a validator kind for `{S}`",
    note = "Basic asks a password `Validator`: `StaticUsers`, `Htpasswd`, `validator::from_fn(|credentials, request| ...)`, `validator::from_async_fn(...)`"
)]
pub trait Answers<S: Scheme>: Send + Sync + 'static {
    /// Answers `question`, asked for the request described by `request`.
    fn answer(&self, question: &S::Question, request: &Parts) -> Answer<S::Reply>;

    /// Called once when the layer is built, before the scheme's own
    /// [`configure`](Scheme::configure): the place to check this validator can serve the
    /// layer's realm, and to adjust the scheme to what it can serve (Digest offers only the
    /// algorithms a secrets source has HA1s for).
    ///
    /// # Errors
    ///
    /// A message for [`BuildError::Scheme`](crate::BuildError::Scheme).
    fn configure(&self, scheme: &mut S, setup: &Setup<'_>) -> Result<(), String> {
        let _ = (scheme, setup);
        Ok(())
    }
}

impl<V: Validator + ?Sized> Answers<Basic> for V {
    fn answer(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        self.validate(credentials, request)
    }
}

/// Decides whether Basic credentials (a user-id and a password) are good for a request.
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
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a password `Validator`",
    label = "a `Validator` is needed here",
    note = "wrap a closure with `validator::from_fn(|credentials, request| Decision::Reject)` or `validator::from_async_fn(|credentials, request| async move {{ ... }})`"
)]
pub trait Validator: Send + Sync + 'static {
    /// Decides about `credentials` for the request described by `request`.
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation;

    /// Which version of its users this validator would judge `credentials` by. A [`Cached`]
    /// validator in front keys remembered answers by it, so that when the basis of an answer
    /// changes (a reloaded htpasswd file gave the user a new hash) a remembered answer is never
    /// given again. Default: 0, for validators whose answers only age (a remote store, judged
    /// by the cache's TTL as Squid does).
    fn answer_version(&self, credentials: &BasicCredentials) -> u64 {
        let _ = credentials;
        0
    }

    /// What else of the request this validator's answer depends on, appended to `context`
    /// as bytes (each part length-prefixed, so that two requests whose answers may differ
    /// never write the same bytes). A [`Cached`] validator in front remembers an answer, and
    /// shares a check in flight, only between requests with the same credentials *and* the
    /// same context. Default: nothing, for validators that judge the credentials alone; a
    /// validator that asks a service about the request's target or client (forward auth)
    /// writes what it sends.
    fn answer_context(&self, request: &Parts, context: &mut Vec<u8>) {
        let _ = (request, context);
    }

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

    fn answer_version(&self, credentials: &BasicCredentials) -> u64 {
        (**self).answer_version(credentials)
    }

    fn answer_context(&self, request: &Parts, context: &mut Vec<u8>) {
        (**self).answer_context(request, context);
    }
}

impl<V: Validator + ?Sized> Validator for Box<V> {
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        (**self).validate(credentials, request)
    }

    fn answer_version(&self, credentials: &BasicCredentials) -> u64 {
        (**self).answer_version(credentials)
    }

    fn answer_context(&self, request: &Parts, context: &mut Vec<u8>) {
        (**self).answer_context(request, context);
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
///     from_fn(|_, _| Decision::Reject).boxed()
/// };
/// ```
#[derive(Clone)]
pub struct BoxValidator(Arc<dyn Validator>);

impl Validator for BoxValidator {
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        self.0.validate(credentials, request)
    }

    fn answer_version(&self, credentials: &BasicCredentials) -> u64 {
        self.0.answer_version(credentials)
    }

    fn answer_context(&self, request: &Parts, context: &mut Vec<u8>) {
        self.0.answer_context(request, context);
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
