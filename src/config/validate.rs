//! Whole-config validation: ranges, URLs, addresses and cross-field rules.

use super::load::ConfigError;
use super::schema::{Config, DatabaseDriver, SourceMode};
use std::net::SocketAddr;

pub const MIN_BACKENDS: usize = 2;
pub const MAX_BACKENDS: usize = 10;

type Check = Result<(), ConfigError>;

fn fail(key: impl Into<String>, message: impl Into<String>) -> Check {
    Err(ConfigError::new(key, message))
}

fn in_range<T: PartialOrd + std::fmt::Display>(key: &str, value: T, min: T, max: T) -> Check {
    if value < min || value > max {
        return fail(
            key,
            format!("must be between {min} and {max} (got {value})"),
        );
    }
    Ok(())
}

fn socket_addr(key: &str, text: &str) -> Check {
    text.parse::<SocketAddr>().map(|_| ()).map_err(|_| {
        ConfigError::new(
            key,
            format!("`{text}` is not an address like 127.0.0.1:9090"),
        )
    })
}

pub fn validate(c: &Config) -> Check {
    validate_server(c)?;
    validate_backends(c)?;
    validate_health(c)?;
    validate_upstream(c)?;
    validate_database(c)?;
    validate_limits(c)?;
    validate_legacy(c)?;
    validate_imgproxy(c)?;
    validate_storage(c)?;
    validate_auth(c)?;
    validate_tls(c)
}

fn validate_auth(c: &Config) -> Check {
    let a = &c.auth;
    in_range("auth.bcrypt_cost", a.bcrypt_cost, 4, 31)?;
    in_range("auth.cache_capacity", a.cache_capacity, 1, 100_000_000)?;
    in_range("auth.hash_concurrency", a.hash_concurrency, 0, 1024)?;
    for (key, span) in [
        ("auth.cache_ttl", a.cache_ttl),
        ("auth.negative_ttl", a.negative_ttl),
        ("auth.hash_wait", a.hash_wait),
        ("auth.last_used_flush", a.last_used_flush),
    ] {
        if span.get().is_zero() {
            return fail(key, "must be greater than zero");
        }
    }
    in_range("redis.timeout_ms", c.redis.timeout_ms, 1, 60_000)?;
    in_range(
        "redis.expected_instances",
        c.redis.expected_instances,
        1,
        1000,
    )?;
    let prefix = &c.redis.key_prefix;
    if prefix.len() > 64
        || prefix
            .chars()
            .any(|ch| ch.is_whitespace() || ch.is_control())
    {
        return fail(
            "redis.key_prefix",
            "must be at most 64 characters without spaces",
        );
    }
    Ok(())
}

fn validate_server(c: &Config) -> Check {
    // 0 asks the kernel for a free port (`listening` logs the one it gave).
    socket_addr(
        "server.host",
        &format!("{}:{}", c.server.host, c.server.port),
    )
    .or_else(|_| {
        socket_addr(
            "server.host",
            &format!("[{}]:{}", c.server.host, c.server.port),
        )
    })?;
    in_range("server.threads", c.server.threads, 0, 256)?;
    for (key, span) in [
        ("server.read_timeout", c.server.read_timeout),
        ("server.write_timeout", c.server.write_timeout),
        ("server.keepalive_timeout", c.server.keepalive_timeout),
    ] {
        if span.get().is_zero() {
            return fail(key, "must be greater than zero");
        }
    }
    socket_addr("admin.listen", &c.admin.listen)
}

fn validate_backends(c: &Config) -> Check {
    let n = c.backends.len();
    if !(MIN_BACKENDS..=MAX_BACKENDS).contains(&n) {
        return fail(
            "backends",
            format!("needs between {MIN_BACKENDS} and {MAX_BACKENDS} entries (got {n})"),
        );
    }
    for (i, b) in c.backends.iter().enumerate() {
        in_range(&format!("backends[{i}].weight"), b.weight, 1, 100)?;
        if !b.health_check_path.starts_with('/') {
            return fail(
                format!("backends[{i}].health_check_path"),
                "must start with /",
            );
        }
        if c.backends[..i].iter().any(|other| other.url == b.url) {
            return fail(
                format!("backends[{i}].url"),
                format!("`{}` is listed twice", b.url),
            );
        }
    }
    Ok(())
}

fn validate_health(c: &Config) -> Check {
    let h = &c.health_check;
    if h.interval.get().is_zero() {
        return fail("health_check.interval", "must be greater than zero");
    }
    if h.timeout.get().is_zero() {
        return fail("health_check.timeout", "must be greater than zero");
    }
    in_range(
        "health_check.unhealthy_threshold",
        h.unhealthy_threshold,
        1,
        100,
    )?;
    in_range(
        "health_check.healthy_threshold",
        h.healthy_threshold,
        1,
        100,
    )
}

fn validate_upstream(c: &Config) -> Check {
    let u = &c.upstream;
    for (key, span) in [
        ("upstream.connect_timeout", u.connect_timeout),
        ("upstream.response_timeout", u.response_timeout),
        ("upstream.idle_timeout", u.idle_timeout),
    ] {
        if span.get().is_zero() {
            return fail(key, "must be greater than zero");
        }
    }
    in_range(
        "upstream.keepalive_pool_size",
        u.keepalive_pool_size,
        1,
        1_000_000,
    )
}

fn validate_database(c: &Config) -> Check {
    let d = &c.database;
    let scheme_ok = match d.driver {
        DatabaseDriver::Sqlite => d.dsn.starts_with("sqlite:"),
        DatabaseDriver::Postgres => {
            d.dsn.starts_with("postgres://") || d.dsn.starts_with("postgresql://")
        }
    };
    if !scheme_ok {
        return fail(
            "database.dsn",
            format!(
                "`{}` does not match database.driver {:?}",
                super::redacted(&d.dsn),
                d.driver
            ),
        );
    }
    in_range("database.max_connections", d.max_connections, 1, 1000)?;
    if d.timeout.get().is_zero() {
        return fail("database.timeout", "must be greater than zero");
    }
    if let Some(url) = &c.redis.url {
        if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
            return fail(
                "redis.url",
                format!(
                    "`{}` must start with redis:// or rediss://",
                    super::redacted(url)
                ),
            );
        }
    }
    Ok(())
}

fn validate_limits(c: &Config) -> Check {
    let r = &c.rate_limits;
    if let Some(ip) = &r.ip_level {
        in_range(
            "rate_limits.ip_level.requests_per_minute",
            ip.requests_per_minute,
            1,
            10_000_000,
        )?;
        in_range("rate_limits.ip_level.burst", ip.burst, 1, 10_000_000)?;
        in_range("rate_limits.ip_level.ipv6_prefix", ip.ipv6_prefix, 1, 128)?;
    }
    if let Some(user) = &r.user_level {
        in_range(
            "rate_limits.user_level.requests_per_minute",
            user.requests_per_minute,
            1,
            10_000_000,
        )?;
        in_range(
            "rate_limits.user_level.requests_per_hour",
            user.requests_per_hour,
            1,
            100_000_000,
        )?;
    }
    for (route, limit) in &r.api_level {
        if !route.starts_with("/api/") {
            return fail(
                format!("rate_limits.api_level.{route}"),
                "must be a route like /api/v1/upload",
            );
        }
        in_range(
            &format!("rate_limits.api_level.{route}.requests_per_minute"),
            limit.requests_per_minute,
            1,
            100_000_000,
        )?;
    }
    in_range("quotas.reset_day", c.quotas.reset_day, 1, 28)?;
    let flush = c.quotas.flush_interval.get();
    if flush.is_zero() || flush > std::time::Duration::from_secs(1) {
        return fail("quotas.flush_interval", "must be between 1ms and 1s");
    }
    if let Some(url) = &c.quotas.webhook_url {
        let parsed = url::Url::parse(url)
            .map_err(|e| ConfigError::new("quotas.webhook_url", format!("`{url}`: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return fail(
                "quotas.webhook_url",
                format!("`{url}` must use http or https"),
            );
        }
    }
    Ok(())
}

/// The legacy key is matched by shape before any lookup (alphanumeric, its configured length).
fn validate_legacy(c: &Config) -> Check {
    let key = &c.legacy.api_key;
    if c.legacy.enabled
        && !((16..=128).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return fail(
            "legacy.api_key",
            "must be 16 to 128 letters and digits (the single-user program's key)",
        );
    }
    Ok(())
}

fn validate_imgproxy(c: &Config) -> Check {
    let i = &c.imgproxy;
    if i.key.is_some() != i.salt.is_some() {
        return fail(
            "imgproxy.salt",
            "imgproxy.key and imgproxy.salt must be set together",
        );
    }
    in_range("imgproxy.signature_size", i.signature_size, 1, 32)?;
    if let Some(value) = &i.cache_control {
        let printable = value.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
        if value.trim().is_empty() || !printable {
            return fail(
                "imgproxy.cache_control",
                "must be a non-empty Cache-Control value of printable ASCII",
            );
        }
    }
    in_range(
        "imgproxy.max_source_url_length",
        i.max_source_url_length,
        16,
        16_384,
    )?;
    if i.source_resolve_timeout.get().is_zero() {
        return fail(
            "imgproxy.source_resolve_timeout",
            "must be greater than zero",
        );
    }
    for name in i.source_hosts.keys() {
        let plain = !name.is_empty()
            && !name.ends_with('.')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.".contains(&b));
        if !plain {
            return fail(
                format!("imgproxy.source_hosts.{name}"),
                "must be a lower-case host name without a trailing dot",
            );
        }
    }
    if i.source_hosts.values().any(Vec::is_empty) {
        return fail(
            "imgproxy.source_hosts",
            "every name needs at least one address",
        );
    }
    Ok(())
}

fn validate_storage(c: &Config) -> Check {
    let s = &c.storage;
    if s.dir.trim().is_empty() {
        return fail("storage.dir", "must not be empty");
    }
    in_range("storage.max_upload_mb", s.max_upload_mb, 1, 4096)?;
    if let (SourceMode::Http, Some(base)) = (s.source, &s.source_base_url) {
        let url = url::Url::parse(base)
            .map_err(|e| ConfigError::new("storage.source_base_url", format!("`{base}`: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return fail(
                "storage.source_base_url",
                "must be an http(s) URL with a host",
            );
        }
    }
    if s.source_url_ttl.get().as_secs() < 5 {
        return fail("storage.source_url_ttl", "must be at least 5s");
    }
    Ok(())
}

fn validate_tls(c: &Config) -> Check {
    let t = &c.tls;
    if !t.enabled {
        if t.admin {
            return fail("tls.admin", "needs tls.enabled: true");
        }
        return Ok(());
    }
    for (key, path) in [("tls.cert", &t.cert), ("tls.key", &t.key)] {
        match path {
            None => return fail(key, "is required when tls.enabled is true"),
            Some(p) if !std::path::Path::new(p).is_file() => {
                return fail(key, format!("`{p}` is not a readable file"))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::load::load_str;

    fn check(yaml: &str) -> Result<(), String> {
        load_str(yaml, Vec::new())
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    const OK: &str = "backends:\n  - url: http://127.0.0.1:1\n  - url: http://127.0.0.1:2\n";

    #[test]
    fn accepts_a_minimal_config() {
        check(OK).unwrap();
    }

    #[test]
    fn backend_count_and_weights() {
        let err = check("backends:\n  - url: http://127.0.0.1:1\n").unwrap_err();
        assert!(err.starts_with("backends: needs between 2 and 10"), "{err}");
        let many: String = (0..11)
            .map(|i| format!("  - url: http://127.0.0.1:{}\n", i + 1))
            .collect();
        assert!(check(&format!("backends:\n{many}"))
            .unwrap_err()
            .contains("(got 11)"));
        let err = check("backends:\n  - url: http://127.0.0.1:1\n    weight: 101\n  - url: http://127.0.0.1:2\n").unwrap_err();
        assert_eq!(
            err,
            "backends[0].weight: must be between 1 and 100 (got 101)"
        );
        let err = check(
            "backends:\n  - url: http://127.0.0.1:1\n  - url: http://127.0.0.1:2\n    weight: 0\n",
        )
        .unwrap_err();
        assert!(err.starts_with("backends[1].weight"), "{err}");
    }

    #[test]
    fn backend_urls() {
        let err = check("backends:\n  - url: ftp://127.0.0.1:1\n  - url: http://127.0.0.1:2\n")
            .unwrap_err();
        assert!(err.starts_with("backends[0].url"), "{err}");
        let err =
            check("backends:\n  - url: not a url\n  - url: http://127.0.0.1:2\n").unwrap_err();
        assert!(err.starts_with("backends[0].url"), "{err}");
        let err = check("backends:\n  - url: http://127.0.0.1:1/x\n  - url: http://127.0.0.1:2\n")
            .unwrap_err();
        assert!(err.contains("path"), "{err}");
        let err = check("backends:\n  - url: http://127.0.0.1:1\n  - url: http://127.0.0.1:1\n")
            .unwrap_err();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn cross_field_rules() {
        let err = check(&format!("{OK}imgproxy:\n  key: '736563726574'\n")).unwrap_err();
        assert!(err.starts_with("imgproxy.salt"), "{err}");
        let err = check(&format!("{OK}imgproxy:\n  key: zz\n  salt: '00'\n")).unwrap_err();
        assert!(err.starts_with("imgproxy.key"), "{err}");
        let err = check(&format!("{OK}database:\n  driver: postgres\n")).unwrap_err();
        assert!(err.starts_with("database.dsn"), "{err}");
        let err = check(&format!("{OK}tls:\n  enabled: true\n")).unwrap_err();
        assert!(err.starts_with("tls.cert"), "{err}");
        let err = check(&format!("{OK}quotas:\n  reset_day: 31\n")).unwrap_err();
        assert!(err.starts_with("quotas.reset_day"), "{err}");
        let err = check(&format!("{OK}admin:\n  listen: localhost\n")).unwrap_err();
        assert!(err.starts_with("admin.listen"), "{err}");
        let err = check(&format!("{OK}server:\n  trusted_proxies: [10.0.0.0/33]\n")).unwrap_err();
        assert!(err.starts_with("server.trusted_proxies[0]"), "{err}");
    }
}
