//! The admin listener (default 127.0.0.1:9090): a second Pingora service in the same server.
//! Health and readiness need no key; every other route needs the key of a user whose role
//! allows it (`identity::rbac`).

mod handlers;
mod paging;
pub mod routes;
pub mod ui;

use crate::access::{self, Asked, Denied};
use crate::db::audit::RequestIds;
use crate::error::{GatewayError, GatewayResult};
use crate::identity::Identity;
use crate::limits::headers::Headers;
use crate::limits::Refusal;
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
use std::net::IpAddr;
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
                return Err(Denied::MetricsToken.into());
            }
        }
        Ok(Answer::bytes(
            http::StatusCode::OK,
            "text/plain; version=0.0.4",
            self.state.metrics.render(&self.state.pool.health()).into(),
        ))
    }

    /// Resolve → admit (the same step as the public listener: IP level, key, whitelist, role,
    /// user and endpoint levels) → handle.
    async fn handle(
        &self,
        session: &mut ServerSession,
        request: &mut AdminRequest,
    ) -> GatewayResult<Answer> {
        let state = &self.state;
        let ip = request.client_ip;
        let req = session.req_header();
        crate::proxy::route::check_request(req)?;
        let route = match routes::resolve(&req.method, req.uri.path()) {
            Err(e @ GatewayError::NotFound(_)) => {
                return Err(request.refused(access::spend_ip(state, ip, e).await))
            }
            other => other?,
        };
        request.endpoint = route.template();
        let asked = Asked {
            key: auth::api_key(session),
            ip,
            endpoint: route.template(),
            action: route.action().map(|action| (action, route.target())),
        };
        let admitted = access::admit(state, route.access(), asked, &mut request.caller).await;
        if let Some(admission) = admitted.map_err(|r| request.refused(r))? {
            request.limit_headers = admission.headers;
        }
        match (&route, &request.caller) {
            (AdminRoute::Ui(asset), _) => Ok(ui::serve(*asset)),
            (AdminRoute::Ready, _) => Ok(health::ready(state, &request.id)),
            (AdminRoute::Metrics, _) => self.metrics(session),
            (AdminRoute::Health, _) => Ok(health::health(state)),
            (AdminRoute::OpenApi, _) => Ok(crate::openapi::serve()),
            (_, Some(caller)) => {
                let caller = caller.clone();
                handlers::run(state, session, route, &caller, &request.ids()).await
            }
            (_, None) => Err(GatewayError::Internal(
                "the route ran without its admission".into(),
            )),
        }
    }
}

/// One admin request's facts, filled in as it goes.
struct AdminRequest {
    /// The id it is answered and logged under (the client's when well-formed).
    id: String,
    /// The gateway's own id, whatever the client sent (what the audit log records).
    gateway_id: String,
    /// The client's `X-Request-ID`, when well-formed.
    client_id: Option<String>,
    client_ip: IpAddr,
    endpoint: &'static str,
    caller: Option<Arc<Identity>>,
    limit_headers: Headers,
}

impl AdminRequest {
    fn refused(&mut self, refusal: Refusal) -> GatewayError {
        self.limit_headers = refusal.headers;
        refusal.error
    }

    fn ids(&self) -> RequestIds {
        RequestIds {
            gateway: self.gateway_id.clone(),
            client: self.client_id.clone(),
        }
    }
}

#[async_trait]
impl ServeHttp for AdminApp {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let given = session
            .req_header()
            .headers
            .get(request_id::HEADER)
            .map(|v| v.as_bytes());
        let client_id = given
            .filter(|id| request_id::is_well_formed(id))
            .map(|id| String::from_utf8_lossy(id).into_owned());
        let gateway_id = request_id::generate();
        let mut request = AdminRequest {
            id: client_id.clone().unwrap_or_else(|| gateway_id.clone()),
            gateway_id,
            client_id,
            client_ip: auth::client_ip(&self.state, session),
            endpoint: "unknown",
            caller: None,
            limit_headers: Headers::new(),
        };
        let mut answer = match self.handle(session, &mut request).await {
            Ok(answer) => answer,
            Err(err) => {
                crate::proxy::security_event(&self.state, &err, |line| {
                    line["listener"] = "admin".into();
                    line["request_id"] = request.id.as_str().into();
                    line["endpoint"] = request.endpoint.into();
                    line["client_ip"] = request.client_ip.to_string().into();
                    line["user_id"] = request.caller.as_ref().map(|c| c.user_id.as_str()).into();
                });
                Answer::error(&err, &request.id)
            }
        };
        answer.headers.extend(request.limit_headers.iter().cloned());
        let status = answer.status.as_u16();
        log::info!(
            "{}",
            json!({"event": "admin_request", "request_id": request.id,
                "gateway_request_id": request.gateway_id,
                "method": session.req_header().method.as_str(),
                "path": session.req_header().uri.path(), "status": status,
                "user_id": request.caller.as_ref().map(|c| c.user_id.as_str())})
        );
        to_http_response(answer, &request.id)
    }
}
