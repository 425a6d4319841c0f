//! Throttling repeated wrong credentials, per user name and per client address; see
//! [`FailureThrottle`].

use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::request::Parts;
use moka::sync::Cache;

use crate::client_addr::ClientAddr;

type AddrSource = Arc<dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync>;

/// Counts wrong credentials and refuses further attempts past a threshold.
///
/// An online password-guessing attack needs many wrong answers; this bounds how many it gets.
/// Only a validator's [`Decision::Reject`](crate::Decision::Reject) counts as a failure: a request
/// without credentials never does (browsers and most clients send their first request without
/// any and only answer a 407), nor does a malformed one. Once a user name or a client address has
/// failed `max_failures` times inside one window, further attempts for it get `429 Too Many
/// Requests` with `Retry-After` (RFC 6585 §4, RFC 9110 §10.2.3) until the window ends, without the
/// validator being asked, so the answer is the same whether the user exists or not and costs no
/// hashing. The window is fixed: it starts at the first counted attempt and is not extended by
/// attempts made while throttled. Attempts still being verified by a slow (asynchronous)
/// validator count too, so concurrent guesses cannot overrun the limit while the first ones are
/// hashed. A success does not clear a count: a user's own traffic must not give an attacker who
/// rotates addresses fresh guesses at that user.
///
/// The trade-off of counting per user name: anyone can spend a user's failures, so a user under
/// attack is refused (429) until the window ends even with the right password. Keep the limit
/// generous enough for typing mistakes and the window short enough to bear.
///
/// The counters live in two bounded caches (`moka`), so a flood of distinct user names or
/// addresses cannot grow memory past `capacity` entries each; IPv6 addresses are counted by their
/// /64 prefix, since one host usually holds a whole /64.
///
/// Added to a layer with
/// [`ProxyAuthLayerBuilder::throttle`](crate::ProxyAuthLayerBuilder::throttle). Clones share
/// their counters.
///
/// ```
/// use std::time::Duration;
/// use axum::extract::ConnectInfo;
/// use tower_proxy_auth::{FailureThrottle, ProxyAuthLayer, StaticUsers};
///
/// let throttle = FailureThrottle::new(5, Duration::from_secs(300))
///     // behind `axum::serve(.., app.into_make_service_with_connect_info::<SocketAddr>())`
///     .client_addr_from(|parts| {
///         parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|c| c.0.ip())
///     });
/// let layer = ProxyAuthLayer::builder(StaticUsers::new().with_user("alice", "s3cret"))
///     .throttle(throttle)
///     .build()
///     .unwrap();
/// ```
#[derive(Clone)]
pub struct FailureThrottle {
    max_failures: u32,
    window: Duration,
    by_user: Cache<u64, Arc<Window>>,
    by_addr: Cache<IpAddr, Arc<Window>>,
    /// Windows alive in either cache; 0 lets the check skip both lookups.
    live: Arc<AtomicUsize>,
    hasher: std::collections::hash_map::RandomState,
    client_addr: AddrSource,
}

/// One key's failures in its current window.
#[derive(Debug)]
struct Window {
    started: Instant,
    failures: AtomicU32,
    /// Attempts whose validator has not answered yet.
    pending: AtomicU32,
}

/// An attempt being verified; counts against the limit until dropped.
#[derive(Debug)]
pub(crate) struct Attempt {
    windows: [Option<Arc<Window>>; 2],
}

impl Attempt {
    /// Counts the attempt as a wrong credential in the windows it was begun in.
    pub(crate) fn record_failure(&self) {
        for window in self.windows.iter().flatten() {
            window.failures.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        for window in self.windows.iter().flatten() {
            window.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl FailureThrottle {
    /// Default failures allowed per user name and per client address in one window: 10.
    pub const DEFAULT_MAX_FAILURES: u32 = 10;
    /// Default window: 60 seconds.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
    /// Default bound on tracked user names and, separately, on tracked client addresses:
    /// 65,536.
    pub const DEFAULT_CAPACITY: u64 = 65_536;
    /// Longest window: 365 days. Longer windows are shortened to it (the caches behind the
    /// throttle refuse lifetimes beyond 1,000 years, and `Retry-After` must stay computable).
    pub const MAX_WINDOW: Duration = Duration::from_secs(365 * 24 * 60 * 60);

    /// Allows `max_failures` wrong credentials per user name and per client address within
    /// `window`; the next attempt inside the window gets 429. `max_failures` of 0 is taken as 1;
    /// a `window` over [`Self::MAX_WINDOW`] is taken as [`Self::MAX_WINDOW`], a zero window throttles
    /// nothing. The client address is read from the [`ClientAddr`] extension.
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self::with_capacity(max_failures, window, Self::DEFAULT_CAPACITY)
    }

    /// As [`new`](Self::new), tracking at most `capacity` user names and `capacity` addresses.
    pub fn with_capacity(max_failures: u32, window: Duration, capacity: u64) -> Self {
        let window = window.min(Self::MAX_WINDOW);
        let live = Arc::new(AtomicUsize::new(0));
        Self {
            max_failures: max_failures.max(1),
            window,
            by_user: bounded(capacity, window, &live),
            by_addr: bounded(capacity, window, &live),
            live,
            hasher: Default::default(),
            client_addr: Arc::new(|parts: &Parts| {
                parts.extensions.get::<ClientAddr>().map(|a| a.0.ip())
            }),
        }
    }

    /// Reads the client address with `source` instead of from the [`ClientAddr`] extension,
    /// e.g. from axum's `ConnectInfo<SocketAddr>`. `None` means "unknown": only the user name is
    /// counted then.
    pub fn client_addr_from<F>(mut self, source: F) -> Self
    where
        F: Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static,
    {
        self.client_addr = Arc::new(source);
        self
    }

    /// The failures allowed per key in one window.
    pub fn max_failures(&self) -> u32 {
        self.max_failures
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How many user names have failures counted now (at most the capacity).
    pub fn tracked_user_names(&self) -> u64 {
        self.by_user.run_pending_tasks();
        self.by_user.entry_count()
    }

    /// How many client addresses (IPv6: /64 prefixes) have failures counted now (at most the
    /// capacity).
    pub fn tracked_client_addrs(&self) -> u64 {
        self.by_addr.run_pending_tasks();
        self.by_addr.entry_count()
    }

    /// If the user name or the client address is throttled now, how long until it is not.
    ///
    /// Attempts still being verified count as failures here, so a burst of concurrent guesses
    /// against a slow validator cannot slip past the limit before the first answer; a key
    /// throttled only by such attempts is told to retry after one second.
    pub(crate) fn retry_after(&self, user_id: &[u8], request: &Parts) -> Option<Duration> {
        if self.live.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let now = Instant::now();
        let user = self.by_user.get(&self.user_key(user_id));
        let addr = self.addr_key(request).and_then(|a| self.by_addr.get(&a));
        [user, addr]
            .into_iter()
            .flatten()
            .filter_map(|w| {
                let failures = w.failures.load(Ordering::Relaxed);
                let pending = w.pending.load(Ordering::Relaxed);
                if failures >= self.max_failures {
                    Some((w.started + self.window).saturating_duration_since(now))
                } else if failures.saturating_add(pending) >= self.max_failures {
                    Some(Duration::from_secs(1))
                } else {
                    None
                }
            })
            .filter(|left| !left.is_zero())
            .max()
    }

    /// Counts one wrong credential for the user name and the client address.
    pub(crate) fn record_failure(&self, user_id: &[u8], request: &Parts) {
        for window in self.windows(user_id, request).into_iter().flatten() {
            window.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Marks an attempt whose answer comes later (an asynchronous validator) as in progress for
    /// the user name and the client address, until the returned guard is dropped.
    pub(crate) fn begin_attempt(&self, user_id: &[u8], request: &Parts) -> Attempt {
        let windows = self.windows(user_id, request);
        for window in windows.iter().flatten() {
            window.pending.fetch_add(1, Ordering::Relaxed);
        }
        Attempt { windows }
    }

    /// The current windows of the user name and the client address, started if absent.
    fn windows(&self, user_id: &[u8], request: &Parts) -> [Option<Arc<Window>>; 2] {
        let new_window = || {
            self.live.fetch_add(1, Ordering::Relaxed);
            Arc::new(Window {
                started: Instant::now(),
                failures: AtomicU32::new(0),
                pending: AtomicU32::new(0),
            })
        };
        let user = self.by_user.get_with(self.user_key(user_id), new_window);
        let addr = self
            .addr_key(request)
            .map(|addr| self.by_addr.get_with(addr, new_window));
        [Some(user), addr]
    }

    /// User names are tracked by a keyed 64-bit hash: fixed-size keys, whatever their length.
    fn user_key(&self, user_id: &[u8]) -> u64 {
        self.hasher.hash_one(user_id)
    }

    fn addr_key(&self, request: &Parts) -> Option<IpAddr> {
        (self.client_addr)(request).map(|ip| match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut octets = v6.octets();
                    octets[8..].fill(0);
                    IpAddr::V6(octets.into())
                }
            },
            v4 => v4,
        })
    }
}

/// A cache of at most `capacity` windows, each dropped `window` after it started.
///
/// `live` counts the windows held by both caches: raised when one is made, lowered when the cache
/// drops it (expiry, eviction), so an empty throttle is known without a lookup.
fn bounded<K>(capacity: u64, window: Duration, live: &Arc<AtomicUsize>) -> Cache<K, Arc<Window>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
{
    let live = live.clone();
    Cache::builder()
        .max_capacity(capacity)
        .time_to_live(window)
        .eviction_listener(move |_key, _window, _cause| {
            live.fetch_sub(1, Ordering::Relaxed);
        })
        .build()
}

impl Default for FailureThrottle {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_FAILURES, Self::DEFAULT_WINDOW)
    }
}

impl fmt::Debug for FailureThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FailureThrottle")
            .field("max_failures", &self.max_failures)
            .field("window", &self.window)
            .field("tracked_users", &self.by_user.entry_count())
            .field("tracked_addrs", &self.by_addr.entry_count())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Parts {
        http::Request::new(()).into_parts().0
    }

    #[test]
    fn any_window_length_is_usable_without_panicking() {
        const MAX_WINDOW: Duration = FailureThrottle::MAX_WINDOW;
        for window in [
            Duration::MAX,
            MAX_WINDOW + Duration::from_secs(1),
            MAX_WINDOW,
        ] {
            let throttle = FailureThrottle::new(2, window);
            let parts = request();
            assert_eq!(throttle.retry_after(b"alice", &parts), None);
            throttle.record_failure(b"alice", &parts);
            throttle.record_failure(b"alice", &parts);
            let wait = throttle.retry_after(b"alice", &parts).expect("throttled");
            assert!(wait <= MAX_WINDOW && wait > MAX_WINDOW - Duration::from_secs(60));
        }
        // A zero window: every failure's window has already ended.
        let throttle = FailureThrottle::new(1, Duration::ZERO);
        let parts = request();
        throttle.record_failure(b"alice", &parts);
        throttle.record_failure(b"alice", &parts);
        assert_eq!(throttle.retry_after(b"alice", &parts), None);
    }
}
