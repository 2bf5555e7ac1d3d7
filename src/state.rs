//! Everything the services share, built once from the configuration.

use crate::client_ip::TrustedProxies;
use crate::config::{Config, SourceMode};
use crate::db::Store;
use crate::drain::Drain;
use crate::identity::bus::Bus;
use crate::identity::cache::CacheLimits;
use crate::identity::hasher::Hasher;
use crate::identity::Authenticator;
use crate::imgproxy::resolve::SourceResolver;
use crate::imgproxy::Signer;
use crate::limits::{thresholds, Limits};
use crate::listen::Listeners;
use crate::metrics::Metrics;
use crate::tls::Certificates;
use crate::uploads::{ImageStore, SourceSigner};
use crate::upstream::Pool;
use arc_swap::ArcSwap;
use rand::RngCore;
use std::sync::Arc;
use std::time::Instant;

pub struct AppState {
    /// The configuration in effect (a reload swaps it; see `config::live`).
    config: ArcSwap<Config>,
    pub pool: Pool,
    pub store: Store,
    pub images: ImageStore,
    pub signer: Signer,
    pub source_signer: SourceSigner,
    pub auth: Arc<Authenticator>,
    pub bus: Bus,
    pub trusted_proxies: TrustedProxies,
    /// Source host names to addresses, for the convert source check.
    pub resolver: SourceResolver,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// The quota webhook sender, taken by the state service that runs it.
    pub webhook: std::sync::Mutex<Option<thresholds::Sender>>,
    /// Where the listeners are (the ports in use, also when the configuration said 0).
    pub listeners: Listeners,
    pub started: Instant,
    /// Set once the process is handing over or stopping: answers then close their connection.
    pub drain: Drain,
    /// The listeners' certificate when `tls.enabled` (reloaded on SIGHUP).
    pub tls: Option<Arc<Certificates>>,
}

/// The key verifier as configured (also used by the CLI).
pub fn authenticator(config: &Config) -> Authenticator {
    let a = &config.auth;
    Authenticator::new(
        &CacheLimits {
            capacity: *a.cache_capacity,
            ttl: a.cache_ttl.get(),
            negative_ttl: a.negative_ttl.get(),
        },
        Hasher::new(*a.bcrypt_cost, a.hash_slots(), a.hash_wait.get()),
        config.legacy.enabled.then(|| config.legacy.api_key.clone()),
    )
}

impl AppState {
    pub fn build(config: Config, listeners: Listeners) -> Result<AppState, String> {
        let pool = Pool::build(&config)?;
        let signer = match (&config.imgproxy.key, &config.imgproxy.salt) {
            (Some(key), Some(salt)) => {
                Signer::new(key.bytes(), salt.bytes(), *config.imgproxy.signature_size)
            }
            // Validation refuses one without the other.
            _ => Signer::insecure(),
        };
        let secret = match &config.storage.source_secret {
            Some(secret) => secret.bytes().to_vec(),
            None => {
                let mut secret = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut secret);
                secret
            }
        };
        let images = ImageStore::open(&*config.storage.dir)
            .map_err(|e| format!("storage.dir: cannot use `{}`: {e}", config.storage.dir))?;
        let (notifier, webhook) =
            thresholds::Notifier::new(config.quotas.webhook_url.as_deref().map(str::to_string));
        let metrics = Arc::new(Metrics::new());
        let tls = match (&*config.tls.cert, &*config.tls.key) {
            (Some(cert), Some(key)) if config.tls.enabled => {
                Some(Certificates::load(cert, key, config.tls.min_version)?)
            }
            _ => None,
        };
        Ok(AppState {
            limits: Limits::new(&config, notifier, metrics.clone()),
            metrics,
            webhook: std::sync::Mutex::new(webhook),
            store: Store::new(config.database.clone()),
            pool,
            images,
            signer,
            source_signer: SourceSigner::new(&secret),
            auth: Arc::new(authenticator(&config)),
            bus: Bus::new(
                config.redis.client_url(),
                &config.redis.key_prefix,
                config.redis.timeout(),
            ),
            trusted_proxies: TrustedProxies::new(&config.server.trusted_proxies),
            resolver: SourceResolver::default(),
            listeners,
            started: Instant::now(),
            drain: Drain::default(),
            tls,
            config: ArcSwap::from_pointee(config),
        })
    }

    /// The configuration in effect now. The guard is cheap (no shared reference count is
    /// touched, so the request path takes it freely); hold it only briefly.
    pub fn config(&self) -> arc_swap::Guard<Arc<Config>> {
        self.config.load()
    }

    /// Put a reloaded configuration in effect.
    pub fn set_config(&self, config: Config) {
        self.config.store(Arc::new(config));
    }

    /// How a backend reaches the stored original `id`.
    pub fn source_url(&self, id: &str, now_unix: u64) -> String {
        let config = self.config();
        let storage = &config.storage;
        if storage.source == SourceMode::Local {
            return format!("local:///{id}");
        }
        let expires = now_unix + storage.source_url_ttl.get().as_secs();
        let path = self.source_signer.path(id, expires);
        match &storage.source_base_url {
            Some(base) => format!("{}{path}", base.trim_end_matches('/')),
            // Unset: the public listener's own address.
            None => format!(
                "{}{path}",
                self.listeners.public_base_url(self.tls.is_some())
            ),
        }
    }
}

pub fn unix_now() -> u64 {
    since_epoch().as_secs()
}

/// Milliseconds since the Unix epoch (0 for a clock set before it): the rate limiters' clock,
/// read once or twice per request, so straight from the system clock, without a calendar date.
pub fn unix_now_ms() -> u64 {
    since_epoch().as_millis() as u64
}

/// The system clock since the Unix epoch (zero for a clock set before it).
pub fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}
