//! The YAML schema of `conf/gateway.yaml`. Every section has defaults, so an empty file plus a
//! backend list is a valid configuration; unknown keys are rejected.

use super::duration::Span;
use super::values::{BackendUrl, HexSecret, LogFormat, LogLevel, Network, TlsVersion};
use crate::imgproxy::params::Format;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub database: DatabaseConfig,
    pub redis: RedisConfig,
    pub backends: Vec<BackendConfig>,
    pub health_check: HealthCheckConfig,
    pub upstream: UpstreamConfig,
    pub rate_limits: RateLimitsConfig,
    pub quotas: QuotasConfig,
    pub imgproxy: ImgproxyConfig,
    pub storage: StorageConfig,
    pub observability: ObservabilityConfig,
    pub tls: TlsConfig,
    pub legacy: LegacyConfig,
    pub auth: AuthConfig,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address the public listener binds to.
    pub host: String,
    pub port: u16,
    /// How long the gateway waits for a client's request header or the next body chunk.
    pub read_timeout: Span,
    /// How long a write to a client may stall.
    pub write_timeout: Span,
    /// Worker threads of the proxy service; 0 means one per core.
    pub threads: usize,
    /// Peers whose `X-Forwarded-For` is believed (CIDRs or addresses).
    pub trusted_proxies: Vec<Network>,
    /// How long keep-alive connections may idle between requests.
    pub keepalive_timeout: Span,
    /// Seconds the old process keeps serving after a graceful upgrade or shutdown starts.
    pub grace_period: Span,
    /// Hard limit on the whole graceful shutdown.
    pub graceful_shutdown_timeout: Span,
    pub pid_file: String,
    pub upgrade_sock: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "0.0.0.0".into(),
            port: 8080,
            read_timeout: Span::secs(30),
            write_timeout: Span::secs(30),
            threads: 0,
            trusted_proxies: Vec::new(),
            keepalive_timeout: Span::secs(60),
            grace_period: Span::secs(5),
            graceful_shutdown_timeout: Span::secs(10),
            pid_file: "/tmp/imgproxy-gateway.pid".into(),
            upgrade_sock: "/tmp/imgproxy-gateway-upgrade.sock".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: String,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: "127.0.0.1:9090".into(),
            metrics_token: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DatabaseDriver {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub driver: DatabaseDriver,
    /// `sqlite://path?mode=rwc` or `postgres://user@host/db`.
    pub dsn: String,
    pub max_connections: u32,
    /// Upper bound on every database call.
    pub timeout: Span,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            driver: DatabaseDriver::Sqlite,
            dsn: "sqlite://data/gateway.db?mode=rwc".into(),
            max_connections: 8,
            timeout: Span::secs(5),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://127.0.0.1:6379`; unset means embedded mode (in-process counters).
    pub url: Option<String>,
    /// Upper bound on every Redis call, in milliseconds.
    pub timeout_ms: u64,
    /// Instances sharing the limits: while Redis is unreachable each enforces its share
    /// (every rate limit ÷ this).
    pub expected_instances: u64,
    /// Prefix of every Redis key and channel, so deployments can share a Redis.
    pub key_prefix: String,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            timeout_ms: 50,
            expected_instances: 2,
            key_prefix: "imgproxy-gateway:".into(),
        }
    }
}

impl RedisConfig {
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.timeout_ms)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `http://host:port` of an imgproxy server.
    pub url: BackendUrl,
    #[serde(default = "default_weight")]
    pub weight: u32,
    #[serde(default = "default_health_path")]
    pub health_check_path: String,
}

fn default_weight() -> u32 {
    1
}

fn default_health_path() -> String {
    "/health".into()
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    pub interval: Span,
    pub timeout: Span,
    /// Consecutive failed checks that mark a backend unhealthy.
    pub unhealthy_threshold: u32,
    /// Consecutive good checks that bring it back.
    pub healthy_threshold: u32,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            interval: Span::secs(30),
            timeout: Span::secs(5),
            unhealthy_threshold: 3,
            healthy_threshold: 2,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// TCP connect timeout to a backend; past it the request moves to another backend.
    pub connect_timeout: Span,
    /// How long a backend may take to answer (and between body chunks); past it the client gets 504.
    pub response_timeout: Span,
    /// How long an idle upstream keep-alive connection is kept.
    pub idle_timeout: Span,
    /// Upstream keep-alive connections kept per process.
    pub keepalive_pool_size: usize,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout: Span::secs(2),
            response_timeout: Span::secs(60),
            idle_timeout: Span::secs(60),
            keepalive_pool_size: 512,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    pub ip_level: Option<IpLimit>,
    pub user_level: Option<UserLimit>,
    /// Route template (`/api/v1/upload`) → global limit.
    pub api_level: std::collections::BTreeMap<String, ApiLimit>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IpLimit {
    pub requests_per_minute: u32,
    pub burst: u32,
    /// IPv6 clients share one bucket per network of this prefix length (one host usually
    /// holds a whole /64, so per-address buckets would be unlimited).
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: u8,
}

fn default_ipv6_prefix() -> u8 {
    64
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserLimit {
    pub requests_per_minute: u32,
    pub requests_per_hour: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiLimit {
    pub requests_per_minute: u32,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasConfig {
    /// Defaults of every user (per-user overrides win); 0 means unlimited.
    pub monthly_requests: u64,
    pub monthly_bandwidth_mb: u64,
    pub storage_quota_mb: u64,
    /// Day of the month (1–28) on which periods start, at 00:00 UTC.
    pub reset_day: u32,
    /// How often usage counted in this process is written to the database (at most 1 s: a
    /// hard kill loses at most this much).
    pub flush_interval: Span,
    /// POSTed a JSON event when a user reaches 80, 90 and 100 % of a quota.
    pub webhook_url: Option<String>,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        QuotasConfig {
            monthly_requests: 100_000,
            monthly_bandwidth_mb: 10_240,
            storage_quota_mb: 1_024,
            reset_day: 1,
            flush_interval: Span::secs(1),
            webhook_url: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImgproxyConfig {
    /// Hex key and salt of imgproxy's URL signature; both unset means `insecure` URLs.
    pub key: Option<HexSecret>,
    pub salt: Option<HexSecret>,
    /// Bytes of the HMAC kept in the signature (imgproxy's `IMGPROXY_SIGNATURE_SIZE`).
    pub signature_size: usize,
    /// Allow convert sources on loopback addresses (`127/8`, `::1`, `localhost`).
    pub allow_loopback_sources: bool,
    /// Allow convert sources on link-local addresses and cloud metadata services
    /// (`169.254/16`, `fe80::/10`, `metadata.google.internal`…). Never implied by the others.
    pub allow_link_local_sources: bool,
    /// Allow convert sources on private addresses (RFC 1918, `100.64/10`, `fc00::/7`).
    pub allow_private_sources: bool,
    /// Fixed answers for source host names, consulted before DNS (like `/etc/hosts`); the
    /// address checks apply to them as to any other answer.
    pub source_hosts: std::collections::BTreeMap<String, Vec<std::net::IpAddr>>,
    /// Longest wait for a source host name to resolve (then 504).
    pub source_resolve_timeout: Span,
    pub max_source_url_length: usize,
    /// Format of the answer when the client names none.
    pub default_format: Format,
    /// `Cache-Control` of image answers. Unset: `private` with imgproxy's own `max-age`, so
    /// no shared cache (CDN, corporate proxy) serves an authenticated image to anyone else.
    pub cache_control: Option<String>,
}

impl Default for ImgproxyConfig {
    fn default() -> Self {
        ImgproxyConfig {
            key: None,
            salt: None,
            signature_size: 32,
            allow_loopback_sources: false,
            allow_link_local_sources: false,
            allow_private_sources: false,
            source_hosts: Default::default(),
            source_resolve_timeout: Span::secs(2),
            max_source_url_length: 2048,
            default_format: Format::Webp,
            cache_control: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SourceMode {
    /// Backends fetch originals from a signed, expiring URL the gateway serves.
    Http,
    /// Backends read `local://<id>` from a directory they share with the gateway.
    Local,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub dir: String,
    pub max_upload_mb: u64,
    pub source: SourceMode,
    /// How backends reach this gateway's public listener, e.g. `http://10.0.0.5:8080`.
    /// Unset: the public listener's own address (`127.0.0.1` for an unspecified host).
    pub source_base_url: Option<String>,
    /// Lifetime of a signed source URL.
    pub source_url_ttl: Span,
    /// Hex secret that signs source URLs; must be the same on every instance.
    /// Unset: a random secret per process (fine for a single instance).
    pub source_secret: Option<HexSecret>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: "data/images".into(),
            max_upload_mb: 20,
            source: SourceMode::Http,
            source_base_url: None,
            source_url_ttl: Span::secs(300),
            source_secret: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservabilityConfig {
    /// error, warn, info, debug or trace.
    pub log_level: LogLevel,
    /// `json` (one object per line) or `text`.
    pub log_format: LogFormat,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig {
            log_level: LogLevel(log::LevelFilter::Info),
            log_format: LogFormat::Json,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub enabled: bool,
    /// PEM certificate chain and private key; re-read on SIGHUP.
    pub cert: Option<String>,
    pub key: Option<String>,
    /// `"1.3"` (default: a TLS 1.2 client is refused) or `"1.2"`.
    pub min_version: TlsVersion,
    /// Serve the admin listener over TLS too, with the same certificate.
    pub admin: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            cert: None,
            key: None,
            min_version: TlsVersion::V1_3,
            admin: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LegacyConfig {
    /// Accept the single-user program's key so its clients keep working.
    pub enabled: bool,
    pub api_key: String,
}

impl Default for LegacyConfig {
    fn default() -> Self {
        LegacyConfig {
            enabled: true,
            api_key: super::exposure::PUBLISHED_LEGACY_KEY.into(),
        }
    }
}

/// API key storage and verification.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// bcrypt cost of stored keys (each +1 doubles the time of a verification).
    pub bcrypt_cost: u32,
    /// How long a verified key is trusted without looking at the database again.
    pub cache_ttl: Span,
    /// Verified (and, separately, rejected) keys remembered at most.
    pub cache_capacity: u64,
    /// How long an unknown or wrong key is remembered as such.
    pub negative_ttl: Span,
    /// bcrypt verifications running at once; 0 means half the cores (at least one).
    pub hash_concurrency: usize,
    /// How long a request waits for a bcrypt slot before it gets 503.
    pub hash_wait: Span,
    /// How often `last_used_at` of keys in use is written (one statement per flush).
    pub last_used_flush: Span,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            bcrypt_cost: 10,
            cache_ttl: Span::secs(60),
            cache_capacity: 100_000,
            negative_ttl: Span::secs(30),
            hash_concurrency: 0,
            hash_wait: Span::secs(5),
            last_used_flush: Span::secs(10),
        }
    }
}

impl AuthConfig {
    pub fn hash_slots(&self) -> usize {
        if self.hash_concurrency > 0 {
            return self.hash_concurrency;
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        (cores / 2).max(1)
    }
}
