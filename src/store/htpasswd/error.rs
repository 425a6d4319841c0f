//! Why an htpasswd file could not be loaded: the error of a load or reload, and what makes one
//! line unusable.
//!
//! Messages name the file and line and never quote the line, so they carry no hash and no
//! password.

use std::fmt;
use std::io;
use std::sync::Arc;

use super::format::HashFormat;
use crate::secret::RandomSourceError;

/// An htpasswd file could not be loaded or reloaded.
///
/// The `Display` text names the file (as given to [`open`](super::Htpasswd::open), or the name
/// given to [`from_contents`](super::Htpasswd::from_contents)) and, for a bad line, its 1-based
/// number, in the `file:line: message` shape compilers use:
///
/// ```text
/// users.htpasswd:3: unknown hash format
/// users.htpasswd: cannot read: No such file or directory (os error 2)
/// ```
///
/// It never quotes the line, so it carries no hash and no password. Cloning is cheap.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HtpasswdError {
    /// The file could not be read (missing, unreadable, a directory).
    Read {
        /// The file, as given.
        file: Arc<str>,
        /// What the operating system said.
        source: Arc<io::Error>,
    },
    /// A line cannot be used (see [`LineErrorKind`]); only returned when lenient mode is off.
    Line {
        /// The file, as given.
        file: Arc<str>,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        kind: LineErrorKind,
    },
    /// [`reload`](super::Htpasswd::reload) was called on a table built from a string.
    NotAFile {
        /// The name the table was built with.
        name: Arc<str>,
    },
    /// The operating system's random source failed, so the key of the cache of answers (a
    /// [`Cached`](crate::validator::Cached)) could not be made.
    RandomSource {
        /// The file, as given.
        file: Arc<str>,
        /// The failure.
        source: RandomSourceError,
    },
    /// The thread that watches the file for changes could not be started.
    Watch {
        /// The file, as given.
        file: Arc<str>,
        /// What the operating system said.
        source: Arc<io::Error>,
    },
}

impl HtpasswdError {
    /// The file (or the name given to [`from_contents`](super::Htpasswd::from_contents)).
    pub fn file(&self) -> &str {
        match self {
            Self::Read { file, .. }
            | Self::Line { file, .. }
            | Self::Watch { file, .. }
            | Self::RandomSource { file, .. } => file,
            Self::NotAFile { name } => name,
        }
    }

    /// The 1-based line number, for a [`Line`](Self::Line) error.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Line { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// What is wrong with the line, for a [`Line`](Self::Line) error.
    pub fn kind(&self) -> Option<LineErrorKind> {
        match self {
            Self::Line { kind, .. } => Some(*kind),
            _ => None,
        }
    }
}

impl fmt::Display for HtpasswdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { file, source } => write!(f, "{file}: cannot read: {source}"),
            Self::Line { file, line, kind } => write!(f, "{file}:{line}: {kind}"),
            Self::NotAFile { name } => {
                write!(
                    f,
                    "{name}: cannot reload: the users were not loaded from a file"
                )
            }
            Self::Watch { file, source } => {
                write!(f, "{file}: cannot start the file watcher: {source}")
            }
            Self::RandomSource { file, source } => write!(f, "{file}: {source}"),
        }
    }
}

impl std::error::Error for HtpasswdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } | Self::Watch { source, .. } => Some(&**source),
            Self::RandomSource { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What makes one line of an htpasswd file unusable.
///
/// By default any of these fails the load; in lenient mode the line is skipped with a warning
/// naming the file and line. A skipped line that names a user still holds that user name, so
/// that, as in Apache httpd where the first line for a user decides, a later line for the same
/// user cannot let in someone the first line would have refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineErrorKind {
    /// No `:` between the user name and the hash.
    MissingColon,
    /// The user name is not UTF-8 (Basic user-ids are UTF-8, so it could never match).
    UserNotUtf8,
    /// Nothing between the `:` and the end of the line (or the next `:`).
    EmptyHash,
    /// The field is not a hash format this crate knows (nor, with
    /// [`allow_plaintext`](super::HtpasswdBuilder::allow_plaintext), a bare plaintext: a field
    /// starting with `$` or `{` is never taken as plaintext).
    UnknownFormat,
    /// The field starts like this format but does not have its shape (length, alphabet, cost or
    /// `rounds=` range, salt length), so no password could ever match it.
    MalformedHash(HashFormat),
    /// A DES crypt field, refused by [`refuse_des`](super::HtpasswdBuilder::refuse_des).
    DesRefused,
    /// A DES crypt field, but this build has no DES crypt: the cargo feature `des-crypt` (on by
    /// default) is off. Message: `DES crypt hash, but the des-crypt cargo feature is off`. Turn
    /// the feature on, or re-hash the user's password with a current format (`htpasswd -B`).
    /// With [`refuse_des`](super::HtpasswdBuilder::refuse_des) set, such a line is
    /// [`DesRefused`](Self::DesRefused) whatever the feature.
    DesCryptFeatureOff,
    /// A bcrypt cost above [`max_bcrypt_cost`](super::HtpasswdBuilder::max_bcrypt_cost), or
    /// SHA-crypt rounds above
    /// [`max_sha_crypt_rounds`](super::HtpasswdBuilder::max_sha_crypt_rounds).
    CostTooHigh {
        /// The hash's format: bcrypt, SHA-256-crypt or SHA-512-crypt.
        format: HashFormat,
        /// The line's bcrypt cost or SHA-crypt rounds.
        cost: u32,
        /// The limit it is above.
        limit: u32,
    },
}

impl fmt::Display for LineErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingColon => f.write_str("no ':' between user name and hash"),
            Self::UserNotUtf8 => f.write_str("user name is not UTF-8"),
            Self::EmptyHash => f.write_str("empty hash field"),
            Self::UnknownFormat => f.write_str("unknown hash format"),
            Self::MalformedHash(format) => write!(f, "malformed {format} hash"),
            Self::DesRefused => f.write_str("DES crypt hash refused (refuse_des is set)"),
            Self::DesCryptFeatureOff => {
                f.write_str("DES crypt hash, but the des-crypt cargo feature is off")
            }
            Self::CostTooHigh {
                format: HashFormat::Bcrypt,
                cost,
                limit,
            } => write!(f, "bcrypt cost {cost} is above max_bcrypt_cost ({limit})"),
            Self::CostTooHigh {
                format,
                cost,
                limit,
            } => write!(
                f,
                "{format} rounds={cost} is above max_sha_crypt_rounds ({limit})"
            ),
        }
    }
}
