//! The shape of an API key: `imgproxy_<user_id>_<secret>`, or the single-user program's legacy
//! key. Parsing is pure and allocation-free, so malformed keys are refused before any cache,
//! database or bcrypt work.

use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};

pub const PREFIX: &str = "imgproxy_";
/// Characters of a generated secret: 43 alphanumerics are ~256 bits from the OS CSPRNG.
pub const SECRET_LEN: usize = 43;
const MIN_SECRET_LEN: usize = 32;
const MAX_SECRET_LEN: usize = 128;
/// Leading secret characters that double as the key's public id (its database row).
pub const LOOKUP_LEN: usize = 12;
/// The user the legacy key belongs to.
pub const LEGACY_USER: &str = "legacy";
const LEGACY_LOOKUP_PREFIX: &str = "legacy";

/// SHA-256 of a whole presented key: how caches remember it without keeping the key.
pub type Fingerprint = [u8; 32];

pub fn fingerprint(key: &str) -> Fingerprint {
    Sha256::digest(key.as_bytes()).into()
}

/// A well-formed key, split into the parts the database lookup needs.
#[derive(Debug, PartialEq, Eq)]
pub struct ParsedKey<'a> {
    pub user_id: &'a str,
    /// The part bcrypt covers (bcrypt reads at most 72 bytes, so never the whole key).
    pub secret: &'a str,
    pub lookup: Lookup<'a>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// A generated key: the first characters of its secret.
    Prefix(&'a str),
    /// The legacy key: derived from its digest, as it has no structure of its own.
    Legacy,
}

impl ParsedKey<'_> {
    pub fn lookup_id(&self) -> String {
        match self.lookup {
            Lookup::Prefix(id) => id.to_string(),
            Lookup::Legacy => legacy_lookup_id(self.secret),
        }
    }
}

/// `Some` when `key` is well-formed. `legacy` is the configured legacy key when it is enabled:
/// a key of its shape (same length, alphanumeric) is accepted for lookup.
pub fn parse<'a>(key: &'a str, legacy: Option<&str>) -> Option<ParsedKey<'a>> {
    if let Some(rest) = key.strip_prefix(PREFIX) {
        let (user_id, secret) = rest.rsplit_once('_')?;
        let secret_ok = (MIN_SECRET_LEN..=MAX_SECRET_LEN).contains(&secret.len())
            && secret.bytes().all(|b| b.is_ascii_alphanumeric());
        if !secret_ok || !valid_user_id(user_id) {
            return None;
        }
        return Some(ParsedKey {
            user_id,
            secret,
            lookup: Lookup::Prefix(&secret[..LOOKUP_LEN]),
        });
    }
    let legacy = legacy?;
    let legacy_shaped = key.len() == legacy.len()
        && !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_alphanumeric());
    legacy_shaped.then_some(ParsedKey {
        user_id: LEGACY_USER,
        secret: key,
        lookup: Lookup::Legacy,
    })
}

/// `[a-z0-9_-]{1,64}`.
pub fn valid_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Whether `id` is of the form `legacy_lookup_id` makes (generated ids are 12 alphanumerics;
/// these are `legacy` and 8 hex digits, 14 characters).
pub fn is_legacy_lookup_id(id: &str) -> bool {
    id.strip_prefix(LEGACY_LOOKUP_PREFIX)
        .is_some_and(|hex| hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub fn legacy_lookup_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("{LEGACY_LOOKUP_PREFIX}{}", hex::encode(&digest[..4]))
}

/// A new key for `user_id`, with its lookup id and secret.
pub struct NewKey {
    pub key: String,
    pub lookup_id: String,
    pub secret: String,
}

pub fn generate(user_id: &str) -> NewKey {
    let secret = Alphanumeric.sample_string(&mut rand::rngs::OsRng, SECRET_LEN);
    NewKey {
        key: format!("{PREFIX}{user_id}_{secret}"),
        lookup_id: secret[..LOOKUP_LEN].to_string(),
        secret,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = "a8e77f84e2729dc6728889d4be31b123";

    #[test]
    fn generated_keys_parse_back_for_every_kind_of_user_id() {
        for user in ["user_123", "a", "acme-corp_eu-1", &"x".repeat(64)] {
            let new = generate(user);
            let parsed = parse(&new.key, None).expect("well-formed");
            assert_eq!(parsed.user_id, user);
            assert_eq!(parsed.secret, new.secret);
            assert_eq!(parsed.lookup_id(), new.lookup_id);
            assert_eq!(new.secret.len(), SECRET_LEN);
            assert!(!new.secret.contains('_'));
        }
        assert_ne!(generate("u").secret, generate("u").secret);
    }

    #[test]
    fn malformed_keys_are_refused() {
        let secret = "A".repeat(SECRET_LEN);
        for bad in [
            String::new(),
            "imgproxy_".into(),
            format!("imgproxy__{secret}"),
            format!("imgproxy_User_{secret}"),
            format!("imgproxy_u_{}", "A".repeat(31)),
            format!("imgproxy_u_{}", "A".repeat(129)),
            format!("imgproxy_u_{}-", "A".repeat(40)),
            format!("imgproxy_{}_{secret}", "u".repeat(65)),
            format!("imgproxy_u {secret}"),
            format!("Imgproxy_u_{secret}"),
        ] {
            assert_eq!(parse(&bad, Some(LEGACY)), None, "{bad}");
        }
    }

    #[test]
    fn the_legacy_key_parses_only_while_enabled() {
        let parsed = parse(LEGACY, Some(LEGACY)).unwrap();
        assert_eq!(parsed.user_id, LEGACY_USER);
        assert_eq!(parsed.lookup_id(), legacy_lookup_id(LEGACY));
        assert_eq!(parsed.lookup_id().len(), 14);
        assert!(parse(LEGACY, None).is_none());
        assert!(parse(&LEGACY[1..], Some(LEGACY)).is_none());
        // Same shape, other key: well-formed, but its lookup id points at no row.
        let other = "b".repeat(32);
        assert_ne!(
            parse(&other, Some(LEGACY)).unwrap().lookup_id(),
            legacy_lookup_id(LEGACY)
        );
    }
}
