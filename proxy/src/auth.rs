//! Authentication set-up from the command line: which users, which validator, which layer.
//!
//! Decided before the runtime starts, so that a bad `--htpasswd` file or `--realm` stops the
//! proxy with a message naming the flag. The validators are built first (`basic_validator`, `digest`), then
//! the layer around it ([`auth_setup`]); a new scheme or store adds a step to one of them.
//! Each scheme's user sources are asked cheapest first: `--user`, then the files, then the
//! external ones (`--squid-helper`, `--squid-digest-helper`, `--forward-auth`), whose children
//! start, and whose connections open, at the first check.

use std::sync::Arc;
use std::time::Duration;

use tower_proxy_auth::scheme::digest::{Digest, NonceKey};
use tower_proxy_auth::scheme::Basic;
use tower_proxy_auth::store::Htdigest;
use tower_proxy_auth::validator::DigestSecrets;
use tower_proxy_auth::{
    BoxValidator, BuildError, FailureThrottle, Htpasswd, ProxyAuthLayer, ProxyAuthLayerBuilder,
    StaticUsers, Validator as _,
};
use tracing::info;

use crate::cli::{Args, SchemeArg, DEMO_USER};
use crate::shared::SharedState;

/// How authentication is set up.
pub struct AuthSetup {
    /// The layer, or `None` with `--no-auth`.
    pub layer: Option<ProxyAuthLayer>,
    /// What to print as the ready-to-paste proxy URL's user part.
    pub hint_user: Option<String>,
}

impl AuthSetup {
    /// Whether the proxy runs with the embedded demo user.
    pub fn is_demo(&self) -> bool {
        self.hint_user.as_deref() == Some(&format!("{}:{}", DEMO_USER.0, DEMO_USER.1))
    }
}

/// The layer the flags ask for, its Digest replay store and throttle counts in `shared` when
/// it holds any, or an error naming the flag at fault.
pub fn auth_setup(args: &Args, shared: &SharedState) -> Result<AuthSetup, String> {
    if args.no_auth {
        if shared.is_shared() {
            return Err("--redis-url: nothing to share with --no-auth".to_owned());
        }
        if let Some((flag, _)) = external_sources(args).into_iter().next() {
            return Err(format!("{flag} cannot be used with --no-auth"));
        }
        return Ok(AuthSetup {
            layer: None,
            hint_user: None,
        });
    }
    let offers_digest = args.schemes.contains(&SchemeArg::Digest);
    if shared.is_shared() && !offers_digest && args.max_auth_failures == 0 {
        return Err(
            "--redis-url: nothing to share (no Digest in --auth, and --max-auth-failures 0)"
                .to_owned(),
        );
    }
    if !offers_digest {
        for (given, flag) in [
            (!args.digest_algorithms.is_empty(), "--digest-algorithms"),
            // With --redis-url the key file also keys the throttle's hashes.
            (
                args.digest_key_file.is_some() && !shared.is_shared(),
                "--digest-key-file",
            ),
            (args.htdigest.is_some(), "--htdigest"),
        ] {
            if given {
                return Err(format!("{flag} needs --auth with digest"));
            }
        }
    }
    for (flag, needs) in external_sources(args) {
        if !args.schemes.contains(&needs) {
            let scheme = match needs {
                SchemeArg::Basic => "basic",
                SchemeArg::Digest => "digest",
            };
            return Err(format!("{flag} needs --auth with {scheme}"));
        }
    }
    let (users, hint_user) = static_users(args)?;
    let mut builder: Option<ProxyAuthLayerBuilder> = None;
    for scheme in &args.schemes {
        builder = Some(match scheme {
            SchemeArg::Basic => {
                let validator = basic_validator(args, users.as_ref())?;
                match builder {
                    None => ProxyAuthLayer::offering(Basic::new(), validator),
                    Some(b) => b.offer(Basic::new(), validator),
                }
            }
            SchemeArg::Digest => {
                let (digest, secrets) = digest(args, users.as_ref())?;
                let digest = shared.digest(digest, &args.realm);
                match builder {
                    None => ProxyAuthLayer::offering(digest, secrets),
                    Some(b) => b.offer(digest, secrets),
                }
            }
        });
    }
    let Some(builder) = builder else {
        return Err("--auth: no scheme given".to_owned());
    };
    let mut builder = builder
        .realm(args.realm.as_str())
        .max_credentials_bytes(usize::try_from(args.max_credentials_bytes).unwrap_or(usize::MAX));
    if args.max_auth_failures > 0 {
        let throttle = FailureThrottle::try_new(
            args.max_auth_failures,
            Duration::from_secs(args.auth_failure_window),
        )
        .map_err(|e| format!("--max-auth-failures: {e}"))?;
        builder = builder.throttle(shared.throttle(throttle)?);
    }
    let layer = builder.build().map_err(|e| match e {
        BuildError::DuplicateScheme(_) => format!("--auth: {e}"),
        BuildError::Scheme { .. } => format!("--auth: {e}"),
        other => format!("--realm: {other}"),
    })?;
    Ok(AuthSetup {
        layer: Some(layer),
        hint_user: Some(hint_user),
    })
}

/// The `--user`s, in a `StaticUsers` for `--realm` (so that they serve Digest as well as
/// Basic), or the demo user when no user source is given at all; `None` when only files are.
/// Also returns the user part of the printed proxy URL.
fn static_users(args: &Args) -> Result<(Option<StaticUsers>, String), String> {
    let mut users = StaticUsers::try_with_realm(args.realm.as_str())
        .map_err(|e| format!("cannot make the users' table: {e}"))?;
    if let Some(first) = args.users.first() {
        for user in &args.users {
            if users.contains(&user.name) {
                return Err(format!("--user {:?} is given more than once", user.name));
            }
            users.insert(user.name.as_str(), user.password.as_bytes());
        }
        return Ok((Some(users), format!("{}:PASSWORD", first.name)));
    }
    if args.htpasswd.is_some() || args.htdigest.is_some() || !external_sources(args).is_empty() {
        return Ok((None, "USER:PASSWORD".to_owned()));
    }
    users.insert(DEMO_USER.0, DEMO_USER.1);
    Ok((Some(users), format!("{}:{}", DEMO_USER.0, DEMO_USER.1)))
}

/// The external user sources given, each with its flag and the scheme it serves.
fn external_sources(args: &Args) -> Vec<(&'static str, SchemeArg)> {
    #[allow(unused_mut)] // empty without the squid-helper and forward-auth features
    let mut given = Vec::new();
    #[cfg(feature = "squid-helper")]
    {
        if args.squid_helper.is_some() {
            given.push(("--squid-helper", SchemeArg::Basic));
        }
        if args.squid_digest_helper.is_some() {
            given.push(("--squid-digest-helper", SchemeArg::Digest));
        }
    }
    #[cfg(feature = "forward-auth")]
    if args.forward_auth.is_some() {
        given.push(("--forward-auth", SchemeArg::Basic));
    }
    let _ = args;
    given
}

/// A Squid helper from `line` and the `--squid-helper-*` and TTL flags.
#[cfg(feature = "squid-helper")]
fn squid_helper(
    args: &Args,
    flag: &str,
    line: &str,
) -> Result<tower_proxy_auth::store::squid_helper::SquidHelper, String> {
    use tower_proxy_auth::store::squid_helper::SquidHelper;
    let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Ok(SquidHelper::command_line(line)
        .map_err(|e| format!("{flag}: {e}"))?
        .children(to_usize(args.squid_helper_children))
        .concurrency(to_usize(args.squid_helper_concurrency))
        .timeout(Duration::from_secs(args.squid_helper_timeout))
        .credentials_ttl(Duration::from_secs(args.credentials_ttl))
        .negative_ttl(Duration::from_secs(args.negative_ttl)))
}

/// A helper that cannot be set up, with a hint where Debian puts Squid's helpers.
#[cfg(feature = "squid-helper")]
fn helper_error(
    flag: &str,
    error: &tower_proxy_auth::store::squid_helper::SquidHelperError,
) -> String {
    use tower_proxy_auth::store::squid_helper::SquidHelperError;
    match error {
        SquidHelperError::ProgramNotFound { .. } => format!(
            "{flag}: {error} (Debian's squid package installs its helpers in /usr/lib/squid/, \
             which is not on PATH: give the full path)"
        ),
        _ => format!("{flag}: {error}"),
    }
}

/// The program of a helper's command line, for the log: never its arguments, which may hold
/// a secret (`basic_ldap_auth -w BINDPASSWORD`).
#[cfg(feature = "squid-helper")]
fn program_name(line: &str) -> String {
    let program = line.split_whitespace().next().unwrap_or_default();
    tower_proxy_auth::Escaped::new(program).to_string()
}

/// `--forward-auth`'s validator, or `None` without the flag.
#[cfg(feature = "forward-auth")]
fn forward_auth(args: &Args) -> Result<Option<BoxValidator>, String> {
    use tower_proxy_auth::store::forward_auth::ForwardAuth;
    let Some(url) = &args.forward_auth else {
        return Ok(None);
    };
    let mut builder = ForwardAuth::to(url.as_str())
        .timeout(Duration::from_secs(args.forward_auth_timeout))
        .credentials_ttl(Duration::from_secs(args.credentials_ttl))
        .negative_ttl(Duration::from_secs(args.negative_ttl));
    if let Some(name) = &args.forward_auth_identity_header {
        let name = http::HeaderName::try_from(name.as_str())
            .map_err(|_| format!("--forward-auth-identity-header: {name:?} is not a field name"))?;
        builder = builder.identity_from(name);
    }
    let validator = builder
        .build()
        .map_err(|e| format!("--forward-auth: {e}"))?;
    Ok(Some(validator.boxed()))
}

/// Basic's password validator: the `--user`s (checked first: they answer at once, while a
/// user unknown to an htpasswd file costs a dummy hash verification), then the `--htpasswd`
/// file, then the `--squid-helper`, then the `--forward-auth` service.
fn basic_validator(args: &Args, users: Option<&StaticUsers>) -> Result<BoxValidator, String> {
    let file = match &args.htpasswd {
        Some(path) => {
            let file = Htpasswd::builder()
                .lenient(args.htpasswd_lenient)
                .refuse_des(args.htpasswd_refuse_des)
                .open(path)
                .map_err(|e| format!("--htpasswd: {e}"))?;
            info!(file = %path.display(), users = file.len(), "htpasswd file loaded");
            Some(file)
        }
        None => None,
    };
    let mut sources: Vec<BoxValidator> = Vec::new();
    sources.extend(users.cloned().map(|users| users.boxed()));
    sources.extend(file.map(|file| file.boxed()));
    #[cfg(feature = "squid-helper")]
    if let Some(line) = &args.squid_helper {
        let helper = squid_helper(args, "--squid-helper", line)?
            .basic()
            .map_err(|e| helper_error("--squid-helper", &e))?;
        info!(program = %program_name(line), "squid basic helper set");
        sources.push(helper.boxed());
    }
    #[cfg(feature = "forward-auth")]
    sources.extend(forward_auth(args)?);
    sources
        .into_iter()
        .reduce(|first, next| first.or(next).boxed())
        .ok_or_else(|| {
            "--auth basic: no Basic users (give --user, --htpasswd, --squid-helper or \
             --forward-auth; htdigest files serve Digest only)"
                .to_owned()
        })
}

/// The Digest scheme from the `--digest-*` flags, and its secrets: the `--user`s, then the
/// `--htdigest` file.
fn digest(
    args: &Args,
    users: Option<&StaticUsers>,
) -> Result<(Digest, Arc<dyn DigestSecrets>), String> {
    let mut digest = Digest::new().nonce_lifetime(Duration::from_secs(args.digest_nonce_lifetime));
    if !args.digest_algorithms.is_empty() {
        digest = digest.algorithms(args.digest_algorithms.iter().copied());
    }
    if let Some(path) = &args.digest_key_file {
        let key = NonceKey::from_file(path).map_err(|e| format!("--digest-key-file: {e}"))?;
        digest = digest.nonce_key(key);
    }
    let file = match &args.htdigest {
        Some(path) => {
            let file = Htdigest::open(path).map_err(|e| format!("--htdigest: {e}"))?;
            info!(file = %path.display(), users = file.len(), "htdigest file loaded");
            Some(file)
        }
        None => None,
    };
    let mut sources: Vec<Arc<dyn DigestSecrets>> = Vec::new();
    sources.extend(
        users
            .cloned()
            .map(|users| Arc::new(users) as Arc<dyn DigestSecrets>),
    );
    sources.extend(file.map(|file| Arc::new(file) as Arc<dyn DigestSecrets>));
    #[cfg(feature = "squid-helper")]
    if let Some(line) = &args.squid_digest_helper {
        let helper = squid_helper(args, "--squid-digest-helper", line)?
            .digest()
            .map_err(|e| helper_error("--squid-digest-helper", &e))?;
        info!(program = %program_name(line), "squid digest helper set");
        sources.push(Arc::new(helper));
    }
    let secrets = sources
        .into_iter()
        .reduce(|first, next| Arc::new(first.or_secrets(next)))
        .ok_or_else(|| {
            "--auth digest: no Digest users (give --user, --htdigest or --squid-digest-helper; \
             htpasswd hashes cannot serve Digest)"
                .to_owned()
        })?;
    Ok((digest, secrets))
}
