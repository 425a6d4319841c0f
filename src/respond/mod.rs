//! Responding: a [`Rejection`] rendered as a complete response, and the response body type.
//!
//! Every response the layer makes itself is complete and reusable: the status, one field line
//! per challenge, `Retry-After` where it applies, a body (the short text of
//! [`Rejection::default_text`], or a hook's) with an exact `Content-Length`, and the
//! keep-alive rule. Many clients send credentials only after a 401/407 and retry on the same
//! connection, so a rejection keeps the connection open, except:
//!
//! - 431: the client sent too much to trust the rest of its stream;
//! - an HTTP/1.x request whose body the layer leaves unread: the server cannot find the next
//!   request behind it (RFC 9112 §9.6);
//! - an HTTP/1.0 request without `Connection: keep-alive`, which the server closes anyway
//!   (RFC 9112 §9.3): the response says so.
//!
//! In each case the response carries `Connection: close`.

mod body;
mod render;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, TRANSFER_ENCODING};
use http::request::Parts;
use http::{HeaderValue, Response, Version};

pub use body::ResponseBody;
pub use render::RejectionBody;
pub(crate) use render::RenderHook;

use crate::decide::Rejection;

/// `rejection` as a response to `request`, its body written by `hook` if there is one.
pub(crate) fn render(
    rejection: &Rejection,
    request: &Parts,
    hook: Option<&RenderHook>,
) -> Response<Bytes> {
    let (content_type, body, extra) = match hook {
        Some(hook) => hook(rejection, request).into_parts(),
        None => (
            HeaderValue::from_static("text/plain; charset=utf-8"),
            Bytes::from_static(rejection.default_text().as_bytes()),
            http::HeaderMap::new(),
        ),
    };
    let party = rejection.party();
    let challenge_header = party.challenge_header();
    let length = body.len();
    let mut response = Response::new(body);
    *response.status_mut() = rejection.status();
    let headers = response.headers_mut();
    headers.reserve(4 + rejection.challenges().len() + extra.len());
    for challenge in rejection.challenges() {
        headers.append(challenge_header.clone(), challenge.clone());
    }
    if let Some(seconds) = rejection.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
    }
    let mut name = None;
    for (key, value) in extra {
        // `None` keys continue the previous name's values.
        if key.is_some() {
            name = key;
        }
        if let Some(name) = &name {
            let owned = [
                &CONTENT_LENGTH,
                &TRANSFER_ENCODING,
                &CONNECTION,
                &CONTENT_TYPE,
                &RETRY_AFTER,
                &challenge_header,
            ];
            if !owned.contains(&name) {
                headers.append(name.clone(), value);
            }
        }
    }
    if rejection.closes_connection() || closes_after(request) {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(CONTENT_LENGTH, content_length(length));
    response
}
/// `Content-Length` values for bodies under 128 bytes (every default text), as static field
/// values: no allocation per rejection.
static SMALL_LENGTHS: [HeaderValue; 128] = [
    HeaderValue::from_static("0"),
    HeaderValue::from_static("1"),
    HeaderValue::from_static("2"),
    HeaderValue::from_static("3"),
    HeaderValue::from_static("4"),
    HeaderValue::from_static("5"),
    HeaderValue::from_static("6"),
    HeaderValue::from_static("7"),
    HeaderValue::from_static("8"),
    HeaderValue::from_static("9"),
    HeaderValue::from_static("10"),
    HeaderValue::from_static("11"),
    HeaderValue::from_static("12"),
    HeaderValue::from_static("13"),
    HeaderValue::from_static("14"),
    HeaderValue::from_static("15"),
    HeaderValue::from_static("16"),
    HeaderValue::from_static("17"),
    HeaderValue::from_static("18"),
    HeaderValue::from_static("19"),
    HeaderValue::from_static("20"),
    HeaderValue::from_static("21"),
    HeaderValue::from_static("22"),
    HeaderValue::from_static("23"),
    HeaderValue::from_static("24"),
    HeaderValue::from_static("25"),
    HeaderValue::from_static("26"),
    HeaderValue::from_static("27"),
    HeaderValue::from_static("28"),
    HeaderValue::from_static("29"),
    HeaderValue::from_static("30"),
    HeaderValue::from_static("31"),
    HeaderValue::from_static("32"),
    HeaderValue::from_static("33"),
    HeaderValue::from_static("34"),
    HeaderValue::from_static("35"),
    HeaderValue::from_static("36"),
    HeaderValue::from_static("37"),
    HeaderValue::from_static("38"),
    HeaderValue::from_static("39"),
    HeaderValue::from_static("40"),
    HeaderValue::from_static("41"),
    HeaderValue::from_static("42"),
    HeaderValue::from_static("43"),
    HeaderValue::from_static("44"),
    HeaderValue::from_static("45"),
    HeaderValue::from_static("46"),
    HeaderValue::from_static("47"),
    HeaderValue::from_static("48"),
    HeaderValue::from_static("49"),
    HeaderValue::from_static("50"),
    HeaderValue::from_static("51"),
    HeaderValue::from_static("52"),
    HeaderValue::from_static("53"),
    HeaderValue::from_static("54"),
    HeaderValue::from_static("55"),
    HeaderValue::from_static("56"),
    HeaderValue::from_static("57"),
    HeaderValue::from_static("58"),
    HeaderValue::from_static("59"),
    HeaderValue::from_static("60"),
    HeaderValue::from_static("61"),
    HeaderValue::from_static("62"),
    HeaderValue::from_static("63"),
    HeaderValue::from_static("64"),
    HeaderValue::from_static("65"),
    HeaderValue::from_static("66"),
    HeaderValue::from_static("67"),
    HeaderValue::from_static("68"),
    HeaderValue::from_static("69"),
    HeaderValue::from_static("70"),
    HeaderValue::from_static("71"),
    HeaderValue::from_static("72"),
    HeaderValue::from_static("73"),
    HeaderValue::from_static("74"),
    HeaderValue::from_static("75"),
    HeaderValue::from_static("76"),
    HeaderValue::from_static("77"),
    HeaderValue::from_static("78"),
    HeaderValue::from_static("79"),
    HeaderValue::from_static("80"),
    HeaderValue::from_static("81"),
    HeaderValue::from_static("82"),
    HeaderValue::from_static("83"),
    HeaderValue::from_static("84"),
    HeaderValue::from_static("85"),
    HeaderValue::from_static("86"),
    HeaderValue::from_static("87"),
    HeaderValue::from_static("88"),
    HeaderValue::from_static("89"),
    HeaderValue::from_static("90"),
    HeaderValue::from_static("91"),
    HeaderValue::from_static("92"),
    HeaderValue::from_static("93"),
    HeaderValue::from_static("94"),
    HeaderValue::from_static("95"),
    HeaderValue::from_static("96"),
    HeaderValue::from_static("97"),
    HeaderValue::from_static("98"),
    HeaderValue::from_static("99"),
    HeaderValue::from_static("100"),
    HeaderValue::from_static("101"),
    HeaderValue::from_static("102"),
    HeaderValue::from_static("103"),
    HeaderValue::from_static("104"),
    HeaderValue::from_static("105"),
    HeaderValue::from_static("106"),
    HeaderValue::from_static("107"),
    HeaderValue::from_static("108"),
    HeaderValue::from_static("109"),
    HeaderValue::from_static("110"),
    HeaderValue::from_static("111"),
    HeaderValue::from_static("112"),
    HeaderValue::from_static("113"),
    HeaderValue::from_static("114"),
    HeaderValue::from_static("115"),
    HeaderValue::from_static("116"),
    HeaderValue::from_static("117"),
    HeaderValue::from_static("118"),
    HeaderValue::from_static("119"),
    HeaderValue::from_static("120"),
    HeaderValue::from_static("121"),
    HeaderValue::from_static("122"),
    HeaderValue::from_static("123"),
    HeaderValue::from_static("124"),
    HeaderValue::from_static("125"),
    HeaderValue::from_static("126"),
    HeaderValue::from_static("127"),
];

/// The `Content-Length` value for `length`.
fn content_length(length: usize) -> HeaderValue {
    match SMALL_LENGTHS.get(length) {
        Some(value) => value.clone(),
        None => HeaderValue::from(length),
    }
}

/// Whether the connection cannot carry another request after a rejection of `request`: an
/// HTTP/1.x request with a body left unread (`Transfer-Encoding`, or a `Content-Length` other
/// than 0), or an HTTP/1.0 request that did not ask for keep-alive. HTTP/2 and later reset a
/// stream instead.
pub(crate) fn closes_after(request: &Parts) -> bool {
    if request.version > Version::HTTP_11 {
        return false;
    }
    let unread_body = request.headers.contains_key(TRANSFER_ENCODING)
        || request
            .headers
            .get(CONTENT_LENGTH)
            .is_some_and(|len| len.as_bytes().iter().any(|&b| b != b'0'));
    let http10_close = request.version <= Version::HTTP_10
        && !request.headers.get_all(CONNECTION).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"keep-alive"))
        });
    unread_body || http10_close
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_lengths_are_the_decimal_length() {
        for n in [0, 1, 9, 10, 99, 100, 127, 128, 4096] {
            assert_eq!(content_length(n), n.to_string().as_str());
        }
    }
}
