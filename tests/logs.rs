//! Logs: every line is a JSON object (the gateway's, Pingora's and the database driver's), one
//! line per request with the documented fields, security events by name, and never a key.

mod common;

use common::stub::{Mode, Stub};
use common::{admin, convert, create_user, Gateway, LogValve, KEY};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread")]
async fn request_lines_security_events_and_no_secrets() {
    let a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let gw = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .yaml("observability:\n  log_level: INFO\nquotas:\n  monthly_requests: 100")
        .start()
        .await;
    let key = create_user(
        &gw,
        "log-user",
        "user",
        json!({"quotas": {"monthly_requests": 1}}),
    )
    .await;
    let fenced = create_user(
        &gw,
        "log-fenced",
        "user",
        json!({"ip_whitelist": ["10.0.0.0/8"]}),
    )
    .await;
    assert_eq!(convert(&gw, &key).await.status(), 200);
    assert_eq!(convert(&gw, &key).await.status(), 402);
    assert_eq!(convert(&gw, &fenced).await.status(), 403);
    // The last character replaced by another (a key that ends in `x` must not stay itself).
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let wrong = format!("{}{last}", &key[..key.len() - 1]);
    assert_eq!(convert(&gw, &wrong).await.status(), 401);
    admin(
        &gw,
        "PUT",
        "/api/v1/users/log-user",
        KEY,
        Some(json!({"name": "Renamed"})),
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let log = gw.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines
        .iter()
        .all(|l| l["ts"].is_string() && l["level"].is_string()));
    assert!(
        lines.iter().any(|l| l["target"]
            .as_str()
            .is_some_and(|t| t.starts_with("pingora"))),
        "Pingora's own lines are JSON too"
    );

    let request = lines
        .iter()
        .find(|l| l["event"] == "request" && l["status"] == 200 && l["user_id"] == "log-user")
        .expect("a request line");
    for field in [
        "ts",
        "level",
        "request_id",
        "method",
        "endpoint",
        "path",
        "status",
        "duration_ms",
        "user_id",
        "client_ip",
        "backend",
        "bytes_in",
        "bytes_out",
    ] {
        assert!(
            !request[field].is_null(),
            "request line lacks {field}: {request}"
        );
    }
    assert_eq!(request["endpoint"], "/api/v1/convert");
    assert_eq!(request["client_ip"], "127.0.0.1");
    assert!(request["bytes_out"].as_u64().unwrap() > 0);

    let event = |name: &str| lines.iter().find(|l| l["event"] == name).cloned();
    let quota = event("quota_exceeded").expect("quota_exceeded");
    assert_eq!(
        (quota["user_id"].as_str(), quota["quota"].as_str()),
        (Some("log-user"), Some("requests"))
    );
    let blocked = event("ip_blocked").expect("ip_blocked");
    assert_eq!(blocked["client_ip"], "127.0.0.1");
    let failed = event("auth_failure").expect("auth_failure");
    assert_eq!(failed["endpoint"], "/api/v1/convert");
    assert!(event("admin_change").is_some());

    // No secret: neither a key's secret part nor the legacy key.
    for secret in [
        &key[key.len() - 31..],
        &fenced[fenced.len() - 31..],
        &wrong[wrong.len() - 31..],
        KEY,
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

/// `write` system calls the gateway process has made so far (`syscw` of `/proc/<pid>/io`).
fn write_calls(gw: &Gateway) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{}/io", gw.proc.pid().unwrap())).unwrap();
    io.lines()
        .find_map(|l| l.strip_prefix("syscw: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Log lines are written in batches: 400 refused requests (a request line and an `auth_failure`
/// event each) cost about one write each, the 401 answer, instead of three.
#[tokio::test(flavor = "multi_thread")]
async fn log_lines_cost_no_write_per_request() {
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b])
        .yaml("observability:\n  log_level: INFO")
        .start()
        .await;
    let client = common::client();
    let unknown = "imgproxy_nobody_0123456789abcdef0123456789abcdef";
    let refused = || async {
        let r = client
            .get(gw.url(common::CONVERT))
            .header("X-API-Key", unknown)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    };
    refused().await;
    let before = write_calls(&gw);
    for _ in 0..400 {
        refused().await;
    }
    let writes = write_calls(&gw) - before;
    gw.wait_log("\"event\":\"request\"", 401).await;
    eprintln!("400 refused requests: {writes} write calls");
    assert!(writes < 600, "{writes} write calls for 400 requests");
}

/// A graceful stop writes every line still held: each request answered has its line, and so
/// has the last thing logged before the process exits.
#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_stop_loses_no_log_line() {
    let (a, b) = common::image_stubs().await;
    let mut gw = Gateway::over(&[&a, &b])
        .yaml("observability:\n  log_level: INFO")
        .start()
        .await;
    let answered = common::all_at_once((0..200).map(|_| {
        common::client()
            .get(gw.url(common::CONVERT))
            .header("X-API-Key", KEY)
    }))
    .await;
    assert!(answered.iter().all(|s| *s == 200), "{answered:?}");
    gw.proc.signal("TERM");
    gw.proc.wait_exit(std::time::Duration::from_secs(30));
    let lines = gw
        .log()
        .lines()
        .filter(|l| {
            l.contains("\"event\":\"request\"") && l.contains("\"endpoint\":\"/api/v1/convert\"")
        })
        .count();
    assert_eq!(lines, 200);
    // Pingora's last line, logged just before the process exits, is there too.
    let log = gw.log();
    let last = log.lines().last().unwrap_or_default();
    assert!(last.contains("All runtimes exited, exiting now"), "{last}");
}

/// A log reader that stops reading (journald or a log shipper falling behind: the gateway's
/// stderr is a pipe nobody drains) holds no request up while the lines waiting stay under the
/// bound (1 MiB): they wait in memory, only the flusher thread is blocked on the pipe, and once
/// the reader reads again every line arrives. (Before, the thread that logged the line that
/// filled a batch wrote it itself, and with the pipe full it stopped serving: every request on
/// its connections waited for the reader.)
#[tokio::test(flavor = "multi_thread")]
async fn a_log_reader_that_stops_holds_no_request_up() {
    let (a, b) = common::image_stubs().await;
    let valve = LogValve::default();
    let gw = Gateway::over(&[&a, &b])
        .yaml("observability:\n  log_level: INFO")
        .log_valve(&valve)
        .start()
        .await;
    let unknown = "imgproxy_nobody_0123456789abcdef0123456789abcdef";
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let refuse = |n: usize| {
        common::all_at_once((0..n).map(|_| {
            client
                .get(gw.url(common::CONVERT))
                .header("X-API-Key", unknown)
        }))
    };
    assert_eq!(refuse(1).await, [401]);
    gw.wait_log("\"event\":\"auth_failure\"", 1).await;
    let before = gw.log().len();
    valve.stop();
    // At once, so that batches fill faster than the flusher's 100 ms tick empties them.
    let answered = refuse(600).await;
    let refused = answered.iter().filter(|s| **s == 401).count();
    valve.resume();
    assert_eq!(
        refused,
        answered.len(),
        "answered while the log reader was stopped (0: no answer within 10 s): {answered:?}"
    );
    gw.wait_log("\"event\":\"auth_failure\"", 601).await;
    // What waited: many times the pipe (64 KiB) and the reader's last read (64 KiB), under the
    // 1 MiB the gateway holds before the thread that logs writes itself.
    let waited = gw.log().len() - before;
    eprintln!("600 refusals logged {waited} bytes while the reader was stopped");
    assert!((3 * 64 * 1024..1024 * 1024).contains(&waited), "{waited}");
}
