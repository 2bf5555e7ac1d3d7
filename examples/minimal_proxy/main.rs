//! The reference of `benches/side_by_side.sh`: a minimal Pingora reverse proxy, tuned like the
//! gateway (mimalloc, `work_stealing: false`, one thread per core, the production profile's fat
//! LTO) and with its peers built once, round robin over the backends. No policy at all: what
//! Pingora itself costs on this machine.
//!
//! `cargo run --profile production --example minimal_proxy -- LISTEN BACKEND...`

mod proxy;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (listen, backends) = args
        .split_first()
        .expect("usage: minimal_proxy LISTEN BACKEND...");
    proxy::server(listen, backends).run_forever()
}
