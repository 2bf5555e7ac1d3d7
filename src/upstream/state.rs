//! What the gateway knows about one backend: its identity, the peer it proxies to, and live
//! health and counters read by the selection, the health API and metrics. All live fields are
//! atomics, so the hot path never locks.

use pingora::lb::Backend;
use pingora::upstreams::peer::HttpPeer;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

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
    /// The same as the `Host` header's value, made once.
    pub host: http::HeaderValue,
    pub backend: Backend,
    /// Built once; cloned per request.
    pub peer: Box<HttpPeer>,
    /// Health and counters, kept across reloads for as long as the URL stays in the pool.
    pub live: Arc<Live>,
}

/// What the gateway has learnt about a backend URL; shared by every generation of the pool
/// that contains it, so a reload resets nothing for an unchanged backend.
pub struct Live {
    /// Active health: starts healthy, flips after `unhealthy_threshold` failed checks and back
    /// after `healthy_threshold` good ones.
    active_healthy: AtomicBool,
    passive_down: AtomicBool,
    good_checks: AtomicU32,
    bad_checks: AtomicU32,
    last_check_unix_ms: AtomicU64,
    last_check_ok: AtomicBool,
    last_response_us: AtomicU64,
    requests: AtomicU64,
    connect_failures: AtomicU64,
}

impl Default for Live {
    fn default() -> Live {
        Live {
            active_healthy: AtomicBool::new(true),
            passive_down: AtomicBool::new(false),
            good_checks: AtomicU32::new(0),
            bad_checks: AtomicU32::new(0),
            last_check_unix_ms: AtomicU64::new(0),
            last_check_ok: AtomicBool::new(false),
            last_response_us: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
        }
    }
}

/// How many checks in a row flip a backend's health.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    pub healthy: u32,
    pub unhealthy: u32,
}

/// What one health check changed.
#[derive(Debug, PartialEq, Eq)]
pub enum Transition {
    None,
    /// Active health went down.
    Unhealthy,
    /// Active health came back.
    Healthy,
    /// A passive mark (after a failed connection) was lifted.
    Recovered,
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
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        url: String,
        weight: u32,
        health_check_path: String,
        authority: String,
        backend: Backend,
        peer: HttpPeer,
        live: Arc<Live>,
    ) -> BackendState {
        BackendState {
            index,
            url,
            weight,
            health_check_path,
            host: http::HeaderValue::from_str(&authority)
                .unwrap_or(http::HeaderValue::from_static("localhost")),
            authority,
            backend,
            peer: Box::new(peer),
            live,
        }
    }

    pub fn is_passively_down(&self) -> bool {
        self.live.passive_down.load(Relaxed)
    }

    /// Passing its active health checks (whatever the passive mark says).
    pub fn is_actively_healthy(&self) -> bool {
        self.live.active_healthy.load(Relaxed)
    }

    /// In rotation: actively healthy and not passively marked.
    pub fn is_healthy(&self) -> bool {
        self.live.active_healthy.load(Relaxed) && !self.is_passively_down()
    }

    /// A connection to this backend failed: stop sending it traffic now. Returns whether this
    /// call changed the state (so the caller logs the transition once).
    pub fn mark_down(&self) -> bool {
        let live = &self.live;
        live.connect_failures.fetch_add(1, Relaxed);
        live.good_checks.store(0, Relaxed);
        !live.passive_down.swap(true, Relaxed)
    }

    /// Record an active health check and say what it changed.
    pub fn record_check(&self, ok: bool, took: Duration, thresholds: Thresholds) -> Transition {
        let live = &self.live;
        live.last_check_unix_ms
            .store(crate::state::unix_now_ms(), Relaxed);
        live.last_check_ok.store(ok, Relaxed);
        if !ok {
            live.good_checks.store(0, Relaxed);
            let bad = live.bad_checks.fetch_add(1, Relaxed) + 1;
            if bad >= thresholds.unhealthy && live.active_healthy.swap(false, Relaxed) {
                return Transition::Unhealthy;
            }
            return Transition::None;
        }
        live.bad_checks.store(0, Relaxed);
        live.last_response_us
            .store(took.as_micros() as u64, Relaxed);
        let good = live.good_checks.fetch_add(1, Relaxed) + 1;
        if good < thresholds.healthy {
            return Transition::None;
        }
        if !live.active_healthy.swap(true, Relaxed) {
            live.passive_down.store(false, Relaxed);
            Transition::Healthy
        } else if live.passive_down.swap(false, Relaxed) {
            Transition::Recovered
        } else {
            Transition::None
        }
    }

    pub fn count_request(&self) {
        self.live.requests.fetch_add(1, Relaxed);
    }

    pub fn status(&self) -> BackendStatus {
        let live = &self.live;
        let checked_ms = live.last_check_unix_ms.load(Relaxed);
        let checked = checked_ms > 0;
        BackendStatus {
            url: self.url.clone(),
            weight: self.weight,
            healthy: self.is_healthy(),
            passively_down: self.is_passively_down(),
            last_check: checked.then(|| {
                chrono::DateTime::from_timestamp_millis(checked_ms as i64)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default()
            }),
            last_check_ok: checked.then(|| live.last_check_ok.load(Relaxed)),
            response_time_ms: (checked && live.last_response_us.load(Relaxed) > 0)
                .then(|| live.last_response_us.load(Relaxed) as f64 / 1000.0),
            requests: live.requests.load(Relaxed),
            connect_failures: live.connect_failures.load(Relaxed),
        }
    }
}
