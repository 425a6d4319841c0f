//! [`BasicHelper`]: a Squid Basic authentication helper as a password [`Validator`].

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

use super::pool::{HelperStats, Pool};
use super::protocol::{self, Code, Reply};
use super::HelperNotes;
use crate::identity::Identity;
use crate::logging::Escaped;
use crate::outcome::{Decision, Validation, ValidatorError};
use crate::scheme::basic::BasicCredentials;
use crate::validator::Validator;

/// Basic credentials checked by a Squid Basic helper (`basic_ncsa_auth`, `basic_ldap_auth`,
/// `basic_pam_auth`, `basic_radius_auth`, `basic_db_auth`, a script of your own), made by
/// [`SquidHelper::basic`](super::SquidHelper::basic).
///
/// Each check sends `user password` (both URL-escaped, as Squid sends them) to one of the
/// children and maps the reply:
///
/// | reply | decision |
/// |---|---|
/// | `OK` | allow; the identity is the `user=` value when there is one (as Squid takes it from NTLM, Negotiate and external ACL helpers), else the user-id; every `key=value` pair but `message`, `password` and `ha1` is attached as [`HelperNotes`] |
/// | `ERR` | reject (407/401 with the challenges; `message=` is logged at debug level) |
/// | `BH` | unavailable (503): the helper could not decide. Squid answers a new challenge instead; a 503 keeps an outage of the helper's backend from counting as wrong passwords |
/// | no reply: the child exited, hung past the timeout or wrote garbage | unavailable (503); the child is restarted |
///
/// Credentials whose request line is longer than one write reaches a child whole (4,096 bytes
/// with the escaping and the channel-ID; see `SquidHelper::concurrency`) are rejected without
/// asking them. Passwords travel only through the children's stdin: never in their
/// arguments or environment, never in a log line.
///
/// An unknown user costs what the helper makes it cost: `basic_ncsa_auth` answers `ERR No such
/// user` without hashing anything, so its answer time tells whether a user exists, as it does
/// behind Squid. The failure throttle limits how many such probes a client can make.
#[derive(Clone)]
pub struct BasicHelper {
    pool: Arc<Pool>,
}

impl BasicHelper {
    pub(crate) fn new(pool: Pool) -> Self {
        Self {
            pool: Arc::new(pool),
        }
    }

    /// Counters of the children.
    pub fn stats(&self) -> HelperStats {
        self.pool.stats()
    }
}

impl fmt::Debug for BasicHelper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("BasicHelper").field(&self.pool).finish()
    }
}

impl Validator for BasicHelper {
    fn validate(&self, credentials: &BasicCredentials, _request: &Parts) -> Validation {
        let line = protocol::basic_request(credentials.user_id_bytes(), credentials.password());
        // The channel-ID and the line feed must fit too.
        if !protocol::fits(&line) {
            tracing::debug!(
                user = %Escaped::new(credentials.user_id()),
                "credentials too long for a Squid helper line; rejected"
            );
            return Decision::Reject.into();
        }
        let receiver = match self.pool.submit(line) {
            Ok(receiver) => receiver,
            Err(error) => return Validation::Ready(Err(error)),
        };
        let user: Arc<str> = Arc::from(credentials.user_id());
        let name = self.pool.config().name.clone();
        Validation::pending(async move {
            let reply = receiver.await.map_err(|_| {
                ValidatorError::new(format!("Squid helper {name}: child stopped"))
            })??;
            decide(&name, user, &reply)
        })
    }
}

/// The decision a reply stands for.
fn decide(name: &str, user: Arc<str>, reply: &Reply) -> Result<Decision, ValidatorError> {
    match reply.code {
        Code::Ok => {
            let identity = match reply.note("user") {
                Some(named) if !named.is_empty() => Identity::new(named),
                _ => Identity::new(user),
            };
            let notes = HelperNotes::from_reply(reply);
            // An identity without data clones without allocating (it is cloned per cache hit).
            let identity = if notes.is_empty() {
                identity
            } else {
                identity.with(notes)
            };
            Ok(Decision::Allow(identity))
        }
        Code::Err => {
            if let Some(message) = reply.message() {
                tracing::debug!(
                    helper = %name,
                    user = %Escaped::new(&*user),
                    "Squid helper {name} refused the credentials: {}",
                    Escaped::new(message)
                );
            }
            Ok(Decision::Reject)
        }
        Code::BrokenHelper => Err(ValidatorError::new(format!(
            "Squid helper {name} could not decide (BH): {}",
            Escaped::new(reply.message().unwrap_or("no message"))
        ))),
    }
}
