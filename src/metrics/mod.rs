//! Prometheus metrics (README, "Prometheus"), exposed at `GET /metrics` on the admin listener.
//! Series are found by their label values (hashed, no string allocated for an existing series); backend
//! health and process figures are read when Prometheus scrapes. A finished request's series
//! are remembered per thread (`series`).

mod series;

pub use series::{BackendAnswer, Finished};

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Latency buckets from 100 µs to 10 s.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
}

fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(
        HistogramOpts::new(name, help).buckets(BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric")
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub backend_requests: IntCounterVec,
    pub backend_health: IntGaugeVec,
    pub backend_response_time: HistogramVec,
    pub user_requests: IntCounterVec,
    /// Requests being served on the public listener.
    pub active_connections: IntGauge,
    pub memory_usage: IntGauge,
    pub cpu_usage: prometheus::Gauge,
    /// A gauge that only grows: the product's name for it has no `_total`, which promtool requires of a
    /// counter (recorded in `docs/decisions.md`).
    pub rate_limit_violations: IntGaugeVec,
    pub quota_usage: IntGaugeVec,
    pub quota_threshold_events: IntCounterVec,
    pub redis_degraded: IntGauge,
    /// Access refusals on either listener, by `Denied::reason` (a closed set).
    pub access_denied: IntCounterVec,
    /// CPU seconds and wall time at the previous scrape.
    cpu_sample: std::sync::Mutex<Option<(f64, std::time::Instant)>>,
    /// Tells this registry's remembered series from another's (`series`).
    id: u64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let rate_limit_violations = IntGaugeVec::new(
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
        let http_requests = counter(
            "http_requests_total",
            "Answers on the public listener, by method, route template, status and user.",
            &["method", "endpoint", "status", "user_id"],
        );
        let http_duration = histogram(
            "http_request_duration_seconds",
            "Time from request to the end of its answer, by method and route template.",
            &["method", "endpoint"],
        );
        let backend_requests = counter(
            "backend_requests_total",
            "Requests sent to backends, by backend and the backend's status (0: no answer).",
            &["backend_url", "status"],
        );
        let backend_health = IntGaugeVec::new(
            Opts::new(
                "backend_health_status",
                "1 when the backend is in rotation, else 0.",
            ),
            &["backend_url"],
        )
        .expect("valid metric");
        let backend_response_time = histogram(
            "backend_response_time_seconds",
            "Time from sending a request to a backend to its response header.",
            &["backend_url"],
        );
        let user_requests = counter(
            "user_requests_total",
            "Authenticated requests, by user.",
            &["user_id"],
        );
        let access_denied = counter(
            "access_denied_total",
            "Requests refused access (401/403) on either listener, by reason.",
            &["reason"],
        );
        let active_connections = IntGauge::new(
            "active_connections",
            "Requests being served on the public listener.",
        )
        .expect("valid metric");
        let memory_usage = IntGauge::new("memory_usage_bytes", "Resident memory of the process.")
            .expect("valid metric");
        let cpu_usage = prometheus::Gauge::new(
            "cpu_usage_percent",
            "CPU time of the process since the previous scrape, in % of one core.",
        )
        .expect("valid metric");
        for collector in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(backend_requests.clone()),
            Box::new(backend_health.clone()),
            Box::new(backend_response_time.clone()),
            Box::new(user_requests.clone()),
            Box::new(active_connections.clone()),
            Box::new(memory_usage.clone()),
            Box::new(cpu_usage.clone()),
            Box::new(rate_limit_violations.clone()),
            Box::new(quota_usage.clone()),
            Box::new(quota_threshold_events.clone()),
            Box::new(redis_degraded.clone()),
            Box::new(access_denied.clone()),
        ] {
            registry.register(collector).expect("unique metric");
        }
        // Every reason exists from the start: the series set never grows with traffic.
        for denied in crate::access::Denied::ALL {
            access_denied.with_label_values(&[denied.reason()]);
        }
        Metrics {
            registry,
            http_requests,
            http_duration,
            backend_requests,
            backend_health,
            backend_response_time,
            user_requests,
            active_connections,
            memory_usage,
            cpu_usage,
            cpu_sample: std::sync::Mutex::new(None),
            id: {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
            rate_limit_violations,
            quota_usage,
            quota_threshold_events,
            redis_degraded,
            access_denied,
        }
    }

    /// Read memory and CPU of this process from `/proc` (Linux; left at 0 elsewhere).
    fn sample_process(&self) {
        let page = 4096;
        if let Ok(statm) = std::fs::read_to_string("/proc/self/statm") {
            if let Some(rss) = statm
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<i64>().ok())
            {
                self.memory_usage.set(rss * page);
            }
        }
        let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
            return;
        };
        // Fields after the command name: utime and stime are the 12th and 13th.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            return;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|i| fields.get(*i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        let cpu_seconds = ticks / 100.0;
        let now = std::time::Instant::now();
        let mut last = self.cpu_sample.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((before, at)) = *last {
            let wall = now.duration_since(at).as_secs_f64();
            if wall > 0.0 {
                self.cpu_usage
                    .set(((cpu_seconds - before) / wall * 100.0).max(0.0));
            }
        }
        *last = Some((cpu_seconds, now));
    }

    /// The JSON document of `GET /api/v1/metrics`: requests and error rates, latency quantiles
    /// (estimated from the histogram buckets), limiter and quota counts.
    pub fn summary(&self) -> serde_json::Value {
        use prometheus::core::Collector;
        use std::collections::BTreeMap;
        let label = |m: &prometheus::proto::Metric, name: &str| {
            m.get_label()
                .iter()
                .find(|l| l.name() == name)
                .map(|l| l.value().to_string())
                .unwrap_or_default()
        };
        let mut total = 0u64;
        let mut classes: BTreeMap<String, u64> = BTreeMap::new();
        let mut endpoints: BTreeMap<String, u64> = BTreeMap::new();
        for family in self.http_requests.collect() {
            for m in family.get_metric() {
                let n = m.get_counter().get_value() as u64;
                total += n;
                let class = format!("{}xx", label(m, "status").chars().next().unwrap_or('0'));
                *classes.entry(class).or_default() += n;
                *endpoints.entry(label(m, "endpoint")).or_default() += n;
            }
        }
        // Buckets summed over every series.
        let mut cumulative: BTreeMap<u64, u64> = BTreeMap::new();
        let mut observed = 0u64;
        for family in self.http_duration.collect() {
            for m in family.get_metric() {
                let h = m.get_histogram();
                observed += h.get_sample_count();
                for b in h.get_bucket() {
                    *cumulative
                        .entry((b.upper_bound() * 1e6) as u64)
                        .or_default() += b.cumulative_count();
                }
            }
        }
        let quantile = |q: f64| -> Option<f64> {
            if observed == 0 {
                return None;
            }
            let rank = q * observed as f64;
            let (mut lower, mut below) = (0.0, 0u64);
            for (bound, count) in &cumulative {
                let upper = *bound as f64 / 1e6;
                if *count as f64 >= rank {
                    let inside = (*count - below).max(1) as f64;
                    return Some(lower + (upper - lower) * (rank - below as f64) / inside);
                }
                (lower, below) = (upper, *count);
            }
            Some(lower)
        };
        let rate = |n: u64| {
            if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            }
        };
        let by_label = |vec: &IntGaugeVec, name: &str| {
            let mut out: BTreeMap<String, i64> = BTreeMap::new();
            for family in vec.collect() {
                for m in family.get_metric() {
                    *out.entry(label(m, name)).or_default() += m.get_gauge().get_value() as i64;
                }
            }
            out
        };
        let mut thresholds: BTreeMap<String, u64> = BTreeMap::new();
        for family in self.quota_threshold_events.collect() {
            for m in family.get_metric() {
                let key = format!("{}@{}%", label(m, "quota_type"), label(m, "percent"));
                *thresholds.entry(key).or_default() += m.get_counter().get_value() as u64;
            }
        }
        serde_json::json!({
            "requests": {
                "total": total,
                "by_class": classes,
                "by_endpoint": endpoints,
                "error_rate": rate(classes.get("5xx").copied().unwrap_or(0)),
                "client_error_rate": rate(classes.get("4xx").copied().unwrap_or(0)),
                "in_flight": self.active_connections.get(),
            },
            "latency_seconds": {"p50": quantile(0.5), "p95": quantile(0.95), "p99": quantile(0.99),
                // Cumulative `[upper bound, requests]` pairs and the count: a client that polls
                // takes differences for the quantiles of the last interval.
                "buckets": cumulative.iter().map(|(b, c)| (*b as f64 / 1e6, *c)).collect::<Vec<_>>(),
                "count": observed},
            "limits": {
                "violations": by_label(&self.rate_limit_violations, "limit_type"),
                "redis_degraded": self.redis_degraded.get() == 1,
            },
            "quotas": {"threshold_events": thresholds},
        })
    }

    /// The text exposition format; `backends` are `(url, in rotation)` right now.
    pub fn render(&self, backends: &[(String, bool)]) -> Vec<u8> {
        // The pool may have changed since the last scrape: a removed backend has no series.
        self.backend_health.reset();
        for (url, healthy) in backends {
            self.backend_health
                .with_label_values(&[url.as_str()])
                .set(i64::from(*healthy));
        }
        self.sample_process();
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
