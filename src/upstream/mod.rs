//! The backend pool: pingora-load-balancing with smooth weighted selection and active health
//! checks, plus passive marking of backends whose connections fail.

mod probe;
pub mod selection;
pub mod state;

use crate::config::Config;
use futures_util::FutureExt;
use pingora::lb::discovery::Static;
use pingora::lb::{Backend, Backends, LoadBalancer};
use pingora::upstreams::peer::HttpPeer;
use probe::Probe;
use selection::SmoothWeighted;
use state::{BackendIndex, BackendState, BackendStatus};
use std::collections::BTreeSet;
use std::net::ToSocketAddrs;
use std::sync::Arc;

pub type Balancer = LoadBalancer<SmoothWeighted>;

pub struct Pool {
    balancer: Arc<Balancer>,
    states: Vec<Arc<BackendState>>,
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

impl Pool {
    /// Resolve and build every backend; the balancer is ready to select at once and must be run
    /// as a background service for its health checks.
    pub fn build(config: &Config) -> Result<Pool, String> {
        let mut states = Vec::new();
        let mut set = BTreeSet::new();
        for (index, entry) in config.backends.iter().enumerate() {
            let key = format!("backends[{index}].url");
            let url = url::Url::parse(&entry.url).map_err(|e| format!("{key}: {e}"))?;
            let host = url.host_str().unwrap_or_default().to_string();
            let tls = url.scheme() == "https";
            let port = url.port_or_known_default().unwrap_or(80);
            let addr = (host.trim_matches(['[', ']']), port)
                .to_socket_addrs()
                .map_err(|e| format!("{key}: cannot resolve `{host}`: {e}"))?
                .next()
                .ok_or_else(|| format!("{key}: `{host}` has no address"))?;
            let mut backend = Backend::new_with_weight(&addr.to_string(), entry.weight as usize)
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
            let authority = match url.port() {
                Some(p) => format!("{host}:{p}"),
                None => host.clone(),
            };
            states.push(Arc::new(BackendState::new(
                index,
                entry.url.trim_end_matches('/').to_string(),
                entry.weight,
                entry.health_check_path.clone(),
                authority,
                backend,
                peer,
            )));
        }
        let hc = &config.health_check;
        let probe = Probe::new(
            states.clone(),
            hc.timeout.get(),
            hc.healthy_threshold,
            hc.unhealthy_threshold,
        )
        .map_err(|e| format!("health_check: {e}"))?;
        let mut backends = Backends::new(Static::new(set));
        backends.set_health_check(Box::new(probe));
        let mut balancer = LoadBalancer::from_backends(backends);
        balancer.health_check_frequency = Some(hc.interval.get());
        balancer.parallel_health_check = true;
        // Static discovery never waits; without this first update nothing can be selected.
        balancer
            .update()
            .now_or_never()
            .ok_or("backend discovery did not complete")?
            .map_err(|e| format!("backends: {e}"))?;
        Ok(Pool {
            balancer: Arc::new(balancer),
            states,
        })
    }

    /// The balancer, to run as the health-check background service.
    pub fn balancer(&self) -> Arc<Balancer> {
        Arc::clone(&self.balancer)
    }

    pub fn states(&self) -> &[Arc<BackendState>] {
        &self.states
    }

    fn state_of(&self, backend: &Backend) -> Option<&Arc<BackendState>> {
        backend
            .ext
            .get::<BackendIndex>()
            .and_then(|i| self.states.get(i.0))
    }

    /// The next backend for a request that has already tried `tried`. Healthy backends that are
    /// not passively marked come first; if every one is marked, marked ones are tried too,
    /// so a brief blip on all backends cannot turn into a 30-second outage.
    pub fn pick(&self, tried: Tried) -> Option<Arc<BackendState>> {
        let fresh = |b: &Backend| self.state_of(b).is_some_and(|s| !tried.contains(s.index));
        let max = self.states.len() * 100;
        let chosen = self
            .balancer
            .select_with(b"", max, |b, healthy| {
                healthy && fresh(b) && self.state_of(b).is_some_and(|s| !s.is_passively_down())
            })
            .or_else(|| {
                self.balancer
                    .select_with(b"", max, |b, healthy| healthy && fresh(b))
            })?;
        self.state_of(&chosen).cloned()
    }

    /// Active health (pingora's checks) combined with the passive mark.
    pub fn is_healthy(&self, state: &BackendState) -> bool {
        self.balancer.backends().ready(&state.backend) && !state.is_passively_down()
    }

    /// `(url, in rotation)` of every backend.
    pub fn health(&self) -> Vec<(String, bool)> {
        self.states
            .iter()
            .map(|s| (s.url.clone(), self.is_healthy(s)))
            .collect()
    }

    pub fn healthy_count(&self) -> usize {
        self.states.iter().filter(|s| self.is_healthy(s)).count()
    }

    pub fn statuses(&self) -> Vec<BackendStatus> {
        self.states
            .iter()
            .map(|s| s.status(self.balancer.backends().ready(&s.backend)))
            .collect()
    }

    /// A connection to `index` failed: take it out of rotation until it passes checks again.
    pub fn mark_failed(&self, index: usize, reason: &str) {
        if let Some(state) = self.states.get(index) {
            if state.mark_down() {
                log::warn!(
                    "{}",
                    serde_json::json!({"event": "backend_marked_down", "backend_url": state.url,
                        "reason": reason})
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

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

    #[test]
    fn passive_mark_diverts_traffic_until_good_checks() {
        let pool = pool(&[50, 50]);
        pool.mark_failed(0, "refused");
        assert!(!pool.is_healthy(&pool.states()[0]));
        for _ in 0..20 {
            assert_eq!(pool.pick(Tried::default()).unwrap().index, 1);
        }
        let state = &pool.states()[0];
        assert!(!state.record_check(true, std::time::Duration::from_millis(1), 2));
        assert!(state.record_check(true, std::time::Duration::from_millis(1), 2));
        assert!(pool.is_healthy(state));
    }

    #[test]
    fn all_marked_still_offers_a_backend() {
        let pool = pool(&[1, 1]);
        pool.mark_failed(0, "refused");
        pool.mark_failed(1, "refused");
        assert!(pool.pick(Tried::default()).is_some());
        assert_eq!(pool.healthy_count(), 0);
    }
}
