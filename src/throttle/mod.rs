//! Failure throttling that stops guessing without locking out the innocent: the policy
//! ([`FailureThrottle`]), where its counts live ([`ThrottleStore`], [`MemoryThrottleStore`])
//! and what they count ([`AttemptKeys`], [`Standing`]).

mod counters;
mod pending;
mod store;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::request::Parts;

pub use store::{
    AttemptKeys, Count, Event, MemoryThrottleStore, Standing, ThrottleStore,
    DEFAULT_FAMILIAR_CAPACITY, DEFAULT_FAMILIAR_FOR,
};

use crate::client_addr::{ClientAddr, ConnectionMarker};
use crate::outcome::{Answer, ValidatorError};
use crate::scheme::AttemptKey;
use crate::secret::{process_key, CountingKey, RandomSourceError};
use counters::{Now, RecentSet};
use pending::PendingCounts;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

type AddrSource = Arc<dyn Fn(&Parts) -> Option<IpAddr> + Send + Sync>;

/// Counts failed authentication attempts and refuses guessing, by who is guessing.
///
/// # The policy
///
/// An online password-guessing attack needs many wrong answers; this bounds how many it gets,
/// counted over a sliding window (default 60 s):
///
/// | key | default limit | stops |
/// |---|---|---|
/// | (user name, client address) | [`DEFAULT_MAX_FAILURES`](Self::DEFAULT_MAX_FAILURES) = 10 | one client guessing one user's password |
/// | client address, across users | 10 × that = 100 | one client spraying a password over many names |
/// | user name, across addresses | 10 × that = 100 | many clients guessing one user, except at addresses where that user succeeded recently (familiar addresses, 7 days) |
///
/// Past a limit the attempt gets `429 Too Many Requests` with `Retry-After`, without the
/// validator being asked, so the answer is the same for known and unknown users and costs no
/// hashing. Only a validator's rejection counts as a failure, and a check shed because the
/// validator was overloaded counts against the address. Requests without credentials and
/// malformed credentials never count (browsers and most clients send their first request
/// without any). A success clears nothing: a user's own traffic gives an attacker no fresh
/// guesses.
///
/// - **Repeated stale credentials count once.** A client repeating the same wrong credentials
///   (an old password in its configuration) adds one failure per window, not one per request:
///   the credentials are remembered (as a keyed hash) when they fail, and while remembered
///   they are answered with the challenge at once, without asking the validator. Only schemes
///   whose credentials repeat (Basic) have this; a Digest response differs every time.
/// - **Floods cannot flush the counts.** The counts sit in fixed-size tables
///   ([`MemoryThrottleStore`]: about 1.4 MiB, plus at most 65,536 familiar pairs): a flood of
///   distinct names or addresses can only make counts collide and grow (stricter), never push
///   a count out (forgetful). The price: from about 130,000 failures in one window, counts
///   collide past the limits and pairs without a recent success begin to get 429 until the
///   flood fades (`tests/throttle_flood.rs`); familiar addresses keep their users in.
/// - **Slow checks are rationed per address.** An address may have at most
///   [`DEFAULT_MAX_PENDING_PER_ADDRESS`](Self::DEFAULT_MAX_PENDING_PER_ADDRESS) = 2 checks
///   waiting for a slow validator (bcrypt, a remote store) at once; a further one gets 503
///   and counts against the address, so a few flooding addresses cannot fill the verification
///   queue for everyone else; the htpasswd validator's queue (`validator::BlockingPool`) then
///   serves the address with the fewest checks in flight first. Attempts in flight count
///   toward the pair's limit too.
/// - **Looping connections are closed.** After [`DEFAULT_CLOSE_AFTER`](Self::DEFAULT_CLOSE_AFTER)
///   = 3 consecutive failures on one connection, the rejection says `Connection: close`
///   (clients that loop on the same wrong credentials on one socket). The server marks each
///   connection with a [`ConnectionMarker`] in the request extensions; without it this rule
///   does not apply.
/// - **A fast path for good clients.** Credentials that succeeded from an address, and have
///   not failed since, are let through to the validator without reading the counts or the
///   clock (16,384 slots of keyed 40-bit fingerprints; a newer success may take an older
///   one's slot, which only sends that client the slow way once). The validator still checks
///   every request, so a slot can only spare its credentials the count check: when they fail
///   (a changed password) the slot is cleared, and from then on they count.
///
/// Counting per user name has a price: anyone can spend a user's failures from new addresses;
/// the familiar-address exemption keeps the user in from where they usually are, but from a
/// new address they get 429 until the window ends while an attack lasts. Behind a load
/// balancer every client has the balancer's address: give the throttle the real client
/// address (see [`client_addr_from`](Self::client_addr_from), and the example proxy's PROXY
/// protocol and trusted `X-Forwarded-For` support).
///
/// Added to a layer with
/// [`ProxyAuthLayerBuilder::throttle`](crate::ProxyAuthLayerBuilder::throttle). Clones share
/// their counts. The counts may live in a store shared by several instances
/// ([`store`](Self::store)); the keyed hashes then need a key shared by them
/// ([`key_material`](Self::key_material)).
///
/// ```
/// use std::time::Duration;
/// use axum::extract::ConnectInfo;
/// use tower_proxy_auth::{FailureThrottle, ProxyAuthLayer, StaticUsers};
///
/// let throttle = FailureThrottle::new(5, Duration::from_secs(300))
///     .per_address(50)
///     .per_user(50)
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
    inner: Arc<Inner>,
}

struct Inner {
    pair_limit: u32,
    addr_limit: u32,
    user_limit: u32,
    window: Duration,
    max_pending: u32,
    close_after: u32,
    key: CountingKey,
    store: Arc<dyn ThrottleStore>,
    /// Whether `store` is this process's own (then `last_failure` tells whether any count is
    /// live).
    local: bool,
    successes: RecentSet,
    pending_addr: PendingCounts,
    pending_pair: PendingCounts,
    /// The epoch of the latest failure recorded here.
    last_failure: AtomicU64,
    client_addr: AddrSource,
}

impl FailureThrottle {
    /// Default failures per (user name, client address) in one window: 10.
    pub const DEFAULT_MAX_FAILURES: u32 = 10;
    /// Default window: 60 seconds.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
    /// Default checks waiting for a slow validator per client address: 2.
    pub const DEFAULT_MAX_PENDING_PER_ADDRESS: u32 = 2;
    /// Default consecutive failures on one connection before rejections close it: 3.
    pub const DEFAULT_CLOSE_AFTER: u32 = 3;
    /// Longest window: 365 days. Longer windows are shortened to it.
    pub const MAX_WINDOW: Duration = Duration::from_secs(365 * 24 * 60 * 60);

    /// `max_failures` per (user name, client address) within `window`, ten times as many per
    /// address and per user name, counted in memory. `max_failures` of 0 is taken as 1; a
    /// `window` over [`MAX_WINDOW`](Self::MAX_WINDOW) is taken as it, under a second as a
    /// second. The client address is read from the [`ClientAddr`] extension.
    ///
    /// # Panics
    ///
    /// When the operating system's random source fails (no key for the hashes can be made);
    /// see [`try_new`](Self::try_new).
    pub fn new(max_failures: u32, window: Duration) -> Self {
        match Self::try_new(max_failures, window) {
            Ok(throttle) => throttle,
            Err(error) => panic!("FailureThrottle::new: {error}"),
        }
    }

    /// [`new`](Self::new), or the error when the operating system's random source fails.
    ///
    /// # Errors
    ///
    /// [`RandomSourceError`].
    pub fn try_new(max_failures: u32, window: Duration) -> Result<Self, RandomSourceError> {
        let window = window.clamp(Duration::from_secs(1), Self::MAX_WINDOW);
        let n = max_failures.max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                pair_limit: n,
                addr_limit: n.saturating_mul(10),
                user_limit: n.saturating_mul(10),
                window,
                max_pending: Self::DEFAULT_MAX_PENDING_PER_ADDRESS,
                close_after: Self::DEFAULT_CLOSE_AFTER,
                key: CountingKey::random()?,
                store: Arc::new(MemoryThrottleStore::new(window)),
                local: true,
                successes: RecentSet::new(14),
                pending_addr: PendingCounts::new(),
                pending_pair: PendingCounts::new(),
                last_failure: AtomicU64::new(0),
                client_addr: Arc::new(|parts: &Parts| {
                    parts.extensions.get::<ClientAddr>().map(|a| a.0.ip())
                }),
            }),
        })
    }

    fn with(self, f: impl FnOnce(&mut Inner)) -> Self {
        let mut inner = Arc::try_unwrap(self.inner).unwrap_or_else(|shared| Inner {
            // Configured after a clone: start over with the same settings and counts.
            pair_limit: shared.pair_limit,
            addr_limit: shared.addr_limit,
            user_limit: shared.user_limit,
            window: shared.window,
            max_pending: shared.max_pending,
            close_after: shared.close_after,
            key: shared.key.clone(),
            store: shared.store.clone(),
            local: shared.local,
            successes: RecentSet::new(14),
            pending_addr: PendingCounts::new(),
            pending_pair: PendingCounts::new(),
            last_failure: AtomicU64::new(shared.last_failure.load(Relaxed)),
            client_addr: shared.client_addr.clone(),
        });
        f(&mut inner);
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Failures allowed per client address across user names (default: 10 × the per-pair
    /// limit). 0 is taken as 1.
    pub fn per_address(self, limit: u32) -> Self {
        self.with(|i| i.addr_limit = limit.max(1))
    }

    /// Failures allowed per user name across addresses, outside its familiar addresses
    /// (default: 10 × the per-pair limit). 0 is taken as 1.
    pub fn per_user(self, limit: u32) -> Self {
        self.with(|i| i.user_limit = limit.max(1))
    }

    /// Checks waiting for a slow validator allowed per client address (default
    /// [`DEFAULT_MAX_PENDING_PER_ADDRESS`](Self::DEFAULT_MAX_PENDING_PER_ADDRESS)). 0 is
    /// taken as 1.
    pub fn max_pending_per_address(self, limit: u32) -> Self {
        self.with(|i| i.max_pending = limit.max(1))
    }

    /// Consecutive failures on one connection after which rejections close it (default
    /// [`DEFAULT_CLOSE_AFTER`](Self::DEFAULT_CLOSE_AFTER)); 0 never closes.
    pub fn close_connection_after(self, failures: u32) -> Self {
        self.with(|i| i.close_after = failures)
    }

    /// Keeps the counts in `store` (for instance one shared by several instances) instead of
    /// this process's memory. The store counts over its own [`window`](ThrottleStore::window).
    pub fn store(self, store: impl ThrottleStore) -> Self {
        let window = store.window();
        self.with(|i| {
            i.store = Arc::new(store);
            i.local = false;
            i.window = window;
        })
    }

    /// Derives the key of the keyed hashes from `material` (at least 16 bytes; the same on
    /// every instance sharing a store), instead of a random key. Returns `None` when the
    /// material is too short.
    pub fn key_material(self, material: &[u8]) -> Option<Self> {
        let key = CountingKey::derived(material, b"tower-proxy-auth throttle")?;
        Some(self.with(|i| i.key = key))
    }

    /// Reads the client address with `source` instead of from the [`ClientAddr`] extension,
    /// e.g. from axum's `ConnectInfo<SocketAddr>`. `None` means "unknown": only the user name
    /// is counted then.
    pub fn client_addr_from<F>(self, source: F) -> Self
    where
        F: Fn(&Parts) -> Option<IpAddr> + Send + Sync + 'static,
    {
        self.with(|i| i.client_addr = Arc::new(source))
    }

    /// The failures allowed per (user name, client address) in one window.
    pub fn max_failures(&self) -> u32 {
        self.inner.pair_limit
    }

    /// The failures allowed per client address.
    pub fn address_limit(&self) -> u32 {
        self.inner.addr_limit
    }

    /// The failures allowed per user name.
    pub fn user_limit(&self) -> u32 {
        self.inner.user_limit
    }

    /// The window length.
    pub fn window(&self) -> Duration {
        self.inner.window
    }

    /// The standing of `user` at `addr` now (for tests, metrics and debugging); `None` when
    /// the store answers later.
    pub fn standing(&self, user: &[u8], addr: Option<IpAddr>) -> Option<Standing> {
        let keys = self.inner.keys(user, addr.map(normalize), None);
        match self.inner.store.standing(&keys) {
            Answer::Ready(Ok(standing)) => Some(standing),
            _ => None,
        }
    }

    /// Decides whether an attempt may go to the validator.
    pub(crate) fn admit(&self, key: AttemptKey<'_>, request: &Parts) -> Answer<Admission> {
        let inner = &self.inner;
        let addr = (inner.client_addr)(request).map(normalize);
        let connection = request.extensions.get::<ConnectionMarker>().cloned();
        // Good clients: these credentials succeeded from here and have not failed since (no
        // clock read, no count read: the cheapest path, and the common one).
        let success = inner.success_key(&key, addr);
        if success.is_some_and(|s| inner.successes.holds(s)) {
            return Answer::Ready(Admission::Go(Ticket {
                throttle: self.clone(),
                success,
                connection,
                counted: None,
            }));
        }
        let at_ms = now_ms();
        let now = Now::at(at_ms, inner.window);
        let keys = inner.keys(key.user, addr, key.repeatable);
        // An address with as many slow checks in flight as it may: shed before the validator
        // is asked (a fast validator never leaves a check in flight).
        if keys
            .addr
            .is_some_and(|a| inner.pending_addr.count(a) >= inner.max_pending)
        {
            return Answer::Ready(Admission::Busy(
                self.ticket(keys, success, at_ms, connection),
            ));
        }
        // Attempts still in flight count toward the pair's limit.
        let pending = inner.pending_pair.count(keys.pair);
        // No failure here for two windows: with a local store, every count is zero.
        let since = now.epoch().wrapping_sub(inner.last_failure.load(Relaxed)) & ((1 << 24) - 1);
        let quiet = inner.local && since > 1;
        if quiet && pending == 0 {
            return Answer::Ready(Admission::Go(self.ticket(keys, success, at_ms, connection)));
        }
        let this = self.clone();
        inner.store.standing(&keys).map(move |standing| match standing {
            Ok(standing) => this.judge(standing, pending, keys, success, at_ms, connection),
            Err(error) => {
                // The shared store is unreachable: decide on the counts in flight alone; the
                // store's errors are its own to log.
                tracing::debug!(target: "tower_proxy_auth", %error, "throttle store unavailable");
                Admission::Go(this.ticket(keys, success, at_ms, connection))
            }
        })
    }

    fn ticket(
        &self,
        keys: AttemptKeys,
        success: Option<u128>,
        at_ms: u64,
        connection: Option<ConnectionMarker>,
    ) -> Ticket {
        Ticket {
            throttle: self.clone(),
            success,
            connection,
            counted: Some(Box::new(Counted {
                keys,
                at_ms,
                pending: None,
            })),
        }
    }

    fn judge(
        &self,
        standing: Standing,
        pending: u32,
        keys: AttemptKeys,
        success: Option<u128>,
        at_ms: u64,
        connection: Option<ConnectionMarker>,
    ) -> Admission {
        let inner = &self.inner;
        let window = inner.window;
        let mut wait: Option<Duration> = None;
        let mut over = |count: Count, limit: u32| {
            if count.reached(limit) {
                let w = count.retry_after(limit, window);
                wait = Some(wait.map_or(w, |old| old.max(w)));
            }
        };
        over(standing.pair, inner.pair_limit);
        over(standing.addr, inner.addr_limit);
        if !standing.familiar {
            over(standing.user, inner.user_limit);
        }
        if let Some(retry_after) = wait {
            return Admission::Throttled { retry_after };
        }
        if standing.pair.value() + f64::from(pending) >= f64::from(inner.pair_limit) {
            return Admission::Throttled {
                retry_after: Duration::from_secs(1),
            };
        }
        if standing.stale_credential {
            return Admission::Stale(self.ticket(keys, success, at_ms, connection));
        }
        Admission::Go(self.ticket(keys, success, at_ms, connection))
    }
}

impl Inner {
    fn keys(&self, user: &[u8], addr: Option<IpAddr>, credential: Option<&[u8]>) -> AttemptKeys {
        let addr_bytes = addr.map(|a| match a {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        });
        let tag = |parts: &[&[u8]]| self.key.tag(parts).to_u128();
        let addr_part: &[u8] = addr_bytes.as_ref().map_or(&[], |a| &a[..]);
        AttemptKeys {
            user: tag(&[b"u", user]),
            addr: addr_bytes.map(|a| tag(&[b"a", &a[..]])),
            pair: tag(&[b"p", user, addr_part]),
            credential: credential.map(|c| tag(&[b"c", user, c])),
        }
    }

    /// The key of "these credentials from this address": the credentials' process-key tag
    /// (made once per request, shared with the validator) mixed with the address. The tag is
    /// a keyed pseudo-random value nobody outside knows, so mixing the known address in by
    /// multiplication suffices to tell addresses apart; no second hash is needed.
    fn success_key(&self, key: &AttemptKey<'_>, addr: Option<IpAddr>) -> Option<u128> {
        let credential = key.repeatable?;
        let tag = match key.tag {
            Some(tag) => tag,
            None => process_key()
                .ok()?
                .tag_credentials(key.user.len(), credential)
                .to_u128(),
        };
        let addr = match addr {
            None => u128::MAX,
            Some(IpAddr::V4(v4)) => u128::from(v4.to_bits()),
            Some(IpAddr::V6(v6)) => v6.to_bits(),
        };
        // An odd 128-bit constant (from the digits of pi): a bijection of the address.
        Some(tag ^ addr.wrapping_mul(0x243f_6a88_85a3_08d3_1319_8a2e_0370_7345))
    }
}

/// IPv4-mapped IPv6 addresses as IPv4; other IPv6 addresses by their /64 (one host usually
/// holds a whole /64).
fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::V6(octets.into())
            }
        },
        v4 => v4,
    }
}

/// What the throttle says of an attempt.
pub(crate) enum Admission {
    /// Ask the validator; settle the ticket with the outcome.
    Go(Ticket),
    /// 429 with `Retry-After`.
    Throttled { retry_after: Duration },
    /// These exact credentials failed recently: the challenge again without asking the
    /// validator (settle the ticket as a failure that is not counted again).
    Stale(Ticket),
    /// The address has as many slow checks in flight as it may: shed with 503 (settle the
    /// ticket as shed).
    Busy(Ticket),
}

/// What an outcome was, for the throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    Failure,
    /// A failure already counted (stale credentials answered without the validator).
    Repeated,
    Shed,
    /// Neither (a malformed request, a stale nonce, a forbidden target, an outage).
    Other,
}

/// An admitted attempt, until its outcome is settled. Small (five words) on the fast path for
/// good clients; what the counted path adds is boxed.
pub(crate) struct Ticket {
    throttle: FailureThrottle,
    /// The key of these credentials from this address (schemes with repeatable credentials).
    success: Option<u128>,
    connection: Option<ConnectionMarker>,
    /// `None` on the fast path for good clients (whose `success` holds its slot already).
    counted: Option<Box<Counted>>,
}

/// What an attempt that went the counted way carries.
struct Counted {
    keys: AttemptKeys,
    /// When the attempt was admitted (milliseconds since the Unix epoch): its outcome is
    /// counted at that moment, which saves a second clock read.
    at_ms: u64,
    pending: Option<PendingGuard>,
}

/// An attempt waiting for a slow validator, counted until dropped.
struct PendingGuard {
    throttle: FailureThrottle,
    pair: u128,
    addr: Option<u128>,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        let inner = &self.throttle.inner;
        inner.pending_pair.sub(self.pair);
        if let Some(addr) = self.addr {
            inner.pending_addr.sub(addr);
        }
    }
}

impl Ticket {
    /// Marks the attempt as waiting for a slow validator; `false` when its address already has
    /// as many such checks as it may (the attempt is then to be shed).
    pub(crate) fn hold_pending(&mut self) -> bool {
        let inner = &self.throttle.inner;
        let Some(counted) = self.counted.as_mut() else {
            return true;
        };
        let keys = counted.keys;
        if let Some(addr) = keys.addr {
            if !inner.pending_addr.try_add(addr, inner.max_pending) {
                return false;
            }
        }
        inner.pending_pair.add(keys.pair);
        counted.pending = Some(PendingGuard {
            throttle: self.throttle.clone(),
            pair: keys.pair,
            addr: keys.addr,
        });
        true
    }

    /// Records the outcome; answers whether the connection should be closed (the connection
    /// rule) once the store has it.
    pub(crate) fn settle(self, outcome: Outcome) -> Answer<bool> {
        let inner = &self.throttle.inner;
        let counted = self.counted.map(|counted| {
            drop(counted.pending);
            (counted.keys, counted.at_ms)
        });
        let failed = matches!(
            outcome,
            Outcome::Failure | Outcome::Repeated | Outcome::Shed
        );
        let close = match &self.connection {
            Some(marker) if failed => {
                let n = marker.failures.fetch_add(1, Relaxed) + 1;
                inner.close_after > 0 && n >= inner.close_after
            }
            Some(marker) if outcome == Outcome::Success => {
                if marker.failures.load(Relaxed) != 0 {
                    marker.failures.store(0, Relaxed);
                }
                false
            }
            _ => false,
        };
        let at_ms = counted.map(|(_, at_ms)| at_ms);
        let now = || Now::at(at_ms.unwrap_or_else(now_ms), inner.window);
        let event = match outcome {
            Outcome::Success => {
                // (On the fast path `success` holds its slot already.)
                if let (Some(success), Some(_)) = (self.success, counted) {
                    inner.successes.insert(success, &now());
                }
                Some(Event::Success)
            }
            Outcome::Failure => {
                if let Some(success) = self.success {
                    inner.successes.remove(success);
                }
                Some(Event::Failure)
            }
            Outcome::Shed => Some(Event::Shed),
            Outcome::Repeated | Outcome::Other => None,
        };
        let (Some(event), Some((keys, _))) = (event, counted) else {
            return Answer::Ready(close);
        };
        if event != Event::Success {
            inner.last_failure.fetch_max(now().epoch(), Relaxed);
        }
        inner
            .store
            .record(&keys, event)
            .map(move |recorded: Result<(), ValidatorError>| {
                if let Err(error) = recorded {
                    tracing::debug!(target: "tower_proxy_auth", %error, "throttle store did not record");
                }
                close
            })
    }
}

impl Default for FailureThrottle {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_FAILURES, Self::DEFAULT_WINDOW)
    }
}

impl fmt::Debug for FailureThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        f.debug_struct("FailureThrottle")
            .field("per_pair", &i.pair_limit)
            .field("per_address", &i.addr_limit)
            .field("per_user", &i.user_limit)
            .field("window", &i.window)
            .field("max_pending_per_address", &i.max_pending)
            .field("close_after", &i.close_after)
            .finish_non_exhaustive()
    }
}
