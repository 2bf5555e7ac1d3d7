//! Monitoring as code: the alert rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`), and the Grafana dashboard queries only metrics the gateway exports.

use std::path::Path;
use std::process::Command;

const EXPORTED: [&str; 13] = [
    "http_requests_total",
    "http_request_duration_seconds",
    "backend_requests_total",
    "backend_health_status",
    "backend_response_time_seconds",
    "user_requests_total",
    "user_quota_usage",
    "user_rate_limit_violations",
    "quota_threshold_events_total",
    "redis_degraded",
    "active_connections",
    "memory_usage_bytes",
    "cpu_usage_percent",
];

fn conf(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("conf")
        .join(name)
}

/// `promtool` with `args`; `None` outside CI when it is not installed.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool").args(args).output() {
        Ok(out) => Some(out),
        Err(e) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("promtool is required under CI (Debian package prometheus): {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: promtool not found ({e})");
            None
        }
    }
}

#[test]
fn alert_rules_pass_promtool_and_their_unit_tests() {
    let rules = conf("prometheus-alerts.yml");
    let Some(check) = promtool(&["check", "rules", rules.to_str().unwrap()]) else {
        return;
    };
    let text = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(
        check.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(text.contains("SUCCESS: 6 rules found"), "{text}");
    let tests = conf("prometheus-alerts.test.yml");
    let run = promtool(&["test", "rules", tests.to_str().unwrap()]).unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
}

#[test]
fn the_dashboard_shows_what_operators_need_from_exported_metrics() {
    let text = std::fs::read_to_string(conf("grafana-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let titles: Vec<&str> = panels
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for needed in [
        "Request rate",
        "Errors (5xx share)",
        "p95 latency",
        "Backend health",
        "Top users",
        "Quota usage",
        "Rate-limit violations",
    ] {
        assert!(
            titles.contains(&needed),
            "missing panel {needed}: {titles:?}"
        );
    }
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            assert!(
                EXPORTED.iter().any(|m| expr.contains(m)),
                "panel {} queries no exported metric: {expr}",
                panel["title"]
            );
        }
    }
}
