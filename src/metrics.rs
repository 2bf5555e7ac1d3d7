//! Prometheus metrics (DESIGN §10), exposed at `GET /metrics` on the admin listener. This file
//! holds the limiter and quota families; label handles are looked up only on rare events
//! (a refusal, a threshold) and at flush time, never per admitted request.

use prometheus::{Encoder, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

pub struct Metrics {
    registry: Registry,
    pub rate_limit_violations: IntCounterVec,
    pub quota_usage: IntGaugeVec,
    pub quota_threshold_events: IntCounterVec,
    pub redis_degraded: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let rate_limit_violations = IntCounterVec::new(
            Opts::new(
                "user_rate_limit_violations",
                "Requests refused with 429, by user (anonymous before authentication) and level.",
            ),
            &["user_id", "limit_type"],
        )
        .expect("valid metric");
        let quota_usage = IntGaugeVec::new(
            Opts::new(
                "user_quota_usage",
                "Quota used in the current period (storage: bytes stored), by user and quota.",
            ),
            &["user_id", "quota_type"],
        )
        .expect("valid metric");
        let quota_threshold_events = IntCounterVec::new(
            Opts::new(
                "quota_threshold_events_total",
                "Quota threshold events (80, 90, 100 %) sent, by quota and percent.",
            ),
            &["quota_type", "percent"],
        )
        .expect("valid metric");
        let redis_degraded = IntGauge::new(
            "redis_degraded",
            "1 while Redis is unreachable and limits run on local fallbacks.",
        )
        .expect("valid metric");
        for collector in [
            Box::new(rate_limit_violations.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(quota_usage.clone()),
            Box::new(quota_threshold_events.clone()),
            Box::new(redis_degraded.clone()),
        ] {
            registry.register(collector).expect("unique metric");
        }
        Metrics {
            registry,
            rate_limit_violations,
            quota_usage,
            quota_threshold_events,
            redis_degraded,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
