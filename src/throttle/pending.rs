//! Checks in flight per key (client address, or user name and address), counted in a fixed
//! table without keeping the keys.
//!
//! Each key counts in two slots picked by independent bits of its keyed 128-bit hash, and its
//! count is the smaller of the two (a count-min sketch of two rows). With one slot, an
//! innocent address that shared its slot with a flooding one was shed as if it flooded too
//! (found as a flaky first-login test: 8 flooding addresses in 4,096 slots); with two, both of
//! its slots must be taken: for 8 flooders (16 taken slots) about 1 in 65,000. Collisions only
//! make counts larger, never smaller: stricter, never forgetful.

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Slots: 2^12 = 4,096 (16 KiB).
const BITS: u32 = 12;
const MASK: usize = (1 << BITS) - 1;

pub(super) struct PendingCounts {
    slots: Box<[AtomicU32]>,
}

impl PendingCounts {
    pub(super) fn new() -> Self {
        Self {
            slots: (0..1 << BITS).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// The two slots of `key`: from its low and its high bits (independent in a keyed hash).
    fn pair(&self, key: u128) -> (&AtomicU32, &AtomicU32) {
        let low = (key as usize) & MASK;
        let high = ((key >> 64) as usize) & MASK;
        (&self.slots[low], &self.slots[high])
    }

    /// Checks of `key` in flight (at least; more only through collisions).
    pub(super) fn count(&self, key: u128) -> u32 {
        let (a, b) = self.pair(key);
        a.load(Relaxed).min(b.load(Relaxed))
    }

    /// Counts one more check of `key`, unless it already has `max`: `false` then. Two checks
    /// racing may both pass at `max - 1`: the bound is for floods, not exact.
    pub(super) fn try_add(&self, key: u128, max: u32) -> bool {
        if self.count(key) >= max {
            return false;
        }
        self.add(key);
        true
    }

    pub(super) fn add(&self, key: u128) {
        let (a, b) = self.pair(key);
        a.fetch_add(1, Relaxed);
        if !std::ptr::eq(a, b) {
            b.fetch_add(1, Relaxed);
        }
    }

    pub(super) fn sub(&self, key: u128) {
        let (a, b) = self.pair(key);
        a.fetch_sub(1, Relaxed);
        if !std::ptr::eq(a, b) {
            b.fetch_sub(1, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_sharing_one_slot_with_a_busy_key_is_not_busy() {
        let counts = PendingCounts::new();
        let busy: u128 = 5 | (9 << 64);
        let neighbour: u128 = 5 | (700 << 64); // same low slot, another high one
        assert!(counts.try_add(busy, 2));
        assert!(counts.try_add(busy, 2));
        assert!(!counts.try_add(busy, 2), "the busy key is at its bound");
        assert_eq!(counts.count(neighbour), 0);
        assert!(counts.try_add(neighbour, 2));
        counts.sub(busy);
        counts.sub(busy);
        counts.sub(neighbour);
        assert_eq!(counts.count(busy), 0);
        // A key whose two slots coincide counts once per check.
        let same: u128 = 7 | (7 << 64);
        counts.add(same);
        assert_eq!(counts.count(same), 1);
        counts.sub(same);
        assert_eq!(counts.count(same), 0);
    }
}
