//! No password reaches a log line or a `Debug` string.
//!
//! One test runs the layer in a real hyper server on 127.0.0.1 behind a TRACE-level
//! `tracing-subscriber` fmt subscriber that writes into a buffer, makes every kind of request a
//! client can make (accepted, wrong password, forbidden, validator failure, throttled, two
//! credentials, malformed), and then searches everything logged for the passwords and the
//! base64 forms of the `user:password` pairs. The other formats the library's values with
//! `{:?}` and `{:#?}`.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_http::trace::{DefaultMakeSpan, DefaultOnRequest, DefaultOnResponse, TraceLayer};
use tower_proxy_auth::validator::from_fn;
use tower_proxy_auth::{
    BasicCredentials, Decision, FailureThrottle, Identity, ProxyAuthLayer, StaticUsers,
};
use tracing::Level;

const PASSWORD: &str = "s3cr3t-P4ss";
const WRONG: &str = "wr0ng-P4ss-X";
/// A second wrong password: the same one repeated counts once for the throttle.
const WRONG_TOO: &str = "wr0ng-P4ss-Y";
const FORBIDDEN_PASSWORD: &str = "f0rb1dden-P4ss";
const BROKEN_PASSWORD: &str = "br0ken-P4ss";

/// A `Write` into a buffer shared with the test.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Alice with [`PASSWORD`] is allowed; mallory is authenticated but forbidden; any request for
/// `broken` fails as an unreachable store would.
fn validator() -> impl tower_proxy_auth::Validator {
    let users = StaticUsers::new()
        .with_user("alice", PASSWORD)
        .with_user("mallory", FORBIDDEN_PASSWORD);
    from_fn(move |creds: &BasicCredentials, _| match creds.user_id() {
        "broken" => Err("user store unreachable"),
        user => Ok(match users.check(user, creds.password()) {
            Some(_) if user == "mallory" => Decision::Forbid,
            Some(identity) => Decision::Allow(identity.clone()),
            None => Decision::Reject,
        }),
    })
}

/// Serves the layer (with a throttle) in front of a 200 service that tower-http's `TraceLayer`
/// logs with all request headers, so the test also sees what reaches the inner service.
async fn serve() -> SocketAddr {
    let layer = ProxyAuthLayer::builder(validator())
        .throttle(FailureThrottle::new(2, Duration::from_secs(60)))
        .build()
        .expect("layer");
    let trace = TraceLayer::new_for_http()
        .make_span_with(
            DefaultMakeSpan::new()
                .level(Level::INFO)
                .include_headers(true),
        )
        .on_request(DefaultOnRequest::new().level(Level::INFO))
        .on_response(
            DefaultOnResponse::new()
                .level(Level::INFO)
                .include_headers(true),
        );
    let service = ServiceBuilder::new().layer(layer).layer(trace).service_fn(
        |_req: Request<Incoming>| async {
            Ok::<_, Infallible>(Response::new(http_body_util::Full::new(
                bytes::Bytes::from_static(b"ok\n"),
            )))
        },
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service),
            );
        }
    });
    addr
}

fn pair(user: &str, password: &str) -> String {
    let mut decoded = user.as_bytes().to_vec();
    decoded.push(b':');
    decoded.extend_from_slice(password.as_bytes());
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, decoded)
}

#[tokio::test(flavor = "current_thread")]
async fn passwords_never_reach_the_logs() {
    let capture = Capture::default();
    let writer = capture.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .expect("the only subscriber of this test binary");

    let addr = serve().await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let good = format!("Basic {}", pair("alice", PASSWORD));
    let wrong = format!("Basic {}", pair("alice", WRONG));
    let wrong_too = format!("Basic {}", pair("alice", WRONG_TOO));
    let forbidden = format!("Basic {}", pair("mallory", FORBIDDEN_PASSWORD));
    let broken = format!("Basic {}", pair("broken", BROKEN_PASSWORD));
    let cases: [(&[&str], u16); 8] = [
        (&[&good], 200),
        (&[&forbidden], 403),
        (&[&broken], 503),
        (&[&wrong], 407),
        (&[&wrong_too], 407),
        (&[&wrong], 429),
        (&[&good, &good], 400),
        (&[&good[..good.len() - 3]], 407),
    ];
    let mut answers = String::new();
    for (values, want) in cases {
        let mut request = client
            .get(format!("http://{addr}/"))
            .header("x-probe", "visible-marker");
        for value in values {
            request = request.header("proxy-authorization", *value);
        }
        let response = request.send().await.expect("response");
        assert_eq!(response.status(), want, "{values:?}");
        answers.push_str(&format!("{:?}\n", response.headers()));
        answers.push_str(&response.text().await.expect("body"));
    }

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).expect("UTF-8 logs");
    // The capture works: the user names and the inner service's headers were logged.
    for seen in [
        "alice",
        "mallory",
        "broken",
        "visible-marker",
        "user store unreachable",
    ] {
        assert!(
            logs.contains(seen),
            "{seen:?} is missing from the logs:\n{logs}"
        );
    }
    let secrets = [
        PASSWORD.to_owned(),
        WRONG.to_owned(),
        WRONG_TOO.to_owned(),
        FORBIDDEN_PASSWORD.to_owned(),
        BROKEN_PASSWORD.to_owned(),
        pair("alice", PASSWORD),
        pair("alice", WRONG),
        pair("alice", WRONG_TOO),
        pair("mallory", FORBIDDEN_PASSWORD),
        pair("broken", BROKEN_PASSWORD),
        good[..good.len() - 3].to_owned(),
    ];
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "{secret:?} was logged:\n{logs}"
        );
        assert!(
            !answers.contains(secret.as_str()),
            "{secret:?} was answered:\n{answers}"
        );
    }
    assert!(
        !logs.to_ascii_lowercase().contains("proxy-authorization:"),
        "a Proxy-Authorization field was logged:\n{logs}"
    );
}

#[test]
fn debug_output_hides_passwords() {
    let creds = BasicCredentials::new("alice", PASSWORD).expect("credentials");
    let users = StaticUsers::new().with_user("alice", PASSWORD);
    let layer = ProxyAuthLayer::new(users.clone());
    let identity = Identity::new("alice");
    let decision = Decision::Allow(identity.clone());
    let b64 = pair("alice", PASSWORD);
    for debug in [
        format!("{creds:?}"),
        format!("{creds:#?}"),
        format!("{users:?}"),
        format!("{users:#?}"),
        format!("{layer:?}"),
        format!("{layer:#?}"),
        format!("{identity:?}"),
        format!("{decision:?}"),
    ] {
        assert!(
            debug.contains("alice") || debug.starts_with("ProxyAuthLayer"),
            "{debug}"
        );
        assert!(!debug.contains(PASSWORD), "{debug}");
        assert!(!debug.contains(&b64), "{debug}");
    }
}
