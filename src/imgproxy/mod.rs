//! Speaking imgproxy: URL signatures, processing options and source URLs.

pub mod params;
pub mod signer;
pub mod source;

pub use params::{Format, ImageParams};
pub use signer::Signer;

/// The processing path (before signing): `/<options>plain/<escaped source>@<ext>`.
pub fn processing_path(params: &ImageParams, source: &str) -> String {
    format!(
        "/{}plain/{}@{}",
        params.options(),
        source::escape_plain(source),
        params.format.extension()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_signed_processing_urls() {
        let mut params = ImageParams::new(Format::Webp);
        params.set("width", "300").unwrap();
        params.set("height", "300").unwrap();
        let path = processing_path(&params, "http://img.example.com/pretty/image.jpg");
        assert_eq!(
            path,
            "/rs:fit:300:300/plain/http://img.example.com/pretty/image.jpg@webp"
        );
        let insecure = Signer::insecure().signed_path(&path);
        assert_eq!(insecure, format!("/insecure{path}"));
    }
}
