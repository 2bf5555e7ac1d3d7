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

use crate::limits::headers::Headers;
use crate::request_id;
use http::response::Parts;
use http::{HeaderName, HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::prelude::{ErrorType, OrErr, Result};

const X_IMAGE_ID: HeaderName = HeaderName::from_static("x-image-id");

/// The backend's response fields a client never sees: its `Server`.
const DROPPED: [HeaderName; 1] = [http::header::SERVER];

/// ... and, when the backend's error becomes the gateway's JSON error, what described its body.
const ERROR_DROPPED: [HeaderName; 3] = [
    http::header::SERVER,
    http::header::CONTENT_LENGTH,
    http::header::CONTENT_DISPOSITION,
];

/// Fields every answer gets in `finish` beside the limit headers (the request id), and the
/// most either shape adds before it.
const OWN_FIELDS: usize = 4;

/// An image answer: the backend's fields, with the gateway's `Cache-Control` and, for an
/// upload, the stored original's `X-Image-Id`. Room for `limits` limit headers.
pub fn image(
    response: &mut ResponseHeader,
    cache_control: HeaderValue,
    image_id: Option<&str>,
    limits: usize,
) -> Result<Parts> {
    let mut header = take(response, &DROPPED, OWN_FIELDS + limits);
    header
        .headers
        .insert(http::header::CACHE_CONTROL, cache_control);
    if let Some(id) = image_id {
        let id = HeaderValue::try_from(id).or_err(ErrorType::InvalidHTTPHeader, "image id")?;
        header.headers.insert(X_IMAGE_ID, id);
    }
    Ok(header)
}

/// A backend error turned into the gateway's JSON error (`status`), of a length known only at
/// its end.
pub fn error(response: &mut ResponseHeader, status: StatusCode, limits: usize) -> Parts {
    let mut header = take(response, &ERROR_DROPPED, OWN_FIELDS + limits);
    header.status = status;
    let fields = &mut header.headers;
    fields.insert(
        http::header::TRANSFER_ENCODING,
        HeaderValue::from_static("chunked"),
    );
    fields.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(crate::respond::JSON),
    );
    fields.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    header
}

/// The backend's header out of `response` (which is left empty), without the fields named in
/// `dropped`, with room for `extra` more.
fn take(response: &mut ResponseHeader, dropped: &[HeaderName], extra: usize) -> Parts {
    let empty = ResponseHeader::from(http::Response::new(()).into_parts().0);
    let mut parts: Parts = std::mem::replace(response, empty).into();
    for name in dropped {
        parts.headers.remove(name);
    }
    parts.headers.reserve(extra);
    parts
}

/// The edited header with the request id and the limit headers, in Pingora's form again.
pub fn finish(mut parts: Parts, request_id: HeaderValue, limits: Headers) -> ResponseHeader {
    let fields = &mut parts.headers;
    fields.insert(request_id::HEADER, request_id);
    for (name, value) in limits {
        fields.insert(name, value);
    }
    ResponseHeader::from(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> ResponseHeader {
        let mut backend = ResponseHeader::build(200, None).unwrap();
        for (name, value) in [
            ("Content-Type", "image/webp"),
            ("Content-Length", "5"),
            ("Content-Disposition", "inline"),
            ("Server", "imgproxy"),
            ("Vary", "Accept"),
            ("Vary", "Origin"),
            ("X-Origin-Width", "640"),
        ] {
            backend.append_header(name, value).unwrap();
        }
        backend
    }

    /// The header's fields by name (fields of different names may change places; a repeated
    /// one keeps its order), and its wire lines, sorted.
    fn fields_and_wire(header: &ResponseHeader) -> (Vec<(String, String)>, Vec<String>) {
        let mut fields: Vec<(String, String)> = header
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        let mut wire = Vec::new();
        header.header_to_h1_wire(&mut wire);
        let wire = String::from_utf8(wire).unwrap();
        let mut lines: Vec<String> = wire.split_terminator("\r\n").map(String::from).collect();
        lines.sort();
        (fields, lines)
    }

    fn limits() -> Headers {
        vec![(
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderValue::from_static("9"),
        )]
    }

    #[test]
    fn an_image_keeps_every_field_but_the_server() {
        let mut response = backend();
        let parts = image(
            &mut response,
            HeaderValue::from_static("private"),
            Some("img1"),
            1,
        )
        .unwrap();
        assert!(response.headers.is_empty());
        let header = finish(parts, HeaderValue::from_static("abc"), limits());
        assert_eq!(header.status, 200);
        assert!(!header.has_case());
        let (fields, wire) = fields_and_wire(&header);
        let expected = [
            ("cache-control", "private"),
            ("content-disposition", "inline"),
            ("content-length", "5"),
            ("content-type", "image/webp"),
            ("vary", "Accept"),
            ("vary", "Origin"),
            ("x-image-id", "img1"),
            ("x-origin-width", "640"),
            ("x-ratelimit-limit", "9"),
            ("x-request-id", "abc"),
        ];
        assert_eq!(fields, expected.map(|(n, v)| (n.into(), v.into())));
        assert_eq!(
            wire,
            [
                "Cache-Control: private",
                "Content-Length: 5",
                "Content-Type: image/webp",
                "content-disposition: inline",
                "vary: Accept",
                "vary: Origin",
                "x-image-id: img1",
                "x-origin-width: 640",
                "x-ratelimit-limit: 9",
                "x-request-id: abc",
            ]
        );
    }

    #[test]
    fn an_error_loses_what_described_the_backends_body() {
        let mut response = backend();
        let parts = error(&mut response, StatusCode::BAD_GATEWAY, 1);
        let header = finish(parts, HeaderValue::from_static("abc"), limits());
        assert_eq!(header.status, 502);
        let (fields, _) = fields_and_wire(&header);
        let expected = [
            ("cache-control", "no-store"),
            ("content-type", "application/json"),
            ("transfer-encoding", "chunked"),
            ("vary", "Accept"),
            ("vary", "Origin"),
            ("x-origin-width", "640"),
            ("x-ratelimit-limit", "9"),
            ("x-request-id", "abc"),
        ];
        assert_eq!(fields, expected.map(|(n, v)| (n.into(), v.into())));
    }
}
