//! At most one log line a second for an event that can repeat on every request.
//!
//! A validator outage (its store is down, its queue is full) fails every request until it ends;
//! one `error` line per request would flood the logs exactly when an operator reads them. The
//! first occurrence is logged at once, later ones at most once a second with the number left
//! out in between.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Admits one line per [`INTERVAL`] and counts the rest.
#[derive(Debug)]
pub(crate) struct LogLimit {
    start: Instant,
    /// Milliseconds since `start` before which no line is admitted.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

/// The minimum time between two admitted lines.
const INTERVAL: Duration = Duration::from_secs(1);

impl LogLimit {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being the occurrences left out since the
    /// previous line; `None` (and one more left out) otherwise.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        let interval = u64::try_from(INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(interval),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_is_admitted_then_one_per_interval() {
        let limit = LogLimit::new();
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        limit.next_ms.store(0, Ordering::Relaxed); // as if the interval had passed
        assert_eq!(limit.admit(), Some(2));
    }
}
