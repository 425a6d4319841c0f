//! An in-memory table of users and passwords.

use std::collections::HashMap;
use std::fmt;

use http::request::Parts;
use zeroize::Zeroizing;

use crate::identity::Identity;
use crate::realm::{Realm, DEFAULT_REALM};
use crate::scheme::basic::BasicCredentials;
use crate::scheme::digest::{DigestQuery, DigestSecret, DigestUser, HashFunction, Secret};
use crate::secret::{process_key, RandomSourceError, SecretKey, Tag, TagMap};
use crate::validator::{Decision, DigestSecrets, SecretLookup, Validation, Validator};

/// Users and passwords held in memory, for configuration files, tests and small deployments.
///
/// Passwords are not stored: each user-id and password pair is kept as a 128-bit keyed tag
/// (SipHash-2-4, a keyed pseudo-random function; see the crate's `secret` module) under a key
/// drawn from the OS random source once per process (the key a request's Basic credentials are
/// tagged with once, for every part that needs a tag). A request's user-id and password
/// are reduced the same way and looked up by that tag, compared in constant time
/// ([`subtle`]). So a known user with a wrong password and an unknown user take exactly the
/// same steps: one tag, one probe that finds nothing. User-ids and passwords are compared as
/// exact bytes. The cost of a check does not grow with the number of users.
///
/// The same users serve the Digest scheme (a [`DigestSecrets`] source): for each user the
/// table keeps the HA1 `H(user ":" realm ":" password)` for MD5, SHA-256 and SHA-512/256 and
/// the userhashes `H(user ":" realm)` (so it offers `userhash=true`), computed when the user is
/// added, for the realm the table was made for ([`DEFAULT_REALM`](crate::DEFAULT_REALM) by
/// [`new`](Self::new), any other by [`with_realm`](Self::with_realm)); the password itself is
/// not kept. A layer whose realm differs fails to build, naming both realms. An HA1 is a
/// password equivalent for Digest: the table's memory is as sensitive as a password file.
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
    /// The process key ([`process_key`]): the same tag as the request's credentials carry.
    key: &'static SecretKey,
    /// Each user's tag, for [`remove`](Self::remove) and [`contains`](Self::contains).
    users: HashMap<Box<str>, Tag>,
    /// Identities by the tag of (user-id, password).
    by_tag: TagMap<Identity>,
    /// What Digest needs.
    digest: DigestUsers,
}

/// Digest secrets for one realm.
#[derive(Clone)]
struct DigestUsers {
    realm: String,
    by_name: HashMap<Box<[u8]>, DigestEntry>,
    /// `H(user ":" realm)` in hex, per hash function, to the user.
    by_userhash: HashMap<UserhashKey, Box<[u8]>>,
}

/// A userhash (hex) under one hash function.
type UserhashKey = (HashFunction, Box<[u8]>);

#[derive(Clone)]
struct DigestEntry {
    identity: Identity,
    /// The HA1 for each of [`HASHES`], in that order, as the secret a lookup answers.
    ha1: [Secret; 3],
}

const HASHES: [HashFunction; 3] = [
    HashFunction::Md5,
    HashFunction::Sha256,
    HashFunction::Sha512_256,
];

impl DigestUsers {
    fn new(realm: String) -> Self {
        Self {
            realm,
            by_name: HashMap::new(),
            by_userhash: HashMap::new(),
        }
    }

    fn insert(&mut self, user: &str, password: &[u8], identity: &Identity) {
        let u = user.as_bytes();
        self.remove(u);
        let r = self.realm.as_bytes();
        let ha1 = HASHES.map(|hash| Secret::Ha1 {
            hash,
            hex: hash.hex(&[u, r, password]),
        });
        for hash in HASHES {
            let userhash = hash.hex(&[u, r]).as_bytes().into();
            self.by_userhash.insert((hash, userhash), u.into());
        }
        self.by_name.insert(
            u.into(),
            DigestEntry {
                identity: identity.clone(),
                ha1,
            },
        );
    }

    fn remove(&mut self, user: &[u8]) {
        if self.by_name.remove(user).is_some() {
            let r = self.realm.as_bytes();
            for hash in HASHES {
                self.by_userhash
                    .remove(&(hash, hash.hex(&[user, r]).as_bytes().into()));
            }
        }
    }

    fn lookup(&self, query: &DigestQuery) -> Option<DigestSecret> {
        if *query.realm != *self.realm {
            return None;
        }
        let hash = query.algorithm.hash();
        let entry = match &query.user {
            DigestUser::Name(name) => self.by_name.get(name.as_slice())?,
            DigestUser::Hash(hex) => {
                let name = self.by_userhash.get(&(hash, hex.as_bytes().into()))?;
                self.by_name.get(name)?
            }
        };
        let index = HASHES.iter().position(|h| *h == hash)?;
        Some(DigestSecret::new(
            entry.identity.clone(),
            entry.ha1[index].clone(),
        ))
    }
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
        Self::try_with_realm(DEFAULT_REALM)
    }

    /// An empty table whose Digest secrets are for `realm` (the layer's realm): see
    /// [`StaticUsers`]. Basic does not depend on the realm.
    ///
    /// # Panics
    ///
    /// When the operating system's random source fails; see
    /// [`try_with_realm`](Self::try_with_realm).
    pub fn with_realm(realm: impl Into<String>) -> Self {
        match Self::try_with_realm(realm) {
            Ok(users) => users,
            Err(error) => panic!("StaticUsers::with_realm: {error}"),
        }
    }

    /// [`with_realm`](Self::with_realm), or the error when the operating system's random
    /// source fails.
    ///
    /// # Errors
    ///
    /// [`RandomSourceError`].
    pub fn try_with_realm(realm: impl Into<String>) -> Result<Self, RandomSourceError> {
        Ok(Self {
            key: process_key()?,
            users: HashMap::new(),
            by_tag: TagMap::default(),
            digest: DigestUsers::new(realm.into()),
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
        let password = password.as_ref();
        let tag = self.tag(user_id.as_bytes(), password);
        let identity = Identity::new(user_id.as_str());
        self.digest.insert(&user_id, password, &identity);
        if let Some(old) = self.users.insert(user_id.into_boxed_str(), tag.clone()) {
            self.by_tag.remove(&old);
        }
        self.by_tag.insert(tag, identity);
    }

    /// Removes a user; returns whether it was present.
    pub fn remove(&mut self, user_id: &str) -> bool {
        self.digest.remove(user_id.as_bytes());
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
        // The credentials' own tag, made once per request under the same process key.
        let tag = credentials.tag().unwrap_or_else(|| {
            self.key
                .tag_credentials(credentials.user_id_bytes().len(), credentials.decoded())
        });
        match self.by_tag.get(&tag) {
            Some(identity) => Decision::Allow(identity.clone()).into(),
            None => Decision::Reject.into(),
        }
    }
}

impl DigestSecrets for StaticUsers {
    fn lookup(&self, query: &DigestQuery, _request: &Parts) -> SecretLookup {
        SecretLookup::Ready(Ok(self.digest.lookup(query)))
    }

    fn supports_userhash(&self) -> bool {
        true
    }

    fn check_realm(&self, realm: &Realm) -> Result<(), String> {
        if realm.as_str() == self.digest.realm {
            Ok(())
        } else {
            Err(format!(
                "StaticUsers holds Digest secrets for realm {:?}, but the layer's realm is \
                 {:?}: make the users with StaticUsers::with_realm({:?})",
                self.digest.realm,
                realm.as_str(),
                realm.as_str()
            ))
        }
    }
}

impl fmt::Debug for StaticUsers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut users: Vec<&str> = self.users.keys().map(|u| &**u).collect();
        users.sort_unstable();
        f.debug_struct("StaticUsers")
            .field("users", &users)
            .field("digest_realm", &self.digest.realm)
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
    fn digest_secrets_by_name_and_by_userhash() {
        use crate::scheme::digest::Algorithm;
        let users = StaticUsers::with_realm("r").with_user("Mufasa", "Circle of Life");
        let parts = http::Request::new(()).into_parts().0;
        let ask = |user, algorithm| {
            let query = DigestQuery {
                user,
                realm: "r".into(),
                algorithm,
            };
            match users.lookup(&query, &parts) {
                SecretLookup::Ready(Ok(found)) => found,
                _ => panic!("ready"),
            }
        };
        let found = ask(DigestUser::Name(b"Mufasa".to_vec()), Algorithm::Sha256).unwrap();
        assert_eq!(found.identity.user(), "Mufasa");
        let want = HashFunction::Sha256.hex(&[b"Mufasa", b"r", b"Circle of Life"]);
        assert_eq!(
            found
                .secret
                .ha1_for(HashFunction::Sha256, b"Mufasa", b"r")
                .map(|ha1| ha1.into_owned()),
            Some(want)
        );
        let userhash = HashFunction::Md5.hex(&[b"Mufasa", b"r"]);
        let hex = String::from_utf8(userhash.as_bytes().to_vec()).unwrap();
        assert!(ask(DigestUser::Hash(hex.clone()), Algorithm::Md5Sess).is_some());
        assert!(
            ask(DigestUser::Hash(hex), Algorithm::Sha256).is_none(),
            "another hash's userhash"
        );
        assert!(ask(DigestUser::Name(b"mufasa".to_vec()), Algorithm::Md5).is_none());
        let mut users = users;
        users.remove("Mufasa");
        assert!(users.digest.by_name.is_empty() && users.digest.by_userhash.is_empty());
        assert!(users
            .check_realm(&Realm::new("other").unwrap())
            .unwrap_err()
            .contains("StaticUsers::with_realm(\"other\")"));
    }

    #[test]
    fn debug_lists_users_only() {
        let users = StaticUsers::new().with_user("alice", "s3cret");
        let dbg = format!("{users:?}");
        assert!(dbg.contains("alice") && !dbg.contains("s3cret"));
    }
}
