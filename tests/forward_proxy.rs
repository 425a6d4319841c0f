//! End-to-end tests of the forward proxy (`proxy/`): the compiled example runs as a child process
//! on 127.0.0.1:0, and curl, reqwest and raw TCP clients talk to it and, through it, to an
//! in-process origin.

mod support;

use std::time::Duration;

use support::{
    basic, closed_port, curl, proxy_get, request_head, run_example_to_exit, ExampleProcess, Origin,
    OriginResponse, RawConn, ORIGIN_BODY,
};

const ALICE: &str = "alice:s3cret";
const CHALLENGE: &str = "Basic realm=\"proxy\", charset=\"UTF-8\"";

fn proxy(args: &[&str]) -> ExampleProcess {
    support::start_proxy(args)
}

fn alice_proxy() -> ExampleProcess {
    proxy(&["--user", ALICE])
}

fn alice_url(p: &ExampleProcess) -> String {
    format!("http://{ALICE}@{}", p.addr())
}

fn alice_basic() -> String {
    basic("alice", b"s3cret")
}

/// Asserts a complete, keep-alive 407 with the default challenge.
fn assert_challenge(response: &support::RawResponse) {
    assert_eq!(response.status, 407, "{response:#?}");
    assert_eq!(
        response.header_values("proxy-authenticate"),
        [CHALLENGE],
        "{response:#?}"
    );
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(!response.body.is_empty());
    assert_eq!(
        response.header("content-length"),
        Some(response.body.len().to_string().as_str())
    );
    assert!(
        response
            .header_values("connection")
            .iter()
            .all(|v| !v.eq_ignore_ascii_case("close")),
        "{response:#?}"
    );
}

/// Asserts a 200 carrying the origin's body.
fn assert_origin_body(response: &support::RawResponse) {
    assert_eq!(response.status, 200, "{response:#?}");
    assert_eq!(response.text(), ORIGIN_BODY);
}

// ---------------------------------------------------------------------------------------------
// curl

#[tokio::test]
async fn curl_get_reaches_origin_without_proxy_authorization() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let out = curl(&["-x", &alice_url(&p), &origin.url("/")]).await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
    let received = origin.single_request();
    assert!(received.headers.get("proxy-authorization").is_none());
    assert_eq!(received.uri, "/", "the origin gets origin-form");
    assert_eq!(
        received.headers.get("host").map(|h| h.to_str().unwrap()),
        Some(origin.addr().to_string().as_str())
    );
}

#[tokio::test]
async fn curl_connect_tunnel_reaches_origin() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let out = curl(&["-p", "-x", &alice_url(&p), &origin.url("/tunnelled")]).await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
    let received = origin.single_request();
    assert_eq!(received.uri, "/tunnelled");
    assert!(received.headers.get("proxy-authorization").is_none());
}

// ---------------------------------------------------------------------------------------------
// Challenges and rejections

#[tokio::test]
async fn no_credentials_get_complete_407() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let response = proxy_get(p.addr(), &origin.url("/"), &[]).await;
    assert_challenge(&response);
    assert!(origin.received().is_empty());
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_407() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    for value in [basic("alice", b"wrong"), basic("mallory", b"s3cret")] {
        let response = proxy_get(
            p.addr(),
            &origin.url("/"),
            &[("Proxy-Authorization", &value)],
        )
        .await;
        assert_challenge(&response);
    }
    assert!(origin.received().is_empty());
}

#[tokio::test]
async fn custom_realm_is_in_the_challenge() {
    let origin = Origin::start().await;
    let p = proxy(&[
        "--user",
        ALICE,
        "--realm",
        "corp \"east\"",
        "--worker-threads",
        "1",
    ]);
    let response = proxy_get(p.addr(), &origin.url("/"), &[]).await;
    assert_eq!(response.status, 407);
    assert_eq!(
        response.header("proxy-authenticate"),
        Some(r#"Basic realm="corp \"east\"", charset="UTF-8""#)
    );
}

#[tokio::test]
async fn malformed_credentials_get_407_and_the_proxy_keeps_serving() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let huge = format!("Basic {}", "A".repeat(16 * 1024));
    let nocolon = format!("Basic {}", support::base64_encode(b"nocolon"));
    for value in ["Basic", "Basic !!!!", "Bearer abc", &nocolon, &huge] {
        let response = proxy_get(
            p.addr(),
            &origin.url("/"),
            &[("Proxy-Authorization", value)],
        )
        .await;
        assert_challenge(&response);
    }
    assert!(origin.received().is_empty());
    assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
    let response = proxy_get(
        p.addr(),
        &origin.url("/"),
        &[("Proxy-Authorization", &alice_basic())],
    )
    .await;
    assert_origin_body(&response);
}

#[tokio::test]
async fn two_proxy_authorization_lines_get_400() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let good = alice_basic();
    let mut conn = RawConn::connect(p.addr()).await;
    conn.send(request_head(
        "GET",
        &origin.url("/"),
        &[
            ("Host", &origin.addr().to_string()),
            ("Proxy-Authorization", &good),
            ("Proxy-Authorization", &good),
        ],
    ))
    .await;
    let response = conn.read_response().await;
    assert_eq!(response.status, 400, "{response:#?}");
    assert!(origin.received().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Accepted credentials

#[tokio::test]
async fn rfc7617_examples_are_accepted() {
    let origin = Origin::start().await;
    let p = proxy(&["--user", "Aladdin:open sesame", "--user", "test:123£"]);
    for value in [
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        "Basic dGVzdDoxMjPCow==",
    ] {
        let response = proxy_get(
            p.addr(),
            &origin.url("/"),
            &[("Proxy-Authorization", value)],
        )
        .await;
        assert_origin_body(&response);
    }
    assert_eq!(origin.received().len(), 2);
}

#[tokio::test]
async fn password_with_colons_is_accepted() {
    let origin = Origin::start().await;
    let p = proxy(&["--user", "bob:pa:ss:word"]);
    let value = basic("bob", b"pa:ss:word");
    let response = proxy_get(
        p.addr(),
        &origin.url("/"),
        &[("Proxy-Authorization", &value)],
    )
    .await;
    assert_origin_body(&response);
    // curl's --proxy-user splits at the first ':' too.
    let proxy_url = format!("http://{}", p.addr());
    let out = curl(&["-x", &proxy_url, "-U", "bob:pa:ss:word", &origin.url("/")]).await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
}

#[tokio::test]
async fn scheme_case_and_extra_spaces_are_accepted() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let token = support::base64_encode(b"alice:s3cret");
    for value in [
        format!("basic {token}"),
        format!("BASIC {token}"),
        format!("Basic   {token}"),
    ] {
        let response = proxy_get(
            p.addr(),
            &origin.url("/"),
            &[("Proxy-Authorization", &value)],
        )
        .await;
        assert_origin_body(&response);
    }
}

// ---------------------------------------------------------------------------------------------
// One connection: 407, then the retry

#[tokio::test]
async fn get_retry_on_the_same_connection() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let host = origin.addr().to_string();
    let mut conn = RawConn::connect(p.addr()).await;
    conn.send(request_head("GET", &origin.url("/"), &[("Host", &host)]))
        .await;
    assert_challenge(&conn.read_response().await);
    let good = alice_basic();
    conn.send(request_head(
        "GET",
        &origin.url("/"),
        &[("Host", &host), ("Proxy-Authorization", &good)],
    ))
    .await;
    assert_origin_body(&conn.read_response().await);
    // And the connection still serves a third request.
    conn.send(request_head(
        "GET",
        &origin.url("/again"),
        &[("Host", &host), ("Proxy-Authorization", &good)],
    ))
    .await;
    assert_origin_body(&conn.read_response().await);
    assert_eq!(origin.received().len(), 2);
}

#[tokio::test]
async fn connect_retry_on_the_same_connection() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let target = origin.addr().to_string();
    let mut conn = RawConn::connect(p.addr()).await;
    conn.send(request_head("CONNECT", &target, &[("Host", &target)]))
        .await;
    assert_challenge(&conn.read_response_to("CONNECT").await);
    conn.send(request_head(
        "CONNECT",
        &target,
        &[("Host", &target), ("Proxy-Authorization", &alice_basic())],
    ))
    .await;
    let established = conn.read_response_to("CONNECT").await;
    assert_eq!(established.status, 200, "{established:#?}");
    // Now the socket is a tunnel to the origin.
    conn.send(request_head("GET", "/through", &[("Host", &target)]))
        .await;
    assert_origin_body(&conn.read_response().await);
    let received = origin.single_request();
    assert_eq!(received.uri, "/through");
}

// ---------------------------------------------------------------------------------------------
// reqwest

#[tokio::test]
async fn reqwest_with_and_without_proxy_basic_auth() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let proxy_url = format!("http://{}", p.addr());

    let with_auth = reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::http(&proxy_url)
                .unwrap()
                .basic_auth("alice", "s3cret"),
        )
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = with_auth.get(origin.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), ORIGIN_BODY);

    let without_auth = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(&proxy_url).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let response = without_auth.get(origin.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 407);
    assert_eq!(response.headers()["proxy-authenticate"], CHALLENGE);

    let received = origin.single_request();
    assert!(received.headers.get("proxy-authorization").is_none());
}

// ---------------------------------------------------------------------------------------------
// Hop-by-hop fields

#[tokio::test]
async fn hop_by_hop_fields_are_removed_from_the_request() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let response = proxy_get(
        p.addr(),
        &origin.url("/"),
        &[
            ("Proxy-Authorization", &alice_basic()),
            ("Connection", "X-Foo"),
            ("X-Foo", "1"),
            ("Keep-Alive", "5"),
            ("Proxy-Connection", "keep-alive"),
            ("X-Keep", "yes"),
        ],
    )
    .await;
    assert_origin_body(&response);
    let headers = origin.single_request().headers;
    for name in [
        "connection",
        "x-foo",
        "keep-alive",
        "proxy-connection",
        "proxy-authorization",
    ] {
        assert!(
            headers.get(name).is_none(),
            "{name} reached the origin: {headers:?}"
        );
    }
    assert_eq!(headers["x-keep"], "yes");
    assert_eq!(headers["via"], "1.1 tower-proxy-auth");
}

#[tokio::test]
async fn hop_by_hop_fields_are_removed_from_the_response() {
    let mut answer = OriginResponse::default();
    for (name, value) in [
        ("connection", "X-Bar"),
        ("x-bar", "1"),
        ("keep-alive", "timeout=5"),
        ("x-keep", "yes"),
    ] {
        answer.headers.push((
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        ));
    }
    let origin = Origin::start_with(answer).await;
    let p = alice_proxy();
    let response = proxy_get(
        p.addr(),
        &origin.url("/"),
        &[("Proxy-Authorization", &alice_basic())],
    )
    .await;
    assert_origin_body(&response);
    assert!(response.header("x-bar").is_none(), "{response:#?}");
    assert!(response.header("keep-alive").is_none(), "{response:#?}");
    assert!(response.header("connection").is_none(), "{response:#?}");
    assert_eq!(response.header("x-keep"), Some("yes"));
    assert_eq!(response.header("via"), Some("1.1 tower-proxy-auth"));
}

#[tokio::test]
async fn request_body_is_forwarded() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let out = curl(&[
        "-x",
        &alice_url(&p),
        "--data-binary",
        "name=value&x=1",
        &origin.url("/submit"),
    ])
    .await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
    let received = origin.single_request();
    assert_eq!(received.method, "POST");
    assert_eq!(&received.body[..], b"name=value&x=1");
}

// ---------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn connect_to_a_closed_port_gets_502() {
    let p = alice_proxy();
    let target = format!("127.0.0.1:{}", closed_port());
    let mut conn = RawConn::connect(p.addr()).await;
    conn.send(request_head(
        "CONNECT",
        &target,
        &[("Host", &target), ("Proxy-Authorization", &alice_basic())],
    ))
    .await;
    let response = conn.read_response_to("CONNECT").await;
    assert_eq!(response.status, 502, "{response:#?}");
    assert!(!response.body.is_empty());
}

#[tokio::test]
async fn get_to_a_closed_origin_gets_502() {
    let p = alice_proxy();
    let url = format!("http://127.0.0.1:{}/", closed_port());
    let response = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &alice_basic())]).await;
    assert_eq!(response.status, 502, "{response:#?}");
}

#[tokio::test]
async fn origin_form_request_gets_400() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let mut conn = RawConn::connect(p.addr()).await;
    conn.send(request_head(
        "GET",
        "/",
        &[
            ("Host", &origin.addr().to_string()),
            ("Proxy-Authorization", &alice_basic()),
        ],
    ))
    .await;
    let response = conn.read_response().await;
    assert_eq!(response.status, 400, "{response:#?}");
    assert!(origin.received().is_empty());
}

#[tokio::test]
async fn targets_with_user_info_or_absolute_form_connect_get_400_and_stay_out_of_logs() {
    let origin = Origin::start().await;
    let p = proxy(&["--user", ALICE]);
    let port = origin.addr().port();
    let cases = [
        ("GET", format!("http://zed:hunter5@127.0.0.1:{port}/")),
        ("CONNECT", format!("zed:hunter5@127.0.0.1:{port}")),
        ("CONNECT", format!("http://127.0.0.1:{port}/")),
    ];
    for (method, target) in &cases {
        let mut conn = RawConn::connect(p.addr()).await;
        conn.send(request_head(
            method,
            target,
            &[
                ("Host", &format!("127.0.0.1:{port}")),
                ("Proxy-Authorization", &alice_basic()),
            ],
        ))
        .await;
        let response = conn.read_response_to(method).await;
        assert_eq!(response.status, 400, "{method} {target}: {response:#?}");
    }
    assert!(origin.received().is_empty());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while p.access_lines().iter().filter(|l| l.status == 400).count() < cases.len() {
        assert!(std::time::Instant::now() < deadline, "{}", p.stdout());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!p.stderr().contains("hunter5"), "{}", p.stderr());
    assert!(!p.stdout().contains("hunter5"), "{}", p.stdout());
}

// ---------------------------------------------------------------------------------------------
// Command line, logs, timeouts, shutdown

#[test]
fn realm_with_a_control_character_exits_non_zero() {
    let finished = run_example_to_exit(
        support::PROXY,
        &["--listen", "127.0.0.1:0", "--realm", "bad\u{1}realm"],
        Duration::from_secs(15),
    );
    assert!(!finished.status.success(), "{finished:#?}");
    assert!(finished.stderr.contains("realm"), "{finished:#?}");
    assert!(!finished.stderr.contains("panicked"), "{finished:#?}");
    assert!(!finished.stdout.contains("listening on"), "{finished:#?}");
}

#[test]
fn user_without_a_colon_exits_non_zero() {
    let finished = run_example_to_exit(
        support::PROXY,
        &["--listen", "127.0.0.1:0", "--user", "alice"],
        Duration::from_secs(15),
    );
    assert!(!finished.status.success(), "{finished:#?}");
    assert!(finished.stderr.contains("NAME:PASSWORD"), "{finished:#?}");
}

#[tokio::test]
async fn no_auth_proxy_serves_without_credentials() {
    let origin = Origin::start().await;
    let p = proxy(&["--no-auth"]);
    let response = proxy_get(p.addr(), &origin.url("/"), &[]).await;
    assert_origin_body(&response);
    let out = curl(&["-x", &format!("http://{}", p.addr()), &origin.url("/")]).await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
}

#[tokio::test]
async fn startup_prints_a_curl_command() {
    let p = alice_proxy();
    let expected = format!("curl -x http://alice:PASSWORD@{}", p.addr());
    // The line after `listening on` may still be in flight.
    for _ in 0..100 {
        if p.stdout().contains(&expected) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no curl hint in stdout: {}", p.stdout());
}

#[tokio::test]
async fn one_log_line_per_request_without_secrets() {
    let origin = Origin::start().await;
    let p = alice_proxy();
    let good = alice_basic();
    let ok = proxy_get(
        p.addr(),
        &origin.url("/logged"),
        &[("Proxy-Authorization", &good)],
    )
    .await;
    assert_origin_body(&ok);
    let line = p
        .wait_for_access(|l| l.target.ends_with("/logged") && l.status == 200)
        .await;
    assert_eq!(line.user, "alice", "{line:?}");
    assert_eq!(line.method, "GET", "{line:?}");
    assert_eq!(line.client, "127.0.0.1", "{line:?}");
    assert_eq!(line.target, origin.url("/logged"), "{line:?}");
    assert_eq!(line.bytes, Some(ORIGIN_BODY.len() as u64), "{line:?}");
    assert!(line.micros > 0, "{line:?}");

    let wrong = basic("alice", b"hunter2");
    let rejected = proxy_get(
        p.addr(),
        &origin.url("/rejected"),
        &[("Proxy-Authorization", &wrong)],
    )
    .await;
    assert_eq!(rejected.status, 407);
    let line = p
        .wait_for_access(|l| l.target.ends_with("/rejected") && l.status == 407)
        .await;
    assert_eq!(line.user, "-", "{line:?}");

    let logs = format!("{}{}", p.stdout(), p.stderr());
    assert_eq!(
        logs.lines().filter(|l| l.contains("/logged")).count(),
        1,
        "{logs}"
    );
    for secret in ["s3cret", "hunter2", good.as_str(), wrong.as_str()] {
        assert!(!logs.contains(secret), "{secret:?} in the logs:\n{logs}");
    }
}

#[tokio::test]
async fn slow_header_is_cut_off_by_the_header_read_timeout() {
    let p = proxy(&["--user", ALICE, "--header-read-timeout", "1"]);
    let mut conn = RawConn::connect(p.addr()).await;
    conn.send("GET http://127.0.0.1:9/ HTTP/1.1\r\nHost: 127.0.0.1:9\r\n")
        .await;
    assert!(
        conn.closed_within(Duration::from_secs(10)).await,
        "the proxy kept a connection with an unfinished header section open"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn sigint_closes_idle_connections_and_exits_cleanly() {
    let origin = Origin::start().await;
    // A long grace period: exiting quickly shows that idle keep-alive connections are closed
    // at once instead of being waited for.
    let mut p = proxy(&["--user", ALICE, "--shutdown-grace", "60"]);
    let mut idle = RawConn::connect(p.addr()).await;
    idle.send(request_head(
        "GET",
        &origin.url("/"),
        &[
            ("Host", &origin.addr().to_string()),
            ("Proxy-Authorization", &alice_basic()),
        ],
    ))
    .await;
    assert_origin_body(&idle.read_response().await);

    let pid = p.pid().to_string();
    let status = tokio::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .await
        .expect("run kill");
    assert!(status.success());
    let exit = p.wait_exit(Duration::from_secs(10)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "exit: {exit:?}\n{}",
        p.stderr()
    );
    assert!(idle.closed_within(Duration::from_secs(5)).await);
}
