//! HAProxy's PROXY protocol (`--proxy-protocol`): the header a TCP load balancer sends at the
//! start of each connection to say which client it accepted the connection from, before any
//! byte of TLS or HTTP. Version 1 is a text line (`PROXY TCP4 203.0.113.9 192.0.2.1 51000
//! 3128\r\n`, at most 107 bytes), version 2 a binary block (a 12-byte signature, 4 bytes of
//! version, command, family and length, the addresses, optional TLVs). Both are parsed by the
//! `ppp` crate; this module adds what a server does around it: [`parse`] says whether the bytes
//! read so far hold a whole header, an incomplete one or no valid one, [`read_header`] reads
//! one off a stream, and [`Prefixed`] gives the bytes read past the header back to whoever
//! reads the stream next (the TLS handshake, hyper).
//!
//! The spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>. Per its §2.1 and
//! §2.2, a `PROXY UNKNOWN` line, a version 2 `LOCAL` command (a balancer's own health check)
//! and the `UNSPEC` and `UNIX` families name no client address: the connection's own peer
//! stands. A receiver "must not try to guess whether the protocol header is present or not",
//! so where the header is expected, a connection without a valid one is closed (the caller does
//! that on an error of [`read_header`]).
//!
//! ```
//! use tower_proxy_auth_proxy::proxy_protocol::{parse, Parsed};
//!
//! let bytes = b"PROXY TCP4 203.0.113.9 192.0.2.1 51000 3128\r\nGET http://example.com/ HTTP/1.1\r\n";
//! match parse(bytes) {
//!     Parsed::Header { header, len } => {
//!         assert_eq!(header.source, Some("203.0.113.9:51000".parse().unwrap()));
//!         assert_eq!(&bytes[len..len + 3], b"GET");
//!     }
//!     other => panic!("{other:?}"),
//! }
//! assert!(matches!(parse(b"PROXY TCP4 203.0"), Parsed::Incomplete));
//! assert!(matches!(parse(b"GET / HTTP/1.1\r\n"), Parsed::Invalid(_)));
//! ```

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf as _, Bytes, BytesMut};
use ppp::{v1, v2, HeaderResult, PartialResult as _};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// The longest version 1 line, CRLF included (the spec's §2.1).
const V1_MAX_BYTES: usize = 107;
/// How a version 1 line starts.
const V1_SIGNATURE: &[u8] = b"PROXY ";
/// How a version 2 block starts (the spec's §2.2).
const V2_SIGNATURE: &[u8] = v2::PROTOCOL_PREFIX;

/// The longest header: version 2's 16 bytes and a 16-bit length of addresses and TLVs.
pub const MAX_HEADER_BYTES: usize = 16 + u16::MAX as usize;

/// What a whole header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyHeader {
    /// 1 (text) or 2 (binary).
    pub version: u8,
    /// The client the balancer accepted the connection from; `None` when the header names
    /// none (`UNKNOWN`, `LOCAL`, `UNSPEC`, `UNIX`): the connection's peer stands.
    pub source: Option<SocketAddr>,
}

/// What [`parse`] makes of the bytes read so far.
#[derive(Debug)]
pub enum Parsed {
    /// A whole header of `len` bytes; what follows it is the connection's data.
    Header { header: ProxyHeader, len: usize },
    /// The start of a header: read more.
    Incomplete,
    /// No valid header, however many bytes follow.
    Invalid(ProxyHeaderError),
}

/// Why a connection has no valid PROXY protocol header.
#[derive(Debug)]
#[non_exhaustive]
pub enum ProxyHeaderError {
    /// The bytes start with neither `PROXY` nor version 2's signature (a client talking
    /// HTTP or TLS straight away).
    NoSignature,
    /// A version 1 line that breaks the spec (bad protocol, address, port, over 107 bytes).
    V1(v1::BinaryParseError),
    /// A version 2 block that breaks the spec (bad version, command, family, lengths).
    V2(v2::ParseError),
    /// The connection ended after `read` bytes, before a whole header.
    Closed { read: usize },
    /// Reading failed.
    Io(io::Error),
}

impl fmt::Display for ProxyHeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSignature => f.write_str("no PROXY protocol header (no v1 or v2 signature)"),
            Self::V1(e) => write!(f, "malformed PROXY protocol v1 header: {e}"),
            Self::V2(e) => write!(f, "malformed PROXY protocol v2 header: {e}"),
            Self::Closed { read } => write!(
                f,
                "the connection closed after {read} bytes, before a whole PROXY protocol header"
            ),
            Self::Io(e) => write!(f, "reading the PROXY protocol header: {e}"),
        }
    }
}

impl std::error::Error for ProxyHeaderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::V1(e) => Some(e),
            Self::V2(e) => Some(e),
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Whether `input`, the first bytes of a connection, starts with a whole PROXY protocol header
/// (version 1 or 2), with part of one, or with none.
pub fn parse(input: &[u8]) -> Parsed {
    let starts = |signature: &[u8]| input.starts_with(signature) || signature.starts_with(input);
    let v1 = starts(V1_SIGNATURE);
    if !v1 && !starts(V2_SIGNATURE) {
        return Parsed::Invalid(ProxyHeaderError::NoSignature);
    }
    // A version 1 line is parsed once whole: ppp takes a line cut just after a space for a
    // bad one ("port ''"), and a header may arrive in pieces.
    let head = &input[..input.len().min(V1_MAX_BYTES)];
    if v1 && input.len() < V1_MAX_BYTES && !head.contains(&b'\n') {
        return Parsed::Incomplete;
    }
    let result = HeaderResult::parse(input);
    if result.is_incomplete() {
        return Parsed::Incomplete;
    }
    match result {
        HeaderResult::V1(Ok(header)) => {
            let source = match header.addresses {
                v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
                v1::Addresses::Unknown => None,
            };
            Parsed::Header {
                header: ProxyHeader { version: 1, source },
                len: header.header.len(),
            }
        }
        HeaderResult::V2(Ok(header)) => {
            let source = match (header.command, header.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            Parsed::Header {
                header: ProxyHeader { version: 2, source },
                len: header.len(),
            }
        }
        HeaderResult::V1(Err(v1::BinaryParseError::Parse(v1::ParseError::InvalidPrefix))) => {
            Parsed::Invalid(ProxyHeaderError::NoSignature)
        }
        HeaderResult::V1(Err(e)) => Parsed::Invalid(ProxyHeaderError::V1(e)),
        HeaderResult::V2(Err(e)) => Parsed::Invalid(ProxyHeaderError::V2(e)),
    }
}

/// Reads a PROXY protocol header off the start of `stream`. Returns the header and the bytes
/// read past it (the start of the connection's data, to be read first: see [`Prefixed`]).
///
/// Reads only as much as needed to tell (a whole header, or proof there is none), and never
/// more than [`MAX_HEADER_BYTES`] plus one read's worth. It waits as long as the client is
/// silent: bound it with a timeout.
///
/// # Errors
///
/// [`ProxyHeaderError`] when the stream starts with no valid header, ends before a whole
/// one, or fails.
pub async fn read_header<S>(stream: &mut S) -> Result<(ProxyHeader, Bytes), ProxyHeaderError>
where
    S: AsyncRead + Unpin,
{
    // A version 1 line fits in 107 bytes and a version 2 block with addresses in 232; larger
    // version 2 blocks (many TLVs) grow the buffer.
    let mut buf = BytesMut::with_capacity(256);
    loop {
        if buf.capacity() == buf.len() {
            buf.reserve(buf.len());
        }
        let n = stream
            .read_buf(&mut buf)
            .await
            .map_err(ProxyHeaderError::Io)?;
        if n == 0 {
            return Err(ProxyHeaderError::Closed { read: buf.len() });
        }
        match parse(&buf) {
            Parsed::Header { header, len } => {
                let rest = buf.split_off(len).freeze();
                return Ok((header, rest));
            }
            Parsed::Incomplete if buf.len() < MAX_HEADER_BYTES => {}
            // (ppp never calls more than `MAX_HEADER_BYTES` incomplete.)
            Parsed::Incomplete => return Err(ProxyHeaderError::NoSignature),
            Parsed::Invalid(error) => return Err(error),
        }
    }
}

/// A stream whose first bytes come from a buffer: the bytes [`read_header`] read past the
/// header, then the stream itself. Writes go straight to the stream.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, read after `prefix`.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }

    /// The stream, when nothing was read ahead.
    pub fn plain(inner: S) -> Self {
        Self::new(Bytes::new(), inner)
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.prefix.len().min(buf.remaining());
        buf.put_slice(&this.prefix[..n]);
        this.prefix.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt as _;

    /// A version 2 header written by hand from the spec (§2.2), not by ppp: signature,
    /// version 2 and `command`, `family_protocol`, the length, `body`.
    fn v2_header(command: u8, family_protocol: u8, body: &[u8]) -> Vec<u8> {
        let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        out.push(0x20 | command);
        out.push(family_protocol);
        out.extend_from_slice(&u16::try_from(body.len()).unwrap().to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn v4_body(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&src);
        body.extend_from_slice(&dst);
        body.extend_from_slice(&sport.to_be_bytes());
        body.extend_from_slice(&dport.to_be_bytes());
        body
    }

    fn header(input: &[u8]) -> (ProxyHeader, usize) {
        match parse(input) {
            Parsed::Header { header, len } => (header, len),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        }
    }

    #[test]
    fn version_1_lines() {
        let line = b"PROXY TCP4 203.0.113.9 192.0.2.1 51000 3128\r\n";
        assert_eq!(
            header(line),
            (
                ProxyHeader {
                    version: 1,
                    source: Some("203.0.113.9:51000".parse().unwrap())
                },
                line.len()
            )
        );
        let line = b"PROXY TCP6 2001:db8::17 2001:db8::1 4711 443\r\nrest";
        let (h, len) = header(line);
        assert_eq!(h.source, Some("[2001:db8::17]:4711".parse().unwrap()));
        assert_eq!(&line[len..], b"rest");
        // UNKNOWN: anything up to CRLF, no address.
        let line = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
        assert_eq!(header(line).0.source, None);
        assert_eq!(header(b"PROXY UNKNOWN\r\n").0.source, None);
    }

    #[test]
    fn version_2_blocks() {
        let block = v2_header(
            1,
            0x11,
            &v4_body([203, 0, 113, 9], [192, 0, 2, 1], 51000, 3128),
        );
        let (h, len) = header(&block);
        assert_eq!(h.version, 2);
        assert_eq!(h.source, Some("203.0.113.9:51000".parse().unwrap()));
        assert_eq!(len, 28);
        // IPv6 with a TLV after the addresses (a NOOP, type 0x04).
        let mut body = Vec::new();
        body.extend_from_slice(
            &"2001:db8::17"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        body.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        body.extend_from_slice(&4711u16.to_be_bytes());
        body.extend_from_slice(&443u16.to_be_bytes());
        body.extend_from_slice(&[0x04, 0, 3, 1, 2, 3]);
        let mut block = v2_header(1, 0x21, &body);
        let whole = block.len();
        block.extend_from_slice(b"GET");
        let (h, len) = header(&block);
        assert_eq!(h.source, Some("[2001:db8::17]:4711".parse().unwrap()));
        assert_eq!(len, whole);
        // LOCAL (a health check) and UNSPEC: the peer stands.
        assert_eq!(header(&v2_header(0, 0x00, &[])).0.source, None);
        let local = v2_header(0, 0x11, &v4_body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
        assert_eq!(header(&local).0.source, None);
    }

    #[test]
    fn partial_headers_ask_for_more() {
        let line = b"PROXY TCP4 203.0.113.9 192.0.2.1 51000 3128\r\n";
        let block = v2_header(1, 0x11, &v4_body([203, 0, 113, 9], [192, 0, 2, 1], 1, 2));
        for whole in [&line[..], &block[..]] {
            for cut in 1..whole.len() {
                assert!(
                    matches!(parse(&whole[..cut]), Parsed::Incomplete),
                    "{:?}",
                    &whole[..cut]
                );
            }
        }
    }

    #[test]
    fn what_is_not_a_valid_header() {
        let invalid = |input: &[u8]| match parse(input) {
            Parsed::Invalid(e) => e.to_string(),
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(input)),
        };
        assert!(invalid(b"GET http://example.com/ HTTP/1.1\r\n").contains("no PROXY"));
        // A TLS ClientHello.
        assert!(invalid(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0xfc]).contains("no PROXY"));
        assert!(invalid(b"PROXYTCP4").contains("no PROXY"));
        assert!(invalid(b"\r\n\r\n\0\r\nQUIZ\n").contains("no PROXY"));
        for line in [
            &b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"[..],
            b"PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 70000 2\r\n",
            b"PROXY TCP4 2001:db8::1 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
        ] {
            assert!(
                invalid(line).contains("v1"),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 120]].concat();
        assert!(invalid(&long).contains("v1"));
        // Version 3, command 2, family 4, addresses longer than the length.
        let mut bad_version = v2_header(1, 0x11, &v4_body([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
        bad_version[12] = 0x31;
        assert!(invalid(&bad_version).contains("v2"));
        assert!(invalid(&v2_header(2, 0x11, &[0; 12])).contains("v2"));
        assert!(invalid(&v2_header(1, 0x41, &[0; 12])).contains("v2"));
        assert!(invalid(&v2_header(1, 0x11, &[0; 8])).contains("v2"));
    }

    #[tokio::test]
    async fn read_header_returns_what_follows_and_prefixed_replays_it() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move {
            // In pieces, with the data right behind the header.
            client.write_all(b"PROXY TCP4 203.0.113.9 ").await.unwrap();
            tokio::task::yield_now().await;
            client
                .write_all(b"192.0.2.1 51000 3128\r\nGET / HTTP/1.1\r\n\r\n")
                .await
                .unwrap();
            client
        });
        let (header, rest) = read_header(&mut server).await.unwrap();
        assert_eq!(header.source, Some("203.0.113.9:51000".parse().unwrap()));
        let _client = writer.await.unwrap();
        let mut stream = Prefixed::new(rest, server);
        let mut request = vec![0; 18];
        stream.read_exact(&mut request).await.unwrap();
        assert_eq!(request, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn read_header_errors() {
        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"PROXY TCP4 1.2").await.unwrap();
        drop(client);
        let error = read_header(&mut server).await.unwrap_err();
        assert!(
            matches!(error, ProxyHeaderError::Closed { read: 14 }),
            "{error}"
        );

        let (mut client, mut server) = tokio::io::duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        let error = read_header(&mut server).await.unwrap_err();
        assert!(matches!(error, ProxyHeaderError::NoSignature), "{error}");
    }
}
