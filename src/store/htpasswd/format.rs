//! The hash formats an htpasswd field can hold, by name: what load errors, warnings and
//! [`Htpasswd::format`](super::Htpasswd::format) speak of.
//!
//! Only the vocabulary lives here; recognising a field and verifying a password against it is
//! the `hash` module's work.

use std::fmt;

/// The hash formats an htpasswd field can hold.
///
/// See the [table of formats](super::Htpasswd#hash-formats) for which tool writes each and
/// which crate verifies it.
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
    /// count. Verified only with the cargo feature `des-crypt` (on by default); without it such
    /// a line is a load error
    /// ([`LineErrorKind::DesCryptFeatureOff`](super::LineErrorKind::DesCryptFeatureOff)).
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
