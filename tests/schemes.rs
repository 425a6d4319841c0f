//! Several schemes, both parties, custom rejections: the layer in a real hyper server on
//! 127.0.0.1, driven by curl, reqwest and raw TCP.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use http::request::Parts;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use tower::ServiceBuilder;
use tower_proxy_auth::scheme::{AttemptKey, Scheme, Setup, Verdict};
use tower_proxy_auth::syntax::{ChallengeBuilder, Credentials, CredentialsData};
use tower_proxy_auth::validator::Answers;
use tower_proxy_auth::{
    Answer, BasicCredentials, Decision, Identity, Party, ProxyAuthLayer, RejectionBody,
    StaticUsers, ValidatorError,
};

use support::{curl, request_head, serve, RawConn};

/// An echo service: the identity, its scheme, and what it saw of both credential fields.
async fn echo(req: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let field = |name| {
        req.headers()
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .unwrap_or("-")
            .to_owned()
    };
    let identity = req.extensions().get::<Identity>();
    Ok(Response::new(format!(
        "user={} scheme={} authorization={} proxy-authorization={}\n",
        identity.map_or("-", Identity::user),
        identity.and_then(Identity::scheme).unwrap_or("-"),
        field("authorization"),
        field("proxy-authorization"),
    )))
}

async fn serve_layer(layer: ProxyAuthLayer) -> SocketAddr {
    serve(ServiceBuilder::new().layer(layer).service_fn(echo)).await
}

fn alice() -> StaticUsers {
    StaticUsers::new().with_user("alice", "s3cret")
}

fn basic(user: &str, password: &str) -> String {
    BasicCredentials::new(user, password).unwrap().encode()
}

/// A raw request and its response on a fresh connection.
async fn exchange(addr: SocketAddr, head: &str) -> support::RawResponse {
    let mut conn = RawConn::connect(addr).await;
    conn.send(head).await;
    conn.read_response().await
}

#[tokio::test]
async fn whitespace_after_the_scheme_is_one_or_more_sp_wherever_a_tab_sits() {
    let addr = serve_layer(ProxyAuthLayer::new(alice())).await;
    let token = &basic("alice", "s3cret")["Basic ".len()..];
    for (value, want) in [
        (format!("Basic {token}"), 200),
        (format!("Basic    {token}"), 200),
        (format!("basic {token}"), 200),
        // RFC 9110 §11.4: `auth-scheme [ 1*SP ( token68 / #auth-param ) ]`; a tab is not SP.
        (format!("Basic\t{token}"), 407),
        (format!("Basic \t{token}"), 407),
        (format!("Basic \t {token}"), 407),
    ] {
        let head = request_head(
            "GET",
            "http://origin.test/",
            &[("Host", "origin.test"), ("Proxy-Authorization", &value)],
        );
        let response = exchange(addr, &head).await;
        assert_eq!(response.status, want, "{value:?}");
        if want == 407 {
            assert_eq!(
                response.header_values("proxy-authenticate"),
                [r#"Basic realm="proxy", charset="UTF-8""#]
            );
        }
    }
}

#[tokio::test]
async fn origin_mode_answers_401_reads_authorization_and_leaves_proxy_authorization_alone() {
    let layer = ProxyAuthLayer::builder(alice())
        .party(Party::Origin)
        .realm("api")
        .build()
        .unwrap();
    let addr = serve_layer(layer).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/me");

    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Basic realm="api", charset="UTF-8""#
    );
    assert!(!response.headers().contains_key("proxy-authenticate"));
    assert_eq!(response.text().await.unwrap(), "Authentication required\n");

    // Credentials in Proxy-Authorization are not this party's: 401, and on success they pass
    // through untouched while Authorization is consumed.
    let proxy_creds = basic("alice", "s3cret");
    let response = client
        .get(&url)
        .header("proxy-authorization", &proxy_creds)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .get(&url)
        .basic_auth("alice", Some("s3cret"))
        .header("proxy-authorization", "Basic cGFyZW50OnByb3h5")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "user=alice scheme=Basic authorization=- proxy-authorization=Basic cGFyZW50OnByb3h5\n"
    );
    // curl's --user, the way an API client sends it.
    let out = curl(&["-w", " %{http_code}", "-u", "alice:s3cret", &url]).await;
    out.assert_success();
    assert!(out.stdout.ends_with(" 200"), "{}", out.stdout);
    let out = curl(&["-w", " %{http_code}", "-u", "alice:wrong", &url]).await;
    assert!(out.stdout.ends_with(" 401"), "{}", out.stdout);
}

#[tokio::test]
async fn keep_credentials_keeps_the_partys_field() {
    let layer = ProxyAuthLayer::builder(alice())
        .party(Party::Origin)
        .keep_credentials(true)
        .build()
        .unwrap();
    let addr = serve_layer(layer).await;
    let creds = basic("alice", "s3cret");
    let head = request_head(
        "GET",
        "/",
        &[("Host", "api.test"), ("Authorization", &creds)],
    );
    let response = exchange(addr, &head).await;
    assert_eq!(response.status, 200);
    assert!(
        response.text().contains(&format!("authorization={creds} ")),
        "{}",
        response.text()
    );
}

#[tokio::test]
async fn an_html_407_for_browsers_keeps_the_challenge_length_and_framing() {
    let layer = ProxyAuthLayer::builder(alice())
        .render_rejection(|rejection, request| {
            let page = format!(
                "<!doctype html><title>{}</title><p>Sign in to use this proxy ({}).</p>\n",
                rejection.status().as_u16(),
                request.method
            );
            RejectionBody::html(page)
                .header(
                    http::header::CACHE_CONTROL,
                    HeaderValue::from_static("no-store"),
                )
                // Fields the layer owns are left out, whatever a hook says.
                .header(http::header::CONTENT_LENGTH, HeaderValue::from_static("1"))
                .header(http::header::CONNECTION, HeaderValue::from_static("close"))
                .header(
                    http::header::PROXY_AUTHENTICATE,
                    HeaderValue::from_static("Bogus"),
                )
        })
        .build()
        .unwrap();
    let addr = serve_layer(layer).await;
    let out = curl(&[
        "-i",
        "-x",
        &format!("http://{addr}"),
        "http://origin.test/page",
    ])
    .await;
    out.assert_success();
    let text = out.stdout.replace("\r\n", "\n");
    assert!(
        text.starts_with("HTTP/1.1 407 Proxy Authentication Required\n"),
        "{text}"
    );
    assert!(
        text.contains("\ncontent-type: text/html; charset=utf-8\n"),
        "{text}"
    );
    assert!(text.contains("\ncache-control: no-store\n"), "{text}");
    assert!(
        text.contains("\nproxy-authenticate: Basic realm=\"proxy\", charset=\"UTF-8\"\n"),
        "{text}"
    );
    assert!(
        !text.contains("Bogus") && !text.contains("connection: close"),
        "{text}"
    );
    let body = "<!doctype html><title>407</title><p>Sign in to use this proxy (GET).</p>\n";
    assert!(text.ends_with(&format!("\n\n{body}")), "{text}");
    assert!(
        text.contains(&format!("\ncontent-length: {}\n", body.len())),
        "{text}"
    );

    // The connection stays usable after the custom 407: the same socket then gets a 200.
    let mut conn = RawConn::connect(addr).await;
    conn.send(request_head(
        "GET",
        "http://origin.test/",
        &[("Host", "origin.test")],
    ))
    .await;
    assert_eq!(conn.read_response().await.status, 407);
    conn.send(request_head(
        "GET",
        "http://origin.test/",
        &[
            ("Host", "origin.test"),
            ("Proxy-Authorization", &basic("alice", "s3cret")),
        ],
    ))
    .await;
    assert_eq!(conn.read_response().await.status, 200);
}

#[tokio::test]
async fn a_json_401_for_an_api_names_the_reason() {
    let layer = ProxyAuthLayer::builder(alice())
        .party(Party::Origin)
        .render_rejection(|rejection, _| {
            RejectionBody::json(format!(
                "{{\"status\":{},\"error\":\"{}\",\"reason\":\"{}\"}}",
                rejection.status().as_u16(),
                rejection.outcome(),
                rejection.reason()
            ))
        })
        .build()
        .unwrap();
    let addr = serve_layer(layer).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/api");
    let cases: [(Option<&str>, u16, &str); 4] = [
        (
            None,
            401,
            r#"{"status":401,"error":"challenge","reason":"missing"}"#,
        ),
        (
            Some("Basic !!!"),
            401,
            r#"{"status":401,"error":"challenge","reason":"invalid_param"}"#,
        ),
        (
            Some("Bearer abc"),
            401,
            r#"{"status":401,"error":"challenge","reason":"unsupported_scheme"}"#,
        ),
        (
            Some("Basic YWxpY2U6d3Jvbmc="),
            401,
            r#"{"status":401,"error":"challenge","reason":"wrong_credentials"}"#,
        ),
    ];
    for (credentials, status, body) in cases {
        let mut request = client.get(&url);
        if let Some(value) = credentials {
            request = request.header("authorization", value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{credentials:?}");
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_eq!(
            response.headers()["content-length"],
            body.len().to_string().as_str()
        );
        assert!(response.headers().contains_key("www-authenticate"));
        assert_eq!(response.text().await.unwrap(), body);
    }
    let joined = format!("{0}, {0}", basic("alice", "s3cret"));
    let response = client
        .get(&url)
        .header("authorization", joined)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(!response.headers().contains_key("www-authenticate"));
    assert_eq!(
        response.text().await.unwrap(),
        r#"{"status":400,"error":"bad_request","reason":"multiple_credentials"}"#
    );
}

#[tokio::test]
async fn an_http_1_0_rejection_says_connection_close_and_1_1_keeps_the_connection() {
    let addr = serve_layer(ProxyAuthLayer::new(alice())).await;
    let mut conn = RawConn::connect(addr).await;
    conn.send("GET http://origin.test/ HTTP/1.0\r\nHost: origin.test\r\n\r\n")
        .await;
    let response = conn.read_response().await;
    assert_eq!(response.status, 407);
    assert_eq!(response.header("connection"), Some("close"));
    assert!(conn.closed_within(std::time::Duration::from_secs(5)).await);

    // HTTP/1.0 asking for keep-alive, and HTTP/1.1: no close.
    let mut conn = RawConn::connect(addr).await;
    conn.send(
        "GET http://origin.test/ HTTP/1.0\r\nHost: origin.test\r\nConnection: keep-alive\r\n\r\n",
    )
    .await;
    let response = conn.read_response().await;
    assert_eq!(response.status, 407);
    assert_ne!(response.header("connection"), Some("close"));
    let response = exchange(
        addr,
        &request_head("GET", "http://origin.test/", &[("Host", "origin.test")]),
    )
    .await;
    assert_eq!(response.header("connection"), None);
}

// ---------------------------------------------------------------------------------------------
// A scheme of the test's own, plugged in with one builder call: "Token <secret>", checked by a
// validator kind of its own, with a success step.

/// `Authorization: Token <token68>`; challenge `Token realm="…"`; success field `token=ok`.
struct TokenScheme {
    realm: String,
}

/// The kind of validator a [`TokenScheme`] asks: token in, decision out.
struct TokenTable(&'static [(&'static str, &'static str)]);

impl Scheme for TokenScheme {
    type Question = String;
    type Reply = Result<Decision, ValidatorError>;
    type Attempt = String;

    fn name(&self) -> &'static str {
        "Token"
    }

    fn configure(&mut self, setup: &Setup<'_>) -> Result<(), String> {
        self.realm = setup.realm.as_str().to_owned();
        Ok(())
    }

    fn prepare(&self, credentials: &Credentials<'_>, _: &Parts) -> Result<String, Verdict> {
        match credentials.data() {
            CredentialsData::Token68(token) => Ok(token.as_str().to_owned()),
            _ => Err(Verdict::Malformed("not_token68")),
        }
    }

    fn question<'a>(&self, attempt: &'a String) -> &'a String {
        attempt
    }

    fn attempt_key<'a>(&self, attempt: &'a String) -> AttemptKey<'a> {
        AttemptKey::user(attempt.as_bytes())
    }

    fn conclude(&self, _: &String, reply: Self::Reply) -> Answer<Verdict> {
        Answer::Ready(match reply {
            Ok(Decision::Allow(identity)) => Verdict::Allow {
                identity,
                info: Some(ChallengeBuilder::params().token("token", "ok").finish()),
            },
            Ok(Decision::Forbid) => Verdict::Forbid,
            Ok(_) => Verdict::Reject,
            Err(error) => Verdict::Unavailable(error),
        })
    }

    fn challenges(&self, _stale: bool, out: &mut Vec<HeaderValue>) {
        out.push(
            ChallengeBuilder::new("Token")
                .quoted("realm", &self.realm)
                .finish(),
        );
    }
}

impl Answers<TokenScheme> for TokenTable {
    fn answer(&self, token: &String, _: &Parts) -> Answer<Result<Decision, ValidatorError>> {
        Answer::Ready(Ok(match self.0.iter().find(|(t, _)| t == token) {
            Some((_, user)) => Decision::Allow(Identity::new(*user)),
            None => Decision::Reject,
        }))
    }
}

fn token_and_basic() -> ProxyAuthLayer {
    ProxyAuthLayer::offering(
        TokenScheme {
            realm: String::new(),
        },
        TokenTable(&[("t0ken-of-bob", "bob")]),
    )
    .offer(tower_proxy_auth::scheme::Basic::new(), alice())
    .party(Party::Origin)
    .realm("both")
    .build()
    .unwrap()
}

#[tokio::test]
async fn a_new_scheme_plugs_in_with_one_builder_call_and_challenges_come_in_order() {
    let addr = serve_layer(token_and_basic()).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/");

    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let challenges: Vec<_> = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        challenges,
        [
            r#"Token realm="both""#,
            r#"Basic realm="both", charset="UTF-8""#
        ]
    );

    // Each scheme's credentials go to its own validator; the scheme is recorded.
    let response = client
        .get(&url)
        .header("authorization", "token t0ken-of-bob")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["authentication-info"], "token=ok");
    assert!(response
        .text()
        .await
        .unwrap()
        .starts_with("user=bob scheme=Token "));
    let response = client
        .get(&url)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(!response.headers().contains_key("authentication-info"));
    assert!(response
        .text()
        .await
        .unwrap()
        .starts_with("user=alice scheme=Basic "));
    // A wrong token gets both challenges again.
    let response = client
        .get(&url)
        .header("authorization", "Token guess")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response
            .headers()
            .get_all("www-authenticate")
            .iter()
            .count(),
        2
    );
}

#[test]
fn offering_one_scheme_twice_is_a_build_error() {
    let err = ProxyAuthLayer::builder(alice())
        .offer(tower_proxy_auth::scheme::Basic::new(), alice())
        .build()
        .unwrap_err();
    assert_eq!(err.to_string(), "the Basic scheme is offered twice");
}
