//! The active health check: pingora's HTTP check on each backend's own path, bounded by the
//! configured timeout, timed, and used to lift passive marks after enough good checks.

use super::state::{BackendIndex, BackendState};
use async_trait::async_trait;
use pingora::lb::health_check::{HealthCheck, HttpHealthCheck};
use pingora::lb::Backend;
use pingora::prelude::*;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Probe {
    checks: Vec<HttpHealthCheck>,
    states: Vec<Arc<BackendState>>,
    timeout: Duration,
    healthy_threshold: u32,
    unhealthy_threshold: u32,
}

impl Probe {
    pub fn new(
        states: Vec<Arc<BackendState>>,
        timeout: Duration,
        healthy_threshold: u32,
        unhealthy_threshold: u32,
    ) -> Result<Probe> {
        let checks = states
            .iter()
            .map(|state| {
                let mut check = HttpHealthCheck::new(&state.authority, false);
                check.req = RequestHeader::build("GET", state.health_check_path.as_bytes(), None)?;
                check.req.insert_header("Host", state.authority.as_str())?;
                check
                    .req
                    .insert_header("User-Agent", "imgproxy-gateway-health")?;
                check.peer_template.options.connection_timeout = Some(timeout);
                check.peer_template.options.read_timeout = Some(timeout);
                check.peer_template.options.write_timeout = Some(timeout);
                check.consecutive_success = healthy_threshold as usize;
                check.consecutive_failure = unhealthy_threshold as usize;
                Ok(check)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Probe {
            checks,
            states,
            timeout,
            healthy_threshold,
            unhealthy_threshold,
        })
    }
}

#[async_trait]
impl HealthCheck for Probe {
    async fn check(&self, target: &Backend) -> Result<()> {
        let Some(BackendIndex(index)) = target.ext.get::<BackendIndex>().copied() else {
            return Error::e_explain(ErrorType::InternalError, "backend without an index");
        };
        let (Some(check), Some(state)) = (self.checks.get(index), self.states.get(index)) else {
            return Error::e_explain(ErrorType::InternalError, "backend index out of range");
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, check.check(target)).await {
            Ok(result) => result,
            Err(_) => Error::e_explain(ErrorType::ConnectTimedout, "health check timed out"),
        };
        if state.record_check(result.is_ok(), started.elapsed(), self.healthy_threshold) {
            log::info!(
                "{}",
                serde_json::json!({"event": "backend_recovered", "backend_url": state.url,
                    "good_checks": self.healthy_threshold})
            );
        }
        result
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        let url = target
            .ext
            .get::<BackendIndex>()
            .and_then(|i| self.states.get(i.0))
            .map(|s| s.url.as_str())
            .unwrap_or("?");
        let event = if healthy {
            "backend_healthy"
        } else {
            "backend_unhealthy"
        };
        log::warn!(
            "{}",
            serde_json::json!({"event": event, "backend_url": url})
        );
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.healthy_threshold as usize
        } else {
            self.unhealthy_threshold as usize
        }
    }
}
