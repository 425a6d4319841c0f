//! Keeping a store's file current: noticing that it changed, reading it again, swapping it in.
//!
//! A thread of its own (one per watched file, named for the kind of file: `htpasswd-watch`,
//! `htdigest-watch`) looks at the file's metadata every interval (2 s by default): size,
//! modification time and, on Unix, device, inode and change time. When any differs from what
//! was seen before the last load, and stays the same for a short settling time (the interval,
//! at most 100 ms), the file is read and parsed again; a file still being written (it changes
//! again while settling or while being read) is left for the next look. So a change is in
//! force about one interval (plus 100 ms and the time to parse) after the writer finishes,
//! whether the file was rewritten in place or replaced by a rename, as `htpasswd`, `htdigest`
//! and configuration tools do.
//!
//! - The store swaps the new contents in atomically (its [`Source::load`]): a request sees the
//!   old users or the new ones, never a mix.
//! - A new file that fails to load (a bad line, unless lenient; unreadable) leaves the
//!   previous users serving; the error is logged with `tracing::error!` naming the file and
//!   line, and kept for the store's statistics. The same broken version is not parsed again;
//!   the next change is.
//! - A file modified less than 2 s ago has its contents compared at each look even when its
//!   metadata seems unchanged, since a second write within the file system's timestamp
//!   granularity can keep size, inode and times; a touch without a change reloads nothing.
//! - A file that disappears also leaves the previous users serving (with one warning).
//! - Polling needs no runtime and no platform notification API; the thread is stopped as soon
//!   as the watcher is dropped (a channel it waits on is closed).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

/// A store whose contents come from a file.
pub(crate) trait Source: Send + Sync + 'static {
    /// Why a load failed: names the file (and the line).
    type Error: Clone + fmt::Display + Send + Sync + 'static;

    /// The name of the watcher thread.
    const THREAD: &'static str;

    /// The file, as named in messages.
    fn name(&self) -> &Arc<str>;

    /// The error for a file that cannot be read.
    fn read_error(&self, source: io::Error) -> Self::Error;

    /// Parses `contents` and, when they load, swaps them in; the number of users, for the log.
    fn load(&self, contents: &[u8]) -> Result<usize, Self::Error>;
}

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
struct State<E> {
    /// The file's fingerprint taken just before the last load attempt.
    fingerprint: Option<Fingerprint>,
    /// Successful loads, the first included.
    generation: u64,
    failures: u64,
    last_error: Option<E>,
    /// Digest of the contents of the last load attempt.
    digest: Option<[u8; 32]>,
    stat_failed: bool,
}

/// What [`Watched::status`] tells: successful loads (the first included), failed reloads, and
/// why the latest one failed, if it did.
#[derive(Debug, Clone)]
pub(crate) struct Status<E> {
    pub(crate) generation: u64,
    pub(crate) failures: u64,
    pub(crate) last_error: Option<E>,
}

/// Keeps a [`Source`] current with its file: reloads on request and, when watching, from a
/// thread of its own.
pub(crate) struct Watched<S: Source> {
    source: Arc<S>,
    path: PathBuf,
    state: Mutex<State<S::Error>>,
    /// Dropping it (with the last clone of the store) stops the watcher thread.
    _stop: Option<mpsc::Sender<()>>,
}

impl<S: Source> fmt::Debug for Watched<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watched")
            .field("path", &self.path)
            .field("watching", &self._stop.is_some())
            .finish_non_exhaustive()
    }
}

/// The largest user file read: 256 MiB (a million bcrypt lines are about 70 MB). A larger file,
/// or one that never ends (`/dev/zero`), is a read error rather than memory exhausted.
pub(crate) const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Reads `path` whole, at most [`MAX_FILE_BYTES`], into a buffer sized from the file's
/// metadata up front (so no reallocation leaves a copy of the secrets unzeroed).
///
/// # Errors
///
/// The operating system's, or `InvalidData` naming the limit when the file is larger.
fn read_capped(path: &Path) -> io::Result<zeroize::Zeroizing<Vec<u8>>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let hint = file.metadata().map_or(0, |m| m.len()).min(MAX_FILE_BYTES);
    let mut contents = zeroize::Zeroizing::new(Vec::with_capacity(
        usize::try_from(hint).unwrap_or(0).saturating_add(1),
    ));
    file.take(MAX_FILE_BYTES + 1).read_to_end(&mut contents)?;
    if contents.len() as u64 > MAX_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {} MiB", MAX_FILE_BYTES / (1024 * 1024)),
        ));
    }
    Ok(contents)
}

/// A file read for its first load: its contents, and what identifies this version.
pub(crate) struct FirstRead {
    pub(crate) contents: zeroize::Zeroizing<Vec<u8>>,
    fingerprint: Option<Fingerprint>,
}

/// Reads `path` for its first load.
///
/// # Errors
///
/// The operating system's, when the file cannot be read.
pub(crate) fn first_read(path: &Path) -> io::Result<FirstRead> {
    let fingerprint = fingerprint(path).ok();
    let contents = read_capped(path)?;
    Ok(FirstRead {
        contents,
        fingerprint,
    })
}

impl<S: Source> Watched<S> {
    /// Keeps `source`, just loaded from `first` (read from `path`), current; with `watch`,
    /// looking every that long from a thread of its own, which ends when this is dropped.
    ///
    /// # Errors
    ///
    /// When the thread cannot be started.
    pub(crate) fn start(
        source: Arc<S>,
        path: PathBuf,
        first: &FirstRead,
        watch: Option<Duration>,
    ) -> io::Result<Arc<Self>> {
        let (stop, stopped) = match watch {
            Some(_) => {
                let (tx, rx) = mpsc::channel();
                (Some(tx), Some(rx))
            }
            None => (None, None),
        };
        let watched = Arc::new(Self {
            source,
            path,
            state: Mutex::new(State {
                fingerprint: first.fingerprint,
                generation: 1,
                failures: 0,
                last_error: None,
                digest: Some(digest(&first.contents)),
                stat_failed: false,
            }),
            _stop: stop,
        });
        if let (Some(interval), Some(stopped)) = (watch, stopped) {
            spawn_watcher(&watched, interval, stopped)?;
        }
        Ok(watched)
    }

    /// Loads, failures and the latest failure so far.
    pub(crate) fn status(&self) -> Status<S::Error> {
        let state = self.lock();
        Status {
            generation: state.generation,
            failures: state.failures,
            last_error: state.last_error.clone(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<S::Error>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the file again and swaps it in, or keeps the old contents and reports why.
    pub(crate) fn reload(&self) -> Result<(), S::Error> {
        self.reload_with(true)
    }

    /// Like [`reload`](Self::reload); unless `force`, contents identical to the last attempt's
    /// are not parsed again.
    fn reload_with(&self, force: bool) -> Result<(), S::Error> {
        let path = &self.path;
        let name = self.source.name();
        // Reloads are serialised by the state's lock.
        let mut state = self.lock();
        let before = fingerprint(path).ok();
        state.fingerprint = before;
        let result = match read_capped(path) {
            Err(error) => Err(self.source.read_error(error)),
            Ok(contents) => {
                if !force && fingerprint(path).ok() != before {
                    // Changed while being read: the next look will see the new metadata.
                    return Ok(());
                }
                let digest = digest(&contents);
                if !force && state.digest == Some(digest) {
                    return Ok(());
                }
                state.digest = Some(digest);
                self.source.load(&contents)
            }
        };
        match result {
            Ok(users) => {
                state.generation += 1;
                state.last_error = None;
                tracing::info!("{name}: reloaded, {users} users");
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
        let mut state = self.lock();
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
                        self.source.name()
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

/// Starts the watcher thread for `watched`; it stops when `stop`'s sender (held by `watched`)
/// is dropped.
fn spawn_watcher<S: Source>(
    watched: &Arc<Watched<S>>,
    interval: Duration,
    stop: mpsc::Receiver<()>,
) -> io::Result<()> {
    let weak = Arc::downgrade(watched);
    thread::Builder::new()
        .name(S::THREAD.into())
        .stack_size(256 * 1024)
        .spawn(move || loop {
            match stop.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let Some(watched) = weak.upgrade() else {
                return;
            };
            let changed = watched.look();
            drop(watched);
            let Some(seen) = changed else {
                continue;
            };
            match stop.recv_timeout(settle_time(interval)) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let Some(watched) = weak.upgrade() else {
                return;
            };
            watched.load_if_settled(seen);
        })?;
    Ok(())
}
