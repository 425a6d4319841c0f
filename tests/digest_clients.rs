//! Digest (RFC 7616) through the forward proxy binary with real clients: curl
//! (`--proxy-digest` for a GET, a CONNECT tunnel to an HTTPS origin and a 200 KB POST;
//! `--proxy-anyauth`; a wrong password), Python's `urllib.request.ProxyDigestAuthHandler`,
//! Java's `HttpURLConnection` over a CONNECT tunnel with the JDK's default properties, and
//! headless Chromium driven over its DevTools protocol. Then the nonce rules through the binary
//! with raw requests and the tests' own Digest client: a replayed count, a key shared by
//! instances, an expired nonce (and curl's retry on `stale=true`), `uri` checks.
//!
//! The client programs are in tests/clients. Each runs with the tool found on PATH; a missing
//! one fails its test naming the Debian package (scripts/test installs them as root). Python,
//! Java and Chromium reach the proxy through a [`LoopbackRelay`], which records their request
//! heads (the algorithm each chose is read from its `Proxy-Authorization`) and passes on only
//! requests for loopback targets, so a browser's own background requests never leave the
//! machine.

mod support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use support::{
    challenge_params, curl, proxy_get, request_head, require_tool, spki_sha256_base64,
    start_proxy_with_env, start_proxy_with_user, DigestAnswer, ExampleProcess, LoopbackRelay,
    Origin, OriginResponse, RawConn, RawResponse, TlsOrigin, ORIGIN_BODY,
};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret";
const CREDENTIALS: &str = "alice:s3cret";

/// The bound on one run of a client program (the JDK compiles the source first; Chromium
/// starts a browser).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

fn proxy(extra: &[&str]) -> ExampleProcess {
    start_proxy_with_user(USER, PASSWORD, extra)
}

fn proxy_url(proxy: &ExampleProcess) -> String {
    format!("http://{}", proxy.addr())
}

/// Runs `curl -v AUTH -x PROXY -U CREDENTIALS ARGS...` (`AUTH`: `--proxy-digest` or
/// `--proxy-anyauth`) through `proxy`.
async fn curl_through(
    proxy: &ExampleProcess,
    auth: &str,
    credentials: &str,
    args: &[&str],
) -> support::CurlOutput {
    let url = proxy_url(proxy);
    let mut all = vec!["-v", auth, "-x", &url, "-U", credentials];
    all.extend_from_slice(args);
    curl(&all).await
}

fn client_program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// What a client program left behind.
#[derive(Debug)]
struct Ran {
    status: ExitStatus,
    stdout: String,
    /// Shown in failure messages (through `Debug`).
    #[allow(dead_code)]
    stderr: String,
}

/// Runs `program` with `args` (bounded by [`CLIENT_TIMEOUT`]), with no proxy settings and no
/// JVM options from the environment.
async fn run<S: AsRef<OsStr>>(program: &Path, args: &[S]) -> Ran {
    let mut command = tokio::process::Command::new(program);
    command.args(args).stdin(std::process::Stdio::null());
    for name in [
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
        "no_proxy",
        "NO_PROXY",
        "JAVA_TOOL_OPTIONS",
        "JDK_JAVA_OPTIONS",
        "_JAVA_OPTIONS",
    ] {
        command.env_remove(name);
    }
    command.kill_on_drop(true);
    let output = tokio::time::timeout(CLIENT_TIMEOUT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{} did not finish in {CLIENT_TIMEOUT:?}", program.display()))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    Ran {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// The `Proxy-Authorization` values curl sent, from its `-v` trace.
fn curl_sent_credentials(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix("> Proxy-Authorization: "))
        .collect()
}

/// The `algorithm` of each Digest `Proxy-Authorization` value.
fn algorithms<S: AsRef<str>>(credentials: &[S]) -> Vec<String> {
    credentials
        .iter()
        .map(|c| {
            let c = c.as_ref();
            assert!(c.starts_with("Digest "), "not Digest: {c}");
            challenge_params(c)
                .get("algorithm")
                .cloned()
                .unwrap_or_else(|| "MD5".to_owned())
        })
        .collect()
}

fn alice<'a>(method: &'a str, uri: &'a str, nc: u32) -> DigestAnswer<'a> {
    DigestAnswer {
        user: USER,
        password: PASSWORD,
        method,
        uri,
        nc,
        cnonce: "0a4f113b",
    }
}

/// Whether a 407's challenges say `stale=true`.
fn says_stale(response: &RawResponse) -> bool {
    response
        .header_values("proxy-authenticate")
        .iter()
        .any(|c| {
            challenge_params(c)
                .get("stale")
                .is_some_and(|v| v == "true")
        })
}

// ---------------------------------------------------------------------------------------------
// curl.

#[tokio::test]
async fn curl_proxy_digest_forwards_a_get_with_sha256_and_checks_out() {
    let origin = Origin::start().await;
    let p = proxy(&["--auth", "digest,basic"]);
    let out = curl_through(
        &p,
        "--proxy-digest",
        CREDENTIALS,
        &[&origin.url("/digest-get")],
    )
    .await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
    let sent = curl_sent_credentials(&out.stderr);
    assert_eq!(sent.len(), 1, "{}", out.stderr);
    // curl takes the first Digest challenge: SHA-256 in the default order.
    assert_eq!(algorithms(&sent), ["SHA-256"]);

    // Its response is the one the tests' own Digest client computes from the same values, and
    // the proxy's rspauth too.
    let params = challenge_params(sent[0]);
    assert_eq!(params["uri"], "/digest-get", "curl sends the path");
    let challenge = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("< proxy-authenticate: "))
        .find(|c| c.contains(&format!("nonce=\"{}\"", params["nonce"])))
        .unwrap_or_else(|| panic!("no challenge with curl's nonce: {}", out.stderr));
    let ours = DigestAnswer {
        cnonce: &params["cnonce"],
        ..alice("GET", "/digest-get", 1)
    };
    let (value, rspauth) = ours.credentials(challenge);
    assert_eq!(challenge_params(&value)["response"], params["response"]);
    let info = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("< proxy-authentication-info: "))
        .unwrap_or_else(|| panic!("no Proxy-Authentication-Info: {}", out.stderr));
    assert_eq!(challenge_params(&format!("x {info}"))["rspauth"], rspauth);

    let got = origin.single_request();
    assert_eq!(got.uri, "/digest-get");
    assert!(got.headers.get("proxy-authorization").is_none());
}

#[tokio::test]
async fn curl_proxy_digest_opens_a_connect_tunnel_to_an_https_origin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TlsOrigin::start(dir.path()).await;
    let p = proxy(&["--auth", "digest,basic"]);
    let ca = origin.ca_pem().to_str().expect("utf-8").to_owned();
    let out = curl_through(
        &p,
        "--proxy-digest",
        CREDENTIALS,
        &["-p", "--cacert", &ca, &origin.url("/through-the-tunnel")],
    )
    .await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
    let authority = origin.addr().to_string();
    assert!(
        out.stderr
            .contains(&format!("> CONNECT {authority} HTTP/1.1")),
        "{}",
        out.stderr
    );
    let sent = curl_sent_credentials(&out.stderr);
    assert_eq!(algorithms(&sent), ["SHA-256"], "{}", out.stderr);
    // For CONNECT the digest-uri is the authority.
    assert_eq!(challenge_params(sent[0])["uri"], authority);
    let uris: Vec<_> = origin
        .received()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(uris, ["/through-the-tunnel"]);
}

#[tokio::test]
async fn curl_proxy_digest_posts_200_kb() {
    let dir = tempfile::tempdir().expect("temp dir");
    let body: Vec<u8> = (0..200 * 1024).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("body.bin");
    std::fs::write(&file, &body).expect("write the body");
    let origin = Origin::start().await;
    let p = proxy(&["--auth", "digest,basic"]);
    let data = format!("@{}", file.display());
    let out = curl_through(
        &p,
        "--proxy-digest",
        CREDENTIALS,
        &[
            "-H",
            "Content-Type: application/octet-stream",
            "--data-binary",
            &data,
            &origin.url("/upload"),
        ],
    )
    .await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
    assert_eq!(algorithms(&curl_sent_credentials(&out.stderr)), ["SHA-256"]);
    // The body reaches the origin once, whole.
    let got = origin.single_request();
    assert_eq!(got.method, http::Method::POST);
    assert_eq!(got.body.len(), body.len());
    assert!(got.body == body, "the body arrived altered");
}

#[tokio::test]
async fn curl_proxy_anyauth_chooses_digest_over_basic_in_either_order() {
    let origin = Origin::start().await;
    for order in ["digest,basic", "basic,digest"] {
        let p = start_proxy_with_env(
            USER,
            PASSWORD,
            &["--auth", order],
            &[("RUST_LOG", "info,tower_proxy_auth=debug")],
        );
        let out = curl_through(
            &p,
            "--proxy-anyauth",
            CREDENTIALS,
            &[&origin.url("/anyauth")],
        )
        .await;
        out.assert_success();
        assert_eq!(out.stdout, ORIGIN_BODY, "{order}");
        // Both schemes were offered, in the order asked.
        let offered: Vec<_> = out
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix("< proxy-authenticate: "))
            .map(|c| c.split(' ').next().unwrap_or_default())
            .collect();
        let expected = if order == "digest,basic" {
            ["Digest", "Digest", "Basic"]
        } else {
            ["Basic", "Digest", "Digest"]
        };
        assert_eq!(offered, expected, "{order}");
        // curl answered with Digest, the proxy accepted Digest.
        let sent = curl_sent_credentials(&out.stderr);
        assert_eq!(algorithms(&sent), ["SHA-256"], "{order}: {}", out.stderr);
        let accepted = p.wait_for_log(|l| l.contains("credentials accepted")).await;
        assert!(
            accepted.contains("scheme=\"Digest\""),
            "{order}: {accepted}"
        );
        assert!(accepted.contains("user=alice"), "{order}: {accepted}");
    }
}

#[tokio::test]
async fn curl_with_a_wrong_password_gets_407() {
    let origin = Origin::start().await;
    let p = proxy(&["--auth", "digest,basic"]);
    let out = curl_through(
        &p,
        "--proxy-digest",
        "alice:wrong",
        &["-o", "/dev/null", "-w", "%{http_code}", &origin.url("/")],
    )
    .await;
    assert_eq!(out.stdout, "407", "{}", out.stderr);
    // It did answer the challenge (with Digest), and the answer was refused.
    assert_eq!(algorithms(&curl_sent_credentials(&out.stderr)), ["SHA-256"]);
    assert!(origin.received().is_empty());
}

/// curl follows a redirect from a slow origin with the nonce it already holds; past the
/// nonce's lifetime the proxy answers `stale=true`, and curl answers the new nonce by itself
/// without failing the transfer.
#[tokio::test]
async fn an_expired_nonce_is_stale_and_curl_retries_by_itself() {
    let target = Origin::start().await;
    let redirect = Origin::start_with(OriginResponse {
        status: 302,
        headers: vec![(
            HeaderName::from_static("location"),
            HeaderValue::from_str(&target.url("/after-redirect")).expect("location"),
        )],
        body: bytes::Bytes::new(),
        delay: Duration::from_millis(1500),
    })
    .await;
    let p = proxy(&["--auth", "digest", "--digest-nonce-lifetime", "1"]);
    let out = curl_through(
        &p,
        "--proxy-digest",
        CREDENTIALS,
        &["-L", &redirect.url("/slow")],
    )
    .await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
    let sent = curl_sent_credentials(&out.stderr);
    let nonces: Vec<String> = sent
        .iter()
        .map(|c| challenge_params(c)["nonce"].clone())
        .collect();
    // The first nonce twice (the second time too late), then the fresh one.
    assert_eq!(nonces.len(), 3, "{}", out.stderr);
    assert_eq!(nonces[0], nonces[1]);
    assert_ne!(nonces[1], nonces[2]);
    let stale: Vec<_> = out
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("< proxy-authenticate: "))
        .filter(|c| {
            challenge_params(c)
                .get("stale")
                .is_some_and(|v| v == "true")
        })
        .collect();
    assert!(!stale.is_empty(), "no stale=true challenge: {}", out.stderr);
    assert!(
        stale
            .iter()
            .any(|c| c.contains(&format!("nonce=\"{}\"", nonces[2]))),
        "curl answered the stale challenge's nonce"
    );
    assert_eq!(target.single_request().uri, "/after-redirect");
    assert_eq!(redirect.single_request().uri, "/slow");
}

// ---------------------------------------------------------------------------------------------
// Python urllib.

async fn urllib(proxy: std::net::SocketAddr, url: &str) -> Ran {
    let python = require_tool("python3", "python3");
    let script = client_program("urllib_proxy_digest.py");
    let port = proxy.port().to_string();
    run(
        &python,
        &[script.to_str().expect("utf-8"), &port, USER, PASSWORD, url],
    )
    .await
}

/// urllib reads only the first `Proxy-Authenticate` line and knows only MD5, so the default
/// order (SHA-256 first) stops it; with MD5 first it authenticates, sending the full URL as
/// its digest-uri.
#[tokio::test]
async fn urllib_needs_md5_first() {
    let origin = Origin::start().await;
    let p = proxy(&["--auth", "digest,basic"]);
    let relay = LoopbackRelay::start(p.addr()).await;
    let out = urllib(relay.addr(), &origin.url("/urllib")).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(
        out.stdout.trim_end(),
        "error: ValueError(\"Unsupported digest authentication algorithm 'SHA-256'\")",
        "{out:?}"
    );
    assert!(relay.proxy_authorizations().is_empty());
    assert!(origin.received().is_empty());

    for algorithms_flag in ["MD5", "MD5,SHA-256"] {
        let p = proxy(&[
            "--auth",
            "digest,basic",
            "--digest-algorithms",
            algorithms_flag,
        ]);
        let relay = LoopbackRelay::start(p.addr()).await;
        let url = origin.url("/urllib");
        let out = urllib(relay.addr(), &url).await;
        assert_eq!(out.stdout, format!("200\n{ORIGIN_BODY}"), "{out:?}");
        let sent = relay.proxy_authorizations();
        assert_eq!(algorithms(&sent), ["MD5"], "{algorithms_flag}");
        assert_eq!(challenge_params(&sent[0])["uri"], url);
    }
    assert_eq!(origin.received().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Java HttpURLConnection.

/// The JDK the expectations below were recorded with (Debian 12's; scripts/test installs it).
const JDK_PACKAGE: &str = "openjdk-17-jdk-headless";

async fn java(proxy: std::net::SocketAddr, url: &str, ca: &Path) -> Ran {
    let java = require_tool("java", JDK_PACKAGE);
    // The source launcher compiles ProxyClient.java: a JDK, not a JRE alone.
    require_tool("javac", JDK_PACKAGE);
    let source = client_program("ProxyClient.java");
    let port = proxy.port().to_string();
    run(
        &java,
        &[
            source.to_str().expect("utf-8"),
            &port,
            USER,
            PASSWORD,
            url,
            ca.to_str().expect("utf-8"),
        ],
    )
    .await
}

/// `java -version`, for failure messages (the choices below are those of one JDK build).
fn java_version() -> String {
    let java = require_tool("java", JDK_PACKAGE);
    let out = std::process::Command::new(java)
        .arg("-version")
        .output()
        .expect("java -version");
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The JDK's default properties include `jdk.http.auth.tunneling.disabledSchemes=Basic`, yet
/// it answers a Digest challenge on CONNECT. Of several Digest challenges OpenJDK 17 takes
/// the last (its table of challenges holds one per scheme, a later one replacing an earlier
/// one), so with the default order, SHA-256 then MD5, it uses MD5, and with MD5 first,
/// SHA-256. It knows SHA-256 and MD5 (and MD5-sess), not SHA-512-256: offered that alone it
/// gives up without answering.
#[tokio::test]
async fn java_tunnels_to_https_with_digest_and_default_properties() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TlsOrigin::start(dir.path()).await;
    let url = origin.url("/java");
    let version = java_version();
    for (flags, expected) in [
        (&["--auth", "digest,basic"][..], Some("MD5")),
        (
            &[
                "--auth",
                "digest,basic",
                "--digest-algorithms",
                "MD5,SHA-256",
            ][..],
            Some("SHA-256"),
        ),
        (
            &["--auth", "digest", "--digest-algorithms", "SHA-256"][..],
            Some("SHA-256"),
        ),
        (
            &["--auth", "digest", "--digest-algorithms", "MD5"][..],
            Some("MD5"),
        ),
        (
            &["--auth", "digest", "--digest-algorithms", "SHA-512-256"][..],
            None,
        ),
    ] {
        let p = proxy(flags);
        let relay = LoopbackRelay::start(p.addr()).await;
        let out = java(relay.addr(), &url, origin.ca_pem()).await;
        assert!(out.status.success(), "{flags:?}: {out:?}");
        let sent: Vec<String> = relay
            .requests()
            .into_iter()
            .filter(|r| r.method == "CONNECT")
            .filter_map(|r| r.header("proxy-authorization").map(str::to_owned))
            .collect();
        let Some(expected) = expected else {
            assert_eq!(out.stdout, "407\n\nPROXY digest\n", "{version} {flags:?}");
            assert!(sent.is_empty(), "{version} {flags:?}: {sent:?}");
            continue;
        };
        assert_eq!(
            out.stdout,
            format!("200\n{ORIGIN_BODY}PROXY digest\n"),
            "{version} {flags:?}: {out:?}"
        );
        assert_eq!(algorithms(&sent), [expected], "{version} {flags:?}");
        let params = challenge_params(&sent[0]);
        assert_eq!(params["uri"], origin.addr().to_string());
        assert_eq!(params["username"], USER);
    }
    assert_eq!(origin.received().len(), 4);
}

/// With Basic alone the JDK does not answer the challenge of a CONNECT at all (its
/// Authenticator is never asked): the request ends with the proxy's 407.
#[tokio::test]
async fn java_will_not_tunnel_with_basic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TlsOrigin::start(dir.path()).await;
    let p = proxy(&["--auth", "basic"]);
    let relay = LoopbackRelay::start(p.addr()).await;
    let out = java(relay.addr(), &origin.url("/java-basic"), origin.ca_pem()).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, "407\n\n", "{out:?}");
    assert!(relay.proxy_authorizations().is_empty(), "{out:?}");
    assert!(origin.received().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Chromium.

async fn chromium(proxy: std::net::SocketAddr, url: &str, flags: &[&str]) -> Ran {
    let node = require_tool("node", "nodejs");
    let browser = require_tool("chromium", "chromium");
    let script = client_program("chromium_proxy.mjs");
    let port = proxy.port().to_string();
    let mut args = vec![
        script.to_str().expect("utf-8"),
        browser.to_str().expect("utf-8"),
        &port,
        USER,
        PASSWORD,
        url,
    ];
    args.extend_from_slice(flags);
    run(&node, &args).await
}

/// Chromium answers the proxy's Digest challenge (through the DevTools auth handler, as a user
/// typing into its dialog) with the first algorithm offered that it knows: SHA-256 in the
/// default order, MD5 when MD5 comes first.
#[tokio::test]
async fn chromium_gets_a_page_through_the_proxy_with_digest() {
    let origin = Origin::start().await;
    for (flags, expected) in [
        (&["--auth", "digest,basic"][..], "SHA-256"),
        (
            &[
                "--auth",
                "digest,basic",
                "--digest-algorithms",
                "MD5,SHA-256",
            ][..],
            "MD5",
        ),
    ] {
        let p = proxy(flags);
        let relay = LoopbackRelay::start(p.addr()).await;
        let out = chromium(relay.addr(), &origin.url("/chromium"), &[]).await;
        assert_eq!(
            out.stdout, "auth Proxy digest\nstatus 200\n",
            "{flags:?}: {out:?}"
        );
        let page: Vec<_> = relay
            .requests()
            .into_iter()
            .filter(|r| r.refused.is_none())
            .filter_map(|r| r.header("proxy-authorization").map(str::to_owned))
            .collect();
        assert_eq!(algorithms(&page), [expected], "{flags:?}");
        assert_eq!(challenge_params(&page[0])["uri"], "/chromium");
        assert_no_request_left_loopback(&relay);
    }
    assert_eq!(origin.received().len(), 2);
}

/// An HTTPS page through a CONNECT tunnel; Chromium trusts the test certificate by its key's
/// hash (`--ignore-certificate-errors-spki-list`), not by ignoring every error.
#[tokio::test]
async fn chromium_gets_an_https_page_through_a_connect_tunnel() {
    let dir = tempfile::tempdir().expect("temp dir");
    let origin = TlsOrigin::start(dir.path()).await;
    let pin = format!(
        "--ignore-certificate-errors-spki-list={}",
        spki_sha256_base64(origin.ca_pem())
    );
    let p = proxy(&["--auth", "digest,basic"]);
    let relay = LoopbackRelay::start(p.addr()).await;
    let out = chromium(relay.addr(), &origin.url("/chromium-tls"), &[&pin]).await;
    assert_eq!(out.stdout, "auth Proxy digest\nstatus 200\n", "{out:?}");
    let authority = origin.addr().to_string();
    let tunnel: Vec<_> = relay
        .requests()
        .into_iter()
        .filter(|r| r.method == "CONNECT" && r.target == authority)
        .filter_map(|r| r.header("proxy-authorization").map(str::to_owned))
        .collect();
    assert_eq!(algorithms(&tunnel), ["SHA-256"]);
    assert_eq!(challenge_params(&tunnel[0])["uri"], authority);
    assert_no_request_left_loopback(&relay);
    let uris: Vec<_> = origin
        .received()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(uris, ["/chromium-tls"]);
}

/// Chromium's own requests (update checks, sign-in) went to the relay and no further.
fn assert_no_request_left_loopback(relay: &LoopbackRelay) {
    for request in relay.refused() {
        assert_eq!(
            request.refused,
            Some("target not on loopback"),
            "{request:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Nonces and counts through the binary, with raw requests.

/// A 407's challenge for `url` (SHA-256).
async fn challenge(proxy: std::net::SocketAddr, url: &str) -> String {
    let first = proxy_get(proxy, url, &[]).await;
    assert_eq!(first.status, 407, "{first:#?}");
    first.digest_challenge("SHA-256")
}

#[tokio::test]
async fn the_same_proxy_authorization_twice_is_refused_and_the_next_count_passes() {
    let origin = Origin::start().await;
    let p = proxy(&["--auth", "digest,basic"]);
    let url = origin.url("/replay");
    let challenge = challenge(p.addr(), &url).await;
    let (once, _) = alice("GET", "/replay", 1).credentials(&challenge);
    let first = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &once)]).await;
    assert_eq!(first.status, 200, "{first:#?}");
    let replayed = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &once)]).await;
    assert_eq!(replayed.status, 407, "{replayed:#?}");
    assert!(!says_stale(&replayed), "a replay is not a stale nonce");
    let (next, _) = alice("GET", "/replay", 2).credentials(&challenge);
    let second = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &next)]).await;
    assert_eq!(second.status, 200, "{second:#?}");
    assert_eq!(origin.received().len(), 2);
}

/// Instances started with the same `--digest-key-file` verify each other's nonces; one with
/// another key cannot. Each instance keeps its counts in its own memory (the proxy has no
/// shared replay store), so B does not take A's nonce as it is (a request A took could be
/// replayed to B): it answers `stale=true`, and the client retries with B's nonce without
/// asking the user. C cannot verify the HMAC at all: a plain 407, no `stale`.
#[tokio::test]
async fn instances_sharing_a_key_file_know_each_others_nonces_and_another_key_does_not() {
    let dir = tempfile::tempdir().expect("temp dir");
    let shared = dir.path().join("nonce.key");
    let other = dir.path().join("other.key");
    for key in [&shared, &other] {
        support::openssl(&["rand", "-hex", "-out", key.to_str().expect("utf-8"), "32"]);
    }
    let origin = Origin::start().await;
    let url = origin.url("/fleet");
    let with_key = |key: &Path| {
        proxy(&[
            "--auth",
            "digest,basic",
            "--digest-key-file",
            key.to_str().expect("utf-8"),
        ])
    };
    let (a, b, c) = (with_key(&shared), with_key(&shared), with_key(&other));

    let issued_by_a = challenge(a.addr(), &url).await;
    let (credentials, _) = alice("GET", "/fleet", 1).credentials(&issued_by_a);

    let on_b = proxy_get(b.addr(), &url, &[("Proxy-Authorization", &credentials)]).await;
    assert_eq!(on_b.status, 407, "{on_b:#?}");
    assert!(says_stale(&on_b), "B verified A's nonce: {on_b:#?}");
    let renewed = on_b.digest_challenge("SHA-256");
    let (retry, _) = alice("GET", "/fleet", 1).credentials(&renewed);
    let retried = proxy_get(b.addr(), &url, &[("Proxy-Authorization", &retry)]).await;
    assert_eq!(retried.status, 200, "{retried:#?}");

    let on_c = proxy_get(c.addr(), &url, &[("Proxy-Authorization", &credentials)]).await;
    assert_eq!(on_c.status, 407, "{on_c:#?}");
    assert!(!says_stale(&on_c), "C cannot verify A's nonce: {on_c:#?}");

    // A takes its own nonce.
    let on_a = proxy_get(a.addr(), &url, &[("Proxy-Authorization", &credentials)]).await;
    assert_eq!(on_a.status, 200, "{on_a:#?}");
    assert_eq!(origin.received().len(), 2);
}

#[tokio::test]
async fn an_expired_nonce_with_the_right_response_gets_stale_true() {
    let origin = Origin::start().await;
    let p = proxy(&["--auth", "digest", "--digest-nonce-lifetime", "1"]);
    let url = origin.url("/late");
    let challenge = challenge(p.addr(), &url).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (late, _) = alice("GET", "/late", 1).credentials(&challenge);
    let stale = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &late)]).await;
    assert_eq!(stale.status, 407, "{stale:#?}");
    assert!(says_stale(&stale), "{stale:#?}");
    let (fresh, _) = alice("GET", "/late", 1).credentials(&stale.digest_challenge("SHA-256"));
    let ok = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &fresh)]).await;
    assert_eq!(ok.status, 200, "{ok:#?}");
}

#[tokio::test]
async fn a_uri_that_is_not_the_request_target_gets_400() {
    let origin = Origin::start().await;
    let p = proxy(&["--auth", "digest,basic"]);
    let url = origin.url("/a");
    let challenge = challenge(p.addr(), &url).await;
    // Correct over "/b", but the request is for "/a".
    let (other, _) = alice("GET", "/b", 1).credentials(&challenge);
    let mismatch = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &other)]).await;
    assert_eq!(mismatch.status, 400, "{mismatch:#?}");
    assert!(origin.received().is_empty());
    // The right uri passes.
    let (right, _) = alice("GET", "/a", 2).credentials(&challenge);
    let ok = proxy_get(p.addr(), &url, &[("Proxy-Authorization", &right)]).await;
    assert_eq!(ok.status, 200, "{ok:#?}");
}

/// A CONNECT's digest-uri is its authority; a response computed correctly over "/" (what a
/// client that treats CONNECT like a GET would send) is refused, and no tunnel opens.
#[tokio::test]
async fn a_connect_whose_uri_is_slash_is_refused() {
    let origin = Origin::start().await;
    let p = proxy(&["--auth", "digest,basic"]);
    let authority = origin.addr().to_string();
    let connect = |credentials: Option<String>| {
        let authority = authority.clone();
        let proxy = p.addr();
        async move {
            let mut fields = vec![("Host", authority.clone())];
            if let Some(c) = credentials {
                fields.push(("Proxy-Authorization", c));
            }
            let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let mut conn = RawConn::connect(proxy).await;
            conn.send(request_head("CONNECT", &authority, &fields))
                .await;
            conn.read_response_to("CONNECT").await
        }
    };
    let first = connect(None).await;
    assert_eq!(first.status, 407, "{first:#?}");
    let challenge = first.digest_challenge("SHA-256");
    let (slash, _) = alice("CONNECT", "/", 1).credentials(&challenge);
    let refused = connect(Some(slash)).await;
    assert_eq!(refused.status, 400, "{refused:#?}");
    // The authority, as RFC 7616 §3.4 with RFC 9110's request-target for CONNECT, opens it.
    let (right, _) = alice("CONNECT", &authority, 2).credentials(&challenge);
    let opened = connect(Some(right)).await;
    assert_eq!(opened.status, 200, "{opened:#?}");
}
