//! [`Rejection`]: a request the layer answers itself, and why.

use std::fmt;

use http::{HeaderValue, StatusCode};

use crate::offer::Challenges;
use crate::party::Party;

/// A request the layer answers itself instead of calling the inner service: its kind, the
/// status, and the challenges a 401/407 must carry.
///
/// A [`render_rejection`](crate::ProxyAuthLayerBuilder::render_rejection) hook sees it to
/// write the body and extra fields (an HTML 407 for browsers, a JSON 401 for an API); the
/// layer keeps what correctness needs: the status, the challenge field lines, `Retry-After`, an
/// exact `Content-Length` and the keep-alive/close rule.
#[derive(Clone)]
pub struct Rejection {
    kind: RejectionKind,
    party: Party,
    challenges: Challenges,
    close: bool,
}

/// What kind of answer a [`Rejection`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// 401 (origin) or 407 (proxy) with every offered scheme's challenges (RFC 9110 §15.5.2,
    /// §15.5.8): the client may (again) send credentials.
    Challenge(ChallengeReason),
    /// 400: the credentials make the request ambiguous or malformed in a way RFC 9110 answers
    /// with 400 (two credentials; a Digest `uri` that is not the request-target). The text is
    /// a short, stable label (`"multiple_credentials"`).
    BadRequest(&'static str),
    /// 403: authenticated, not allowed (RFC 9110 §15.5.4).
    Forbidden,
    /// 429 with `Retry-After` (RFC 6585 §4): too many failed attempts.
    TooManyAttempts {
        /// Whole seconds until the client may try again, at least 1.
        retry_after: u64,
    },
    /// 431 and `Connection: close` (RFC 6585 §5): the credentials field is over the size limit.
    CredentialsTooLarge,
    /// 503: the validator could not decide (its store is unreachable); never an open door.
    Unavailable,
    /// 503 with `Retry-After: 1`: the validator is at capacity and shed the check.
    Overloaded,
}

/// Why a 401/407 asks for credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChallengeReason {
    /// The request carried no credentials (browsers and most clients start this way).
    Missing,
    /// The credentials break RFC 9110's grammar, or their scheme's rules; the label names the
    /// rule (`"invalid_base64"`, `"invalid_param"`).
    Malformed(&'static str),
    /// The credentials use a scheme the layer does not offer.
    UnsupportedScheme,
    /// Unknown user, wrong password or wrong response.
    WrongCredentials,
    /// The same wrong credentials again: answered without asking the validator, not counted
    /// again (see [`FailureThrottle`](crate::FailureThrottle)).
    RepeatedCredentials,
    /// The credentials were right but their nonce expired: the scheme's challenge says
    /// `stale=true` (RFC 7616 §3.3).
    Stale,
}

impl ChallengeReason {
    /// A short, stable label for logs and metrics (`"wrong_credentials"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed(_) => "malformed",
            Self::UnsupportedScheme => "unsupported_scheme",
            Self::WrongCredentials => "wrong_credentials",
            Self::RepeatedCredentials => "repeated_credentials",
            Self::Stale => "stale",
        }
    }
}

impl Rejection {
    pub(crate) fn new(kind: RejectionKind, party: Party) -> Self {
        Self {
            kind,
            party,
            challenges: Challenges::None,
            close: false,
        }
    }

    pub(crate) fn challenge(reason: ChallengeReason, party: Party, challenges: Challenges) -> Self {
        Self {
            kind: RejectionKind::Challenge(reason),
            party,
            challenges,
            close: false,
        }
    }

    /// Marks the rejection as closing its connection (the failure throttle's rule for a
    /// connection that keeps failing).
    pub(crate) fn close_connection(&mut self) {
        self.close = true;
    }

    /// Whether the response says `Connection: close` whatever the request: a 431, or a
    /// connection that kept failing (see [`FailureThrottle`](crate::FailureThrottle)). The
    /// request can add its own reasons (an unread body, HTTP/1.0).
    pub fn closes_connection(&self) -> bool {
        self.close || self.kind == RejectionKind::CredentialsTooLarge
    }

    /// The kind of answer.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The party the layer authenticates for.
    pub fn party(&self) -> Party {
        self.party
    }

    /// The status: 401/407, 400, 403, 429, 431 or 503.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            RejectionKind::Challenge(_) => self.party.challenge_status(),
            RejectionKind::BadRequest(_) => StatusCode::BAD_REQUEST,
            RejectionKind::Forbidden => StatusCode::FORBIDDEN,
            RejectionKind::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            RejectionKind::CredentialsTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RejectionKind::Unavailable | RejectionKind::Overloaded => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The challenges, one field line each, in the order the schemes are offered; empty unless
    /// the kind is [`RejectionKind::Challenge`].
    pub fn challenges(&self) -> &[HeaderValue] {
        self.challenges.as_slice()
    }

    /// Seconds for `Retry-After`, for a 429 or an overloaded 503.
    pub fn retry_after(&self) -> Option<u64> {
        match self.kind {
            RejectionKind::TooManyAttempts { retry_after } => Some(retry_after),
            RejectionKind::Overloaded => Some(1),
            _ => None,
        }
    }

    /// A short, stable label of the outcome for logs and metrics: `"challenge"`,
    /// `"bad_request"`, `"forbidden"`, `"throttled"`, `"too_large"`, `"unavailable"`,
    /// `"overloaded"`.
    pub fn outcome(&self) -> &'static str {
        match self.kind {
            RejectionKind::Challenge(_) => "challenge",
            RejectionKind::BadRequest(_) => "bad_request",
            RejectionKind::Forbidden => "forbidden",
            RejectionKind::TooManyAttempts { .. } => "throttled",
            RejectionKind::CredentialsTooLarge => "too_large",
            RejectionKind::Unavailable => "unavailable",
            RejectionKind::Overloaded => "overloaded",
        }
    }

    /// The finer reason, where there is one (`"wrong_credentials"`, `"invalid_base64"`,
    /// `"multiple_credentials"`); otherwise the same as [`outcome`](Self::outcome).
    pub fn reason(&self) -> &'static str {
        match self.kind {
            RejectionKind::Challenge(ChallengeReason::Malformed(rule)) => rule,
            RejectionKind::Challenge(reason) => reason.as_str(),
            RejectionKind::BadRequest(reason) => reason,
            _ => self.outcome(),
        }
    }

    /// The short `text/plain` body the layer sends when no hook renders one.
    pub fn default_text(&self) -> &'static str {
        match (self.kind, self.party) {
            (RejectionKind::Challenge(_), Party::Proxy) => "Proxy authentication required\n",
            (RejectionKind::Challenge(_), _) => "Authentication required\n",
            (RejectionKind::BadRequest("multiple_credentials"), Party::Proxy) => {
                "Bad request: more than one Proxy-Authorization credential\n"
            }
            (RejectionKind::BadRequest("multiple_credentials"), _) => {
                "Bad request: more than one Authorization credential\n"
            }
            (RejectionKind::BadRequest(_), _) => "Bad request: unusable credentials\n",
            (RejectionKind::Forbidden, _) => "Forbidden\n",
            (RejectionKind::TooManyAttempts { .. }, Party::Proxy) => {
                "Too many failed proxy authentication attempts; retry later\n"
            }
            (RejectionKind::TooManyAttempts { .. }, _) => {
                "Too many failed authentication attempts; retry later\n"
            }
            (RejectionKind::CredentialsTooLarge, Party::Proxy) => {
                "Proxy-Authorization is too large\n"
            }
            (RejectionKind::CredentialsTooLarge, _) => "Authorization is too large\n",
            (RejectionKind::Unavailable, Party::Proxy) => "Proxy authentication is unavailable\n",
            (RejectionKind::Unavailable, _) => "Authentication is unavailable\n",
            (RejectionKind::Overloaded, _) => "Authentication is overloaded; retry in a moment\n",
        }
    }
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("kind", &self.kind)
            .field("party", &self.party)
            .field("challenges", &self.challenges().len())
            .field("close", &self.close)
            .finish()
    }
}
