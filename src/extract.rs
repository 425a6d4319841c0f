//! [`Identity`] as an axum extractor (cargo feature `axum`).
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_proxy_auth::{Identity, ProxyAuthLayer, StaticUsers};
//!
//! async fn whoami(user: Identity) -> String {
//!     format!("hello {}\n", user.user())
//! }
//!
//! async fn maybe(user: Option<Identity>) -> String {
//!     user.map_or("anonymous".to_owned(), |u| u.user().to_owned())
//! }
//!
//! let users = StaticUsers::new().with_user("alice", "s3cret");
//! let app: Router = Router::new()
//!     .route("/whoami", get(whoami))
//!     .route("/maybe", get(maybe))
//!     .layer(ProxyAuthLayer::new(users));
//! ```

use std::convert::Infallible;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::identity::Identity;

/// The rejection of the [`Identity`] extractor: the request has no identity, because the
/// layer did not run for this route. A 500, since it is a server set-up error, not the
/// client's: a request the layer refuses never reaches a handler.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct MissingIdentity;

impl MissingIdentity {
    /// The text of the 500 response.
    pub const TEXT: &'static str = "tower-proxy-auth: this request has no Identity: the \
        ProxyAuthLayer did not run for this route. Put the layer on the Router \
        (`.layer(...)`), or note that `Router::route_layer` covers only the routes added \
        before it.\n";
}

impl fmt::Display for MissingIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::TEXT.trim_end())
    }
}

impl std::error::Error for MissingIdentity {}

impl IntoResponse for MissingIdentity {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, Self::TEXT).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = MissingIdentity;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Identity>()
            .cloned()
            .ok_or(MissingIdentity)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}
