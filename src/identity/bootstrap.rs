//! The legacy key of the single-user program becomes an `admin` user on first start. Both
//! inserts are "if absent", so restarts and instances starting together converge on one user
//! and one key.

use super::hasher::Hasher;
use super::key::{is_legacy_lookup_id, legacy_lookup_id, LEGACY_USER};
use super::model::{Role, Status};
use super::record::User;
use crate::config::LegacyConfig;
use crate::db::{audit, keys, users, Store};
use crate::error::GatewayResult;
use chrono::Utc;
use entity::api_keys;
use serde_json::json;

const LEGACY_LABEL: &str = "legacy";

pub async fn legacy_user(
    store: &Store,
    hasher: &Hasher,
    legacy: &LegacyConfig,
) -> GatewayResult<()> {
    if !legacy.enabled {
        return Ok(());
    }
    let now = Utc::now();
    let user = User {
        id: LEGACY_USER.into(),
        name: "Legacy single-user client".into(),
        email: "legacy@imgproxy-gateway.invalid".into(),
        role: Role::Admin,
        status: Status::Active,
        ip_whitelist: Vec::new(),
        rate_limits: None,
        quotas: None,
        created_at: now,
        updated_at: now,
    };
    if users::insert_new(store, user.to_row()).await? {
        note(store, "user.create", json!({"user": user})).await;
    }
    let id = legacy_lookup_id(&legacy.api_key);
    retire_replaced_keys(store, &id).await?;
    if keys::find(store, &id).await?.is_some() {
        return Ok(());
    }
    let hash = hasher.hash(&legacy.api_key).await?;
    let row = api_keys::Model {
        id: id.clone(),
        user_id: LEGACY_USER.into(),
        label: LEGACY_LABEL.into(),
        hash,
        created_at: now,
        expires_at: None,
        revoked_at: None,
        last_used_at: None,
    };
    if keys::insert_new(store, row).await? {
        note(
            store,
            "key.create",
            json!({"key_id": id, "label": "legacy"}),
        )
        .await;
    }
    Ok(())
}

/// Whether the configured legacy key would be accepted now (enabled, neither revoked nor
/// expired, e.g. by a rotation). Unknown (a database error) counts as live.
pub async fn legacy_key_live(store: &Store, legacy: &LegacyConfig) -> bool {
    if !legacy.enabled {
        return false;
    }
    match keys::find(store, &legacy_lookup_id(&legacy.api_key)).await {
        Ok(Some(row)) => {
            row.revoked_at.is_none() && row.expires_at.is_none_or(|at| at > Utc::now())
        }
        Ok(None) => false,
        Err(_) => true,
    }
}

/// An operator who changes `legacy.api_key` expects the previous value to stop working.
async fn retire_replaced_keys(store: &Store, current: &str) -> GatewayResult<()> {
    let now = Utc::now();
    for old in keys::of_user(store, LEGACY_USER).await? {
        // Only keys this bootstrap made from an earlier `legacy.api_key` (their ids derive
        // from it); a key issued by rotating the legacy key is the user's, and stays.
        let replaced = old.label == LEGACY_LABEL
            && is_legacy_lookup_id(&old.id)
            && old.id != current
            && old.revoked_at.is_none();
        if replaced && keys::revoke(store, LEGACY_USER, Some(&old.id), now).await? > 0 {
            note(
                store,
                "key.revoke",
                json!({"key_id": old.id, "reason": "legacy.api_key changed"}),
            )
            .await;
        }
    }
    Ok(())
}

async fn note(store: &Store, action: &str, detail: serde_json::Value) {
    log::info!(
        "{}",
        json!({"event": "legacy_migrated", "action": action, "user_id": LEGACY_USER})
    );
    let entry = audit::Entry {
        actor: "bootstrap",
        action,
        target: LEGACY_USER,
        detail,
        request: None,
    };
    if let Err(e) = audit::append(store, entry).await {
        log::error!(
            "{}",
            json!({"event": "audit_write_failed", "error": e.to_string()})
        );
    }
}
