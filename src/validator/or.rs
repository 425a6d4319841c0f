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
        // The first's part, the second's, then the first's length, so the split stays known;
        // when neither writes anything (validators that judge the credentials alone), nothing
        // is written, and a `Cached` in front makes no allocation for the context.
        let start = context.len();
        self.first.answer_context(request, context);
        let first = (context.len() - start) as u64;
        self.second.answer_context(request, context);
        if context.len() > start {
            context.extend_from_slice(&first.to_le_bytes());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A validator whose answer depends on a header's value (written with its length).
    struct ByHeader(&'static str);

    impl Validator for ByHeader {
        fn validate(&self, _: &BasicCredentials, _: &Parts) -> Validation {
            Validation::Ready(Ok(Decision::Reject))
        }

        fn answer_context(&self, request: &Parts, context: &mut Vec<u8>) {
            let value = request
                .headers
                .get(self.0)
                .map_or(&b""[..], |v| v.as_bytes());
            context.extend_from_slice(&(value.len() as u64).to_le_bytes());
            context.extend_from_slice(value);
        }
    }

    /// A validator that judges the credentials alone (the default context).
    struct Alone;

    impl Validator for Alone {
        fn validate(&self, _: &BasicCredentials, _: &Parts) -> Validation {
            Validation::Ready(Ok(Decision::Reject))
        }
    }

    fn context(validator: &impl Validator, headers: &[(&'static str, &str)]) -> Vec<u8> {
        let mut request = http::Request::builder();
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        let mut context = Vec::new();
        validator.answer_context(&parts, &mut context);
        context
    }

    #[test]
    fn the_context_keeps_each_side_apart_and_is_empty_when_both_are() {
        assert!(context(&Or::new(Alone, Alone), &[("a", "x")]).is_empty());
        let both = Or::new(ByHeader("a"), ByHeader("b"));
        assert_ne!(
            context(&both, &[("a", "xy"), ("b", "z")]),
            context(&both, &[("a", "x"), ("b", "yz")])
        );
        // One side alone still tells the requests apart, on either side.
        let first = Or::new(ByHeader("a"), Alone);
        assert_ne!(
            context(&first, &[("a", "1")]),
            context(&first, &[("a", "2")])
        );
        let second = Or::new(Alone, ByHeader("a"));
        assert_ne!(
            context(&second, &[("a", "1")]),
            context(&second, &[("a", "2")])
        );
    }
}
