//! Which public endpoint a request is for. Route templates (never raw paths) name endpoints in
//! logs and metrics.

use crate::access::Access;
use crate::error::{GatewayError, GatewayResult};
use crate::uploads::token::SOURCE_PREFIX;
use http::Method;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum Route {
    #[default]
    Unknown,
    Health,
    Ready,
    /// This API's OpenAPI document.
    OpenApi,
    Upload,
    Convert,
    /// A backend fetching an upload's original through a signed URL.
    Source(String),
    /// `GET /api/v1/users/{id}/quota`, for the caller's own id.
    Quota(String),
    /// The caller's stored uploads.
    Images,
    DeleteImage(String),
}

impl Route {
    pub fn template(&self) -> &'static str {
        match self {
            Route::Unknown => "unknown",
            Route::Health => "/api/v1/health",
            Route::Ready => "/api/v1/ready",
            Route::OpenApi => "/api/v1/openapi.json",
            Route::Upload => "/api/v1/upload",
            Route::Convert => "/api/v1/convert",
            Route::Source(_) => "/internal/v1/source/{id}",
            Route::Quota(_) => "/api/v1/users/{id}/quota",
            Route::Images => "/api/v1/images",
            Route::DeleteImage(_) => "/api/v1/images/{id}",
        }
    }

    /// What the route needs before its handler runs.
    pub fn access(&self) -> Access {
        match self {
            Route::Health | Route::Ready | Route::OpenApi => Access::Open,
            Route::Source(_) => Access::Signed,
            Route::Quota(_) => Access::Key,
            Route::Upload | Route::Convert | Route::Images | Route::DeleteImage(_) => {
                Access::Metered
            }
            // Never admitted: `resolve` answers 404 (spending an IP token) first.
            Route::Unknown => Access::Signed,
        }
    }
}

/// The `method` label of a metric: a served method, or `OTHER`, so no client can create
/// series by inventing methods. Any method reaches routing: a known path answers one it does
/// not serve 405 with `Allow` (RFC 9110 §15.5.6), whether standard (`TRACE`) or not (`FOO`).
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

/// `Ok` when `method` is one of `allowed` (HEAD counts as GET), else 405 with `Allow`.
pub fn check_method(method: &Method, allowed: &'static str) -> GatewayResult<()> {
    // Split at the comma (a byte search), not at ", " (a substring search to set up).
    let ok = allowed
        .split(',')
        .any(|m| m.trim_start() == method.as_str())
        || (method == Method::HEAD && allowed.contains("GET"));
    if ok {
        Ok(())
    } else {
        Err(GatewayError::MethodNotAllowed {
            method: method.to_string(),
            allow: allowed,
        })
    }
}

fn allow(method: &Method, allowed: &'static str, route: Route) -> GatewayResult<Route> {
    check_method(method, allowed).map(|()| route)
}

/// Largest request header section (names and values) either listener reads, and largest
/// single value; nginx's defaults are of the same order.
const MAX_HEADER_BYTES: usize = 32 * 1024;
const MAX_HEADER_VALUE: usize = 8 * 1024;

/// 431 for a header section past the bounds, 400 for a path with control characters: checked
/// first on both listeners, before any route or key is looked at.
pub fn check_request(req: &http::request::Parts) -> GatewayResult<()> {
    let mut total = 0;
    for (name, value) in &req.headers {
        let size = name.as_str().len() + value.len();
        total += size;
        if value.len() > MAX_HEADER_VALUE || total > MAX_HEADER_BYTES {
            return Err(GatewayError::HeadersTooLarge(format!(
                "request headers must be at most {} KiB, each value at most {} KiB",
                MAX_HEADER_BYTES / 1024,
                MAX_HEADER_VALUE / 1024
            )));
        }
    }
    if req.uri.path().bytes().any(|b| b.is_ascii_control()) {
        return Err(GatewayError::BadRequest(
            "the path contains control characters".into(),
        ));
    }
    Ok(())
}

/// Whether an HTTP/1 request carries a body: it is chunked, or its `Content-Length` is
/// anything but 0 (the framing Pingora reads it by). Read off the header, so that asking does
/// not set up Pingora's body reader for a request that has none.
pub fn has_body(req: &http::request::Parts) -> bool {
    req.headers.contains_key(http::header::TRANSFER_ENCODING)
        || req
            .headers
            .get_all(http::header::CONTENT_LENGTH)
            .iter()
            .any(|length| length.as_bytes().iter().any(|&b| b != b'0'))
}

/// Resolve `method path` (path without query) to a route.
pub fn resolve(method: &Method, path: &str) -> GatewayResult<Route> {
    match path {
        "/api/v1/health" => allow(method, "GET", Route::Health),
        "/api/v1/ready" => allow(method, "GET", Route::Ready),
        "/api/v1/openapi.json" => allow(method, "GET", Route::OpenApi),
        "/api/v1/upload" => allow(method, "POST", Route::Upload),
        "/api/v1/convert" => allow(method, "GET", Route::Convert),
        "/api/v1/images" => allow(method, "GET", Route::Images),
        _ => {
            if let Some(id) = segment(path, SOURCE_PREFIX, "") {
                return allow(method, "GET", Route::Source(id));
            }
            if let Some(id) = segment(path, "/api/v1/users/", "/quota") {
                return allow(method, "GET", Route::Quota(id));
            }
            if let Some(id) = segment(path, "/api/v1/images/", "") {
                return allow(method, "DELETE", Route::DeleteImage(id));
            }
            Err(GatewayError::NotFound(format!(
                "no route for {method} {}",
                crate::imgproxy::params::clip(path)
            )))
        }
    }
}

/// The one non-empty path segment between `prefix` and `suffix`.
fn segment(path: &str, prefix: &str, suffix: &str) -> Option<String> {
    let id = path.strip_prefix(prefix)?.strip_suffix(suffix)?;
    (!id.is_empty() && !id.contains('/')).then(|| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_is_read_off_the_framing_fields() {
        let parts = |fields: &[(&str, &str)]| {
            let mut req = http::Request::builder().uri("/api/v1/convert");
            for (name, value) in fields {
                req = req.header(*name, *value);
            }
            req.body(()).unwrap().into_parts().0
        };
        assert!(!has_body(&parts(&[])));
        assert!(!has_body(&parts(&[("Content-Length", "0")])));
        assert!(!has_body(&parts(&[("Content-Length", "00")])));
        assert!(has_body(&parts(&[("Content-Length", "1")])));
        assert!(has_body(&parts(&[("Content-Length", "10")])));
        assert!(has_body(&parts(&[("Transfer-Encoding", "chunked")])));
        assert!(has_body(&parts(&[
            ("Content-Length", "0"),
            ("Content-Length", "5")
        ])));
    }

    #[test]
    fn resolves_every_route() {
        assert_eq!(
            resolve(&Method::GET, "/api/v1/images").unwrap(),
            Route::Images
        );
        assert_eq!(
            resolve(&Method::DELETE, "/api/v1/images/abc").unwrap(),
            Route::DeleteImage("abc".into())
        );
        assert_eq!(
            resolve(&Method::GET, "/api/v1/images/abc")
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(
            resolve(&Method::DELETE, "/api/v1/images/a/b")
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            resolve(&Method::GET, "/api/v1/users/u-1/quota").unwrap(),
            Route::Quota("u-1".into())
        );
        assert_eq!(
            resolve(&Method::GET, "/api/v1/health").unwrap(),
            Route::Health
        );
        assert_eq!(
            resolve(&Method::HEAD, "/api/v1/ready").unwrap(),
            Route::Ready
        );
        assert_eq!(
            resolve(&Method::POST, "/api/v1/upload").unwrap(),
            Route::Upload
        );
        assert_eq!(
            resolve(&Method::GET, "/api/v1/convert").unwrap(),
            Route::Convert
        );
        assert_eq!(
            resolve(&Method::GET, "/internal/v1/source/abc").unwrap(),
            Route::Source("abc".into())
        );
    }

    #[test]
    fn wrong_methods_and_unknown_paths() {
        let err = resolve(&Method::GET, "/api/v1/upload").unwrap_err();
        assert_eq!(err.status(), 405);
        assert_eq!(
            err.headers(),
            vec![(http::header::ALLOW, http::HeaderValue::from_static("POST"))]
        );
        assert_eq!(
            resolve(&Method::DELETE, "/api/v1/convert")
                .unwrap_err()
                .status(),
            405
        );
        assert_eq!(resolve(&Method::GET, "/nope").unwrap_err().status(), 404);
        assert_eq!(
            resolve(&Method::GET, "/internal/v1/source/a/b")
                .unwrap_err()
                .status(),
            404
        );
    }
}
