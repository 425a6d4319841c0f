//! [`ProxyAuthLayerBuilder`]: the layer's options, checked once by [`build`](ProxyAuthLayerBuilder::build).

use std::fmt;
use std::sync::Arc;

use http::request::Parts;
use http::HeaderName;

use super::ProxyAuthLayer;
use crate::decide::Rejection;
use crate::logging::LogLimit;
use crate::offer::{Offer, Offered, Schemes};
use crate::party::Party;
use crate::realm::{InvalidRealm, Realm};
use crate::respond::{RejectionBody, RenderHook};
use crate::scheme::{Scheme, Setup};
use crate::throttle::FailureThrottle;
use crate::validator::Answers;

/// Default limit on the credentials field: 64 KiB, Squid's `request_header_max_size`.
///
/// Far above any Basic or Digest credentials (a few hundred bytes) and room for large
/// Negotiate tokens, yet small enough that decoding an oversized value is never the work an
/// attacker gets for free. Lower it with [`ProxyAuthLayerBuilder::max_credentials_bytes`].
pub const DEFAULT_MAX_CREDENTIALS_BYTES: usize = 64 * 1024;

/// What a layer was configured with, shared by every clone of its service.
pub(crate) struct Config {
    pub(crate) party: Party,
    pub(crate) schemes: Schemes,
    pub(crate) realm: Realm,
    pub(crate) credentials_header: HeaderName,
    pub(crate) info_header: HeaderName,
    pub(crate) keep_credentials: bool,
    pub(crate) max_credentials_bytes: usize,
    pub(crate) throttle: Option<FailureThrottle>,
    pub(crate) render: Option<RenderHook>,
    /// Keeps a validator outage from logging one line per request.
    pub(crate) validator_errors: LogLimit,
    /// The same for a validator shedding checks.
    pub(crate) overloads: LogLimit,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("party", &self.party)
            .field("schemes", &self.schemes)
            .field("realm", &self.realm)
            .field("keep_credentials", &self.keep_credentials)
            .field("max_credentials_bytes", &self.max_credentials_bytes)
            .field("throttle", &self.throttle)
            .field("render", &self.render.as_ref().map(|_| ".."))
            .finish()
    }
}

/// Options for a [`ProxyAuthLayer`]; [`build`](Self::build) checks them and makes the layer.
///
/// Made by [`ProxyAuthLayer::builder`] (Basic with a password validator) or
/// [`ProxyAuthLayer::offering`] (any scheme). A builder is not a layer: forgetting `.build()?`
/// shows up as "the trait `Layer<_>` is not implemented for `ProxyAuthLayerBuilder`".
///
/// ```
/// use tower_proxy_auth::{Party, ProxyAuthLayer, RejectionBody, StaticUsers};
///
/// let layer = ProxyAuthLayer::builder(StaticUsers::new().with_user("alice", "s3cret"))
///     .party(Party::Origin)
///     .realm("api")
///     .render_rejection(|rejection, _request| {
///         RejectionBody::json(format!("{{\"error\":\"{}\"}}\n", rejection.reason()))
///     })
///     .build()?;
/// # Ok::<(), tower_proxy_auth::BuildError>(())
/// ```
#[must_use = "a builder does nothing until `.build()` makes the layer"]
pub struct ProxyAuthLayerBuilder {
    offers: Vec<Box<dyn Offered>>,
    realm: Result<Realm, InvalidRealm>,
    party: Party,
    keep_credentials: bool,
    max_credentials_bytes: usize,
    throttle: Option<FailureThrottle>,
    render: Option<RenderHook>,
}

impl fmt::Debug for ProxyAuthLayerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyAuthLayerBuilder")
            .field(
                "schemes",
                &self.offers.iter().map(|o| o.name()).collect::<Vec<_>>(),
            )
            .field("realm", &self.realm)
            .field("party", &self.party)
            .finish_non_exhaustive()
    }
}

impl ProxyAuthLayerBuilder {
    pub(crate) fn offering<S: Scheme, V: Answers<S>>(scheme: S, validator: V) -> Self {
        Self {
            offers: vec![Box::new(Offer::new(scheme, validator))],
            realm: Ok(Realm::default()),
            party: Party::Proxy,
            keep_credentials: false,
            max_credentials_bytes: DEFAULT_MAX_CREDENTIALS_BYTES,
            throttle: None,
            render: None,
        }
    }

    /// Offers `scheme` too, checked by `validator`, after the schemes offered so far: its
    /// challenges follow theirs in every 401/407 (RFC 9110 §11.6.1: a client picks the first
    /// it understands, RFC 7616 §3.7: most preferred first).
    ///
    /// # Errors
    ///
    /// A scheme offered twice makes [`build`](Self::build) fail with
    /// [`BuildError::DuplicateScheme`].
    pub fn offer<S: Scheme, V: Answers<S>>(mut self, scheme: S, validator: V) -> Self {
        self.offers.push(Box::new(Offer::new(scheme, validator)));
        self
    }

    /// The realm named in every challenge (RFC 9110 §11.5), shown by browsers in their login
    /// prompt. Written as a quoted-string with `"` and `\` escaped; a control character makes
    /// [`build`](Self::build) fail. Default: [`DEFAULT_REALM`](crate::DEFAULT_REALM).
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Realm::new(realm);
        self
    }

    /// Authenticates for a proxy (default: `Proxy-Authorization`, 407, `Proxy-Authenticate`)
    /// or for an origin (`Authorization`, 401, `WWW-Authenticate`); the other party's fields
    /// pass through untouched. See [`Party`].
    pub fn party(mut self, party: Party) -> Self {
        self.party = party;
        self
    }

    /// Keeps the credentials field (`Proxy-Authorization`, or `Authorization` for an origin) on
    /// accepted requests instead of removing it, for a parent proxy that shares the same
    /// credentials. Default: `false` (removed; RFC 9110 §11.7.2 says a proxy consumes the
    /// credentials meant for it).
    pub fn keep_credentials(mut self, keep: bool) -> Self {
        self.keep_credentials = keep;
        self
    }

    /// The same as [`keep_credentials`](Self::keep_credentials), under its earlier name.
    pub fn keep_proxy_authorization(self, keep: bool) -> Self {
        self.keep_credentials(keep)
    }

    /// The largest credentials field accepted, in bytes (all field lines together). Checked
    /// before any decoding or hashing; a larger one gets `431 Request Header Fields Too Large`
    /// (RFC 6585 §5) with `Connection: close`. Default: [`DEFAULT_MAX_CREDENTIALS_BYTES`].
    pub fn max_credentials_bytes(mut self, limit: usize) -> Self {
        self.max_credentials_bytes = limit;
        self
    }

    /// Throttles repeated wrong credentials (429 with `Retry-After`); see [`FailureThrottle`].
    /// Default: off in the layer (the example proxy turns it on).
    pub fn throttle(mut self, throttle: FailureThrottle) -> Self {
        self.throttle = Some(throttle);
        self
    }

    /// Renders the body and extra fields of every rejection with `render` (an HTML 407 for
    /// browsers, a JSON 401 for an API). The layer still sets the status, the challenges,
    /// `Retry-After`, an exact `Content-Length` and the keep-alive/close rule; see
    /// [`RejectionBody`]. Default: a short `text/plain` line ([`Rejection::default_text`]).
    pub fn render_rejection<F>(mut self, render: F) -> Self
    where
        F: Fn(&Rejection, &Parts) -> RejectionBody + Send + Sync + 'static,
    {
        self.render = Some(Arc::new(render));
        self
    }

    /// Builds the layer. Static challenges (Basic's) are made here, once.
    ///
    /// # Errors
    ///
    /// [`BuildError::InvalidRealm`] when the realm holds a control character,
    /// [`BuildError::DuplicateScheme`] when a scheme is offered twice, [`BuildError::Scheme`]
    /// when a scheme refuses its configuration.
    pub fn build(self) -> Result<ProxyAuthLayer, BuildError> {
        let realm = self.realm.map_err(BuildError::InvalidRealm)?;
        for (i, offer) in self.offers.iter().enumerate() {
            if self.offers[..i]
                .iter()
                .any(|o| o.name().eq_ignore_ascii_case(offer.name()))
            {
                return Err(BuildError::DuplicateScheme(offer.name()));
            }
        }
        let schemes = Schemes::configure(self.offers, &Setup::new(&realm, self.party))
            .map_err(|(scheme, message)| BuildError::Scheme { scheme, message })?;
        Ok(ProxyAuthLayer {
            config: Arc::new(Config {
                party: self.party,
                schemes,
                realm,
                credentials_header: self.party.credentials_header(),
                info_header: self.party.info_header(),
                keep_credentials: self.keep_credentials,
                max_credentials_bytes: self.max_credentials_bytes,
                throttle: self.throttle,
                render: self.render,
                validator_errors: LogLimit::new(),
                overloads: LogLimit::new(),
            }),
        })
    }
}

/// Why a [`ProxyAuthLayer`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The realm holds a control character.
    InvalidRealm(InvalidRealm),
    /// The same auth-scheme was offered twice.
    DuplicateScheme(&'static str),
    /// A scheme refused its configuration.
    Scheme {
        /// The scheme's name.
        scheme: &'static str,
        /// What it said.
        message: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidRealm(e) => write!(f, "invalid realm: {e}"),
            Self::DuplicateScheme(name) => write!(f, "the {name} scheme is offered twice"),
            Self::Scheme { scheme, message } => write!(f, "{scheme}: {message}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::InvalidRealm(e) => Some(e),
            _ => None,
        }
    }
}
