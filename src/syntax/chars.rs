//! Character classes of the HTTP grammar (RFC 9110 §5.6, RFC 5234 Appendix B.1).

/// `tchar` (RFC 9110 §5.6.2): the characters of a `token`.
#[inline]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// The table of a rule over all 256 byte values, built at compile time: one load per byte on
/// the hot path.
macro_rules! table {
    ($rule:ident) => {{
        let mut out = [false; 256];
        let mut b = 0;
        while b < 256 {
            out[b] = $rule(b as u8);
            b += 1;
        }
        out
    }};
}

/// [`is_tchar`] for every byte.
static TCHAR: [bool; 256] = table!(tchar_rule);

/// [`is_qdtext`] for every byte.
static QDTEXT: [bool; 256] = table!(qdtext_rule);

const fn tchar_rule(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'#'
            | b'$'
            | b'%'
            | b'&'
            | b'\''
            | b'*'
            | b'+'
            | b'-'
            | b'.'
            | b'^'
            | b'_'
            | b'`'
            | b'|'
            | b'~'
    ) || b.is_ascii_alphanumeric()
}

/// The characters of a `token68` before its trailing `=` padding (RFC 9110 §11.2):
/// `ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`.
pub(crate) fn is_token68_char(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/') || b.is_ascii_alphanumeric()
}

/// `qdtext` (RFC 9110 §5.6.4): what a quoted-string holds without escaping.
#[inline]
pub(crate) fn is_qdtext(b: u8) -> bool {
    QDTEXT[usize::from(b)]
}

const fn qdtext_rule(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5B | 0x5D..=0x7E) || b >= 0x80
}

/// What may follow `\` in a `quoted-pair` (RFC 9110 §5.6.4): `HTAB / SP / VCHAR / obs-text`.
pub(crate) fn is_quoted_pair_char(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7E).contains(&b) || b >= 0x80
}

/// `CTL` (RFC 5234 Appendix B.1): `%x00-1F / %x7F`.
pub(crate) fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// `OWS` characters (RFC 9110 §5.6.3): SP and HTAB.
pub(crate) fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Whether every byte of `s` is a hex digit (either case). Checked without a branch per byte:
/// hex values (digests, userhashes) are random, so a branch on digit-or-letter mispredicts about
/// every other byte, which cost a Digest accept ~200 ns for its 64-digit `response`.
pub(crate) fn is_hex(s: &[u8]) -> bool {
    s.iter().fold(true, |all, &b| {
        all & ((b.wrapping_sub(b'0') < 10) | ((b | 0x20).wrapping_sub(b'a') < 6))
    })
}

/// Whether `s` is a non-empty `token`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().copied().all(is_tchar)
}

/// `s` without leading and trailing OWS.
pub(crate) fn trim_ows(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_ows(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|&b| !is_ows(b)).map_or(start, |i| i + 1);
    &s[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_match_the_grammar() {
        for b in 0..=255u8 {
            let tchar = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            let t68 = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            assert_eq!((is_tchar(b), is_token68_char(b)), (tchar, t68), "{b:#04x}");
        }
    }

    #[test]
    fn classes() {
        assert!(is_token(b"Basic") && is_token(b"x-Y.z~1"));
        assert!(!is_token(b"") && !is_token(b"a b") && !is_token(b"a=") && !is_token(b"\"a\""));
        assert!(is_token68_char(b'+') && !is_token68_char(b'='));
        assert!(is_qdtext(b' ') && !is_qdtext(b'"') && !is_qdtext(b'\\') && is_qdtext(0xE9));
        assert!(!is_qdtext(b'\r') && !is_quoted_pair_char(b'\n'));
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        for b in 0..=255u8 {
            assert_eq!(is_hex(&[b]), b.is_ascii_hexdigit(), "{b:#04x}");
            assert_eq!(is_hex(&[b'a', b, b'0']), b.is_ascii_hexdigit(), "{b:#04x}");
        }
        assert!(is_hex(b"") && is_hex(b"09afAF") && !is_hex(b"09ag"));
        assert_eq!(trim_ows(b" \t "), b"");
    }
}
