//! The gateway's I/O timeouts as a client meets them, and where they run: on each proxy
//! thread's own runtime timer. Pingora's "fast" timers, which it would use otherwise, live in a
//! shared map served by a clock thread of its own ("Timer thread"); that thread never starts.
//! (The backend's `response_timeout` is in `tests/pool.rs`: a slow backend is a 504.)

mod common;

use common::stub::{Mode, Stub};
use common::{Gateway, CONVERT, KEY};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The names of the threads of process `pid`.
fn thread_names(pid: u32) -> Vec<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the gateway's threads");
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim_end().to_string())
        .collect()
}

/// Send `request` and read its answer: the head, and as many body bytes as it announced.
async fn exchange(conn: &mut TcpStream, request: &str) -> String {
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed before the answer was complete: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text[..end].to_string();
            }
        }
    }
}

/// How the server ended an idle connection within `limit`: `Some(bytes it sent first)`, or
/// `None` when it kept the connection open that long.
async fn closed_within(conn: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut sent = Vec::new();
    let mut buf = [0u8; 1024];
    let read = async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => sent.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(sent)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_keepalive_connection_is_closed_after_its_timeout_by_the_runtime_timer() {
    let a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let gw = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .server("  keepalive_timeout: 1s")
        .start()
        .await;
    let pid = gw.proc.pid().expect("the gateway runs");
    let request = format!("GET {CONVERT} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n\r\n");

    // Two proxied requests on one connection: it is kept alive between them.
    let mut conn = TcpStream::connect(("127.0.0.1", gw.port)).await.unwrap();
    for _ in 0..2 {
        let head = exchange(&mut conn, &request).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("connection: close"),
            "{head}"
        );
    }
    // Then idle: closed by the 1 s keep-alive timeout, without a word (the default is 60 s).
    let sent = closed_within(&mut conn, Duration::from_secs(15)).await;
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
