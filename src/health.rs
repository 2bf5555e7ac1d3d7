//! `/api/v1/health` and `/api/v1/ready`, answered the same way on both listeners, from state
//! the state service refreshes (the database is pinged at most once a second, whatever the
//! request rate): no request of these costs a query.

use crate::error::GatewayError;
use crate::respond::Answer;
use crate::state::AppState;
use http::StatusCode;
use serde_json::json;

pub fn health(state: &AppState) -> Answer {
    let healthy = state.pool.healthy_count();
    let total = state.pool.len();
    let database = state.store.is_up();
    let status = if database && healthy == total {
        "ok"
    } else if database && healthy > 0 {
        "degraded"
    } else {
        "unavailable"
    };
    Answer::json(
        StatusCode::OK,
        &json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": state.started.elapsed().as_secs(),
            "backends": {"healthy": healthy, "total": total},
            "database": if database { "ok" } else { "unavailable" },
            "redis": if state.limits.degraded() { "degraded" } else { state.bus.status() },
        }),
    )
}

/// 200 when the gateway can serve: the database answers and at least one backend is healthy.
pub fn ready(state: &AppState, request_id: &str) -> Answer {
    let mut problems = Vec::new();
    if !state.store.is_up() {
        problems.push("the database is unreachable");
    }
    if state.pool.healthy_count() == 0 {
        problems.push("no backend is healthy");
    }
    if problems.is_empty() {
        Answer::json(StatusCode::OK, &json!({"ready": true}))
    } else {
        Answer::error(&GatewayError::NotReady(problems.join("; ")), request_id)
    }
}
