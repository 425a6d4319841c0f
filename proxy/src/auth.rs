//! Authentication set-up from the command line: which users, which validator, which layer.
//!
//! Decided before the runtime starts, so that a bad `--htpasswd` file or `--realm` stops the
//! proxy with a message naming the flag. The validator is built first ([`validator`]), then
//! the layer around it ([`auth_setup`]); a new scheme or store adds a step to one of them.

use std::time::Duration;

use tower_proxy_auth::{
    BoxValidator, FailureThrottle, Htpasswd, ProxyAuthLayer, StaticUsers, Validator as _,
};
use tracing::info;

use crate::cli::{Args, DEMO_USER};

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
    let (validator, hint_user) = validator(args)?;
    let mut builder = ProxyAuthLayer::builder(validator)
        .realm(args.realm.as_str())
        .max_credentials_bytes(usize::try_from(args.max_credentials_bytes).unwrap_or(usize::MAX));
    if args.max_auth_failures > 0 {
        builder = builder.throttle(FailureThrottle::new(
            args.max_auth_failures,
            Duration::from_secs(args.auth_failure_window),
        ));
    }
    let layer = builder.build().map_err(|e| format!("--realm: {e}"))?;
    Ok(AuthSetup {
        layer: Some(layer),
        hint_user: Some(hint_user),
    })
}

/// The password validator: `--user`s (checked first: they answer at once, while a user unknown
/// to an htpasswd file costs a dummy hash verification), then the `--htpasswd` file; the demo
/// user when neither is given. Also returns the user part of the printed proxy URL.
fn validator(args: &Args) -> Result<(BoxValidator, String), String> {
    let mut users = StaticUsers::new();
    let hint_user = if let Some(first) = args.users.first() {
        for user in &args.users {
            if users.contains(&user.name) {
                return Err(format!("--user {:?} is given more than once", user.name));
            }
            users.insert(user.name.as_str(), user.password.as_bytes());
        }
        format!("{}:PASSWORD", first.name)
    } else if args.htpasswd.is_some() {
        "USER:PASSWORD".to_owned()
    } else {
        users.insert(DEMO_USER.0, DEMO_USER.1);
        format!("{}:{}", DEMO_USER.0, DEMO_USER.1)
    };
    let validator = match &args.htpasswd {
        Some(path) => {
            let file = Htpasswd::builder()
                .lenient(args.htpasswd_lenient)
                .refuse_des(args.htpasswd_refuse_des)
                .open(path)
                .map_err(|e| format!("--htpasswd: {e}"))?;
            info!(file = %path.display(), users = file.len(), "htpasswd file loaded");
            if users.is_empty() {
                file.boxed()
            } else {
                users.or(file).boxed()
            }
        }
        None => users.boxed(),
    };
    Ok((validator, hint_user))
}
