//! Real image work for the dev backend: decode JPEG/PNG/GIF/WebP, resize as imgproxy's resize
//! types do (never enlarging unless asked), encode JPEG/PNG/GIF/lossy WebP with quality.

use super::url::{Request, ResizeType};
use image::imageops::FilterType;
use image::{DynamicImage, ImageFormat};
use std::io::Cursor;

pub const DEFAULT_QUALITY: u8 = 80;
/// imgproxy's default `IMGPROXY_MAX_SRC_RESOLUTION` (50 megapixels).
pub const MAX_PIXELS: u64 = 50_000_000;

/// Why processing failed, mapped to imgproxy's status and text by the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum ProcessError {
    /// 422 `Invalid source image`
    InvalidSource(String),
    /// 422 `Invalid URL` (imgproxy's answer for an unsupported result format)
    UnsupportedFormat(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    Jpeg,
    Png,
    Gif,
    Webp,
}

impl Output {
    pub fn parse(ext: &str) -> Result<Output, ProcessError> {
        match ext {
            "jpg" | "jpeg" => Ok(Output::Jpeg),
            "png" => Ok(Output::Png),
            "gif" => Ok(Output::Gif),
            "webp" => Ok(Output::Webp),
            other => Err(ProcessError::UnsupportedFormat(format!(
                "Resulting image format is not supported: {other}"
            ))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Output::Jpeg => "image/jpeg",
            Output::Png => "image/png",
            Output::Gif => "image/gif",
            Output::Webp => "image/webp",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Output::Jpeg => "jpg",
            Output::Png => "png",
            Output::Gif => "gif",
            Output::Webp => "webp",
        }
    }
}

/// Target size of a `src` image for the requested resize, before any crop.
pub fn scaled_size(req: &Request, src: (u32, u32)) -> ((u32, u32), Option<(u32, u32)>) {
    let (sw, sh) = (src.0.max(1) as f64, src.1.max(1) as f64);
    let (tw, th) = (req.width as f64, req.height as f64);
    if req.width == 0 && req.height == 0 {
        return (src, None);
    }
    let (mut sx, mut sy) = (tw / sw, th / sh);
    let mode = match req.resize {
        ResizeType::Auto if (sw >= sh) == (tw >= th) => ResizeType::Fill,
        ResizeType::Auto => ResizeType::Fit,
        other => other,
    };
    match mode {
        ResizeType::Force => {
            if req.width == 0 {
                sx = 1.0;
            }
            if req.height == 0 {
                sy = 1.0;
            }
        }
        _ => {
            let scale = if req.width == 0 {
                sy
            } else if req.height == 0 {
                sx
            } else if mode == ResizeType::Fit {
                sx.min(sy)
            } else {
                sx.max(sy)
            };
            sx = scale;
            sy = scale;
        }
    }
    if !req.enlarge && (sx > 1.0 || sy > 1.0) {
        let m = sx.max(sy);
        sx /= m;
        sy /= m;
    }
    let size = (
        ((sw * sx).round() as u32).max(1),
        ((sh * sy).round() as u32).max(1),
    );
    let crop = match mode {
        ResizeType::Fill | ResizeType::FillDown if req.width > 0 && req.height > 0 => {
            Some((req.width.min(size.0), req.height.min(size.1)))
        }
        _ => None,
    };
    (size, crop)
}

/// The default output when the request names none: the source format if it is JPEG, PNG or
/// GIF, else PNG.
fn default_output(format: ImageFormat) -> Output {
    match format {
        ImageFormat::Jpeg => Output::Jpeg,
        ImageFormat::Gif => Output::Gif,
        _ => Output::Png,
    }
}

pub fn process(bytes: &[u8], req: &Request) -> Result<(Vec<u8>, Output), ProcessError> {
    let invalid = |m: String| ProcessError::InvalidSource(m);
    let format = image::guess_format(bytes)
        .map_err(|_| invalid("Source image type not supported".into()))?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::Gif | ImageFormat::WebP
    ) {
        return Err(invalid(format!(
            "Source image format is not supported: {format:?}"
        )));
    }
    let output = match &req.format {
        Some(ext) => Output::parse(ext)?,
        None => default_output(format),
    };
    let reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| invalid(format!("Invalid {format:?} file: {e}")))?;
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(invalid("Source image resolution is too big".into()));
    }
    let mut img = image::load_from_memory_with_format(bytes, format)
        .map_err(|e| invalid(format!("Invalid {format:?} file: {e}")))?;
    let (size, crop) = scaled_size(req, (w, h));
    if size != (w, h) {
        img = img.resize_exact(size.0, size.1, FilterType::Triangle);
    }
    if let Some((cw, ch)) = crop {
        let x = (size.0 - cw) / 2;
        let y = (size.1 - ch) / 2;
        img = img.crop_imm(x, y, cw, ch);
    }
    let quality = if req.quality == 0 {
        DEFAULT_QUALITY
    } else {
        req.quality
    };
    Ok((encode(&img, output, quality)?, output))
}

fn encode(img: &DynamicImage, output: Output, quality: u8) -> Result<Vec<u8>, ProcessError> {
    let fail = |e: String| ProcessError::InvalidSource(format!("cannot encode: {e}"));
    let mut out = Vec::new();
    match output {
        Output::Jpeg => {
            let rgb = img.to_rgb8();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
                .encode_image(&rgb)
                .map_err(|e| fail(e.to_string()))?;
        }
        Output::Png => img
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .map_err(|e| fail(e.to_string()))?,
        Output::Gif => DynamicImage::ImageRgba8(img.to_rgba8())
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Gif)
            .map_err(|e| fail(e.to_string()))?,
        Output::Webp => {
            let rgba = img.to_rgba8();
            let encoded = webp::Encoder::from_rgba(rgba.as_raw(), rgba.width(), rgba.height())
                .encode(quality as f32);
            out.extend_from_slice(&encoded);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(resize: ResizeType, width: u32, height: u32, enlarge: bool) -> Request {
        Request {
            resize,
            width,
            height,
            enlarge,
            ..Request::default()
        }
    }

    #[test]
    fn resize_types() {
        let src = (720, 477);
        assert_eq!(
            scaled_size(&req(ResizeType::Fit, 300, 300, false), src),
            ((300, 199), None)
        );
        assert_eq!(
            scaled_size(&req(ResizeType::Fill, 300, 300, false), src),
            ((453, 300), Some((300, 300)))
        );
        assert_eq!(
            scaled_size(&req(ResizeType::Force, 300, 100, false), src),
            ((300, 100), None)
        );
        assert_eq!(
            scaled_size(&req(ResizeType::Fit, 360, 0, false), src),
            ((360, 239), None)
        );
        assert_eq!(
            scaled_size(&req(ResizeType::Fit, 0, 0, false), src),
            (src, None)
        );
        // Never enlarged unless asked.
        assert_eq!(
            scaled_size(&req(ResizeType::Fit, 1440, 0, false), src),
            (src, None)
        );
        assert_eq!(
            scaled_size(&req(ResizeType::Fit, 1440, 0, true), src),
            ((1440, 954), None)
        );
        // auto: fill when orientations match, fit otherwise.
        assert_eq!(
            scaled_size(&req(ResizeType::Auto, 300, 200, false), src).1,
            Some((300, 200))
        );
        assert_eq!(
            scaled_size(&req(ResizeType::Auto, 200, 300, false), src).1,
            None
        );
    }

    #[test]
    fn converts_a_jpeg_to_a_smaller_lossy_webp() {
        let jpeg = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/board-720x477.jpg"
        ))
        .unwrap();
        let mut request = req(ResizeType::Fit, 300, 0, false);
        request.format = Some("webp".into());
        request.quality = 90;
        let (high, output) = process(&jpeg, &request).unwrap();
        assert_eq!(output, Output::Webp);
        let decoded = image::load_from_memory_with_format(&high, ImageFormat::WebP).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (300, 199));
        request.quality = 20;
        let (low, _) = process(&jpeg, &request).unwrap();
        assert!(
            low.len() < high.len(),
            "quality 20 ({}) vs 90 ({})",
            low.len(),
            high.len()
        );
    }

    #[test]
    fn png_and_gif_sources_and_default_formats() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        let png = std::fs::read(format!("{dir}video-150x103.png")).unwrap();
        assert_eq!(process(&png, &Request::default()).unwrap().1, Output::Png);
        let gif = std::fs::read(format!("{dir}video-150x103.gif")).unwrap();
        let to_jpeg = Request {
            format: Some("jpg".into()),
            ..Request::default()
        };
        let (bytes, _) = process(&gif, &to_jpeg).unwrap();
        assert_eq!(image::guess_format(&bytes).unwrap(), ImageFormat::Jpeg);
    }

    #[test]
    fn refuses_non_images_and_unsupported_outputs() {
        assert!(matches!(
            process(b"not an image at all", &Request::default()),
            Err(ProcessError::InvalidSource(_))
        ));
        let png = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/video-150x103.png"
        ))
        .unwrap();
        let avif = Request {
            format: Some("avif".into()),
            ..Request::default()
        };
        assert!(matches!(
            process(&png, &avif),
            Err(ProcessError::UnsupportedFormat(_))
        ));
    }
}
