//! The Digest scheme (RFC 7616), for proxies and origins: SHA-256, SHA-512-256 and MD5 and
//! their `-sess` forms, `qop=auth`, stateless nonces that every instance holding the key
//! verifies, and replay protection.
//!
//! - **Challenge**, one per offered algorithm, in the configured order (RFC 7616 §3.7: most
//!   preferred first): `Digest realm="…", qop="auth", algorithm=SHA-256, nonce="…",
//!   charset=UTF-8`, with `userhash=true` when the secrets source can look users up by
//!   userhash, and `stale=true` when the client's nonce was authentic but expired (§3.3). Each
//!   rejection gets fresh nonces.
//! - **Credentials** checked strictly ([`response`] module): the realm must be the layer's,
//!   the algorithm one offered, `uri` the request-target (else 400), `nc` and `cnonce`
//!   present, `response` compared in constant time.
//! - **Nonces** ([`NonceKey`]) carry their issue time and are authenticated by an HMAC under
//!   the key: an altered or forged one is refused (and counted as a failure); an authentic one
//!   past its lifetime whose response is otherwise right gets a fresh nonce and `stale=true`.
//!   Nonces issued or verified lately are remembered by their exact text (1,024 slots, 104 KiB
//!   per layer), so the requests that follow with the same nonce skip its decoding and HMAC.
//! - **Replays**: each (nonce, nc) is accepted once ([`ReplayStore`]; counts may arrive out of
//!   order within a window of 128). With a store shared by several instances (for example
//!   on Redis, `shared::redis` with the cargo feature `redis`), any instance takes any nonce;
//!   while that store cannot be reached, each instance issues nonces of its own and tracks
//!   them in its memory ([`ReplayStore::is_available`]), and a nonce whose count cannot be
//!   checked is never accepted.
//! - **On success**: `Proxy-Authentication-Info` (origin: `Authentication-Info`) with
//!   `rspauth`, `qop`, `cnonce` and `nc` (§3.5).
//! - **Not offered**: `qop=auth-int` (integrity of the body: the layer never reads bodies),
//!   and the RFC 2069 form without `qop`.
//!
//! Its validator kind is a secret lookup, `validator::DigestSecrets`: `StaticUsers`, an
//! `Htdigest` file, or a closure. An unknown user costs the same hashing as a known user with a
//! wrong response.

mod algorithm;
mod nonce;
mod replay;
pub mod response;
mod secret;

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::HeaderValue;
use subtle::ConstantTimeEq;

use algorithm::Digits;
pub use algorithm::{Algorithm, HashFunction, Hex, UnknownAlgorithm};
pub use nonce::{NonceId, NonceKey, NonceKeyError, DEFAULT_NONCE_LIFETIME, MIN_KEY_BYTES};
pub use replay::{MemoryReplayStore, ReplayStore, ReplayVerdict, DEFAULT_REPLAY_CAPACITY};
pub use secret::{DigestQuery, DigestSecret, DigestUser, Secret};

use super::{AttemptKey, Scheme, Setup, Verdict};
use crate::outcome::{Answer, ValidatorError};
use crate::secret::ct_eq_bytes;
use crate::syntax::{field_value, push_quoted, ChallengeBuilder, Credentials, CredentialsData};
use nonce::{NonceCheck, Nonces, Tracked};
use response::{names_request_target, DigestResponse};

/// The algorithms offered by default, in challenge order: SHA-256, then MD5.
///
/// SHA-256 first because it is the stronger and RFC 7616 §3.7 asks for the most preferred
/// first; curl and Chromium take the first Digest challenge they can use, and the JDK picks
/// the strongest. MD5 second for the clients that know nothing else; a client that reads only
/// the first challenge and knows only MD5 (Python's `urllib`) needs `[Algorithm::Md5]` first.
pub const DEFAULT_ALGORITHMS: [Algorithm; 2] = [Algorithm::Sha256, Algorithm::Md5];

/// The Digest scheme. Offer it with a validator that looks up secrets
/// (`validator::DigestSecrets`):
///
/// ```
/// use std::time::Duration;
/// use tower_proxy_auth::scheme::digest::{Algorithm, Digest, NonceKey};
/// use tower_proxy_auth::scheme::Basic;
/// use tower_proxy_auth::{ProxyAuthLayer, StaticUsers};
///
/// let users = StaticUsers::new().with_user("alice", "s3cret");
/// let layer = ProxyAuthLayer::offering(
///         Digest::new()
///             .algorithms([Algorithm::Sha256, Algorithm::Md5])
///             .nonce_key(NonceKey::from_bytes(b"a key shared by every instance")?)
///             .nonce_lifetime(Duration::from_secs(600)),
///         users.clone(),
///     )
///     .offer(Basic::new(), users)
///     .build()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Digest {
    algorithms: Vec<Algorithm>,
    key: Option<NonceKey>,
    lifetime: Duration,
    replay: Option<Arc<dyn ReplayStore>>,
    /// Where the counts of nonces naming this instance are kept: the replay store itself when
    /// it is local, this process's memory when it is shared (for nonces issued while it could
    /// not be reached).
    here: Option<Arc<dyn ReplayStore>>,
    userhash: bool,
    realm: Arc<str>,
    nonces: Option<Arc<Nonces>>,
}

impl Digest {
    /// Digest with [`DEFAULT_ALGORITHMS`], a random nonce key (nonces valid in this process),
    /// [`DEFAULT_NONCE_LIFETIME`] and a [`MemoryReplayStore`] of [`DEFAULT_REPLAY_CAPACITY`].
    pub fn new() -> Self {
        Self {
            algorithms: DEFAULT_ALGORITHMS.to_vec(),
            key: None,
            lifetime: DEFAULT_NONCE_LIFETIME,
            replay: None,
            here: None,
            userhash: false,
            realm: Arc::from(""),
            nonces: None,
        }
    }

    /// The algorithms to offer, one challenge each, in this order (duplicates dropped). Those
    /// the secrets source cannot serve are left out when the layer is built (an htdigest file
    /// serves MD5 only); none left is a build error.
    pub fn algorithms(mut self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        let mut list: Vec<Algorithm> = Vec::new();
        for a in algorithms {
            if !list.contains(&a) {
                list.push(a);
            }
        }
        self.algorithms = list;
        self
    }

    /// The key nonces are authenticated with; instances sharing it accept each other's
    /// nonces. Default: a random key per process.
    pub fn nonce_key(mut self, key: NonceKey) -> Self {
        self.key = Some(key);
        self
    }

    /// How long a nonce is valid (default [`DEFAULT_NONCE_LIFETIME`]); then the client gets a
    /// fresh one with `stale=true`. At least one second.
    pub fn nonce_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime.max(Duration::from_secs(1));
        self
    }

    /// Where nonce counts are kept (default: a [`MemoryReplayStore`]). A store shared by
    /// several instances ([`ReplayStore::is_shared`]) lets any of them take any nonce.
    pub fn replay_store(mut self, store: impl ReplayStore) -> Self {
        self.replay = Some(Arc::new(store));
        self
    }

    /// The algorithms offered, in order.
    pub fn offered(&self) -> &[Algorithm] {
        &self.algorithms
    }

    /// Leaves out the algorithms whose hash `serves` says no to; for a secrets source that
    /// holds HA1s of one hash only. Called by the validator binding when the layer is built.
    pub fn restrict_to(&mut self, serves: impl Fn(HashFunction) -> bool) {
        self.algorithms.retain(|a| serves(a.hash()));
    }

    /// Offers `userhash=true` (RFC 7616 §3.4.4) in the challenges; for a secrets source that
    /// can look users up by userhash. Called by the validator binding when the layer is built.
    pub fn offer_userhash(&mut self, userhash: bool) {
        self.userhash = userhash;
    }

    fn nonces(&self) -> Option<&Nonces> {
        self.nonces.as_deref()
    }

    fn replay(&self) -> Option<&Arc<dyn ReplayStore>> {
        self.replay.as_ref()
    }
}

impl Default for Digest {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Digest")
            .field("algorithms", &self.algorithms)
            .field("lifetime", &self.lifetime)
            .field("userhash", &self.userhash)
            .finish_non_exhaustive()
    }
}

/// A Digest attempt: the checked credentials, what the nonce check found, and the question for
/// the secrets source.
pub struct DigestAttempt {
    response: DigestResponse,
    method: http::Method,
    nonce: NonceCheck,
    query: DigestQuery,
}

impl fmt::Debug for DigestAttempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DigestAttempt")
            .field("query", &self.query)
            .finish_non_exhaustive()
    }
}

impl Scheme for Digest {
    type Question = DigestQuery;
    type Reply = Result<Option<DigestSecret>, ValidatorError>;
    type Attempt = DigestAttempt;

    fn name(&self) -> &'static str {
        "Digest"
    }

    fn configure(&mut self, setup: &Setup<'_>) -> Result<(), String> {
        if self.algorithms.is_empty() {
            return Err(
                "no algorithm to offer (the secrets source serves none of those asked for)"
                    .to_owned(),
            );
        }
        self.realm = Arc::from(setup.realm.as_str());
        let key = match self.key.take() {
            Some(key) => key,
            None => NonceKey::random().map_err(|e| e.to_string())?,
        };
        let replay = self.replay.take().unwrap_or_else(|| {
            Arc::new(MemoryReplayStore::new(
                DEFAULT_REPLAY_CAPACITY,
                self.lifetime,
            ))
        });
        let shared = replay.is_shared();
        let nonces =
            Nonces::new(key, &self.realm, self.lifetime, shared).map_err(|e| e.to_string())?;
        self.here = Some(if shared {
            Arc::new(MemoryReplayStore::new(
                DEFAULT_REPLAY_CAPACITY,
                self.lifetime,
            ))
        } else {
            replay.clone()
        });
        self.replay = Some(replay);
        self.nonces = Some(Arc::new(nonces));
        Ok(())
    }

    fn prepare(
        &self,
        credentials: &Credentials<'_>,
        request: &Parts,
    ) -> Result<DigestAttempt, Verdict> {
        let CredentialsData::Params(params) = credentials.data() else {
            return Err(Verdict::Malformed("digest_not_params"));
        };
        let (response, user) = DigestResponse::parse(params).map_err(|(label, bad_request)| {
            if bad_request {
                Verdict::BadRequest(label)
            } else {
                Verdict::Malformed(label)
            }
        })?;
        if response.realm() != self.realm.as_bytes() {
            return Err(Verdict::Malformed("digest_realm_mismatch"));
        }
        if !self.algorithms.contains(&response.algorithm) {
            return Err(Verdict::Malformed("digest_algorithm_not_offered"));
        }
        if !names_request_target(response.uri(), request) {
            return Err(Verdict::BadRequest("digest_uri_mismatch"));
        }
        let Some(nonces) = self.nonces() else {
            return Err(Verdict::Unavailable(ValidatorError::new(
                "Digest used before the layer was built",
            )));
        };
        let nonce = nonces.check(response.nonce());
        if nonce == NonceCheck::Invalid {
            // Forged or altered: a failure, counted, with fresh challenges (no `stale`).
            return Err(Verdict::Reject);
        }
        let query = DigestQuery {
            user,
            realm: self.realm.clone(),
            algorithm: response.algorithm,
        };
        Ok(DigestAttempt {
            response,
            method: request.method.clone(),
            nonce,
            query,
        })
    }

    fn question<'a>(&self, attempt: &'a DigestAttempt) -> &'a DigestQuery {
        &attempt.query
    }

    fn attempt_key<'a>(&self, attempt: &'a DigestAttempt) -> AttemptKey<'a> {
        // Every Digest response differs (a new nc or cnonce), so there is no repeated
        // credential to recognise: the throttle counts by user and address.
        AttemptKey::user(attempt.query.user.as_bytes())
    }

    fn conclude(&self, attempt: &DigestAttempt, reply: Self::Reply) -> Answer<Verdict> {
        let found = match reply {
            Ok(found) => found,
            Err(error) => return Answer::Ready(Verdict::Unavailable(error)),
        };
        let r = &attempt.response;
        let user = &attempt.query.user;
        let hash = r.algorithm.hash();
        // The user's HA1, or a stand-in computed the same way, so that an unknown user costs
        // what a known one with a wrong response does.
        let (ha1, identity) = match &found {
            Some(secret) => {
                let name: &[u8] = match user {
                    DigestUser::Name(name) => name,
                    DigestUser::Hash(_) => secret.identity.user().as_bytes(),
                };
                match secret.secret.ha1_for(hash, name, r.realm()) {
                    Some(ha1) => (ha1, Some(secret.identity.clone())),
                    None => (
                        Cow::Owned(hash.hex(&[name, r.realm(), b"\0no secret\0"])),
                        None,
                    ),
                }
            }
            None => (
                Cow::Owned(hash.hex(&[user.as_bytes(), r.realm(), b"\0no such user\0"])),
                None,
            ),
        };
        let ha1 = session_ha1(r.algorithm, ha1, r.nonce(), r.cnonce());
        // Only an accepted response gets `rspauth`: right, with a fresh nonce.
        let fresh = matches!(attempt.nonce, NonceCheck::Fresh(..));
        let known = u8::from(identity.is_some()).ct_eq(&1);
        let method = attempt.method.as_str().as_bytes();
        let (right, rspauth) = match hash {
            HashFunction::Md5 => check::<md5::Md5>(&ha1, r, method, known, fresh),
            HashFunction::Sha256 => check::<sha2::Sha256>(&ha1, r, method, known, fresh),
            HashFunction::Sha512_256 => check::<sha2::Sha512_256>(&ha1, r, method, known, fresh),
        };
        drop(ha1);
        let Some(identity) = identity.filter(|_| right) else {
            return Answer::Ready(Verdict::Reject);
        };
        let (id, tracked, rspauth) = match (attempt.nonce, rspauth) {
            (NonceCheck::Fresh(id, tracked), Some(rspauth)) => (id, tracked, rspauth),
            // Right response, old or foreign nonce: a fresh one, without asking the user.
            (NonceCheck::Expired(_) | NonceCheck::Foreign(_), _) => {
                return Answer::Ready(Verdict::Stale)
            }
            // An invalid nonce (a fresh one always has its `rspauth` here).
            _ => return Answer::Ready(Verdict::Reject),
        };
        let info = authentication_info(rspauth.as_bytes(), r.cnonce(), r.nc_text());
        let store = match tracked {
            Tracked::Shared => self.replay(),
            Tracked::Here => self.here.as_ref(),
        };
        let Some(store) = store else {
            return Answer::Ready(Verdict::Unavailable(ValidatorError::new(
                "Digest used before the layer was built",
            )));
        };
        let lifetime = self
            .nonces()
            .map_or(DEFAULT_NONCE_LIFETIME, Nonces::lifetime);
        // After an error, only a shared store is asked whether it is in reach. Its answer may
        // come later, so that answer holds its own `Arc`; this instance's own store is only
        // borrowed, with no reference count taken per accepted request.
        let shared = (tracked == Tracked::Shared).then(|| Arc::clone(store));
        store
            .record(&id, r.nc, lifetime)
            .map(move |verdict| match verdict {
                Ok(ReplayVerdict::Fresh) => Verdict::Allow {
                    identity,
                    info: Some(info),
                },
                Ok(ReplayVerdict::Forgotten) => Verdict::Stale,
                Ok(_) => Verdict::Reject,
                // The count could not be checked: never accepted. When the shared store is
                // out of reach, the next nonce is this instance's own: `stale=true` lets the
                // client retry with it without asking the user.
                Err(_) if shared.as_ref().is_some_and(|store| !store.is_available()) => {
                    Verdict::Stale
                }
                Err(error) => Verdict::Unavailable(error),
            })
    }

    fn challenges(&self, stale: bool, out: &mut Vec<HeaderValue>) {
        let Some(nonces) = self.nonces() else {
            return;
        };
        // A shared store out of reach: nonces this instance can track on its own.
        let here = self.replay().is_some_and(|store| !store.is_available());
        for algorithm in &self.algorithms {
            let mut challenge = ChallengeBuilder::new("Digest")
                .quoted("realm", self.realm.as_bytes())
                .quoted("qop", "auth")
                .token("algorithm", algorithm.as_str())
                .quoted("nonce", nonces.issue(here))
                .token("charset", "UTF-8");
            if self.userhash {
                challenge = challenge.token("userhash", "true");
            }
            if stale {
                challenge = challenge.token("stale", "true");
            }
            out.push(challenge.finish());
        }
    }
}

/// `Proxy-Authentication-Info` / `Authentication-Info` on success (RFC 7616 §3.5):
/// `rspauth="…", qop=auth, cnonce="…", nc=…`, written into one allocation of the exact
/// length (unless the cnonce needs escaping). Written directly rather than through
/// [`ChallengeBuilder`]: `rspauth` is hex digits and `nc` eight checked hex digits, so only the
/// cnonce can need quoted-pairs, and this is on the path of every accepted request.
fn authentication_info(rspauth: &[u8], cnonce: &[u8], nc: &[u8]) -> HeaderValue {
    const FIXED: usize = r#"rspauth="", qop=auth, cnonce="", nc="#.len();
    let mut out = Vec::with_capacity(FIXED + rspauth.len() + cnonce.len() + nc.len());
    out.extend_from_slice(b"rspauth=\"");
    out.extend_from_slice(rspauth);
    out.extend_from_slice(b"\", qop=auth, cnonce=");
    push_quoted(&mut out, cnonce);
    out.extend_from_slice(b", nc=");
    out.extend_from_slice(nc);
    field_value(out)
}

/// The HA1 of an algorithm: as stored for the plain forms; for `-sess`,
/// `H(HA1 ":" nonce ":" cnonce)` (RFC 7616 §3.4.2).
fn session_ha1<'a>(
    algorithm: Algorithm,
    ha1: Cow<'a, Hex>,
    nonce: &[u8],
    cnonce: &[u8],
) -> Cow<'a, Hex> {
    if algorithm.is_session() {
        Cow::Owned(algorithm.hash().hex(&[ha1.as_bytes(), nonce, cnonce]))
    } else {
        ha1
    }
}

/// Whether `response` is right (compared in constant time, and only for a `known` user), and
/// when it is and the nonce is `fresh`, the `rspauth` to send (RFC 7616 §3.5). Generic over the
/// hash so that each algorithm's state is hashed and copied at its own size, with no dispatch
/// per update.
fn check<D: sha2::Digest + Clone>(
    ha1: &Hex,
    r: &DigestResponse,
    method: &[u8],
    known: subtle::Choice,
    fresh: bool,
) -> (bool, Option<Digits>) {
    let responses = Responses::<D>::start(ha1, r.nonce(), r.nc_text(), r.cnonce());
    let expected = responses.finish(method, r.uri());
    let right = bool::from(ct_eq_bytes(expected.as_bytes(), r.response()) & known);
    // `rspauth` is the response with an empty method.
    let rspauth = (right && fresh).then(|| responses.finish(b"", r.uri()));
    (right, rspauth)
}

/// `response` for `qop=auth` (RFC 7616 §3.4.1):
/// `H(HA1 ":" nonce ":" nc ":" cnonce ":" "auth" ":" H(method ":" uri))`.
#[cfg(test)]
fn response_hex(
    hash: HashFunction,
    ha1: &Hex,
    nonce: &[u8],
    nc: &[u8],
    cnonce: &[u8],
    method: &[u8],
    uri: &[u8],
) -> Digits {
    fn of<D: sha2::Digest + Clone>(
        ha1: &Hex,
        [nonce, nc, cnonce, method, uri]: [&[u8]; 5],
    ) -> Digits {
        Responses::<D>::start(ha1, nonce, nc, cnonce).finish(method, uri)
    }
    let parts = [nonce, nc, cnonce, method, uri];
    match hash {
        HashFunction::Md5 => of::<md5::Md5>(ha1, parts),
        HashFunction::Sha256 => of::<sha2::Sha256>(ha1, parts),
        HashFunction::Sha512_256 => of::<sha2::Sha512_256>(ha1, parts),
    }
}

/// The part of `response` that does not depend on the method, hashed once with `D`: the
/// response to check and its `rspauth` (the same with an empty method, RFC 7616 §3.5) finish
/// it apart.
struct Responses<D>(D);

impl<D: sha2::Digest + Clone> Responses<D> {
    /// `H(HA1 ":" nonce ":" nc ":" cnonce ":" "auth" ":"` so far.
    fn start(ha1: &Hex, nonce: &[u8], nc: &[u8], cnonce: &[u8]) -> Self {
        let mut d = D::new();
        for part in [ha1.as_bytes(), nonce, nc, cnonce, b"auth"] {
            d.update(part);
            d.update(b":");
        }
        Self(d)
    }

    /// The response for `method` and `uri`: the prefix, then `H(method ":" uri)` in hex.
    fn finish(&self, method: &[u8], uri: &[u8]) -> Digits {
        let mut ha2 = D::new();
        ha2.update(method);
        ha2.update(b":");
        ha2.update(uri);
        let ha2 = Digits::of(&ha2.finalize());
        let mut d = self.0.clone();
        d.update(ha2.as_bytes());
        Digits::of(&d.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1's nonce and cnonce.
    const NONCE: &[u8] = b"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const CNONCE: &[u8] = b"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn response(
        algorithm: Algorithm,
        user: &[u8],
        realm: &[u8],
        password: &[u8],
        nonce: &[u8],
        cnonce: &[u8],
        uri: &[u8],
    ) -> String {
        let hash = algorithm.hash();
        let secret = Secret::password(password);
        let ha1 = secret.ha1_for(hash, user, realm).unwrap();
        let ha1 = session_ha1(algorithm, ha1, nonce, cnonce);
        let hex = response_hex(hash, &ha1, nonce, b"00000001", cnonce, b"GET", uri);
        String::from_utf8(hex.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn authentication_info_is_as_long_as_the_room_reserved_for_it() {
        let info = authentication_info(b"0123abcd", b"0a4f113b", b"00000001");
        assert_eq!(
            info,
            r#"rspauth="0123abcd", qop=auth, cnonce="0a4f113b", nc=00000001"#
        );
        assert_eq!(info.len(), 36 + 8 + 8 + 8);
        // A cnonce with a quote is escaped (one byte longer than reserved: still right).
        let info = authentication_info(b"ab", b"x\"y", b"00000002");
        assert_eq!(
            info,
            r#"rspauth="ab", qop=auth, cnonce="x\"y", nc=00000002"#
        );
    }

    #[test]
    fn rfc_7616_and_rfc_2617_vectors() {
        let mufasa = |a| {
            response(
                a,
                b"Mufasa",
                b"http-auth@example.org",
                b"Circle of Life",
                NONCE,
                CNONCE,
                b"/dir/index.html",
            )
        };
        // RFC 7616 §3.9.1.
        assert_eq!(
            mufasa(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert_eq!(mufasa(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
        // RFC 2617 §3.5 (password "Circle Of Life", capital O).
        assert_eq!(
            response(
                Algorithm::Md5,
                b"Mufasa",
                b"testrealm@host.com",
                b"Circle Of Life",
                b"dcd98b7102dd2f0e8b11d0f600bfb0c093",
                b"0a4f113b",
                b"/dir/index.html"
            ),
            "6629fae49393a05397450978507c4ef1"
        );
    }

    #[test]
    fn hand_checked_vectors_for_sess_sha512_256_and_userhash() {
        // Computed with Python's hashlib (OpenSSL), an implementation independent of this one:
        // hashlib.new('sha512_256', ...) is FIPS SHA-512/256.
        let mufasa = |a| {
            response(
                a,
                b"Mufasa",
                b"http-auth@example.org",
                b"Circle of Life",
                NONCE,
                CNONCE,
                b"/dir/index.html",
            )
        };
        assert_eq!(
            mufasa(Algorithm::Sha512_256),
            "430d05014cecc49cab6fbe03176d41a1da86cbfe24a16580e22aaad928d960d0"
        );
        assert_eq!(
            mufasa(Algorithm::Md5Sess),
            "e783283f46242139c486a698fec7211d"
        );
        assert_eq!(
            mufasa(Algorithm::Sha256Sess),
            "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7"
        );
        assert_eq!(
            mufasa(Algorithm::Sha512_256Sess),
            "3f2a34f923c38b0fb26dce2fdfc2ce326c23cecf86fbb1444f3e51fbbc2cb92e"
        );
        // RFC 7616 §3.9.2's user, "J\u{e4}s\u{f8}n Doe": its userhash and response. (The
        // values printed in §3.9.2 do not follow from its inputs: erratum 4897.)
        let user = "J\u{e4}s\u{f8}n Doe".as_bytes();
        assert_eq!(
            HashFunction::Sha512_256
                .hex(&[user, b"api@example.org"])
                .as_bytes(),
            b"793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
        );
        assert_eq!(
            response(
                Algorithm::Sha512_256,
                user,
                b"api@example.org",
                b"Secret, or not?",
                b"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",
                b"NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
                b"/doe.json"
            ),
            "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
        );
        // rspauth: the response with an empty method (RFC 7616 §3.5), RFC 2617's example.
        let hash = HashFunction::Md5;
        let secret = Secret::password("Circle Of Life");
        let ha1 = secret
            .ha1_for(hash, b"Mufasa", b"testrealm@host.com")
            .unwrap();
        let rspauth = response_hex(
            hash,
            &ha1,
            b"dcd98b7102dd2f0e8b11d0f600bfb0c093",
            b"00000001",
            b"0a4f113b",
            b"",
            b"/dir/index.html",
        );
        assert_eq!(rspauth.as_bytes(), b"376602cfd2f4e8e5e78b948a85263e85");
    }
}
