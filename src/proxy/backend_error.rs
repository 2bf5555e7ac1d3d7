//! Backend error answers keep their meaning for the client. imgproxy answers errors as one of a
//! few fixed plain-text messages; the gateway rewrites them into its JSON error shape.
//!
//! What an error means depends on the text as much as on the status: a 403 `Forbidden` is
//! imgproxy refusing the gateway's signature, a 403 `Source is unreachable` is the source's own
//! 403 passed through (v3.31+, v4). Pingora sends the client's response header before the body
//! is read, so the text is recognised by its length (`Content-Length`), which tells every
//! public imgproxy text of a status apart; the body, once read, only refines the message. An
//! answer that is no known imgproxy text is classified by its status alone.

use crate::error::GatewayError;
use http::StatusCode;

/// Longest backend error text kept; imgproxy's messages are a few dozen bytes.
const MAX_TEXT: usize = 512;

/// What an imgproxy error text says, across v2, v3 and v4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meaning {
    /// 403 `Forbidden`: the URL signature was refused.
    Signature,
    /// The source could not be fetched; the status is the source's (4xx passed through,
    /// 502 for its 5xx, 504 for the download timeout, 404 for DNS or a refused connection).
    Unreachable,
    /// 404 `Invalid source URL` (v3, v4) or `Invalid Source` (v2): the source's address is
    /// refused (`IMGPROXY_ALLOW_*_SOURCE_ADDRESSES`) or not in `IMGPROXY_ALLOWED_SOURCES`.
    SourceRefused,
    /// `Invalid URL`: imgproxy could not parse the gateway's URL (404), or cannot produce the
    /// requested format (422).
    InvalidUrl,
    /// 500 `Internal error`; imgproxy 3.x also answers a refused source connection this way.
    Internal,
    /// 422 `Invalid source image` or `Failed to detect source image type` (v4).
    InvalidImage,
    /// 422 `Source response is incomplete` (v4): the source's answer ended early.
    Incomplete,
    /// 503 `Timeout`: imgproxy's own processing deadline.
    Timeout,
    /// 429 `Too many requests`: imgproxy's queue is full.
    Busy,
}

/// imgproxy's public error texts (v2.17, v3.31, v4.0) with the statuses they come with.
const TEXTS: &[(&str, Meaning)] = &[
    ("Forbidden", Meaning::Signature),
    ("Source is unreachable", Meaning::Unreachable),
    ("Source image is unreachable", Meaning::Unreachable),
    ("Invalid source URL", Meaning::SourceRefused),
    ("Invalid Source", Meaning::SourceRefused),
    ("Invalid URL", Meaning::InvalidUrl),
    ("Internal error", Meaning::Internal),
    ("Invalid source image", Meaning::InvalidImage),
    ("Failed to detect source image type", Meaning::InvalidImage),
    ("Source response is incomplete", Meaning::Incomplete),
    ("Timeout", Meaning::Timeout),
    ("Too many requests", Meaning::Busy),
];

/// Which statuses each meaning comes with; a text under another status is not imgproxy's.
fn plausible(meaning: Meaning, status: u16) -> bool {
    match meaning {
        Meaning::Signature => status == 403,
        Meaning::Unreachable => matches!(status, 400..=499 | 500 | 502 | 504),
        Meaning::SourceRefused => status == 404,
        Meaning::InvalidUrl => matches!(status, 404 | 422),
        Meaning::Internal => status == 500,
        Meaning::InvalidImage | Meaning::Incomplete => status == 422,
        Meaning::Timeout => status == 503,
        Meaning::Busy => status == 429,
    }
}

/// The meaning of `(status, text)`, if the text is one of imgproxy's.
pub fn meaning_of_text(status: u16, text: &str) -> Option<Meaning> {
    let text = text.trim();
    TEXTS
        .iter()
        .find(|(t, m)| *t == text && plausible(*m, status))
        .map(|(_, m)| *m)
}

/// The meaning of an answer from its status and body length alone (the header).
pub fn meaning_of_length(status: u16, length: usize) -> Option<Meaning> {
    let mut found = TEXTS
        .iter()
        .filter(|(t, m)| t.len() == length && plausible(*m, status))
        .map(|(_, m)| *m);
    let first = found.next()?;
    found.all(|m| m == first).then_some(first)
}

/// A response's `Content-Length`, when it has a valid one.
pub fn content_length(header: &pingora::http::ResponseHeader) -> Option<usize> {
    header
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.trim().parse().ok())
}

/// Whose source the backend was fetching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SourceKind {
    /// A URL the client gave (`convert?url=`): its failures are the client's to know.
    #[default]
    Client,
    /// The gateway's own stored original: a failure to fetch it is a configuration problem.
    Stored,
}

const STORED_HINT: &str = "the backend could not fetch the stored original from \
storage.source_base_url; check that every backend reaches that address and, for a loopback or \
private address, that imgproxy runs with IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES=true or \
IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES=true (or use storage.source: local)";

/// A 429 of imgproxy's own (its queue is full), not a source's 429 passed through.
pub fn queue_full(upstream: &pingora::http::ResponseHeader) -> bool {
    match content_length(upstream) {
        Some(n) => meaning_of_length(429, n) != Some(Meaning::Unreachable),
        None => true,
    }
}

/// The client's error for a backend answer.
pub fn classify(status: u16, meaning: Option<Meaning>, source: SourceKind) -> GatewayError {
    use GatewayError::*;
    let stored = source == SourceKind::Stored;
    match meaning {
        Some(Meaning::Signature) => BackendFailed(
            "the backend refused the gateway's URL signature; imgproxy.key, imgproxy.salt and \
             imgproxy.signature_size must equal imgproxy's IMGPROXY_KEY, IMGPROXY_SALT and \
             IMGPROXY_SIGNATURE_SIZE"
                .into(),
        ),
        Some(Meaning::Busy) => BackendBusy,
        Some(Meaning::Timeout) => BackendTimeout,
        Some(Meaning::InvalidImage) => {
            InvalidImage("the backend cannot process this image (not a supported image)".into())
        }
        Some(Meaning::InvalidUrl) if status == 422 => {
            InvalidImage("the backend cannot produce the requested format".into())
        }
        Some(Meaning::InvalidUrl) => BackendFailed(
            "the backend refused the gateway's URL as malformed (an unsupported imgproxy version?)"
                .into(),
        ),
        Some(Meaning::Unreachable | Meaning::SourceRefused | Meaning::Internal) if stored => {
            BackendFailed(STORED_HINT.into())
        }
        Some(Meaning::Incomplete) if stored => BackendFailed(STORED_HINT.into()),
        Some(Meaning::Unreachable) if status == 504 => SourceTimeout,
        Some(Meaning::Unreachable) if status == 404 || status == 410 => SourceNotFound(format!(
            "the source image could not be fetched (the source answered {status} or is unreachable)"
        )),
        Some(Meaning::Unreachable) if (400..=499).contains(&status) => SourceRefused {
            status: refused_status(status),
            source_status: status,
            message: format!("the source refused to serve the image (it answered {status})"),
        },
        Some(Meaning::Unreachable) => {
            SourceFailed(format!("the source failed to serve the image ({status})"))
        }
        Some(Meaning::Incomplete) => SourceFailed("the source's answer ended early".into()),
        Some(Meaning::SourceRefused) => {
            Forbidden("the backend refuses this source (its address is not allowed there)".into())
        }
        Some(Meaning::Internal) => BackendFailed(
            "the backend failed (500 Internal error): imgproxy 3.x answers this for a source \
             that refuses the connection as for its own failures"
                .into(),
        ),
        None => by_status(status),
    }
}

/// The client's status for a source's own 4xx. Access refusals and legal blocks keep their
/// meaning; a status that would tell a client something about its own request or connection
/// (401 without a challenge, 407, 408, 426, 429, …) is a 502 with the source's status in
/// `source_status`.
fn refused_status(source: u16) -> u16 {
    match source {
        401 | 403 | 407 => 403,
        451 => 451,
        _ => 502,
    }
}

/// An answer that is no imgproxy text: its status alone.
fn by_status(status: u16) -> GatewayError {
    use GatewayError::*;
    match status {
        400 => BadRequest("the backend refused the request".into()),
        404 => SourceNotFound("the source image could not be fetched".into()),
        413 | 422 => InvalidImage("the backend cannot process this image".into()),
        429 => BackendBusy,
        503 | 504 => BackendTimeout,
        _ => BackendFailed(format!("the backend failed with status {status}")),
    }
}

/// A backend error body being collected until its end. The client's status is decided from
/// the header; the text, once read, may only change the message.
#[derive(Debug)]
pub struct Capture {
    pub backend_status: u16,
    source: SourceKind,
    /// What the header said, and the client status sent for it.
    decided: GatewayError,
    text: Vec<u8>,
}

impl Capture {
    /// From the backend's status and `Content-Length`.
    pub fn new(backend_status: u16, length: Option<usize>, source: SourceKind) -> Capture {
        let meaning = length.and_then(|n| meaning_of_length(backend_status, n));
        Capture {
            backend_status,
            source,
            decided: classify(backend_status, meaning, source),
            text: Vec::new(),
        }
    }

    /// The status the client gets.
    pub fn client_status(&self) -> StatusCode {
        self.decided.status()
    }

    pub fn push(&mut self, chunk: &[u8]) {
        let room = MAX_TEXT.saturating_sub(self.text.len());
        self.text.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    pub fn error(&self) -> GatewayError {
        let text = String::from_utf8_lossy(&self.text);
        match meaning_of_text(self.backend_status, &text) {
            Some(meaning) => {
                let refined = classify(self.backend_status, Some(meaning), self.source);
                if refined.status() == self.decided.status() {
                    refined
                } else {
                    self.decided.clone()
                }
            }
            None => self.decided.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, text: &str, source: SourceKind) -> GatewayError {
        let mut capture = Capture::new(status, Some(text.len()), source);
        capture.push(text.as_bytes());
        let err = capture.error();
        assert_eq!(err.status(), capture.client_status(), "{status} {text}");
        err
    }

    #[test]
    fn imgproxy_errors_keep_their_meaning() {
        use SourceKind::Client;
        for (status, text, client, code) in [
            (403, "Forbidden", 502, "bad_gateway"),
            // A source's own 403 and 401, passed through by imgproxy 3.31+ and 4.
            (403, "Source is unreachable", 403, "source_refused"),
            (401, "Source image is unreachable", 403, "source_refused"),
            (451, "Source is unreachable", 451, "source_refused"),
            (429, "Source is unreachable", 502, "source_refused"),
            (408, "Source is unreachable", 502, "source_refused"),
            (404, "Source is unreachable", 404, "source_not_found"),
            (404, "Source image is unreachable", 404, "source_not_found"),
            (502, "Source is unreachable", 502, "source_failed"),
            (504, "Source is unreachable", 504, "source_timeout"),
            (404, "Invalid source URL", 403, "forbidden"),
            (404, "Invalid Source", 403, "forbidden"),
            (404, "Invalid URL", 502, "bad_gateway"),
            (422, "Invalid URL", 422, "invalid_image"),
            (500, "Internal error", 502, "bad_gateway"),
            (422, "Invalid source image", 422, "invalid_image"),
            (
                422,
                "Failed to detect source image type",
                422,
                "invalid_image",
            ),
            (422, "Source response is incomplete", 502, "source_failed"),
            (503, "Timeout", 504, "gateway_timeout"),
            (429, "Too many requests", 503, "backend_busy"),
            (400, "Bad request", 400, "bad_request"),
            (500, "a different failure", 502, "bad_gateway"),
        ] {
            let err = answer(status, text, Client);
            assert_eq!(err.status().as_u16(), client, "{status} {text}");
            assert_eq!(err.code(), code, "{status} {text}");
        }
    }

    #[test]
    fn a_stored_original_that_cannot_be_fetched_is_a_configuration_problem() {
        for (status, text) in [
            (404, "Invalid source URL"),
            (404, "Source is unreachable"),
            (403, "Source image is unreachable"),
            (500, "Internal error"),
        ] {
            let err = answer(status, text, SourceKind::Stored);
            assert_eq!(err.status(), 502, "{status} {text}");
            assert!(
                err.to_string()
                    .contains("IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES"),
                "{err}"
            );
        }
        assert_eq!(
            answer(422, "Invalid source image", SourceKind::Stored).status(),
            422
        );
    }

    #[test]
    fn every_text_is_told_apart_by_its_length_under_its_status() {
        for (text, meaning) in TEXTS {
            for status in [400, 401, 403, 404, 410, 422, 429, 500, 502, 503, 504] {
                if plausible(*meaning, status) {
                    assert_eq!(
                        meaning_of_length(status, text.len()),
                        Some(*meaning),
                        "{status} {text}"
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_lengths_fall_back_to_the_status_and_the_body_never_changes_it() {
        let mut capture = Capture::new(403, None, SourceKind::Client);
        assert_eq!(capture.client_status(), 502);
        capture.push(b"Source is unreachable");
        assert_eq!(capture.error().status(), 502);
        let mut chunked = Capture::new(404, None, SourceKind::Client);
        chunked.push(b"Source is unreachable");
        assert_eq!(chunked.error().code(), "source_not_found");
    }

    #[test]
    fn capture_is_bounded() {
        let mut capture = Capture::new(422, None, SourceKind::Client);
        for _ in 0..100 {
            capture.push(&[b'x'; 100]);
        }
        assert!(capture.text.len() <= MAX_TEXT);
    }
}
