//! The minimal Pingora proxy itself, shared by `examples/minimal_proxy` (the process that
//! `benches/side_by_side.sh` drives) and `benches/allocations.rs` (which counts what it
//! allocates per request): round robin over peers built once, no policy at all.

use async_trait::async_trait;
use pingora::listeners::ListenerConfig;
use pingora::prelude::{HttpPeer, ProxyHttp, Result, Session};
use pingora::protocols::l4::stream::L4BufferSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Minimal {
    peers: Vec<HttpPeer>,
    next: AtomicUsize,
    pool_per_thread: bool,
}

#[async_trait]
impl ProxyHttp for Minimal {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.peers.len();
        Ok(if self.pool_per_thread {
            imgproxy_gateway::upstream::affinity::pooled_here(&self.peers[i])
        } else {
            Box::new(self.peers[i].clone())
        })
    }
}

/// What `benches/side_by_side.sh` may vary to find what costs Pingora its share of nginx.
pub struct Tuning {
    /// Worker threads of each proxy service.
    pub threads: usize,
    /// Proxy services on the same address (sharing its listening socket), each with `threads`
    /// threads, its own runtimes and its own upstream pool. With one thread each, Pingora's
    /// spawns (each accepted connection's task, each idle connection's watcher) stay on the
    /// thread that asked for them.
    pub services: usize,
    /// Idle background services beside the proxy, each with a runtime of `threads` threads
    /// and a timer every second (as the gateway's admin, state and health-check services).
    pub idle_services: usize,
    /// What an accepted connection buffers (read-ahead, write).
    pub buffers: L4BufferSettings,
    /// Idle upstream connections kept per proxy thread, as the gateway keeps them
    /// (`imgproxy_gateway::upstream::affinity`); `false` is Pingora's one pool for all threads.
    pub pool_per_thread: bool,
}

impl Default for Tuning {
    /// One thread per core, no other service, the gateway's connection buffers and upstream
    /// pool per thread: the gateway's tuning.
    fn default() -> Tuning {
        Tuning {
            threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
            services: 1,
            idle_services: 0,
            buffers: imgproxy_gateway::listen::client_buffers(),
            pool_per_thread: true,
        }
    }
}

/// A background service that only ticks.
struct Idle;

#[async_trait]
impl pingora::services::background::BackgroundService for Idle {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

/// A server proxying `listen` to `backends`, tuned like the gateway: one thread per core,
/// `work_stealing: false`, a pool of 512 upstream connections partitioned per thread, the
/// gateway's connection buffers. `Server::run` starts it.
pub fn server(listen: &str, backends: &[String], tuning: &Tuning) -> Server {
    let conf = ServerConf {
        threads: tuning.threads,
        work_stealing: false,
        upstream_keepalive_pool_size: 512,
        daemon: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let peers: Vec<HttpPeer> = backends
        .iter()
        .map(|b| HttpPeer::new(b.as_str(), false, String::new()))
        .collect();
    for i in 0..tuning.services.max(1) {
        let proxy = Minimal {
            peers: peers.clone(),
            next: AtomicUsize::new(0),
            pool_per_thread: tuning.pool_per_thread,
        };
        let name = format!("Pingora HTTP Proxy Service {i}");
        let mut service =
            pingora::proxy::http_proxy_service_with_name(&server.configuration, proxy, &name);
        service.threads = Some(tuning.threads);
        service.add_listener(ListenerConfig::tcp(listen).l4_buffer(tuning.buffers));
        server.add_service(service);
    }
    for i in 0..tuning.idle_services {
        let name = format!("idle {i}");
        server.add_service(pingora::services::background::background_service(
            &name, Idle,
        ));
    }
    server
}
