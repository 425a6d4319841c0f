//! Who the client is when the proxy sits behind a load balancer or another proxy: the networks
//! trusted to say so ([`TrustedProxies`]) and the rule that reads the client's address from the
//! `X-Forwarded-For` or `Forwarded` field of requests that come from them ([`ClientAddress`]).
//!
//! Behind a balancer every connection comes from the balancer's address, so everything keyed
//! by address (the failure throttle's per-address limit and familiar addresses, the access
//! log) would see one client. A balancer names the real client in a header field, but any
//! client can send the same field, so the field is believed only from a trusted peer, and only
//! as far as the trusted chain goes: the address taken is the rightmost one in the field that
//! is not itself a trusted proxy (what each trusted hop appended), never the leftmost (what the
//! client wrote). This is nginx's `set_real_ip_from` with `real_ip_recursive on`
//! (<https://nginx.org/en/docs/http/ngx_http_realip_module.html>) and the rule of MDN's
//! `X-Forwarded-For` page ("Selecting an IP address").
//!
//! ```
//! use std::net::IpAddr;
//! use http::HeaderMap;
//! use tower_proxy_auth_proxy::client_address::{ClientAddress, ForwardedField, TrustedProxies};
//!
//! let trusted = TrustedProxies::new().trust(TrustedProxies::parse_net("10.0.0.0/8").unwrap());
//! let rule = ClientAddress::new(trusted, Some(ForwardedField::XForwardedFor));
//! let mut headers = HeaderMap::new();
//! // The client wrote 1.2.3.4 itself; the balancer 10.0.0.2 appended the address it saw.
//! headers.insert("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.0.0.2".parse().unwrap());
//!
//! let balancer: IpAddr = "10.0.0.1".parse().unwrap();
//! assert_eq!(rule.client(balancer, &headers), "203.0.113.9".parse::<IpAddr>().unwrap());
//! // The same field from a peer that is not trusted is ignored.
//! let stranger: IpAddr = "198.51.100.7".parse().unwrap();
//! assert_eq!(rule.client(stranger, &headers), stranger);
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use http::header::{HeaderMap, HeaderName, FORWARDED};
use ipnet::{IpNet, Ipv4Net};

/// The `X-Forwarded-For` field (a de-facto standard; MDN documents it).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The networks whose connections are trusted to say who the client is (`--trusted-proxy`):
/// load balancers and proxies in front of this one. Empty by default: nobody is.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusts nobody.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trusts every address in `net` too.
    pub fn trust(mut self, net: IpNet) -> Self {
        self.nets.push(canonical_net(net));
        self
    }

    /// Whether no network is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// The trusted networks, in the order given.
    pub fn nets(&self) -> &[IpNet] {
        &self.nets
    }

    /// Whether `addr` is in a trusted network. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`,
    /// what a socket bound to `[::]` reports for IPv4 clients) match as the IPv4 address.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.nets.iter().any(|net| net.contains(&addr))
    }

    /// Parses a network as `--trusted-proxy` takes it: a CIDR block (`10.0.0.0/8`,
    /// `2001:db8::/32`; host bits are cleared, so `10.1.2.3/8` is `10.0.0.0/8`) or a single
    /// address (`192.0.2.7`, `::1`: a /32 or /128).
    ///
    /// # Errors
    ///
    /// [`NetParseError`] when `text` is neither.
    pub fn parse_net(text: &str) -> Result<IpNet, NetParseError> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(canonical_net(net.trunc()));
        }
        match text.parse::<IpAddr>() {
            Ok(addr) => Ok(canonical_net(IpNet::from(addr))),
            Err(_) => Err(NetParseError {
                text: text.chars().take(64).collect(),
            }),
        }
    }
}

/// IPv4-mapped IPv6 blocks (`::ffff:10.0.0.0/104`) as the IPv4 block they map.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        other => other,
    }
}

/// A `--trusted-proxy` value that is neither a CIDR block nor an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetParseError {
    text: String,
}

impl fmt::Display for NetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?} is not a CIDR block (such as 10.0.0.0/8 or 2001:db8::/32) or an IP address",
            self.text
        )
    }
}

impl std::error::Error for NetParseError {}

/// The header field a trusted proxy names the client in (`--forwarded-header`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedField {
    /// `X-Forwarded-For: client, proxy1, proxy2`: a comma list of addresses, each proxy
    /// appending the address it received the request from (what HAProxy's `option forwardfor`,
    /// nginx's `$proxy_add_x_forwarded_for`, AWS and Google load balancers send).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=192.0.2.60;proto=http, for="[2001:db8::17]:4711"` (RFC 7239): one
    /// element per proxy, the client in its `for` parameter.
    Forwarded,
}

impl ForwardedField {
    /// The field's name, lowercase: `x-forwarded-for` or `forwarded`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }

    fn name(self) -> HeaderName {
        match self {
            Self::XForwardedFor => X_FORWARDED_FOR,
            Self::Forwarded => FORWARDED,
        }
    }
}

/// The rule that finds a request's client address: the address the request came from (the TCP
/// peer, or the source a PROXY protocol header gave), unless that is a trusted proxy, in which
/// case the address its `field` names. See the [module documentation](self).
#[derive(Debug, Clone, Default)]
pub struct ClientAddress {
    trusted: TrustedProxies,
    field: Option<ForwardedField>,
}

impl ClientAddress {
    /// Believes `field` (none: no field at all) from the `trusted` networks.
    pub fn new(trusted: TrustedProxies, field: Option<ForwardedField>) -> Self {
        Self { trusted, field }
    }

    /// The trusted networks.
    pub fn trusted(&self) -> &TrustedProxies {
        &self.trusted
    }

    /// Whether `from` is a trusted proxy.
    pub fn trusts(&self, from: IpAddr) -> bool {
        self.trusted.contains(from)
    }

    /// The client address of a request that came from `from` with `headers`.
    ///
    /// `from` itself (as IPv4 when it is IPv4-mapped) unless it is trusted and the field is
    /// present. Then the field's addresses are walked from the right (field lines in order,
    /// RFC 9110 §5.3): each trusted address is a proxy of the chain and the walk goes on; the
    /// first address that is not trusted is the client. An element that is not an address
    /// (`unknown`, an obfuscated `_node`, a `Forwarded` element without `for`, garbage) ends
    /// the walk at the last trusted hop, as does the left end of a field that holds only
    /// trusted addresses.
    pub fn client(&self, from: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = from.to_canonical();
        let Some(field) = self.field else {
            return client;
        };
        if !self.trusted.contains(client) {
            return client;
        }
        for hop in hops(field, headers).into_iter().rev() {
            match hop {
                Some(addr) => {
                    client = addr.to_canonical();
                    if !self.trusted.contains(client) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// The elements of `field` across its field lines, left to right: `Some(address)` or `None`
/// for an element that names no address. Empty list elements are skipped (RFC 9110 §5.6.1).
fn hops(field: ForwardedField, headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(field.name()) {
        // A value that is not visible ASCII names nobody: treated as one unusable element.
        let Ok(value) = value.to_str() else {
            hops.push(None);
            continue;
        };
        match field {
            ForwardedField::XForwardedFor => hops.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|e| !e.is_empty())
                    .map(parse_node),
            ),
            ForwardedField::Forwarded => {
                for element in split_outside_quotes(value, b',') {
                    if element.trim().is_empty() {
                        continue;
                    }
                    hops.push(forwarded_for(element).as_deref().and_then(parse_node));
                }
            }
        }
    }
    hops
}

/// The `for` parameter of one `Forwarded` element (RFC 7239 §4), unquoted.
fn forwarded_for(element: &str) -> Option<String> {
    split_outside_quotes(element, b';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| unquote(value.trim()))
    })
}

/// Splits `text` at `separator` bytes that are not inside a quoted-string (RFC 9110 §5.6.4).
fn split_outside_quotes(text: &str, separator: u8) -> impl Iterator<Item = &str> {
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    let mut i = 0;
    std::iter::from_fn(move || {
        if start > bytes.len() {
            return None;
        }
        while i < bytes.len() {
            let b = bytes[i];
            i += 1;
            if escaped {
                escaped = false;
            } else if quoted && b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                quoted = !quoted;
            } else if !quoted && b == separator {
                let part = &text[start..i - 1];
                start = i;
                return Some(part);
            }
        }
        let part = &text[start..];
        start = bytes.len() + 1;
        Some(part)
    })
}

/// A token as it is, or a quoted-string's content with its quoted-pairs resolved.
fn unquote(value: &str) -> String {
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

/// A node as `X-Forwarded-For` and `Forwarded: for=` write it (RFC 7239 §6): `192.0.2.43`,
/// `192.0.2.43:47011`, `[2001:db8::17]`, `[2001:db8::17]:4711`, and the bare IPv6 form some
/// proxies write (`2001:db8::17`). `unknown` and obfuscated names (`_hidden`) are no address.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(addr) = node.parse::<IpAddr>() {
        return Some(addr);
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    let bracketed = node.strip_prefix('[')?.strip_suffix(']')?;
    bracketed.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        nets.iter().fold(TrustedProxies::new(), |t, n| {
            t.trust(TrustedProxies::parse_net(n).unwrap())
        })
    }

    fn headers(name: &str, values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        headers
    }

    fn xff(nets: &[&str]) -> ClientAddress {
        ClientAddress::new(trusted(nets), Some(ForwardedField::XForwardedFor))
    }

    fn fwd(nets: &[&str]) -> ClientAddress {
        ClientAddress::new(trusted(nets), Some(ForwardedField::Forwarded))
    }

    #[test]
    fn nets_parse_as_cidr_blocks_or_single_addresses() {
        let net = |t| TrustedProxies::parse_net(t).map(|n| n.to_string());
        assert_eq!(net("10.0.0.0/8").as_deref(), Ok("10.0.0.0/8"));
        assert_eq!(net("10.1.2.3/8").as_deref(), Ok("10.0.0.0/8"));
        assert_eq!(net(" 192.0.2.7 ").as_deref(), Ok("192.0.2.7/32"));
        assert_eq!(net("::1").as_deref(), Ok("::1/128"));
        assert_eq!(net("2001:db8::/32").as_deref(), Ok("2001:db8::/32"));
        assert_eq!(net("::ffff:10.0.0.0/104").as_deref(), Ok("10.0.0.0/8"));
        for bad in [
            "",
            "10.0.0.0/33",
            "10.0.0",
            "example.com",
            "10.0.0.0/8/8",
            "::1/129",
        ] {
            let error = TrustedProxies::parse_net(bad).unwrap_err();
            assert!(
                error.to_string().contains("not a CIDR block"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn membership_covers_the_block_and_mapped_addresses() {
        let t = trusted(&["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]);
        assert!(t.contains(ip("10.255.0.1")));
        assert!(t.contains(ip("::ffff:10.0.0.1")));
        assert!(t.contains(ip("2001:db8:1::5")));
        assert!(t.contains(ip("127.0.0.1")));
        assert!(!t.contains(ip("127.0.0.2")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(!t.contains(ip("2001:db9::1")));
        assert!(!TrustedProxies::new().contains(ip("127.0.0.1")));
    }

    #[test]
    fn x_forwarded_for_from_a_trusted_peer_gives_the_rightmost_untrusted_address() {
        let rule = xff(&["10.0.0.0/8"]);
        let lb = ip("10.0.0.1");
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(rule.client(lb, &h), ip("203.0.113.9"));
        // The client's own entries on the left are not believed.
        let h = headers(
            "x-forwarded-for",
            &["1.1.1.1, 2.2.2.2, 203.0.113.9, 10.0.0.7"],
        );
        assert_eq!(rule.client(lb, &h), ip("203.0.113.9"));
        // Field lines are one list, in order (RFC 9110 §5.3).
        let h = headers("x-forwarded-for", &["1.1.1.1", "203.0.113.9 , 10.9.9.9"]);
        assert_eq!(rule.client(lb, &h), ip("203.0.113.9"));
        // Ports and brackets, IPv6, mapped addresses, empty elements.
        for (value, client) in [
            ("203.0.113.9:4711", "203.0.113.9"),
            ("[2001:db8::17]:4711", "2001:db8::17"),
            ("[2001:db8::17]", "2001:db8::17"),
            ("2001:db8::17", "2001:db8::17"),
            ("::ffff:203.0.113.9", "203.0.113.9"),
            ("203.0.113.9,,", "203.0.113.9"),
        ] {
            let h = headers("x-forwarded-for", &[value]);
            assert_eq!(rule.client(lb, &h), ip(client), "{value}");
        }
    }

    #[test]
    fn a_field_from_a_peer_that_is_not_trusted_is_ignored() {
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        let stranger = ip("198.51.100.7");
        assert_eq!(xff(&["10.0.0.0/8"]).client(stranger, &h), stranger);
        // Nobody trusted: nobody's field counts, however it is spelled.
        assert_eq!(xff(&[]).client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // No field chosen: the peer, trusted or not.
        let none = ClientAddress::new(trusted(&["10.0.0.0/8"]), None);
        assert_eq!(none.client(ip("10.0.0.1"), &h), ip("10.0.0.1"));
        // The other field is not read.
        let h = headers("forwarded", &["for=203.0.113.9"]);
        assert_eq!(
            xff(&["10.0.0.0/8"]).client(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn the_walk_stops_at_what_is_not_an_address() {
        let rule = xff(&["10.0.0.0/8"]);
        let lb = ip("10.0.0.1");
        // No field: the trusted peer itself (a health check).
        assert_eq!(rule.client(lb, &HeaderMap::new()), lb);
        // Garbage right of a trusted hop: that hop, not what the client wrote further left.
        let h = headers("x-forwarded-for", &["203.0.113.9, garbage, 10.0.0.5"]);
        assert_eq!(rule.client(lb, &h), ip("10.0.0.5"));
        let h = headers("x-forwarded-for", &["203.0.113.9, unknown"]);
        assert_eq!(rule.client(lb, &h), lb);
        // Only trusted hops: the leftmost of them.
        let h = headers("x-forwarded-for", &["10.0.0.9, 10.0.0.5"]);
        assert_eq!(rule.client(lb, &h), ip("10.0.0.9"));
        // A value that is not visible ASCII.
        let mut h = HeaderMap::new();
        h.insert(
            X_FORWARDED_FOR,
            http::HeaderValue::from_bytes(b"203.0.113.9\xff").unwrap(),
        );
        assert_eq!(rule.client(lb, &h), lb);
    }

    #[test]
    fn forwarded_for_parameters_as_rfc_7239_writes_them() {
        let rule = fwd(&["10.0.0.0/8"]);
        let lb = ip("10.0.0.1");
        // RFC 7239 §4's and §7.4's examples.
        for (values, client) in [
            (&["for=\"_gazonk\""][..], "10.0.0.1"),
            (&["For=\"[2001:db8:cafe::17]:4711\""], "2001:db8:cafe::17"),
            (&["for=192.0.2.60;proto=http;by=203.0.113.43"], "192.0.2.60"),
            (&["for=192.0.2.43, for=198.51.100.17"], "198.51.100.17"),
            (
                &["for=192.0.2.43", "for=198.51.100.17;by=10.0.0.2"],
                "198.51.100.17",
            ),
            (&["proto=https;for=\"192.0.2.43:4711\""], "192.0.2.43"),
            (&["for=unknown, for=10.0.0.3"], "10.0.0.3"),
            // A quoted comma or semicolon does not split.
            (&["for=192.0.2.43;x=\"a,b;for=1.1.1.1\""], "192.0.2.43"),
            // An element without `for`: the walk stops at the last trusted hop.
            (&["for=192.0.2.43, proto=https"], "10.0.0.1"),
            (&["for=\"\\[2001:db8::1\\]\""], "2001:db8::1"),
        ] {
            let h = headers("forwarded", values);
            assert_eq!(rule.client(lb, &h), ip(client), "{values:?}");
        }
        // X-Forwarded-For is not read when Forwarded is the field.
        let h = headers("x-forwarded-for", &["203.0.113.9"]);
        assert_eq!(rule.client(lb, &h), lb);
    }

    #[test]
    fn quoted_splitting_keeps_every_part() {
        let parts: Vec<&str> = split_outside_quotes("a,\"b,c\",,\"d\\\",e\",f", b',').collect();
        assert_eq!(parts, ["a", "\"b,c\"", "", "\"d\\\",e\"", "f"]);
        assert_eq!(split_outside_quotes("", b',').collect::<Vec<_>>(), [""]);
        // An unterminated quote runs to the end.
        assert_eq!(
            split_outside_quotes("for=\"1.2.3.4, x", b',').collect::<Vec<_>>(),
            ["for=\"1.2.3.4, x"]
        );
    }
}
