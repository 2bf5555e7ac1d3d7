//! The reference of `benches/side_by_side.sh`: a minimal Pingora reverse proxy, tuned like the
//! gateway (its allocator, `work_stealing: false`, one thread per core, the production
//! profile's fat LTO) and with its peers built once, round robin over the backends. No policy at all: what
//! Pingora itself costs on this machine.
//!
//! `cargo run --profile production --example minimal_proxy -- LISTEN BACKEND...`
//!
//! `MINIMAL_THREADS` (default: one per core), `MINIMAL_SERVICES` (proxy services on the same
//! address, each with `MINIMAL_THREADS` threads; default 1), `MINIMAL_IDLE_SERVICES` (default 0),
//! `MINIMAL_READ_BUFFER` and `MINIMAL_WRITE_BUFFER` (bytes; default: the gateway's, see
//! `imgproxy_gateway::listen::client_buffers`) and `MINIMAL_SHARED_POOL=1` (Pingora's one
//! upstream pool for all threads instead of the gateway's pool per thread, see
//! `imgproxy_gateway::upstream::affinity`) vary the tuning for `benches/side_by_side.sh`'s
//! study of Pingora's own costs.

mod proxy;

// The gateway's allocator, tuned alike.
imgproxy_gateway::process_allocator!();

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, backends) = args
        .split_first()
        .expect("usage: minimal_proxy LISTEN BACKEND...");
    let mut tuning = proxy::Tuning::default();
    let number = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
    if let Some(threads) = number("MINIMAL_THREADS") {
        tuning.threads = threads;
    }
    if let Some(services) = number("MINIMAL_SERVICES") {
        tuning.services = services;
    }
    if let Some(services) = number("MINIMAL_IDLE_SERVICES") {
        tuning.idle_services = services;
    }
    if let Some(read) = number("MINIMAL_READ_BUFFER") {
        tuning.buffers.read = Some(read);
    }
    if let Some(write) = number("MINIMAL_WRITE_BUFFER") {
        tuning.buffers.write = Some(write);
    }
    if std::env::var_os("MINIMAL_SHARED_POOL").is_some_and(|v| v == "1") {
        tuning.pool_per_thread = false;
    }
    proxy::server(listen, backends, &tuning).run_forever()
}
