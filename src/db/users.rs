//! Queries and mutations of users.

use super::Store;
use crate::error::GatewayResult;
use entity::users::{ActiveModel, Column, Entity, Model};
use sea_orm::sea_query::{Expr, Func, LikeExpr};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, ExprTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

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

/// What a page of the user list holds.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Lower-case substring of id, name or email.
    pub q: Option<String>,
    pub status: Option<&'static str>,
    pub role: Option<&'static str>,
    pub limit: u64,
    /// Only ids after this one (the previous page's last).
    pub after: Option<String>,
}

/// `LIKE` pattern of a literal substring (`%`, `_` and `\` match only themselves).
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Up to `limit + 1` users matching `filter`, by id (one more than the page tells whether
/// there is a next one).
pub async fn page(store: &Store, filter: &UserFilter) -> GatewayResult<Vec<Model>> {
    let filter = filter.clone();
    store
        .call(|db| async move {
            let mut query = Entity::find().order_by_asc(Column::Id);
            if let Some(q) = &filter.q {
                let pattern = contains_pattern(q);
                let like = |column: Column| {
                    Expr::expr(Func::lower(Expr::col(column)))
                        .like(LikeExpr::new(pattern.clone()).escape('\\'))
                };
                query = query.filter(
                    Condition::any()
                        .add(like(Column::Id))
                        .add(like(Column::Name))
                        .add(like(Column::Email)),
                );
            }
            if let Some(status) = filter.status {
                query = query.filter(Column::Status.eq(status));
            }
            if let Some(role) = filter.role {
                query = query.filter(Column::Role.eq(role));
            }
            if let Some(after) = filter.after {
                query = query.filter(Column::Id.gt(after));
            }
            query.limit(filter.limit + 1).all(db).await
        })
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
