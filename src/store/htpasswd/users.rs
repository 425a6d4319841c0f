//! The users of the file as a [`Validator`]: one password check against the table in force,
//! without a cache (the public [`Htpasswd`](super::Htpasswd) puts a
//! [`Cached`](crate::validator::Cached) in front).
//!
//! - The user's entry is looked up in the current table (swapped whole by a reload, so a check
//!   sees one version of the file).
//! - The cheap formats ([`HashFormat::is_cheap`](super::format::HashFormat::is_cheap): `{SHA}`, `{SSHA}`, `{PLAIN}`, bare plaintext)
//!   are checked at once: [`Validation::Ready`].
//! - The slow ones (bcrypt, MD5-crypt, apr1, SHA-crypt, DES) run on a [`BlockingPool`]:
//!   [`Validation::Pending`], or an overloaded error at the first poll when its queue is full.
//! - A user not in the file, or refused by a skipped lenient line, is verified against the
//!   table's dummy hash and then refused, so that the answer takes as long as for a wrong
//!   password, unless `verify_unknown_users` is off.
//! - [`answer_version`](Validator::answer_version) is the id of the user's entry (kept by a
//!   reload while the user's line is unchanged), or [`UNKNOWN_USER_VERSION`] for anyone without
//!   a usable entry: a cache in front never gives an answer found for another hash.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::request::Parts;
use zeroize::Zeroizing;

use super::file::{Slot, Table};
use crate::client_addr::ClientAddr;
use crate::identity::Identity;
use crate::scheme::basic::BasicCredentials;
use crate::validator::{BlockingPool, Decision, Validation, Validator};

/// The answer version of users without a usable entry; never an entry's id. They are always
/// refused, whatever the version of the file, so one version serves them all.
pub(super) const UNKNOWN_USER_VERSION: u64 = u64::MAX;

/// The users of one htpasswd file, checked without a cache.
pub(super) struct FileUsers {
    /// The path as given, or the name given with the contents; used in messages.
    pub(super) name: Arc<str>,
    /// The table in force; a reload stores a new one.
    pub(super) table: ArcSwap<Table>,
    pool: BlockingPool,
    verify_unknown_users: bool,
}

impl FileUsers {
    /// The users of `table`, slow hashes verified on `pool`.
    pub(super) fn new(
        name: Arc<str>,
        table: Table,
        pool: BlockingPool,
        verify_unknown_users: bool,
    ) -> Self {
        Self {
            name,
            table: ArcSwap::from_pointee(table),
            pool,
            verify_unknown_users,
        }
    }

    /// The pool slow hashes are verified on.
    pub(super) fn pool(&self) -> &BlockingPool {
        &self.pool
    }
}

impl Validator for FileUsers {
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        let table = self.table.load();
        let password = credentials.password();
        let (user, hash) = match table.get(credentials.user_id()) {
            Some((user, Slot::Usable(entry))) => (Some(user), &entry.hash),
            // Unknown, or refused by a skipped line: the same work as a wrong password.
            _ => match table.dummy() {
                Some(dummy) if self.verify_unknown_users => (None, dummy),
                _ => return Decision::Reject.into(),
            },
        };
        if hash.format().is_cheap() {
            let matched = std::hint::black_box(hash.verify(password));
            return match user {
                Some(user) if matched => allow(user.clone()),
                _ => Decision::Reject,
            }
            .into();
        }
        let user = user.cloned();
        let hash = hash.clone();
        let password = Zeroizing::new(password.to_vec());
        let pool = self.pool.clone();
        // The pool's queue is fair across clients (see `BlockingPool::run_for`).
        let client = request.extensions.get::<ClientAddr>().map(|a| a.0.ip());
        Validation::pending(async move {
            let matched = pool.run_for(client, move || hash.verify(&password)).await?;
            Ok(match user {
                Some(user) if matched => allow(user),
                _ => Decision::Reject,
            })
        })
    }

    fn answer_version(&self, credentials: &BasicCredentials) -> u64 {
        self.table
            .load()
            .entry(credentials.user_id())
            .map_or(UNKNOWN_USER_VERSION, |entry| entry.id)
    }
}

fn allow(user: Arc<str>) -> Decision {
    Decision::Allow(Identity::new(user))
}

impl fmt::Debug for FileUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileUsers")
            .field("name", &self.name)
            .field("users", &self.table.load().len())
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::htpasswd::file::ParseOptions;

    const BCRYPT: &str = "$2y$04$6SODifoQUoWboapbW3a0PO6gIrM1oEVHilnr4H7IiZpobToO9x1RS"; // pw
    const SHA: &str = "{SHA}3tZYY3tooyYOFjWoGgb7I/Ohmyg="; // not "pw"

    fn users(contents: &str, verify_unknown_users: bool) -> FileUsers {
        let options = ParseOptions {
            lenient: true,
            ..ParseOptions::default()
        };
        let table = Table::parse(&Arc::from("t"), contents.as_bytes(), options).unwrap();
        FileUsers::new(
            Arc::from("t"),
            table,
            BlockingPool::new(1, 4),
            verify_unknown_users,
        )
    }

    fn creds(user: &str, password: &str) -> BasicCredentials {
        BasicCredentials::new(user, password).unwrap()
    }

    fn parts() -> Parts {
        http::Request::new(()).into_parts().0
    }

    #[test]
    fn answer_versions_name_the_entry_and_unknown_users_share_one() {
        let u = users(&format!("alice:{BCRYPT}\nbob:{BCRYPT}\ncarol:\n"), true);
        let version = |user| u.answer_version(&creds(user, "x"));
        let table = u.table.load();
        assert_eq!(version("alice"), table.entry("alice").unwrap().id);
        assert_ne!(version("alice"), version("bob"));
        assert_eq!(version("nobody"), UNKNOWN_USER_VERSION);
        assert_eq!(version("carol"), UNKNOWN_USER_VERSION, "a skipped line");
    }

    #[tokio::test]
    async fn slow_hashes_are_pending_and_unknown_users_cost_a_verification() {
        let u = users(&format!("alice:{BCRYPT}\nplain:{SHA}\n"), true);
        let p = parts();
        let Validation::Pending(check) = u.validate(&creds("alice", "pw"), &p) else {
            panic!("bcrypt is checked on the pool");
        };
        assert!(matches!(check.await, Ok(Decision::Allow(_))));
        for user in ["nobody", "plain"] {
            // "plain" with a wrong password is a cheap check; "nobody" is verified against the
            // dummy, the bcrypt hash, on the pool.
            let answer = u.validate(&creds(user, "pw"), &p);
            assert_eq!(matches!(answer, Validation::Pending(_)), user == "nobody");
            assert!(matches!(answer.resolve().await, Ok(Decision::Reject)));
        }
        assert_eq!(u.pool().started(), 2);

        let off = users(&format!("alice:{BCRYPT}\n"), false);
        assert!(matches!(
            off.validate(&creds("nobody", "pw"), &p),
            Validation::Ready(Ok(Decision::Reject))
        ));
        assert_eq!(off.pool().started(), 0);
    }
}
