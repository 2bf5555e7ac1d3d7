//! Rules across fields (and across list entries). A rule about one value alone belongs to its
//! type (`bounded.rs`, `text.rs`, `values.rs`), checked while the file is read.

use super::load::ConfigError;
use super::schema::{Config, DatabaseDriver};

pub const MIN_BACKENDS: usize = 2;
pub const MAX_BACKENDS: usize = 10;

type Check = Result<(), ConfigError>;

fn fail(key: impl Into<String>, message: impl Into<String>) -> Check {
    Err(ConfigError::new(key, message))
}

pub fn validate(c: &Config) -> Check {
    validate_backends(c)?;
    validate_database(c)?;
    validate_legacy(c)?;
    validate_imgproxy(c)?;
    validate_tls(c)
}

/// Between 2 and 10 backends, none listed twice.
fn validate_backends(c: &Config) -> Check {
    let n = c.backends.len();
    if !(MIN_BACKENDS..=MAX_BACKENDS).contains(&n) {
        return fail(
            "backends",
            format!("needs between {MIN_BACKENDS} and {MAX_BACKENDS} entries (got {n})"),
        );
    }
    for (i, b) in c.backends.iter().enumerate() {
        if c.backends[..i].iter().any(|other| other.url == b.url) {
            return fail(
                format!("backends[{i}].url"),
                format!("`{}` is listed twice", b.url),
            );
        }
    }
    Ok(())
}

/// The DSN's scheme is the driver's.
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
    Ok(())
}

/// While the legacy key is accepted, it has the single-user program's shape (it is matched by
/// shape before any lookup).
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
    Ok(())
}

/// TLS needs its files, and the admin listener's TLS needs TLS.
fn validate_tls(c: &Config) -> Check {
    let t = &c.tls;
    if !t.enabled {
        if t.admin {
            return fail("tls.admin", "needs tls.enabled: true");
        }
        return Ok(());
    }
    for (key, path) in [("tls.cert", &*t.cert), ("tls.key", &*t.key)] {
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
