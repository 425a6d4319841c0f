//! Authentication set-up from the command line: which users, which validator, which layer.
//!
//! Decided before the runtime starts, so that a bad `--htpasswd` file or `--realm` stops the
//! proxy with a message naming the flag. The validators are built first (`basic_validator`, `digest`), then
//! the layer around it ([`auth_setup`]); a new scheme or store adds a step to one of them.

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

/// The layer the flags ask for, or an error naming the flag at fault.
pub fn auth_setup(args: &Args) -> Result<AuthSetup, String> {
    if args.no_auth {
        return Ok(AuthSetup {
            layer: None,
            hint_user: None,
        });
    }
    let offers_digest = args.schemes.contains(&SchemeArg::Digest);
    if !offers_digest {
        for (given, flag) in [
            (!args.digest_algorithms.is_empty(), "--digest-algorithms"),
            (args.digest_key_file.is_some(), "--digest-key-file"),
            (args.htdigest.is_some(), "--htdigest"),
        ] {
            if given {
                return Err(format!("{flag} needs --auth with digest"));
            }
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
        builder = builder.throttle(FailureThrottle::new(
            args.max_auth_failures,
            Duration::from_secs(args.auth_failure_window),
        ));
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
    if args.htpasswd.is_some() || args.htdigest.is_some() {
        return Ok((None, "USER:PASSWORD".to_owned()));
    }
    users.insert(DEMO_USER.0, DEMO_USER.1);
    Ok((Some(users), format!("{}:{}", DEMO_USER.0, DEMO_USER.1)))
}

/// Basic's password validator: the `--user`s (checked first: they answer at once, while a
/// user unknown to an htpasswd file costs a dummy hash verification), then the `--htpasswd`
/// file.
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
    match (users.cloned(), file) {
        (Some(users), Some(file)) => Ok(users.or(file).boxed()),
        (Some(users), None) => Ok(users.boxed()),
        (None, Some(file)) => Ok(file.boxed()),
        (None, None) => Err(
            "--auth basic: no Basic users (give --user or --htpasswd; htdigest files serve Digest only)"
                .to_owned(),
        ),
    }
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
    let secrets: Arc<dyn DigestSecrets> = match (users.cloned(), file) {
        (Some(users), Some(file)) => Arc::new(users.or_secrets(file)),
        (Some(users), None) => Arc::new(users),
        (None, Some(file)) => Arc::new(file),
        (None, None) => {
            return Err(
                "--auth digest: no Digest users (give --user or --htdigest; htpasswd hashes cannot serve Digest)"
                    .to_owned(),
            )
        }
    };
    Ok((digest, secrets))
}
