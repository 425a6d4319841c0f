//! [`RedisThrottleStore`]: the failure throttle's counts on Redis, shared by every instance.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::{Script, ScriptInvocation};

use super::link::{CallError, Link};
use crate::outcome::{Answer, ValidatorError};
use crate::throttle::{
    AttemptKeys, Count, Event, MemoryThrottleStore, Standing, ThrottleStore, DEFAULT_FAMILIAR_FOR,
};

/// Buckets per row (as a power of two) of each table, as in [`MemoryThrottleStore`].
const PAIR_BITS: u32 = 15;
const ADDR_BITS: u32 = 13;
const USER_BITS: u32 = 15;
const STALE_BITS: u32 = 15;

/// Reads the standing of one attempt. See the
/// [module documentation](super#the-failure-throttles-counts) for the layout.
static STANDING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"#!lua flags=no-writes
local out = {}
local function counts(current, previous, a, b)
  if a == '' then
    for _ = 1, 4 do out[#out + 1] = 0 end
    return
  end
  local c = redis.call('BITFIELD_RO', current, 'GET', 'u32', '#' .. a, 'GET', 'u32', '#' .. b)
  local p = redis.call('BITFIELD_RO', previous, 'GET', 'u32', '#' .. a, 'GET', 'u32', '#' .. b)
  out[#out + 1] = c[1]
  out[#out + 1] = c[2]
  out[#out + 1] = p[1]
  out[#out + 1] = p[2]
end
counts(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
counts(KEYS[3], KEYS[4], ARGV[3], ARGV[4])
counts(KEYS[5], KEYS[6], ARGV[5], ARGV[6])
local stale = 0
if ARGV[7] ~= '' then
  local at = tonumber(ARGV[7]) * 8
  if redis.call('GETRANGE', KEYS[7], at, at + 7) == ARGV[8]
      or redis.call('GETRANGE', KEYS[8], at, at + 7) == ARGV[8] then
    stale = 1
  end
end
out[#out + 1] = stale
out[#out + 1] = redis.call('EXISTS', KEYS[9])
return out
",
    )
});

/// Records a failure (`f`) or a shed check (`s`) in one step.
static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local ttl = ARGV[2]
local function add(key, a, b)
  if a == '' then return end
  redis.call('BITFIELD', key, 'OVERFLOW', 'SAT',
    'INCRBY', 'u32', '#' .. a, 1, 'INCRBY', 'u32', '#' .. b, 1)
  redis.call('PEXPIRE', key, ttl)
end
if ARGV[1] == 'f' then
  add(KEYS[1], ARGV[3], ARGV[4])
  add(KEYS[2], ARGV[5], ARGV[6])
  if ARGV[9] ~= '' then
    redis.call('SETRANGE', KEYS[4], tonumber(ARGV[9]) * 8, ARGV[10])
    redis.call('PEXPIRE', KEYS[4], ttl)
  end
end
add(KEYS[3], ARGV[7], ARGV[8])
return 1
",
    )
});

/// The failure throttle's counts on Redis, shared by every instance that uses the same Redis
/// and prefix, with the same policy as [`MemoryThrottleStore`]: sliding-window counts per
/// (user, address), per address and per user in fixed-size count-min tables, recently failed
/// credentials, and familiar (user, address) pairs. Made by
/// [`RedisStores::throttle_store`](super::RedisStores::throttle_store); given to
/// [`FailureThrottle::store`](crate::FailureThrottle::store), with a key shared by the
/// instances ([`FailureThrottle::key_material`](crate::FailureThrottle::key_material)): Redis
/// holds only counts and 128-bit keyed tags, never a user name, an address or a credential,
/// and without the key the tags name nothing.
///
/// What a request costs:
///
/// | request | Redis round trips, waited for |
/// |---|---|
/// | credentials that succeeded from this address on this instance and have not failed since (the steady state) | none: the throttle's own fast path |
/// | other credentials, accepted | one read (`EVALSHA`, read-only); the address becomes familiar in a write no request waits for, made at most once per sixteenth of the familiar time per pair and instance |
/// | other credentials, refused | one read and one write |
/// | no credentials, malformed credentials | none |
///
/// Every count is also kept in this process's memory (a [`MemoryThrottleStore`] of its own,
/// about 1.5 MiB): a standing is the stricter of the two, and **when Redis cannot be reached**
/// (down, slow past the timeout, out of memory) the throttle counts on in memory alone (as if
/// this instance were the only one) without waiting: the first call that finds Redis out of
/// reach waits at most the timeout, the next ones are not tried until a probe, at most once a
/// second, finds it back. Failures seen during the outage stay in memory, so the instance
/// that saw them stays as strict after Redis returns.
#[derive(Clone)]
pub struct RedisThrottleStore {
    inner: Arc<Inner>,
}

struct Inner {
    link: Arc<Link>,
    window: Duration,
    familiar_for: Duration,
    local: MemoryThrottleStore,
    /// `{prefix}:th:`
    key_prefix: String,
}

impl RedisThrottleStore {
    pub(super) fn new(link: Arc<Link>, window: Duration) -> Self {
        Self::with(link, window, DEFAULT_FAMILIAR_FOR)
    }

    fn with(link: Arc<Link>, window: Duration, familiar_for: Duration) -> Self {
        let window = window.max(Duration::from_secs(1));
        let familiar_for = familiar_for.max(Duration::from_secs(1));
        let key_prefix = format!("{}:th:", link.prefix());
        Self {
            inner: Arc::new(Inner {
                link,
                window,
                familiar_for,
                local: MemoryThrottleStore::with_familiar(
                    window,
                    familiar_for,
                    crate::throttle::DEFAULT_FAMILIAR_CAPACITY,
                ),
                key_prefix,
            }),
        }
    }

    /// Keeps an address familiar for a user for `familiar_for` after a success (default
    /// [`DEFAULT_FAMILIAR_FOR`], 7 days; at least a second).
    pub fn familiar_for(self, familiar_for: Duration) -> Self {
        Self::with(self.inner.link.clone(), self.inner.window, familiar_for)
    }

    /// How long an address stays familiar after a success.
    pub fn familiar_duration(&self) -> Duration {
        self.inner.familiar_for
    }
}

/// A key's bucket in each of the two rows of a table of `2^bits` buckets per row, as
/// `BITFIELD` indices of 32-bit counters (row 1 follows row 0).
fn buckets(key: u128, bits: u32) -> [u64; 2] {
    let mask = (1u64 << bits) - 1;
    [key as u64 & mask, (1 << bits) + ((key >> 64) as u64 & mask)]
}

/// A credential's slot in the table of recently failed credentials, and its fingerprint there
/// (never all zeros, which an unwritten slot reads as).
fn stale_slot(key: u128) -> (u64, [u8; 8]) {
    (
        key as u64 & ((1 << STALE_BITS) - 1),
        ((key >> 64) as u64).max(1).to_be_bytes(),
    )
}

/// The scripts' eight arguments for `keys`: the pair's, the user's and the address's buckets
/// in both rows (`''` for an unknown address), the credential's slot and fingerprint (`''`
/// when there is none).
fn attempt_args(invocation: &mut ScriptInvocation<'_>, keys: &AttemptKeys) {
    let [pa, pb] = buckets(keys.pair, PAIR_BITS);
    let [ua, ub] = buckets(keys.user, USER_BITS);
    invocation.arg(pa).arg(pb).arg(ua).arg(ub);
    match keys.addr {
        Some(addr) => {
            let [aa, ab] = buckets(addr, ADDR_BITS);
            invocation.arg(aa).arg(ab)
        }
        None => invocation.arg("").arg(""),
    };
    match keys.credential {
        Some(credential) => {
            let (slot, fingerprint) = stale_slot(credential);
            invocation.arg(slot).arg(&fingerprint[..])
        }
        None => invocation.arg("").arg(""),
    };
}

/// Where in time now is: the window's number since the Unix epoch and how far into it.
fn clock(window: Duration) -> (u64, Duration) {
    let now_ms = super::unix_ms();
    let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
    (
        now_ms / window_ms,
        Duration::from_millis(now_ms % window_ms),
    )
}

/// The stricter of two counts.
fn stricter(a: Count, b: Count) -> Count {
    if b.value() > a.value() {
        b
    } else {
        a
    }
}

/// The count of one table from its row buckets in the current and the previous window: the
/// row whose estimate is the smaller (a count-min read).
fn count(values: &[i64], into: Duration, window: Duration) -> Count {
    let at = |i: usize| u64::try_from(values.get(i).copied().unwrap_or(0)).unwrap_or(0);
    let row0 = Count::from_windows(at(2), at(0), into, window);
    let row1 = Count::from_windows(at(3), at(1), into, window);
    if row1.value() < row0.value() {
        row1
    } else {
        row0
    }
}

impl Inner {
    fn table(&self, table: &str, epoch: u64) -> String {
        format!("{}{table}:{epoch}", self.key_prefix)
    }

    fn familiar_key(&self, pair: u128) -> String {
        format!("{}fam:{pair:032x}", self.key_prefix)
    }

    /// The time to live of a window's keys: the window itself, the next one (where it is the
    /// previous window), and one more for clock differences between instances.
    fn window_ttl_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis())
            .unwrap_or(u64::MAX / 4)
            .saturating_mul(3)
    }

    fn read(
        self: &Arc<Self>,
        keys: &AttemptKeys,
    ) -> Option<impl std::future::Future<Output = Standing>> {
        if !self.link.admit() {
            return None;
        }
        let (epoch, into) = clock(self.window);
        let previous = epoch.wrapping_sub(1);
        let mut invocation = STANDING.prepare_invoke();
        for table in ["pair", "user", "addr", "cred"] {
            invocation.key(self.table(table, epoch));
            invocation.key(self.table(table, previous));
        }
        invocation.key(self.familiar_key(keys.pair));
        attempt_args(&mut invocation, keys);
        let link = self.link.clone();
        let window = self.window;
        let has_addr = keys.addr.is_some();
        let (inner, keys) = (Arc::clone(self), *keys);
        Some(async move {
            let mut conn = link.conn();
            let work = async move { invocation.invoke_async::<Vec<i64>>(&mut conn).await };
            let reply = link.call("the throttle's standing script", work).await;
            // This instance's own counts, read once Redis has answered: they include every
            // failure recorded here while the answer was on its way (a failure is recorded
            // here before its attempt stops counting in flight).
            let local = inner.local.standing_now(&keys);
            match reply {
                Ok(values) if values.len() == 14 => {
                    let mut standing = local;
                    standing.pair = stricter(local.pair, count(&values[0..4], into, window));
                    standing.user = stricter(local.user, count(&values[4..8], into, window));
                    standing.addr = stricter(local.addr, count(&values[8..12], into, window));
                    standing.stale_credential |= values[12] == 1;
                    standing.familiar |= has_addr && values[13] == 1;
                    // Familiar here but not on Redis (lost in a restart without persistence, an
                    // eviction, a failed write): written back now rather than at this
                    // instance's next refresh, up to 2/16 of the familiar time away.
                    if has_addr && local.familiar && values[13] != 1 {
                        inner.write_familiar(keys.pair);
                    }
                    standing
                }
                Ok(_) => {
                    link.failed(
                        "the throttle's standing script",
                        &CallError::Reply("the throttle's standing script"),
                    );
                    local
                }
                Err(_) => local,
            }
        })
    }

    fn write(
        &self,
        keys: &AttemptKeys,
        event: Event,
    ) -> Option<impl std::future::Future<Output = ()>> {
        if !self.link.admit() {
            return None;
        }
        let (epoch, _) = clock(self.window);
        let mut invocation = RECORD.prepare_invoke();
        for table in ["pair", "user", "addr", "cred"] {
            invocation.key(self.table(table, epoch));
        }
        let kind = if event == Event::Failure { "f" } else { "s" };
        invocation.arg(kind).arg(self.window_ttl_ms());
        attempt_args(&mut invocation, keys);
        let link = self.link.clone();
        Some(async move {
            let mut conn = link.conn();
            let work = async move { invocation.invoke_async::<i64>(&mut conn).await };
            let _ = link.call("the throttle's record script", work).await;
        })
    }

    /// Makes `pair` familiar on Redis, in a write no request waits for.
    fn write_familiar(&self, pair: u128) {
        if !self.link.admit() {
            return;
        }
        let key = self.familiar_key(pair);
        let ttl = u64::try_from(self.familiar_for.as_millis()).unwrap_or(u64::MAX);
        let link = self.link.clone();
        self.link.spawn(async move {
            let mut conn = link.conn();
            let work = async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("PX")
                    .arg(ttl)
                    .query_async::<()>(&mut conn)
                    .await
            };
            let _ = link.call("the familiar-pair write", work).await;
        });
    }
}

impl ThrottleStore for RedisThrottleStore {
    fn standing(&self, keys: &AttemptKeys) -> Answer<Result<Standing, ValidatorError>> {
        match self.inner.read(keys) {
            Some(reading) => Answer::pending(async move { Ok(reading.await) }),
            None => Answer::Ready(Ok(self.inner.local.standing_now(keys))),
        }
    }

    fn record(&self, keys: &AttemptKeys, event: Event) -> Answer<Result<(), ValidatorError>> {
        if event == Event::Success {
            // Written to Redis when this instance refreshed it (at most once per sixteenth of
            // the familiar time per pair).
            if keys.addr.is_some() && self.inner.local.remember_familiar(keys.pair) {
                self.inner.write_familiar(keys.pair);
            }
            return Answer::Ready(Ok(()));
        }
        self.inner.local.record_now(keys, event);
        match event {
            Event::Shed if keys.addr.is_none() => Answer::Ready(Ok(())),
            _ => match self.inner.write(keys, event) {
                Some(writing) => Answer::pending(async move {
                    writing.await;
                    Ok(())
                }),
                None => Answer::Ready(Ok(())),
            },
        }
    }

    fn window(&self) -> Duration {
        self.inner.window
    }
}

impl fmt::Debug for RedisThrottleStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisThrottleStore")
            .field("keys", &format_args!("{}…", self.inner.key_prefix))
            .field("window", &self.inner.window)
            .field("familiar_for", &self.inner.familiar_for)
            .field("link", &self.inner.link)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_follow_the_memory_tables_and_rows_do_not_overlap() {
        let key = (7u128 << 64) | 5;
        assert_eq!(buckets(key, 15), [5, (1 << 15) + 7]);
        let high = u128::MAX;
        assert_eq!(buckets(high, 13), [(1 << 13) - 1, (1 << 14) - 1]);
        let (slot, fingerprint) = stale_slot(key);
        assert_eq!((slot, fingerprint), (5, 7u64.to_be_bytes()));
        assert_eq!(
            stale_slot(5).1,
            1u64.to_be_bytes(),
            "never the empty slot's zeros"
        );
    }

    #[test]
    fn a_count_reads_the_smaller_row_of_current_and_previous_windows() {
        let w = Duration::from_secs(60);
        // [row0 current, row1 current, row0 previous, row1 previous]
        let c = count(&[1, 3, 8, 2], Duration::from_secs(30), w);
        // row 0: 8 × 0.5 + 1 = 5; row 1: 2 × 0.5 + 3 = 4.
        assert_eq!(c.value(), 4.0);
        assert_eq!(
            stricter(c, count(&[0, 0, 0, 0], Duration::ZERO, w)).value(),
            4.0
        );
        // A negative or missing value reads as 0.
        assert_eq!(count(&[-1], Duration::ZERO, w).value(), 0.0);
    }
}
