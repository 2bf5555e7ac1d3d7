//! The active health check: pingora's HTTP check on each backend's own path, bounded by the
//! configured timeout, timed, and recorded in the backend's live state (which decides health,
//! so that state survives a reload that rebuilds pingora's structures).

use super::state::{BackendIndex, BackendState, Thresholds, Transition};
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
    thresholds: Thresholds,
}

impl Probe {
    pub fn new(
        states: Vec<Arc<BackendState>>,
        timeout: Duration,
        thresholds: Thresholds,
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
                check.consecutive_success = thresholds.healthy as usize;
                check.consecutive_failure = thresholds.unhealthy as usize;
                Ok(check)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Probe {
            checks,
            states,
            timeout,
            thresholds,
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
        let event = match state.record_check(result.is_ok(), started.elapsed(), self.thresholds) {
            Transition::None => None,
            Transition::Unhealthy => Some("backend_unhealthy"),
            Transition::Healthy => Some("backend_healthy"),
            Transition::Recovered => Some("backend_recovered"),
        };
        if let Some(event) = event {
            log::warn!(
                "{}",
                serde_json::json!({"event": event, "backend_url": state.url,
                    "error": result.as_ref().err().map(|e| e.to_string())})
            );
        }
        result
    }

    fn health_threshold(&self, success: bool) -> usize {
        if success {
            self.thresholds.healthy as usize
        } else {
            self.thresholds.unhealthy as usize
        }
    }
}
