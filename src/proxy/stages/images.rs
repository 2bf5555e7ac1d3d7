//! `GET /api/v1/images` and `DELETE /api/v1/images/{id}`: the caller's stored uploads. Deleting
//! removes the file and its row, which frees storage quota. Another user's image is 404, as if
//! it did not exist.

use crate::db::images;
use crate::error::{GatewayError, GatewayResult};
use crate::identity::record::format_time;
use crate::respond::Answer;
use crate::state::AppState;
use http::StatusCode;
use serde_json::json;

pub async fn list(state: &AppState, owner: &str) -> GatewayResult<Answer> {
    let rows = images::of_owner(&state.store, owner).await?;
    let total: i64 = rows.iter().map(|r| r.size_bytes).sum();
    let listed: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"id": r.id, "content_type": r.content_type, "size_bytes": r.size_bytes,
                "created_at": format_time(&r.created_at)})
        })
        .collect();
    Ok(Answer::json(
        StatusCode::OK,
        &json!({"images": listed, "storage_bytes": total}),
    ))
}

pub async fn delete(state: &AppState, owner: &str, id: &str) -> GatewayResult<Answer> {
    let missing =
        || GatewayError::NotFound(format!("no image `{}`", crate::imgproxy::params::clip(id)));
    let row = images::find(&state.store, id)
        .await?
        .filter(|row| row.owner == owner)
        .ok_or_else(missing)?;
    if !images::delete(&state.store, &row.id).await? {
        return Err(missing());
    }
    if let Err(e) = state.images.delete(&row.id).await {
        log::warn!(
            "{}",
            json!({"event": "image_file_delete_failed", "image_id": row.id, "error": e.to_string()})
        );
    }
    Ok(Answer::json(
        StatusCode::OK,
        &json!({"deleted": row.id, "size_bytes": row.size_bytes}),
    ))
}
