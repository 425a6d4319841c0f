//! Running slow hash verifications off the async runtime's worker threads, a bounded number at
//! a time.
//!
//! A bcrypt check at cost 12 keeps a core busy for about a quarter of a second; run on a worker
//! thread it would stall every other connection that thread serves. Each verification runs on
//! Tokio's blocking pool ([`tokio::task::spawn_blocking`]) once it holds a permit of a
//! [`Semaphore`] sized to the number of verifications allowed at once (by default the number of
//! CPUs), so a burst of logins queues (first come, first served) instead of starving the
//! machine, and requests that need no verification keep flowing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::cache::Outcome;
use super::hash::StoredHash;

pub(crate) struct Pool {
    permits: Arc<Semaphore>,
    verifications: Arc<AtomicU64>,
}

impl Pool {
    /// A pool running at most `limit` verifications at once (at least 1).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(limit.clamp(1, Semaphore::MAX_PERMITS))),
            verifications: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Verifies `password` against `hash` on the blocking pool of the current Tokio runtime.
    ///
    /// The permit travels with the blocking task, so a verification whose caller went away
    /// still counts against the limit until it finishes.
    pub(crate) async fn verify(&self, hash: StoredHash, password: Zeroizing<Vec<u8>>) -> Outcome {
        let handle = Handle::try_current()
            .map_err(|_| Arc::<str>::from("htpasswd verification needs a Tokio runtime"))?;
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Arc::<str>::from("htpasswd verification pool closed"))?;
        let counter = self.verifications.clone();
        handle
            .spawn_blocking(move || {
                let _permit = permit;
                counter.fetch_add(1, Relaxed);
                hash.verify(&password)
            })
            .await
            .map_err(|_| Arc::<str>::from("htpasswd verification task failed"))
    }

    /// Verifications started so far.
    pub(crate) fn verifications(&self) -> u64 {
        self.verifications.load(Relaxed)
    }
}
