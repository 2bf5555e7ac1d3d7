//! Reading the configuration: YAML file, then `GATEWAY__SECTION__KEY` environment overrides,
//! then the schema, then validation. Every failure names the offending key.

use super::schema::Config;
use super::validate::validate;
use serde_yaml::{Mapping, Value};
use std::fmt;
use std::path::Path;

const ENV_PREFIX: &str = "GATEWAY__";

/// A configuration problem, tied to the key that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Load, override from the process environment, and validate.
pub fn load_file(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new("", format!("cannot read {}: {e}", path.display())))?;
    load_str(&text, std::env::vars())
}

/// Parse YAML text with the given environment (so tests need not touch the real one).
pub fn load_str(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut root: Value = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        serde_yaml::from_str(text)
            .map_err(|e| ConfigError::new("", format!("invalid YAML: {e}")))?
    };
    if root.is_null() {
        root = Value::Mapping(Mapping::new());
    }
    for (name, value) in env {
        if let Some(path) = name.strip_prefix(ENV_PREFIX) {
            apply_override(&mut root, path, &value)?;
        }
    }
    let config: Config = serde_path_to_error::deserialize(root).map_err(|e| {
        let key = e.path().to_string();
        ConfigError::new(
            if key == "." { String::new() } else { key },
            e.inner().to_string(),
        )
    })?;
    validate(&config)?;
    Ok(config)
}

/// Numbers, booleans and `[a, b]` lists keep their type; everything else is a string
/// (so `sqlite::memory:` is not read as a YAML mapping).
fn env_value(raw: &str) -> Value {
    match serde_yaml::from_str::<Value>(raw) {
        Ok(v @ (Value::Bool(_) | Value::Number(_))) => v,
        Ok(v @ Value::Sequence(_)) if raw.trim_start().starts_with('[') => v,
        _ => Value::String(raw.to_string()),
    }
}

/// `GATEWAY__DATABASE__DSN=...` sets `database.dsn`; `GATEWAY__BACKENDS__0__WEIGHT` indexes a list.
/// Values are read as YAML scalars, so numbers and booleans keep their type.
fn apply_override(root: &mut Value, path: &str, raw: &str) -> Result<(), ConfigError> {
    let parts: Vec<String> = path.split("__").map(|p| p.to_ascii_lowercase()).collect();
    let env_name = format!("{ENV_PREFIX}{path}");
    if parts.iter().any(String::is_empty) {
        return Err(ConfigError::new(env_name, "empty key segment"));
    }
    let value = env_value(raw);
    let mut node = root;
    for part in &parts {
        if node.is_null() {
            *node = Value::Mapping(Mapping::new());
        }
        node = match node {
            Value::Sequence(items) => {
                let index: usize = part.parse().map_err(|_| {
                    ConfigError::new(&env_name, format!("`{part}` is not a list index"))
                })?;
                items.get_mut(index).ok_or_else(|| {
                    ConfigError::new(&env_name, format!("list index {index} is out of range"))
                })?
            }
            Value::Mapping(map) => map
                .entry(Value::String(part.clone()))
                .or_insert(Value::Null),
            _ => {
                return Err(ConfigError::new(
                    &env_name,
                    format!("cannot descend into a scalar at `{part}`"),
                ))
            }
        };
    }
    *node = value;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_BACKENDS: &str = "
backends:
  - url: http://127.0.0.1:48080
    weight: 70
  - url: http://127.0.0.1:48081
    weight: 30
";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_redis_cluster_is_named_by_flag_or_scheme() {
        let with = |redis: &str| {
            load_str(&format!("{TWO_BACKENDS}redis:\n{redis}"), env(&[]))
                .unwrap()
                .redis
        };
        let flagged = with("  url: redis://u:p@10.0.0.1:7000\n  cluster: true\n");
        assert_eq!(
            flagged.client_url().as_deref(),
            Some("redis-cluster://u:p@10.0.0.1:7000")
        );
        assert!(flagged.clustered());
        let named = with("  url: redis-cluster://10.0.0.1:7000?node=10.0.0.2:7000\n");
        assert!(named.clustered());
        assert_eq!(
            named.client_url().as_deref(),
            Some("redis-cluster://10.0.0.1:7000?node=10.0.0.2:7000")
        );
        let single = with("  url: redis://10.0.0.1:6379\n");
        assert!(!single.clustered());
        assert!(!with("  cluster: true\n").clustered(), "no URL: embedded");
    }

    /// Defaults are written unchecked (`Bounded::preset`, `preset` of the text types): every
    /// one, written out and read back, passes the checks of its type.
    #[test]
    fn every_default_is_within_its_bounds() {
        let config = load_str(TWO_BACKENDS, env(&[])).unwrap();
        let written = serde_yaml::to_string(&config).unwrap();
        let again = load_str(&written, env(&[])).unwrap();
        assert_eq!(serde_yaml::to_string(&again).unwrap(), written);
    }

    #[test]
    fn defaults_fill_missing_sections() {
        let config = load_str(TWO_BACKENDS, env(&[])).unwrap();
        assert_eq!(config.server.port, 8080);
        assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(*config.storage.max_upload_mb, 20);
        assert_eq!(&*config.backends[0].health_check_path, "/health");
        assert_eq!(*config.health_check.unhealthy_threshold, 3);
    }

    #[test]
    fn env_overrides_scalars_and_list_items() {
        let config = load_str(
            TWO_BACKENDS,
            env(&[
                ("GATEWAY__SERVER__PORT", "9999"),
                ("GATEWAY__DATABASE__DSN", "sqlite::memory:"),
                ("GATEWAY__BACKENDS__1__WEIGHT", "55"),
                ("GATEWAY__IMGPROXY__ALLOW_PRIVATE_SOURCES", "true"),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(config.server.port, 9999);
        assert_eq!(config.database.dsn, "sqlite::memory:");
        assert_eq!(*config.backends[1].weight, 55);
        assert!(config.imgproxy.allow_private_sources);
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = load_str(&format!("{TWO_BACKENDS}server:\n  prot: 1\n"), env(&[])).unwrap_err();
        assert_eq!(err.key, "server.prot");
        assert!(err.message.contains("unknown field `prot`"), "{err}");
        let err = load_str(
            "backends:\n  - url: http://a:1\n    wieght: 3\n  - url: http://b:1\n",
            env(&[]),
        )
        .unwrap_err();
        assert_eq!(err.key, "backends[0].wieght");
        assert!(err.message.contains("wieght"), "{err}");
    }

    #[test]
    fn bad_types_and_durations_are_named() {
        let err =
            load_str(&format!("{TWO_BACKENDS}server:\n  port: lots\n"), env(&[])).unwrap_err();
        assert_eq!(err.key, "server.port");
        let err = load_str(
            &format!("{TWO_BACKENDS}health_check:\n  interval: 30\n"),
            env(&[]),
        )
        .unwrap_err();
        assert_eq!(err.key, "health_check.interval");
        assert!(err.message.contains("no unit"), "{err}");
    }

    /// Typed values are parsed while the file is read; each bad one is named by its key, from
    /// the file and from the environment alike.
    #[test]
    fn typed_values_are_named_when_bad() {
        for (yaml, key, says) in [
            (
                "observability:\n  log_format: xml\n",
                "observability.log_format",
                "`xml` is not json or text",
            ),
            (
                "observability:\n  log_level: loud\n",
                "observability.log_level",
                "`loud` is not DEBUG",
            ),
            (
                "tls:\n  min_version: 1.4\n",
                "tls.min_version",
                "`1.4` is not 1.2 or 1.3",
            ),
            (
                "imgproxy:\n  default_format: gif\n",
                "imgproxy.default_format",
                "`gif` is not one of",
            ),
            (
                "imgproxy:\n  key: zz\n  salt: aa\n",
                "imgproxy.key",
                "hexadecimal",
            ),
            (
                "storage:\n  source_secret: ''\n",
                "storage.source_secret",
                "hexadecimal",
            ),
            (
                "server:\n  trusted_proxies: [10.0.0.0/8, nope]\n",
                "server.trusted_proxies[1]",
                "`nope`",
            ),
        ] {
            let err = load_str(&format!("{TWO_BACKENDS}{yaml}"), env(&[])).unwrap_err();
            assert_eq!(err.key, key, "{yaml}");
            assert!(err.message.contains(says), "{yaml}: {err}");
        }
        let err = load_str(TWO_BACKENDS, env(&[("GATEWAY__TLS__MIN_VERSION", "1.1")])).unwrap_err();
        assert_eq!(err.key, "tls.min_version");
        let config = load_str(
            TWO_BACKENDS,
            env(&[
                ("GATEWAY__TLS__MIN_VERSION", "1.2"),
                ("GATEWAY__IMGPROXY__DEFAULT_FORMAT", "JPG"),
            ]),
        )
        .unwrap();
        assert_eq!(config.tls.min_version, crate::config::TlsVersion::V1_2);
        assert_eq!(
            config.imgproxy.default_format,
            crate::imgproxy::Format::Jpeg
        );
    }

    #[test]
    fn env_override_of_missing_list_item_is_an_error() {
        let err =
            load_str(TWO_BACKENDS, env(&[("GATEWAY__BACKENDS__7__WEIGHT", "5")])).unwrap_err();
        assert_eq!(err.key, "GATEWAY__BACKENDS__7__WEIGHT");
    }
}
