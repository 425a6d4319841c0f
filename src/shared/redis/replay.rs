//! [`RedisReplayStore`]: Digest nonce counts on Redis, each (nonce, nc) accepted at most once
//! across every instance.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::Script;

use super::link::{CallError, Link};
use crate::outcome::{Answer, ValidatorError};
use crate::scheme::digest::{NonceId, ReplayStore, ReplayVerdict};

/// How long past its lifetime a nonce's counts are kept: the clock difference between
/// instances that a nonce's issue time may show (the nonce check's own allowance), so that an
/// instance whose clock is behind never finds a live nonce without its counts.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// The window of one nonce, checked and updated in one step. See the
/// [module documentation](super#the-digest-replay-store) for the layout.
static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local key = KEYS[1]
local nc = tonumber(ARGV[1])
local high = redis.call('BITFIELD', key, 'GET', 'u32', 128)[1]
if high == 0 then
  local since = redis.call('GET', KEYS[2])
  if not since then
    redis.call('SET', KEYS[2], ARGV[3])
    since = ARGV[3]
  end
  if tonumber(ARGV[4]) < tonumber(since) then
    return 2
  end
  redis.call('BITFIELD', key, 'SET', 'u32', 128, nc, 'SET', 'u1', nc % 128, 1)
  redis.call('PEXPIRE', key, ARGV[2])
  return 1
end
if nc > high then
  if nc - high >= 128 then
    redis.call('SET', key, string.rep('\0', 20), 'KEEPTTL')
  else
    for c = high + 1, nc - 1 do
      redis.call('SETBIT', key, c % 128, 0)
    end
  end
  redis.call('BITFIELD', key, 'SET', 'u32', 128, nc, 'SET', 'u1', nc % 128, 1)
  return 1
end
if high - nc >= 128 or redis.call('GETBIT', key, nc % 128) == 1 then
  return 0
end
redis.call('SETBIT', key, nc % 128, 1)
return 1
",
    )
});

/// Digest nonce counts on Redis, shared by every instance that uses the same Redis, prefix
/// and realm: a (nonce, nc) taken by one instance is refused by all the others, with the same
/// out-of-order window of 128 counts as [`MemoryReplayStore`](crate::scheme::digest::MemoryReplayStore).
/// Made by [`RedisStores::replay_store`](super::RedisStores::replay_store); given to
/// [`Digest::replay_store`](crate::scheme::digest::Digest::replay_store).
///
/// A nonce issued before the store's state began (`{prefix}:since`, set when the stores
/// connect, or by the first check after Redis started empty) and not tracked is
/// [forgotten](ReplayVerdict::Forgotten):
/// after a Redis restart that lost the counts, the client gets `stale=true` and a fresh nonce,
/// never a second acceptance of a count taken before the restart.
///
/// One round trip per accepted Digest request (a Lua script, `EVALSHA`), bounded by the
/// stores' timeout. Redis holds only nonce ids (the first 16 bytes of each nonce's HMAC tag,
/// which the nonce itself shows) and counts: no key, password or HA1.
///
/// **When Redis cannot be reached** (down, slow past the timeout, out of memory): the store
/// answers an error at once (after the first call that found it so, which waits at most the
/// timeout), and says it is not [available](ReplayStore::is_available), so the Digest scheme
/// issues nonces that name its own instance and keeps their counts in its memory: each
/// instance goes on serving the clients whose requests reach it, another instance answers such
/// a nonce with `stale=true` (the client retries with a nonce of its own, without asking the
/// user), and a shared nonce whose count cannot be checked gets `stale=true` too: never an
/// acceptance. Once Redis answers again (probed at most once a second), new nonces are shared
/// again.
#[derive(Clone)]
pub struct RedisReplayStore {
    link: Arc<Link>,
    /// `{prefix}:{realm}:dn:`
    key_prefix: String,
    /// `{prefix}:since`
    since_key: String,
}

impl RedisReplayStore {
    pub(super) fn new(link: Arc<Link>, realm: &str) -> Self {
        let key_prefix = format!("{}:{}:dn:", link.prefix(), super::key_part(realm));
        let since_key = super::since_key(link.prefix());
        Self {
            link,
            key_prefix,
            since_key,
        }
    }

    /// The Redis key of `nonce`: `{prefix}:{realm}:dn:{32 hex digits of the nonce id}`.
    pub fn key(&self, nonce: &NonceId) -> String {
        let mut key = String::with_capacity(self.key_prefix.len() + 32);
        key.push_str(&self.key_prefix);
        for b in nonce.id {
            key.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
            key.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
        }
        key
    }
}

/// How long the counts of a nonce issued at `issued_ms` and valid for `lifetime` are kept from
/// `now_ms`: to the end of its lifetime and [`CLOCK_SKEW`] more; at least one second.
fn time_to_live_ms(issued_ms: u64, lifetime: Duration, now_ms: u64) -> u64 {
    let lifetime_ms = u64::try_from((lifetime + CLOCK_SKEW).as_millis()).unwrap_or(u64::MAX);
    issued_ms
        .saturating_add(lifetime_ms)
        .saturating_sub(now_ms)
        .max(1000)
}

impl ReplayStore for RedisReplayStore {
    fn record(
        &self,
        nonce: &NonceId,
        nc: u32,
        lifetime: Duration,
    ) -> Answer<Result<ReplayVerdict, ValidatorError>> {
        if nc == 0 {
            // Counts start at 1 (RFC 7616 §3.4); 0 would read as "untracked" in the script.
            return Answer::Ready(Ok(ReplayVerdict::Replayed));
        }
        if !self.link.admit() {
            return Answer::Ready(Err(ValidatorError::new(CallError::OutOfReach)));
        }
        let now = super::unix_ms();
        let mut invocation = RECORD.prepare_invoke();
        invocation
            .key(self.key(nonce))
            .key(&self.since_key)
            .arg(nc)
            .arg(time_to_live_ms(nonce.issued_ms, lifetime, now))
            .arg(now)
            .arg(nonce.issued_ms);
        let link = self.link.clone();
        Answer::pending(async move {
            let mut conn = link.conn();
            let work = async move { invocation.invoke_async::<i64>(&mut conn).await };
            match link.call("the Digest replay script", work).await {
                Ok(1) => Ok(ReplayVerdict::Fresh),
                Ok(0) => Ok(ReplayVerdict::Replayed),
                Ok(2) => Ok(ReplayVerdict::Forgotten),
                Ok(_) => {
                    let error = CallError::Reply("the Digest replay script");
                    link.failed("the Digest replay script", &error);
                    Err(ValidatorError::new(error))
                }
                Err(error) => Err(ValidatorError::new(error)),
            }
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn is_available(&self) -> bool {
        self.link.is_up()
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("keys", &format_args!("{}…", self.key_prefix))
            .field("link", &self.link)
            .finish()
    }
}
