//! The real client address in the forward proxy (`proxy/`): by default the TCP peer;
//! `--trusted-proxy CIDR` makes it believe `X-Forwarded-For` (or `Forwarded: for=` with
//! `--forwarded-header forwarded`) from trusted peers only, rightmost untrusted address first;
//! `--proxy-protocol` reads HAProxy's PROXY protocol header (v1 and v2) at the start of each
//! connection, before TLS and HTTP, and closes connections without a valid one. The address is
//! what the access log shows and what the failure throttle counts by, and both are checked
//! here through the real proxy, with curl, raw sockets from distinct 127.x.y.z addresses, and
//! a TCP balancer of the test's own that writes PROXY headers in front of curl (TLS included).
//! The PROXY headers are written by hand from the spec
//! (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>), not by the parser's crate.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use support::{
    basic, curl, request_head, run_example_to_exit, self_signed_certificate, wait_for_window_room,
    ExampleProcess, KeepAliveClient, Origin, RawConn, ORIGIN_BODY, PROXY, THROTTLE_WINDOW,
};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret";

fn proxy(extra: &[&str]) -> ExampleProcess {
    support::start_proxy_with_user(USER, PASSWORD, extra)
}

fn right() -> String {
    basic(USER, PASSWORD.as_bytes())
}

fn wrong(n: usize) -> String {
    basic(USER, format!("wrong-{n}").as_bytes())
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("an IP address")
}

/// The access log line of the request for `path`, once written.
async fn client_of(p: &ExampleProcess, path: &str) -> String {
    p.wait_for_access(|l| l.target.ends_with(path)).await.client
}

/// A GET for `url` with `fields`, as raw bytes (a `Host` field made from the URL first).
fn get_request(url: &str, fields: &[(&str, &str)]) -> Vec<u8> {
    let host = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .expect("a host");
    let mut all = vec![("Host", host)];
    all.extend_from_slice(fields);
    request_head("GET", url, &all).into_bytes()
}

/// Everything the proxy sends on `conn` until it closes (bounded): what a client sees of a
/// connection the proxy refuses.
async fn rest_of(conn: RawConn) -> Vec<u8> {
    let mut stream = conn.into_stream();
    let mut out = Vec::new();
    let read = tokio::time::timeout(support::TIMEOUT, stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the proxy kept the connection open");
    out
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol headers, by hand from the spec.

/// A version 1 line for a TCP connection from `source` to `destination` (§2.1).
fn v1(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let family = if source.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {family} {} {} {} {}\r\n",
        source.ip(),
        destination.ip(),
        source.port(),
        destination.port()
    )
    .into_bytes()
}

/// A version 2 block (§2.2): the 12-byte signature, version 2 with `command` (0 LOCAL, 1
/// PROXY), the family and transport byte, the length, then `body`.
fn v2(command: u8, family_transport: u8, body: &[u8]) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.push(0x20 | command);
    out.push(family_transport);
    out.extend_from_slice(&u16::try_from(body.len()).expect("short").to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A version 2 PROXY block for TCP from `source` to `destination`, with `tlvs` after the
/// addresses.
fn v2_proxy(source: SocketAddr, destination: SocketAddr, tlvs: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    let family = match (source.ip(), destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            body.extend_from_slice(&s.octets());
            body.extend_from_slice(&d.octets());
            0x11
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            body.extend_from_slice(&v6(s).octets());
            body.extend_from_slice(&v6(d).octets());
            0x21
        }
    };
    body.extend_from_slice(&source.port().to_be_bytes());
    body.extend_from_slice(&destination.port().to_be_bytes());
    body.extend_from_slice(tlvs);
    v2(1, family, &body)
}

/// Opens a connection to the proxy from `from`, writes `header`, and returns it.
async fn with_header(proxy: SocketAddr, from: IpAddr, header: &[u8]) -> RawConn {
    let mut conn = RawConn::connect_from(from, proxy).await;
    conn.send(header).await;
    conn
}

/// A TCP balancer of the test's own (HAProxy's `mode tcp` with `send-proxy`): accepts clients
/// on 127.0.0.1, connects to the proxy, writes the header `header` makes of the client's
/// address, then relays bytes both ways until either side closes.
struct Balancer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Balancer {
    async fn start(
        proxy: SocketAddr,
        header: impl Fn(SocketAddr) -> Vec<u8> + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let header = Arc::new(header);
        let task = tokio::spawn(async move {
            while let Ok((mut client, peer)) = listener.accept().await {
                let header = header.clone();
                tokio::spawn(async move {
                    let Ok(mut upstream) = TcpStream::connect(proxy).await else {
                        return;
                    };
                    if upstream.write_all(&header(peer)).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        Self { addr, task }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// X-Forwarded-For and Forwarded.

#[tokio::test]
async fn x_forwarded_for_from_a_trusted_peer_names_the_client_for_the_log_and_the_throttle() {
    let origin = Origin::start().await;
    let p = proxy(&["--trusted-proxy", "127.0.0.1/32"]);
    let proxy_url = format!("http://{USER}:{PASSWORD}@{}", p.addr());

    // curl through the "balancer" 127.0.0.1: the client wrote 198.51.100.7 itself, the
    // balancer appended 203.0.113.4.
    let out = curl(&[
        "-x",
        &proxy_url,
        "-H",
        "X-Forwarded-For: 198.51.100.7, 203.0.113.4",
        &origin.url("/xff-curl"),
    ])
    .await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
    assert_eq!(client_of(&p, "/xff-curl").await, "203.0.113.4");

    // The throttle counts per that address: 203.0.113.5's 10 wrong passwords are its own.
    // (Not 203.0.113.4: the credentials that succeeded there skip the counts from there.)
    wait_for_window_room(THROTTLE_WINDOW, Duration::from_secs(10)).await;
    let mut lb = KeepAliveClient::new(p.addr(), ip("127.0.0.1"));
    let url = origin.url("/xff");
    let from = |client: &'static str| ("X-Forwarded-For", client);
    for n in 0..10 {
        let auth = wrong(n);
        let r = lb
            .get(&url, &[from("203.0.113.5"), ("Proxy-Authorization", &auth)])
            .await;
        assert_eq!(r.status, 407, "wrong password #{n}: {r:#?}");
    }
    let r = lb
        .get(
            &url,
            &[from("203.0.113.5"), ("Proxy-Authorization", &right())],
        )
        .await;
    assert_eq!(r.status, 429, "{r:#?}");
    // Another client behind the same balancer is another address: not throttled.
    let r = lb
        .get(
            &url,
            &[from("203.0.113.6"), ("Proxy-Authorization", &wrong(99))],
        )
        .await;
    assert_eq!(r.status, 407, "{r:#?}");
    let r = lb
        .get(
            &url,
            &[from("203.0.113.6"), ("Proxy-Authorization", &right())],
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");
    // Without the field, the balancer's own address (127.0.0.1) is the client: not throttled.
    let r = lb.get(&url, &[("Proxy-Authorization", &right())]).await;
    assert_eq!(r.status, 200, "{r:#?}");

    // (Lines are written in order: once the last is there, all are.)
    p.wait_for_access(|l| l.target == url && l.client == "127.0.0.1")
        .await;
    let lines = p.access_lines();
    let seen: Vec<(&str, u16)> = lines
        .iter()
        .filter(|l| l.target == url)
        .map(|l| (l.client.as_str(), l.status))
        .collect();
    let mut expected = vec![("203.0.113.5", 407); 10];
    expected.extend([
        ("203.0.113.5", 429),
        ("203.0.113.6", 407),
        ("203.0.113.6", 200),
        ("127.0.0.1", 200),
    ]);
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn forwarded_for_from_a_trusted_peer_with_forwarded_header_forwarded() {
    let origin = Origin::start().await;
    let p = proxy(&[
        "--trusted-proxy",
        "127.0.0.0/8",
        "--forwarded-header",
        "forwarded",
    ]);
    let proxy_url = format!("http://{USER}:{PASSWORD}@{}", p.addr());
    let cases = [
        // RFC 7239 §7.4's example, and a trusted hop (127.0.0.9) right of the client.
        (
            "/fwd-1",
            "for=192.0.2.43, for=\"[2001:db8:cafe::17]:4711\"",
            "2001:db8:cafe::17",
        ),
        (
            "/fwd-2",
            "for=198.51.100.17;proto=http, for=127.0.0.9",
            "198.51.100.17",
        ),
        // An obfuscated node names nobody: the walk stops at the trusted peer.
        ("/fwd-3", "for=\"_gazonk\"", "127.0.0.1"),
    ];
    for (path, value, _) in cases {
        let field = format!("Forwarded: {value}");
        curl(&["-x", &proxy_url, "-H", &field, &origin.url(path)])
            .await
            .assert_success();
    }
    // X-Forwarded-For is not the configured field: ignored.
    curl(&[
        "-x",
        &proxy_url,
        "-H",
        "X-Forwarded-For: 203.0.113.5",
        &origin.url("/fwd-xff"),
    ])
    .await
    .assert_success();
    for (path, _, client) in cases {
        assert_eq!(client_of(&p, path).await, client, "{path}");
    }
    assert_eq!(client_of(&p, "/fwd-xff").await, "127.0.0.1");
}

#[tokio::test]
async fn a_spoofed_x_forwarded_for_from_a_peer_that_is_not_trusted_is_ignored() {
    let origin = Origin::start().await;
    // Only 127.0.0.2 is a balancer; 127.0.0.1 is a client that writes its own field.
    let p = proxy(&["--trusted-proxy", "127.0.0.2"]);
    let url = origin.url("/spoof");
    wait_for_window_room(THROTTLE_WINDOW, Duration::from_secs(10)).await;

    // A guesser rotating the field on every attempt still gets 10 guesses, all counted
    // against its own address.
    let mut guesser = KeepAliveClient::new(p.addr(), ip("127.0.0.1"));
    for n in 0..10 {
        let spoofed = format!("203.0.113.{n}");
        let auth = wrong(n);
        let r = guesser
            .get(
                &url,
                &[
                    ("X-Forwarded-For", &spoofed),
                    ("Proxy-Authorization", &auth),
                ],
            )
            .await;
        assert_eq!(r.status, 407, "guess #{n}: {r:#?}");
    }
    let r = guesser
        .get(
            &url,
            &[
                ("X-Forwarded-For", "203.0.113.200"),
                ("Proxy-Authorization", &right()),
            ],
        )
        .await;
    assert_eq!(r.status, 429, "{r:#?}");

    // The trusted balancer's field is believed.
    let mut lb = KeepAliveClient::new(p.addr(), ip("127.0.0.2"));
    let r = lb
        .get(
            &url,
            &[
                ("X-Forwarded-For", "198.51.100.50"),
                ("Proxy-Authorization", &right()),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{r:#?}");

    p.wait_for_access(|l| l.client == "198.51.100.50").await;
    let clients: Vec<String> = p
        .access_lines()
        .into_iter()
        .filter(|l| l.target == url)
        .map(|l| l.client)
        .collect();
    let mut expected = vec!["127.0.0.1".to_owned(); 11];
    expected.push("198.51.100.50".to_owned());
    assert_eq!(clients, expected);
}

#[tokio::test]
async fn without_trusted_proxies_no_field_is_believed() {
    let origin = Origin::start().await;
    let p = proxy(&[]);
    let proxy_url = format!("http://{USER}:{PASSWORD}@{}", p.addr());
    for (path, field) in [
        ("/none-xff", "X-Forwarded-For: 203.0.113.5"),
        ("/none-fwd", "Forwarded: for=203.0.113.5"),
    ] {
        curl(&["-x", &proxy_url, "-H", field, &origin.url(path)])
            .await
            .assert_success();
        assert_eq!(client_of(&p, path).await, "127.0.0.1", "{field}");
    }
}

#[tokio::test]
async fn bad_client_address_flags_stop_start_up() {
    for (args, expected) in [
        (&["--trusted-proxy", "10.0.0.0/33"][..], "not a CIDR block"),
        (&["--trusted-proxy", "proxy.example"], "not a CIDR block"),
        (&["--forwarded-header", "forwarded"], "--trusted-proxy"),
        (
            &["--trusted-proxy", "10.0.0.0/8", "--forwarded-header", "via"],
            "x-forwarded-for",
        ),
    ] {
        let done = run_example_to_exit(PROXY, args, support::TIMEOUT);
        assert_eq!(done.status.code(), Some(2), "{args:?}: {}", done.stderr);
        assert!(done.stderr.contains(expected), "{args:?}: {}", done.stderr);
    }
}

// ---------------------------------------------------------------------------------------------
// The PROXY protocol.

#[tokio::test]
async fn proxy_protocol_v1_and_v2_headers_name_the_client() {
    let origin = Origin::start().await;
    let p = proxy(&["--proxy-protocol"]);
    let to = p.addr();
    let local = ip("127.0.0.1");
    let auth = right();
    let from = |text: &str| text.parse::<SocketAddr>().expect("an address");

    let mut cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "/v1-tcp4",
            v1(from("198.51.100.20:40000"), to),
            "198.51.100.20",
        ),
        (
            "/v1-tcp6",
            v1(from("[2001:db8::20]:40000"), from("[::1]:3128")),
            "2001:db8::20",
        ),
        ("/v1-unknown", b"PROXY UNKNOWN\r\n".to_vec(), "127.0.0.1"),
        (
            "/v2-ipv4",
            v2_proxy(from("198.51.100.21:40001"), to, &[]),
            "198.51.100.21",
        ),
        (
            "/v2-ipv6-tlvs",
            // A NOOP TLV (0x04) and an ALPN TLV (0x01, "h2") after the addresses.
            v2_proxy(
                from("[2001:db8::21]:40001"),
                from("[2001:db8::1]:3128"),
                &[0x04, 0, 2, 0, 0, 0x01, 0, 2, b'h', b'2'],
            ),
            "2001:db8::21",
        ),
        // LOCAL (a balancer's health check) and UNSPEC: the TCP peer stands.
        ("/v2-local", v2(0, 0x00, &[]), "127.0.0.1"),
        ("/v2-unspec", v2(1, 0x00, &[]), "127.0.0.1"),
    ];
    // Every header, with the first request right behind it in the same write.
    for (path, header, _) in &mut cases {
        header.extend(get_request(
            &origin.url(path),
            &[("Proxy-Authorization", &auth)],
        ));
        let mut conn = with_header(to, local, header).await;
        let r = conn.read_response().await;
        assert_eq!(r.status, 200, "{path}: {r:#?}");
        // Keep-alive: the next request on the connection has the same client.
        let second = format!("{path}-again");
        conn.send(get_request(
            &origin.url(&second),
            &[("Proxy-Authorization", &auth)],
        ))
        .await;
        assert_eq!(conn.read_response().await.status, 200, "{second}");
    }
    for (path, _, client) in &cases {
        assert_eq!(client_of(&p, path).await, *client, "{path}");
        assert_eq!(
            client_of(&p, &format!("{path}-again")).await,
            *client,
            "{path}"
        );
    }

    // A header that arrives in pieces, the request after a pause.
    let header = v2_proxy(from("198.51.100.22:40002"), to, &[]);
    let mut conn = with_header(to, local, &header[..7]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.send(&header[7..]).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.send(get_request(
        &origin.url("/pieces"),
        &[("Proxy-Authorization", &auth)],
    ))
    .await;
    assert_eq!(conn.read_response().await.status, 200);
    assert_eq!(client_of(&p, "/pieces").await, "198.51.100.22");

    // A real client's header: curl's `--haproxy-protocol` (v1, its own addresses).
    let proxy_url = format!("http://{USER}:{PASSWORD}@{to}");
    let out = curl(&[
        "--haproxy-protocol",
        "-x",
        &proxy_url,
        &origin.url("/curl-v1"),
    ])
    .await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
    assert_eq!(client_of(&p, "/curl-v1").await, "127.0.0.1");

    // The throttle counts per the header's address: 198.51.100.30's guesses are its own.
    wait_for_window_room(THROTTLE_WINDOW, Duration::from_secs(10)).await;
    let origin_addr = origin.addr();
    let attempt = |source: &'static str, credentials: String| async move {
        let mut bytes = v1(source.parse().expect("address"), to);
        bytes.extend(get_request(
            &format!("http://{origin_addr}/throttle"),
            &[("Proxy-Authorization", &credentials)],
        ));
        with_header(to, local, &bytes)
            .await
            .read_response()
            .await
            .status
    };
    for n in 0..10 {
        assert_eq!(
            attempt("198.51.100.30:1000", wrong(n)).await,
            407,
            "guess #{n}"
        );
    }
    assert_eq!(attempt("198.51.100.30:1001", right()).await, 429);
    assert_eq!(attempt("198.51.100.31:1000", wrong(0)).await, 407);
    assert_eq!(attempt("198.51.100.31:1001", right()).await, 200);
}

#[tokio::test]
async fn tls_and_plain_clients_behind_a_proxy_protocol_balancer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = self_signed_certificate(dir.path());
    let origin = Origin::start().await;
    let p = proxy(&["--proxy-protocol", "--tls-cert", &cert, "--tls-key", &key]);
    let to = p.addr();
    // The balancer says its clients come from 203.0.113.77 (v2) before curl's TLS handshake.
    let balancer = Balancer::start(to, move |client| {
        v2_proxy(SocketAddr::new(ip("203.0.113.77"), client.port()), to, &[])
    })
    .await;
    let proxy_url = format!("https://127.0.0.1:{}", balancer.addr.port());
    let out = curl(&[
        "--proxy",
        &proxy_url,
        "--proxy-cacert",
        &cert,
        "--proxy-user",
        "alice:s3cret",
        &origin.url("/tls-behind-balancer"),
    ])
    .await;
    out.assert_success();
    assert_eq!(out.stdout, ORIGIN_BODY);
    assert_eq!(client_of(&p, "/tls-behind-balancer").await, "203.0.113.77");

    // Plain HTTP through a v1 balancer.
    let plain = proxy(&["--proxy-protocol"]);
    let to = plain.addr();
    let balancer = Balancer::start(to, move |client| {
        v1(SocketAddr::new(ip("203.0.113.78"), client.port()), to)
    })
    .await;
    let proxy_url = format!("http://{USER}:{PASSWORD}@{}", balancer.addr);
    for path in ["/plain-behind-balancer-1", "/plain-behind-balancer-2"] {
        curl(&["-x", &proxy_url, &origin.url(path)])
            .await
            .assert_success();
        assert_eq!(client_of(&plain, path).await, "203.0.113.78");
    }
}

#[tokio::test]
async fn a_connection_without_a_valid_proxy_header_is_closed() {
    let origin = Origin::start().await;
    let p = proxy(&["--proxy-protocol", "--header-read-timeout", "2"]);
    let to = p.addr();
    let local = ip("127.0.0.1");
    let request = get_request(
        &origin.url("/refused"),
        &[("Proxy-Authorization", &right())],
    );
    let with_request = |header: &[u8]| [header, &request].concat();
    let mut bad_version = v2_proxy("198.51.100.1:1".parse().expect("addr"), to, &[]);
    bad_version[12] = 0x31;
    let refused: Vec<(&str, Vec<u8>)> = vec![
        ("no header: HTTP straight away", request.clone()),
        (
            "bad v1 address",
            with_request(b"PROXY TCP4 198.51.100.999 127.0.0.1 1 2\r\n"),
        ),
        (
            "bad v1 protocol",
            with_request(b"PROXY UDP4 198.51.100.1 127.0.0.1 1 2\r\n"),
        ),
        (
            "v1 port out of range",
            with_request(b"PROXY TCP4 198.51.100.1 127.0.0.1 70000 2\r\n"),
        ),
        (
            "v1 without CR",
            with_request(b"PROXY TCP4 198.51.100.1 127.0.0.1 1 2\n"),
        ),
        (
            "v1 over 107 bytes",
            with_request(&[&b"PROXY UNKNOWN "[..], &[b'x'; 120], b"\r\n"].concat()),
        ),
        ("v2 version 3", with_request(&bad_version)),
        ("v2 command 2", with_request(&v2(2, 0x11, &[0; 12]))),
        (
            "v2 addresses longer than the block",
            with_request(&v2(1, 0x11, &[0; 8])),
        ),
    ];
    for (what, bytes) in &refused {
        let mut conn = RawConn::connect_from(local, to).await;
        conn.send(bytes).await;
        let answer = rest_of(conn).await;
        assert!(
            answer.is_empty(),
            "{what}: answered {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
    // A header cut short, and silence: closed once the header read timeout (2 s) is over.
    for (what, bytes) in [
        ("half a header", &b"PROXY TCP4 198.51"[..]),
        ("silence", b""),
    ] {
        let started = std::time::Instant::now();
        let mut conn = RawConn::connect_from(local, to).await;
        conn.send(bytes).await;
        assert!(
            !conn.closed_within(Duration::from_millis(1500)).await,
            "{what}: closed early"
        );
        assert!(
            conn.closed_within(Duration::from_secs(5)).await,
            "{what}: still open"
        );
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_secs(2),
            "{what}: closed after {waited:?}"
        );
    }

    // The proxy still serves clients with a header, and logged none of the refused ones.
    let mut good = v1("198.51.100.2:1".parse().expect("addr"), to);
    good.extend(get_request(
        &origin.url("/after"),
        &[("Proxy-Authorization", &right())],
    ));
    let r = with_header(to, local, &good).await.read_response().await;
    assert_eq!(r.status, 200);
    assert_eq!(client_of(&p, "/after").await, "198.51.100.2");
    assert!(
        p.access_lines()
            .iter()
            .all(|l| !l.target.ends_with("/refused")),
        "{}",
        p.stdout()
    );
    assert!(origin.received().iter().all(|r| r.uri.path() != "/refused"));
    assert!(!p.stderr().contains("panicked"), "{}", p.stderr());
}

#[tokio::test]
async fn with_trusted_proxies_only_they_may_send_a_proxy_header() {
    let origin = Origin::start().await;
    let p = proxy(&["--proxy-protocol", "--trusted-proxy", "127.0.0.2"]);
    let to = p.addr();
    let auth = right();
    let request = |path: &str| get_request(&origin.url(path), &[("Proxy-Authorization", &auth)]);

    // A direct client (127.0.0.1, not trusted) is served without a header...
    let mut direct = RawConn::connect_from(ip("127.0.0.1"), to).await;
    direct.send(request("/direct")).await;
    assert_eq!(direct.read_response().await.status, 200);
    assert_eq!(client_of(&p, "/direct").await, "127.0.0.1");
    // ...and a header it sends is not believed: it is no HTTP request either.
    let mut spoofed = v1("203.0.113.66:1".parse().expect("addr"), to);
    spoofed.extend(request("/spoofed"));
    let answer = rest_of(with_header(to, ip("127.0.0.1"), &spoofed).await).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    assert!(
        p.access_lines().iter().all(|l| l.client != "203.0.113.66"),
        "{}",
        p.stdout()
    );

    // The trusted balancer 127.0.0.2 must send one, and is believed.
    let mut header = v1("203.0.113.67:1".parse().expect("addr"), to);
    header.extend(request("/trusted"));
    let r = with_header(to, ip("127.0.0.2"), &header)
        .await
        .read_response()
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(client_of(&p, "/trusted").await, "203.0.113.67");
    let mut no_header = RawConn::connect_from(ip("127.0.0.2"), to).await;
    no_header.send(request("/trusted-without")).await;
    assert!(rest_of(no_header).await.is_empty());

    // Header and field together: X-Forwarded-For counts only when the header's source is
    // itself trusted. From 198.51.100.9 (a client) it is ignored; from 127.0.0.2 (the
    // balancer's own health-check connection, LOCAL) it is believed.
    let xff = [
        ("Proxy-Authorization", auth.as_str()),
        ("X-Forwarded-For", "192.0.2.1"),
    ];
    let mut bytes = v1("198.51.100.9:1".parse().expect("addr"), to);
    bytes.extend(get_request(&origin.url("/xff-from-client"), &xff));
    let r = with_header(to, ip("127.0.0.2"), &bytes)
        .await
        .read_response()
        .await;
    assert_eq!(r.status, 200);
    let mut bytes = v2(0, 0x00, &[]);
    bytes.extend(get_request(&origin.url("/xff-from-balancer"), &xff));
    let r = with_header(to, ip("127.0.0.2"), &bytes)
        .await
        .read_response()
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(client_of(&p, "/xff-from-client").await, "198.51.100.9");
    assert_eq!(client_of(&p, "/xff-from-balancer").await, "192.0.2.1");
}
