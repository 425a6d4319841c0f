//! An in-memory table of users and passwords.

use std::collections::HashMap;
use std::fmt;

use http::request::Parts;
use zeroize::Zeroizing;

use crate::identity::Identity;
use crate::scheme::basic::BasicCredentials;
use crate::secret::{RandomSourceError, SecretKey, Tag, TagMap};
use crate::validator::{Decision, Validation, Validator};

/// Users and passwords held in memory, for configuration files, tests and small deployments.
///
/// Passwords are not stored: each user-id and password pair is kept as a 128-bit keyed tag
/// (SipHash-2-4, a keyed pseudo-random function; see the crate's `secret` module) under a key
/// drawn from the OS random source when the table is made. A request's user-id and password
/// are reduced the same way and looked up by that tag, compared in constant time
/// ([`subtle`]). So a known user with a wrong password and an unknown user take exactly the
/// same steps: one tag, one probe that finds nothing. User-ids and passwords are compared as
/// exact bytes. The cost of a check does not grow with the number of users.
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
    /// Each user's tag, for [`remove`](Self::remove) and [`contains`](Self::contains).
    users: HashMap<Box<str>, Tag>,
    /// Identities by the tag of (user-id, password).
    by_tag: TagMap<Identity>,
}

impl StaticUsers {
    /// An empty table (it rejects everyone).
    ///
    /// # Panics
    ///
    /// When the operating system's random source fails (no key can be made): see
    /// [`try_new`](Self::try_new) for the fallible form.
    pub fn new() -> Self {
        match Self::try_new() {
            Ok(users) => users,
            Err(error) => panic!("StaticUsers::new: {error}"),
        }
    }

    /// An empty table, or the error when the operating system's random source fails.
    ///
    /// # Errors
    ///
    /// [`RandomSourceError`].
    pub fn try_new() -> Result<Self, RandomSourceError> {
        Ok(Self {
            key: SecretKey::random()?,
            users: HashMap::new(),
            by_tag: TagMap::default(),
        })
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
        let tag = self.tag(user_id.as_bytes(), password.as_ref());
        self.by_tag
            .insert(tag.clone(), Identity::new(user_id.as_str()));
        if let Some(old) = self.users.insert(user_id.into_boxed_str(), tag) {
            self.by_tag.remove(&old);
        }
    }

    /// Removes a user; returns whether it was present.
    pub fn remove(&mut self, user_id: &str) -> bool {
        match self.users.remove(user_id) {
            Some(tag) => {
                self.by_tag.remove(&tag);
                true
            }
            None => false,
        }
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
        self.by_tag.get(&self.tag(user_id.as_bytes(), password))
    }
}

impl StaticUsers {
    /// The tag of `user` and `password`: the same as Basic credentials' `user:password`.
    fn tag(&self, user: &[u8], password: &[u8]) -> Tag {
        let len = user.len() + 1 + password.len();
        let mut stack = Zeroizing::new([0u8; 128]);
        let mut heap = Zeroizing::new(Vec::new());
        let joined: &mut [u8] = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap[..]
        };
        joined[..user.len()].copy_from_slice(user);
        joined[user.len()] = b':';
        joined[user.len() + 1..].copy_from_slice(password);
        self.key.tag_credentials(user.len(), joined)
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
        let tag = self
            .key
            .tag_credentials(credentials.user_id_bytes().len(), credentials.decoded());
        match self.by_tag.get(&tag) {
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
