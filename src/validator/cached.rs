//! [`Cached`]: a validator's answers remembered for a while, and identical checks in flight
//! shared.
//!
//! This is Squid's `credentialsttl` idea (<https://www.squid-cache.org/Doc/config/auth_param/>):
//! a proxy sees the same credentials on every request of a client, and a slow check (bcrypt at
//! cost 12 is about a quarter of a second, an LDAP bind a network round trip) must not run each
//! time.
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
//!   used again is dropped first).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use http::request::Parts;
use moka::sync::Cache;
use tokio::sync::OnceCell;

use super::{Decision, Validation, Validator, ValidatorError};
use crate::identity::Identity;
use crate::scheme::basic::BasicCredentials;
use crate::secret::{RandomSourceError, SecretKey, Tag};

/// Default [`Cached::ttl`]: 5 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);
/// Default [`Cached::capacity`]: 10,000 remembered answers.
pub const DEFAULT_CAPACITY: u64 = 10_000;

/// A validator in front of which answers are remembered and identical checks shared.
///
/// Wrap only validators whose answer depends on the credentials alone: a validator that allows
/// or forbids by request target should be asked after the cache (`cached.or(...)` does not
/// help: compose the per-target rule in a validator of its own around the cache).
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
    ttl: Duration,
    negative_ttl: Option<Duration>,
    capacity: u64,
    /// `None` when nothing is remembered (a zero TTL or capacity).
    entries: Option<Cache<Tag, Remembered>>,
    /// Bumped by [`Cached::invalidate_all`]; part of every key.
    epoch: AtomicU64,
    inflight: Mutex<Inflight>,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
}

/// One check in flight per key, with the answer its waiters share.
type Shared = Arc<OnceCell<Result<Decision, ValidatorError>>>;
type Inflight = HashMap<Tag, Shared>;

/// A remembered answer: the identity of a success, or `None` for a failure.
#[derive(Clone)]
struct Remembered {
    allow: Option<Identity>,
}

/// How long each remembered answer lives: the TTL for successes, the negative TTL for failures.
struct Lifetimes {
    ttl: Duration,
    negative_ttl: Duration,
}

impl<K> moka::Expiry<K, Remembered> for Lifetimes {
    fn expire_after_create(&self, _: &K, value: &Remembered, _: Instant) -> Option<Duration> {
        Some(if value.allow.is_some() {
            self.ttl
        } else {
            self.negative_ttl
        })
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

impl<V: Validator> Cached<V> {
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
        Ok(Self {
            inner: Arc::new(validator),
            state: Arc::new(CacheState::new(key, DEFAULT_TTL, None, DEFAULT_CAPACITY)),
        })
    }
}

impl<V> Cached<V> {
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
        Self {
            state: Arc::new(CacheState::new(
                self.state.key.clone(),
                ttl,
                negative_ttl,
                capacity,
            )),
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
    }

    /// The validator behind the cache.
    pub fn get_ref(&self) -> &V {
        &self.inner
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
    fn new(key: SecretKey, ttl: Duration, negative_ttl: Option<Duration>, capacity: u64) -> Self {
        let remembers = capacity > 0 && (!ttl.is_zero() || negative_ttl.is_some());
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
            ttl,
            negative_ttl,
            capacity,
            entries,
            epoch: AtomicU64::new(0),
            inflight: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
        }
    }

    /// The key of `credentials` checked against `version` of the validator's users.
    fn tag(&self, version: u64, credentials: &BasicCredentials) -> Tag {
        self.key.tag_credentials_in(
            [self.epoch.load(Relaxed), version],
            credentials.user_id_bytes().len(),
            credentials.decoded(),
        )
    }

    fn lookup(&self, tag: &Tag) -> Option<Decision> {
        let remembered = self.entries.as_ref()?.get(tag)?;
        self.hits.fetch_add(1, Relaxed);
        Some(match remembered.allow {
            Some(identity) => Decision::Allow(identity),
            None => Decision::Reject,
        })
    }

    fn remember(&self, tag: &Tag, answer: &Result<Decision, ValidatorError>) {
        let Some(entries) = &self.entries else {
            return;
        };
        match answer {
            Ok(Decision::Allow(identity)) if !self.ttl.is_zero() => entries.insert(
                tag.clone(),
                Remembered {
                    allow: Some(identity.clone()),
                },
            ),
            Ok(Decision::Reject) if self.negative_ttl.is_some() => {
                entries.insert(tag.clone(), Remembered { allow: None })
            }
            _ => {}
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inflight> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<V: Validator> Validator for Cached<V> {
    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        let state = &self.state;
        let tag = state.tag(self.inner.answer_version(credentials), credentials);
        if let Some(decision) = state.lookup(&tag) {
            return Validation::Ready(Ok(decision));
        }
        let (cell, leader) = {
            let mut inflight = state.lock();
            // A check that finished between the lookup and here left its answer behind.
            if let Some(decision) = state.lookup(&tag) {
                return Validation::Ready(Ok(decision));
            }
            state.misses.fetch_add(1, Relaxed);
            match inflight.get(&tag) {
                Some(cell) => {
                    state.coalesced.fetch_add(1, Relaxed);
                    (cell.clone(), false)
                }
                None => {
                    let cell = Arc::new(OnceCell::new());
                    inflight.insert(tag.clone(), cell.clone());
                    (cell, true)
                }
            }
        };
        let waiter = Waiter {
            state: state.clone(),
            tag,
            cell: Some(cell),
        };
        if leader {
            match self.inner.validate(credentials, request) {
                Validation::Ready(answer) => {
                    state.remember(&waiter.tag, &answer);
                    if let Some(cell) = &waiter.cell {
                        let _ = cell.set(answer.clone());
                    }
                    drop(waiter);
                    Validation::Ready(answer)
                }
                Validation::Pending(check) => Validation::pending(waiter.wait(check)),
            }
        } else {
            // Ready to take over if the leader goes away: a check of its own.
            let inner = self.inner.clone();
            let credentials = credentials.clone();
            let request = request.clone();
            Validation::pending(
                waiter.wait(async move { inner.validate(&credentials, &request).resolve().await }),
            )
        }
    }

    fn answer_version(&self, credentials: &BasicCredentials) -> u64 {
        self.inner.answer_version(credentials)
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
    /// The shared answer, running `check` if no other waiter is running one.
    async fn wait<F>(self, check: F) -> Result<Decision, ValidatorError>
    where
        F: std::future::Future<Output = Result<Decision, ValidatorError>>,
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
