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
        // Four 64-bit lanes: the same constant-time `subtle` comparison as byte by byte, with
        // one optimisation barrier per lane instead of one per byte.
        let lanes = |tag: &Tag| {
            let mut out = [0u64; 4];
            for (lane, chunk) in out.iter_mut().zip(tag.0.chunks_exact(8)) {
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(chunk);
                *lane = u64::from_ne_bytes(bytes);
            }
            out
        };
        let (a, b) = (lanes(self), lanes(other));
        a.iter()
            .zip(&b)
            .fold(Choice::from(1), |equal, (x, y)| equal & x.ct_eq(y))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_equal_only_when_every_byte_is() {
        let key = SecretKey::random();
        let tag = key.tag(&[b"alice", b"s3cret"]);
        assert!(bool::from(tag.ct_eq(&tag.clone())));
        assert!(bool::from(tag.ct_eq(&key.tag(&[b"alice", b"s3cret"]))));
        // A difference in any one byte, in any of the four 64-bit lanes, is seen.
        for i in 0..32 {
            let mut other = tag.clone();
            other.0[i] ^= 0x01;
            assert!(!bool::from(tag.ct_eq(&other)), "byte {i}");
        }
        assert!(!bool::from(tag.ct_eq(&key.tag(&[b"alice", b"s3creT"]))));
        // Length-prefixed parts: moving bytes between parts changes the tag.
        assert!(!bool::from(tag.ct_eq(&key.tag(&[b"alices", b"3cret"]))));
    }
}
