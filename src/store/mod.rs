//! Sources of users: where the secrets a validator checks against live.
//!
//! - [`StaticUsers`]: a table in memory.
//! - [`Htpasswd`](htpasswd::Htpasswd): an Apache/nginx htpasswd file, reloaded when it changes
//!   (cargo feature `htpasswd`).
//! - [`Htdigest`]: an Apache htdigest file of Digest HA1s, reloaded when it changes.
//! - `squid_helper`: Squid's authentication helpers, run as child processes (cargo feature
//!   `squid-helper`).
//! - `forward_auth`: an HTTP auth service asked for each check (cargo feature
//!   `forward-auth`).

#[cfg(feature = "forward-auth")]
#[cfg_attr(docsrs, doc(cfg(feature = "forward-auth")))]
pub mod forward_auth;
pub mod htdigest;
#[cfg(feature = "htpasswd")]
#[cfg_attr(docsrs, doc(cfg(feature = "htpasswd")))]
pub mod htpasswd;
#[cfg(feature = "squid-helper")]
#[cfg_attr(docsrs, doc(cfg(feature = "squid-helper")))]
pub mod squid_helper;
mod static_users;
pub(crate) mod watch;

pub use htdigest::{Htdigest, HtdigestBuilder, HtdigestError};
pub use static_users::StaticUsers;
