//! A `redis-server` of a test's (or a bench's) own: on a free 127.0.0.1 port, persistence off
//! (`--save "" --appendonly no`), in a temporary directory, stopped by its PID when dropped.
//! `redis-cli` (from the same Debian package) talks to it for the test's own checks.
//!
//! A missing `redis-server` fails the caller with the name of the Debian package to install.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian package that has `redis-server` and `redis-cli`.
pub const PACKAGE: &str = "redis-server";

/// A running `redis-server`, killed (by PID) when dropped.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

impl RedisServer {
    /// A server on a free port.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// A server on a free port with more command-line options (`["--maxmemory-policy",
    /// "allkeys-lru"]`).
    pub fn start_with(args: &[&str]) -> Self {
        let mut dir = tempfile::tempdir().expect("temporary directory");
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        // A port found free may be taken before redis-server binds it: a few tries.
        for _ in 0..5 {
            let mut server = Self {
                child: None,
                port: free_port(),
                args: args.clone(),
                dir,
            };
            if server.spawn() {
                return server;
            }
            dir = server.into_dir();
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    fn into_dir(mut self) -> tempfile::TempDir {
        self.stop();
        let dir = tempfile::tempdir().expect("temporary directory");
        std::mem::replace(&mut self.dir, dir)
    }

    /// Starts the process on `self.port`; whether it answers `PING` within 10 s.
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let mut command = Command::new("redis-server");
        command
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not on PATH: install the Debian package `{PACKAGE}` \
                 (apt-get install {PACKAGE})"
            ),
            Err(e) => panic!("redis-server: {e}"),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            if self
                .try_cli(&["PING"])
                .is_some_and(|out| out.trim() == "PONG")
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:{port}/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The directory it runs in (for certificates and the like).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills it (SIGKILL to its PID) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same options (empty: persistence is off).
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(),
            "redis-server did not start again on port {}",
            self.port
        );
    }

    /// Sends `signal` (`STOP`, `CONT`) to its PID with `kill`.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("redis-server runs").to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill (Debian package procps)");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    fn try_cli(&self, args: &[&str]) -> Option<String> {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output();
        match output {
            Ok(out) if out.status.success() => Some(String::from_utf8_lossy(&out.stdout).into()),
            Ok(_) => None,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-cli is not on PATH: install the Debian package `{PACKAGE}` \
                 (apt-get install {PACKAGE})"
            ),
            Err(_) => None,
        }
    }

    /// Runs `redis-cli` with `args` against it; its output.
    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|| panic!("redis-cli {args:?} failed"))
    }

    /// A command's raw reply bytes (`redis-cli --raw`, without the final newline).
    pub fn cli_bytes(&self, args: &[&str]) -> Vec<u8> {
        let out = Command::new("redis-cli")
            .args(["--raw", "-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        let mut bytes = out.stdout;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        bytes
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .cli(&["--scan"])
            .lines()
            .map(str::to_owned)
            .filter(|k| !k.is_empty())
            .collect();
        keys.sort();
        keys
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
