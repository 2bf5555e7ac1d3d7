//! Queries and mutations of users.

use super::Store;
use crate::error::GatewayResult;
use entity::users::{ActiveModel, Column, Entity, Model};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder};

pub async fn find(store: &Store, id: &str) -> GatewayResult<Option<Model>> {
    let id = id.to_string();
    store
        .call(|db| async move { Entity::find_by_id(id).one(db).await })
        .await
}

pub async fn list(store: &Store) -> GatewayResult<Vec<Model>> {
    store
        .call(|db| async move { Entity::find().order_by_asc(Column::Id).all(db).await })
        .await
}

/// Insert `row` unless a user with its id exists; whether this call created it.
pub async fn insert_new(store: &Store, row: Model) -> GatewayResult<bool> {
    super::insert_if_absent(store, ActiveModel::from(row), Column::Id).await
}

/// Write every field of `row` (found by id).
pub async fn save(store: &Store, row: Model) -> GatewayResult<Model> {
    store
        .call(|db| async move {
            let mut active = ActiveModel::from(row);
            active = active.reset_all();
            active.update(db).await
        })
        .await
}
