//! An in-memory table of users and passwords.

use std::collections::HashMap;
use std::fmt;

use http::request::Parts;
use subtle::ConstantTimeEq;

use crate::identity::Identity;
use crate::scheme::basic::BasicCredentials;
use crate::secret::{SecretKey, Tag};
use crate::validator::{Decision, Validation, Validator};

/// Users and passwords held in memory, for configuration files, tests and small deployments.
///
/// Passwords are not stored: each is kept as an HMAC-SHA-256 tag under a key drawn at random
/// when the table is made, and a request's password is reduced the same way and compared in
/// constant time ([`subtle`]). An unknown user is compared against a dummy tag, so it costs the
/// same work as a wrong password. User-ids are compared as exact bytes. Lookups are a hash-map
/// probe: the cost of the accept path does not grow with the number of users.
///
/// ```
/// use tower_proxy_auth::{ProxyAuthLayer, StaticUsers};
///
/// let users = StaticUsers::new()
///     .with_user("alice", "s3cret")
///     .with_user("bob", "pa:ss:word");
/// assert_eq!(users.len(), 2);
/// let layer = ProxyAuthLayer::new(users);
/// ```
#[derive(Clone)]
pub struct StaticUsers {
    key: SecretKey,
    users: HashMap<Box<str>, Entry>,
    dummy: Tag,
}

#[derive(Clone)]
struct Entry {
    tag: Tag,
    identity: Identity,
}

impl StaticUsers {
    /// An empty table (it rejects everyone).
    pub fn new() -> Self {
        let key = SecretKey::random();
        let dummy = key.tag(&[b"\0no such user\0"]);
        Self {
            key,
            users: HashMap::new(),
            dummy,
        }
    }

    /// Adds or replaces a user; the builder form of [`insert`](Self::insert).
    pub fn with_user(mut self, user_id: impl Into<String>, password: impl AsRef<[u8]>) -> Self {
        self.insert(user_id, password);
        self
    }

    /// Adds or replaces a user. The password is any bytes; it is reduced to a keyed tag at once
    /// and not kept.
    pub fn insert(&mut self, user_id: impl Into<String>, password: impl AsRef<[u8]>) {
        let user_id = user_id.into();
        let entry = Entry {
            tag: self.key.tag(&[password.as_ref()]),
            identity: Identity::new(user_id.as_str()),
        };
        self.users.insert(user_id.into_boxed_str(), entry);
    }

    /// Removes a user; returns whether it was present.
    pub fn remove(&mut self, user_id: &str) -> bool {
        self.users.remove(user_id).is_some()
    }

    /// Whether `user_id` is in the table.
    pub fn contains(&self, user_id: &str) -> bool {
        self.users.contains_key(user_id)
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the table has no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks a user-id and password pair; the identity on success.
    pub fn check(&self, user_id: &str, password: &[u8]) -> Option<&Identity> {
        let given = self.key.tag(&[password]);
        let entry = self.users.get(user_id);
        let stored = entry.map_or(&self.dummy, |e| &e.tag);
        let good = given.ct_eq(stored) & u8::from(entry.is_some()).ct_eq(&1);
        if bool::from(good) {
            entry.map(|e| &e.identity)
        } else {
            None
        }
    }
}

impl Default for StaticUsers {
    fn default() -> Self {
        Self::new()
    }
}

impl<U: Into<String>, P: AsRef<[u8]>> FromIterator<(U, P)> for StaticUsers {
    fn from_iter<I: IntoIterator<Item = (U, P)>>(iter: I) -> Self {
        let mut users = Self::new();
        users.extend(iter);
        users
    }
}

impl<U: Into<String>, P: AsRef<[u8]>> Extend<(U, P)> for StaticUsers {
    fn extend<I: IntoIterator<Item = (U, P)>>(&mut self, iter: I) {
        for (user, password) in iter {
            self.insert(user, password);
        }
    }
}

impl Validator for StaticUsers {
    fn validate(&self, credentials: &BasicCredentials, _request: &Parts) -> Validation {
        match self.check(credentials.user_id(), credentials.password()) {
            Some(identity) => Decision::Allow(identity.clone()).into(),
            None => Decision::Reject.into(),
        }
    }
}

impl fmt::Debug for StaticUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.users.keys().map(|u| &**u).collect();
        users.sort_unstable();
        f.debug_struct("StaticUsers")
            .field("users", &users)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_right_refuses_wrong_and_unknown() {
        let users = StaticUsers::new()
            .with_user("alice", "s3cret")
            .with_user("bob", "pa:ss:word")
            .with_user("empty", "");
        assert_eq!(
            users.check("alice", b"s3cret").map(Identity::user),
            Some("alice")
        );
        assert_eq!(
            users.check("bob", b"pa:ss:word").map(Identity::user),
            Some("bob")
        );
        assert!(users.check("empty", b"").is_some());
        assert!(users.check("alice", b"s3cret ").is_none());
        assert!(users.check("alice", b"").is_none());
        assert!(users.check("Alice", b"s3cret").is_none());
        assert!(users.check("carol", b"s3cret").is_none());
        assert!(users.check("", b"\0no such user\0").is_none());
    }

    #[test]
    fn debug_lists_users_only() {
        let users = StaticUsers::new().with_user("alice", "s3cret");
        let dbg = format!("{users:?}");
        assert!(dbg.contains("alice") && !dbg.contains("s3cret"));
    }
}
