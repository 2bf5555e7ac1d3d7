//! Quota usage rows: read once per user and period, written back in batches.

use super::Store;
use crate::error::GatewayResult;
use chrono::{DateTime, Utc};
use entity::usage::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use std::collections::HashSet;

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

/// Pairs looked up per query (well under SQLite's and PostgreSQL's bound-parameter limits).
const FIND_BATCH: usize = 500;

/// The stored rows of these `(user, period start)` pairs, in a query per `FIND_BATCH`.
pub async fn find_many(
    store: &Store,
    keys: &[(String, DateTime<Utc>)],
) -> GatewayResult<Vec<Model>> {
    let mut found = Vec::new();
    for batch in keys.chunks(FIND_BATCH) {
        let wanted: HashSet<(&str, DateTime<Utc>)> =
            batch.iter().map(|(u, s)| (u.as_str(), *s)).collect();
        let users: Vec<String> = wanted.iter().map(|(u, _)| u.to_string()).collect();
        let starts: Vec<DateTime<Utc>> = wanted.iter().map(|(_, s)| *s).collect();
        let rows = store
            .call(|db| async move {
                Entity::find()
                    .filter(Column::UserId.is_in(users))
                    .filter(Column::PeriodStart.is_in(starts))
                    .all(db)
                    .await
            })
            .await?;
        // The query matched users × starts; keep the pairs asked for.
        found.extend(
            rows.into_iter()
                .filter(|r| wanted.contains(&(r.user_id.as_str(), r.period_start))),
        );
    }
    Ok(found)
}

/// How a batch of rows meets the stored ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// The rows hold totals (shared mode: Redis has them; a quota reset).
    Totals,
    /// The rows hold what to add (embedded mode: several processes may count during an upgrade).
    Increments,
}

/// Write every row in one statement.
pub async fn write(store: &Store, rows: Vec<Model>, how: Write) -> GatewayResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut conflict = OnConflict::columns([Column::UserId, Column::PeriodStart]);
    conflict.update_column(Column::UpdatedAt);
    match how {
        Write::Totals => {
            conflict.update_columns([Column::Requests, Column::BandwidthBytes, Column::Announced]);
        }
        Write::Increments => {
            conflict
                .value(
                    Column::Announced,
                    Expr::cust("usage.announced | excluded.announced"),
                )
                .value(
                    Column::Requests,
                    Expr::cust("usage.requests + excluded.requests"),
                )
                .value(
                    Column::BandwidthBytes,
                    Expr::cust("usage.bandwidth_bytes + excluded.bandwidth_bytes"),
                );
        }
    }
    let conflict = conflict.to_owned();
    store
        .call(|db| async move {
            Entity::insert_many(rows.into_iter().map(ActiveModel::from))
                .on_conflict(conflict)
                .exec_without_returning(db)
                .await
                .map(|_| ())
        })
        .await
}
