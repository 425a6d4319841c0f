//! State that several instances of a proxy share, so that they behave as one behind a load
//! balancer: the Digest nonce counts (a replay refused by one instance is refused by all) and
//! the failure throttle's counts (guesses spread over N instances count as if sent to one).
//!
//! The stages define what is shared through their store traits
//! ([`ReplayStore`](crate::scheme::digest::ReplayStore),
//! [`ThrottleStore`](crate::throttle::ThrottleStore)); this module holds implementations of
//! them on servers deployments already run: [`redis`] (cargo feature `redis`).

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
