//! Sources of users: where the secrets a validator checks against live.
//!
//! - [`StaticUsers`]: a table in memory.
//! - [`Htpasswd`](htpasswd::Htpasswd): an Apache/nginx htpasswd file, reloaded when it changes
//!   (cargo feature `htpasswd`).

#[cfg(feature = "htpasswd")]
#[cfg_attr(docsrs, doc(cfg(feature = "htpasswd")))]
pub mod htpasswd;
mod static_users;
pub(crate) mod watch;

pub use static_users::StaticUsers;
