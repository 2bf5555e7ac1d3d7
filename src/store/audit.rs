//! The audit log: append and read back, newest first.

use super::Store;
use crate::error::GatewayResult;
use entity::audit_log::{ActiveModel, Column, Entity, Model};
use sea_orm::ActiveValue::{NotSet, Set};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

/// The ids of the request behind a change: the gateway's own, and the client's.
#[derive(Clone, Debug, Default)]
pub struct RequestIds {
    pub gateway: String,
    pub client: Option<String>,
}

pub struct Entry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub detail: serde_json::Value,
    pub request: Option<&'a RequestIds>,
}

pub async fn append(store: &Store, entry: Entry<'_>) -> GatewayResult<()> {
    let row = ActiveModel {
        id: NotSet,
        at: Set(chrono::Utc::now()),
        actor: Set(entry.actor.to_string()),
        action: Set(entry.action.to_string()),
        target: Set(entry.target.to_string()),
        detail: Set(entry.detail.to_string()),
        request_id: Set(entry.request.map(|r| r.gateway.clone())),
        client_request_id: Set(entry.request.and_then(|r| r.client.clone())),
    };
    store
        .call(|db| async move { Entity::insert(row).exec(db).await.map(|_| ()) })
        .await
}

/// Up to `limit` entries, newest first, optionally only before entry id `before`.
pub async fn list(store: &Store, limit: u64, before: Option<i64>) -> GatewayResult<Vec<Model>> {
    store
        .call(|db| async move {
            let mut query = Entity::find().order_by_desc(Column::Id).limit(limit);
            if let Some(before) = before {
                query = query.filter(Column::Id.lt(before));
            }
            query.all(db).await
        })
        .await
}
