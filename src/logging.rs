//! Log lines that are safe to write: client-controlled values escaped and capped
//! ([`Escaped`]), and events that repeat on every request rate-limited ([`LogLimit`]).
//!
//! A user name, a request-target or a header value comes from the client. Written raw, a
//! line break in it (CR, LF, but also U+0085 NEXT LINE and U+2028/U+2029, which some tools
//! split on) forges a log line, a terminal escape rewrites the screen, and a 48 KB value fills
//! the log. [`Escaped`] writes such a value so that none of that can happen.
//!
//! A validator outage (its store is down, its queue is full) fails every request until it ends;
//! one `error` line per request would flood the logs exactly when an operator reads them. The
//! first occurrence is logged at once, later ones at most once a second with the number left
//! out in between.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How many bytes of a client-controlled value [`Escaped`] writes by default: 256.
pub const DEFAULT_LOG_VALUE_BYTES: usize = 256;

/// A client-controlled value, displayed escaped and length-capped for a log line.
///
/// - Printable ASCII is written as is, but `\` and `"` are escaped (`\\`, `\"`), so the
///   value can sit inside quotes.
/// - Control characters (C0, DEL, C1 such as U+0085), line and paragraph separators
///   (U+2028, U+2029), bidirectional controls (U+202A–U+202E, U+2066–U+2069) and bytes that
///   are not UTF-8 are written as `\xNN` or `\u{NNNN}`.
/// - Other Unicode text (`Prüfung`) is kept.
/// - At most [`DEFAULT_LOG_VALUE_BYTES`] bytes of the value are written (or the number given
///   to [`Escaped::capped`]), then `…(+N bytes)`.
///
/// ```
/// use tower_proxy_auth::Escaped;
///
/// assert_eq!(Escaped::new("alice").to_string(), "alice");
/// assert_eq!(Escaped::new("a\r\nb").to_string(), "a\\x0d\\x0ab");
/// assert_eq!(Escaped::new("x\u{2028}y").to_string(), "x\\u{2028}y");
/// assert_eq!(Escaped::capped("abcdef", 3).to_string(), "abc…(+3 bytes)");
/// ```
#[derive(Clone, Copy)]
pub struct Escaped<'a> {
    bytes: &'a [u8],
    cap: usize,
}

impl<'a> Escaped<'a> {
    /// `value`, capped at [`DEFAULT_LOG_VALUE_BYTES`].
    pub fn new(value: &'a (impl AsRef<[u8]> + ?Sized)) -> Self {
        Self::capped(value, DEFAULT_LOG_VALUE_BYTES)
    }

    /// `value`, capped at `cap` bytes of input.
    pub fn capped(value: &'a (impl AsRef<[u8]> + ?Sized), cap: usize) -> Self {
        Self {
            bytes: value.as_ref(),
            cap,
        }
    }
}

/// Whether `c` must be escaped: control, line/paragraph separator, bidi control.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.bytes[..self.bytes.len().min(self.cap)];
        for chunk in shown.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    c if needs_escape(c) && (c as u32) < 0x100 => write!(f, "\\x{:02x}", c as u32)?,
                    c if needs_escape(c) => write!(f, "\\u{{{:04x}}}", c as u32)?,
                    c => fmt::Write::write_char(f, c)?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        if self.bytes.len() > shown.len() {
            write!(f, "…(+{} bytes)", self.bytes.len() - shown.len())?;
        }
        Ok(())
    }
}

impl fmt::Debug for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Admits one line per [`INTERVAL`] and counts the rest.
#[derive(Debug)]
pub(crate) struct LogLimit {
    start: Instant,
    /// Milliseconds since `start` before which no line is admitted.
    next_ms: AtomicU64,
    suppressed: AtomicU64,
}

/// The minimum time between two admitted lines.
const INTERVAL: Duration = Duration::from_secs(1);

impl LogLimit {
    pub(crate) fn new() -> Self {
        Self {
            start: Instant::now(),
            next_ms: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` when a line may be written now, `n` being the occurrences left out since the
    /// previous line; `None` (and one more left out) otherwise.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Ordering::Relaxed);
        let interval = u64::try_from(INTERVAL.as_millis()).unwrap_or(u64::MAX);
        if now >= next
            && self
                .next_ms
                .compare_exchange(
                    next,
                    now.saturating_add(interval),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_forge_or_flood_a_line() {
        let e = |s: &[u8]| Escaped::new(s).to_string();
        assert_eq!(e(b"GET http://a/ \"x\" \\"), "GET http://a/ \\\"x\\\" \\\\");
        assert_eq!(
            e("a\u{85}b\u{2029}c\u{202e}d".as_bytes()),
            "a\\x85b\\u{2029}c\\u{202e}d"
        );
        assert_eq!(e(b"\x1b[2J\x7f"), "\\x1b[2J\\x7f");
        assert_eq!(e(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(e("Prüfung".as_bytes()), "Prüfung");
        let long = "x".repeat(48 * 1024);
        let shown = e(long.as_bytes());
        assert!(shown.len() < 300, "{}", shown.len());
        assert!(shown.ends_with("…(+48896 bytes)"), "{shown}");
        // A cap inside a multi-byte character shows its first bytes as escapes.
        assert_eq!(Escaped::capped("é", 1).to_string(), "\\xc3…(+1 bytes)");
    }

    #[test]
    fn first_is_admitted_then_one_per_interval() {
        let limit = LogLimit::new();
        assert_eq!(limit.admit(), Some(0));
        assert_eq!(limit.admit(), None);
        assert_eq!(limit.admit(), None);
        limit.next_ms.store(0, Ordering::Relaxed); // as if the interval had passed
        assert_eq!(limit.admit(), Some(2));
    }
}
