//! Everything the services share, built once from the configuration.

use crate::config::{Config, SourceMode};
use crate::imgproxy::{Format, Signer};
use crate::storage::{ImageStore, SourceSigner};
use crate::store::Store;
use crate::upstream::Pool;
use rand::RngCore;
use std::time::Instant;

pub struct AppState {
    pub config: Config,
    pub pool: Pool,
    pub store: Store,
    pub images: ImageStore,
    pub signer: Signer,
    pub source_signer: SourceSigner,
    pub default_format: Format,
    pub started: Instant,
}

impl AppState {
    pub fn build(config: Config) -> Result<AppState, String> {
        let pool = Pool::build(&config)?;
        let signer = Signer::from_hex(
            config.imgproxy.key.as_deref(),
            config.imgproxy.salt.as_deref(),
            config.imgproxy.signature_size,
        )
        .map_err(|e| format!("imgproxy.{e}"))?;
        let secret = match &config.storage.source_secret {
            Some(hex_secret) => {
                hex::decode(hex_secret).map_err(|e| format!("storage.source_secret: {e}"))?
            }
            None => {
                let mut secret = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut secret);
                secret
            }
        };
        let images = ImageStore::open(&config.storage.dir)
            .map_err(|e| format!("storage.dir: cannot use `{}`: {e}", config.storage.dir))?;
        let default_format = Format::parse(&config.imgproxy.default_format)
            .ok_or("imgproxy.default_format: unknown format")?;
        Ok(AppState {
            store: Store::new(config.database.clone()),
            pool,
            images,
            signer,
            source_signer: SourceSigner::new(&secret),
            default_format,
            started: Instant::now(),
            config,
        })
    }

    /// How a backend reaches the stored original `id`.
    pub fn source_url(&self, id: &str, now_unix: u64) -> String {
        match self.config.storage.source {
            SourceMode::Local => format!("local:///{id}"),
            SourceMode::Http => format!(
                "{}{}",
                self.config.storage.source_base_url.trim_end_matches('/'),
                self.source_signer.path(
                    id,
                    now_unix + self.config.storage.source_url_ttl.get().as_secs()
                )
            ),
        }
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
