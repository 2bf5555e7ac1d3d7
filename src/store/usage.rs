//! Quota usage rows: read once per user and period, written back in batches.

use super::Store;
use crate::error::GatewayResult;
use chrono::{DateTime, Utc};
use entity::usage::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::OnConflict;
use sea_orm::EntityTrait;

pub async fn find(
    store: &Store,
    user_id: &str,
    period_start: DateTime<Utc>,
) -> GatewayResult<Option<Model>> {
    let user_id = user_id.to_string();
    store
        .call(|db| async move { Entity::find_by_id((user_id, period_start)).one(db).await })
        .await
}

/// Write absolute values for every row (one statement).
pub async fn save_all(store: &Store, rows: Vec<Model>) -> GatewayResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    store
        .call(|db| async move {
            Entity::insert_many(rows.into_iter().map(ActiveModel::from))
                .on_conflict(
                    OnConflict::columns([Column::UserId, Column::PeriodStart])
                        .update_columns([
                            Column::Requests,
                            Column::BandwidthBytes,
                            Column::Announced,
                            Column::UpdatedAt,
                        ])
                        .to_owned(),
                )
                .exec_without_returning(db)
                .await
                .map(|_| ())
        })
        .await
}
