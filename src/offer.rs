//! The schemes a layer offers, each paired with its validator, behind one object-safe trait.
//!
//! [`Offer<S, V>`] runs one request through its scheme in the order of the flow: the scheme
//! prepares (`prepare`), the failure throttle may answer first, the validator answers the
//! scheme's question, the scheme concludes, and a wrong credential is counted. What comes out
//! is a [`Step`] for the decide stage. [`Schemes`] holds the offers in challenge order and
//! finds the one a request's credentials name.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::HeaderValue;

use crate::outcome::Answer;
use crate::scheme::{Scheme, Setup, Verdict};
use crate::syntax::Credentials;
use crate::throttle::FailureThrottle;
use crate::validator::Answers;

/// What one scheme made of a request, for the decide stage.
#[derive(Debug)]
pub(crate) enum Step {
    /// The scheme's verdict. `user` is the user name the credentials claimed, kept for the log
    /// when the verdict is not `Allow` (whose identity names the user) and known.
    Verdict {
        verdict: Verdict,
        user: Option<Box<[u8]>>,
    },
    /// The throttle answered before the validator was asked.
    Throttled {
        retry_after: Duration,
        user: Box<[u8]>,
    },
}

/// One offered scheme with its validator, type-erased.
pub(crate) trait Offered: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn configure(&mut self, setup: &Setup<'_>) -> Result<(), String>;
    fn challenges(&self, stale: bool, out: &mut Vec<HeaderValue>);
    fn challenges_are_static(&self) -> bool;
    fn authenticate(
        &self,
        credentials: &Credentials<'_>,
        request: &Parts,
        throttle: Option<&FailureThrottle>,
    ) -> Answer<Step>;
}

/// A scheme offered with the validator that answers its questions.
pub(crate) struct Offer<S, V> {
    scheme: Arc<S>,
    validator: V,
}

impl<S: Scheme, V: Answers<S>> Offer<S, V> {
    pub(crate) fn new(scheme: S, validator: V) -> Self {
        Self {
            scheme: Arc::new(scheme),
            validator,
        }
    }
}

impl<S: Scheme, V: Answers<S>> Offered for Offer<S, V> {
    fn name(&self) -> &'static str {
        self.scheme.name()
    }

    fn configure(&mut self, setup: &Setup<'_>) -> Result<(), String> {
        // Called by `build` before any clone of the Arc exists.
        match Arc::get_mut(&mut self.scheme) {
            Some(scheme) => {
                self.validator.configure(scheme, setup)?;
                scheme.configure(setup)
            }
            None => Err("a scheme was configured after the layer was built".to_owned()),
        }
    }

    fn challenges(&self, stale: bool, out: &mut Vec<HeaderValue>) {
        self.scheme.challenges(stale, out);
    }

    fn challenges_are_static(&self) -> bool {
        self.scheme.challenges_are_static()
    }

    fn authenticate(
        &self,
        credentials: &Credentials<'_>,
        request: &Parts,
        throttle: Option<&FailureThrottle>,
    ) -> Answer<Step> {
        let scheme = &*self.scheme;
        let attempt = match scheme.prepare(credentials, request) {
            Ok(attempt) => attempt,
            Err(verdict) => {
                return Answer::Ready(Step::Verdict {
                    verdict,
                    user: None,
                })
            }
        };
        let key = scheme.attempt_key(&attempt);
        if let Some(throttle) = throttle {
            if let Some(retry_after) = throttle.retry_after(key.user, request) {
                return Answer::Ready(Step::Throttled {
                    retry_after,
                    user: key.user.into(),
                });
            }
        }
        let name = scheme.name();
        match self.validator.answer(scheme.question(&attempt), request) {
            Answer::Ready(reply) => match scheme.conclude(&attempt, reply) {
                Answer::Ready(verdict) => {
                    if let (Verdict::Reject, Some(throttle)) = (&verdict, throttle) {
                        throttle.record_failure(key.user, request);
                    }
                    Answer::Ready(step(verdict, name, key.user))
                }
                Answer::Pending(concluding) => {
                    let guard = throttle.map(|t| t.begin_attempt(key.user, request));
                    let user: Box<[u8]> = key.user.into();
                    Answer::pending(async move { finish(concluding.await, guard, name, &user) })
                }
            },
            Answer::Pending(reply) => {
                let guard = throttle.map(|t| t.begin_attempt(key.user, request));
                let scheme = self.scheme.clone();
                Answer::pending(async move {
                    let reply = reply.await;
                    let verdict = scheme.conclude(&attempt, reply).resolve().await;
                    let user = scheme.attempt_key(&attempt).user;
                    finish(verdict, guard, name, user)
                })
            }
        }
    }
}

/// The step for a verdict: an allowed identity records the scheme; other verdicts keep the
/// claimed user name for the log.
fn step(verdict: Verdict, scheme: &'static str, user: &[u8]) -> Step {
    match verdict {
        Verdict::Allow { identity, info } => Step::Verdict {
            verdict: Verdict::Allow {
                identity: identity.authenticated_by(scheme),
                info,
            },
            user: None,
        },
        other => Step::Verdict {
            verdict: other,
            user: Some(user.into()),
        },
    }
}

/// Ends an attempt that waited: a wrong credential is counted in the windows taken when it
/// began; dropping the guard ends the attempt either way.
fn finish(
    verdict: Verdict,
    guard: Option<crate::throttle::Attempt>,
    scheme: &'static str,
    user: &[u8],
) -> Step {
    if let (Verdict::Reject, Some(guard)) = (&verdict, &guard) {
        guard.record_failure();
    }
    drop(guard);
    step(verdict, scheme, user)
}

/// The offered schemes in challenge order, and the challenges of a rejection.
pub(crate) struct Schemes {
    offers: Vec<Box<dyn Offered>>,
    /// Every offer's challenges, when all of them are static: shared by every rejection.
    shared: Option<Arc<[HeaderValue]>>,
}

impl Schemes {
    /// Configures every offer for `setup` and precomputes static challenges.
    pub(crate) fn configure(
        mut offers: Vec<Box<dyn Offered>>,
        setup: &Setup<'_>,
    ) -> Result<Self, (&'static str, String)> {
        for offer in &mut offers {
            offer
                .configure(setup)
                .map_err(|message| (offer.name(), message))?;
        }
        let shared = offers.iter().all(|o| o.challenges_are_static()).then(|| {
            let mut all = Vec::with_capacity(offers.len());
            for offer in &offers {
                offer.challenges(false, &mut all);
            }
            Arc::from(all)
        });
        Ok(Self { offers, shared })
    }

    /// The offer named by `credentials`' auth-scheme (case-insensitive), if offered.
    pub(crate) fn find(&self, credentials: &Credentials<'_>) -> Option<&dyn Offered> {
        self.offers
            .iter()
            .map(|o| &**o)
            .find(|o| credentials.is_scheme(o.name()))
    }

    /// The challenges of a 401/407, one per field line in offer order; `stale` names the scheme
    /// whose stale nonce caused the rejection.
    pub(crate) fn challenges(&self, stale: Option<&'static str>) -> Challenges {
        if let (Some(shared), None) = (&self.shared, stale) {
            return Challenges::Shared(shared.clone());
        }
        let mut all = Vec::with_capacity(self.offers.len() + 2);
        for offer in &self.offers {
            offer.challenges(stale == Some(offer.name()), &mut all);
        }
        Challenges::Built(all)
    }

    /// The names of the offered schemes, in order.
    pub(crate) fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.offers.iter().map(|o| o.name())
    }
}

impl std::fmt::Debug for Schemes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// The challenges a 401/407 carries: shared by every rejection when static, or made for this
/// one (a fresh nonce).
#[derive(Clone, Debug)]
pub(crate) enum Challenges {
    None,
    Shared(Arc<[HeaderValue]>),
    Built(Vec<HeaderValue>),
}

impl Challenges {
    pub(crate) fn as_slice(&self) -> &[HeaderValue] {
        match self {
            Self::None => &[],
            Self::Shared(shared) => shared,
            Self::Built(built) => built,
        }
    }
}
