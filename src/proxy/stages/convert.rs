//! `GET /api/v1/convert?url=…|image_id=…&format&width&height&quality` → an imgproxy job.

use crate::db::images;
use crate::error::{GatewayError, GatewayResult};
use crate::imgproxy::{self, source, ImageParams};
use crate::proxy::backend_error::SourceKind;
use crate::proxy::ctx::Job;
use crate::state::{unix_now, AppState};
use crate::uploads::is_image_id;

/// What the query names as the source.
#[derive(Debug, PartialEq, Eq)]
pub enum Source {
    Url(String),
    Stored(String),
}

/// Parse and validate the query; every unknown or repeated parameter is an error.
pub fn parse_query(query: &str, params: &mut ImageParams) -> GatewayResult<Source> {
    let mut url = None;
    let mut image_id = None;
    for (name, value) in crate::query::pairs(query) {
        let slot = match name.as_ref() {
            "url" => &mut url,
            "image_id" => &mut image_id,
            other => {
                if params.set(other, &value)? {
                    continue;
                }
                return Err(GatewayError::BadRequest(format!(
                    "unknown query parameter `{}`",
                    imgproxy::params::clip(other)
                )));
            }
        };
        if slot.replace(value.into_owned()).is_some() {
            return Err(GatewayError::BadRequest(format!(
                "query parameter `{name}` is repeated"
            )));
        }
    }
    match (url, image_id) {
        (Some(u), None) => Ok(Source::Url(u)),
        (None, Some(id)) => Ok(Source::Stored(id)),
        (None, None) => Err(GatewayError::invalid(
            "url",
            "either url or image_id is required",
        )),
        (Some(_), Some(_)) => Err(GatewayError::BadRequest(
            "give either url or image_id, not both".into(),
        )),
    }
}

pub async fn prepare(state: &AppState, caller: &str, query: &str) -> GatewayResult<Job> {
    let mut params = ImageParams::new(state.config().imgproxy.default_format);
    let (source, kind) = match parse_query(query, &mut params)? {
        Source::Url(raw) => {
            let config = state.config().clone();
            // What goes to the backend is the parsed URL (lower-case scheme and host,
            // normalized escapes), never the client's raw string.
            let url = source::validate(&raw, &config.imgproxy, &state.resolver).await?;
            (String::from(url), SourceKind::Client)
        }
        Source::Stored(id) => {
            let not_found = || {
                GatewayError::NotFound(format!("no stored image `{}`", imgproxy::params::clip(&id)))
            };
            if !is_image_id(&id) {
                return Err(not_found());
            }
            match Box::pin(images::find(&state.store, &id)).await? {
                Some(row) if row.owner == caller => {
                    (state.source_url(&id, unix_now()), SourceKind::Stored)
                }
                _ => return Err(not_found()),
            }
        }
    };
    Ok(Job {
        path: Job::target(imgproxy::signed_target(&state.signer, &params, &source))?,
        source: kind,
        format: Some(params.format),
        image_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imgproxy::Format;

    #[test]
    fn query_parsing() {
        let mut p = ImageParams::new(Format::Webp);
        assert_eq!(
            parse_query("url=http%3A%2F%2Fx.com%2Fa.jpg&width=10", &mut p).unwrap(),
            Source::Url("http://x.com/a.jpg".into())
        );
        assert_eq!(p.width, 10);
        assert_eq!(
            parse_query("image_id=abc", &mut p).unwrap(),
            Source::Stored("abc".into())
        );
        for bad in [
            "",
            "width=3",
            "url=a&url=b",
            "url=a&image_id=b",
            "url=a&colour=red",
            "url=a&width=big",
        ] {
            let err = parse_query(bad, &mut ImageParams::new(Format::Webp)).unwrap_err();
            assert_eq!(err.status(), 400, "{bad}");
        }
    }
}
