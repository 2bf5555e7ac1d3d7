//! `X-Request-ID`: the client's when well-formed, else a fresh random one.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use rand::RngCore;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");
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
    String::from_utf8_lossy(&fresh()).into_owned()
}

/// The same, on the stack.
fn fresh() -> [u8; 32] {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let mut hex = [0u8; 32];
    // 16 bytes always fit 32 hex digits.
    let _ = hex::encode_to_slice(bytes, &mut hex);
    hex
}

/// A request's id, kept as the header value it is sent as (to the backend and the client), so
/// it is made once: the client's own value shared, or 32 fresh hex digits.
#[derive(Clone, Debug)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// The id for a request carrying `given` (its `X-Request-ID`, if any).
    pub fn from_header(given: Option<&HeaderValue>) -> RequestId {
        match given {
            Some(id) if is_well_formed(id.as_bytes()) => RequestId(id.clone()),
            // The digits in one allocation that every clone shares: a copied slice would be
            // copied again into a shared buffer by the first clone (`value`).
            _ => RequestId(
                HeaderValue::from_maybe_shared(Bytes::from_owner(fresh()))
                    .unwrap_or(HeaderValue::from_static("-")),
            ),
        }
    }

    /// The value to send (shared, not copied).
    pub fn value(&self) -> HeaderValue {
        self.0.clone()
    }
}

impl Default for RequestId {
    fn default() -> RequestId {
        RequestId(HeaderValue::from_static(""))
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;

    /// Well-formed ids are ASCII, so always the whole id.
    fn deref(&self) -> &str {
        self.0.to_str().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(given: &[u8]) -> RequestId {
        RequestId::from_header(HeaderValue::from_bytes(given).ok().as_ref())
    }

    #[test]
    fn keeps_well_formed_ids() {
        assert_eq!(&*from(b"abc-123_x.y:z"), "abc-123_x.y:z");
        assert_eq!(from(b"abc").value(), "abc");
    }

    #[test]
    fn replaces_bad_ids() {
        for bad in [&b""[..], b"has space", b"tab\there", &[b'a'; 129]] {
            let id = from(bad);
            assert_eq!(id.len(), 32, "{bad:?}");
            assert!(is_well_formed(id.as_bytes()));
            assert!(id
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        }
        assert_ne!(
            &*RequestId::from_header(None),
            &*RequestId::from_header(None)
        );
        assert_ne!(generate(), generate());
    }
}
