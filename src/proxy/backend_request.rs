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
