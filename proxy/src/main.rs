//! `forward-proxy`: a forward HTTP/1.1 proxy with proxy authentication, built on hyper 1,
//! hyper-util and [`tower_proxy_auth::ProxyAuthLayer`].
//!
//! - Absolute-form requests are forwarded, CONNECT opens tunnels, internal targets get 403
//!   (`tower_proxy_auth_proxy`, the library of this crate: forwarding, tunnels, hop-by-hop
//!   fields, target policy).
//! - One file per concern: `cli.rs` (the flags), `auth.rs` (the layer from the flags),
//!   `server.rs` (accept loop, connection limit, TLS handshakes, shutdown), `tls.rs`,
//!   `access_log.rs`, `allocator.rs` (jemalloc on Linux).
//!
//! Run it with the embedded demo user `alice` / `s3cret`:
//!
//! ```text
//! cargo run -p tower-proxy-auth-proxy
//! curl -x http://alice:s3cret@127.0.0.1:3128 http://example.com/
//! curl -p -x http://alice:s3cret@127.0.0.1:3128 https://example.com/
//! ```
//!
//! or with your own users (the password is everything after the first `:`):
//!
//! ```text
//! cargo run -p tower-proxy-auth-proxy -- --listen 0.0.0.0:8080 --realm "corp proxy" \
//!     --user alice:s3cret --user bob:pa:ss:word
//! cargo run -p tower-proxy-auth-proxy -- --no-auth     # the same proxy without the layer
//! ```
//!
//! Passwords given with `--user` are visible to other local users in the process list; a real
//! deployment would read them from a file (`--htpasswd`). Diagnostics follow `RUST_LOG`
//! (default `info`) and go to stderr; stdout carries the `listening on <addr>` line, a
//! ready-to-paste curl command, and the access log unless `--access-log` sends it elsewhere.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

mod access_log;
#[cfg(target_os = "linux")]
mod allocator;
mod auth;
mod cli;
mod server;
#[cfg(feature = "tls")]
mod tls;

fn main() -> ExitCode {
    let args = cli::Args::parse();

    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let setup = match setup(&args) {
        Ok(setup) => setup,
        Err(message) => {
            eprintln!("forward-proxy: error: {message}");
            return ExitCode::from(2);
        }
    };

    // One worker: a current-thread runtime, with no work-stealing or cross-thread wake-ups.
    let mut runtime = match args.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut runtime = tokio::runtime::Builder::new_multi_thread();
            runtime.worker_threads(usize::from(n));
            runtime
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    // A worker with nothing to do hands its allocator cache back (see allocator.rs).
    #[cfg(target_os = "linux")]
    runtime.on_thread_park(allocator::release_thread_cache);
    let runtime = match runtime.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("forward-proxy: error: cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(server::run(args, setup));
    // Tunnels still open after the grace period are cut here.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("forward-proxy: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Everything the flags ask for that can fail, checked before the proxy starts: an error names
/// the flag (and the file).
fn setup(args: &cli::Args) -> Result<server::Setup, String> {
    let auth = auth::auth_setup(args)?;
    #[cfg(feature = "tls")]
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(|e| e.to_string())?),
        _ => None,
    };
    let access_log = access_log::open(&args.access_log, args.access_log_format)?;
    Ok(server::Setup {
        auth,
        access_log,
        #[cfg(feature = "tls")]
        tls,
    })
}
