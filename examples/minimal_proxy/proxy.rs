//! The minimal Pingora proxy itself, shared by `examples/minimal_proxy` (the process that
//! `benches/side_by_side.sh` drives) and `benches/allocations.rs` (which counts what it
//! allocates per request): round robin over peers built once, no policy at all.

use async_trait::async_trait;
use pingora::prelude::{HttpPeer, ProxyHttp, Result, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Minimal {
    peers: Vec<HttpPeer>,
    next: AtomicUsize,
}

#[async_trait]
impl ProxyHttp for Minimal {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.peers.len();
        Ok(Box::new(self.peers[i].clone()))
    }
}

/// A server proxying `listen` to `backends`, tuned like the gateway: one thread per core,
/// `work_stealing: false`, a pool of 512 upstream connections. `Server::run` starts it.
pub fn server(listen: &str, backends: &[String]) -> Server {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let conf = ServerConf {
        threads: cores,
        work_stealing: false,
        upstream_keepalive_pool_size: 512,
        daemon: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let peers = backends
        .iter()
        .map(|b| HttpPeer::new(b.as_str(), false, String::new()))
        .collect();
    let proxy = Minimal {
        peers,
        next: AtomicUsize::new(0),
    };
    let mut service = pingora::proxy::http_proxy_service(&server.configuration, proxy);
    service.add_tcp(listen);
    server.add_service(service);
    server
}
