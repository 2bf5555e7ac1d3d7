//! The backend pool: smooth weighted selection, pingora-load-balancing's active health checks,
//! plus passive marking of backends whose connections fail. The pool is rebuilt on a
//! configuration reload; health and counters live per URL and carry over.

pub mod affinity;
mod probe;
pub mod selection;
pub mod state;

use crate::config::Config;
use arc_swap::ArcSwap;
use futures_util::FutureExt;
use pingora::lb::discovery::Static;
use pingora::lb::{Backend, Backends};
use pingora::server::ShutdownWatch;
use pingora::upstreams::peer::HttpPeer;
use probe::Probe;
use selection::SmoothWeighted;
use state::{BackendIndex, BackendState, BackendStatus, Thresholds};
use std::collections::BTreeSet;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The backend pool. A reload replaces its generation as a whole; requests in flight keep the
/// generation they started with.
pub struct Pool {
    current: ArcSwap<Generation>,
    /// Wakes the health-check loop when the generation (backends or check settings) changes.
    changed: Notify,
}

/// One generation of the pool: the backends of one configuration. A request keeps the
/// generation of its first pick for its retries, so backend indexes (`Tried`) stay meaningful.
pub struct Generation {
    /// The backends, for pingora's health-check runner.
    backends: Backends,
    selection: SmoothWeighted,
    states: Vec<Arc<BackendState>>,
    interval: Duration,
}

/// Which backends a request has already tried (bit i = backend index i; at most 10 exist).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tried(u32);

impl Tried {
    pub fn add(&mut self, index: usize) {
        self.0 |= 1 << index;
    }
    pub fn remove(&mut self, index: usize) {
        self.0 &= !(1 << index);
    }
    pub fn contains(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }
    pub fn count(self) -> u32 {
        self.0.count_ones()
    }
}

impl Generation {
    /// Resolve and build every backend of `config`. A URL already in `previous` keeps its live
    /// health and counters.
    fn build(config: &Config, previous: &[Arc<BackendState>]) -> Result<Generation, String> {
        let mut states = Vec::new();
        let mut set = BTreeSet::new();
        for (index, entry) in config.backends.iter().enumerate() {
            let key = format!("backends[{index}].url");
            let url = &entry.url;
            let (host, tls) = (url.host().to_string(), url.tls());
            let addr = (url.host(), url.port())
                .to_socket_addrs()
                .map_err(|e| format!("{key}: cannot resolve `{host}`: {e}"))?
                .next()
                .ok_or_else(|| format!("{key}: `{host}` has no address"))?;
            let mut backend = Backend::new_with_weight(&addr.to_string(), *entry.weight as usize)
                .map_err(|e| format!("{key}: {e}"))?;
            backend.ext.insert(BackendIndex(index));
            if !set.insert(backend.clone()) {
                return Err(format!(
                    "{key}: `{}` resolves to an address already in the pool",
                    entry.url
                ));
            }
            let sni = if tls { host.clone() } else { String::new() };
            let mut peer = HttpPeer::new(addr, tls, sni);
            let up = &config.upstream;
            peer.options.connection_timeout = Some(up.connect_timeout.get());
            peer.options.read_timeout = Some(up.response_timeout.get());
            peer.options.write_timeout = Some(up.response_timeout.get());
            peer.options.idle_timeout = Some(up.idle_timeout.get());
            let authority = url.authority();
            let url = url.as_str().to_string();
            let live = previous
                .iter()
                .find(|s| s.url == url)
                .map(|s| Arc::clone(&s.live))
                .unwrap_or_default();
            states.push(Arc::new(BackendState::new(
                index,
                url,
                *entry.weight,
                entry.health_check_path.to_string(),
                authority,
                backend,
                peer,
                live,
            )));
        }
        let hc = &config.health_check;
        let thresholds = Thresholds {
            healthy: *hc.healthy_threshold,
            unhealthy: *hc.unhealthy_threshold,
        };
        let probe = Probe::new(states.clone(), hc.timeout.get(), thresholds)
            .map_err(|e| format!("health_check: {e}"))?;
        let mut backends = Backends::new(Static::new(set));
        backends.set_health_check(Box::new(probe));
        // Static discovery never waits; without this first update nothing is checked.
        backends
            .update(|_| {})
            .now_or_never()
            .ok_or("backend discovery did not complete")?
            .map_err(|e| format!("backends: {e}"))?;
        let weights: Vec<usize> = states.iter().map(|s| s.weight as usize).collect();
        Ok(Generation {
            backends,
            selection: SmoothWeighted::new(&weights),
            states,
            interval: hc.interval.get(),
        })
    }

    /// The next backend for a request that has already tried `tried`. Healthy backends that are
    /// not passively marked come first; if every one is marked, marked ones are tried too,
    /// so a brief blip on all backends cannot turn into a 30-second outage.
    pub fn pick(&self, tried: Tried) -> Option<Arc<BackendState>> {
        let order = self.selection.order();
        let fresh = |i: &usize| !tried.contains(*i) && self.states[*i].is_actively_healthy();
        let chosen = order
            .clone()
            .filter(fresh)
            .find(|i| !self.states[*i].is_passively_down())
            .or_else(|| order.clone().find(fresh))?;
        Some(Arc::clone(&self.states[chosen]))
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

impl Pool {
    /// The pool of `config`; selection works at once, health checks run in `run_checks`.
    pub fn build(config: &Config) -> Result<Pool, String> {
        Ok(Pool {
            current: ArcSwap::from_pointee(Generation::build(config, &[])?),
            changed: Notify::new(),
        })
    }

    /// Take the backends and health-check settings of `config`. Backends whose URL stays keep
    /// their health and counters; new ones start healthy (as at start, failover covers them).
    pub fn reload(&self, config: &Config) -> Result<(), String> {
        let next = Generation::build(config, &self.current.load().states)?;
        self.current.store(Arc::new(next));
        self.changed.notify_one();
        Ok(())
    }

    /// Check every backend each interval (all at once), until shutdown.
    pub async fn run_checks(&self, mut shutdown: ShutdownWatch) {
        loop {
            let generation = self.current.load_full();
            generation.backends.run_health_check(true).await;
            tokio::select! {
                _ = tokio::time::sleep(generation.interval) => {}
                _ = self.changed.notified() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// The current backends.
    pub fn states(&self) -> Vec<Arc<BackendState>> {
        self.current.load().states.clone()
    }

    /// The generation new requests use.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    /// The next backend of the current generation (see `Generation::pick`).
    pub fn pick(&self, tried: Tried) -> Option<Arc<BackendState>> {
        self.current.load().pick(tried)
    }

    /// `(url, in rotation)` of every backend.
    pub fn health(&self) -> Vec<(String, bool)> {
        let generation = self.current.load();
        generation
            .states
            .iter()
            .map(|s| (s.url.clone(), s.is_healthy()))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.current.load().states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn healthy_count(&self) -> usize {
        let generation = self.current.load();
        generation.states.iter().filter(|s| s.is_healthy()).count()
    }

    pub fn statuses(&self) -> Vec<BackendStatus> {
        let generation = self.current.load();
        generation.states.iter().map(|s| s.status()).collect()
    }
}

/// A connection to `state` failed: take it out of rotation until it passes checks again.
pub fn mark_failed(state: &BackendState, reason: &str) {
    if state.mark_down() {
        log::warn!(
            "{}",
            serde_json::json!({"event": "backend_marked_down", "backend_url": state.url,
                "reason": reason})
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;
    use state::Transition;

    fn pool(weights: &[u32]) -> Pool {
        let yaml: String = weights
            .iter()
            .enumerate()
            .map(|(i, w)| format!("  - url: http://127.0.0.1:{}\n    weight: {w}\n", 1000 + i))
            .collect();
        Pool::build(&load_str(&format!("backends:\n{yaml}"), Vec::new()).unwrap()).unwrap()
    }

    #[test]
    fn picks_follow_weights_and_skip_tried_backends() {
        let pool = pool(&[70, 30]);
        let picks: Vec<usize> = (0..100)
            .map(|_| pool.pick(Tried::default()).unwrap().index)
            .collect();
        assert_eq!(picks.iter().filter(|i| **i == 0).count(), 70);
        let mut tried = Tried::default();
        tried.add(0);
        for _ in 0..10 {
            assert_eq!(pool.pick(tried).unwrap().index, 1);
        }
        tried.add(1);
        assert!(pool.pick(tried).is_none());
    }

    const CHECK: Thresholds = Thresholds {
        healthy: 2,
        unhealthy: 3,
    };

    fn check(state: &BackendState, ok: bool) -> Transition {
        state.record_check(ok, std::time::Duration::from_millis(1), CHECK)
    }

    #[test]
    fn passive_mark_diverts_traffic_until_good_checks() {
        let pool = pool(&[50, 50]);
        mark_failed(&pool.states()[0], "refused");
        assert!(!pool.states()[0].is_healthy());
        for _ in 0..20 {
            assert_eq!(pool.pick(Tried::default()).unwrap().index, 1);
        }
        let state = &pool.states()[0];
        assert_eq!(check(state, true), Transition::None);
        assert_eq!(check(state, true), Transition::Recovered);
        assert!(state.is_healthy());
    }

    #[test]
    fn failed_checks_take_a_backend_out_until_it_passes_again() {
        let pool = pool(&[50, 50]);
        let state = &pool.states()[0];
        assert_eq!(check(state, false), Transition::None);
        assert_eq!(check(state, false), Transition::None);
        assert_eq!(check(state, false), Transition::Unhealthy);
        assert_eq!(pool.healthy_count(), 1);
        assert_eq!(pool.pick(Tried::default()).unwrap().index, 1);
        assert_eq!(check(state, true), Transition::None);
        assert_eq!(check(state, true), Transition::Healthy);
        assert_eq!(pool.healthy_count(), 2);
    }

    #[test]
    fn all_marked_still_offers_a_backend() {
        let pool = pool(&[1, 1]);
        for state in pool.states() {
            mark_failed(&state, "refused");
        }
        assert!(pool.pick(Tried::default()).is_some());
        assert_eq!(pool.healthy_count(), 0);
    }

    #[test]
    fn a_reload_keeps_what_is_known_of_unchanged_urls() {
        let pool = pool(&[1, 1]);
        let old = pool.states();
        for _ in 0..3 {
            check(&old[0], false);
        }
        old[1].count_request();
        let yaml = "backends:\n  - url: http://127.0.0.1:1002\n  - url: http://127.0.0.1:1001\n    weight: 9\n  - url: http://127.0.0.1:1000\n";
        pool.reload(&load_str(yaml, Vec::new()).unwrap()).unwrap();
        let new = pool.states();
        assert_eq!(new.len(), 3);
        assert!(new[0].is_healthy(), "a new URL starts healthy");
        assert_eq!((new[1].weight, new[1].status().requests), (9, 1));
        assert!(!new[2].is_healthy(), "the failed backend stays out");
        for _ in 0..20 {
            assert_ne!(pool.pick(Tried::default()).unwrap().index, 2);
        }
    }
}
