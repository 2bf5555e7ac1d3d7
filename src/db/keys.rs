//! Queries and mutations of API keys. Only bcrypt hashes are stored.

use super::Store;
use crate::error::GatewayResult;
use chrono::{DateTime, Utc};
use entity::api_keys::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ExprTrait, PaginatorTrait, QueryFilter,
    QueryOrder, Statement, TransactionTrait,
};

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

/// How many keys a user may have, checked as the key is inserted.
#[derive(Clone, Copy, Debug)]
pub struct KeyCaps {
    /// Live keys (not revoked, not expired).
    pub live: u64,
    /// Keys issued (created or rotated) in the last hour.
    pub per_hour: u64,
}

/// Why a key was not inserted.
#[derive(Debug, PartialEq, Eq)]
pub enum OverCap {
    Live(u64),
    /// Issued in the last hour; the oldest of them was issued at this time.
    Recent(DateTime<Utc>),
}

/// Insert `row` if its user stays within `caps`. Exact under concurrency when the caller
/// holds the user's issuing lock (one process); on PostgreSQL the counts and the insert also
/// run in one transaction behind a lock on the user's row, so instances cannot race.
pub async fn insert_capped(
    store: &Store,
    row: Model,
    caps: KeyCaps,
    now: DateTime<Utc>,
) -> GatewayResult<Result<(), OverCap>> {
    if store.driver() != crate::config::DatabaseDriver::Postgres {
        // SQLite: one process (embedded mode), serialized by the caller's lock; no
        // transaction, whose read-then-write could fail against a concurrent writer.
        return store
            .call(|db| async move { insert_within(db, row, caps, now).await })
            .await;
    }
    store
        .call(|db| async move {
            let txn = db.begin().await?;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT id FROM users WHERE id = $1 FOR UPDATE",
                [row.user_id.clone().into()],
            ))
            .await?;
            let outcome = insert_within(&txn, row, caps, now).await?;
            txn.commit().await?;
            Ok(outcome)
        })
        .await
}

async fn insert_within<C: ConnectionTrait>(
    conn: &C,
    row: Model,
    caps: KeyCaps,
    now: DateTime<Utc>,
) -> Result<Result<(), OverCap>, sea_orm::DbErr> {
    let mine = || Entity::find().filter(Column::UserId.eq(row.user_id.clone()));
    let live = mine()
        .filter(Column::RevokedAt.is_null())
        .filter(Column::ExpiresAt.is_null().or(Column::ExpiresAt.gt(now)))
        .count(conn)
        .await?;
    if live >= caps.live {
        return Ok(Err(OverCap::Live(live)));
    }
    let recent = mine()
        .filter(Column::CreatedAt.gt(now - chrono::Duration::hours(1)))
        .order_by_asc(Column::CreatedAt)
        .all(conn)
        .await?;
    if let Some(oldest) = recent
        .first()
        .filter(|_| recent.len() as u64 >= caps.per_hour)
    {
        return Ok(Err(OverCap::Recent(oldest.created_at)));
    }
    Entity::insert(ActiveModel::from(row)).exec(conn).await?;
    Ok(Ok(()))
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
