//! `a.or(b)`: two validators, the second consulted when the first rejects.

use http::request::Parts;

use super::{Decision, Validation, Validator, ValidatorError};
use crate::scheme::basic::BasicCredentials;

/// Tries `A`, then `B` when `A` does not allow the credentials. Built by [`Validator::or`].
///
/// | `A` answers | result |
/// |---|---|
/// | `Allow` / `Forbid` | that answer; `B` is not consulted |
/// | `Reject` | `B`'s answer |
/// | `Err(e)` | `B`'s answer if `B` allows or forbids; otherwise `Err(e)`, so an outage of `A` shows as 503, not as a wrong password |
///
/// When `A` answers later (a pending future), the credentials and request parts are cloned so
/// that `B` can still be asked; when `A` answers at once nothing is cloned.
#[derive(Debug, Clone)]
pub struct Or<A, B> {
    first: A,
    second: std::sync::Arc<B>,
}

impl<A, B> Or<A, B> {
    pub(crate) fn new(first: A, second: B) -> Self {
        Self {
            first,
            second: std::sync::Arc::new(second),
        }
    }
}

impl<A: Validator, B: Validator> Validator for Or<A, B> {
    fn answer_version(&self, credentials: &BasicCredentials) -> u64 {
        let a = self.first.answer_version(credentials);
        let b = self.second.answer_version(credentials);
        a.rotate_left(32) ^ b
    }

    fn answer_context(&self, request: &Parts, context: &mut Vec<u8>) {
        // The first's part, then its length, then the second's: the split stays known.
        let start = context.len();
        self.first.answer_context(request, context);
        let first = (context.len() - start) as u64;
        context.extend_from_slice(&first.to_le_bytes());
        self.second.answer_context(request, context);
    }

    fn validate(&self, credentials: &BasicCredentials, request: &Parts) -> Validation {
        match self.first.validate(credentials, request) {
            Validation::Ready(Ok(Decision::Reject)) => self.second.validate(credentials, request),
            Validation::Ready(Err(error)) => match self.second.validate(credentials, request) {
                Validation::Ready(second) => Validation::Ready(after_error(error, second)),
                Validation::Pending(second) => {
                    Validation::pending(async move { after_error(error, second.await) })
                }
            },
            ready @ Validation::Ready(Ok(_)) => ready,
            Validation::Pending(first) => {
                let second = self.second.clone();
                let credentials = credentials.clone();
                let request = request.clone();
                Validation::pending(async move {
                    let first = first.await;
                    if matches!(first, Ok(Decision::Allow(_) | Decision::Forbid)) {
                        return first;
                    }
                    let second = match second.validate(&credentials, &request) {
                        Validation::Ready(result) => result,
                        Validation::Pending(future) => future.await,
                    };
                    match first {
                        Err(error) => after_error(error, second),
                        Ok(_) => second,
                    }
                })
            }
        }
    }
}

fn after_error(
    first: ValidatorError,
    second: Result<Decision, ValidatorError>,
) -> Result<Decision, ValidatorError> {
    match second {
        Ok(Decision::Reject) | Err(_) => Err(first),
        decided => decided,
    }
}
