//! The access log: one line per request, written off the request path.
//!
//! The request path only fills in an [`Entry`] (copies of the method, target, user and a few
//! numbers) and hands it to a bounded channel with `try_send`, which never waits. A writer task
//! formats the lines into a buffer and writes the buffer when it holds 32 KiB or 100 ms after
//! its first line, whichever comes first; the write itself runs on Tokio's blocking pool (the
//! file or standard output may be slow), never on a worker. When the channel is full (the
//! writer cannot keep up, standard output is not read) the line is dropped and counted, and the
//! count is reported as a warning, at most once per write. So a log that stalls costs lines,
//! never requests. (The line per request the proxy used to write through `tracing` cost 19 % of
//! its throughput: a `write` call and a span per request.)
//!
//! Every client-controlled value (user name, method, target) and the origin's media type are
//! written through [`Escaped`]: line breaks (CR, LF, U+0085, U+2028, U+2029), other controls,
//! bidirectional controls and bytes that are not UTF-8 become `\xNN`/`\u{NNNN}`, `"` and `\`
//! are escaped, and each value is capped (the target at 1,024 bytes, the others at 256), then
//! marked `…(+N bytes)`. Fields outside quotes also have spaces written as `%20`, so that a
//! line always splits into the same fields. User-info in a target (`http://u:p@host/`, refused
//! with 400) is never written.
//!
//! The formats (`--access-log-format`):
//!
//! - `common`: Apache's common log format plus the time taken, in Apache `LogFormat` terms
//!   `%h %l %u %t "%r" %>s %b %D`
//!   (<https://httpd.apache.org/docs/2.4/mod/mod_log_config.html#formats>):
//!   `127.0.0.1 - alice [01/Dec/2026:21:06:00 +0000] "GET http://example.com/ HTTP/1.1" 200 1256 4211`:
//!   client address, `-`, user or `-`, the time the request arrived (UTC), the request line,
//!   status, response body bytes (`-` for none), microseconds until the response was sent.
//! - `squid`: Squid's native access.log format
//!   (<https://wiki.squid-cache.org/Features/LogFormat>, `logformat squid` in
//!   <http://www.squid-cache.org/Doc/config/logformat/>):
//!   `time.ms elapsed client code/status bytes method URL user hierarchy/peer type`, e.g.
//!   `1796159160.123    4 127.0.0.1 TCP_MISS/200 1256 GET http://example.com/ alice HIER_DIRECT/93.184.215.14 text/html`:
//!   completion time (seconds since the epoch, milliseconds), elapsed milliseconds, client
//!   address, `TCP_MISS` (forwarded), `TCP_TUNNEL` (CONNECT), `TCP_DENIED` (401/403/407/429
//!   of the proxy's own) or `NONE_NONE` (other answers of its own, such as 400), status, bytes,
//!   method, URL (`host:port` for CONNECT), user or `-`, `HIER_DIRECT/<address connected to>`
//!   or `HIER_NONE/-`, the response's media type or `-`. Squid counts the response header in
//!   its bytes; this log counts the body only.
//!
//! A CONNECT line is written when the tunnel ends, with its duration and the bytes sent to the
//! client through it; a tunnel still open when the proxy exits is not logged.

use std::fmt::{self, Write as _};
use std::future::Future;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{mpsc, watch};
use tower::{Layer, Service};
use tower_proxy_auth::{ClientAddr, Escaped, Identity};
use tower_proxy_auth_proxy::{TunnelReport, Upstream};
use tracing::warn;

use crate::cli::LogFormat;

/// Lines waiting for the writer at most; beyond, lines are dropped and counted.
const CHANNEL_LINES: usize = 4096;
/// The buffer is written once it holds this much.
const WRITE_BYTES: usize = 32 * 1024;
/// ... or this long after its first unwritten line.
const WRITE_AFTER: Duration = Duration::from_millis(100);
/// Caps of the logged values, in bytes of input.
const TARGET_CAP: usize = 1024;
const METHOD_CAP: usize = 32;
const TYPE_CAP: usize = 64;

/// One request, as the writer formats it.
struct Entry {
    received: SystemTime,
    elapsed: Duration,
    client: Option<IpAddr>,
    user: Option<Identity>,
    method: Method,
    uri: Uri,
    version: Version,
    status: u16,
    bytes: u64,
    upstream: Option<IpAddr>,
    content_type: Option<HeaderValue>,
}

/// The request path's handle on the log: clone one per connection.
#[derive(Clone)]
pub struct AccessLog {
    lines: mpsc::Sender<Entry>,
    dropped: Arc<AtomicU64>,
    /// Whether lines need the response's media type (Squid's format has it).
    media_type: bool,
}

/// The writer task's end: run it with [`Writer::run`].
pub struct Writer {
    lines: mpsc::Receiver<Entry>,
    sink: Sink,
    format: LogFormat,
    dropped: Arc<AtomicU64>,
}

enum Sink {
    Stdout(tokio::io::Stdout),
    File(tokio::fs::File),
}

/// Opens the log `--access-log` names: `None` for `none`; an error naming the file when it
/// cannot be opened for appending.
pub fn open(destination: &str, format: LogFormat) -> Result<Option<(AccessLog, Writer)>, String> {
    let sink = match destination {
        "none" => return Ok(None),
        "-" => Sink::Stdout(tokio::io::stdout()),
        path => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(Path::new(path))
                .map_err(|e| format!("--access-log {path}: cannot open for appending: {e}"))?;
            Sink::File(tokio::fs::File::from_std(file))
        }
    };
    let (tx, rx) = mpsc::channel(CHANNEL_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    Ok(Some((
        AccessLog {
            lines: tx,
            dropped: dropped.clone(),
            media_type: format == LogFormat::Squid,
        },
        Writer {
            lines: rx,
            sink,
            format,
            dropped,
        },
    )))
}

impl Writer {
    /// Writes lines until every [`AccessLog`] is dropped or `stop` turns true; then writes what
    /// is left and returns.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut buffer = Vec::with_capacity(WRITE_BYTES * 2);
        let mut batch = Vec::with_capacity(256);
        let mut clock = ClfClock::default();
        let timer = tokio::time::sleep(WRITE_AFTER);
        tokio::pin!(timer);
        let mut armed = false;
        loop {
            tokio::select! {
                n = self.lines.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    for entry in batch.drain(..) {
                        self.format_line(&entry, &mut clock, &mut buffer);
                    }
                    if buffer.len() >= WRITE_BYTES {
                        self.write(&mut buffer).await;
                        armed = false;
                    } else if !armed {
                        timer.as_mut().reset(tokio::time::Instant::now() + WRITE_AFTER);
                        armed = true;
                    }
                }
                () = &mut timer, if armed => {
                    self.write(&mut buffer).await;
                    armed = false;
                }
                _ = stop.changed() => break,
            }
        }
        while let Ok(entry) = self.lines.try_recv() {
            self.format_line(&entry, &mut clock, &mut buffer);
        }
        self.write(&mut buffer).await;
    }

    async fn write(&mut self, buffer: &mut Vec<u8>) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            warn!(
                dropped,
                "access log: lines dropped, the log could not keep up"
            );
        }
        if buffer.is_empty() {
            return;
        }
        let written = match &mut self.sink {
            Sink::Stdout(out) => write_all(out, buffer).await,
            Sink::File(file) => write_all(file, buffer).await,
        };
        if let Err(e) = written {
            warn!(error = %e, "access log: write failed; lines lost");
        }
        buffer.clear();
    }

    fn format_line(&self, entry: &Entry, clock: &mut ClfClock, out: &mut Vec<u8>) {
        let mut line = LineWriter(out);
        // Writing into a Vec cannot fail.
        let _ = match self.format {
            LogFormat::Common => common(entry, clock, &mut line),
            LogFormat::Squid => squid(entry, &mut line),
        };
    }
}

async fn write_all(
    sink: &mut (impl tokio::io::AsyncWrite + Unpin),
    bytes: &[u8],
) -> std::io::Result<()> {
    sink.write_all(bytes).await?;
    sink.flush().await
}

/// `fmt::Write` into the line buffer.
struct LineWriter<'a>(&'a mut Vec<u8>);

impl fmt::Write for LineWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// A value displayed with its spaces as `%20`, for fields outside quotes.
struct NoSpaces<T>(T);

impl<T: fmt::Display> fmt::Display for NoSpaces<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Adapter<'a, 'b>(&'a mut fmt::Formatter<'b>);
        impl fmt::Write for Adapter<'_, '_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                let mut parts = s.split(' ');
                if let Some(first) = parts.next() {
                    self.0.write_str(first)?;
                }
                for part in parts {
                    self.0.write_str("%20")?;
                    self.0.write_str(part)?;
                }
                Ok(())
            }
        }
        write!(Adapter(f), "{}", self.0)
    }
}

/// The target as logged: `host:port` for CONNECT, `scheme://host[:port]/path?query` for
/// absolute-form, the path for origin-form; never user-info; escaped and capped.
struct Target<'a>(&'a Method, &'a Uri);

impl fmt::Display for Target<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (method, uri) = (self.0, self.1);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let host_port = |f: &mut fmt::Formatter<'_>, a: &http::uri::Authority| {
            write!(f, "{}", Escaped::new(a.host()))?;
            match a.port_u16() {
                Some(port) => write!(f, ":{port}"),
                None => Ok(()),
            }
        };
        match (uri.scheme(), uri.authority()) {
            (_, Some(authority)) if method == Method::CONNECT => host_port(f, authority),
            (Some(scheme), Some(authority)) => {
                write!(f, "{}://", Escaped::capped(scheme.as_str(), METHOD_CAP))?;
                host_port(f, authority)?;
                write!(f, "{}", Escaped::capped(path, TARGET_CAP))
            }
            _ => write!(f, "{}", Escaped::capped(path, TARGET_CAP)),
        }
    }
}

fn user(entry: &Entry) -> Option<&str> {
    entry
        .user
        .as_ref()
        .map(Identity::user)
        .filter(|u| !u.is_empty())
}

fn client(entry: &Entry) -> impl fmt::Display + '_ {
    struct Client(Option<IpAddr>);
    impl fmt::Display for Client {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            match self.0 {
                Some(ip) => write!(f, "{ip}"),
                None => f.write_str("-"),
            }
        }
    }
    Client(entry.client)
}

/// `%h %l %u %t "%r" %>s %b %D`.
fn common(entry: &Entry, clock: &mut ClfClock, out: &mut impl fmt::Write) -> fmt::Result {
    write!(out, "{} - ", client(entry))?;
    match user(entry) {
        Some(user) => write!(out, "{}", NoSpaces(Escaped::new(user)))?,
        None => out.write_str("-")?,
    }
    write!(
        out,
        " [{}] \"{} {} {:?}\" {} ",
        clock.format(entry.received),
        Escaped::capped(entry.method.as_str(), METHOD_CAP),
        Target(&entry.method, &entry.uri),
        entry.version,
        entry.status,
    )?;
    match entry.bytes {
        0 => out.write_str("-")?,
        n => write!(out, "{n}")?,
    }
    writeln!(out, " {}", entry.elapsed.as_micros())
}

/// `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`.
fn squid(entry: &Entry, out: &mut impl fmt::Write) -> fmt::Result {
    let done = (entry.received + entry.elapsed)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let code = match (entry.upstream, entry.status) {
        (Some(_), _) if entry.method == Method::CONNECT => "TCP_TUNNEL",
        (Some(_), _) => "TCP_MISS",
        (None, 401 | 403 | 407 | 429) => "TCP_DENIED",
        (None, 500..) => "TCP_MISS",
        (None, _) => "NONE_NONE",
    };
    write!(
        out,
        "{}.{:03} {:>6} {} {code}/{:03} {} {} {} ",
        done.as_secs(),
        done.subsec_millis(),
        entry.elapsed.as_millis(),
        client(entry),
        entry.status,
        entry.bytes,
        NoSpaces(Escaped::capped(entry.method.as_str(), METHOD_CAP)),
        NoSpaces(Target(&entry.method, &entry.uri)),
    )?;
    match user(entry) {
        Some(user) => write!(out, "{}", NoSpaces(Escaped::new(user)))?,
        None => out.write_str("-")?,
    }
    match entry.upstream {
        Some(ip) => write!(out, " HIER_DIRECT/{ip} ")?,
        None => out.write_str(" HIER_NONE/- ")?,
    }
    let media_type = entry
        .content_type
        .as_ref()
        .map(|v| v.as_bytes())
        .map(|v| v.split(|&b| b == b';').next().unwrap_or(v).trim_ascii())
        .filter(|v| !v.is_empty());
    match media_type {
        Some(media_type) => writeln!(out, "{}", NoSpaces(Escaped::capped(media_type, TYPE_CAP))),
        None => writeln!(out, "-"),
    }
}

/// Formats `[dd/Mon/yyyy:HH:MM:SS +0000]` contents, once per second.
#[derive(Default)]
struct ClfClock {
    second: Option<u64>,
    text: String,
}

impl ClfClock {
    fn format(&mut self, at: SystemTime) -> &str {
        let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if self.second != Some(secs) {
            self.second = Some(secs);
            self.text.clear();
            let (year, month, day) = civil_from_days(secs / 86_400);
            let rest = secs % 86_400;
            const MONTHS: [&str; 12] = [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
            ];
            let _ = write!(
                self.text,
                "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
                MONTHS[usize::from(month - 1)],
                rest / 3600,
                rest % 3600 / 60,
                rest % 60
            );
        }
        &self.text
    }
}

/// The proleptic Gregorian (year, month 1..=12, day 1..=31) of a day count since 1970-01-01
/// (Howard Hinnant's `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

// ---------------------------------------------------------------------------------------------
// The tower layer.

/// Logs every request passing through, with the response's status, the user the
/// authentication layer found (the `Identity` the proxy copies to the response) and the bytes
/// of the response body once it has been sent. `None` logs nothing.
#[derive(Clone)]
pub struct AccessLogLayer(pub Option<AccessLog>);

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLogService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLogService {
            inner,
            log: self.0.clone(),
        }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Clone)]
pub struct AccessLogService<S> {
    inner: S,
    log: Option<AccessLog>,
}

/// What is known of a request before its response.
struct Pending {
    log: AccessLog,
    started: Instant,
    entry: Entry,
}

impl Pending {
    fn send(mut self) {
        self.entry.elapsed = self.started.elapsed();
        if self.log.lines.try_send(self.entry).is_err() {
            self.log.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl<S, B, ResB> Service<Request<B>> for AccessLogService<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
{
    type Response = Response<LoggedBody<ResB>>;
    type Error = S::Error;
    type Future = LogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let pending = self.log.as_ref().map(|log| Pending {
            log: log.clone(),
            started: Instant::now(),
            entry: Entry {
                received: SystemTime::now(),
                elapsed: Duration::ZERO,
                client: request.extensions().get::<ClientAddr>().map(|c| c.0.ip()),
                user: None,
                method: request.method().clone(),
                uri: request.uri().clone(),
                version: request.version(),
                status: 0,
                bytes: 0,
                upstream: None,
                content_type: None,
            },
        });
        LogFuture {
            inner: self.inner.call(request),
            pending,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`AccessLogService`].
    pub struct LogFuture<F> {
        #[pin]
        inner: F,
        pending: Option<Pending>,
    }
}

impl<F, ResB, E> Future for LogFuture<F>
where
    F: Future<Output = Result<Response<ResB>, E>>,
{
    type Output = Result<Response<LoggedBody<ResB>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = ready!(this.inner.poll(cx))?;
        let Some(mut pending) = this.pending.take() else {
            return Poll::Ready(Ok(response.map(|body| LoggedBody { body, line: None })));
        };
        let entry = &mut pending.entry;
        entry.status = response.status().as_u16();
        entry.user = response.extensions().get::<Identity>().cloned();
        entry.upstream = response.extensions().get::<Upstream>().map(|u| u.0.ip());
        if pending.log.media_type {
            entry.content_type = response.headers().get(header::CONTENT_TYPE).cloned();
        }
        if let Some(report) = response.extensions().get::<TunnelReport>().cloned() {
            // A tunnel: logged when it ends, with the bytes it sent to the client.
            tokio::spawn(async move {
                if let Some(relayed) = report.ended().await {
                    pending.entry.bytes = relayed.down;
                }
                pending.send();
            });
            return Poll::Ready(Ok(response.map(|body| LoggedBody { body, line: None })));
        }
        Poll::Ready(Ok(response.map(|body| LoggedBody {
            body,
            line: Some(pending),
        })))
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its bytes and sends the log line when it is dropped (sent
    /// in full, or abandoned by a client that went away).
    pub struct LoggedBody<B> {
        #[pin]
        body: B,
        line: Option<Pending>,
    }

    impl<B> PinnedDrop for LoggedBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(line) = this.project().line.take() {
                line.send();
            }
        }
    }
}

impl<B: Body> Body for LoggedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        if let (Poll::Ready(Some(Ok(frame))), Some(line)) = (&polled, this.line.as_mut()) {
            if let Some(data) = frame.data_ref() {
                line.entry.bytes += bytes::Buf::remaining(data) as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(method: Method, uri: &str, user: Option<&str>) -> Entry {
        Entry {
            received: UNIX_EPOCH + Duration::from_secs(1_796_159_160),
            elapsed: Duration::from_micros(4_211),
            client: Some("127.0.0.1".parse().unwrap()),
            user: user.map(Identity::new),
            method,
            uri: uri.parse().unwrap(),
            version: Version::HTTP_11,
            status: 200,
            bytes: 1256,
            upstream: Some("192.0.2.14".parse().unwrap()),
            content_type: Some(HeaderValue::from_static("text/html; charset=utf-8")),
        }
    }

    fn common_line(e: &Entry) -> String {
        let mut out = String::new();
        common(e, &mut ClfClock::default(), &mut out).unwrap();
        out
    }

    fn squid_line(e: &Entry) -> String {
        let mut out = String::new();
        squid(e, &mut out).unwrap();
        out
    }

    #[test]
    fn common_and_squid_lines() {
        let e = entry(Method::GET, "http://example.com/a?b=c", Some("alice"));
        assert_eq!(
            common_line(&e),
            "127.0.0.1 - alice [01/Dec/2026:21:06:00 +0000] \"GET http://example.com/a?b=c HTTP/1.1\" 200 1256 4211\n"
        );
        assert_eq!(
            squid_line(&e),
            "1796159160.004      4 127.0.0.1 TCP_MISS/200 1256 GET http://example.com/a?b=c alice HIER_DIRECT/192.0.2.14 text/html\n"
        );
        let mut denied = entry(Method::CONNECT, "example.com:443", None);
        denied.status = 407;
        denied.bytes = 0;
        denied.upstream = None;
        denied.content_type = None;
        assert_eq!(
            common_line(&denied),
            "127.0.0.1 - - [01/Dec/2026:21:06:00 +0000] \"CONNECT example.com:443 HTTP/1.1\" 407 - 4211\n"
        );
        assert_eq!(
            squid_line(&denied),
            "1796159160.004      4 127.0.0.1 TCP_DENIED/407 0 CONNECT example.com:443 - HIER_NONE/- -\n"
        );
    }

    #[test]
    fn client_values_are_escaped_capped_and_keep_the_fields() {
        let e = entry(
            Method::GET,
            "http://example.com/a\u{85}b\u{2028}c\"d",
            Some("john doe\r\nforged"),
        );
        let line = common_line(&e);
        assert!(
            line.contains(r#""GET http://example.com/a\x85b\u{2028}c\"d HTTP/1.1""#),
            "{line}"
        );
        assert!(line.contains(" john%20doe\\x0d\\x0aforged "), "{line}");
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let line = squid_line(&e);
        assert_eq!(
            line.split(' ').filter(|f| !f.is_empty()).count(),
            10,
            "{line}"
        );

        let long = format!("http://example.com/{}", "x".repeat(5000));
        let line = common_line(&entry(Method::GET, &long, Some(&"u".repeat(48_000))));
        assert!(line.len() < 1600, "{}", line.len());
        assert!(line.contains("…(+3977 bytes)"), "{line}");
        assert!(line.contains("…(+47744%20bytes)"), "{line}");
    }

    #[test]
    fn user_info_is_never_written() {
        let e = entry(Method::GET, "http://zed:hunter5@example.com:8080/", None);
        let line = common_line(&e);
        assert!(!line.contains("hunter5"), "{line}");
        assert!(line.contains("http://example.com:8080/"), "{line}");
    }

    #[test]
    fn dates() {
        for (secs, text) in [
            (0, "01/Jan/1970:00:00:00 +0000"),
            (951_782_400, "29/Feb/2000:00:00:00 +0000"),
            (1_796_159_160, "01/Dec/2026:21:06:00 +0000"),
            (4_102_444_799, "31/Dec/2099:23:59:59 +0000"),
        ] {
            let mut clock = ClfClock::default();
            assert_eq!(clock.format(UNIX_EPOCH + Duration::from_secs(secs)), text);
        }
    }
}
