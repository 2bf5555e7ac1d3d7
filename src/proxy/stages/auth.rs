//! Who is calling. Until users exist the gateway accepts exactly the legacy key, like the
//! single-user program it replaces.

use crate::config::LegacyConfig;
use crate::error::{GatewayError, GatewayResult};
use pingora::http::RequestHeader;

pub const API_KEY_HEADER: &str = "X-API-Key";
pub const LEGACY_USER: &str = "legacy";

/// Compare in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The caller's user id, or 401.
pub fn authenticate(legacy: &LegacyConfig, req: &RequestHeader) -> GatewayResult<String> {
    let key = req
        .headers
        .get(API_KEY_HEADER)
        .ok_or(GatewayError::Unauthorized("missing X-API-Key header"))?;
    if legacy.enabled && constant_time_eq(key.as_bytes(), legacy.api_key.as_bytes()) {
        return Ok(LEGACY_USER.to_string());
    }
    Err(GatewayError::Unauthorized("invalid API key"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(key: Option<&str>) -> RequestHeader {
        let mut req = RequestHeader::build("GET", b"/api/v1/convert", None).unwrap();
        if let Some(k) = key {
            req.insert_header(API_KEY_HEADER, k).unwrap();
        }
        req
    }

    #[test]
    fn accepts_only_the_legacy_key() {
        let legacy = LegacyConfig::default();
        assert_eq!(
            authenticate(&legacy, &request(Some(&legacy.api_key))).unwrap(),
            LEGACY_USER
        );
        for bad in [
            None,
            Some(""),
            Some("a8e77f84e2729dc6728889d4be31b12"),
            Some("nope"),
        ] {
            assert_eq!(
                authenticate(&legacy, &request(bad)).unwrap_err().status(),
                401
            );
        }
        let disabled = LegacyConfig {
            enabled: false,
            ..LegacyConfig::default()
        };
        assert!(authenticate(&disabled, &request(Some(&legacy.api_key))).is_err());
    }
}
