//! Zero-downtime upgrade: the documented procedure (start the new binary with `-u`, SIGQUIT the
//! old one) under keep-alive load from 100 connections whose client never retries: no failed
//! request, no non-2xx answer, and every answered request counted once in the user's usage,
//! both as the new process reports it at once and after a restart.

mod common;

use common::raw::{Outcome, RawClient};
use common::{Gateway, KEY};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const CONNECTIONS: usize = 100;

#[derive(Default, Debug)]
struct Tally {
    ok: u64,
    /// Answers that ended their connection (`Connection: close`, sent while draining).
    closed: u64,
    connects: u64,
    other_status: Vec<u16>,
    failures: Vec<String>,
}

/// One connection's worth of load: requests back to back until `stop`.
async fn load(port: u16, stop: Arc<AtomicBool>) -> Tally {
    let mut raw = RawClient::new(port, common::CONVERT, &[("X-API-Key", KEY)]);
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        match raw.send().await {
            Outcome::Answer {
                status: 200, close, ..
            } => {
                tally.ok += 1;
                tally.closed += u64::from(close);
            }
            Outcome::Answer { status, .. } => tally.other_status.push(status),
            Outcome::Failed(e) => tally.failures.push(e),
        }
    }
    tally.connects = raw.connects;
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_under_keepalive_load_loses_no_request() {
    let (a, b) = common::image_stubs().await;
    let mut gw = Gateway::over(&[&a, &b])
        .server("  grace_period: 1s\n  graceful_shutdown_timeout: 5s")
        .start()
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(load(gw.port, Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let served_before = a.served() + b.served();

    // The procedure of README "Upgrading without downtime".
    let successor = gw.spawn_successor().await;
    let mut old = std::mem::replace(&mut gw.proc, successor);
    old.signal("QUIT");
    tokio::task::spawn_blocking(move || old.wait_exit(Duration::from_secs(30)))
        .await
        .unwrap();
    let served_at_exit = a.served() + b.served();
    let pid_file = std::fs::read_to_string(gw.dir.path().join("gw.pid")).unwrap();
    assert_eq!(
        pid_file.trim(),
        gw.proc.pid().unwrap().to_string(),
        "server.pid_file names the new process"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = Tally::default();
    for handle in clients {
        let t = handle.await.unwrap();
        total.ok += t.ok;
        total.closed += t.closed;
        total.connects += t.connects;
        total.other_status.extend(t.other_status);
        total.failures.extend(t.failures);
    }
    let served_after = a.served() + b.served();
    println!(
        "upgrade under load: {} requests answered 200 over {} connections ({} closed while \
         draining), {} failed, {} other statuses; backends served {served_before} before the \
         upgrade and {} after the old process exited",
        total.ok,
        total.connects,
        total.closed,
        total.failures.len(),
        total.other_status.len(),
        served_after - served_at_exit,
    );
    assert!(
        total.failures.is_empty(),
        "{} requests failed, e.g. {:?}",
        total.failures.len(),
        &total.failures[..total.failures.len().min(5)]
    );
    assert!(
        total.other_status.is_empty(),
        "non-200 answers: {:?}",
        &total.other_status[..total.other_status.len().min(10)]
    );
    assert!(served_before > 0 && served_after > served_at_exit);
    assert!(
        total.closed >= CONNECTIONS as u64,
        "every connection to the old process ends with `Connection: close` ({} did)",
        total.closed
    );

    // The running process's usage counts every 200 exactly once, the old process's last
    // counts (written as it exited) included, without a restart.
    let live = |gw: &Gateway| {
        let url = gw.admin_url("/api/v1/users/legacy/quota");
        async move { common::get_json(url, Some(KEY)).await["requests"]["used"].clone() }
    };
    let settled = common::within(Duration::from_secs(5), || async {
        live(&gw).await == total.ok
    })
    .await;
    assert!(
        settled.is_some(),
        "live usage {} after the upgrade, {} answered",
        live(&gw).await,
        total.ok
    );

    // Usage: stop the new process gracefully (it writes what it counted), start again and read
    // the legacy user's quota: every 200 was counted exactly once, by one process or the other.
    gw.proc.signal("TERM");
    let mut proc = std::mem::replace(&mut gw.proc, common::Proc::none());
    tokio::task::spawn_blocking(move || proc.wait_exit(Duration::from_secs(30)))
        .await
        .unwrap();
    gw.restart().await;
    let quota = common::get_json(gw.admin_url("/api/v1/users/legacy/quota"), Some(KEY)).await;
    assert_eq!(quota["requests"]["used"], total.ok, "{quota}");
}
