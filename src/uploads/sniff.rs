//! Recognise an image by its first bytes, so that what is stored is an image imgproxy can read.

/// The media type of `head` (the first bytes of a file), if it is an image format imgproxy reads.
pub fn image_type(head: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| head.starts_with(magic);
    if starts(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some("image/gif")
    } else if head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP" {
        Some("image/webp")
    } else if head.len() >= 12 && &head[4..8] == b"ftyp" {
        match &head[8..12] {
            b"avif" | b"avis" => Some("image/avif"),
            b"heic" | b"heix" | b"mif1" | b"msf1" => Some("image/heif"),
            _ => None,
        }
    } else if starts(b"II*\0") || starts(b"MM\0*") {
        Some("image/tiff")
    } else if starts(b"BM") && head.len() >= 14 {
        Some("image/bmp")
    } else {
        None
    }
}

/// Bytes needed to decide.
pub const HEAD_LEN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_fixtures() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        for (file, ty) in [
            ("board-720x477.jpg", "image/jpeg"),
            ("video-150x103.png", "image/png"),
            ("video-150x103.gif", "image/gif"),
        ] {
            let bytes = std::fs::read(format!("{dir}{file}")).unwrap();
            assert_eq!(image_type(&bytes[..HEAD_LEN]), Some(ty), "{file}");
        }
    }

    #[test]
    fn refuses_non_images() {
        assert_eq!(image_type(b"hello world, not an image"), None);
        assert_eq!(image_type(b""), None);
        assert_eq!(image_type(b"RIFF\0\0\0\0WAVEfmt "), None);
    }
}
