//! The one error type of the gateway. Every failure a client can see is a variant here, with its
//! status and a stable machine-readable code; `respond` renders it.

use http::StatusCode;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// A request parameter is missing or wrong; names the parameter.
    #[error("{field}: {message}")]
    InvalidParameter {
        field: Cow<'static, str>,
        message: String,
    },
    #[error("{0}")]
    BadRequest(String),
    /// Access refused (401 or 403, by the reason).
    #[error("{0}")]
    Denied(#[from] crate::access::Denied),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    SourceNotFound(String),
    /// The source answered a 4xx (`source_status`); the client gets `status` (403 for an
    /// access refusal, 451 as it is, else 502).
    #[error("{message}")]
    SourceRefused {
        status: u16,
        source_status: u16,
        message: String,
    },
    /// The source failed (its 5xx, or an answer cut short).
    #[error("{0}")]
    SourceFailed(String),
    #[error("the source did not answer within the backend's download timeout")]
    SourceTimeout,
    #[error("method {method} is not allowed here; use {allow}")]
    MethodNotAllowed { method: String, allow: &'static str },
    #[error("the upload exceeds the limit of {limit_mb} MiB")]
    PayloadTooLarge { limit_mb: u64 },
    #[error("{0}")]
    HeadersTooLarge(String),
    #[error("{0}")]
    InvalidImage(String),
    #[error("{0}")]
    BackendFailed(String),
    #[error("no healthy backend is available")]
    NoHealthyBackend,
    #[error("{0}")]
    NotReady(String),
    #[error("the `{limit_type}` rate limit is exhausted; retry in {retry_after} s")]
    RateLimited {
        limit_type: &'static str,
        retry_after: u64,
    },
    #[error("the `{quota}` quota is used up ({used} of {limit})")]
    QuotaExceeded {
        quota: &'static str,
        limit: u64,
        used: u64,
        /// When the quota resets (none for storage, which only deleting frees).
        resets_at: Option<String>,
    },
    #[error("too many API keys are being verified; retry shortly")]
    AuthBusy,
    #[error("the backend did not answer in time")]
    BackendTimeout,
    #[error("every backend tried is busy (imgproxy's queue is full); retry shortly")]
    BackendBusy,
    #[error("{0}")]
    InsufficientStorage(String),
    #[error("{0}")]
    Internal(String),
}

impl GatewayError {
    pub fn invalid(field: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        GatewayError::InvalidParameter {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        use GatewayError::*;
        match self {
            InvalidParameter { .. } | BadRequest(_) => StatusCode::BAD_REQUEST,
            Denied(d) => d.status(),
            Forbidden(_) => StatusCode::FORBIDDEN,
            NotFound(_) | SourceNotFound(_) => StatusCode::NOT_FOUND,
            SourceRefused { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            SourceFailed(_) => StatusCode::BAD_GATEWAY,
            SourceTimeout => StatusCode::GATEWAY_TIMEOUT,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            QuotaExceeded { .. } => StatusCode::PAYMENT_REQUIRED,
            Conflict(_) => StatusCode::CONFLICT,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            InvalidImage(_) => StatusCode::UNPROCESSABLE_ENTITY,
            HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            BackendFailed(_) => StatusCode::BAD_GATEWAY,
            NoHealthyBackend | NotReady(_) | AuthBusy | BackendBusy => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            InsufficientStorage(_) => StatusCode::INSUFFICIENT_STORAGE,
            BackendTimeout => StatusCode::GATEWAY_TIMEOUT,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable code for clients to branch on; never changes once published.
    pub fn code(&self) -> &'static str {
        use GatewayError::*;
        match self {
            InvalidParameter { .. } => "invalid_parameter",
            BadRequest(_) => "bad_request",
            Denied(d) if d.status() == StatusCode::UNAUTHORIZED => "unauthorized",
            Denied(_) => "forbidden",
            Forbidden(_) => "forbidden",
            NotFound(_) => "not_found",
            Conflict(_) => "conflict",
            RateLimited { .. } => "rate_limited",
            QuotaExceeded { .. } => "quota_exceeded",
            SourceNotFound(_) => "source_not_found",
            SourceRefused { .. } => "source_refused",
            SourceFailed(_) => "source_failed",
            SourceTimeout => "source_timeout",
            MethodNotAllowed { .. } => "method_not_allowed",
            PayloadTooLarge { .. } => "payload_too_large",
            InvalidImage(_) => "invalid_image",
            HeadersTooLarge(_) => "headers_too_large",
            BackendFailed(_) => "bad_gateway",
            NoHealthyBackend => "no_healthy_backend",
            NotReady(_) => "not_ready",
            AuthBusy => "auth_busy",
            BackendTimeout => "gateway_timeout",
            BackendBusy => "backend_busy",
            InsufficientStorage(_) => "insufficient_storage",
            Internal(_) => "internal_error",
        }
    }

    /// The request field an error is about, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            GatewayError::InvalidParameter { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Machine-readable facts some errors add to their JSON body.
    pub fn details(&self) -> Option<serde_json::Value> {
        match self {
            GatewayError::RateLimited {
                limit_type,
                retry_after,
            } => Some(serde_json::json!({"limit_type": limit_type, "retry_after": retry_after})),
            GatewayError::QuotaExceeded {
                quota,
                limit,
                used,
                resets_at,
            } => Some(
                serde_json::json!({"quota": quota, "limit": limit, "used": used,
                "resets_at": resets_at}),
            ),
            GatewayError::SourceRefused { source_status, .. } => {
                Some(serde_json::json!({"source_status": source_status}))
            }
            _ => None,
        }
    }

    /// Extra response headers this error needs (e.g. `Allow` on 405).
    pub fn headers(&self) -> crate::limits::headers::Headers {
        use http::HeaderValue;
        match self {
            GatewayError::MethodNotAllowed { allow, .. } => {
                vec![(http::header::ALLOW, HeaderValue::from_static(allow))]
            }
            GatewayError::NoHealthyBackend | GatewayError::NotReady(_) => {
                vec![(http::header::RETRY_AFTER, HeaderValue::from_static("5"))]
            }
            GatewayError::AuthBusy | GatewayError::BackendBusy => {
                vec![(http::header::RETRY_AFTER, HeaderValue::from_static("1"))]
            }
            GatewayError::RateLimited { retry_after, .. } => {
                vec![(http::header::RETRY_AFTER, HeaderValue::from(*retry_after))]
            }
            _ => Vec::new(),
        }
    }
}

pub type GatewayResult<T> = Result<T, GatewayError>;
