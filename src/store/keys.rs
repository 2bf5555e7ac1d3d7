//! Queries and mutations of API keys. Only bcrypt hashes are stored.

use super::Store;
use crate::error::GatewayResult;
use chrono::{DateTime, Utc};
use entity::api_keys::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

pub async fn find(store: &Store, id: &str) -> GatewayResult<Option<Model>> {
    let id = id.to_string();
    store
        .call(|db| async move { Entity::find_by_id(id).one(db).await })
        .await
}

pub async fn of_user(store: &Store, user_id: &str) -> GatewayResult<Vec<Model>> {
    let user_id = user_id.to_string();
    store
        .call(|db| async move {
            Entity::find()
                .filter(Column::UserId.eq(user_id))
                .order_by_asc(Column::CreatedAt)
                .order_by_asc(Column::Id)
                .all(db)
                .await
        })
        .await
}

/// Insert `row` unless its id is taken; whether this call created it.
pub async fn insert_new(store: &Store, row: Model) -> GatewayResult<bool> {
    super::insert_if_absent(store, ActiveModel::from(row), Column::Id).await
}

/// Revoke live keys of `user_id` now: the one with id `key`, or all of them; how many.
pub async fn revoke(
    store: &Store,
    user_id: &str,
    key: Option<&str>,
    at: DateTime<Utc>,
) -> GatewayResult<u64> {
    let (user_id, key) = (user_id.to_string(), key.map(str::to_string));
    store
        .call(|db| async move {
            let mut update = Entity::update_many()
                .col_expr(Column::RevokedAt, Expr::value(at))
                .filter(Column::UserId.eq(user_id))
                .filter(Column::RevokedAt.is_null());
            if let Some(key) = key {
                update = update.filter(Column::Id.eq(key));
            }
            Ok(update.exec(db).await?.rows_affected)
        })
        .await
}

/// Let a key live until `until` (the end of a rotation's grace period).
pub async fn expire(store: &Store, id: &str, until: DateTime<Utc>) -> GatewayResult<()> {
    let id = id.to_string();
    store
        .call(|db| async move {
            Entity::update_many()
                .col_expr(Column::ExpiresAt, Expr::value(until))
                .filter(Column::Id.eq(id))
                .exec(db)
                .await
                .map(|_| ())
        })
        .await
}

/// One statement for a whole batch of keys seen in use.
pub async fn touch(store: &Store, ids: Vec<String>, at: DateTime<Utc>) -> GatewayResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    store
        .call(|db| async move {
            Entity::update_many()
                .col_expr(Column::LastUsedAt, Expr::value(at))
                .filter(Column::Id.is_in(ids))
                .exec(db)
                .await
                .map(|_| ())
        })
        .await
}
