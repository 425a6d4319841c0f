//! HTTP authentication for proxies and gateways, as a [tower] `Layer`.
//!
//! [`ProxyAuthLayer`] puts authentication in front of any tower service that takes
//! `http::Request`s: a forward proxy on hyper, an axum `Router`, a gateway built with
//! `tower::ServiceBuilder` beside tower-http layers.
//!
//! - A request without usable credentials gets `407 Proxy Authentication Required` with one
//!   `Proxy-Authenticate` challenge per offered scheme (RFC 9110 §11.7.1), or, for an origin
//!   ([`Party::Origin`]), `401 Unauthorized` with `WWW-Authenticate` (§11.6.1); the response is
//!   complete and keep-alive, so a client can retry on the same connection.
//! - The credentials field is parsed strictly and without knowing any scheme
//!   ([`syntax`], RFC 9110 §11.4): malformed values get the challenges again, two credentials
//!   get 400, nothing panics. Each offered scheme ([`scheme`]) is a plug-in: Basic (RFC 7617)
//!   by default.
//! - A validator of the kind the scheme asks decides ([`validator`]): [`StaticUsers`] in memory
//!   with constant-time checks, [`Htpasswd`] files as Apache httpd, nginx and Squid use them
//!   (cargo feature `htpasswd`, on by default), closures ([`validator::from_fn`],
//!   [`validator::from_async_fn`]), Squid's authentication helpers (cargo feature
//!   `squid-helper`, `store::squid_helper`), an HTTP auth service (cargo feature
//!   `forward-auth`, `store::forward_auth`), any of them combined with [`Validator::or`]. It
//!   may also forbid (403) or fail (503, never an open door).
//! - An accepted request reaches the inner service without its credentials and with an
//!   [`Identity`] in its extensions (with the cargo feature `axum`, an extractor).
//! - Limits: an oversized credentials field gets 431 before any decoding
//!   ([`DEFAULT_MAX_CREDENTIALS_BYTES`]); an optional [`FailureThrottle`] answers 429 to those
//!   who keep sending wrong credentials.
//! - Each decision is one `tracing` event (and, with the cargo feature `metrics`, a counter);
//!   see [`decide`](crate::Rejection).
//!
//! ```
//! use std::convert::Infallible;
//! use http::{header::PROXY_AUTHORIZATION, Request, Response};
//! use tower::{ServiceBuilder, ServiceExt};
//! use tower_proxy_auth::{Identity, ProxyAuthLayer, StaticUsers};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Infallible> {
//! let users = StaticUsers::new().with_user("alice", "s3cret");
//! let service = ServiceBuilder::new()
//!     .layer(ProxyAuthLayer::new(users))
//!     .service_fn(|req: Request<String>| async move {
//!         let user = req.extensions().get::<Identity>().map(|id| id.user().to_owned());
//!         assert!(req.headers().get(PROXY_AUTHORIZATION).is_none());
//!         Ok::<_, Infallible>(Response::new(format!("hello {}", user.unwrap_or_default())))
//!     });
//!
//! let request = Request::builder()
//!     .uri("http://example.com/")
//!     .header(PROXY_AUTHORIZATION, "Basic YWxpY2U6czNjcmV0") // alice:s3cret
//!     .body(String::new())
//!     .unwrap();
//! let response = service.oneshot(request).await?;
//! assert_eq!(response.status(), 200);
//! # Ok(())
//! # }
//! ```
//!
//! # How a request flows
//!
//! One way through the modules, none importing a later one: [`syntax`] (the credentials field,
//! RFC 9110 §11) → [`scheme`] (the offered scheme prepares the attempt) → throttle (may answer
//! 429 first; `shared`, with the feature `redis`, keeps the scheme's and the throttle's state on
//! a server several instances share) → [`validator`] (the scheme's kind of validator answers; [`store`]s of users
//! implement them) → decide (one mapping to forward or a [`Rejection`]) → respond (the
//! rejection rendered, or the inner service called and the scheme's success field added).
//!
//! [tower]: https://docs.rs/tower

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

// Leaves: vocabulary every stage may use.
mod client_addr;
mod identity;
mod logging;
mod outcome;
mod party;
mod realm;
mod secret;

// The stages, in the order a request passes them.
mod decide;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod extract;
mod layer;
mod offer;
mod respond;
pub mod scheme;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod shared;
pub mod store;
pub mod syntax;
pub mod throttle;
pub mod validator;

/// The README's code blocks, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use client_addr::{ClientAddr, ConnectionMarker};
pub use decide::{ChallengeReason, Rejection, RejectionKind};
pub use identity::Identity;
pub use layer::{
    BuildError, ProxyAuth, ProxyAuthLayer, ProxyAuthLayerBuilder, ResponseFuture,
    DEFAULT_MAX_CREDENTIALS_BYTES,
};
pub use logging::{Escaped, DEFAULT_LOG_VALUE_BYTES};
pub use outcome::{Answer, BoxFuture, Decision, Validation, ValidatorError, ValidatorErrorKind};
pub use party::Party;
pub use realm::{InvalidRealm, Realm, DEFAULT_REALM};
pub use respond::{RejectionBody, ResponseBody};
pub use scheme::basic::{BasicCredentials, CredentialsError};
pub use secret::RandomSourceError;
#[cfg(feature = "htpasswd")]
#[cfg_attr(docsrs, doc(cfg(feature = "htpasswd")))]
pub use store::htpasswd::{Htpasswd, HtpasswdBuilder, HtpasswdError};
pub use store::StaticUsers;
pub use throttle::FailureThrottle;
#[doc(inline)]
pub use validator::{BoxValidator, Validator};
