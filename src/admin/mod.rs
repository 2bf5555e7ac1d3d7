//! The admin listener (default 127.0.0.1:9090): a second Pingora service in the same server.
//! Health and readiness need no key; everything else needs the caller's key.

use crate::error::{GatewayError, GatewayResult};
use crate::proxy::route::check_method;
use crate::proxy::stages::auth;
use crate::respond::{to_http_response, Answer};
use crate::state::AppState;
use crate::{health, request_id};
use async_trait::async_trait;
use http::{Response, StatusCode};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;
use std::sync::Arc;

pub struct AdminApp {
    state: Arc<AppState>,
}

impl AdminApp {
    pub fn new(state: Arc<AppState>) -> AdminApp {
        AdminApp { state }
    }

    async fn route(&self, session: &ServerSession, request_id: &str) -> GatewayResult<Answer> {
        let req = session.req_header();
        match req.uri.path() {
            "/api/v1/health" => {
                check_method(&req.method, "GET")?;
                Ok(health::health(&self.state).await)
            }
            "/api/v1/ready" => {
                check_method(&req.method, "GET")?;
                Ok(health::ready(&self.state, request_id).await)
            }
            "/api/v1/backends" => {
                check_method(&req.method, "GET")?;
                auth::authenticate(&self.state.config.legacy, req)?;
                Ok(Answer::json(
                    StatusCode::OK,
                    &json!({"backends": self.state.pool.statuses()}),
                ))
            }
            _ => Err(GatewayError::NotFound("no such admin route".into())),
        }
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
        let answer = self
            .route(session, &id)
            .await
            .unwrap_or_else(|err| Answer::error(&err, &id));
        let status = answer.status.as_u16();
        log::info!(
            "{}",
            json!({"event": "admin_request", "request_id": id,
                "method": session.req_header().method.as_str(),
                "path": session.req_header().uri.path(), "status": status})
        );
        to_http_response(answer, &id)
    }
}
