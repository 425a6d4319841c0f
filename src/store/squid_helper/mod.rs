//! Squid's authentication helpers as validators: every backend operators already run behind
//! Squid (LDAP, PAM, RADIUS, databases, files, their own scripts) without a line of LDAP or
//! RADIUS code here. Cargo feature `squid-helper`.
//!
//! [`SquidHelper`] says which program to run and how (Squid's `auth_param … program`,
//! `children`, `concurrency` and `queue-size`, and `credentialsttl`); it builds a
//! [`BasicHelper`] (a password [`Validator`](crate::Validator) for the Basic scheme) or a
//! [`DigestHelper`] (a [`DigestSecrets`](crate::validator::DigestSecrets) source for Digest),
//! each behind a [`Cached`], so that a client's credentials reach the helper once per TTL and
//! identical checks in flight are asked once.
//!
//! The protocol is the one Squid speaks to its helpers since 3.4
//! (<https://www.squid-cache.org/Doc/config/auth_param/>,
//! <https://wiki.squid-cache.org/Features/AddonHelpers>): one request line on the child's
//! stdin, one reply line on its stdout (`OK`, `ERR` or `BH`, then `key=value` pairs), with a
//! leading channel-ID when the helper handles several requests at once.
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_proxy_auth::scheme::{Basic, Digest};
//! use tower_proxy_auth::store::squid_helper::SquidHelper;
//! use tower_proxy_auth::ProxyAuthLayer;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // auth_param basic program /usr/lib/squid/basic_ncsa_auth /etc/squid/passwd
//! // auth_param basic children 5
//! // auth_param basic credentialsttl 2 hours
//! let passwords = SquidHelper::command_line("/usr/lib/squid/basic_ncsa_auth /etc/squid/passwd")?
//!     .children(5)
//!     .credentials_ttl(Duration::from_secs(2 * 60 * 60))
//!     .basic()?;
//!
//! // auth_param digest program /usr/lib/squid/digest_file_auth -c /etc/squid/digest
//! let secrets = SquidHelper::new("/usr/lib/squid/digest_file_auth")
//!     .arg("-c")
//!     .arg("/etc/squid/digest")
//!     .digest()?;
//!
//! let layer = ProxyAuthLayer::offering(Digest::new(), secrets)
//!     .offer(Basic::new(), passwords)
//!     .realm("proxy")
//!     .build()?;
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```

mod basic;
mod digest;
mod pool;
mod protocol;

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use basic::BasicHelper;
pub use digest::DigestHelper;
pub use pool::{HelperStats, MAX_BACKOFF, STDERR_LINES_PER_SECOND};

use crate::secret::RandomSourceError;
use crate::validator::{CacheSettings, Cached};
use pool::{Pool, PoolConfig};

/// Default [`SquidHelper::children`]: 5, as Squid's suggested `auth_param basic children 5`.
pub const DEFAULT_CHILDREN: usize = 5;

/// Default [`SquidHelper::timeout`]: 10 seconds for a child to answer one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Default places in the queue per request that can be in flight
/// (`children × max(1, concurrency)`): 16, as [`BlockingPool`](crate::validator::BlockingPool)
/// does per slot. Squid's own default `queue-size` is `2 × children`.
pub const DEFAULT_QUEUE_PER_SLOT: usize = 16;

/// How to run a Squid authentication helper; builds a [`BasicHelper`] or a [`DigestHelper`]
/// behind a [`Cached`].
///
/// | squid.conf | here |
/// |---|---|
/// | `auth_param basic program /path/helper ARGS` | [`SquidHelper::command_line`]`("/path/helper ARGS")` or [`new`](Self::new)`("/path/helper")`[`.arg(..)`](Self::arg) |
/// | `children N` | [`.children(N)`](Self::children) (all started at once, as `startup=N`) |
/// | `children N concurrency=M` | [`.concurrency(M)`](Self::concurrency): channel-IDs, up to M requests per child |
/// | `children N queue-size=Q` | [`.queue(Q)`](Self::queue); beyond it a check is refused at once (503, counted as overloaded) |
/// | `credentialsttl 2 hours` | [`.credentials_ttl(..)`](Self::credentials_ttl) |
/// | — | [`.negative_ttl(..)`](Self::negative_ttl), [`.timeout(..)`](Self::timeout) |
///
/// A program without a `/` is looked up on `PATH` when the helper is built; Debian installs
/// Squid's helpers in `/usr/lib/squid/`, which is not on `PATH`. The children run with this
/// process's environment and working directory; the credentials reach them only on stdin.
/// They are started when the helper is built inside a Tokio runtime, else at the first check;
/// they end when the last clone of the validator is dropped (their stdin closes, and each is
/// killed).
#[derive(Clone)]
pub struct SquidHelper {
    program: OsString,
    args: Vec<OsString>,
    children: usize,
    concurrency: usize,
    queue: Option<usize>,
    timeout: Duration,
    cache: CacheSettings,
}

impl SquidHelper {
    /// Runs `program` (a path, or a name looked up on `PATH`), with no arguments yet.
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            children: DEFAULT_CHILDREN,
            concurrency: 0,
            queue: None,
            timeout: DEFAULT_TIMEOUT,
            cache: CacheSettings::default(),
        }
    }

    /// The program and its arguments from one line, split as a POSIX shell splits words
    /// (quotes and `\` escapes; no variables, globs or pipes): Squid's
    /// `auth_param … program` line, or a `--squid-helper "PROGRAM ARGS..."` flag.
    ///
    /// # Errors
    ///
    /// [`SquidHelperError::CommandLine`] for an empty line or unbalanced quotes.
    pub fn command_line(line: &str) -> Result<Self, SquidHelperError> {
        let words = shlex::split(line).ok_or(SquidHelperError::CommandLine {
            reason: "unbalanced quotes or a trailing backslash",
        })?;
        let mut words = words.into_iter();
        let program = words.next().ok_or(SquidHelperError::CommandLine {
            reason: "no program",
        })?;
        Ok(Self::new(program).args(words))
    }

    /// Adds one argument.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Adds arguments.
    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// How many child processes run (Squid's `children`); at least 1. Default
    /// [`DEFAULT_CHILDREN`].
    pub fn children(mut self, children: usize) -> Self {
        self.children = children.max(1);
        self
    }

    /// Requests in flight per child (Squid's `concurrency=`). 0, the default, sends one
    /// request at a time without channel-IDs (helpers such as `basic_ncsa_auth`); M ≥ 1
    /// prefixes each request with a channel-ID and sends up to M at once (helpers that support
    /// it, or any helper wrapped by Squid's `helper-mux`).
    ///
    /// Channel-IDs have nine digits and are not reused while a child runs (Squid 4 and later
    /// number requests too, so helpers take them). A non-concurrent helper is better run as
    /// several [`children`](Self::children) than behind `helper-mux`: helper-mux (Squid 5.7)
    /// tags each read of a helper's output with the channel-ID the helper holds at that
    /// moment, and Squid's own helpers write a reply in pieces, so it can tag one user's `OK`
    /// with another request's channel-ID. A reply line that holds the channel-ID of another
    /// request in flight, which such a mix-up always writes before any misdirected reply, is
    /// taken as garbage: the child is restarted and every request in flight on it answered
    /// 503 (`tests/squid_helper.rs`). helper-mux also reads its stdin 40,960 bytes at a time
    /// and would make two requests of a line cut by a read, so a child is written a request
    /// only while those in flight on it take at most 40,960 bytes less one longest line
    /// (4,096): with lines of a few dozen bytes this never binds; with 4 KB lines about nine
    /// are in flight per child.
    pub fn concurrency(mut self, concurrency: usize) -> Self {
        self.concurrency = concurrency;
        self
    }

    /// How many checks may wait for a child (Squid's `queue-size=`); at least 1. Beyond it a
    /// check gets an overloaded error at once (503; the failure throttle counts it against
    /// the sender's address). Default: [`DEFAULT_QUEUE_PER_SLOT`] per request that can be in
    /// flight.
    pub fn queue(mut self, queue: usize) -> Self {
        self.queue = Some(queue.max(1));
        self
    }

    /// How long a child may take to answer one request; past it the child is killed and
    /// restarted, and every request in flight on it answered 503. Default
    /// [`DEFAULT_TIMEOUT`]. A helper whose backend can be slower (a distant LDAP server)
    /// needs a longer one.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long an accepted user (Basic) or a found HA1 (Digest) is remembered before the
    /// helper is asked again: Squid's `credentialsttl` (Squid's default is 2 hours; the
    /// default here is [`DEFAULT_CACHE_TTL`](crate::validator::DEFAULT_CACHE_TTL), so a changed password takes effect sooner).
    /// `Duration::ZERO` asks the helper every time (identical checks in flight are still
    /// shared).
    pub fn credentials_ttl(mut self, ttl: Duration) -> Self {
        self.cache.ttl = ttl;
        self
    }

    /// How long a refusal (`ERR`) is remembered; default: not at all, as Squid does for
    /// authentication. Keep it short: a user who corrects a mistyped password is refused for
    /// up to this long.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.cache.negative_ttl = ttl;
        self
    }

    /// How many answers are remembered at most; default [`DEFAULT_CACHE_CAPACITY`](crate::validator::DEFAULT_CACHE_CAPACITY).
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache.capacity = capacity;
        self
    }

    /// A Basic helper (`user password` → `OK` / `ERR` / `BH`) behind a [`Cached`].
    ///
    /// # Errors
    ///
    /// [`SquidHelperError::ProgramNotFound`] when the program cannot be found or run,
    /// [`SquidHelperError::RandomSource`] when no key for the cache can be made.
    pub fn basic(self) -> Result<Cached<BasicHelper>, SquidHelperError> {
        let (pool, cache) = self.pool(false)?;
        Ok(cache.apply(Cached::try_new(BasicHelper::new(pool))?))
    }

    /// A Digest helper (`"user":"realm"` → `OK ha1="…"` / `ERR` / `BH`) behind a [`Cached`].
    ///
    /// # Errors
    ///
    /// [`SquidHelperError::ProgramNotFound`] when the program cannot be found or run,
    /// [`SquidHelperError::RandomSource`] when no key for the cache can be made.
    pub fn digest(self) -> Result<Cached<DigestHelper>, SquidHelperError> {
        let (pool, cache) = self.pool(true)?;
        Ok(cache.apply(Cached::try_new(DigestHelper::new(pool))?))
    }

    fn pool(self, legacy_ha1: bool) -> Result<(Pool, CacheSettings), SquidHelperError> {
        let program = resolve(&self.program)?;
        let name = program
            .file_name()
            .unwrap_or(program.as_os_str())
            .to_string_lossy();
        let name: Arc<str> = Arc::from(crate::logging::Escaped::new(&*name).to_string());
        let slots = self.children.saturating_mul(self.concurrency.max(1));
        let config = PoolConfig {
            program,
            args: self.args,
            children: self.children,
            concurrency: self.concurrency,
            queue: self
                .queue
                .unwrap_or(slots.saturating_mul(DEFAULT_QUEUE_PER_SLOT)),
            timeout: self.timeout,
            legacy_ha1,
            name,
        };
        Ok((Pool::new(config), self.cache))
    }
}

impl fmt::Debug for SquidHelper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SquidHelper")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("children", &self.children)
            .field("concurrency", &self.concurrency)
            .field("queue", &self.queue)
            .field("timeout", &self.timeout)
            .field("credentials_ttl", &self.cache.ttl)
            .field("negative_ttl", &self.cache.negative_ttl)
            .finish()
    }
}

/// The program's path: as given when it holds a `/`, else the first executable file of that
/// name on `PATH`.
fn resolve(program: &OsStr) -> Result<PathBuf, SquidHelperError> {
    let not_found = |reason: &'static str| SquidHelperError::ProgramNotFound {
        program: PathBuf::from(program),
        reason,
    };
    if program.is_empty() {
        return Err(not_found("empty program name"));
    }
    let given = Path::new(program);
    if given.components().count() > 1 || program.to_string_lossy().contains('/') {
        return if is_executable(given) {
            Ok(given.to_path_buf())
        } else if given.is_file() {
            Err(not_found("not executable"))
        } else {
            Err(not_found("no such file"))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(given))
        .find(|candidate| is_executable(candidate))
        .ok_or_else(|| not_found("not found on PATH"))
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    {
        meta.is_file()
    }
}

/// A Squid helper could not be set up.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SquidHelperError {
    /// The program cannot be found or is not an executable file.
    ProgramNotFound {
        /// The program, as given.
        program: PathBuf,
        /// Why: `no such file`, `not executable`, `not found on PATH`.
        reason: &'static str,
    },
    /// A command line could not be split into a program and arguments.
    CommandLine {
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The operating system's random source failed: no key for the cache's tags.
    RandomSource(RandomSourceError),
}

impl From<RandomSourceError> for SquidHelperError {
    fn from(error: RandomSourceError) -> Self {
        Self::RandomSource(error)
    }
}

impl fmt::Display for SquidHelperError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ProgramNotFound { program, reason } => {
                write!(f, "Squid helper {}: {reason}", program.display())
            }
            Self::CommandLine { reason } => write!(f, "Squid helper command line: {reason}"),
            Self::RandomSource(error) => write!(f, "Squid helper cache: {error}"),
        }
    }
}

impl std::error::Error for SquidHelperError {}

/// The `key=value` pairs of a helper's `OK` reply (`user=`, `group=`, `tag=`, custom `name_=`
/// pairs…), attached to the [`Identity`](crate::Identity) of an accepted request when there
/// are any; read them with `identity.get::<HelperNotes>()`. `message`, `password` and `ha1`
/// are left out.
///
/// ```
/// # use tower_proxy_auth::store::squid_helper::HelperNotes;
/// fn groups(notes: &HelperNotes) -> Vec<&str> {
///     notes.get_all("group").collect()
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HelperNotes {
    pairs: Vec<(String, String)>,
}

impl HelperNotes {
    fn from_reply(reply: &protocol::Reply) -> Self {
        let pairs = reply
            .notes
            .iter()
            .filter(|(key, _)| !matches!(key.as_str(), "message" | "password" | "ha1"))
            .map(|(key, value)| (key.clone(), value.to_string()))
            .collect();
        Self { pairs }
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`, in the order the helper wrote them.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every pair, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}
