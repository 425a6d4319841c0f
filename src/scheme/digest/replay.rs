//! Replay protection: each (nonce, nc) is accepted at most once (RFC 7616 §3.3, §5.11).
//!
//! Counts may arrive out of order: a browser's parallel connections share a nonce and send
//! counts 1, 2, 3 in whatever order their requests go out. So a store keeps, per nonce, the
//! highest count seen and a window of the 128 counts at and below it, rather than demanding
//! strictly increasing counts; a count older than the window is refused (it cannot be told from
//! a replay).
//!
//! The state sits behind [`ReplayStore`], whose answers may come later, so a networked store
//! shared by several instances fits. [`MemoryReplayStore`] is the bounded in-memory default.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::hash::BuildHasherDefault;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::nonce::NonceId;
use crate::outcome::{Answer, ValidatorError};

/// What a store says of one (nonce, nc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayVerdict {
    /// First time: accepted, and recorded.
    Fresh,
    /// Seen before, or older than the window: refused.
    Replayed,
    /// The store no longer tracks this nonce (it aged out under memory pressure): the client
    /// gets a fresh nonce with `stale=true`; never an acceptance.
    Forgotten,
}

/// Where the counts of recent nonces are kept. Implementations must accept each (nonce, nc) at
/// most once, however many callers race, and must never answer [`ReplayVerdict::Fresh`] for a
/// nonce they lost track of. An error means "could not check": the request is refused (503).
pub trait ReplayStore: Send + Sync + 'static {
    /// Records count `nc` (at least 1) of `nonce`, which stays valid for `lifetime` after it
    /// was issued.
    fn record(
        &self,
        nonce: &NonceId,
        nc: u32,
        lifetime: Duration,
    ) -> Answer<Result<ReplayVerdict, ValidatorError>>;

    /// Whether every instance that verifies the nonces shares this store. When it is not (the
    /// in-memory store), each nonce names the instance that issued it, and another instance
    /// answers it with `stale=true` instead of a false failure.
    fn is_shared(&self) -> bool {
        false
    }

    /// Whether a shared store can check counts now (default: always). While it cannot (its
    /// server is unreachable), new nonces name the issuing instance and their counts are kept
    /// in that instance's memory, so each instance keeps serving its own clients; a nonce
    /// meant for the shared store whose count cannot be checked is answered with `stale=true`
    /// and a nonce of the instance's own, never accepted. A store that answers an error while
    /// this stays `true` gets 503 instead.
    fn is_available(&self) -> bool {
        true
    }
}

/// The window of one nonce: the highest count seen, and which of the 128 counts up to it were.
#[derive(Debug, Clone, Copy)]
struct Window {
    highest: u32,
    /// Bit `d` is count `highest - d`.
    seen: u128,
}

impl Window {
    fn new(nc: u32) -> Self {
        Self {
            highest: nc,
            seen: 1,
        }
    }

    /// Records `nc`; whether it was new.
    fn record(&mut self, nc: u32) -> bool {
        if nc > self.highest {
            let shift = nc - self.highest;
            self.seen = if shift >= 128 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.highest = nc;
            return true;
        }
        let back = self.highest - nc;
        if back >= 128 {
            return false;
        }
        let bit = 1u128 << back;
        if self.seen & bit != 0 {
            return false;
        }
        self.seen |= bit;
        true
    }
}

/// Default capacity of a [`MemoryReplayStore`]: 100,000 nonces.
pub const DEFAULT_REPLAY_CAPACITY: usize = 100_000;

/// Shards of a [`MemoryReplayStore`]: checks of different nonces rarely wait for each other.
const SHARDS: usize = 16;

/// Nonce counts in this process's memory, for at most `capacity` nonces.
///
/// A nonce is tracked from its first use until it expires. When a shard is full, its nonce
/// issued longest ago is dropped to make room, and the shard remembers the latest issue time it
/// dropped (under the same lock): a nonce issued no later than that and not tracked is answered
/// [`ReplayVerdict::Forgotten`] (a fresh nonce with `stale=true`), so memory pressure costs a
/// client one more round trip, never a replay. Expired nonces are dropped as new ones arrive.
/// About 115 bytes per tracked nonce: 11.3 MB of heap at the default capacity of 100,000
/// (`tests/replay_memory.rs` measures it and fails past 160 bytes; BENCHMARKS.md).
#[derive(Clone)]
pub struct MemoryReplayStore {
    shards: Arc<[Mutex<Shard>]>,
    per_shard: usize,
    lifetime_ms: u64,
}

#[derive(Default)]
struct Shard {
    windows: HashMap<[u8; 16], Window, BuildHasherDefault<IdHasher>>,
    /// The tracked nonces by issue time, oldest first.
    by_age: BTreeSet<(u64, [u8; 16])>,
    /// The latest issue time (ms) among nonces dropped for room.
    horizon: u64,
}

/// Nonce ids are the first bytes of an HMAC: uniformly distributed, so they are their own
/// hash.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl MemoryReplayStore {
    /// A store for at most `capacity` nonces (at least one per shard), each valid for
    /// `lifetime` after it was issued (use the scheme's nonce lifetime).
    pub fn new(capacity: usize, lifetime: Duration) -> Self {
        let per_shard = capacity.div_ceil(SHARDS).max(1);
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard,
            lifetime_ms: u64::try_from(lifetime.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// How many nonces are tracked now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).windows.len()).sum()
    }

    /// Whether no nonce is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The verdict for `nc` of `nonce`, recorded.
    pub fn check(&self, nonce: &NonceId, nc: u32) -> ReplayVerdict {
        self.check_with_clock(nonce, nc, now_ms)
    }

    #[cfg(test)]
    fn check_at(&self, nonce: &NonceId, nc: u32, now_ms: u64) -> ReplayVerdict {
        self.check_with_clock(nonce, nc, || now_ms)
    }

    /// The clock is read only when a new nonce is tracked (to drop the expired ones): a count
    /// of a tracked nonce, the common case, costs no clock read.
    fn check_with_clock(
        &self,
        nonce: &NonceId,
        nc: u32,
        now_ms: impl FnOnce() -> u64,
    ) -> ReplayVerdict {
        let shard = &self.shards[usize::from(nonce.id[0]) % SHARDS];
        let mut shard = lock(shard);
        if let Some(window) = shard.windows.get_mut(&nonce.id) {
            return if window.record(nc) {
                ReplayVerdict::Fresh
            } else {
                ReplayVerdict::Replayed
            };
        }
        if nonce.issued_ms <= shard.horizon {
            return ReplayVerdict::Forgotten;
        }
        // Room: first the expired, then the oldest.
        let expired_before = now_ms().saturating_sub(self.lifetime_ms);
        while let Some(&(issued, id)) = shard.by_age.first() {
            let full = shard.windows.len() >= self.per_shard;
            if issued >= expired_before && !full {
                break;
            }
            shard.by_age.pop_first();
            shard.windows.remove(&id);
            if issued >= expired_before {
                shard.horizon = shard.horizon.max(issued);
            }
        }
        if nonce.issued_ms <= shard.horizon {
            // Issued before a nonce just dropped for room: it may have been tracked.
            return ReplayVerdict::Forgotten;
        }
        shard.windows.insert(nonce.id, Window::new(nc));
        shard.by_age.insert((nonce.issued_ms, nonce.id));
        ReplayVerdict::Fresh
    }
}

fn lock(shard: &Mutex<Shard>) -> std::sync::MutexGuard<'_, Shard> {
    shard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ReplayStore for MemoryReplayStore {
    fn record(
        &self,
        nonce: &NonceId,
        nc: u32,
        _lifetime: Duration,
    ) -> Answer<Result<ReplayVerdict, ValidatorError>> {
        Answer::Ready(Ok(self.check(nonce, nc)))
    }
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("tracked", &self.len())
            .field("capacity", &(self.per_shard * SHARDS))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering::Relaxed;

    fn id(n: u8, issued_ms: u64) -> NonceId {
        NonceId {
            id: [n; 16],
            issued_ms,
        }
    }

    #[test]
    fn each_count_once_in_any_order_within_the_window() {
        let store = MemoryReplayStore::new(1000, Duration::from_secs(300));
        let n = id(1, now_ms());
        assert_eq!(store.check(&n, 1), ReplayVerdict::Fresh);
        assert_eq!(store.check(&n, 1), ReplayVerdict::Replayed);
        assert_eq!(store.check(&n, 3), ReplayVerdict::Fresh);
        assert_eq!(store.check(&n, 2), ReplayVerdict::Fresh, "out of order");
        assert_eq!(store.check(&n, 2), ReplayVerdict::Replayed);
        assert_eq!(store.check(&n, 131), ReplayVerdict::Fresh);
        assert_eq!(
            store.check(&n, 4),
            ReplayVerdict::Fresh,
            "127 back: in the window"
        );
        assert_eq!(store.check(&n, 4), ReplayVerdict::Replayed);
        assert_eq!(store.check(&n, 5), ReplayVerdict::Fresh);
        assert_eq!(
            store.check(&n, 3),
            ReplayVerdict::Replayed,
            "128 back: out of it"
        );
        assert_eq!(store.check(&n, 1000), ReplayVerdict::Fresh);
        assert_eq!(store.check(&n, 999), ReplayVerdict::Fresh);
        assert_eq!(store.check(&n, 131), ReplayVerdict::Replayed);
        // Another nonce has counts of its own.
        assert_eq!(store.check(&id(2, now_ms()), 1), ReplayVerdict::Fresh);
    }

    #[test]
    fn expired_nonces_make_room_without_moving_the_horizon() {
        let store = MemoryReplayStore::new(SHARDS, Duration::from_millis(1000));
        // One per shard: the shard of id 0.
        assert_eq!(store.check_at(&id(0, 100), 1, 200), ReplayVerdict::Fresh);
        // Expired by now: dropped to make room for the next, and not a reason for stale.
        assert_eq!(store.check_at(&id(16, 5000), 1, 5000), ReplayVerdict::Fresh);
        assert_eq!(lock(&store.shards[0]).horizon, 0);
        // Full with an unexpired nonce: the older one goes, and the horizon moves.
        assert_eq!(store.check_at(&id(32, 5500), 1, 5500), ReplayVerdict::Fresh);
        assert_eq!(lock(&store.shards[0]).horizon, 5000);
        assert_eq!(
            store.check_at(&id(16, 5000), 2, 5600),
            ReplayVerdict::Forgotten
        );
        assert_eq!(
            store.check_at(&id(48, 4000), 1, 5600),
            ReplayVerdict::Forgotten
        );
    }

    #[test]
    fn racing_callers_accept_a_count_once() {
        let store = MemoryReplayStore::new(1000, Duration::from_secs(300));
        let n = id(7, now_ms());
        let fresh = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for nc in 1..=200 {
                        if store.check(&n, nc) == ReplayVerdict::Fresh {
                            fresh.fetch_add(1, Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(fresh.load(Relaxed), 200);
    }

    #[test]
    fn a_nonce_dropped_for_room_is_forgotten_never_fresh_again() {
        let store = MemoryReplayStore::new(SHARDS * 2, Duration::from_secs(300));
        let issued = now_ms();
        for n in 0..200u8 {
            let verdict = store.check(&id(n, issued + u64::from(n)), 1);
            assert_eq!(verdict, ReplayVerdict::Fresh, "nonce {n}");
        }
        assert!(store.len() <= SHARDS * 2, "{}", store.len());
        // Whichever were dropped: replaying count 1 of every nonce never succeeds.
        for n in 0..200u8 {
            let verdict = store.check(&id(n, issued + u64::from(n)), 1);
            assert_ne!(verdict, ReplayVerdict::Fresh, "nonce {n}");
        }
    }
}
