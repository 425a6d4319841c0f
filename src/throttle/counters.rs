//! Fixed-size tables of failure counts over a sliding window: memory that a flood cannot grow
//! and cannot flush.
//!
//! A [`Counters`] table is a count-min sketch (Cormode and Muthukrishnan, 2005) of two rows:
//! a key (a keyed 128-bit tag) picks one bucket in each row from independent bits of its tag,
//! an increment raises both, and a read takes the smaller. Two keys that share a bucket add to
//! each other's count, never subtract: under a flood of distinct keys, counts only grow, so the
//! throttle gets stricter, never forgetful, and the table's size never changes.
//!
//! Each bucket is one `AtomicU64` holding the window it counts and two counts, the current
//! window's and the previous one's, so that a read estimates the last `window` of time (a
//! sliding window: `previous × (1 − elapsed fraction) + current`) rather than resetting at a
//! window boundary, where a fixed window would let twice the limit through.
//!
//! ```text
//! bucket = epoch (24 bits, windows since the Unix epoch, wrapping) | previous (20) | current (20)
//! ```

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// The largest count a bucket holds (2^20 − 1): far above any limit.
const MAX_COUNT: u64 = (1 << 20) - 1;
const EPOCH_MASK: u64 = (1 << 24) - 1;

/// Where in time a read or an increment happens: the window's number and how far into it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    /// Windows since the Unix epoch, wrapping at 2^24.
    epoch: u64,
    /// How far into the window, 0.0 to 1.0.
    fraction: f64,
    /// Time left in the window.
    left: Duration,
}

impl Now {
    /// The moment `now_ms` (milliseconds since the Unix epoch) for windows of `window`.
    pub(crate) fn at(now_ms: u64, window: Duration) -> Self {
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let into = now_ms % window_ms;
        Self {
            epoch: (now_ms / window_ms) & EPOCH_MASK,
            fraction: into as f64 / window_ms as f64,
            left: Duration::from_millis(window_ms - into),
        }
    }

    fn previous(&self) -> u64 {
        self.epoch.wrapping_sub(1) & EPOCH_MASK
    }
}

fn pack(epoch: u64, previous: u64, current: u64) -> u64 {
    (epoch << 40) | (previous.min(MAX_COUNT) << 20) | current.min(MAX_COUNT)
}

fn unpack(bucket: u64) -> (u64, u64, u64) {
    (bucket >> 40, (bucket >> 20) & MAX_COUNT, bucket & MAX_COUNT)
}

/// The (previous, current) counts of a bucket as seen at `now`.
fn counts(bucket: u64, now: &Now) -> (u64, u64) {
    let (epoch, previous, current) = unpack(bucket);
    if epoch == now.epoch {
        (previous, current)
    } else if epoch == now.previous() {
        (current, 0)
    } else {
        (0, 0)
    }
}

/// A count-min sketch of sliding-window counts. See the [module documentation](self).
pub(crate) struct Counters {
    rows: [Box<[AtomicU64]>; 2],
    mask: usize,
}

impl Counters {
    /// A table of two rows of `2^bits` buckets (8 bytes each).
    pub(crate) fn new(bits: u32) -> Self {
        let len = 1usize << bits;
        let row = || {
            (0..len)
                .map(|_| AtomicU64::new(0))
                .collect::<Box<[AtomicU64]>>()
        };
        Self {
            rows: [row(), row()],
            mask: len - 1,
        }
    }

    /// Bytes of memory the table holds.
    pub(crate) fn bytes(&self) -> usize {
        2 * (self.mask + 1) * std::mem::size_of::<AtomicU64>()
    }

    fn buckets(&self, key: u128) -> [&AtomicU64; 2] {
        let a = (key as u64 as usize) & self.mask;
        let b = ((key >> 64) as u64 as usize) & self.mask;
        [&self.rows[0][a], &self.rows[1][b]]
    }

    /// The estimated count of `key` over the last window: `(previous, current)` of the bucket
    /// whose estimate is the smaller.
    pub(crate) fn read(&self, key: u128, now: &Now) -> Estimate {
        self.buckets(key)
            .into_iter()
            .map(|b| {
                let (previous, current) = counts(b.load(Relaxed), now);
                Estimate {
                    previous,
                    current,
                    fraction: now.fraction,
                    left: now.left,
                }
            })
            .min_by(|x, y| x.value().total_cmp(&y.value()))
            .unwrap_or_default()
    }

    /// Adds one to `key`'s count.
    pub(crate) fn add(&self, key: u128, now: &Now) {
        for bucket in self.buckets(key) {
            let _ = bucket.fetch_update(Relaxed, Relaxed, |old| {
                let (previous, current) = counts(old, now);
                Some(pack(now.epoch, previous, current + 1))
            });
        }
    }
}

/// A key's count over the sliding window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Estimate {
    previous: u64,
    current: u64,
    fraction: f64,
    left: Duration,
}

impl Estimate {
    /// The estimate from the counts of the window before the current one (`previous`) and of
    /// the current one, `into` the current window of length `window`.
    pub(crate) fn from_windows(
        previous: u64,
        current: u64,
        into: Duration,
        window: Duration,
    ) -> Self {
        let window = window.max(Duration::from_millis(1));
        let into = into.min(window);
        Self {
            previous,
            current,
            fraction: into.as_secs_f64() / window.as_secs_f64(),
            left: window - into,
        }
    }

    /// `previous × (1 − elapsed fraction) + current`.
    pub(crate) fn value(&self) -> f64 {
        self.previous as f64 * (1.0 - self.fraction) + self.current as f64
    }

    /// Whether the estimate has reached `limit`.
    pub(crate) fn reached(&self, limit: u32) -> bool {
        self.value() >= f64::from(limit)
    }

    /// How long until the estimate falls below `limit` if nothing more is added (at least
    /// one second, at most two windows).
    pub(crate) fn retry_after(&self, limit: u32, window: Duration) -> Duration {
        let limit = f64::from(limit.max(1));
        let window_s = window.as_secs_f64();
        let left = self.left.as_secs_f64();
        let now_fraction = self.fraction;
        // Still in this window: previous × (1 − f) + current < limit, for f up to 1.
        let wait = if self.current as f64 >= limit {
            // Only once `current` has become the previous window's count and decayed:
            // current × (1 − f') < limit in the next window.
            left + window_s * (1.0 - limit / self.current as f64)
        } else if self.previous > 0 {
            let needed = 1.0 - (limit - self.current as f64) / self.previous as f64;
            ((needed - now_fraction) * window_s).max(0.0)
        } else {
            0.0
        };
        Duration::from_secs_f64(wait.clamp(1.0, 2.0 * window_s.max(1.0)))
    }
}

/// A fixed-size set of keys seen in the current or the previous window: one `AtomicU64` per
/// slot holding the epoch and 40 bits of the key. A flood can push a key out of its slot (it
/// is then as if it had not been seen) but never grows the table.
pub(crate) struct RecentSet {
    slots: Box<[AtomicU64]>,
    mask: usize,
}

impl RecentSet {
    /// A set of `2^bits` slots.
    pub(crate) fn new(bits: u32) -> Self {
        let len = 1usize << bits;
        Self {
            slots: (0..len).map(|_| AtomicU64::new(0)).collect(),
            mask: len - 1,
        }
    }

    /// Bytes of memory the set holds.
    pub(crate) fn bytes(&self) -> usize {
        (self.mask + 1) * std::mem::size_of::<AtomicU64>()
    }

    fn slot(&self, key: u128) -> (&AtomicU64, u64) {
        let index = (key as u64 as usize) & self.mask;
        // 40 bits from the other half of the tag, never 0 (an empty slot).
        let fingerprint = (((key >> 64) as u64) & ((1 << 40) - 1)).max(1);
        (&self.slots[index], fingerprint)
    }

    /// Whether `key` was inserted in this window or the one before.
    pub(crate) fn contains(&self, key: u128, now: &Now) -> bool {
        self.seen(key, now).is_some()
    }

    /// Whether `key` holds its slot, inserted in any window.
    pub(crate) fn holds(&self, key: u128) -> bool {
        let (slot, fingerprint) = self.slot(key);
        slot.load(Relaxed) & ((1 << 40) - 1) == fingerprint
    }

    /// When `key` was last inserted: `Some(true)` in this window, `Some(false)` in the one
    /// before, `None` not in either.
    pub(crate) fn seen(&self, key: u128, now: &Now) -> Option<bool> {
        let (slot, fingerprint) = self.slot(key);
        let value = slot.load(Relaxed);
        let epoch = value >> 40;
        if value & ((1 << 40) - 1) != fingerprint {
            return None;
        }
        if epoch == now.epoch {
            Some(true)
        } else {
            (epoch == now.previous()).then_some(false)
        }
    }

    /// Inserts `key` now.
    pub(crate) fn insert(&self, key: u128, now: &Now) {
        let (slot, fingerprint) = self.slot(key);
        slot.store((now.epoch << 40) | fingerprint, Relaxed);
    }

    /// Removes `key`, if it holds its slot.
    pub(crate) fn remove(&self, key: u128) {
        let (slot, fingerprint) = self.slot(key);
        let _ = slot.fetch_update(Relaxed, Relaxed, |v| {
            (v & ((1 << 40) - 1) == fingerprint).then_some(0)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(60);

    #[test]
    fn counts_slide_from_one_window_into_the_next() {
        let c = Counters::new(4);
        let start = 600_000; // the start of a window
        let now = Now::at(start, W);
        for _ in 0..10 {
            c.add(7, &now);
        }
        assert_eq!(c.read(7, &now).value(), 10.0);
        // Halfway into the next window the old 10 count for half.
        let later = Now::at(start + 90_000, W);
        assert_eq!(c.read(7, &later).value(), 5.0);
        c.add(7, &later);
        assert_eq!(c.read(7, &later).value(), 6.0);
        // Two windows on, nothing is left.
        assert_eq!(c.read(7, &Now::at(start + 180_000, W)).value(), 0.0);
        assert_eq!(c.read(8, &now).value(), 0.0);
    }

    #[test]
    fn a_flood_of_keys_only_raises_counts() {
        let c = Counters::new(6);
        let now = Now::at(0, W);
        for _ in 0..5 {
            c.add(0x1234_5678_9abc_def0, &now);
        }
        for key in 0..100_000u128 {
            c.add(
                key.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835),
                &now,
            );
        }
        assert!(c.read(0x1234_5678_9abc_def0, &now).value() >= 5.0);
        assert_eq!(c.bytes(), 2 * 64 * 8);
    }

    #[test]
    fn retry_after_is_when_the_estimate_falls_below_the_limit() {
        let c = Counters::new(4);
        let now = Now::at(600_000, W);
        for _ in 0..10 {
            c.add(1, &now);
        }
        let e = c.read(1, &now);
        assert!(e.reached(10));
        // 60 s left in this window, then 0 s more in the next: below 10 just after the turn.
        assert_eq!(e.retry_after(10, W), Duration::from_secs(60));
        // Limit 5: the 10 must decay to under 5, halfway into the next window.
        assert_eq!(e.retry_after(5, W), Duration::from_secs(90));
    }

    #[test]
    fn recent_set_remembers_for_two_windows() {
        let s = RecentSet::new(4);
        let now = Now::at(600_000, W);
        s.insert(42, &now);
        assert!(s.contains(42, &now));
        assert!(!s.contains(43, &now));
        assert!(s.contains(42, &Now::at(600_000 + 60_000, W)));
        assert!(!s.contains(42, &Now::at(600_000 + 120_000, W)));
    }
}
