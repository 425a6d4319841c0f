//! The example proxy with `--htpasswd`: files written by Apache's real `htpasswd` tool, used
//! through the proxy by curl; start-up errors naming file and line; live reload.
//!
//! Needs `htpasswd` (Debian: `apt-get install -y apache2-utils`) and curl; `.ci/run` installs
//! both.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{curl, run_example_to_exit, ExampleProcess, Origin, ORIGIN_BODY};

/// Runs Apache's `htpasswd` with `args` (batch mode, password on the command line).
fn htpasswd(args: &[&str]) {
    support::run_tool("htpasswd", "apache2-utils", args);
}

/// A file with a bcrypt (cost 5) user and an apr1 user, made by the real tool.
fn users_file(dir: &Path) -> String {
    let file = dir.join("users.htpasswd");
    let file = file.to_str().expect("utf-8 temp path").to_owned();
    htpasswd(&["-cbB", "-C", "5", &file, "carol", "c4rol:pw"]);
    htpasswd(&["-bm", &file, "dave", "pässwörd✓"]);
    file
}

/// The example proxy on 127.0.0.1:0 with `--htpasswd file` and `extra` arguments.
fn proxy_with(file: &str, extra: &[&str]) -> ExampleProcess {
    let mut args = vec![
        "--listen",
        "127.0.0.1:0",
        "--allow-private-targets",
        "--htpasswd",
        file,
    ];
    args.extend_from_slice(extra);
    ExampleProcess::start(support::PROXY, &args)
}

async fn status_through(proxy: &ExampleProcess, user: &str, password: &str, url: &str) -> String {
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-x",
        &format!("http://{}", proxy.addr()),
        "--proxy-user",
        &format!("{user}:{password}"),
        url,
    ])
    .await;
    out.assert_success();
    out.stdout
}

#[tokio::test]
async fn bcrypt_and_apr1_users_from_the_real_tool_work_through_the_proxy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = users_file(dir.path());
    let origin = Origin::start().await;
    let proxy = proxy_with(&file, &["--user", "bob:b0b"]);
    let url = origin.url("/");
    assert_eq!(
        status_through(&proxy, "carol", "c4rol:pw", &url).await,
        "200"
    );
    assert_eq!(
        status_through(&proxy, "dave", "pässwörd✓", &url).await,
        "200"
    );
    assert_eq!(
        status_through(&proxy, "bob", "b0b", &url).await,
        "200",
        "--user combines"
    );
    assert_eq!(
        status_through(&proxy, "carol", "c4rol:px", &url).await,
        "407"
    );
    assert_eq!(
        status_through(&proxy, "dave", "passwort", &url).await,
        "407"
    );
    assert_eq!(
        status_through(&proxy, "erin", "c4rol:pw", &url).await,
        "407"
    );

    // And through a CONNECT tunnel, with the credentials in the proxy URL.
    let tunnel = curl(&[
        "-p",
        "-x",
        &format!("http://carol:c4rol%3Apw@{}", proxy.addr()),
        &origin.url("/tunnel"),
    ])
    .await;
    tunnel.assert_success();
    assert_eq!(tunnel.stdout, ORIGIN_BODY);
    assert!(origin
        .received()
        .iter()
        .all(|r| r.headers.get("proxy-authorization").is_none()));
}

#[test]
fn an_unusable_line_stops_start_up_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = users_file(dir.path());
    let mut text = std::fs::read_to_string(&file).expect("read");
    text.push_str("mallory:$9$not-a-format\n");
    std::fs::write(&file, text).expect("write");

    let finished = run_example_to_exit(
        support::PROXY,
        &["--listen", "127.0.0.1:0", "--htpasswd", &file],
        Duration::from_secs(15),
    );
    assert!(!finished.status.success(), "{finished:#?}");
    assert!(
        finished.stderr.contains(&format!("{file}:3:")),
        "{finished:#?}"
    );
    assert!(!finished.stdout.contains("listening on"), "{finished:#?}");
    assert!(
        !finished.stderr.contains("$9$"),
        "the hash is not quoted: {finished:#?}"
    );

    let missing = dir.path().join("missing.htpasswd");
    let missing = missing.to_str().expect("utf-8");
    let finished = run_example_to_exit(
        support::PROXY,
        &["--listen", "127.0.0.1:0", "--htpasswd", missing],
        Duration::from_secs(15),
    );
    assert!(!finished.status.success(), "{finished:#?}");
    assert!(finished.stderr.contains(missing), "{finished:#?}");
}

#[tokio::test]
async fn lenient_mode_skips_the_line_with_a_warning_and_serves_the_rest() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = users_file(dir.path());
    let mut text = std::fs::read_to_string(&file).expect("read");
    text.push_str("no colon on this line\n");
    std::fs::write(&file, text).expect("write");

    let origin = Origin::start().await;
    let proxy = proxy_with(&file, &["--htpasswd-lenient"]);
    assert_eq!(
        status_through(&proxy, "carol", "c4rol:pw", &origin.url("/")).await,
        "200"
    );
    let warning = proxy
        .wait_for_log(|log| log.contains(&format!("{file}:3:")))
        .await;
    assert!(warning.contains("WARN"), "{warning}");
}

#[tokio::test]
async fn users_added_and_removed_by_the_real_tool_take_effect_without_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = users_file(dir.path());
    let origin = Origin::start().await;
    let proxy = proxy_with(&file, &["--max-auth-failures", "0"]);
    let url = origin.url("/");
    assert_eq!(status_through(&proxy, "erin", "3rin", &url).await, "407");

    htpasswd(&["-bB", "-C", "5", &file, "erin", "3rin"]);
    htpasswd(&["-D", &file, "carol"]);

    // The file is polled every 2 s; allow a bounded wait for both changes to show.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let erin = status_through(&proxy, "erin", "3rin", &url).await;
        let carol = status_through(&proxy, "carol", "c4rol:pw", &url).await;
        if (erin.as_str(), carol.as_str()) == ("200", "407") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reload not seen in 15 s: erin {erin}, carol {carol}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        status_through(&proxy, "dave", "pässwörd✓", &url).await,
        "200"
    );
}

/// `--htpasswd-refuse-des`: a DES crypt(3) line (`htpasswd -d`, only 8 bytes of a password
/// count) stops start-up naming file and line; without the flag the same file serves.
#[tokio::test]
async fn refuse_des_stops_start_up_on_a_des_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = users_file(dir.path());
    htpasswd(&["-bd", &file, "erin", "des-pass"]);

    let finished = run_example_to_exit(
        support::PROXY,
        &[
            "--listen",
            "127.0.0.1:0",
            "--htpasswd",
            &file,
            "--htpasswd-refuse-des",
        ],
        Duration::from_secs(15),
    );
    assert!(!finished.status.success(), "{finished:#?}");
    assert!(
        finished.stderr.contains(&format!("{file}:3:")),
        "{finished:#?}"
    );
    assert!(!finished.stdout.contains("listening on"), "{finished:#?}");

    let origin = Origin::start().await;
    let proxy = proxy_with(&file, &[]);
    assert_eq!(
        status_through(&proxy, "erin", "des-pass", &origin.url("/")).await,
        "200"
    );
}
