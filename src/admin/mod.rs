//! The admin listener (default 127.0.0.1:9090): a second Pingora service in the same server.
//! Health and readiness need no key; every other route needs the key of a user whose role
//! allows it (DESIGN §4, §8).

mod handlers;
pub mod routes;

use crate::error::{GatewayError, GatewayResult};
use crate::identity::rbac;
use crate::proxy::stages::auth;
use crate::respond::{to_http_response, Answer};
use crate::state::AppState;
use crate::{health, request_id};
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use routes::AdminRoute;
use serde_json::json;
use std::sync::Arc;

/// Compare in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub struct AdminApp {
    state: Arc<AppState>,
}

impl AdminApp {
    pub fn new(state: Arc<AppState>) -> AdminApp {
        AdminApp { state }
    }

    /// The Prometheus exposition, behind `admin.metrics_token` when one is configured.
    fn metrics(&self, session: &ServerSession) -> GatewayResult<Answer> {
        if let Some(token) = &self.state.config().admin.metrics_token {
            let expected = format!("Bearer {token}");
            let given = session
                .req_header()
                .headers
                .get(http::header::AUTHORIZATION)
                .map(|v| v.as_bytes());
            if !given.is_some_and(|g| constant_time_eq(g, expected.as_bytes())) {
                return Err(GatewayError::Unauthorized(
                    "a valid metrics bearer token is required",
                ));
            }
        }
        Ok(Answer::bytes(
            http::StatusCode::OK,
            "text/plain; version=0.0.4",
            self.state.metrics.render(&self.state.pool.health()).into(),
        ))
    }

    /// Route → authenticate → authorize → handle.
    async fn handle(
        &self,
        session: &mut ServerSession,
        request_id: &str,
        caller_id: &mut Option<String>,
    ) -> GatewayResult<Answer> {
        let req = session.req_header();
        let route = routes::resolve(&req.method, req.uri.path())?;
        let Some(action) = route.action() else {
            return Ok(match route {
                AdminRoute::Ready => health::ready(&self.state, request_id).await,
                AdminRoute::Metrics => self.metrics(session)?,
                _ => health::health(&self.state).await,
            });
        };
        let caller = auth::authenticate(&self.state, session).await?;
        *caller_id = Some(caller.user_id.clone());
        if !rbac::allows(caller.role, &caller.user_id, action, route.target()) {
            return Err(GatewayError::Forbidden(format!(
                "the role `{}` does not allow this",
                caller.role.as_str()
            )));
        }
        handlers::run(&self.state, session, route, &caller, request_id).await
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let id = request_id::from_header(
            session
                .req_header()
                .headers
                .get(request_id::HEADER)
                .map(|v| v.as_bytes()),
        );
        let mut caller = None;
        let answer = self
            .handle(session, &id, &mut caller)
            .await
            .unwrap_or_else(|err| Answer::error(&err, &id));
        let status = answer.status.as_u16();
        log::info!(
            "{}",
            json!({"event": "admin_request", "request_id": id,
                "method": session.req_header().method.as_str(),
                "path": session.req_header().uri.path(), "status": status, "user_id": caller})
        );
        to_http_response(answer, &id)
    }
}
