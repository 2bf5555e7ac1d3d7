//! An imgproxy-compatible development server, so the gateway can be tried and tested on a
//! machine without imgproxy. It answers like imgproxy 4 wherever a test could otherwise pass
//! on a difference: `/health`, signed processing URLs in plain and base64 forms (with v3/v4's
//! `X:/Y` → `X://Y` rewrite before the signature check), http(s) and `local://` sources,
//! loopback and link-local source addresses refused unless allowed (`IMGPROXY_ALLOW_*`), the
//! 5 s download timeout, v4's statuses and texts, `ETag`/`Last-Modified` and 304s.

pub mod guard;
pub mod process;
pub mod url;

use crate::imgproxy::address::AddressPolicy;
use crate::imgproxy::Signer;
use async_trait::async_trait;
use http::{HeaderMap, Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use process::ProcessError;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::time::Duration;
use url::UrlError;

/// imgproxy's `IMGPROXY_DOWNLOAD_TIMEOUT` default.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest source the dev backend downloads.
const MAX_SOURCE_BYTES: usize = 64 * 1024 * 1024;
/// imgproxy's `IMGPROXY_TTL` default (v3.7+).
const CACHE_CONTROL: &str = "max-age=31536000, public";

#[derive(Clone, Debug, Default)]
pub struct DevBackendOptions {
    pub key: Option<String>,
    pub salt: Option<String>,
    pub signature_size: usize,
    /// Root of `local://` sources (imgproxy's `IMGPROXY_LOCAL_FILESYSTEM_ROOT`).
    pub local_root: Option<PathBuf>,
    /// Which source addresses may be fetched (imgproxy's `IMGPROXY_ALLOW_*_SOURCE_ADDRESSES`).
    pub addresses: AddressPolicy,
}

pub struct DevBackend {
    signer: Signer,
    local_root: Option<PathBuf>,
    addresses: AddressPolicy,
    client: reqwest::Client,
}

/// A failure as imgproxy 4 reports it: status and public text.
struct Failure(StatusCode, &'static str);

const UNREACHABLE: &str = "Source is unreachable";
const INVALID_SOURCE_URL: &str = "Invalid source URL";
const INVALID_IMAGE: &str = "Invalid source image";
const INCOMPLETE: &str = "Source response is incomplete";

impl From<UrlError> for Failure {
    fn from(e: UrlError) -> Failure {
        match e {
            UrlError::Signature(_) => Failure(StatusCode::FORBIDDEN, "Forbidden"),
            UrlError::Invalid(_) => Failure(StatusCode::NOT_FOUND, "Invalid URL"),
        }
    }
}

impl From<ProcessError> for Failure {
    fn from(e: ProcessError) -> Failure {
        match e {
            ProcessError::InvalidSource(_) => {
                Failure(StatusCode::UNPROCESSABLE_ENTITY, INVALID_IMAGE)
            }
            ProcessError::UnsupportedFormat(_) => {
                Failure(StatusCode::UNPROCESSABLE_ENTITY, "Invalid URL")
            }
        }
    }
}

/// How a failed download is reported.
fn download_failure(e: &reqwest::Error, body_started: bool) -> Failure {
    if e.is_timeout() {
        Failure(StatusCode::GATEWAY_TIMEOUT, UNREACHABLE)
    } else if guard::is_refusal(e) {
        Failure(StatusCode::NOT_FOUND, INVALID_SOURCE_URL)
    } else if body_started {
        Failure(StatusCode::UNPROCESSABLE_ENTITY, INCOMPLETE)
    } else {
        Failure(StatusCode::NOT_FOUND, UNREACHABLE)
    }
}

/// A downloaded source with what conditional requests need.
struct Fetched {
    bytes: Vec<u8>,
    last_modified: Option<String>,
}

/// The client's conditional request headers.
#[derive(Default)]
struct Conditions {
    if_none_match: Option<String>,
    if_modified_since: Option<String>,
}

impl Conditions {
    fn of(headers: &HeaderMap) -> Conditions {
        let get = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        Conditions {
            if_none_match: get(http::header::IF_NONE_MATCH),
            if_modified_since: get(http::header::IF_MODIFIED_SINCE),
        }
    }

    /// Whether the client's copy (`etag`, `last_modified`) is still good: 304.
    fn not_modified(&self, etag: &str, last_modified: Option<&str>) -> bool {
        if let Some(tags) = &self.if_none_match {
            return tags
                .split(',')
                .map(str::trim)
                .any(|t| t == etag || t == "*");
        }
        let parse = |t: &str| chrono::DateTime::parse_from_rfc2822(t.trim()).ok();
        match (
            self.if_modified_since.as_deref().and_then(parse),
            last_modified.and_then(parse),
        ) {
            (Some(since), Some(modified)) => modified <= since,
            _ => false,
        }
    }
}

/// An HTTP date (`Last-Modified`).
fn http_date(time: std::time::SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time)
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

fn text(status: StatusCode, body: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("Content-Type", "text/plain")
        .header("Content-Length", body.len())
        .header("Server", "imgproxy")
        .body(body.as_bytes().to_vec())
        .unwrap_or_else(|_| Response::new(Vec::new()))
}

impl DevBackend {
    pub fn new(options: DevBackendOptions) -> Result<DevBackend, String> {
        let size = if options.signature_size == 0 {
            32
        } else {
            options.signature_size
        };
        let signer = Signer::from_hex(options.key.as_deref(), options.salt.as_deref(), size)?;
        let addresses = options.addresses;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            let literal = attempt
                .url()
                .host_str()
                .and_then(|h| h.trim_start_matches('[').trim_end_matches(']').parse().ok());
            match literal.map(|ip| addresses.check(ip)) {
                Some(Err(refused)) => attempt.error(refused),
                _ if attempt.previous().len() >= 10 => attempt.stop(),
                _ => attempt.follow(),
            }
        });
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(redirects)
            .dns_resolver(guard::resolver(addresses))
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        Ok(DevBackend {
            signer,
            local_root: options.local_root,
            addresses,
            client,
        })
    }

    async fn fetch(&self, source: &str) -> Result<Fetched, Failure> {
        if let Some(path) = source.strip_prefix("local://") {
            return self.read_local(path).await;
        }
        let url =
            ::url::Url::parse(source).map_err(|_| Failure(StatusCode::NOT_FOUND, UNREACHABLE))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Failure(StatusCode::NOT_FOUND, UNREACHABLE));
        }
        let literal = match url.host() {
            Some(::url::Host::Ipv4(ip)) => Some(std::net::IpAddr::V4(ip)),
            Some(::url::Host::Ipv6(ip)) => Some(std::net::IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| self.addresses.check(ip).is_err()) {
            return Err(Failure(StatusCode::NOT_FOUND, INVALID_SOURCE_URL));
        }
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| download_failure(&e, false))?;
        let status = response.status();
        if status != StatusCode::OK {
            // imgproxy 4 passes a source's 4xx through and answers 502 for its 5xx.
            let passed = if status.is_client_error() {
                status
            } else if status.is_server_error() {
                StatusCode::BAD_GATEWAY
            } else {
                StatusCode::NOT_FOUND
            };
            return Err(Failure(passed, UNREACHABLE));
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > MAX_SOURCE_BYTES)
        {
            return Err(Failure(StatusCode::UNPROCESSABLE_ENTITY, INVALID_IMAGE));
        }
        let last_modified = response
            .headers()
            .get(http::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| download_failure(&e, true))?;
        if bytes.len() > MAX_SOURCE_BYTES {
            return Err(Failure(StatusCode::UNPROCESSABLE_ENTITY, INVALID_IMAGE));
        }
        Ok(Fetched {
            bytes: bytes.to_vec(),
            last_modified,
        })
    }

    async fn read_local(&self, path: &str) -> Result<Fetched, Failure> {
        let unreachable = || Failure(StatusCode::NOT_FOUND, UNREACHABLE);
        let root = self.local_root.as_ref().ok_or_else(unreachable)?;
        let file = local_path(root, path).ok_or_else(unreachable)?;
        let bytes = tokio::fs::read(&file).await.map_err(|_| unreachable())?;
        let modified = tokio::fs::metadata(&file)
            .await
            .ok()
            .and_then(|m| m.modified().ok());
        Ok(Fetched {
            bytes,
            last_modified: modified.map(http_date),
        })
    }

    async fn convert(
        &self,
        path: &str,
        conditions: Conditions,
    ) -> Result<Response<Vec<u8>>, Failure> {
        let rest = url::verify(&self.signer, path)?;
        let request = url::parse(&rest)?;
        let source = self.fetch(&request.source).await?;
        let etag = format!(
            "\"{}\"",
            &hex::encode(
                Sha256::new()
                    .chain_update(&rest)
                    .chain_update(&source.bytes)
                    .finalize()
            )[..32]
        );
        let last_modified = source.last_modified.clone();
        let cached = |builder: http::response::Builder| {
            let builder = builder
                .header("Cache-Control", CACHE_CONTROL)
                .header("ETag", etag.as_str())
                .header("Server", "imgproxy");
            match &last_modified {
                Some(time) => builder.header("Last-Modified", time.as_str()),
                None => builder,
            }
        };
        if conditions.not_modified(&etag, last_modified.as_deref()) {
            return Ok(cached(Response::builder().status(StatusCode::NOT_MODIFIED))
                .body(Vec::new())
                .unwrap_or_else(|_| Response::new(Vec::new())));
        }
        let name = source_name(&request.source);
        let bytes = source.bytes;
        let (bytes, output) =
            tokio::task::spawn_blocking(move || process::process(&bytes, &request))
                .await
                .map_err(|_| Failure(StatusCode::INTERNAL_SERVER_ERROR, "Internal error"))??;
        Ok(cached(Response::builder().status(StatusCode::OK))
            .header("Content-Type", output.content_type())
            .header("Content-Length", bytes.len())
            .header(
                "Content-Disposition",
                format!("inline; filename=\"{name}.{}\"", output.extension()),
            )
            .body(bytes)
            .unwrap_or_else(|_| Response::new(Vec::new())))
    }
}

/// A `local://` path under `root`, or `None` when it would leave it.
fn local_path(root: &std::path::Path, path: &str) -> Option<PathBuf> {
    let relative = path.trim_start_matches('/');
    let escapes = relative.split(['/', '\\']).any(|seg| seg == "..");
    (!escapes && !relative.is_empty()).then(|| root.join(relative))
}

/// The file name imgproxy puts in `Content-Disposition`: the source's last path segment
/// without its extension.
fn source_name(source: &str) -> String {
    let path = source.split(['?', '#']).next().unwrap_or("");
    path.rsplit('/')
        .next()
        .and_then(|last| last.split('.').next())
        .filter(|n| !n.is_empty() && !n.contains(':'))
        .unwrap_or("image")
        .replace('"', "%22")
}

#[async_trait]
impl ServeHttp for DevBackend {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        let conditions = Conditions::of(&req.headers);
        let request_id = req
            .headers
            .get("X-Request-ID")
            .filter(|v| {
                !v.is_empty()
                    && v.as_bytes()
                        .iter()
                        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            })
            .cloned();
        let mut response = match (&method, path.as_str()) {
            (&Method::GET, "/health") => {
                let mut r = text(StatusCode::OK, "imgproxy is running");
                r.headers_mut()
                    .insert("Cache-Control", http::HeaderValue::from_static("no-cache"));
                r
            }
            (&Method::GET, "/") => text(StatusCode::OK, "imgproxy-gateway development backend"),
            (&Method::GET, _) => self
                .convert(&path, conditions)
                .await
                .unwrap_or_else(|Failure(status, body)| text(status, body)),
            (&Method::HEAD | &Method::OPTIONS, _) => text(StatusCode::OK, ""),
            _ => text(StatusCode::NOT_FOUND, " "),
        };
        if let Some(id) = request_id {
            response.headers_mut().insert("X-Request-ID", id);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_stay_under_the_root() {
        let root = std::path::Path::new("/srv/images");
        assert_eq!(
            local_path(root, "/a/b.jpg"),
            Some(PathBuf::from("/srv/images/a/b.jpg"))
        );
        assert_eq!(local_path(root, "/../etc/passwd"), None);
        assert_eq!(local_path(root, "/a/../../x"), None);
        assert_eq!(local_path(root, "/"), None);
    }

    #[test]
    fn content_disposition_names() {
        assert_eq!(source_name("http://x.com/a/cat.jpg?v=1"), "cat");
        assert_eq!(source_name("local:///0123abcd"), "0123abcd");
        assert_eq!(source_name("http://x.com/"), "image");
    }
}
