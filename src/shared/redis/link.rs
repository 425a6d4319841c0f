//! The connection every Redis-backed store of one [`RedisStores`](super::RedisStores) uses:
//! the `redis` crate's [`ConnectionManager`] (one multiplexed connection, reconnected in the
//! background), a timeout on every call, and a breaker that stops calling a server found out
//! of reach until a probe, at most one a second, finds it back.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use redis::RedisError;

use crate::logging::LogLimit;

/// How long calls are not tried after one failed: 1 s. Then one call (or a `PING` when a store
/// is asked whether it is available) probes the server; the others keep waiting.
pub(crate) const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Why a call to Redis gave no answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// A call failed less than [`PROBE_INTERVAL`] ago: not tried.
    OutOfReach,
    /// No answer within the timeout.
    Timeout(Duration),
    /// The server or the connection said no (refused, dropped, out of memory, ...).
    Redis(RedisError),
    /// An answer of another shape than the scripts return.
    Reply(&'static str),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfReach => write!(
                f,
                "Redis is out of reach (a call failed less than {} s ago)",
                PROBE_INTERVAL.as_secs()
            ),
            Self::Timeout(t) => write!(f, "Redis did not answer within {} ms", t.as_millis()),
            Self::Redis(e) => write!(f, "Redis: {e}"),
            Self::Reply(what) => write!(f, "Redis: unexpected reply to {what}"),
        }
    }
}

impl std::error::Error for CallError {}

pub(crate) struct Link {
    conn: ConnectionManager,
    timeout: Duration,
    prefix: String,
    start: Instant,
    /// Milliseconds since `start` before which no call is tried; 0 while the server answers.
    down_until: AtomicU64,
    log: LogLimit,
    runtime: tokio::runtime::Handle,
}

impl Link {
    pub(crate) fn new(
        conn: ConnectionManager,
        timeout: Duration,
        prefix: String,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            conn,
            timeout,
            prefix,
            start: Instant::now(),
            down_until: AtomicU64::new(0),
            log: LogLimit::new(),
            runtime,
        }
    }

    /// The prefix of every key.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The per-call timeout.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A handle on the connection, for one call.
    pub(crate) fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a call may go out now: the server answered last time, or it did not and this
    /// caller is the one probe due now.
    pub(crate) fn admit(&self) -> bool {
        let until = self.down_until.load(Relaxed);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        now >= until
            && self
                .down_until
                .compare_exchange(until, now + probe_ms(), Relaxed, Relaxed)
                .is_ok()
    }

    /// Whether the server answered the last call. When it did not and a probe is due, a
    /// `PING` goes out in the background, so that the stores find the server back even while
    /// nothing else calls it.
    pub(crate) fn is_up(self: &Arc<Self>) -> bool {
        if self.down_until.load(Relaxed) == 0 {
            return true;
        }
        if self.admit() {
            let link = self.clone();
            let mut conn = self.conn();
            self.runtime.spawn(async move {
                let ping = async move { redis::cmd("PING").query_async::<()>(&mut conn).await };
                let _ = link.call("a probe", ping).await;
            });
        }
        false
    }

    /// Runs `work` (one call, already admitted) within the timeout, and notes whether the
    /// server answered: a failure stops calls for [`PROBE_INTERVAL`] and is logged (at most one
    /// line a second); an answer after a failure is logged once.
    pub(crate) async fn call<T>(
        &self,
        what: &'static str,
        work: impl Future<Output = Result<T, RedisError>>,
    ) -> Result<T, CallError> {
        let result = match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CallError::Redis(error)),
            Err(_) => Err(CallError::Timeout(self.timeout)),
        };
        match &result {
            Ok(_) => {
                if self.down_until.swap(0, Relaxed) != 0 {
                    tracing::info!(target: "tower_proxy_auth", prefix = %self.prefix,
                        "Redis answers again: shared Digest nonces and failure counts are back");
                }
            }
            Err(error) => self.failed(what, error),
        }
        result
    }

    /// Notes a failed call.
    pub(crate) fn failed(&self, what: &'static str, error: &CallError) {
        let until = self.now_ms().saturating_add(probe_ms()).max(1);
        self.down_until.fetch_max(until, Relaxed);
        if let Some(suppressed) = self.log.admit() {
            tracing::warn!(target: "tower_proxy_auth", prefix = %self.prefix, call = what,
                %error, suppressed,
                "Redis out of reach: failure counts are kept in this instance's memory and \
                 Digest nonces name this instance until it answers; at most one such line a \
                 second, `suppressed` counts those left out");
        }
    }

    /// Spawns `work` on the runtime the stores were made on (for writes no request waits for).
    pub(crate) fn spawn(&self, work: impl Future<Output = ()> + Send + 'static) {
        self.runtime.spawn(work);
    }
}

fn probe_ms() -> u64 {
    u64::try_from(PROBE_INTERVAL.as_millis()).unwrap_or(1000)
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("up", &(self.down_until.load(Relaxed) == 0))
            .finish_non_exhaustive()
    }
}
