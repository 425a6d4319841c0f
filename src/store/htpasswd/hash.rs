//! One stored password hash: recognising its format at load, verifying a password against it.
//!
//! The formats and the rules for telling them apart follow what the servers do with the field:
//!
//! - Apache httpd (`apr_password_validate` in APR-util, used by `mod_authn_file`): `$2y$`/`$2a$`
//!   bcrypt, `$apr1$` (Apache's MD5), `{SHA}` (base64 of an unsalted SHA-1), and anything else
//!   handed to the system's `crypt(3)`, which on Linux knows `$1$` (MD5-crypt), `$5$`/`$6$`
//!   (SHA-crypt, optionally with `rounds=N$`), `$2b$` and the 13-character DES crypt. A field
//!   that no algorithm recognises never matches on Linux; Apache on Windows compares it as
//!   plaintext. See <https://httpd.apache.org/docs/2.4/misc/password_encryptions.html>.
//! - nginx (`ngx_http_auth_basic_module`, `ngx_crypt`): the same plus `{PLAIN}` and `{SSHA}`
//!   (base64 of SHA-1(password ‖ salt) ‖ salt). See
//!   <https://nginx.org/en/docs/http/ngx_http_auth_basic_module.html>.
//!
//! A field is checked at load for the exact shape its algorithm writes. A field that could never
//! match (a truncated hash, an out-of-range bcrypt cost or `rounds=`, a salt longer than the
//! algorithm uses, base64 with stray bits) is reported as malformed instead of silently refusing
//! its user forever.
//!
//! Verification uses maintained RustCrypto-generation crates wherever one implements the
//! algorithm: [`bcrypt`] for bcrypt; [`sha_crypt`] for SHA-256/512-crypt; [`sha1`] and [`sha2`]
//! for the digest formats; `crypt3_rs` (its DES routine only, cargo feature `des-crypt`) for DES
//! crypt. MD5-crypt (`$1$`) and Apache's `$apr1$` are one algorithm with two magic strings that
//! no maintained crate has: it is written once, in the `md5_crypt` module, on the `md-5` crate.
//! Every comparison of a result with the stored value is constant-time ([`subtle`], or the
//! crates' own constant-time checks).

use std::fmt;
use std::sync::Arc;

use base64::alphabet::BCRYPT;
use base64::engine::general_purpose::{NO_PAD, STANDARD as BASE64};
use base64::engine::GeneralPurpose;
use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::LineErrorKind;
use super::format::HashFormat;
use super::md5_crypt::{self, Magic};

/// Parsing options that change which fields are usable.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FieldOptions {
    pub(crate) allow_plaintext: bool,
    pub(crate) refuse_des: bool,
    /// bcrypt lines above this cost are refused (`None`: any cost 4–31, as Apache).
    pub(crate) max_bcrypt_cost: Option<u32>,
    /// SHA-crypt lines above this many rounds are refused (`None`: up to 999,999,999).
    pub(crate) max_sha_crypt_rounds: Option<u32>,
}

/// The highest bcrypt cost Apache's `htpasswd -C` makes. A hash above it is accepted, but a
/// warning is logged at load and it never becomes the dummy for unknown users.
pub(crate) const EXTREME_BCRYPT_COST: u32 = 17;
/// SHA-crypt rounds above which a hash is treated as [`EXTREME_BCRYPT_COST`] is for bcrypt
/// (200 times the default 5,000 rounds).
pub(crate) const EXTREME_SHA_CRYPT_ROUNDS: u32 = 1_000_000;

/// Whether a hash of `format` and `cost` takes extremely long to verify: bcrypt above cost
/// [`EXTREME_BCRYPT_COST`], SHA-crypt above [`EXTREME_SHA_CRYPT_ROUNDS`] rounds.
pub(crate) fn is_extreme(format: HashFormat, cost: u32) -> bool {
    match format {
        HashFormat::Bcrypt => cost > EXTREME_BCRYPT_COST,
        HashFormat::Sha256Crypt | HashFormat::Sha512Crypt => cost > EXTREME_SHA_CRYPT_ROUNDS,
        _ => false,
    }
}

/// A stored hash whose shape has been checked. Cloning is cheap (the text is shared).
///
/// `Debug` shows the format and cost only, never the text.
#[derive(Clone)]
pub(crate) struct StoredHash {
    format: HashFormat,
    /// bcrypt cost, SHA-crypt rounds, or 0 where the algorithm has no parameter.
    cost: u32,
    /// The field exactly as in the file.
    text: Arc<str>,
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredHash")
            .field("format", &self.format)
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

/// Whether `b` is in the alphabet of crypt(3)'s base64 (`./0-9A-Za-z`), which bcrypt's base64
/// shares in another order.
fn is_h64(b: u8) -> bool {
    b == b'.' || b == b'/' || b.is_ascii_alphanumeric()
}

fn all_h64(s: &str) -> bool {
    s.bytes().all(is_h64)
}

impl StoredHash {
    /// Recognises the format of a hash field and checks its shape.
    ///
    /// # Errors
    ///
    /// [`LineErrorKind::EmptyHash`], [`LineErrorKind::UnknownFormat`] (never compared as
    /// plaintext unless the field is a bare one and `allow_plaintext` is on),
    /// [`LineErrorKind::MalformedHash`], [`LineErrorKind::DesRefused`],
    /// [`LineErrorKind::DesCryptFeatureOff`], [`LineErrorKind::CostTooHigh`].
    pub(crate) fn parse(field: &[u8], options: FieldOptions) -> Result<Self, LineErrorKind> {
        if field.is_empty() {
            return Err(LineErrorKind::EmptyHash);
        }
        let text = std::str::from_utf8(field).map_err(|_| LineErrorKind::UnknownFormat)?;
        let (format, cost) = classify(text, options)?;
        Ok(Self {
            format,
            cost,
            text: Arc::from(text),
        })
    }

    /// The format.
    pub(crate) fn format(&self) -> HashFormat {
        self.format
    }

    /// bcrypt cost, SHA-crypt rounds (5000 when not written), or 0.
    pub(crate) fn cost(&self) -> u32 {
        self.cost
    }

    /// Whether this hash takes extremely long to verify (see [`is_extreme`]).
    pub(crate) fn is_extreme(&self) -> bool {
        is_extreme(self.format, self.cost)
    }

    /// A low estimate of the seconds one verification takes on one fast core (optimised build):
    /// bcrypt 2^cost / 32,768 (cost 12: 0.125 s; measured 0.25–0.45 s on a shared 2-core
    /// server), SHA-256-crypt rounds / 10,000,000 and SHA-512-crypt rounds / 4,000,000 (about
    /// 0.11 and 0.41 s per million rounds were measured there). 0 for the formats without a
    /// cost.
    pub(crate) fn min_seconds(&self) -> f64 {
        match self.format {
            HashFormat::Bcrypt => f64::from(1u32 << self.cost.min(31)) / 32_768.0,
            HashFormat::Sha256Crypt => f64::from(self.cost) / 10_000_000.0,
            HashFormat::Sha512Crypt => f64::from(self.cost) / 4_000_000.0,
            _ => 0.0,
        }
    }

    /// The field as stored, to tell whether a reloaded line still holds the same hash. Never
    /// log it.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Whether `password` matches. Takes the algorithm's full time whatever the answer.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        let text = &*self.text;
        match self.format {
            HashFormat::Bcrypt => bcrypt::verify(password, text).unwrap_or(false),
            HashFormat::Apr1 => md5_crypt::verify(Magic::Apr1, password, text),
            HashFormat::Md5Crypt => md5_crypt::verify(Magic::Md5Crypt, password, text),
            HashFormat::Sha256Crypt | HashFormat::Sha512Crypt => {
                sha_crypt_verify(self.format, password, text)
            }
            HashFormat::Des => des_verify(password, text),
            HashFormat::Sha1 => {
                let mut stored = [0u8; 20];
                let decoded = text
                    .strip_prefix(SHA_PREFIX)
                    .is_some_and(|b64| decode_exact(b64, &mut stored));
                let given = Sha1::digest(password);
                bool::from(given.as_slice().ct_eq(&stored)) & decoded
            }
            HashFormat::Ssha => {
                let Some(Ok(decoded)) = text.strip_prefix(SSHA_PREFIX).map(|b| BASE64.decode(b))
                else {
                    return false;
                };
                if decoded.len() < 20 {
                    return false;
                }
                let (stored, salt) = decoded.split_at(20);
                let mut sha = Sha1::new();
                sha.update(password);
                sha.update(salt);
                bool::from(sha.finalize().as_slice().ct_eq(stored))
            }
            HashFormat::Plain => text
                .strip_prefix(PLAIN_PREFIX)
                .is_some_and(|stored| plain_eq(password, stored.as_bytes())),
            HashFormat::Bare => plain_eq(password, text.as_bytes()),
        }
    }
}

const SHA_PREFIX: &str = "{SHA}";
const SSHA_PREFIX: &str = "{SSHA}";
const PLAIN_PREFIX: &str = "{PLAIN}";

/// Plaintext compared through SHA-256 so that the comparison does not depend on where the two
/// first differ or on their lengths.
fn plain_eq(given: &[u8], stored: &[u8]) -> bool {
    let a = Sha256::digest(given);
    let b = Sha256::digest(stored);
    a.as_slice().ct_eq(b.as_slice()).into()
}

/// Decodes standard base64 into exactly `out.len()` bytes.
fn decode_exact(b64: &str, out: &mut [u8]) -> bool {
    match BASE64.decode(b64) {
        Ok(bytes) if bytes.len() == out.len() => {
            out.copy_from_slice(&bytes);
            true
        }
        _ => false,
    }
}

fn classify(text: &str, options: FieldOptions) -> Result<(HashFormat, u32), LineErrorKind> {
    let malformed = |format| Err(LineErrorKind::MalformedHash(format));
    if let Some(rest) = text.strip_prefix(SHA_PREFIX) {
        let mut digest = [0u8; 20];
        return if decode_exact(rest, &mut digest) {
            Ok((HashFormat::Sha1, 0))
        } else {
            malformed(HashFormat::Sha1)
        };
    }
    if let Some(rest) = text.strip_prefix(SSHA_PREFIX) {
        return match BASE64.decode(rest) {
            Ok(decoded) if decoded.len() >= 20 => Ok((HashFormat::Ssha, 0)),
            _ => malformed(HashFormat::Ssha),
        };
    }
    if text.starts_with(PLAIN_PREFIX) {
        return Ok((HashFormat::Plain, 0));
    }
    if text.starts_with("$2y$") || text.starts_with("$2a$") || text.starts_with("$2b$") {
        return match bcrypt_cost(text) {
            Some(cost) => within(HashFormat::Bcrypt, cost, options.max_bcrypt_cost),
            None => malformed(HashFormat::Bcrypt),
        };
    }
    for (magic, format) in [
        (Magic::Apr1, HashFormat::Apr1),
        (Magic::Md5Crypt, HashFormat::Md5Crypt),
    ] {
        if !text.starts_with(magic.prefix()) {
            continue;
        }
        // Apache takes up to 8 salt bytes of any value before the next '$'; the C library's
        // `$1$` salts are of the crypt alphabet.
        return match md5_crypt::split(magic, text) {
            Some((salt, digest))
                if (magic == Magic::Apr1 || all_h64(salt)) && md5_digest_ok(digest) =>
            {
                Ok((format, 0))
            }
            _ => malformed(format),
        };
    }
    for (prefix, format, digest_len) in [
        ("$5$", HashFormat::Sha256Crypt, SHA256_CRYPT_DIGEST_LEN),
        ("$6$", HashFormat::Sha512Crypt, SHA512_CRYPT_DIGEST_LEN),
    ] {
        if let Some(rest) = text.strip_prefix(prefix) {
            return match sha_crypt_parts(rest, digest_len) {
                Some((rounds, _, _)) => within(format, rounds, options.max_sha_crypt_rounds),
                None => malformed(format),
            };
        }
    }
    if text.starts_with('$') || text.starts_with('{') {
        return Err(LineErrorKind::UnknownFormat);
    }
    if text.len() == 13 && all_h64(text) {
        return if options.refuse_des {
            Err(LineErrorKind::DesRefused)
        } else if cfg!(feature = "des-crypt") {
            Ok((HashFormat::Des, 0))
        } else {
            Err(LineErrorKind::DesCryptFeatureOff)
        };
    }
    if options.allow_plaintext {
        Ok((HashFormat::Bare, 0))
    } else {
        Err(LineErrorKind::UnknownFormat)
    }
}

/// `(format, cost)`, or [`LineErrorKind::CostTooHigh`] when `cost` is above `limit`.
fn within(
    format: HashFormat,
    cost: u32,
    limit: Option<u32>,
) -> Result<(HashFormat, u32), LineErrorKind> {
    match limit {
        Some(limit) if cost > limit => Err(LineErrorKind::CostTooHigh {
            format,
            cost,
            limit,
        }),
        _ => Ok((format, cost)),
    }
}

/// bcrypt's base64: its own alphabet, no padding, and no stray bits in the last character.
const BCRYPT_BASE64: GeneralPurpose = GeneralPurpose::new(&BCRYPT, NO_PAD);

/// The cost of a bcrypt field of the shape bcrypt writes (`$2y$`, `$2a$` or `$2b$` already
/// seen): 60 characters, `$` and two digits of cost from 4 to 31, `$`, a 22-character salt
/// holding 16 bytes and a 31-character digest holding 23, both canonical bcrypt base64.
fn bcrypt_cost(text: &str) -> Option<u32> {
    let bytes = text.as_bytes();
    if bytes.len() != 60 || bytes[6] != b'$' {
        return None;
    }
    let cost = match bytes[4..6] {
        [tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => {
            u32::from(tens - b'0') * 10 + u32::from(ones - b'0')
        }
        _ => return None,
    };
    let (salt, digest) = text.get(7..)?.split_at_checked(22)?;
    let (mut salt_bytes, mut digest_bytes) = ([0u8; 16], [0u8; 23]);
    let canonical = BCRYPT_BASE64.decode_slice(salt, &mut salt_bytes) == Ok(16)
        && BCRYPT_BASE64.decode_slice(digest, &mut digest_bytes) == Ok(23);
    ((4..=31).contains(&cost) && canonical).then_some(cost)
}

/// 22 characters of crypt base64 holding 128 bits: the last one carries only 2 bits.
fn md5_digest_ok(digest: &str) -> bool {
    digest.len() == md5_crypt::DIGEST_LEN
        && all_h64(digest)
        && matches!(digest.as_bytes()[21], b'.' | b'/' | b'0' | b'1')
}

/// The length of a SHA-256-crypt digest: 256 bits in 43 base64 characters.
const SHA256_CRYPT_DIGEST_LEN: usize = 43;
/// The length of a SHA-512-crypt digest: 512 bits in 86 base64 characters.
const SHA512_CRYPT_DIGEST_LEN: usize = 86;

/// `[rounds=N$]salt$digest` of SHA-crypt, as (rounds, salt, digest), when the shape is one the
/// C library writes: N in 1000..=999999999 without leading zeros (5000 when absent), a salt of
/// at most 16 characters of the crypt alphabet, and a digest of `digest_len` such characters.
fn sha_crypt_parts(rest: &str, digest_len: usize) -> Option<(u32, &str, &str)> {
    let (rounds, rest) = match rest.strip_prefix("rounds=") {
        Some(r) => {
            let (n, rest) = r.split_once('$')?;
            let rounds: u32 = n.parse().ok()?;
            let canonical = n.bytes().all(|b| b.is_ascii_digit()) && rounds.to_string() == n;
            if !canonical || !(1000..=999_999_999).contains(&rounds) {
                return None;
            }
            (rounds, rest)
        }
        None => (5000, rest),
    };
    let (salt, digest) = rest.split_once('$')?;
    (salt.len() <= 16 && all_h64(salt) && digest.len() == digest_len && all_h64(digest))
        .then_some((rounds, salt, digest))
}

/// Whether `password` matches the SHA-256-crypt or SHA-512-crypt field `text`: the `sha-crypt`
/// crate computes the digest for the field's salt and rounds, which is then compared with the
/// stored one in constant time. (`sha-crypt`'s own `sha256_check` takes the password as a
/// `&str`; a Basic password is bytes, not always UTF-8.)
fn sha_crypt_verify(format: HashFormat, password: &[u8], text: &str) -> bool {
    let (prefix, digest_len) = match format {
        HashFormat::Sha256Crypt => ("$5$", SHA256_CRYPT_DIGEST_LEN),
        _ => ("$6$", SHA512_CRYPT_DIGEST_LEN),
    };
    let Some((rounds, salt, want)) = text
        .strip_prefix(prefix)
        .and_then(|rest| sha_crypt_parts(rest, digest_len))
    else {
        return false;
    };
    let Ok(rounds) = usize::try_from(rounds) else {
        return false;
    };
    let computed = if format == HashFormat::Sha256Crypt {
        sha_crypt::Sha256Params::new(rounds)
            .and_then(|params| sha_crypt::sha256_crypt_b64(password, salt.as_bytes(), &params))
    } else {
        sha_crypt::Sha512Params::new(rounds)
            .and_then(|params| sha_crypt::sha512_crypt_b64(password, salt.as_bytes(), &params))
    };
    computed.is_ok_and(|computed| computed.as_bytes().ct_eq(want.as_bytes()).into())
}

/// Whether `password` matches the 13-character DES crypt field `text` (two characters of salt,
/// eleven of digest), as crypt(3) computes it: only the first 8 bytes of the password count,
/// each with its low 7 bits. `crypt3_rs` computes it (a maintained, pure-Rust fork of pwhash's
/// DES crypt); the result is compared with the field in constant time.
#[cfg(feature = "des-crypt")]
fn des_verify(password: &[u8], text: &str) -> bool {
    let Some(salt) = text.get(..2) else {
        return false;
    };
    // Deprecated by the crate for new passwords; checking old ones is what it is kept for here.
    #[allow(deprecated)]
    let computed = crypt3_rs::crypt::unix::hash_with(salt, password);
    computed.is_ok_and(|computed| computed.as_str().as_bytes().ct_eq(text.as_bytes()).into())
}

/// Without the `des-crypt` feature no DES field is ever loaded
/// ([`LineErrorKind::DesCryptFeatureOff`]); should one get here, it never matches.
#[cfg(not(feature = "des-crypt"))]
fn des_verify(_password: &[u8], _text: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StoredHash, LineErrorKind> {
        StoredHash::parse(s.as_bytes(), FieldOptions::default())
    }

    #[test]
    fn apr1_matches_apache() {
        // `htpasswd -nbm u password` and `openssl passwd -apr1 -salt RandSalt password`.
        let h = parse("$apr1$RandSalt$PgCXHRrkpSt4cbyC2C6bm/").unwrap();
        assert_eq!(h.format(), HashFormat::Apr1);
        assert!(h.verify(b"password"));
        assert!(!h.verify(b"passwore"));
        assert!(!h.verify(b""));
    }

    /// Whether `password` matches `field`, which must load.
    fn verifies(field: &str, password: &[u8]) -> bool {
        parse(field)
            .unwrap_or_else(|e| panic!("{field}: {e}"))
            .verify(password)
    }

    #[test]
    fn md5_crypt_matches_openssl_and_the_c_library() {
        // `openssl passwd -1 -salt saltsalt password`; the C library's crypt(3) for the rest.
        let field = "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/";
        assert_eq!(parse(field).unwrap().format(), HashFormat::Md5Crypt);
        assert!(verifies(field, b"password"));
        assert!(!verifies(field, b"passwore"));
        // An empty salt; a password that is not UTF-8.
        assert!(verifies("$1$$LP5.V3ajGqHDdXW6XwZQy.", b"x"));
        assert!(verifies("$1$bin$eEwlcVIiwKj/le/haItz8/", b"b\xffinary"));
        assert!(!verifies("$1$bin$eEwlcVIiwKj/le/haItz8/", b"b\xfeinary"));
        // The same salt and password as `$apr1$` is another hash.
        assert!(!verifies(
            "$apr1$saltsalt$qjXMvbEw8oaL.CzflDtaK/",
            b"password"
        ));
    }

    #[test]
    fn sha_crypt_at_the_bounds_of_rounds_and_salt() {
        // `openssl passwd -5/-6 -salt 'rounds=1000$...'`: the fewest rounds, the longest salt.
        let cases: &[(&str, &[u8])] = &[
            (
                "$5$rounds=1000$saltsaltsaltsalt$TViliUcp89NhEX9.KN7H6T5R0GNclQ6oh4.wVsXEeeC",
                b"boundary-pw",
            ),
            (
                "$6$rounds=1000$0123456789abcdef$FHGrO5.V5/q72fYtdYsweKgirhErk8xCnlJsbkb2Wi.DW9Vh4c1ohQcXpc58UnYewe8fZqVBrXXSW7z.eO8rl.",
                b"boundary-pw",
            ),
            // A one-character salt; an empty salt (the C library's crypt(3)).
            ("$5$a$m5PPB7rYZmTs0gzCcO.9R/qmXtGr3g/5s2bl1flV9x2", b"x"),
            ("$5$$0Uor7kq6CTPY0DtjOiw.I2DuJSUfiZxCqkrafMVjNc8", b"x"),
            // rounds=5000 written out is the default.
            ("$5$rounds=5000$ab$QC5GKcE5kgMGJf0sNCzrqT/sGcwXhEWAp4Sxjx2lFJA", b"pw"),
            ("$5$ab$QC5GKcE5kgMGJf0sNCzrqT/sGcwXhEWAp4Sxjx2lFJA", b"pw"),
            // UTF-8 and non-UTF-8 passwords are bytes.
            (
                "$6$rounds=2000$Zz9./$UTxvhczP3rnY2ooEadRNVnpLted3WiVLbUquNZ9AYhDng4WTzATH/Akp6N6n6WRVHRju1iaMEHSKICcnk/sov0",
                "pässwörd✓".as_bytes(),
            ),
            (
                "$5$rounds=1000$bin$CCNrgLchQCQRMcPjEwWLX8Wx5nFl1.0O5YBtsa9mpzD",
                b"b\xffinary",
            ),
        ];
        for &(field, password) in cases {
            assert!(verifies(field, password), "{field}");
            let mut wrong = password.to_vec();
            wrong.push(b'!');
            assert!(!verifies(field, &wrong), "{field}");
            assert!(!verifies(field, b""), "{field}");
        }
        // The C library cuts a longer salt to 16 characters; a stored field never has one.
        assert_eq!(
            parse("$5$rounds=1000$saltsaltsaltsaltX$TViliUcp89NhEX9.KN7H6T5R0GNclQ6oh4.wVsXEeeC")
                .err(),
            Some(LineErrorKind::MalformedHash(HashFormat::Sha256Crypt))
        );
        // 999 and 1,000,000,000 rounds are out of range; 999,999,999 loads (never verified
        // here: it takes minutes).
        for rounds in ["999", "1000000000"] {
            let field = format!("$6$rounds={rounds}$ab${}", "a".repeat(86));
            assert_eq!(
                parse(&field).err(),
                Some(LineErrorKind::MalformedHash(HashFormat::Sha512Crypt)),
                "{rounds}"
            );
        }
        let most = format!("$6$rounds=999999999$ab${}", "a".repeat(86));
        assert_eq!(parse(&most).map(|h| h.cost()), Ok(999_999_999));
    }

    #[test]
    fn bcrypt_fields_must_be_canonical() {
        // `htpasswd -nbB -C 4 u pw`.
        let field = "$2y$04$6SODifoQUoWboapbW3a0PO6gIrM1oEVHilnr4H7IiZpobToO9x1RS";
        assert!(verifies(field, b"pw"));
        assert!(!verifies(field, b"pW"));
        for spelling in ["$2a$", "$2b$"] {
            assert!(verifies(&field.replacen("$2y$", spelling, 1), b"pw"));
        }
        let malformed = Some(LineErrorKind::MalformedHash(HashFormat::Bcrypt));
        // Stray bits in the last character of the salt (it holds 2) or of the digest (4).
        let stray_salt = field.replacen("apbW3a0PO", "apbW3a0PP", 1);
        assert_eq!(parse(&stray_salt).err(), malformed);
        let stray_digest = format!("{}T", &field[..59]);
        assert_eq!(parse(&stray_digest).err(), malformed);
        // The cost is two digits.
        assert_eq!(parse(&field.replacen("$04$", "$+4$", 1)).err(), malformed);
        assert_eq!(parse(&field.replacen("$04$", "$4$$", 1)).err(), malformed);
        // One character short or long, a character outside the alphabet.
        assert_eq!(parse(&field[..59]).err(), malformed);
        assert_eq!(parse(&format!("{field}.")).err(), malformed);
        assert_eq!(parse(&field.replacen('W', "+", 1)).err(), malformed);
    }

    #[cfg(feature = "des-crypt")]
    #[test]
    fn des_crypt_counts_the_first_eight_bytes_of_seven_bits() {
        // The C library's crypt(3) (libxcrypt, through Perl's crypt builtin):
        // crypt("b\xffinar8X", "ab"), 8 bytes, one of them not UTF-8.
        let field = "ab8KGbnJ60Vk2";
        assert!(verifies(field, b"b\xffinar8X"));
        assert!(!verifies(field, b"b\xffinar8Y"));
        assert!(!verifies(field, b"b\xffinar8"));
        // Bytes 9 and on are ignored; of each byte only the low 7 bits count.
        assert!(verifies(field, b"b\xffinar8X and more"));
        assert!(verifies(field, b"b\x7finar8X"));
    }

    #[cfg(not(feature = "des-crypt"))]
    #[test]
    fn without_the_des_crypt_feature_a_des_field_is_refused_at_load() {
        assert_eq!(
            parse("PUYgFE2ihRt76").err(),
            Some(LineErrorKind::DesCryptFeatureOff)
        );
        assert_eq!(
            LineErrorKind::DesCryptFeatureOff.to_string(),
            "DES crypt hash, but the des-crypt cargo feature is off"
        );
        // Refusing them wins, and plaintext never claims a DES-shaped field.
        let refuse = FieldOptions {
            refuse_des: true,
            allow_plaintext: true,
            ..FieldOptions::default()
        };
        assert_eq!(
            StoredHash::parse(b"PUYgFE2ihRt76", refuse).err(),
            Some(LineErrorKind::DesRefused)
        );
    }

    #[test]
    fn classification() {
        use HashFormat::*;
        let cases = [
            (
                "$2y$05$M96TNtTJ5SDiW7BI8sXokeTsWApyyURpFQ.h47HqTNwzG07px5zSK",
                Bcrypt,
                5,
            ),
            ("$apr1$FEtdsrfL$VTC1O/uYYE9OlIAO/UWb8.", Apr1, 0),
            ("$1$h9cPjA8.$AY7gFu5rAHVrKXHyWZuWX/", Md5Crypt, 0),
            (
                "$5$X.QSvM9pC0DfY07a$9HH/3im/d3w7IzEnY3lzuLmWriKbVERqKzCFBEh3GDC",
                Sha256Crypt,
                5000,
            ),
            (
                "$5$rounds=10000$/y/.pxQo6tYftSzA$BDMNhNsORYgDcF2mlh/t/KLZRdGoHMrg7Z5ARkiUDK9",
                Sha256Crypt,
                10000,
            ),
            ("{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=", Sha1, 0),
            ("{PLAIN}x", Plain, 0),
            #[cfg(feature = "des-crypt")]
            ("PUYgFE2ihRt76", Des, 0),
        ];
        for (text, format, cost) in cases {
            let h = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!((h.format(), h.cost()), (format, cost), "{text}");
        }
    }

    #[test]
    fn refused_fields() {
        use LineErrorKind::*;
        let cases: &[(&str, LineErrorKind)] = &[
            ("", EmptyHash),
            ("hunter2", UnknownFormat),
            ("$y$j9T$abc$def", UnknownFormat),
            (
                "$2x$05$M96TNtTJ5SDiW7BI8sXokeTsWApyyURpFQ.h47HqTNwzG07px5zSK",
                UnknownFormat,
            ),
            ("{SHA256}abc", UnknownFormat),
            (
                "$2y$05$M96TNtTJ5SDiW7BI8sXokeTsWApyyURpFQ.h47HqTNwzG07px5zS",
                MalformedHash(HashFormat::Bcrypt),
            ),
            (
                "$2y$03$M96TNtTJ5SDiW7BI8sXokeTsWApyyURpFQ.h47HqTNwzG07px5zSK",
                MalformedHash(HashFormat::Bcrypt),
            ),
            (
                "$apr1$FEtdsrfL$VTC1O/uYYE9OlIAO/UWb8",
                MalformedHash(HashFormat::Apr1),
            ),
            (
                "$apr1$FEtdsrfLx$VTC1O/uYYE9OlIAO/UWb8.",
                MalformedHash(HashFormat::Apr1),
            ),
            (
                "$5$rounds=500$salt$9HH/3im/d3w7IzEnY3lzuLmWriKbVERqKzCFBEh3GDC",
                MalformedHash(HashFormat::Sha256Crypt),
            ),
            (
                "$5$rounds=05000$salt$9HH/3im/d3w7IzEnY3lzuLmWriKbVERqKzCFBEh3GDC",
                MalformedHash(HashFormat::Sha256Crypt),
            ),
            (
                "{SHA}GpHWL3ymc5liWkNopqtdSjuqYH==",
                MalformedHash(HashFormat::Sha1),
            ),
            ("{SSHA}GpHWL3ymc5li", MalformedHash(HashFormat::Ssha)),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).err(), Some(*want), "{text}");
        }
        let des = FieldOptions {
            refuse_des: true,
            ..FieldOptions::default()
        };
        assert_eq!(
            StoredHash::parse(b"PUYgFE2ihRt76", des).err(),
            Some(DesRefused)
        );
        let plain = FieldOptions {
            allow_plaintext: true,
            ..FieldOptions::default()
        };
        assert_eq!(
            StoredHash::parse(b"hunter2", plain).unwrap().format(),
            HashFormat::Bare
        );
        // Still never plaintext: a '$' or '{' field of no known format.
        assert_eq!(StoredHash::parse(b"$9$x", plain).err(), Some(UnknownFormat));
    }

    /// A bcrypt field of `cost` with a real cost-5 salt and digest: right in shape, never to be
    /// verified.
    fn bcrypt_at(cost: u32) -> String {
        format!("$2y${cost:02}$M96TNtTJ5SDiW7BI8sXokeTsWApyyURpFQ.h47HqTNwzG07px5zSK")
    }

    fn sha512_at(rounds: u32) -> String {
        format!("$6$rounds={rounds}$saltsalt${}", "a".repeat(86))
    }

    #[test]
    fn cost_limits_refuse_above_and_accept_at_the_limit() {
        let limited = FieldOptions {
            max_bcrypt_cost: Some(14),
            max_sha_crypt_rounds: Some(100_000),
            ..FieldOptions::default()
        };
        let parse_limited = |s: &str| StoredHash::parse(s.as_bytes(), limited);
        assert_eq!(parse_limited(&bcrypt_at(14)).map(|h| h.cost()), Ok(14));
        let too_high = parse_limited(&bcrypt_at(15)).unwrap_err();
        assert_eq!(
            too_high,
            LineErrorKind::CostTooHigh {
                format: HashFormat::Bcrypt,
                cost: 15,
                limit: 14
            }
        );
        assert_eq!(
            too_high.to_string(),
            "bcrypt cost 15 is above max_bcrypt_cost (14)"
        );
        assert_eq!(
            parse_limited(&sha512_at(100_000)).map(|h| h.cost()),
            Ok(100_000)
        );
        let too_many = parse_limited(&sha512_at(100_001)).unwrap_err();
        assert_eq!(
            too_many.to_string(),
            "SHA-512-crypt rounds=100001 is above max_sha_crypt_rounds (100000)"
        );
        // Without a rounds= field SHA-crypt does 5,000.
        let five = format!("$5$saltsalt${}", "a".repeat(43));
        let few = FieldOptions {
            max_sha_crypt_rounds: Some(4_999),
            ..FieldOptions::default()
        };
        assert!(matches!(
            StoredHash::parse(five.as_bytes(), few),
            Err(LineErrorKind::CostTooHigh {
                format: HashFormat::Sha256Crypt,
                cost: 5000,
                ..
            })
        ));
        // A malformed field is malformed first, whatever its cost.
        assert_eq!(
            parse_limited("$2y$31$short").err(),
            Some(LineErrorKind::MalformedHash(HashFormat::Bcrypt))
        );
        // By default every cost is accepted, as Apache does.
        assert_eq!(parse(&bcrypt_at(31)).map(|h| h.cost()), Ok(31));
        assert_eq!(
            parse(&sha512_at(999_999_999)).map(|h| h.cost()),
            Ok(999_999_999)
        );
    }

    #[test]
    fn extreme_costs_and_their_estimates() {
        let h = |s: &str| parse(s).unwrap();
        assert!(!h(&bcrypt_at(17)).is_extreme());
        assert!(h(&bcrypt_at(18)).is_extreme());
        assert!(!h(&sha512_at(1_000_000)).is_extreme());
        assert!(h(&sha512_at(1_000_001)).is_extreme());
        assert!(!h("$apr1$FEtdsrfL$VTC1O/uYYE9OlIAO/UWb8.").is_extreme());
        assert_eq!(h(&bcrypt_at(12)).min_seconds(), 0.125);
        assert_eq!(h(&bcrypt_at(31)).min_seconds(), 65_536.0);
        assert_eq!(h(&sha512_at(999_999_999)).min_seconds(), 249.99999975);
        assert_eq!(h("{SHA}GpHWL3ymc5liWkNopqtdSjuqYHM=").min_seconds(), 0.0);
    }

    #[test]
    fn debug_hides_text() {
        let h = parse("{PLAIN}hunter2").unwrap();
        assert!(!format!("{h:?}").contains("hunter2"));
    }
}
