//! The gateway's I/O timeouts as a client meets them, and where they run: on each proxy
//! thread's own runtime timer. Pingora's "fast" timers, which it would use otherwise, live in a
//! shared map served by a clock thread of its own ("Timer thread"); that thread never starts.
//! (The backend's `response_timeout` is in `tests/pool.rs`: a slow backend is a 504.)

mod common;

use common::raw::{Outcome, RawClient};
use common::{Gateway, CONVERT, KEY};
use std::time::Duration;

/// The names of the threads of process `pid`.
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the gateway's threads");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keepalive_connection_is_closed_after_its_timeout_by_the_runtime_timer() {
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b])
        .server("  keepalive_timeout: 1s")
        .start()
        .await;
    let pid = gw.proc.pid().expect("the gateway runs");

    // Two proxied requests on one connection: it is kept alive between them.
    let mut client = RawClient::new(gw.port, CONVERT, &[("X-API-Key", KEY)]);
    for _ in 0..2 {
        match client.send().await {
            Outcome::Answer { status, close, .. } => {
                assert_eq!(status, 200);
                assert!(!close, "the gateway asked to close the connection");
            }
            Outcome::Failed(e) => panic!("{e}"),
        }
    }
    assert_eq!(client.connects, 1, "both requests on one connection");
    // Then idle: closed by the 1 s keep-alive timeout, without a word (the default is 60 s).
    let sent = client
        .closed_by_server_within(Duration::from_secs(15))
        .await;
    assert_eq!(
        sent.as_deref(),
        Some(&b""[..]),
        "an idle connection is closed once its keep-alive timeout passes, and nothing is sent"
    );

    // Every wait above (the keep-alive wait, the backend's answer, the idle pooled backend
    // connection) had its timeout; none started Pingora's clock thread.
    let names = thread_names(pid);
    assert!(
        !names.iter().any(|n| n == "Timer thread"),
        "Pingora's fast-timer clock thread runs: {names:?}"
    );
    assert!(
        names.iter().any(|n| n.starts_with("proxy")),
        "the proxy threads are where this test looks: {names:?}"
    );
}
