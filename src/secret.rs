//! Keyed digests for comparing secrets in constant time.
//!
//! Passwords of different lengths cannot be compared in constant time directly, so both sides
//! are first reduced to a fixed-size HMAC-SHA-256 (RFC 2104) under a key drawn at random for each
//! table; the 32-byte tags are then compared with [`subtle`]. The key also keeps the table from
//! holding anything an attacker could precompute against.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};
use zeroize::Zeroize;

/// HMAC-SHA-256 under a per-instance random key.
#[derive(Clone)]
pub(crate) struct SecretKey(Hmac<Sha256>);

/// A 32-byte tag; equality is constant-time.
#[derive(Clone)]
pub(crate) struct Tag([u8; 32]);

impl SecretKey {
    /// A key from the operating system's random source (falls back to a key derived from the
    /// clock and address space only when that source fails, which keeps the tags unguessable in
    /// practice and never panics).
    pub(crate) fn random() -> Self {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            let fallback = format!("{:?}{:p}", std::time::SystemTime::now(), &key as *const _);
            key[..].copy_from_slice(&<Sha256 as sha2::Digest>::digest(fallback.as_bytes()));
        }
        let mac = Hmac::<Sha256>::new_from_slice(&key).unwrap_or_else(|_| unreachable_mac());
        key.zeroize();
        Self(mac)
    }

    /// The tag of the concatenation of `parts`, each prefixed with its length so that
    /// `("ab", "c")` and `("a", "bc")` differ.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> Tag {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        Tag(mac.finalize().into_bytes().into())
    }
}

/// HMAC accepts keys of any length, so this is never reached; kept panic-free all the same.
fn unreachable_mac() -> Hmac<Sha256> {
    <Hmac<Sha256> as hmac::digest::KeyInit>::new(&Default::default())
}

impl Tag {
    pub(crate) fn ct_eq(&self, other: &Tag) -> Choice {
        self.0.ct_eq(&other.0)
    }
}

impl std::hash::Hash for Tag {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl PartialEq for Tag {
    fn eq(&self, other: &Self) -> bool {
        self.ct_eq(other).into()
    }
}

impl Eq for Tag {}
