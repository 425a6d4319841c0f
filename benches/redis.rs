//! The Redis-backed stores (cargo feature `redis`) against the in-memory ones, in the same run,
//! on a `redis-server` the bench starts itself (127.0.0.1, persistence off, stopped by PID).
//!
//! 1. Criterion, through the layer in process (a Tokio runtime; the Redis calls are real):
//!    Basic accept in the steady state (credentials that succeeded from this address: no
//!    round trip), a credentialed first attempt (one read), a failure (a read and a write),
//!    each with the in-memory throttle beside it; Digest accept with the Redis replay store
//!    beside the in-memory one.
//! 2. Latency through real servers on 127.0.0.1 and a hyper client on one keep-alive
//!    connection each: Digest accept, 10,000 requests per store in alternating blocks of 1,000,
//!    p50 and p99 and the added latency; then 1, 2 and 3 instances, each with its own client
//!    and its own Redis connection, loading the same Redis at once.
//!
//! ```text
//! cargo bench --features redis --bench redis
//! ```

use std::convert::Infallible;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use http::header::PROXY_AUTHORIZATION;
use http::{HeaderValue, Request, Response};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_proxy_auth::scheme::digest::{Algorithm, Digest, NonceKey};
use tower_proxy_auth::shared::redis::RedisStores;
use tower_proxy_auth::{
    BasicCredentials, ClientAddr, FailureThrottle, ProxyAuthLayer, StaticUsers,
};

#[path = "../tests/support/mod.rs"]
mod test_support;

use test_support::redis_server::RedisServer;
use test_support::{DigestAnswer, RawResponse};

const KEY: &[u8] = b"one key file shared by every instance of the fleet";
const REALM: &str = "proxy";

type Body = String;

fn users() -> StaticUsers {
    StaticUsers::with_realm(REALM).with_user("alice", "s3cret")
}

fn inner() -> impl Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone {
    tower::service_fn(|_req: Request<Body>| std::future::ready(Ok(Response::new(Body::new()))))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn stores(redis: &RedisServer) -> RedisStores {
    RedisStores::builder(redis.url())
        .prefix("bench")
        .connect()
        .await
        .expect("connect to the bench's redis-server")
}

fn basic(user: &str, password: &str) -> HeaderValue {
    HeaderValue::from_str(
        &BasicCredentials::new(user, password)
            .expect("creds")
            .encode(),
    )
    .expect("header")
}

fn request(addr: IpAddr, credentials: Option<HeaderValue>) -> Request<Body> {
    let mut request = Request::builder()
        .uri("http://origin.example/index.html")
        .header("host", "origin.example");
    if let Some(value) = credentials {
        request = request.header(PROXY_AUTHORIZATION, value);
    }
    let mut request = request.body(Body::new()).expect("request");
    request
        .extensions_mut()
        .insert(ClientAddr(SocketAddr::new(addr, 40000)));
    request
}

/// A different address each call: no fast path, no limit reached.
fn next_addr(counter: &AtomicU32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + counter.fetch_add(1, Relaxed)))
}

fn basic_layer(throttle: FailureThrottle) -> ProxyAuthLayer {
    ProxyAuthLayer::builder(users())
        .realm(REALM)
        .throttle(throttle)
        .build()
        .expect("layer")
}

fn memory_throttle() -> FailureThrottle {
    FailureThrottle::default()
}

fn redis_throttle(stores: &RedisStores) -> FailureThrottle {
    FailureThrottle::default()
        .store(stores.throttle_store(FailureThrottle::DEFAULT_WINDOW))
        .key_material(KEY)
        .expect("key")
}

fn basic_paths(c: &mut Criterion) {
    let rt = runtime();
    let redis = RedisServer::start();
    let stores = rt.block_on(stores(&redis));
    let good = basic("alice", "s3cret");
    let home = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let variants = [
        ("memory throttle", memory_throttle()),
        ("redis throttle", redis_throttle(&stores)),
    ];
    // Twice each, alternating: the spread between a variant's two runs is this machine's noise.
    let mut group = c.benchmark_group("basic accept, steady state (no round trip)");
    let alternating = [
        ("memory throttle", &variants[0].1),
        ("redis throttle", &variants[1].1),
        ("memory throttle, again", &variants[0].1),
        ("redis throttle, again", &variants[1].1),
    ];
    for (name, throttle) in alternating {
        let service = basic_layer(throttle.clone()).layer(inner());
        // The first success puts the credentials on the fast path.
        let first = rt.block_on(service.clone().oneshot(request(home, Some(good.clone()))));
        assert_eq!(first.expect("call").status(), 200);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let call = service.clone().oneshot(request(home, Some(good.clone())));
                async move { black_box(call.await.expect("call").status()) }
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("basic accept, first attempt from an address (one read)");
    for (name, throttle) in &variants {
        let service = basic_layer(throttle.clone()).layer(inner());
        let counter = AtomicU32::new(1);
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| {
                let call = service
                    .clone()
                    .oneshot(request(next_addr(&counter), Some(good.clone())));
                async move {
                    let status = call.await.expect("call").status();
                    assert_eq!(status, 200);
                }
            })
        });
    }
    group.finish();

    // Limits no run of this bench reaches (hundreds of thousands of distinct failures would
    // make the count-min tables collide up to the default limits: stricter under a flood, as
    // designed); the work per failure is the same.
    let high = |t: FailureThrottle| t.per_address(1 << 19).per_user(1 << 19);
    let lenient = [
        (
            "memory throttle",
            high(FailureThrottle::new(
                1 << 19,
                FailureThrottle::DEFAULT_WINDOW,
            )),
        ),
        (
            "redis throttle",
            high(FailureThrottle::new(
                1 << 19,
                FailureThrottle::DEFAULT_WINDOW,
            ))
            .store(stores.throttle_store(FailureThrottle::DEFAULT_WINDOW))
            .key_material(KEY)
            .expect("key"),
        ),
    ];
    let mut group = c.benchmark_group("basic reject, wrong password (read and write)");
    for (name, throttle) in &lenient {
        let service = basic_layer(throttle.clone()).layer(inner());
        let counter = AtomicU32::new(1 << 20);
        group.bench_function(*name, |b| {
            b.to_async(&rt).iter(|| {
                // A new user name and address each time: no limit is reached.
                let n = counter.load(Relaxed);
                let wrong = basic(&format!("user{n}"), "a guess");
                let call = service
                    .clone()
                    .oneshot(request(next_addr(&counter), Some(wrong)));
                async move {
                    let status = call.await.expect("call").status();
                    assert_eq!(status, 407);
                }
            })
        });
    }
    group.finish();
    drop(redis);
}

/// A Digest client on one nonce, counting up.
struct DigestClient {
    challenge: String,
    nc: u32,
}

impl DigestClient {
    fn next(&mut self, uri: &str) -> String {
        self.nc += 1;
        DigestAnswer {
            user: "alice",
            password: "s3cret",
            method: "GET",
            uri,
            nc: self.nc,
            cnonce: "0a4f113b",
        }
        .credentials(&self.challenge)
        .0
    }
}

fn digest_layer(stores: Option<&RedisStores>) -> ProxyAuthLayer {
    let mut digest = Digest::new()
        .algorithms([Algorithm::Sha256])
        .nonce_key(NonceKey::from_bytes(KEY).expect("key"));
    if let Some(stores) = stores {
        digest = digest.replay_store(stores.replay_store(REALM));
    }
    ProxyAuthLayer::offering(digest, users())
        .realm(REALM)
        .build()
        .expect("layer")
}

fn challenge_of<B>(response: &Response<B>) -> String {
    response
        .headers()
        .get_all("proxy-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("Digest "))
        .expect("a Digest challenge")
        .to_owned()
}

fn digest_accept(c: &mut Criterion) {
    let rt = runtime();
    let redis = RedisServer::start();
    let stores = rt.block_on(stores(&redis));
    let mut group = c.benchmark_group("digest accept (SHA-256; client hashing included)");
    for (name, shared) in [
        ("memory replay store", None),
        ("redis replay store", Some(&stores)),
    ] {
        let service = digest_layer(shared).layer(inner());
        let home = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        let first = rt
            .block_on(service.clone().oneshot(request(home, None)))
            .expect("call");
        let mut client = DigestClient {
            challenge: challenge_of(&first),
            nc: 0,
        };
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let value = HeaderValue::from_str(&client.next("/index.html")).expect("header");
                let call = service.clone().oneshot(request(home, Some(value)));
                async move {
                    let status = call.await.expect("call").status();
                    assert_eq!(status, 200);
                }
            })
        });
    }
    group.finish();
    drop(redis);
}

criterion_group!(benches, basic_paths, digest_accept);

// ---------------------------------------------------------------------------------------------
// Latency through real servers.

async fn serve_digest(stores: Option<&RedisStores>) -> SocketAddr {
    test_support::serve(
        ServiceBuilder::new()
            .layer(digest_layer(stores))
            .service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(String::new()))
            }),
    )
    .await
}

/// A hyper client on one keep-alive connection to `addr`, sending Digest requests on one
/// nonce; the latency of each of `n` requests.
struct Client {
    sender: hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>,
    digest: DigestClient,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        let response = Self::send(&mut sender, None).await;
        assert_eq!(response.status, 407);
        Self {
            sender,
            digest: DigestClient {
                challenge: response.digest_challenge("SHA-256"),
                nc: 0,
            },
        }
    }

    async fn send(
        sender: &mut hyper::client::conn::http1::SendRequest<Empty<bytes::Bytes>>,
        credentials: Option<&str>,
    ) -> RawResponse {
        let mut request = Request::builder()
            .uri("http://origin.example/")
            .header("host", "origin.example");
        if let Some(value) = credentials {
            request = request.header(PROXY_AUTHORIZATION, value);
        }
        sender.ready().await.expect("connection ready");
        let response = sender
            .send_request(request.body(Empty::new()).expect("request"))
            .await
            .expect("response");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        RawResponse {
            status,
            reason: String::new(),
            headers,
            body: body.to_vec(),
        }
    }

    async fn run(&mut self, n: usize, out: &mut Vec<Duration>) {
        for _ in 0..n {
            let credentials = self.digest.next("http://origin.example/");
            let start = Instant::now();
            let response = Self::send(&mut self.sender, Some(&credentials)).await;
            out.push(start.elapsed());
            assert_eq!(response.status, 200, "{response:?}");
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn summary(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    (percentile(samples, 0.50), percentile(samples, 0.99))
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn latency() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let redis = RedisServer::start();
        let stores = stores(&redis).await;
        let memory = serve_digest(None).await;
        let shared = serve_digest(Some(&stores)).await;
        let mut clients = [Client::connect(memory).await, Client::connect(shared).await];
        // Warm up both, then alternate blocks of 1,000: 10,000 requests each.
        let mut samples = [Vec::new(), Vec::new()];
        for (client, out) in clients.iter_mut().zip(samples.iter_mut()) {
            client.run(500, &mut Vec::new()).await;
            out.clear();
        }
        for _ in 0..10 {
            for (client, out) in clients.iter_mut().zip(samples.iter_mut()) {
                client.run(1000, out).await;
            }
        }
        let [mut m, mut r] = samples;
        let (m_total, r_total): (Duration, Duration) = (m.iter().sum(), r.iter().sum());
        let (m50, m99) = summary(&mut m);
        let (r50, r99) = summary(&mut r);
        println!();
        println!("Digest accept through a real server, one keep-alive hyper client, 10,000 requests each");
        println!(
            "  memory replay store: p50 {:7.1} µs  p99 {:7.1} µs  mean {:7.1} µs",
            us(m50),
            us(m99),
            us(m_total) / 10_000.0
        );
        println!(
            "  redis replay store:  p50 {:7.1} µs  p99 {:7.1} µs  mean {:7.1} µs",
            us(r50),
            us(r99),
            us(r_total) / 10_000.0
        );
        println!(
            "  added by Redis: p50 +{:.1} µs, p99 +{:.1} µs; throughput ratio (redis ÷ memory, one client) {:.3}×",
            us(r50) - us(m50),
            us(r99) - us(m99),
            m_total.as_secs_f64() / r_total.as_secs_f64()
        );

        // 1, 2 and 3 instances on the same Redis, each with its own connection and client,
        // all at once: 3,000 requests per client.
        println!("Digest accept, N instances loading one Redis at once (3,000 requests per instance)");
        for n in 1..=3 {
            let mut tasks = Vec::new();
            for _ in 0..n {
                let stores = self::stores(&redis).await;
                let addr = serve_digest(Some(&stores)).await;
                let mut client = Client::connect(addr).await;
                tasks.push(tokio::spawn(async move {
                    let _stores = stores;
                    client.run(200, &mut Vec::new()).await;
                    let mut out = Vec::with_capacity(3000);
                    let start = Instant::now();
                    client.run(3000, &mut out).await;
                    (out, start.elapsed())
                }));
            }
            let mut all = Vec::new();
            let mut rate = 0.0;
            for task in tasks {
                let (out, elapsed) = task.await.expect("client");
                rate += out.len() as f64 / elapsed.as_secs_f64();
                all.extend(out);
            }
            let (p50, p99) = summary(&mut all);
            println!(
                "  {n} instance(s): p50 {:7.1} µs  p99 {:7.1} µs  {:8.0} req/s in all",
                us(p50),
                us(p99),
                rate
            );
        }
        drop(redis);
    });
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // The latency part runs unfiltered (`cargo bench --features redis --bench redis`) or
    // alone (`… -- latency`).
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filters.iter().all(|f| f == "latency") && !std::env::args().any(|a| a == "--list") {
        latency();
    }
}
