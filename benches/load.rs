//! End-to-end load: the release gateway with every limit and quota on, in front of two dev
//! backends, driven by 32 keep-alive clients for 10 s per scenario; prints throughput, p50 and
//! p99. Scenarios: no limits, embedded limits, shared limits (Redis at 127.0.0.1:6379).
//!
//! `cargo bench --bench load` (client, gateway and backends share this machine's cores).

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_imgproxy-gateway");
const KEY: &str = "a8e77f84e2729dc6728889d4be31b123";
const CLIENTS: usize = 32;
const RUN: Duration = Duration::from_secs(10);

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(url).await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not become ready");
}

/// A 16×16 PNG served by this process as the convert source.
async fn serve_source() -> u16 {
    let mut png = Vec::new();
    let img =
        image::RgbImage::from_fn(16, 16, |x, y| image::Rgb([x as u8 * 16, y as u8 * 16, 128]));
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let png = png.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
                        png.len()
                    );
                    if s.write_all(head.as_bytes()).await.is_err()
                        || s.write_all(&png).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    port
}

async fn scenario(name: &str, extra: &str, backends: &[u16], source: u16) {
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let d = dir.path().display();
    let config = format!(
        "server:\n  host: 127.0.0.1\n  port: {port}\n  pid_file: {d}/gw.pid\n  upgrade_sock: {d}/up.sock\n\
admin:\n  listen: 127.0.0.1:{admin}\n\
database:\n  dsn: sqlite://{d}/gw.db?mode=rwc\n\
storage:\n  dir: {d}/images\n  source_base_url: http://127.0.0.1:{port}\n\
imgproxy:\n  allow_loopback_sources: true\n\
observability:\n  log_level: warn\n\
backends:\n  - url: http://127.0.0.1:{}\n    weight: 70\n  - url: http://127.0.0.1:{}\n    weight: 30\n{extra}",
        backends[0], backends[1]
    );
    std::fs::write(dir.path().join("gw.yaml"), config).unwrap();
    let _gw = Killed(
        Command::new(BIN)
            .args(["run", "--config"])
            .arg(dir.path().join("gw.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_ready(&format!("http://127.0.0.1:{port}/api/v1/ready")).await;
    let url = format!(
        "http://127.0.0.1:{port}/api/v1/convert?url=http://127.0.0.1:{source}/s.png&width=8"
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .unwrap();
    // Warm the key cache and the connections.
    for _ in 0..CLIENTS {
        let r = client
            .get(&url)
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "{name}: {}",
            r.text().await.unwrap_or_default()
        );
    }
    let started = Instant::now();
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failed = 0u64;
                while started.elapsed() < RUN {
                    let t = Instant::now();
                    match client.get(&url).header("X-API-Key", KEY).send().await {
                        Ok(r) if r.status() == 200 => {
                            let _ = r.bytes().await;
                            latencies.push(t.elapsed());
                        }
                        _ => failed += 1,
                    }
                }
                (latencies, failed)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut failed = 0;
    for w in workers {
        let (l, f) = w.await.unwrap();
        all.extend(l);
        failed += f;
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    let pct = |p: usize| all[(all.len() * p / 100).min(all.len() - 1)];
    println!(
        "{name:<28} {:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ok {}   failed {failed}",
        all.len() as f64 / secs,
        pct(50).as_secs_f64() * 1000.0,
        pct(99).as_secs_f64() * 1000.0,
        all.len()
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let backends = [free_port(), free_port()];
        let _backends: Vec<Killed> = backends
            .iter()
            .map(|p| {
                Killed(
                    Command::new(BIN)
                        .args(["dev-backend", "--listen", &format!("127.0.0.1:{p}")])
                        // The bench serves its source on loopback.
                        .args(["--allow-loopback-source-addresses", "true"])
                        .env("RUST_LOG", "warn")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .unwrap(),
                )
            })
            .collect();
        for p in backends {
            wait_ready(&format!("http://127.0.0.1:{p}/health")).await;
        }
        let source = serve_source().await;
        // High enough that nothing is refused: every level is still checked and consumed.
        let limits = "rate_limits:\n  ip_level:\n    requests_per_minute: 10000000\n    burst: 10000000\n  user_level:\n    requests_per_minute: 10000000\n    requests_per_hour: 100000000\n  api_level:\n    /api/v1/convert:\n      requests_per_minute: 10000000\nquotas:\n  monthly_requests: 1000000000000\n";
        println!("{CLIENTS} keep-alive clients, {} s each, convert of a 16×16 PNG to an 8 px WebP", RUN.as_secs());
        scenario("no limits, no quotas", "quotas:\n  monthly_requests: 0\n  monthly_bandwidth_mb: 0\n  storage_quota_mb: 0\n", &backends, source).await;
        scenario("embedded limits + quotas", limits, &backends, source).await;
        let prefix = format!("bench-{}:", std::process::id());
        scenario(
            "shared (Redis) limits + quotas",
            &format!("{limits}redis:\n  url: redis://127.0.0.1:6379\n  key_prefix: \"{prefix}\"\n"),
            &backends,
            source,
        )
        .await;
    });
}
