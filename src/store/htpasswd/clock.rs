//! The clock that ages remembered successes.
//!
//! A cache hit should cost about what a [`StaticUsers`](crate::StaticUsers) check costs, and
//! reading [`Instant::now`] (`CLOCK_MONOTONIC`: about 25 ns here, more in some VMs, where it is
//! paravirtualised) was the largest part of the difference. On Linux and Android
//! `CLOCK_MONOTONIC_COARSE` is read from the vDSO without touching the time-stamp counter
//! (about 7 ns), at the resolution of one scheduler tick (1 to 10 ms), far finer than a useful
//! credential TTL; like `CLOCK_MONOTONIC`, it does not jump with the wall clock. Elsewhere,
//! [`Instant`].

use std::time::Duration;

/// A reading of the clock: the time since an unspecified origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(Duration);

impl Stamp {
    /// Now, to within one scheduler tick.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    pub(crate) fn now() -> Self {
        use rustix::time::{clock_gettime, ClockId};
        let now = clock_gettime(ClockId::MonotonicCoarse);
        Self(Duration::new(
            u64::try_from(now.tv_sec).unwrap_or(0),
            u32::try_from(now.tv_nsec).unwrap_or(0),
        ))
    }

    /// Now.
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    pub(crate) fn now() -> Self {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        Self(ORIGIN.get_or_init(std::time::Instant::now).elapsed())
    }

    /// The time from `earlier` to `self`; zero if `earlier` is later.
    pub(crate) fn since(self, earlier: Stamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advances_with_real_time() {
        let start = Stamp::now();
        std::thread::sleep(Duration::from_millis(50));
        let later = Stamp::now();
        // One tick of resolution at each end at most.
        assert!(later.since(start) >= Duration::from_millis(30));
        assert!(later.since(start) < Duration::from_secs(5));
        assert_eq!(start.since(later), Duration::ZERO);
    }
}
