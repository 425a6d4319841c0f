//! Failure throttling that stops guessing without locking out the innocent: the policy
//! ([`FailureThrottle`]), where its counts live ([`ThrottleStore`], [`MemoryThrottleStore`])
//! and what they count ([`AttemptKeys`], [`Standing`]).

mod counters;
mod pending;
mod store;

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::request::Parts;

pub use store::{
    AttemptKeys, Count, Event, MemoryThrottleStore, Standing, ThrottleStore,
    DEFAULT_FAMILIAR_CAPACITY, DEFAULT_FAMILIAR_FOR,
};

use crate::client_addr::{ClientAddr, ConnectionMarker};
use crate::outcome::Answer;
use crate::scheme::AttemptKey;
use crate::secret::{process_key, CountingKey, RandomSourceError};
use counters::{Now, RecentSet};
use pending::{InFlight, Others, PendingCounts};

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
///   ([`MemoryThrottleStore`]: about 1.5 MiB, plus at most 65,536 familiar pairs): a flood of
///   distinct names or addresses can only make counts collide and grow (stricter), never push
///   a count out (forgetful). The price: from about 130,000 failures in one window, counts
///   collide past the limits and pairs without a recent success begin to get 429 until the
///   flood fades (`tests/throttle_flood.rs`); familiar addresses keep their users in.
/// - **Slow checks are rationed per address.** An address may have at most
///   [`DEFAULT_MAX_PENDING_PER_ADDRESS`](Self::DEFAULT_MAX_PENDING_PER_ADDRESS) = 2 checks
///   waiting for a slow validator (bcrypt, a remote store) at once; a further one gets 503
///   and counts against the address, so a few flooding addresses cannot fill the verification
///   queue for everyone else; the htpasswd validator's queue (`validator::BlockingPool`) then
///   serves the address with the fewest checks in flight first.
/// - **Attempts in flight count.** From the store's answer until its credentials are checked
///   (or its outcome recorded), every attempt that is not on the fast path below counts toward
///   the pair's, the address's and the user's limits as a failure would (a 429 with
///   `Retry-After: 1` when the failures and the attempts in flight together reach a limit), so
///   guesses sent all at once against a slow validator get no more checks than guesses sent
///   one by one: with a store that answers at once (this process's memory) the limits are
///   exact; with a shared store, attempts in flight on other instances are not seen. Waiting
///   for a shared store's answer, or for Digest's replay record after a right response, does
///   not count: a burst of good requests is not refused for its own size. The attempts in
///   flight and the slow checks are counted in fixed tables too (720,896 bytes; sizes and
///   what a flood of slow checks does to innocent keys in `throttle/pending.rs`).
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
    /// Whether `store` is this process's own (then `live.last_failure_ms` tells whether any
    /// count is live).
    local: bool,
    successes: RecentSet,
    /// What attempts in flight and recent failures leave, shared by every throttle made from
    /// one `new` (a clone configured afterwards counts in the same store).
    live: Arc<Live>,
    client_addr: AddrSource,
}

/// The attempts of the moment: in flight, waiting, and when the latest failure was.
struct Live {
    /// Slow checks in flight per address (the 503 rule).
    pending_addr: PendingCounts,
    /// Counted attempts in flight, per pair, address and user (see [`Reservation`]).
    in_flight: InFlight,
    /// Held while an admission reads the counts and while a failure is recorded and its
    /// reservation released: with a store that answers at once (this process's memory), every
    /// attempt is seen exactly once, in flight or recorded.
    gate: Mutex<()>,
    /// When the latest failure was recorded (milliseconds since the Unix epoch; a time, not a
    /// window number, since throttles sharing it may count over different windows).
    last_failure_ms: AtomicU64,
}

impl Live {
    fn new() -> Self {
        Self {
            pending_addr: PendingCounts::new(16),
            in_flight: InFlight::new(),
            gate: Mutex::new(()),
            last_failure_ms: AtomicU64::new(0),
        }
    }

    /// The gate; a panic elsewhere while it was held leaves nothing to repair (it guards no
    /// data), so a poisoned gate is taken as it is.
    fn gate(&self) -> MutexGuard<'_, ()> {
        self.gate.lock().unwrap_or_else(PoisonError::into_inner)
    }
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
                live: Arc::new(Live::new()),
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
            live: shared.live.clone(),
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
    ///
    /// An attempt that goes the counted way holds a place in the counts of its pair, address
    /// and user (a [`Reservation`]) from the store's answer until its credentials are checked
    /// or its outcome recorded: attempts in flight count toward every limit as failures would,
    /// so that guesses sent all at once, from any number of addresses, get no more answers
    /// from the validator than the limits allow. The counts are read, and a failure is
    /// recorded and its place given up, under one lock (`Live::gate`): with a store that
    /// answers at once (this process's memory) each attempt is counted exactly once, in
    /// flight or recorded. With one that answers later (a shared store) the attempt is judged
    /// on what the store answered and on the attempts in flight when the answer arrives: a
    /// failure recorded meanwhile is seen only if the store's answer includes it (the Redis
    /// store folds in this instance's own counts when its answer arrives), and attempts in
    /// flight on other instances are not seen.
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
        let keys = inner.keys(key.user, addr, key.repeatable);
        let attempt = Attempt {
            keys,
            success,
            at_ms,
            connection,
        };
        let live = &inner.live;
        let gate = live.gate();
        // An address with as many slow checks in flight as it may: shed before the validator
        // is asked (a fast validator never leaves a check in flight).
        if keys
            .addr
            .is_some_and(|a| live.pending_addr.count(a) >= inner.max_pending)
        {
            let reservation = Reservation::take(self, keys).0;
            return Answer::Ready(Admission::Busy(self.ticket(attempt, reservation)));
        }
        // No failure here for two windows (a failure counts until the end of the window after
        // its own: at most two windows): with a local store, every recorded count is zero,
        // and unless the attempts in flight reach a limit (then the store is read: it knows
        // whether the address is familiar) the attempt goes.
        let since_failure = at_ms.saturating_sub(live.last_failure_ms.load(Relaxed));
        if inner.local
            && Duration::from_millis(since_failure) >= inner.window * 2
            && !inner.crowded(&Standing::default(), live.in_flight.others(&keys))
        {
            return Answer::Ready(self.judge(Standing::default(), attempt));
        }
        let this = self.clone();
        let admission = inner.store.standing(&keys).map(move |standing| match standing {
            Ok(standing) => this.judge(standing, attempt),
            Err(error) => {
                // The shared store is unreachable: decide on the attempts in flight alone;
                // the store's errors are its own to log.
                tracing::debug!(target: "tower_proxy_auth", %error, "throttle store unavailable");
                this.judge(Standing::default(), attempt)
            }
        });
        drop(gate);
        admission
    }

    fn ticket(&self, attempt: Attempt, reservation: Reservation) -> Ticket {
        Ticket {
            throttle: self.clone(),
            success: attempt.success,
            connection: attempt.connection,
            counted: Some(Box::new(Counted {
                keys: attempt.keys,
                at_ms: attempt.at_ms,
                pending: None,
                reservation: Some(reservation),
            })),
        }
    }

    /// The admission of an attempt whose keys stand at `standing`. An admitted attempt takes
    /// its place among those in flight here, once the store has answered: with a store that
    /// answers later, attempts waiting for its answer are not in flight yet, so a burst of
    /// good requests (each a store round trip) is not refused for its own size.
    fn judge(&self, standing: Standing, attempt: Attempt) -> Admission {
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
        let (reservation, others) = Reservation::take(self, attempt.keys);
        if inner.crowded(&standing, others) {
            // They end within one validator check.
            return Admission::Throttled {
                retry_after: Duration::from_secs(1),
            };
        }
        if standing.stale_credential {
            return Admission::Stale(self.ticket(attempt, reservation));
        }
        Admission::Go(self.ticket(attempt, reservation))
    }
}

/// What an attempt on the counted way carries from its admission to its ticket.
struct Attempt {
    keys: AttemptKeys,
    success: Option<u128>,
    at_ms: u64,
    connection: Option<ConnectionMarker>,
}

impl Inner {
    /// Whether the failures counted and `others`, the attempts in flight, together reach a
    /// limit: each attempt in flight may be one more failure.
    fn crowded(&self, standing: &Standing, others: Others) -> bool {
        let reach = |count: Count, in_flight: u32, limit: u32| {
            count.value() + f64::from(in_flight) >= f64::from(limit)
        };
        reach(standing.pair, others.pair, self.pair_limit)
            || reach(standing.addr, others.addr, self.addr_limit)
            || (!standing.familiar && reach(standing.user, others.user, self.user_limit))
    }

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
    /// When the attempt was admitted (milliseconds since the Unix epoch): a success is
    /// remembered (the fast path's slot) at that moment, which saves a second clock read.
    at_ms: u64,
    pending: Option<PendingGuard>,
    /// `None` once the credentials are checked ([`Ticket::checked`]).
    reservation: Option<Reservation>,
}

/// A counted attempt's place among the attempts in flight ([`InFlight`]), from the store's
/// answer until its credentials are checked or its outcome recorded, or until it is dropped
/// unsettled (a cancelled request).
struct Reservation {
    live: Arc<Live>,
    keys: AttemptKeys,
}

impl Reservation {
    /// Takes a place for `keys`; with the others in flight with them.
    fn take(throttle: &FailureThrottle, keys: AttemptKeys) -> (Self, Others) {
        let live = throttle.inner.live.clone();
        let others = live.in_flight.add(&keys);
        (Self { live, keys }, others)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.live.in_flight.remove(&self.keys);
    }
}

/// A check waiting for a slow validator, counted against its address until dropped.
struct PendingGuard {
    live: Arc<Live>,
    addr: u128,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.live.pending_addr.sub(self.addr);
    }
}

impl Ticket {
    /// The credentials are checked; what is left is the scheme's bookkeeping (see
    /// [`Scheme::conclude`](crate::scheme::Scheme::conclude)): the attempt no longer counts
    /// among those in flight.
    pub(crate) fn checked(&mut self) {
        if let Some(counted) = self.counted.as_mut() {
            counted.reservation = None;
        }
    }

    /// Marks the attempt as waiting for a slow validator; `false` when its address already has
    /// as many such checks as it may (the attempt is then to be shed).
    pub(crate) fn hold_pending(&mut self) -> bool {
        let inner = &self.throttle.inner;
        let Some(counted) = self.counted.as_mut() else {
            return true;
        };
        let Some(addr) = counted.keys.addr else {
            return true;
        };
        if !inner.live.pending_addr.try_add(addr, inner.max_pending) {
            return false;
        }
        counted.pending = Some(PendingGuard {
            live: inner.live.clone(),
            addr,
        });
        true
    }

    /// Records the outcome; answers whether the connection should be closed (the connection
    /// rule) once the store has it.
    pub(crate) fn settle(self, outcome: Outcome) -> Answer<bool> {
        let Ticket {
            throttle,
            success,
            connection,
            counted,
        } = self;
        let inner = &throttle.inner;
        let counted = counted.map(|counted| {
            let Counted {
                keys,
                at_ms,
                pending,
                reservation,
            } = *counted;
            drop(pending);
            (keys, at_ms, reservation)
        });
        let failed = matches!(
            outcome,
            Outcome::Failure | Outcome::Repeated | Outcome::Shed
        );
        let close = match &connection {
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
        let at_ms = counted.as_ref().map(|(_, at_ms, _)| *at_ms);
        let now = || Now::at(at_ms.unwrap_or_else(now_ms), inner.window);
        let event = match outcome {
            Outcome::Success => {
                // (On the fast path `success` holds its slot already.)
                if let (Some(success), Some(_)) = (success, &counted) {
                    inner.successes.insert(success, &now());
                }
                Some(Event::Success)
            }
            Outcome::Failure => {
                if let Some(success) = success {
                    inner.successes.remove(success);
                }
                Some(Event::Failure)
            }
            Outcome::Shed => Some(Event::Shed),
            Outcome::Repeated | Outcome::Other => None,
        };
        // Without a count to record, the reservation is given up here.
        let (Some(event), Some((keys, _, reservation))) = (event, counted) else {
            return Answer::Ready(close);
        };
        // A failure is recorded and its reservation given up under the gate (see `admit`),
        // and dated when the store counts it: now, not at the admission (a check may end in
        // the next window).
        let gate = (event != Event::Success).then(|| {
            let gate = inner.live.gate();
            inner.live.last_failure_ms.fetch_max(now_ms(), Relaxed);
            gate
        });
        let recorded = inner.store.record(&keys, event).map(move |recorded| {
            drop(reservation);
            if let Err(error) = recorded {
                tracing::debug!(target: "tower_proxy_auth", %error, "throttle store did not record");
            }
            close
        });
        drop(gate);
        recorded
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

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::outcome::ValidatorError;

    fn from(ip: [u8; 4]) -> Parts {
        let mut request = http::Request::new(());
        request
            .extensions_mut()
            .insert(ClientAddr(SocketAddr::from((ip, 40_000))));
        request.into_parts().0
    }

    /// A key as Digest's: no credentials that repeat, so no fast path.
    fn key(user: &[u8]) -> AttemptKey<'_> {
        AttemptKey {
            user,
            repeatable: None,
            tag: None,
        }
    }

    /// The ticket of an attempt let through to the validator.
    fn go(admission: Answer<Admission>) -> Option<Ticket> {
        match admission {
            Answer::Ready(Admission::Go(ticket)) => Some(ticket),
            Answer::Ready(_) => None,
            Answer::Pending(_) => panic!("a memory store answers at once"),
        }
    }

    fn in_flight(throttle: &FailureThrottle) -> u64 {
        let live = &throttle.inner.live;
        live.in_flight.total() + live.pending_addr.total()
    }

    #[test]
    fn a_familiar_address_is_not_refused_for_guesses_in_flight_before_any_failure() {
        // No failure recorded yet (the quiet path), per-user limit 5: alice, familiar at
        // 10.2.0.1, is let in while five guesses at her are in flight from elsewhere.
        let throttle = FailureThrottle::new(3, Duration::from_secs(60)).per_user(5);
        let home = from([10, 2, 0, 1]);
        let first = go(throttle.admit(key(b"alice"), &home)).expect("first");
        let _ = first.settle(Outcome::Success);
        let guesses: Vec<Ticket> = (0..5)
            .map(|i| go(throttle.admit(key(b"alice"), &from([10, 3, 0, i]))).expect("guess"))
            .collect();
        assert!(go(throttle.admit(key(b"alice"), &from([10, 3, 1, 0]))).is_none());
        assert!(go(throttle.admit(key(b"alice"), &home)).is_some());
        drop(guesses);
        assert_eq!(in_flight(&throttle), 0);
    }

    #[test]
    fn a_failure_settled_windows_after_its_admission_still_counts() {
        // A check admitted three windows ago (a slow validator) fails now: the store counts
        // it now, and the next attempt must read the store, not take the quiet path.
        let throttle = FailureThrottle::new(1, Duration::from_secs(60));
        let here = from([10, 5, 0, 1]);
        let mut ticket = go(throttle.admit(key(b"alice"), &here)).expect("go");
        if let Some(counted) = ticket.counted.as_mut() {
            counted.at_ms -= 3 * 60_000;
        }
        let _ = ticket.settle(Outcome::Failure);
        assert!(throttle
            .standing(b"alice", Some([10, 5, 0, 1].into()))
            .is_some_and(|s| s.pair.reached(1)));
        assert!(go(throttle.admit(key(b"alice"), &here)).is_none());
    }

    #[test]
    fn a_clone_configured_afterwards_sees_the_failures_of_the_other() {
        let first = FailureThrottle::new(1, Duration::from_secs(60));
        let second = first.clone().close_connection_after(5);
        let here = from([10, 8, 0, 1]);
        let _ = go(first.admit(key(b"alice"), &here))
            .expect("go")
            .settle(Outcome::Failure);
        assert!(go(first.admit(key(b"alice"), &here)).is_none());
        assert!(go(second.admit(key(b"alice"), &here)).is_none());
        // And the attempts in flight through one count for the other.
        let bob = go(first.admit(key(b"bob"), &here)).expect("bob");
        assert!(go(second.admit(key(b"bob"), &here)).is_none());
        drop(bob);
    }

    #[test]
    fn a_clone_counting_over_another_window_leaves_the_quiet_path_right() {
        // The clone's failures, timed in its own window, must not make the original believe
        // it has had none for two of its windows.
        // (A window whose number, as the counters keep it in 24 bits, is ahead of the
        // minute's: a shared window number would have put the original on its quiet path.)
        let number = |secs: u64| (now_ms() / (secs * 1000)) & ((1 << 24) - 1);
        let other = (61..100_000)
            .find(|&secs| number(secs) > number(60) + 5)
            .expect("such a window");
        let first = FailureThrottle::new(1, Duration::from_secs(60));
        let second = first
            .clone()
            .store(MemoryThrottleStore::new(Duration::from_secs(other)));
        let _ = go(second.admit(key(b"mallory"), &from([10, 20, 0, 1])))
            .expect("go")
            .settle(Outcome::Failure);
        let here = from([10, 20, 0, 2]);
        let _ = go(first.admit(key(b"alice"), &here))
            .expect("go")
            .settle(Outcome::Failure);
        assert!(go(first.admit(key(b"alice"), &here)).is_none());
    }

    /// A store that answers later and reads its counts when it answers, as the Redis store
    /// reads this instance's own.
    struct ReadsWhenItAnswers(Arc<MemoryThrottleStore>);

    impl ThrottleStore for ReadsWhenItAnswers {
        fn standing(&self, keys: &AttemptKeys) -> Answer<Result<Standing, ValidatorError>> {
            let (store, keys) = (self.0.clone(), *keys);
            Answer::pending(async move {
                tokio::task::yield_now().await;
                Ok(store.standing_now(&keys))
            })
        }

        fn record(&self, keys: &AttemptKeys, event: Event) -> Answer<Result<(), ValidatorError>> {
            self.0.record_now(keys, event);
            Answer::pending(async {
                tokio::task::yield_now().await;
                Ok(())
            })
        }

        fn window(&self) -> Duration {
            self.0.window()
        }
    }

    #[tokio::test]
    async fn a_failure_recorded_while_a_store_answer_is_on_its_way_counts() {
        let store = Arc::new(MemoryThrottleStore::new(Duration::from_secs(60)));
        let throttle =
            FailureThrottle::new(1, Duration::from_secs(60)).store(ReadsWhenItAnswers(store));
        let here = from([10, 21, 0, 1]);
        let first = throttle.admit(key(b"alice"), &here);
        let second = throttle.admit(key(b"alice"), &here);
        let Admission::Go(ticket) = first.resolve().await else {
            panic!("the first attempt goes");
        };
        let _ = ticket.settle(Outcome::Failure).resolve().await;
        assert!(!matches!(second.resolve().await, Admission::Go(_)));
        assert_eq!(in_flight(&throttle), 0);
    }

    #[test]
    fn guesses_from_32_threads_get_exactly_the_user_limit() {
        for given in [false, true] {
            let mut throttle = FailureThrottle::new(3, Duration::from_secs(60))
                .per_user(5)
                .max_pending_per_address(100);
            if given {
                throttle = throttle.store(MemoryThrottleStore::new(Duration::from_secs(60)));
            }
            let admitted = AtomicUsize::new(0);
            std::thread::scope(|scope| {
                for thread in 0..32u8 {
                    let (throttle, admitted) = (&throttle, &admitted);
                    scope.spawn(move || {
                        for i in 0..200u8 {
                            let here = from([10, 7, 0, thread.wrapping_add(i) % 20]);
                            if let Some(ticket) = go(throttle.admit(key(b"alice"), &here)) {
                                admitted.fetch_add(1, Relaxed);
                                std::thread::sleep(Duration::from_micros(u64::from(i % 3) * 700));
                                let _ = ticket.settle(Outcome::Failure);
                            }
                        }
                    });
                }
            });
            assert_eq!(
                admitted.load(Relaxed),
                5,
                "a store given with .store: {given}"
            );
            assert_eq!(in_flight(&throttle), 0);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 8)]
    async fn every_way_an_attempt_ends_gives_its_place_back() {
        let throttle = FailureThrottle::new(10, Duration::from_secs(60)).max_pending_per_address(3);
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..64u32 {
            let throttle = throttle.clone();
            tasks.spawn(async move {
                for i in 0..300u32 {
                    let user = format!("u{}", (task + i) % 7);
                    let here = from([10, 0, (task % 5) as u8, (i % 3) as u8]);
                    let Some(mut ticket) = go(throttle.admit(key(user.as_bytes()), &here)) else {
                        continue;
                    };
                    let held = ticket.hold_pending();
                    match (task + i) % 7 {
                        0 => drop(ticket.settle(Outcome::Success)),
                        1 => drop(ticket.settle(if held {
                            Outcome::Failure
                        } else {
                            Outcome::Shed
                        })),
                        2 => drop(ticket.settle(Outcome::Other)),
                        3 => drop(ticket.settle(Outcome::Repeated)),
                        4 => drop(ticket),
                        5 => {
                            ticket.checked();
                            drop(ticket.settle(Outcome::Success));
                        }
                        _ => {
                            // Cancelled in the middle of its check.
                            let _ = tokio::time::timeout(Duration::from_micros(50), async move {
                                tokio::time::sleep(Duration::from_millis(5)).await;
                                drop(ticket.settle(Outcome::Failure));
                            })
                            .await;
                        }
                    }
                    tokio::task::yield_now().await;
                }
            });
        }
        tasks.join_all().await;
        assert_eq!(in_flight(&throttle), 0);
        assert!(go(throttle.admit(key(b"fresh"), &from([10, 9, 9, 9]))).is_some());
    }
}
