//! Digest's algorithms (RFC 7616 §3.2, §3.4.2): the hash `H`, and the `-sess` variants.
//!
//! | token | `H` |
//! |---|---|
//! | `MD5`, `MD5-sess` | MD5 (RFC 1321), for the clients that know nothing else |
//! | `SHA-256`, `SHA-256-sess` | SHA-256 (FIPS 180-4) |
//! | `SHA-512-256`, `SHA-512-256-sess` | SHA-512/256 (FIPS 180-4 §6.7: its own initial values, not a truncated SHA-512) |
//!
//! Every value is written in lowercase hex (RFC 7616 §3.4.1: "the hexadecimal representation").

use std::fmt;

use md5::Md5;
use sha2::{Sha256, Sha512_256};

/// One Digest algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5`.
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`.
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

/// The hash behind an algorithm, without its `-sess` form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum HashFunction {
    /// MD5.
    Md5,
    /// SHA-256.
    Sha256,
    /// SHA-512/256.
    Sha512_256,
}

impl Algorithm {
    /// Every algorithm, strongest hash first, the plain form before its `-sess` form.
    pub const ALL: [Algorithm; 6] = [
        Self::Sha256,
        Self::Sha256Sess,
        Self::Sha512_256,
        Self::Sha512_256Sess,
        Self::Md5,
        Self::Md5Sess,
    ];

    /// The token as written in `algorithm=` (RFC 7616 §3.3).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// The algorithm named by `token`, compared case-insensitively (RFC 7616 §3.3 tokens are
    /// case-insensitive, and clients write `md5` as well as `MD5`).
    pub fn from_token(token: &[u8]) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str().as_bytes().eq_ignore_ascii_case(token))
    }

    /// The hash function.
    pub fn hash(self) -> HashFunction {
        match self {
            Self::Md5 | Self::Md5Sess => HashFunction::Md5,
            Self::Sha256 | Self::Sha256Sess => HashFunction::Sha256,
            Self::Sha512_256 | Self::Sha512_256Sess => HashFunction::Sha512_256,
        }
    }

    /// Whether this is a `-sess` form (RFC 7616 §3.4.2: HA1 mixes in the nonce and cnonce).
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess
        )
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = UnknownAlgorithm;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_token(s.as_bytes()).ok_or(UnknownAlgorithm)
    }
}

/// A name that is not one of the [`Algorithm`] tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownAlgorithm;

impl fmt::Display for UnknownAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "unknown Digest algorithm (expected MD5, MD5-sess, SHA-256, SHA-256-sess, \
             SHA-512-256 or SHA-512-256-sess)",
        )
    }
}

impl std::error::Error for UnknownAlgorithm {}

impl HashFunction {
    /// The hex length of a value: 32 for MD5, 64 for the others.
    pub fn hex_len(self) -> usize {
        match self {
            Self::Md5 => 32,
            Self::Sha256 | Self::Sha512_256 => 64,
        }
    }

    /// `H(parts joined by ":")` in lowercase hex (RFC 7616 §3.4.1's `H(a ":" b ...)`), as a
    /// secret: zeroized when dropped (an HA1 is a password equivalent).
    pub fn hex(self, parts: &[&[u8]]) -> Hex {
        match self {
            Self::Md5 => secret_hex::<Md5>(parts),
            Self::Sha256 => secret_hex::<Sha256>(parts),
            Self::Sha512_256 => secret_hex::<Sha512_256>(parts),
        }
    }
}

/// `H(parts joined by ":")` with `D`, in hex; the raw digest is zeroized, and the hex is when
/// it is dropped.
fn secret_hex<D: sha2::Digest>(parts: &[&[u8]]) -> Hex {
    let mut d = D::new();
    for (n, part) in parts.iter().enumerate() {
        if n > 0 {
            d.update(b":");
        }
        d.update(part);
    }
    let mut raw = d.finalize();
    let hex = Hex::of(&raw);
    zeroize::Zeroize::zeroize(raw.as_mut_slice());
    hex
}

/// Writes `raw` in lowercase hex into `out`, which holds twice its length (at most
/// [`Hex::MAX_LEN`] digits are written). Each digit is computed without a branch or a table
/// (`n + '0'`, plus `'a' - '0' - 10` when `n > 9`), the same steps for every byte, so the
/// compiler does 16 or 32 bytes per step with vector instructions.
fn write_hex(raw: &[u8], out: &mut [u8; Hex::MAX_LEN]) -> u8 {
    /// The digit of a nibble (`n < 16`).
    fn digit(n: u8) -> u8 {
        // `9 - n` wraps below zero exactly when `n > 9`; its top bit then selects the letters.
        let letter = (9u8.wrapping_sub(n) >> 7) * (b'a' - b'0' - 10);
        n + b'0' + letter
    }
    let raw = &raw[..raw.len().min(Hex::MAX_LEN / 2)];
    for (pair, &b) in out.chunks_exact_mut(2).zip(raw) {
        pair[0] = digit(b >> 4);
        pair[1] = digit(b & 0x0f);
    }
    (raw.len() * 2) as u8
}

/// A lowercase hex digest that is not secret (`HA2`, a `response`, an `rspauth`): held inline,
/// not zeroized.
#[derive(Clone, Copy)]
pub(crate) struct Digits {
    digits: [u8; Hex::MAX_LEN],
    len: u8,
}

impl Digits {
    /// The hex of a raw digest (at most [`Hex::MAX_LEN`] digits).
    pub(crate) fn of(raw: &[u8]) -> Self {
        let mut digits = [0; Hex::MAX_LEN];
        let len = write_hex(raw, &mut digits);
        Self { digits, len }
    }

    /// The hex digits.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }
}

/// A lowercase hex digest of at most [`Hex::MAX_LEN`] digits (64: SHA-256 and SHA-512/256;
/// MD5 has 32), held inline (no allocation on the request path) and zeroized when dropped (an
/// HA1 is a password equivalent). Equality is constant-time.
#[derive(Clone)]
pub struct Hex {
    digits: zeroize::Zeroizing<[u8; Hex::MAX_LEN]>,
    len: u8,
}

impl Hex {
    /// The longest hex value held: 64 digits.
    pub const MAX_LEN: usize = 64;

    fn of(raw: &[u8]) -> Self {
        let mut digits = zeroize::Zeroizing::new([0u8; Self::MAX_LEN]);
        let len = write_hex(raw, &mut digits);
        Self { digits, len }
    }

    /// Takes a lowercase or uppercase hex value (an HA1 from a file), normalised to
    /// lowercase; `None` unless it is 1 to [`MAX_LEN`](Self::MAX_LEN) hex digits.
    pub fn parse(text: &[u8]) -> Option<Self> {
        if text.is_empty() || text.len() > Self::MAX_LEN || !crate::syntax::is_hex(text) {
            return None;
        }
        let mut digits = zeroize::Zeroizing::new([0u8; Self::MAX_LEN]);
        digits[..text.len()].copy_from_slice(text);
        digits[..text.len()].make_ascii_lowercase();
        Some(Self {
            digits,
            len: text.len() as u8,
        })
    }

    /// The hex digits.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }
}

impl PartialEq for Hex {
    fn eq(&self, other: &Self) -> bool {
        use subtle::ConstantTimeEq as _;
        self.as_bytes().ct_eq(other.as_bytes()).into()
    }
}

impl Eq for Hex {}

impl fmt::Debug for Hex {
    /// The length only: an HA1 is a password equivalent.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hex(<{} digits>)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_case_insensitively() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_token(a.as_str().as_bytes()), Some(a));
            assert_eq!(
                Algorithm::from_token(a.as_str().to_ascii_lowercase().as_bytes()),
                Some(a)
            );
        }
        assert_eq!(Algorithm::from_token(b"SHA-512"), None);
        assert_eq!(Algorithm::from_token(b"SHA"), None);
    }

    #[test]
    fn hashes_match_their_standards() {
        // RFC 1321 and FIPS 180-4 test vectors for "abc".
        assert_eq!(
            HashFunction::Md5.hex(&[b"abc"]).as_bytes(),
            b"900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            HashFunction::Sha256.hex(&[b"abc"]).as_bytes(),
            b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        // SHA-512/256 has its own initial values: not the first half of SHA-512("abc")
        // (ddaf35a193617aba...).
        assert_eq!(
            HashFunction::Sha512_256.hex(&[b"abc"]).as_bytes(),
            b"53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
        );
        // Parts are joined with ':'.
        assert_eq!(
            HashFunction::Md5.hex(&[b"a", b"b"]).as_bytes(),
            HashFunction::Md5.hex(&[b"a:b"]).as_bytes()
        );
        assert_eq!(
            Hex::parse(b"ABCdef01").map(|h| h.as_bytes().to_vec()),
            Some(b"abcdef01".to_vec())
        );
        assert!(Hex::parse(b"xyz").is_none());
        assert!(!format!("{:?}", HashFunction::Md5.hex(&[b"x"])).contains('0'));
    }

    #[test]
    fn hex_digits_of_every_byte() {
        let raw: Vec<u8> = (0..=255).collect();
        for chunk in raw.chunks(32) {
            let want: String = chunk.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(Digits::of(chunk).as_bytes(), want.as_bytes());
        }
        // Longer input is cut at 32 bytes (64 digits).
        assert_eq!(Digits::of(&[0xab; 40]).as_bytes(), [b'a', b'b'].repeat(32));
    }
}
