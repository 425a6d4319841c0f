//! State shared with the other instances of a fleet (`--redis-*`, cargo feature `redis`): the
//! Digest replay store and the failure throttle's counts on one Redis, so that instances behind
//! a load balancer behave as one (`tower_proxy_auth::shared::redis` has the details and the
//! answers while Redis fails).
//!
//! Connected before the proxy listens: a bad URL, an unreadable key or CA file, or a Redis that
//! evicts keys stops it with a message naming the flag. A Redis that does not answer yet does
//! not: the proxy starts with per-instance state (logged) and joins the fleet when Redis
//! answers. Without `--redis-url` (or without the feature) every instance keeps its own state.

#[cfg(feature = "redis")]
use std::time::Duration;

use tower_proxy_auth::scheme::digest::Digest;
use tower_proxy_auth::FailureThrottle;

use crate::cli::Args;

/// The stores shared with other instances, or none.
pub struct SharedState {
    #[cfg(feature = "redis")]
    redis: Option<Redis>,
}

#[cfg(feature = "redis")]
struct Redis {
    stores: tower_proxy_auth::shared::redis::RedisStores,
    /// The `--digest-key-file`'s contents (surrounding whitespace ignored, as for the nonce
    /// key): the throttle's key is derived from them.
    key_material: zeroize::Zeroizing<Vec<u8>>,
}

impl SharedState {
    /// What the flags ask for; must run inside the Tokio runtime (the Redis connection lives on
    /// it).
    pub async fn connect(args: &Args) -> Result<Self, String> {
        #[cfg(feature = "redis")]
        let redis = match &args.redis_url {
            Some(url) => Some(Redis::connect(args, url).await?),
            None => None,
        };
        #[cfg(not(feature = "redis"))]
        let _ = args;
        Ok(Self {
            #[cfg(feature = "redis")]
            redis,
        })
    }

    /// Whether anything is shared.
    pub fn is_shared(&self) -> bool {
        #[cfg(feature = "redis")]
        let shared = self.redis.is_some();
        #[cfg(not(feature = "redis"))]
        let shared = false;
        shared
    }

    /// `digest` with its nonce counts on Redis, under `realm`.
    pub fn digest(&self, digest: Digest, realm: &str) -> Digest {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return digest.replay_store(redis.stores.replay_store(realm));
        }
        let _ = realm;
        digest
    }

    /// `throttle` counting on Redis, its keyed hashes under the shared key.
    pub fn throttle(&self, throttle: FailureThrottle) -> Result<FailureThrottle, String> {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            let window = throttle.window();
            return throttle
                .store(redis.stores.throttle_store(window))
                .key_material(redis.key_material.trim_ascii())
                .ok_or_else(|| "--digest-key-file: too short for the throttle's key".to_owned());
        }
        Ok(throttle)
    }
}

#[cfg(feature = "redis")]
impl Redis {
    async fn connect(args: &Args, url: &crate::cli::RedisUrl) -> Result<Self, String> {
        use tower_proxy_auth::shared::redis::{RedisSetupError, RedisStores};
        use tracing::{info, warn};

        let Some(key_file) = &args.digest_key_file else {
            return Err(
                "--redis-url needs --digest-key-file (the key every instance shares)".into(),
            );
        };
        let key_material = zeroize::Zeroizing::new(
            std::fs::read(key_file)
                .map_err(|e| format!("--digest-key-file {}: {e}", key_file.display()))?,
        );

        let mut builder = RedisStores::builder(url.0.as_str())
            .prefix(args.redis_prefix.as_str())
            .timeout(Duration::from_millis(args.redis_timeout_ms));
        if let Some(path) = &args.redis_ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("--redis-ca-file {}: {e}", path.display()))?;
            builder = builder.tls_root_certificate(pem);
        }
        let stores = match builder.clone().connect().await {
            Ok(stores) => {
                info!(redis = %url, prefix = %args.redis_prefix, "state shared on Redis");
                stores
            }
            Err(RedisSetupError::Unreachable(e)) => {
                warn!(
                    redis = %url,
                    error = %e,
                    "Redis does not answer: this instance keeps its own state until it does"
                );
                builder
                    .connect_lazy()
                    .map_err(|e| format!("--redis-url {url}: {e}"))?
            }
            Err(e) => return Err(format!("--redis-url {url}: {e}")),
        };
        Ok(Self {
            stores,
            key_material,
        })
    }
}
