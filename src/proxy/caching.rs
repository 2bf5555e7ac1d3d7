//! What caches may do with an image answer. imgproxy marks its answers `public` (they are
//! public on an imgproxy that anyone may call); through the gateway every image is the answer
//! to an authenticated, metered request, so no shared cache may keep it. Browsers still may:
//! `private` keeps imgproxy's `max-age`, and `ETag`/`Last-Modified` pass through so
//! conditional requests (304) work.

use http::header::InvalidHeaderValue;
use http::HeaderValue;
use std::borrow::Cow;
use std::cell::RefCell;

/// What an answer's `Cache-Control` was made from, and the value made.
struct Made {
    backend: Option<Vec<u8>>,
    configured: Option<String>,
    value: HeaderValue,
}

thread_local! {
    /// The value this thread made last. A backend says the same for every answer (imgproxy:
    /// `max-age` of its TTL, `public`) and the operator's value changes only with a reload, so
    /// most answers reuse it: no parse, no formatting and no allocation per answer.
    static LAST: RefCell<Option<Made>> = const { RefCell::new(None) };
}

/// [`policy`] as a header value, reused while the backend's field and the configured value
/// are what the last answer of this thread had.
pub fn image_cache_control(
    backend: Option<&HeaderValue>,
    configured: Option<&str>,
) -> Result<HeaderValue, InvalidHeaderValue> {
    let bytes = backend.map(HeaderValue::as_bytes);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if let Some(made) = last.as_ref() {
            if made.backend.as_deref() == bytes && made.configured.as_deref() == configured {
                return Ok(made.value.clone());
            }
        }
        // A field that is not visible ASCII carries no directive this reads: as if absent.
        let text = backend.and_then(|b| b.to_str().ok());
        let value = match policy(text, configured) {
            Cow::Borrowed(fixed) => HeaderValue::from_static(fixed),
            Cow::Owned(made) => HeaderValue::try_from(made)?,
        };
        *last = Some(Made {
            backend: bytes.map(<[u8]>::to_vec),
            configured: configured.map(str::to_string),
            value: value.clone(),
        });
        Ok(value)
    })
}

/// The `Cache-Control` of an image answer: the operator's value when configured, else
/// `private` with the backend's `max-age` (or `no-cache` when the backend asked for it).
pub fn policy(backend: Option<&str>, configured: Option<&str>) -> Cow<'static, str> {
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
            assert_eq!(policy(backend, None), expected, "{backend:?}");
        }
        assert_eq!(
            policy(Some("max-age=1, public"), Some("public, max-age=60")),
            "public, max-age=60"
        );
    }

    /// The value reused for the next answer is the one its own inputs make: a change of the
    /// backend's field or of the configured value is never answered with the last value.
    #[test]
    fn a_reused_value_follows_its_inputs() {
        let year = HeaderValue::from_static("max-age=31536000, public");
        let hour = HeaderValue::from_static("max-age=3600, public");
        let odd = HeaderValue::from_bytes(b"max-age=5, \xff").unwrap();
        for (backend, configured, expected) in [
            (Some(&year), None, "private, max-age=31536000"),
            (Some(&year), None, "private, max-age=31536000"),
            (Some(&hour), None, "private, max-age=3600"),
            (Some(&hour), Some("no-store"), "no-store"),
            (
                Some(&hour),
                Some("public, max-age=60"),
                "public, max-age=60",
            ),
            (Some(&hour), None, "private, max-age=3600"),
            (None, None, "private"),
            (Some(&odd), None, "private"),
            (Some(&year), None, "private, max-age=31536000"),
        ] {
            let value = image_cache_control(backend, configured).unwrap();
            assert_eq!(value, expected, "{backend:?} {configured:?}");
        }
    }
}
