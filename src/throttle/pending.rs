//! Attempts in flight per key (client address, user name, or both), counted in fixed tables
//! without keeping the keys: the slow checks an address has waiting ([`PendingCounts`]), and
//! the counted attempts whose outcome is not recorded yet ([`InFlight`]).
//!
//! Each key counts in two slots picked by independent bits of its keyed 128-bit hash, and its
//! count is the smaller of the two (a count-min sketch of two rows). With one slot, an
//! innocent address that shared its slot with a flooding one was shed as if it flooded too
//! (found as a flaky first-login test: 8 flooding addresses in 4,096 slots); with two, both of
//! its slots must be taken. Collisions only make counts larger, never smaller: stricter, never
//! forgetful.
//!
//! | table | slots | limit it is read against | innocent keys over it, 10,000 flooding addresses with 2 slow checks each |
//! |---|---:|---:|---:|
//! | slow checks per address | 2^16 (256 KiB) | 2 | about 7 %: both its slots among the 26 % taken (4,096 slots: 98 %) |
//! | attempts in flight per (user, address) | 2^16 (256 KiB) | 10 | none in 10,000 tries (4,096 slots: about 26 %, by simulation) |
//! | attempts in flight per user | 2^15 (128 KiB) | 100 | none |
//! | attempts in flight per address | 2^14 (64 KiB) | 100 | none |

use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use super::AttemptKeys;

pub(super) struct PendingCounts {
    slots: Box<[AtomicU32]>,
    mask: usize,
}

impl PendingCounts {
    /// A table of 2^`bits` slots (4 bytes each).
    pub(super) fn new(bits: u32) -> Self {
        Self {
            slots: (0..1usize << bits).map(|_| AtomicU32::new(0)).collect(),
            mask: (1 << bits) - 1,
        }
    }

    /// The two slots of `key`: from its low and its high bits (independent in a keyed hash).
    fn pair(&self, key: u128) -> (&AtomicU32, &AtomicU32) {
        let low = (key as usize) & self.mask;
        let high = ((key >> 64) as usize) & self.mask;
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

    /// The sum of every slot (0 when nothing is in flight).
    #[cfg(test)]
    pub(super) fn total(&self) -> u64 {
        self.slots.iter().map(|s| u64::from(s.load(Relaxed))).sum()
    }

    pub(super) fn sub(&self, key: u128) {
        let (a, b) = self.pair(key);
        a.fetch_sub(1, Relaxed);
        if !std::ptr::eq(a, b) {
            b.fetch_sub(1, Relaxed);
        }
    }
}

/// Counted attempts in flight per (user, address) pair, address and user: admitted, their
/// outcome not yet recorded. They count toward the limits as failures would, so that attempts
/// sent all at once cannot each find the count below its limit.
pub(super) struct InFlight {
    pair: PendingCounts,
    addr: PendingCounts,
    user: PendingCounts,
}

/// How many other attempts with the same keys were in flight when one was added (at least;
/// more only through collisions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Others {
    pub(super) pair: u32,
    pub(super) addr: u32,
    pub(super) user: u32,
}

impl InFlight {
    pub(super) fn new() -> Self {
        Self {
            pair: PendingCounts::new(16),
            addr: PendingCounts::new(14),
            user: PendingCounts::new(15),
        }
    }

    /// Adds an attempt with `keys`; the others in flight with its keys.
    pub(super) fn add(&self, keys: &AttemptKeys) -> Others {
        self.pair.add(keys.pair);
        if let Some(addr) = keys.addr {
            self.addr.add(addr);
        }
        self.user.add(keys.user);
        let all = self.others(keys);
        Others {
            pair: all.pair.saturating_sub(1),
            addr: all.addr.saturating_sub(1),
            user: all.user.saturating_sub(1),
        }
    }

    /// The attempts in flight with `keys` now (at least; more only through collisions).
    pub(super) fn others(&self, keys: &AttemptKeys) -> Others {
        Others {
            pair: self.pair.count(keys.pair),
            addr: keys.addr.map_or(0, |a| self.addr.count(a)),
            user: self.user.count(keys.user),
        }
    }

    /// The sum of every slot of the three tables (0 when nothing is in flight).
    #[cfg(test)]
    pub(super) fn total(&self) -> u64 {
        self.pair.total() + self.addr.total() + self.user.total()
    }

    /// Removes an attempt added with `keys`.
    pub(super) fn remove(&self, keys: &AttemptKeys) {
        self.pair.sub(keys.pair);
        if let Some(addr) = keys.addr {
            self.addr.sub(addr);
        }
        self.user.sub(keys.user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_sharing_one_slot_with_a_busy_key_is_not_busy() {
        let counts = PendingCounts::new(12);
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

    #[test]
    fn attempts_in_flight_see_the_others_with_their_keys() {
        let in_flight = InFlight::new();
        let keys = |user: u128, addr: Option<u128>| AttemptKeys {
            user,
            addr,
            pair: user ^ addr.unwrap_or(0).rotate_left(7),
            credential: None,
        };
        let others = |pair, addr, user| Others { pair, addr, user };
        let a = keys(1 | (2 << 64), Some(3 | (4 << 64)));
        assert_eq!(in_flight.add(&a), Others::default());
        assert_eq!(in_flight.add(&a), others(1, 1, 1));
        // The same user from another address: only the user's count is shared.
        let b = keys(a.user, Some(5 | (6 << 64)));
        assert_eq!(in_flight.add(&b), others(0, 0, 2));
        in_flight.remove(&a);
        in_flight.remove(&b);
        let c = keys(a.user, None);
        assert_eq!(in_flight.add(&c), others(0, 0, 1));
        in_flight.remove(&a);
        in_flight.remove(&c);
        assert_eq!(in_flight.add(&a), Others::default());
    }

    /// A keyed-hash-like key from a counter (splitmix64 on both halves).
    fn scrambled(n: u64) -> u128 {
        let mix = |mut z: u64| {
            z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        u128::from(mix(n)) | (u128::from(mix(n ^ 0xdead_beef)) << 64)
    }

    #[test]
    fn a_flood_of_slow_checks_in_flight_leaves_innocent_pairs_under_their_limits() {
        // 10,000 flooding addresses with 2 slow checks each, each check at its own (user,
        // address) pair: an innocent pair or address, looked up 10,000 times, is never at
        // the pair limit (10); an innocent address is at the slow-check limit (2) when both
        // its slots are among the 26 % the flood takes: about 7 % (all of them with the 4,096
        // slots these tables had).
        let in_flight = InFlight::new();
        let pending = PendingCounts::new(16);
        for n in 0..20_000u64 {
            let addr = scrambled(n / 2);
            in_flight.add(&AttemptKeys {
                user: scrambled(n ^ (1 << 40)),
                addr: Some(addr),
                pair: scrambled(n ^ (1 << 41)),
                credential: None,
            });
            pending.add(addr);
        }
        let mut shed = 0;
        for n in 0..10_000u64 {
            let keys = AttemptKeys {
                user: scrambled(n ^ (1 << 50)),
                addr: Some(scrambled(n ^ (1 << 51))),
                pair: scrambled(n ^ (1 << 52)),
                credential: None,
            };
            let others = in_flight.others(&keys);
            assert!(
                others.pair < 10 && others.addr < 100 && others.user < 100,
                "{others:?}"
            );
            shed += usize::from(keys.addr.is_some_and(|a| pending.count(a) >= 2));
        }
        assert!(
            shed < 800,
            "{shed} of 10,000 innocent addresses at the slow-check limit"
        );
    }
}
