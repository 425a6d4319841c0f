//! The htpasswd validator against files made by the real tools (Apache's `htpasswd`, OpenSSL,
//! the system crypt(3)), the file-format rules of Apache httpd, live reload, the credential
//! cache, and the promise that slow hashes never hold up other requests.
//!
//! Fixtures: `tests/fixtures/htpasswd/*.htpasswd`, made by `regenerate.sh` beside them. The
//! passwords below must match that script.
//!
//! DES crypt lines need the cargo feature `des-crypt` (on by default). Without it (`cargo test
//! --no-default-features --features htpasswd --test htpasswd`, which `.ci/run` runs too), the
//! fixtures are loaded without their DES lines and a DES line is checked to be a load error.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HOST, PROXY_AUTHORIZATION};
use http::{Request, Response, StatusCode};
use http_body_util::{Empty, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;
use tower_proxy_auth::store::htpasswd::{HashFormat, LineErrorKind};
use tower_proxy_auth::store::htpasswd::{Htpasswd, HtpasswdError};
use tower_proxy_auth::{
    BasicCredentials, Decision, ProxyAuthLayer, StaticUsers, Validation, Validator,
};

/// Users of `formats.htpasswd` and their passwords.
const FORMATS: &[(&str, &str, HashFormat)] = &[
    ("bcrypt5", "bcrypt-five", HashFormat::Bcrypt),
    ("bcrypt12", "bcrypt-twelve", HashFormat::Bcrypt),
    ("bcrypt2a", "bcrypt-2a", HashFormat::Bcrypt),
    ("bcrypt2b", "bcrypt-2b", HashFormat::Bcrypt),
    ("apr1", "apache-md5", HashFormat::Apr1),
    ("apr1ssl", "openssl-apr1", HashFormat::Apr1),
    ("sha1", "sha-one", HashFormat::Sha1),
    ("ssha", "salted-sha", HashFormat::Ssha),
    ("plain", "plain-text", HashFormat::Plain),
    #[cfg(feature = "des-crypt")]
    ("des", "secret12", HashFormat::Des),
    ("md5crypt", "crypt-md5", HashFormat::Md5Crypt),
    ("sha256", "sha-256", HashFormat::Sha256Crypt),
    ("sha256ssl", "openssl-sha-256", HashFormat::Sha256Crypt),
    ("sha256r", "sha-256-rounds", HashFormat::Sha256Crypt),
    (
        "sha256rssl",
        "openssl-sha-256-rounds",
        HashFormat::Sha256Crypt,
    ),
    ("sha512", "sha-512", HashFormat::Sha512Crypt),
    ("sha512ssl", "openssl-sha-512", HashFormat::Sha512Crypt),
    ("sha512r", "sha-512-rounds", HashFormat::Sha512Crypt),
    (
        "sha512rssl",
        "openssl-sha-512-rounds",
        HashFormat::Sha512Crypt,
    ),
];

/// Users of `edge.htpasswd` and their passwords.
const EDGE: &[(&str, &str)] = &[
    ("colon", "pa:ss:word"),
    ("colon-apr1", "pa:ss:word"),
    ("utf8-bcrypt", "pässwörd✓"),
    ("utf8-apr1", "pässwörd✓"),
    ("utf8-sha1", "pässwörd✓"),
    ("utf8-sha512", "pässwörd✓"),
    ("jürgen", "jürgen-pw"),
    ("empty", ""),
    ("empty-apr1", ""),
    #[cfg(feature = "des-crypt")]
    ("des8", "secret12"),
    ("long-apr1", LONG),
    ("long-md5crypt", LONG),
    ("long-sha256", LONG),
    ("long-sha512", LONG),
    ("long-bcrypt", LONG_BCRYPT),
];

/// Longer than one MD5/SHA block of the crypt algorithms' inner loops.
const LONG: &str = "correct horse battery staple ✓ 0123456789";
/// 80 bytes: bcrypt (the crate and Apache's crypt_blowfish alike) uses the first 72.
const LONG_BCRYPT: &str =
    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/htpasswd")
        .join(name)
}

/// The hash field of `user` in a fixture file.
fn fixture_hash(file: &str, user: &str) -> String {
    let contents = std::fs::read_to_string(fixture(file)).unwrap();
    contents
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .unwrap_or_else(|| panic!("{user} not in {file}"))
        .to_owned()
}

fn quiet() -> tower_proxy_auth::HtpasswdBuilder {
    Htpasswd::builder().watch(false)
}

/// The users of the DES lines of the fixtures.
const DES_USERS: &[&str] = &["des", "des8"];

/// A fixture file, loaded strict and without watching. Without the `des-crypt` feature its DES
/// lines are left out: they would fail the load (see
/// `without_the_des_crypt_feature_a_des_line_is_a_load_error_naming_the_feature`).
fn open_fixture(name: &str) -> Htpasswd {
    if cfg!(feature = "des-crypt") {
        return quiet().open(fixture(name)).unwrap();
    }
    let contents = std::fs::read_to_string(fixture(name)).unwrap();
    let kept: Vec<&str> = contents
        .lines()
        .filter(|line| {
            !DES_USERS
                .iter()
                .any(|user| line.starts_with(&format!("{user}:")))
        })
        .collect();
    quiet().from_contents(name, kept.join("\n")).unwrap()
}

/// Asks `validator` about `user`/`password` as the layer would, waiting for a pending answer.
async fn decide(validator: &impl Validator, user: &str, password: &str) -> Decision {
    let credentials = BasicCredentials::new(user, password).unwrap();
    let (parts, ()) = Request::new(()).into_parts();
    validator
        .validate(&credentials, &parts)
        .resolve()
        .await
        .unwrap()
}

/// Whether the decision lets `user` in, with an identity naming them.
async fn accepts(validator: &impl Validator, user: &str, password: &str) -> bool {
    match decide(validator, user, password).await {
        Decision::Allow(identity) => {
            assert_eq!(identity.user(), user);
            true
        }
        Decision::Reject => false,
        other => panic!("htpasswd only allows or rejects, not {other:?}"),
    }
}

/// A password that differs from `password` within its first 8 bytes (so DES sees it too).
fn wrong(password: &str) -> String {
    if let Some(rest) = password.strip_prefix('X') {
        format!("Y{rest}")
    } else {
        format!("X{}", password.get(1..).unwrap_or(""))
    }
}

/// Checks every (user, password) pair: right accepted; wrong, empty and user-name-case
/// variants refused. Runs them concurrently (bcrypt cost 12 is slow in debug builds).
async fn check_all(users: &Htpasswd, pairs: &[(&str, &str)]) {
    let mut set = tokio::task::JoinSet::new();
    for &(user, password) in pairs {
        let (users, user, password) = (users.clone(), user.to_owned(), password.to_owned());
        set.spawn(async move {
            assert!(
                accepts(&users, &user, &password).await,
                "{user}: right password refused"
            );
            let bad = wrong(&password);
            assert!(
                !accepts(&users, &user, &bad).await,
                "{user}: wrong password accepted"
            );
            if !password.is_empty() {
                assert!(
                    !accepts(&users, &user, "").await,
                    "{user}: empty password accepted"
                );
            }
            assert!(
                !accepts(&users, &user.to_uppercase(), &password).await,
                "{user}: user name matched in another case"
            );
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Formats.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_format_accepts_right_and_refuses_wrong() {
    let users = open_fixture("formats.htpasswd");
    assert_eq!(users.len(), FORMATS.len());
    for &(user, _, format) in FORMATS {
        assert_eq!(users.format(user), Some(format), "{user}");
    }
    let pairs: Vec<_> = FORMATS.iter().map(|&(u, p, _)| (u, p)).collect();
    check_all(&users, &pairs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_entries_from_the_real_tools() {
    let users = open_fixture("edge.htpasswd");
    assert_eq!(users.len(), EDGE.len());
    check_all(&users, EDGE).await;
    // The empty password was hashed for real: only the empty password matches.
    assert!(accepts(&users, "empty", "").await);
    assert!(!accepts(&users, "empty", " ").await);
    // A password holding ':' is split from the user-id at the first ':' only.
    assert!(!accepts(&users, "colon", "pa").await);
    // UTF-8 user names are compared byte for byte: no normalisation.
    assert!(!accepts(&users, "ju\u{308}rgen", "jürgen-pw").await);
    assert!(!accepts(&users, "utf8-bcrypt", "passwords").await);
    // bcrypt counts 72 bytes, as Apache's crypt_blowfish does.
    assert!(accepts(&users, "long-bcrypt", &format!("{}zzz", &LONG_BCRYPT[..72])).await);
    assert!(!accepts(&users, "long-bcrypt", &LONG_BCRYPT[..71]).await);
    assert!(!accepts(&users, "long-apr1", &LONG[..LONG.len() - 1]).await);
}

#[cfg(feature = "des-crypt")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn des_counts_only_the_first_eight_bytes_as_apache_does() {
    let users = quiet().open(fixture("edge.htpasswd")).unwrap();
    assert!(accepts(&users, "des8", "secret12").await);
    assert!(!accepts(&users, "des8", "secret1X").await);
    assert!(accepts(&users, "des8", "secret12X").await); // crypt(3) DES ignores bytes 9+
    assert!(accepts(&users, "des8", "secret12 and anything").await);
    assert!(!accepts(&users, "des8", "secret1").await);
}

/// Runs `program args`; its stdout, or `None` when the program is not installed.
fn run(program: &str, args: &[&str]) -> Option<Result<String, String>> {
    match Command::new(program).args(args).output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(Err(e.to_string())),
        Ok(out) if out.status.success() => Some(Ok(String::from_utf8(out.stdout).unwrap())),
        Ok(out) => Some(Err(String::from_utf8_lossy(&out.stderr).into_owned())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_entries_from_the_installed_tools() {
    let mut lines = Vec::new();
    let mut pairs: Vec<(String, String)> = Vec::new();
    let htpasswd_flags: &[(&str, &[&str])] = &[
        ("b4", &["-B", "-C", "4"]),
        ("b5", &["-B"]),
        ("m", &["-m"]),
        ("s", &["-s"]),
        ("d", &["-d"]),
        ("two", &["-2"]),
        ("five", &["-5"]),
        ("two-r", &["-2", "-r", "6000"]),
        ("five-r", &["-5", "-r", "7000"]),
        ("p", &["-p"]),
    ];
    let mut htpasswd_present = true;
    for (tag, flags) in htpasswd_flags {
        if *tag == "d" && !cfg!(feature = "des-crypt") {
            continue; // DES: a load error without the feature
        }
        let user = format!("ht-{tag}");
        let password = format!("pw-{tag}:ü");
        let password = match *tag {
            "d" => "eightch8".to_owned(), // DES: 8 bytes count
            "p" => "pw-p-ü".to_owned(),   // plaintext: a ':' would end the field
            _ => password,
        };
        let mut args = vec!["-nb"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[&user, &password]);
        match run("htpasswd", &args) {
            None => {
                println!("NOTICE: htpasswd is not installed (apt-get install -y apache2-utils); fresh htpasswd entries not checked");
                htpasswd_present = false;
                break;
            }
            Some(Err(e)) => println!("NOTICE: this htpasswd does not support {flags:?}: {e}"),
            Some(Ok(out)) => {
                lines.push(out.trim().to_owned());
                pairs.push((user, password));
            }
        }
    }
    for (tag, flag) in [("1", "-1"), ("5", "-5"), ("6", "-6"), ("apr1", "-apr1")] {
        let user = format!("ssl-{tag}");
        let password = format!("pw-{tag}-✓");
        match run("openssl", &["passwd", flag, &password]) {
            None => {
                println!("NOTICE: openssl is not installed; fresh openssl entries not checked");
                break;
            }
            Some(Err(e)) => println!("NOTICE: this openssl does not support passwd {flag}: {e}"),
            Some(Ok(out)) => {
                lines.push(format!("{user}:{}", out.trim()));
                pairs.push((user, password));
            }
        }
    }
    if pairs.is_empty() {
        return;
    }
    let users = quiet()
        .allow_plaintext(true)
        .from_contents("fresh.htpasswd", lines.join("\n"))
        .unwrap_or_else(|e| panic!("{e}\n{}", lines.join("\n")));
    assert_eq!(users.len(), pairs.len());
    if htpasswd_present {
        assert_eq!(users.format("ht-p"), Some(HashFormat::Bare));
        assert_eq!(users.format("ht-m"), Some(HashFormat::Apr1));
    }
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(u, p)| (u.as_str(), p.as_str()))
        .collect();
    check_all(&users, &pairs).await;
}

// ---------------------------------------------------------------------------------------------
// File format.

#[tokio::test]
async fn comments_blank_lines_crlf_comment_field_and_trailing_whitespace() {
    let sha = fixture_hash("formats.htpasswd", "sha1"); // sha-one
    let apr1 = fixture_hash("formats.htpasswd", "apr1"); // apache-md5
    let contents = format!(
        "# a comment\r\n\r\n   \r\n\t# indented comment\r\n\
         crlf:{sha}\r\n\
         commented:{apr1}:Alice Example, room 12\n\
         trailing:{sha}  \t \n\
         last-line-without-newline:{sha}"
    );
    let users = quiet().from_contents("layout.htpasswd", contents).unwrap();
    assert_eq!(users.len(), 4);
    assert!(accepts(&users, "crlf", "sha-one").await);
    assert!(accepts(&users, "commented", "apache-md5").await);
    assert!(accepts(&users, "trailing", "sha-one").await);
    assert!(accepts(&users, "last-line-without-newline", "sha-one").await);
    assert!(!users.contains("# a comment"));
    assert!(!accepts(&users, "commented", "apache-md5:Alice Example, room 12").await);
}

#[tokio::test]
async fn duplicate_user_first_line_wins_with_a_warning() {
    let logs = capture_logs();
    let first = fixture_hash("formats.htpasswd", "sha1"); // sha-one
    let second = fixture_hash("formats.htpasswd", "plain"); // plain-text
    let users = quiet()
        .from_contents(
            "dup-1.htpasswd",
            format!("alice:{first}\nbob:{second}\nalice:{second}\n"),
        )
        .unwrap();
    assert!(accepts(&users, "alice", "sha-one").await);
    assert!(!accepts(&users, "alice", "plain-text").await);
    assert!(logs.wait_for("dup-1.htpasswd:3: duplicate user \"alice\"; the entry on line 1 wins"));
}

#[tokio::test]
async fn empty_hash_never_matches() {
    let err = quiet()
        .from_contents("empty.htpasswd", "alice:\n")
        .unwrap_err();
    assert_eq!(err.to_string(), "empty.htpasswd:1: empty hash field");
    let sha = fixture_hash("formats.htpasswd", "sha1");
    let err = quiet()
        .from_contents("empty.htpasswd", format!("x:{sha}\nalice::comment\n"))
        .unwrap_err();
    assert_eq!(
        (err.line(), err.kind()),
        (Some(2), Some(LineErrorKind::EmptyHash))
    );
    // Lenient: the line is skipped, but as alice's first line it still decides: a later line
    // for alice does not let anyone in (Apache stops at the first line for a user).
    let users = quiet()
        .lenient(true)
        .from_contents(
            "empty.htpasswd",
            format!("alice:\nalice:{sha}\nbob:{sha}\n"),
        )
        .unwrap();
    assert!(!accepts(&users, "alice", "").await);
    assert!(!accepts(&users, "alice", "sha-one").await);
    assert!(accepts(&users, "bob", "sha-one").await);
    // An empty *password* hashed for real is another matter: see edge_entries_from_the_real_tools.
}

#[test]
fn a_bad_line_is_an_error_naming_file_and_line() {
    let sha = fixture_hash("formats.htpasswd", "sha1");
    let cases: &[(&str, LineErrorKind)] = &[
        ("nocolon", LineErrorKind::MissingColon),
        ("bob:hunter2", LineErrorKind::UnknownFormat),
        (
            "bob:$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7",
            LineErrorKind::UnknownFormat,
        ),
        ("bob:{SHA512}abc", LineErrorKind::UnknownFormat),
        ("bob:", LineErrorKind::EmptyHash),
        (
            "bob:$2y$05$short",
            LineErrorKind::MalformedHash(HashFormat::Bcrypt),
        ),
    ];
    for (bad, kind) in cases {
        let contents = format!("# users\nalice:{sha}\n{bad}\ncarol:{sha}\n");
        let err = quiet()
            .from_contents("users.htpasswd", &contents)
            .unwrap_err();
        assert_eq!(
            (err.file(), err.line(), err.kind()),
            ("users.htpasswd", Some(3), Some(*kind))
        );
        assert_eq!(err.to_string(), format!("users.htpasswd:3: {kind}"));
        assert!(!err.to_string().contains("hunter2"));
    }
    // From a file, the error names the path.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("users.htpasswd");
    std::fs::write(&path, format!("alice:{sha}\nbob:hunter2\n")).unwrap();
    let err = quiet().open(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}:2: unknown hash format", path.display())
    );
}

#[tokio::test]
async fn lenient_mode_skips_bad_lines_with_a_warning_and_keeps_the_rest() {
    let logs = capture_logs();
    let sha = fixture_hash("formats.htpasswd", "sha1");
    let contents = format!("alice:{sha}\nbob:hunter2\nbroken line\ncarol:{sha}\n");
    let users = quiet()
        .lenient(true)
        .from_contents("lenient-1.htpasswd", contents)
        .unwrap();
    assert_eq!(users.len(), 2);
    assert!(accepts(&users, "alice", "sha-one").await);
    assert!(accepts(&users, "carol", "sha-one").await);
    assert!(
        !accepts(&users, "bob", "hunter2").await,
        "an unknown format is never plaintext"
    );
    assert!(logs.wait_for("lenient-1.htpasswd:2: unknown hash format; line skipped"));
    assert!(logs.wait_for("lenient-1.htpasswd:3: no ':' between user name and hash"));
    assert!(!logs.contains("hunter2"));
}

#[test]
fn a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.htpasswd");
    let err = Htpasswd::open(&path).unwrap_err();
    assert!(matches!(err, HtpasswdError::Read { .. }), "{err:?}");
    assert!(err
        .to_string()
        .starts_with(&format!("{}: cannot read: ", path.display())));
    assert!(
        Htpasswd::open(dir.path()).is_err(),
        "a directory is not a file"
    );
}

/// A file that never ends (`/dev/zero`, found by hostile testing: the proxy grew to 3.7 GB in
/// 3 s) is a read error naming the limit, not memory exhausted.
#[cfg(target_os = "linux")]
#[test]
fn an_endless_file_is_a_read_error_not_exhausted_memory() {
    let err = Htpasswd::open("/dev/zero").unwrap_err();
    assert!(matches!(err, HtpasswdError::Read { .. }), "{err:?}");
    assert!(
        err.to_string()
            .starts_with("/dev/zero: cannot read: larger than 256 MiB"),
        "{err}"
    );
}

#[tokio::test]
async fn plaintext_only_when_opted_in_and_des_refusable() {
    let err = quiet()
        .from_contents("p.htpasswd", "alice:hunter2\n")
        .unwrap_err();
    assert_eq!(err.kind(), Some(LineErrorKind::UnknownFormat));
    let users = quiet()
        .allow_plaintext(true)
        .from_contents("p.htpasswd", "alice:hunter2\nbob:{PLAIN}pa:ss\n")
        .unwrap();
    assert!(accepts(&users, "alice", "hunter2").await);
    assert!(!accepts(&users, "alice", "hunter").await);
    // `{PLAIN}` ends at the next ':' like any field; the rest is a comment.
    assert!(accepts(&users, "bob", "pa").await);
    // '$' and '{' fields of no known format are never plaintext, even when allowed.
    let err = quiet()
        .allow_plaintext(true)
        .from_contents("p.htpasswd", "a:$9$x\n")
        .unwrap_err();
    assert_eq!(err.kind(), Some(LineErrorKind::UnknownFormat));

    let des = fixture_hash("edge.htpasswd", "des8");
    let err = quiet()
        .refuse_des(true)
        .from_contents("d.htpasswd", format!("a:{des}\n"))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "d.htpasswd:1: DES crypt hash refused (refuse_des is set)"
    );
}

#[cfg(not(feature = "des-crypt"))]
#[tokio::test]
async fn without_the_des_crypt_feature_a_des_line_is_a_load_error_naming_the_feature() {
    let logs = capture_logs();
    let sha = fixture_hash("formats.htpasswd", "sha1"); // sha-one
    let des = fixture_hash("edge.htpasswd", "des8"); // secret12
    let contents = format!("# users\nalice:{sha}\nold:{des}\ncarol:{sha}\n");
    let err = quiet()
        .from_contents("users.htpasswd", &contents)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "users.htpasswd:3: DES crypt hash, but the des-crypt cargo feature is off"
    );
    assert_eq!(
        (err.line(), err.kind()),
        (Some(3), Some(LineErrorKind::DesCryptFeatureOff))
    );
    assert!(!err.to_string().contains(&des), "the hash is not quoted");
    // A file names its path; the fixtures' own DES lines fail so too.
    let err = quiet().open(fixture("formats.htpasswd")).unwrap_err();
    assert_eq!(err.kind(), Some(LineErrorKind::DesCryptFeatureOff));
    assert!(err
        .to_string()
        .starts_with(&format!("{}:", fixture("formats.htpasswd").display())));
    // Lenient: skipped with a warning; the user is refused, even with a later line.
    let users = quiet()
        .lenient(true)
        .from_contents("nodes-1.htpasswd", format!("{contents}old:{sha}\n"))
        .unwrap();
    assert_eq!(users.len(), 2);
    assert!(!users.contains("old"));
    assert!(!accepts(&users, "old", "secret12").await);
    assert!(!accepts(&users, "old", "sha-one").await);
    assert!(accepts(&users, "alice", "sha-one").await);
    assert!(logs.wait_for(
        "nodes-1.htpasswd:3: DES crypt hash, but the des-crypt cargo feature is off; line \
         skipped (lenient mode)"
    ));
    // refuse_des says why first, feature or not.
    let err = quiet()
        .refuse_des(true)
        .from_contents("d.htpasswd", format!("a:{des}\n"))
        .unwrap_err();
    assert_eq!(err.kind(), Some(LineErrorKind::DesRefused));
}

// ---------------------------------------------------------------------------------------------
// Reload.

/// Replaces the file as configuration tools do: write a sibling, rename it over.
fn replace_file(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(contents.as_bytes()).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Waits (bounded) until `done` holds.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_adds_and_removes_users_and_survives_a_broken_file() {
    let logs = capture_logs();
    let sha = fixture_hash("formats.htpasswd", "sha1"); // sha-one
    let bcrypt = fixture_hash("formats.htpasswd", "bcrypt5"); // bcrypt-five
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reload.htpasswd");
    std::fs::write(&path, format!("alice:{sha}\nbob:{bcrypt}\n")).unwrap();
    let users = Htpasswd::builder()
        .watch_interval(Duration::from_millis(20))
        .open(&path)
        .unwrap();
    assert_eq!(users.stats().generation, 1);
    assert!(accepts(&users, "alice", "sha-one").await);
    assert!(accepts(&users, "bob", "bcrypt-five").await);
    assert!(!accepts(&users, "carol", "sha-one").await);

    // Add carol, remove bob.
    replace_file(&path, &format!("alice:{sha}\ncarol:{sha}\n"));
    eventually("the reload", || users.stats().generation == 2).await;
    assert!(
        accepts(&users, "carol", "sha-one").await,
        "an added user works"
    );
    assert!(
        !accepts(&users, "bob", "bcrypt-five").await,
        "a removed user is refused"
    );
    assert_eq!(users.len(), 2);

    // A broken file: the previous users keep serving; file and line are logged.
    replace_file(&path, &format!("alice:{sha}\ndave:hunter2\n"));
    eventually("the failed reload", || users.stats().reload_failures == 1).await;
    let stats = users.stats();
    assert_eq!(stats.generation, 2);
    let err = stats.last_reload_error.expect("the error is kept");
    assert_eq!(err.line(), Some(2));
    let expected = format!("{}:2: unknown hash format", path.display());
    assert_eq!(err.to_string(), expected);
    assert!(logs.wait_for(&format!(
        "{expected}; reload failed, keeping the previous users"
    )));
    assert!(!logs.contains("hunter2"));
    assert!(accepts(&users, "carol", "sha-one").await);
    assert!(!accepts(&users, "dave", "hunter2").await);
    // The same broken contents are not parsed (nor logged) again.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(users.stats().reload_failures, 1);

    // Fixed in place (same inode): picked up too, and the error is cleared.
    std::fs::write(&path, format!("alice:{sha}\ndave:{sha}\n")).unwrap();
    eventually("the fixed reload", || users.stats().generation == 3).await;
    assert!(users.stats().last_reload_error.is_none());
    assert!(accepts(&users, "dave", "sha-one").await);
    assert!(!accepts(&users, "carol", "sha-one").await);

    // Deleted: the previous users keep serving.
    std::fs::remove_file(&path).unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(accepts(&users, "dave", "sha-one").await);
    assert!(users.reload().is_err());
    assert!(accepts(&users, "dave", "sha-one").await);
}

#[test]
fn reload_of_contents_is_refused() {
    let users = Htpasswd::from_contents("mem", "").unwrap();
    assert!(matches!(
        users.reload(),
        Err(HtpasswdError::NotAFile { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Cache.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_request_is_a_cache_hit_and_a_changed_hash_invalidates_it() {
    let bcrypt = fixture_hash("formats.htpasswd", "bcrypt5"); // bcrypt-five
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.htpasswd");
    std::fs::write(&path, format!("alice:{bcrypt}\n")).unwrap();
    let users = quiet().open(&path).unwrap();

    assert!(accepts(&users, "alice", "bcrypt-five").await);
    assert_eq!(users.stats().verifications, 1);
    // The hit is answered at once, without the blocking pool.
    let credentials = BasicCredentials::new("alice", "bcrypt-five").unwrap();
    let (parts, ()) = Request::new(()).into_parts();
    assert!(matches!(
        users.validate(&credentials, &parts),
        Validation::Ready(Ok(Decision::Allow(_)))
    ));
    let stats = users.stats();
    assert_eq!((stats.verifications, stats.cache_hits), (1, 1));
    // Wrong passwords are never remembered.
    assert!(!accepts(&users, "alice", "bcrypt-fivE").await);
    assert!(!accepts(&users, "alice", "bcrypt-fivE").await);
    assert_eq!(users.stats().verifications, 3);

    // A reload that leaves alice's line as it was keeps her success: still a hit.
    std::fs::write(&path, format!("alice:{bcrypt}\nbob:{bcrypt}\n")).unwrap();
    users.reload().unwrap();
    assert!(matches!(
        users.validate(&credentials, &parts),
        Validation::Ready(Ok(Decision::Allow(_)))
    ));
    assert_eq!(users.stats().verifications, 3);

    // Same password, new hash (the user ran `htpasswd -B` again): the cached entry is not used.
    let rehashed = bcrypt::hash("bcrypt-five", 4).unwrap();
    std::fs::write(&path, format!("alice:{rehashed}\n")).unwrap();
    users.reload().unwrap();
    assert!(accepts(&users, "alice", "bcrypt-five").await);
    assert_eq!(users.stats().verifications, 4);
    // New password: the old one is refused at once after the reload.
    let changed = bcrypt::hash("new-password", 4).unwrap();
    std::fs::write(&path, format!("alice:{changed}\n")).unwrap();
    users.reload().unwrap();
    assert!(!accepts(&users, "alice", "bcrypt-five").await);
    assert!(accepts(&users, "alice", "new-password").await);
    // Removed: refused although a success for it is still cached.
    std::fs::write(&path, format!("bob:{changed}\n")).unwrap();
    users.reload().unwrap();
    assert!(!accepts(&users, "alice", "new-password").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_ttl_capacity_and_negative_ttl_reach_the_cache() {
    let quick = bcrypt::hash("pw", 4).unwrap();
    let contents = format!("alice:{quick}\n");
    let (parts, ()) = Request::new(()).into_parts();
    let ready = |users: &Htpasswd, password: &str| {
        let credentials = BasicCredentials::new("alice", password).unwrap();
        matches!(users.validate(&credentials, &parts), Validation::Ready(_))
    };

    // A success lives for the TTL only.
    let users = quiet()
        .cache_ttl(Duration::from_millis(200))
        .from_contents("ttl.htpasswd", &contents)
        .unwrap();
    assert!(accepts(&users, "alice", "pw").await);
    assert!(ready(&users, "pw"));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(!ready(&users, "pw"), "expired");
    assert!(accepts(&users, "alice", "pw").await);
    assert_eq!(users.stats().verifications, 2);

    // No success is remembered at a capacity or a TTL of 0.
    for users in [quiet().cache_capacity(0), quiet().cache_ttl(Duration::ZERO)]
        .map(|b| b.from_contents("off.htpasswd", &contents).unwrap())
    {
        assert!(accepts(&users, "alice", "pw").await);
        assert!(accepts(&users, "alice", "pw").await);
        let stats = users.stats();
        assert_eq!((stats.verifications, stats.cache_hits), (2, 0), "{stats:?}");
    }

    // Failures are remembered only with a negative TTL: then the same wrong password, and the
    // same unknown user, cost one verification each.
    let users = quiet()
        .negative_cache_ttl(Duration::from_secs(60))
        .from_contents("neg.htpasswd", &contents)
        .unwrap();
    for _ in 0..3 {
        assert!(!accepts(&users, "alice", "wrong").await);
        assert!(!accepts(&users, "mallory", "pw").await);
    }
    let stats = users.stats();
    assert_eq!((stats.verifications, stats.cache_hits), (2, 4), "{stats:?}");
    assert!(!ready(&users, "wronG"), "another password is checked");
    // The right password is checked, not refused from memory.
    assert!(accepts(&users, "alice", "pw").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_with_one_password_never_share_a_verification() {
    let bcrypt12 = fixture_hash("formats.htpasswd", "bcrypt12"); // bcrypt-twelve
    let users = quiet()
        .max_concurrent_verifications(1)
        .from_contents("shared.htpasswd", format!("alice:{bcrypt12}\n"))
        .unwrap();
    // Sharing would tell unknown users from known ones, or one unknown user from another:
    // every distinct user-id costs its own verification, even with alice's password.
    let mut set = tokio::task::JoinSet::new();
    for user in ["eve", "mallory", "trent", "alice"] {
        let users = users.clone();
        set.spawn(async move { (user, accepts(&users, user, "bcrypt-twelve").await) });
    }
    while let Some(done) = set.join_next().await {
        let (user, accepted) = done.unwrap();
        assert_eq!(accepted, user == "alice", "{user}");
    }
    let stats = users.stats();
    assert_eq!((stats.verifications, stats.coalesced), (4, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_requests_share_one_verification() {
    let bcrypt12 = fixture_hash("formats.htpasswd", "bcrypt12"); // bcrypt-twelve
    let users = quiet()
        .from_contents("c.htpasswd", format!("alice:{bcrypt12}\n"))
        .unwrap();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let users = users.clone();
        set.spawn(async move { accepts(&users, "alice", "bcrypt-twelve").await });
    }
    while let Some(accepted) = set.join_next().await {
        assert!(accepted.unwrap());
    }
    let stats = users.stats();
    assert_eq!(stats.verifications, 1, "{stats:?}");
    assert_eq!(stats.coalesced + stats.cache_hits, 7, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_cost_a_dummy_verification_unless_turned_off() {
    let bcrypt = fixture_hash("formats.htpasswd", "bcrypt5");
    let contents = format!("alice:{bcrypt}\nbob:{bcrypt}\n");
    let users = quiet().from_contents("u.htpasswd", &contents).unwrap();
    assert!(
        !accepts(&users, "mallory", "bcrypt-five").await,
        "alice's password is not mallory's"
    );
    assert!(!accepts(&users, "mallory", "bcrypt-five").await);
    assert_eq!(
        users.stats().verifications,
        2,
        "each unknown-user request costs a verification"
    );
    assert_eq!(users.stats().cache_hits, 0);

    let users = quiet()
        .verify_unknown_users(false)
        .from_contents("u.htpasswd", &contents)
        .unwrap();
    let credentials = BasicCredentials::new("mallory", "x").unwrap();
    let (parts, ()) = Request::new(()).into_parts();
    assert!(matches!(
        users.validate(&credentials, &parts),
        Validation::Ready(Ok(Decision::Reject))
    ));
    assert_eq!(users.stats().verifications, 0);
}

// ---------------------------------------------------------------------------------------------
// The verification queue.

/// A request through the proxy for `user`/`password`.
fn proxy_request(user: &str, password: &str) -> Request<String> {
    Request::builder()
        .uri("http://origin.test/")
        .header(
            PROXY_AUTHORIZATION,
            BasicCredentials::new(user, password).unwrap().encode(),
        )
        .body(String::new())
        .unwrap()
}

/// The answer of `future` if it is ready at its first poll.
async fn now_or_never<F: std::future::Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match future.as_mut().poll(cx) {
            std::task::Poll::Ready(output) => Some(output),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_verification_queue_answers_503_at_once() {
    let bcrypt12 = fixture_hash("formats.htpasswd", "bcrypt12"); // bcrypt-twelve
    let users = quiet()
        .max_concurrent_verifications(1)
        .max_queued_verifications(2)
        .from_contents("queue-1.htpasswd", format!("slow:{bcrypt12}\n"))
        .unwrap();
    let inner_calls = Arc::new(AtomicUsize::new(0));
    let calls = inner_calls.clone();
    let service = ServiceBuilder::new()
        .layer(ProxyAuthLayer::new(users.clone()))
        .service_fn(move |_req: Request<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        });

    // Ten requests with distinct wrong passwords (nothing to share, nothing cached), let go at
    // once; each notes its status in the order the answers come.
    const REQUESTS: usize = 10;
    let barrier = Arc::new(tokio::sync::Barrier::new(REQUESTS));
    let answers = Arc::new(Mutex::new(Vec::new()));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..REQUESTS {
        let (service, barrier, answers) = (service.clone(), barrier.clone(), answers.clone());
        set.spawn(async move {
            barrier.wait().await;
            let request = proxy_request("slow", &format!("wrong-{i}"));
            let status = tower::ServiceExt::oneshot(service, request)
                .await
                .unwrap()
                .status();
            answers.lock().unwrap().push(status);
        });
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(done) = set.join_next().await {
            done.unwrap();
        }
    })
    .await
    .expect("three cost-12 verifications within 120 s");

    // One runs and two wait: those three are verified and refused (407). The seven others are
    // shed with 503, all of them before the first verification's answer.
    let answers = answers.lock().unwrap().clone();
    let unavailable = vec![StatusCode::SERVICE_UNAVAILABLE; REQUESTS - 3];
    let refused = vec![StatusCode::PROXY_AUTHENTICATION_REQUIRED; 3];
    assert_eq!(answers, [unavailable, refused].concat());
    let stats = users.stats();
    assert_eq!((stats.verifications, stats.shed), (3, 7), "{stats:?}");
    assert_eq!(inner_calls.load(Ordering::SeqCst), 0, "never let through");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hits_and_shared_verifications_take_no_queue_place() {
    let bcrypt12 = fixture_hash("formats.htpasswd", "bcrypt12"); // bcrypt-twelve
    let quick = bcrypt::hash("alice-pw", 4).unwrap();
    // No queue at all: one verification at a time, and none waiting.
    let users = quiet()
        .max_concurrent_verifications(1)
        .max_queued_verifications(0)
        .from_contents(
            "queue-2.htpasswd",
            format!("alice:{quick}\nslow:{bcrypt12}\n"),
        )
        .unwrap();
    assert!(accepts(&users, "alice", "alice-pw").await);
    assert_eq!(users.stats().verifications, 1);

    // A verification takes the only slot...
    let running = tokio::spawn({
        let users = users.clone();
        async move { decide(&users, "slow", "wrong-1").await }
    });
    eventually("the slow verification to start", || {
        users.stats().verifications == 2
    })
    .await;
    // ...a request with the same credentials shares it instead of being shed...
    let shared = tokio::spawn({
        let users = users.clone();
        async move { decide(&users, "slow", "wrong-1").await }
    });
    eventually("the second request to join", || {
        users.stats().coalesced == 1
    })
    .await;
    // ...a remembered success is answered at once...
    let credentials = BasicCredentials::new("alice", "alice-pw").unwrap();
    let (parts, ()) = Request::new(()).into_parts();
    assert!(matches!(
        users.validate(&credentials, &parts),
        Validation::Ready(Ok(Decision::Allow(_)))
    ));
    // ...and anything else needing a verification is refused at its first poll, with an error
    // that says why and holds no secret: a wrong password, an unknown user.
    for (user, password) in [("slow", "wrong-2"), ("nobody", "nobody-pw")] {
        let credentials = BasicCredentials::new(user, password).unwrap();
        let Validation::Pending(future) = users.validate(&credentials, &parts) else {
            panic!("{user}: a slow hash is never answered at once");
        };
        let error = now_or_never(future)
            .await
            .expect("shed at the first poll, without waiting")
            .expect_err("a full queue is an error, not a refusal");
        let text = error.to_string();
        assert!(text.contains("verification queue is full"), "{text}");
        assert!(!text.contains(password) && !text.contains("$2y$"), "{text}");
    }
    assert!(!running.is_finished(), "the slow verification still runs");
    assert!(matches!(running.await.unwrap(), Decision::Reject));
    assert!(matches!(shared.await.unwrap(), Decision::Reject));
    let stats = users.stats();
    assert_eq!(
        (
            stats.verifications,
            stats.coalesced,
            stats.cache_hits,
            stats.shed
        ),
        (2, 1, 1, 2),
        "{stats:?}"
    );
    // The queue drained: the next verification runs.
    assert!(accepts(&users, "alice", "alice-pw").await);
    assert!(!accepts(&users, "nobody", "nobody-pw").await);
}

// ---------------------------------------------------------------------------------------------
// Extreme costs.

/// A bcrypt field of `cost`, right in shape (the salt and digest of a real cost-5 hash) but
/// never to be verified: at cost 31 that would take a day.
fn bcrypt_at(cost: u32) -> String {
    let real = fixture_hash("formats.htpasswd", "bcrypt5");
    format!("$2y${cost:02}{}", &real[6..])
}

/// A SHA-512-crypt field with `rounds`, right in shape, never to be verified.
fn sha512_at(rounds: u32) -> String {
    format!("$6$rounds={rounds}$saltsalt${}", "a".repeat(86))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_costs_load_with_a_warning_and_are_never_the_unknown_user_dummy() {
    let logs = capture_logs();
    let bcrypt5 = fixture_hash("formats.htpasswd", "bcrypt5"); // bcrypt-five
    let (b31, r_max) = (bcrypt_at(31), sha512_at(999_999_999));
    // The extreme lines are the most common (format, cost): without care, every unknown user
    // would be verified at cost 31 and hold the only slot for a day.
    let contents = format!(
        "a:{b31}\nb:{b31}\nc:{b31}\nd:{r_max}\ne:{bcrypt5}\nf:{}\ng:{}\n",
        bcrypt_at(17),
        sha512_at(1_000_000)
    );
    let users = quiet()
        .max_concurrent_verifications(3)
        .from_contents("extreme-1.htpasswd", contents)
        .unwrap();
    assert_eq!(users.len(), 7, "any cost is accepted, as Apache does");
    assert!(logs.contains(
        "extreme-1.htpasswd:1: bcrypt cost 31 for user \"a\" is above 17: verification will \
         take 65536 seconds (about 18 hours) or more; it holds one of the 3 verification slots \
         meanwhile"
    ));
    assert_eq!(
        logs.count_lines(&["extreme-1.htpasswd:", "bcrypt cost 31"]),
        3
    );
    assert!(logs.contains(
        "extreme-1.htpasswd:4: SHA-512-crypt rounds 999999999 for user \"d\" is above \
         1,000,000: verification will take 250 seconds or more"
    ));
    // At the bounds: no warning.
    assert!(!logs.contains("extreme-1.htpasswd:6:"));
    assert!(!logs.contains("extreme-1.htpasswd:7:"));
    assert!(!logs.contains(&b31[7..]), "no hash in the logs");

    // An unknown user is verified against the cost-5 hash (a cost-31 one would not finish).
    let refused = tokio::time::timeout(Duration::from_secs(60), decide(&users, "nobody", "x"))
        .await
        .expect("the dummy is not the cost-31 hash");
    assert!(matches!(refused, Decision::Reject));
    assert!(accepts(&users, "e", "bcrypt-five").await);
    assert_eq!(users.stats().verifications, 2);
}

#[tokio::test]
async fn max_bcrypt_cost_and_max_sha_crypt_rounds_refuse_lines() {
    let logs = capture_logs();
    let sha = fixture_hash("formats.htpasswd", "sha1"); // sha-one
    let limited = || quiet().max_bcrypt_cost(14).max_sha_crypt_rounds(100_000);

    let err = limited()
        .from_contents(
            "limit-1.htpasswd",
            format!("a:{sha}\nb:{}\n", bcrypt_at(15)),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "limit-1.htpasswd:2: bcrypt cost 15 is above max_bcrypt_cost (14)"
    );
    assert_eq!(
        err.kind(),
        Some(LineErrorKind::CostTooHigh {
            format: HashFormat::Bcrypt,
            cost: 15,
            limit: 14
        })
    );
    let err = limited()
        .from_contents(
            "limit-1.htpasswd",
            format!("a:{sha}\n\nc:{}\n", sha512_at(100_001)),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "limit-1.htpasswd:3: SHA-512-crypt rounds=100001 is above max_sha_crypt_rounds (100000)"
    );
    // At the limits: accepted.
    let users = limited()
        .from_contents(
            "limit-1.htpasswd",
            format!("a:{}\nb:{}\n", bcrypt_at(14), sha512_at(100_000)),
        )
        .unwrap();
    assert_eq!(users.len(), 2);
    // Lenient: skipped with a warning naming file and line, and the user stays refused.
    let users = limited()
        .lenient(true)
        .from_contents(
            "limit-2.htpasswd",
            format!("a:{sha}\nb:{}\nb:{sha}\n", bcrypt_at(31)),
        )
        .unwrap();
    assert_eq!(users.len(), 1);
    assert!(!accepts(&users, "b", "sha-one").await);
    assert!(logs.contains(
        "limit-2.htpasswd:2: bcrypt cost 31 is above max_bcrypt_cost (14); line skipped"
    ));
    // Off by default (Apache accepts any cost).
    let users = quiet()
        .from_contents("limit-3.htpasswd", format!("b:{}\n", bcrypt_at(31)))
        .unwrap();
    assert_eq!(users.format("b"), Some(HashFormat::Bcrypt));
}

// ---------------------------------------------------------------------------------------------
// Log floods.

#[cfg(feature = "des-crypt")]
#[test]
fn load_warnings_are_capped_per_kind_with_one_summary_each() {
    let logs = capture_logs();
    let sha = fixture_hash("formats.htpasswd", "sha1");
    let des = fixture_hash("edge.htpasswd", "des8");
    let mut contents = format!("dup:{sha}\n");
    for _ in 0..50_000 {
        contents.push_str(&format!("dup:{sha}\n"));
    }
    for i in 0..15 {
        contents.push_str(&format!("des-{i}:{des}\n"));
    }
    contents.push_str("skipped-1\nskipped-2:\nskipped-3:hunter2\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flood.htpasswd");
    std::fs::write(&path, &contents).unwrap();
    let file = path.display().to_string();
    let users = quiet().lenient(true).open(&path).unwrap();
    assert_eq!(users.len(), 16);

    let duplicates = [
        file.as_str(),
        "duplicate user \"dup\"; the entry on line 1 wins",
    ];
    assert_eq!(logs.count_lines(&duplicates), 10);
    assert!(logs.contains(&format!("{file}:2: duplicate user \"dup\"")));
    assert!(logs.contains(&format!("{file}:11: duplicate user \"dup\"")));
    assert!(!logs.contains(&format!("{file}:12: duplicate user")));
    let summary = format!("{file}: and 49,990 more duplicate users");
    assert_eq!(logs.count_lines(&[&summary]), 1);
    let des_lines = [file.as_str(), "DES crypt hash for user \"des-"];
    assert_eq!(logs.count_lines(&des_lines), 10);
    let des_summary = format!("{file}: and 5 more DES crypt hashes");
    assert_eq!(logs.count_lines(&[&des_summary]), 1);
    // Three skipped lines: each logged, no summary.
    assert_eq!(
        logs.count_lines(&[file.as_str(), "line skipped (lenient mode)"]),
        3
    );
    assert!(!logs.contains(&format!("{file}: and 3 more")));
    assert!(!logs.contains("hunter2"));

    // Counted per load: a reload logs the same again, not 50,000 lines.
    users.reload().unwrap();
    assert_eq!(logs.count_lines(&duplicates), 20);
    assert_eq!(logs.count_lines(&[&summary]), 2);
    assert_eq!(logs.count_lines(&[&des_summary]), 2);
    assert_eq!(
        logs.count_lines(&[file.as_str()]),
        2 * (10 + 1 + 10 + 1 + 3) + 1
    );
}

// ---------------------------------------------------------------------------------------------
// Ordering through a real server.

/// Serves `ProxyAuthLayer::new(validator)` in front of a trivial origin on 127.0.0.1:0.
async fn serve(validator: impl Validator) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ServiceBuilder::new()
        .layer(ProxyAuthLayer::new(validator))
        .service_fn(|_req: Request<hyper::body::Incoming>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
        });
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

/// One proxy request on a fresh connection; the status.
async fn proxy_get(addr: SocketAddr, user: &str, password: &str) -> StatusCode {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let request = Request::builder()
        .uri("http://origin.test/")
        .header(HOST, "origin.test")
        .header(
            PROXY_AUTHORIZATION,
            BasicCredentials::new(user, password).unwrap().encode(),
        )
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(120), sender.send_request(request))
        .await
        .expect("no answer within 120 s")
        .unwrap();
    response.status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_users_are_served_while_bcrypt_verifications_run() {
    let bcrypt12 = fixture_hash("formats.htpasswd", "bcrypt12");
    // Secure defaults (unknown users cost a dummy verification), with the cheap validator first
    // as the `Htpasswd` docs advise: a StaticUsers user never reaches the file.
    let htpasswd = quiet()
        .from_contents("slow.htpasswd", format!("slow:{bcrypt12}\n"))
        .unwrap();
    let static_users = StaticUsers::new().with_user("fast", "quick");
    let addr = serve(static_users.or(htpasswd.clone())).await;

    const SLOW: usize = 20;
    let finished_slow = Arc::new(AtomicUsize::new(0));
    let mut slow = tokio::task::JoinSet::new();
    for i in 0..SLOW {
        let finished_slow = finished_slow.clone();
        // Distinct (wrong) passwords: twenty verifications, none shared, none cached.
        slow.spawn(async move {
            let status = proxy_get(addr, "slow", &format!("wrong-{i}")).await;
            finished_slow.fetch_add(1, Ordering::SeqCst);
            status
        });
    }
    eventually("twenty verifications in flight", || {
        htpasswd.stats().cache_misses == SLOW as u64
    })
    .await;

    // Each StaticUsers request is answered while the bcrypt ones wait for or hold the pool.
    let mut slow_done_at_fast = Vec::new();
    for _ in 0..5 {
        assert_eq!(proxy_get(addr, "fast", "quick").await, StatusCode::OK);
        slow_done_at_fast.push(finished_slow.load(Ordering::SeqCst));
    }
    // A wrong password for the StaticUsers user falls through to the file, where "fast" is
    // unknown: a dummy verification, queued behind the others, then 407.
    let refused = tokio::spawn(async move { proxy_get(addr, "fast", "wrong").await });
    while let Some(status) = slow.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::PROXY_AUTHENTICATION_REQUIRED);
    }
    assert_eq!(
        refused.await.unwrap(),
        StatusCode::PROXY_AUTHENTICATION_REQUIRED
    );
    assert_eq!(htpasswd.stats().verifications, SLOW as u64 + 1);
    // At most `max_concurrent_verifications` (the CPU count) bcrypt checks run at once, so the
    // twenty take many rounds: every StaticUsers request must have finished before any of them.
    assert!(
        slow_done_at_fast.iter().all(|&n| n == 0),
        "bcrypt requests finished before StaticUsers requests: {slow_done_at_fast:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Log capture.

/// Everything logged by this test binary (all tests share one global subscriber, so checks look
/// for text unique to their test: a file name).
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn contains(&self, needle: &str) -> bool {
        let buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).contains(needle)
    }

    /// How many logged lines contain every one of `needles`.
    fn count_lines(&self, needles: &[&str]) -> usize {
        let buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf)
            .lines()
            .filter(|line| needles.iter().all(|n| line.contains(n)))
            .count()
    }

    /// Whether `needle` shows up within a few seconds (output is written as events happen).
    fn wait_for(&self, needle: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if self.contains(needle) {
                return true;
            }
            if Instant::now() > deadline {
                let buf = self.0.lock().unwrap_or_else(|e| e.into_inner());
                eprintln!("logs so far:\n{}", String::from_utf8_lossy(&buf));
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

struct Writer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Writer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_logs() -> Logs {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let buffer = BUFFER.get_or_init(|| {
        let buffer = Arc::new(Mutex::new(Vec::new()));
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Writer(writer.clone()))
            .init();
        buffer
    });
    Logs(buffer.clone())
}
