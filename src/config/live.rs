//! What a reloaded file changes. Only settings that can change under a running server are taken
//! from the new file (log level, rate limits, quota defaults, backends and weights, health
//! checks, the TLS certificate); every other difference is reported as needing a restart and
//! the running value stays in effect, so the configuration in effect is always one the
//! process really runs with.

use super::Config;
use serde_json::Value;

/// Settings applied without a restart, as key paths (a difference at or under one applies).
pub const LIVE: &[&str] = &[
    "observability.log_level",
    "rate_limits",
    "quotas.monthly_requests",
    "quotas.monthly_bandwidth_mb",
    "quotas.storage_quota_mb",
    "quotas.reset_day",
    "backends",
    "health_check",
    "tls.cert",
    "tls.key",
];

pub struct Plan {
    /// The running configuration with the file's reloadable settings.
    pub config: Config,
    /// Key paths whose new value is now in effect, e.g. `backends[1].weight`.
    pub applied: Vec<String>,
    /// Key paths that differ in the file but keep their running value until a restart.
    pub restart_required: Vec<String>,
}

impl Plan {
    pub fn changes(&self, prefix: &str) -> bool {
        self.applied.iter().any(|p| under(p, prefix))
    }
}

/// Take the reloadable settings of `file` over `running`. `tls_live`: the listeners use TLS, so
/// the certificate can be swapped (otherwise `tls.*` needs a restart like any listener change).
pub fn plan(running: &Config, file: &Config, tls_live: bool) -> Plan {
    let mut next = running.clone();
    next.observability.log_level = file.observability.log_level;
    next.rate_limits = file.rate_limits.clone();
    let (q, f) = (&mut next.quotas, &file.quotas);
    q.monthly_requests = f.monthly_requests;
    q.monthly_bandwidth_mb = f.monthly_bandwidth_mb;
    q.storage_quota_mb = f.storage_quota_mb;
    q.reset_day = f.reset_day;
    next.backends = file.backends.clone();
    next.health_check = file.health_check.clone();
    if tls_live {
        next.tls.cert = file.tls.cert.clone();
        next.tls.key = file.tls.key.clone();
    }
    let applied = differences(running, &next);
    debug_assert!(applied
        .iter()
        .all(|p| LIVE.iter().any(|live| under(p, live))));
    Plan {
        restart_required: differences(&next, &with_ports_in_use(file, running)),
        applied,
        config: next,
    }
}

/// `file` with a port of 0 read as the port this process got for it (not a change).
fn with_ports_in_use(file: &Config, running: &Config) -> Config {
    let mut file = file.clone();
    if file.server.port == 0 {
        file.server.port = running.server.port;
    }
    let host = |listen: &str| listen.rsplit_once(':').map(|(host, _)| host.to_string());
    if file.admin.listen.ends_with(":0") && host(&file.admin.listen) == host(&running.admin.listen)
    {
        file.admin.listen = running.admin.listen.clone();
    }
    file
}

fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
}

/// The key paths at which `a` and `b` differ (leaves, objects by key, lists by index).
pub fn differences(a: &Config, b: &Config) -> Vec<String> {
    let (a, b) = (to_value(a), to_value(b));
    let mut out = Vec::new();
    diff("", &a, &b, &mut out);
    out
}

fn to_value(config: &Config) -> Value {
    serde_json::to_value(config).unwrap_or(Value::Null)
}

fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                diff(
                    &child,
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(path.to_string()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    fn config(extra: &str) -> Config {
        let yaml = format!(
            "backends:\n  - url: http://127.0.0.1:1001\n  - url: http://127.0.0.1:1002\n{extra}"
        );
        load_str(&yaml, Vec::new()).unwrap()
    }

    #[test]
    fn reloadable_settings_apply_and_the_rest_waits_for_a_restart() {
        let running = config("server:\n  port: 8080\n");
        let file = load_str(
            "server:\n  port: 9999\nbackends:\n  - url: http://127.0.0.1:1001\n    weight: 7\n  - url: http://127.0.0.1:1002\n\
observability:\n  log_level: debug\n  log_format: text\nquotas:\n  monthly_requests: 5\n  flush_interval: 500ms\n\
rate_limits:\n  user_level:\n    requests_per_minute: 3\n    requests_per_hour: 9\n",
            Vec::new(),
        )
        .unwrap();
        let plan = plan(&running, &file, true);
        assert_eq!(
            plan.applied,
            [
                "backends[0].weight",
                "observability.log_level",
                "quotas.monthly_requests",
                "rate_limits.user_level"
            ]
        );
        assert_eq!(
            plan.restart_required,
            [
                "observability.log_format",
                "quotas.flush_interval",
                "server.port"
            ]
        );
        assert_eq!(plan.config.server.port, 8080);
        assert_eq!(plan.config.backends[0].weight, 7);
        assert_eq!(
            plan.config.observability.log_format,
            super::super::LogFormat::Json
        );
        assert!(plan.changes("backends"));
        assert!(!plan.changes("health_check"));
    }

    #[test]
    fn certificate_paths_reload_only_on_a_tls_listener() {
        let running = config("");
        let file = config("tls:\n  cert: /etc/gw.crt\n  key: /etc/gw.key\n");
        assert_eq!(plan(&running, &file, true).applied, ["tls.cert", "tls.key"]);
        let plain = plan(&running, &file, false);
        assert!(plain.applied.is_empty());
        assert_eq!(plain.restart_required, ["tls.cert", "tls.key"]);
    }

    #[test]
    fn a_longer_backend_list_is_one_change() {
        let running = config("");
        let file = config("  - url: http://127.0.0.1:1003\n");
        let plan = plan(&running, &file, true);
        assert_eq!(plan.applied, ["backends"]);
        assert!(plan.restart_required.is_empty());
        assert!(differences(&running, &running).is_empty());
    }

    #[test]
    fn prefixes_match_whole_keys() {
        assert!(under("backends[1].weight", "backends"));
        assert!(under("tls.cert", "tls.cert"));
        assert!(!under("tls.certificate", "tls.cert"));
    }
}
