//! The lines of Squid's helper protocol (Squid 3.4 and later): what a request line holds, and
//! how a reply line reads.
//!
//! - A Basic request is `user password`, each URL-escaped as Squid's `rfc1738_escape` does
//!   (`src/auth/basic/UserRequest.cc`), so a space or a `%` inside either cannot split the line;
//!   helpers undo it with `rfc1738_unescape` (`basic_ncsa_auth.cc`).
//! - A Digest request is `"user":"realm"` (`src/auth/digest/UserRequest.cc`), written raw, as
//!   Squid does: a user name holding `"` or a control character cannot be sent at all.
//! - With `concurrency`, a channel-ID (a decimal number and a space) starts each request and
//!   its reply. Ours have nine digits and are not reused while a child runs (Squid 4 and later
//!   number requests too): a channel-ID of another request inside a reply line shows that
//!   replies were mixed up ([`ChannelIds`]).
//! - A reply is `OK`, `ERR` or `BH`, then `key=value` pairs (a value is a token, URL-escaped,
//!   or a quoted string with `\` escapes), then free text; as Squid's `Helper::Reply` reads it
//!   (`src/helper/Reply.cc`). A Digest helper of before Squid 3.4 answers the bare HA1.

use percent_encoding::{percent_encode, AsciiSet, CONTROLS};
use zeroize::Zeroizing;

/// What Squid's `rfc1738_escape` escapes: control characters and space, `%`, the characters
/// RFC 1738 calls unsafe, and every byte outside US-ASCII (Squid's `lib/rfc1738.c`, on a
/// platform whose `char` is signed, as x86 and ARM Linux builds are).
const SQUID_UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'"')
    .add(b'#')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^')
    .add(b'~')
    .add(b'[')
    .add(b']')
    .add(b'`')
    .add(b'\'');

/// The longest request line written, counted with the channel-ID and the line feed: PIPE_BUF
/// (4,096 bytes on Linux), so that each request reaches a child's stdin whole or not at all
/// (POSIX: a write of at most PIPE_BUF bytes to a pipe, even a non-blocking one, is never
/// split). A line cut in two, by a helper's `fgets(buf, HELPER_INPUT_BUFFER = 8192)` or by a
/// full pipe that `helper-mux` reads the first part from, would be answered as two requests,
/// the second written by the client: a user name could carry a channel-ID and another user's
/// name, whose reply would then answer the next request.
pub(crate) const MAX_REQUEST_BYTES: usize = 4096;

/// A channel-ID of ours, its space, and the line feed: the bytes a request line gets around it.
const FRAMING_BYTES: usize = 9 + 1 + 1;

/// Whether a request line (without channel-ID and line feed) reaches a helper as one line.
pub(crate) fn fits(line: &[u8]) -> bool {
    line.len() + FRAMING_BYTES <= MAX_REQUEST_BYTES
}

/// The bytes a request line takes on a child's stdin, channel-ID and line feed counted.
pub(crate) fn written_bytes(line: &[u8]) -> usize {
    line.len() + FRAMING_BYTES
}

/// How many bytes Squid's `helper-mux` reads from its stdin at once
/// (`sysread(STDIN, $_, 40960)`): it splits each read at line feeds and keeps no leftover, so a
/// read that ends inside a line makes two requests of it, and every reply after that goes to the
/// wrong request. With channel-IDs, a child is written a request only while the requests in
/// flight on it take at most this many bytes less one longest line, so that whatever is
/// waiting in its stdin fits one read and every read ends at a line feed.
pub(crate) const MUX_READ_BYTES: usize = 40960;

/// The longest reply line read; a longer one is garbage (Squid reads at most 32 KB).
pub(crate) const MAX_REPLY_BYTES: usize = 32 * 1024;

fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    for chunk in percent_encode(bytes, SQUID_UNSAFE) {
        out.extend_from_slice(chunk.as_bytes());
    }
}

/// `user password`, URL-escaped, without the line feed. Holds the password: zeroized on drop.
pub(crate) fn basic_request(user: &[u8], password: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut line = Zeroizing::new(Vec::with_capacity(user.len() + password.len() + 8));
    escape_into(user, &mut line);
    line.push(b' ');
    escape_into(password, &mut line);
    line
}

/// Whether `bytes` can stand inside `"…"` in a Digest request: no `"` (helpers split at it)
/// and no control character (a line feed would end the line).
pub(crate) fn quotable(bytes: &[u8]) -> bool {
    !bytes.iter().any(|&b| b == b'"' || b < 0x20 || b == 0x7f)
}

/// `"user":"realm"`, or `None` when either cannot be written ([`quotable`]), the user name
/// holds a `:` or is not UTF-8, or the line would not reach the helper as one line ([`fits`]).
///
/// `digest_file_auth` looks up `user:realm`, then `user` alone, in one table keyed
/// `user:realm` (Squid's `text_backend.cc`): a name `mallory:branch` would get the HA1 of
/// another realm's entry, and `alice:proxy` a second name for alice. No htdigest user name can
/// hold a `:`. A name that is not UTF-8 could not be told from another one in the identity.
pub(crate) fn digest_request(user: &[u8], realm: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if !quotable(user)
        || !quotable(realm)
        || user.contains(&b':')
        || std::str::from_utf8(user).is_err()
    {
        return None;
    }
    let mut line = Zeroizing::new(Vec::with_capacity(user.len() + realm.len() + 5));
    line.push(b'"');
    line.extend_from_slice(user);
    line.extend_from_slice(b"\":\"");
    line.extend_from_slice(realm);
    line.push(b'"');
    fits(&line).then_some(line)
}

/// The channel-ID and the rest of a reply line, or `None` when it does not start with one.
pub(crate) fn split_channel(line: &[u8]) -> Option<(u32, &[u8])> {
    let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 9 || line.get(digits) != Some(&b' ') {
        return None;
    }
    Some((decimal(&line[..digits]), &line[digits + 1..]))
}

/// The value of at most nine ASCII digits.
fn decimal(digits: &[u8]) -> u32 {
    digits.iter().fold(0, |n, &d| n * 10 + u32::from(d - b'0'))
}

/// The channel-IDs one child's requests carry: 100000000, 100000001, … 999999999, then
/// around again, so each has nine digits and none recurs within 900 million requests.
///
/// Why: Squid's `helper-mux` (a Perl script of Squid 5.7 that lets a non-concurrent helper
/// take channel-IDs) prints each *read* of a helper's stdout as a reply, tagged with the
/// channel-ID that helper holds at that moment, and hands the helper its next request as soon
/// as one read came back. A helper that writes a reply in pieces, as every Squid helper built
/// on `SEND_OK`/`SEND_ERR` does (`write("OK ")`, `write("\n")`), can so have its answer to
/// one request tagged with the channel-ID of the next: a wrong password would get another
/// user's `OK`. The first piece tagged wrong always lands inside a reply line before any
/// whole reply goes astray, so a line that holds the channel-ID of another request in flight
/// ([`ids_inside`]) is garbage: the child is restarted and every request on it answered 503.
/// With short IDs (Squid 3's 0, 1, 2…) such a tag could not be told from a digit in a
/// message.
#[derive(Debug)]
pub(crate) struct ChannelIds {
    next: u32,
}

impl ChannelIds {
    const FIRST: u32 = 100_000_000;
    const LAST: u32 = 999_999_999;

    pub(crate) fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The next ID for which `taken` is false.
    pub(crate) fn next(&mut self, taken: impl Fn(u32) -> bool) -> u32 {
        loop {
            let id = self.next;
            self.next = if id == Self::LAST {
                Self::FIRST
            } else {
                id + 1
            };
            if !taken(id) {
                return id;
            }
        }
    }
}

/// Every nine digits followed by a space inside `text`: where a channel-ID of ours would
/// stand if `helper-mux` had tagged a piece of a reply with it (see [`ChannelIds`]).
pub(crate) fn ids_inside(text: &[u8]) -> impl Iterator<Item = u32> + '_ {
    text.iter()
        .enumerate()
        .filter(|&(end, &b)| b == b' ' && end >= 9)
        .map(|(end, _)| &text[end - 9..end])
        .filter(|digits| digits.iter().all(u8::is_ascii_digit))
        .map(decimal)
}

/// A reply's result code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// `OK`: the credentials are good (Basic), the user is known (Digest).
    Ok,
    /// `ERR`: wrong credentials or unknown user.
    Err,
    /// `BH`: the helper could not decide ("broken helper").
    BrokenHelper,
}

/// One parsed reply line. Values may hold secrets (`ha1=`): zeroized on drop, never printed.
pub(crate) struct Reply {
    pub(crate) code: Code,
    /// The `key=value` pairs, in order.
    pub(crate) notes: Vec<(String, Zeroizing<String>)>,
    /// What follows the pairs (a message from helpers older than Squid 3.4).
    pub(crate) other: String,
}

impl Reply {
    /// The first value of `key`.
    pub(crate) fn note(&self, key: &str) -> Option<&str> {
        self.notes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The helper's message: `message=`, or the free text after the pairs.
    pub(crate) fn message(&self) -> Option<&str> {
        self.note("message")
            .or((!self.other.is_empty()).then_some(self.other.as_str()))
    }
}

/// Parses one reply line (without its line feed and channel-ID); `None` when it is not a
/// reply (garbage). `legacy_ha1`: a Digest helper's bare 32-hex-digit HA1 (Squid 3.3 and
/// older) reads as `OK ha1=…`.
pub(crate) fn parse_reply(line: &[u8], legacy_ha1: bool) -> Option<Reply> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (code, rest) = if let Some(rest) = result_code(line, b"OK") {
        (Code::Ok, rest)
    } else if let Some(rest) = result_code(line, b"ERR") {
        (Code::Err, rest)
    } else if let Some(rest) = result_code(line, b"BH") {
        (Code::BrokenHelper, rest)
    } else if legacy_ha1 && line.len() == 32 && crate::syntax::is_hex(line) {
        let ha1 = Zeroizing::new(String::from_utf8_lossy(line).into_owned());
        return Some(Reply {
            code: Code::Ok,
            notes: vec![("ha1".to_owned(), ha1)],
            other: String::new(),
        });
    } else {
        return None;
    };
    let (notes, other) = parse_notes(rest.trim_ascii_start());
    Some(Reply {
        code,
        notes,
        other: String::from_utf8_lossy(other.trim_ascii_end()).into_owned(),
    })
}

/// What follows `code` when the line starts with it and then ends or has a space.
fn result_code<'a>(line: &'a [u8], code: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(code)?;
    (rest.is_empty() || rest[0] == b' ').then_some(rest)
}

/// Squid's key name characters: alphanumerics, `-` and `_`.
fn is_key_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The `key=value` pairs at the start of `text`, and the text after them.
#[allow(clippy::type_complexity)]
fn parse_notes(mut text: &[u8]) -> (Vec<(String, Zeroizing<String>)>, &[u8]) {
    let mut notes = Vec::new();
    loop {
        let key_len = text.iter().take_while(|&&b| is_key_char(b)).count();
        if text.get(key_len) != Some(&b'=') {
            break;
        }
        // Whitespace right after `=` is not a value (Squid stops there).
        let after = &text[key_len + 1..];
        if after.first().is_some_and(u8::is_ascii_whitespace) {
            break;
        }
        let quoted = after.first() == Some(&b'"');
        let (mut value, consumed) = word(after);
        if !quoted && consumed > 2 {
            value = unescape(&value);
        }
        let key = String::from_utf8_lossy(&text[..key_len]).into_owned();
        let value = Zeroizing::new(String::from_utf8_lossy(&value).into_owned());
        if !key.is_empty() {
            notes.push((key, value));
        }
        text = after[consumed..].trim_ascii_start();
        if text.is_empty() {
            break;
        }
    }
    (notes, text)
}

/// One word as Squid's `strwordtok` reads it: up to unquoted whitespace; `"` toggles quoting;
/// inside quotes `\n`, `\r` and `\X` are escapes. The word and the bytes consumed (the
/// whitespace that ended it included).
fn word(text: &[u8]) -> (Zeroizing<Vec<u8>>, usize) {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len()));
    let mut quoted = false;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'\\' if quoted => {
                i += 1;
                match text.get(i) {
                    Some(b'n') => out.push(b'\n'),
                    Some(b'r') => out.push(b'\r'),
                    Some(&other) => out.push(other),
                    None => break,
                }
                i += 1;
            }
            b'"' => {
                quoted = !quoted;
                i += 1;
            }
            b if !quoted && b.is_ascii_whitespace() => {
                i += 1;
                break;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    (out, i)
}

/// Squid's `rfc1738_unescape`: `%XY` (hex) is the byte XY unless it is 0, `%%` is `%`, any
/// other `%` stays.
fn unescape(text: &[u8]) -> Zeroizing<Vec<u8>> {
    let hex = |b: u8| char::from(b).to_digit(16).map(|d| d as u8);
    let mut out = Zeroizing::new(Vec::with_capacity(text.len()));
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'%' {
            if text.get(i + 1) == Some(&b'%') {
                out.push(b'%');
                i += 2;
                continue;
            }
            if let (Some(hi), Some(lo)) = (
                text.get(i + 1).copied().and_then(hex),
                text.get(i + 2).copied().and_then(hex),
            ) {
                let byte = hi << 4 | lo;
                if byte != 0 {
                    out.push(byte);
                    i += 3;
                    continue;
                }
            }
        }
        out.push(text[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notes(reply: &Reply) -> Vec<(&str, &str)> {
        reply
            .notes
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn basic_requests_escape_as_squid_does() {
        let line = basic_request(b"alice", b"p@ss:w rd%");
        assert_eq!(&line[..], b"alice p@ss:w%20rd%25");
        let line = basic_request("Jörg \"x\"".as_bytes(), b"a\\b~'");
        assert_eq!(&line[..], b"J%C3%B6rg%20%22x%22 a%5Cb%7E%27");
        assert_eq!(&unescape(b"p@ss:w%20rd%25")[..], b"p@ss:w rd%");
    }

    #[test]
    fn digest_requests_quote_or_refuse() {
        assert_eq!(
            digest_request(b"Mufasa", b"proxy")
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"\"Mufasa\":\"proxy\""[..])
        );
        assert!(digest_request(b"a\"b", b"proxy").is_none());
        assert!(digest_request(b"a\nb", b"proxy").is_none());
        assert!(digest_request(b"a", b"re\"alm").is_none());
    }

    #[test]
    fn replies_read_as_squid_reads_them() {
        let r = parse_reply(b"OK", false).unwrap();
        assert_eq!((r.code, r.notes.len(), r.other.as_str()), (Code::Ok, 0, ""));
        let r = parse_reply(b"OK user=bob%20smith group=\"a b\" tag=x\r", false).unwrap();
        assert_eq!(
            notes(&r),
            [("user", "bob smith"), ("group", "a b"), ("tag", "x")]
        );
        let r = parse_reply(b"ERR message=\"No such \\\"user\\\"\"", false).unwrap();
        assert_eq!(r.code, Code::Err);
        assert_eq!(r.message(), Some("No such \"user\""));
        let r = parse_reply(b"ERR Wrong password", false).unwrap();
        assert_eq!((r.code, r.message()), (Code::Err, Some("Wrong password")));
        let r = parse_reply(b"BH message=\"ldap down\"", false).unwrap();
        assert_eq!(r.code, Code::BrokenHelper);
        assert_eq!(r.message(), Some("ldap down"));
        let r = parse_reply(b"OK ha1=\"0123456789abcdef0123456789abcdef\"", false).unwrap();
        assert_eq!(r.note("ha1"), Some("0123456789abcdef0123456789abcdef"));
        // A value stops the pairs when it is not `key=value`.
        let r = parse_reply(b"OK a=1 free text b=2", false).unwrap();
        assert_eq!(
            (notes(&r), r.other.as_str()),
            (vec![("a", "1")], "free text b=2")
        );
        let r = parse_reply(b"OK key= x", false).unwrap();
        assert_eq!((r.notes.len(), r.other.as_str()), (0, "key= x"));
        // A short unquoted value is not unescaped (Squid: fewer than 3 bytes).
        let r = parse_reply(b"OK a=%4", false).unwrap();
        assert_eq!(r.note("a"), Some("%4"));
    }

    #[test]
    fn garbage_is_not_a_reply() {
        for line in [
            &b""[..],
            b"OKAY",
            b"ok",
            b"hello",
            b"ERR\tx",
            b"0123456789abcdef0123456789abcdef",
        ] {
            assert!(parse_reply(line, false).is_none(), "{line:?}");
        }
        let legacy = parse_reply(b"0123456789abcdef0123456789abcdef", true).unwrap();
        assert_eq!(legacy.code, Code::Ok);
        assert_eq!(legacy.note("ha1"), Some("0123456789abcdef0123456789abcdef"));
    }

    #[test]
    fn channel_ids() {
        assert_eq!(split_channel(b"12 OK"), Some((12, &b"OK"[..])));
        assert_eq!(split_channel(b"0 ERR x"), Some((0, &b"ERR x"[..])));
        assert_eq!(
            split_channel(b"999999999 OK"),
            Some((999_999_999, &b"OK"[..]))
        );
        assert_eq!(split_channel(b"OK"), None);
        assert_eq!(split_channel(b"12OK"), None);
        assert_eq!(split_channel(b"99999999999 OK"), None);
        assert_eq!(split_channel(b"1234567890 OK"), None);
    }

    #[test]
    fn request_lines_longer_than_a_helper_reads_at_once_are_not_made() {
        // `"user":"r"` is the name and 6 bytes; with the channel-ID and the line feed, 17.
        assert_eq!(MAX_REQUEST_BYTES, 4096);
        let longest = vec![b'x'; 4096 - 17];
        assert!(digest_request(&longest, b"r").is_some());
        assert!(digest_request(&[&longest[..], b"x"].concat(), b"r").is_none());
        assert!(fits(&[b'x'; 4085]) && !fits(&[b'x'; 4086]));
        assert!(digest_request(b"alice", b"proxy").is_some());
        assert!(digest_request(b"mallory:branch", b"proxy").is_none());
        assert!(digest_request(b"J\xf6rg", b"proxy").is_none());
        assert!(digest_request("Jörg".as_bytes(), b"proxy").is_some());
        assert_eq!(written_bytes(b"user pw"), 18);
    }

    #[test]
    fn channel_ids_have_nine_digits_and_skip_those_taken() {
        let mut ids = ChannelIds::new();
        assert_eq!(ids.next(|_| false), 100_000_000);
        assert_eq!(ids.next(|id| id == 100_000_001), 100_000_002);
        ids.next = ChannelIds::LAST;
        assert_eq!(ids.next(|_| false), 999_999_999);
        assert_eq!(ids.next(|_| false), 100_000_000);
    }

    #[test]
    fn ids_inside_a_line_mixed_up_by_helper_mux() {
        // helper-mux's output when pieces of one reply were read under three channel-IDs.
        let line = b"ERR 100000001 Wrong password100000002 ";
        let found: Vec<u32> = ids_inside(line).collect();
        assert_eq!(found, [100_000_001, 100_000_002]);
        // After a digit of the message, the last nine digits before the space.
        let found: Vec<u32> = ids_inside(b"ERR code 7100000003 ").collect();
        assert_eq!(found, [100_000_003]);
        for clean in [
            &b"OK "[..],
            b"ERR Wrong password",
            b"OK user=12345678 x",
            b"100000004",
        ] {
            assert_eq!(ids_inside(clean).count(), 0, "{clean:?}");
        }
    }
}
