//! The OpenAPI 3.1 document of both listeners' routes (`docs/openapi.json`, embedded at build
//! time), answered at `GET /api/v1/openapi.json` on each. `tests/openapi.rs` checks that it
//! names every route the gateway serves and runs schemathesis against a live gateway with it.

use crate::respond::Answer;
use bytes::Bytes;
use http::StatusCode;

pub const DOCUMENT: &str = include_str!("../docs/openapi.json");

pub fn serve() -> Answer {
    Answer::bytes(
        StatusCode::OK,
        "application/json",
        Bytes::from_static(DOCUMENT.as_bytes()),
    )
}
