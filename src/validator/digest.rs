//! The validator kind Digest asks: a secret lookup ([`DigestSecrets`]).
//!
//! Digest credentials prove knowledge of a password without sending it, so the scheme needs
//! the stored secret (the password, or the HA1 `H(username ":" realm ":" password)`) to
//! recompute the client's response; the comparison is the scheme's, in constant time. A source
//! says which hashes it can serve (an htdigest file holds MD5 HA1s only: Digest then offers
//! MD5 alone) and whether it can find users by userhash.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;

use http::request::Parts;

use super::Answers;
use crate::outcome::{Answer, ValidatorError};
use crate::realm::Realm;
use crate::scheme::digest::{Digest, DigestQuery, DigestSecret, HashFunction};
use crate::scheme::Setup;

/// What a secrets source answers: the secret and identity of a known user, `None` for an
/// unknown one, or an error (503, never an open door).
pub type SecretLookup = Answer<Result<Option<DigestSecret>, ValidatorError>>;

/// Looks up the Digest secret of a user.
///
/// Implementations should take the same time for an unknown user as for a known one (the
/// scheme then does the same hashing either way), must not log secrets, and answer `Err` when
/// their store cannot be consulted.
///
/// ```
/// use http::request::Parts;
/// use tower_proxy_auth::scheme::digest::{DigestQuery, DigestSecret, DigestUser, Secret};
/// use tower_proxy_auth::validator::{DigestSecrets, SecretLookup};
/// use tower_proxy_auth::Identity;
///
/// struct OneUser;
///
/// impl DigestSecrets for OneUser {
///     fn lookup(&self, query: &DigestQuery, _request: &Parts) -> SecretLookup {
///         let found = (query.user == DigestUser::Name(b"Mufasa".to_vec()))
///             .then(|| DigestSecret::new(Identity::new("Mufasa"), Secret::password("Circle of Life")));
///         SecretLookup::Ready(Ok(found))
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a Digest secrets source",
    note = "Digest asks a `DigestSecrets`: `StaticUsers`, `Htdigest`, `validator::secrets_from_fn(...)`, `validator::secrets_from_async_fn(...)`"
)]
pub trait DigestSecrets: Send + Sync + 'static {
    /// The secret of `query.user` in `query.realm`, for `query.algorithm`'s hash.
    fn lookup(&self, query: &DigestQuery, request: &Parts) -> SecretLookup;

    /// Whether this source can serve secrets for `hash` (default: every hash; a source of
    /// MD5 HA1s says no to the others, and the scheme offers MD5 alone).
    fn serves(&self, hash: HashFunction) -> bool {
        let _ = hash;
        true
    }

    /// Whether users can be looked up by userhash (RFC 7616 §3.4.4; default: no). When yes,
    /// challenges offer `userhash=true`.
    fn supports_userhash(&self) -> bool {
        false
    }

    /// Checks, when the layer is built, that this source can serve `realm`.
    ///
    /// # Errors
    ///
    /// A message for [`BuildError::Scheme`](crate::BuildError::Scheme).
    fn check_realm(&self, realm: &Realm) -> Result<(), String> {
        let _ = realm;
        Ok(())
    }

    /// This source, then `other` for users this one does not know (see [`SecretsOr`]). Named
    /// apart from [`Validator::or`](crate::Validator::or) so that a type that is both (such as
    /// `StaticUsers`) needs no disambiguation.
    fn or_secrets<B: DigestSecrets>(self, other: B) -> SecretsOr<Self, B>
    where
        Self: Sized,
    {
        SecretsOr {
            first: self,
            second: std::sync::Arc::new(other),
        }
    }
}

/// Two secrets sources: the second asked when the first does not know the user. Built by
/// [`DigestSecrets::or_secrets`].
///
/// | `A` answers | result |
/// |---|---|
/// | a secret | that secret; `B` is not asked |
/// | unknown user | `B`'s answer |
/// | `Err(e)` | `B`'s secret if `B` knows the user; otherwise `Err(e)` (503, not a wrong password) |
///
/// Together they serve the hashes both serve (so every user of either can answer every
/// algorithm offered: with an htdigest file, MD5 alone) and offer `userhash` only if both
/// can look users up by it.
#[derive(Debug, Clone)]
pub struct SecretsOr<A, B> {
    first: A,
    second: std::sync::Arc<B>,
}

type Found = Result<Option<DigestSecret>, ValidatorError>;

fn after_first(first: Found, second: Found) -> Found {
    match (first, second) {
        (_, Ok(Some(secret))) => Ok(Some(secret)),
        (Err(error), _) => Err(error),
        (Ok(_), second) => second,
    }
}

impl<A: DigestSecrets, B: DigestSecrets> DigestSecrets for SecretsOr<A, B> {
    fn lookup(&self, query: &DigestQuery, request: &Parts) -> SecretLookup {
        match self.first.lookup(query, request) {
            found @ Answer::Ready(Ok(Some(_))) => found,
            Answer::Ready(first) => match self.second.lookup(query, request) {
                Answer::Ready(second) => Answer::Ready(after_first(first, second)),
                Answer::Pending(second) => {
                    Answer::pending(async move { after_first(first, second.await) })
                }
            },
            Answer::Pending(first) => {
                let second = self.second.clone();
                let query = query.clone();
                let request = request.clone();
                Answer::pending(async move {
                    let first = first.await;
                    if matches!(first, Ok(Some(_))) {
                        return first;
                    }
                    let second = second.lookup(&query, &request).resolve().await;
                    after_first(first, second)
                })
            }
        }
    }

    fn serves(&self, hash: HashFunction) -> bool {
        self.first.serves(hash) && self.second.serves(hash)
    }

    fn supports_userhash(&self) -> bool {
        self.first.supports_userhash() && self.second.supports_userhash()
    }

    fn check_realm(&self, realm: &Realm) -> Result<(), String> {
        self.first.check_realm(realm)?;
        self.second.check_realm(realm)
    }
}

impl<D: DigestSecrets> Answers<Digest> for D {
    fn answer(&self, query: &DigestQuery, request: &Parts) -> SecretLookup {
        self.lookup(query, request)
    }

    fn configure(&self, scheme: &mut Digest, setup: &Setup<'_>) -> Result<(), String> {
        self.check_realm(setup.realm)?;
        scheme.restrict_to(|hash| self.serves(hash));
        scheme.offer_userhash(self.supports_userhash());
        Ok(())
    }
}

impl<D: DigestSecrets + ?Sized> DigestSecrets for std::sync::Arc<D> {
    fn lookup(&self, query: &DigestQuery, request: &Parts) -> SecretLookup {
        (**self).lookup(query, request)
    }
    fn serves(&self, hash: HashFunction) -> bool {
        (**self).serves(hash)
    }
    fn supports_userhash(&self) -> bool {
        (**self).supports_userhash()
    }
    fn check_realm(&self, realm: &Realm) -> Result<(), String> {
        (**self).check_realm(realm)
    }
}

/// A secrets source from a synchronous closure `Fn(&DigestQuery, &Parts) -> Result<Option<DigestSecret>, E>`.
///
/// ```
/// use tower_proxy_auth::scheme::digest::{DigestSecret, DigestUser, Secret};
/// use tower_proxy_auth::validator::secrets_from_fn;
/// use tower_proxy_auth::Identity;
///
/// let secrets = secrets_from_fn(|query, _req| {
///     Ok::<_, std::convert::Infallible>(match &query.user {
///         DigestUser::Name(name) if name == b"alice" => {
///             Some(DigestSecret::new(Identity::new("alice"), Secret::password("s3cret")))
///         }
///         _ => None,
///     })
/// });
/// ```
pub fn secrets_from_fn<F, E>(f: F) -> SecretsFn<F>
where
    F: Fn(&DigestQuery, &Parts) -> Result<Option<DigestSecret>, E> + Send + Sync + 'static,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    SecretsFn { f }
}

/// A secrets source from an async closure `Fn(DigestQuery, &Parts) -> impl Future<Output =
/// Result<Option<DigestSecret>, E>>`, for a remote store.
pub fn secrets_from_async_fn<F, Fut, E>(f: F) -> AsyncSecretsFn<F>
where
    F: Fn(DigestQuery, &Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<DigestSecret>, E>> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    AsyncSecretsFn { f }
}

/// The source made by [`secrets_from_fn`].
#[derive(Clone, Copy)]
pub struct SecretsFn<F> {
    f: F,
}

/// The source made by [`secrets_from_async_fn`].
#[derive(Clone, Copy)]
pub struct AsyncSecretsFn<F> {
    f: F,
}

impl<F, E> DigestSecrets for SecretsFn<F>
where
    F: Fn(&DigestQuery, &Parts) -> Result<Option<DigestSecret>, E> + Send + Sync + 'static,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    fn lookup(&self, query: &DigestQuery, request: &Parts) -> SecretLookup {
        Answer::Ready((self.f)(query, request).map_err(ValidatorError::new))
    }
}

impl<F, Fut, E> DigestSecrets for AsyncSecretsFn<F>
where
    F: Fn(DigestQuery, &Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<DigestSecret>, E>> + Send + 'static,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    fn lookup(&self, query: &DigestQuery, request: &Parts) -> SecretLookup {
        let future = (self.f)(query.clone(), request);
        Answer::pending(async move { future.await.map_err(ValidatorError::new) })
    }
}

impl<F> fmt::Debug for SecretsFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretsFn(..)")
    }
}

impl<F> fmt::Debug for AsyncSecretsFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AsyncSecretsFn(..)")
    }
}
