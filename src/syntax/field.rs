//! Reading the credentials field (`Proxy-Authorization` or `Authorization`) out of a header map.

use http::header::{HeaderMap, HeaderName};

use super::SyntaxError;

/// One pass over the field lines named `name`: their total size in bytes (for the size limit,
/// checked before any parsing), and the one value: `Ok(None)` when absent,
/// [`SyntaxError::MultipleCredentials`] for two or more lines (the field is not a list, RFC
/// 9110 §11.6.2 and §11.7.2).
pub fn credentials_field<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> (usize, Result<Option<&'a [u8]>, SyntaxError>) {
    let mut size = 0;
    let mut lines = 0;
    let mut first = None;
    for value in headers.get_all(name) {
        size += value.len();
        lines += 1;
        first.get_or_insert(value.as_bytes());
    }
    let field = if lines > 1 {
        Err(SyntaxError::MultipleCredentials)
    } else {
        Ok(first)
    };
    (size, field)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::PROXY_AUTHORIZATION;

    #[test]
    fn one_line_two_lines_none() {
        let mut h = HeaderMap::new();
        assert_eq!(credentials_field(&h, &PROXY_AUTHORIZATION), (0, Ok(None)));
        h.append(PROXY_AUTHORIZATION, "Basic dTpw".parse().unwrap());
        assert_eq!(
            credentials_field(&h, &PROXY_AUTHORIZATION),
            (10, Ok(Some(&b"Basic dTpw"[..])))
        );
        h.append(PROXY_AUTHORIZATION, "Basic dTpx".parse().unwrap());
        assert_eq!(
            credentials_field(&h, &PROXY_AUTHORIZATION),
            (20, Err(SyntaxError::MultipleCredentials))
        );
    }
}
