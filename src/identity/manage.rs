//! Changing users and keys: the operations behind the management API and the CLI. Each change
//! is written to the audit log and invalidates cached identities here and, through the bus, on
//! every other instance.

use super::bus::Bus;
use super::cache::Change;
use super::input::{self, NewKey, NewUser, Rotation, UserPatch};
use super::key;
use super::model::{Role, Status};
use super::record::{format_time, IssuedKey, KeyInfo, User};
use super::verify::Authenticator;
use crate::db::audit::{self, RequestIds};
use crate::db::keys::{KeyCaps, OverCap};
use crate::db::users::UserFilter;
use crate::db::{keys, users, Store};
use crate::error::{GatewayError, GatewayResult};
use chrono::{DateTime, Duration, Utc};
use entity::api_keys;
use serde_json::json;

/// Live keys one user may hold at once.
pub const MAX_LIVE_KEYS: usize = 10;
/// Keys one user may be issued (created or rotated) per hour.
pub const MAX_KEYS_PER_HOUR: u64 = 20;
pub const DEFAULT_LABEL: &str = "primary";

pub struct Manager<'a> {
    pub store: &'a Store,
    pub auth: &'a Authenticator,
    pub bus: &'a Bus,
    /// Who makes the change: a user id, or `cli`.
    pub actor: &'a str,
    /// The actor is an admin (or the operator at the CLI): may give a rotated key a lifetime
    /// of its own.
    pub admin: bool,
    pub request: Option<&'a RequestIds>,
}

pub struct Rotated {
    pub new: IssuedKey,
    pub old_id: String,
    pub old_expires_at: DateTime<Utc>,
}

fn no_user(id: &str) -> GatewayError {
    GatewayError::NotFound(format!("no user `{id}`"))
}

impl Manager<'_> {
    pub async fn list_users(&self) -> GatewayResult<Vec<User>> {
        users::list(self.store)
            .await?
            .into_iter()
            .map(|row| User::from_row(row).map_err(GatewayError::Internal))
            .collect()
    }

    /// One page of users by `filter`, and the cursor of the next page (`None` on the last).
    pub async fn page_users(
        &self,
        filter: &UserFilter,
    ) -> GatewayResult<(Vec<User>, Option<String>)> {
        let mut rows = users::page(self.store, filter).await?;
        let next = if rows.len() as u64 > filter.limit {
            rows.truncate(filter.limit as usize);
            rows.last().map(|r| r.id.clone())
        } else {
            None
        };
        let users = rows
            .into_iter()
            .map(|row| User::from_row(row).map_err(GatewayError::Internal))
            .collect::<GatewayResult<Vec<_>>>()?;
        Ok((users, next))
    }

    pub async fn get_user(&self, id: &str) -> GatewayResult<User> {
        let row = users::find(self.store, id)
            .await?
            .ok_or_else(|| no_user(id))?;
        User::from_row(row).map_err(GatewayError::Internal)
    }

    /// A user that can still be changed (not deleted).
    async fn live_user(&self, id: &str) -> GatewayResult<User> {
        let user = self.get_user(id).await?;
        if user.status == Status::Deleted {
            return Err(GatewayError::Conflict(format!("user `{id}` is deleted")));
        }
        Ok(user)
    }

    pub async fn create_user(&self, new: NewUser) -> GatewayResult<(User, IssuedKey)> {
        new.validate()?;
        let now = Utc::now();
        let user = User {
            id: new.id,
            name: new.name.trim().to_string(),
            email: new.email,
            role: new.role,
            status: Status::Active,
            ip_whitelist: new.ip_whitelist,
            rate_limits: new.rate_limits,
            quotas: new.quotas,
            created_at: now,
            updated_at: now,
        };
        if !users::insert_new(self.store, user.to_row()).await? {
            return Err(GatewayError::Conflict(format!(
                "a user with id `{}` exists",
                user.id
            )));
        }
        let key = self.issue(&user.id, DEFAULT_LABEL, None).await?;
        self.record(
            "user.create",
            &user.id,
            json!({"user": &user, "key_id": key.id}),
            Change::User(user.id.clone()),
        )
        .await;
        Ok((user, key))
    }

    pub async fn update_user(&self, id: &str, patch: UserPatch) -> GatewayResult<User> {
        patch.validate()?;
        let locks_out = patch.status.is_some_and(|s| s != Status::Active)
            || patch.role.is_some_and(|r| r != Role::Admin);
        if id == self.actor && self.admin && locks_out {
            // The last admin could otherwise leave nobody able to undo it.
            return Err(GatewayError::Conflict(
                "an admin cannot suspend, delete or demote itself; another admin can".into(),
            ));
        }
        let before = self.live_user(id).await?;
        let mut user = before.clone();
        if let Some(name) = patch.name {
            user.name = name.trim().to_string();
        }
        if let Some(email) = patch.email {
            user.email = email;
        }
        if let Some(role) = patch.role {
            user.role = role;
        }
        if let Some(whitelist) = patch.ip_whitelist {
            user.ip_whitelist = whitelist;
        }
        if let Some(limits) = patch.rate_limits {
            user.rate_limits = limits;
        }
        if let Some(quotas) = patch.quotas {
            user.quotas = quotas;
        }
        let deleting = patch.status == Some(Status::Deleted);
        if let Some(status) = patch.status {
            user.status = status;
        }
        user.updated_at = Utc::now();
        let user = User::from_row(users::save(self.store, user.to_row()).await?)
            .map_err(GatewayError::Internal)?;
        if deleting {
            keys::revoke(self.store, id, None, user.updated_at).await?;
        }
        self.record(
            "user.update",
            id,
            json!({"before": before, "after": &user}),
            Change::User(id.to_string()),
        )
        .await;
        Ok(user)
    }

    /// Soft delete: the record stays (status `deleted`), every key is revoked.
    pub async fn delete_user(&self, id: &str) -> GatewayResult<User> {
        self.update_user(
            id,
            UserPatch {
                status: Some(Status::Deleted),
                ..UserPatch::default()
            },
        )
        .await
    }

    pub async fn list_keys(&self, user_id: &str) -> GatewayResult<Vec<KeyInfo>> {
        self.get_user(user_id).await?;
        let now = Utc::now();
        Ok(keys::of_user(self.store, user_id)
            .await?
            .into_iter()
            .map(|row| KeyInfo::from_row(row, now))
            .collect())
    }

    pub async fn create_key(&self, user_id: &str, new: NewKey) -> GatewayResult<IssuedKey> {
        new.validate()?;
        self.live_user(user_id).await?;
        let _issuing = self.auth.issuing.lock(user_id).await;
        let expires_at = new
            .expires_in_seconds
            .map(|s| Utc::now() + Duration::seconds(s as i64));
        let label = new.label.as_deref().unwrap_or(DEFAULT_LABEL);
        let key = self.issue(user_id, label, expires_at).await?;
        self.record(
            "key.create",
            user_id,
            json!({"key_id": key.id, "label": key.label,
                "expires_at": key.expires_at.as_ref().map(format_time)}),
            Change::User(user_id.to_string()),
        )
        .await;
        Ok(key)
    }

    /// A new key with the old one's label; the old one lives until its grace period ends.
    /// The new key never outlives the old one unless an admin gives it its own lifetime.
    pub async fn rotate_key(&self, user_id: &str, rotation: Rotation) -> GatewayResult<Rotated> {
        rotation.validate()?;
        if rotation.expires_in_seconds.is_some() && !self.admin {
            return Err(GatewayError::Forbidden(
                "only an admin may give a rotated key a lifetime of its own".into(),
            ));
        }
        self.live_user(user_id).await?;
        let _issuing = self.auth.issuing.lock(user_id).await;
        let live: Vec<KeyInfo> = self
            .list_keys(user_id)
            .await?
            .into_iter()
            .filter(KeyInfo::live)
            .collect();
        let old = match &rotation.key_id {
            Some(id) => live.iter().find(|k| &k.id == id).ok_or_else(|| {
                GatewayError::invalid("key_id", format!("`{id}` is not a live key of this user"))
            })?,
            None => pick_rotated(&live)?,
        };
        let grace = rotation
            .grace_seconds
            .unwrap_or(input::DEFAULT_GRACE_SECONDS);
        let now = Utc::now();
        let until = (now + Duration::seconds(grace as i64))
            .min(old.expires_at.unwrap_or(DateTime::<Utc>::MAX_UTC));
        let expires_at = match rotation.expires_in_seconds {
            Some(s) => Some(now + Duration::seconds(s as i64)),
            None => old.expires_at,
        };
        let new = self.issue(user_id, &old.label, expires_at).await?;
        keys::expire(self.store, &old.id, until).await?;
        self.record(
            "key.rotate",
            user_id,
            json!({"old_key_id": old.id, "new_key_id": new.id, "grace_seconds": grace,
                "old_expires_at": format_time(&until)}),
            Change::Key(old.id.clone()),
        )
        .await;
        Ok(Rotated {
            new,
            old_id: old.id.clone(),
            old_expires_at: until,
        })
    }

    pub async fn revoke_key(&self, user_id: &str, key_id: &str) -> GatewayResult<KeyInfo> {
        self.get_user(user_id).await?;
        let now = Utc::now();
        if keys::revoke(self.store, user_id, Some(key_id), now).await? == 0 {
            return Err(GatewayError::NotFound(format!(
                "no live key `{key_id}` for user `{user_id}`"
            )));
        }
        self.record(
            "key.revoke",
            user_id,
            json!({"key_id": key_id}),
            Change::Key(key_id.to_string()),
        )
        .await;
        let row = keys::find(self.store, key_id)
            .await?
            .ok_or_else(|| GatewayError::Internal("revoked key vanished".into()))?;
        Ok(KeyInfo::from_row(row, now))
    }

    /// Hash a fresh secret and store it, within the user's live-key cap and hourly issuance
    /// limit (the caller holds the user's issuing lock).
    async fn issue(
        &self,
        user_id: &str,
        label: &str,
        expires_at: Option<DateTime<Utc>>,
    ) -> GatewayResult<IssuedKey> {
        let new = key::generate(user_id);
        let hash = self
            .auth
            .hasher()
            .hash(&new.secret)
            .await
            .map_err(GatewayError::from)?;
        let now = Utc::now();
        let row = api_keys::Model {
            id: new.lookup_id.clone(),
            user_id: user_id.to_string(),
            label: label.to_string(),
            hash,
            created_at: now,
            expires_at,
            revoked_at: None,
            last_used_at: None,
        };
        let caps = KeyCaps {
            live: MAX_LIVE_KEYS as u64,
            per_hour: MAX_KEYS_PER_HOUR,
        };
        match keys::insert_capped(self.store, row, caps, now).await? {
            Ok(()) => Ok(IssuedKey {
                id: new.lookup_id,
                key: new.key,
                label: label.to_string(),
                created_at: now,
                expires_at,
            }),
            Err(OverCap::Live(_)) => Err(GatewayError::Conflict(format!(
                "user `{user_id}` already has {MAX_LIVE_KEYS} live keys (rotated keys count until their grace ends); revoke one first"
            ))),
            Err(OverCap::Recent(oldest)) => Err(GatewayError::RateLimited {
                limit_type: "key_issuance",
                retry_after: (oldest + Duration::hours(1) - now).num_seconds().max(1) as u64,
            }),
        }
    }

    /// Audit the change and make every instance forget what it invalidates.
    async fn record(&self, action: &str, target: &str, detail: serde_json::Value, change: Change) {
        self.auth.invalidate(&change);
        self.bus.publish(&change).await;
        self.audit(action, target, detail).await;
    }

    /// Write an audit entry (and its log line) for a change made by `actor`.
    pub async fn audit(&self, action: &str, target: &str, detail: serde_json::Value) {
        let entry = audit::Entry {
            actor: self.actor,
            action,
            target,
            detail: detail.clone(),
            request: self.request,
        };
        if let Err(e) = audit::append(self.store, entry).await {
            log::error!(
                "{}",
                json!({"event": "audit_write_failed", "action": action, "target": target, "error": e.to_string()})
            );
        }
        log::info!(
            "{}",
            json!({"event": "admin_change", "actor": self.actor, "action": action,
                "target": target,
                "request_id": self.request.map(|r| r.gateway.as_str()),
                "client_request_id": self.request.and_then(|r| r.client.as_deref())})
        );
    }
}

/// Without an explicit `key_id`: the live `primary` key that is not already expiring, else the
/// only live key.
fn pick_rotated(live: &[KeyInfo]) -> GatewayResult<&KeyInfo> {
    let steady: Vec<&KeyInfo> = live.iter().filter(|k| k.expires_at.is_none()).collect();
    if let Some(primary) = steady.iter().find(|k| k.label == DEFAULT_LABEL) {
        return Ok(primary);
    }
    match (steady.as_slice(), live) {
        ([only], _) => Ok(only),
        ([], [only]) => Ok(only),
        ([], []) => Err(GatewayError::Conflict(
            "the user has no live key to rotate".into(),
        )),
        _ => Err(GatewayError::invalid(
            "key_id",
            "the user has several live keys; name the one to rotate",
        )),
    }
}
