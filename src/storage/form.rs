//! The multipart body of an upload: exactly one `file` field, streamed into a sink under a
//! byte limit and sniffed for an image type, and the short text fields `format`, `width`,
//! `height` and `quality`. Every other field, a second file, an over-long text or a malformed
//! body is a 4xx; nothing here knows about sockets or disks, so the fuzzer drives it with
//! bytes in memory.

use super::sniff;
use crate::error::{GatewayError, GatewayResult};
use crate::imgproxy::{self, ImageParams};
use bytes::Bytes;
use futures_util::Stream;
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
    let mut multipart = multer::Multipart::new(body, boundary);
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
