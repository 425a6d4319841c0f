//! What the Digest scheme asks its validator kind, and what it needs back.
//!
//! Digest never sees a password on the wire: the server recomputes the client's `response`
//! from a stored secret. So its validator kind is a lookup, not a check: given the user (by
//! name, or by `userhash`), the realm and the algorithm, the stored password or HA1 and the
//! identity to grant (see `validator::DigestSecrets`).

use std::borrow::Cow;
use std::fmt;

use zeroize::Zeroizing;

use super::algorithm::{Algorithm, HashFunction, Hex};
use crate::identity::Identity;

/// Who the client says it is.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestUser {
    /// The user name (`username`, or `username*` decoded from RFC 8187), as bytes (UTF-8 when
    /// the client followed `charset=UTF-8`).
    Name(Vec<u8>),
    /// `userhash=true`: `H(username ":" realm)` in lowercase hex (RFC 7616 §3.4.4).
    Hash(String),
}

impl DigestUser {
    /// The bytes sent: the name, or the hash.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Name(name) => name,
            Self::Hash(hash) => hash.as_bytes(),
        }
    }
}

impl fmt::Debug for DigestUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f
                .debug_tuple("Name")
                .field(&String::from_utf8_lossy(name))
                .finish(),
            Self::Hash(hash) => f.debug_tuple("Hash").field(hash).finish(),
        }
    }
}

/// The question a Digest scheme asks: the secret of this user in this realm, for this
/// algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DigestQuery {
    /// The user, by name or by userhash.
    pub user: DigestUser,
    /// The realm (the layer's; shared, so a query costs no copy of it).
    pub realm: std::sync::Arc<str>,
    /// The algorithm the client chose (its hash decides which HA1 is needed).
    pub algorithm: Algorithm,
}

/// A stored secret: a password, or the HA1 `H(username ":" realm ":" password)` for one hash
/// function (as an htdigest file holds for MD5). Zeroized when dropped; `Debug` hides it.
#[derive(Clone)]
#[non_exhaustive]
pub enum Secret {
    /// The password itself.
    Password(Zeroizing<Vec<u8>>),
    /// The HA1 for `hash`, in hex.
    Ha1 {
        /// The hash function it was computed with.
        hash: HashFunction,
        /// Its hex digits.
        hex: Hex,
    },
}

impl Secret {
    /// A password.
    pub fn password(password: impl AsRef<[u8]>) -> Self {
        Self::Password(Zeroizing::new(password.as_ref().to_vec()))
    }

    /// An HA1 for `hash`, from its hex digits (either case); `None` when they are not hex of
    /// the hash's length.
    pub fn ha1(hash: HashFunction, hex: &[u8]) -> Option<Self> {
        let hex = Hex::parse(hex)?;
        (hex.as_bytes().len() == hash.hex_len()).then_some(Self::Ha1 { hash, hex })
    }

    /// `H(username ":" realm ":" password)` for `hash`, or `None` for an HA1 of another hash.
    /// A stored HA1 is lent, not copied (each copy is one more zeroize when dropped).
    pub(crate) fn ha1_for(
        &self,
        hash: HashFunction,
        username: &[u8],
        realm: &[u8],
    ) -> Option<Cow<'_, Hex>> {
        match self {
            Self::Password(password) => Some(Cow::Owned(hash.hex(&[username, realm, password]))),
            Self::Ha1 { hash: stored, hex } => (*stored == hash).then_some(Cow::Borrowed(hex)),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Password(_) => f.write_str("Password(<redacted>)"),
            Self::Ha1 { hash, .. } => write!(f, "Ha1({hash:?}, <redacted>)"),
        }
    }
}

/// A validator's answer for a known user: the secret, and the identity to grant. The
/// identity's user name is the user's name (for a userhash lookup, the name the hash stands
/// for: it goes into HA1).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DigestSecret {
    /// Who the user is.
    pub identity: Identity,
    /// What the response is computed from.
    pub secret: Secret,
}

impl DigestSecret {
    /// `identity` with `secret`.
    pub fn new(identity: Identity, secret: Secret) -> Self {
        Self { identity, secret }
    }
}
