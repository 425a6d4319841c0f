//! The credential cache: successful verifications remembered for a while, and concurrent
//! verifications of the same credentials done once.
//!
//! This is Squid's `credentialsttl` idea
//! (<https://www.squid-cache.org/Doc/config/auth_param/>): a proxy sees the same credentials on
//! every request of a client, and a slow hash (bcrypt at cost 12 is about a quarter of a second)
//! must not run each time. A remembered request should cost about what a
//! [`StaticUsers`](crate::StaticUsers) check costs: one keyed hash of the password and a
//! hash-map probe.
//!
//! - A success is remembered in the user's own entry of the loaded table ([`Remembered`]): the
//!   HMAC-SHA-256 tag of the password, under a key drawn at random per validator, and when it
//!   was verified (on a coarse clock, see [`super::clock`]). The entry stands for the (user,
//!   stored hash) pair, so together they cover user, password and stored hash. Neither the
//!   password nor anything an attacker could test guesses against offline is kept, and tags are
//!   compared in constant time ([`subtle`]).
//! - A hit is a lookup of the user in the table, the tag of the given password (computed once
//!   per request, and reused as the in-flight key on a miss), a constant-time comparison with
//!   the remembered tag and a check that it is younger than the TTL: no blocking pool, no global
//!   cache, no lock.
//! - A reload builds a new table whose entries start empty, so a changed or removed entry can
//!   never match an old success. An entry whose user and stored hash are both unchanged takes
//!   over the old entry's success (see [`CredentialCache::carry_over`]), so a reload does not
//!   make every user verify again.
//! - Only successes are remembered; a wrong password costs a full verification every time.
//! - At most `capacity` entries of a table remember a success at one time (counted per table,
//!   in [`Occupancy`]). While the bound is reached a new success is not remembered; an expired
//!   success is forgotten when its entry is looked up, and, when a success finds the table
//!   full, by a sweep of the table (at most once a second).
//! - Requests with the same credentials that arrive while a verification runs wait for its
//!   answer instead of starting their own (a map of in-flight [`OnceCell`]s keyed by the entry
//!   and the tag). An unknown user is verified against the table's dummy entry, and their tag
//!   covers the user name as well, so that only identical credentials share a verification (two
//!   unknown users with one password must not, or sharing would tell unknown users from known
//!   ones). If every waiter goes away the in-flight entry is removed; if the one driving the
//!   verification goes away, another waiter takes over.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{
    AtomicU64, AtomicUsize, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use arc_swap::{ArcSwapOption, Guard};
use tokio::sync::OnceCell;

use super::clock::Stamp;
use super::file::{Entry, Table};
use crate::secret::{RandomSourceError, SecretKey, Tag};

/// The answer of one verification: match or not, or why it could not run.
pub(crate) type Outcome = Result<bool, Arc<str>>;

/// How often, at most, a full table is swept for expired successes.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// A success: the tag of the password that matched, and when.
struct Verified {
    tag: Tag,
    at: Stamp,
}

/// The success a table entry remembers, if any.
#[derive(Default)]
pub(crate) struct Remembered(ArcSwapOption<Verified>);

impl fmt::Debug for Remembered {
    /// Whether a success is remembered; never its tag.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.load().is_some() {
            "Some(..)"
        } else {
            "None"
        })
    }
}

/// How many entries of one table remember a success, and when expired ones were last swept.
#[derive(Debug, Default)]
pub(crate) struct Occupancy {
    count: AtomicUsize,
    last_sweep: Mutex<Option<Stamp>>,
}

impl Occupancy {
    /// Entries remembering a success now (expired ones not yet forgotten included).
    #[cfg(test)]
    pub(crate) fn get(&self) -> usize {
        self.count.load(Acquire)
    }

    fn release(&self) {
        self.count.fetch_sub(1, AcqRel);
    }
}

/// One verification in flight: the entry verified against and the request's tag.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct InflightKey {
    entry: u64,
    tag: Tag,
}

type Inflight = HashMap<InflightKey, Arc<OnceCell<Outcome>>>;

pub(crate) struct CredentialCache {
    key: SecretKey,
    /// 0 when nothing is remembered.
    capacity: usize,
    ttl: Duration,
    inflight: Mutex<Inflight>,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
}

impl CredentialCache {
    /// A cache letting up to `capacity` entries of a table remember a success for `ttl` each;
    /// `capacity == 0` or a zero `ttl` remembers nothing (in-flight verifications are still
    /// shared).
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Result<Self, RandomSourceError> {
        let capacity = if ttl.is_zero() {
            0
        } else {
            usize::try_from(capacity).unwrap_or(usize::MAX)
        };
        Ok(Self {
            key: SecretKey::random()?,
            capacity,
            ttl,
            inflight: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
        })
    }

    /// The tag of a password given for a listed user: what that user's entry remembers.
    pub(crate) fn tag(&self, password: &[u8]) -> Tag {
        self.key.tag(&[password])
    }

    /// The tag of the credentials of a user the table does not list. All such users are
    /// verified against the one dummy entry, so the user name is part of the tag: only
    /// identical credentials share a verification.
    pub(crate) fn unknown_user_tag(&self, user: &str, password: &[u8]) -> Tag {
        self.key.tag(&[user.as_bytes(), password])
    }

    /// The in-flight key of a verification of `tag` against `entry`.
    pub(crate) fn inflight_key(entry: &Entry, tag: Tag) -> InflightKey {
        InflightKey {
            entry: entry.id,
            tag,
        }
    }

    /// Whether `entry` remembers an unexpired success for `tag`; counts a hit. An expired
    /// success found here is forgotten.
    pub(crate) fn lookup(&self, table: &Table, entry: &Entry, tag: &Tag) -> bool {
        let current = entry.remembered.0.load();
        let Some(verified) = current.as_deref() else {
            return false;
        };
        if Stamp::now().since(verified.at) >= self.ttl {
            forget(table, entry, &current);
            return false;
        }
        let hit = bool::from(verified.tag.ct_eq(tag));
        if hit {
            self.hits.fetch_add(1, Relaxed);
        }
        hit
    }

    /// Remembers a success of `tag` in `entry`, unless remembering is off, or the table is at
    /// capacity (after a sweep of expired successes) and `entry` remembers nothing yet.
    pub(crate) fn remember(&self, table: &Table, entry: &Entry, tag: Tag) {
        if self.capacity == 0 {
            return;
        }
        let new = Some(Arc::new(Verified {
            tag,
            at: Stamp::now(),
        }));
        let slot = &entry.remembered.0;
        // An entry that remembers a success already has it replaced, without counting.
        let current = slot.load();
        if current.is_some() {
            let previous = slot.compare_and_swap(&current, new.clone());
            if same(&previous, &current) {
                return;
            }
            // Forgotten or replaced meanwhile: count it as a new one.
        }
        drop(current);
        if !self.reserve(table) {
            self.sweep(table);
            if !self.reserve(table) {
                return;
            }
        }
        if slot.swap(new).is_some() {
            // It held one after all: the count already includes it.
            table.occupancy.release();
        }
    }

    /// Lets the entries of `new` (a reload) whose user and stored hash are those of an entry of
    /// `old` take over that entry's unexpired success, up to the capacity. Other entries start
    /// with nothing remembered.
    pub(crate) fn carry_over(&self, old: &Table, new: &Table) {
        if self.capacity == 0 {
            return;
        }
        for (user, old_entry) in old.entries() {
            let current = old_entry.remembered.0.load_full();
            let Some(verified) = current else {
                continue;
            };
            if Stamp::now().since(verified.at) >= self.ttl {
                continue;
            }
            let Some(new_entry) = new.entry(user) else {
                continue;
            };
            if new_entry.hash.text() != old_entry.hash.text() {
                continue;
            }
            if !self.reserve(new) {
                return;
            }
            if new_entry.remembered.0.swap(Some(verified)).is_some() {
                new.occupancy.release();
            }
        }
    }

    /// Takes one place of `table`'s capacity, if one is free.
    fn reserve(&self, table: &Table) -> bool {
        table
            .occupancy
            .count
            .fetch_update(AcqRel, Acquire, |n| (n < self.capacity).then_some(n + 1))
            .is_ok()
    }

    /// Forgets the expired successes of `table`, unless another sweep runs or one ran less than
    /// [`SWEEP_INTERVAL`] ago. Linear in the table's size (about a millisecond per 100,000
    /// users); runs only when a success finds the table full.
    fn sweep(&self, table: &Table) {
        let Ok(mut last) = table.occupancy.last_sweep.try_lock() else {
            return;
        };
        let now = Stamp::now();
        if last.is_some_and(|at| now.since(at) < SWEEP_INTERVAL) {
            return;
        }
        *last = Some(now);
        for (_, entry) in table.entries() {
            let current = entry.remembered.0.load();
            if current
                .as_deref()
                .is_some_and(|v| now.since(v.at) >= self.ttl)
            {
                forget(table, entry, &current);
            }
        }
    }

    /// Runs `verify` for `key` unless a verification with the same key is already running, in
    /// which case its answer is shared. With `remember` (the listed user's table and entry;
    /// `None` for an unknown user's dummy verification) a success is remembered in the entry,
    /// and the call counts as a cache miss, or a hit when a verification finished since the
    /// caller's [`lookup`](Self::lookup).
    pub(crate) async fn verify_once<F, Fut>(
        &self,
        key: InflightKey,
        remember: Option<(&Table, &Entry)>,
        verify: F,
    ) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let cell = {
            let mut inflight = self.lock();
            if let Some((table, entry)) = remember {
                // A verification that finished between `lookup` and here left its answer behind.
                if self.lookup(table, entry, &key.tag) {
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
            key,
            cell: Some(cell),
        };
        let Some(cell) = waiter.cell.as_deref() else {
            return Err(Arc::from("in-flight verification lost"));
        };
        let outcome = cell
            .get_or_init(|| async {
                let outcome = verify().await;
                if let (Some((table, entry)), Ok(true)) = (remember, &outcome) {
                    self.remember(table, entry, waiter.key.tag.clone());
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

/// Whether two loads of a slot saw the same success.
fn same(a: &Option<Arc<Verified>>, b: &Option<Arc<Verified>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => Arc::ptr_eq(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Forgets `current`, the success `entry` was seen to remember, unless it changed since.
fn forget(table: &Table, entry: &Entry, current: &Guard<Option<Arc<Verified>>>) {
    let previous = entry.remembered.0.compare_and_swap(current, None);
    if current.is_some() && same(&previous, current) {
        table.occupancy.release();
    }
}

/// One waiter's hold on an in-flight entry; the last one to leave removes the entry, whether
/// the verification finished or every waiter was cancelled.
struct Waiter<'a> {
    cache: &'a CredentialCache,
    key: InflightKey,
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
    use crate::store::htpasswd::file::ParseOptions;
    use std::sync::atomic::AtomicUsize;

    const HASH: &str = "$2y$05$M96TNtTJ5SDiW7BI8sXokeTsWApyyURpFQ.h47HqTNwzG07px5zSK";
    const OTHER: &str = "$2y$05$1XF30RoosE6Dnyag0ntlSeV/xsSF4pKU3.Xk/q.5YS0z9UeBm2pOy";

    fn table(contents: &str) -> Arc<Table> {
        Arc::new(
            Table::parse(
                &Arc::from("t"),
                contents.as_bytes(),
                ParseOptions::default(),
            )
            .unwrap(),
        )
    }

    fn entry<'a>(table: &'a Table, user: &str) -> &'a Entry {
        table.entry(user).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn coalesces_and_remembers_successes_only() {
        let cache = Arc::new(CredentialCache::new(100, Duration::from_secs(60)).unwrap());
        let table = table(&format!("alice:{HASH}\n"));
        let runs = Arc::new(AtomicUsize::new(0));
        let tag = cache.tag(b"pw");
        assert!(!cache.lookup(&table, entry(&table, "alice"), &tag));
        let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let (cache, table, runs, tag, mut gate) = (
                cache.clone(),
                table.clone(),
                runs.clone(),
                tag.clone(),
                gate_rx.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let alice = entry(&table, "alice");
                let key = CredentialCache::inflight_key(alice, tag);
                cache
                    .verify_once(key, Some((&table, alice)), || async move {
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
        let alice = entry(&table, "alice");
        assert!(cache.lookup(&table, alice, &tag));
        assert!(cache.lock().is_empty());
        assert_eq!(table.occupancy.get(), 1);

        let wrong = cache.tag(b"nope");
        let key = CredentialCache::inflight_key(alice, wrong.clone());
        assert_eq!(
            cache
                .verify_once(key, Some((&table, alice)), || async { Ok(false) })
                .await,
            Ok(false)
        );
        assert!(!cache.lookup(&table, alice, &wrong));
        assert!(
            cache.lookup(&table, alice, &tag),
            "a failure forgets nothing"
        );
        assert_eq!(cache.counters(), (2, 6, 4));
    }

    #[tokio::test]
    async fn unknown_users_are_never_remembered_and_coalesce_per_user() {
        let cache = CredentialCache::new(100, Duration::from_secs(60)).unwrap();
        let table = table(&format!("alice:{HASH}\n"));
        let dummy = table.dummy().unwrap();
        assert_ne!(dummy.id, entry(&table, "alice").id);
        let key = CredentialCache::inflight_key(dummy, cache.unknown_user_tag("eve", b"pw"));
        assert_eq!(
            cache.verify_once(key, None, || async { Ok(true) }).await,
            Ok(true)
        );
        assert_eq!(table.occupancy.get(), 0);
        assert_eq!(cache.counters(), (0, 0, 0));
        // Two unknown users with one password are different credentials.
        assert!(cache.unknown_user_tag("eve", b"pw") != cache.unknown_user_tag("mallory", b"pw"));
        assert!(cache.unknown_user_tag("eve", b"pw") != cache.tag(b"pw"));
    }

    #[tokio::test]
    async fn cancelled_waiters_leave_no_entry() {
        let cache = CredentialCache::new(100, Duration::from_secs(60)).unwrap();
        let table = table(&format!("u:{HASH}\n"));
        let u = entry(&table, "u");
        let key = CredentialCache::inflight_key(u, cache.tag(b"p"));
        let pending = cache.verify_once(key.clone(), Some((&table, u)), std::future::pending);
        let timed_out = tokio::time::timeout(Duration::from_millis(10), pending).await;
        assert!(timed_out.is_err());
        assert!(cache.lock().is_empty());
        assert_eq!(
            cache
                .verify_once(key, Some((&table, u)), || async { Ok(true) })
                .await,
            Ok(true)
        );
        assert_eq!(table.occupancy.get(), 1);
    }

    #[test]
    fn disabled_cache_remembers_nothing() {
        let table = table(&format!("u:{HASH}\n"));
        let u = entry(&table, "u");
        for cache in [
            CredentialCache::new(0, Duration::from_secs(60)).unwrap(),
            CredentialCache::new(100, Duration::ZERO).unwrap(),
        ] {
            let tag = cache.tag(b"p");
            cache.remember(&table, u, tag.clone());
            assert!(!cache.lookup(&table, u, &tag));
            assert_eq!(table.occupancy.get(), 0);
        }
    }

    #[test]
    fn successes_expire_and_are_forgotten() {
        let ttl = Duration::from_millis(30);
        let cache = CredentialCache::new(100, ttl).unwrap();
        let table = table(&format!("u:{HASH}\n"));
        let u = entry(&table, "u");
        let tag = cache.tag(b"p");
        cache.remember(&table, u, tag.clone());
        assert!(cache.lookup(&table, u, &tag));
        // Remembering again replaces, without counting twice.
        cache.remember(&table, u, tag.clone());
        assert_eq!(table.occupancy.get(), 1);
        std::thread::sleep(ttl + Duration::from_millis(10));
        assert!(!cache.lookup(&table, u, &tag));
        assert_eq!(table.occupancy.get(), 0);
        assert!(u.remembered.0.load().is_none());
    }

    #[test]
    fn capacity_bounds_the_entries_remembering_and_a_sweep_frees_expired_ones() {
        let ttl = Duration::from_millis(30);
        let cache = CredentialCache::new(1, ttl).unwrap();
        let table = table(&format!("a:{HASH}\nb:{HASH}\n"));
        let (a, b) = (entry(&table, "a"), entry(&table, "b"));
        let tag = cache.tag(b"p");
        cache.remember(&table, a, tag.clone());
        cache.remember(&table, b, tag.clone());
        assert!(cache.lookup(&table, a, &tag));
        assert!(!cache.lookup(&table, b, &tag), "over capacity");
        assert_eq!(table.occupancy.get(), 1);
        // a expires without being looked up again: a sweep forgets it to make room for b. (b's
        // first success swept already; forget when, rather than wait SWEEP_INTERVAL.)
        std::thread::sleep(ttl + Duration::from_millis(10));
        *table.occupancy.last_sweep.lock().unwrap() = None;
        cache.remember(&table, b, tag.clone());
        assert!(cache.lookup(&table, b, &tag));
        assert!(a.remembered.0.load().is_none());
        assert_eq!(table.occupancy.get(), 1);
    }

    #[test]
    fn a_reload_carries_over_unchanged_entries_only() {
        let cache = CredentialCache::new(100, Duration::from_secs(60)).unwrap();
        let old = table(&format!("same:{HASH}\nrehashed:{HASH}\nremoved:{HASH}\n"));
        let tag = cache.tag(b"p");
        for user in ["same", "rehashed", "removed"] {
            cache.remember(&old, entry(&old, user), tag.clone());
        }
        let new = table(&format!("same:{HASH}\nrehashed:{OTHER}\nadded:{HASH}\n"));
        cache.carry_over(&old, &new);
        assert!(cache.lookup(&new, entry(&new, "same"), &tag));
        assert!(!cache.lookup(&new, entry(&new, "rehashed"), &tag));
        assert!(!cache.lookup(&new, entry(&new, "added"), &tag));
        assert_eq!(new.occupancy.get(), 1);

        // Up to the capacity only.
        let cache = CredentialCache::new(1, Duration::from_secs(60)).unwrap();
        let old = table(&format!("a:{HASH}\nb:{HASH}\n"));
        let tag = cache.tag(b"p");
        cache.remember(&old, entry(&old, "a"), tag.clone());
        let new = table(&format!("a:{HASH}\nb:{HASH}\n"));
        cache.remember(&new, entry(&new, "b"), tag.clone());
        cache.carry_over(&old, &new);
        assert!(!cache.lookup(&new, entry(&new, "a"), &tag));
        assert_eq!(new.occupancy.get(), 1);
    }
}
