//! Which addresses a proxy may connect to on a client's behalf.
//!
//! A forward proxy that connects anywhere lets every user reach what only the proxy host can:
//! its loopback services, the cloud metadata service at 169.254.169.254, the private network
//! behind it. Squid's default configuration refuses `CONNECT` and requests to `to_localhost`
//! for this reason (<http://www.squid-cache.org/Doc/config/http_access/>). [`TargetPolicy`]
//! refuses every address that is not globally reachable ([`is_internal`]) unless told
//! otherwise.
//!
//! The check has to see the address that is connected to, not the name: `internal.example`
//! may resolve to 10.0.0.5, and a name checked once and resolved again at connect time may
//! answer differently the second time (DNS rebinding). So the check sits inside name resolution:
//! [`CheckedResolver`] wraps a resolver, drops the refused addresses from its answer, and hands
//! on only the ones it checked; hyper-util's `HttpConnector` then connects to exactly those.
//! Addresses written in the target itself (`http://127.0.0.1/`, `[::1]:22`) never reach a
//! resolver (the connector parses them), so they are checked with [`TargetPolicy::check_host`]
//! before connecting.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use tower::Service;

/// Whether connecting to `ip` would reach something that is not on the public internet:
///
/// - IPv4: `0.0.0.0/8` (this host; `0.0.0.0` reaches its loopback on Linux), `10/8`,
///   `172.16/12`, `192.168/16` (private, RFC 1918), `100.64/10` (shared, RFC 6598), `127/8`
///   (loopback), `169.254/16` (link-local, cloud metadata), `192.0.0/24` (IETF protocol
///   assignments), `192.0.2/24`, `198.51.100/24`, `203.0.113/24` (documentation, RFC 5737),
///   `192.88.99/24` (the deprecated 6to4 relay anycast, RFC 7526), `198.18/15` (benchmarking),
///   `224/4` (multicast), `240/4` (reserved, broadcast).
/// - IPv6: `::` and `::1`, `::/96` (IPv4-compatible, deprecated), `fc00::/7` (unique local),
///   `fe80::/10` (link-local), `fec0::/10` (site-local, deprecated), `ff00::/8` (multicast),
///   `64:ff9b:1::/48` (local-use NAT64), `100::/64` (discard-only), `2001::/23` (IETF protocol
///   assignments, Teredo and ORCHID included: refused whole, the safe side), `2001:db8::/32`
///   and `3fff::/20` (documentation), `5f00::/16` (SRv6 SIDs); and the IPv4 address inside
///   `::ffff:0:0/96` (IPv4-mapped), `::ffff:0:0:0/96` (IPv4-translated, RFC 2765),
///   `64:ff9b::/96` (NAT64) and `2002::/16` (6to4) is checked as above.
///
/// The ranges are those of the IANA special-purpose address registries (RFC 6890) that are not
/// globally reachable, plus multicast.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b))
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 168)
        || (a == 192 && b == 0 && (c == 0 || c == 2))
        || (a == 192 && b == 88 && c == 99)
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 198 && (18..20).contains(&b))
        || a >= 224
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_internal_v4(v4);
    }
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // ::/96, :: and ::1 included.
        [0, 0, 0, 0, 0, 0, _, _] => true,
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => is_internal_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => true,
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => is_internal_v4(embedded(hi, lo)),
        [0x100, 0, 0, 0, ..] => true,
        [0x2001, second, ..] if second < 0x200 => true, // 2001::/23
        [0x2001, 0xdb8, ..] => true,
        [0x2002, hi, lo, ..] => is_internal_v4(embedded(hi, lo)),
        [first, ..] => {
            (first & 0xfe00) == 0xfc00 // fc00::/7
                || (first & 0xffc0) == 0xfe80 // fe80::/10
                || (first & 0xffc0) == 0xfec0 // fec0::/10
                || (first & 0xff00) == 0xff00 // ff00::/8
                || (first & 0xfff0) == 0x3ff0 // 3fff::/20
                || first == 0x5f00 // 5f00::/16
        }
    }
}

/// Which targets a proxy connects to: by default only globally reachable addresses (see
/// [`is_internal`]); [`TargetPolicy::allow_internal`] opens all of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    allow_internal: bool,
}

impl TargetPolicy {
    /// The default policy: internal addresses are refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// `true` allows internal addresses too (the proxy's `--allow-private-targets`; tests and
    /// benchmarks with origins on 127.0.0.1 need it).
    pub fn allow_internal(mut self, allow: bool) -> Self {
        self.allow_internal = allow;
        self
    }

    /// Whether connecting to `ip` is allowed.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.allow_internal || !is_internal(ip)
    }

    /// Checks a target's host as written in the request (`example.com`, `127.0.0.1`, `[::1]`):
    /// an address literal the policy refuses is an error; a name is left to the resolver.
    pub fn check_host(&self, host: &str) -> Result<(), TargetRefused> {
        if self.allow_internal {
            return Ok(());
        }
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'));
        match literal.unwrap_or(host).parse::<IpAddr>() {
            Ok(ip) if !self.allows(ip) => Err(TargetRefused { ip }),
            _ => Ok(()),
        }
    }
}

/// A target refused by a [`TargetPolicy`]: the address it resolved to, or was written as, is
/// internal. Display names the address (never the host name the client sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetRefused {
    ip: IpAddr,
}

impl TargetRefused {
    /// The refused address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// Whether `error` or one of its sources is a [`TargetRefused`].
    pub fn in_chain(error: &(dyn StdError + 'static)) -> bool {
        let mut current = Some(error);
        while let Some(e) = current {
            if e.is::<TargetRefused>() {
                return true;
            }
            current = e.source();
        }
        false
    }
}

impl fmt::Display for TargetRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "target address {} is not globally reachable (loopback, private, link-local or reserved)",
            self.ip
        )
    }
}

impl StdError for TargetRefused {}

/// A resolver whose answers hold only the addresses a [`TargetPolicy`] allows.
///
/// When a name resolves to refused addresses only, the answer is a [`TargetRefused`] error;
/// when it resolves to some allowed and some refused, the allowed ones are kept (a connector
/// given this resolver never connects to the others). Use it with hyper-util's connector:
///
/// ```
/// use hyper_util::client::legacy::connect::{dns::GaiResolver, HttpConnector};
/// use tower_proxy_auth_proxy::targets::{CheckedResolver, TargetPolicy};
///
/// let connector = HttpConnector::new_with_resolver(CheckedResolver::new(
///     GaiResolver::new(),
///     TargetPolicy::new(),
/// ));
/// # let _ = connector;
/// ```
///
/// Address literals in a URI skip the resolver: check them with [`TargetPolicy::check_host`].
#[derive(Debug, Clone)]
pub struct CheckedResolver<R = GaiResolver> {
    inner: R,
    policy: TargetPolicy,
}

impl<R> CheckedResolver<R> {
    /// `inner`'s answers, filtered by `policy`.
    pub fn new(inner: R, policy: TargetPolicy) -> Self {
        Self { inner, policy }
    }
}

type BoxError = Box<dyn StdError + Send + Sync>;

impl<R> Service<Name> for CheckedResolver<R>
where
    R: Service<Name>,
    R::Response: Iterator<Item = SocketAddr>,
    R::Error: Into<BoxError>,
    R::Future: Send + 'static,
{
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolving = self.inner.call(name);
        let policy = self.policy;
        Box::pin(async move {
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolving
                .await
                .map_err(Into::into)?
                .filter(|addr| {
                    let ok = policy.allows(addr.ip());
                    if !ok {
                        refused.get_or_insert(addr.ip());
                    }
                    ok
                })
                .collect();
            match refused {
                Some(ip) if allowed.is_empty() => Err(TargetRefused { ip }.into()),
                _ => Ok(allowed.into_iter()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_and_public_addresses() {
        for internal in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "198.51.100.1",
            "203.0.113.1",
            "2001::1",
            "2001:2::1",
            "2001:1ff::1",
            "2001:db8::1",
            "100::1",
            "3fff::1",
            "5f00::1",
            "::ffff:0:a9fe:a9fe",
            "::ffff:0:7f00:1",
            "192.168.1.1",
            "198.18.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.1.2.3",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
        ] {
            let ip: IpAddr = internal.parse().unwrap();
            assert!(is_internal(ip), "{internal} should be internal");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "169.253.1.1",
            "198.20.0.1",
            "203.0.114.1",
            "2001:200::1",
            "2001:4860::1",
            "223.255.255.255",
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "fbff::1",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(!is_internal(ip), "{public} should be public");
        }
    }

    #[test]
    fn literals_are_checked_names_are_left_to_the_resolver() {
        let policy = TargetPolicy::new();
        assert!(policy.check_host("127.0.0.1").is_err());
        assert!(policy.check_host("[::1]").is_err());
        assert!(policy.check_host("[::ffff:127.0.0.1]").is_err());
        assert!(policy.check_host("8.8.8.8").is_ok());
        assert!(policy.check_host("localhost").is_ok());
        assert!(policy.check_host("[not-an-address]").is_ok());
        let open = TargetPolicy::new().allow_internal(true);
        assert!(open.check_host("127.0.0.1").is_ok());
        assert!(open.allows("169.254.169.254".parse().unwrap()));
    }

    /// A resolver answering every name with fixed addresses and counting the calls.
    #[derive(Clone)]
    struct Fixed(
        Vec<SocketAddr>,
        std::sync::Arc<std::sync::atomic::AtomicUsize>,
    );

    impl Service<Name> for Fixed {
        type Response = std::vec::IntoIter<SocketAddr>;
        type Error = std::io::Error;
        type Future = std::future::Ready<Result<Self::Response, std::io::Error>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), std::io::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: Name) -> Self::Future {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::future::ready(Ok(self.0.clone().into_iter()))
        }
    }

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[tokio::test]
    async fn refused_addresses_are_dropped_from_the_answer() {
        use tower::ServiceExt as _;
        let calls = std::sync::Arc::default();
        let name: Name = "rebind.test".parse().unwrap();
        let mixed = Fixed(addrs(&["10.0.0.5:80", "8.8.8.8:80", "[::1]:80"]), calls);
        let resolver = CheckedResolver::new(mixed, TargetPolicy::new());
        let answer: Vec<_> = resolver.oneshot(name.clone()).await.unwrap().collect();
        assert_eq!(answer, addrs(&["8.8.8.8:80"]));

        let calls = std::sync::Arc::default();
        let internal = Fixed(addrs(&["127.0.0.1:80", "[fe80::1]:80"]), calls);
        let error = CheckedResolver::new(internal, TargetPolicy::new())
            .oneshot(name)
            .await
            .unwrap_err();
        assert!(TargetRefused::in_chain(&*error), "{error}");
        assert_eq!(
            error.to_string(),
            "target address 127.0.0.1 is not globally reachable (loopback, private, link-local or reserved)"
        );
    }

    /// The connector connects to the addresses the checked answer holds, resolving once.
    #[tokio::test]
    async fn the_connector_connects_to_the_checked_address_after_one_resolution() {
        use hyper_util::client::legacy::connect::HttpConnector;
        use tower::ServiceExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = listener.local_addr().unwrap();
        let calls = std::sync::Arc::<std::sync::atomic::AtomicUsize>::default();
        let resolver = CheckedResolver::new(
            Fixed(vec![origin], calls.clone()),
            TargetPolicy::new().allow_internal(true),
        );
        let connector = HttpConnector::new_with_resolver(resolver);
        let uri: http::Uri = format!("http://rebind.test:{}/", origin.port())
            .parse()
            .unwrap();
        let connected = connector.oneshot(uri).await.unwrap();
        let (_, peer) = listener.accept().await.unwrap();
        assert_eq!(
            connected.inner().local_addr().unwrap(),
            peer,
            "the connection is the one the origin accepted"
        );
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
