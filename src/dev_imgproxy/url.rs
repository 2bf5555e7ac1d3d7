//! Parsing imgproxy processing URLs as imgproxy 3 does: signature segment, `name:args` options,
//! then the source in plain (`plain/<escaped>@<ext>`) or base64 (`<b64>.<ext>`) form.

use crate::imgproxy::Signer;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Why a URL is refused; each maps to imgproxy's status and public text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlError {
    /// 403 `Forbidden`
    Signature(&'static str),
    /// 404 `Invalid URL`
    Invalid(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ResizeType {
    #[default]
    Fit,
    Fill,
    FillDown,
    Force,
    Auto,
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Request {
    pub resize: ResizeType,
    pub width: u32,
    pub height: u32,
    pub enlarge: bool,
    /// 0 = default quality.
    pub quality: u8,
    /// Requested output extension (`jpg`, `webp`, ...), if any.
    pub format: Option<String>,
    pub source: String,
}

fn invalid(message: impl Into<String>) -> UrlError {
    UrlError::Invalid(message.into())
}

/// imgproxy 3.8+ and 4 "fix" the path before checking its signature: in the options `%3A`
/// becomes `:`, and in a plain source the last `X:/Y` (`Y` not a slash) becomes `X://Y`, since
/// some proxies merge the slashes of `http://`. A gateway that signed the path as it sent it
/// gets a 403 for any source with such a `:/`.
pub fn fix_path(rest: &str) -> String {
    let (options, plain) = match rest.find("/plain/") {
        Some(i) => rest.split_at(i + "/plain/".len()),
        None => (rest, ""),
    };
    let mut fixed = options.replace("%3A", ":");
    let bytes = plain.as_bytes();
    let colon = (1..bytes.len().saturating_sub(2)).rev().find(|&i| {
        bytes[i] == b':'
            && bytes[i + 1] == b'/'
            && bytes[i + 2] != b'/'
            && !bytes[..i].iter().any(u8::is_ascii_whitespace)
    });
    match colon {
        Some(i) => {
            fixed.push_str(&plain[..i]);
            fixed.push_str("://");
            fixed.push_str(&plain[i + 2..]);
        }
        None => fixed.push_str(plain),
    }
    fixed
}

/// Split off and check the signature; returns the rest of the path (with its leading `/`),
/// as imgproxy reads it after `fix_path`.
pub fn verify(signer: &Signer, path: &str) -> Result<String, UrlError> {
    let path = path.split('?').next().unwrap_or("");
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let slash = trimmed
        .find('/')
        .filter(|i| *i > 0)
        .ok_or_else(|| invalid(format!("Invalid path: {path}")))?;
    let (signature, rest) = trimmed.split_at(slash);
    let rest = fix_path(rest);
    if signer.is_secure() {
        let given = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| UrlError::Signature("Invalid signature encoding"))?;
        let expected = signer.mac(&rest).unwrap_or_default();
        if given.len() != expected.len() || !constant_eq(&given, &expected) {
            return Err(UrlError::Signature("Invalid signature"));
        }
    }
    Ok(rest)
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn number<T: std::str::FromStr>(what: &str, text: &str) -> Result<T, UrlError> {
    text.parse()
        .map_err(|_| invalid(format!("Invalid {what}: {text}")))
}

fn apply_size(req: &mut Request, args: &[&str]) -> Result<(), UrlError> {
    if args.len() > 7 {
        return Err(invalid("Invalid size arguments"));
    }
    if let Some(w) = args.first().filter(|a| !a.is_empty()) {
        req.width = number("width", w)?;
    }
    if let Some(h) = args.get(1).filter(|a| !a.is_empty()) {
        req.height = number("height", h)?;
    }
    if let Some(e) = args.get(2).filter(|a| !a.is_empty()) {
        req.enlarge = matches!(*e, "1" | "t" | "T" | "true" | "TRUE" | "True");
    }
    Ok(())
}

fn apply_option(req: &mut Request, option: &str) -> Result<(), UrlError> {
    let mut pieces = option.split(':');
    let name = pieces.next().unwrap_or("");
    let args: Vec<&str> = pieces.collect();
    match name {
        "rs" | "resize" => {
            if args.len() > 8 {
                return Err(invalid("Invalid resize arguments"));
            }
            if let Some(t) = args.first().filter(|a| !a.is_empty()) {
                req.resize = match *t {
                    "fit" => ResizeType::Fit,
                    "fill" => ResizeType::Fill,
                    "fill-down" => ResizeType::FillDown,
                    "force" => ResizeType::Force,
                    "auto" => ResizeType::Auto,
                    other => return Err(invalid(format!("Invalid resize type: {other}"))),
                };
            }
            apply_size(req, args.get(1..).unwrap_or(&[]))
        }
        "s" | "size" => apply_size(req, &args),
        "w" | "width" => {
            req.width = number("width", args.first().copied().unwrap_or(""))?;
            Ok(())
        }
        "h" | "height" => {
            req.height = number("height", args.first().copied().unwrap_or(""))?;
            Ok(())
        }
        "q" | "quality" => {
            let q: u8 = number("quality", args.first().copied().unwrap_or(""))?;
            if q > 100 {
                return Err(invalid(format!("Invalid quality: {q}")));
            }
            req.quality = q;
            Ok(())
        }
        "f" | "format" | "ext" => {
            req.format = Some(args.first().copied().unwrap_or("").to_string());
            Ok(())
        }
        other => Err(invalid(format!("Unknown processing option {other}"))),
    }
}

/// Parse the path after the signature.
pub fn parse(rest: &str) -> Result<Request, UrlError> {
    let parts: Vec<&str> = rest.strip_prefix('/').unwrap_or(rest).split('/').collect();
    let mut req = Request::default();
    let mut index = 0;
    while index < parts.len() && parts[index].contains(':') {
        apply_option(&mut req, parts[index])?;
        index += 1;
    }
    let source_parts = &parts[index.min(parts.len())..];
    let (source, ext) = match source_parts.first() {
        Some(&"plain") if source_parts.len() > 1 => {
            let joined = source_parts[1..].join("/");
            let pieces: Vec<&str> = joined.split('@').collect();
            if pieces.len() > 2 {
                return Err(invalid(format!("Multiple formats are specified: {joined}")));
            }
            let url = percent_encoding::percent_decode_str(pieces[0])
                .decode_utf8()
                .map_err(|_| invalid(format!("Invalid url encoding: {}", pieces[0])))?
                .into_owned();
            (url, pieces.get(1).map(|s| s.to_string()))
        }
        _ => {
            let joined = source_parts.concat();
            let pieces: Vec<&str> = joined.split('.').collect();
            if pieces.len() > 2 {
                return Err(invalid(format!("Multiple formats are specified: {joined}")));
            }
            let decoded = URL_SAFE_NO_PAD
                .decode(pieces[0].trim_end_matches('='))
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| invalid(format!("Invalid url encoding: {}", pieces[0])))?;
            (decoded, pieces.get(1).map(|s| s.to_string()))
        }
    };
    if source.is_empty() {
        return Err(invalid("Image URL is empty"));
    }
    if let Some(ext) = ext.filter(|e| !e.is_empty()) {
        req.format = Some(ext);
    }
    req.source = source;
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imgproxy::signer::tests::VECTORS;

    #[test]
    fn accepts_the_published_vectors() {
        for (key, salt, path, signature) in VECTORS {
            let signer = Signer::from_hex(Some(key), Some(salt), 32).unwrap();
            let full = format!("/{signature}{path}");
            let rest = verify(&signer, &full).unwrap();
            assert_eq!(rest, path);
            parse(&rest).unwrap_or_else(|e| {
                // The first vector uses the `g` option, which this backend does not implement.
                assert!(matches!(e, UrlError::Invalid(ref m) if m.contains("Unknown processing option g")), "{e:?}");
                Request::default()
            });
        }
        let (key, salt, path, signature) = VECTORS[1];
        let signer = Signer::from_hex(Some(key), Some(salt), 32).unwrap();
        let full = format!("/{signature}{path}");
        let req = parse(&verify(&signer, &full).unwrap()).unwrap();
        assert_eq!(
            (req.resize, req.width, req.height),
            (ResizeType::Fit, 300, 300)
        );
        assert_eq!(req.source, "http://img.example.com/pretty/image.jpg");
    }

    #[test]
    fn refuses_bad_padded_and_truncated_signatures() {
        let (key, salt, path, signature) = VECTORS[1];
        let signer = Signer::from_hex(Some(key), Some(salt), 32).unwrap();
        for bad in [
            format!("{signature}="),
            "AAAA".to_string(),
            "insecure".to_string(),
            signature[..20].to_string(),
        ] {
            assert!(
                matches!(
                    verify(&signer, &format!("/{bad}{path}")),
                    Err(UrlError::Signature(_))
                ),
                "{bad}"
            );
        }
        let short = Signer::from_hex(Some(key), Some(salt), 8).unwrap();
        assert!(
            verify(&short, &format!("/{signature}{path}")).is_err(),
            "full signature with size 8"
        );
        assert!(verify(&short, &short.signed_path(path)).is_ok());
    }

    #[test]
    fn insecure_mode_ignores_the_signature_but_needs_it() {
        let signer = Signer::insecure();
        assert_eq!(verify(&signer, "/anything/plain/x").unwrap(), "/plain/x");
        assert!(verify(&signer, "//plain/x").is_err());
        assert!(verify(&signer, "/nothing").is_err());
    }

    #[test]
    fn parses_plain_and_base64_sources_and_options() {
        let req = parse("/rs:fill:100:50:1/q:70/plain/http://x.com/a%20b.jpg@webp").unwrap();
        assert_eq!(
            (req.resize, req.width, req.height, req.enlarge, req.quality),
            (ResizeType::Fill, 100, 50, true, 70)
        );
        assert_eq!(req.source, "http://x.com/a b.jpg");
        assert_eq!(req.format.as_deref(), Some("webp"));
        let req =
            parse("/w:10/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png").unwrap();
        assert_eq!(req.source, "http://example.com/images/curiosity.jpg");
        assert_eq!((req.width, req.format.as_deref()), (10, Some("png")));
        assert_eq!(
            parse("/f:jpg/plain/local:///abc")
                .unwrap()
                .format
                .as_deref(),
            Some("jpg")
        );
    }

    #[test]
    fn paths_are_fixed_before_the_signature_check_as_imgproxy_does() {
        assert_eq!(
            fix_path("/rs%3Afit:10:10/plain/http:/x.com/a.jpg"),
            "/rs:fit:10:10/plain/http://x.com/a.jpg"
        );
        // The last `:/` before a non-slash is rewritten, wherever it is.
        assert_eq!(
            fix_path("/plain/http://x.com/a:/b.jpg@webp"),
            "/plain/http://x.com/a://b.jpg@webp"
        );
        assert_eq!(
            fix_path("/plain/http://x.com/a.jpg"),
            "/plain/http://x.com/a.jpg"
        );
        let b64 = "/rs:fit:0:0/aHR0cDovL3guY29tL2E6L2IuanBn.webp";
        assert_eq!(fix_path(b64), b64);
        // So a path signed as sent, with such a source, is refused.
        let signer = Signer::from_hex(Some("736563726574"), Some("68656C6C6F"), 32).unwrap();
        let plain = "/rs:fit:0:0/plain/http://x.com/a:/b.jpg@webp";
        assert!(matches!(
            verify(&signer, &signer.signed_path(plain)),
            Err(UrlError::Signature(_))
        ));
        assert!(verify(&signer, &signer.signed_path(b64)).is_ok());
    }

    #[test]
    fn invalid_urls() {
        for bad in [
            "/zz:1/plain/x",
            "/w:abc/plain/x",
            "/q:101/plain/x",
            "/plain/a@b@c",
            "/rs:spin:1:1/plain/x",
            "/plain/",
            "/!!!",
        ] {
            assert!(matches!(parse(bad), Err(UrlError::Invalid(_))), "{bad}");
        }
    }
}
