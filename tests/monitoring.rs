//! Monitoring as code: the alert rules pass `promtool check rules` and their unit tests
//! (`promtool test rules`), and the Grafana dashboard queries only metrics the gateway exports.

mod common;

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

/// `conf/docker-compose.yml`'s Prometheus configuration is valid (with the rule file at its
/// path in this checkout) and scrapes every gateway instance of the compose file.
#[test]
fn the_compose_prometheus_configuration_passes_promtool() {
    let text = std::fs::read_to_string(conf("prometheus.yml")).unwrap();
    let local = text.replace(
        "/etc/prometheus/prometheus-alerts.yml",
        conf("prometheus-alerts.yml").to_str().unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, local).unwrap();
    let Some(check) = promtool(&["check", "config", path.to_str().unwrap()]) else {
        return;
    };
    let out = String::from_utf8_lossy(&check.stdout).to_string();
    assert!(
        check.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(out.contains("SUCCESS: 6 rules found"), "{out}");
    for instance in compose_gateways(&compose()) {
        assert!(
            text.contains(&format!("\"{instance}:9090\"")),
            "{instance} not scraped"
        );
    }
}

fn compose() -> serde_yaml::Value {
    let text = std::fs::read_to_string(conf("docker-compose.yml")).unwrap();
    let mut compose: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    compose.apply_merge().unwrap();
    compose
}

/// The compose services built from this repository (the gateway instances).
fn compose_gateways(compose: &serde_yaml::Value) -> Vec<String> {
    compose["services"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, service)| !service["build"].is_null())
        .map(|(name, _)| name.as_str().unwrap().to_string())
        .collect()
}

/// Every gateway instance of the compose file starts from the shipped `conf/gateway.yaml`
/// with its environment: `check-config` accepts it once the `change-me` values are replaced.
#[test]
fn the_compose_gateways_have_a_valid_configuration() {
    let compose = compose();
    let gateways = compose_gateways(&compose);
    assert_eq!(gateways.len(), 2, "{gateways:?}");
    for name in gateways {
        let env = compose["services"][name.as_str()]["environment"]
            .as_mapping()
            .unwrap();
        let mut cmd = Command::new(&*common::BIN);
        cmd.arg("check-config").arg(conf("gateway.yaml"));
        for (key, value) in env {
            let value = match value {
                serde_yaml::Value::String(s) if s.starts_with("change-me-hex") => "ab".repeat(32),
                serde_yaml::Value::String(s) if s.starts_with("change-me-32") => {
                    "Zq8hV2mK".repeat(4)
                }
                serde_yaml::Value::String(s) => s.clone(),
                other => serde_yaml::to_string(other).unwrap().trim().to_string(),
            };
            cmd.env(key.as_str().unwrap(), value);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("2 backends, database Postgres"),
            "{name}: {text}"
        );
        let warnings = String::from_utf8_lossy(&out.stderr);
        assert!(!warnings.contains("warning"), "{name}: {warnings}");
    }
}
