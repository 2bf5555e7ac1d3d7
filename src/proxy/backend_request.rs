//! The request a backend gets: the gateway's own, not the client's. GET of the signed imgproxy
//! path with only the headers the gateway chose, built as plain `http` parts (no name parsed
//! or copied, no case map; a backend reads names case-insensitively).

use super::ctx::Job;
use crate::request_id;
use http::{HeaderName, HeaderValue};
use pingora::http::RequestHeader;

/// The client's request headers a backend gets (conditional requests, so a 304 can come back);
/// every other header is the gateway's own. An allow-list: `Forwarded`, `X-Real-IP`, `Range`,
/// client hints, cookies and keys never reach imgproxy.
const FORWARDED_HEADERS: [HeaderName; 2] =
    [http::header::IF_NONE_MATCH, http::header::IF_MODIFIED_SINCE];

/// The client's fields Pingora still reads once a request goes to a backend: the body's framing
/// (it reads the body by them), whether the connection stays open, `Expect`, and `Host` (whether
/// the client sent one decides how Pingora checks the backend request's authority).
const KEPT_FOR_PINGORA: [HeaderName; 5] = [
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::CONNECTION,
    http::header::EXPECT,
    http::header::HOST,
];

/// Reduce the client's request, once admitted for a backend, to what that leg reads: its
/// method, target and version, the fields Pingora reads and the forwarded ones. Pingora copies
/// the client's request (every field, and a second map of their spellings) for each backend
/// attempt before `build` replaces the copy; the client's other fields (a browser sends a
/// dozen, a hostile client up to the header limit) are not worth copying.
pub fn trim_client(client: &mut RequestHeader) {
    let empty = || http::Request::new(()).into_parts().0;
    let mut whole: http::request::Parts =
        std::mem::replace(client, RequestHeader::from(empty())).into();
    let mut kept = empty();
    kept.method = std::mem::take(&mut whole.method);
    kept.uri = std::mem::take(&mut whole.uri);
    kept.version = whole.version;
    for name in KEPT_FOR_PINGORA.iter().chain(&FORWARDED_HEADERS) {
        for value in whole.headers.get_all(name) {
            kept.headers.append(name.clone(), value.clone());
        }
    }
    *client = RequestHeader::from(kept);
}

/// The request for `job`, to the backend named `host`, carrying `request_id` and the
/// forwarded headers of `client` (the client's request as Pingora copied it).
pub fn build(
    client: &RequestHeader,
    job: &Job,
    host: Option<HeaderValue>,
    request_id: HeaderValue,
) -> RequestHeader {
    let mut request = http::Request::new(()).into_parts().0;
    request.uri = job.path.clone();
    let fields = &mut request.headers;
    fields.reserve(2 + FORWARDED_HEADERS.len());
    if let Some(host) = host {
        fields.insert(http::header::HOST, host);
    }
    fields.insert(request_id::HEADER, request_id);
    for name in FORWARDED_HEADERS {
        if let Some(value) = client.headers.get(&name).cloned() {
            fields.insert(name, value);
        }
    }
    RequestHeader::from(request)
}
