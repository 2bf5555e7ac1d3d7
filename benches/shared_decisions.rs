//! Shared-mode decisions per second: the rules of one authenticated request with every level on
//! (IP bucket, user minute and hour, endpoint, request quota), checked and consumed through the
//! gateway's own `Shared` against one Redis and against a three-master Redis Cluster, both
//! started here on loopback ephemeral ports. 64 decisions in flight, 10,000 users and 10,000
//! client addresses, 5 s per round, the two targets alternating for 3 rounds. Reports
//! decisions/s, round trips (script calls: `INFO commandstats` of every node) per decision, the Redis CPU time per decision (`used_cpu_sys` + `used_cpu_user` of every node),
//! and the busiest node's calls/s and CPU: on two cores the client and the nodes share the
//! machine, so the CPU per decision is the figure that sizes a deployment.
//!
//! `cargo bench --bench shared_decisions` (client and Redis share this machine's cores).

#[allow(dead_code)]
#[path = "../tests/common/process.rs"]
mod process;
#[allow(dead_code)]
#[path = "../tests/common/servers.rs"]
mod servers;

use imgproxy_gateway::limits::rules::{Kind, Rule, Shape};
use imgproxy_gateway::limits::shared::Shared;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const IN_FLIGHT: usize = 64;
const USERS: usize = 10_000;
const ROUND: Duration = Duration::from_secs(5);
const ROUNDS: usize = 3;

/// One request's rules for user `i`, limits high enough that every decision admits.
fn request_rules(i: usize, now: u64) -> Vec<Rule> {
    let minute = now - now % 60;
    let hour = now - now % 3600;
    let user = format!("{{u:bench-{i}}}");
    let rule = |kind, key: String, shape| Rule {
        kind,
        key: key.as_str().into(),
        limit: 1_000_000_000,
        shape,
    };
    vec![
        rule(
            Kind::Ip,
            format!("ip:{{ip:10.0.{}.{}}}", i / 256 % 256, i % 256),
            Shape::Bucket {
                per_minute: 1_000_000_000,
            },
        ),
        rule(
            Kind::UserMinute,
            format!("um:{user}:{minute}"),
            Shape::Window {
                start: minute,
                secs: 60,
            },
        ),
        rule(
            Kind::UserHour,
            format!("uh:{user}:{hour}"),
            Shape::Window {
                start: hour,
                secs: 3600,
            },
        ),
        rule(
            Kind::Api,
            format!("api:{{api:/api/v1/convert}}:{minute}"),
            Shape::Window {
                start: minute,
                secs: 60,
            },
        ),
        rule(
            Kind::Requests,
            format!("qr:{user}:2026-12"),
            Shape::Period {
                start: now - 86_400,
                end: now + 86_400 * 30,
                seed: 0,
            },
        ),
    ]
}

/// What a node has done so far: calls from clients (scripts and plain commands, not the
/// commands a script runs) and CPU seconds.
#[derive(Clone, Copy, Default)]
struct Work {
    calls: f64,
    cpu: f64,
}

fn work(ports: &[u16]) -> Vec<Work> {
    ports
        .iter()
        .map(|port| {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "info", "all"])
                .output()
                .expect("run redis-cli");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            let mut w = Work::default();
            for line in text.lines() {
                let number = |v: &str| v.trim().parse::<f64>().unwrap_or(0.0);
                if let Some(v) = line.strip_prefix("used_cpu_sys:") {
                    w.cpu += number(v);
                } else if let Some(v) = line.strip_prefix("used_cpu_user:") {
                    w.cpu += number(v);
                } else if let Some(rest) = line.strip_prefix("cmdstat_") {
                    let name = rest.split(':').next().unwrap_or("");
                    let calls = rest
                        .split("calls=")
                        .nth(1)
                        .and_then(|c| c.split(',').next());
                    // Every call of this client is a script; the commands a script runs
                    // (`get`, `hset`…) have cmdstat lines of their own and are not round trips.
                    if matches!(name, "evalsha" | "eval") {
                        w.calls += calls.map_or(0.0, number);
                    }
                }
            }
            w
        })
        .collect()
}

struct Round {
    per_second: f64,
    calls_per_decision: f64,
    cpu_us_per_decision: f64,
    busiest_calls_per_second: f64,
    busiest_cpu_percent: f64,
}

async fn round(shared: &Arc<Shared>, ports: &[u16], users: &Arc<Vec<Vec<Rule>>>) -> Round {
    let before = work(ports);
    let done = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (shared, users, done, next) =
                (shared.clone(), users.clone(), done.clone(), next.clone());
            tokio::spawn(async move {
                while start.elapsed() < ROUND {
                    let i = next.fetch_add(1, Ordering::Relaxed) as usize % users.len();
                    let decision = shared.check(&users[i], true).await;
                    assert!(
                        decision.is_some_and(|d| d.admitted()),
                        "Redis refused or failed"
                    );
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let decisions = done.load(Ordering::Relaxed) as f64;
    let deltas: Vec<Work> = work(ports)
        .iter()
        .zip(&before)
        .map(|(a, b)| Work {
            calls: a.calls - b.calls,
            cpu: a.cpu - b.cpu,
        })
        .collect();
    let busiest = deltas
        .iter()
        .copied()
        .max_by(|a, b| a.cpu.total_cmp(&b.cpu))
        .unwrap_or_default();
    Round {
        per_second: decisions / secs,
        calls_per_decision: deltas.iter().map(|w| w.calls).sum::<f64>() / decisions,
        cpu_us_per_decision: deltas.iter().map(|w| w.cpu).sum::<f64>() * 1e6 / decisions,
        busiest_calls_per_second: busiest.calls / secs,
        busiest_cpu_percent: busiest.cpu * 100.0 / secs,
    }
}

async fn connected(url: &str, cluster: bool) -> Arc<Shared> {
    let gauge = prometheus::IntGauge::new("bench_degraded", "-").unwrap();
    let shared = Shared::new(
        url.to_string(),
        format!("bench-{:x}:", rand::random::<u32>()),
        Duration::from_secs(2),
        gauge,
    );
    let shared = Arc::new(if cluster {
        shared.on_cluster(1)
    } else {
        shared
    });
    shared.connect().unwrap();
    let probe = request_rules(0, now());
    let deadline = Instant::now() + Duration::from_secs(20);
    while shared.check(&probe, false).await.is_none() {
        assert!(Instant::now() < deadline, "{url} did not answer");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    shared
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let single = servers::PrivateRedis::start().await;
        let cluster = servers::RedisCluster::start().await;
        let users: Arc<Vec<Vec<Rule>>> =
            Arc::new((0..USERS).map(|i| request_rules(i, now())).collect());
        let targets = [
            (
                "1 Redis",
                connected(&single.url(), false).await,
                vec![single.port],
            ),
            (
                "3-shard cluster",
                connected(&cluster.url(), true).await,
                cluster.ports.clone(),
            ),
        ];
        println!(
            "{IN_FLIGHT} in flight, {USERS} users, 5 rules a decision, {ROUNDS} rounds of {}s each",
            ROUND.as_secs()
        );
        println!(
            "{:<16} {:>5} {:>12} {:>15} {:>17} {:>18} {:>13}",
            "target",
            "round",
            "decisions/s",
            "calls/decision",
            "Redis CPU µs/dec",
            "busiest calls/s",
            "busiest CPU"
        );
        for r in 1..=ROUNDS {
            for (name, shared, ports) in &targets {
                let out = round(shared, ports, &users).await;
                println!(
                    "{name:<16} {r:>5} {:>12.0} {:>15.2} {:>17.1} {:>18.0} {:>12.0}%",
                    out.per_second,
                    out.calls_per_decision,
                    out.cpu_us_per_decision,
                    out.busiest_calls_per_second,
                    out.busiest_cpu_percent
                );
            }
        }
    });
}
