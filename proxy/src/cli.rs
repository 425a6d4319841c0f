//! The command line: every flag, its default and its range, parsed by clap.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, ValueEnum};
use ipnet::IpNet;
use tower_proxy_auth::scheme::digest::Algorithm;
use tower_proxy_auth::FailureThrottle;
use tower_proxy_auth_proxy::client_address::{ForwardedField, TrustedProxies};

/// The demo user the proxy starts with when no `--user` or `--htpasswd` is given.
pub const DEMO_USER: (&str, &str) = ("alice", "s3cret");

/// The longest duration any `SECONDS` flag takes: 365 days. Beyond it some timers (hyper's
/// header read timeout among them) would overflow the clock and panic.
pub const MAX_SECONDS: u64 = 365 * 24 * 60 * 60;

/// The default of `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 4096;

/// The default of `--redis-timeout-ms`: the library's per-call timeout.
#[cfg(feature = "redis")]
pub const DEFAULT_REDIS_TIMEOUT_MS: u64 = 100;

/// The parser of every `SECONDS` flag but `--shutdown-grace`: 1 to [`MAX_SECONDS`].
fn seconds() -> clap::builder::RangedU64ValueParser {
    clap::value_parser!(u64).range(1..=MAX_SECONDS)
}

/// A forward HTTP/1.1 proxy with proxy authentication (tower-proxy-auth).
#[derive(Parser, Debug)]
#[command(name = "forward-proxy", version)]
pub struct Args {
    /// Address to listen on; port 0 picks a free port (the real address is printed).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3128")]
    pub listen: SocketAddr,

    /// Realm named in the Proxy-Authenticate challenge.
    #[arg(long, value_name = "TEXT", default_value = tower_proxy_auth::DEFAULT_REALM)]
    pub realm: String,

    /// A user, as NAME:PASSWORD (split at the first ':'; the password may hold ':').
    /// Repeatable. Without any --user or --htpasswd, the demo user alice:s3cret is used.
    #[arg(long = "user", value_name = "NAME:PASSWORD", value_parser = parse_user)]
    pub users: Vec<UserArg>,

    /// An Apache/nginx htpasswd file of users (bcrypt, apr1, SHA, crypt(3) formats); reloaded
    /// when it changes. Combinable with --user (those are checked first).
    #[arg(long, value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,

    /// Skip unusable lines of the htpasswd file with a warning naming file and line, instead of
    /// refusing to start.
    #[arg(long, requires = "htpasswd")]
    pub htpasswd_lenient: bool,

    /// Refuse legacy DES crypt(3) lines of the htpasswd file (only 8 bytes of a password
    /// count): such a line is an error naming file and line (skipped with --htpasswd-lenient).
    #[arg(long, requires = "htpasswd")]
    pub htpasswd_refuse_des: bool,

    /// The authentication schemes offered, in challenge order (RFC 7616 §3.7: most preferred
    /// first): a comma list of `digest` and `basic`. `--user` users work with both; htpasswd
    /// users with Basic only (their hashes cannot serve Digest); htdigest users with Digest.
    #[arg(
        long = "auth",
        value_name = "SCHEMES",
        value_delimiter = ',',
        default_value = "basic"
    )]
    pub schemes: Vec<SchemeArg>,

    /// Digest algorithms offered, one challenge each, in this order: a comma list of `SHA-256`,
    /// `SHA-512-256`, `MD5` and their `-sess` forms. Default: SHA-256,MD5 (SHA-256 for the
    /// clients that can, MD5 for those that cannot); with --htdigest, MD5 only (the file holds
    /// MD5 HA1s).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_algorithm)]
    pub digest_algorithms: Vec<Algorithm>,

    /// The Digest nonce key, shared by every instance that should accept another's nonces (at
    /// least 32 bytes; e.g. `head -c 32 /dev/urandom > nonce.key`). Default: a random key per
    /// process.
    #[arg(long, value_name = "FILE")]
    pub digest_key_file: Option<PathBuf>,

    /// How long a Digest nonce is accepted, in seconds; after that a right response gets
    /// `stale=true` and a fresh nonce (clients retry without asking the user).
    #[arg(long, value_name = "SECONDS", value_parser = seconds(),
          default_value_t = tower_proxy_auth::scheme::digest::DEFAULT_NONCE_LIFETIME.as_secs())]
    pub digest_nonce_lifetime: u64,

    /// An Apache htdigest file (`user:realm:HA1`, as `htdigest` writes it) of Digest users for
    /// --realm; reloaded when it changes.
    #[arg(long, value_name = "FILE")]
    pub htdigest: Option<PathBuf>,

    /// A Squid Basic authentication helper, as Squid's `auth_param basic program` line: the
    /// program (a path, or a name on PATH; Debian puts Squid's in /usr/lib/squid) and its
    /// arguments, split as a shell splits words, e.g. `"/usr/lib/squid/basic_ncsa_auth
    /// /etc/squid/passwd"`. Asked after --user and --htpasswd (the cheap checks first); the
    /// password reaches it on stdin only. Needs --auth with basic.
    #[cfg(feature = "squid-helper")]
    #[arg(long, value_name = "PROGRAM ARGS...")]
    pub squid_helper: Option<String>,

    /// A Squid Digest authentication helper (`auth_param digest program`), e.g.
    /// `"/usr/lib/squid/digest_file_auth -c /etc/squid/digest_passwd"`: it answers each
    /// user's HA1 for --realm (MD5 only). Asked after --user and --htdigest. Needs --auth with
    /// digest.
    #[cfg(feature = "squid-helper")]
    #[arg(long, value_name = "PROGRAM ARGS...")]
    pub squid_digest_helper: Option<String>,

    /// Child processes run per Squid helper (Squid's `children`), 1 to 1024.
    #[cfg(feature = "squid-helper")]
    #[arg(long, value_name = "N",
          default_value_t = tower_proxy_auth::store::squid_helper::DEFAULT_CHILDREN as u64,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub squid_helper_children: u64,

    /// Requests in flight per helper child (Squid's `concurrency`), 0 to 1024. 0 sends one at
    /// a time without channel-IDs (helpers such as basic_ncsa_auth); M ≥ 1 sends up to M with
    /// channel-IDs (helpers that support them, or any helper wrapped by Squid's helper-mux).
    #[cfg(feature = "squid-helper")]
    #[arg(long, value_name = "M", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub squid_helper_concurrency: u64,

    /// Seconds a helper child may take to answer one check: past it the child is killed and
    /// restarted, and its checks in flight get 503 (never an open door).
    #[cfg(feature = "squid-helper")]
    #[arg(long, value_name = "SECONDS",
          default_value_t = tower_proxy_auth::store::squid_helper::DEFAULT_TIMEOUT.as_secs(),
          value_parser = seconds())]
    pub squid_helper_timeout: u64,

    /// An HTTP auth service that checks Basic credentials (Traefik's ForwardAuth, nginx's
    /// auth_request, Envoy's ext_authz HTTP mode): each check not cached is a GET to URL with
    /// the client's credentials in `Authorization` and the request's method, URI and client
    /// address in X-Forwarded-Method/-Uri/-For. 2xx allows, 401/407 rejects, 403 forbids,
    /// anything else or no answer in time is 503. Asked last, after every other Basic source.
    /// Digest cannot be delegated this way. Needs --auth with basic.
    #[cfg(feature = "forward-auth")]
    #[arg(long, value_name = "URL")]
    pub forward_auth: Option<String>,

    /// The response field of --forward-auth's 2xx answers naming the user (e.g. Remote-User);
    /// without it, or when the answer lacks it, the user is the Basic user-id.
    #[cfg(feature = "forward-auth")]
    #[arg(long, value_name = "NAME", requires = "forward_auth")]
    pub forward_auth_identity_header: Option<String>,

    /// Seconds --forward-auth's service may take to answer a check; past it, 503.
    #[cfg(feature = "forward-auth")]
    #[arg(long, value_name = "SECONDS",
          default_value_t = tower_proxy_auth::store::forward_auth::DEFAULT_TIMEOUT.as_secs(),
          value_parser = seconds(), requires = "forward_auth")]
    pub forward_auth_timeout: u64,

    /// Seconds an accepted user (or a found HA1) of --squid-helper, --squid-digest-helper or
    /// --forward-auth is remembered before they are asked again (Squid's `credentialsttl`);
    /// 0 asks every time (identical checks in flight are still asked once).
    #[cfg(any(feature = "squid-helper", feature = "forward-auth"))]
    #[arg(long, value_name = "SECONDS",
          default_value_t = tower_proxy_auth::validator::DEFAULT_CACHE_TTL.as_secs(),
          value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub credentials_ttl: u64,

    /// Seconds a refusal by those sources is remembered (0, the default: not at all, as
    /// Squid does). A user who corrects a mistyped password is refused for up to this long.
    #[cfg(any(feature = "squid-helper", feature = "forward-auth"))]
    #[arg(long, value_name = "SECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub negative_ttl: u64,

    /// Serve without proxy authentication (a baseline for benchmarks).
    #[arg(long, conflicts_with_all = ["users", "realm", "htpasswd", "htdigest"])]
    pub no_auth: bool,

    /// Failure throttling: wrong credentials allowed per (user name, client address) within
    /// one --auth-failure-window, and 10 × N per client address (across user names) and per
    /// user name (across addresses, except addresses where that user succeeded in the last 7
    /// days). Past a limit, attempts get 429 with Retry-After without the password being
    /// checked. The same wrong password repeated counts once. 0 turns throttling off.
    #[arg(long, value_name = "N", default_value_t = FailureThrottle::DEFAULT_MAX_FAILURES)]
    pub max_auth_failures: u32,

    /// Length of the sliding window over which --max-auth-failures counts, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = FailureThrottle::DEFAULT_WINDOW.as_secs(),
          value_parser = seconds())]
    pub auth_failure_window: u64,

    /// Share state with every instance on the same Redis, so that instances behind a load
    /// balancer behave as one: Digest nonce counts (a (nonce, nc) is accepted once in the
    /// fleet) and the failure throttle's counts. `redis://[USER:PASSWORD@]HOST[:PORT][/DB]`,
    /// or `rediss://...` for TLS. Needs --digest-key-file, the same file on every instance (the
    /// nonce key, and with a derivation of its own the key of the throttle's hashes, which
    /// never goes to Redis). See README, "Running several instances".
    #[cfg(feature = "redis")]
    #[arg(long, value_name = "URL", value_parser = parse_redis_url, requires = "digest_key_file")]
    pub redis_url: Option<RedisUrl>,

    /// The start of every key on Redis: instances that are to behave as one use the same
    /// prefix, other fleets on the same Redis another.
    #[cfg(feature = "redis")]
    #[arg(long, value_name = "TEXT", requires = "redis_url",
          default_value = tower_proxy_auth::shared::redis::RedisStores::DEFAULT_PREFIX)]
    pub redis_prefix: String,

    /// Milliseconds one call to Redis may take (1 to 60000); no request waits longer for
    /// Redis. Past it (or while Redis is down) the throttle counts in this instance's memory
    /// and Digest nonces are issued by and tracked on this instance until Redis answers.
    #[cfg(feature = "redis")]
    #[arg(long, value_name = "MS", requires = "redis_url",
          default_value_t = DEFAULT_REDIS_TIMEOUT_MS,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub redis_timeout_ms: u64,

    /// For `rediss://`: trust only the CA certificate(s) in this PEM file instead of the
    /// system's root certificates.
    #[cfg(feature = "redis")]
    #[arg(long, value_name = "FILE", requires = "redis_url")]
    pub redis_ca_file: Option<PathBuf>,

    /// Trust connections from this network (a CIDR block such as 10.0.0.0/8, or one address)
    /// to say who the client is: a load balancer or proxy in front of this one. Repeatable.
    /// Their requests' client address (for the failure throttle and the access log) is the
    /// rightmost address of --forwarded-header that is not itself trusted; with
    /// --proxy-protocol, only they may (and must) send a PROXY header. Without this flag
    /// nobody is trusted: the client address is the TCP peer (or the PROXY header's source).
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_parser = parse_net)]
    pub trusted_proxies: Vec<IpNet>,

    /// Which field of a --trusted-proxy's requests names the client: `x-forwarded-for`,
    /// `forwarded` (RFC 7239's `for=`), or `none` (only the PROXY protocol header counts).
    #[arg(long, value_name = "FIELD", value_enum, default_value_t = ForwardedArg::XForwardedFor,
          requires = "trusted_proxies")]
    pub forwarded_header: ForwardedArg,

    /// Read a PROXY protocol header (HAProxy's, version 1 or 2) at the start of each
    /// connection, before TLS and HTTP, within --header-read-timeout; its source address is the
    /// client address. A connection without a valid header is closed. With --trusted-proxy,
    /// only connections from trusted networks are expected to send one (others are served
    /// as direct clients, and a header they send is not believed).
    #[arg(long)]
    pub proxy_protocol: bool,

    /// Largest Proxy-Authorization accepted, in bytes (at least 64); larger gets 431 and the
    /// connection closes.
    #[arg(long, value_name = "BYTES", default_value_t = tower_proxy_auth::DEFAULT_MAX_CREDENTIALS_BYTES as u64,
          value_parser = clap::value_parser!(u64).range(64..))]
    pub max_credentials_bytes: u64,

    /// Connect to loopback, private, link-local, unique-local and other internal addresses
    /// too. By default such targets get 403, checked after name resolution, for CONNECT and
    /// forwarded requests alike.
    #[arg(long)]
    pub allow_private_targets: bool,

    /// Client connections open at once, CONNECT tunnels included (at least 1). At the limit
    /// the proxy stops accepting until one closes: new clients wait in the kernel's listen
    /// queue instead of being refused.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Serve the proxy over TLS with this certificate chain (PEM, leaf first); needs
    /// --tls-key. Clients then use `https://` proxy URLs (curl --proxy https://HOST:PORT).
    #[cfg(feature = "tls")]
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[cfg(feature = "tls")]
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Where the access log (one line per request) goes: a file (appended to), `-` for
    /// standard output, or `none`.
    #[arg(long, value_name = "FILE|-|none", default_value = "-")]
    pub access_log: String,

    /// The access log's line format.
    #[arg(long, value_name = "FORMAT", value_enum, default_value_t = LogFormat::Common)]
    pub access_log_format: LogFormat,

    /// Number of tokio worker threads, 1 to 1024 (default: one per core). 1 runs everything
    /// on one thread (tokio's current-thread runtime).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,

    /// Seconds a client may take to send a request's header section (and, with TLS, to finish
    /// the handshake); also bounds how long an idle keep-alive connection is held.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = seconds())]
    pub header_read_timeout: u64,

    /// Seconds to wait for a TCP connection to an origin or a CONNECT target.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = seconds())]
    pub connect_timeout: u64,

    /// Seconds an unused pooled origin connection is kept for reuse; it is closed between 1 and
    /// 2 times this after its last use (the pool is swept once per period). An origin that
    /// closes sooner (Apache httpd: 5 s, nginx: 75 s) can do so just as a request reuses the
    /// connection: idempotent requests without a body are then retried once, others get 502.
    #[arg(long, value_name = "SECONDS", default_value_t = 30,
          value_parser = seconds())]
    pub origin_idle_timeout: u64,

    /// Unused connections kept per origin (scheme, host, port) for reuse; beyond this, a
    /// connection is closed when its response ends. 0 turns pooling off. Keep it near the
    /// number of concurrent clients: below it, busy origins see connections closed and reopened.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_idle_per_origin: usize,

    /// Seconds a CONNECT tunnel may pass no bytes in either direction before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 600,
          value_parser = seconds())]
    pub tunnel_idle_timeout: u64,

    /// Seconds in-flight connections and tunnels get to finish after Ctrl-C.
    #[arg(long, value_name = "SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=MAX_SECONDS))]
    pub shutdown_grace: u64,
}

/// The values of `--forwarded-header`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ForwardedArg {
    /// `X-Forwarded-For: client, proxy1, ...`.
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1, ...` (RFC 7239).
    Forwarded,
    /// Neither: a trusted proxy names the client with the PROXY protocol only.
    None,
}

impl ForwardedArg {
    /// The field to read, if any.
    pub fn field(self) -> Option<ForwardedField> {
        match self {
            Self::XForwardedFor => Some(ForwardedField::XForwardedFor),
            Self::Forwarded => Some(ForwardedField::Forwarded),
            Self::None => None,
        }
    }
}

fn parse_net(value: &str) -> Result<IpNet, String> {
    TrustedProxies::parse_net(value).map_err(|e| e.to_string())
}

/// The access log's line formats (see `access_log.rs` for each field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Apache's common log format plus the time taken in microseconds:
    /// `%h %l %u %t "%r" %>s %b %D`.
    Common,
    /// Squid's native access.log format:
    /// `time.ms elapsed client code/status bytes method URL user hierarchy/peer type`.
    Squid,
}

/// One scheme of `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchemeArg {
    /// Digest (RFC 7616).
    Digest,
    /// Basic (RFC 7617).
    Basic,
}

fn parse_algorithm(value: &str) -> Result<Algorithm, String> {
    Algorithm::from_token(value.trim().as_bytes()).ok_or_else(|| {
        format!(
            "unknown Digest algorithm {value:?} (known: {})",
            Algorithm::ALL.map(Algorithm::as_str).join(", ")
        )
    })
}

/// One `--user NAME:PASSWORD`; `Debug` hides the password.
#[derive(Clone)]
pub struct UserArg {
    pub name: String,
    pub password: String,
}

impl fmt::Debug for UserArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserArg")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

fn parse_user(value: &str) -> Result<UserArg, String> {
    let Some((name, password)) = value.split_once(':') else {
        return Err("expected NAME:PASSWORD (no ':' found)".to_owned());
    };
    if name.is_empty() {
        return Err("the user name is empty".to_owned());
    }
    // RFC 7617 §2: neither part may hold a control character, so such a user could never log in.
    if name.chars().any(char::is_control) {
        return Err("the user name holds a control character".to_owned());
    }
    if password.chars().any(char::is_control) {
        return Err("the password holds a control character".to_owned());
    }
    Ok(UserArg {
        name: name.to_owned(),
        password: password.to_owned(),
    })
}

/// One `--redis-url`; `Debug` and `Display` hide a password in it.
#[cfg(feature = "redis")]
#[derive(Clone)]
pub struct RedisUrl(pub String);

#[cfg(feature = "redis")]
impl fmt::Display for RedisUrl {
    /// `scheme://host:port/db`, without the user part (`USER:PASSWORD@`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, rest) = self.0.split_once("://").unwrap_or(("", &self.0));
        let authority_end = rest.find('/').unwrap_or(rest.len());
        let host_start = rest[..authority_end].rfind('@').map_or(0, |at| at + 1);
        write!(f, "{scheme}://{}", &rest[host_start..])
    }
}

#[cfg(feature = "redis")]
impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

#[cfg(feature = "redis")]
fn parse_redis_url(value: &str) -> Result<RedisUrl, String> {
    match value.split_once("://") {
        Some(("redis" | "rediss", rest)) if !rest.is_empty() => Ok(RedisUrl(value.to_owned())),
        _ => Err("expected redis://HOST[:PORT][/DB] or rediss://HOST[:PORT][/DB]".to_owned()),
    }
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use super::*;

    #[test]
    fn a_redis_url_is_shown_without_its_password() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
            (
                "rediss://fleet:pa@ss@cache.internal:6380/2",
                "rediss://cache.internal:6380/2",
            ),
            ("redis://:secret@h", "redis://h"),
        ] {
            let url = parse_redis_url(url).unwrap();
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), format!("RedisUrl({shown})"));
        }
        for bad in [
            "http://h",
            "127.0.0.1:6379",
            "redis://",
            "redis+unix:///run/redis.sock",
        ] {
            assert!(parse_redis_url(bad).is_err(), "{bad}");
        }
    }
}
