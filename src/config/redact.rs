//! Secrets never printed: a DSN or URL is shown with its password replaced by `***`, in
//! `check-config`, at start and in every error that names it; the effective configuration the
//! admin API shows has every secret replaced.

use super::Config;
use serde_json::Value;

/// Settings that are secrets in whole: shown as `***` when set.
const SECRETS: &[&str] = &[
    "/admin/metrics_token",
    "/imgproxy/key",
    "/imgproxy/salt",
    "/storage/source_secret",
    "/legacy/api_key",
    // A webhook URL often carries its credential in the path (e.g. Slack's).
    "/quotas/webhook_url",
];

/// Settings that are URLs with a password in them.
const URLS: &[&str] = &["/database/dsn", "/redis/url"];

/// `config` as JSON, with every secret replaced by `***`.
pub fn effective(config: &Config) -> Value {
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    for path in SECRETS {
        if let Some(v) = value.pointer_mut(path).filter(|v| !v.is_null()) {
            *v = "***".into();
        }
    }
    for path in URLS {
        if let Some(v) = value.pointer_mut(path) {
            if let Some(url) = v.as_str() {
                *v = redacted(url).into();
            }
        }
    }
    value
}

/// `url` with any password replaced by `***`; text that is no URL comes back unchanged.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(Some("***")).is_ok() {
                parsed.to_string()
            } else {
                "<a URL with a password>".into()
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_effective_configuration_shows_no_secret() {
        let yaml = "admin: {metrics_token: tok3n-abcdefgh}\n\
            database: {driver: postgres, dsn: 'postgres://gw:pw-db-1@db/gw'}\n\
            redis: {url: 'redis://:pw-redis-1@cache:6379'}\n\
            imgproxy: {key: 'aa11bb22', salt: 'cc33dd44'}\n\
            quotas: {webhook_url: 'https://hooks.example.com/T0/secret-hook'}\n\
            storage: {source_secret: 'abcdef987654'}\n\
            legacy: {api_key: 'LegacyKey0123456789abcdef'}\n\
            backends: [{url: 'http://127.0.0.1:1'}, {url: 'http://127.0.0.1:2'}]\n";
        let config = crate::config::load_str(yaml, Vec::new()).unwrap();
        let shown = effective(&config).to_string();
        for secret in [
            "tok3n",
            "pw-db-1",
            "pw-redis-1",
            "aa11bb22",
            "cc33dd44",
            "secret-hook",
            "abcdef987654",
            "LegacyKey",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let shown = effective(&config);
        assert_eq!(shown["database"]["dsn"], "postgres://gw:***@db/gw");
        assert_eq!(shown["imgproxy"]["key"], "***");
        assert_eq!(shown["server"]["port"], config.server.port);
    }

    #[test]
    fn passwords_are_replaced() {
        assert_eq!(
            redacted("postgres://gw:s3cret@db:5432/gw?sslmode=require"),
            "postgres://gw:***@db:5432/gw?sslmode=require"
        );
        assert_eq!(
            redacted("redis://:s3cret@cache:6379/0"),
            "redis://:***@cache:6379/0"
        );
        assert_eq!(
            redacted("rediss://user:p%40ss@cache"),
            "rediss://user:***@cache"
        );
        for unchanged in [
            "postgres://gw@db/gw",
            "sqlite://data/gateway.db?mode=rwc",
            "not a url",
        ] {
            assert_eq!(redacted(unchanged), unchanged);
        }
    }
}
