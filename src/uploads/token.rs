//! Signed, expiring source URLs: how a backend fetches an upload's original from the gateway.
//! The signature is HMAC-SHA256(secret, "<id>:<expires>") in URL-safe base64.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SOURCE_PREFIX: &str = "/internal/v1/source/";

#[derive(Clone)]
pub struct SourceSigner {
    keyed: HmacSha256,
}

impl SourceSigner {
    pub fn new(secret: &[u8]) -> SourceSigner {
        SourceSigner {
            keyed: HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length"),
        }
    }

    fn mac(&self, id: &str, expires: u64) -> HmacSha256 {
        let mut mac = self.keyed.clone();
        mac.update(id.as_bytes());
        mac.update(b":");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// Path and query (`/internal/v1/source/<id>?exp=..&sig=..`) valid until `expires` (Unix s).
    pub fn path(&self, id: &str, expires: u64) -> String {
        let sig = URL_SAFE_NO_PAD.encode(self.mac(id, expires).finalize().into_bytes());
        format!("{SOURCE_PREFIX}{id}?exp={expires}&sig={sig}")
    }

    /// Whether `sig` authorises reading `id` at time `now`.
    pub fn verify(&self, id: &str, expires: u64, sig: &str, now: u64) -> bool {
        if now > expires {
            return false;
        }
        let Ok(raw) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        self.mac(id, expires).verify_slice(&raw).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(path: &str) -> (String, u64, String) {
        let rest = path.strip_prefix(SOURCE_PREFIX).unwrap();
        let (id, query) = rest.split_once('?').unwrap();
        let mut exp = 0;
        let mut sig = String::new();
        for pair in query.split('&') {
            match pair.split_once('=').unwrap() {
                ("exp", v) => exp = v.parse().unwrap(),
                ("sig", v) => sig = v.to_string(),
                _ => unreachable!(),
            }
        }
        (id.to_string(), exp, sig)
    }

    #[test]
    fn verifies_its_own_urls_until_they_expire() {
        let signer = SourceSigner::new(b"secret");
        let (id, exp, sig) = parts(&signer.path("abc", 1000));
        assert_eq!(id, "abc");
        assert!(signer.verify(&id, exp, &sig, 999));
        assert!(signer.verify(&id, exp, &sig, 1000));
        assert!(!signer.verify(&id, exp, &sig, 1001));
    }

    #[test]
    fn refuses_tampering_and_other_secrets() {
        let signer = SourceSigner::new(b"secret");
        let (id, exp, sig) = parts(&signer.path("abc", 1000));
        assert!(!signer.verify("abd", exp, &sig, 0));
        assert!(!signer.verify(&id, exp + 1, &sig, 0));
        assert!(!signer.verify(&id, exp, "AAAA", 0));
        assert!(!SourceSigner::new(b"other").verify(&id, exp, &sig, 0));
    }
}
