//! The reload watcher of an `Htpasswd` is a thread that ends when the last clone is dropped.
//!
//! Alone in its own test binary, so that no other test's watcher threads are counted.

use std::time::{Duration, Instant};

use tower_proxy_auth::Htpasswd;

/// Threads of this process named `htpasswd-watch` (Linux: `/proc/self/task/*/comm`).
fn watcher_threads() -> Option<usize> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    Some(
        tasks
            .filter_map(Result::ok)
            .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
            .filter(|comm| comm.trim() == "htpasswd-watch")
            .count(),
    )
}

fn wait_for_count(want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let n = watcher_threads().unwrap_or(want);
        if n == want || Instant::now() > deadline {
            return n;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn watcher_stops_when_the_last_clone_is_dropped() {
    if watcher_threads().is_none() {
        println!("NOTICE: no /proc/self/task here; watcher thread count not checked");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.htpasswd");
    std::fs::write(&path, "alice:{SHA}3tZYY3tooyYOFjWoGgb7I/Ohmyg=\n").unwrap();
    assert_eq!(watcher_threads(), Some(0));

    let users = Htpasswd::builder()
        .watch_interval(Duration::from_secs(3600)) // stopping must not wait for a tick
        .open(&path)
        .unwrap();
    assert_eq!(wait_for_count(1), 1);
    let clone = users.clone();
    drop(users);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(watcher_threads(), Some(1), "a clone still holds the users");
    drop(clone);
    assert_eq!(
        wait_for_count(0),
        0,
        "the watcher thread outlived the last clone"
    );

    // Without watching, no thread at all.
    let quiet = Htpasswd::builder().watch(false).open(&path).unwrap();
    assert_eq!(watcher_threads(), Some(0));
    drop(quiet);
}
