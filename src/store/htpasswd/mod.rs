//! Users from an htpasswd file, as Apache httpd, nginx and Squid read it.
//!
//! See [`Htpasswd`]. It is two combinators of [`validator`](crate::validator) around the file:
//! a [`Cached`] (remembered successes, shared identical checks) in front of the file's users,
//! whose slow hashes run on a [`BlockingPool`].
//!
//! The modules, each importing only those before it: `format` (the [`HashFormat`] names) ←
//! `error` ← `md5_crypt` (the one MD5-crypt routine of `$1$` and `$apr1$`) ← `hash` (one
//! stored hash: its shape at load, a password against it) ← `file` (a file's lines into a
//! table of users) ← `users` (the table in force as a validator) ← `reload` (keeping it
//! current from the file) ← this one (the public `Htpasswd` and its builder).

mod error;
mod file;
mod format;
mod hash;
mod md5_crypt;
mod reload;
mod users;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;

use crate::scheme::basic::BasicCredentials;
use crate::store::watch::{self, Watched};
use crate::validator::{BlockingPool, Cached, Validation, Validator};
use file::{ParseOptions, Table};
use hash::FieldOptions;
use reload::HtpasswdFile;
use users::FileUsers;

pub use error::{HtpasswdError, LineErrorKind};
pub use format::HashFormat;

/// Default [`HtpasswdBuilder::cache_ttl`]: 5 minutes ([`validator::DEFAULT_CACHE_TTL`]).
///
/// [`validator::DEFAULT_CACHE_TTL`]: crate::validator::DEFAULT_CACHE_TTL
pub const DEFAULT_CACHE_TTL: Duration = crate::validator::DEFAULT_CACHE_TTL;
/// Default [`HtpasswdBuilder::cache_capacity`]: 10,000 remembered successes
/// ([`validator::DEFAULT_CACHE_CAPACITY`]).
///
/// [`validator::DEFAULT_CACHE_CAPACITY`]: crate::validator::DEFAULT_CACHE_CAPACITY
pub const DEFAULT_CACHE_CAPACITY: u64 = crate::validator::DEFAULT_CACHE_CAPACITY;
/// Default [`HtpasswdBuilder::watch_interval`]: 2 seconds.
pub const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(2);
/// Default [`HtpasswdBuilder::max_queued_verifications`], per verification slot
/// ([`max_concurrent_verifications`](HtpasswdBuilder::max_concurrent_verifications)): 16, the
/// default of any [`BlockingPool`] (see there for the reasoning). Apache's default bcrypt
/// cost, 5, makes a full queue drain in about 0.05 s.
pub use crate::validator::DEFAULT_MAX_QUEUED_PER_SLOT;

/// A [`Validator`] backed by an htpasswd file, the format of Apache httpd's `htpasswd` tool that
/// nginx (`auth_basic_user_file`) and Squid (`basic_ncsa_auth`) read too.
///
/// # Hash formats
///
/// | field | made by | verified with |
/// |---|---|---|
/// | `$2y$`, `$2a$`, `$2b$` bcrypt, any cost 4–31 (see [extreme costs](#extreme-costs)) | `htpasswd -B [-C cost]` | [`bcrypt`] |
/// | `$apr1$` Apache MD5 | `htpasswd -m` (its default), `openssl passwd -apr1` | MD5-crypt with Apache's magic: own code on [`md5`] (no maintained crate has it), shared with `$1$` |
/// | `$1$` MD5-crypt | `openssl passwd -1` | the same MD5-crypt code, with the C library's magic |
/// | `$5$`, `$6$` SHA-crypt, with or without `rounds=N$` | `htpasswd -2`/`-5 [-r N]`, `openssl passwd -5`/`-6` | [`sha_crypt`] |
/// | 13-character DES crypt | `htpasswd -d` | `crypt3_rs`, with the cargo feature `des-crypt` (on by default; without it such a line is a load error, [`LineErrorKind::DesCryptFeatureOff`]); only the first 8 bytes of a password count (a warning is logged per such line at load; [`HtpasswdBuilder::refuse_des`] refuses them) |
/// | `{SHA}` base64 SHA-1 | `htpasswd -s` | [`sha1`] |
/// | `{SSHA}` salted SHA-1 (nginx) | LDAP tools, `slappasswd` | [`sha1`] |
/// | `{PLAIN}` plaintext (nginx) | by hand | constant-time compare |
/// | bare plaintext | `htpasswd -p` | only with [`HtpasswdBuilder::allow_plaintext`]: Apache on Linux never matches it |
///
/// Anything else (yescrypt `$y$`, `$2x$`, `{SHA256}`, …) is an unknown format: a load error,
/// and never compared as plaintext. See Apache's
/// [password formats](https://httpd.apache.org/docs/2.4/misc/password_encryptions.html) and
/// nginx's [auth_basic_user_file](https://nginx.org/en/docs/http/ngx_http_auth_basic_module.html#auth_basic_user_file).
///
/// # File format
///
/// One `user:hash` per line, or `user:hash:comment`; `#` comment lines, blank lines, CRLF
/// endings and whitespace around a line are ignored (Apache's rules). User names are compared
/// byte for byte. A user listed twice is decided by their first line (a warning names the later
/// one); an empty hash never matches. A line that cannot be used (no `:`, an empty or unknown or
/// malformed hash) fails the load with an [`HtpasswdError`] like
/// `users.htpasswd:3: unknown hash format`; [`lenient`](HtpasswdBuilder::lenient) mode skips it
/// with a warning instead.
///
/// # Cost and safety under load
///
/// - Slow hashes (bcrypt, the crypt(3) family, apr1) are verified on a [`BlockingPool`]
///   (Tokio's blocking pool), never on a runtime worker thread, at most
///   [`max_concurrent_verifications`](HtpasswdBuilder::max_concurrent_verifications) at once
///   (default: the number of CPUs); the validator answers [`Validation::Pending`] meanwhile. The
///   SHA-1 and plaintext forms are checked at once. The layer must run inside a Tokio runtime;
///   otherwise a slow-hash check answers with an error (503).
/// - At most [`max_queued_verifications`](HtpasswdBuilder::max_queued_verifications) more wait
///   for their turn (default: [`DEFAULT_MAX_QUEUED_PER_SLOT`] per slot). A verification that
///   finds the queue full is not started: the validator answers at the first poll with a
///   [`ValidatorError::overloaded`](crate::ValidatorError::overloaded) ("verification queue is
///   full …"; 503 through the layer, never an open door), counted in [`HtpasswdStats::shed`].
///   So a flood of requests for unknown users or wrong passwords makes further requests fail
///   fast instead of making every login wait behind it. Requests answered from the cache, and
///   requests that share a verification already running or queued, never take a place in the
///   queue.
/// - Answers go through a [`Cached`] validator: a success is remembered for
///   [`cache_ttl`](HtpasswdBuilder::cache_ttl), like Squid's
///   [`credentialsttl`](https://www.squid-cache.org/Doc/config/auth_param/), under a keyed tag
///   (SipHash-2-4-128 under a random key) of the user-id and password, never the password
///   itself, together with the id of the user's entry in the loaded file. A request that
///   matches it is answered at once ([`Validation::Ready`]) for one tag and one lookup. By
///   default only successes are remembered (a wrong password costs a verification every time);
///   [`negative_cache_ttl`](HtpasswdBuilder::negative_cache_ttl) remembers failures too, as
///   Squid's `negative_ttl`. At most [`cache_capacity`](HtpasswdBuilder::cache_capacity)
///   answers are remembered. Concurrent requests with the same credentials share one
///   verification.
/// - A reload gives every changed or new entry a new id, under which nothing is remembered, so
///   an old password or a removed user is refused from the first request after it; users whose
///   line did not change keep their id, and so their remembered success.
/// - A user not in the file costs a verification against a stored hash of the file's most
///   common format and cost (leaving out [extreme costs](#extreme-costs)), then is refused, so
///   the answer's timing does not tell which users exist (see
///   [`verify_unknown_users`](HtpasswdBuilder::verify_unknown_users)).
/// - The file is watched and reloaded when it changes (see
///   [`watch`](HtpasswdBuilder::watch)); a broken new version keeps the old users serving.
/// - Warnings at load (lines skipped in lenient mode, duplicate users, DES hashes, extreme
///   costs) name file and line for the first 10 of each kind per load; the rest of each kind
///   is counted in one summary line (`users.htpasswd: and 49,990 more duplicate users …`).
///
/// # Extreme costs
///
/// Any bcrypt cost (4–31) and any SHA-crypt `rounds=` (1,000–999,999,999) is accepted, as
/// Apache httpd does, but each step of bcrypt cost doubles the time of a verification: at cost
/// 31 one takes a day or more, and holds one of the
/// [`max_concurrent_verifications`](HtpasswdBuilder::max_concurrent_verifications) slots all
/// that time. So:
///
/// - a bcrypt cost above 17 (the most Apache's `htpasswd -C` makes) or more than 1,000,000
///   SHA-crypt rounds is logged as a warning at load, naming file and line and a low estimate
///   of the time a verification takes;
/// - such a hash is never the one unknown users are verified against: that is the most common
///   (format, cost) among the other entries, or, when every entry is above those bounds, the
///   cheapest entry of the most common format;
/// - [`max_bcrypt_cost`](HtpasswdBuilder::max_bcrypt_cost) and
///   [`max_sha_crypt_rounds`](HtpasswdBuilder::max_sha_crypt_rounds) refuse such lines instead
///   (a load error naming file and line, or a skipped line in lenient mode).
///
/// # Combining with other validators
///
/// Put cheap validators first: `static_users.or(htpasswd)`, not `htpasswd.or(static_users)`.
/// An unknown user costs the htpasswd validator a dummy verification, so in the second order
/// every `StaticUsers` user would wait for a bcrypt verification (and for its turn on the
/// pool) before `StaticUsers` is asked; in the first, they are answered at once and only the
/// file's users, and names known to neither, reach the file.
///
/// `Htpasswd` is cheap to clone; the clones share the users, the cache, the pool and the
/// watcher, which stops when the last clone is dropped.
///
/// # Example
///
/// ```
/// use std::convert::Infallible;
/// use http::{header::PROXY_AUTHORIZATION, Request, Response};
/// use tower::{ServiceBuilder, ServiceExt};
/// use tower_proxy_auth::Htpasswd;
/// use tower_proxy_auth::{BasicCredentials, ProxyAuthLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // In production: Htpasswd::open("/etc/squid/passwd")?
/// let users = Htpasswd::from_contents(
///     "users.htpasswd",
///     "# made with: htpasswd -nbB -C 5 alice s3cret\n\
///      alice:$2y$05$1XF30RoosE6Dnyag0ntlSeV/xsSF4pKU3.Xk/q.5YS0z9UeBm2pOy\n",
/// )?;
/// let service = ServiceBuilder::new()
///     .layer(ProxyAuthLayer::new(users.clone()))
///     .service_fn(|_req: Request<String>| async {
///         Ok::<_, Infallible>(Response::new(String::from("hello")))
///     });
///
/// let credentials = BasicCredentials::new("alice", "s3cret")?;
/// let request = || {
///     Request::builder()
///         .uri("http://example.com/")
///         .header(PROXY_AUTHORIZATION, credentials.encode())
///         .body(String::new())
/// };
/// assert_eq!(service.clone().oneshot(request()?).await?.status(), 200);
/// assert_eq!(service.oneshot(request()?).await?.status(), 200);
/// assert_eq!(users.stats().verifications, 1); // the second request was a cache hit
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Htpasswd {
    /// The file's users behind the cache: what every request asks.
    cached: Cached<Arc<FileUsers>>,
    /// `None` for users built from contents in memory, which have no file to reload.
    reloader: Option<Arc<Watched<HtpasswdFile>>>,
}

impl Htpasswd {
    /// Loads the htpasswd file at `path` with the default options (strict, no plaintext, DES
    /// accepted with a warning, cache on, reload on changes polled every 2 s). Same as
    /// `Htpasswd::builder().open(path)`.
    ///
    /// # Errors
    ///
    /// [`HtpasswdError::Read`] when the file is missing or unreadable,
    /// [`HtpasswdError::Line`] for the first unusable line, [`HtpasswdError::Watch`] when the
    /// watcher thread cannot be started.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, HtpasswdError> {
        Self::builder().open(path)
    }

    /// Parses htpasswd `contents` held in memory (no reload); `name` stands for the file in
    /// errors and warnings. Same as `Htpasswd::builder().from_contents(name, contents)`.
    ///
    /// # Errors
    ///
    /// [`HtpasswdError::Line`] for the first unusable line.
    pub fn from_contents(
        name: impl Into<String>,
        contents: impl AsRef<[u8]>,
    ) -> Result<Self, HtpasswdError> {
        Self::builder().from_contents(name, contents)
    }

    /// Starts an [`HtpasswdBuilder`] to set options.
    pub fn builder() -> HtpasswdBuilder {
        HtpasswdBuilder::default()
    }

    /// Reads the file again now and swaps the users in, as the watcher does on a change.
    ///
    /// This blocks on file I/O: from async code call it through
    /// `tokio::task::spawn_blocking`. Useful on a signal (SIGHUP) when watching is off.
    ///
    /// # Errors
    ///
    /// The load error (the previous users stay in force; the error is also logged and kept in
    /// [`HtpasswdStats::last_reload_error`]), or [`HtpasswdError::NotAFile`] for users built
    /// with [`from_contents`](Self::from_contents).
    pub fn reload(&self) -> Result<(), HtpasswdError> {
        match &self.reloader {
            Some(reloader) => reloader.reload(),
            None => Err(HtpasswdError::NotAFile {
                name: self.users().name.clone(),
            }),
        }
    }

    /// The file's users behind the cache.
    fn users(&self) -> &FileUsers {
        self.cached.get_ref()
    }

    /// The number of users that can log in (skipped lines and duplicates not counted).
    pub fn len(&self) -> usize {
        self.users().table.load().len()
    }

    /// Whether no user can log in.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `user` (byte for byte) has a usable entry.
    pub fn contains(&self, user: &str) -> bool {
        self.users().table.load().entry(user).is_some()
    }

    /// The hash format of `user`'s entry, if usable: for finding users still on a weak format.
    ///
    /// ```
    /// use tower_proxy_auth::{store::htpasswd::HashFormat, Htpasswd};
    ///
    /// // `htpasswd -nbs old password`: unsalted SHA-1.
    /// let users = Htpasswd::from_contents("t", "old:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n")?;
    /// assert_eq!(users.format("old"), Some(HashFormat::Sha1));
    /// assert_eq!(users.format("nobody"), None);
    /// # Ok::<(), tower_proxy_auth::store::htpasswd::HtpasswdError>(())
    /// ```
    pub fn format(&self, user: &str) -> Option<HashFormat> {
        self.users()
            .table
            .load()
            .entry(user)
            .map(|entry| entry.hash.format())
    }

    /// The file as given to [`open`](Self::open), or the name given to
    /// [`from_contents`](Self::from_contents).
    pub fn name(&self) -> &str {
        &self.users().name
    }

    /// Counters and reload status, for metrics and health checks.
    pub fn stats(&self) -> HtpasswdStats {
        let cache = self.cached.stats();
        let pool = self.users().pool();
        let (generation, reload_failures, last_reload_error) = match &self.reloader {
            Some(reloader) => {
                let status = reloader.status();
                (status.generation, status.failures, status.last_error)
            }
            None => (1, 0, None),
        };
        HtpasswdStats {
            users: self.len(),
            generation,
            reload_failures,
            last_reload_error,
            verifications: pool.started(),
            cache_hits: cache.hits,
            cache_misses: cache.misses,
            coalesced: cache.coalesced,
            shed: pool.shed(),
        }
    }
}

/// Every request goes through the cache: a remembered answer at once, otherwise the file's
/// users (see [cost and safety under load](Htpasswd#cost-and-safety-under-load)).
impl Validator for Htpasswd {
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        self.cached.validate(credentials, request)
    }

    /// The id of the user's entry in the file loaded now: the same across reloads that leave
    /// the user's line unchanged.
    fn answer_version(&self, credentials: &BasicCredentials) -> u64 {
        self.cached.answer_version(credentials)
    }
}

impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd")
            .field("name", &self.name())
            .field("users", &self.len())
            .field("cache", &self.cached)
            .field("pool", self.users().pool())
            .finish_non_exhaustive()
    }
}

/// Counters and reload status of an [`Htpasswd`], from [`Htpasswd::stats`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HtpasswdStats {
    /// Users that can log in now.
    pub users: usize,
    /// Successful loads so far, the first one included (so 1 until a reload succeeds).
    pub generation: u64,
    /// Reloads that failed and left the previous users in force.
    pub reload_failures: u64,
    /// Why the latest reload failed; `None` once a later one succeeds.
    pub last_reload_error: Option<HtpasswdError>,
    /// Slow-hash verifications started on the blocking pool ([`BlockingPool::started`]:
    /// unknown users' dummy verifications included; cache hits and the cheap SHA-1/plaintext
    /// checks not).
    pub verifications: u64,
    /// Requests answered from a remembered answer (a success, or with
    /// [`negative_cache_ttl`](HtpasswdBuilder::negative_cache_ttl) a failure).
    pub cache_hits: u64,
    /// Requests the cache could not answer (each led or joined a check: a verification on the
    /// pool, or a cheap check at once), unknown users' included.
    pub cache_misses: u64,
    /// Requests that waited for an identical verification already running instead of
    /// starting their own.
    pub coalesced: u64,
    /// Verifications not started because
    /// [`max_queued_verifications`](HtpasswdBuilder::max_queued_verifications) were already
    /// waiting ([`BlockingPool::shed`]): each request was answered at once with an error (503
    /// through the layer).
    /// Requests that joined such a verification in the instant before it was refused share its
    /// error and are not counted again.
    pub shed: u64,
}

/// Options for an [`Htpasswd`], from [`Htpasswd::builder`].
///
/// ```no_run
/// use std::time::Duration;
/// use tower_proxy_auth::Htpasswd;
///
/// let users = Htpasswd::builder()
///     .lenient(true)
///     .refuse_des(true)
///     .cache_ttl(Duration::from_secs(600))
///     .negative_cache_ttl(Duration::from_secs(5))
///     .cache_capacity(50_000)
///     .max_concurrent_verifications(4)
///     .max_queued_verifications(64)
///     .max_bcrypt_cost(14)
///     .watch_interval(Duration::from_secs(5))
///     .open("/etc/nginx/htpasswd")?;
/// # Ok::<(), tower_proxy_auth::store::htpasswd::HtpasswdError>(())
/// ```
#[derive(Debug, Clone)]
pub struct HtpasswdBuilder {
    lenient: bool,
    allow_plaintext: bool,
    refuse_des: bool,
    cache_ttl: Duration,
    negative_cache_ttl: Duration,
    cache_capacity: u64,
    max_concurrent: usize,
    max_queued: Option<usize>,
    max_bcrypt_cost: Option<u32>,
    max_sha_crypt_rounds: Option<u32>,
    watch: bool,
    watch_interval: Duration,
    verify_unknown_users: bool,
}

impl Default for HtpasswdBuilder {
    fn default() -> Self {
        Self {
            lenient: false,
            allow_plaintext: false,
            refuse_des: false,
            cache_ttl: DEFAULT_CACHE_TTL,
            negative_cache_ttl: Duration::ZERO,
            cache_capacity: DEFAULT_CACHE_CAPACITY,
            max_concurrent: std::thread::available_parallelism().map_or(1, |n| n.get()),
            max_queued: None,
            max_bcrypt_cost: None,
            max_sha_crypt_rounds: None,
            watch: true,
            watch_interval: DEFAULT_WATCH_INTERVAL,
            verify_unknown_users: true,
        }
    }
}

impl HtpasswdBuilder {
    /// Skip unusable lines with a warning naming file and line, instead of failing the load
    /// (default: off). A skipped line that names a user still refuses that user, since its
    /// first line decides.
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    /// Take a field of no known format (and not starting with `$` or `{`) as a plaintext
    /// password, as Apache does on Windows (default: off, as Apache on Linux, where such a line
    /// never matches). A 13-character field of the crypt alphabet is still DES; use `{PLAIN}` to
    /// be unambiguous.
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// Refuse DES crypt lines as unusable (default: off, they are accepted with a warning that
    /// only the first 8 bytes of a password count).
    pub fn refuse_des(mut self, refuse: bool) -> Self {
        self.refuse_des = refuse;
        self
    }

    /// How long a successful check is remembered (default [`DEFAULT_CACHE_TTL`]), as Squid's
    /// `credentialsttl`: [`Cached::ttl`]. A success is remembered for one user-id and password
    /// against one entry of the file; a reload that changes the user's line, or removes the
    /// user, makes it unreachable at once. `Duration::ZERO` remembers no success; concurrent
    /// identical requests still share one verification.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Remember failed checks too, for `ttl` (Squid's `negative_ttl`; [`Cached::negative_ttl`]):
    /// a client repeating the same wrong password, or the same unknown user-id and password,
    /// is refused from memory for that long, without a verification (default:
    /// `Duration::ZERO`, failures are not remembered and each costs a verification). A reload
    /// that changes a user's line, or adds the user, still takes effect at once: the failure
    /// was remembered for the entry that was replaced. Remembered failures share
    /// [`cache_capacity`](Self::cache_capacity) with successes, so a flood of distinct wrong
    /// passwords competes for its places (moka's admission favours answers asked for often):
    /// keep it short, seconds.
    pub fn negative_cache_ttl(mut self, ttl: Duration) -> Self {
        self.negative_cache_ttl = ttl;
        self
    }

    /// How many answers may be remembered at one time (default [`DEFAULT_CACHE_CAPACITY`]):
    /// [`Cached::capacity`], a bounded [`moka`] cache, which when full drops the answers least
    /// likely to be used again (TinyLFU admission, LRU eviction) and forgets expired ones as it
    /// goes. Each remembered answer is one user-id and password (two passwords that both match
    /// one bcrypt hash past its 72 bytes, say, are two). 0 remembers nothing; concurrent
    /// identical requests still share one verification.
    pub fn cache_capacity(mut self, capacity: u64) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// How many slow-hash verifications may run at once on the blocking pool (default: the
    /// number of CPUs; at least 1): the slots of the validator's [`BlockingPool`]. Further ones
    /// wait their turn, first come first served, up to
    /// [`max_queued_verifications`](Self::max_queued_verifications).
    pub fn max_concurrent_verifications(mut self, limit: usize) -> Self {
        self.max_concurrent = limit.max(1);
        self
    }

    /// How many slow-hash verifications may wait for their turn while
    /// [`max_concurrent_verifications`](Self::max_concurrent_verifications) run (default:
    /// [`DEFAULT_MAX_QUEUED_PER_SLOT`] × that number; see there for the reasoning): the queue of
    /// the validator's [`BlockingPool`]. A request whose verification finds the queue full is
    /// answered at its first poll with a
    /// [`ValidatorError::overloaded`](crate::ValidatorError::overloaded) saying the verification
    /// queue is full (the layer answers 503), and counted in [`HtpasswdStats::shed`]. Requests answered from the cache, and requests sharing a
    /// verification already admitted, never take a place. 0: only as many as can run at once.
    ///
    /// The worst wait of an admitted request is about `queue × t / slots`, with t the time of
    /// one verification: keep it well below your clients' timeout.
    pub fn max_queued_verifications(mut self, limit: usize) -> Self {
        self.max_queued = Some(limit);
        self
    }

    /// Refuse bcrypt lines above this cost, as unusable lines: a load error naming file and
    /// line (`users.htpasswd:4: bcrypt cost 31 is above max_bcrypt_cost (14)`), or skipped with
    /// a warning in [`lenient`](Self::lenient) mode (default: `None`, any cost 4–31 is
    /// accepted, as Apache httpd does; a cost above 17 is logged with a warning). Each step of
    /// cost doubles the time of a verification, which holds a verification slot all along: see
    /// [extreme costs](Htpasswd#extreme-costs).
    pub fn max_bcrypt_cost(mut self, cost: u32) -> Self {
        self.max_bcrypt_cost = Some(cost);
        self
    }

    /// Refuse SHA-256/512-crypt lines with more than this many `rounds=` (5,000 when not
    /// written), as [`max_bcrypt_cost`](Self::max_bcrypt_cost) does for bcrypt (default:
    /// `None`, up to 999,999,999 accepted, as by Apache httpd and glibc; more than 1,000,000 is
    /// logged with a warning).
    pub fn max_sha_crypt_rounds(mut self, rounds: u32) -> Self {
        self.max_sha_crypt_rounds = Some(rounds);
        self
    }

    /// Reload the file when it changes (default: on), from a thread named `htpasswd-watch` that
    /// polls the file's size, modification time and inode and ends when the last clone of the
    /// `Htpasswd` is dropped. A changed file is loaded once its metadata has held still for a
    /// moment (the interval, at most 100 ms), so a file caught half written is not loaded. A
    /// file that fails to load, or disappears, leaves the previous users in force. Has no
    /// effect with [`from_contents`](Self::from_contents).
    pub fn watch(mut self, watch: bool) -> Self {
        self.watch = watch;
        self
    }

    /// How often the watcher looks at the file's metadata (default
    /// [`DEFAULT_WATCH_INTERVAL`], 2 s): a change is in force at most about this long plus
    /// 100 ms (plus the time to parse: about 0.1 s per 100,000 users) after the writer is done.
    /// At least 1 ms.
    pub fn watch_interval(mut self, interval: Duration) -> Self {
        self.watch_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Verify the password of a user who is not in the file against a stored hash of the file's
    /// most common format and cost before refusing (default: on), so that response times do
    /// not reveal which users exist.
    ///
    /// In `htpasswd.or(other)` every user of `other` is unknown to the file and so pays that
    /// verification (and waits its turn for the pool) before `other` is asked: prefer
    /// `other.or(htpasswd)` when `other` is cheap, which keeps this on. Turn it off when that
    /// delay matters more than hiding which users the file has; Apache httpd, nginx and Squid
    /// do not hide it either.
    pub fn verify_unknown_users(mut self, verify: bool) -> Self {
        self.verify_unknown_users = verify;
        self
    }

    /// Loads the htpasswd file at `path` and, with [`watch`](Self::watch) on, starts the
    /// thread that reloads it. Needs no async runtime.
    ///
    /// # Errors
    ///
    /// [`HtpasswdError::Read`] when the file is missing or unreadable,
    /// [`HtpasswdError::Line`] for the first unusable line (unless lenient),
    /// [`HtpasswdError::Watch`] when the watcher thread cannot be started.
    pub fn open(self, path: impl AsRef<Path>) -> Result<Htpasswd, HtpasswdError> {
        let path = path.as_ref().to_path_buf();
        let name: Arc<str> = Arc::from(path.display().to_string());
        let first = watch::first_read(&path).map_err(|source| HtpasswdError::Read {
            file: name.clone(),
            source: Arc::new(source),
        })?;
        let table = Table::parse(&name, &first.contents, self.parse_options())?;
        let (cached, users) = self.cached(name.clone(), table)?;
        let watch = self.watch.then_some(self.watch_interval);
        let file = Arc::new(HtpasswdFile {
            users,
            options: self.parse_options(),
        });
        let reloader =
            Watched::start(file, path, &first, watch).map_err(|source| HtpasswdError::Watch {
                file: name,
                source: Arc::new(source),
            })?;
        Ok(Htpasswd {
            cached,
            reloader: Some(reloader),
        })
    }

    /// Parses htpasswd `contents` held in memory; `name` stands for the file in errors and
    /// warnings. There is nothing to watch or reload.
    ///
    /// # Errors
    ///
    /// [`HtpasswdError::Line`] for the first unusable line (unless lenient).
    pub fn from_contents(
        self,
        name: impl Into<String>,
        contents: impl AsRef<[u8]>,
    ) -> Result<Htpasswd, HtpasswdError> {
        let name: Arc<str> = Arc::from(name.into());
        let table = Table::parse(&name, contents.as_ref(), self.parse_options())?;
        let (cached, _) = self.cached(name, table)?;
        Ok(Htpasswd {
            cached,
            reloader: None,
        })
    }

    fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            lenient: self.lenient,
            field: FieldOptions {
                allow_plaintext: self.allow_plaintext,
                refuse_des: self.refuse_des,
                max_bcrypt_cost: self.max_bcrypt_cost,
                max_sha_crypt_rounds: self.max_sha_crypt_rounds,
            },
            slots: self.max_concurrent,
        }
    }

    /// The users of `table` on a pool of this builder's size, behind a cache of its settings;
    /// and the users themselves, for the reloader.
    fn cached(
        &self,
        name: Arc<str>,
        table: Table,
    ) -> Result<(Cached<Arc<FileUsers>>, Arc<FileUsers>), HtpasswdError> {
        let queue = self.max_queued.unwrap_or_else(|| {
            self.max_concurrent
                .saturating_mul(DEFAULT_MAX_QUEUED_PER_SLOT)
        });
        let pool = BlockingPool::new(self.max_concurrent, queue);
        let users = Arc::new(FileUsers::new(
            name.clone(),
            table,
            pool,
            self.verify_unknown_users,
        ));
        let cached = Cached::try_new(users.clone())
            .map_err(|source| HtpasswdError::RandomSource { file: name, source })?
            .ttl(self.cache_ttl)
            .negative_ttl(self.negative_cache_ttl)
            .capacity(self.cache_capacity);
        Ok((cached, users))
    }
}
