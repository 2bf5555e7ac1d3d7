//! Per-request state carried through the proxy phases.

use super::route::Route;
use crate::error::GatewayError;
use crate::imgproxy::Format;
use crate::upstream::state::BackendState;
use crate::upstream::{Generation, Tried};
use std::sync::Arc;
use std::time::Instant;

/// What the request asks a backend to do, prepared by the request stages.
#[derive(Debug, Default)]
pub struct Job {
    /// Signed imgproxy path (`/<sig>/<options>/<base64url(source)>.<ext>`), the backend
    /// request's target, parsed once (every attempt shares it).
    pub path: http::Uri,
    /// Whose source the backend fetches: the client's URL or the gateway's stored original.
    pub source: super::backend_error::SourceKind,
    pub format: Option<Format>,
    /// Set for uploads: the stored original's id, returned as `X-Image-Id`.
    pub image_id: Option<String>,
}

impl Job {
    /// The request target of a signed path (base64url, `/`, `:` and `.`: always a valid one).
    pub fn target(signed: Vec<u8>) -> Result<http::Uri, GatewayError> {
        http::Uri::try_from(signed)
            .map_err(|e| GatewayError::Internal(format!("signed path is not a target: {e}")))
    }
}

/// The state of the backend leg of a request.
#[derive(Default)]
pub struct UpstreamLeg {
    /// The pool generation of the first pick; retries pick from it too.
    pub generation: Option<Arc<Generation>>,
    pub tried: Tried,
    pub current: Option<Arc<BackendState>>,
    /// The backend's response header has arrived (no retry after this).
    pub responded: bool,
    /// When the request went to the current backend, and how long its response header took.
    pub sent_at: Option<Instant>,
    pub response_time: Option<std::time::Duration>,
    /// Pooled keep-alive connections that turned out closed by the backend.
    pub stale: u8,
    /// The current backend answered 429 (its queue is full); retried once elsewhere.
    pub busy: bool,
    pub busy_retries: u8,
    pub status: Option<u16>,
    /// A backend error answer being rewritten into a JSON error.
    pub error: Option<super::backend_error::Capture>,
}

impl UpstreamLeg {
    /// How many backends this request can try (its generation's).
    pub fn backends(&self) -> u32 {
        self.generation.as_ref().map_or(0, |g| g.len() as u32)
    }
}

pub struct Ctx {
    pub request_id: crate::request_id::RequestId,
    pub route: Route,
    pub started: Instant,
    pub caller: Option<Arc<crate::identity::Identity>>,
    /// The admitted request's limits and usage entry (bandwidth is counted when it ends).
    pub admission: Option<crate::limits::Admission>,
    /// The client's address as the whitelist and the IP limit see it.
    pub client_ip: Option<std::net::IpAddr>,
    /// Rate-limit and quota headers for every answer to this request.
    pub limit_headers: crate::limits::headers::Headers,
    pub job: Job,
    pub upstream: UpstreamLeg,
    /// Why the request failed, when the gateway decided it (rendered by `fail_to_proxy`).
    pub failure: Option<GatewayError>,
    /// The status the client got, for the access log.
    pub status: u16,
    /// Request body bytes read before an early answer; what the lingering close reads after
    /// it is thrown away and never billed.
    pub body_billed: Option<usize>,
}

impl Ctx {
    pub fn new() -> Ctx {
        Ctx {
            request_id: Default::default(),
            route: Route::Unknown,
            started: Instant::now(),
            caller: None,
            admission: None,
            client_ip: None,
            limit_headers: Vec::new(),
            job: Job::default(),
            upstream: UpstreamLeg::default(),
            failure: None,
            status: 0,
            body_billed: None,
        }
    }
}

impl Default for Ctx {
    fn default() -> Self {
        Ctx::new()
    }
}

impl Ctx {
    /// Keep a refusal's headers for the answer; the error to answer with.
    pub fn refused(&mut self, refusal: crate::limits::Refusal) -> GatewayError {
        self.limit_headers = refusal.headers;
        refusal.error
    }
}
