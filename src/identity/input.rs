//! Management API inputs: strict JSON (unknown fields refused) and range checks, each failure a
//! 400 that names the field.

use super::key::valid_user_id;
use super::model::{QuotaOverride, RateLimitOverride, Role, Status, Whitelist};
use crate::error::{GatewayError, GatewayResult};
use serde::de::DeserializeOwned;
use serde::Deserialize;

const MAX_WHITELIST: usize = 256;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: Role,
    #[serde(default)]
    pub ip_whitelist: Vec<String>,
    #[serde(default)]
    pub rate_limits: Option<RateLimitOverride>,
    #[serde(default)]
    pub quotas: Option<QuotaOverride>,
}

/// Any subset of the writable fields; `rate_limits`/`quotas` set to `null` clear an override.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub name: Option<String>,
    pub email: Option<String>,
    pub role: Option<Role>,
    pub status: Option<Status>,
    pub ip_whitelist: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    pub rate_limits: Option<Option<RateLimitOverride>>,
    #[serde(default, deserialize_with = "present")]
    pub quotas: Option<Option<QuotaOverride>>,
}

/// Tells a field set to `null` (`Some(None)`) from one left out (`None`).
fn present<'de, T: Deserialize<'de>, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub label: Option<String>,
    /// Seconds until the key stops working; unset means never.
    pub expires_in_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    /// How long the old key keeps working; 0 ends it at once.
    pub grace_seconds: Option<u64>,
    /// Which key to rotate; by default the live key labelled `primary`, else the only live key.
    pub key_id: Option<String>,
    /// Admins only: the new key's own lifetime. Unset, the new key expires when the old one
    /// would have (never, if it had no expiry).
    pub expires_in_seconds: Option<u64>,
}

/// Longest key lifetime one can ask for (ten years).
pub const MAX_EXPIRES_IN_SECONDS: u64 = 10 * 365 * 24 * 3600;
pub const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;
pub const DEFAULT_GRACE_SECONDS: u64 = 24 * 3600;

/// Parse a JSON body; an empty body is `{}`.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> GatewayResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(GatewayError::invalid("body", "must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        let field = match path.as_str() {
            "." | "?" => unknown_field(&message).unwrap_or_else(|| "body".into()),
            _ => path,
        };
        GatewayError::invalid(field, strip_position(&message))
    })
}

/// serde's "unknown field `x`, expected ..." names the field only in its text.
fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest[..rest.find('`')?].to_string())
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

pub fn check_user_id(id: &str) -> GatewayResult<()> {
    if valid_user_id(id) {
        Ok(())
    } else {
        Err(GatewayError::invalid(
            "id",
            "must be 1-64 characters of a-z, 0-9, `_` and `-`",
        ))
    }
}

pub fn check_name(name: &str) -> GatewayResult<()> {
    let n = name.trim().chars().count();
    if (1..=200).contains(&n) && !name.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(GatewayError::invalid(
            "name",
            "must be 1-200 printable characters",
        ))
    }
}

pub fn check_email(email: &str) -> GatewayResult<()> {
    let ok = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && !domain.contains('@')
                && domain.contains('.')
                && domain.split('.').all(|label| {
                    !label.is_empty() && !label.starts_with('-') && !label.ends_with('-')
                })
        });
    if ok {
        Ok(())
    } else {
        Err(GatewayError::invalid(
            "email",
            format!("`{email}` is not an email address"),
        ))
    }
}

pub fn check_whitelist(entries: &[String]) -> GatewayResult<()> {
    if entries.len() > MAX_WHITELIST {
        return Err(GatewayError::invalid(
            "ip_whitelist",
            format!("at most {MAX_WHITELIST} entries"),
        ));
    }
    for (i, entry) in entries.iter().enumerate() {
        Whitelist::parse(std::slice::from_ref(entry))
            .map_err(|e| GatewayError::invalid(format!("ip_whitelist[{i}]"), e))?;
    }
    Ok(())
}

fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &'static str,
    value: Option<T>,
    min: T,
    max: T,
) -> GatewayResult<()> {
    match value {
        Some(v) if v < min || v > max => Err(GatewayError::invalid(
            field,
            format!("must be between {min} and {max} (got {v})"),
        )),
        _ => Ok(()),
    }
}

pub fn check_rate_limits(limits: &RateLimitOverride) -> GatewayResult<()> {
    check_range(
        "rate_limits.requests_per_minute",
        limits.requests_per_minute,
        1,
        1_000_000,
    )?;
    check_range(
        "rate_limits.requests_per_hour",
        limits.requests_per_hour,
        1,
        60_000_000,
    )
}

pub fn check_quotas(quotas: &QuotaOverride) -> GatewayResult<()> {
    check_range(
        "quotas.monthly_requests",
        quotas.monthly_requests,
        0,
        1_000_000_000_000,
    )?;
    check_range(
        "quotas.monthly_bandwidth_mb",
        quotas.monthly_bandwidth_mb,
        0,
        1_000_000_000,
    )?;
    check_range(
        "quotas.storage_quota_mb",
        quotas.storage_quota_mb,
        0,
        1_000_000_000,
    )?;
    check_range("quotas.reset_day", quotas.reset_day, 1, 28)
}

pub fn check_label(label: &str) -> GatewayResult<()> {
    let ok = (1..=32).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(GatewayError::invalid(
            "label",
            "must be 1-32 characters of a-z, 0-9, `_` and `-`",
        ))
    }
}

impl NewUser {
    pub fn validate(&self) -> GatewayResult<()> {
        check_user_id(&self.id)?;
        check_name(&self.name)?;
        check_email(&self.email)?;
        check_whitelist(&self.ip_whitelist)?;
        self.rate_limits
            .as_ref()
            .map(check_rate_limits)
            .transpose()?;
        self.quotas.as_ref().map(check_quotas).transpose()?;
        Ok(())
    }
}

impl UserPatch {
    pub fn validate(&self) -> GatewayResult<()> {
        self.name.as_deref().map(check_name).transpose()?;
        self.email.as_deref().map(check_email).transpose()?;
        self.ip_whitelist
            .as_deref()
            .map(check_whitelist)
            .transpose()?;
        if let Some(Some(limits)) = &self.rate_limits {
            check_rate_limits(limits)?;
        }
        if let Some(Some(quotas)) = &self.quotas {
            check_quotas(quotas)?;
        }
        Ok(())
    }
}

impl NewKey {
    pub fn validate(&self) -> GatewayResult<()> {
        self.label.as_deref().map(check_label).transpose()?;
        check_range(
            "expires_in_seconds",
            self.expires_in_seconds,
            1,
            MAX_EXPIRES_IN_SECONDS,
        )
    }
}

impl Rotation {
    pub fn validate(&self) -> GatewayResult<()> {
        check_range("grace_seconds", self.grace_seconds, 0, MAX_GRACE_SECONDS)?;
        check_range(
            "expires_in_seconds",
            self.expires_in_seconds,
            1,
            MAX_EXPIRES_IN_SECONDS,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(err: GatewayError) -> String {
        err.field().expect("names a field").to_string()
    }

    fn new_user(json: &str) -> GatewayResult<NewUser> {
        let user: NewUser = parse(json.as_bytes())?;
        user.validate()?;
        Ok(user)
    }

    #[test]
    fn a_valid_user_passes() {
        let user = new_user(
            r#"{"id":"user_123","name":"Ann","email":"ann@example.com","role":"user",
                "ip_whitelist":["10.0.0.0/8","2001:db8::1"],
                "rate_limits":{"requests_per_minute":60},"quotas":{"reset_day":28}}"#,
        )
        .unwrap();
        assert_eq!(user.role, Role::User);
        assert_eq!(user.rate_limits.unwrap().requests_per_hour, None);
    }

    #[test]
    fn every_bad_input_names_its_field() {
        let base = r#""id":"u1","name":"Ann","email":"ann@example.com","role":"user""#;
        for (json, field) in [
            (format!("{{{base},\"colour\":1}}"), "colour"),
            (
                format!("{{{base},\"quotas\":{{\"monthly\":1}}}}"),
                "quotas.monthly",
            ),
            (
                r#"{"id":"U!","name":"A","email":"a@b.co","role":"user"}"#.into(),
                "id",
            ),
            (
                r#"{"id":"u","name":"","email":"a@b.co","role":"user"}"#.into(),
                "name",
            ),
            (
                r#"{"id":"u","name":"A","email":"nope","role":"user"}"#.into(),
                "email",
            ),
            (
                r#"{"id":"u","name":"A","email":"a@b","role":"user"}"#.into(),
                "email",
            ),
            (
                r#"{"id":"u","name":"A","email":"a b@c.io","role":"user"}"#.into(),
                "email",
            ),
            (
                r#"{"id":"u","name":"A","email":"a@b.co","role":"root"}"#.into(),
                "role",
            ),
            (r#"{"id":"u","name":"A","email":"a@b.co"}"#.into(), "body"),
            (
                format!("{{{base},\"ip_whitelist\":[\"10.0.0.1\",\"10.0.0.0/40\"]}}"),
                "ip_whitelist[1]",
            ),
            (
                format!("{{{base},\"rate_limits\":{{\"requests_per_minute\":0}}}}"),
                "rate_limits.requests_per_minute",
            ),
            (
                format!("{{{base},\"quotas\":{{\"reset_day\":29}}}}"),
                "quotas.reset_day",
            ),
            (
                format!("{{{base},\"quotas\":{{\"monthly_requests\":-1}}}}"),
                "quotas.monthly_requests",
            ),
            ("[1]".into(), "body"),
            ("{".into(), "body"),
        ] {
            let err = new_user(&json).expect_err(&json);
            assert_eq!(err.status(), 400, "{json}");
            assert_eq!(field_of(err), field, "{json}");
        }
    }

    #[test]
    fn patches_tell_null_from_absent() {
        let patch: UserPatch = parse(br#"{"rate_limits":null,"status":"suspended"}"#).unwrap();
        assert_eq!(patch.rate_limits, Some(None));
        assert_eq!(patch.quotas, None);
        assert_eq!(patch.status, Some(Status::Suspended));
        let err = parse::<UserPatch>(br#"{"status":"gone"}"#).unwrap_err();
        assert_eq!(field_of(err), "status");
        let rotation: Rotation = parse(b"").unwrap();
        assert_eq!(rotation.grace_seconds, None);
        let err = parse::<Rotation>(br#"{"grace_seconds":9999999999}"#)
            .unwrap()
            .validate()
            .unwrap_err();
        assert_eq!(field_of(err), "grace_seconds");
    }
}
