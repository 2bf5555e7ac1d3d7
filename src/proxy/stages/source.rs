//! `GET /internal/v1/source/{id}?exp&sig`: backends fetch an upload's original here.

use crate::access::Denied;
use crate::error::{GatewayError, GatewayResult};
use crate::respond::Answer;
use crate::state::{unix_now, AppState};
use crate::uploads::{is_image_id, sniff};
use bytes::Bytes;
use http::StatusCode;

pub async fn serve(state: &AppState, id: &str, query: &str) -> GatewayResult<Answer> {
    let mut expires = None;
    let mut sig = None;
    for (name, value) in crate::query::pairs(query) {
        match name.as_ref() {
            "exp" => expires = value.parse::<u64>().ok(),
            "sig" => sig = Some(value.into_owned()),
            _ => {}
        }
    }
    let (Some(expires), Some(sig)) = (expires, sig) else {
        return Err(Denied::SourceSignature.into());
    };
    if !is_image_id(id) || !state.source_signer.verify(id, expires, &sig, unix_now()) {
        return Err(Denied::SourceSignature.into());
    }
    let bytes = state
        .images
        .read(id)
        .await
        .map_err(|_| GatewayError::NotFound("the stored image no longer exists".into()))?;
    let content_type = sniff::image_type(&bytes[..bytes.len().min(sniff::HEAD_LEN)])
        .unwrap_or("application/octet-stream");
    Ok(Answer::bytes(
        StatusCode::OK,
        content_type,
        Bytes::from(bytes),
    ))
}
