//! The reference of `benches/side_by_side.sh`: a minimal Pingora reverse proxy, tuned like the
//! gateway (mimalloc, `work_stealing: false`, one thread per core, the production profile's fat
//! LTO) and with its peers built once, round robin over the backends. No policy at all: what
//! Pingora itself costs on this machine.
//!
//! `cargo run --profile production --example minimal_proxy -- LISTEN BACKEND...`

use async_trait::async_trait;
use pingora::prelude::{HttpPeer, ProxyHttp, Result, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use std::sync::atomic::{AtomicUsize, Ordering};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, backends) = args
        .split_first()
        .expect("usage: minimal_proxy LISTEN BACKEND...");
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
    server.run_forever()
}
