//! The parameters of Digest credentials (RFC 7616 §3.4), checked strictly.
//!
//! ```text
//! Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html",
//!        algorithm=SHA-256, nonce="…", nc=00000001, cnonce="…", qop=auth,
//!        response="…", opaque="…"
//! ```
//!
//! - The user is `username`, or `username*` (an RFC 8187 `UTF-8''percent%20encoded` value), or,
//!   with `userhash=true`, `username` holds `H(username ":" realm)` (§3.4.4). Both `username`
//!   and `username*`, or `username*` with `userhash=true`, are malformed.
//! - `realm`, `nonce`, `uri`, `response`, `cnonce`, `nc` and `qop` are required; `qop` must be
//!   `auth` (the layer never reads the body, so `auth-int` is not offered); `nc` is 8 hex
//!   digits and at least 1; `response` is hex of the algorithm's length. `algorithm` defaults
//!   to `MD5` (RFC 7616 §3.3). Other parameters (`opaque`, `charset`, extensions) are ignored.

use http::request::Parts;

use super::algorithm::Algorithm;
use super::secret::DigestUser;
use crate::syntax::{is_hex, AuthParams};

/// Parsed Digest credentials, owned (a lookup may answer after the request moved on): the
/// text parameters in one buffer (one allocation per request, not one per parameter).
#[derive(Clone)]
pub(crate) struct DigestResponse {
    pub(crate) algorithm: Algorithm,
    pub(crate) nc: u32,
    /// `realm`, `nonce`, `uri`, `response` (lowercased), `cnonce` and `nc` as sent, end to end.
    text: Vec<u8>,
    /// Where each of them ends in `text`.
    ends: [u16; 6],
}

/// The parameters read, by name (lowercase).
const NAMES: [&[u8]; 11] = [
    b"username",
    b"username*",
    b"userhash",
    b"realm",
    b"nonce",
    b"uri",
    b"response",
    b"algorithm",
    b"cnonce",
    b"nc",
    b"qop",
];

/// The slot of a parameter name in [`NAMES`], case-insensitively. The length and one letter
/// pick the only candidate, checked with one comparison that does not branch per byte (names
/// of one length, such as `username`, `userhash` and `response`, used to be compared in
/// turn, each stopping at its first difference: branches the processor could not predict).
fn slot_of(name: &[u8]) -> Option<usize> {
    let letter = |i: usize| name.get(i).map_or(0, |b| b | 0x20);
    let slot = match (name.len(), letter(0)) {
        (2, _) => NC_SLOT,
        (3, b'u') => URI_SLOT,
        (3, _) => QOP_SLOT,
        (5, b'r') => REALM_SLOT,
        (5, _) => NONCE_SLOT,
        (6, _) => CNONCE_SLOT,
        (8, b'r') => RESPONSE_SLOT,
        (8, _) if letter(4) == b'h' => USERHASH_SLOT,
        (8, _) => USERNAME_SLOT,
        (9, b'a') => ALGORITHM_SLOT,
        (9, _) => USERNAME_STAR_SLOT,
        _ => return None,
    };
    // Every name is lowercase letters and `*`; setting bit 0x20 lowercases a letter, and no
    // other token character becomes a letter or `*` by it.
    let want = NAMES[slot];
    let differ = name
        .iter()
        .zip(want)
        .fold(0u8, |differ, (&b, &w)| differ | ((b | 0x20) ^ w));
    (differ == 0).then_some(slot)
}

const USERNAME_SLOT: usize = 0;
const USERNAME_STAR_SLOT: usize = 1;
const USERHASH_SLOT: usize = 2;
const REALM_SLOT: usize = 3;
const NONCE_SLOT: usize = 4;
const URI_SLOT: usize = 5;
const RESPONSE_SLOT: usize = 6;
const ALGORITHM_SLOT: usize = 7;
const CNONCE_SLOT: usize = 8;
const NC_SLOT: usize = 9;
const QOP_SLOT: usize = 10;

const REALM: usize = 0;
const NONCE: usize = 1;
const URI: usize = 2;
const RESPONSE: usize = 3;
const CNONCE: usize = 4;
const NC: usize = 5;

impl DigestResponse {
    fn part(&self, n: usize) -> &[u8] {
        let start = if n == 0 {
            0
        } else {
            usize::from(self.ends[n - 1])
        };
        &self.text[start..usize::from(self.ends[n])]
    }

    /// `realm`.
    pub(crate) fn realm(&self) -> &[u8] {
        self.part(REALM)
    }

    /// `nonce`.
    pub(crate) fn nonce(&self) -> &[u8] {
        self.part(NONCE)
    }

    /// `uri`.
    pub(crate) fn uri(&self) -> &[u8] {
        self.part(URI)
    }

    /// `response`, lowercase hex.
    pub(crate) fn response(&self) -> &[u8] {
        self.part(RESPONSE)
    }

    /// `cnonce`.
    pub(crate) fn cnonce(&self) -> &[u8] {
        self.part(CNONCE)
    }

    /// `nc` as sent (it goes into the hash as text).
    pub(crate) fn nc_text(&self) -> &[u8] {
        self.part(NC)
    }
}

/// Why Digest credentials cannot be used: a stable label, and whether RFC 9110 makes it a 400
/// rather than a new challenge.
pub(crate) type Refusal = (&'static str, bool);

fn malformed(label: &'static str) -> Refusal {
    (label, false)
}

impl DigestResponse {
    /// Reads and checks the parameters: the credentials, and the user they name (which goes
    /// into the question for the secrets source).
    pub(crate) fn parse(params: &AuthParams<'_>) -> Result<(Self, DigestUser), Refusal> {
        // One pass over the list, each parameter to its slot (names are case-insensitive;
        // the syntax stage has refused a name given twice).
        let mut slots: [Option<&[u8]>; NAMES.len()] = [None; NAMES.len()];
        for param in params.iter() {
            if let Some(i) = slot_of(param.name_bytes()) {
                slots[i] = Some(param.value());
            }
        }
        let get = |slot: usize| slots[slot];
        let require = |slot, label| get(slot).ok_or(malformed(label));
        let userhash = match get(USERHASH_SLOT) {
            None => false,
            Some(v) if v.eq_ignore_ascii_case(b"true") => true,
            Some(v) if v.eq_ignore_ascii_case(b"false") => false,
            Some(_) => return Err(malformed("digest_userhash_invalid")),
        };
        let user = match (get(USERNAME_SLOT), get(USERNAME_STAR_SLOT)) {
            (Some(_), Some(_)) => return Err(malformed("digest_two_usernames")),
            (None, None) => return Err(malformed("digest_username_missing")),
            (None, Some(_)) if userhash => {
                return Err(malformed("digest_userhash_with_username_star"))
            }
            (None, Some(ext)) => DigestUser::Name(
                decode_ext_value(ext).ok_or(malformed("digest_username_star_invalid"))?,
            ),
            (Some(hash), None) if userhash => {
                if hash.is_empty() || !is_hex(hash) {
                    return Err(malformed("digest_userhash_invalid"));
                }
                DigestUser::Hash(String::from_utf8_lossy(hash).to_ascii_lowercase())
            }
            (Some(name), None) => DigestUser::Name(name.to_vec()),
        };
        let algorithm = match get(ALGORITHM_SLOT) {
            None => Algorithm::Md5,
            Some(token) => {
                Algorithm::from_token(token).ok_or(malformed("digest_algorithm_unknown"))?
            }
        };
        let qop = require(QOP_SLOT, "digest_qop_missing")?;
        if !qop.eq_ignore_ascii_case(b"auth") {
            return Err(malformed("digest_qop_not_auth"));
        }
        let nc_text = require(NC_SLOT, "digest_nc_missing")?;
        let nc = (nc_text.len() == 8 && is_hex(nc_text))
            .then(|| {
                nc_text.iter().fold(0u32, |n, &b| {
                    (n << 4) | char::from(b).to_digit(16).unwrap_or(0)
                })
            })
            .filter(|&n| n > 0)
            .ok_or(malformed("digest_nc_invalid"))?;
        let response = require(RESPONSE_SLOT, "digest_response_missing")?;
        if response.len() != algorithm.hash().hex_len() || !is_hex(response) {
            return Err(malformed("digest_response_invalid"));
        }
        let cnonce = require(CNONCE_SLOT, "digest_cnonce_missing")?;
        if cnonce.is_empty() {
            return Err(malformed("digest_cnonce_missing"));
        }
        let parts = [
            require(REALM_SLOT, "digest_realm_missing")?,
            require(NONCE_SLOT, "digest_nonce_missing")?,
            require(URI_SLOT, "digest_uri_missing")?,
            response,
            cnonce,
            nc_text,
        ];
        let total: usize = parts.iter().map(|p| p.len()).sum();
        // (The credentials field is at most 64 KiB by default; a larger one set by the user
        // could overflow the 16-bit offsets: refused rather than truncated.)
        if total > usize::from(u16::MAX) {
            return Err(malformed("digest_params_too_long"));
        }
        let mut text = Vec::with_capacity(total);
        let mut ends = [0u16; 6];
        for (n, part) in parts.iter().enumerate() {
            text.extend_from_slice(part);
            ends[n] = text.len() as u16;
        }
        let start = usize::from(ends[RESPONSE - 1]);
        // Lowercase: every byte is a hex digit (checked above), and setting bit 0x20 maps
        // `A`-`F` to `a`-`f` and leaves `0`-`9` as they are; no branch on the random digits.
        for b in &mut text[start..usize::from(ends[RESPONSE])] {
            *b |= 0x20;
        }
        Ok((
            Self {
                algorithm,
                nc,
                text,
                ends,
            },
            user,
        ))
    }
}

/// Whether `uri` names the request-target of `request` (RFC 7616 §3.4.6: "the digest-uri ...
/// MUST be the same as the request-target"): for CONNECT exactly the authority `host:port`;
/// for an absolute-form target (a proxied request) the absolute URI or, as curl and Chromium
/// send it, its path and query; for an origin-form target its path and query.
pub(crate) fn names_request_target(uri: &[u8], request: &Parts) -> bool {
    let target = &request.uri;
    if request.method == http::Method::CONNECT {
        return target
            .authority()
            .is_some_and(|a| a.as_str().as_bytes() == uri);
    }
    let path_and_query = target
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .as_bytes();
    if uri == path_and_query {
        return true;
    }
    if target.scheme().is_some() {
        if let Ok(sent) = http::Uri::try_from(uri) {
            return sent.scheme() == target.scheme()
                && sent.authority() == target.authority()
                && sent.path_and_query().map(|p| p.as_str())
                    == target.path_and_query().map(|p| p.as_str());
        }
    }
    false
}

/// An RFC 8187 `ext-value` as `username*` carries it: `UTF-8'[language]'percent-encoded`.
/// Only the UTF-8 charset is accepted (RFC 7616 §3.4 requires it); the result must be UTF-8.
fn decode_ext_value(value: &[u8]) -> Option<Vec<u8>> {
    let mut parts = value.splitn(3, |&b| b == b'\'');
    let charset = parts.next()?;
    let _language = parts.next()?;
    let encoded = parts.next()?;
    if !charset.eq_ignore_ascii_case(b"UTF-8") {
        return None;
    }
    let mut out = Vec::with_capacity(encoded.len());
    let mut i = 0;
    while i < encoded.len() {
        match encoded[i] {
            b'%' => {
                let hex = encoded.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 3;
            }
            b if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    std::str::from_utf8(&out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<(DigestResponse, DigestUser), Refusal> {
        DigestResponse::parse(&AuthParams::parse(text.as_bytes()).unwrap())
    }

    const GOOD: &str = r#"username="Mufasa", realm="r", nonce="n", uri="/", response="8ca523f5e9506fed4657c9700eebdbec", nc=00000001, cnonce="c", qop=auth"#;

    #[test]
    fn every_name_finds_its_own_slot_in_any_case() {
        for (i, name) in NAMES.iter().enumerate() {
            assert_eq!(slot_of(name), Some(i));
            assert_eq!(slot_of(&name.to_ascii_uppercase()), Some(i));
        }
        assert_eq!(slot_of(b"UserHash"), Some(USERHASH_SLOT));
        assert_eq!(slot_of(b"uSERNAME*"), Some(USERNAME_STAR_SLOT));
        for other in [
            &b"opaque"[..],
            b"charset",
            b"",
            b"user",
            b"usernames",
            b"n",
            b"uzername",
            b"username_",
            b"userhasx",
            b"rEsponsE2",
            b"xc",
            b"nonc^",
            b"qo_",
        ] {
            assert_eq!(slot_of(other), None);
        }
    }

    #[test]
    fn a_complete_response_parses() {
        let (r, user) = parse(GOOD).unwrap();
        assert_eq!(user, DigestUser::Name(b"Mufasa".to_vec()));
        assert_eq!((r.algorithm, r.nc), (Algorithm::Md5, 1));
        let (r, _) = parse(&GOOD.replace("nc=00000001", "nc=0000000A")).unwrap();
        assert_eq!(r.response(), b"8ca523f5e9506fed4657c9700eebdbec");
        let upper = GOOD.replace(
            "8ca523f5e9506fed4657c9700eebdbec",
            "8CA523F5E9506FED4657C9700EEBDBEC",
        );
        assert_eq!(
            parse(&upper).unwrap().0.response(),
            b"8ca523f5e9506fed4657c9700eebdbec"
        );
        assert_eq!((r.nc, r.nc_text()), (10, &b"0000000A"[..]));
    }

    #[test]
    fn username_star_is_rfc_8187() {
        let (_, user) = parse(&GOOD.replace(
            r#"username="Mufasa""#,
            "username*=UTF-8''J%C3%A4s%C3%B8n%20Doe",
        ))
        .unwrap();
        assert_eq!(user, DigestUser::Name("Jäsøn Doe".as_bytes().to_vec()));
        for bad in [
            "ISO-8859-1''x",
            "UTF-8'x",
            "UTF-8''%C3",
            "UTF-8''%zz",
            "UTF-8''a b",
            "UTF-8''%FF",
        ] {
            let text = GOOD.replace(r#"username="Mufasa""#, &format!("username*=\"{bad}\""));
            assert_eq!(
                parse(&text).err(),
                Some(malformed("digest_username_star_invalid")),
                "{bad}"
            );
        }
    }

    #[test]
    fn each_rule_broken() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"username="Mufasa", "#, "", "digest_username_missing"),
            ("qop=auth", "qop=auth-int", "digest_qop_not_auth"),
            (", qop=auth", "", "digest_qop_missing"),
            ("nc=00000001", "nc=1", "digest_nc_invalid"),
            ("nc=00000001", "nc=00000000", "digest_nc_invalid"),
            ("nc=00000001", "nc=0000000g", "digest_nc_invalid"),
            (
                r#"response="8ca523f5e9506fed4657c9700eebdbec""#,
                r#"response="8ca5""#,
                "digest_response_invalid",
            ),
            (r#"cnonce="c""#, r#"cnonce="""#, "digest_cnonce_missing"),
            (r#"uri="/", "#, "", "digest_uri_missing"),
            (
                "qop=auth",
                "qop=auth, algorithm=SHA-1",
                "digest_algorithm_unknown",
            ),
            (
                "qop=auth",
                "qop=auth, userhash=maybe",
                "digest_userhash_invalid",
            ),
            (
                "qop=auth",
                "qop=auth, username*=UTF-8''x",
                "digest_two_usernames",
            ),
        ];
        for (from, to, want) in cases {
            let text = GOOD.replace(from, to);
            assert_eq!(parse(&text).err().map(|r| r.0), Some(*want), "{text}");
        }
        // A SHA-256 response must be 64 digits.
        let text = GOOD.replace("qop=auth", "qop=auth, algorithm=SHA-256");
        assert_eq!(
            parse(&text).err().map(|r| r.0),
            Some("digest_response_invalid")
        );
    }

    #[test]
    fn uri_must_name_the_request_target() {
        let parts = |method: &str, target: &str| {
            http::Request::builder()
                .method(method)
                .uri(target)
                .body(())
                .unwrap()
                .into_parts()
                .0
        };
        let get = parts("GET", "http://origin.test:8080/a/b?q=1");
        assert!(names_request_target(b"/a/b?q=1", &get));
        assert!(names_request_target(
            b"http://origin.test:8080/a/b?q=1",
            &get
        ));
        assert!(names_request_target(
            b"http://ORIGIN.test:8080/a/b?q=1",
            &get
        ));
        assert!(!names_request_target(b"/a/b", &get));
        assert!(!names_request_target(
            b"http://other.test:8080/a/b?q=1",
            &get
        ));
        assert!(!names_request_target(b"/", &get));
        let connect = parts("CONNECT", "origin.test:443");
        assert!(names_request_target(b"origin.test:443", &connect));
        assert!(!names_request_target(b"/", &connect));
        assert!(!names_request_target(b"origin.test", &connect));
        let origin = parts("GET", "/dir/index.html");
        assert!(names_request_target(b"/dir/index.html", &origin));
        assert!(!names_request_target(b"http://x/dir/index.html", &origin));
    }
}
