//! An imgproxy-compatible development server, so the gateway can be tried and tested on a
//! machine without imgproxy. It answers like imgproxy 3: `/health`, signed processing URLs in
//! plain and base64 forms, http(s) and `local://` sources, imgproxy's statuses and texts.

pub mod process;
pub mod url;

use crate::imgproxy::Signer;
use async_trait::async_trait;
use http::{Method, Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use process::ProcessError;
use std::path::PathBuf;
use std::time::Duration;
use url::UrlError;

/// imgproxy's default download timeout is 5 s; loopback sources answer far faster.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest source the dev backend downloads.
const MAX_SOURCE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone, Debug, Default)]
pub struct DevBackendOptions {
    pub key: Option<String>,
    pub salt: Option<String>,
    pub signature_size: usize,
    /// Root of `local://` sources (imgproxy's `IMGPROXY_LOCAL_FILESYSTEM_ROOT`).
    pub local_root: Option<PathBuf>,
}

pub struct DevBackend {
    signer: Signer,
    local_root: Option<PathBuf>,
    client: reqwest::Client,
}

/// A failure as imgproxy reports it: status and public text.
struct Failure(StatusCode, &'static str);

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
                Failure(StatusCode::UNPROCESSABLE_ENTITY, "Invalid source image")
            }
            ProcessError::UnsupportedFormat(_) => {
                Failure(StatusCode::UNPROCESSABLE_ENTITY, "Invalid URL")
            }
        }
    }
}

const UNREACHABLE: &str = "Source image is unreachable";

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
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(DevBackend {
            signer,
            local_root: options.local_root,
            client,
        })
    }

    async fn fetch(&self, source: &str) -> Result<Vec<u8>, Failure> {
        if let Some(path) = source.strip_prefix("local://") {
            return self.read_local(path).await;
        }
        if !(source.starts_with("http://") || source.starts_with("https://")) {
            return Err(Failure(StatusCode::NOT_FOUND, UNREACHABLE));
        }
        let response = self.client.get(source).send().await.map_err(|e| {
            if e.is_timeout() {
                Failure(StatusCode::GATEWAY_TIMEOUT, UNREACHABLE)
            } else {
                Failure(StatusCode::NOT_FOUND, UNREACHABLE)
            }
        })?;
        let status = response.status();
        if status != StatusCode::OK {
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
            return Err(Failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid source image",
            ));
        }
        let bytes = response.bytes().await.map_err(|e| {
            let status = if e.is_timeout() {
                StatusCode::GATEWAY_TIMEOUT
            } else {
                StatusCode::NOT_FOUND
            };
            Failure(status, UNREACHABLE)
        })?;
        if bytes.len() > MAX_SOURCE_BYTES {
            return Err(Failure(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid source image",
            ));
        }
        Ok(bytes.to_vec())
    }

    async fn read_local(&self, path: &str) -> Result<Vec<u8>, Failure> {
        let root = self
            .local_root
            .as_ref()
            .ok_or(Failure(StatusCode::NOT_FOUND, "Invalid source URL"))?;
        let file = local_path(root, path).ok_or(Failure(StatusCode::NOT_FOUND, UNREACHABLE))?;
        tokio::fs::read(file)
            .await
            .map_err(|_| Failure(StatusCode::NOT_FOUND, UNREACHABLE))
    }

    async fn convert(&self, path: &str) -> Result<Response<Vec<u8>>, Failure> {
        let rest = url::verify(&self.signer, path)?;
        let request = url::parse(rest)?;
        let source = self.fetch(&request.source).await?;
        let name = source_name(&request.source);
        let (bytes, output) =
            tokio::task::spawn_blocking(move || process::process(&source, &request))
                .await
                .map_err(|_| Failure(StatusCode::INTERNAL_SERVER_ERROR, "Internal error"))??;
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header("Content-Type", output.content_type())
            .header("Content-Length", bytes.len())
            .header(
                "Content-Disposition",
                format!("inline; filename=\"{name}.{}\"", output.extension()),
            )
            .header("Cache-Control", "max-age=31536000, public")
            .header("Server", "imgproxy")
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
                .convert(&path)
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
