//! The management operations behind each admin route, in the JSON shapes of docs/openapi.json.

use super::paging;
use super::routes::AdminRoute;
use crate::db::audit::{self, RequestIds};
use crate::error::{GatewayError, GatewayResult};
use crate::identity::input;
use crate::identity::manage::Manager;
use crate::identity::record::format_time;
use crate::identity::{Change, Identity};
use crate::limits::rules::UserLimits;
use crate::respond::Answer;
use crate::state::AppState;
use http::StatusCode;
use pingora::protocols::http::ServerSession;
use serde_json::json;

/// Largest management request body.
const MAX_BODY: usize = 64 * 1024;

async fn read_body(session: &mut ServerSession) -> GatewayResult<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let chunk = session
            .read_request_body()
            .await
            .map_err(|_| GatewayError::BadRequest("could not read the request body".into()))?;
        let Some(chunk) = chunk else {
            return Ok(body);
        };
        if body.len() + chunk.len() > MAX_BODY {
            return Err(GatewayError::invalid(
                "body",
                format!("must be at most {} KiB", MAX_BODY / 1024),
            ));
        }
        body.extend_from_slice(&chunk);
    }
}

pub async fn run(
    state: &AppState,
    session: &mut ServerSession,
    route: AdminRoute,
    caller: &Identity,
    request: &RequestIds,
) -> GatewayResult<Answer> {
    let body = match route {
        AdminRoute::CreateUser
        | AdminRoute::UpdateUser(_)
        | AdminRoute::CreateKey(_)
        | AdminRoute::RotateKey(_) => read_body(session).await?,
        _ => Vec::new(),
    };
    let manager = Manager {
        store: &state.store,
        auth: &state.auth,
        bus: &state.bus,
        actor: &caller.user_id,
        admin: caller.role == crate::identity::model::Role::Admin,
        request: Some(request),
    };
    let ok = |value: serde_json::Value| Ok(Answer::json(StatusCode::OK, &value));
    let created = |value: serde_json::Value| Ok(Answer::json(StatusCode::CREATED, &value));
    match route {
        AdminRoute::Ui(_)
        | AdminRoute::Metrics
        | AdminRoute::Health
        | AdminRoute::Ready
        | AdminRoute::OpenApi => Err(GatewayError::Internal(
            "open routes are answered earlier".into(),
        )),
        AdminRoute::Backends => ok(json!({"backends": state.pool.statuses()})),
        AdminRoute::MetricsJson => {
            let mut doc = state.metrics.summary();
            doc["uptime_seconds"] = json!(state.started.elapsed().as_secs());
            doc["backends"] = json!(state.pool.statuses());
            doc["limits"]["redis"] = json!(if state.limits.degraded() {
                "degraded"
            } else {
                state.bus.status()
            });
            doc["database"] = json!(if state.store.is_up() { "up" } else { "down" });
            doc["quotas"]["recent_events"] = json!(state.limits.recent_threshold_events());
            ok(doc)
        }
        AdminRoute::Audit => {
            let filter = paging::audit(session.req_header().uri.query().unwrap_or(""))?;
            let entries = audit::list(&state.store, &filter).await?;
            let entries: Vec<_> = entries
                .into_iter()
                .map(|e| {
                    json!({"id": e.id, "at": format_time(&e.at), "actor": e.actor,
                        "action": e.action, "target": e.target, "request_id": e.request_id,
                        "client_request_id": e.client_request_id,
                        "detail": serde_json::from_str::<serde_json::Value>(&e.detail)
                            .unwrap_or(serde_json::Value::Null)})
                })
                .collect();
            ok(json!({"entries": entries}))
        }
        AdminRoute::Config => ok(json!({
            "config": crate::config::redact::effective(&state.config()),
            "reloadable": crate::config::live::LIVE,
            // Where the listeners are (the ports the kernel gave for a configured 0).
            "listening": {"public": state.listeners.public.text(),
                "admin": state.listeners.admin.text()},
        })),
        AdminRoute::Users => {
            let filter = paging::users(session.req_header().uri.query().unwrap_or(""))?;
            let (users, next) = manager.page_users(&filter).await?;
            ok(json!({"users": users, "next": next}))
        }
        AdminRoute::CreateUser => {
            let (user, key) = manager.create_user(input::parse(&body)?).await?;
            created(json!({"user": user, "api_key": key}))
        }
        AdminRoute::User(id) => ok(json!(manager.get_user(&id).await?)),
        AdminRoute::UpdateUser(id) => {
            ok(json!(manager.update_user(&id, input::parse(&body)?).await?))
        }
        AdminRoute::DeleteUser(id) => ok(json!(manager.delete_user(&id).await?)),
        AdminRoute::Keys(id) => ok(json!({"keys": manager.list_keys(&id).await?})),
        AdminRoute::CreateKey(id) => {
            created(json!(manager.create_key(&id, input::parse(&body)?).await?))
        }
        AdminRoute::RotateKey(id) => {
            let rotated = manager.rotate_key(&id, input::parse(&body)?).await?;
            created(json!({"new": rotated.new,
                "old": {"id": rotated.old_id, "expires_at": format_time(&rotated.old_expires_at)}}))
        }
        AdminRoute::RevokeKey(id, key) => ok(json!(manager.revoke_key(&id, &key).await?)),
        AdminRoute::Quota(id) => ok(quota_report(state, &manager, &id).await?),
        AdminRoute::ResetQuota(id) => {
            let user = manager.get_user(&id).await?;
            let limits = UserLimits::with(
                &state.config(),
                user.rate_limits.as_ref(),
                user.quotas.as_ref(),
            );
            state
                .limits
                .reset(&state.store, &id, limits.reset_day)
                .await?;
            state.bus.publish(&Change::QuotaReset(id.clone())).await;
            manager.audit("quota.reset", &id, json!({})).await;
            ok(quota_report(state, &manager, &id).await?)
        }
    }
}

/// The usage document of user `id` (`QuotaReport` in docs/openapi.json), with its effective limits.
pub async fn quota_report(
    state: &AppState,
    manager: &Manager<'_>,
    id: &str,
) -> GatewayResult<serde_json::Value> {
    let user = manager.get_user(id).await?;
    let limits = UserLimits::with(
        &state.config(),
        user.rate_limits.as_ref(),
        user.quotas.as_ref(),
    );
    state.limits.report(&state.store, id, &limits).await
}
