//! Databases for tests: a SQLite file, or a fresh PostgreSQL database per test. Under CI
//! (`CI=true`) a test that needs PostgreSQL or Redis fails when the server does not answer;
//! elsewhere it says so on stderr and skips.

use std::time::Duration;

pub const PG_BASE: &str = "postgres://root@127.0.0.1:5432";
pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    pub driver: &'static str,
    pub dsn: String,
    /// Keeps a SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Fail under CI, skip with a note elsewhere.
fn unavailable(what: &str, error: impl std::fmt::Display) -> Option<TestDb> {
    if under_ci() {
        panic!("{what} is required under CI but unreachable: {error}");
    }
    eprintln!("SKIPPED: {what} unreachable ({error}); set CI=true to make this a failure");
    None
}

impl TestDb {
    /// A database the test runs itself (e.g. a private PostgreSQL cluster).
    pub fn at(driver: &'static str, dsn: &str) -> TestDb {
        TestDb {
            driver,
            dsn: dsn.to_string(),
            _dir: None,
        }
    }

    /// `None` only outside CI when the server is unreachable.
    pub async fn new(engine: Engine) -> Option<TestDb> {
        match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                Some(TestDb {
                    driver: "sqlite",
                    dsn: format!("sqlite://{}/gateway.db?mode=rwc", dir.path().display()),
                    _dir: Some(dir),
                })
            }
            Engine::Postgres => {
                use sea_orm::ConnectionTrait;
                let admin = tokio::time::timeout(
                    Duration::from_secs(5),
                    sea_orm::Database::connect(format!("{PG_BASE}/postgres")),
                )
                .await;
                let admin = match admin {
                    Ok(Ok(db)) => db,
                    Ok(Err(e)) => return unavailable("PostgreSQL at 127.0.0.1:5432", e),
                    Err(_) => return unavailable("PostgreSQL at 127.0.0.1:5432", "timeout"),
                };
                let name = format!("gw_test_{:016x}", rand::random::<u64>());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create a test database");
                let _ = admin.close().await;
                Some(TestDb {
                    driver: "postgres",
                    dsn: format!("{PG_BASE}/{name}"),
                    _dir: None,
                })
            }
        }
    }
}

/// Whether Redis answers; under CI it must.
pub async fn redis_available() -> bool {
    let probe = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect("127.0.0.1:6379").await?;
        s.write_all(b"PING\r\n").await?;
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).await?;
        Ok::<_, std::io::Error>(&buf == b"+PONG\r\n")
    };
    match tokio::time::timeout(Duration::from_secs(3), probe).await {
        Ok(Ok(true)) => true,
        other => {
            let e = format!("{other:?}");
            unavailable("Redis at 127.0.0.1:6379", e);
            false
        }
    }
}
