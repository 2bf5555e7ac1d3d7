//! `imgproxy-gateway user …` and `key …`: the management operations run directly against the
//! configured database, for bootstrap and scripts. Changes reach running instances at once in
//! shared mode (Redis); in embedded mode within `auth.cache_ttl`.

use crate::cli::{KeyCommand, UserCommand};
use crate::config::Config;
use crate::identity::bus::Bus;
use crate::identity::input::{NewKey, NewUser, Rotation, UserPatch};
use crate::identity::manage::Manager;
use crate::identity::model::{Role, Status};
use crate::identity::record::format_time;
use crate::state::authenticator;
use crate::{db, oneshot};
use serde_json::json;
use std::time::Duration;

pub enum Managed {
    User(UserCommand),
    Key(KeyCommand),
}

/// Run one command; the result is printed as JSON.
pub fn run(config: &Config, command: Managed) -> Result<(), String> {
    oneshot::block_on(async {
        let store = db::open_migrated(&config.database).await?;
        let auth = authenticator(config);
        let bus = Bus::new(
            config.redis.client_url(),
            &config.redis.key_prefix,
            config.redis.timeout(),
        );
        bus.connect_publisher()?;
        if !bus.wait_connected(Duration::from_secs(2)).await {
            eprintln!("warning: Redis is unreachable; running instances see this change within auth.cache_ttl");
        }
        let manager = Manager {
            store: &store,
            auth: &auth,
            bus: &bus,
            actor: "cli",
            admin: true,
            request: None,
        };
        let output = execute(&manager, command).await.map_err(|e| e.to_string());
        store.close().await;
        println!(
            "{}",
            serde_json::to_string_pretty(&output?).unwrap_or_default()
        );
        Ok(())
    })?
}

async fn execute(
    m: &Manager<'_>,
    command: Managed,
) -> crate::error::GatewayResult<serde_json::Value> {
    Ok(match command {
        Managed::User(UserCommand::Create {
            id,
            name,
            email,
            role,
            ip_whitelist,
        }) => {
            let role = Role::parse(&role).ok_or_else(|| {
                crate::error::GatewayError::invalid("role", "must be admin, viewer or user")
            })?;
            let (user, key) = m
                .create_user(NewUser {
                    id,
                    name,
                    email,
                    role,
                    ip_whitelist,
                    rate_limits: None,
                    quotas: None,
                })
                .await?;
            json!({"user": user, "api_key": key})
        }
        Managed::User(UserCommand::List) => json!({"users": m.list_users().await?}),
        Managed::User(UserCommand::Suspend { id }) => {
            let patch = UserPatch {
                status: Some(Status::Suspended),
                ..UserPatch::default()
            };
            json!(m.update_user(&id, patch).await?)
        }
        Managed::Key(KeyCommand::Create { user, label }) => json!(
            m.create_key(
                &user,
                NewKey {
                    label,
                    expires_in_seconds: None
                }
            )
            .await?
        ),
        Managed::Key(KeyCommand::Rotate {
            user,
            grace_seconds,
            key_id,
        }) => {
            let rotated = m
                .rotate_key(
                    &user,
                    Rotation {
                        grace_seconds,
                        key_id,
                        expires_in_seconds: None,
                    },
                )
                .await?;
            json!({"new": rotated.new,
                "old": {"id": rotated.old_id, "expires_at": format_time(&rotated.old_expires_at)}})
        }
        Managed::Key(KeyCommand::Revoke { user, key_id }) => {
            json!(m.revoke_key(&user, &key_id).await?)
        }
    })
}
