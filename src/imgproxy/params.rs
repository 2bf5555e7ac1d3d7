//! What a client may ask of a conversion: output format, size and quality. Shared by upload
//! (multipart fields or query) and convert (query), validated once, turned into imgproxy options.

use crate::error::{GatewayError, GatewayResult};

pub const MAX_DIMENSION: u32 = 8192;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Webp,
    Png,
    Jpeg,
    Avif,
}

impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Format::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!("`{text}` is not one of webp, png, jpeg, jpg, avif"))
        })
    }
}

impl serde::Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        match text.to_ascii_lowercase().as_str() {
            "webp" => Some(Format::Webp),
            "png" => Some(Format::Png),
            "jpeg" | "jpg" => Some(Format::Jpeg),
            "avif" => Some(Format::Avif),
            _ => None,
        }
    }

    /// Its name in the configuration and in `?format=`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Webp => "webp",
            Format::Png => "png",
            Format::Jpeg => "jpeg",
            Format::Avif => "avif",
        }
    }

    /// The extension imgproxy understands.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Webp => "webp",
            Format::Png => "png",
            Format::Jpeg => "jpg",
            Format::Avif => "avif",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Webp => "image/webp",
            Format::Png => "image/png",
            Format::Jpeg => "image/jpeg",
            Format::Avif => "image/avif",
        }
    }
}

/// Validated conversion parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageParams {
    pub format: Format,
    /// 0 means "keep the aspect ratio from the other side" (imgproxy's convention).
    pub width: u32,
    pub height: u32,
    pub quality: Option<u8>,
}

impl ImageParams {
    pub fn new(default_format: Format) -> ImageParams {
        ImageParams {
            format: default_format,
            width: 0,
            height: 0,
            quality: None,
        }
    }

    /// Apply one named parameter; unknown names are not this function's business (the caller
    /// decides which other names it accepts) and return `Ok(false)`.
    pub fn set(&mut self, name: &str, value: &str) -> GatewayResult<bool> {
        match name {
            "format" => {
                self.format = Format::parse(value).ok_or_else(|| {
                    GatewayError::invalid(
                        "format",
                        format!("`{}` is not one of webp, png, jpeg, avif", clip(value)),
                    )
                })?
            }
            "width" => self.width = dimension("width", value)?,
            "height" => self.height = dimension("height", value)?,
            "quality" => {
                let q: u8 = value.trim().parse().map_err(|_| {
                    GatewayError::invalid(
                        "quality",
                        format!("`{}` is not a whole number from 1 to 100", clip(value)),
                    )
                })?;
                if !(1..=100).contains(&q) {
                    return Err(GatewayError::invalid(
                        "quality",
                        format!("must be between 1 and 100 (got {q})"),
                    ));
                }
                self.quality = Some(q);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// imgproxy processing options, each followed by `/`, e.g. `rs:fit:300:0/q:80/`. The
    /// resize is always there (`rs:fit:0:0` keeps the size), so the options are never empty.
    pub fn options(&self) -> String {
        let mut out = Vec::new();
        self.write_options(&mut out);
        String::from_utf8(out).expect("options are ASCII")
    }

    /// `options()`, appended to `out`.
    pub fn write_options(&self, out: &mut Vec<u8>) {
        let number = |out: &mut Vec<u8>, n: u32| {
            out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes())
        };
        out.extend_from_slice(b"rs:fit:");
        number(out, self.width);
        out.push(b':');
        number(out, self.height);
        out.push(b'/');
        if let Some(q) = self.quality {
            out.extend_from_slice(b"q:");
            number(out, u32::from(q));
            out.push(b'/');
        }
    }
}

fn dimension(field: &'static str, value: &str) -> GatewayResult<u32> {
    let n: u32 = value.trim().parse().map_err(|_| {
        GatewayError::invalid(field, format!("`{}` is not a whole number", clip(value)))
    })?;
    if n > MAX_DIMENSION {
        return Err(GatewayError::invalid(
            field,
            format!("must be between 0 and {MAX_DIMENSION} (got {n})"),
        ));
    }
    Ok(n)
}

/// Echo at most 32 characters of client input in an error message.
pub fn clip(value: &str) -> String {
    value
        .chars()
        .take(32)
        .flat_map(char::escape_default)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders_options() {
        let mut p = ImageParams::new(Format::Webp);
        assert!(p.set("width", "300").unwrap());
        assert!(p.set("quality", "80").unwrap());
        assert!(p.set("format", "JPG").unwrap());
        assert!(!p.set("other", "x").unwrap());
        assert_eq!(p.options(), "rs:fit:300:0/q:80/");
        assert_eq!(p.format, Format::Jpeg);
        assert_eq!(ImageParams::new(Format::Png).options(), "rs:fit:0:0/");
    }

    #[test]
    fn rejects_out_of_range_values_naming_the_field() {
        let mut p = ImageParams::new(Format::Webp);
        for (name, value) in [
            ("width", "-1"),
            ("width", "9000"),
            ("height", "x"),
            ("quality", "0"),
            ("quality", "101"),
            ("format", "bmp"),
        ] {
            match p.set(name, value).unwrap_err() {
                GatewayError::InvalidParameter { field, .. } => assert_eq!(field, name),
                other => panic!("{other:?}"),
            }
        }
    }
}
