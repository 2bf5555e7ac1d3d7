//! `POST /api/v1/upload`: stream a multipart body to disk under a fresh id, with the size limit
//! enforced from Content-Length when present and while streaming otherwise, then hand the
//! stored original to a backend. Nothing is left on disk when the upload fails.

use crate::db::images;
use crate::error::{GatewayError, GatewayResult};
use crate::imgproxy::{self, ImageParams};
use crate::limits::UploadCap;
use crate::proxy::backend_error::SourceKind;
use crate::proxy::ctx::Job;
use crate::state::{unix_now, AppState};
use crate::uploads::form::{self, BodyError, FileLimit};
use crate::uploads::{self, new_image_id};
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use pingora::prelude::Session;

/// Room for multipart boundaries and the small text fields around the file.
const ENVELOPE: u64 = 64 * 1024;

fn too_large(state: &AppState) -> GatewayError {
    GatewayError::PayloadTooLarge {
        limit_mb: *state.config().storage.max_upload_mb,
    }
}

/// The request body as a stream, failing once more than `limit` bytes arrive.
fn body_stream(
    session: &mut Session,
    limit: u64,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Send + '_ {
    stream::unfold((Some(session), 0u64), move |(session, total)| async move {
        let session = session?;
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                let total = total + chunk.len() as u64;
                if total > limit {
                    Some((Err(BodyError::TooLarge), (None, total)))
                } else {
                    Some((Ok(chunk), (Some(session), total)))
                }
            }
            Ok(None) => None,
            Err(e) => Some((
                Err(BodyError::Read(e.etype().as_str().to_string())),
                (None, total),
            )),
        }
    })
}

/// The declared body length, if any.
fn declared_length(session: &Session) -> GatewayResult<Option<u64>> {
    let Some(value) = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
    else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| GatewayError::BadRequest("Content-Length is not a number".into()))
}

/// The most file bytes this request can carry: its declared length, or the upload limit.
/// What the storage quota reserves for it.
pub fn wanted(state: &AppState, session: &Session) -> GatewayResult<u64> {
    let limit = *state.config().storage.max_upload_mb * 1024 * 1024;
    Ok(declared_length(session)?.map_or(limit, |n| n.min(limit)))
}

/// Reject early on a declared length over the limit, or over what the quotas leave.
pub fn check_declared_length(
    state: &AppState,
    session: &Session,
    cap: Option<&UploadCap>,
) -> GatewayResult<()> {
    let limit = *state.config().storage.max_upload_mb * 1024 * 1024;
    let Some(length) = declared_length(session)? else {
        return Ok(());
    };
    if length > limit + ENVELOPE {
        return Err(too_large(state));
    }
    match cap {
        Some(cap) if length > cap.bytes + ENVELOPE => Err(cap.error.clone()),
        _ => Ok(()),
    }
}

fn expects_continue(session: &Session) -> bool {
    session
        .req_header()
        .headers
        .get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Apply query parameters (the same names as the multipart text fields).
fn apply_query(query: &str, params: &mut ImageParams) -> GatewayResult<()> {
    for (name, value) in crate::query::pairs(query) {
        if !params.set(&name, &value)? {
            return Err(GatewayError::BadRequest(format!(
                "unknown query parameter `{}`",
                imgproxy::params::clip(&name)
            )));
        }
    }
    Ok(())
}

/// Remove a stored original whose conversion failed: the client never learned its id (no
/// `X-Image-Id` on an error), so keeping it would only leak storage.
pub async fn discard(state: &AppState, id: &str) {
    let file = state.images.delete(id).await;
    let row = images::delete(&state.store, id).await;
    if file.is_err() || row.is_err() {
        log::warn!(
            "{}",
            serde_json::json!({"event": "discard_failed", "image_id": id})
        );
    }
}

pub async fn receive(
    state: &AppState,
    session: &mut Session,
    caller: &str,
    query: &str,
    cap: Option<&UploadCap>,
) -> GatewayResult<Job> {
    check_declared_length(state, session, cap)?;
    let content_type = session
        .req_header()
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let boundary = form::boundary(content_type)?;
    let mut params = ImageParams::new(state.config().imgproxy.default_format);
    apply_query(query, &mut params)?;
    if expects_continue(session) {
        // The request passed every check that needs no body: let the client send it now
        // instead of waiting out its Expect timeout (curl waits a second).
        session.write_continue_response().await.map_err(|_| {
            GatewayError::BadRequest("the connection closed before the body".into())
        })?;
    }
    let max = *state.config().storage.max_upload_mb * 1024 * 1024;
    let mut limits = vec![FileLimit {
        bytes: max,
        error: too_large(state),
    }];
    limits.extend(cap.map(|c| FileLimit {
        bytes: c.bytes,
        error: c.error.clone(),
    }));
    let id = new_image_id();
    let body = body_stream(session, max + ENVELOPE);
    let open = || async { state.images.create(&id).await.map_err(uploads::write_error) };
    let form = form::read(
        body,
        boundary,
        &mut params,
        &limits,
        &too_large(state),
        open,
    )
    .await?;
    let size = form.file.commit().await.map_err(uploads::write_error)?;
    if let Err(e) = images::insert(&state.store, &id, caller, form.content_type, size).await {
        let _ = state.images.delete(&id).await;
        return Err(e);
    }
    let source = state.source_url(&id, unix_now());
    Ok(Job {
        path: Job::target(imgproxy::signed_target(&state.signer, &params, &source))?,
        source: SourceKind::Stored,
        format: Some(params.format),
        image_id: Some(id),
    })
}
