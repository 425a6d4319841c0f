//! One structured `tracing` event per decision, and the `metrics` counters (cargo feature
//! `metrics`): requests through a real server, the events captured by a real subscriber, the
//! counters by `metrics-util`'s debugging recorder.

mod support;

use http::request::Parts;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceBuilder;
use tower_proxy_auth::validator::from_fn;
use tower_proxy_auth::{
    BasicCredentials, Decision, FailureThrottle, Identity, ProxyAuthLayer, ValidatorError,
};

use support::{request_head, serve, LogLines, RawConn};

fn validator() -> impl tower_proxy_auth::Validator {
    from_fn(
        |c: &BasicCredentials, _: &Parts| match (c.user_id(), c.password()) {
            ("alice", b"s3cret") => Ok(Decision::Allow(Identity::new("alice"))),
            ("alice", _) => Ok(Decision::Reject),
            ("down", _) => Err(ValidatorError::new("store unreachable")),
            ("busy", _) => Err(ValidatorError::overloaded("queue full")),
            ("carol", _) => Ok(Decision::Forbid),
            _ => Ok(Decision::Reject),
        },
    )
}

#[tokio::test]
async fn one_event_and_one_counter_per_decision_without_secrets() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this test binary");

    let lines = LogLines::default();
    let writer = lines.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("tower_proxy_auth=debug")
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let layer = ProxyAuthLayer::builder(validator())
        .throttle(FailureThrottle::new(
            100,
            std::time::Duration::from_secs(60),
        ))
        .build()
        .unwrap();
    let addr = serve(ServiceBuilder::new().layer(layer).service_fn(|_req| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    }))
    .await;
    let basic = |u: &str, p: &str| BasicCredentials::new(u, p).unwrap().encode();
    // RFC 7617 refuses ASCII control characters in a user-id (a 407 at once); these get
    // through to the log, where tools that split lines on them would read a forged line.
    let forged_user = "eve\u{85}INFO forged line\u{2028}";
    let cases: Vec<(Option<String>, u16)> = vec![
        (Some(basic("alice", "s3cret")), 200),
        (None, 407),
        (Some(basic("alice", "hunter2")), 407),
        (Some("Basic !!!".to_owned()), 407),
        (Some(format!("{0}, {0}", basic("alice", "s3cret"))), 400),
        (Some(basic("down", "pw-down")), 503),
        (Some(basic("busy", "pw-busy")), 503),
        (Some(basic("carol", "pw-carol")), 403),
        (
            Some(format!(
                "Basic {}",
                support::base64_encode(format!("{forged_user}:pw-eve").as_bytes())
            )),
            407,
        ),
    ];
    for (credentials, want) in &cases {
        let mut fields = vec![("Host", "origin.test")];
        if let Some(value) = credentials {
            fields.push(("Proxy-Authorization", value));
        }
        let mut conn = RawConn::connect(addr).await;
        conn.send(request_head("GET", "http://origin.test/", &fields))
            .await;
        assert_eq!(conn.read_response().await.status, *want, "{credentials:?}");
    }

    let text = lines.text();
    let events: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("tower_proxy_auth:"))
        .collect();
    let find = |outcome: &str, reason: &str| {
        events
            .iter()
            .filter(|l| {
                l.contains(&format!("outcome=\"{outcome}\""))
                    && l.contains(&format!("reason=\"{reason}\""))
            })
            .count()
    };
    assert_eq!(find("allow", "allow"), 1, "{text}");
    assert_eq!(find("challenge", "missing"), 1, "{text}");
    assert_eq!(find("challenge", "wrong_credentials"), 2, "{text}");
    assert_eq!(find("challenge", "invalid_param"), 1, "{text}");
    assert_eq!(find("bad_request", "multiple_credentials"), 1, "{text}");
    assert_eq!(find("forbidden", "forbidden"), 1, "{text}");
    assert!(events
        .iter()
        .any(|l| l.contains("ERROR") && l.contains("store unreachable")));
    assert!(events
        .iter()
        .any(|l| l.contains("WARN") && l.contains("overloaded")));
    // The claimed user name of a wrong credential is logged, escaped: no forged line.
    assert!(
        events
            .iter()
            .any(|l| l.contains(r"user=eve\x85INFO forged line\u{2028}")),
        "{text}"
    );
    assert!(!text.contains("\nINFO forged line"), "{text}");
    assert!(
        !text.contains('\u{2028}') && !text.contains('\u{85}'),
        "{text}"
    );
    assert_eq!(
        events.iter().filter(|l| l.contains("outcome=")).count(),
        cases.len(),
        "one decision event per request:\n{text}"
    );
    for secret in [
        "s3cret", "hunter2", "pw-down", "pw-busy", "pw-carol", "pw-eve",
    ] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
    }
    for (credentials, _) in &cases {
        if let Some(value) = credentials {
            assert!(
                !text.contains(value.as_str()),
                "a raw credentials field in the log"
            );
        }
    }

    // The counters, by labels.
    let counters: Vec<(Vec<(String, String)>, u64)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .filter(|(key, ..)| key.key().name() == "tower_proxy_auth_decisions_total")
        .map(|(key, _, _, value)| {
            let labels = key
                .key()
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let DebugValue::Counter(n) = value else {
                panic!("a counter")
            };
            (labels, n)
        })
        .collect();
    let count = |outcome: &str, reason: &str| -> u64 {
        counters
            .iter()
            .filter(|(labels, _)| {
                labels.contains(&("outcome".into(), outcome.into()))
                    && labels.contains(&("reason".into(), reason.into()))
                    && labels.contains(&("party".into(), "proxy".into()))
            })
            .map(|(_, n)| n)
            .sum()
    };
    assert_eq!(count("allow", "allow"), 1, "{counters:?}");
    assert_eq!(count("challenge", "wrong_credentials"), 2, "{counters:?}");
    assert_eq!(count("challenge", "missing"), 1);
    assert_eq!(count("unavailable", "unavailable"), 1);
    assert_eq!(count("overloaded", "overloaded"), 1);
    assert_eq!(count("bad_request", "multiple_credentials"), 1);
    let total: u64 = counters.iter().map(|(_, n)| n).sum();
    assert_eq!(total, cases.len() as u64, "one count per decision");
}
