//! Where the throttle's counts live: [`ThrottleStore`], whose answers may come later (a store
//! shared by several instances), and [`MemoryThrottleStore`], fixed-size tables in this
//! process.

use std::fmt;
use std::time::Duration;

use moka::sync::Cache;

use super::counters::{Counters, Estimate, Now, RecentSet};
use crate::outcome::{Answer, ValidatorError};

/// The keys of one attempt: keyed 128-bit tags (never a user name, an address or a
/// credential), the same on every instance that shares the throttle's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct AttemptKeys {
    /// The user name.
    pub user: u128,
    /// The client address (IPv6: its /64), if known.
    pub addr: Option<u128>,
    /// The (user name, client address) pair; the user alone when the address is unknown.
    pub pair: u128,
    /// The credentials themselves, for schemes whose credentials repeat (Basic).
    pub credential: Option<u128>,
}

/// What the store knows of an attempt's keys, over the last window.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct Standing {
    /// These exact credentials failed in this window or the one before.
    pub stale_credential: bool,
    /// Failures of this user at this address.
    pub pair: Count,
    /// Failures at this address, across users (and shed attempts).
    pub addr: Count,
    /// Failures of this user, across addresses.
    pub user: Count,
    /// The user succeeded from this address recently.
    pub familiar: bool,
}

/// A sliding-window count: its estimate, and how long until it falls below a limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Count(Estimate);

impl Count {
    /// A count kept in fixed windows, as a sliding one: `previous` failures in the window
    /// before the current one, `current` in the current one, now `into` the current window of
    /// length `window`. Its estimate is `previous × (1 − into / window) + current` (the
    /// sliding-window estimate [`MemoryThrottleStore`] makes; for stores kept elsewhere).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_proxy_auth::throttle::Count;
    ///
    /// let count = Count::from_windows(10, 2, Duration::from_secs(15), Duration::from_secs(60));
    /// assert_eq!(count.value(), 9.5);
    /// assert!(count.reached(9));
    /// ```
    pub fn from_windows(previous: u64, current: u64, into: Duration, window: Duration) -> Self {
        Self(Estimate::from_windows(previous, current, into, window))
    }

    /// The estimated count over the last window.
    pub fn value(&self) -> f64 {
        self.0.value()
    }

    /// Whether it has reached `limit`.
    pub fn reached(&self, limit: u32) -> bool {
        self.0.reached(limit)
    }

    /// How long until it falls below `limit` with no more failures.
    pub fn retry_after(&self, limit: u32, window: Duration) -> Duration {
        self.0.retry_after(limit, window)
    }
}

/// An outcome to record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Wrong credentials: one more failure for the pair, the address and the user, and the
    /// credentials (if repeatable) remembered as stale.
    Failure,
    /// The check was shed (the validator was overloaded): one more failure for the address.
    Shed,
    /// Good credentials: the address becomes familiar for the user.
    Success,
}

/// Where throttle counts are kept. Implementations count over a sliding `window` given when
/// they are made, must stay bounded in memory whatever keys they see, and should never lose a
/// count a flood could make them forget (count collisions may only make them stricter).
pub trait ThrottleStore: Send + Sync + 'static {
    /// The standing of `keys` now.
    fn standing(&self, keys: &AttemptKeys) -> Answer<Result<Standing, ValidatorError>>;

    /// Records `event` for `keys`.
    fn record(&self, keys: &AttemptKeys, event: Event) -> Answer<Result<(), ValidatorError>>;

    /// The window the counts cover.
    fn window(&self) -> Duration;
}

/// How long a success keeps an address familiar for a user by default: 7 days.
pub const DEFAULT_FAMILIAR_FOR: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// How many (user, address) pairs are remembered as familiar by default: 65,536.
pub const DEFAULT_FAMILIAR_CAPACITY: u64 = 65_536;

/// The counts in this process's memory: fixed-size tables sized when made, so that no flood of
/// names or addresses can grow them or flush a count out of them.
///
/// | table | size |
/// |---|---|
/// | failures per (user, address) | 2 × 2^15 buckets × 8 bytes = 512 KiB |
/// | failures per address | 2 × 2^13 × 8 = 128 KiB |
/// | failures per user | 2 × 2^15 × 8 = 512 KiB |
/// | recently failed credentials | 2^15 × 8 = 256 KiB |
/// | familiar pairs refreshed lately | 2^14 × 8 = 128 KiB |
/// | familiar (user, address) pairs | at most 65,536 entries, about 100 bytes each (6.5 MB) |
///
/// Familiar pairs are only made by successes, which an attacker cannot make without the
/// password, so that table is a bounded cache; a pair dropped from it (a deployment with more
/// than 65,536 active pairs) only loses its exemption from the per-user limit.
///
/// A success refreshes its pair's familiar time at most once per sixteenth of it (every 10.5
/// hours of the default 7 days), so a pair stays familiar for at least 7/8 of that time after
/// its last success, and a client that succeeds again and again (every Digest request) costs
/// one look-up of a fixed table, not a write to the familiar cache each time.
pub struct MemoryThrottleStore {
    window: Duration,
    pair: Counters,
    addr: Counters,
    user: Counters,
    stale: RecentSet,
    familiar: Cache<u128, ()>,
    /// Familiar pairs refreshed in this or the previous `refresh_every`.
    refreshed: RecentSet,
    refresh_every: Duration,
}

impl MemoryThrottleStore {
    /// Tables counting over `window`, with familiar pairs kept for [`DEFAULT_FAMILIAR_FOR`].
    pub fn new(window: Duration) -> Self {
        Self::with_familiar(window, DEFAULT_FAMILIAR_FOR, DEFAULT_FAMILIAR_CAPACITY)
    }

    /// As [`new`](Self::new), keeping at most `capacity` familiar pairs for `familiar_for`.
    pub fn with_familiar(window: Duration, familiar_for: Duration, capacity: u64) -> Self {
        Self {
            window,
            pair: Counters::new(15),
            addr: Counters::new(13),
            user: Counters::new(15),
            stale: RecentSet::new(15),
            familiar: Cache::builder()
                .max_capacity(capacity)
                .time_to_live(familiar_for.max(Duration::from_secs(1)))
                .build(),
            refreshed: RecentSet::new(14),
            refresh_every: (familiar_for / 16).max(Duration::from_millis(1)),
        }
    }

    /// Bytes held by the fixed tables (the familiar pairs come on top, at most about 100
    /// bytes each).
    pub fn table_bytes(&self) -> usize {
        self.pair.bytes()
            + self.addr.bytes()
            + self.user.bytes()
            + self.stale.bytes()
            + self.refreshed.bytes()
    }

    fn now(&self) -> Now {
        Now::at(super::now_ms(), self.window)
    }

    /// The standing, at once.
    pub fn standing_now(&self, keys: &AttemptKeys) -> Standing {
        let now = self.now();
        Standing {
            stale_credential: keys
                .credential
                .is_some_and(|c| self.stale.contains(c, &now)),
            pair: Count(self.pair.read(keys.pair, &now)),
            addr: keys
                .addr
                .map_or_else(Count::default, |a| Count(self.addr.read(a, &now))),
            user: Count(self.user.read(keys.user, &now)),
            familiar: keys.addr.is_some() && self.familiar.contains_key(&keys.pair),
        }
    }

    /// Records, at once.
    pub fn record_now(&self, keys: &AttemptKeys, event: Event) {
        let now = self.now();
        match event {
            Event::Failure => {
                self.pair.add(keys.pair, &now);
                self.user.add(keys.user, &now);
                if let Some(addr) = keys.addr {
                    self.addr.add(addr, &now);
                }
                if let Some(credential) = keys.credential {
                    self.stale.insert(credential, &now);
                }
            }
            Event::Shed => {
                if let Some(addr) = keys.addr {
                    self.addr.add(addr, &now);
                }
            }
            Event::Success => {
                if keys.addr.is_some() {
                    self.remember_familiar(keys.pair);
                }
            }
        }
    }

    /// Makes the (user, address) `pair` familiar after a success, unless it was made so in
    /// this or the previous sixteenth of the familiar time and is still held: `true` when it
    /// was (re)made familiar now, `false` when it was left as it was.
    pub(crate) fn remember_familiar(&self, pair: u128) -> bool {
        let now = Now::at(super::now_ms(), self.refresh_every);
        if self.refreshed.contains(pair, &now) && self.familiar.contains_key(&pair) {
            return false;
        }
        self.refreshed.insert(pair, &now);
        self.familiar.insert(pair, ());
        true
    }
}

impl ThrottleStore for MemoryThrottleStore {
    fn standing(&self, keys: &AttemptKeys) -> Answer<Result<Standing, ValidatorError>> {
        Answer::Ready(Ok(self.standing_now(keys)))
    }

    fn record(&self, keys: &AttemptKeys, event: Event) -> Answer<Result<(), ValidatorError>> {
        self.record_now(keys, event);
        Answer::Ready(Ok(()))
    }

    fn window(&self) -> Duration {
        self.window
    }
}

impl fmt::Debug for MemoryThrottleStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryThrottleStore")
            .field("window", &self.window)
            .field("table_bytes", &self.table_bytes())
            .field("familiar", &self.familiar.entry_count())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_familiar_pair_is_refreshed_once_per_sixteenth_of_its_time() {
        // Familiar for 160 ms: refreshed at most once per 10 ms.
        let store = MemoryThrottleStore::with_familiar(
            Duration::from_secs(60),
            Duration::from_millis(160),
            100,
        );
        let keys = AttemptKeys {
            user: 1 | (2 << 64),
            addr: Some(3 | (4 << 64)),
            pair: 5 | (6 << 64),
            credential: None,
        };
        assert!(!store.standing_now(&keys).familiar);
        assert!(store.remember_familiar(keys.pair), "the first success");
        assert!(!store.remember_familiar(keys.pair), "refreshed just now");
        store.record_now(&keys, Event::Success);
        assert!(store.standing_now(&keys).familiar);
        // Two refresh intervals later the next success refreshes it again.
        std::thread::sleep(Duration::from_millis(25));
        assert!(store.remember_familiar(keys.pair));
        assert!(store.standing_now(&keys).familiar);
        // A pair that left the cache is made familiar again at its next success, refreshed
        // lately or not.
        store.familiar.invalidate(&keys.pair);
        assert!(!store.standing_now(&keys).familiar);
        assert!(store.remember_familiar(keys.pair));
        assert!(store.standing_now(&keys).familiar);
    }
}
