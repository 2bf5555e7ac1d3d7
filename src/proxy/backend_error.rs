//! Backend error answers keep their meaning for the client. imgproxy answers errors as short
//! plain text; the gateway rewrites them into its JSON error shape.
//!
//! Pingora sends the response header before the body is read, so the status is decided from
//! the backend's status alone and the body (imgproxy's message) refines code and message.

use crate::error::GatewayError;
use http::StatusCode;

/// Longest backend error text kept; imgproxy's messages are a few dozen bytes.
const MAX_TEXT: usize = 512;

/// The status the client gets for a backend's error status.
pub fn client_status(backend: u16) -> StatusCode {
    match backend {
        400 => StatusCode::BAD_REQUEST,
        404 => StatusCode::NOT_FOUND,
        413 | 422 => StatusCode::UNPROCESSABLE_ENTITY,
        // imgproxy's own timeout (503) and a source that timed out (504).
        503 | 504 => StatusCode::GATEWAY_TIMEOUT,
        // 403 means the backend refused our signature: a gateway misconfiguration, not the
        // client's fault. 429 means the backend's queue is full. Both, and every 5xx, are 502.
        _ => StatusCode::BAD_GATEWAY,
    }
}

/// The JSON error for a backend answer `(status, text)`; its status equals `client_status`.
pub fn classify(backend: u16, text: &str) -> GatewayError {
    let text = text.trim();
    match client_status(backend).as_u16() {
        400 => GatewayError::BadRequest(format!("the backend refused the request: {text}")),
        404 if text.contains("Invalid URL") || text.contains("Invalid source URL") => {
            GatewayError::SourceNotFound(format!("the backend cannot use this source ({text})"))
        }
        404 => {
            GatewayError::SourceNotFound(format!("the source image could not be fetched ({text})"))
        }
        422 => {
            GatewayError::InvalidImage(format!("the backend cannot process this image ({text})"))
        }
        504 => GatewayError::BackendTimeout,
        _ if backend == 403 => GatewayError::BackendFailed(
            "the backend refused the gateway's URL signature; check imgproxy.key and imgproxy.salt"
                .into(),
        ),
        _ if backend == 429 => GatewayError::BackendFailed("the backend is overloaded".into()),
        _ => GatewayError::BackendFailed(format!("the backend failed with status {backend}")),
    }
}

/// A backend error body being collected until its end.
#[derive(Debug)]
pub struct Capture {
    pub backend_status: u16,
    text: Vec<u8>,
}

impl Capture {
    pub fn new(backend_status: u16) -> Capture {
        Capture {
            backend_status,
            text: Vec::new(),
        }
    }

    pub fn push(&mut self, chunk: &[u8]) {
        let room = MAX_TEXT.saturating_sub(self.text.len());
        self.text.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    pub fn error(&self) -> GatewayError {
        classify(self.backend_status, &String::from_utf8_lossy(&self.text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imgproxy_errors_keep_their_meaning() {
        for (status, text, client, code) in [
            (404, "Source image is unreachable", 404, "source_not_found"),
            (404, "Invalid URL", 404, "source_not_found"),
            (422, "Invalid source image", 422, "invalid_image"),
            (400, "Bad request", 400, "bad_request"),
            (403, "Forbidden", 502, "bad_gateway"),
            (500, "Internal error", 502, "bad_gateway"),
            (503, "Timeout", 504, "gateway_timeout"),
            (429, "Too many requests", 502, "bad_gateway"),
        ] {
            let err = classify(status, text);
            assert_eq!(err.status().as_u16(), client, "{status} {text}");
            assert_eq!(client_status(status).as_u16(), client);
            assert_eq!(err.code(), code, "{status} {text}");
        }
    }

    #[test]
    fn capture_is_bounded() {
        let mut capture = Capture::new(422);
        for _ in 0..100 {
            capture.push(&[b'x'; 100]);
        }
        assert!(capture.error().to_string().len() < MAX_TEXT + 100);
    }
}
