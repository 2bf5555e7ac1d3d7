//! What the gateway knows about one backend: its identity, the peer it proxies to, and live
//! counters read by the selection, the health API and (later) metrics. All fields are atomics,
//! so the hot path never locks.

use pingora::lb::Backend;
use pingora::upstreams::peer::HttpPeer;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Stored in `Backend::ext` so health checks can find the state of the backend they probe.
#[derive(Clone, Copy, Debug)]
pub struct BackendIndex(pub usize);

pub struct BackendState {
    pub index: usize,
    pub url: String,
    pub weight: u32,
    pub health_check_path: String,
    /// `host[:port]` as written in the URL, for the `Host` header.
    pub authority: String,
    pub backend: Backend,
    /// Built once; cloned per request.
    pub peer: Box<HttpPeer>,
    passive_down: AtomicBool,
    good_checks: AtomicU32,
    last_check_unix_ms: AtomicU64,
    last_check_ok: AtomicBool,
    last_response_us: AtomicU64,
    requests: AtomicU64,
    connect_failures: AtomicU64,
}

/// A point-in-time view for `/api/v1/backends`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BackendStatus {
    pub url: String,
    pub weight: u32,
    pub healthy: bool,
    /// Marked down after a failed connection, until enough good checks bring it back.
    pub passively_down: bool,
    pub last_check: Option<String>,
    pub last_check_ok: Option<bool>,
    pub response_time_ms: Option<f64>,
    pub requests: u64,
    pub connect_failures: u64,
}

impl BackendState {
    pub fn new(
        index: usize,
        url: String,
        weight: u32,
        health_check_path: String,
        authority: String,
        backend: Backend,
        peer: HttpPeer,
    ) -> BackendState {
        BackendState {
            index,
            url,
            weight,
            health_check_path,
            authority,
            backend,
            peer: Box::new(peer),
            passive_down: AtomicBool::new(false),
            good_checks: AtomicU32::new(0),
            last_check_unix_ms: AtomicU64::new(0),
            last_check_ok: AtomicBool::new(false),
            last_response_us: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
        }
    }

    pub fn is_passively_down(&self) -> bool {
        self.passive_down.load(Relaxed)
    }

    /// A connection to this backend failed: stop sending it traffic now. Returns whether this
    /// call changed the state (so the caller logs the transition once).
    pub fn mark_down(&self) -> bool {
        self.connect_failures.fetch_add(1, Relaxed);
        self.good_checks.store(0, Relaxed);
        !self.passive_down.swap(true, Relaxed)
    }

    /// Record an active health check. Returns true when this check lifts a passive mark.
    pub fn record_check(&self, ok: bool, took: Duration, healthy_threshold: u32) -> bool {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.last_check_unix_ms.store(now_ms, Relaxed);
        self.last_check_ok.store(ok, Relaxed);
        if !ok {
            self.good_checks.store(0, Relaxed);
            return false;
        }
        self.last_response_us
            .store(took.as_micros() as u64, Relaxed);
        let good = self.good_checks.fetch_add(1, Relaxed) + 1;
        good >= healthy_threshold && self.passive_down.swap(false, Relaxed)
    }

    pub fn count_request(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    pub fn status(&self, active_healthy: bool) -> BackendStatus {
        let checked_ms = self.last_check_unix_ms.load(Relaxed);
        let checked = checked_ms > 0;
        BackendStatus {
            url: self.url.clone(),
            weight: self.weight,
            healthy: active_healthy && !self.is_passively_down(),
            passively_down: self.is_passively_down(),
            last_check: checked.then(|| {
                chrono::DateTime::from_timestamp_millis(checked_ms as i64)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default()
            }),
            last_check_ok: checked.then(|| self.last_check_ok.load(Relaxed)),
            response_time_ms: (checked && self.last_response_us.load(Relaxed) > 0)
                .then(|| self.last_response_us.load(Relaxed) as f64 / 1000.0),
            requests: self.requests.load(Relaxed),
            connect_failures: self.connect_failures.load(Relaxed),
        }
    }
}
