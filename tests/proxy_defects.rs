//! The protocol defects hostile testing found in the forward proxy (issue "The first hour and
//! the example proxy"), each with the issue's case, through the real binary: trailers, log
//! forging, the origin's proxy authentication fields, HTTP/1.0 close, two `Host` lines, the
//! connection limit, and internal targets.
//!
//! Everything runs on 127.0.0.1; refused targets are refused before any connection is made, so
//! the other addresses named here are never contacted. Every wait is bounded.

mod support;

use std::time::Duration;

use support::{
    basic, proxy_get, request_head, ExampleProcess, Origin, OriginResponse, RawConn, ORIGIN_BODY,
    PROXY,
};

const USER: &str = "defects";
const PASSWORD: &str = "Defects-Pass-93d1";

fn credentials() -> String {
    basic(USER, PASSWORD.as_bytes())
}

/// The proxy with the test user, allowing the 127.0.0.1 origins, and `extra` arguments.
fn proxy(extra: &[&str]) -> ExampleProcess {
    support::start_proxy_with_user(USER, PASSWORD, extra)
}

/// The proxy with the test user and its default target policy (internal targets refused).
fn strict_proxy() -> ExampleProcess {
    let user = format!("{USER}:{PASSWORD}");
    ExampleProcess::start(PROXY, &["--listen", "127.0.0.1:0", "--user", &user])
}

// ---------------------------------------------------------------------------------------------
// Trailers

/// A chunked POST with `Trailer: Proxy-Authorization` and the field after the last chunk: the
/// origin gets the body and the other trailer fields, never the credentials or a hop-by-hop
/// field.
#[tokio::test]
async fn proxy_authorization_and_hop_by_hop_fields_in_request_trailers_are_not_forwarded() {
    let origin = Origin::start().await;
    let p = proxy(&[]);
    let url = origin.url("/upload");
    let host = origin.addr().to_string();
    let mut conn = RawConn::connect(p.addr()).await;
    let mut request = request_head(
        "POST",
        &url,
        &[
            ("Host", &host),
            ("Proxy-Authorization", &credentials()),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "X-Hop"),
            (
                "Trailer",
                "Proxy-Authorization, Keep-Alive, X-Hop, X-Checksum",
            ),
        ],
    );
    request.push_str("5\r\nhello\r\n0\r\n");
    request.push_str(&format!("Proxy-Authorization: {}\r\n", credentials()));
    request.push_str("Keep-Alive: timeout=5\r\nX-Hop: 1\r\nX-Checksum: abc\r\n\r\n");
    conn.send(request).await;
    let response = conn.read_response().await;
    assert_eq!(response.status, 200, "{response:#?}");

    let received = origin.single_request();
    assert_eq!(&received.body[..], b"hello");
    let trailers = received.trailers.expect("the trailer section is forwarded");
    assert_eq!(
        trailers.get("x-checksum").map(|v| v.as_bytes()),
        Some(&b"abc"[..])
    );
    for name in ["proxy-authorization", "keep-alive", "x-hop"] {
        assert!(trailers.get(name).is_none(), "{name} in {trailers:?}");
    }
    assert!(received.headers.get("proxy-authorization").is_none());
}

// ---------------------------------------------------------------------------------------------
// Log lines

/// A request-target holding U+0085 NEXT LINE or U+2028 LINE SEPARATOR is escaped in the
/// access log: tools that split lines on them see one line per request.
#[tokio::test]
async fn line_separators_in_a_request_target_are_escaped_in_the_log() {
    let origin = Origin::start().await;
    let p = proxy(&[]);
    for (path, escaped) in [
        ("/a\u{85}forged", "/a\\x85forged"),
        ("/b\u{2028}forged", "/b\\u{2028}forged"),
    ] {
        let url = origin.url(path);
        let mut conn = RawConn::connect(p.addr()).await;
        conn.send(request_head(
            "GET",
            &url,
            &[
                ("Host", &origin.addr().to_string()),
                ("Proxy-Authorization", &credentials()),
            ],
        ))
        .await;
        let response = conn.read_response().await;
        assert_eq!(response.status, 200, "{path:?}: {response:#?}");
        let line = p.wait_for_access(|l| l.target.contains(escaped)).await;
        assert_eq!(line.status, 200, "{line:?}");
    }
    let logs = format!("{}{}", p.stdout(), p.stderr());
    for raw in ['\u{85}', '\u{2028}'] {
        assert!(!logs.contains(raw), "{raw:?} written raw:\n{logs}");
    }
}

/// A rejected 48 KB user name is logged capped (here at `debug`, the most verbose level),
/// never in full, in the diagnostics and the access log alike.
#[tokio::test]
async fn a_rejected_48_kb_user_name_is_capped_in_the_logs() {
    let origin = Origin::start().await;
    let user = format!("{USER}:{PASSWORD}");
    let p = ExampleProcess::start_with_env(
        PROXY,
        &[
            "--listen",
            "127.0.0.1:0",
            "--allow-private-targets",
            "--user",
            &user,
        ],
        &[("RUST_LOG", "debug")],
    );
    let name = "u".repeat(48_000);
    let response = proxy_get(
        p.addr(),
        &origin.url("/long-name"),
        &[("Proxy-Authorization", &basic(&name, b"wrong"))],
    )
    .await;
    assert_eq!(response.status, 407, "{response:#?}");
    p.wait_for_access(|l| l.target.ends_with("/long-name") && l.status == 407)
        .await;
    let decision = p
        .wait_for_log(|l| l.contains("wrong_credentials") && l.contains("uuuu"))
        .await;
    assert!(decision.contains("…(+47744 bytes)"), "{decision}");
    let logs = format!("{}{}", p.stdout(), p.stderr());
    let longest = logs.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2_000, "a log line of {longest} bytes");
    assert!(!logs.contains(&"u".repeat(1_000)), "the name in full");
}

// ---------------------------------------------------------------------------------------------
// Fields for the next hop only

/// RFC 9110 §11.7.1: an origin's `Proxy-Authenticate` and `Proxy-Authentication-Info` are for
/// the next outbound client, the proxy itself: they never reach the client.
#[tokio::test]
async fn the_origins_proxy_authentication_fields_are_removed() {
    let mut answer = OriginResponse::default();
    for (name, value) in [
        ("proxy-authenticate", "Basic realm=\"origin\""),
        ("proxy-authentication-info", "rspauth=\"forged\""),
        ("x-keep", "yes"),
    ] {
        answer.headers.push((
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        ));
    }
    let origin = Origin::start_with(answer).await;
    let p = proxy(&[]);
    let response = proxy_get(
        p.addr(),
        &origin.url("/"),
        &[("Proxy-Authorization", &credentials())],
    )
    .await;
    assert_eq!(response.status, 200, "{response:#?}");
    assert_eq!(response.text(), ORIGIN_BODY);
    assert!(
        response.header("proxy-authenticate").is_none(),
        "{response:#?}"
    );
    assert!(
        response.header("proxy-authentication-info").is_none(),
        "{response:#?}"
    );
    assert_eq!(response.header("x-keep"), Some("yes"));
}

// ---------------------------------------------------------------------------------------------
// Connection handling

/// An HTTP/1.0 request without keep-alive answered 407 says `Connection: close`, and the
/// connection closes.
#[tokio::test]
async fn http_1_0_407_carries_connection_close_and_closes() {
    let p = proxy(&[]);
    let mut conn = RawConn::connect(p.addr()).await;
    conn.send("GET http://127.0.0.1:9/ HTTP/1.0\r\nHost: 127.0.0.1:9\r\n\r\n")
        .await;
    let response = conn.read_response().await;
    assert_eq!(response.status, 407, "{response:#?}");
    assert_eq!(
        response.header("connection"),
        Some("close"),
        "{response:#?}"
    );
    assert!(conn.closed_within(Duration::from_secs(5)).await);
}

/// RFC 9112 §3.2: two `Host` field lines get 400, with credentials and without, and the
/// origin sees nothing.
#[tokio::test]
async fn two_host_field_lines_get_400() {
    let origin = Origin::start().await;
    let p = proxy(&[]);
    let host = origin.addr().to_string();
    for with_credentials in [true, false] {
        let mut fields = vec![("Host", host.as_str()), ("Host", "other.example")];
        let auth = credentials();
        if with_credentials {
            fields.push(("Proxy-Authorization", &auth));
        }
        let mut conn = RawConn::connect(p.addr()).await;
        conn.send(request_head("GET", &origin.url("/two-hosts"), &fields))
            .await;
        let response = conn.read_response().await;
        assert_eq!(response.status, 400, "{response:#?}");
    }
    assert!(origin.received().is_empty(), "{:#?}", origin.received());
}

/// `--max-connections 2`: a third client waits until one of the two closes, then is served.
#[tokio::test]
async fn max_connections_stops_accepting_until_a_connection_closes() {
    let origin = Origin::start().await;
    let p = proxy(&["--max-connections", "2"]);
    let url = origin.url("/");
    let host = origin.addr().to_string();
    let auth = credentials();
    let get = request_head(
        "GET",
        &url,
        &[("Host", &host), ("Proxy-Authorization", &auth)],
    );
    let mut first = RawConn::connect(p.addr()).await;
    first.send(&get).await;
    assert_eq!(first.read_response().await.status, 200);
    let mut second = RawConn::connect(p.addr()).await;
    second.send(&get).await;
    assert_eq!(second.read_response().await.status, 200);

    // The third connection is only in the listen queue: its request is not answered.
    let mut third = RawConn::connect(p.addr()).await;
    third.send(&get).await;
    let waiting = tokio::time::timeout(Duration::from_secs(1), third.read_response()).await;
    assert!(waiting.is_err(), "answered beyond the limit: {waiting:?}");

    drop(first);
    let response = third.read_response().await;
    assert_eq!(response.status, 200, "{response:#?}");
    assert_eq!(response.text(), ORIGIN_BODY);
}

// ---------------------------------------------------------------------------------------------
// Internal targets

/// Loopback, private, link-local, unique-local and unspecified targets, IPv4 and IPv6 (and
/// IPv4-mapped IPv6), by address and by name, get 403 for CONNECT and forwarded requests alike
/// by default; the origin behind 127.0.0.1 sees nothing.
#[tokio::test]
async fn internal_targets_get_403_by_default() {
    let origin = Origin::start().await;
    let port = origin.addr().port();
    let p = strict_proxy();
    let targets = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
        format!("[::ffff:127.0.0.1]:{port}"),
        format!("0.0.0.0:{port}"),
        "169.254.169.254:80".to_owned(),
        "10.0.0.1:80".to_owned(),
        "192.168.1.1:443".to_owned(),
        "[fd00::1]:443".to_owned(),
        "[fe80::1]:80".to_owned(),
        "[::]:80".to_owned(),
    ];
    for target in &targets {
        let response = proxy_get(
            p.addr(),
            &format!("http://{target}/internal"),
            &[("Proxy-Authorization", &credentials())],
        )
        .await;
        assert_eq!(response.status, 403, "GET {target}: {response:#?}");

        let mut conn = RawConn::connect(p.addr()).await;
        conn.send(request_head(
            "CONNECT",
            target,
            &[("Host", target), ("Proxy-Authorization", &credentials())],
        ))
        .await;
        let response = conn.read_response_to("CONNECT").await;
        assert_eq!(response.status, 403, "CONNECT {target}: {response:#?}");
    }
    assert!(origin.received().is_empty(), "{:#?}", origin.received());
    // Authentication comes first: without credentials, the answer is the challenge.
    let response = proxy_get(p.addr(), &origin.url("/"), &[]).await;
    assert_eq!(response.status, 407, "{response:#?}");
}

/// `--allow-private-targets` opens them: the same loopback origin, by address and by name.
#[tokio::test]
async fn allow_private_targets_opens_them() {
    let origin = Origin::start().await;
    let port = origin.addr().port();
    let p = proxy(&[]);
    for url in [
        format!("http://127.0.0.1:{port}/open"),
        format!("http://localhost:{port}/open"),
    ] {
        let response = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &credentials())]).await;
        assert_eq!(response.status, 200, "{url}: {response:#?}");
    }
    let target = origin.addr();
    let mut tunnel = support::open_tunnel(p.addr(), target, &credentials()).await;
    tokio::io::AsyncWriteExt::write_all(
        &mut tunnel,
        request_head("GET", "/tunnelled", &[("Host", &target.to_string())]).as_bytes(),
    )
    .await
    .expect("write through the tunnel");
    let answer = support::read_until_bounded(&mut tunnel, ORIGIN_BODY.as_bytes()).await;
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}
