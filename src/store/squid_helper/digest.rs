//! [`DigestHelper`]: a Squid Digest authentication helper as a Digest secrets source.

use std::fmt;
use std::sync::Arc;

use http::request::Parts;

use super::pool::{HelperStats, Pool};
use super::protocol::{self, Code};
use crate::identity::Identity;
use crate::logging::Escaped;
use crate::outcome::{Answer, ValidatorError};
use crate::realm::Realm;
use crate::scheme::digest::{DigestQuery, DigestSecret, DigestUser, HashFunction, Secret};
use crate::validator::{DigestSecrets, SecretLookup};

/// Digest secrets from a Squid Digest helper (`digest_file_auth`, `digest_ldap_auth`, a
/// script of your own), made by [`SquidHelper::digest`](super::SquidHelper::digest).
///
/// Each lookup sends `"user":"realm"` to one of the children; `OK ha1="…"` (or, from helpers
/// older than Squid 3.4, the bare HA1) is the user's MD5 HA1, `ERR` an unknown user, `BH` or a
/// child that failed an unavailable error (503).
///
/// Squid's Digest helpers answer MD5 HA1s only, so the Digest scheme offered with this source
/// offers `MD5` and `MD5-sess` alone; users are not looked up by userhash (no `userhash=true`
/// in the challenges). A user name holding `"` or a control character cannot be written in the
/// helper's request line: such a user is unknown, as is one whose credentials use another
/// hash. The layer's realm must not hold `"` (building the layer fails otherwise).
#[derive(Clone)]
pub struct DigestHelper {
    pool: Arc<Pool>,
}

impl DigestHelper {
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

impl fmt::Debug for DigestHelper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DigestHelper").field(&self.pool).finish()
    }
}

impl DigestSecrets for DigestHelper {
    fn lookup(&self, query: &DigestQuery, _request: &Parts) -> SecretLookup {
        let DigestUser::Name(user) = &query.user else {
            return Answer::Ready(Ok(None));
        };
        if query.algorithm.hash() != HashFunction::Md5 {
            return Answer::Ready(Ok(None));
        }
        let Some(line) = protocol::digest_request(user, query.realm.as_bytes()) else {
            return Answer::Ready(Ok(None));
        };
        let receiver = match self.pool.submit(line) {
            Ok(receiver) => receiver,
            Err(error) => return Answer::Ready(Err(error)),
        };
        let name = self.pool.config().name.clone();
        let identity = Identity::new(String::from_utf8_lossy(user).into_owned());
        Answer::pending(async move {
            let reply = receiver.await.map_err(|_| {
                ValidatorError::new(format!("Squid helper {name}: child stopped"))
            })??;
            match reply.code {
                Code::Ok => {
                    let ha1 = reply.note("ha1").unwrap_or_default();
                    match Secret::ha1(HashFunction::Md5, ha1.as_bytes()) {
                        Some(secret) => Ok(Some(DigestSecret::new(identity, secret))),
                        None => Err(ValidatorError::new(format!(
                            "Squid helper {name} answered OK without an MD5 ha1 (is it a \
                             Digest helper?)"
                        ))),
                    }
                }
                Code::Err => Ok(None),
                Code::BrokenHelper => Err(ValidatorError::new(format!(
                    "Squid helper {name} could not decide (BH): {}",
                    Escaped::new(reply.message().unwrap_or("no message"))
                ))),
            }
        })
    }

    fn serves(&self, hash: HashFunction) -> bool {
        hash == HashFunction::Md5
    }

    fn check_realm(&self, realm: &Realm) -> Result<(), String> {
        if protocol::quotable(realm.as_str().as_bytes()) {
            Ok(())
        } else {
            Err(format!(
                "realm {:?} holds '\"', which a Squid Digest helper request cannot carry",
                realm.as_str()
            ))
        }
    }
}
