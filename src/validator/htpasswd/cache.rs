//! The credential cache: successful verifications remembered for a while, and concurrent
//! verifications of the same credentials done once.
//!
//! This is Squid's `credentialsttl` idea
//! (<https://www.squid-cache.org/Doc/config/auth_param/>): a proxy sees the same credentials on
//! every request of a client, and a slow hash (bcrypt at cost 12 is about a quarter of a second)
//! must not run each time.
//!
//! - Entries are keyed by an HMAC-SHA-256 tag, under a key drawn at random per validator, of
//!   (user name, password, stored hash). Neither the password nor anything an attacker could
//!   test guesses against offline is kept. Because the stored hash is part of the key, a reload
//!   that changes a user's hash leaves the old entry unreachable, and since every lookup starts
//!   from the current user table a removed user is never found.
//! - Only successes are remembered ([`moka`]'s bounded, time-to-live cache holds them); a wrong
//!   password costs a full verification every time.
//! - Requests with the same key that arrive while a verification runs wait for its answer
//!   instead of starting their own (a map of in-flight [`OnceCell`]s). If every waiter goes away
//!   the entry is removed; if the one driving the verification goes away, another waiter takes
//!   over.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::secret::{SecretKey, Tag};

/// The answer of one verification: match or not, or why it could not run.
pub(crate) type Outcome = Result<bool, Arc<str>>;

type Inflight = HashMap<Tag, Arc<OnceCell<Outcome>>>;

pub(crate) struct CredentialCache {
    key: SecretKey,
    done: Option<moka::sync::Cache<Tag, ()>>,
    inflight: Mutex<Inflight>,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
}

impl CredentialCache {
    /// A cache holding up to `capacity` successes for `ttl` each; `capacity == 0` or a zero
    /// `ttl` remembers nothing (in-flight verifications are still shared).
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        let done = (capacity > 0 && !ttl.is_zero()).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build()
        });
        Self {
            key: SecretKey::random(),
            done,
            inflight: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
        }
    }

    /// The cache key of these credentials against this stored hash.
    pub(crate) fn key(&self, user: &str, password: &[u8], stored: &str) -> Tag {
        self.key
            .tag(&[user.as_bytes(), password, stored.as_bytes()])
    }

    /// Whether a success for `key` is remembered; counts a hit.
    pub(crate) fn lookup(&self, key: &Tag) -> bool {
        let hit = self
            .done
            .as_ref()
            .is_some_and(|done| done.get(key).is_some());
        if hit {
            self.hits.fetch_add(1, Relaxed);
        }
        hit
    }

    /// Runs `verify` for `key` unless a verification of the same key is already running, in
    /// which case its answer is shared. A success is remembered when `remember` is true (never
    /// for an unknown user's dummy verification); such calls count as a cache miss, or a hit
    /// when a verification finished since the caller's [`lookup`](Self::lookup).
    pub(crate) async fn verify_once<F, Fut>(&self, key: Tag, remember: bool, verify: F) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let cell = {
            let mut inflight = self.lock();
            // A verification that finished between `lookup` and here left its answer behind.
            if remember {
                if self.done.as_ref().is_some_and(|d| d.contains_key(&key)) {
                    self.hits.fetch_add(1, Relaxed);
                    return Ok(true);
                }
                self.misses.fetch_add(1, Relaxed);
            }
            match inflight.get(&key) {
                Some(cell) => {
                    self.coalesced.fetch_add(1, Relaxed);
                    cell.clone()
                }
                None => {
                    let cell = Arc::new(OnceCell::new());
                    inflight.insert(key.clone(), cell.clone());
                    cell
                }
            }
        };
        let waiter = Waiter {
            cache: self,
            key: key.clone(),
            cell: Some(cell),
        };
        let Some(cell) = waiter.cell.as_deref() else {
            return Err(Arc::from("in-flight verification lost"));
        };
        let outcome = cell
            .get_or_init(|| async {
                let outcome = verify().await;
                if remember && matches!(outcome, Ok(true)) {
                    if let Some(done) = &self.done {
                        done.insert(key, ());
                    }
                }
                outcome
            })
            .await
            .clone();
        drop(waiter);
        outcome
    }

    /// (hits, misses, coalesced) so far.
    pub(crate) fn counters(&self) -> (u64, u64, u64) {
        (
            self.hits.load(Relaxed),
            self.misses.load(Relaxed),
            self.coalesced.load(Relaxed),
        )
    }

    fn lock(&self) -> MutexGuard<'_, Inflight> {
        self.inflight.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One waiter's hold on an in-flight entry; the last one to leave removes the entry, whether
/// the verification finished or every waiter was cancelled.
struct Waiter<'a> {
    cache: &'a CredentialCache,
    key: Tag,
    cell: Option<Arc<OnceCell<Outcome>>>,
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut inflight = self.cache.lock();
        let Some(cell) = self.cell.take() else {
            return;
        };
        let ours = inflight
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &cell));
        // Every clone of the cell is made and dropped under this lock, so after dropping ours a
        // count of 1 means only the map holds it.
        drop(cell);
        if ours && inflight.get(&self.key).map(Arc::strong_count) == Some(1) {
            inflight.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn coalesces_and_remembers_successes_only() {
        let cache = Arc::new(CredentialCache::new(100, Duration::from_secs(60)));
        let runs = Arc::new(AtomicUsize::new(0));
        let key = cache.key("alice", b"pw", "$hash");
        assert!(!cache.lookup(&key));
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (cache, runs, key, mut gate) =
                (cache.clone(), runs.clone(), key.clone(), gate_rx.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .verify_once(key, true, || async move {
                        runs.fetch_add(1, Relaxed);
                        let _ = gate.wait_for(|open| *open).await;
                        Ok(true)
                    })
                    .await
            }));
        }
        // Let all five join the in-flight entry before the verification finishes.
        while cache.counters().2 < 4 {
            tokio::task::yield_now().await;
        }
        gate_tx.send_replace(true);
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(true));
        }
        assert_eq!(runs.load(Relaxed), 1);
        assert!(cache.lookup(&key));
        assert!(cache.lock().is_empty());

        let wrong = cache.key("alice", b"nope", "$hash");
        assert_eq!(
            cache
                .verify_once(wrong.clone(), true, || async { Ok(false) })
                .await,
            Ok(false)
        );
        assert!(!cache.lookup(&wrong));
        let other_hash = cache.key("alice", b"pw", "$other");
        assert!(!cache.lookup(&other_hash));
    }

    #[tokio::test]
    async fn cancelled_waiters_leave_no_entry() {
        let cache = CredentialCache::new(100, Duration::from_secs(60));
        let key = cache.key("u", b"p", "h");
        let pending = cache.verify_once(key.clone(), true, std::future::pending::<Outcome>);
        let timed_out = tokio::time::timeout(Duration::from_millis(10), pending).await;
        assert!(timed_out.is_err());
        assert!(cache.lock().is_empty());
        assert_eq!(
            cache.verify_once(key, true, || async { Ok(true) }).await,
            Ok(true)
        );
    }

    #[test]
    fn disabled_cache_remembers_nothing() {
        let cache = CredentialCache::new(0, Duration::from_secs(60));
        let key = cache.key("u", b"p", "h");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(
            rt.block_on(cache.verify_once(key.clone(), true, || async { Ok(true) })),
            Ok(true)
        );
        assert!(!cache.lookup(&key));
    }
}
