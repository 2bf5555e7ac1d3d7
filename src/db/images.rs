//! Queries and mutations of stored upload originals.

use super::Store;
use crate::error::GatewayResult;
use entity::images::{ActiveModel, Entity, Model};
use sea_orm::{ActiveValue::Set, EntityTrait};

pub async fn insert(
    store: &Store,
    id: &str,
    owner: &str,
    content_type: &str,
    size_bytes: u64,
) -> GatewayResult<()> {
    let row = ActiveModel {
        id: Set(id.to_string()),
        owner: Set(owner.to_string()),
        content_type: Set(content_type.to_string()),
        size_bytes: Set(size_bytes as i64),
        created_at: Set(chrono::Utc::now()),
    };
    store
        .call(|db| async move { Entity::insert(row).exec(db).await.map(|_| ()) })
        .await
}

pub async fn find(store: &Store, id: &str) -> GatewayResult<Option<Model>> {
    let id = id.to_string();
    store
        .call(|db| async move { Entity::find_by_id(id).one(db).await })
        .await
}

/// Whether a row was removed.
pub async fn delete(store: &Store, id: &str) -> GatewayResult<bool> {
    let id = id.to_string();
    store
        .call(|db| async move {
            Entity::delete_by_id(id)
                .exec(db)
                .await
                .map(|r| r.rows_affected > 0)
        })
        .await
}

/// Bytes of stored originals owned by `owner` (the storage quota's usage).
pub async fn stored_bytes(store: &Store, owner: &str) -> GatewayResult<u64> {
    use sea_orm::{ColumnTrait, QueryFilter, QuerySelect};
    let owner = owner.to_string();
    store
        .call(|db| async move {
            let total: Option<Option<i64>> = Entity::find()
                .select_only()
                .column_as(
                    // SUM of a BIGINT is NUMERIC in PostgreSQL: bring it back to BIGINT.
                    sea_orm::sea_query::Expr::from(sea_orm::sea_query::Func::cast_as(
                        sea_orm::sea_query::Func::sum(sea_orm::sea_query::Expr::col(
                            entity::images::Column::SizeBytes,
                        )),
                        sea_orm::sea_query::Alias::new("BIGINT"),
                    )),
                    "total",
                )
                .filter(entity::images::Column::Owner.eq(owner))
                .into_tuple()
                .one(db)
                .await?;
            Ok(total.flatten().unwrap_or(0).max(0) as u64)
        })
        .await
}

/// `owner`'s stored originals, newest first.
pub async fn of_owner(store: &Store, owner: &str) -> GatewayResult<Vec<Model>> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    let owner = owner.to_string();
    store
        .call(|db| async move {
            Entity::find()
                .filter(entity::images::Column::Owner.eq(owner))
                .order_by_desc(entity::images::Column::CreatedAt)
                .all(db)
                .await
        })
        .await
}
