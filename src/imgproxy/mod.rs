//! Speaking imgproxy: URL signatures, processing options and source URLs.

pub mod address;
pub mod params;
pub mod resolve;
pub mod signer;
pub mod source;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
pub use params::{Format, ImageParams};
pub use signer::Signer;

/// The processing path (before signing): `/<options>/<base64url(source)>.<ext>`.
///
/// The base64 form is the one every imgproxy version (2.x to 4.x) reads the same way: no
/// character of the source is escaped, unescaped, rewritten (v3 and v4 turn `X:/Y` into
/// `X://Y` before checking the signature) or split at `?`, `@` or `.`, and the signature covers
/// exactly these bytes whether imgproxy verifies the raw or the decoded path (v2). The options
/// are never empty, so v2 sees its three path segments.
pub fn processing_path(params: &ImageParams, source: &str) -> String {
    let mut out = Vec::new();
    write_processing_path(params, source, &mut out);
    String::from_utf8(out).expect("a processing path is ASCII")
}

/// `processing_path`, appended to `out`.
pub fn write_processing_path(params: &ImageParams, source: &str, out: &mut Vec<u8>) {
    out.push(b'/');
    params.write_options(out);
    let start = out.len();
    out.resize(
        start + base64::encoded_len(source.len(), false).unwrap_or(0),
        0,
    );
    let written = URL_SAFE_NO_PAD
        .encode_slice(source.as_bytes(), &mut out[start..])
        .unwrap_or(0);
    out.truncate(start + written);
    out.push(b'.');
    out.extend_from_slice(params.format.extension().as_bytes());
}

/// The backend's request target for `source` processed by `params`, signed by `signer`:
/// written into one buffer, signature included.
pub fn signed_target(signer: &Signer, params: &ImageParams, source: &str) -> Vec<u8> {
    signer.signed(|out| write_processing_path(params, source, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_base64_processing_urls() {
        let mut params = ImageParams::new(Format::Webp);
        params.set("width", "300").unwrap();
        params.set("height", "300").unwrap();
        let path = processing_path(&params, "http://img.example.com/pretty/image.jpg");
        assert_eq!(
            path,
            "/rs:fit:300:300/aHR0cDovL2ltZy5leGFtcGxlLmNvbS9wcmV0dHkvaW1hZ2UuanBn.webp"
        );
        let insecure = Signer::insecure().signed_path(&path);
        assert_eq!(insecure, format!("/insecure{path}"));
    }

    #[test]
    fn every_source_character_survives_and_v2_sees_three_segments() {
        // `?`, `@`, `%`, `:/` followed by a non-slash, `#` and spaces: each would be escaped,
        // split or rewritten by some imgproxy version in the plain form.
        let source = "https://x.com/a:/b/c d@2x.jpg?sig=a%2Fb&v=1#f";
        let path = processing_path(&ImageParams::new(Format::Png), source);
        let segments: Vec<&str> = path[1..].split('/').collect();
        assert_eq!(segments.len(), 2, "{path}");
        assert_eq!(segments[0], "rs:fit:0:0");
        let (encoded, ext) = segments[1].split_once('.').unwrap();
        assert_eq!(ext, "png");
        assert!(encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(URL_SAFE_NO_PAD.decode(encoded).unwrap(), source.as_bytes());
    }

    #[test]
    fn the_one_buffer_target_is_the_signed_processing_path() {
        let (key, salt, ..) = signer::tests::VECTORS[1];
        let mut params = ImageParams::new(Format::Jpeg);
        params.set("width", "8192").unwrap();
        params.set("quality", "80").unwrap();
        let source = "https://x.com/a:/b/c d@2x.jpg?sig=a%2Fb&v=1#f";
        let path = processing_path(&params, source);
        assert!(path.starts_with("/rs:fit:8192:0/q:80/"), "{path}");
        for size in [1, 8, 31, 32] {
            let signer = Signer::from_hex(Some(key), Some(salt), size).unwrap();
            let target = signed_target(&signer, &params, source);
            assert_eq!(target, signer.signed_path(&path).into_bytes(), "{size}");
            let expected = URL_SAFE_NO_PAD.encode(signer.mac(&path).unwrap());
            assert_eq!(&target[1..1 + expected.len()], expected.as_bytes());
        }
        let insecure = signed_target(&Signer::insecure(), &params, source);
        assert_eq!(insecure, format!("/insecure{path}").into_bytes());
    }
}
