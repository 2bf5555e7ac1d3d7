//! `GET /metrics`: the documented names and labels (README, "Prometheus"), values that follow
//! what clients did, and an exposition a real `promtool check metrics` accepts.

mod common;

use common::stub::{Mode, Stub};
use common::{client, convert, metric, Gateway, KEY};
use futures_util::StreamExt;
use std::io::Write;
use std::process::{Command, Stdio};

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_clients_did_and_promtool_accepts_them() {
    let a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let gw = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .start()
        .await;
    // The metered client has 3 requests a minute; the operator reading metrics (the legacy
    // admin) is limited apart (admin calls count against the caller's own user levels).
    let user = common::create_user(
        &gw,
        "metered",
        "user",
        serde_json::json!({"rate_limits": {"requests_per_minute": 3, "requests_per_hour": 100}}),
    )
    .await;
    let second = chrono::Utc::now().timestamp() % 60;
    if second >= 55 {
        tokio::time::sleep(std::time::Duration::from_secs((61 - second) as u64)).await;
    }
    for _ in 0..3 {
        assert_eq!(convert(&gw, &user).await.status(), 200);
    }
    assert_eq!(convert(&gw, &user).await.status(), 429);
    assert_eq!(convert(&gw, "nope").await.status(), 401);

    let series = |s: &str| s.to_string();
    let expect = [
        (series("http_requests_total{endpoint=\"/api/v1/convert\",method=\"GET\",status=\"200\",user_id=\"metered\"}"), 3.0),
        (series("http_requests_total{endpoint=\"/api/v1/convert\",method=\"GET\",status=\"429\",user_id=\"metered\"}"), 1.0),
        (series("http_requests_total{endpoint=\"/api/v1/convert\",method=\"GET\",status=\"401\",user_id=\"anonymous\"}"), 1.0),
        (series("http_request_duration_seconds_count{endpoint=\"/api/v1/convert\",method=\"GET\"}"), 5.0),
        (series("user_requests_total{user_id=\"metered\"}"), 4.0),
        (series("user_rate_limit_violations{limit_type=\"user_minute\",user_id=\"metered\"}"), 1.0),
        (format!("backend_health_status{{backend_url=\"{}\"}}", a.url()), 1.0),
        (format!("backend_health_status{{backend_url=\"{}\"}}", b.url()), 1.0),
        (series("active_connections"), 0.0),
        (series("redis_degraded"), 0.0),
    ];
    for (s, value) in &expect {
        assert_eq!(metric(&gw, s).await, Some(*value), "{s}");
    }
    let mut sent = 0.0;
    for u in [a.url(), b.url()] {
        sent += metric(
            &gw,
            &format!("backend_requests_total{{backend_url=\"{u}\",status=\"200\"}}"),
        )
        .await
        .unwrap_or(0.0);
    }
    assert_eq!(sent, 3.0, "three conversions reached a backend");
    let buckets = format!(
        "backend_response_time_seconds_count{{backend_url=\"{}\"}}",
        a.url()
    );
    assert!(metric(&gw, &buckets).await.unwrap_or(0.0) >= 1.0);
    assert!(metric(&gw, "memory_usage_bytes").await.unwrap() > 1_000_000.0);
    assert!(metric(&gw, "cpu_usage_percent").await.is_some());

    // The same story as one JSON document (any role that may read).
    let (status, doc) = common::admin(&gw, "GET", "/api/v1/metrics", KEY, None).await;
    assert_eq!(status, 200, "{doc}");
    // The harness's readiness probes of /api/v1/health (200) count too.
    let probes = doc["requests"]["by_endpoint"]["/api/v1/health"]
        .as_u64()
        .unwrap();
    assert!(probes >= 1);
    assert_eq!(doc["requests"]["total"], 5 + probes, "{doc}");
    assert_eq!(doc["requests"]["by_endpoint"]["/api/v1/convert"], 5);
    assert_eq!(doc["requests"]["by_class"]["2xx"], 3 + probes);
    assert_eq!(doc["requests"]["by_class"]["4xx"], 2);
    assert_eq!(doc["requests"]["error_rate"], 0.0);
    assert_eq!(
        doc["requests"]["client_error_rate"],
        2.0 / (5 + probes) as f64
    );
    let (p50, p99) = (
        doc["latency_seconds"]["p50"].as_f64().unwrap(),
        doc["latency_seconds"]["p99"].as_f64().unwrap(),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= 10.0, "{doc}");
    // The buckets the UI's live p95 is drawn from: cumulative, ending at the count.
    let buckets = doc["latency_seconds"]["buckets"].as_array().unwrap();
    let counts: Vec<u64> = buckets.iter().map(|b| b[1].as_u64().unwrap()).collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{doc}");
    assert_eq!(buckets.last().unwrap()[0], 10.0);
    assert_eq!(
        counts.last(),
        doc["latency_seconds"]["count"].as_u64().as_ref()
    );
    assert_eq!(doc["latency_seconds"]["count"], doc["requests"]["total"]);
    assert_eq!(doc["limits"]["violations"]["user_minute"], 1);
    assert_eq!(doc["limits"]["redis"], "disabled");
    assert_eq!(doc["database"], "up");
    assert_eq!(doc["quotas"]["recent_events"], serde_json::json!([]));
    assert_eq!(doc["backends"].as_array().unwrap().len(), 2);
    assert_eq!(
        client()
            .get(gw.admin_url("/api/v1/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let text = common::metrics_text(&gw).await;
    assert!(text.contains("http_request_duration_seconds_bucket{endpoint=\"/api/v1/convert\",method=\"GET\",le=\"0.0001\"}"));
    assert!(text.contains("le=\"10\""));
    // A real promtool must accept the exposition.
    let promtool = match Command::new("promtool").arg("--version").output() {
        Ok(_) => "promtool",
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("promtool is required under CI (Debian package prometheus): {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED promtool check: {e}");
            return;
        }
    };
    let mut check = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_metrics_token_guards_the_exposition() {
    let a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let gw = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .yaml("")
        .start()
        .await;
    assert_eq!(
        client()
            .get(gw.admin_url("/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    drop(gw);
    let gw = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .admin_line("  metrics_token: s3cret")
        .start()
        .await;
    let get = |auth: Option<&str>| {
        let mut req = client().get(gw.admin_url("/metrics"));
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        async move { req.send().await.unwrap().status() }
    };
    assert_eq!(get(None).await, 401);
    assert_eq!(get(Some("Bearer wrong")).await, 401);
    assert_eq!(get(Some("Bearer s3cret")).await, 200);
}

/// The series of `/metrics` (one line each), ignoring values.
async fn series(gw: &Gateway) -> Vec<String> {
    let mut names: Vec<String> = common::metrics_text(gw)
        .await
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(name, _)| name.to_string()))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn random_methods_paths_and_keys_create_no_series() {
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b])
        .yaml("rate_limits:\n  ip_level:\n    requests_per_minute: 10000000\n    burst: 10000000")
        .start()
        .await;
    let http = client();
    let send = |method: String, path: String, key: String| {
        let request = http
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                gw.url(&path),
            )
            .header("X-API-Key", key);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // One request of each kind first: the series a client may legitimately cause.
    assert_eq!(send("FOO".into(), "/x".into(), "k".into()).await, 404);
    assert_eq!(
        send("FOO".into(), common::CONVERT.into(), "k".into()).await,
        405
    );
    assert_eq!(send("GET".into(), "/x".into(), "k".into()).await, 404);
    assert_eq!(
        send("PUT".into(), common::CONVERT.into(), "k".into()).await,
        405
    );
    assert_eq!(
        send("GET".into(), common::CONVERT.into(), "k".into()).await,
        401
    );
    let before = series(&gw).await;

    let requests = (0..10_000u32).map(|i| {
        let r = rand::random::<u64>();
        let (method, path, key) = match i % 4 {
            0 => (format!("M{r:X}"), format!("/{r:x}"), "k".to_string()),
            1 => ("GET".to_string(), format!("/api/v1/{r:x}"), "k".to_string()),
            2 => (
                "PUT".to_string(),
                common::CONVERT.to_string(),
                "k".to_string(),
            ),
            _ => (
                "GET".to_string(),
                common::CONVERT.to_string(),
                format!("imgproxy_u{r:x}_{r:043x}"),
            ),
        };
        send(method, path, key)
    });
    let statuses = futures_util::stream::iter(requests)
        .buffer_unordered(16)
        .collect::<Vec<u16>>()
        .await;
    assert!(
        statuses.iter().all(|s| [404, 405, 401].contains(s)),
        "{statuses:?}"
    );
    let after = series(&gw).await;
    assert_eq!(
        before.len(),
        after.len(),
        "new series: {:?}",
        after
            .iter()
            .filter(|s| !before.contains(s))
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(before, after);
}
