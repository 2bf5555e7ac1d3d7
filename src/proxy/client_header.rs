//! The response header a client gets for a proxied answer: the backend's own header, edited
//! in place as plain `http` parts, then handed back to Pingora.
//!
//! Pingora reads a backend's header with a case map (each name's original spelling, kept in a
//! second map), and its `insert_header` parses every name it is given, copies it and hashes
//! it into both maps. The gateway adds about ten fields to every answer, so here the backend's
//! fields stay where they are (what a client must not see is removed), the gateway's go in with
//! names built once, and the header goes back without a case map: no name is parsed or copied.
//! Names then go out as Pingora titles them (`Content-Type`) or in lower case
//! (`x-ratelimit-limit`, `etag`), which HTTP/1.1 reads the same (RFC 9110 §5.1) and HTTP/2
//! requires anyway.

use http::response::Parts;
use http::HeaderName;
use pingora::http::ResponseHeader;

/// The backend's header out of `response` (which is left empty), without the fields named in
/// `dropped`, with room for `extra` more.
pub fn take(response: &mut ResponseHeader, dropped: &[HeaderName], extra: usize) -> Parts {
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: Parts = std::mem::replace(response, empty).into();
    for name in dropped {
        parts.headers.remove(name);
    }
    parts.headers.reserve(extra);
    parts
}

/// The edited header, in Pingora's form again.
pub fn finish(parts: Parts) -> ResponseHeader {
    ResponseHeader::from(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_every_field_but_the_dropped_ones() {
        let mut backend = ResponseHeader::build(200, None).unwrap();
        backend.append_header("Content-Type", "image/webp").unwrap();
        backend.append_header("Server", "imgproxy").unwrap();
        backend.append_header("Vary", "Accept").unwrap();
        backend.append_header("Vary", "Origin").unwrap();
        backend.append_header("X-Origin-Width", "640").unwrap();
        let mut parts = take(&mut backend, &[http::header::SERVER], 1);
        assert!(backend.headers.is_empty());
        parts.status = http::StatusCode::BAD_GATEWAY;
        parts.headers.insert(
            HeaderName::from_static("x-request-id"),
            http::HeaderValue::from_static("abc"),
        );
        let header = finish(parts);
        assert_eq!(header.status, 502);
        assert!(!header.has_case());
        // Fields of different names may change places; a repeated one keeps its order.
        let mut fields: Vec<(&str, &str)> = header
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        fields.sort_by_key(|(name, _)| *name);
        assert_eq!(
            fields,
            [
                ("content-type", "image/webp"),
                ("vary", "Accept"),
                ("vary", "Origin"),
                ("x-origin-width", "640"),
                ("x-request-id", "abc"),
            ]
        );
        let mut wire = Vec::new();
        header.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        let mut lines: Vec<&str> = wire.split_terminator("\r\n").collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "Content-Type: image/webp",
                "vary: Accept",
                "vary: Origin",
                "x-origin-width: 640",
                "x-request-id: abc",
            ]
        );
    }
}
