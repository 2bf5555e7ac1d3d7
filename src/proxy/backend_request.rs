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
/// dozen, a hostile client up to the header limit) are not worth copying. One pass over the
/// client's fields, moving the kept values: no name is hashed to look it up, no value cloned.
pub fn trim_client(client: &mut RequestHeader) {
    let empty = || http::Request::new(()).into_parts().0;
    let whole: http::request::Parts =
        std::mem::replace(client, RequestHeader::from(empty())).into();
    let mut kept = empty();
    kept.method = whole.method;
    kept.uri = whole.uri;
    kept.version = whole.version;
    // `into_iter` names a field's first value; its further values come with `None`.
    let mut name_kept = None;
    for (name, value) in whole.headers {
        if let Some(name) = name {
            name_kept = is_kept(&name).then_some(name);
        }
        if let Some(name) = &name_kept {
            kept.headers.append(name.clone(), value);
        }
    }
    *client = RequestHeader::from(kept);
}

fn is_kept(name: &HeaderName) -> bool {
    KEPT_FOR_PINGORA.contains(name) || FORWARDED_HEADERS.contains(name)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the kept fields stay, every value of each in order; the request line is untouched.
    #[test]
    fn trimming_keeps_every_value_of_the_kept_fields_only() {
        let mut client = RequestHeader::build("GET", b"/api/v1/convert?url=x", None).unwrap();
        for (name, value) in [
            ("Host", "gw.example"),
            ("X-API-Key", "secret"),
            ("If-None-Match", "\"a\""),
            ("Cookie", "c=1"),
            ("If-None-Match", "\"b\""),
            ("Transfer-Encoding", "chunked"),
            ("Authorization", "Bearer t"),
        ] {
            client.append_header(name, value).unwrap();
        }
        trim_client(&mut client);
        assert_eq!(client.method, http::Method::GET);
        assert_eq!(client.uri, "/api/v1/convert?url=x");
        let fields: Vec<(&str, &str)> = client
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            fields,
            [
                ("host", "gw.example"),
                ("if-none-match", "\"a\""),
                ("if-none-match", "\"b\""),
                ("transfer-encoding", "chunked"),
            ]
        );
    }
}
