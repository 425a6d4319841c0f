//! MD5-crypt, once, for both of its spellings: the C library's `$1$` and Apache's `$apr1$`.
//!
//! Poul-Henning Kamp's MD5-crypt (FreeBSD, 1994) is what glibc and libxcrypt compute for a
//! `$1$salt$digest` field and what `openssl passwd -1` writes. Apache's `$apr1$`
//! (`apr_md5_encode` in APR-util, written by `htpasswd -m` and `openssl passwd -apr1`) is the
//! same algorithm with the magic string `$apr1$` hashed in instead of `$1$`. No maintained
//! RustCrypto crate implements either (the `md-5` crate gives the digest only), so the routine
//! is written here once, on [`md5`], parameterised by the [`Magic`], and tested against the
//! output of `htpasswd` and `openssl passwd`. It is the only cryptographic routine of its own in
//! this crate.
//!
//! Both take at most the first 8 bytes of the salt (the salt ends at the next `$`), and every
//! byte of the password. The result is compared with the stored digest in constant time
//! ([`subtle`]).

use md5::{Digest as _, Md5};
use subtle::ConstantTimeEq;

/// The alphabet of crypt(3)'s base64 (`./0-9A-Za-z`, least significant 6 bits first).
pub(super) const CRYPT_BASE64: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The most salt bytes MD5-crypt uses.
pub(super) const MAX_SALT_LEN: usize = 8;

/// The length of the digest part of a field: 128 bits in 22 base64 characters.
pub(super) const DIGEST_LEN: usize = 22;

/// Which spelling of MD5-crypt: the magic string that starts the field and is hashed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Magic {
    /// `$1$`: glibc, libxcrypt, `openssl passwd -1`.
    Md5Crypt,
    /// `$apr1$`: Apache's `htpasswd -m`, `openssl passwd -apr1`.
    Apr1,
}

impl Magic {
    /// The magic string, `$1$` or `$apr1$`.
    pub(super) fn prefix(self) -> &'static str {
        match self {
            Self::Md5Crypt => "$1$",
            Self::Apr1 => "$apr1$",
        }
    }
}

/// The 22-character digest part of `<magic><salt>$<digest>` for `password` and `salt` (of which
/// at most the first [`MAX_SALT_LEN`] bytes count).
pub(super) fn digest(magic: Magic, password: &[u8], salt: &[u8]) -> [u8; DIGEST_LEN] {
    let salt = &salt[..salt.len().min(MAX_SALT_LEN)];

    let mut alt = Md5::new();
    alt.update(password);
    alt.update(salt);
    alt.update(password);
    let alt = alt.finalize();

    let mut ctx = Md5::new();
    ctx.update(password);
    ctx.update(magic.prefix().as_bytes());
    ctx.update(salt);
    let mut left = password.len();
    while left > 0 {
        let n = left.min(16);
        ctx.update(&alt[..n]);
        left -= n;
    }
    // For each bit of the password's length, lowest first: a zero byte for a 1 bit, the
    // password's first byte for a 0 bit (only reached when the password is not empty).
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

    let mut out = [0u8; DIGEST_LEN];
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
            *slot = CRYPT_BASE64[(v & 0x3f) as usize];
            v >>= 6;
        }
    }
    let mut v = u32::from(fin[11]);
    for slot in &mut out[20..22] {
        *slot = CRYPT_BASE64[(v & 0x3f) as usize];
        v >>= 6;
    }
    out
}

/// Splits `<magic><salt>$<digest>` into salt and digest; `None` when `stored` does not start
/// with the magic, has no `$` after the salt, or its salt is longer than [`MAX_SALT_LEN`].
pub(super) fn split(magic: Magic, stored: &str) -> Option<(&str, &str)> {
    let (salt, digest) = stored.strip_prefix(magic.prefix())?.split_once('$')?;
    (salt.len() <= MAX_SALT_LEN).then_some((salt, digest))
}

/// Whether `password` matches the field `stored` (`<magic><salt>$<digest>`). A field not of
/// that shape never matches.
pub(super) fn verify(magic: Magic, password: &[u8], stored: &str) -> bool {
    let Some((salt, want)) = split(magic, stored) else {
        return false;
    };
    if want.len() != DIGEST_LEN {
        return false;
    }
    digest(magic, password, salt.as_bytes())
        .ct_eq(want.as_bytes())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `(password, field)`: `$apr1$` from `htpasswd -nbm` and `openssl passwd -apr1 -salt`,
    /// `$1$` from `openssl passwd -1 -salt`.
    const VECTORS: &[(&str, &str)] = &[
        ("password", "$apr1$RandSalt$PgCXHRrkpSt4cbyC2C6bm/"),
        ("apache-md5", "$apr1$o5fon/x.$PEi3y8c2BCFgolSQiNpl4."),
        ("openssl-apr1", "$apr1$rUywWWGB$BJeRAbKGdOZBYuEINvc6B0"),
        ("", "$apr1$x$tMwYqBfQwi3FYAr0aJc8M/"),
        ("pässwörd✓", "$apr1$./Ab$wzrG0MvUJp8WwijBzHkK21"),
        ("x", "$1$a$TYcRT0JumNkKBBlirG1X4/"),
        ("password", "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"),
        ("crypt-md5", "$1$ab12$fPtETBAty/n/0YxpjhRlg/"),
        ("", "$1$12345678$xek.CpjQUVgdf/P2N9KQf/"),
        ("pässwörd✓", "$1$Zz./$bk.U2l2odEf8zPCYsNalg."),
        (
            "correct_horse_battery_staple_0123456789_more",
            "$1$LongSalt$bQNsg8TydSn0pCobMx4H00",
        ),
        // An empty salt, and a salt cut to 8 bytes: the system crypt(3) (libxcrypt, through
        // Perl's crypt builtin), as openssl refuses both.
        ("", "$1$$qRPK7m23GJusamGpoGLby/"),
        ("x", "$1$$LP5.V3ajGqHDdXW6XwZQy."),
    ];

    fn magic_of(field: &str) -> Magic {
        if field.starts_with("$apr1$") {
            Magic::Apr1
        } else {
            Magic::Md5Crypt
        }
    }

    #[test]
    fn only_the_first_eight_salt_bytes_count() {
        // crypt("password", "$1$toolongsalt$") is "$1$toolongs$nbxWng79pwW9eFqyOCHnw1".
        assert_eq!(
            &digest(Magic::Md5Crypt, b"password", b"toolongsalt"),
            b"nbxWng79pwW9eFqyOCHnw1"
        );
        // A stored field never has a longer salt: it is not of the shape, and never matches.
        assert!(split(Magic::Md5Crypt, "$1$toolongsalt$nbxWng79pwW9eFqyOCHnw1").is_none());
        assert!(!verify(
            Magic::Md5Crypt,
            b"password",
            "$1$toolongsalt$nbxWng79pwW9eFqyOCHnw1"
        ));
        // The magic is part of the hash: the same salt and password differ between spellings.
        assert_ne!(
            digest(Magic::Md5Crypt, b"password", b"saltsalt"),
            digest(Magic::Apr1, b"password", b"saltsalt")
        );
        assert!(!verify(
            Magic::Apr1,
            b"password",
            "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/"
        ));
    }

    #[test]
    fn matches_the_real_tools() {
        for &(password, field) in VECTORS {
            let magic = magic_of(field);
            assert!(verify(magic, password.as_bytes(), field), "{field}");
            let (salt, want) = split(magic, field).unwrap();
            assert_eq!(
                &digest(magic, password.as_bytes(), salt.as_bytes()),
                want.as_bytes()
            );
            assert!(!verify(magic, b"passwore", field), "{field}");
            assert_eq!(verify(magic, b"", field), password.is_empty(), "{field}");
            let mut longer = password.as_bytes().to_vec();
            longer.push(b'x');
            assert!(!verify(magic, &longer, field), "{field}");
        }
    }
}
