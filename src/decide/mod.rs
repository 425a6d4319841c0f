//! The decide step: the one place where what the earlier stages found becomes an [`Action`].
//!
//! Its input is what the layer learned of a request: the credentials field was over the size
//! limit, broke RFC 9110's grammar, was missing, named a scheme not offered, or went through an
//! offered scheme (whose [`Step`] holds the throttle's answer or the scheme's verdict on the
//! validator's answer). Its output is either "forward, with this identity and this success
//! field" or a complete [`Rejection`]. Nothing else in the crate maps outcomes to statuses.
//!
//! Each decision is reported once: a `tracing` event with target `tower_proxy_auth` (fields
//! `outcome`, `reason`, `scheme`, `party`, `user`, `status`; the user name escaped and capped by
//! [`Escaped`], never a secret), and with the cargo feature `metrics` a counter
//! `tower_proxy_auth_decisions_total{party, scheme, outcome, reason}` through the `metrics`
//! facade. Wrong credentials, 400s and 403s are reported at `INFO`, every other decision at
//! `DEBUG` (429s too: the failures that led to them were reported). A validator that fails or
//! sheds checks is also reported for the operator, at `ERROR` and `WARN`, each at most once a
//! second with a count of those left out, so an outage does not flood the log.

mod rejection;

use http::HeaderValue;

pub use rejection::{ChallengeReason, Rejection, RejectionKind};

use crate::identity::Identity;
use crate::logging::{Escaped, LogLimit};
use crate::offer::{Schemes, Step};
use crate::party::Party;
use crate::scheme::Verdict;
use crate::syntax::SyntaxError;

/// What the layer does with a request.
#[derive(Debug)]
pub(crate) enum Action {
    /// Call the inner service with `identity` in the extensions, the credentials field
    /// removed (unless kept), and `info` as the scheme's `*-Authentication-Info` on the
    /// response.
    Forward {
        identity: Identity,
        info: Option<HeaderValue>,
    },
    /// Answer with this rejection.
    Reject(Rejection),
}

/// What the earlier stages learned about a request.
#[derive(Debug)]
pub(crate) enum Input<'a> {
    /// The credentials field lines add up to `size` bytes, over the limit.
    TooLarge { size: usize },
    /// The credentials field breaks RFC 9110 §11.4.
    Syntax(SyntaxError),
    /// No credentials field.
    Missing,
    /// Credentials of a scheme the layer does not offer.
    UnsupportedScheme(&'a str),
    /// What the offered scheme `scheme` made of the credentials.
    Step { scheme: &'static str, step: Step },
}

/// What deciding needs to know of the layer.
pub(crate) struct Context<'a> {
    pub(crate) party: Party,
    pub(crate) schemes: &'a Schemes,
    pub(crate) validator_errors: &'a LogLimit,
    pub(crate) overloads: &'a LogLimit,
}

/// Maps `input` to an action, and reports the decision.
pub(crate) fn decide(input: Input<'_>, cx: &Context<'_>) -> Action {
    let party = cx.party;
    let challenge = |reason, stale| {
        Action::Reject(Rejection::challenge(
            reason,
            party,
            cx.schemes.challenges(stale),
        ))
    };
    let reject = |kind| Action::Reject(Rejection::new(kind, party));
    let (action, scheme, user) = match input {
        Input::TooLarge { size } => {
            tracing::debug!(target: "tower_proxy_auth", size, "credentials over the size limit");
            (reject(RejectionKind::CredentialsTooLarge), None, None)
        }
        Input::Syntax(SyntaxError::MultipleCredentials) => (
            reject(RejectionKind::BadRequest("multiple_credentials")),
            None,
            None,
        ),
        Input::Syntax(error) => (
            challenge(ChallengeReason::Malformed(error.as_str()), None),
            None,
            None,
        ),
        Input::Missing => (challenge(ChallengeReason::Missing, None), None, None),
        Input::UnsupportedScheme(name) => {
            tracing::trace!(target: "tower_proxy_auth", scheme = %Escaped::capped(name, 32), "scheme not offered");
            (
                challenge(ChallengeReason::UnsupportedScheme, None),
                None,
                None,
            )
        }
        Input::Step {
            scheme,
            step: Step::Throttled { retry_after, user },
        } => {
            let retry_after = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
            (
                reject(RejectionKind::TooManyAttempts {
                    retry_after: retry_after.max(1),
                }),
                Some(scheme),
                Some(user),
            )
        }
        Input::Step {
            scheme,
            step:
                Step::Verdict {
                    verdict,
                    user,
                    close,
                    repeated,
                },
        } => {
            let mut action = match verdict {
                Verdict::Allow { identity, info } => Action::Forward { identity, info },
                Verdict::Reject if repeated => {
                    challenge(ChallengeReason::RepeatedCredentials, None)
                }
                Verdict::Reject => challenge(ChallengeReason::WrongCredentials, None),
                Verdict::Forbid => reject(RejectionKind::Forbidden),
                Verdict::Malformed(rule) => challenge(ChallengeReason::Malformed(rule), None),
                Verdict::Stale => challenge(ChallengeReason::Stale, Some(scheme)),
                Verdict::BadRequest(reason) => reject(RejectionKind::BadRequest(reason)),
                Verdict::Unavailable(error) => {
                    let overloaded = error.is_overloaded();
                    let limit = if overloaded {
                        cx.overloads
                    } else {
                        cx.validator_errors
                    };
                    if let Some(suppressed) = limit.admit() {
                        let user = user.as_deref().map(Escaped::new);
                        if overloaded {
                            tracing::warn!(target: "tower_proxy_auth", scheme, user = user.as_ref().map(tracing::field::display), %error, suppressed,
                                "validator overloaded, check shed (503); at most one such line a second, `suppressed` counts those left out");
                        } else {
                            tracing::error!(target: "tower_proxy_auth", scheme, user = user.as_ref().map(tracing::field::display), %error, suppressed,
                                "validator failed (503); at most one such line a second, `suppressed` counts those left out");
                        }
                    }
                    reject(if overloaded {
                        RejectionKind::Overloaded
                    } else {
                        RejectionKind::Unavailable
                    })
                }
            };
            if let (Action::Reject(rejection), true) = (&mut action, close) {
                rejection.close_connection();
            }
            (action, Some(scheme), user)
        }
    };
    report(&action, party, scheme, user.as_deref());
    action
}

/// The one event (and counter) of a decision.
fn report(action: &Action, party: Party, scheme: Option<&'static str>, user: Option<&[u8]>) {
    let scheme_label = scheme.unwrap_or("-");
    let (outcome, reason) = match action {
        Action::Forward { .. } => ("allow", "allow"),
        Action::Reject(rejection) => (rejection.outcome(), rejection.reason()),
    };
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "tower_proxy_auth_decisions_total",
        "party" => party.as_str(),
        "scheme" => scheme_label,
        "outcome" => outcome,
        "reason" => reason,
    )
    .increment(1);
    let party = party.as_str();
    match action {
        Action::Forward { identity, .. } => {
            tracing::debug!(target: "tower_proxy_auth", outcome, reason, scheme = scheme_label, party, user = %Escaped::new(identity.user()), "credentials accepted");
        }
        Action::Reject(rejection) => {
            let user = Escaped::new(user.unwrap_or(b"-"));
            match rejection.kind() {
                RejectionKind::Challenge(ChallengeReason::WrongCredentials)
                | RejectionKind::BadRequest(_)
                | RejectionKind::Forbidden => {
                    tracing::info!(target: "tower_proxy_auth", outcome, reason, scheme = scheme_label, party, %user, status = rejection.status().as_u16(), "request rejected");
                }
                _ => {
                    tracing::debug!(target: "tower_proxy_auth", outcome, reason, scheme = scheme_label, party, %user, status = rejection.status().as_u16(), "request rejected");
                }
            }
        }
    }
}
