//! The database: connecting (SQLite or PostgreSQL), migrating, and the handle the services
//! share. The pool is created by the state background service, on a runtime that lives as long
//! as the process, and every call is bounded by `database.timeout`.

pub mod audit;
pub mod images;
pub mod keys;
pub mod usage;
pub mod users;

use crate::config::{DatabaseConfig, DatabaseDriver};
use crate::error::{GatewayError, GatewayResult};
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr,
    EntityTrait,
};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

pub struct Store {
    config: DatabaseConfig,
    db: OnceLock<DatabaseConnection>,
    /// Whether the database answered last: set by each ping, cleared at once by any call
    /// that finds it unavailable (health and readiness read this, never the database).
    up: AtomicBool,
}

impl Store {
    pub fn new(config: DatabaseConfig) -> Store {
        Store {
            config,
            db: OnceLock::new(),
            up: AtomicBool::new(false),
        }
    }

    pub fn driver(&self) -> DatabaseDriver {
        self.config.driver
    }

    fn timeout(&self) -> Duration {
        self.config.timeout.get()
    }

    /// The shared connection, once the state service has opened it.
    pub fn db(&self) -> GatewayResult<&DatabaseConnection> {
        self.db
            .get()
            .ok_or_else(|| GatewayError::NotReady("the database is not connected yet".into()))
    }

    pub fn install(&self, db: DatabaseConnection) {
        let _ = self.db.set(db);
    }

    /// Close the pool (end of a command; the server's pool closes at shutdown).
    pub async fn close(&self) {
        if let Some(db) = self.db.get() {
            let _ = db.clone().close().await;
        }
    }

    /// Run `op` against the database within `database.timeout`.
    pub async fn call<'a, T, F, Fut>(&'a self, op: F) -> GatewayResult<T>
    where
        F: FnOnce(&'a DatabaseConnection) -> Fut,
        Fut: Future<Output = Result<T, DbErr>> + 'a,
    {
        let db = self.db()?;
        match tokio::time::timeout(self.timeout(), op(db)).await {
            Ok(Ok(value)) => {
                // An answer proves the database is back, without waiting for the next ping.
                if !self.up.load(Ordering::Relaxed) {
                    self.up.store(true, Ordering::Relaxed);
                }
                Ok(value)
            }
            Ok(Err(e)) => {
                log::error!(
                    "{}",
                    serde_json::json!({"event": "database_error", "error": e.to_string()})
                );
                if is_unavailable(&e) {
                    self.up.store(false, Ordering::Relaxed);
                    Err(GatewayError::NotReady("the database is unavailable".into()))
                } else {
                    Err(GatewayError::Internal("database error".into()))
                }
            }
            Err(_) => {
                self.up.store(false, Ordering::Relaxed);
                Err(GatewayError::NotReady(
                    "the database did not answer in time".into(),
                ))
            }
        }
    }

    /// Whether the database answers a trivial query now (remembered for `is_up`).
    pub async fn ping(&self) -> bool {
        let up = self
            .call(|db| async move { db.execute_unprepared("SELECT 1").await.map(|_| ()) })
            .await
            .is_ok();
        self.up.store(up, Ordering::Relaxed);
        up
    }

    /// The database as of the last ping or call, without asking it.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }
}

/// Whether `e` says the database cannot be reached (down, restarting, connections lost), a
/// 503 worth retrying, rather than a failed statement.
fn is_unavailable(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    use sea_orm::RuntimeErr;
    match e {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(inner)) | DbErr::Query(RuntimeErr::SqlxError(inner)) => {
            match inner.as_ref() {
                Sqlx::Io(_)
                | Sqlx::Tls(_)
                | Sqlx::Protocol(_)
                | Sqlx::PoolTimedOut
                | Sqlx::PoolClosed
                | Sqlx::WorkerCrashed => true,
                // PostgreSQL's connection exceptions (08…) and operator intervention (57P…:
                // shutting down, starting up).
                Sqlx::Database(db) => db
                    .code()
                    .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
                _ => false,
            }
        }
        _ => false,
    }
}

/// Insert `row` unless its primary key `key` is taken, without an error either way (instances
/// racing to create the same row converge); whether this call inserted it.
pub async fn insert_if_absent<A>(
    store: &Store,
    row: A,
    key: <A::Entity as EntityTrait>::Column,
) -> GatewayResult<bool>
where
    A: ActiveModelTrait + Send + 'static,
{
    store
        .call(|db| async move {
            let inserted = <A::Entity as EntityTrait>::insert(row)
                .on_conflict(OnConflict::column(key).do_nothing().to_owned())
                .exec_without_returning(db)
                .await?;
            Ok(inserted == 1)
        })
        .await
}

/// Migrate, then a store over the migration's connection (for commands and bootstrap).
pub async fn open_migrated(config: &DatabaseConfig) -> Result<Store, String> {
    let db = migrate(config)
        .await
        .map_err(|e| format!("database ({}): {e}", crate::config::redacted(&config.dsn)))?;
    let store = Store::new(config.clone());
    store.install(db);
    Ok(store)
}

/// Open a pool as configured; for SQLite the file's directory is created first.
pub async fn connect(config: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    open(config, *config.max_connections).await
}

async fn open(config: &DatabaseConfig, connections: u32) -> Result<DatabaseConnection, DbErr> {
    if config.driver == DatabaseDriver::Sqlite {
        if let Some(dir) = sqlite_dir(&config.dsn) {
            std::fs::create_dir_all(&dir)
                .map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
        }
    }
    let mut options = ConnectOptions::new(config.dsn.clone());
    options
        .max_connections(connections)
        .min_connections(1)
        .connect_timeout(config.timeout.get())
        .acquire_timeout(config.timeout.get())
        .sqlx_logging(false);
    Database::connect(options).await
}

/// Session-level PostgreSQL advisory lock that serializes migrations of instances starting
/// together (concurrent `CREATE TABLE IF NOT EXISTS` collide in PostgreSQL's catalog).
const MIGRATION_LOCK: i64 = 0x696d_6770_7277_6179;

/// Connect over a single connection and apply every pending migration; on PostgreSQL one
/// instance at a time. The connection is returned for bootstrap work.
pub async fn migrate(config: &DatabaseConfig) -> Result<DatabaseConnection, DbErr> {
    let db = open(config, 1).await?;
    let postgres = config.driver == DatabaseDriver::Postgres;
    if postgres {
        db.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
            .await?;
    }
    let applied = Migrator::up(&db, None).await;
    if postgres {
        db.execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
            .await?;
    }
    applied.map(|()| db)
}

fn sqlite_dir(dsn: &str) -> Option<std::path::PathBuf> {
    let rest = dsn
        .strip_prefix("sqlite://")
        .or_else(|| dsn.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path.starts_with(':') {
        return None;
    }
    std::path::Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(|p| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_directories() {
        assert_eq!(
            sqlite_dir("sqlite://data/gateway.db?mode=rwc"),
            Some("data".into())
        );
        assert_eq!(
            sqlite_dir("sqlite:///var/lib/g/x.db"),
            Some("/var/lib/g".into())
        );
        assert_eq!(sqlite_dir("sqlite::memory:"), None);
        assert_eq!(sqlite_dir("sqlite://x.db"), None);
    }

    #[tokio::test]
    async fn migrations_apply_twice_and_images_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let config = DatabaseConfig {
            dsn: format!("sqlite://{}/t.db?mode=rwc", dir.path().display()),
            ..DatabaseConfig::default()
        };
        migrate(&config).await.unwrap();
        let store = Store::new(config.clone());
        store.install(migrate(&config).await.unwrap());
        assert!(store.ping().await);
        let id = crate::uploads::new_image_id();
        images::insert(&store, &id, "legacy", "image/jpeg", 42)
            .await
            .unwrap();
        let found = images::find(&store, &id).await.unwrap().unwrap();
        assert_eq!((found.owner.as_str(), found.size_bytes), ("legacy", 42));
        assert!(images::delete(&store, &id).await.unwrap());
        assert!(images::find(&store, &id).await.unwrap().is_none());
    }
}
