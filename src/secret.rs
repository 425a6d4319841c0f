//! Keyed tags for comparing secrets in constant time, and keys from the OS random source.
//!
//! Passwords (and credentials) of different lengths cannot be compared in constant time
//! directly, and should not sit in memory as they are, so both sides are first reduced to a
//! fixed-size tag under a key drawn at random per table; the tags are then compared with
//! [`subtle`]. The tag function is SipHash-2-4 with a 128-bit output (Aumasson and Bernstein,
//! "SipHash: a fast short-input PRF", 2012), from the `siphasher` crate: a keyed
//! pseudo-random function made for short inputs, about ten times faster here than
//! HMAC-SHA-256 (12 ns against 118 ns for a short password), which matters because a tag is
//! computed on every request. Tags never leave the process; a wrong password matches a stored
//! tag with probability 2^-128, and without the key an attacker cannot compute any tag.
//!
//! Keys come from the operating system's random source (`getrandom`). When that fails, making
//! the key fails loudly ([`RandomSourceError`]); no key is ever derived from the clock.

use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasherDefault;

use siphasher::sip128::{Hasher128, SipHasher13, SipHasher24};
use subtle::{Choice, ConstantTimeEq};

/// The operating system's random source failed, so no secret key could be made.
///
/// Fallible constructors return it (for example
/// [`HtpasswdBuilder::open`](crate::HtpasswdBuilder::open) as an `HtpasswdError`);
/// infallible ones ([`StaticUsers::new`](crate::StaticUsers::new)) panic with it, as
/// documented there. It happens on a system whose entropy source is broken or unavailable
/// (an early-boot sandbox without `getrandom(2)`), never under load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomSourceError(getrandom::Error);

impl fmt::Display for RandomSourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the operating system's random source failed: {}", self.0)
    }
}

impl std::error::Error for RandomSourceError {}

/// `N` random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], RandomSourceError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(RandomSourceError)?;
    Ok(bytes)
}

/// A SipHash-128 key: SipHash-2-4 unless named otherwise.
#[derive(Clone)]
pub(crate) struct SecretKey<H: Keyed = SipHasher24>(H);

/// A keyed 128-bit hash a [`SecretKey`] can be made of: SipHash-2-4 (the default, for tags
/// that stand for secrets: password compares, caches of answers) or SipHash-1-3 (Rust's own
/// `HashMap` hash, for tags that only index the throttle's tables, where a collision can only
/// make two keys share a count, and the hash is on every request's path).
pub(crate) trait Keyed: Hasher128 + std::hash::Hasher + Copy {
    fn keyed(key: &[u8; 16]) -> Self;
}

impl Keyed for SipHasher24 {
    fn keyed(key: &[u8; 16]) -> Self {
        Self::new_with_key(key)
    }
}

impl Keyed for SipHasher13 {
    fn keyed(key: &[u8; 16]) -> Self {
        Self::new_with_key(key)
    }
}

/// The throttle's key: SipHash-1-3 (see [`Keyed`]).
pub(crate) type CountingKey = SecretKey<SipHasher13>;

/// Constant-time equality of two byte strings (their lengths are not secret): the differences
/// OR-ed together eight bytes at a time, then one `subtle` comparison with zero, so a 64-digit
/// hex value costs 8 steps and one optimisation barrier, not 64.
pub(crate) fn ct_eq_bytes(a: &[u8], b: &[u8]) -> Choice {
    if a.len() != b.len() {
        return Choice::from(0);
    }
    let (a_words, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b_words, b_rest) = b.split_at(a_words.len());
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]));
    let mut differ = a_words
        .chunks_exact(8)
        .zip(b_words.chunks_exact(8))
        .fold(0u64, |differ, (x, y)| differ | (word(x) ^ word(y)));
    differ |= a_rest
        .iter()
        .zip(b_rest)
        .fold(0u64, |differ, (&x, &y)| differ | u64::from(x ^ y));
    differ.ct_eq(&0)
}

/// This process's own key, random, made on first use: the key of the one tag of a request's
/// Basic credentials that several parts use (`StaticUsers`' lookup, the failure throttle's
/// good-client set), so that the credentials are hashed once per request, not once per part.
/// A failure of the random source is remembered: every later call fails the same way.
pub(crate) fn process_key() -> Result<&'static SecretKey, RandomSourceError> {
    static KEY: std::sync::OnceLock<Result<SecretKey, RandomSourceError>> =
        std::sync::OnceLock::new();
    KEY.get_or_init(SecretKey::random).as_ref().map_err(|e| *e)
}

/// A 16-byte tag; equality is constant-time.
#[derive(Clone)]
pub(crate) struct Tag([u64; 2]);

impl<H: Keyed> SecretKey<H> {
    /// A key from the operating system's random source.
    pub(crate) fn random() -> Result<Self, RandomSourceError> {
        let key: [u8; 16] = random_bytes()?;
        Ok(Self(H::keyed(&key)))
    }

    /// A key derived from shared `material` (at least 16 bytes) and a `label` naming its use,
    /// so that instances holding the same material make the same tags, and one material can
    /// key several things without the keys being related. `None` for shorter material.
    pub(crate) fn derived(material: &[u8], label: &[u8]) -> Option<Self> {
        use hmac::{Hmac, Mac};
        if material.len() < 16 {
            return None;
        }
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(material).ok()?;
        mac.update(label);
        let bytes = mac.finalize().into_bytes();
        let mut key = [0u8; 16];
        key.copy_from_slice(&bytes[..16]);
        let hasher = H::keyed(&key);
        zeroize::Zeroize::zeroize(&mut key);
        Some(Self(hasher))
    }

    /// The tag of Basic-style credentials `user ":" password`, given as one slice and the
    /// user's length (which makes the split unambiguous, whatever the user holds). One
    /// contiguous write: about half the cost of hashing the parts separately.
    pub(crate) fn tag_credentials(&self, user_len: usize, joined: &[u8]) -> Tag {
        let mut hasher = self.0;
        hasher.write_u64(user_len as u64);
        hasher.write(joined);
        let h = hasher.finish128();
        Tag([h.h1, h.h2])
    }

    /// The tag of the concatenation of `parts`, each prefixed with its length so that
    /// `("ab", "c")` and `("a", "bc")` differ.
    pub(crate) fn tag(&self, parts: &[&[u8]]) -> Tag {
        let mut hasher = self.0;
        for part in parts {
            hasher.write_u64(part.len() as u64);
            hasher.write(part);
        }
        let h = hasher.finish128();
        Tag([h.h1, h.h2])
    }

    /// [`tag_credentials`](Self::tag_credentials) under a context of two words (a cache's
    /// epoch and a validator's answer version), so that the same credentials in another
    /// context have another tag.
    ///
    /// `request_context`: what else of the request the answer depends on
    /// ([`Validator::answer_context`](crate::validator::Validator::answer_context)); its length is
    /// hashed too, so that no two (context, credentials) pairs share a tag.
    pub(crate) fn tag_credentials_in(
        &self,
        context: [u64; 2],
        request_context: &[u8],
        user_len: usize,
        joined: &[u8],
    ) -> Tag {
        let mut head = [0u8; 32];
        head[..8].copy_from_slice(&context[0].to_le_bytes());
        head[8..16].copy_from_slice(&context[1].to_le_bytes());
        head[16..24].copy_from_slice(&(request_context.len() as u64).to_le_bytes());
        head[24..].copy_from_slice(&(user_len as u64).to_le_bytes());
        let mut hasher = self.0;
        hasher.write(&head);
        hasher.write(request_context);
        hasher.write(joined);
        let h = hasher.finish128();
        Tag([h.h1, h.h2])
    }
}

impl<H: Keyed> fmt::Debug for SecretKey<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

impl Tag {
    pub(crate) fn ct_eq(&self, other: &Tag) -> Choice {
        self.0[0].ct_eq(&other.0[0]) & self.0[1].ct_eq(&other.0[1])
    }
}

impl Tag {
    /// The tag from its two 64-bit halves (as [`halves`](Self::halves) gives them).
    pub(crate) fn from_halves(halves: [u64; 2]) -> Self {
        Self(halves)
    }

    /// The tag's two 64-bit halves.
    pub(crate) fn halves(&self) -> [u64; 2] {
        self.0
    }

    /// The tag as one number, for tables indexed by it.
    pub(crate) fn to_u128(&self) -> u128 {
        (u128::from(self.0[0]) << 64) | u128::from(self.0[1])
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Tag(<redacted>)")
    }
}

impl std::hash::Hash for Tag {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
    }
}

/// A hash map keyed by tags. A tag is already the output of a keyed PRF, uniformly
/// distributed and unknown to clients, so its first 64 bits serve as the hash as they are: no
/// second hash per lookup, and no way to aim for a bucket.
pub(crate) type TagMap<V> = HashMap<Tag, V, BuildHasherDefault<TagHasher>>;

/// The hasher of [`TagMap`]: the tag's first 64 bits.
#[derive(Default)]
pub(crate) struct TagHasher(u64);

impl std::hash::Hasher for TagHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is called for a `Tag`; anything else is folded in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
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
    fn ct_eq_bytes_compares_every_byte_and_the_length() {
        for len in [0usize, 1, 7, 8, 9, 32, 63, 64, 65] {
            let a: Vec<u8> = (0..len as u8).collect();
            assert!(bool::from(ct_eq_bytes(&a, &a.clone())), "{len}");
            for i in 0..len {
                let mut b = a.clone();
                b[i] ^= 0x20;
                assert!(!bool::from(ct_eq_bytes(&a, &b)), "{len} at {i}");
            }
            let mut longer = a.clone();
            longer.push(0);
            assert!(!bool::from(ct_eq_bytes(&a, &longer)), "{len} vs longer");
        }
    }

    #[test]
    fn tags_are_equal_only_when_every_bit_is() {
        let key: SecretKey = SecretKey::random().unwrap();
        let tag = key.tag_credentials(5, b"alice:s3cret");
        assert!(bool::from(tag.ct_eq(&tag.clone())));
        assert!(bool::from(
            tag.ct_eq(&key.tag_credentials(5, b"alice:s3cret"))
        ));
        // A difference in any one bit of either lane is seen.
        for lane in 0..2 {
            for bit in 0..64 {
                let mut other = tag.clone();
                other.0[lane] ^= 1 << bit;
                assert!(!bool::from(tag.ct_eq(&other)), "lane {lane} bit {bit}");
            }
        }
        assert!(!bool::from(
            tag.ct_eq(&key.tag_credentials(5, b"alice:s3creT"))
        ));
        // Another key, another tag.
        let other: SecretKey = SecretKey::random().unwrap();
        assert!(!bool::from(
            tag.ct_eq(&other.tag_credentials(5, b"alice:s3cret"))
        ));
        // Another context (a cache's epoch, a validator's answer version), another tag.
        let in_context = key.tag_credentials_in([0, 7], b"", 5, b"alice:s3cret");
        assert!(bool::from(in_context.ct_eq(&key.tag_credentials_in(
            [0, 7],
            b"",
            5,
            b"alice:s3cret"
        ))));
        for context in [[1, 7], [0, 8], [7, 0]] {
            assert!(!bool::from(in_context.ct_eq(&key.tag_credentials_in(
                context,
                b"",
                5,
                b"alice:s3cret"
            ))));
        }
        // Another request context (a forward-auth target), another tag; its length is hashed,
        // so bytes moved between it and the credentials do not meet either.
        let denied = key.tag_credentials_in([0, 7], b"GET denied", 5, b"alice:s3cret");
        assert!(!bool::from(in_context.ct_eq(&denied)));
        assert!(!bool::from(denied.ct_eq(&key.tag_credentials_in(
            [0, 7],
            b"GET allowed",
            5,
            b"alice:s3cret"
        ))));
        assert!(!bool::from(
            key.tag_credentials_in([0, 7], b"a", 5, b"lice:s3cret")
                .ct_eq(&key.tag_credentials_in([0, 7], b"", 5, b"alice:s3cret"))
        ));
        assert!(!format!("{key:?}{tag:?}").contains(char::is_numeric));
        let pair = key.tag_credentials(5, b"alice:s3cret");
        assert!(bool::from(
            pair.ct_eq(&key.tag_credentials(5, b"alice:s3cret"))
        ));
        // The same bytes split elsewhere: another user with another password.
        assert!(!bool::from(
            pair.ct_eq(&key.tag_credentials(6, b"alice:s3cret"))
        ));
        assert!(!bool::from(
            pair.ct_eq(&key.tag_credentials(5, b"alice:s3cre"))
        ));
    }
}
