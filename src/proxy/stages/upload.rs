//! `POST /api/v1/upload`: stream a multipart body to disk under a fresh id, with the size limit
//! enforced from Content-Length when present and while streaming otherwise, then hand the
//! stored original to a backend. Nothing is left on disk when the upload fails.

use crate::error::{GatewayError, GatewayResult};
use crate::imgproxy::{self, ImageParams};
use crate::limits::UploadCap;
use crate::proxy::backend_error::SourceKind;
use crate::proxy::ctx::Job;
use crate::state::{unix_now, AppState};
use crate::storage::{new_image_id, sniff, PartialImage};
use crate::store::images;
use bytes::Bytes;
use futures_util::stream::{self, Stream};
use pingora::prelude::Session;

/// Room for multipart boundaries and the small text fields around the file.
const ENVELOPE: u64 = 64 * 1024;
/// Longest accepted text field (`format`, `width`, ...).
const MAX_TEXT_FIELD: usize = 64;

const IMAGE_TYPES: &str = "JPEG, PNG, GIF, WebP, AVIF, HEIF, TIFF or BMP";

/// Why the body stream stopped early.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("the request body exceeds the upload limit")]
    TooLarge,
    #[error("the request body could not be read: {0}")]
    Read(String),
}

fn too_large(state: &AppState) -> GatewayError {
    GatewayError::PayloadTooLarge {
        limit_mb: state.config().storage.max_upload_mb,
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

/// A failed write to `storage.dir`: 507 when the disk (or its quota) is full, else 500. The
/// partial file is removed by `PartialImage`'s drop either way.
fn storage_error(e: std::io::Error) -> GatewayError {
    log::error!(
        "{}",
        serde_json::json!({"event": "storage_error", "error": e.to_string()})
    );
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            GatewayError::InsufficientStorage(
                "the gateway's image storage is full; nothing was stored".into(),
            )
        }
        _ => GatewayError::Internal("the upload could not be stored".into()),
    }
}

fn multipart_error(state: &AppState, e: multer::Error) -> GatewayError {
    if let multer::Error::StreamReadFailed(inner) = &e {
        return match inner.downcast_ref::<BodyError>() {
            Some(BodyError::TooLarge) => too_large(state),
            _ => GatewayError::BadRequest(inner.to_string()),
        };
    }
    GatewayError::BadRequest(format!("malformed multipart body: {e}"))
}

/// Reject early on a declared length over the limit, or over what the quotas leave.
pub fn check_declared_length(
    state: &AppState,
    session: &Session,
    cap: Option<&UploadCap>,
) -> GatewayResult<()> {
    let limit = state.config().storage.max_upload_mb * 1024 * 1024;
    let Some(value) = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
    else {
        return Ok(());
    };
    let length: u64 = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| GatewayError::BadRequest("Content-Length is not a number".into()))?;
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

fn boundary(session: &Session) -> GatewayResult<String> {
    let content_type = session
        .req_header()
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    multer::parse_boundary(content_type).map_err(|_| {
        GatewayError::BadRequest("Content-Type must be multipart/form-data with a boundary".into())
    })
}

/// Apply query parameters (the same names as the multipart text fields).
fn apply_query(query: &str, params: &mut ImageParams) -> GatewayResult<()> {
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if !params.set(&name, &value)? {
            return Err(GatewayError::BadRequest(format!(
                "unknown query parameter `{}`",
                imgproxy::params::clip(&name)
            )));
        }
    }
    Ok(())
}

struct Stored {
    id: String,
    image: PartialImage,
    content_type: &'static str,
}

async fn store_file(
    state: &AppState,
    field: &mut multer::Field<'_>,
    cap: Option<&UploadCap>,
) -> GatewayResult<Stored> {
    let limit = state.config().storage.max_upload_mb * 1024 * 1024;
    let id = new_image_id();
    let mut image = state.images.create(&id).await.map_err(storage_error)?;
    let mut head = Vec::with_capacity(sniff::HEAD_LEN);
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(state, e))? {
        let total = image.written() + chunk.len() as u64;
        if total > limit {
            return Err(too_large(state));
        }
        if let Some(cap) = cap.filter(|c| total > c.bytes) {
            return Err(cap.error.clone());
        }
        if head.len() < sniff::HEAD_LEN {
            let take = (sniff::HEAD_LEN - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        image.write(&chunk).await.map_err(storage_error)?;
    }
    if image.written() == 0 {
        return Err(GatewayError::invalid("file", "is empty"));
    }
    let content_type = sniff::image_type(&head).ok_or_else(|| {
        GatewayError::InvalidImage(format!("the uploaded file is not an image ({IMAGE_TYPES})"))
    })?;
    Ok(Stored {
        id,
        image,
        content_type,
    })
}

async fn text_field(
    state: &AppState,
    field: &mut multer::Field<'_>,
    name: &str,
) -> GatewayResult<String> {
    let mut text = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(state, e))? {
        text.extend_from_slice(&chunk);
        if text.len() > MAX_TEXT_FIELD {
            return Err(GatewayError::BadRequest(format!(
                "field `{name}` is longer than {MAX_TEXT_FIELD} bytes"
            )));
        }
    }
    String::from_utf8(text)
        .map_err(|_| GatewayError::BadRequest(format!("field `{name}` is not UTF-8")))
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
    let boundary = boundary(session)?;
    let mut params = ImageParams::new(state.default_format);
    apply_query(query, &mut params)?;
    if expects_continue(session) {
        // The request passed every check that needs no body: let the client send it now
        // instead of waiting out its Expect timeout (curl waits a second).
        session.write_continue_response().await.map_err(|_| {
            GatewayError::BadRequest("the connection closed before the body".into())
        })?;
    }
    let limit = state.config().storage.max_upload_mb * 1024 * 1024 + ENVELOPE;
    let mut multipart = multer::Multipart::new(body_stream(session, limit), boundary);
    let mut stored = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(state, e))?
    {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" if stored.is_some() => {
                return Err(GatewayError::BadRequest(
                    "only one `file` field is allowed".into(),
                ))
            }
            "file" => stored = Some(store_file(state, &mut field, cap).await?),
            "format" | "width" | "height" | "quality" => {
                let value = text_field(state, &mut field, &name).await?;
                params.set(&name, &value)?;
            }
            other => {
                return Err(GatewayError::BadRequest(format!(
                    "unknown multipart field `{}`",
                    imgproxy::params::clip(other)
                )))
            }
        }
    }
    drop(multipart);
    let Stored {
        id,
        image,
        content_type,
    } = stored
        .ok_or_else(|| GatewayError::invalid("file", "the multipart field `file` is required"))?;
    let size = image.commit().await.map_err(storage_error)?;
    if let Err(e) = images::insert(&state.store, &id, caller, content_type, size).await {
        let _ = state.images.delete(&id).await;
        return Err(e);
    }
    let path = imgproxy::processing_path(&params, &state.source_url(&id, unix_now()));
    Ok(Job {
        path: state.signer.signed_path(&path),
        source: SourceKind::Stored,
        format: Some(params.format),
        image_id: Some(id),
    })
}
