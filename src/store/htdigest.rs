//! Users from an Apache htdigest file, for the Digest scheme; see [`Htdigest`].

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use http::request::Parts;

use super::watch::{self, Source, Watched};
use crate::identity::Identity;
use crate::realm::Realm;
use crate::scheme::digest::{DigestQuery, DigestSecret, DigestUser, HashFunction, Hex, Secret};
use crate::validator::{DigestSecrets, SecretLookup};

/// Digest secrets from an htdigest file, as Apache httpd's `htdigest` tool writes it and
/// `mod_auth_digest` (`AuthUserFile` with `AuthType Digest`) and Squid's `digest_file_auth`
/// read it.
///
/// # File format
///
/// One `user:realm:HA1` per line, where HA1 is `MD5(user ":" realm ":" password)` in 32 hex
/// digits; `#` comment lines, blank lines, CRLF endings and whitespace around a line are
/// ignored. The user name is everything before the first `:` and the realm everything up to
/// the next one (Apache's `ap_getword` rules: neither can hold `:`). A user listed twice in
/// one realm is decided by the first line (a warning names the later one). A line that cannot
/// be used fails the load with an [`HtdigestError`] like `users.htdigest:3: HA1 is not 32 hex
/// digits` unless [`lenient`](HtdigestBuilder::lenient) mode skips it with a warning.
///
/// # With Digest
///
/// The file holds MD5 HA1s only, so a Digest scheme offered with it offers `MD5` and
/// `MD5-sess` alone (the others are left out when the layer is built). Users can also be found
/// by userhash (`MD5(user ":" realm)`), so the challenges offer `userhash=true`. The layer's
/// realm must be one of the file's; building the layer fails otherwise, naming the realms the
/// file has. An HA1 is a password equivalent for Digest: the file is as sensitive as the
/// passwords.
///
/// The file is watched and reloaded when it changes (polled every 2 s; see
/// [`watch_interval`](HtdigestBuilder::watch_interval)); a broken new version keeps the old
/// users serving and logs the file and line.
///
/// ```
/// use tower_proxy_auth::scheme::digest::Digest;
/// use tower_proxy_auth::store::Htdigest;
/// use tower_proxy_auth::ProxyAuthLayer;
///
/// // `htdigest -c users.htdigest proxy Mufasa` with the password "Circle of Life".
/// let users = Htdigest::from_contents(
///     "users.htdigest",
///     "Mufasa:proxy:e389c2743834ad6da3f8c0a7a76851da\n",
/// )?;
/// let layer = ProxyAuthLayer::offering(Digest::new(), users).build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Htdigest {
    users: Arc<Users>,
    watched: Option<Arc<Watched<HtdigestFile>>>,
}

/// A pair of byte strings: (user or userhash, realm).
type InRealm = (Box<[u8]>, Box<[u8]>);

/// The users of one load.
struct Table {
    /// (user, realm) to the identity and HA1.
    by_name: HashMap<InRealm, (Identity, Hex)>,
    /// (userhash, realm) to the user.
    by_userhash: HashMap<InRealm, Box<[u8]>>,
    realms: Vec<String>,
}

/// The users in force, swapped whole by a reload.
struct Users {
    name: Arc<str>,
    table: ArcSwap<Table>,
    lenient: bool,
}

/// An htdigest file could not be loaded or reloaded. The `Display` text names the file (and
/// the 1-based line, `file:line: message`) and never quotes the line.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HtdigestError {
    /// The file could not be read.
    Read {
        /// The file, as given.
        file: Arc<str>,
        /// What the operating system said.
        source: Arc<io::Error>,
    },
    /// A line cannot be used.
    Line {
        /// The file, as given.
        file: Arc<str>,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with it.
        kind: HtdigestLineError,
    },
    /// [`reload`](Htdigest::reload) was called on users built from a string.
    NotAFile {
        /// The name the users were built with.
        name: Arc<str>,
    },
    /// The watcher thread could not be started.
    Watch {
        /// The file, as given.
        file: Arc<str>,
        /// What the operating system said.
        source: Arc<io::Error>,
    },
}

/// What makes one line of an htdigest file unusable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HtdigestLineError {
    /// Fewer than three `:`-separated fields.
    MissingField,
    /// The user name is empty.
    EmptyUser,
    /// The HA1 is not 32 hex digits (an MD5).
    BadHa1,
}

impl fmt::Display for HtdigestLineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingField => "not user:realm:HA1",
            Self::EmptyUser => "empty user name",
            Self::BadHa1 => "HA1 is not 32 hex digits",
        })
    }
}

impl fmt::Display for HtdigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { file, source } => write!(f, "{file}: cannot read: {source}"),
            Self::Line { file, line, kind } => write!(f, "{file}:{line}: {kind}"),
            Self::NotAFile { name } => write!(f, "{name}: cannot reload: not loaded from a file"),
            Self::Watch { file, source } => {
                write!(f, "{file}: cannot start the file watcher: {source}")
            }
        }
    }
}

impl std::error::Error for HtdigestError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Read { source, .. } | Self::Watch { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

impl Table {
    fn parse(file: &Arc<str>, contents: &[u8], lenient: bool) -> Result<Self, HtdigestError> {
        let contents = contents.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(contents);
        let mut table = Self {
            by_name: HashMap::new(),
            by_userhash: HashMap::new(),
            realms: Vec::new(),
        };
        for (index, raw) in contents.split(|&b| b == b'\n').enumerate() {
            let line = raw.trim_ascii();
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let mut fields = line.splitn(3, |&b| b == b':');
            let (user, realm, ha1) = match (fields.next(), fields.next(), fields.next()) {
                (Some(u), Some(r), Some(h)) => (u, r, h),
                _ => {
                    skip_or_fail(file, index + 1, HtdigestLineError::MissingField, lenient)?;
                    continue;
                }
            };
            // A comment after the HA1 (`user:realm:HA1:comment`) is ignored, as by Apache.
            let ha1 = ha1.split(|&b| b == b':').next().unwrap_or(ha1);
            if user.is_empty() {
                skip_or_fail(file, index + 1, HtdigestLineError::EmptyUser, lenient)?;
                continue;
            }
            let Some(hex) = Hex::parse(ha1).filter(|h| h.as_bytes().len() == 32) else {
                skip_or_fail(file, index + 1, HtdigestLineError::BadHa1, lenient)?;
                continue;
            };
            let key = (Box::<[u8]>::from(user), Box::<[u8]>::from(realm));
            if table.by_name.contains_key(&key) {
                tracing::warn!(
                    "{file}:{}: duplicate user {:?} in realm {:?}; the first entry wins",
                    index + 1,
                    String::from_utf8_lossy(user),
                    String::from_utf8_lossy(realm)
                );
                continue;
            }
            let realm_text = String::from_utf8_lossy(realm).into_owned();
            if !table.realms.contains(&realm_text) {
                table.realms.push(realm_text);
            }
            let userhash = HashFunction::Md5.hex(&[user, realm]);
            table
                .by_userhash
                .insert((userhash.as_bytes().into(), realm.into()), user.into());
            let identity = Identity::new(String::from_utf8_lossy(user).into_owned());
            table.by_name.insert(key, (identity, hex));
        }
        Ok(table)
    }

    fn lookup(&self, query: &DigestQuery) -> Option<DigestSecret> {
        if query.algorithm.hash() != HashFunction::Md5 {
            return None;
        }
        let realm: Box<[u8]> = query.realm.as_bytes().into();
        let user: Box<[u8]> = match &query.user {
            DigestUser::Name(name) => name.as_slice().into(),
            DigestUser::Hash(hash) => self
                .by_userhash
                .get(&(hash.as_bytes().into(), realm.clone()))?
                .clone(),
        };
        let (identity, hex) = self.by_name.get(&(user, realm))?;
        Some(DigestSecret::new(
            identity.clone(),
            Secret::ha1(HashFunction::Md5, hex.as_bytes())?,
        ))
    }
}

fn skip_or_fail(
    file: &Arc<str>,
    line: usize,
    kind: HtdigestLineError,
    lenient: bool,
) -> Result<(), HtdigestError> {
    let error = HtdigestError::Line {
        file: file.clone(),
        line,
        kind,
    };
    if lenient {
        tracing::warn!("{error}; line skipped (lenient mode)");
        Ok(())
    } else {
        Err(error)
    }
}

/// The file behind an [`Htdigest`], for the watcher.
struct HtdigestFile {
    users: Arc<Users>,
}

impl Source for HtdigestFile {
    type Error = HtdigestError;

    const THREAD: &'static str = "htdigest-watch";

    fn name(&self) -> &Arc<str> {
        &self.users.name
    }

    fn read_error(&self, source: io::Error) -> HtdigestError {
        HtdigestError::Read {
            file: self.users.name.clone(),
            source: Arc::new(source),
        }
    }

    fn load(&self, contents: &[u8]) -> Result<usize, HtdigestError> {
        let table = Table::parse(&self.users.name, contents, self.users.lenient)?;
        let users = table.by_name.len();
        self.users.table.store(Arc::new(table));
        Ok(users)
    }
}

/// Default [`HtdigestBuilder::watch_interval`]: 2 seconds.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Options for an [`Htdigest`], from [`Htdigest::builder`].
#[derive(Debug, Clone)]
pub struct HtdigestBuilder {
    lenient: bool,
    watch: bool,
    watch_interval: Duration,
}

impl Default for HtdigestBuilder {
    fn default() -> Self {
        Self {
            lenient: false,
            watch: true,
            watch_interval: DEFAULT_WATCH_INTERVAL,
        }
    }
}

impl HtdigestBuilder {
    /// Skip unusable lines with a warning naming file and line instead of failing the load
    /// (default: off).
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    /// Reload the file when it changes (default: on), from a thread named `htdigest-watch`.
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// How often the watcher looks at the file (default [`DEFAULT_WATCH_INTERVAL`]; at least
    /// 1 ms).
    pub fn watch_interval(mut self, interval: Duration) -> Self {
        self.watch_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Loads the file at `path` and, with [`watch`](Self::watch) on, starts its watcher.
    ///
    /// # Errors
    ///
    /// [`HtdigestError::Read`], [`HtdigestError::Line`] for the first unusable line (unless
    /// lenient), [`HtdigestError::Watch`].
    pub fn open(self, path: impl AsRef<Path>) -> Result<Htdigest, HtdigestError> {
        let path: PathBuf = path.as_ref().to_path_buf();
        let name: Arc<str> = Arc::from(path.display().to_string());
        let first = watch::first_read(&path).map_err(|source| HtdigestError::Read {
            file: name.clone(),
            source: Arc::new(source),
        })?;
        let table = Table::parse(&name, &first.contents, self.lenient)?;
        let users = Arc::new(Users {
            name: name.clone(),
            table: ArcSwap::from_pointee(table),
            lenient: self.lenient,
        });
        let file = Arc::new(HtdigestFile {
            users: users.clone(),
        });
        let watch = self.watch.then_some(self.watch_interval);
        let watched =
            Watched::start(file, path, &first, watch).map_err(|source| HtdigestError::Watch {
                file: name,
                source: Arc::new(source),
            })?;
        Ok(Htdigest {
            users,
            watched: Some(watched),
        })
    }

    /// Parses `contents` held in memory; `name` stands for the file in messages.
    ///
    /// # Errors
    ///
    /// [`HtdigestError::Line`] for the first unusable line (unless lenient).
    pub fn from_contents(
        self,
        name: impl Into<String>,
        contents: impl AsRef<[u8]>,
    ) -> Result<Htdigest, HtdigestError> {
        let name: Arc<str> = Arc::from(name.into());
        let table = Table::parse(&name, contents.as_ref(), self.lenient)?;
        Ok(Htdigest {
            users: Arc::new(Users {
                name,
                table: ArcSwap::from_pointee(table),
                lenient: self.lenient,
            }),
            watched: None,
        })
    }
}

impl Htdigest {
    /// Loads the htdigest file at `path` with the default options (strict, reloaded on
    /// changes).
    ///
    /// # Errors
    ///
    /// As [`HtdigestBuilder::open`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, HtdigestError> {
        HtdigestBuilder::default().open(path)
    }

    /// Parses htdigest `contents` held in memory (no reload).
    ///
    /// # Errors
    ///
    /// As [`HtdigestBuilder::from_contents`].
    pub fn from_contents(
        name: impl Into<String>,
        contents: impl AsRef<[u8]>,
    ) -> Result<Self, HtdigestError> {
        HtdigestBuilder::default().from_contents(name, contents)
    }

    /// Options.
    pub fn builder() -> HtdigestBuilder {
        HtdigestBuilder::default()
    }

    /// Reads the file again now, as the watcher does on a change (blocking file I/O).
    ///
    /// # Errors
    ///
    /// The load error (the previous users stay in force), or [`HtdigestError::NotAFile`].
    pub fn reload(&self) -> Result<(), HtdigestError> {
        match &self.watched {
            Some(watched) => watched.reload(),
            None => Err(HtdigestError::NotAFile {
                name: self.users.name.clone(),
            }),
        }
    }

    /// The number of (user, realm) entries.
    pub fn len(&self) -> usize {
        self.users.table.load().by_name.len()
    }

    /// Whether the file has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The realms the file has users in, in the order they first appear.
    pub fn realms(&self) -> Vec<String> {
        self.users.table.load().realms.clone()
    }

    /// Successful loads so far (the first included), for health checks; 1 for users built
    /// from contents.
    pub fn generation(&self) -> u64 {
        self.watched.as_ref().map_or(1, |w| w.status().generation)
    }

    /// Reloads that failed and left the previous users in force.
    pub fn reload_failures(&self) -> u64 {
        self.watched.as_ref().map_or(0, |w| w.status().failures)
    }

    /// Why the latest reload failed; `None` once a later one succeeds.
    pub fn last_reload_error(&self) -> Option<HtdigestError> {
        self.watched.as_ref().and_then(|w| w.status().last_error)
    }
}

impl DigestSecrets for Htdigest {
    fn lookup(&self, query: &DigestQuery, _request: &Parts) -> SecretLookup {
        SecretLookup::Ready(Ok(self.users.table.load().lookup(query)))
    }

    fn serves(&self, hash: HashFunction) -> bool {
        hash == HashFunction::Md5
    }

    fn supports_userhash(&self) -> bool {
        true
    }

    fn check_realm(&self, realm: &Realm) -> Result<(), String> {
        let realms = self.realms();
        if realms.iter().any(|r| r == realm.as_str()) {
            Ok(())
        } else {
            Err(format!(
                "{} has no user in the layer's realm {:?} (its realms: {:?}); htdigest HA1s \
                 depend on the realm",
                self.users.name,
                realm.as_str(),
                realms
            ))
        }
    }
}

impl fmt::Debug for Htdigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htdigest")
            .field("name", &self.users.name)
            .field("entries", &self.len())
            .field("realms", &self.realms())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::digest::Algorithm;

    const MUFASA: &str = "Mufasa:proxy:e389c2743834ad6da3f8c0a7a76851da";

    fn query(user: DigestUser, realm: &str, algorithm: Algorithm) -> DigestQuery {
        DigestQuery {
            user,
            realm: realm.into(),
            algorithm,
        }
    }

    #[test]
    fn lines_users_realms_and_userhash() {
        let contents = format!(
            "# made by htdigest\r\n{MUFASA}\r\nMufasa:other:e389c2743834ad6da3f8c0a7a76851da:note\n\n{MUFASA}\n"
        );
        let users = Htdigest::from_contents("t.htdigest", contents).unwrap();
        assert_eq!(users.len(), 2);
        assert_eq!(users.realms(), ["proxy", "other"]);
        let table = users.users.table.load();
        let found = table
            .lookup(&query(
                DigestUser::Name(b"Mufasa".to_vec()),
                "proxy",
                Algorithm::Md5Sess,
            ))
            .unwrap();
        assert_eq!(found.identity.user(), "Mufasa");
        assert!(table
            .lookup(&query(
                DigestUser::Name(b"Mufasa".to_vec()),
                "proxy",
                Algorithm::Sha256
            ))
            .is_none());
        let userhash = String::from_utf8(
            HashFunction::Md5
                .hex(&[b"Mufasa", b"proxy"])
                .as_bytes()
                .to_vec(),
        )
        .unwrap();
        assert!(table
            .lookup(&query(DigestUser::Hash(userhash), "proxy", Algorithm::Md5))
            .is_some());
        assert!(table
            .lookup(&query(
                DigestUser::Name(b"Scar".to_vec()),
                "proxy",
                Algorithm::Md5
            ))
            .is_none());
        assert!(users.check_realm(&Realm::new("proxy").unwrap()).is_ok());
        let err = users.check_realm(&Realm::new("corp").unwrap()).unwrap_err();
        assert!(err.contains("\"corp\"") && err.contains("proxy"), "{err}");
    }

    #[test]
    fn bad_lines_name_file_and_line_or_are_skipped() {
        for (contents, line, kind) in [
            ("Mufasa:proxy\n", 1, HtdigestLineError::MissingField),
            (
                ":proxy:e389c2743834ad6da3f8c0a7a76851da\n",
                1,
                HtdigestLineError::EmptyUser,
            ),
            (
                "#\nMufasa:proxy:e389c2743834ad6da3f8c0a7a76851d\n",
                2,
                HtdigestLineError::BadHa1,
            ),
            (
                "Mufasa:proxy:zz89c2743834ad6da3f8c0a7a76851da\n",
                1,
                HtdigestLineError::BadHa1,
            ),
        ] {
            let err = Htdigest::from_contents("bad.htdigest", contents)
                .err()
                .unwrap();
            assert!(
                matches!(&err, HtdigestError::Line { line: l, kind: k, .. } if *l == line && *k == kind),
                "{err}"
            );
            assert_eq!(err.to_string(), format!("bad.htdigest:{line}: {kind}"));
            let lenient = Htdigest::builder()
                .lenient(true)
                .from_contents("bad.htdigest", contents)
                .unwrap();
            assert_eq!(lenient.len(), 0);
        }
        let missing = Htdigest::open("/nonexistent/users.htdigest").err().unwrap();
        assert!(
            missing
                .to_string()
                .starts_with("/nonexistent/users.htdigest: cannot read"),
            "{missing}"
        );
    }
}
