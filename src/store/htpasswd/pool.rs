//! Running slow hash verifications off the async runtime's worker threads, a bounded number at
//! a time, with a bounded number waiting.
//!
//! A bcrypt check at cost 12 keeps a core busy for about a quarter of a second; run on a worker
//! thread it would stall every other connection that thread serves. Each verification runs on
//! Tokio's blocking pool ([`tokio::task::spawn_blocking`]) once it holds a permit of a
//! [`Semaphore`] sized to the number of verifications allowed at once (by default the number of
//! CPUs), so a burst of logins queues (first come, first served) instead of starving the
//! machine, and requests that need no verification keep flowing.
//!
//! The queue is bounded too: a verification first takes a place among `slots + queue` (running
//! or waiting) without waiting for one; when none is free it is shed at once with an error (the
//! layer answers 503) instead of waiting behind everyone else. Without that bound, a flood of
//! requests for unknown users (each costs a dummy verification, by design) could make a
//! legitimate login wait for minutes. Only the verification that leads an in-flight entry of the
//! cache asks for a place: requests that share it wait for its answer without one, and cache
//! hits never get here.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use super::cache::Outcome;
use super::hash::StoredHash;

pub(crate) struct Pool {
    /// One per verification allowed to run at once.
    permits: Arc<Semaphore>,
    /// One per verification allowed to run or wait: `permits` plus the queue's bound.
    places: Arc<Semaphore>,
    /// What a shed verification answers.
    full: Arc<str>,
    verifications: Arc<AtomicU64>,
    shed: AtomicU64,
}

impl Pool {
    /// A pool running at most `limit` verifications at once (at least 1), with at most `queue`
    /// more waiting for their turn.
    pub(crate) fn new(limit: usize, queue: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        let places = limit.saturating_add(queue).min(Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            places: Arc::new(Semaphore::new(places)),
            full: Arc::from(format!(
                "htpasswd verification queue is full ({} waiting for {limit} running); \
                 verification refused, try again later",
                places - limit
            )),
            verifications: Arc::new(AtomicU64::new(0)),
            shed: AtomicU64::new(0),
        }
    }

    /// Verifies `password` against `hash` on the blocking pool of the current Tokio runtime, or
    /// answers at once with an error when the queue is full.
    ///
    /// The place and the permit travel with the blocking task, so a verification whose caller
    /// went away still counts against both limits until it finishes; one whose caller goes away
    /// while it waits gives its place back.
    pub(crate) async fn verify(&self, hash: StoredHash, password: Zeroizing<Vec<u8>>) -> Outcome {
        let handle = Handle::try_current()
            .map_err(|_| Arc::<str>::from("htpasswd verification needs a Tokio runtime"))?;
        let Ok(place) = self.places.clone().try_acquire_owned() else {
            self.shed.fetch_add(1, Relaxed);
            return Err(self.full.clone());
        };
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
                let _place = place;
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

    /// Verifications refused so far because the queue was full.
    pub(crate) fn shed(&self) -> u64 {
        self.shed.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::htpasswd::hash::FieldOptions;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_sheds_at_once_and_a_freed_place_is_reused() {
        // Cost 4: the cheapest bcrypt there is.
        let text = bcrypt::hash("pw", 4).unwrap();
        let hash = StoredHash::parse(text.as_bytes(), FieldOptions::default()).unwrap();
        let pool = Pool::new(1, 1);
        // Stand for a running verification (a place and the only permit), so that the next one
        // waits in the queue and the one after is shed.
        let held = (
            pool.places.clone().try_acquire_owned().unwrap(),
            pool.permits.clone().try_acquire_owned().unwrap(),
        );
        let password = || Zeroizing::new(b"x".to_vec());
        let waiting = pool.verify(hash.clone(), password());
        tokio::pin!(waiting);
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        let shed = tokio::time::timeout(
            Duration::from_secs(10),
            pool.verify(hash.clone(), password()),
        )
        .await
        .expect("a shed verification does not wait");
        assert!(shed.unwrap_err().contains("verification queue is full"));
        assert_eq!(pool.shed(), 1);
        drop(held);
        assert_eq!(waiting.await, Ok(false));
        // Both places free again: a verification goes through.
        assert_eq!(pool.verify(hash, password()).await, Ok(false));
        assert_eq!((pool.verifications(), pool.shed()), (2, 1));
        assert_eq!(pool.places.available_permits(), 2);
    }

    /// Polls `future` once; its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
