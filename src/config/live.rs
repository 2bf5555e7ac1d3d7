//! What a reloaded file changes. Only settings that can change under a running server are taken
//! from the new file (log level, rate limits, quota defaults, backends and weights, health
//! checks, the TLS certificate); every other difference is reported as needing a restart and
//! the running value stays in effect, so the configuration in effect is always one the
//! process really runs with.

use super::Config;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::cell::Cell;
use std::ops::Deref;

/// A setting a reload takes from the file: its type says that its value can change between
/// two requests, so whatever is derived from it is rebuilt (its `Effect`) or read at each use.
/// Every `Live` field has its row in `LIVE`, and only they do (the macro `setting!` accepts
/// only a `Live` field; `every_live_field_is_in_the_table` checks the other way).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Live<T>(T);

impl<T> Live<T> {
    pub const fn new(value: T) -> Self {
        Live(value)
    }
}

impl<T> Deref for Live<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Live<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Live)
    }
}

thread_local! {
    /// While set, a `Live` value serializes as `{"(live)": value}`, so that `live_paths` can
    /// find every one.
    static MARK: Cell<bool> = const { Cell::new(false) };
}

const MARKER: &str = "(live)";

impl<T: Serialize> Serialize for Live<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if MARK.get() {
            use serde::ser::SerializeMap;
            let mut map = s.serialize_map(Some(1))?;
            map.serialize_entry(MARKER, &self.0)?;
            return map.end();
        }
        self.0.serialize(s)
    }
}

/// The key paths of every `Live` field of the schema.
pub fn live_paths() -> Vec<String> {
    MARK.set(true);
    let marked = to_value(&Config::default());
    MARK.set(false);
    let mut out = Vec::new();
    find_marks("", &marked, &mut out);
    out
}

fn find_marks(path: &str, value: &Value, out: &mut Vec<String>) {
    if let Value::Object(map) = value {
        if map.contains_key(MARKER) {
            out.push(path.to_string());
            return;
        }
        for (key, child) in map {
            find_marks(&join(path, key), child, out);
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// What depends on a reloadable setting, and is rebuilt when it changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Read from the running configuration at each use: nothing to rebuild.
    ReadAtUse,
    /// The log level in effect.
    LogLevel,
    /// The backend pool (its peers, weights and health checks).
    Pool,
    /// The certificate served (re-read at every reload: renewing rewrites the files).
    Certificate,
}

/// One setting a reload takes from the file: its key path, how it is taken, and what is
/// rebuilt from it. The one list of what reloads: the plan, the effects and the admin API's
/// `reloadable` all come from it.
pub struct Setting {
    pub path: &'static str,
    pub effect: Effect,
    take: fn(&mut Config, &Config),
}

impl serde::Serialize for Setting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.path)
    }
}

/// A `Setting` for the key path `$path`, the field of the same name.
macro_rules! setting {
    ($path:literal, $effect:ident, $($field:ident).+) => {
        Setting {
            path: $path,
            effect: Effect::$effect,
            take: |to, from| take(&mut to.$($field).+, &from.$($field).+),
        }
    };
}

/// Settings applied without a restart (a difference at or under a path applies).
pub const LIVE: &[Setting] = &[
    setting!("observability.log_level", LogLevel, observability.log_level),
    setting!("rate_limits", ReadAtUse, rate_limits),
    setting!(
        "quotas.monthly_requests",
        ReadAtUse,
        quotas.monthly_requests
    ),
    setting!(
        "quotas.monthly_bandwidth_mb",
        ReadAtUse,
        quotas.monthly_bandwidth_mb
    ),
    setting!(
        "quotas.storage_quota_mb",
        ReadAtUse,
        quotas.storage_quota_mb
    ),
    setting!("quotas.reset_day", ReadAtUse, quotas.reset_day),
    setting!("backends", Pool, backends),
    setting!("health_check", Pool, health_check),
    setting!("tls.cert", Certificate, tls.cert),
    setting!("tls.key", Certificate, tls.key),
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
    /// Whether a setting with `effect` changed.
    pub fn changes(&self, effect: Effect) -> bool {
        LIVE.iter()
            .filter(|s| s.effect == effect)
            .any(|s| self.applied.iter().any(|p| under(p, s.path)))
    }
}

/// Take the reloadable settings of `file` over `running`. `tls_live`: the listeners use TLS, so
/// the certificate can be swapped (otherwise `tls.*` needs a restart like any listener change).
pub fn plan(running: &Config, file: &Config, tls_live: bool) -> Plan {
    let mut next = running.clone();
    for setting in LIVE {
        if setting.effect != Effect::Certificate || tls_live {
            (setting.take)(&mut next, file);
        }
    }
    Plan {
        restart_required: differences(&next, file),
        applied: differences(running, &next),
        config: next,
    }
}

/// What a `Setting` does: only a `Live` field can be taken.
fn take<T: Clone>(to: &mut Live<T>, from: &Live<T>) {
    to.0 = from.0.clone();
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
                diff(
                    &join(path, key),
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
        assert_eq!(*plan.config.backends[0].weight, 7);
        assert_eq!(
            plan.config.observability.log_format,
            super::super::LogFormat::Json
        );
        assert!(plan.changes(Effect::Pool) && plan.changes(Effect::LogLevel));
        assert!(!plan.changes(Effect::Certificate));
    }

    /// Each setting takes its own key path from the file, and only that (what a
    /// `debug_assert!` over three lists used to check).
    #[test]
    fn each_setting_takes_its_path_and_nothing_else() {
        let running = config("");
        let file = config(
            "  - url: http://127.0.0.1:1003\n\
observability:\n  log_level: debug\n  log_format: text\n\
rate_limits:\n  ip_level: {requests_per_minute: 5, burst: 5}\n\
quotas:\n  monthly_requests: 5\n  monthly_bandwidth_mb: 6\n  storage_quota_mb: 7\n  reset_day: 3\n  flush_interval: 500ms\n\
health_check:\n  interval: 7s\n\
tls:\n  cert: /etc/gw.crt\n  key: /etc/gw.key\n\
server:\n  threads: 3\n",
        );
        for setting in LIVE {
            let mut next = running.clone();
            (setting.take)(&mut next, &file);
            let changed = differences(&running, &next);
            assert!(!changed.is_empty(), "{} took nothing", setting.path);
            assert!(
                changed.iter().all(|p| under(p, setting.path)),
                "{} took {changed:?}",
                setting.path
            );
        }
        let plan = plan(&running, &file, true);
        assert_eq!(
            plan.restart_required,
            [
                "observability.log_format",
                "quotas.flush_interval",
                "server.threads"
            ]
        );
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
    fn every_live_field_is_in_the_table() {
        let mut table: Vec<&str> = LIVE.iter().map(|s| s.path).collect();
        table.sort();
        let mut fields = live_paths();
        fields.sort();
        assert_eq!(fields, table);
        assert!(!to_value(&Config::default()).to_string().contains(MARKER));
    }

    #[test]
    fn prefixes_match_whole_keys() {
        assert!(under("backends[1].weight", "backends"));
        assert!(under("tls.cert", "tls.cert"));
        assert!(!under("tls.certificate", "tls.cert"));
    }
}
