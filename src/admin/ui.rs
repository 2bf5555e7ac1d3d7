//! The admin web UI: a page shell and its assets, embedded in the binary at build time (no
//! Node step, no other origin). Every answer carries a strict Content-Security-Policy; the
//! page's data comes from the JSON API of this listener, with the key the operator typed.

use crate::respond::Answer;
use bytes::Bytes;
use http::StatusCode;

/// One embedded file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asset {
    Page,
    Script,
    Style,
}

impl Asset {
    /// The asset at `path`, if the UI has one there.
    pub fn at(path: &str) -> Option<Asset> {
        match path {
            "/admin" | "/admin/" => Some(Asset::Page),
            "/admin/app.js" => Some(Asset::Script),
            "/admin/style.css" => Some(Asset::Style),
            _ => None,
        }
    }

    fn content(self) -> (&'static str, &'static str) {
        match self {
            Asset::Page => ("text/html; charset=utf-8", include_str!("ui/index.html")),
            Asset::Script => ("text/javascript; charset=utf-8", include_str!("ui/app.js")),
            Asset::Style => ("text/css; charset=utf-8", include_str!("ui/style.css")),
        }
    }
}

/// No inline script or style, nothing from another origin, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub fn serve(asset: Asset) -> Answer {
    let (content_type, body) = asset.content();
    let mut answer = Answer::bytes(
        StatusCode::OK,
        content_type,
        Bytes::from_static(body.as_bytes()),
    );
    answer.headers.extend([
        (
            "Content-Security-Policy",
            CONTENT_SECURITY_POLICY.to_string(),
        ),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("Referrer-Policy", "no-referrer".to_string()),
        ("Cache-Control", "no-cache".to_string()),
    ]);
    answer
}
