//! Several instances as one, on Redis: the Digest replay store ([`RedisReplayStore`]) and the
//! failure throttle's counts ([`RedisThrottleStore`]), from one [`RedisStores`] connection
//! (cargo feature `redis`).
//!
//! Behind a load balancer, a client's requests land on any instance. With state in each
//! instance's memory, a Digest request replayed to another instance is accepted there, and a
//! guesser who spreads attempts over N instances gets N times the limit. With these stores on
//! one Redis (the server Envoy's global rate limit and gost's authers use for the same
//! purpose), the instances behave as one: a (nonce, nc) is accepted once in the whole fleet,
//! and failures counted on any instance limit on all of them at once.
//!
//! ```no_run
//! use std::time::Duration;
//! use tower_proxy_auth::scheme::digest::{Digest, NonceKey};
//! use tower_proxy_auth::scheme::Basic;
//! use tower_proxy_auth::shared::redis::RedisStores;
//! use tower_proxy_auth::{FailureThrottle, ProxyAuthLayer, StaticUsers};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let redis = RedisStores::builder("redis://127.0.0.1:6379/")
//!     .prefix("edge-proxy")
//!     .timeout(Duration::from_millis(100))
//!     .connect()
//!     .await?;
//! // One key file on every instance: the nonce key, and (with its own derivation label) the
//! // key of the throttle's hashes.
//! let material = std::fs::read("/etc/proxy/digest.key")?;
//! let users = StaticUsers::with_realm("proxy").with_user("alice", "s3cret");
//! let throttle = FailureThrottle::default()
//!     .store(redis.throttle_store(FailureThrottle::DEFAULT_WINDOW))
//!     .key_material(&material)
//!     .ok_or("the key file is too short")?;
//! let digest = Digest::new()
//!     .nonce_key(NonceKey::from_bytes(&material)?)
//!     .replay_store(redis.replay_store("proxy"));
//! let layer = ProxyAuthLayer::offering(digest, users.clone())
//!     .offer(Basic::new(), users)
//!     .realm("proxy")
//!     .throttle(throttle)
//!     .build()?;
//! # let _ = layer;
//! # Ok(())
//! # }
//! ```
//!
//! # What is shared, what each instance keeps
//!
//! | state | where |
//! |---|---|
//! | Digest nonce key | a file every instance reads (nonces are verified without Redis) |
//! | Digest nonce counts (replays) | Redis; while Redis is out of reach, each instance's memory for the nonces it issues meanwhile |
//! | failure counts per (user, address), address, user; recently failed credentials; familiar addresses | Redis, and each instance's memory too (the fallback) |
//! | the throttle's key (of the keyed hashes) | derived from shared key material on each instance ([`FailureThrottle::key_material`](crate::FailureThrottle::key_material)), never in Redis |
//! | recent successes (the throttle's fast path), slow checks in flight, the connection rule | each instance |
//!
//! # Key layout
//!
//! Every key starts with the prefix ([`RedisStoresBuilder::prefix`], default
//! [`RedisStores::DEFAULT_PREFIX`]); a realm in a key has `%`, `:`, spaces and control
//! characters percent-encoded. Nothing secret is stored: nonce ids are the first 16 bytes of
//! a nonce's HMAC tag (which the nonce itself shows), and the throttle's keys are 128-bit
//! SipHash tags under the throttle's key.
//!
//! | key | value | expires |
//! |---|---|---|
//! | `{prefix}:since` | when the stores' state began on this Redis (ms since the Unix epoch) | never |
//! | `{prefix}:{realm}:dn:{nonce id, 32 hex}` | 20 bytes: a 128-bit ring of seen counts, the highest count (u32) | the nonce's lifetime after its issue, plus 60 s of clock difference |
//! | `{prefix}:th:pair:{window}` | 2 rows × 2^15 u32 counters (256 KiB) | 3 windows after its last write |
//! | `{prefix}:th:user:{window}` | 2 × 2^15 u32 (256 KiB) | the same |
//! | `{prefix}:th:addr:{window}` | 2 × 2^13 u32 (64 KiB) | the same |
//! | `{prefix}:th:cred:{window}` | 2^15 slots of an 8-byte fingerprint (256 KiB) | the same |
//! | `{prefix}:th:fam:{pair tag, 32 hex}` | `1` | 7 days after the pair's last refresh: its first success, then at most one refresh per sixteenth of that time (10.5 hours) per instance ([`RedisThrottleStore::familiar_for`]) |
//!
//! `{window}` is the number of the window since the Unix epoch (Unix time / window length),
//! from each instance's clock.
//!
//! ## The Digest replay store
//!
//! One Lua script (`EVALSHA`; loaded again by the client after a Redis restart) checks and
//! records a count in one step, so two instances racing on the same (nonce, nc) cannot both
//! take it: the first count seen starts the window (bit `nc mod 128` of the ring), unless the
//! nonce was issued before `{prefix}:since` (then it is forgotten: `stale=true`, see
//! below); a count above the highest moves the window up (clearing the ring's bits of the
//! counts it passes over); a count at most 127 below the highest is taken if its bit is clear;
//! anything else is a replay. The window is the in-memory store's: the same counts are
//! accepted in the same order (`tests/redis.rs` compares the two over 2,000 counts).
//!
//! `{prefix}:since` is set when the stores connect (unless already set), and by the first
//! check on a Redis that started empty: after a restart that lost the counts, a nonce issued
//! before it and seen again is answered `stale=true`, never taken a second time. (A restore
//! from an older snapshot cannot be told apart: run this Redis without persistence, or with
//! `appendfsync always`.)
//!
//! Memory: 136 bytes per live nonce with a 5-character prefix and the realm `proxy`
//! (Redis's `MEMORY USAGE`, printed by `tests/redis.rs`), about 150 with the default prefix:
//! 100,000 live nonces take about 15 MB.
//!
//! ## The failure throttle's counts
//!
//! The tables of [`MemoryThrottleStore`](crate::throttle::MemoryThrottleStore), one Redis
//! string per table and window: a count-min sketch of two rows (a key's bucket in each row
//! from independent bits of its tag, the smaller of the two read), the current and previous
//! windows read together for the sliding-window estimate. A flood of distinct names or
//! addresses only raises counts; it cannot push one out or grow the tables: 832 KiB per window
//! at most (a string grows to its highest written byte: about 510 KiB measured after a few writes),
//! three or four windows live, so at most about 3.3 MiB, plus the familiar pairs (about 100
//! bytes each, made only by successes).
//!
//! - The standing script (read-only: `#!lua flags=no-writes`, so it runs on a Redis that is
//!   full) returns the two rows' counters of each table in both windows, whether the
//!   credential's fingerprint is in its slot in either window, and whether the pair is
//!   familiar.
//! - The record script adds one to both rows' counters (saturating) of the pair, user and
//!   address tables and writes the credential's fingerprint (a failure), or of the address
//!   table alone (a shed check), and sets the keys' expiry.
//!
//! # When Redis fails
//!
//! Every call has a timeout ([`RedisStores::DEFAULT_TIMEOUT`], 100 ms): no request waits
//! longer for Redis. A call that fails or times out marks Redis out of reach: for the next
//! second no call is tried (no request waits at all), then one call probes it; the `redis`
//! crate's connection manager reconnects on its own, so recovery needs no restart. One
//! warning a second at most is logged while it lasts, and one line when Redis answers again.
//!
//! | failure | Digest | throttle |
//! |---|---|---|
//! | Redis down, slow past the timeout, or full (`OOM` errors) | new nonces name their instance and are tracked in its memory; a shared nonce whose count cannot be checked gets `stale=true` (never accepted); another instance's nonce gets `stale=true`: clients retry without asking the user | counts in each instance's memory: limits hold per instance, not across them |
//! | Redis back | new nonces shared again; nonces issued meanwhile stay valid on their instance until they expire | shared counts again (plus what each instance counted meanwhile) |
//! | Redis restarted empty | nonces issued before are answered `stale=true` | counts from zero on Redis; each instance's memory keeps its own |
//!
//! Redis must not evict these keys: with an evicting `maxmemory-policy` a nonce's counts could
//! vanish and a replay pass. [`RedisStoresBuilder::connect`] refuses a server that reports
//! one (the default, `noeviction`, makes a full Redis refuse writes, which is handled above).
//! The scripts need Redis 7.0 or later (or Valkey). A Redis Cluster is not supported (the
//! scripts touch several keys); a primary with replicas and Sentinel is (a failover loses
//! the writes the replica had not received). The instances' clocks must agree within 60 s
//! (the nonce check's own allowance): key names and expiries come from each instance's
//! clock.

mod link;
mod replay;
mod throttle;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use replay::RedisReplayStore;
pub use throttle::RedisThrottleStore;

use link::Link;

/// One connection to Redis, from which the stores come: see the
/// [module documentation](self). Clones share the connection.
#[derive(Clone)]
pub struct RedisStores {
    link: Arc<Link>,
}

/// How to reach Redis: made by [`RedisStores::builder`].
#[derive(Clone)]
pub struct RedisStoresBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    root_certificate: Option<Vec<u8>>,
}

/// Why [`RedisStoresBuilder::connect`] could not make the stores.
#[derive(Debug)]
#[non_exhaustive]
pub enum RedisSetupError {
    /// The URL is not a Redis URL (`redis://`, `rediss://`, `redis+unix://`), or the TLS
    /// settings are not usable.
    Url(String),
    /// Not called inside a Tokio runtime (the connection runs on it).
    NoRuntime,
    /// Redis did not answer within the connect timeout.
    Unreachable(String),
    /// Redis reports a `maxmemory-policy` that evicts keys: a nonce's counts could vanish
    /// and a replay pass. Set `maxmemory-policy noeviction`.
    EvictingPolicy(String),
}

impl fmt::Display for RedisSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Url(e) => write!(f, "Redis URL: {e}"),
            Self::NoRuntime => f.write_str("the Redis stores need a Tokio runtime"),
            Self::Unreachable(e) => write!(f, "Redis did not answer: {e}"),
            Self::EvictingPolicy(policy) => write!(
                f,
                "Redis evicts keys (maxmemory-policy {policy}): Digest nonce counts could \
                 vanish and a replay pass; set `maxmemory-policy noeviction`"
            ),
        }
    }
}

impl std::error::Error for RedisSetupError {}

impl RedisStores {
    /// The default key prefix: `tower-proxy-auth`.
    pub const DEFAULT_PREFIX: &'static str = "tower-proxy-auth";
    /// The default per-call timeout: 100 ms. No request waits longer for Redis.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);
    /// The default timeout of one connection attempt: 1 s.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

    /// Stores on the Redis at `url`: `redis://[user:password@]host[:port][/db]`,
    /// `rediss://…` for TLS (rustls, the system's root certificates unless
    /// [`tls_root_certificate`](RedisStoresBuilder::tls_root_certificate) is given), or
    /// `redis+unix:///path`.
    pub fn builder(url: impl Into<String>) -> RedisStoresBuilder {
        RedisStoresBuilder {
            url: url.into(),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            timeout: Self::DEFAULT_TIMEOUT,
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            root_certificate: None,
        }
    }

    /// The Digest replay store of `realm` (the layer's realm; it names the keys).
    pub fn replay_store(&self, realm: &str) -> RedisReplayStore {
        RedisReplayStore::new(self.link.clone(), realm)
    }

    /// The failure throttle's store, counting over `window` (every instance must use the
    /// same window, e.g. [`FailureThrottle::DEFAULT_WINDOW`](crate::FailureThrottle::DEFAULT_WINDOW)).
    pub fn throttle_store(&self, window: Duration) -> RedisThrottleStore {
        RedisThrottleStore::new(self.link.clone(), window)
    }

    /// Whether the last call to Redis was answered (false from a failure until a probe, at
    /// most one a second, is answered).
    pub fn is_reachable(&self) -> bool {
        self.link.is_up()
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        self.link.prefix()
    }

    /// The per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.link.timeout()
    }
}

impl RedisStoresBuilder {
    /// Starts every key with `prefix` (default [`RedisStores::DEFAULT_PREFIX`]); instances
    /// that are to behave as one use the same prefix, other fleets on the same Redis another.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Gives up on a call after `timeout` (default [`RedisStores::DEFAULT_TIMEOUT`]; at least
    /// 1 ms): the stores then answer as when Redis is down.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// Gives up on one connection attempt after `timeout` (default
    /// [`RedisStores::DEFAULT_CONNECT_TIMEOUT`]).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// For `rediss://`: trusts only the CA certificate(s) in `pem` (PEM), instead of the
    /// system's root certificates.
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// Connects, waits for Redis to answer (at most the connect timeout), and checks that it
    /// does not evict keys.
    ///
    /// # Errors
    ///
    /// [`RedisSetupError`]: a bad URL, no Tokio runtime, no answer, an evicting
    /// `maxmemory-policy`.
    pub async fn connect(self) -> Result<RedisStores, RedisSetupError> {
        let connect_timeout = self.connect_timeout;
        let stores = self.connect_lazy()?;
        let mut conn = stores.link.conn();
        let since = since_key(stores.prefix());
        let policy = tokio::time::timeout(connect_timeout, async {
            redis::cmd("PING").query_async::<()>(&mut conn).await?;
            // The store's state begins now, unless it began earlier (another instance).
            redis::cmd("SET")
                .arg(&since)
                .arg(unix_ms())
                .arg("NX")
                .query_async::<()>(&mut conn)
                .await?;
            // CONFIG may be disabled (managed services): then the policy is not known.
            Ok::<_, redis::RedisError>(
                redis::cmd("CONFIG")
                    .arg("GET")
                    .arg("maxmemory-policy")
                    .query_async::<std::collections::HashMap<String, String>>(&mut conn)
                    .await
                    .ok()
                    .and_then(|mut m| m.remove("maxmemory-policy")),
            )
        })
        .await
        .map_err(|_| {
            RedisSetupError::Unreachable(format!(
                "no answer within {} ms",
                connect_timeout.as_millis()
            ))
        })?
        .map_err(|e| RedisSetupError::Unreachable(e.to_string()))?;
        match policy {
            Some(policy) if policy.starts_with("allkeys-") || policy.starts_with("volatile-") => {
                Err(RedisSetupError::EvictingPolicy(policy))
            }
            _ => Ok(stores),
        }
    }

    /// The stores without waiting for Redis: an instance may start while Redis is down (the
    /// stores then answer as when it fails, until it answers). Must be called inside a Tokio
    /// runtime. The eviction policy is not checked.
    ///
    /// # Errors
    ///
    /// [`RedisSetupError::Url`], [`RedisSetupError::NoRuntime`].
    pub fn connect_lazy(self) -> Result<RedisStores, RedisSetupError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| RedisSetupError::NoRuntime)?;
        let tls = self.url.starts_with("rediss://");
        if tls {
            // The crypto provider rustls uses unless the program installed another.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let client = match self.root_certificate {
            Some(pem) if tls => redis::Client::build_with_tls(
                self.url.as_str(),
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                },
            ),
            Some(_) => {
                return Err(RedisSetupError::Url(
                    "a TLS root certificate was given for a URL without TLS (use rediss://)"
                        .to_owned(),
                ))
            }
            None => redis::Client::open(self.url.as_str()),
        }
        .map_err(|e| RedisSetupError::Url(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(self.timeout))
            .set_connection_timeout(Some(self.connect_timeout))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| RedisSetupError::Url(e.to_string()))?;
        Ok(RedisStores {
            link: Arc::new(Link::new(conn, self.timeout, self.prefix, runtime)),
        })
    }
}

impl fmt::Debug for RedisStores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStores")
            .field("link", &self.link)
            .finish()
    }
}

impl fmt::Debug for RedisStoresBuilder {
    // The URL may hold a password: not printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoresBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls_root_certificate", &self.root_certificate.is_some())
            .finish_non_exhaustive()
    }
}

/// The key of the time (ms since the Unix epoch) the stores' state began on this Redis.
fn since_key(prefix: &str) -> String {
    format!("{prefix}:since")
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// `text` as one part of a key: `%`, `:`, spaces and control characters percent-encoded, so
/// that no realm can make a key of another layout.
fn key_part(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '%' || c == ':' || c.is_whitespace() || c.is_control() {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realms_cannot_make_keys_of_another_layout() {
        assert_eq!(key_part("proxy"), "proxy");
        assert_eq!(key_part("a:b c%\n"), "a%3Ab%20c%25%0A");
        assert_eq!(key_part("café"), "café");
    }
}
