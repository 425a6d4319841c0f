//! Stateless Digest nonces: any instance holding the same key verifies them.
//!
//! Squid and Traefik keep their nonces in one process's memory, so a second instance behind a
//! load balancer refuses the first one's nonces. Here a nonce carries what verifying it needs,
//! authenticated under a key:
//!
//! ```text
//! nonce = base64url( version=1 | issued (u64, ms since the Unix epoch) | instance (u64)
//!                    | counter (u64) | tag (16 bytes) )                      -- 41 bytes, 55 chars
//! tag   = HMAC-SHA-256(key, "tower-proxy-auth digest nonce" | realm | the 25 bytes before)
//! ```
//!
//! - Any instance with the key checks the tag (in constant time) and the age; an altered or
//!   forged nonce fails the tag.
//! - The counter (with the instance and the time) makes every nonce unique; it need not be
//!   secret, the tag is what a client cannot make.
//! - `instance` is 0 when the nonce's counts are kept in a replay store shared by every
//!   instance (any of them may take the nonce), and this process's random number when they are
//!   kept in its own memory: always with a local replay store, and with a shared one while it
//!   cannot be reached (see [`ReplayStore::is_available`](super::ReplayStore::is_available)).
//!   Another instance then tells "not mine" and answers `stale=true` instead of a false
//!   failure.
//! - The tag's first 16 bytes name the nonce in the replay store: no secret material is stored.
//! - A client sends one nonce with each request until it expires, so nonces this process
//!   issued or verified are remembered by their text in a bounded table (1,024 slots of 104
//!   bytes per realm: 104 KiB): the next request with the same text skips the base64 decoding and
//!   the HMAC. Only a verified text fills a slot, and only the identical text finds it.
//!   Every challenge issues nonces into the table, so a flood of requests without credentials
//!   can push real clients' nonces out: they then verify in full, as without the table (a cost
//!   in time only, never a different answer).
//!
//! The key is derived from the material given (bytes or a file) by HMAC-SHA-256 with its own
//! label, so the same file can key other things without the keys being related.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::secret::{random_bytes, RandomSourceError};

/// Default nonce lifetime: 300 s (Apache httpd's `AuthDigestNonceLifetime`). A nonce older than
/// this is answered with a fresh one and `stale=true`, which clients follow without asking the
/// user again (RFC 7616 §3.3).
pub const DEFAULT_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// How far in the future a nonce's issue time may be (clock differences between instances)
/// before it is refused as forged.
const MAX_CLOCK_SKEW_MS: u64 = 60_000;

const VERSION: u8 = 1;
const LEN: usize = 1 + 8 + 8 + 8 + 16;
const LABEL: &[u8] = b"tower-proxy-auth digest nonce";

/// The key that authenticates nonces. Instances that share it accept each other's nonces.
#[derive(Clone)]
pub struct NonceKey(Hmac<Sha256>);

/// Why a nonce key could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum NonceKeyError {
    /// The key file could not be read.
    Read {
        /// The file, as given.
        file: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The material is too short to be a secret.
    TooShort {
        /// Where it came from (a file name, or "bytes").
        from: String,
        /// Its length after trimming whitespace.
        len: usize,
    },
    /// The operating system's random source failed.
    Random(RandomSourceError),
}

impl fmt::Display for NonceKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { file, source } => write!(f, "{file}: cannot read the nonce key: {source}"),
            Self::TooShort { from, len } => write!(
                f,
                "{from}: the nonce key is {len} bytes; at least {MIN_KEY_BYTES} are needed \
                 (make one with `openssl rand -hex 32 > FILE`)"
            ),
            Self::Random(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for NonceKeyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } => Some(source),
            Self::Random(e) => Some(e),
            Self::TooShort { .. } => None,
        }
    }
}

/// The least key material accepted: 16 bytes.
pub const MIN_KEY_BYTES: usize = 16;

impl NonceKey {
    /// A key from the operating system's random source: nonces valid in this process only
    /// (the default).
    ///
    /// # Errors
    ///
    /// [`NonceKeyError::Random`].
    pub fn random() -> Result<Self, NonceKeyError> {
        let material: [u8; 32] = random_bytes().map_err(NonceKeyError::Random)?;
        Self::derive(&material)
    }

    /// A key from `material` (surrounding whitespace ignored), for instances that must accept
    /// each other's nonces.
    ///
    /// # Errors
    ///
    /// [`NonceKeyError::TooShort`] under [`MIN_KEY_BYTES`].
    pub fn from_bytes(material: &[u8]) -> Result<Self, NonceKeyError> {
        let material = material.trim_ascii();
        if material.len() < MIN_KEY_BYTES {
            return Err(NonceKeyError::TooShort {
                from: "bytes".to_owned(),
                len: material.len(),
            });
        }
        Self::derive(material)
    }

    /// A key from the contents of `path` (surrounding whitespace ignored; for example 64 hex
    /// digits from `openssl rand -hex 32`).
    ///
    /// # Errors
    ///
    /// [`NonceKeyError::Read`] naming the file, [`NonceKeyError::TooShort`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, NonceKeyError> {
        let path = path.as_ref();
        let contents =
            zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| NonceKeyError::Read {
                file: path.display().to_string(),
                source,
            })?);
        let material = contents.trim_ascii();
        if material.len() < MIN_KEY_BYTES {
            return Err(NonceKeyError::TooShort {
                from: path.display().to_string(),
                len: material.len(),
            });
        }
        Self::derive(material)
    }

    /// HMAC-SHA-256 keyed by HMAC(material, label): a key of its own for nonces.
    fn derive(material: &[u8]) -> Result<Self, NonceKeyError> {
        let mut outer = <Hmac<Sha256> as Mac>::new_from_slice(material).map_err(|_| {
            NonceKeyError::TooShort {
                from: "bytes".to_owned(),
                len: material.len(),
            }
        })?;
        outer.update(LABEL);
        let mut derived = zeroize::Zeroizing::new([0u8; 32]);
        derived.copy_from_slice(&outer.finalize().into_bytes());
        <Hmac<Sha256> as Mac>::new_from_slice(&derived[..])
            .map(Self)
            .map_err(|_| NonceKeyError::TooShort {
                from: "bytes".to_owned(),
                len: 0,
            })
    }

    fn tag(&self, realm: &[u8], body: &[u8]) -> [u8; 16] {
        let mut mac = self.0.clone();
        mac.update(&(realm.len() as u64).to_be_bytes());
        mac.update(realm);
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; 16];
        out.copy_from_slice(&full[..16]);
        out
    }
}

impl fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NonceKey(<redacted>)")
    }
}

/// A verified nonce: what names it in the replay store, and when it was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NonceId {
    /// The first 16 bytes of the nonce's tag.
    pub id: [u8; 16],
    /// When the nonce was issued, in milliseconds since the Unix epoch.
    pub issued_ms: u64,
}

/// Where the counts of a nonce are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tracked {
    /// In the replay store every instance shares.
    Shared,
    /// In this instance's own memory (the nonce names this instance).
    Here,
}

/// What checking a nonce found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    /// Not a nonce this key made: forged, altered, or from the far future.
    Invalid,
    /// Authentic and within its lifetime, its counts kept where the second field says.
    Fresh(NonceId, Tracked),
    /// Authentic but older than its lifetime: `stale=true` if the response is right.
    Expired(NonceId),
    /// Authentic, issued by another instance whose replay store this one cannot see: answered
    /// like an expired one.
    Foreign(NonceId),
}

/// Issues and checks the nonces of one realm.
pub(crate) struct Nonces {
    key: NonceKey,
    realm: Vec<u8>,
    lifetime: Duration,
    /// This process's number, never 0 (which names the shared store).
    instance: u64,
    /// Whether the replay store is shared by every instance (nonces naming instance 0 are
    /// taken then).
    shared: bool,
    counter: AtomicU64,
    verified: Verified,
}

/// What a nonce's text says once its tag has checked.
#[derive(Clone, Copy)]
struct Decoded {
    id: NonceId,
    instance: u64,
}

/// The length of a nonce's text: [`LEN`] bytes in unpadded base64url.
const TEXT_LEN: usize = (LEN * 4).div_ceil(3);

/// Slots of the table of recently verified nonces: 1,024 × 104 bytes (104 KiB) per realm.
const VERIFIED_SLOTS: usize = 1024;
const _: () = assert!(VERIFIED_SLOTS.is_power_of_two());

/// Nonces this process has issued or verified lately, by their text: a client sends the same
/// nonce with every request until it expires, and a hit skips the base64 decoding and the
/// HMAC (about a tenth of a Digest accept). A slot is filled only with a nonce whose tag
/// checked (or that this process issued), and found only by comparing the whole text, so an
/// entry never vouches for a nonce that was not verified; a client can at worst push another
/// nonce out of its slot, which then verifies in full. Each slot has its own lock.
struct Verified {
    slots: Box<[Mutex<Option<Known>>]>,
}

/// A verified nonce's text and what it says.
type Known = ([u8; TEXT_LEN], Decoded);

impl Verified {
    fn new() -> Self {
        Self {
            slots: (0..VERIFIED_SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The slot of a nonce's text: from characters of its tag (random for a real nonce).
    fn slot(&self, text: &[u8; TEXT_LEN]) -> &Mutex<Option<Known>> {
        let mut word = [0u8; 8];
        word.copy_from_slice(&text[TEXT_LEN - 10..TEXT_LEN - 2]);
        let mixed = u64::from_le_bytes(word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The product's top bits, as many as index the slots (a power of two).
        &self.slots[(mixed >> (64 - VERIFIED_SLOTS.trailing_zeros())) as usize % self.slots.len()]
    }

    fn get(&self, text: &[u8; TEXT_LEN]) -> Option<Decoded> {
        let slot = self
            .slot(text)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        slot.as_ref()
            .filter(|(known, _)| known == text)
            .map(|&(_, decoded)| decoded)
    }

    fn put(&self, text: &[u8; TEXT_LEN], decoded: Decoded) {
        *self
            .slot(text)
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some((*text, decoded));
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Nonces {
    /// Nonces for `realm` under `key`; `shared` when the replay store is shared by every
    /// instance.
    pub(crate) fn new(
        key: NonceKey,
        realm: &str,
        lifetime: Duration,
        shared: bool,
    ) -> Result<Self, RandomSourceError> {
        // Never 0, which names the shared store.
        let instance = u64::from_be_bytes(random_bytes()?) | 1;
        let start: [u8; 8] = random_bytes()?;
        Ok(Self {
            key,
            realm: realm.as_bytes().to_vec(),
            lifetime,
            instance,
            shared,
            counter: AtomicU64::new(u64::from_be_bytes(start)),
            verified: Verified::new(),
        })
    }

    /// A new nonce, as it is written in a challenge. `here`: its counts are to be kept in this
    /// instance's memory even though the replay store is shared (it cannot be reached now).
    pub(crate) fn issue(&self, here: bool) -> String {
        self.issue_at(now_ms(), here)
    }

    fn issue_at(&self, issued_ms: u64, here: bool) -> String {
        let instance = if self.shared && !here {
            0
        } else {
            self.instance
        };
        let mut bytes = [0u8; LEN];
        bytes[0] = VERSION;
        bytes[1..9].copy_from_slice(&issued_ms.to_be_bytes());
        bytes[9..17].copy_from_slice(&instance.to_be_bytes());
        bytes[17..25].copy_from_slice(&self.counter.fetch_add(1, Relaxed).to_be_bytes());
        let tag = self.key.tag(&self.realm, &bytes[..25]);
        bytes[25..].copy_from_slice(&tag);
        let text = URL_SAFE_NO_PAD.encode(bytes);
        if let Ok(known) = <&[u8; TEXT_LEN]>::try_from(text.as_bytes()) {
            let id = NonceId { id: tag, issued_ms };
            self.verified.put(known, Decoded { id, instance });
        }
        text
    }

    /// Checks a nonce a client sent back.
    pub(crate) fn check(&self, nonce: &[u8]) -> NonceCheck {
        self.check_at(nonce, now_ms())
    }

    fn check_at(&self, nonce: &[u8], now_ms: u64) -> NonceCheck {
        let Ok(text) = <&[u8; TEXT_LEN]>::try_from(nonce) else {
            return NonceCheck::Invalid;
        };
        let decoded = match self.verified.get(text) {
            Some(decoded) => decoded,
            None => match self.verify(text) {
                Some(decoded) => {
                    self.verified.put(text, decoded);
                    decoded
                }
                None => return NonceCheck::Invalid,
            },
        };
        self.classify(decoded, now_ms)
    }

    /// What a verified nonce's issue time and instance make of it now.
    fn classify(&self, decoded: Decoded, now_ms: u64) -> NonceCheck {
        let Decoded {
            id: nonce,
            instance,
        } = decoded;
        let issued_ms = nonce.issued_ms;
        if issued_ms > now_ms.saturating_add(MAX_CLOCK_SKEW_MS) {
            return NonceCheck::Invalid;
        }
        let lifetime_ms = u64::try_from(self.lifetime.as_millis()).unwrap_or(u64::MAX);
        if now_ms.saturating_sub(issued_ms) > lifetime_ms {
            NonceCheck::Expired(nonce)
        } else if instance == self.instance {
            NonceCheck::Fresh(nonce, Tracked::Here)
        } else if instance == 0 && self.shared {
            NonceCheck::Fresh(nonce, Tracked::Shared)
        } else {
            NonceCheck::Foreign(nonce)
        }
    }

    /// Decodes a nonce's text and checks its tag (in constant time): what it says, or `None`
    /// when this key did not make it.
    fn verify(&self, text: &[u8; TEXT_LEN]) -> Option<Decoded> {
        let mut bytes = [0u8; LEN + 3];
        let Ok(LEN) = URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) else {
            return None;
        };
        let bytes = &bytes[..LEN];
        if bytes[0] != VERSION {
            return None;
        }
        let tag = self.key.tag(&self.realm, &bytes[..25]);
        if !bool::from(tag.ct_eq(&bytes[25..])) {
            return None;
        }
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[1..9]);
        let issued_ms = u64::from_be_bytes(word);
        word.copy_from_slice(&bytes[9..17]);
        let instance = u64::from_be_bytes(word);
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[25..]);
        Some(Decoded {
            id: NonceId { id, issued_ms },
            instance,
        })
    }

    /// How long a nonce is valid.
    pub(crate) fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARED: bool = true;

    fn nonces(key: &NonceKey, shared: bool) -> Nonces {
        Nonces::new(key.clone(), "proxy", Duration::from_secs(300), shared).unwrap()
    }

    #[test]
    fn issued_nonces_check_and_any_change_fails() {
        let key = NonceKey::random().unwrap();
        let n = nonces(&key, SHARED);
        let nonce = n.issue_at(1_000_000, false);
        assert_eq!(nonce.len(), 55);
        let NonceCheck::Fresh(id, Tracked::Shared) = n.check_at(nonce.as_bytes(), 1_000_500) else {
            panic!("fresh")
        };
        assert_eq!(id.issued_ms, 1_000_000);
        // Every nonce is unique.
        assert_ne!(n.issue_at(1_000_000, false), nonce);
        // Any changed character fails the tag.
        for i in 0..nonce.len() {
            let mut altered = nonce.clone().into_bytes();
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            assert_eq!(
                n.check_at(&altered, 1_000_500),
                NonceCheck::Invalid,
                "char {i}"
            );
        }
        for junk in [&b""[..], b"x", b"!!!!", &nonce.as_bytes()[..54], b"AAAA"] {
            assert_eq!(n.check_at(junk, 1_000_500), NonceCheck::Invalid);
        }
    }

    #[test]
    fn the_table_of_verified_nonces_only_ever_vouches_for_the_exact_text() {
        let key = NonceKey::random().unwrap();
        let n = nonces(&key, SHARED);
        // More nonces than slots: some push others out, and every one still checks (from the
        // table or verified again), with what it says intact.
        let issued: Vec<String> = (0..3 * VERIFIED_SLOTS as u64)
            .map(|i| n.issue_at(1_000_000 + i, false))
            .collect();
        for (i, nonce) in issued.iter().enumerate() {
            let NonceCheck::Fresh(id, Tracked::Shared) = n.check_at(nonce.as_bytes(), 1_100_000)
            else {
                panic!("nonce {i}")
            };
            assert_eq!(id.issued_ms, 1_000_000 + i as u64);
        }
        // A text that shares the slot of a verified nonce (its tag characters) but differs
        // elsewhere is not vouched for: it verifies in full, and fails.
        let known = issued.last().unwrap();
        assert!(n
            .verified
            .get(known.as_bytes().try_into().unwrap())
            .is_some());
        let mut forged = known.clone().into_bytes();
        forged[3] = if forged[3] == b'A' { b'B' } else { b'A' };
        assert_eq!(n.check_at(&forged, 1_100_000), NonceCheck::Invalid);
        assert!(n
            .verified
            .get(forged.as_slice().try_into().unwrap())
            .is_none());
        // A nonce that verified is in the table for the next request.
        let other = nonces(&key, SHARED);
        assert!(other
            .verified
            .get(known.as_bytes().try_into().unwrap())
            .is_none());
        assert!(matches!(
            other.check_at(known.as_bytes(), 1_100_000),
            NonceCheck::Fresh(..)
        ));
        assert!(other
            .verified
            .get(known.as_bytes().try_into().unwrap())
            .is_some());
    }

    #[test]
    fn threads_sharing_the_table_all_get_the_right_answers() {
        let key = NonceKey::random().unwrap();
        let n = nonces(&key, SHARED);
        let issued: Vec<String> = (0..2_000)
            .map(|i| n.issue_at(1_000_000 + i, false))
            .collect();
        let other = nonces(&NonceKey::random().unwrap(), SHARED);
        let foreign: Vec<String> = (0..200)
            .map(|i| other.issue_at(1_000_000 + i, false))
            .collect();
        std::thread::scope(|scope| {
            for t in 0..8 {
                let (n, issued, foreign) = (&n, &issued, &foreign);
                scope.spawn(move || {
                    for round in 0..3 {
                        for (i, nonce) in issued.iter().enumerate().skip(t * 7 + round) {
                            let check = n.check_at(nonce.as_bytes(), 1_100_000);
                            assert!(
                                matches!(check, NonceCheck::Fresh(id, _) if id.issued_ms == 1_000_000 + i as u64),
                                "{i}: {check:?}"
                            );
                        }
                        for nonce in foreign {
                            assert_eq!(n.check_at(nonce.as_bytes(), 1_100_000), NonceCheck::Invalid);
                        }
                    }
                });
            }
        });
    }

    /// The answer of a full check, without the table: decode, verify the tag, classify.
    fn full_check(n: &Nonces, text: &[u8], now_ms: u64) -> NonceCheck {
        <&[u8; TEXT_LEN]>::try_from(text)
            .ok()
            .and_then(|t| n.verify(t))
            .map_or(NonceCheck::Invalid, |d| n.classify(d, now_ms))
    }

    #[test]
    fn the_table_answers_as_a_full_check_would() {
        let key = NonceKey::random().unwrap();
        let n = nonces(&key, SHARED);
        // A body of another version with a valid tag.
        let mut body = [0u8; LEN];
        body[0] = VERSION + 1;
        let tag = n.key.tag(&n.realm, &body[..25]);
        body[25..].copy_from_slice(&tag);
        let base = [
            n.issue_at(1_000_000, false).into_bytes(),
            n.issue_at(1_000_000, true).into_bytes(),
            n.issue_at(u64::MAX, false).into_bytes(),
            nonces(&NonceKey::random().unwrap(), SHARED)
                .issue_at(1_000_000, false)
                .into_bytes(),
            URL_SAFE_NO_PAD.encode(body).into_bytes(),
        ];
        let mut texts = base.to_vec();
        for t in &base {
            for i in 0..t.len() {
                for b in [
                    0, b'A', b'B', b'z', b'-', b'_', b'+', b'/', b'=', 0x7f, 0x80, 0xff,
                ] {
                    let mut m = t.clone();
                    m[i] = b;
                    texts.push(m);
                }
            }
            texts.extend((0..t.len()).map(|k| t[..k].to_vec()));
            for tail in [&b"="[..], b"A", b"\xff"] {
                texts.push([t.as_slice(), tail].concat());
            }
        }
        // Twice: the second round answers from the table what it holds.
        for _ in 0..2 {
            for t in &texts {
                for now in [
                    0,
                    939_000,
                    940_001,
                    1_000_000,
                    1_300_000,
                    1_300_001,
                    u64::MAX,
                ] {
                    assert_eq!(
                        n.check_at(t, now),
                        full_check(&n, t, now),
                        "{:?} at {now}",
                        String::from_utf8_lossy(t)
                    );
                }
            }
        }
    }

    #[test]
    fn nonces_sharing_a_slot_with_forgeries_and_a_poisoned_lock() {
        let key = NonceKey::random().unwrap();
        let n = nonces(&key, SHARED);
        let slot_of = |text: &[u8]| {
            let text: &[u8; TEXT_LEN] = text.try_into().unwrap();
            let at = n.verified.slot(text) as *const _ as usize;
            (at - n.verified.slots.as_ptr() as usize) / std::mem::size_of_val(&n.verified.slots[0])
        };
        // Two real nonces in one slot.
        let mut by_slot = std::collections::HashMap::<usize, String>::new();
        let (a, b, slot) = loop {
            let t = n.issue_at(1_000_000, false);
            let s = slot_of(t.as_bytes());
            if let Some(first) = by_slot.insert(s, t.clone()) {
                break (first, t, s);
            }
        };
        // Forgeries in the same slot: `a` changed outside the characters the slot is read from.
        let forged: Vec<Vec<u8>> = (0..TEXT_LEN - 10)
            .chain(TEXT_LEN - 2..TEXT_LEN)
            .map(|i| {
                let mut m = a.clone().into_bytes();
                m[i] = if m[i] == b'A' { b'B' } else { b'A' };
                assert_eq!(slot_of(&m), slot);
                m
            })
            .collect();
        // A panic while the slot's lock is held poisons it; the table goes on answering.
        let _ = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let _held = n.verified.slots[slot].lock();
                    panic!("poisons the slot's lock");
                })
                .join()
        });
        assert!(n.verified.slots[slot].is_poisoned());
        std::thread::scope(|scope| {
            for _ in 0..4 {
                scope.spawn(|| {
                    for _ in 0..100 {
                        for t in [&a, &b] {
                            let fresh = n.check_at(t.as_bytes(), 1_000_001);
                            assert!(matches!(fresh, NonceCheck::Fresh(..)), "{fresh:?}");
                            let late = n.check_at(t.as_bytes(), 1_400_000);
                            assert!(matches!(late, NonceCheck::Expired(_)), "{late:?}");
                        }
                        for f in &forged {
                            assert_eq!(n.check_at(f, 1_000_001), NonceCheck::Invalid);
                        }
                    }
                });
            }
        });
    }

    #[test]
    fn lifetime_other_keys_realms_and_instances() {
        let key = NonceKey::from_bytes(b"0123456789abcdef0123456789abcdef").unwrap();
        let shared = nonces(&key, SHARED);
        let nonce = shared.issue_at(1_000_000, false);
        assert!(matches!(
            shared.check_at(nonce.as_bytes(), 1_000_000 + 301_000),
            NonceCheck::Expired(_)
        ));
        // From the far future: not a clock difference, a forgery.
        assert_eq!(
            shared.check_at(nonce.as_bytes(), 1_000_000 - 61_000),
            NonceCheck::Invalid
        );
        // The same key in another process accepts it; another key or realm does not.
        let same = NonceKey::from_bytes(b"  0123456789abcdef0123456789abcdef\n").unwrap();
        assert!(matches!(
            nonces(&same, SHARED).check_at(nonce.as_bytes(), 1_000_001),
            NonceCheck::Fresh(..)
        ));
        let other = NonceKey::from_bytes(b"another key, another instance set").unwrap();
        assert_eq!(
            nonces(&other, SHARED).check_at(nonce.as_bytes(), 1_000_001),
            NonceCheck::Invalid
        );
        let other_realm =
            Nonces::new(key.clone(), "elsewhere", Duration::from_secs(300), SHARED).unwrap();
        assert_eq!(
            other_realm.check_at(nonce.as_bytes(), 1_000_001),
            NonceCheck::Invalid
        );
        // Instances with local replay stores tell their own nonces from others'.
        let a = nonces(&key, !SHARED);
        let b = nonces(&key, !SHARED);
        let from_a = a.issue_at(1_000_000, false);
        assert!(matches!(
            a.check_at(from_a.as_bytes(), 1_000_001),
            NonceCheck::Fresh(_, Tracked::Here)
        ));
        assert!(matches!(
            b.check_at(from_a.as_bytes(), 1_000_001),
            NonceCheck::Foreign(_)
        ));
        // A local instance never takes a nonce meant for a shared store (a fleet that mixes
        // stores would let a replay through the local one).
        assert!(matches!(
            a.check_at(nonce.as_bytes(), 1_000_001),
            NonceCheck::Foreign(_)
        ));
    }

    #[test]
    fn with_a_shared_store_out_of_reach_nonces_name_their_instance() {
        let key = NonceKey::random().unwrap();
        let (a, b) = (nonces(&key, SHARED), nonces(&key, SHARED));
        let shared = a.issue_at(1_000_000, false);
        let here = a.issue_at(1_000_000, true);
        assert!(matches!(
            b.check_at(shared.as_bytes(), 1_000_001),
            NonceCheck::Fresh(_, Tracked::Shared)
        ));
        assert!(matches!(
            a.check_at(here.as_bytes(), 1_000_001),
            NonceCheck::Fresh(_, Tracked::Here)
        ));
        assert!(matches!(
            b.check_at(here.as_bytes(), 1_000_001),
            NonceCheck::Foreign(_)
        ));
        // With a local store, `here` changes nothing: every nonce names the instance.
        let local = nonces(&key, !SHARED);
        let n = local.issue_at(1_000_000, false);
        assert!(matches!(
            local.check_at(n.as_bytes(), 1_000_001),
            NonceCheck::Fresh(_, Tracked::Here)
        ));
    }

    #[test]
    fn key_material_rules() {
        assert!(matches!(
            NonceKey::from_bytes(b"short"),
            Err(NonceKeyError::TooShort { len: 5, .. })
        ));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "0123456789abcdef0123456789abcdef\n").unwrap();
        assert!(NonceKey::from_file(&path).is_ok());
        let missing = NonceKey::from_file(dir.path().join("missing")).unwrap_err();
        assert!(
            missing
                .to_string()
                .contains("missing: cannot read the nonce key"),
            "{missing}"
        );
        std::fs::write(&path, "too short\n").unwrap();
        let short = NonceKey::from_file(&path).unwrap_err().to_string();
        assert!(
            short.contains("is 9 bytes") && short.contains("openssl rand"),
            "{short}"
        );
    }
}
