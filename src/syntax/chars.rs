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

/// The length of the run of bytes at the start of `s` for which `class` holds.
pub(crate) fn span(s: &[u8], class: impl Fn(u8) -> bool) -> usize {
    s.iter().position(|&b| !class(b)).unwrap_or(s.len())
}

/// How many bytes at the start of `s` are qdtext. Eight bytes at a time as one word (SWAR): a
/// word's candidate stops (bytes under 0x20, `"`, `\\`, DEL) are found with the usual
/// borrow tricks, whose lowest flagged byte is exact, so the first stop is its position; a
/// flagged HTAB (qdtext, but under 0x20) is stepped over one byte at a time.
pub(crate) fn qdtext_run(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte of `w` that is zero (exact for the lowest such byte).
    let zero = |w: u64| w.wrapping_sub(ONES) & !w & HIGHS;
    let mut i = 0;
    while i + 8 <= s.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&s[i..i + 8]);
        let w = u64::from_le_bytes(word);
        let stops = (w.wrapping_sub(ONES * 0x20) & !w & HIGHS)
            | zero(w ^ (ONES * u64::from(b'"')))
            | zero(w ^ (ONES * u64::from(b'\\')))
            | zero(w ^ (ONES * 0x7f));
        if stops == 0 {
            i += 8;
            continue;
        }
        let first = i + (stops.trailing_zeros() / 8) as usize;
        if !is_qdtext(s[first]) {
            return first;
        }
        // An HTAB: go on byte by byte past it.
        i = first + 1;
    }
    while i < s.len() && is_qdtext(s[i]) {
        i += 1;
    }
    i
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
    fn qdtext_run_matches_the_byte_by_byte_rule() {
        let scalar = |s: &[u8]| s.iter().take_while(|&&b| is_qdtext(b)).count();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Mostly plain text with a few of every kind of stop (and HTABs) sprinkled in.
        let special = [
            b'"', b'\\', 0x7f, b'\t', b'\r', 0, 0x1f, 0x20, 0x80, 0xff, b'!', b'#',
        ];
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            let text: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 7 == 0 {
                        special[(r >> 8) as usize % special.len()]
                    } else {
                        b'a' + (r >> 16) as u8 % 26
                    }
                })
                .collect();
            assert_eq!(qdtext_run(&text), scalar(&text), "{text:?}");
        }
        for b in 0..=255u8 {
            for at in 0..17 {
                let mut text = vec![b'x'; 17];
                text[at] = b;
                assert_eq!(qdtext_run(&text), scalar(&text), "{b:#04x} at {at}");
            }
        }
    }

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
