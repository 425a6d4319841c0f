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

use crate::decide::{Rejection, RejectionKind};

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
    if rejection.kind() == RejectionKind::CredentialsTooLarge || closes_after(request) {
        headers.insert(CONNECTION, HeaderValue::from_static("close"));
    }
    headers.insert(CONTENT_TYPE, content_type);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
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
