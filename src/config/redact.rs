//! Secrets never printed: a DSN or URL is shown with its password replaced by `***`, in
//! `check-config`, at start and in every error that names it.

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
