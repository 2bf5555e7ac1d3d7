//! Heap allocations per request, counted by a global allocator wrapped around mimalloc (the
//! gateway's own allocator). In this one process, in front of the same backend: the minimal
//! Pingora proxy of `examples/minimal_proxy` (Pingora's own cost), then the gateway with the
//! configuration of `benches/side_by_side.sh` (embedded mode, every limit and quota on, request
//! log lines at INFO). One keep-alive client sends the requests one after another; it, the
//! backend and the counting allocate nothing per request themselves, so every allocation
//! counted is the proxy's (and, for the gateway, the little its timers do meanwhile: measured
//! on its own as "idle" and printed).
//!
//! `cargo bench --bench allocations 2>/dev/null` (stderr carries the gateway's log lines)
//!
//! `ALLOC_SITES=20` adds, per case, where the allocations of 20 more requests come from: each
//! allocation's backtrace, summed by its innermost frames of this crate or Pingora.

#[path = "../examples/minimal_proxy/proxy.rs"]
mod minimal;

use imgproxy_gateway::{app, config, logging};
use std::alloc::{GlobalAlloc, Layout};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

fn count(size: usize) {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    BYTES.fetch_add(size as u64, Ordering::Relaxed);
    if TRACING.load(Ordering::Relaxed) {
        trace();
    }
}

/// Backtraces of allocations while `TRACING` (`ALLOC_SITES`).
static TRACING: AtomicBool = AtomicBool::new(false);
static SITES: Mutex<Vec<Backtrace>> = Mutex::new(Vec::new());

thread_local! {
    /// Set while this thread captures a backtrace (which allocates too).
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
}

fn trace() {
    if CAPTURING.with(|c| c.replace(true)) {
        return;
    }
    let backtrace = Backtrace::force_capture();
    SITES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(backtrace);
    CAPTURING.with(|c| c.set(false));
}

/// The innermost frames of this crate or Pingora in a backtrace (up to three).
fn site(backtrace: &Backtrace) -> String {
    let text = backtrace.to_string();
    let frames: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("at "))
        .filter_map(|l| l.split_once(": ").map(|(_, f)| f))
        .filter(|f| f.contains("imgproxy_gateway") || f.contains("pingora"))
        .filter(|f| !f.contains("allocations::"))
        .take(3)
        .collect();
    frames.join(" < ")
}

/// Trace the allocations of `requests` more requests and print their sites, most frequent first.
fn sites(client: &mut Client, request: &[u8], requests: u32) {
    SITES.lock().unwrap_or_else(|p| p.into_inner()).clear();
    TRACING.store(true, Ordering::Relaxed);
    for _ in 0..requests {
        client.exchange(request);
    }
    TRACING.store(false, Ordering::Relaxed);
    let traces = std::mem::take(&mut *SITES.lock().unwrap_or_else(|p| p.into_inner()));
    let mut by_site: HashMap<String, u32> = HashMap::new();
    for backtrace in &traces {
        *by_site.entry(site(backtrace)).or_default() += 1;
    }
    let mut by_site: Vec<(String, u32)> = by_site.into_iter().collect();
    by_site.sort_by_key(|site| std::cmp::Reverse(site.1));
    for (site, n) in by_site {
        println!("    {:>6.2}  {site}", f64::from(n) / f64::from(requests));
    }
}

// SAFETY: every call is passed unchanged to mimalloc; counting touches only two atomics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        mimalloc::MiMalloc.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        mimalloc::MiMalloc.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        mimalloc::MiMalloc.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        mimalloc::MiMalloc.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const KEY: &str = "a8e77f84e2729dc6728889d4be31b123";
const PATH: &str = "/api/v1/convert?url=http://images.example/a.jpg&width=300";
const WARM_UP: u32 = 2_000;
const MEASURED: u32 = 20_000;
const BODY: usize = 2048;

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// An "imgproxy" answering every request with the same 2 KiB body and imgproxy's own
/// `Cache-Control` (its default TTL), a thread per connection.
fn backend() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("backend port");
    let port = listener.local_addr().expect("backend address").port();
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: image/webp\r\nCache-Control: max-age=31536000, public\r\n\
         Content-Length: {BODY}\r\n\r\n"
    )
    .into_bytes();
    answer.resize(answer.len() + BODY, b'x');
    let answer: &'static [u8] = answer.leak();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve(stream, answer));
        }
    });
    port
}

fn serve(mut stream: TcpStream, answer: &[u8]) {
    let mut buf = [0u8; 16 * 1024];
    let mut have = 0;
    loop {
        match stream.read(&mut buf[have..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
        // GET requests only: each ends with its blank line.
        while let Some(end) = find(&buf[..have], b"\r\n\r\n") {
            if stream.write_all(answer).is_err() {
                return;
            }
            buf.copy_within(end + 4..have, 0);
            have -= end + 4;
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// One keep-alive connection that sends a prepared request and reads each answer into a fixed
/// buffer: no allocation per request.
struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        Client {
            stream,
            buf: vec![0; 64 * 1024],
        }
    }

    /// Send `request`; the status and the body of the answer (`Content-Length` framed).
    fn exchange(&mut self, request: &[u8]) -> (u16, &[u8]) {
        self.stream.write_all(request).expect("write");
        let mut have = 0;
        let head_end = loop {
            let n = self.stream.read(&mut self.buf[have..]).expect("read");
            assert!(n > 0, "the proxy closed the connection");
            have += n;
            if let Some(end) = find(&self.buf[..have], b"\r\n\r\n") {
                break end + 4;
            }
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).expect("an ASCII head");
        let status = head[9..12].parse().expect("a status");
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no Content-Length in {head}"));
        while have < head_end + length {
            let n = self.stream.read(&mut self.buf[have..]).expect("read body");
            assert!(n > 0, "the proxy closed the connection mid-body");
            have += n;
        }
        (status, &self.buf[head_end..head_end + length])
    }
}

fn request(method: &str, path: &str, key: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn wait_for(port: u16, request: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) {
            drop(stream);
            if Client::connect(port).exchange(request).0 == 200 {
                return;
            }
        }
        assert!(Instant::now() < deadline, "port {port} did not answer 200");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Allocations and bytes allocated per request over `MEASURED` requests, after `WARM_UP`;
/// every answer must have `expected` status.
fn per_request(name: &str, port: u16, request: &[u8], expected: u16) {
    let mut client = Client::connect(port);
    for _ in 0..WARM_UP {
        assert_eq!(client.exchange(request).0, expected, "{name}");
    }
    let (a0, b0, t0) = (
        ALLOCATIONS.load(Ordering::Relaxed),
        BYTES.load(Ordering::Relaxed),
        Instant::now(),
    );
    for _ in 0..MEASURED {
        let (status, _) = client.exchange(request);
        assert_eq!(status, expected, "{name}");
    }
    let elapsed = t0.elapsed();
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - a0;
    let bytes = BYTES.load(Ordering::Relaxed) - b0;
    println!(
        "{name:<34} {expected:>6} {:>12.1} {:>14.0} {:>10.1}",
        allocations as f64 / f64::from(MEASURED),
        bytes as f64 / f64::from(MEASURED),
        elapsed.as_secs_f64(),
    );
    if let Some(n) = std::env::var("ALLOC_SITES")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        sites(&mut client, request, n);
    }
}

/// What the process allocates with no request at all, over `over`.
fn idle(name: &str, over: Duration) {
    let a0 = ALLOCATIONS.load(Ordering::Relaxed);
    std::thread::sleep(over);
    let allocations = ALLOCATIONS.load(Ordering::Relaxed) - a0;
    println!(
        "{name:<34} {:>6} {:>12.1} per second",
        "idle",
        allocations as f64 / over.as_secs_f64()
    );
}

fn gateway_config(dir: &std::path::Path, port: u16, admin: u16, backends: [u16; 2]) -> String {
    let d = dir.display();
    let [b1, b2] = backends;
    format!(
        r#"server: {{host: 127.0.0.1, port: {port}, pid_file: {d}/gw.pid, upgrade_sock: {d}/gw.sock}}
admin: {{listen: "127.0.0.1:{admin}"}}
database: {{driver: sqlite, dsn: "sqlite://{d}/gw.db?mode=rwc"}}
backends:
  - url: http://127.0.0.1:{b1}
  - url: http://127.0.0.1:{b2}
health_check: {{interval: 5s, timeout: 1s}}
rate_limits:
  ip_level: {{requests_per_minute: 10000000, burst: 10000000}}
  user_level: {{requests_per_minute: 10000000, requests_per_hour: 100000000}}
  api_level: {{/api/v1/convert: {{requests_per_minute: 100000000}}}}
quotas: {{monthly_requests: 1000000000, monthly_bandwidth_mb: 100000000, storage_quota_mb: 1024}}
imgproxy: {{source_hosts: {{images.example: [93.184.216.34]}}}}
storage: {{dir: {d}/images}}
observability: {{log_level: INFO}}
"#
    )
}

fn main() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let backends = [backend(), backend()];
    let proxied = request("GET", PATH, KEY, "");
    println!(
        "{:<34} {:>6} {:>12} {:>14} {:>10}",
        "per request, after 2000 warm-up", "status", "allocations", "bytes", "seconds"
    );

    let minimal_port = free_port();
    let upstreams = backends.map(|b| format!("127.0.0.1:{b}"));
    let listen = format!("127.0.0.1:{minimal_port}");
    let minimal = minimal::server(&listen, &upstreams, &minimal::Tuning::default());
    std::thread::spawn(move || minimal.run(pingora::server::RunArgs::default()));
    wait_for(minimal_port, &proxied);
    per_request("minimal Pingora, proxied", minimal_port, &proxied, 200);

    let (port, admin) = (free_port(), free_port());
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, gateway_config(dir.path(), port, admin, backends)).expect("config");
    let config = config::load_file(&path).expect("the configuration");
    logging::init(
        *config.observability.log_level,
        config.observability.log_format,
    );
    app::migrate(&config).expect("migrations");
    let built = app::build(config, Some(path), false).expect("the gateway");
    std::thread::spawn(move || built.server.run(pingora::server::RunArgs::default()));
    wait_for(port, &proxied);
    per_request("gateway, proxied (legacy key)", port, &proxied, 200);

    let ghost = format!("imgproxy_ghost_{}", "x".repeat(43));
    let unknown = request("GET", PATH, &ghost, "");
    per_request("gateway, unknown key", port, &unknown, 401);

    // A user allowed one request a minute and one an hour: every request after the first is a
    // 429, also when the run crosses the start of a minute (the windows are the clock's).
    let user = r#"{"id":"limited","name":"Limited","email":"l@example.com","role":"user","rate_limits":{"requests_per_minute":1,"requests_per_hour":1}}"#;
    let mut admin_client = Client::connect(admin);
    let (status, body) = admin_client.exchange(&request("POST", "/api/v1/users", KEY, user));
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(body));
    let created: serde_json::Value = serde_json::from_slice(body).expect("JSON");
    let key = created["api_key"]["key"]
        .as_str()
        .expect("the new key")
        .to_string();
    let limited = request("GET", PATH, &key, "");
    assert_eq!(Client::connect(port).exchange(&limited).0, 200);
    per_request("gateway, rate limited", port, &limited, 429);

    idle("gateway", Duration::from_secs(2));
    std::process::exit(0);
}
