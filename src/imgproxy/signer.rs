//! imgproxy URL signatures: HMAC-SHA256 over `salt || path`, truncated to `signature_size`
//! bytes, URL-safe base64 without padding. Without key and salt the signature is `insecure`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub struct Signer {
    /// The keyed MAC with the salt already absorbed; cloned per signature.
    keyed: Option<HmacSha256>,
    size: usize,
}

impl Signer {
    /// `key` and `salt` are raw bytes (decoded from hex by the caller).
    pub fn new(key: &[u8], salt: &[u8], size: usize) -> Signer {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
        mac.update(salt);
        Signer {
            keyed: Some(mac),
            size: size.clamp(1, 32),
        }
    }

    pub fn insecure() -> Signer {
        Signer {
            keyed: None,
            size: 32,
        }
    }

    /// From hex strings as written in the configuration.
    pub fn from_hex(key: Option<&str>, salt: Option<&str>, size: usize) -> Result<Signer, String> {
        match (key, salt) {
            (Some(k), Some(s)) => {
                let k = hex::decode(k).map_err(|e| format!("key: {e}"))?;
                let s = hex::decode(s).map_err(|e| format!("salt: {e}"))?;
                Ok(Signer::new(&k, &s, size))
            }
            (None, None) => Ok(Signer::insecure()),
            _ => Err("key and salt must be set together".into()),
        }
    }

    pub fn is_secure(&self) -> bool {
        self.keyed.is_some()
    }

    /// The raw (truncated) MAC of `path`, or `None` without a key.
    pub fn mac(&self, path: &str) -> Option<Vec<u8>> {
        self.digest(path.as_bytes())
            .map(|d| d[..self.size].to_vec())
    }

    /// The full HMAC of `bytes` (of which the first `size` are the signature).
    fn digest(&self, bytes: &[u8]) -> Option<[u8; 32]> {
        let mut mac = self.keyed.clone()?;
        mac.update(bytes);
        Some(mac.finalize().into_bytes().into())
    }

    /// The signature segment for `path` (which starts with `/`).
    pub fn sign(&self, path: &str) -> String {
        let signed = self.signed_path(path);
        signed[1..signed.len() - path.len()].to_string()
    }

    /// `/<signature><path>`: the full imgproxy request path.
    pub fn signed_path(&self, path: &str) -> String {
        let signed = self.signed(|out| out.extend_from_slice(path.as_bytes()));
        String::from_utf8(signed).expect("a signed path is ASCII around the given path")
    }

    /// `/<signature><path>` in one buffer, `path` written by `write` (starting with `/`):
    /// room for the signature is left in front of it and filled once the path is known.
    pub fn signed(&self, write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let room = match self.keyed {
            Some(_) => base64::encoded_len(self.size, false).unwrap_or(0),
            None => INSECURE.len(),
        };
        let mut out = Vec::with_capacity(128);
        out.push(b'/');
        out.resize(1 + room, b'/');
        write(&mut out);
        let (head, path) = out.split_at_mut(1 + room);
        let slot = &mut head[1..];
        match self.digest(path) {
            Some(digest) => {
                let written = URL_SAFE_NO_PAD.encode_slice(&digest[..self.size], slot);
                debug_assert_eq!(written.ok(), Some(room));
            }
            None => slot.copy_from_slice(INSECURE),
        }
        out
    }
}

/// imgproxy's signature segment when URLs are not signed.
const INSECURE: &[u8] = b"insecure";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// imgproxy's published examples (docs "Signing the URL" and its examples repository).
    pub const VECTORS: [(&str, &str, &str, &str); 2] = [
        (
            "736563726574",
            "68656C6C6F",
            "/rs:fill:300:400:0/g:sm/aHR0cDovL2V4YW1w/bGUuY29tL2ltYWdl/cy9jdXJpb3NpdHku/anBn.png",
            "oKfUtW34Dvo2BGQehJFR4Nr0_rIjOtdtzJ3QFsUcXH8",
        ),
        (
            "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881",
            "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5",
            "/rs:fit:300:300/plain/http://img.example.com/pretty/image.jpg",
            "m3k5QADfcKPDj-SDI2AIogZbC3FlAXszuwhtWXYqavc",
        ),
    ];

    #[test]
    fn matches_published_vectors() {
        for (key, salt, path, expected) in VECTORS {
            let signer = Signer::from_hex(Some(key), Some(salt), 32).unwrap();
            assert_eq!(signer.sign(path), expected, "{path}");
            assert_eq!(signer.signed_path(path), format!("/{expected}{path}"));
        }
    }

    #[test]
    fn truncates_to_signature_size() {
        let (key, salt, path, full) = VECTORS[0];
        let signer = Signer::from_hex(Some(key), Some(salt), 8).unwrap();
        let short = signer.sign(path);
        let full_bytes = URL_SAFE_NO_PAD.decode(full).unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(&short).unwrap(), full_bytes[..8]);
        assert_eq!(short.len(), 11);
    }

    #[test]
    fn insecure_without_key() {
        let signer = Signer::from_hex(None, None, 32).unwrap();
        assert!(!signer.is_secure());
        assert_eq!(signer.signed_path("/plain/x"), "/insecure/plain/x");
        assert!(Signer::from_hex(Some("00"), None, 32).is_err());
    }
}
