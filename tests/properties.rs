//! Property tests (proptest) of the credentials parser, the challenge and the layer.
//!
//! The same invariants as the fuzz targets in `fuzz/`, checked on every `cargo test` with
//! proptest's default 256 cases each: encoding round-trips, no input makes `parse` panic, a
//! realm is accepted exactly when it holds no control character and its challenge reads back,
//! and the layer answers 200 only for exactly the right credentials.

mod support;

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use http::header::{HeaderName, HeaderValue, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION};
use http::{Request, Response, StatusCode};
use proptest::prelude::*;
use tower::Layer as _;
use tower::Service as _;
use tower_proxy_auth::syntax::{parse_credentials, AuthParams, CredentialsData};
use tower_proxy_auth::{
    BasicCredentials, CredentialsError, Identity, ProxyAuthLayer, Realm, StaticUsers,
};

fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// A user-id as RFC 7617 allows it: any text without `:` and control characters.
fn user_id() -> impl Strategy<Value = String> {
    prop_oneof!["[^:\\x00-\\x1f\\x7f]{0,24}", "[a-zA-Z0-9._@%+-]{0,16}",]
}

/// A password: any bytes but control characters (often not UTF-8).
fn password() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(prop_oneof![0x20u8..0x7f, 0x80u8..=0xff], 0..40),
        "[^\\x00-\\x1f\\x7f]{0,24}".prop_map(String::into_bytes),
    ]
}

/// `basic` with each letter's case chosen by `upper`.
fn scheme_with_case(upper: &[bool]) -> String {
    "basic"
        .chars()
        .zip(upper)
        .map(|(c, &u)| if u { c.to_ascii_uppercase() } else { c })
        .collect()
}

/// The invariants of anything `parse` accepts.
fn check_accepted(creds: &BasicCredentials) -> Result<(), TestCaseError> {
    prop_assert!(!creds.user_id().contains(':'));
    prop_assert!(!creds.user_id().bytes().any(is_ctl));
    prop_assert!(!creds.password().iter().copied().any(is_ctl));
    let back = BasicCredentials::parse(creds.encode().as_bytes())?;
    prop_assert_eq!(back.user_id(), creds.user_id());
    prop_assert_eq!(back.password(), creds.password());
    Ok(())
}

proptest! {
    #[test]
    fn encode_parses_back_with_any_scheme_case_and_spacing(
        user in user_id(),
        pass in password(),
        upper in proptest::collection::vec(any::<bool>(), 5),
        spaces in 1usize..8,
        lead in "[ \t]{0,3}",
        trail in "[ \t]{0,3}",
        unpadded in any::<bool>(),
    ) {
        let creds = BasicCredentials::new(&user, &pass)?;
        prop_assert_eq!(creds.user_id(), user.as_str());
        prop_assert_eq!(creds.password(), pass.as_slice());
        let encoded = creds.encode();
        prop_assert_eq!(&encoded, &support::basic(&user, &pass));
        let back = BasicCredentials::parse(encoded.as_bytes())?;
        prop_assert_eq!(back.user_id(), user.as_str());
        prop_assert_eq!(back.password(), pass.as_slice());

        let mut token = encoded["Basic ".len()..].to_owned();
        if unpadded {
            token.truncate(token.trim_end_matches('=').len());
        }
        let value = format!("{lead}{}{}{token}{trail}", scheme_with_case(&upper), " ".repeat(spaces));
        let back = BasicCredentials::parse(value.as_bytes())?;
        prop_assert_eq!(back.user_id(), user.as_str());
        prop_assert_eq!(back.password(), pass.as_slice());
    }

    #[test]
    fn new_accepts_exactly_the_allowed_pairs(user in ".{0,12}", pass in any::<Vec<u8>>()) {
        let allowed = !user.bytes().any(|b| b == b':' || is_ctl(b))
            && !pass.iter().copied().any(is_ctl);
        let made = BasicCredentials::new(&user, &pass);
        prop_assert_eq!(made.is_ok(), allowed);
        if let Ok(creds) = made {
            check_accepted(&creds)?;
        }
    }

    #[test]
    fn parse_never_panics_on_any_bytes(value in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(creds) = BasicCredentials::parse(&value) {
            check_accepted(&creds)?;
        }
    }

    #[test]
    fn parse_never_panics_on_any_decoded_bytes(
        scheme in "(?i:basic)",
        decoded in proptest::collection::vec(any::<u8>(), 0..96),
        suffix in "(|=|==|,|, Basic x| x)",
    ) {
        let value = format!("{scheme} {}{suffix}", support::base64_encode(&decoded));
        match BasicCredentials::parse(value.as_bytes()) {
            Ok(creds) => {
                check_accepted(&creds)?;
                prop_assert_eq!(suffix.as_str(), "");
                let mut joined = creds.user_id().as_bytes().to_vec();
                joined.push(b':');
                joined.extend_from_slice(creds.password());
                prop_assert_eq!(joined, decoded);
            }
            Err(CredentialsError::Ambiguous) => prop_assert!(suffix.contains(',')),
            Err(_) => {}
        }
    }

    #[test]
    fn realm_is_valid_iff_no_control_character_and_round_trips(
        realm in prop_oneof![any::<String>(), "[a-z \"\\\\\\x00-\\x1f\\x7f\u{e9}\u{2713}]{0,16}"],
    ) {
        let first_ctl = realm.bytes().position(is_ctl);
        match Realm::new(realm.as_str()) {
            Ok(valid) => {
                prop_assert_eq!(first_ctl, None);
                let challenge = tower_proxy_auth::scheme::Basic::challenge_for(&valid);
                let text = std::str::from_utf8(challenge.as_bytes())?;
                let quoted = text
                    .strip_prefix("Basic realm=\"")
                    .and_then(|t| t.strip_suffix("\", charset=\"UTF-8\""));
                prop_assert!(quoted.is_some(), "{}", text);
                prop_assert_eq!(unescape(quoted.unwrap_or_default()), Some(realm));
            }
            Err(e) => prop_assert_eq!(Some(e.offset), first_ctl),
        }
    }
}

/// The content of a quoted-string between its quotes (RFC 9110 §5.6.4), or `None` when it holds
/// an unescaped `"` or ends inside a quoted-pair.
fn unescape(quoted: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => out.push(chars.next()?),
            c => out.push(c),
        }
    }
    Some(out)
}

/// One field line of a request in the layer property.
#[derive(Debug, Clone)]
enum Field {
    /// `Proxy-Authorization` with the right credentials, in any scheme case and spacing.
    Alice { upper: Vec<bool>, spaces: usize },
    /// `Proxy-Authorization` with well-formed credentials for any user and password.
    Basic { user: String, pass: Vec<u8> },
    /// `Proxy-Authorization` with any bytes that make a field value.
    Raw(Vec<u8>),
    /// Another field (including `Authorization`).
    Other(&'static str, String),
}

fn field() -> impl Strategy<Value = Field> {
    prop_oneof![
        (proptest::collection::vec(any::<bool>(), 5), 1usize..4)
            .prop_map(|(upper, spaces)| Field::Alice { upper, spaces }),
        (prop_oneof![Just("alice".to_owned()), user_id()], password())
            .prop_map(|(user, pass)| Field::Basic { user, pass }),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Field::Raw),
        (
            prop_oneof![Just("authorization"), Just("x-forwarded-for"), Just("host")],
            "[ -~]{0,24}"
        )
            .prop_map(|(name, value)| Field::Other(name, value)),
    ]
}

fn field_line(field: &Field) -> Option<(HeaderName, HeaderValue)> {
    let value = match field {
        Field::Alice { upper, spaces } => HeaderValue::from_str(&format!(
            "{}{}YWxpY2U6czNjcmV0",
            scheme_with_case(upper),
            " ".repeat(*spaces)
        )),
        Field::Basic { user, pass } => HeaderValue::from_str(&support::basic(user, pass)),
        Field::Raw(bytes) => HeaderValue::from_bytes(bytes),
        Field::Other(name, value) => {
            return Some((
                HeaderName::from_static(name),
                HeaderValue::from_str(value).ok()?,
            ))
        }
    };
    Some((PROXY_AUTHORIZATION, value.ok()?))
}

/// The inner service: 200, after checking what an accepted request carries.
fn inner(
    req: Request<()>,
) -> std::future::Ready<Result<Response<http_body_util::Empty<bytes::Bytes>>, Infallible>> {
    assert!(req.headers().get(PROXY_AUTHORIZATION).is_none());
    assert_eq!(
        req.extensions().get::<Identity>().map(Identity::user),
        Some("alice")
    );
    std::future::ready(Ok(Response::new(http_body_util::Empty::new())))
}

proptest! {
    #[test]
    fn layer_allows_exactly_the_right_credentials(
        fields in proptest::collection::vec(field(), 0..4),
    ) {
        let mut request = Request::builder().uri("http://example.com/").body(()).unwrap();
        for (name, value) in fields.iter().filter_map(field_line) {
            request.headers_mut().append(name, value);
        }
        let values: Vec<_> = request.headers().get_all(PROXY_AUTHORIZATION).iter().collect();
        let want = match values[..] {
            [] => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            [value] => match BasicCredentials::parse(value.as_bytes()) {
                Ok(c) if c.user_id() == "alice" && c.password() == b"s3cret" => StatusCode::OK,
                Err(CredentialsError::Ambiguous) => StatusCode::BAD_REQUEST,
                _ => StatusCode::PROXY_AUTHENTICATION_REQUIRED,
            },
            _ => StatusCode::BAD_REQUEST,
        };

        let users = StaticUsers::new().with_user("alice", "s3cret");
        let mut service = ProxyAuthLayer::new(users).layer(tower::service_fn(inner));
        let mut cx = Context::from_waker(Waker::noop());
        prop_assert!(service.poll_ready(&mut cx).is_ready());
        let Poll::Ready(Ok(response)) = pin!(service.call(request)).poll(&mut cx) else {
            return Err(TestCaseError::fail("the layer did not answer at once"));
        };
        prop_assert!(matches!(response.status().as_u16(), 200 | 400 | 407 | 431));
        prop_assert_eq!(response.status(), want);
        prop_assert_eq!(
            response.headers().contains_key(PROXY_AUTHENTICATE),
            want == StatusCode::PROXY_AUTHENTICATION_REQUIRED
        );
    }
}

/// Properties of the htpasswd loader (cargo feature `htpasswd`).
#[cfg(feature = "htpasswd")]
mod htpasswd {
    use proptest::prelude::*;

    /// An htpasswd line: a user, a separator and a field that often starts like a known format.
    fn htpasswd_line() -> impl Strategy<Value = String> {
        let field = prop_oneof![
            "\\$(2y|2a|2b|apr1|1|5|6)\\$[./0-9A-Za-z$=]{0,60}",
            "\\{(SHA|SSHA|PLAIN)\\}[+/0-9A-Za-z=]{0,40}",
            "[./0-9A-Za-z]{13}",
            ".{0,20}",
        ];
        (
            "[ \t#]?",
            "[a-z:\u{e9}]{0,6}",
            "(:|)",
            field,
            "(|:comment| |\r)",
        )
            .prop_map(|(lead, user, colon, field, tail)| {
                format!("{lead}{user}{colon}{field}{tail}")
            })
    }

    proptest! {
        #[test]
        fn htpasswd_loading_never_panics_and_lenient_never_fails(
            lines in proptest::collection::vec(htpasswd_line(), 0..6),
            plaintext in any::<bool>(),
            refuse_des in any::<bool>(),
        ) {
            let contents = lines.join("\n");
            let builder = || {
                tower_proxy_auth::HtpasswdBuilder::default()
                    .allow_plaintext(plaintext)
                    .refuse_des(refuse_des)
                    .watch(false)
            };
            let lenient = builder().lenient(true).from_contents("p.htpasswd", &contents)?;
            match builder().from_contents("p.htpasswd", &contents) {
                Ok(strict) => prop_assert_eq!(strict.len(), lenient.len()),
                Err(e) => {
                    let line = e.line().unwrap_or(0);
                    prop_assert!((1..=lines.len()).contains(&line), "{}", e);
                    let prefix = format!("p.htpasswd:{line}: ");
                    prop_assert!(e.to_string().starts_with(&prefix), "{}", e);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scheme-neutral syntax.

/// A parameter value: any bytes a quoted-string can carry (no control characters but HTAB).
fn param_value() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            8 => 0x20u8..0x7f,
            1 => Just(b'\t'),
            1 => Just(b'"'),
            1 => Just(b'\\'),
            2 => 0x80u8..=0xff,
        ],
        0..24,
    )
}

/// Text that is often close to an auth-param list: names, `=`, quotes, escapes, commas,
/// whitespace, and any other byte now and then.
fn listish() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            6 => proptest::sample::select(b"abcXYZ019-_.~!#$%&'*+^`|=,\" \t\\".to_vec()),
            1 => any::<u8>(),
        ],
        0..64,
    )
}

proptest! {
    #[test]
    fn a_generated_param_list_serialises_and_parses_back(
        params in proptest::collection::vec(("[a-zA-Z][a-zA-Z0-9_-]{0,8}", param_value(), any::<bool>()), 1..8),
        spaces in 0usize..3,
    ) {
        // Distinct names (case-insensitively), as the parser requires.
        let mut seen = std::collections::HashSet::new();
        let params: Vec<_> = params
            .into_iter()
            .filter(|(name, _, _)| seen.insert(name.to_ascii_lowercase()))
            .collect();
        let mut text = Vec::new();
        for (n, (name, value, quote)) in params.iter().enumerate() {
            if n > 0 {
                text.extend_from_slice(b",");
                text.extend(std::iter::repeat_n(b' ', spaces));
            }
            text.extend_from_slice(name.as_bytes());
            text.push(b'=');
            let token = !value.is_empty() && value.iter().all(|b| b.is_ascii_alphanumeric());
            if token && !quote {
                text.extend_from_slice(value);
            } else {
                text.push(b'"');
                for &b in value {
                    if b == b'"' || b == b'\\' {
                        text.push(b'\\');
                    }
                    text.push(b);
                }
                text.push(b'"');
            }
        }
        let parsed = AuthParams::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert_eq!(parsed.len(), params.len());
        for (p, (name, value, _)) in parsed.iter().zip(&params) {
            prop_assert_eq!(p.name(), name.as_str());
            prop_assert_eq!(p.value(), value.as_slice());
        }
        let again = parsed.to_bytes();
        prop_assert_eq!(AuthParams::parse(&again).ok(), Some(parsed));
    }

    #[test]
    fn whatever_the_parser_accepts_serialises_and_parses_back(input in listish()) {
        if let Ok(params) = AuthParams::parse(&input) {
            let bytes = params.to_bytes();
            let again = AuthParams::parse(&bytes);
            prop_assert_eq!(again.as_ref().ok(), Some(&params), "{:?}", String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn credentials_parsing_never_panics_and_is_stable(input in listish(), scheme in "[A-Za-z]{1,8}") {
        let mut value = scheme.into_bytes();
        value.push(b' ');
        value.extend_from_slice(&input);
        if let Ok(credentials) = parse_credentials(&value) {
            if let CredentialsData::Params(params) = credentials.data() {
                let mut again = credentials.scheme().as_bytes().to_vec();
                again.push(b' ');
                again.extend_from_slice(&params.to_bytes());
                let reparsed = parse_credentials(&again).map_err(|e| TestCaseError::fail(format!("{e}")))?;
                prop_assert_eq!(reparsed.data(), credentials.data());
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Digest: the layer accepts exactly the response a client of the tests' own computes.

fn digest_algorithm() -> impl Strategy<Value = tower_proxy_auth::scheme::digest::Algorithm> {
    use tower_proxy_auth::scheme::digest::Algorithm;
    proptest::sample::select(Algorithm::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn digest_accepts_exactly_the_right_response(
        algorithm in digest_algorithm(),
        user in "[a-zA-Z0-9 ._@-]{1,16}",
        password in "[ -~]{0,24}",
        cnonce in "[a-zA-Z0-9+/=]{8,32}",
        nc in 1u32..1000,
        path in "/[a-z0-9/]{0,12}",
        flip in any::<proptest::sample::Index>(),
    ) {
        use tower_proxy_auth::scheme::digest::Digest;
        let users = StaticUsers::with_realm("proxy").with_user(user.as_str(), password.as_str());
        let layer = ProxyAuthLayer::offering(Digest::new().algorithms([algorithm]), users)
            .build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let inner = tower::service_fn(|_req: Request<()>| {
            std::future::ready(Ok::<_, Infallible>(Response::new(http_body_util::Empty::<bytes::Bytes>::new())))
        });
        let mut service = layer.layer(inner);
        let mut cx = Context::from_waker(Waker::noop());
        let target = format!("http://origin.test{path}");
        let mut call = |credentials: Option<&str>| {
            let mut request = Request::builder().uri(target.as_str()).body(()).unwrap();
            if let Some(value) = credentials {
                request.headers_mut().insert(PROXY_AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            }
            assert!(service.poll_ready(&mut cx).is_ready());
            match pin!(service.call(request)).poll(&mut cx) {
                Poll::Ready(Ok(response)) => response,
                _ => panic!("the layer did not answer at once"),
            }
        };
        let first = call(None);
        let challenge = first.headers()[PROXY_AUTHENTICATE].to_str().unwrap().to_owned();
        let answer = support::DigestAnswer {
            user: &user,
            password: &password,
            method: "GET",
            uri: &path,
            nc,
            cnonce: &cnonce,
        };
        let (credentials, _) = answer.credentials(&challenge);
        // One hex digit of the response changed: refused.
        let at = credentials.rfind("response=\"").unwrap() + "response=\"".len();
        let digits = credentials.len() - at - 1;
        let i = at + flip.index(digits);
        let mut wrong = credentials.clone().into_bytes();
        wrong[i] = if wrong[i] == b'0' { b'1' } else { b'0' };
        let wrong = String::from_utf8(wrong).unwrap();
        prop_assert_eq!(call(Some(&wrong)).status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
        prop_assert_eq!(call(Some(&credentials)).status(), StatusCode::OK, "{}", credentials);
        // ...once.
        prop_assert_eq!(call(Some(&credentials)).status(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    }
}
