//! Proxy authentication for [tower] services.
//!
//! [`ProxyAuthLayer`] puts HTTP proxy authentication in front of any tower service that takes
//! `http::Request`s: a forward proxy on hyper, an axum `Router`, a gateway built with
//! `tower::ServiceBuilder` beside tower-http layers.
//!
//! - A request without usable credentials gets `407 Proxy Authentication Required` with a
//!   `Proxy-Authenticate: Basic realm="…", charset="UTF-8"` challenge (RFC 9110 §11.7.1,
//!   RFC 7617 §2), complete and keep-alive, so a client can retry on the same connection.
//! - `Proxy-Authorization` (never `Authorization`) is parsed strictly (RFC 9110 §11.4,
//!   RFC 7617 §2): malformed values get 407, two credentials get 400, nothing panics.
//! - A pluggable [`Validator`] decides: [`StaticUsers`] in memory with constant-time checks,
//!   [`Htpasswd`] files as Apache httpd, nginx and Squid use them (cargo
//!   feature `htpasswd`, on by default), closures ([`validator::from_fn`], [`validator::from_async_fn`]), any of them combined
//!   with [`Validator::or`]. It may also forbid (403) or fail (503, never an open door).
//! - An accepted request reaches the inner service without `Proxy-Authorization` and with an
//!   [`Identity`] in its extensions.
//! - Limits: an oversized `Proxy-Authorization` gets 431 before any decoding
//!   ([`DEFAULT_MAX_CREDENTIALS_BYTES`]); an optional [`FailureThrottle`] answers 429 to user
//!   names and client addresses that keep sending wrong credentials.
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
//! [tower]: https://docs.rs/tower

#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod body;
mod challenge;
mod client_addr;
mod credentials;
mod identity;
mod layer;
mod log_limit;
mod rejection;
mod secret;
mod throttle;
pub mod validator;

/// The README's code blocks, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use body::ResponseBody;
pub use challenge::{InvalidRealm, Realm, DEFAULT_REALM};
pub use client_addr::ClientAddr;
pub use credentials::{BasicCredentials, CredentialsError};
pub use identity::Identity;
pub use layer::{
    BuildError, ProxyAuth, ProxyAuthLayer, ProxyAuthLayerBuilder, ResponseFuture,
    DEFAULT_MAX_CREDENTIALS_BYTES,
};
pub use throttle::{
    FailureThrottle, DEFAULT_CAPACITY, DEFAULT_MAX_FAILURES, DEFAULT_WINDOW, MAX_WINDOW,
};
#[cfg(feature = "htpasswd")]
#[cfg_attr(docsrs, doc(cfg(feature = "htpasswd")))]
#[doc(inline)]
pub use validator::Htpasswd;
#[doc(inline)]
pub use validator::{BoxValidator, Decision, StaticUsers, Validation, Validator, ValidatorError};
