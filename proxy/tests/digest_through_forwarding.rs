//! The forwarding code runs inside the authentication layer: an origin's `Proxy-Authenticate`
//! and `Proxy-Authentication-Info` are removed (RFC 9110 §11.7.1), and the layer's own
//! `Proxy-Authentication-Info` of a Digest success (RFC 7616 §3.5, `rspauth`) is added after
//! that and reaches the client. [`ForwardProxy`] behind a Digest `ProxyAuthLayer`, served by
//! hyper on 127.0.0.1, with an origin on 127.0.0.1 and the tests' own Digest client.

#[path = "../../tests/support/mod.rs"]
mod support;

use tower::ServiceBuilder;
use tower_proxy_auth::scheme::digest::Digest;
use tower_proxy_auth::{ProxyAuthLayer, StaticUsers};
use tower_proxy_auth_proxy::targets::TargetPolicy;
use tower_proxy_auth_proxy::ForwardProxy;

use support::{challenge_params, proxy_get, DigestAnswer, Origin, OriginResponse, ORIGIN_BODY};

#[tokio::test]
async fn the_layers_authentication_info_reaches_the_client_and_the_origins_does_not() {
    let mut answer = OriginResponse::default();
    for (name, value) in [
        ("proxy-authenticate", "Basic realm=\"origin\""),
        (
            "proxy-authentication-info",
            "rspauth=\"forged-by-the-origin\"",
        ),
    ] {
        answer.headers.push((
            http::HeaderName::from_static(name),
            http::HeaderValue::from_static(value),
        ));
    }
    let origin = Origin::start_with(answer).await;
    let users = StaticUsers::with_realm("proxy").with_user("alice", "s3cret");
    let layer = ProxyAuthLayer::offering(Digest::new(), users)
        .build()
        .expect("layer");
    let proxy = ForwardProxy::builder()
        .targets(TargetPolicy::new().allow_internal(true))
        .build();
    let addr = support::serve(ServiceBuilder::new().layer(layer).service(proxy)).await;

    let url = origin.url("/digest");
    let first = proxy_get(addr, &url, &[]).await;
    assert_eq!(first.status, 407, "{first:#?}");
    let challenge = first.header_values("proxy-authenticate")[0].to_owned();
    let (credentials, rspauth) = DigestAnswer {
        user: "alice",
        password: "s3cret",
        method: "GET",
        uri: &url,
        nc: 1,
        cnonce: "0a4f113b",
    }
    .credentials(&challenge);
    let ok = proxy_get(addr, &url, &[("Proxy-Authorization", &credentials)]).await;
    assert_eq!(ok.status, 200, "{ok:#?}");
    assert_eq!(ok.text(), ORIGIN_BODY);
    let info = ok.header_values("proxy-authentication-info");
    assert_eq!(info.len(), 1, "{ok:#?}");
    assert_eq!(
        challenge_params(&format!("x {}", info[0]))["rspauth"],
        rspauth
    );
    assert!(ok.header("proxy-authenticate").is_none(), "{ok:#?}");
    let received = origin.single_request();
    assert!(received.headers.get("proxy-authorization").is_none());
}
