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

/// Which entries a page of the audit log holds.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub limit: u64,
    /// Only entries older than this entry id (the previous page's last).
    pub before: Option<i64>,
    /// Exact actor, action and target, when given.
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
}

/// Up to `filter.limit` entries, newest first.
pub async fn list(store: &Store, filter: &AuditFilter) -> GatewayResult<Vec<Model>> {
    let filter = filter.clone();
    store
        .call(|db| async move {
            let mut query = Entity::find().order_by_desc(Column::Id).limit(filter.limit);
            if let Some(before) = filter.before {
                query = query.filter(Column::Id.lt(before));
            }
            for (column, value) in [
                (Column::Actor, filter.actor),
                (Column::Action, filter.action),
                (Column::Target, filter.target),
            ] {
                if let Some(value) = value {
                    query = query.filter(column.eq(value));
                }
            }
            query.all(db).await
        })
        .await
}
