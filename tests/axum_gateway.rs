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

#[tokio::test]
async fn the_api_route_is_an_origin_with_401_and_json() {
    let addr = serve().await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{addr}/api/me");
    let response = client.get(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Basic realm="gateway api", charset="UTF-8""#
    );
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        response.text().await.unwrap(),
        "{\"error\":\"challenge\",\"reason\":\"missing\"}\n"
    );
    let response = client
        .get(&url)
        .basic_auth("bob", Some("hunter2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.text().await.unwrap(),
        "{\"user\":\"bob\",\"scheme\":\"Basic\"}\n"
    );
    // Proxy credentials do not open the API route, API credentials do not open the proxy one.
    let proxied = reqwest::Client::builder()
        .proxy(
            reqwest::Proxy::http(format!("http://{addr}"))
                .unwrap()
                .basic_auth("bob", "hunter2"),
        )
        .build()
        .unwrap();
    let response = proxied
        .get("http://gateway.example/api/me")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client
        .get(format!("http://{addr}/whoami"))
        .basic_auth("bob", Some("hunter2"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 407);
}
