//! The upload's multipart reader: any body, cut into any chunks, never a panic and never a 5xx;
//! an accepted form holds one file within its limit whose head is an image.
#![no_main]

use bytes::Bytes;
use imgproxy_gateway::error::GatewayError;
use imgproxy_gateway::imgproxy::{Format, ImageParams};
use imgproxy_gateway::uploads::form::{self, BodyError, FileLimit, MemorySink};
use libfuzzer_sys::fuzz_target;

const LIMIT: u64 = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let size = usize::from(cut).max(1);
    let chunks: Vec<Result<Bytes, BodyError>> = body
        .chunks(size)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    let too_large = GatewayError::PayloadTooLarge { limit_mb: 1 };
    let limits = [FileLimit {
        bytes: LIMIT,
        error: too_large.clone(),
    }];
    let mut params = ImageParams::new(Format::Webp);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let outcome = runtime.block_on(form::read(
        stream,
        "fuzzboundary".into(),
        &mut params,
        &limits,
        &too_large,
        || async { Ok(MemorySink::default()) },
    ));
    match outcome {
        Ok(form) => {
            assert!(!form.file.0.is_empty());
            assert!(form.file.0.len() as u64 <= LIMIT);
            assert!(form.content_type.starts_with("image/"));
        }
        Err(e) => assert!(e.status().is_client_error(), "{e:?}"),
    }
});
