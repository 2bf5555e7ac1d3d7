//! The response header a client gets for a proxied answer: the backend's fields the gateway
//! keeps, in a header of the gateway's own.
//!
//! Pingora reads a backend's header with a case map (the original spelling of every name,
//! kept in a second map), and every field inserted into such a header is parsed, allocated and
//! hashed twice. A header without a case map takes the gateway's ten or so fields at half the
//! cost; names go out as Pingora titles them (`Content-Type`) or in lower case (`x-ratelimit-limit`),
//! which HTTP/1.1 reads the same (RFC 9110 §5.1) and HTTP/2 requires anyway.

use http::header::HeaderName;
use pingora::http::ResponseHeader;
use pingora::prelude::Result;

/// The backend's header with `status`, without the fields named in `dropped`, and room for
/// `extra` more fields.
pub fn from_backend(
    backend: &ResponseHeader,
    status: http::StatusCode,
    dropped: &[HeaderName],
    extra: usize,
) -> Result<ResponseHeader> {
    let mut header = ResponseHeader::build_no_case(status, Some(backend.headers.len() + extra))?;
    header.set_version(backend.version);
    for (name, value) in backend.headers.iter() {
        if !dropped.contains(name) {
            header.append_header(name, value.clone())?;
        }
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_field_but_the_dropped_ones_in_order() {
        let mut backend = ResponseHeader::build(200, None).unwrap();
        backend.append_header("Content-Type", "image/webp").unwrap();
        backend.append_header("Server", "imgproxy").unwrap();
        backend.append_header("Vary", "Accept").unwrap();
        backend.append_header("Vary", "Origin").unwrap();
        backend.append_header("X-Origin-Width", "640").unwrap();
        let header = from_backend(
            &backend,
            http::StatusCode::BAD_GATEWAY,
            &[http::header::SERVER],
            3,
        )
        .unwrap();
        assert_eq!(header.status, 502);
        assert!(!header.has_case());
        let fields: Vec<(&str, &str)> = header
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            fields,
            [
                ("content-type", "image/webp"),
                ("vary", "Accept"),
                ("vary", "Origin"),
                ("x-origin-width", "640"),
            ]
        );
        let mut wire = Vec::new();
        header.header_to_h1_wire(&mut wire);
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "Content-Type: image/webp\r\nvary: Accept\r\nvary: Origin\r\nx-origin-width: 640\r\n"
        );
    }
}
