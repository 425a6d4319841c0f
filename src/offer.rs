//! The schemes a layer offers, each paired with its validator, behind one object-safe trait.
//!
//! [`Offer<S, V>`] runs one request through its scheme in the order of the flow: the scheme
//! prepares (`prepare`), the failure throttle may answer first, the validator answers the
//! scheme's question, the scheme concludes, and the throttle records the outcome. What comes
//! out is a [`Step`] for the decide stage. [`Schemes`] holds the offers in challenge order and
//! finds the one a request's credentials name.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::HeaderValue;

use crate::outcome::{Answer, ValidatorError};
use crate::scheme::{Scheme, Setup, Verdict};
use crate::syntax::Credentials;
use crate::throttle::{Admission, FailureThrottle, Outcome, Ticket};
use crate::validator::Answers;

/// What one scheme made of a request, for the decide stage.
#[derive(Debug)]
pub(crate) enum Step {
    /// The scheme's verdict. `user` is the user name the credentials claimed, kept for the log
    /// when the verdict is not `Allow` (whose identity names the user) and known.
    Verdict {
        verdict: Verdict,
        user: Option<Box<[u8]>>,
        /// The throttle's connection rule: the rejection closes the connection.
        close: bool,
        /// The throttle answered for the validator: these exact credentials failed recently.
        repeated: bool,
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
    validator: Arc<V>,
}

impl<S: Scheme, V: Answers<S>> Offer<S, V> {
    pub(crate) fn new(scheme: S, validator: V) -> Self {
        Self {
            scheme: Arc::new(scheme),
            validator: Arc::new(validator),
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
                    close: false,
                    repeated: false,
                })
            }
        };
        let Some(throttle) = throttle else {
            return ask(&self.scheme, &self.validator, attempt, None, request);
        };
        let admission = throttle.admit(scheme.attempt_key(&attempt), request);
        match admission {
            Answer::Ready(admission) => match admitted(admission, scheme, &attempt) {
                Ok(ticket) => ask(
                    &self.scheme,
                    &self.validator,
                    attempt,
                    Some(ticket),
                    request,
                ),
                Err(step) => step,
            },
            Answer::Pending(admitting) => {
                // The counts are in a shared store: ask the validator once they are read,
                // with a copy of the request.
                let (scheme, validator) = (self.scheme.clone(), self.validator.clone());
                let request = request.clone();
                Answer::pending(async move {
                    match admitted(admitting.await, &*scheme, &attempt) {
                        Ok(ticket) => {
                            ask(&scheme, &validator, attempt, Some(ticket), &request)
                                .resolve()
                                .await
                        }
                        Err(step) => step.resolve().await,
                    }
                })
            }
        }
    }
}

/// The ticket of an admitted attempt, or the step when the throttle answered for the
/// validator.
fn admitted<S: Scheme>(
    admission: Admission,
    scheme: &S,
    attempt: &S::Attempt,
) -> Result<Ticket, Answer<Step>> {
    let user = || Box::<[u8]>::from(scheme.attempt_key(attempt).user);
    match admission {
        Admission::Go(ticket) => Ok(ticket),
        Admission::Throttled { retry_after } => Err(Answer::Ready(Step::Throttled {
            retry_after,
            user: user(),
        })),
        Admission::Busy(ticket) => {
            let user = user();
            Err(ticket
                .settle(Outcome::Shed)
                .map(move |close| Step::Verdict {
                    verdict: Verdict::Unavailable(ValidatorError::overloaded(
                        "too many checks in flight from this client address",
                    )),
                    user: Some(user),
                    close,
                    repeated: false,
                }))
        }
        Admission::Stale(ticket) => {
            let user = user();
            Err(ticket
                .settle(Outcome::Repeated)
                .map(move |close| Step::Verdict {
                    verdict: Verdict::Reject,
                    user: Some(user),
                    close,
                    repeated: true,
                }))
        }
    }
}

/// Asks the validator, concludes, settles the throttle's ticket.
fn ask<S: Scheme, V: Answers<S>>(
    scheme: &Arc<S>,
    validator: &Arc<V>,
    attempt: S::Attempt,
    mut ticket: Option<Ticket>,
    request: &Parts,
) -> Answer<Step> {
    match validator.answer(scheme.question(&attempt), request) {
        Answer::Ready(reply) => match conclude(&**scheme, &attempt, reply, &mut ticket) {
            Answer::Ready(verdict) => {
                let user = scheme.attempt_key(&attempt).user;
                finish(verdict, ticket, scheme.name(), user)
            }
            Answer::Pending(concluding) => {
                let scheme = scheme.clone();
                Answer::pending(async move {
                    let user = scheme.attempt_key(&attempt).user;
                    finish(concluding.await, ticket, scheme.name(), user)
                        .resolve()
                        .await
                })
            }
        },
        Answer::Pending(reply) => {
            if ticket.as_mut().is_some_and(|t| !t.hold_pending()) {
                // The address has as many slow checks in flight as it may: this one is shed
                // before it starts (dropping the future cancels it).
                drop(reply);
                let shed = Verdict::Unavailable(ValidatorError::overloaded(
                    "too many checks in flight from this client address",
                ));
                let user = scheme.attempt_key(&attempt).user;
                return finish(shed, ticket, scheme.name(), user);
            }
            let scheme = scheme.clone();
            Answer::pending(async move {
                let reply = reply.await;
                let verdict = conclude(&*scheme, &attempt, reply, &mut ticket)
                    .resolve()
                    .await;
                let user = scheme.attempt_key(&attempt).user;
                finish(verdict, ticket, scheme.name(), user).resolve().await
            })
        }
    }
}

/// The scheme's conclusion; one that goes pending has checked the credentials already
/// (see [`Scheme::conclude`]), so the ticket's attempt stops counting in flight.
fn conclude<S: Scheme>(
    scheme: &S,
    attempt: &S::Attempt,
    reply: S::Reply,
    ticket: &mut Option<Ticket>,
) -> Answer<Verdict> {
    let concluding = scheme.conclude(attempt, reply);
    if let (Answer::Pending(_), Some(ticket)) = (&concluding, ticket.as_mut()) {
        ticket.checked();
    }
    concluding
}

/// Records the verdict with the throttle and makes the step.
fn finish(
    verdict: Verdict,
    ticket: Option<Ticket>,
    scheme: &'static str,
    user: &[u8],
) -> Answer<Step> {
    let outcome = match &verdict {
        Verdict::Allow { .. } => Outcome::Success,
        Verdict::Reject => Outcome::Failure,
        Verdict::Unavailable(error) if error.is_overloaded() => Outcome::Shed,
        _ => Outcome::Other,
    };
    let Some(ticket) = ticket else {
        return Answer::Ready(step(verdict, scheme, user, false));
    };
    match ticket.settle(outcome) {
        Answer::Ready(close) => Answer::Ready(step(verdict, scheme, user, close)),
        settling => {
            let user: Box<[u8]> = user.into();
            settling.map(move |close| step(verdict, scheme, &user, close))
        }
    }
}

/// The step for a verdict: an allowed identity records the scheme; other verdicts keep the
/// claimed user name for the log.
fn step(verdict: Verdict, scheme: &'static str, user: &[u8], close: bool) -> Step {
    match verdict {
        Verdict::Allow { identity, info } => Step::Verdict {
            verdict: Verdict::Allow {
                identity: identity.authenticated_by(scheme),
                info,
            },
            user: None,
            close: false,
            repeated: false,
        },
        other => Step::Verdict {
            verdict: other,
            user: Some(user.into()),
            close,
            repeated: false,
        },
    }
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
