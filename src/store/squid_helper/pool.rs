//! The helper children: `children` processes, each fed from one bounded queue, with one
//! request in flight (no channel-IDs) or up to `concurrency` (with channel-IDs); a child that
//! exits, hangs or answers garbage is killed and started again, with a growing pause when it
//! keeps failing.
//!
//! Each child is a task that owns its process: it takes a request from the queue only when it
//! has room for one, writes it to the process's stdin, and reads the replies from its stdout.
//! A request therefore waits in the queue (bounded: a full queue is an overloaded error at
//! once) or is in flight on exactly one child, and every request in flight on a child that
//! fails is answered with an unavailable error (503), never left waiting. The process's stderr
//! goes to the log line by line, escaped and capped, at most [`STDERR_LINES_PER_SECOND`] lines
//! a second per helper.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, Command};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::time::Instant;
use zeroize::Zeroizing;

use super::protocol::{self, Reply, MAX_REPLY_BYTES};
use crate::logging::{Escaped, LogLimit};
use crate::outcome::ValidatorError;

/// How many lines of a helper's stderr are logged per second at most; the rest are counted
/// and the count logged with the next line let through.
pub const STDERR_LINES_PER_SECOND: u32 = 20;

/// How many bytes of one stderr line are logged.
const STDERR_LINE_BYTES: usize = 512;

/// The pause before restarting a child that failed again without answering anything: 100 ms,
/// doubled each time, at most [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause before restarting a child that keeps failing.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a pool runs, fixed when it is built.
pub(crate) struct PoolConfig {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<OsString>,
    pub(crate) children: usize,
    /// 0: one request in flight per child, no channel-IDs; M: up to M, with channel-IDs.
    pub(crate) concurrency: usize,
    pub(crate) queue: usize,
    pub(crate) timeout: Duration,
    /// Whether a bare HA1 line is a reply (Digest helpers of Squid 3.3 and older).
    pub(crate) legacy_ha1: bool,
    /// The program's file name, for log lines and errors.
    pub(crate) name: Arc<str>,
}

/// A request waiting for a child, and where its reply goes.
struct Job {
    /// The request line without channel-ID and line feed (it may hold a password).
    line: Zeroizing<Vec<u8>>,
    reply: oneshot::Sender<Result<Reply, ValidatorError>>,
}

/// What a child is doing, for the fail-fast rule.
const STARTING: u8 = 0;
const RUNNING: u8 = 1;
const BACKING_OFF: u8 = 2;

/// What the children share.
struct Shared {
    config: PoolConfig,
    states: Box<[AtomicU8]>,
    restart_log: LogLimit,
    stderr: LineBudget,
    stats: Counters,
}

#[derive(Default)]
struct Counters {
    spawned: AtomicU64,
    answered: AtomicU64,
    exited: AtomicU64,
    timed_out: AtomicU64,
    garbage: AtomicU64,
    spawn_failed: AtomicU64,
    shed: AtomicU64,
}

/// Counters of a helper's children, from `BasicHelper::stats` / `DigestHelper::stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct HelperStats {
    /// Processes started.
    pub spawned: u64,
    /// Replies received and handed on.
    pub answered: u64,
    /// Children that exited (or closed their stdout) on their own.
    pub exited: u64,
    /// Children killed because a request waited longer than the timeout.
    pub timed_out: u64,
    /// Children killed because they wrote a line that is not a reply, or a reply line that
    /// holds the channel-ID of another request in flight (replies mixed up).
    pub garbage: u64,
    /// Processes that could not be started.
    pub spawn_failed: u64,
    /// Checks refused at once because the queue was full.
    pub shed: u64,
}

/// The handle on a pool: submits requests. When the last handle goes away, the children
/// finish what they have in flight and their processes are ended.
pub(crate) struct Pool {
    sender: mpsc::Sender<Job>,
    /// The receiving end until the children are started (then they share it).
    receiver: StdMutex<Option<mpsc::Receiver<Job>>>,
    started: AtomicBool,
    shared: Arc<Shared>,
}

impl Pool {
    /// A pool for `config`; its children start now when called inside a Tokio runtime, else
    /// at the first request.
    pub(crate) fn new(config: PoolConfig) -> Self {
        let (sender, receiver) = mpsc::channel(config.queue.max(1));
        let states = (0..config.children)
            .map(|_| AtomicU8::new(STARTING))
            .collect();
        let pool = Self {
            sender,
            receiver: StdMutex::new(Some(receiver)),
            started: AtomicBool::new(false),
            shared: Arc::new(Shared {
                config,
                states,
                restart_log: LogLimit::new(),
                stderr: LineBudget::new(STDERR_LINES_PER_SECOND),
                stats: Counters::default(),
            }),
        };
        if let Ok(handle) = Handle::try_current() {
            pool.start(&handle);
        }
        pool
    }

    fn start(&self, handle: &Handle) {
        let receiver = {
            let mut slot = self.receiver.lock().unwrap_or_else(PoisonError::into_inner);
            match slot.take() {
                Some(receiver) => receiver,
                None => return,
            }
        };
        self.started.store(true, Relaxed);
        let queue = Arc::new(Mutex::new(receiver));
        for index in 0..self.shared.config.children {
            handle.spawn(supervise(index, self.shared.clone(), queue.clone()));
        }
    }

    /// Queues `line` for a child. The receiver gets the reply, or an unavailable error when
    /// the child that took it failed.
    ///
    /// # Errors
    ///
    /// At once: [`ValidatorError::overloaded`] when the queue is full; an unavailable error
    /// outside a Tokio runtime (before the children are started), when every child is pausing
    /// after failures, or when the children have stopped (their runtime shut down).
    pub(crate) fn submit(
        &self,
        line: Zeroizing<Vec<u8>>,
    ) -> Result<oneshot::Receiver<Result<Reply, ValidatorError>>, ValidatorError> {
        let shared = &self.shared;
        if !self.started.load(Relaxed) {
            let handle = Handle::try_current().map_err(|_| {
                ValidatorError::new(format!(
                    "Squid helper {}: its children need a Tokio runtime",
                    shared.config.name
                ))
            })?;
            self.start(&handle);
        }
        if shared.all_down() {
            return Err(ValidatorError::new(format!(
                "Squid helper {}: every child is failing; waiting before restarting them",
                shared.config.name
            )));
        }
        if !protocol::fits(&line) {
            // The validators refuse such credentials first; a longer line would reach the
            // helper as two requests, the second of the client's making.
            return Err(ValidatorError::new(format!(
                "Squid helper {}: a request line too long to send",
                shared.config.name
            )));
        }
        let (reply, receiver) = oneshot::channel();
        match self.sender.try_send(Job { line, reply }) {
            Ok(()) => Ok(receiver),
            Err(mpsc::error::TrySendError::Full(_)) => {
                shared.stats.shed.fetch_add(1, Relaxed);
                Err(ValidatorError::overloaded(format!(
                    "Squid helper {}: queue is full ({} waiting); check refused, try again later",
                    shared.config.name, shared.config.queue
                )))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ValidatorError::new(format!(
                "Squid helper {}: its children have stopped",
                shared.config.name
            ))),
        }
    }

    pub(crate) fn stats(&self) -> HelperStats {
        let c = &self.shared.stats;
        HelperStats {
            spawned: c.spawned.load(Relaxed),
            answered: c.answered.load(Relaxed),
            exited: c.exited.load(Relaxed),
            timed_out: c.timed_out.load(Relaxed),
            garbage: c.garbage.load(Relaxed),
            spawn_failed: c.spawn_failed.load(Relaxed),
            shed: c.shed.load(Relaxed),
        }
    }

    pub(crate) fn config(&self) -> &PoolConfig {
        &self.shared.config
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.shared.config;
        f.debug_struct("Pool")
            .field("program", &c.program)
            .field("children", &c.children)
            .field("concurrency", &c.concurrency)
            .field("queue", &c.queue)
            .field("timeout", &c.timeout)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn set_state(&self, index: usize, state: u8) {
        if let Some(s) = self.states.get(index) {
            s.store(state, Relaxed);
        }
    }

    /// Whether every child is pausing after failures (none can take a request soon).
    fn all_down(&self) -> bool {
        self.states.iter().all(|s| s.load(Relaxed) == BACKING_OFF)
    }

    fn unavailable(&self, what: &str) -> ValidatorError {
        ValidatorError::new(format!("Squid helper {}: {what}", self.config.name))
    }
}

/// Why a child's process ended.
enum End {
    /// Every pool handle went away and nothing is in flight.
    Closed,
    /// It failed; `answered` when it answered at least one request first.
    Failed { reason: Failure, answered: bool },
}

enum Failure {
    Spawn(std::io::Error),
    Exited(Option<std::process::ExitStatus>),
    Timeout(Duration),
    Garbage(usize),
    /// A reply line held the channel-ID of another request in flight.
    Mixed,
    Io(std::io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Spawn(e) => write!(f, "cannot be started: {e}"),
            Self::Exited(Some(status)) => write!(f, "exited ({status})"),
            Self::Exited(None) => f.write_str("closed its stdout"),
            Self::Timeout(limit) => write!(f, "did not answer within {limit:?}"),
            // Never the line itself: a helper that echoes its input would echo the password.
            Self::Garbage(len) => {
                write!(f, "wrote a line that is not a helper reply ({len} bytes)")
            }
            Self::Mixed => f.write_str(
                "mixed up its replies (a reply line held the channel-ID of another request \
                 in flight, as helper-mux writes when a helper answers in pieces)",
            ),
            Self::Io(e) => write!(f, "pipe error: {e}"),
        }
    }
}

/// The pause before the `failures`-th consecutive start (1 is the first restart: at once).
fn backoff(failures: u32) -> Duration {
    if failures < 2 {
        return Duration::ZERO;
    }
    let doublings = (failures - 2).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// One child slot: starts the process, serves it until it fails, starts it again.
async fn supervise(index: usize, shared: Arc<Shared>, queue: Arc<Mutex<mpsc::Receiver<Job>>>) {
    let mut failures: u32 = 0;
    loop {
        let pause = backoff(failures);
        if !pause.is_zero() {
            shared.set_state(index, BACKING_OFF);
            if shared.all_down() {
                drain(&shared, &queue);
            }
            tokio::time::sleep(pause).await;
            if queue.lock().await.is_closed() {
                return;
            }
        }
        shared.set_state(index, STARTING);
        let end = match spawn(&shared.config) {
            Ok(child) => {
                shared.stats.spawned.fetch_add(1, Relaxed);
                shared.set_state(index, RUNNING);
                serve(child, &shared, &queue).await
            }
            Err(error) => {
                shared.stats.spawn_failed.fetch_add(1, Relaxed);
                End::Failed {
                    reason: Failure::Spawn(error),
                    answered: false,
                }
            }
        };
        let (reason, answered) = match end {
            End::Closed => return,
            End::Failed { reason, answered } => (reason, answered),
        };
        failures = if answered {
            1
        } else {
            failures.saturating_add(1)
        };
        if let Some(left_out) = shared.restart_log.admit() {
            let next = backoff(failures);
            tracing::error!(
                helper = %shared.config.name,
                child = index,
                "Squid helper {} (child {index}) {reason}; its requests in flight were answered \
                 503; restarting it{}{}",
                shared.config.name,
                if next.is_zero() {
                    String::new()
                } else {
                    format!(" in {} ms (it keeps failing)", next.as_millis())
                },
                if left_out > 0 {
                    format!(" ({left_out} similar lines left out)")
                } else {
                    String::new()
                }
            );
        }
    }
}

/// Answers every queued request with an unavailable error (every child is pausing).
fn drain(shared: &Shared, queue: &Mutex<mpsc::Receiver<Job>>) {
    let Ok(mut receiver) = queue.try_lock() else {
        return;
    };
    while let Ok(job) = receiver.try_recv() {
        let _ = job
            .reply
            .send(Err(shared.unavailable("every child is failing")));
    }
}

/// Starts one child, in a process group of its own: a hangup or interrupt sent to this
/// process's group (a closed terminal, `kill -HUP -PGID`) does not reach it. helper-mux, for
/// one, answers SIGHUP by printing its state, the request in flight included, to stderr, which
/// goes to the log. A child still ends with this process: its stdin closes, and it is killed.
fn spawn(config: &PoolConfig) -> std::io::Result<Child> {
    let mut command = Command::new(&config.program);
    #[cfg(unix)]
    command.process_group(0);
    command
        .args(&config.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
}

/// A request written to a child, waiting for its reply.
struct InFlight {
    reply: oneshot::Sender<Result<Reply, ValidatorError>>,
    deadline: Instant,
    /// The channel-ID it was written with; `None` without channel-IDs.
    channel: Option<u32>,
    /// The bytes written for it ([`protocol::written_bytes`]).
    bytes: usize,
}

/// Serves one process until it fails or the pool goes away.
async fn serve(mut child: Child, shared: &Arc<Shared>, queue: &Mutex<mpsc::Receiver<Job>>) -> End {
    let config = &shared.config;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return End::Failed {
            reason: Failure::Io(std::io::Error::other("no pipes")),
            answered: false,
        };
    };
    if let Some(stderr) = child.stderr.take() {
        tokio::spawn(log_stderr(stderr, shared.clone()));
    }
    let mut replies = LineReader::new(stdout, MAX_REPLY_BYTES);
    let slots = config.concurrency.max(1);
    let mut inflight: Vec<Option<InFlight>> = (0..slots).map(|_| None).collect();
    let mut channels = protocol::ChannelIds::new();
    let mut answered = false;
    let mut closing = false;
    let failure = loop {
        let busy = inflight.iter().filter(|s| s.is_some()).count();
        if closing && busy == 0 {
            return End::Closed;
        }
        // Room for one more request of the longest kind within one read of helper-mux
        // (see [`protocol::MUX_READ_BYTES`]).
        let room = config.concurrency == 0
            || inflight.iter().flatten().map(|f| f.bytes).sum::<usize>()
                <= protocol::MUX_READ_BYTES - protocol::MAX_REQUEST_BYTES;
        let deadline = inflight.iter().flatten().map(|f| f.deadline).min();
        tokio::select! {
            biased;
            line = replies.next_line() => match line {
                Ok(Line::Full(line)) => match settle(&mut inflight, &line, shared) {
                    Ok(()) => answered = true,
                    Err(failure) => break failure,
                },
                Ok(Line::Overlong(_)) => break Failure::Garbage(MAX_REPLY_BYTES),
                Ok(Line::End) => break Failure::Exited(child.try_wait().ok().flatten()),
                Err(error) => break Failure::Io(error),
            },
            () = sleep_until(deadline), if deadline.is_some() => {
                break Failure::Timeout(config.timeout)
            }
            job = next_job(queue), if busy < slots && room && !closing => {
                let Some(job) = job else {
                    closing = true;
                    continue;
                };
                if job.reply.is_closed() {
                    continue; // its caller went away while it waited
                }
                let Some(slot) = inflight.iter().position(Option::is_none) else {
                    let _ = job.reply.send(Err(shared.unavailable("no free slot")));
                    continue;
                };
                let channel = (config.concurrency > 0)
                    .then(|| channels.next(|id| find(&inflight, id).is_some()));
                let deadline = Instant::now() + config.timeout;
                let bytes = protocol::written_bytes(&job.line);
                inflight[slot] = Some(InFlight {
                    reply: job.reply,
                    deadline,
                    channel,
                    bytes,
                });
                let wrote = tokio::time::timeout(
                    config.timeout,
                    write_request(&mut stdin, channel, &job.line),
                )
                .await;
                match wrote {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => break Failure::Io(error),
                    Err(_) => break Failure::Timeout(config.timeout),
                }
            }
        }
    };
    match &failure {
        Failure::Timeout(_) => &shared.stats.timed_out,
        Failure::Garbage(_) | Failure::Mixed => &shared.stats.garbage,
        _ => &shared.stats.exited,
    }
    .fetch_add(1, Relaxed);
    let _ = child.start_kill();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    let error = shared.unavailable(&format!("child {failure}; request not answered"));
    for slot in inflight.iter_mut() {
        if let Some(job) = slot.take() {
            let _ = job.reply.send(Err(error.clone()));
        }
    }
    End::Failed {
        reason: failure,
        answered,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The next request from the queue; `None` when every pool handle went away.
async fn next_job(queue: &Mutex<mpsc::Receiver<Job>>) -> Option<Job> {
    queue.lock().await.recv().await
}

async fn write_request(
    stdin: &mut ChildStdin,
    channel: Option<u32>,
    line: &[u8],
) -> std::io::Result<()> {
    let mut out = Zeroizing::new(Vec::with_capacity(line.len() + 12));
    if let Some(channel) = channel {
        out.extend_from_slice(channel.to_string().as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(line);
    out.push(b'\n');
    stdin.write_all(&out).await?;
    stdin.flush().await
}

/// The slot of the request in flight with channel-ID `channel`.
fn find(inflight: &[Option<InFlight>], channel: u32) -> Option<usize> {
    inflight
        .iter()
        .position(|f| f.as_ref().is_some_and(|f| f.channel == Some(channel)))
}

/// Hands a reply line to the request it answers.
///
/// With channel-IDs, a line that holds the channel-ID of another request in flight is
/// garbage: pieces of replies were tagged with the wrong requests (see
/// [`protocol::ChannelIds`]), and which answer belongs to which request can no longer be
/// known.
fn settle(inflight: &mut [Option<InFlight>], line: &[u8], shared: &Shared) -> Result<(), Failure> {
    let config = &shared.config;
    let (slot, rest) = if config.concurrency > 0 {
        let (channel, rest) = protocol::split_channel(line).ok_or(Failure::Garbage(line.len()))?;
        // A reply to nothing: the helper and this side no longer agree on what it answers.
        let slot = find(inflight, channel).ok_or(Failure::Garbage(line.len()))?;
        if protocol::ids_inside(rest).any(|id| id != channel && find(inflight, id).is_some()) {
            return Err(Failure::Mixed);
        }
        (slot, rest)
    } else {
        (0, line)
    };
    let Some(job) = inflight.get_mut(slot).and_then(Option::take) else {
        return Err(Failure::Garbage(line.len()));
    };
    let Some(reply) = protocol::parse_reply(rest, config.legacy_ha1) else {
        inflight[slot] = Some(job); // answered unavailable with the others
        return Err(Failure::Garbage(line.len()));
    };
    shared.stats.answered.fetch_add(1, Relaxed);
    let _ = job.reply.send(Ok(reply));
    Ok(())
}

/// Logs a child's stderr line by line, escaped, capped and rate-limited.
async fn log_stderr(stderr: tokio::process::ChildStderr, shared: Arc<Shared>) {
    let mut lines = LineReader::new(stderr, STDERR_LINE_BYTES);
    loop {
        let line = match lines.next_line().await {
            Ok(Line::Full(line)) | Ok(Line::Overlong(line)) => line,
            Ok(Line::End) | Err(_) => return,
        };
        if let Some(left_out) = shared.stderr.admit() {
            let line = line.strip_suffix(b"\r").unwrap_or(&line);
            if left_out > 0 {
                tracing::warn!(
                    helper = %shared.config.name,
                    "Squid helper {} stderr: {} ({left_out} earlier lines left out)",
                    shared.config.name,
                    Escaped::capped(line, STDERR_LINE_BYTES)
                );
            } else {
                tracing::warn!(
                    helper = %shared.config.name,
                    "Squid helper {} stderr: {}",
                    shared.config.name,
                    Escaped::capped(line, STDERR_LINE_BYTES)
                );
            }
        }
    }
}

/// A line from a [`LineReader`].
enum Line {
    /// A whole line, without its line feed.
    Full(Zeroizing<Vec<u8>>),
    /// The first `max` bytes of a longer line (the rest is skipped).
    Overlong(Zeroizing<Vec<u8>>),
    /// The stream ended.
    End,
}

/// Reads lines of at most `max` bytes. `next_line` is cancel-safe: what was read stays in the
/// buffer for the next call.
struct LineReader<R> {
    inner: R,
    buf: Zeroizing<Vec<u8>>,
    max: usize,
    /// Skipping the rest of an overlong line.
    skipping: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(inner: R, max: usize) -> Self {
        Self {
            inner,
            buf: Zeroizing::new(Vec::with_capacity(1024)),
            max,
            skipping: false,
        }
    }

    async fn next_line(&mut self) -> std::io::Result<Line> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                if std::mem::take(&mut self.skipping) {
                    drop(self.take(0, pos + 1));
                    continue;
                }
                if pos > self.max {
                    return Ok(Line::Overlong(self.take(self.max, pos + 1)));
                }
                return Ok(Line::Full(self.take(pos, pos + 1)));
            }
            if self.skipping {
                let all = self.buf.len();
                drop(self.take(0, all));
            } else if self.buf.len() > self.max {
                let all = self.buf.len();
                self.skipping = true;
                return Ok(Line::Overlong(self.take(self.max, all)));
            }
            let mut chunk = Zeroizing::new([0u8; 4096]);
            let n = self.inner.read(&mut chunk[..]).await?;
            if n == 0 {
                return Ok(Line::End);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The first `len` bytes, removing `consumed` bytes from the buffer (zeroing what moved).
    fn take(&mut self, len: usize, consumed: usize) -> Zeroizing<Vec<u8>> {
        let line = Zeroizing::new(self.buf[..len].to_vec());
        let total = self.buf.len();
        self.buf.copy_within(consumed.., 0);
        let left = total - consumed;
        self.buf[left..].iter_mut().for_each(|b| *b = 0);
        self.buf.truncate(left);
        line
    }
}

/// Admits at most `per_second` lines a second and counts the rest.
struct LineBudget {
    per_second: u32,
    state: StdMutex<(Instant, u32, u64)>,
}

impl LineBudget {
    fn new(per_second: u32) -> Self {
        Self {
            per_second,
            state: StdMutex::new((Instant::now(), 0, 0)),
        }
    }

    /// `Some(n)` when a line may be written (`n` were left out since the last one written).
    fn admit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (start, used, left_out) = &mut *state;
        if start.elapsed() >= Duration::from_secs(1) {
            *start = Instant::now();
            *used = 0;
        }
        if *used < self.per_second {
            *used += 1;
            Some(std::mem::take(left_out))
        } else {
            *left_out += 1;
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(200));
        assert_eq!(backoff(12), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn lines_are_bounded_and_survive_cancellation() {
        let data: &[u8] = b"OK\nERR x\r\n0123456789ABCDEF\nBH\nlast";
        let mut reader = LineReader::new(data, 8);
        let full = |l: Line| match l {
            Line::Full(v) => v.to_vec(),
            _ => panic!("not a full line"),
        };
        assert_eq!(full(reader.next_line().await.unwrap()), b"OK");
        assert_eq!(full(reader.next_line().await.unwrap()), b"ERR x\r");
        match reader.next_line().await.unwrap() {
            Line::Overlong(v) => assert_eq!(&v[..], b"01234567"),
            _ => panic!("overlong"),
        }
        // The rest of the overlong line is skipped; an unterminated last line is not a line.
        assert_eq!(full(reader.next_line().await.unwrap()), b"BH");
        assert!(matches!(reader.next_line().await.unwrap(), Line::End));
    }

    #[test]
    fn the_line_budget_admits_a_burst_then_counts() {
        let budget = LineBudget::new(2);
        assert_eq!(budget.admit(), Some(0));
        assert_eq!(budget.admit(), Some(0));
        assert_eq!(budget.admit(), None);
        assert_eq!(budget.admit(), None);
        budget.state.lock().unwrap().0 = Instant::now() - Duration::from_secs(2);
        assert_eq!(budget.admit(), Some(2));
    }
}
