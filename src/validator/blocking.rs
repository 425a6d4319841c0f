//! Slow checks off the async runtime's worker threads: [`BlockingPool`], and [`Blocking`], a
//! validator run on one.
//!
//! A bcrypt check at cost 12 keeps a core busy for about a quarter of a second; run on a worker
//! thread it would stall every other connection that thread serves. Each check runs on Tokio's
//! blocking pool ([`tokio::task::spawn_blocking`]) once it has one of the pool's slots (by
//! default one per CPU), so a burst of logins queues instead of starving the machine, and
//! requests that need no check keep flowing.
//!
//! The queue is fair across clients rather than first come, first served: a freed slot goes to
//! the waiting check whose client (its [`ClientAddr`], IPv6 by /64) has the fewest checks
//! running or waiting, the earliest of those first. A few addresses that keep many checks
//! queued (a flood of unknown-user guesses, each costing a dummy verification) then delay
//! another client's login by about one check's time, not by the whole queue.
//!
//! The queue is bounded too: a check first takes a place among `slots + queue` (running or
//! waiting) without waiting for one; when none is free it is shed at once with a
//! [`ValidatorError::overloaded`] (the layer answers 503) instead of waiting behind everyone
//! else. Without that bound, a flood of requests for unknown users (each costs a dummy
//! verification, by design) could make a legitimate login wait for minutes.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::request::Parts;
use tokio::runtime::Handle;
use tokio::sync::{oneshot, Semaphore};

use super::{Validation, Validator, ValidatorError};
use crate::client_addr::ClientAddr;
use crate::scheme::basic::BasicCredentials;

/// Default places waiting per running slot of a [`BlockingPool`]: 16.
///
/// The last request admitted to a full queue waits about `queue × t / slots` = 16 × t, where t
/// is one check's time, whatever the number of CPUs: with bcrypt at cost 10 (t ≈ 60–100 ms on
/// a server core) about 1–1.5 s, at cost 12 (t ≈ 250–450 ms) about 4–7 s. That is as long as a
/// person waits for a login before retrying, and well within the 30 s and more that clients
/// and proxies in front wait for an answer, so an admitted request is rarely abandoned (its
/// check wasted) while further ones get a quick 503 they can retry.
pub const DEFAULT_MAX_QUEUED_PER_SLOT: usize = 16;

/// A bounded set of threads for slow, synchronous checks, with a bounded queue that sheds.
///
/// Clones share the slots and the queue. Needs a Tokio runtime when a check runs (outside one,
/// the check fails with an error, a 503 through the layer).
///
/// ```
/// use tower_proxy_auth::validator::BlockingPool;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let pool = BlockingPool::new(2, 8); // two at once, eight more waiting
/// let answer = pool.run(|| 6 * 7).await;
/// assert_eq!(answer.ok(), Some(42));
/// # }
/// ```
#[derive(Clone)]
pub struct BlockingPool {
    shared: Arc<PoolState>,
}

struct PoolState {
    /// Who runs, who waits, and who is next.
    turns: Mutex<Turns>,
    /// One per check allowed to run or wait: `slots` plus the queue's bound.
    places: Arc<Semaphore>,
    slots: usize,
    queue: usize,
    /// What a shed check answers.
    full: Arc<str>,
    started: Arc<AtomicU64>,
    shed: AtomicU64,
}

impl BlockingPool {
    /// A pool running at most `slots` checks at once (at least 1), with at most `queue` more
    /// waiting for their turn.
    pub fn new(slots: usize, queue: usize) -> Self {
        let slots = slots.clamp(1, Semaphore::MAX_PERMITS);
        let places = slots.saturating_add(queue).min(Semaphore::MAX_PERMITS);
        Self {
            shared: Arc::new(PoolState {
                turns: Mutex::new(Turns::default()),
                places: Arc::new(Semaphore::new(places)),
                slots,
                queue: places - slots,
                full: Arc::from(format!(
                    "verification queue is full ({} waiting for {slots} running); check \
                     refused, try again later",
                    places - slots
                )),
                started: Arc::new(AtomicU64::new(0)),
                shed: AtomicU64::new(0),
            }),
        }
    }

    /// A pool with one slot per CPU and [`DEFAULT_MAX_QUEUED_PER_SLOT`] places waiting per
    /// slot.
    pub fn per_cpu() -> Self {
        let slots = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::new(slots, slots.saturating_mul(DEFAULT_MAX_QUEUED_PER_SLOT))
    }

    /// Runs `check` on the blocking pool of the current Tokio runtime once a slot is free, or
    /// answers at once (at the first poll) with an overloaded error when the queue is full.
    /// The check waits as one of nobody's in particular: [`run_for`](Self::run_for) names the
    /// client it is for.
    ///
    /// # Errors
    ///
    /// As [`run_for`](Self::run_for).
    pub async fn run<T, F>(&self, check: F) -> Result<T, ValidatorError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.run_for(None, check).await
    }

    /// Runs `check` for the client at `client` once a slot is free, or answers at once (at the
    /// first poll) with an overloaded error when the queue is full.
    ///
    /// While checks wait, a freed slot goes to the one whose client has the fewest checks
    /// running or waiting (IPv6 clients counted by /64; `None` is one client of its own), the
    /// earliest of those first: a client with many checks queued waits for its own, not others
    /// for it. The place and the slot travel with the blocking task, so a check whose caller
    /// went away still counts against both limits until it finishes; one whose caller goes
    /// away while it waits gives its place back.
    ///
    /// # Errors
    ///
    /// [`ValidatorError::overloaded`] when the queue is full; an unavailable error outside a
    /// Tokio runtime or when the task panicked.
    pub async fn run_for<T, F>(&self, client: Option<IpAddr>, check: F) -> Result<T, ValidatorError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let state = &self.shared;
        let handle = Handle::try_current()
            .map_err(|_| ValidatorError::new("a blocking check needs a Tokio runtime"))?;
        let Ok(place) = state.places.clone().try_acquire_owned() else {
            state.shed.fetch_add(1, Relaxed);
            return Err(ValidatorError::overloaded(state.full.to_string()));
        };
        let turn = Turn::take(state.clone(), client_key(client)).await;
        let started = state.started.clone();
        handle
            .spawn_blocking(move || {
                let _turn = turn;
                let _place = place;
                started.fetch_add(1, Relaxed);
                check()
            })
            .await
            .map_err(|_| ValidatorError::new("a blocking check failed (its task panicked)"))
    }

    /// Checks started so far.
    pub fn started(&self) -> u64 {
        self.shared.started.load(Relaxed)
    }

    /// Checks shed so far because the queue was full.
    pub fn shed(&self) -> u64 {
        self.shared.shed.load(Relaxed)
    }

    /// How many checks may run at once.
    pub fn slots(&self) -> usize {
        self.shared.slots
    }

    /// How many checks may wait.
    pub fn queue(&self) -> usize {
        self.shared.queue
    }

    #[cfg(test)]
    pub(crate) fn free_places(&self) -> usize {
        self.shared.places.available_permits()
    }
}

/// Who a check is for: a client address as a number (IPv6 cut to its /64), or nobody.
type Client = Option<u128>;

fn client_key(client: Option<IpAddr>) -> Client {
    client.map(|ip| match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        // Mapped IPv4 addresses count as the IPv4 address they are.
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(u32::from(v4)),
            None => u128::from(v6) & !u128::from(u64::MAX),
        },
    })
}

/// The pool's slots: how many run, the checks waiting (in arrival order) and how many checks
/// each client has running or waiting.
#[derive(Default)]
struct Turns {
    running: usize,
    next_seq: u64,
    waiting: Vec<Waiter>,
    in_flight: HashMap<Client, usize>,
}

struct Waiter {
    seq: u64,
    client: Client,
    wake: oneshot::Sender<()>,
}

impl Turns {
    fn lock(state: &PoolState) -> MutexGuard<'_, Turns> {
        // Nothing panics while holding the lock; were it poisoned, the counts are still whole.
        state.turns.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn leave(&mut self, client: Client) {
        if let Some(n) = self.in_flight.get_mut(&client) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&client);
            }
        }
    }

    /// Gives a freed slot to the waiting check whose client has the fewest checks in flight
    /// (the earliest of those), or frees it.
    fn pass_on(&mut self) {
        while let Some(next) = self
            .waiting
            .iter()
            .enumerate()
            .min_by_key(|(_, w)| (self.in_flight.get(&w.client).copied().unwrap_or(0), w.seq))
            .map(|(i, _)| i)
        {
            let waiter = self.waiting.remove(next);
            if waiter.wake.send(()).is_ok() {
                return;
            }
            // Its caller went away without withdrawing (not expected: the withdrawal runs
            // first); it no longer counts.
            self.leave(waiter.client);
        }
        self.running = self.running.saturating_sub(1);
    }
}

/// A slot held by a check until it finishes; dropped, it goes to the next waiting check.
struct Turn {
    state: Arc<PoolState>,
    client: Client,
}

impl Turn {
    async fn take(state: Arc<PoolState>, client: Client) -> Self {
        let (seq, granted) = {
            let mut turns = Turns::lock(&state);
            *turns.in_flight.entry(client).or_default() += 1;
            if turns.running < state.slots && turns.waiting.is_empty() {
                turns.running += 1;
                drop(turns);
                return Self { state, client };
            }
            let seq = turns.next_seq;
            turns.next_seq += 1;
            let (wake, granted) = oneshot::channel();
            turns.waiting.push(Waiter { seq, client, wake });
            (seq, granted)
        };
        let mut waiting = Waiting {
            state: &state,
            seq,
            client,
            done: false,
        };
        // A waiter leaves the queue only to be woken (`pass_on`, which drops the sender after a
        // send) or by its own withdrawal (`Waiting::drop`): an answer means a slot.
        let _ = granted.await;
        waiting.done = true;
        drop(waiting);
        Self { state, client }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let mut turns = Turns::lock(&self.state);
        turns.leave(self.client);
        turns.pass_on();
    }
}

/// A check waiting for a slot; dropped before one came (its caller went away), it withdraws,
/// or passes on the slot given to it in the meantime.
struct Waiting<'a> {
    state: &'a PoolState,
    seq: u64,
    client: Client,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut turns = Turns::lock(self.state);
        turns.leave(self.client);
        match turns.waiting.iter().position(|w| w.seq == self.seq) {
            Some(i) => {
                turns.waiting.remove(i);
            }
            // Given a slot just before going away: the next check gets it.
            None => turns.pass_on(),
        }
    }
}

impl fmt::Debug for BlockingPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockingPool")
            .field("slots", &self.shared.slots)
            .field("queue", &self.shared.queue)
            .field("started", &self.started())
            .field("shed", &self.shed())
            .finish()
    }
}

/// A synchronous, slow validator (a password hash, a blocking client library) run on a
/// [`BlockingPool`] instead of the request's task. Made by [`Blocking::new`].
///
/// Each check gets its own copy of the credentials and the request parts (a clone of the
/// header map), which is nothing next to a slow hash. A validator that answers
/// [`Validation::Pending`] is driven to its answer on the blocking thread.
///
/// ```
/// use tower_proxy_auth::validator::{from_fn, Blocking, BlockingPool};
/// use tower_proxy_auth::{Decision, ProxyAuthLayer};
///
/// let slow_ldap_bind = from_fn(|creds, _req| {
///     // a synchronous call into a blocking client library
///     if creds.user_id() == "alice" { Decision::Reject } else { Decision::Reject }
/// });
/// let validator = Blocking::new(slow_ldap_bind, BlockingPool::new(4, 64));
/// # let _ = ProxyAuthLayer::new(validator);
/// ```
pub struct Blocking<V> {
    inner: Arc<V>,
    pool: BlockingPool,
}

impl<V: Validator> Blocking<V> {
    /// Runs `validator` on `pool`.
    pub fn new(validator: V, pool: BlockingPool) -> Self {
        Self {
            inner: Arc::new(validator),
            pool,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &BlockingPool {
        &self.pool
    }
}

impl<V> Clone for Blocking<V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            pool: self.pool.clone(),
        }
    }
}

impl<V> fmt::Debug for Blocking<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blocking")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl<V: Validator> Validator for Blocking<V> {
    fn answer_version(&self, credentials: &BasicCredentials) -> u64 {
        self.inner.answer_version(credentials)
    }

    fn answer_context(&self, request: &Parts, context: &mut Vec<u8>) {
        self.inner.answer_context(request, context);
    }

    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        let inner = self.inner.clone();
        let pool = self.pool.clone();
        let credentials = credentials.clone();
        let request = request.clone();
        let client = request.extensions.get::<ClientAddr>().map(|a| a.0.ip());
        Validation::pending(async move {
            let handle = Handle::try_current().ok();
            pool.run_for(client, move || {
                match inner.validate(&credentials, &request) {
                    Validation::Ready(answer) => answer,
                    Validation::Pending(future) => match handle {
                        Some(handle) => handle.block_on(future),
                        None => Err(ValidatorError::new(
                            "a blocking check needs a Tokio runtime",
                        )),
                    },
                }
            })
            .await?
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_sheds_at_once_and_a_freed_place_is_reused() {
        let pool = BlockingPool::new(1, 1);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        // One running (it holds the only slot until released)...
        let running = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || gate.recv().is_ok()).await }
        });
        while pool.started() == 0 {
            tokio::task::yield_now().await;
        }
        // ...one waiting...
        let waiting = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| 2).await }
        });
        while pool.free_places() > 0 {
            tokio::task::yield_now().await;
        }
        // ...and the next is shed without waiting.
        let shed = tokio::time::timeout(Duration::from_secs(10), pool.run(|| 3))
            .await
            .expect("a shed check does not wait");
        let error = shed.unwrap_err();
        assert!(error.is_overloaded());
        assert!(error.to_string().contains("verification queue is full"));
        assert_eq!(pool.shed(), 1);
        release.send(()).unwrap();
        assert!(running.await.unwrap().unwrap());
        assert_eq!(waiting.await.unwrap().unwrap(), 2);
        assert_eq!(pool.run(|| 4).await.unwrap(), 4);
        assert_eq!((pool.started(), pool.shed()), (3, 1));
        assert_eq!(pool.free_places(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_freed_slot_goes_to_the_client_with_the_fewest_checks_in_flight() {
        let pool = BlockingPool::new(1, 16);
        let order = Arc::new(Mutex::new(Vec::new()));
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let flooder: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let other_flooder: Option<IpAddr> = Some("2001:db8::1".parse().unwrap());
        let same_64: Option<IpAddr> = Some("2001:db8::2".parse().unwrap());
        let newcomer: Option<IpAddr> = Some("198.51.100.7".parse().unwrap());
        // The slot is held by the first flooder's first check...
        let running = tokio::spawn({
            let (pool, order) = (pool.clone(), order.clone());
            async move {
                pool.run_for(flooder, move || {
                    order.lock().unwrap().push("flooder 0");
                    gate.recv().is_ok()
                })
                .await
            }
        });
        while pool.started() == 0 {
            tokio::task::yield_now().await;
        }
        // ...while it has three more waiting, the other flooder (one /64) four, and then the
        // newcomer one.
        let mut waiting = Vec::new();
        let queue = [
            (flooder, "flooder 1"),
            (flooder, "flooder 2"),
            (other_flooder, "other 0"),
            (same_64, "other 1"),
            (other_flooder, "other 2"),
            (flooder, "flooder 3"),
            (same_64, "other 3"),
            (newcomer, "newcomer"),
        ];
        for (n, (client, name)) in queue.into_iter().enumerate() {
            let (queued, order) = (pool.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                queued
                    .run_for(client, move || order.lock().unwrap().push(name))
                    .await
            }));
            while pool.free_places() > 16 - n - 1 {
                tokio::task::yield_now().await;
            }
        }
        release.send(()).unwrap();
        assert!(running.await.unwrap().unwrap());
        for w in waiting {
            w.await.unwrap().unwrap();
        }
        // The newcomer (one in flight) goes first; then the flooder with three in flight before
        // the /64 with four; each in arrival order.
        assert_eq!(
            *order.lock().unwrap(),
            [
                "flooder 0",
                "newcomer",
                "flooder 1",
                "flooder 2",
                "flooder 3",
                "other 0",
                "other 1",
                "other 2",
                "other 3"
            ]
        );
        assert_eq!(pool.free_places(), 17);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_check_whose_caller_goes_away_while_waiting_gives_its_turn_back() {
        let pool = BlockingPool::new(1, 4);
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(move || gate.recv().is_ok()).await }
        });
        while pool.started() == 0 {
            tokio::task::yield_now().await;
        }
        let abandoned = tokio::spawn({
            let pool = pool.clone();
            async move { pool.run(|| 1).await }
        });
        while pool.free_places() > 3 {
            tokio::task::yield_now().await;
        }
        abandoned.abort();
        assert!(abandoned.await.unwrap_err().is_cancelled());
        assert_eq!(pool.free_places(), 4);
        release.send(()).unwrap();
        assert!(running.await.unwrap().unwrap());
        // The slot is free again: a check runs at once.
        assert_eq!(pool.run(|| 2).await.unwrap(), 2);
        assert_eq!(pool.started(), 2);
        assert_eq!(pool.free_places(), 5);
    }

    #[test]
    fn outside_a_runtime_a_check_is_an_error_not_a_panic() {
        let pool = BlockingPool::new(1, 0);
        let answer = futures_lite_block_on(pool.run(|| 1));
        assert!(answer.is_err());
    }

    /// Polls a future that completes without a runtime's help.
    fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        loop {
            let waker = std::task::Waker::noop();
            if let std::task::Poll::Ready(out) = future
                .as_mut()
                .poll(&mut std::task::Context::from_waker(waker))
            {
                return out;
            }
        }
    }
}
