//! [`Cached`]: a validator's answers remembered for a while, and identical checks in flight
//! shared.
//!
//! This is Squid's `credentialsttl` idea (<https://www.squid-cache.org/Doc/config/auth_param/>):
//! a proxy sees the same credentials on every request of a client, and a slow check (bcrypt at
//! cost 12 is about a quarter of a second, an LDAP bind a network round trip, a Squid helper a
//! trip through a pipe) must not run each time.
//!
//! - A success is remembered for the TTL under a keyed tag (SipHash-2-4-128 under a random key)
//!   of the user-id and password, never the password itself, together with the validator's
//!   [`answer_version`](super::Validator::answer_version): a validator whose basis changed (a
//!   reloaded htpasswd file with a new hash for the user) gets a new version, so an answer
//!   remembered under the old one is never given again. A hit costs one tag and one lookup.
//! - A failure is remembered only when a negative TTL is set (Squid's `negative_ttl`); then a
//!   client repeating the same wrong password is answered from memory for that long.
//! - `Forbid` and errors are never remembered: they depend on the request, or on the moment.
//! - Requests with the same credentials that arrive while a check runs wait for its answer
//!   instead of starting their own. If every waiter goes away the in-flight entry is removed;
//!   if the one driving the check goes away, another waiter takes over with its own check.
//! - At most `capacity` answers are remembered ([`moka`]'s bounded cache: the least likely to be
//!   used again is dropped first). In front of it, a table of up to [`RECENT_SLOTS`] answers
//!   found recently, one per slot of their tag's low bits, is looked at first: a hit there is
//!   one atomic load and a clock read instead of moka's bookkeeping (a cached accept then costs
//!   about what a [`StaticUsers`](crate::StaticUsers) accept does). Its copies keep their TTL,
//!   and an answer moka dropped for room may be served from there until its TTL ends.
//!
//! A [`DigestSecrets`] source is cached the same way: a found secret (the HA1 and identity)
//! is remembered for the TTL under a tag of the user, realm and hash function (under a key of
//! its own), an unknown user for the negative TTL, and identical lookups in flight are shared.
//! A remembered HA1 is a password equivalent held in memory (zeroized when it is dropped).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use http::request::Parts;
use moka::sync::Cache;
use tokio::sync::OnceCell;

use super::digest::{DigestSecrets, SecretLookup};
use super::{Decision, Validation, Validator, ValidatorError};
use crate::identity::Identity;
use crate::outcome::Answer;
use crate::realm::Realm;
use crate::scheme::basic::BasicCredentials;
use crate::scheme::digest::{DigestQuery, DigestSecret, DigestUser, HashFunction};
use crate::secret::{RandomSourceError, SecretKey, Tag};

/// Default [`Cached::ttl`]: 5 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// Default [`Cached::capacity`]: 10,000 remembered answers.
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// How a validator built by a builder of this crate is cached (the sources that ask a helper
/// or a service keep these three settings and apply them when they build their [`Cached`]).
#[cfg(any(feature = "squid-helper", feature = "forward-auth"))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct CacheSettings {
    /// [`Cached::ttl`].
    pub(crate) ttl: Duration,
    /// [`Cached::negative_ttl`].
    pub(crate) negative_ttl: Duration,
    /// [`Cached::capacity`].
    pub(crate) capacity: u64,
}

#[cfg(any(feature = "squid-helper", feature = "forward-auth"))]
impl Default for CacheSettings {
    /// [`DEFAULT_TTL`], no negative caching, [`DEFAULT_CAPACITY`].
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            negative_ttl: Duration::ZERO,
            capacity: DEFAULT_CAPACITY,
        }
    }
}

#[cfg(any(feature = "squid-helper", feature = "forward-auth"))]
impl CacheSettings {
    /// `cached` with these settings.
    pub(crate) fn apply<V>(self, cached: Cached<V>) -> Cached<V> {
        cached
            .ttl(self.ttl)
            .negative_ttl(self.negative_ttl)
            .capacity(self.capacity)
    }
}
/// The most answers kept in the table of recent hits in front of the cache (fewer when the
/// capacity is smaller).
pub const RECENT_SLOTS: usize = 1024;

/// A validator in front of which answers are remembered and identical checks shared.
///
/// Answers are remembered, and checks in flight shared, under the credentials and what the
/// validator says its answer also depends on ([`Validator::answer_context`]; forward auth:
/// the method, target, client address and copied headers it sends). Wrap a validator that
/// allows or forbids by anything else of the request only if it says so there; otherwise ask
/// such a rule after the cache (`cached.or(...)` does not help: compose the per-target rule in
/// a validator of its own around the cache).
///
/// Implements [`Validator`] when `V` does (Basic), and [`DigestSecrets`] when `V` does
/// (Digest): a found secret is remembered for the TTL under a tag of the user, realm and hash
/// function, an unknown user for the negative TTL (a remembered HA1 is a password equivalent
/// held in memory, zeroized when dropped).
///
/// ```
/// use std::time::Duration;
/// use tower_proxy_auth::validator::{from_async_fn, Cached};
/// use tower_proxy_auth::{BasicCredentials, Decision, Identity, ProxyAuthLayer};
///
/// let remote = from_async_fn(|creds: BasicCredentials, _req: &http::request::Parts| async move {
///     // ask the user store over the network
///     Ok::<_, std::io::Error>(Decision::Allow(Identity::new(creds.user_id())))
/// });
/// let cached = Cached::new(remote)
///     .ttl(Duration::from_secs(600))
///     .negative_ttl(Duration::from_secs(5))
///     .capacity(50_000);
/// # let _ = ProxyAuthLayer::new(cached);
/// ```
pub struct Cached<V> {
    inner: Arc<V>,
    state: Arc<CacheState>,
}

struct CacheState {
    key: SecretKey,
    /// The key of Digest lookups' tags, so that they never meet Basic ones.
    digest_key: SecretKey,
    ttl: Duration,
    negative_ttl: Option<Duration>,
    capacity: u64,
    /// `None` when nothing is remembered (a zero TTL or capacity).
    entries: Option<Cache<Tag, Stored>>,
    /// Recent answers, checked before `entries`; empty when nothing is remembered.
    recent: Box<[ArcSwapOption<Recent>]>,
    /// Bumped by [`Cached::invalidate_all`]; part of every key.
    epoch: AtomicU64,
    inflight: Mutex<Inflight>,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
}

/// What a check found: a password check's decision, or a secret lookup's secret (`None` for
/// an unknown user).
#[derive(Clone)]
enum Found {
    Decision(Decision),
    Secret(Option<DigestSecret>),
}

/// One check in flight per key, with the answer its waiters share.
type Shared = Arc<OnceCell<Result<Found, ValidatorError>>>;
type Inflight = HashMap<Tag, Shared>;

/// A remembered answer.
#[derive(Clone)]
enum Remembered {
    /// A password check allowed, with this identity.
    Allow(Identity),
    /// A password check rejected.
    Reject,
    /// A secret lookup found this secret.
    Secret(DigestSecret),
    /// A secret lookup found no such user.
    Unknown,
}

impl Remembered {
    fn is_positive(&self) -> bool {
        matches!(self, Self::Allow(_) | Self::Secret(_))
    }

    #[inline]
    fn found(self) -> Found {
        match self {
            Self::Allow(identity) => Found::Decision(Decision::Allow(identity)),
            Self::Reject => Found::Decision(Decision::Reject),
            Self::Secret(secret) => Found::Secret(Some(secret)),
            Self::Unknown => Found::Secret(None),
        }
    }
}

/// A remembered answer with the moment it expires.
#[derive(Clone)]
struct Stored {
    remembered: Remembered,
    expires: Instant,
}

/// A copy of a stored answer in the table of recent hits.
struct Recent {
    tag: Tag,
    stored: Stored,
}

/// How long each remembered answer lives: the TTL for successes, the negative TTL for failures.
struct Lifetimes {
    ttl: Duration,
    negative_ttl: Duration,
}

impl Lifetimes {
    fn of(&self, remembered: &Remembered) -> Duration {
        if remembered.is_positive() {
            self.ttl
        } else {
            self.negative_ttl
        }
    }
}

impl<K> moka::Expiry<K, Stored> for Lifetimes {
    fn expire_after_create(&self, _: &K, value: &Stored, _: Instant) -> Option<Duration> {
        Some(self.of(&value.remembered))
    }
}

/// Counters of a [`Cached`] validator, from [`Cached::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Requests answered from a remembered answer.
    pub hits: u64,
    /// Requests the cache could not answer (each led or joined a check).
    pub misses: u64,
    /// Requests that waited for an identical check already running instead of starting one.
    pub coalesced: u64,
}

impl<V> Cached<V> {
    /// Remembers `validator`'s successes for [`DEFAULT_TTL`], at most [`DEFAULT_CAPACITY`] of
    /// them, and no failures.
    ///
    /// # Panics
    ///
    /// When the operating system's random source fails (no key for the tags can be made); see
    /// [`try_new`](Self::try_new).
    pub fn new(validator: V) -> Self {
        match Self::try_new(validator) {
            Ok(cached) => cached,
            Err(error) => panic!("Cached::new: {error}"),
        }
    }

    /// [`new`](Self::new), or the error when the operating system's random source fails.
    ///
    /// # Errors
    ///
    /// [`RandomSourceError`].
    pub fn try_new(validator: V) -> Result<Self, RandomSourceError> {
        let key = SecretKey::random()?;
        let digest_key = SecretKey::random()?;
        Ok(Self {
            inner: Arc::new(validator),
            state: Arc::new(CacheState::new(
                (key, digest_key),
                DEFAULT_TTL,
                None,
                DEFAULT_CAPACITY,
            )),
        })
    }

    /// How long a success is remembered. `Duration::ZERO` remembers nothing (identical checks
    /// in flight are still shared).
    pub fn ttl(self, ttl: Duration) -> Self {
        let (negative_ttl, capacity) = (self.state.negative_ttl, self.state.capacity);
        self.rebuilt(ttl, negative_ttl, capacity)
    }

    /// Remembers failures too, for `ttl` (Squid's `negative_ttl`); default: failures are not
    /// remembered. Keep it short: a user who fixes a mistyped password is refused for up to
    /// this long.
    pub fn negative_ttl(self, ttl: Duration) -> Self {
        let negative = (!ttl.is_zero()).then_some(ttl);
        let (ttl, capacity) = (self.state.ttl, self.state.capacity);
        self.rebuilt(ttl, negative, capacity)
    }

    /// How many answers may be remembered at once. 0 remembers nothing.
    pub fn capacity(self, capacity: u64) -> Self {
        let (ttl, negative_ttl) = (self.state.ttl, self.state.negative_ttl);
        self.rebuilt(ttl, negative_ttl, capacity)
    }

    fn rebuilt(self, ttl: Duration, negative_ttl: Option<Duration>, capacity: u64) -> Self {
        let keys = (self.state.key.clone(), self.state.digest_key.clone());
        Self {
            state: Arc::new(CacheState::new(keys, ttl, negative_ttl, capacity)),
            inner: self.inner,
        }
    }

    /// Forgets every remembered answer (checks in flight are not stopped, but their answers
    /// are not remembered under the new keys).
    pub fn invalidate_all(&self) {
        self.state.epoch.fetch_add(1, Relaxed);
        if let Some(entries) = &self.state.entries {
            entries.invalidate_all();
        }
        for slot in self.state.recent.iter() {
            slot.store(None);
        }
    }

    /// The validator behind the cache.
    pub fn get_ref(&self) -> &V {
        &self.inner
    }

    /// How long a success is remembered.
    pub fn success_ttl(&self) -> Duration {
        self.state.ttl
    }

    /// How long a failure is remembered, if at all.
    pub fn failure_ttl(&self) -> Option<Duration> {
        self.state.negative_ttl
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.state.hits.load(Relaxed),
            misses: self.state.misses.load(Relaxed),
            coalesced: self.state.coalesced.load(Relaxed),
        }
    }

    /// How many answers are remembered now (approximate while checks run).
    pub fn len(&self) -> u64 {
        self.state.entries.as_ref().map_or(0, |e| {
            e.run_pending_tasks();
            e.entry_count()
        })
    }

    /// Whether no answer is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CacheState {
    fn new(
        (key, digest_key): (SecretKey, SecretKey),
        ttl: Duration,
        negative_ttl: Option<Duration>,
        capacity: u64,
    ) -> Self {
        let remembers = capacity > 0 && (!ttl.is_zero() || negative_ttl.is_some());
        let slots = if remembers {
            usize::try_from(capacity)
                .unwrap_or(RECENT_SLOTS)
                .clamp(1, RECENT_SLOTS)
                .next_power_of_two()
        } else {
            0
        };
        let recent = (0..slots).map(|_| ArcSwapOption::empty()).collect();
        let entries = remembers.then(|| {
            Cache::builder()
                .max_capacity(capacity)
                .expire_after(Lifetimes {
                    ttl,
                    negative_ttl: negative_ttl.unwrap_or(Duration::ZERO),
                })
                .build()
        });
        Self {
            key,
            digest_key,
            ttl,
            negative_ttl,
            capacity,
            entries,
            recent,
            epoch: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
        }
    }

    /// The key of `credentials` checked against `version` of the validator's users, for a
    /// request with `context` ([`Validator::answer_context`]).
    fn tag(&self, version: u64, context: &[u8], credentials: &BasicCredentials) -> Tag {
        self.key.tag_credentials_in(
            [self.epoch.load(Relaxed), version],
            context,
            credentials.user_id_bytes().len(),
            credentials.decoded(),
        )
    }

    /// The key of a Digest lookup: the user (by name or by userhash), the realm and the hash
    /// function (an MD5 HA1 does not serve SHA-256).
    fn digest_tag(&self, query: &DigestQuery) -> Tag {
        let epoch = self.epoch.load(Relaxed).to_le_bytes();
        let (kind, user): (&[u8], &[u8]) = match &query.user {
            DigestUser::Name(name) => (b"name", name),
            DigestUser::Hash(hash) => (b"hash", hash.as_bytes()),
        };
        let hash = hash_label(query.algorithm.hash());
        self.digest_key
            .tag(&[&epoch, kind, user, query.realm.as_bytes(), hash])
    }

    /// The slot of `tag` in the table of recent hits.
    #[inline]
    fn recent_slot(&self, tag: &Tag) -> Option<&ArcSwapOption<Recent>> {
        let len = self.recent.len();
        // `len` is a power of two: the low bits of the tag pick the slot.
        let index = (tag.to_u128() as usize) & len.checked_sub(1)?;
        self.recent.get(index)
    }

    /// A password check's answer from the table of recent hits, if it is there: the hot path
    /// of a cached accept, without the detour through [`Found`].
    #[inline]
    fn recent_decision(&self, tag: &Tag) -> Option<Decision> {
        let slot = self.recent_slot(tag)?;
        let recent = slot.load();
        let recent = recent.as_deref()?;
        if !bool::from(recent.tag.ct_eq(tag)) || Instant::now() >= recent.stored.expires {
            return None;
        }
        let decision = match &recent.stored.remembered {
            Remembered::Allow(identity) => Decision::Allow(identity.clone()),
            Remembered::Reject => Decision::Reject,
            _ => return None,
        };
        self.hits.fetch_add(1, Relaxed);
        Some(decision)
    }

    #[inline]
    fn lookup(&self, tag: &Tag) -> Option<Found> {
        let slot = self.recent_slot(tag)?;
        if let Some(recent) = &*slot.load() {
            if bool::from(recent.tag.ct_eq(tag)) && Instant::now() < recent.stored.expires {
                self.hits.fetch_add(1, Relaxed);
                return Some(recent.stored.remembered.clone().found());
            }
        }
        let stored = self.entries.as_ref()?.get(tag)?;
        if Instant::now() >= stored.expires {
            return None;
        }
        self.hits.fetch_add(1, Relaxed);
        let found = stored.remembered.clone().found();
        slot.store(Some(Arc::new(Recent {
            tag: tag.clone(),
            stored,
        })));
        Some(found)
    }

    fn remember(&self, tag: &Tag, answer: &Result<Found, ValidatorError>) {
        let Some(entries) = &self.entries else {
            return;
        };
        let positive = !self.ttl.is_zero();
        let negative = self.negative_ttl.is_some();
        let remembered = match answer {
            Ok(Found::Decision(Decision::Allow(identity))) if positive => {
                Remembered::Allow(identity.clone())
            }
            Ok(Found::Decision(Decision::Reject)) if negative => Remembered::Reject,
            Ok(Found::Secret(Some(secret))) if positive => Remembered::Secret(secret.clone()),
            Ok(Found::Secret(None)) if negative => Remembered::Unknown,
            _ => return,
        };
        let lifetimes = Lifetimes {
            ttl: self.ttl,
            negative_ttl: self.negative_ttl.unwrap_or(Duration::ZERO),
        };
        let stored = Stored {
            expires: deadline(lifetimes.of(&remembered)),
            remembered,
        };
        if let Some(slot) = self.recent_slot(tag) {
            slot.store(Some(Arc::new(Recent {
                tag: tag.clone(),
                stored: stored.clone(),
            })));
        }
        entries.insert(tag.clone(), stored);
    }

    fn lock(&self) -> MutexGuard<'_, Inflight> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The remembered answer, or the in-flight entry to wait on and whether this caller leads
    /// the check.
    #[inline]
    fn begin(self: &Arc<Self>, tag: Tag) -> Result<Found, (Waiter, bool)> {
        if let Some(found) = self.lookup(&tag) {
            return Ok(found);
        }
        let mut inflight = self.lock();
        // A check that finished between the lookup and here left its answer behind.
        if let Some(found) = self.lookup(&tag) {
            return Ok(found);
        }
        self.misses.fetch_add(1, Relaxed);
        let (cell, leader) = match inflight.get(&tag) {
            Some(cell) => {
                self.coalesced.fetch_add(1, Relaxed);
                (cell.clone(), false)
            }
            None => {
                let cell = Arc::new(OnceCell::new());
                inflight.insert(tag.clone(), cell.clone());
                (cell, true)
            }
        };
        drop(inflight);
        let waiter = Waiter {
            state: self.clone(),
            tag,
            cell: Some(cell),
        };
        Err((waiter, leader))
    }
}

/// The moment `ttl` from now (ten years at most: an `Instant` cannot hold any duration).
fn deadline(ttl: Duration) -> Instant {
    const LONGEST: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
    let now = Instant::now();
    now.checked_add(ttl.min(LONGEST)).unwrap_or(now)
}

/// A stable label per hash function, for the lookup tags.
fn hash_label(hash: HashFunction) -> &'static [u8] {
    match hash {
        HashFunction::Md5 => b"MD5",
        HashFunction::Sha256 => b"SHA-256",
        HashFunction::Sha512_256 => b"SHA-512-256",
    }
}

/// A password check's answer from what a check found (a secret can never be found under a
/// password check's tag: the two kinds use different keys).
#[inline]
fn decision(found: Result<Found, ValidatorError>) -> Result<Decision, ValidatorError> {
    match found? {
        Found::Decision(decision) => Ok(decision),
        Found::Secret(_) => Err(ValidatorError::new("cache entry of another kind")),
    }
}

/// A secret lookup's answer from what a check found.
fn secret(found: Result<Found, ValidatorError>) -> Result<Option<DigestSecret>, ValidatorError> {
    match found? {
        Found::Secret(secret) => Ok(secret),
        Found::Decision(_) => Err(ValidatorError::new("cache entry of another kind")),
    }
}

/// The flow both kinds share once a check is not in the table of recent hits: the leader asks
/// now (`ask`) and settles what it found for whoever waits on the same tag; any other waits,
/// ready to ask on its own (`ask_alone`, made of owned copies only then) should the leader go
/// away. `wrap` and `unwrap` turn the kind's answer into what the cache stores and back.
fn coalesced<T, F>(
    waiter: Waiter,
    leader: bool,
    ask: impl FnOnce() -> Answer<Result<T, ValidatorError>>,
    ask_alone: impl FnOnce() -> F,
    wrap: fn(T) -> Found,
    unwrap: fn(Result<Found, ValidatorError>) -> Result<T, ValidatorError>,
) -> Answer<Result<T, ValidatorError>>
where
    T: Send + 'static,
    F: std::future::Future<Output = Result<T, ValidatorError>> + Send + 'static,
{
    if !leader {
        let check = ask_alone();
        return Answer::pending(async move {
            unwrap(waiter.wait(async move { check.await.map(wrap) }).await)
        });
    }
    match ask() {
        Answer::Ready(answer) => {
            let found = answer.map(wrap);
            waiter.settle(&found);
            Answer::Ready(unwrap(found))
        }
        Answer::Pending(check) => Answer::pending(async move {
            unwrap(waiter.wait(async move { check.await.map(wrap) }).await)
        }),
    }
}

impl<V: Validator> Validator for Cached<V> {
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        let state = &self.state;
        let mut context = Vec::new();
        self.inner.answer_context(request, &mut context);
        let tag = state.tag(
            self.inner.answer_version(credentials),
            &context,
            credentials,
        );
        if let Some(decision) = state.recent_decision(&tag) {
            return Validation::Ready(Ok(decision));
        }
        let (waiter, leader) = match state.begin(tag) {
            Ok(found) => return Validation::Ready(decision(Ok(found))),
            Err(waiting) => waiting,
        };
        let ask_alone = || {
            let (inner, credentials, request) =
                (self.inner.clone(), credentials.clone(), request.clone());
            async move { inner.validate(&credentials, &request).resolve().await }
        };
        coalesced(
            waiter,
            leader,
            || self.inner.validate(credentials, request),
            ask_alone,
            Found::Decision,
            decision,
        )
    }

    fn answer_version(&self, credentials: &BasicCredentials) -> u64 {
        self.inner.answer_version(credentials)
    }

    fn answer_context(&self, request: &Parts, context: &mut Vec<u8>) {
        self.inner.answer_context(request, context);
    }
}

impl<V: DigestSecrets> DigestSecrets for Cached<V> {
    fn lookup(&self, query: &DigestQuery, request: &Parts) -> SecretLookup {
        let tag = self.state.digest_tag(query);
        let (waiter, leader) = match self.state.begin(tag) {
            Ok(found) => return Answer::Ready(secret(Ok(found))),
            Err(waiting) => waiting,
        };
        let ask_alone = || {
            let (inner, query, request) = (self.inner.clone(), query.clone(), request.clone());
            async move { inner.lookup(&query, &request).resolve().await }
        };
        coalesced(
            waiter,
            leader,
            || self.inner.lookup(query, request),
            ask_alone,
            Found::Secret,
            secret,
        )
    }

    fn serves(&self, hash: HashFunction) -> bool {
        self.inner.serves(hash)
    }

    fn supports_userhash(&self) -> bool {
        self.inner.supports_userhash()
    }

    fn check_realm(&self, realm: &Realm) -> Result<(), String> {
        self.inner.check_realm(realm)
    }
}

impl<V> Clone for Cached<V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            state: self.state.clone(),
        }
    }
}

impl<V> fmt::Debug for Cached<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cached")
            .field("ttl", &self.state.ttl)
            .field("negative_ttl", &self.state.negative_ttl)
            .field("capacity", &self.state.capacity)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// One waiter's hold on an in-flight entry; the last one to leave removes the entry, whether
/// the check finished or every waiter was cancelled.
struct Waiter {
    state: Arc<CacheState>,
    tag: Tag,
    cell: Option<Shared>,
}

impl Waiter {
    /// Records an answer the leader got at once, for the waiters that joined meanwhile.
    fn settle(self, answer: &Result<Found, ValidatorError>) {
        self.state.remember(&self.tag, answer);
        if let Some(cell) = &self.cell {
            let _ = cell.set(answer.clone());
        }
    }

    /// The shared answer, running `check` if no other waiter is running one.
    async fn wait<F>(self, check: F) -> Result<Found, ValidatorError>
    where
        F: std::future::Future<Output = Result<Found, ValidatorError>>,
    {
        // The cell is borrowed from `self`, not cloned: the Arc counts `Drop` reads must be
        // only those of the map and the waiters, or the last waiter would leave the entry (and
        // its answer, past any TTL) in the map.
        let Some(cell) = self.cell.as_deref() else {
            return Err(ValidatorError::new("in-flight check lost"));
        };
        let state = &self.state;
        let tag = &self.tag;
        let answer = cell
            .get_or_init(|| async {
                let answer = check.await;
                state.remember(tag, &answer);
                answer
            })
            .await
            .clone();
        drop(self);
        answer
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else {
            return;
        };
        let mut inflight = self.state.lock();
        let ours = inflight
            .get(&self.tag)
            .is_some_and(|current| Arc::ptr_eq(current, &cell));
        // Every holder's Arc is cloned and dropped under this lock, so after dropping ours a
        // count of 1 means only the map holds it.
        drop(cell);
        if ours && inflight.get(&self.tag).map(Arc::strong_count) == Some(1) {
            inflight.remove(&self.tag);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validator::{from_async_fn, from_fn};
    use std::sync::atomic::AtomicUsize;

    fn parts() -> Parts {
        http::Request::new(()).into_parts().0
    }

    fn creds(user: &str, password: &str) -> BasicCredentials {
        BasicCredentials::new(user, password).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn coalesces_remembers_successes_and_takes_over_from_a_cancelled_leader() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let slow = from_async_fn(move |c: BasicCredentials, _: &Parts| {
            counter.fetch_add(1, Relaxed);
            let mut gate = gate_rx.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                if c.password() == b"pw" {
                    Decision::Allow(Identity::new(c.user_id()))
                } else {
                    Decision::Reject
                }
            }
        });
        let cached = Cached::new(slow);
        let p = parts();
        // The leader is cancelled before its check finishes...
        let leader = cached.validate(&creds("alice", "pw"), &p);
        let follower = cached.validate(&creds("alice", "pw"), &p);
        let Validation::Pending(leader) = leader else {
            panic!("pending")
        };
        let mut leader = Box::pin(leader);
        assert!(futures_poll_once(leader.as_mut()).is_none());
        drop(leader);
        // ...the follower takes over and both its check and the answer are shared.
        gate_tx.send_replace(true);
        assert!(matches!(follower.resolve().await, Ok(Decision::Allow(_))));
        assert!(matches!(
            cached.validate(&creds("alice", "pw"), &p),
            Validation::Ready(Ok(Decision::Allow(_)))
        ));
        assert_eq!(
            calls.load(Relaxed),
            2,
            "the leader's check and the follower's"
        );
        // Failures are not remembered by default.
        assert!(matches!(
            cached.validate(&creds("alice", "nope"), &p).resolve().await,
            Ok(Decision::Reject)
        ));
        assert!(matches!(
            cached.validate(&creds("alice", "nope"), &p),
            Validation::Pending(_)
        ));
        assert_eq!(cached.stats().hits, 1);
        // Every finished check left the map of checks in flight.
        assert!(cached.state.lock().is_empty());
    }

    #[tokio::test]
    async fn a_finished_check_leaves_nothing_in_flight() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let v = from_async_fn(move |_: BasicCredentials, _: &Parts| {
            counter.fetch_add(1, Relaxed);
            async { Decision::Reject }
        });
        let cached = Cached::new(v);
        let p = parts();
        for round in 1..=3 {
            let answer = cached.validate(&creds("eve", "x"), &p).resolve().await;
            assert!(matches!(answer, Ok(Decision::Reject)));
            assert!(cached.state.lock().is_empty(), "round {round}");
            assert_eq!(
                calls.load(Relaxed),
                round,
                "an unremembered failure is checked again"
            );
        }
        assert_eq!(cached.stats().coalesced, 0);
    }

    #[test]
    fn successes_expire_after_the_ttl() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let v = from_fn(move |c: &BasicCredentials, _: &Parts| {
            counter.fetch_add(1, Relaxed);
            Decision::Allow(Identity::new(c.user_id()))
        });
        let cached = Cached::new(v).ttl(Duration::from_millis(100));
        let p = parts();
        let _ = cached.validate(&creds("a", "b"), &p);
        let _ = cached.validate(&creds("a", "b"), &p);
        assert_eq!((calls.load(Relaxed), cached.stats().hits), (1, 1));
        std::thread::sleep(Duration::from_millis(250));
        let _ = cached.validate(&creds("a", "b"), &p);
        assert_eq!(
            (calls.load(Relaxed), cached.stats().hits),
            (2, 1),
            "expired"
        );
    }

    #[test]
    fn capacity_bounds_the_answers_remembered() {
        let v =
            from_fn(|c: &BasicCredentials, _: &Parts| Decision::Allow(Identity::new(c.user_id())));
        let cached = Cached::new(v).capacity(10);
        let p = parts();
        for i in 0..200 {
            let _ = cached.validate(&creds(&format!("user-{i}"), "pw"), &p);
        }
        assert!(cached.len() <= 10, "{} remembered", cached.len());
        assert!(!cached.is_empty());
    }

    #[test]
    fn negative_ttl_remembers_failures_and_forbid_and_errors_are_never_remembered() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let v = from_fn(move |c: &BasicCredentials, _: &Parts| {
            counter.fetch_add(1, Relaxed);
            match c.user_id() {
                "down" => Err(ValidatorError::new("down")),
                "forbidden" => Ok(Decision::Forbid),
                _ => Ok(Decision::Reject),
            }
        });
        let cached = Cached::new(v).negative_ttl(Duration::from_secs(60));
        let p = parts();
        for user in ["eve", "eve", "down", "down", "forbidden", "forbidden"] {
            let _ = cached.validate(&creds(user, "x"), &p);
        }
        assert_eq!(
            calls.load(Relaxed),
            5,
            "only eve's second try was remembered"
        );
        assert_eq!(cached.stats().hits, 1);
        cached.invalidate_all();
        let _ = cached.validate(&creds("eve", "x"), &p);
        assert_eq!(calls.load(Relaxed), 6);
    }

    #[test]
    fn a_new_answer_version_is_never_answered_from_memory() {
        struct Versioned(AtomicU64);
        impl Validator for Versioned {
            fn validate(&self, c: &BasicCredentials, _: &Parts) -> Validation {
                Decision::Allow(Identity::new(c.user_id())).into()
            }
            fn answer_version(&self, _: &BasicCredentials) -> u64 {
                self.0.load(Relaxed)
            }
        }
        let cached = Cached::new(Versioned(AtomicU64::new(1)));
        let p = parts();
        let _ = cached.validate(&creds("a", "b"), &p);
        let _ = cached.validate(&creds("a", "b"), &p);
        assert_eq!(cached.stats().hits, 1);
        cached.get_ref().0.store(2, Relaxed);
        let _ = cached.validate(&creds("a", "b"), &p);
        assert_eq!(cached.stats().hits, 1, "version 2 is a miss");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn digest_lookups_are_coalesced_remembered_and_keyed_by_user_realm_and_hash() {
        use crate::scheme::digest::{Algorithm, Secret};
        use crate::validator::secrets_from_async_fn;
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        let source = secrets_from_async_fn(move |query: DigestQuery, _: &Parts| {
            counter.fetch_add(1, Relaxed);
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Ok::<_, std::convert::Infallible>(match &query.user {
                    DigestUser::Name(name) if name == b"Mufasa" => Some(DigestSecret::new(
                        Identity::new("Mufasa"),
                        Secret::password("Circle of Life"),
                    )),
                    _ => None,
                })
            }
        });
        let cached = Cached::new(source).negative_ttl(Duration::from_secs(60));
        let p = parts();
        let query = |user: &[u8], realm: &str, algorithm| DigestQuery {
            user: DigestUser::Name(user.to_vec()),
            realm: realm.into(),
            algorithm,
        };
        let mufasa = query(b"Mufasa", "proxy", Algorithm::Md5);
        let (a, b) = tokio::join!(
            cached.lookup(&mufasa, &p).resolve(),
            cached.lookup(&mufasa, &p).resolve()
        );
        assert!(a.unwrap().is_some() && b.unwrap().is_some());
        assert_eq!(
            calls.load(Relaxed),
            1,
            "identical lookups in flight are one"
        );
        assert_eq!(cached.stats().coalesced, 1);
        // Remembered...
        assert!(matches!(
            cached.lookup(&mufasa, &p),
            Answer::Ready(Ok(Some(_)))
        ));
        // ...per realm and per hash function.
        let _ = cached
            .lookup(&query(b"Mufasa", "other", Algorithm::Md5), &p)
            .resolve()
            .await;
        let _ = cached
            .lookup(&query(b"Mufasa", "proxy", Algorithm::Sha256), &p)
            .resolve()
            .await;
        assert_eq!(calls.load(Relaxed), 3);
        // MD5-sess needs the same HA1 as MD5.
        assert!(matches!(
            cached.lookup(&query(b"Mufasa", "proxy", Algorithm::Md5Sess), &p),
            Answer::Ready(Ok(Some(_)))
        ));
        // An unknown user is remembered for the negative TTL.
        let scar = query(b"Scar", "proxy", Algorithm::Md5);
        assert!(cached.lookup(&scar, &p).resolve().await.unwrap().is_none());
        assert!(matches!(cached.lookup(&scar, &p), Answer::Ready(Ok(None))));
        assert_eq!(calls.load(Relaxed), 4);
    }

    #[test]
    fn zero_ttl_or_capacity_remembers_nothing() {
        let v = || {
            from_fn(|c: &BasicCredentials, _: &Parts| Decision::Allow(Identity::new(c.user_id())))
        };
        let p = parts();
        for cached in [
            Cached::new(v()).ttl(Duration::ZERO),
            Cached::new(v()).capacity(0),
        ] {
            let _ = cached.validate(&creds("a", "b"), &p);
            let _ = cached.validate(&creds("a", "b"), &p);
            assert_eq!(cached.stats().hits, 0);
        }
    }

    fn futures_poll_once<F: std::future::Future + ?Sized>(
        future: std::pin::Pin<&mut F>,
    ) -> Option<F::Output> {
        let waker = std::task::Waker::noop();
        match future.poll(&mut std::task::Context::from_waker(waker)) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        }
    }
}
