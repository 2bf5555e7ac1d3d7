//! `X-Request-ID`: the client's when well-formed, else a fresh random one.

use rand::RngCore;

pub const HEADER: &str = "X-Request-ID";
const MAX_LEN: usize = 128;

/// A client id is kept when it is 1–128 characters of `[A-Za-z0-9._:-]`; anything else could
/// smuggle text into logs or headers and is replaced.
pub fn is_well_formed(id: &[u8]) -> bool {
    !id.is_empty()
        && id.len() <= MAX_LEN
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// 128 random bits as 32 lowercase hex characters.
pub fn generate() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The id for a request carrying `given` (the raw header value, if any).
pub fn from_header(given: Option<&[u8]>) -> String {
    match given {
        Some(id) if is_well_formed(id) => String::from_utf8_lossy(id).into_owned(),
        _ => generate(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_well_formed_ids() {
        assert_eq!(from_header(Some(b"abc-123_x.y:z")), "abc-123_x.y:z");
    }

    #[test]
    fn replaces_bad_ids() {
        for bad in [&b""[..], b"has space", b"new\nline", &[b'a'; 129]] {
            let id = from_header(Some(bad));
            assert_eq!(id.len(), 32, "{bad:?}");
            assert!(is_well_formed(id.as_bytes()));
        }
        assert_ne!(generate(), generate());
    }
}
