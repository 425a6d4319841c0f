//! Forward-auth against a small real auth service (an axum app on 127.0.0.1 started by each
//! test), through a real layer served on 127.0.0.1: allow with identity and data, reject,
//! forbid, a 500, an answer slower than the timeout, a refused connection, what the service
//! receives, the bound on requests in flight, and the cache; and the same through the
//! example proxy's `--forward-auth` flags.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{AppendHeaders, IntoResponse};
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use tower::ServiceBuilder;
use tower_proxy_auth::store::forward_auth::{ForwardAuth, ForwardAuthError, ForwardAuthHeaders};
use tower_proxy_auth::{BasicCredentials, Identity, Party, ProxyAuthLayer, Validation, Validator};

use support::{
    basic, basic_get, basic_status, closed_port, curl, proxy_get, request_head, serve, start_proxy,
    Origin, RawConn,
};

/// What the auth service received: method, path and fields of each request.
type Received = Arc<Mutex<Vec<(String, String, HeaderMap)>>>;

/// The auth service: decides by the Basic credentials in `field`.
///
/// `alice:s3cret` → 200 with `x-auth-user: alice@corp` and two `x-auth-groups`; `noname:pw`
/// → 200 without them; `bob:*` → 403; `boom:*` → 500; `slow:*` → 200 after 2 s; anything
/// else → 401.
async fn auth_service(field: &'static str) -> (SocketAddr, Received) {
    let received: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/verify",
            axum::routing::any(
                move |State(received): State<Received>,
                      method: http::Method,
                      uri: http::Uri,
                      headers: HeaderMap| async move {
                    received.lock().unwrap().push((
                        method.to_string(),
                        uri.to_string(),
                        headers.clone(),
                    ));
                    let decoded = headers
                        .get(field)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.split_once(' '))
                        .and_then(|(_, token)| {
                            base64::engine::general_purpose::STANDARD
                                .decode(token.trim())
                                .ok()
                        })
                        .map(|d| String::from_utf8_lossy(&d).into_owned())
                        .unwrap_or_default();
                    let (user, password) = decoded.split_once(':').unwrap_or(("", ""));
                    match (user, password) {
                        ("alice", "s3cret") => (
                            StatusCode::OK,
                            AppendHeaders([
                                ("x-auth-user", "alice@corp"),
                                ("x-auth-groups", "staff"),
                                ("x-auth-groups", "ops"),
                            ]),
                            "ok",
                        )
                            .into_response(),
                        ("noname", "pw") => StatusCode::NO_CONTENT.into_response(),
                        ("bob", _) => StatusCode::FORBIDDEN.into_response(),
                        ("boom", _) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                        ("slow", _) => {
                            tokio::time::sleep(Duration::from_secs(2)).await;
                            StatusCode::OK.into_response()
                        }
                        _ => StatusCode::UNAUTHORIZED.into_response(),
                    }
                },
            ),
        )
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, received)
}

/// The layer in front of a service that answers `hello <user> [<groups>]`.
async fn start(layer: ProxyAuthLayer) -> SocketAddr {
    serve(
        ServiceBuilder::new()
            .layer(layer)
            .service_fn(|req: http::Request<_>| {
                let identity = req.extensions().get::<Identity>();
                let who = identity.map(|i| i.user().to_owned()).unwrap_or_default();
                let groups = identity
                    .and_then(|i| i.get::<ForwardAuthHeaders>())
                    .map(|h| {
                        h.headers()
                            .get_all("x-auth-groups")
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                async move {
                    Ok::<_, Infallible>(http::Response::new(format!("hello {who} [{groups}]")))
                }
            }),
    )
    .await
}

fn forward_auth(service: SocketAddr) -> tower_proxy_auth::store::forward_auth::ForwardAuthBuilder {
    ForwardAuth::to(format!("http://{service}/verify"))
        .identity_from(HeaderName::from_static("x-auth-user"))
        .keep_response_header(HeaderName::from_static("x-auth-groups"))
        .copy_header(HeaderName::from_static("x-request-id"))
        .timeout(Duration::from_millis(500))
}

#[tokio::test]
async fn the_service_allows_with_identity_and_data_and_receives_the_request_facts() {
    let (service, received) = auth_service("authorization").await;
    let validator = forward_auth(service).build().unwrap();
    let addr = start(ProxyAuthLayer::new(validator.clone())).await;

    // curl through the layer.
    let out = curl(&[
        "-x",
        &format!("http://{addr}"),
        "-U",
        "alice:s3cret",
        "-H",
        "X-Request-Id: r-17",
        "-H",
        "X-Forwarded-For: 203.0.113.9",
        "http://origin.test/page?q=1",
    ])
    .await;
    out.assert_success();
    assert_eq!(out.stdout, "hello alice@corp [staff,ops]");

    let (method, path, headers) = received.lock().unwrap()[0].clone();
    assert_eq!((method.as_str(), path.as_str()), ("GET", "/verify"));
    let field = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(field("authorization"), [basic("alice", b"s3cret")]);
    assert_eq!(field("x-forwarded-method"), ["GET"]);
    assert_eq!(field("x-forwarded-uri"), ["http://origin.test/page?q=1"]);
    // The client's own X-Forwarded-For is not passed on: the address is the connection's.
    assert_eq!(field("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(field("x-request-id"), ["r-17"]);
    assert!(field("proxy-authorization").is_empty());

    // The allow is remembered for the same request: the service is not asked again.
    let auth = basic("alice", b"s3cret");
    let again = [
        ("Proxy-Authorization", auth.as_str()),
        ("X-Request-Id", "r-17"),
    ];
    let same = proxy_get(addr, "http://origin.test/page?q=1", &again).await;
    assert_eq!(same.status, 200);
    assert_eq!(received.lock().unwrap().len(), 1);
    assert_eq!(validator.stats().hits, 1);
    // Another target, or another copied header value, is asked about (the service may decide
    // per target).
    assert_eq!(basic_get(addr, "alice", "s3cret").await.0, 200);
    assert_eq!(received.lock().unwrap().len(), 2);

    // A 2xx without the identity field: the user-id.
    assert_eq!(
        basic_get(addr, "noname", "pw").await,
        (200, "hello noname []".into())
    );
}

#[tokio::test]
async fn reject_forbid_500_slow_and_refused_get_their_defined_answers() {
    let (service, _) = auth_service("authorization").await;
    let addr = start(ProxyAuthLayer::new(forward_auth(service).build().unwrap())).await;
    assert_eq!(basic_get(addr, "alice", "wrong").await.0, 407);
    assert_eq!(basic_get(addr, "mallory", "x").await.0, 407);
    assert_eq!(basic_get(addr, "bob", "x").await.0, 403);
    assert_eq!(basic_get(addr, "boom", "x").await.0, 503);
    let started = Instant::now();
    assert_eq!(basic_get(addr, "slow", "x").await.0, 503);
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "the 500 ms timeout ended the check ({:?})",
        started.elapsed()
    );
    // Still serving after all that.
    assert_eq!(basic_get(addr, "alice", "s3cret").await.0, 200);

    let refused = ForwardAuth::to(format!("http://127.0.0.1:{}/verify", closed_port()))
        .build()
        .unwrap();
    let addr = start(ProxyAuthLayer::new(refused)).await;
    assert_eq!(basic_get(addr, "alice", "s3cret").await.0, 503);
}

#[tokio::test]
async fn the_credentials_line_is_passed_unchanged_in_the_configured_field() {
    let (service, received) = auth_service("x-proxy-credentials").await;
    let validator = forward_auth(service)
        .send_credentials_in(HeaderName::from_static("x-proxy-credentials"))
        .with_header(
            HeaderName::from_static("x-service-key"),
            HeaderValue::from_static("k-42"),
        )
        .build()
        .unwrap();
    let addr = start(ProxyAuthLayer::new(validator)).await;
    // Another spelling of the same credentials than the canonical one.
    let token = support::base64_encode(b"alice:s3cret");
    let value = format!("BASIC {}", token.trim_end_matches('='));
    let response = proxy_get(
        addr,
        "http://origin.test/",
        &[("Proxy-Authorization", value.as_str())],
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.text());
    let (_, _, headers) = received.lock().unwrap()[0].clone();
    assert_eq!(headers["x-proxy-credentials"], value.as_str());
    assert_eq!(headers["x-service-key"], "k-42");
    assert!(headers.get("authorization").is_none());
}

/// An origin's layer reads `Authorization`; a `Proxy-Authorization` with other credentials in
/// the same request must not be what the service is asked about (the answer is remembered
/// under the credentials the layer read).
#[tokio::test]
async fn only_the_credentials_being_checked_are_forwarded() {
    let (service, received) = auth_service("authorization").await;
    let layer = ProxyAuthLayer::builder(forward_auth(service).build().unwrap())
        .party(Party::Origin)
        .build()
        .unwrap();
    let addr = start(layer).await;
    let checked = basic("mallory", b"guess");
    let other = basic("alice", b"s3cret");
    let mut conn = RawConn::connect(addr).await;
    conn.send(request_head(
        "GET",
        "/api",
        &[
            ("Host", "origin.test"),
            ("Authorization", &checked),
            ("Proxy-Authorization", &other),
        ],
    ))
    .await;
    let response = conn.read_response_to("GET").await;
    assert_eq!(response.status, 401);
    let (_, _, headers) = received.lock().unwrap()[0].clone();
    assert_eq!(headers["authorization"], checked.as_str());
}

#[tokio::test]
async fn beyond_the_bound_a_check_is_refused_at_once_as_overloaded() {
    let (service, _) = auth_service("authorization").await;
    let validator = forward_auth(service)
        .timeout(Duration::from_secs(5))
        .max_in_flight(1)
        .queue(1)
        .build()
        .unwrap();
    let parts = http::Request::new(()).into_parts().0;
    let creds = |u: &str| BasicCredentials::new(u, "x").unwrap();
    let Validation::Pending(first) = validator.validate(&creds("slow"), &parts) else {
        panic!("pending")
    };
    let first = tokio::spawn(first);
    let Validation::Pending(second) = validator.validate(&creds("bob"), &parts) else {
        panic!("pending")
    };
    match validator.validate(&creds("boom"), &parts) {
        Validation::Ready(Err(error)) => assert!(error.is_overloaded(), "{error}"),
        other => panic!("not refused at once: {other:?}"),
    }
    assert!(first.await.unwrap().is_ok());
    assert!(second.await.is_ok());
    assert_eq!(validator.get_ref().in_use(), 0);
}

#[test]
fn unusable_urls_are_refused_when_built_without_echoing_user_information() {
    let error = ForwardAuth::to("ftp://auth.test/verify")
        .build()
        .unwrap_err();
    assert!(matches!(error, ForwardAuthError::Url { .. }), "{error}");
    let error = ForwardAuth::to("not a url").build().unwrap_err();
    assert!(error.to_string().contains("not a URI"), "{error}");
    let error = ForwardAuth::to("http://svc:hunter2@auth.test/verify")
        .build()
        .unwrap_err();
    assert!(error.to_string().contains("user information"), "{error}");
    assert!(!error.to_string().contains("hunter2"), "{error}");
    let error = ForwardAuth::to("https://auth.test/")
        .trust_ca_pem(b"not a certificate")
        .unwrap_err();
    assert!(matches!(error, ForwardAuthError::CaFile { .. }), "{error}");
}

/// A CA and a certificate for 127.0.0.1 signed by it, made by openssl: the paths of the CA's
/// certificate, the server's certificate and its key.
fn test_pki(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    use std::ffi::OsStr;
    let path = |name: &str| dir.join(name);
    std::fs::write(
        path("ca.cnf"),
        "[req]\ndistinguished_name = dn\nx509_extensions = v3_ca\nprompt = no\n\
         [dn]\nCN = forward-auth test CA\n\
         [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )
    .unwrap();
    std::fs::write(
        path("server.ext"),
        "subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n\
         keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n",
    )
    .unwrap();
    let openssl = |args: &[&OsStr]| support::run_tool("openssl", "openssl", args);
    let ec = [
        OsStr::new("-newkey"),
        OsStr::new("ec"),
        OsStr::new("-pkeyopt"),
    ];
    let curve = OsStr::new("ec_paramgen_curve:prime256v1");
    let (ca, ca_key) = (path("ca.pem"), path("ca.key"));
    let (cert, key, csr) = (path("server.pem"), path("server.key"), path("server.csr"));
    let mut args: Vec<&OsStr> = vec!["req".as_ref(), "-x509".as_ref(), "-config".as_ref()];
    let cnf = path("ca.cnf");
    args.extend([cnf.as_os_str()]);
    args.extend(ec);
    args.extend([curve, "-nodes".as_ref(), "-days".as_ref(), "2".as_ref()]);
    args.extend([
        "-keyout".as_ref(),
        ca_key.as_os_str(),
        "-out".as_ref(),
        ca.as_os_str(),
    ]);
    openssl(&args);
    let mut args: Vec<&OsStr> = vec!["req".as_ref(), "-new".as_ref()];
    args.extend(ec);
    args.extend([
        curve,
        "-nodes".as_ref(),
        "-subj".as_ref(),
        "/CN=127.0.0.1".as_ref(),
    ]);
    args.extend([
        "-keyout".as_ref(),
        key.as_os_str(),
        "-out".as_ref(),
        csr.as_os_str(),
    ]);
    openssl(&args);
    let ext = path("server.ext");
    openssl(&[
        "x509".as_ref(),
        "-req".as_ref(),
        "-in".as_ref(),
        csr.as_os_str(),
        "-CA".as_ref(),
        ca.as_os_str(),
        "-CAkey".as_ref(),
        ca_key.as_os_str(),
        "-CAcreateserial".as_ref(),
        "-days".as_ref(),
        "2".as_ref(),
        "-extfile".as_ref(),
        ext.as_os_str(),
        "-out".as_ref(),
        cert.as_os_str(),
    ]);
    [ca, cert, key]
}

/// An auth service over TLS on 127.0.0.1: 200 with `x-auth-user: alice@tls` for
/// `alice:s3cret`, 401 otherwise.
async fn tls_auth_service(cert: &std::path::Path, key: &std::path::Path) -> SocketAddr {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(|req: http::Request<_>| async move {
                    let good = req
                        .headers()
                        .get("authorization")
                        .is_some_and(|v| v == basic("alice", b"s3cret").as_str());
                    let mut response =
                        http::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
                    if good {
                        response
                            .headers_mut()
                            .insert("x-auth-user", HeaderValue::from_static("alice@tls"));
                    } else {
                        *response.status_mut() = StatusCode::UNAUTHORIZED;
                    }
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn https_with_a_configured_ca_and_not_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let [ca, cert, key] = test_pki(dir.path());
    let service = tls_auth_service(&cert, &key).await;
    let url = format!("https://127.0.0.1:{}/verify", service.port());
    let trusted = ForwardAuth::to(url.clone())
        .identity_from(HeaderName::from_static("x-auth-user"))
        .trust_ca_pem_file(&ca)
        .unwrap()
        .build()
        .unwrap();
    let addr = start(ProxyAuthLayer::new(trusted)).await;
    assert_eq!(
        basic_get(addr, "alice", "s3cret").await,
        (200, "hello alice@tls []".into())
    );
    assert_eq!(basic_get(addr, "alice", "wrong").await.0, 407);
    // Mozilla's roots do not know the test CA: the certificate is refused, 503.
    let untrusted = ForwardAuth::to(url).build().unwrap();
    let addr = start(ProxyAuthLayer::new(untrusted)).await;
    assert_eq!(basic_get(addr, "alice", "s3cret").await.0, 503);
}

// ---------------------------------------------------------------------------------------------
// Through the example proxy (`forward-proxy --forward-auth URL`), driven by curl.

/// The example proxy on 127.0.0.1:0 with `args`, allowed to reach the test's origin.

#[tokio::test]
async fn forward_auth_through_the_example_proxy() {
    let (service, received) = auth_service("authorization").await;
    let origin = Origin::start().await;
    let url = origin.url("/page?q=1");
    let verify = format!("http://{service}/verify");
    let proxy = start_proxy(&[
        "--forward-auth",
        &verify,
        "--forward-auth-identity-header",
        "x-auth-user",
        "--forward-auth-timeout",
        "1",
        "--user",
        "carol:c4rol",
    ]);

    assert_eq!(basic_status(&proxy, "alice:s3cret", &url).await, "200");
    let line = proxy.wait_for_access(|l| l.status == 200).await;
    assert_eq!(line.user, "alice@corp", "the identity the service named");
    {
        let received = received.lock().unwrap();
        assert_eq!(received.len(), 1);
        let (method, path, headers) = &received[0];
        assert_eq!((method.as_str(), path.as_str()), ("GET", "/verify"));
        // The client's Proxy-Authorization line, unchanged, in Authorization.
        assert_eq!(headers["authorization"], basic("alice", b"s3cret").as_str());
        assert_eq!(headers["x-forwarded-method"], "GET");
        assert_eq!(headers["x-forwarded-uri"], url.as_str());
        assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    }
    // Remembered: the service is not asked again.
    assert_eq!(basic_status(&proxy, "alice:s3cret", &url).await, "200");
    assert_eq!(received.lock().unwrap().len(), 1);

    assert_eq!(basic_status(&proxy, "alice:wrong", &url).await, "407");
    assert_eq!(basic_status(&proxy, "mallory:x", &url).await, "407");
    assert_eq!(basic_status(&proxy, "bob:x", &url).await, "403");
    assert_eq!(basic_status(&proxy, "boom:x", &url).await, "503");
    let started = Instant::now();
    assert_eq!(basic_status(&proxy, "slow:x", &url).await, "503");
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "--forward-auth-timeout 1 ended the check ({:?})",
        started.elapsed()
    );
    // --user is combinable, and asked first: the service never hears of carol.
    let asked = received.lock().unwrap().len();
    assert_eq!(basic_status(&proxy, "carol:c4rol", &url).await, "200");
    assert_eq!(received.lock().unwrap().len(), asked);
    assert_eq!(origin.received().len(), 3);

    let refused = format!("http://127.0.0.1:{}/verify", closed_port());
    let proxy = start_proxy(&["--forward-auth", &refused]);
    assert_eq!(basic_status(&proxy, "alice:s3cret", &url).await, "503");
}

#[test]
fn forward_auth_flags_that_cannot_work_stop_the_proxy_naming_the_flag() {
    for (args, expected) in [
        (
            vec!["--forward-auth", "ftp://auth.test/verify"],
            "--forward-auth: ",
        ),
        (
            vec![
                "--auth",
                "digest",
                "--user",
                "a:b",
                "--forward-auth",
                "http://127.0.0.1:1/",
            ],
            "--forward-auth needs --auth with basic",
        ),
        (
            vec![
                "--forward-auth",
                "http://127.0.0.1:1/",
                "--forward-auth-identity-header",
                "not a name",
            ],
            "--forward-auth-identity-header: \"not a name\" is not a field name",
        ),
    ] {
        support::assert_proxy_refuses(&args, expected);
    }
}
