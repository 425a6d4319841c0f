//! Live reload: noticing that the file changed, reading it again, swapping the table.
//!
//! A thread named `htpasswd-watch` (one per [`Htpasswd`](super::Htpasswd) opened with
//! [`watch`](super::HtpasswdBuilder::watch) on) looks at the file's metadata every
//! [`watch_interval`](super::HtpasswdBuilder::watch_interval) (2 s by default): size,
//! modification time and, on Unix, device, inode and change time. When any differs from what
//! was seen before the last load, and stays the same for a short settling time (the interval,
//! at most 100 ms), the file is read and parsed again; a file still being written (it changes
//! again while settling or while being read) is left for the next look. So a change is in
//! force about one interval (plus 100 ms and the time to parse) after the writer finishes,
//! whether the file was rewritten in place or replaced by a rename, as `htpasswd` and
//! configuration tools do.
//!
//! - The new table replaces the old one atomically ([`arc_swap`]): a request sees either the
//!   old users or the new ones, never a mix. A removed user is refused from the next request
//!   on; an added one is let in without a restart. Entries whose user and stored hash are
//!   unchanged keep their ids ([`Table::keep_ids_of`]), so the successes the cache remembered
//!   for them stay valid; a changed or new entry has a new id, under which nothing is
//!   remembered yet.
//! - A new file that fails to load (a bad line, unless lenient; unreadable) leaves the
//!   previous users serving; the error is logged with `tracing::error!` naming the file and
//!   line, and kept in [`HtpasswdStats::last_reload_error`](super::HtpasswdStats). The same
//!   broken version is not parsed again; the next change is.
//! - A file modified less than 2 s ago has its contents compared at each look even when its
//!   metadata seems unchanged, since a second write within the file system's timestamp
//!   granularity can keep size, inode and times; a touch without a change reloads nothing.
//! - A file that disappears also leaves the previous users serving (with one warning).
//! - Polling needs no runtime and no platform notification API; the thread is stopped as soon
//!   as the last clone of the `Htpasswd` is dropped (a channel it waits on is closed).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use super::error::HtpasswdError;
use super::file::{ParseOptions, Table};
use super::users::FileUsers;

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    dev: u64,
    #[cfg(unix)]
    ino: u64,
    #[cfg(unix)]
    ctime: (i64, i64),
}

pub(crate) fn fingerprint(path: &Path) -> io::Result<Fingerprint> {
    let meta = std::fs::metadata(path)?;
    #[cfg(unix)]
    use std::os::unix::fs::MetadataExt as _;
    Ok(Fingerprint {
        len: meta.len(),
        modified: meta.modified().ok(),
        #[cfg(unix)]
        dev: meta.dev(),
        #[cfg(unix)]
        ino: meta.ino(),
        #[cfg(unix)]
        ctime: (meta.ctime(), meta.ctime_nsec()),
    })
}

/// Reads the file.
pub(crate) fn read(name: &Arc<str>, path: &Path) -> Result<Vec<u8>, HtpasswdError> {
    std::fs::read(path).map_err(|source| HtpasswdError::Read {
        file: name.clone(),
        source: Arc::new(source),
    })
}

/// A digest of the file's contents, to tell a real change from a touch.
pub(crate) fn digest(contents: &[u8]) -> [u8; 32] {
    Sha256::digest(contents).into()
}

/// A file modified this recently may have been rewritten again within the file system's
/// timestamp granularity (up to 1 s on some), keeping size and inode: its contents are compared
/// even when its metadata looks unchanged.
const RECENT: Duration = Duration::from_secs(2);

fn recently_modified(fingerprint: &Fingerprint) -> bool {
    fingerprint
        .modified
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age < RECENT)
}

/// What the reloads so far have done.
#[derive(Debug, Default)]
struct ReloadState {
    /// The file's fingerprint taken just before the last load attempt.
    fingerprint: Option<Fingerprint>,
    /// Successful loads, the first included.
    generation: u64,
    failures: u64,
    last_error: Option<HtpasswdError>,
    /// Digest of the contents of the last load attempt.
    digest: Option<[u8; 32]>,
    stat_failed: bool,
}

/// What [`Reloader::status`] tells: successful loads (the first included), failed reloads,
/// and why the latest one failed, if it did.
#[derive(Debug, Clone)]
pub(crate) struct ReloadStatus {
    pub(crate) generation: u64,
    pub(crate) failures: u64,
    pub(crate) last_error: Option<HtpasswdError>,
}

/// Keeps the users of a file current: reloads on request and, when watching, from the
/// `htpasswd-watch` thread.
pub(crate) struct Reloader {
    users: Arc<FileUsers>,
    path: PathBuf,
    options: ParseOptions,
    state: Mutex<ReloadState>,
    /// Dropping it (with the last clone of the `Htpasswd`) stops the watcher thread.
    _stop_watcher: Option<mpsc::Sender<()>>,
}

impl fmt::Debug for Reloader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .field("watching", &self._stop_watcher.is_some())
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Keeps `users`, just loaded from `path` (whose metadata was `fingerprint` before it was
    /// read, and whose contents had `digest`), current; with `watch`, every that long from a
    /// thread of its own, which ends when the reloader is dropped.
    ///
    /// # Errors
    ///
    /// When the thread cannot be started.
    pub(crate) fn start(
        users: Arc<FileUsers>,
        path: PathBuf,
        options: ParseOptions,
        fingerprint: Option<Fingerprint>,
        digest: [u8; 32],
        watch: Option<Duration>,
    ) -> io::Result<Arc<Self>> {
        let (stop, stopped) = match watch {
            Some(_) => {
                let (tx, rx) = mpsc::channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let reloader = Arc::new(Self {
            users,
            path,
            options,
            state: Mutex::new(ReloadState {
                fingerprint,
                generation: 1,
                digest: Some(digest),
                ..ReloadState::default()
            }),
            _stop_watcher: stop,
        });
        if let (Some(interval), Some(stopped)) = (watch, stopped) {
            spawn_watcher(&reloader, interval, stopped)?;
        }
        Ok(reloader)
    }

    /// Loads, failures and the latest failure so far.
    pub(crate) fn status(&self) -> ReloadStatus {
        let state = self.reload_state();
        ReloadStatus {
            generation: state.generation,
            failures: state.failures,
            last_error: state.last_error.clone(),
        }
    }

    fn reload_state(&self) -> MutexGuard<'_, ReloadState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn name(&self) -> &Arc<str> {
        &self.users.name
    }

    /// Reads the file again and swaps the table in, or keeps the old one and reports why.
    pub(crate) fn reload(&self) -> Result<(), HtpasswdError> {
        self.reload_with(true)
    }

    /// Like [`reload`](Self::reload); unless `force`, contents identical to the last attempt's
    /// are not parsed again.
    fn reload_with(&self, force: bool) -> Result<(), HtpasswdError> {
        let path = &self.path;
        let mut state = self.reload_state();
        let before = fingerprint(path).ok();
        state.fingerprint = before;
        let result = read(self.name(), path).and_then(|contents| {
            if !force && fingerprint(path).ok() != before {
                // Changed while being read: the next look will see the new metadata.
                return Ok(None);
            }
            let digest = digest(&contents);
            if !force && state.digest == Some(digest) {
                return Ok(None);
            }
            state.digest = Some(digest);
            Table::parse(self.name(), &contents, self.options).map(Some)
        });
        match result {
            Ok(None) => Ok(()),
            Ok(Some(mut table)) => {
                let users = table.len();
                // Reloads are serialised by `state`: the table in force is the one replaced.
                table.keep_ids_of(&self.users.table.load());
                self.users.table.store(Arc::new(table));
                state.generation += 1;
                state.last_error = None;
                tracing::info!("{}: reloaded, {users} users", self.name());
                Ok(())
            }
            Err(error) => {
                state.failures += 1;
                state.last_error = Some(error.clone());
                tracing::error!("{error}; reload failed, keeping the previous users");
                Err(error)
            }
        }
    }

    /// Looks at the file: `Some(fingerprint)` when its metadata changed since the last load
    /// attempt (to be loaded once it has stayed so for a moment); a recently modified file with
    /// unchanged metadata is compared by contents at once.
    fn look(&self) -> Option<Fingerprint> {
        let current = fingerprint(&self.path);
        let mut state = self.reload_state();
        match current {
            Ok(current) => {
                state.stat_failed = false;
                if state.fingerprint != Some(current) {
                    return Some(current);
                }
                if recently_modified(&current) {
                    drop(state);
                    // Errors are logged and recorded by `reload_with`.
                    let _ = self.reload_with(false);
                }
            }
            Err(error) => {
                if !state.stat_failed {
                    state.stat_failed = true;
                    tracing::warn!(
                        "{}: cannot read file metadata ({error}); keeping the previous users",
                        self.name()
                    );
                }
            }
        }
        None
    }

    /// Loads the file if its metadata still is `seen`: a file caught in the middle of being
    /// written (truncated, half written) is left for the next look.
    fn load_if_settled(&self, seen: Fingerprint) {
        if fingerprint(&self.path).ok() == Some(seen) {
            let _ = self.reload_with(false);
        }
    }
}

/// How long a changed file must keep the same metadata before it is loaded.
fn settle_time(interval: Duration) -> Duration {
    interval.min(Duration::from_millis(100))
}

/// Starts the watcher thread for `reloader`; it stops when `stop`'s sender (held by
/// `reloader`) is dropped.
fn spawn_watcher(
    reloader: &Arc<Reloader>,
    interval: Duration,
    stop: mpsc::Receiver<()>,
) -> io::Result<()> {
    let weak = Arc::downgrade(reloader);
    thread::Builder::new()
        .name("htpasswd-watch".into())
        .stack_size(256 * 1024)
        .spawn(move || loop {
            match stop.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let Some(reloader) = weak.upgrade() else {
                return;
            };
            let changed = reloader.look();
            drop(reloader);
            let Some(seen) = changed else {
                continue;
            };
            match stop.recv_timeout(settle_time(interval)) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let Some(reloader) = weak.upgrade() else {
                return;
            };
            reloader.load_if_settled(seen);
        })?;
    Ok(())
}
