//! Authentication schemes as plug-ins: one module per auth-scheme, each implementing [`Scheme`].
//!
//! A scheme turns the parsed credentials of a request (from [`crate::syntax`]) into a question
//! for its kind of validator, concludes from the answer, writes its challenges into a 401/407,
//! and may add a step to the success response (`*-Authentication-Info`). The layer offers an
//! ordered set of schemes, each paired with its validator
//! ([`ProxyAuthLayerBuilder::offer`](crate::ProxyAuthLayerBuilder::offer)); it knows none of
//! them by name.
//!
//! One request through a scheme:
//!
//! 1. [`Scheme::prepare`] checks the credentials (Basic: decode the token68; Digest: the
//!    parameters, the realm, the nonce) and returns an attempt, or a [`Verdict`] at once (a
//!    malformed value, a stale nonce) without the validator being asked.
//! 2. The failure throttle sees [`Scheme::attempt_key`] (the user name, and for schemes whose
//!    credentials repeat, such as Basic, the credentials) and may answer 429 instead.
//! 3. The scheme's validator kind answers [`Scheme::question`] (Basic: the password check of
//!    [`Validator`](crate::Validator); Digest: a secret lookup).
//! 4. [`Scheme::conclude`] turns the answer into a [`Verdict`].
//!
//! Adding a scheme is a new module here, a validator kind for its question in
//! [`crate::validator`] (or an existing one), and one `offer` call on the builder: the layer,
//! the decide step and the syntax parser do not change. Bearer (RFC 6750) would be a scheme
//! whose `prepare` takes the token68, whose question is that token, and whose kind is a token
//! check (`Fn(&str, &Parts) -> Validation`) answering a [`Decision`](crate::Decision); its
//! challenge is `Bearer realm="…"`, with `error="invalid_token"` after a rejected token.

pub mod basic;
pub mod digest;

pub use basic::Basic;
pub use digest::Digest;

use http::request::Parts;
use http::HeaderValue;

use crate::outcome::{Answer, ValidatorError};
use crate::syntax::Credentials;
use crate::{Identity, Party, Realm};

/// One auth-scheme the layer can offer. See the [module documentation](self).
///
/// `Question` and `Reply` tie the scheme to its validator kind: a validator `V` can be offered
/// with scheme `S` when `V: Answers<S>` ([`crate::validator::Answers`]).
pub trait Scheme: Send + Sync + 'static {
    /// What the scheme asks its validator (Basic: the decoded
    /// [`BasicCredentials`](basic::BasicCredentials)).
    type Question: Send + Sync + 'static;
    /// What the validator answers (Basic: `Result<Decision, ValidatorError>`).
    type Reply: Send + 'static;
    /// What [`prepare`](Self::prepare) hands to [`conclude`](Self::conclude); it holds the
    /// question.
    type Attempt: Send + Sync + 'static;

    /// The auth-scheme token as written in challenges (`"Basic"`); credentials are matched to
    /// it case-insensitively (RFC 9110 §11.1).
    fn name(&self) -> &'static str;

    /// Called once by [`build`](crate::ProxyAuthLayerBuilder::build), with the layer's realm
    /// and party: the place to build static challenges.
    ///
    /// # Errors
    ///
    /// A message that `build` returns as [`BuildError::Scheme`](crate::BuildError::Scheme).
    fn configure(&mut self, setup: &Setup<'_>) -> Result<(), String> {
        let _ = setup;
        Ok(())
    }

    /// Checks credentials of this scheme; an attempt for the validator, or a verdict at once.
    ///
    /// # Errors
    ///
    /// The [`Verdict`] when the validator need not be asked: [`Verdict::Malformed`] for
    /// credentials this scheme cannot read, [`Verdict::BadRequest`], [`Verdict::Stale`],
    /// [`Verdict::Reject`] for credentials that cannot be right (a forged nonce).
    fn prepare(
        &self,
        credentials: &Credentials<'_>,
        request: &Parts,
    ) -> Result<Self::Attempt, Verdict>;

    /// The question in `attempt`.
    fn question<'a>(&self, attempt: &'a Self::Attempt) -> &'a Self::Question;

    /// What the failure throttle counts this attempt by.
    fn attempt_key<'a>(&self, attempt: &'a Self::Attempt) -> AttemptKey<'a>;

    /// The verdict, from the validator's reply. A scheme may finish asynchronously (Digest
    /// records the nonce count in a replay store that may be remote). What it needs of the
    /// request it took into the attempt in [`prepare`](Self::prepare): the validator may answer
    /// after the request has moved on.
    ///
    /// A [`Answer::Pending`] conclusion is taken to have checked the credentials already and
    /// to wait only on bookkeeping (as Digest's replay record does, for a right response): the
    /// failure throttle stops counting the attempt among those in flight when it is returned.
    /// Its verdict is still recorded when it arrives.
    fn conclude(&self, attempt: &Self::Attempt, reply: Self::Reply) -> Answer<Verdict>;

    /// Appends this scheme's challenges (one field line each) for a 401/407. `stale` is true
    /// when this scheme's [`Verdict::Stale`] caused the rejection (RFC 7616 §3.3).
    fn challenges(&self, stale: bool, out: &mut Vec<HeaderValue>);

    /// Whether [`challenges`](Self::challenges) always writes the same values: the layer then
    /// asks once, at build, and every rejection shares them without allocating (Basic).
    fn challenges_are_static(&self) -> bool {
        false
    }
}

/// What a scheme learns when the layer is built.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Setup<'a> {
    /// The realm the challenges name.
    pub realm: &'a Realm,
    /// Proxy (407) or origin (401).
    pub party: Party,
}

impl<'a> Setup<'a> {
    /// A setup for `realm` and `party`.
    pub fn new(realm: &'a Realm, party: Party) -> Self {
        Self { realm, party }
    }
}

/// What the failure throttle counts an attempt by.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AttemptKey<'a> {
    /// The user name the credentials claim, as bytes (not always UTF-8: a Digest `username`
    /// may carry any quoted-string).
    pub user: &'a [u8],
    /// The credentials themselves, for schemes whose credentials repeat from one request to
    /// the next (Basic), so that a client repeating the same wrong credentials is recognised.
    /// `None` for schemes whose credentials change every time (Digest).
    pub repeatable: Option<&'a [u8]>,
    /// The process-key tag of `repeatable`, when the scheme has made it already (Basic).
    pub(crate) tag: Option<u128>,
}

impl<'a> AttemptKey<'a> {
    /// A key by user name only.
    pub fn user(user: &'a [u8]) -> Self {
        Self {
            user,
            repeatable: None,
            tag: None,
        }
    }

    /// A key by user name and the credentials, which repeat from request to request.
    pub fn repeatable(user: &'a [u8], credentials: &'a [u8]) -> Self {
        Self {
            user,
            repeatable: Some(credentials),
            tag: None,
        }
    }

    /// With the process-key tag of the credentials, made once per request and shared with
    /// the validator.
    pub(crate) fn with_tag(mut self, tag: Option<u128>) -> Self {
        self.tag = tag;
        self
    }
}

/// What a scheme concluded about a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Verdict {
    /// Good credentials: the request goes on with `identity`; `info` is the value of the
    /// scheme's `*-Authentication-Info` field for the response, if any (RFC 9110 §11.6.3).
    Allow {
        /// Who the request is from.
        identity: Identity,
        /// The success step's field value.
        info: Option<HeaderValue>,
    },
    /// Wrong credentials (unknown user, wrong password, wrong response): a challenge, and a
    /// failure for the throttle.
    Reject,
    /// Authenticated but not allowed: 403.
    Forbid,
    /// Credentials this scheme cannot read: a challenge, not counted as a failure. The reason
    /// is a short, stable label for logs and metrics.
    Malformed(&'static str),
    /// The credentials were right but their nonce has expired: a challenge with a fresh nonce
    /// and `stale=true` (RFC 7616 §3.3), not counted.
    Stale,
    /// The request is malformed in a way RFC 9110 answers with 400 (a Digest `uri` that does
    /// not name the request-target, RFC 7616 §3.4.6). The reason is a label.
    BadRequest(&'static str),
    /// The validator could not decide: 503, never an open door.
    Unavailable(ValidatorError),
}

impl Verdict {
    /// An `Allow` without a success step.
    pub fn allow(identity: Identity) -> Self {
        Self::Allow {
            identity,
            info: None,
        }
    }
}
