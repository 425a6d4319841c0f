//! The authenticated identity the layer hands to downstream code.
//!
//! On success the layer inserts an [`Identity`] into the request's extensions, so handlers, logs
//! and later layers can read who made the request without parsing credentials again. A validator
//! may attach its own typed data (a tenant, a group list, a rate class) to it.

use std::fmt;
use std::sync::Arc;

use http::Extensions;

/// Who the request was authenticated as, plus any data the validator attached.
///
/// Cloning is cheap: the user name is reference-counted.
///
/// ```
/// use tower_proxy_auth::Identity;
///
/// #[derive(Clone, Debug, PartialEq)]
/// struct Tenant(&'static str);
///
/// let id = Identity::new("alice").with(Tenant("acme"));
/// assert_eq!(id.user(), "alice");
/// assert_eq!(id.get::<Tenant>(), Some(&Tenant("acme")));
/// ```
#[derive(Clone)]
pub struct Identity {
    user: Arc<str>,
    scheme: Option<&'static str>,
    data: Extensions,
}

impl Identity {
    /// An identity for `user` with no attached data.
    pub fn new(user: impl Into<Arc<str>>) -> Self {
        Self {
            user: user.into(),
            scheme: None,
            data: Extensions::new(),
        }
    }

    /// The authenticated user name (for Basic, the user-id).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The auth-scheme that authenticated the request (`"Basic"`, `"Digest"`), set by the layer
    /// on every identity it inserts; `None` for an identity not made by the layer.
    pub fn scheme(&self) -> Option<&'static str> {
        self.scheme
    }

    /// Records the scheme that authenticated this identity.
    pub(crate) fn authenticated_by(mut self, scheme: &'static str) -> Self {
        self.scheme = Some(scheme);
        self
    }

    /// Attaches a value of type `T`, replacing any earlier value of that type.
    pub fn with<T: Clone + Send + Sync + 'static>(mut self, value: T) -> Self {
        self.data.insert(value);
        self
    }

    /// The attached value of type `T`, if any.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<&T> {
        self.data.get::<T>()
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("user", &self.user)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}
