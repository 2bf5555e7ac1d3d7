//! The admin web UI: a page shell and its assets, embedded in the binary at build time (no
//! Node step, no other origin). Every answer carries a strict Content-Security-Policy; the
//! page's data comes from the JSON API of this listener, with the key the operator typed.

use crate::respond::Answer;
use bytes::Bytes;
use http::StatusCode;

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every embedded file: its path, content type and bytes. The page is also at `/admin/`.
const FILES: [(&str, &str, &str); 9] = [
    ("/admin", HTML, include_str!("ui/index.html")),
    ("/admin/style.css", CSS, include_str!("ui/style.css")),
    ("/admin/app.js", JS, include_str!("ui/app.js")),
    ("/admin/api.js", JS, include_str!("ui/api.js")),
    ("/admin/chart.js", JS, include_str!("ui/chart.js")),
    ("/admin/lists.js", JS, include_str!("ui/lists.js")),
    ("/admin/overview.js", JS, include_str!("ui/overview.js")),
    ("/admin/user.js", JS, include_str!("ui/user.js")),
    ("/admin/users.js", JS, include_str!("ui/users.js")),
];

/// One embedded file (an index into `FILES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Asset(usize);

impl Asset {
    /// The asset at `path`, if the UI has one there.
    pub fn at(path: &str) -> Option<Asset> {
        let path = if path == "/admin/" { "/admin" } else { path };
        FILES.iter().position(|(at, _, _)| *at == path).map(Asset)
    }

    /// Every asset's path (the tests fetch each).
    pub fn paths() -> impl Iterator<Item = &'static str> {
        FILES.iter().map(|(path, _, _)| *path)
    }

    fn content(self) -> (&'static str, &'static str) {
        let (_, content_type, body) = FILES[self.0];
        (content_type, body)
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
    answer.headers.extend(
        [
            (
                http::header::CONTENT_SECURITY_POLICY,
                CONTENT_SECURITY_POLICY,
            ),
            (http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (http::header::REFERRER_POLICY, "no-referrer"),
            (http::header::CACHE_CONTROL, "no-cache"),
        ]
        .map(|(name, value)| (name, http::HeaderValue::from_static(value))),
    );
    answer
}
