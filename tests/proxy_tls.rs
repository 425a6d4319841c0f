//! TLS between clients and the forward proxy (`--tls-cert`, `--tls-key`): curl speaks TLS to
//! the proxy (`--proxy https://127.0.0.1:PORT --proxy-cacert CA`) for a forwarded GET and for a
//! CONNECT tunnel; a certificate made by `openssl` in the test; unusable files stop start-up
//! with an error naming the file.

mod support;

use std::time::Duration;

use support::{
    curl, run_example_to_exit, self_signed_certificate, ExampleProcess, Origin, ORIGIN_BODY, PROXY,
};

fn tls_proxy(cert: &str, key: &str) -> ExampleProcess {
    support::start_proxy_with_user("alice", "s3cret", &["--tls-cert", cert, "--tls-key", key])
}

#[tokio::test]
async fn curl_over_tls_to_the_proxy_forwards_a_get_and_opens_a_tunnel() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = self_signed_certificate(dir.path());
    let origin = Origin::start().await;
    let p = tls_proxy(&cert, &key);
    let proxy_url = format!("https://127.0.0.1:{}", p.addr().port());
    let through = |extra: &'static [&'static str], path: &'static str| {
        let proxy_url = proxy_url.clone();
        let cert = cert.clone();
        let url = origin.url(path);
        async move {
            let mut args = vec![
                "--proxy",
                &proxy_url,
                "--proxy-cacert",
                &cert,
                "--proxy-user",
                "alice:s3cret",
            ];
            args.extend_from_slice(extra);
            args.push(&url);
            curl(&args).await
        }
    };
    let get = through(&[], "/over-tls").await;
    get.assert_success();
    assert_eq!(get.stdout, ORIGIN_BODY);
    let tunnel = through(&["--proxytunnel"], "/tunnel-over-tls").await;
    tunnel.assert_success();
    assert_eq!(tunnel.stdout, ORIGIN_BODY);
    let uris: Vec<_> = origin
        .received()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(uris, ["/over-tls", "/tunnel-over-tls"]);

    // Without credentials, the challenge comes over TLS too.
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--proxy",
        &proxy_url,
        "--proxy-cacert",
        &cert,
        &origin.url("/"),
    ])
    .await;
    assert_eq!(out.stdout, "407", "{out:?}");
    // A plain-text client gets no answer in clear text.
    let plain = curl(&["-x", &format!("http://{}", p.addr()), &origin.url("/")]).await;
    assert!(!plain.status.success(), "{plain:?}");
}

#[test]
fn unusable_certificate_or_key_files_stop_start_up_naming_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = self_signed_certificate(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").expect("write");
    let garbage = garbage.to_str().expect("utf-8");
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().expect("utf-8");
    let other_dir = tempfile::tempdir().expect("temp dir");
    let (_, other_key) = self_signed_certificate(other_dir.path());

    for (cert, key, named) in [
        (garbage, key.as_str(), garbage),
        (missing, key.as_str(), missing),
        (cert.as_str(), garbage, garbage),
        (cert.as_str(), cert.as_str(), cert.as_str()),
        (cert.as_str(), other_key.as_str(), other_key.as_str()),
    ] {
        let finished = run_example_to_exit(
            PROXY,
            &[
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert,
                "--tls-key",
                key,
            ],
            Duration::from_secs(15),
        );
        assert!(!finished.status.success(), "{cert} {key}: {finished:#?}");
        assert!(
            finished.stderr.contains(named),
            "{cert} {key}: {finished:#?}"
        );
        assert!(!finished.stderr.contains("panicked"), "{finished:#?}");
        assert!(!finished.stdout.contains("listening on"), "{finished:#?}");
    }
}
