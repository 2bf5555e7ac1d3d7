//! The one place that turns answers into bytes: JSON error bodies, JSON documents, and writing
//! them to a Pingora session with `X-Request-ID` and the right framing.

use crate::error::GatewayError;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use pingora::http::ResponseHeader;
use pingora::prelude::{ErrorType, OrErr, Session};
use pingora::Result;
use serde::Serialize;

pub const JSON: &str = "application/json";

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    request_id: &'a str,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    details: Option<serde_json::Value>,
}

/// `{"error":{"code","message","request_id"}}`
pub fn error_json(err: &GatewayError, request_id: &str) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody {
        error: ErrorFields {
            code: err.code(),
            message: err.to_string(),
            field: err.field(),
            request_id,
            details: err.details(),
        },
    })
    .unwrap_or_default()
}

/// A complete answer built in the gateway (not proxied).
pub struct Answer {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub headers: crate::limits::headers::Headers,
    pub body: Bytes,
}

impl Answer {
    pub fn json(status: StatusCode, value: &impl Serialize) -> Answer {
        Answer {
            status,
            content_type: JSON,
            headers: Vec::new(),
            body: Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
        }
    }

    pub fn bytes(status: StatusCode, content_type: &'static str, body: Bytes) -> Answer {
        Answer {
            status,
            content_type,
            headers: Vec::new(),
            body,
        }
    }

    pub fn error(err: &GatewayError, request_id: &str) -> Answer {
        Answer {
            status: err.status(),
            content_type: JSON,
            headers: err.headers(),
            body: Bytes::from(error_json(err, request_id)),
        }
    }

    /// The response header for this answer, carrying the request id. Built as plain `http`
    /// parts, so no name is parsed or copied (`proxy::client_header`).
    pub fn header(&self, request_id: &str) -> Result<ResponseHeader> {
        let mut parts = http::Response::new(()).into_parts().0;
        parts.status = self.status;
        let fields = &mut parts.headers;
        fields.reserve(4 + self.headers.len());
        fields.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        fields.insert(http::header::CONTENT_LENGTH, self.body.len().into());
        let id =
            HeaderValue::try_from(request_id).or_err(ErrorType::InvalidHTTPHeader, "request id")?;
        fields.insert(crate::request_id::HEADER, id);
        fields.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        for (name, value) in &self.headers {
            fields.insert(name.clone(), value.clone());
        }
        Ok(ResponseHeader::from(parts))
    }

    /// Write to the client. HEAD requests get the header only.
    pub async fn send(self, session: &mut Session, request_id: &str) -> Result<()> {
        let header = self.header(request_id)?;
        let head_only = session.req_header().method == http::Method::HEAD;
        session
            .write_response_header(Box::new(header), head_only || self.body.is_empty())
            .await?;
        if !head_only && !self.body.is_empty() {
            session.write_response_body(Some(self.body), true).await?;
        }
        Ok(())
    }
}

/// Build an `http::Response` for the admin and dev-backend apps (Pingora's `ServeHttp`).
pub fn to_http_response(answer: Answer, request_id: &str) -> http::Response<Vec<u8>> {
    let mut builder = http::Response::builder()
        .status(answer.status)
        .header(http::header::CONTENT_TYPE, answer.content_type)
        .header(http::header::CONTENT_LENGTH, answer.body.len())
        .header(http::header::CACHE_CONTROL, "no-store")
        .header(crate::request_id::HEADER, request_id);
    for (name, value) in answer.headers {
        builder = builder.header(name, value);
    }
    builder
        .body(answer.body.to_vec())
        .unwrap_or_else(|_| http::Response::new(Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_the_documented_shape() {
        let err = GatewayError::invalid("width", "must be a whole number");
        let body: serde_json::Value = serde_json::from_slice(&error_json(&err, "req-1")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "code": "invalid_parameter",
                "message": "width: must be a whole number",
                "field": "width",
                "request_id": "req-1"
            }})
        );
    }

    #[test]
    fn answers_carry_request_id_and_length() {
        let answer = Answer::error(&GatewayError::NoHealthyBackend, "abc");
        let header = answer.header("abc").unwrap();
        assert_eq!(header.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(header.headers["x-request-id"], "abc");
        assert_eq!(header.headers["retry-after"], "5");
        assert_eq!(
            header.headers["content-length"].to_str().unwrap(),
            answer.body.len().to_string()
        );
    }
}
