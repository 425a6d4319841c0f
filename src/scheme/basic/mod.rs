//! The Basic scheme (RFC 7617): a user-id and password in a base64 token68, checked by a
//! password [`Validator`](crate::Validator).
//!
//! - Challenge: `Basic realm="<realm>", charset="UTF-8"` (RFC 7617 §2, §2.1), built once when
//!   the layer is built and shared by every 401/407.
//! - Credentials: [`BasicCredentials`], decoded from the token68; anything else after `Basic`
//!   (nothing, an auth-param list, bad base64) is malformed and gets the challenges again.
//! - The same credentials arrive on every request of a client, so the failure throttle may
//!   recognise a repeated wrong password ([`AttemptKey::repeatable`]).

mod credentials;

use http::request::Parts;
use http::HeaderValue;

pub use credentials::{BasicCredentials, CredentialsError};

use super::{AttemptKey, Scheme, Setup, Verdict};
use crate::outcome::{Answer, Decision, ValidatorError};
use crate::secret::Tag;
use crate::syntax::{ChallengeBuilder, Credentials, CredentialsData};

/// The Basic scheme; offered by [`ProxyAuthLayer::builder`](crate::ProxyAuthLayer::builder)
/// with the validator given there.
///
/// ```
/// use tower_proxy_auth::scheme::Basic;
/// use tower_proxy_auth::{ProxyAuthLayer, StaticUsers};
///
/// let users = StaticUsers::new().with_user("alice", "s3cret");
/// // The same layer as `ProxyAuthLayer::new(users)`:
/// let layer = ProxyAuthLayer::offering(Basic::new(), users).build()?;
/// # Ok::<(), tower_proxy_auth::BuildError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Basic {
    challenge: HeaderValue,
}

impl Basic {
    /// The scheme; its challenge names the layer's realm.
    pub fn new() -> Self {
        Self {
            challenge: HeaderValue::from_static("Basic"),
        }
    }
}

impl Basic {
    /// The challenge for `realm`: `Basic realm="<realm>", charset="UTF-8"` (RFC 7617 §2, §2.1),
    /// the realm a quoted-string with `"` and `\` escaped.
    ///
    /// ```
    /// use tower_proxy_auth::{scheme::Basic, Realm};
    ///
    /// let realm = Realm::new(r#"corp "east""#)?;
    /// assert_eq!(Basic::challenge_for(&realm), r#"Basic realm="corp \"east\"", charset="UTF-8""#);
    /// # Ok::<(), tower_proxy_auth::InvalidRealm>(())
    /// ```
    pub fn challenge_for(realm: &crate::Realm) -> HeaderValue {
        ChallengeBuilder::new("Basic")
            .quoted("realm", realm.as_str())
            .quoted("charset", "UTF-8")
            .finish()
    }
}

impl Default for Basic {
    fn default() -> Self {
        Self::new()
    }
}

impl Scheme for Basic {
    type Question = BasicCredentials;
    type Reply = Result<Decision, ValidatorError>;
    type Attempt = BasicCredentials;

    fn name(&self) -> &'static str {
        "Basic"
    }

    fn configure(&mut self, setup: &Setup<'_>) -> Result<(), String> {
        self.challenge = Self::challenge_for(setup.realm);
        Ok(())
    }

    fn prepare(
        &self,
        credentials: &Credentials<'_>,
        _: &Parts,
    ) -> Result<BasicCredentials, Verdict> {
        match credentials.data() {
            CredentialsData::Token68(token) => BasicCredentials::decode(token.as_bytes())
                .map_err(|e| Verdict::Malformed(e.as_str())),
            CredentialsData::Empty => Err(Verdict::Malformed("missing_token68")),
            CredentialsData::Params(_) => Err(Verdict::Malformed("not_token68")),
        }
    }

    fn question<'a>(&self, attempt: &'a BasicCredentials) -> &'a BasicCredentials {
        attempt
    }

    fn attempt_key<'a>(&self, attempt: &'a BasicCredentials) -> AttemptKey<'a> {
        AttemptKey::repeatable(attempt.user_id_bytes(), attempt.decoded())
            .with_tag(attempt.tag().as_ref().map(Tag::to_u128))
    }

    fn conclude(
        &self,
        _: &BasicCredentials,
        reply: Result<Decision, ValidatorError>,
    ) -> Answer<Verdict> {
        Answer::Ready(match reply {
            Ok(Decision::Allow(identity)) => Verdict::allow(identity),
            Ok(Decision::Reject) => Verdict::Reject,
            Ok(Decision::Forbid) => Verdict::Forbid,
            Err(error) => Verdict::Unavailable(error),
        })
    }

    fn challenges(&self, _stale: bool, out: &mut Vec<HeaderValue>) {
        out.push(self.challenge.clone());
    }

    fn challenges_are_static(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Party, Realm};

    #[test]
    fn challenge_names_the_realm_escaped() {
        let mut basic = Basic::new();
        let realm = Realm::new(r#"a "b" \c"#).unwrap();
        basic.configure(&Setup::new(&realm, Party::Proxy)).unwrap();
        let mut out = Vec::new();
        basic.challenges(false, &mut out);
        assert_eq!(out, [r#"Basic realm="a \"b\" \\c", charset="UTF-8""#]);
        let mut basic = Basic::new();
        basic
            .configure(&Setup::new(
                &Realm::new("Prüfung ✓").unwrap(),
                Party::Origin,
            ))
            .unwrap();
        let mut out = Vec::new();
        basic.challenges(false, &mut out);
        assert_eq!(
            out[0].as_bytes(),
            "Basic realm=\"Prüfung ✓\", charset=\"UTF-8\"".as_bytes()
        );
    }
}
