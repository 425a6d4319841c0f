//! `#auth-param` lists (RFC 9110 §11.2): `name=value` pairs separated by commas.
//!
//! ```text
//! auth-param = token BWS "=" BWS ( token / quoted-string )
//! ```
//!
//! - Names are tokens, compared case-insensitively; a name given twice makes the list malformed
//!   (RFC 9110 §11.2: "each parameter name MUST only occur once per challenge"; the same holds
//!   for credentials, RFC 7616 §3.4).
//! - Values are a token or a quoted-string, whose quoted-pairs are unescaped (§5.6.4). Values
//!   are bytes: a quoted-string may carry obs-text (`%x80-FF`), for example UTF-8.
//! - Whitespace: `BWS` around `=`, `OWS` around commas (§5.6.3).
//! - Empty list elements (`a=1, , b=2`) are accepted (§5.6.1), up to [`MAX_EMPTY_ELEMENTS`], and
//!   at most [`MAX_PARAMS`] parameters, so a hostile list costs bounded work.

use std::borrow::Cow;
use std::fmt;

use super::chars::{is_ows, is_qdtext, is_quoted_pair_char, is_tchar, is_token, qdtext_run};
use super::SyntaxError;

/// The most parameters one list may hold (Digest credentials use 10 or so).
pub const MAX_PARAMS: usize = 32;
/// The most empty list elements tolerated in one list.
pub const MAX_EMPTY_ELEMENTS: usize = 8;

/// One `name=value` auth-param, with its value unescaped.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthParam<'a> {
    /// Token characters only (ASCII), so always UTF-8.
    name: &'a [u8],
    value: Cow<'a, [u8]>,
    quoted: bool,
}

impl<'a> AuthParam<'a> {
    /// The parameter name as sent (compare it with `eq_ignore_ascii_case`).
    pub fn name(&self) -> &'a str {
        // A token is ASCII: this never falls back.
        std::str::from_utf8(self.name).unwrap_or("")
    }

    /// The parameter name's bytes (ASCII token characters), without the UTF-8 check of
    /// [`name`](Self::name).
    pub(crate) fn name_bytes(&self) -> &'a [u8] {
        self.name
    }

    /// The value: the token, or the quoted-string's content with quoted-pairs unescaped.
    pub fn value(&self) -> &[u8] {
        &self.value
    }

    /// The value as UTF-8, or `None` when its bytes are not.
    pub fn value_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.value).ok()
    }

    /// Whether the value was sent as a quoted-string (RFC 7616 requires some values quoted and
    /// others not).
    pub fn was_quoted(&self) -> bool {
        self.quoted
    }
}

impl fmt::Debug for AuthParam<'_> {
    /// Shows the name and the value's length, never the value: parameters of credentials
    /// (Digest's `response`, `cnonce`) are client secrets or derived from them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthParam")
            .field("name", &self.name())
            .field("value_len", &self.value.len())
            .field("quoted", &self.quoted)
            .finish()
    }
}

/// A parsed `#auth-param` list, in the order sent.
///
/// ```
/// use tower_proxy_auth::syntax::{parse_credentials, CredentialsData};
///
/// let credentials = parse_credentials(br#"Digest username="Mufasa", nc=00000001, qop=auth"#)?;
/// let CredentialsData::Params(params) = credentials.data() else { unreachable!() };
/// assert_eq!(params.get("USERNAME").map(|p| p.value()), Some(&b"Mufasa"[..]));
/// assert_eq!(params.get("nc").map(|p| p.value()), Some(&b"00000001"[..]));
/// assert_eq!(params.to_string(), r#"username="Mufasa", nc=00000001, qop=auth"#);
/// # Ok::<(), tower_proxy_auth::syntax::SyntaxError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthParams<'a> {
    params: Vec<AuthParam<'a>>,
}

impl<'a> AuthParams<'a> {
    /// The parameter named `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&AuthParam<'a>> {
        self.params
            .iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
    }

    /// The parameters in the order sent.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &AuthParam<'a>> {
        self.params.iter()
    }

    /// How many parameters there are.
    pub fn len(&self) -> usize {
        self.params.len()
    }

    /// Whether the list holds no parameter.
    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    /// Parses a whole `#auth-param` list.
    ///
    /// # Errors
    ///
    /// [`SyntaxError::InvalidParam`] for an element that is not `token BWS "=" BWS ( token /
    /// quoted-string )`, [`SyntaxError::UnterminatedQuotedString`],
    /// [`SyntaxError::DuplicateParam`], [`SyntaxError::TooManyParams`],
    /// [`SyntaxError::TooManyEmptyElements`], and [`SyntaxError::MultipleCredentials`] when an
    /// element starts a second set of credentials (`token 1*SP ...`).
    pub fn parse(input: &'a [u8]) -> Result<Self, SyntaxError> {
        // Room for Digest's dozen parameters in one allocation.
        let mut params: Vec<AuthParam<'a>> = Vec::with_capacity(12);
        let mut empty = 0;
        let mut seen = 0u64;
        let mut i = 0;
        // `#element` allows whitespace before the first element only ahead of a comma
        // (`[ element ] *( OWS "," OWS [ element ] )`, RFC 9110 §5.6.1).
        let lead = skip_ows(input, 0);
        if lead > 0 && input.get(lead).is_some_and(|&b| b != b',') {
            return Err(SyntaxError::InvalidParam);
        }
        loop {
            // One element: OWS [ auth-param ] OWS, then "," or the end.
            i = skip_ows(input, i);
            if i == input.len() {
                if params.is_empty() {
                    return Err(SyntaxError::InvalidParam);
                }
                break;
            }
            if input[i] == b',' {
                empty += 1;
                if empty > MAX_EMPTY_ELEMENTS {
                    return Err(SyntaxError::TooManyEmptyElements);
                }
                i += 1;
                continue;
            }
            // Only after a comma can an element be the start of a second credentials.
            let (param, next) = parse_one(input, i, i > 0)?;
            // Names are compared only when their fingerprints collide: one bit of `seen` per
            // fingerprint, so a list of distinct names (every list but a malformed one) costs
            // no comparison in the common case.
            let bit = 1u64 << name_fingerprint(param.name);
            if seen & bit != 0
                && params
                    .iter()
                    .any(|p| p.name.eq_ignore_ascii_case(param.name))
            {
                return Err(SyntaxError::DuplicateParam);
            }
            seen |= bit;
            if params.len() == MAX_PARAMS {
                return Err(SyntaxError::TooManyParams);
            }
            params.push(param);
            i = next;
            i = skip_ows(input, i);
            match input.get(i) {
                None => break,
                Some(b',') => i += 1,
                Some(_) => return Err(SyntaxError::InvalidParam),
            }
        }
        Ok(Self { params })
    }
}

impl fmt::Debug for AuthParams<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.params).finish()
    }
}

impl AuthParams<'_> {
    /// The list serialised as `name=value, name="value"`: a value is written as a token when
    /// it is one and was not quoted, otherwise as a quoted-string with `"` and `\` escaped.
    /// Parsing the output gives the same parameters, byte for byte.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (n, p) in self.params.iter().enumerate() {
            if n > 0 {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(p.name);
            out.push(b'=');
            if !p.quoted && is_token(&p.value) {
                out.extend_from_slice(&p.value);
            } else {
                super::writer::push_quoted(&mut out, &p.value);
            }
        }
        out
    }
}

impl fmt::Display for AuthParams<'_> {
    /// [`to_bytes`](AuthParams::to_bytes) as text (bytes that are not UTF-8 become U+FFFD).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// The index of the first byte at or after `i` that is not OWS (SP or HTAB), or the end.
#[inline]
fn skip_ows(input: &[u8], mut i: usize) -> usize {
    // Most calls stop at once, on a byte above SP: one comparison decides them.
    while let Some(&b) = input.get(i) {
        if b > b' ' || !is_ows(b) {
            break;
        }
        i += 1;
    }
    i
}

/// The index of the first byte at or after `i` that is not a `tchar`, or the end. Not inlined:
/// inside the list parser the loop had no register left for the input's address and loaded it
/// from the stack on every byte; on its own, `parse_credentials` of a Digest credentials field
/// ran faster in 5 of 6 paired criterion runs (medians 306 against 318 ns on a noisy VM).
#[inline(never)]
fn tchar_end(input: &[u8], mut i: usize) -> usize {
    while let Some(&b) = input.get(i) {
        if !is_tchar(b) {
            break;
        }
        i += 1;
    }
    i
}

/// A number under 64 that names equal but for ASCII case share (from the length and the first
/// and last letters, lowercased); Digest's ten parameter names all differ by it.
fn name_fingerprint(name: &[u8]) -> u32 {
    let lower = |b: Option<&u8>| u32::from(b.map_or(0, |b| b | 0x20));
    // (The length is reduced first: no sum can overflow, whatever the name's size.)
    (lower(name.first()) * 31 + lower(name.last()) * 7 + (name.len() % 64) as u32) % 64
}

/// Parses `token BWS "=" BWS ( token / quoted-string )` at `start`; returns it and the index
/// just after it.
fn parse_one(
    input: &[u8],
    start: usize,
    after_comma: bool,
) -> Result<(AuthParam<'_>, usize), SyntaxError> {
    let mut i = tchar_end(input, start);
    if i == start {
        return Err(SyntaxError::InvalidParam);
    }
    let name = &input[start..i];
    let after_name = i;
    i = skip_ows(input, i);
    if input.get(i) != Some(&b'=') {
        // `token 1*SP` followed by more: the start of another credentials, as when two field
        // lines were joined with a comma.
        if after_comma
            && i > after_name
            && input[after_name] == b' '
            && i < input.len()
            && input[i] != b','
        {
            return Err(SyntaxError::MultipleCredentials);
        }
        return Err(SyntaxError::InvalidParam);
    }
    i += 1;
    i = skip_ows(input, i);
    if input.get(i) == Some(&b'"') {
        let (value, next) = parse_quoted(input, i)?;
        return Ok((
            AuthParam {
                name,
                value,
                quoted: true,
            },
            next,
        ));
    }
    let value_start = i;
    i = tchar_end(input, i);
    if i == value_start {
        return Err(SyntaxError::InvalidParam);
    }
    Ok((
        AuthParam {
            name,
            value: Cow::Borrowed(&input[value_start..i]),
            quoted: false,
        },
        i,
    ))
}

/// Parses the quoted-string whose opening `"` is at `start`; returns its unescaped content and
/// the index just after the closing `"`.
fn parse_quoted(input: &[u8], start: usize) -> Result<(Cow<'_, [u8]>, usize), SyntaxError> {
    let body = &input[start + 1..];
    // The common case: no quoted-pair, the content is borrowed as is.
    let mut owned: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < body.len() {
        // Runs of plain qdtext (neither `"` nor `\\`), the bulk of any value: 16 bytes at a
        // time while a whole chunk is qdtext, then a byte at a time.
        if owned.is_none() {
            i += qdtext_run(&body[i..]);
            if i == body.len() {
                break;
            }
        }
        match body[i] {
            b'"' => {
                let value = match owned {
                    Some(v) => Cow::Owned(v),
                    None => Cow::Borrowed(&body[..i]),
                };
                return Ok((value, start + 1 + i + 1));
            }
            b'\\' => {
                let escaped = *body
                    .get(i + 1)
                    .ok_or(SyntaxError::UnterminatedQuotedString)?;
                if !is_quoted_pair_char(escaped) {
                    return Err(SyntaxError::InvalidParam);
                }
                owned
                    .get_or_insert_with(|| body[..i].to_vec())
                    .push(escaped);
                i += 2;
            }
            b if is_qdtext(b) => {
                if let Some(v) = owned.as_mut() {
                    v.push(b);
                }
                i += 1;
            }
            _ => return Err(SyntaxError::InvalidParam),
        }
    }
    Err(SyntaxError::UnterminatedQuotedString)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Vec<(String, Vec<u8>)>, SyntaxError> {
        AuthParams::parse(s.as_bytes()).map(|p| {
            p.iter()
                .map(|p| (p.name().to_owned(), p.value().to_vec()))
                .collect()
        })
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        items
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn tokens_quoted_strings_and_whitespace() {
        assert_eq!(
            parse(r#"a=1, b="two words",c = "x\"y\\z" ,d=t~k"#).unwrap(),
            pairs(&[
                ("a", "1"),
                ("b", "two words"),
                ("c", "x\"y\\z"),
                ("d", "t~k")
            ])
        );
        assert_eq!(parse(r#"a="""#).unwrap(), pairs(&[("a", "")]));
        assert_eq!(
            parse("a=1,,, b=2,").unwrap(),
            pairs(&[("a", "1"), ("b", "2")])
        );
        assert_eq!(parse(", a=1").unwrap(), pairs(&[("a", "1")]));
        assert_eq!(parse("\t, a=1").unwrap(), pairs(&[("a", "1")]));
        assert_eq!(
            parse("a=\"caf\u{e9}\"").unwrap(),
            vec![("a".to_owned(), "caf\u{e9}".as_bytes().to_vec())]
        );
        // An escaped obs-text byte and an escaped tab are kept as themselves.
        assert_eq!(parse("a=\"\\\t\"").unwrap(), pairs(&[("a", "\t")]));
    }

    #[test]
    fn malformed_lists() {
        use SyntaxError::*;
        for (input, want) in [
            ("", InvalidParam),
            ("   ", InvalidParam),
            (",,", InvalidParam),
            ("a", InvalidParam),
            ("a=", InvalidParam),
            ("=1", InvalidParam),
            ("a=1 b=2", InvalidParam),
            ("dTpw dTpx", InvalidParam),
            ("\ta=1", InvalidParam),
            ("a=\"open", UnterminatedQuotedString),
            ("a=\"ends in \\", UnterminatedQuotedString),
            ("a=\"ctl\r\"", InvalidParam),
            ("a=\"\\\r\"", InvalidParam),
            ("a=x\"y\"", InvalidParam),
            ("a=1, A=2", DuplicateParam),
            ("realm=\"x\", Realm=\"y\"", DuplicateParam),
            ("a=1, Basic dXNlcjpw", MultipleCredentials),
            ("a=1, Digest username=\"b\"", MultipleCredentials),
        ] {
            assert_eq!(parse(input).err(), Some(want), "{input:?}");
        }
        let commas = |n: usize| format!("a=1,{}b=2", ",".repeat(n));
        assert!(parse(&commas(MAX_EMPTY_ELEMENTS)).is_ok());
        assert_eq!(
            parse(&commas(MAX_EMPTY_ELEMENTS + 1)).err(),
            Some(TooManyEmptyElements)
        );
        let many: Vec<String> = (0..=MAX_PARAMS).map(|n| format!("p{n}=1")).collect();
        assert_eq!(parse(&many.join(",")).err(), Some(TooManyParams));
        assert!(parse(&many[..MAX_PARAMS].join(",")).is_ok());
    }

    #[test]
    fn names_of_one_fingerprint_are_compared_in_full() {
        // Same length, first and last letters: one fingerprint, different names.
        assert_eq!(name_fingerprint(b"axb"), name_fingerprint(b"AYB"));
        assert_eq!(
            parse("axb=1, ayb=2, azb=3").unwrap(),
            pairs(&[("axb", "1"), ("ayb", "2"), ("azb", "3")])
        );
        assert_eq!(
            parse("axb=1, ayb=2, AYB=3").err(),
            Some(SyntaxError::DuplicateParam)
        );
        // Digest's names all differ by fingerprint (so its lists compare no names).
        let names = [
            "username",
            "realm",
            "nonce",
            "uri",
            "algorithm",
            "response",
            "qop",
            "nc",
            "cnonce",
            "userhash",
        ];
        let mut prints: Vec<u32> = names
            .iter()
            .map(|n| name_fingerprint(n.as_bytes()))
            .collect();
        prints.sort_unstable();
        prints.dedup();
        assert_eq!(prints.len(), names.len());
    }

    #[test]
    fn serialising_and_parsing_again_is_the_identity() {
        let input = r#"username="Mu\"fa\\sa", realm="a b", nc=00000001, qop=auth, e="""#;
        let params = AuthParams::parse(input.as_bytes()).unwrap();
        let bytes = params.to_bytes();
        assert_eq!(AuthParams::parse(&bytes).unwrap(), params);
    }

    #[test]
    fn debug_hides_values() {
        let params = AuthParams::parse(br#"response="6629fae49393a05397450978507c4ef1""#).unwrap();
        assert!(!format!("{params:?}").contains("6629"));
    }
}
