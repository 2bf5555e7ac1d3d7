//! The multipart body of an upload: exactly one `file` field, streamed into a sink under a
//! byte limit and sniffed for an image type, and the short text fields `format`, `width`,
//! `height` and `quality`. Every other field, a second file, an over-long text or a malformed
//! body is a 4xx; nothing here knows about sockets or disks, so the fuzzer drives it with
//! bytes in memory.

use super::sniff;
use crate::error::{GatewayError, GatewayResult};
use crate::imgproxy::{self, ImageParams};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use std::future::Future;

/// Longest accepted text field (`format`, `width`, ...).
pub const MAX_TEXT_FIELD: usize = 64;

const IMAGE_TYPES: &str = "JPEG, PNG, GIF, WebP, AVIF, HEIF, TIFF or BMP";

/// Why the body stream stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the request body exceeds the upload limit")]
    TooLarge,
    #[error("the request body could not be read: {0}")]
    Read(String),
}

/// Where the file's bytes go.
pub trait Sink: Send {
    fn write(&mut self, chunk: &[u8]) -> impl Future<Output = GatewayResult<()>> + Send;
    fn written(&self) -> u64;
}

/// The most a file may hold, and the error past it (the upload limit or a quota).
pub struct FileLimit {
    pub bytes: u64,
    pub error: GatewayError,
}

/// A read form: its file (in the sink) with the sniffed type.
pub struct Form<S> {
    pub file: S,
    pub content_type: &'static str,
}

/// Longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;

/// `Content-Type: multipart/form-data; boundary=…` to its boundary (1–70 characters).
pub fn boundary(content_type: &str) -> GatewayResult<String> {
    let boundary = multer::parse_boundary(content_type).map_err(|_| {
        GatewayError::BadRequest("Content-Type must be multipart/form-data with a boundary".into())
    })?;
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY {
        return Err(GatewayError::BadRequest(format!(
            "the multipart boundary must be 1 to {MAX_BOUNDARY} characters"
        )));
    }
    Ok(boundary)
}

fn multipart_error(too_large: &GatewayError, e: multer::Error) -> GatewayError {
    if let multer::Error::StreamReadFailed(inner) = &e {
        return match inner.downcast_ref::<BodyError>() {
            Some(BodyError::TooLarge) => too_large.clone(),
            _ => GatewayError::BadRequest(inner.to_string()),
        };
    }
    GatewayError::BadRequest(format!("malformed multipart body: {e}"))
}

/// Read the form from `body`; the file goes into the sink `open` makes, text fields into
/// `params`. `body_too_large` is the answer when the stream itself passes its limit.
pub async fn read<B, S, O, F>(
    body: B,
    boundary: String,
    params: &mut ImageParams,
    limits: &[FileLimit],
    body_too_large: &GatewayError,
    open: O,
) -> GatewayResult<Form<S>>
where
    B: Stream<Item = Result<Bytes, BodyError>> + Send,
    S: Sink,
    O: FnOnce() -> F,
    F: Future<Output = GatewayResult<S>>,
{
    let head = boundary.len() + 4;
    let mut multipart = multer::Multipart::new(with_head(body, head).await, boundary);
    let mut open = Some(open);
    let mut stored = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(body_too_large, e))?
    {
        let name = field.name().unwrap_or_default().to_string();
        match name.as_str() {
            "file" => {
                let Some(open) = open.take() else {
                    return Err(GatewayError::BadRequest(
                        "only one `file` field is allowed".into(),
                    ));
                };
                let sink = open().await?;
                stored = Some(file(&mut field, sink, limits, body_too_large).await?);
            }
            "format" | "width" | "height" | "quality" => {
                let value = text(&mut field, &name, body_too_large).await?;
                params.set(&name, &value)?;
            }
            other => {
                return Err(GatewayError::BadRequest(format!(
                    "unknown multipart field `{}`",
                    imgproxy::params::clip(other)
                )))
            }
        }
    }
    stored.ok_or_else(|| GatewayError::invalid("file", "the multipart field `file` is required"))
}

/// `body` with at least its first `at_least` bytes (or all of it, or its error) ready at once.
///
/// multer 3.1 looks for the first boundary, polls the stream once more when it is not there
/// yet, and then gives up if that poll reached the end, without looking at what the poll
/// brought. A body that arrives whole after a first `Pending` (a small upload, or any body
/// sent after `100 Continue`) was read as "incomplete multipart stream". With the first
/// boundary already buffered, that path is never taken.
async fn with_head<B>(
    body: B,
    at_least: usize,
) -> impl Stream<Item = Result<Bytes, BodyError>> + Send
where
    B: Stream<Item = Result<Bytes, BodyError>> + Send,
{
    let mut body = Box::pin(body);
    let mut head = bytes::BytesMut::new();
    let mut first = Vec::new();
    while head.len() < at_least {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => {
                first.push(Err(e));
                break;
            }
            None => break,
        }
    }
    if !head.is_empty() {
        first.insert(0, Ok(head.freeze()));
    }
    futures_util::stream::iter(first).chain(body)
}

async fn file<S: Sink>(
    field: &mut multer::Field<'_>,
    mut sink: S,
    limits: &[FileLimit],
    body_too_large: &GatewayError,
) -> GatewayResult<Form<S>> {
    let mut head = Vec::with_capacity(sniff::HEAD_LEN);
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| multipart_error(body_too_large, e))?
    {
        let total = sink.written() + chunk.len() as u64;
        if let Some(limit) = limits.iter().find(|l| total > l.bytes) {
            return Err(limit.error.clone());
        }
        if head.len() < sniff::HEAD_LEN {
            let take = (sniff::HEAD_LEN - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        sink.write(&chunk).await?;
    }
    if sink.written() == 0 {
        return Err(GatewayError::invalid("file", "is empty"));
    }
    let content_type = sniff::image_type(&head).ok_or_else(|| {
        GatewayError::InvalidImage(format!("the uploaded file is not an image ({IMAGE_TYPES})"))
    })?;
    Ok(Form {
        file: sink,
        content_type,
    })
}

async fn text(
    field: &mut multer::Field<'_>,
    name: &str,
    body_too_large: &GatewayError,
) -> GatewayResult<String> {
    let mut text = Vec::new();
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| multipart_error(body_too_large, e))?
    {
        text.extend_from_slice(&chunk);
        if text.len() > MAX_TEXT_FIELD {
            return Err(GatewayError::BadRequest(format!(
                "field `{name}` is longer than {MAX_TEXT_FIELD} bytes"
            )));
        }
    }
    String::from_utf8(text)
        .map_err(|_| GatewayError::BadRequest(format!("field `{name}` is not UTF-8")))
}

/// A sink that keeps the bytes in memory (tests and the fuzzer).
#[derive(Default)]
pub struct MemorySink(pub Vec<u8>);

impl Sink for MemorySink {
    async fn write(&mut self, chunk: &[u8]) -> GatewayResult<()> {
        self.0.extend_from_slice(chunk);
        Ok(())
    }

    fn written(&self) -> u64 {
        self.0.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imgproxy::Format;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in parts {
            out.extend_from_slice(b"--XyZ\r\nContent-Disposition: form-data; name=\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\"\r\n\r\n");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"--XyZ--\r\n");
        out
    }

    async fn read_bytes(
        raw: Vec<u8>,
        limit: u64,
    ) -> GatewayResult<(Form<MemorySink>, ImageParams)> {
        let stream = futures_util::stream::iter([Ok::<_, BodyError>(Bytes::from(raw))]);
        let mut params = ImageParams::new(Format::Webp);
        let too_large = GatewayError::PayloadTooLarge { limit_mb: 1 };
        let limits = [FileLimit {
            bytes: limit,
            error: too_large.clone(),
        }];
        let form = read(
            stream,
            "XyZ".into(),
            &mut params,
            &limits,
            &too_large,
            || async { Ok(MemorySink::default()) },
        )
        .await?;
        Ok((form, params))
    }

    #[tokio::test]
    async fn one_file_and_text_fields() {
        let (form, params) = read_bytes(body(&[("width", b"20"), ("file", PNG)]), 100)
            .await
            .unwrap();
        assert_eq!(form.file.0, PNG);
        assert_eq!(form.content_type, "image/png");
        assert_eq!(params.width, 20);
    }

    #[tokio::test]
    async fn every_bad_form_is_a_client_error() {
        let long = [b'1'; 65];
        for (raw, status) in [
            (body(&[("file", PNG), ("file", PNG)]), 400),
            (body(&[("other", b"x"), ("file", PNG)]), 400),
            (body(&[("width", &long), ("file", PNG)]), 400),
            (body(&[("width", b"\xff"), ("file", PNG)]), 400),
            (body(&[("width", b"x"), ("file", PNG)]), 400),
            (body(&[("format", b"webp")]), 400),
            (body(&[("file", b"")]), 400),
            (body(&[("file", b"not an image")]), 422),
            (body(&[("file", &[0u8; 101])]), 413),
            (b"--XyZ\r\ngarbage".to_vec(), 400),
            (Vec::new(), 400),
        ] {
            let err = read_bytes(raw.clone(), 100).await.err().unwrap();
            assert_eq!(
                err.status().as_u16(),
                status,
                "{:?}",
                String::from_utf8_lossy(&raw)
            );
        }
    }
}

#[cfg(test)]
mod chunking {
    use super::*;
    use crate::imgproxy::Format;

    /// Any chunking of a valid form, with or without a `Pending` before a chunk, reads (round
    /// 84 of this sequence used to fail: three chunks, the first after a `Pending`).
    #[tokio::test]
    async fn every_chunking_reads() {
        let png = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/video-150x103.png"
        ))
        .unwrap();
        let mut body = b"--b0undary\r\nContent-Disposition: form-data; name=\"file\"; filename=\"v.png\"\r\n\r\n".to_vec();
        body.extend_from_slice(&png);
        body.extend_from_slice(b"\r\n--b0undary--\r\n");
        let mut seed = 7u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..300 {
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < body.len() {
                let n = match next() % 4 {
                    0 => 1,
                    1 => (next() % 16) as usize + 1,
                    2 => (next() % 2000) as usize + 1,
                    _ => (next() % 20000) as usize + 1,
                };
                let end = (at + n).min(body.len());
                chunks.push(Ok::<_, BodyError>(Bytes::copy_from_slice(&body[at..end])));
                at = end;
            }
            let yields: Vec<bool> = (0..chunks.len()).map(|_| next() % 2 == 0).collect();
            let stream = futures_util::stream::iter(chunks.into_iter().zip(yields)).then(
                |(c, y)| async move {
                    if y {
                        tokio::task::yield_now().await;
                    }
                    c
                },
            );
            let mut params = ImageParams::new(Format::Webp);
            let too_large = GatewayError::PayloadTooLarge { limit_mb: 1 };
            let limits = [FileLimit {
                bytes: 1 << 20,
                error: too_large.clone(),
            }];
            let got = read(
                Box::pin(stream),
                "b0undary".into(),
                &mut params,
                &limits,
                &too_large,
                || async { Ok(MemorySink::default()) },
            )
            .await;
            assert!(got.is_ok(), "round {round}: {:?}", got.err());
        }
    }
}
