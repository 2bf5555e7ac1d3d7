//! The API key parser: any header value, never a panic; what it accepts has the documented
//! shape, and a key it accepts is exactly `imgproxy_<user_id>_<secret>` or legacy-shaped.
#![no_main]

use imgproxy_gateway::identity::key::{self, Lookup};
use libfuzzer_sys::fuzz_target;

const LEGACY: &str = "a8e77f84e2729dc6728889d4be31b123";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for legacy in [None, Some(LEGACY)] {
        let Some(parsed) = key::parse(text, legacy) else {
            continue;
        };
        match parsed.lookup {
            Lookup::Prefix(id) => {
                assert_eq!(
                    text,
                    format!("{}{}_{}", key::PREFIX, parsed.user_id, parsed.secret)
                );
                assert!(key::valid_user_id(parsed.user_id));
                assert!((32..=128).contains(&parsed.secret.len()));
                assert!(parsed.secret.bytes().all(|b| b.is_ascii_alphanumeric()));
                assert_eq!(id.len(), key::LOOKUP_LEN);
                assert!(parsed.secret.starts_with(id));
            }
            Lookup::Legacy => {
                let legacy = legacy.expect("legacy lookup without a legacy key");
                assert_eq!(text.len(), legacy.len());
                assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
                assert_eq!(parsed.user_id, key::LEGACY_USER);
            }
        }
        assert!(!parsed.lookup_id().is_empty());
    }
    let _ = key::fingerprint(text);
});
