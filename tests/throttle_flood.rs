//! The failure throttle under a flood, driven in-process through the layer (a tower `Service`,
//! no sockets, so that a million requests take seconds): the throttle issue's eviction case.
//! Its own test binary, so that the resident memory it reports is this flood's alone.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::request::Parts;
use http::{Request, Response};
use tower::ServiceExt;
use tower_proxy_auth::throttle::MemoryThrottleStore;
use tower_proxy_auth::validator::from_fn;
use tower_proxy_auth::{
    BasicCredentials, ClientAddr, Decision, FailureThrottle, ProxyAuthLayer, StaticUsers,
};

mod support;

/// Resident memory of this process, in bytes (Linux `/proc/self/statm`).
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's second field");
    pages * 4096
}

fn from(addr: IpAddr, credentials: &str) -> Request<()> {
    let mut request = Request::get("http://origin.test/")
        .header("proxy-authorization", credentials)
        .body(())
        .expect("request");
    request
        .extensions_mut()
        .insert(ClientAddr(SocketAddr::new(addr, 40_000)));
    request
}

/// The 100,000 flooding addresses: 10.x.y.z, none of them the attacker's own.
fn flood_addr(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0A10_0000 + i))
}

#[tokio::test(flavor = "current_thread")]
async fn a_million_names_from_100_000_addresses_give_no_more_guesses_at_a_limited_user() {
    let calls = Arc::new(AtomicUsize::new(0));
    let about_alice = calls.clone();
    let users = StaticUsers::new().with_user("alice", "s3cret");
    let validator = from_fn(move |creds: &BasicCredentials, _: &Parts| {
        if creds.user_id() == "alice" {
            about_alice.fetch_add(1, Ordering::SeqCst);
        }
        Ok::<_, Infallible>(match users.check(creds.user_id(), creds.password()) {
            Some(identity) => Decision::Allow(identity.clone()),
            None => Decision::Reject,
        })
    });
    let store = MemoryThrottleStore::new(FailureThrottle::DEFAULT_WINDOW);
    let table_bytes = store.table_bytes() as u64;
    let throttle = FailureThrottle::default().store(store);
    let layer = ProxyAuthLayer::builder(validator)
        .throttle(throttle.clone())
        .build()
        .expect("layer");
    let service = tower::ServiceBuilder::new()
        .layer(layer)
        .service_fn(|_: Request<()>| async { Ok::<_, Infallible>(Response::new(String::new())) });
    let attacker = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let home = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 50));

    let send = |request: Request<()>| {
        let service = service.clone();
        async move {
            let response = service.oneshot(request).await.expect("infallible");
            response.status().as_u16()
        }
    };

    // Alice logs in from home; then the attacker spends the (user, address) limit on her.
    assert_eq!(
        send(from(home, &support::basic("alice", b"s3cret"))).await,
        200
    );
    let limit = FailureThrottle::DEFAULT_MAX_FAILURES;
    for i in 0..limit {
        let guess = support::basic("alice", format!("guess-{i}").as_bytes());
        assert_eq!(send(from(attacker, &guess)).await, 407, "guess {i}");
    }
    let guess = support::basic("alice", b"guess-next");
    assert_eq!(send(from(attacker, &guess)).await, 429);
    let asked = calls.load(Ordering::SeqCst);
    assert_eq!(asked, 1 + limit as usize);
    let before = throttle
        .standing(b"alice", Some(attacker))
        .expect("a local store answers at once");
    assert!(before.pair.reached(limit));

    // The flood: 1,000,000 distinct names, 10 from each of 100,000 addresses.
    let rss_before = rss_bytes();
    let mut statuses = [0u32; 600];
    let mut first_429 = None;
    for a in 0..100_000u32 {
        let addr = flood_addr(a);
        for n in 0..10u32 {
            let name = format!("flood-{a}-{n}");
            let status = send(from(addr, &support::basic(&name, b"x"))).await;
            statuses[usize::from(status)] += 1;
            if status == 429 && first_429.is_none() {
                first_429 = Some(a * 10 + n);
            }
        }
    }
    let rss_after = rss_bytes();
    let grown = rss_after.saturating_sub(rss_before);
    eprintln!(
        "flood: 407 x{}, 429 x{} (the first after {:?} failures); RSS {} -> {} KiB (+{} KiB; tables {} KiB)",
        statuses[407],
        statuses[429],
        first_429,
        rss_before / 1024,
        rss_after / 1024,
        grown / 1024,
        table_bytes / 1024
    );
    assert_eq!(statuses[407] + statuses[429], 1_000_000, "only 407 and 429");

    // No fresh guesses at alice from the attacker, and her count is intact.
    for i in 0..limit {
        let guess = support::basic("alice", format!("after-{i}").as_bytes());
        assert_eq!(send(from(attacker, &guess)).await, 429, "guess {i} after");
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        asked,
        "the validator heard no more of alice"
    );
    let after = throttle
        .standing(b"alice", Some(attacker))
        .expect("a local store answers at once");
    assert!(after.pair.value() >= before.pair.value() - 0.5);
    assert!(after.pair.reached(limit));
    // Alice at home, where she succeeded, is still let in.
    assert_eq!(
        send(from(home, &support::basic("alice", b"s3cret"))).await,
        200
    );

    // Memory: the fixed tables (touched by now) plus allocator slack; the flood adds no
    // per-name state (the familiar pairs grow only with successes).
    assert_eq!(table_bytes, 1_572_864);
    assert!(
        grown < table_bytes + 4 * 1024 * 1024,
        "RSS grew by {grown} bytes during the flood"
    );
}
