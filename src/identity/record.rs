//! Typed users and key metadata: conversion from and to database rows, and the JSON shapes of
//! docs/openapi.json (fields may be added, never renamed).

use super::model::{QuotaOverride, RateLimitOverride, Role, Status, Whitelist};
use super::snapshot::Identity;
use chrono::{DateTime, SecondsFormat, Utc};
use entity::{api_keys, users};
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub name: String,
    pub email: String,
    pub role: Role,
    pub status: Status,
    pub ip_whitelist: Vec<String>,
    pub rate_limits: Option<RateLimitOverride>,
    pub quotas: Option<QuotaOverride>,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339")]
    pub updated_at: DateTime<Utc>,
}

/// A key as listed: never its secret or hash.
#[derive(Clone, Debug, Serialize)]
pub struct KeyInfo {
    pub id: String,
    pub user_id: String,
    pub label: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// `active`, `expiring` (in a rotation grace), `expired` or `revoked`.
    pub state: &'static str,
}

/// A key right after creation: the only time `key` is ever shown.
#[derive(Clone, Debug, Serialize)]
pub struct IssuedKey {
    pub id: String,
    pub key: String,
    pub label: String,
    #[serde(serialize_with = "rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339_opt")]
    pub expires_at: Option<DateTime<Utc>>,
}

pub fn format_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn rfc3339<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_time(t))
}

fn rfc3339_opt<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

fn corrupt(field: &str, id: &str) -> String {
    format!("stored user `{id}` has an unreadable {field}")
}

impl User {
    pub fn from_row(row: users::Model) -> Result<User, String> {
        let id = row.id;
        let ip_whitelist: Vec<String> =
            column("ip_whitelist", Some(&row.ip_whitelist), &id)?.unwrap_or_default();
        let rate_limits = column("rate_limits", row.rate_limits.as_deref(), &id)?;
        let quotas = column("quotas", row.quotas.as_deref(), &id)?;
        Ok(User {
            role: Role::parse(&row.role).ok_or_else(|| corrupt("role", &id))?,
            status: Status::parse(&row.status).ok_or_else(|| corrupt("status", &id))?,
            name: row.name,
            email: row.email,
            ip_whitelist,
            rate_limits,
            quotas,
            created_at: row.created_at,
            updated_at: row.updated_at,
            id,
        })
    }

    pub fn to_row(&self) -> users::Model {
        users::Model {
            id: self.id.clone(),
            name: self.name.clone(),
            email: self.email.clone(),
            role: self.role.as_str().into(),
            status: self.status.as_str().into(),
            ip_whitelist: to_json(&self.ip_whitelist),
            rate_limits: self.rate_limits.as_ref().map(to_json),
            quotas: self.quotas.as_ref().map(to_json),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// What the pipeline needs to admit requests made with `key`.
    pub fn snapshot(&self, key: &api_keys::Model) -> Result<Identity, String> {
        let whitelist =
            Whitelist::parse(&self.ip_whitelist).map_err(|_| corrupt("ip_whitelist", &self.id))?;
        Ok(Identity::new(
            self.id.clone(),
            key.id.clone(),
            self.role,
            self.status,
            whitelist,
            self.rate_limits.clone(),
            self.quotas.clone(),
            // Rounded up: a key never dies before its stored expiry.
            key.expires_at
                .map(|t| (t.timestamp() + i64::from(t.timestamp_subsec_nanos() > 0)).max(0) as u64),
        ))
    }
}

/// A JSON column; `null` or absent is `None`.
fn column<T: serde::de::DeserializeOwned>(
    field: &str,
    text: Option<&str>,
    id: &str,
) -> Result<Option<T>, String> {
    text.map(serde_json::from_str::<Option<T>>)
        .transpose()
        .map(Option::flatten)
        .map_err(|_| corrupt(field, id))
}

fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

impl KeyInfo {
    pub fn from_row(row: api_keys::Model, now: DateTime<Utc>) -> KeyInfo {
        let state = match (row.revoked_at, row.expires_at) {
            (Some(_), _) => "revoked",
            (None, Some(at)) if at <= now => "expired",
            (None, Some(_)) => "expiring",
            (None, None) => "active",
        };
        KeyInfo {
            id: row.id,
            user_id: row.user_id,
            label: row.label,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
            last_used_at: row.last_used_at,
            state,
        }
    }

    /// Usable now (active or in its grace period).
    pub fn live(&self) -> bool {
        matches!(self.state, "active" | "expiring")
    }
}
