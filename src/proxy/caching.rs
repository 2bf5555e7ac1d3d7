//! What caches may do with an image answer. imgproxy marks its answers `public` (they are
//! public on an imgproxy that anyone may call); through the gateway every image is the answer
//! to an authenticated, metered request, so no shared cache may keep it. Browsers still may:
//! `private` keeps imgproxy's `max-age`, and `ETag`/`Last-Modified` pass through so
//! conditional requests (304) work.

use std::borrow::Cow;

/// The `Cache-Control` of an image answer: the operator's value when configured, else
/// `private` with the backend's `max-age` (or `no-cache` when the backend asked for it).
pub fn image_cache_control(backend: Option<&str>, configured: Option<&str>) -> Cow<'static, str> {
    if let Some(value) = configured {
        return value.to_string().into();
    }
    let directives = || backend.unwrap_or("").split(',').map(str::trim);
    if directives().any(|d| d.eq_ignore_ascii_case("no-store")) {
        return "private, no-store".into();
    }
    if directives().any(|d| d.eq_ignore_ascii_case("no-cache")) {
        return "private, no-cache".into();
    }
    let max_age = directives().find_map(|d| {
        let (name, value) = d.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
            .flatten()
    });
    match max_age {
        Some(seconds) => format!("private, max-age={seconds}").into(),
        None => "private".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_public_unless_the_operator_says_so() {
        for (backend, expected) in [
            (
                Some("max-age=31536000, public"),
                "private, max-age=31536000",
            ),
            (
                Some("public, s-maxage=60, max-age=3600"),
                "private, max-age=3600",
            ),
            (Some("no-cache"), "private, no-cache"),
            (Some("no-store, max-age=0"), "private, no-store"),
            (Some("public"), "private"),
            (Some("max-age=x"), "private"),
            (None, "private"),
        ] {
            assert_eq!(image_cache_control(backend, None), expected, "{backend:?}");
        }
        assert_eq!(
            image_cache_control(Some("max-age=1, public"), Some("public, max-age=60")),
            "public, max-age=60"
        );
    }
}
