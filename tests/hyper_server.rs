//! `examples/hyper_server.rs` run as a process on 127.0.0.1:0: the challenge, a greeting for
//! good credentials, and a CONNECT whose upgraded connection echoes.

mod support;

use support::{basic, proxy_get, request_head, ExampleProcess, RawConn};
use tokio::io::AsyncWriteExt as _;

#[tokio::test]
async fn the_smallest_server_challenges_greets_and_upgrades() {
    let p = ExampleProcess::start("hyper_server", &["127.0.0.1:0"]);
    let challenged = proxy_get(p.addr(), "http://any.example/", &[]).await;
    assert_eq!(challenged.status, 407, "{challenged:#?}");
    assert_eq!(
        challenged.header("proxy-authenticate"),
        Some("Basic realm=\"hyper example\", charset=\"UTF-8\"")
    );
    let good = basic("alice", b"s3cret");
    let greeted = proxy_get(
        p.addr(),
        "http://any.example/",
        &[("Proxy-Authorization", &good)],
    )
    .await;
    assert_eq!(greeted.status, 200, "{greeted:#?}");
    assert_eq!(greeted.text(), "hello alice\n");

    let out = support::curl(&[
        "-x",
        &format!("http://alice:s3cret@{}", p.addr()),
        "http://any.example/",
    ])
    .await;
    out.assert_success();
    assert_eq!(out.stdout, "hello alice\n");

    let mut conn = RawConn::connect(p.addr()).await;
    conn.send(request_head(
        "CONNECT",
        "any.example:443",
        &[("Host", "any.example:443"), ("Proxy-Authorization", &good)],
    ))
    .await;
    let established = conn.read_response_to("CONNECT").await;
    assert_eq!(established.status, 200, "{established:#?}");
    let mut stream = conn.into_stream();
    stream.write_all(b"echo me\n").await.expect("write");
    let echoed = support::read_until_bounded(&mut stream, b"echo me\n").await;
    assert_eq!(echoed, b"echo me\n");
}
