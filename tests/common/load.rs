//! Keep-alive load from many connections whose client never retries (`RawClient`), recording
//! every request's outcome, start and latency, so a test can inject an outage mid-run and
//! compare what clients saw before, during and after it.

use super::raw::{Outcome, RawClient};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Sample {
    /// When the request started, from the start of the load.
    pub at: Duration,
    pub latency: Duration,
    /// The status, or `None` when the connection failed.
    pub status: Option<u16>,
    pub failure: Option<String>,
}

pub struct Load {
    started: Instant,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
}

impl Load {
    /// `connections` clients, spread over `ports`, each sending `GET path` with `headers`
    /// back to back until `stop` (or `limit` passes, whichever comes first).
    pub fn start(
        ports: &[u16],
        path: &str,
        headers: &[(&str, &str)],
        connections: usize,
        limit: Duration,
    ) -> Load {
        let started = Instant::now();
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..connections)
            .map(|i| {
                let mut client = RawClient::new(ports[i % ports.len()], path, headers);
                let stop = Arc::clone(&stop);
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
                        let at = started.elapsed();
                        let outcome = client.send().await;
                        let latency = started.elapsed() - at;
                        let (status, failure) = match outcome {
                            Outcome::Answer { status, .. } => (Some(status), None),
                            Outcome::Failed(e) => (None, Some(e)),
                        };
                        samples.push(Sample {
                            at,
                            latency,
                            status,
                            failure,
                        });
                    }
                    samples
                })
            })
            .collect();
        Load {
            started,
            stop,
            tasks,
        }
    }

    /// Time since the load started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub async fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let mut samples = Vec::new();
        for task in self.tasks {
            samples.extend(task.await.unwrap());
        }
        samples.sort_by_key(|s| s.at);
        Report { samples }
    }
}

pub struct Report {
    pub samples: Vec<Sample>,
}

impl Report {
    pub fn count(&self, status: u16) -> usize {
        self.samples
            .iter()
            .filter(|s| s.status == Some(status))
            .count()
    }

    pub fn failures(&self) -> Vec<&str> {
        self.samples
            .iter()
            .filter_map(|s| s.failure.as_deref())
            .collect()
    }

    /// Statuses other than 2xx, with their counts.
    pub fn non_2xx(&self) -> BTreeMap<u16, usize> {
        let mut counts = BTreeMap::new();
        for status in self.samples.iter().filter_map(|s| s.status) {
            if !(200..300).contains(&status) {
                *counts.entry(status).or_default() += 1;
            }
        }
        counts
    }

    /// The 99th percentile latency of requests started in `[from, to)`.
    pub fn p99(&self, from: Duration, to: Duration) -> Duration {
        let mut latencies: Vec<Duration> = self
            .samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .map(|s| s.latency)
            .collect();
        assert!(
            !latencies.is_empty(),
            "no request started in {from:?}..{to:?}"
        );
        latencies.sort();
        latencies[(latencies.len() * 99 / 100).min(latencies.len() - 1)]
    }

    /// Requests started in `[from, to)`.
    pub fn between(&self, from: Duration, to: Duration) -> usize {
        self.samples
            .iter()
            .filter(|s| s.at >= from && s.at < to)
            .count()
    }

    /// One line for the test's output: requests, 200s, failures, other statuses, p99.
    pub fn summary(&self, what: &str) -> String {
        let end = self.samples.last().map_or(Duration::ZERO, |s| s.at) + Duration::from_millis(1);
        format!(
            "{what}: {} requests, {} × 200, {} failed, other statuses {:?}, p99 {:?}",
            self.samples.len(),
            self.count(200),
            self.failures().len(),
            self.non_2xx(),
            self.p99(Duration::ZERO, end)
        )
    }

    /// Assert that every request was answered 2xx.
    pub fn assert_clean(&self, what: &str) {
        let failures = self.failures();
        assert!(
            failures.is_empty(),
            "{what}: {} requests failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(5)]
        );
        assert!(
            self.non_2xx().is_empty(),
            "{what}: non-2xx answers {:?}",
            self.non_2xx()
        );
    }
}

/// What wrk (an independent load generator) reported.
#[derive(Debug)]
pub struct Wrk {
    pub requests: u64,
    /// Connect, read, write and timeout errors together.
    pub socket_errors: u64,
    pub non_2xx: u64,
    /// wrk's 99th percentile latency, as it prints it (`12.34ms`).
    pub p99: String,
    pub output: String,
}

/// Start wrk against `url` with `header` (`Name: value`) from `connections` keep-alive
/// connections for `seconds`; `None` (skip) only outside CI when wrk is not installed.
pub fn wrk(
    url: &str,
    header: &str,
    connections: usize,
    seconds: u64,
) -> Option<tokio::process::Child> {
    let child = tokio::process::Command::new("wrk")
        .args(["-t2", "--latency", "--timeout", "10s"])
        .args(["-c", &connections.to_string(), "-d", &format!("{seconds}s")])
        .args(["-H", header, url])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    match child {
        Ok(child) => Some(child),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") => {
            panic!("wrk is required under CI (.ci/run installs it): {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: wrk not available ({e}); set CI=true to make this a failure");
            None
        }
    }
}

/// Wait for wrk to finish and read its report.
pub async fn wrk_report(child: tokio::process::Child) -> Wrk {
    let out = child.wait_with_output().await.unwrap();
    let output = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "wrk failed: {output}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let number_after = |label: &str| -> u64 {
        output
            .lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.trim().split([' ', ',']).next()?.parse().ok())
            .unwrap_or(0)
    };
    let requests = output
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .expect("wrk printed a request count");
    let socket_errors = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("Socket errors:"))
        .map_or(0, |rest| {
            rest.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        });
    let p99 = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("99%"))
        .map_or(String::new(), |v| v.trim().to_string());
    Wrk {
        requests,
        socket_errors,
        non_2xx: number_after("Non-2xx or 3xx responses:"),
        p99,
        output,
    }
}
