//! The axum example's router served for real on 127.0.0.1, queried with curl and reqwest.

#[allow(dead_code)]
#[path = "../examples/axum_gateway.rs"]
mod axum_gateway;

use std::net::SocketAddr;

async fn serve() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, axum_gateway::app()).await });
    addr
}

#[tokio::test]
async fn handler_sees_the_user_name_through_reqwest_proxy_auth() {
    let addr = serve().await;
    let proxy = reqwest::Proxy::http(format!("http://{addr}"))
        .expect("proxy url")
        .basic_auth("bob", "hunter2");
    let client = reqwest::Client::builder()
        .proxy(proxy)
        .build()
        .expect("client");
    let response = client
        .get("http://gateway.example/whoami")
        .send()
        .await
        .expect("response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.expect("body"), "hello bob\n");
}

#[tokio::test]
async fn curl_gets_407_then_200() {
    let addr = serve().await;
    let curl = move |creds: &str| {
        let proxy = format!("http://{creds}{addr}");
        let output = std::process::Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "10",
                "-w",
                "\n%{http_code}",
                "-x",
                &proxy,
            ])
            .arg("http://gateway.example/whoami")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .output()
            .expect("curl runs (apt-get install -y curl)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let output = tokio::task::spawn_blocking(move || (curl(""), curl("alice:s3cret@")))
        .await
        .expect("curl task");
    assert!(output.0.ends_with("\n407"), "{:?}", output.0);
    assert_eq!(output.1, "hello alice\n\n200");
}
