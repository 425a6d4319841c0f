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
//! algorithm uses) is reported as malformed instead of silently refusing its user forever.
//!
//! Verification uses maintained crates wherever one implements the algorithm: [`bcrypt`] for
//! bcrypt; [`pwhash`] for MD5-crypt, SHA-256/512-crypt and DES crypt; [`sha1`] and [`sha2`] for
//! the digest formats. Apache's `$apr1$` is not in any of them, so it is implemented here on
//! the [`md5`] crate (it is MD5-crypt with another magic string). Every comparison of a result
//! with the stored value is constant-time ([`subtle`], or the crates' own constant-time checks).

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest as _, Sha1};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::error::LineErrorKind;

/// The hash formats an htpasswd field can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashFormat {
    /// bcrypt, `$2y$`, `$2a$` or `$2b$` and a two-digit cost (`htpasswd -B`).
    Bcrypt,
    /// Apache's MD5, `$apr1$` (`htpasswd -m`, the default of `htpasswd`).
    Apr1,
    /// crypt(3) MD5, `$1$` (`openssl passwd -1`).
    Md5Crypt,
    /// crypt(3) SHA-256, `$5$` with an optional `rounds=N$` (`htpasswd -2`).
    Sha256Crypt,
    /// crypt(3) SHA-512, `$6$` with an optional `rounds=N$` (`htpasswd -5`).
    Sha512Crypt,
    /// Legacy 13-character DES crypt(3) (`htpasswd -d`); only the first 8 bytes of a password
    /// count.
    Des,
    /// `{SHA}`: base64 of the unsalted SHA-1 of the password (`htpasswd -s`).
    Sha1,
    /// nginx's `{SSHA}`: base64 of SHA-1(password ‖ salt) followed by the salt.
    Ssha,
    /// nginx's `{PLAIN}`: the password itself after the prefix.
    Plain,
    /// A bare plaintext field, accepted only with
    /// [`allow_plaintext`](super::HtpasswdBuilder::allow_plaintext).
    Bare,
}

impl HashFormat {
    /// A short name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bcrypt => "bcrypt",
            Self::Apr1 => "apr1",
            Self::Md5Crypt => "MD5-crypt",
            Self::Sha256Crypt => "SHA-256-crypt",
            Self::Sha512Crypt => "SHA-512-crypt",
            Self::Des => "DES crypt",
            Self::Sha1 => "{SHA}",
            Self::Ssha => "{SSHA}",
            Self::Plain => "{PLAIN}",
            Self::Bare => "plaintext",
        }
    }

    /// Whether checking a password costs about as much as a keyed digest, so it can run on the
    /// caller's thread: the unsalted or salted SHA-1 forms and plaintext. The others are slow
    /// on purpose and run on the blocking pool.
    pub(crate) fn is_cheap(self) -> bool {
        matches!(self, Self::Sha1 | Self::Ssha | Self::Plain | Self::Bare)
    }
}

impl fmt::Display for HashFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

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

const H64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

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
    /// [`LineErrorKind::MalformedHash`], [`LineErrorKind::DesRefused`].
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
    /// server), SHA-256-crypt rounds / 10,000,000 and SHA-512-crypt rounds / 4,000,000 (pwhash
    /// measured 0.11 and 0.41 s per million rounds there). 0 for the formats without a cost.
    pub(crate) fn min_seconds(&self) -> f64 {
        match self.format {
            HashFormat::Bcrypt => f64::from(1u32 << self.cost.min(31)) / 32_768.0,
            HashFormat::Sha256Crypt => f64::from(self.cost) / 10_000_000.0,
            HashFormat::Sha512Crypt => f64::from(self.cost) / 4_000_000.0,
            _ => 0.0,
        }
    }

    /// The field as stored, for keying the cache. Never log it.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// Whether `password` matches. Takes the algorithm's full time whatever the answer.
    pub(crate) fn verify(&self, password: &[u8]) -> bool {
        let text = &*self.text;
        match self.format {
            HashFormat::Bcrypt => bcrypt::verify(password, text).unwrap_or(false),
            HashFormat::Apr1 => apr1::verify(password, text),
            HashFormat::Md5Crypt => pwhash::md5_crypt::verify(password, text),
            HashFormat::Sha256Crypt => pwhash::sha256_crypt::verify(password, text),
            HashFormat::Sha512Crypt => pwhash::sha512_crypt::verify(password, text),
            HashFormat::Des => pwhash::unix_crypt::verify(password, text),
            HashFormat::Sha1 => {
                let mut stored = [0u8; 20];
                let decoded = decode_exact(&text[SHA_PREFIX.len()..], &mut stored);
                let given = Sha1::digest(password);
                bool::from(given.as_slice().ct_eq(&stored)) & decoded
            }
            HashFormat::Ssha => {
                let Ok(decoded) = BASE64.decode(&text[SSHA_PREFIX.len()..]) else {
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
            HashFormat::Plain => plain_eq(password, &text.as_bytes()[PLAIN_PREFIX.len()..]),
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
        return match text.parse::<bcrypt::HashParts>() {
            Ok(parts) if (4..=31).contains(&parts.get_cost()) && all_h64(&text[7..]) => within(
                HashFormat::Bcrypt,
                parts.get_cost(),
                options.max_bcrypt_cost,
            ),
            _ => malformed(HashFormat::Bcrypt),
        };
    }
    if let Some(rest) = text.strip_prefix("$apr1$") {
        // Apache takes up to 8 salt bytes of any value before the next '$'.
        return match rest.split_once('$') {
            Some((salt, digest)) if salt.len() <= 8 && md5_digest_ok(digest) => {
                Ok((HashFormat::Apr1, 0))
            }
            _ => malformed(HashFormat::Apr1),
        };
    }
    if let Some(rest) = text.strip_prefix("$1$") {
        return match rest.split_once('$') {
            Some((salt, digest)) if salt.len() <= 8 && all_h64(salt) && md5_digest_ok(digest) => {
                Ok((HashFormat::Md5Crypt, 0))
            }
            _ => malformed(HashFormat::Md5Crypt),
        };
    }
    if let Some(rest) = text.strip_prefix("$5$") {
        return sha_crypt(rest, 43).map_or(malformed(HashFormat::Sha256Crypt), |rounds| {
            within(
                HashFormat::Sha256Crypt,
                rounds,
                options.max_sha_crypt_rounds,
            )
        });
    }
    if let Some(rest) = text.strip_prefix("$6$") {
        return sha_crypt(rest, 86).map_or(malformed(HashFormat::Sha512Crypt), |rounds| {
            within(
                HashFormat::Sha512Crypt,
                rounds,
                options.max_sha_crypt_rounds,
            )
        });
    }
    if text.starts_with('$') || text.starts_with('{') {
        return Err(LineErrorKind::UnknownFormat);
    }
    if text.len() == 13 && all_h64(text) {
        return if options.refuse_des {
            Err(LineErrorKind::DesRefused)
        } else {
            Ok((HashFormat::Des, 0))
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

/// 22 characters of crypt base64 holding 128 bits: the last one carries only 2 bits.
fn md5_digest_ok(digest: &str) -> bool {
    digest.len() == 22
        && all_h64(digest)
        && matches!(digest.as_bytes()[21], b'.' | b'/' | b'0' | b'1')
}

/// `[rounds=N$]salt$digest` of SHA-crypt; the rounds (5000 when absent) when the shape is one
/// the C library writes: N in 1000..=999999999 without leading zeros, a salt of at most 16
/// characters, and a digest of `digest_len` characters.
fn sha_crypt(rest: &str, digest_len: usize) -> Option<u32> {
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
        .then_some(rounds)
}

/// Apache's `$apr1$` MD5 (`apr_md5_encode` in APR-util): Poul-Henning Kamp's FreeBSD MD5-crypt
/// with the magic string `$apr1$` instead of `$1$`. No maintained crate implements it (pwhash's
/// `md5_crypt` fixes the magic to `$1$`), so it is written here on the RustCrypto `md-5` crate and
/// tested against `htpasswd -m` and `openssl passwd -apr1` output.
pub(crate) mod apr1 {
    use md5::{Digest as _, Md5};
    use subtle::ConstantTimeEq;

    use super::H64;

    const MAGIC: &[u8] = b"$apr1$";

    /// The 22-character digest part of `$apr1$salt$digest` for `password` and `salt` (at most
    /// the first 8 bytes of `salt` are used, as Apache does).
    pub(crate) fn digest(password: &[u8], salt: &[u8]) -> [u8; 22] {
        let salt = &salt[..salt.len().min(8)];

        let mut alt = Md5::new();
        alt.update(password);
        alt.update(salt);
        alt.update(password);
        let alt = alt.finalize();

        let mut ctx = Md5::new();
        ctx.update(password);
        ctx.update(MAGIC);
        ctx.update(salt);
        let mut left = password.len();
        while left > 0 {
            let n = left.min(16);
            ctx.update(&alt[..n]);
            left -= n;
        }
        let mut i = password.len();
        while i > 0 {
            if i & 1 == 1 {
                ctx.update([0u8]);
            } else {
                ctx.update(&password[..1]);
            }
            i >>= 1;
        }
        let mut fin = ctx.finalize();

        for round in 0..1000 {
            let mut ctx = Md5::new();
            if round & 1 == 1 {
                ctx.update(password);
            } else {
                ctx.update(fin);
            }
            if round % 3 != 0 {
                ctx.update(salt);
            }
            if round % 7 != 0 {
                ctx.update(password);
            }
            if round & 1 == 1 {
                ctx.update(fin);
            } else {
                ctx.update(password);
            }
            fin = ctx.finalize();
        }

        let mut out = [0u8; 22];
        let groups = [
            (fin[0], fin[6], fin[12]),
            (fin[1], fin[7], fin[13]),
            (fin[2], fin[8], fin[14]),
            (fin[3], fin[9], fin[15]),
            (fin[4], fin[10], fin[5]),
        ];
        for (g, (a, b, c)) in groups.into_iter().enumerate() {
            let mut v = (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
            for slot in &mut out[g * 4..g * 4 + 4] {
                *slot = H64[(v & 0x3f) as usize];
                v >>= 6;
            }
        }
        let mut v = u32::from(fin[11]);
        for slot in &mut out[20..22] {
            *slot = H64[(v & 0x3f) as usize];
            v >>= 6;
        }
        out
    }

    /// Whether `password` matches the `$apr1$salt$digest` string `stored`.
    pub(crate) fn verify(password: &[u8], stored: &str) -> bool {
        let Some(rest) = stored.strip_prefix("$apr1$") else {
            return false;
        };
        let Some((salt, want)) = rest.split_once('$') else {
            return false;
        };
        if salt.len() > 8 || want.len() != 22 {
            return false;
        }
        digest(password, salt.as_bytes())
            .ct_eq(want.as_bytes())
            .into()
    }
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
