//! The YAML schema of `conf/gateway.yaml`. Every section has defaults, so an empty file plus a
//! backend list is a valid configuration; unknown keys are rejected.

use super::bounded::{Bounded, Positive};
use super::duration::Span;
use super::live::Live;
use super::text::{
    Addresses, DirPath, HeaderText, HostAddr, HostName, HttpUrl, KeyPrefix, ListenAddr, RedisUrl,
    RouteTemplate, UrlPath,
};
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
    pub backends: Live<Vec<BackendConfig>>,
    pub health_check: Live<HealthCheckConfig>,
    pub upstream: UpstreamConfig,
    pub rate_limits: Live<RateLimitsConfig>,
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
    pub host: HostAddr,
    pub port: u16,
    /// How long the gateway waits for the next chunk of a request's body. (A request header is
    /// read before the gateway sees the request, under Pingora's own timeout per read: 60 s on
    /// a new connection, `keepalive_timeout` on a reused one.)
    pub read_timeout: Positive,
    /// How long a write to a client may stall.
    pub write_timeout: Positive,
    /// Worker threads of the proxy service; 0 means one per core.
    pub threads: Bounded<usize, 0, 256>,
    /// Peers whose `X-Forwarded-For` is believed (CIDRs or addresses).
    pub trusted_proxies: Vec<Network>,
    /// How long keep-alive connections may idle between requests.
    pub keepalive_timeout: Positive,
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
            host: HostAddr(std::net::Ipv4Addr::UNSPECIFIED.into()),
            port: 8080,
            read_timeout: Bounded::preset(Span::secs(30)),
            write_timeout: Bounded::preset(Span::secs(30)),
            threads: Bounded::preset(0),
            trusted_proxies: Vec::new(),
            keepalive_timeout: Bounded::preset(Span::secs(60)),
            grace_period: Span::secs(5),
            graceful_shutdown_timeout: Span::secs(10),
            pid_file: "/tmp/imgproxy-gateway.pid".into(),
            upgrade_sock: "/tmp/imgproxy-gateway-upgrade.sock".into(),
        }
    }
}

impl ServerConfig {
    /// The public listener's address.
    pub fn public_addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::new(self.host.0, self.port)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub listen: ListenAddr,
    /// When set, `/metrics` requires `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: ListenAddr(std::net::SocketAddr::from(([127, 0, 0, 1], 9090))),
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
    pub max_connections: Bounded<u32, 1, 1000>,
    /// Upper bound on every database call.
    pub timeout: Positive,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            driver: DatabaseDriver::Sqlite,
            dsn: "sqlite://data/gateway.db?mode=rwc".into(),
            max_connections: Bounded::preset(8),
            timeout: Bounded::preset(Span::secs(5)),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedisConfig {
    /// `redis://127.0.0.1:6379`; unset means embedded mode (in-process counters).
    pub url: Option<RedisUrl>,
    /// Upper bound on every Redis call, in milliseconds.
    pub timeout_ms: Bounded<u64, 1, 60_000>,
    /// Instances sharing the limits: while Redis is unreachable each enforces its share
    /// (every rate limit ÷ this).
    pub expected_instances: Bounded<u64, 1, 1000>,
    /// Prefix of every Redis key and channel, so deployments can share a Redis.
    pub key_prefix: KeyPrefix,
    /// `redis.url` is a node of a Redis Cluster (the same as a `redis-cluster://` URL): the
    /// client discovers the others and follows `MOVED`/`ASK`.
    pub cluster: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            timeout_ms: Bounded::preset(50),
            expected_instances: Bounded::preset(2),
            key_prefix: KeyPrefix::preset("imgproxy-gateway:"),
            cluster: false,
        }
    }
}

impl RedisConfig {
    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(*self.timeout_ms)
    }

    /// The URL as the client takes it: a cluster's with its `-cluster` scheme.
    pub fn client_url(&self) -> Option<String> {
        let url = self.url.as_deref()?;
        if !self.cluster || url.contains("-cluster://") {
            return Some(url.to_string());
        }
        Some(url.replacen("://", "-cluster://", 1))
    }

    /// Whether shared state is on a Redis Cluster.
    pub fn clustered(&self) -> bool {
        self.client_url().is_some_and(|u| u.contains("-cluster://"))
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `http://host:port` of an imgproxy server.
    pub url: BackendUrl,
    #[serde(default = "default_weight")]
    pub weight: Bounded<u32, 1, 100>,
    #[serde(default = "default_health_path")]
    pub health_check_path: UrlPath,
}

fn default_weight() -> Bounded<u32, 1, 100> {
    Bounded::preset(1)
}

fn default_health_path() -> UrlPath {
    UrlPath::preset("/health")
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    pub interval: Positive,
    pub timeout: Positive,
    /// Consecutive failed checks that mark a backend unhealthy.
    pub unhealthy_threshold: Bounded<u32, 1, 100>,
    /// Consecutive good checks that bring it back.
    pub healthy_threshold: Bounded<u32, 1, 100>,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        HealthCheckConfig {
            interval: Bounded::preset(Span::secs(30)),
            timeout: Bounded::preset(Span::secs(5)),
            unhealthy_threshold: Bounded::preset(3),
            healthy_threshold: Bounded::preset(2),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamConfig {
    /// TCP connect timeout to a backend; past it the request moves to another backend.
    pub connect_timeout: Positive,
    /// How long a backend may take to answer (and between body chunks); past it the client gets 504.
    pub response_timeout: Positive,
    /// How long an idle upstream keep-alive connection is kept.
    pub idle_timeout: Positive,
    /// Upstream keep-alive connections kept per process.
    pub keepalive_pool_size: Bounded<usize, 1, 1_000_000>,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            connect_timeout: Bounded::preset(Span::secs(2)),
            response_timeout: Bounded::preset(Span::secs(60)),
            idle_timeout: Bounded::preset(Span::secs(60)),
            keepalive_pool_size: Bounded::preset(512),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    pub ip_level: Option<IpLimit>,
    pub user_level: Option<UserLimit>,
    /// Route template (`/api/v1/upload`) → global limit.
    pub api_level: std::collections::BTreeMap<RouteTemplate, ApiLimit>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IpLimit {
    pub requests_per_minute: Bounded<u32, 1, 10_000_000>,
    pub burst: Bounded<u32, 1, 10_000_000>,
    /// IPv6 clients share one bucket per network of this prefix length (one host usually
    /// holds a whole /64, so per-address buckets would be unlimited).
    #[serde(default = "default_ipv6_prefix")]
    pub ipv6_prefix: Bounded<u8, 1, 128>,
}

fn default_ipv6_prefix() -> Bounded<u8, 1, 128> {
    Bounded::preset(64)
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserLimit {
    pub requests_per_minute: Bounded<u32, 1, 10_000_000>,
    pub requests_per_hour: Bounded<u32, 1, 100_000_000>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiLimit {
    pub requests_per_minute: Bounded<u32, 1, 100_000_000>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuotasConfig {
    /// Defaults of every user (per-user overrides win); 0 means unlimited.
    pub monthly_requests: Live<u64>,
    pub monthly_bandwidth_mb: Live<u64>,
    pub storage_quota_mb: Live<u64>,
    /// Day of the month (1–28) on which periods start, at 00:00 UTC.
    pub reset_day: Live<Bounded<u32, 1, 28>>,
    /// How often usage counted in this process is written to the database (at most 1 s: a
    /// hard kill loses at most this much).
    pub flush_interval: Bounded<Span, 1, 1_000>,
    /// POSTed a JSON event when a user reaches 80, 90 and 100 % of a quota.
    pub webhook_url: Option<HttpUrl>,
}

impl Default for QuotasConfig {
    fn default() -> Self {
        QuotasConfig {
            monthly_requests: Live::new(100_000),
            monthly_bandwidth_mb: Live::new(10_240),
            storage_quota_mb: Live::new(1_024),
            reset_day: Live::new(Bounded::preset(1)),
            flush_interval: Bounded::preset(Span::secs(1)),
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
    pub signature_size: Bounded<usize, 1, 32>,
    /// Allow convert sources on loopback addresses (`127/8`, `::1`, `localhost`).
    pub allow_loopback_sources: bool,
    /// Allow convert sources on link-local addresses and cloud metadata services
    /// (`169.254/16`, `fe80::/10`, `metadata.google.internal`…). Never implied by the others.
    pub allow_link_local_sources: bool,
    /// Allow convert sources on private addresses (RFC 1918, `100.64/10`, `fc00::/7`).
    pub allow_private_sources: bool,
    /// Fixed answers for source host names, consulted before DNS (like `/etc/hosts`); the
    /// address checks apply to them as to any other answer.
    pub source_hosts: std::collections::BTreeMap<HostName, Addresses>,
    /// Longest wait for a source host name to resolve (then 504).
    pub source_resolve_timeout: Positive,
    pub max_source_url_length: Bounded<usize, 16, 16_384>,
    /// Format of the answer when the client names none.
    pub default_format: Format,
    /// `Cache-Control` of image answers. Unset: `private` with imgproxy's own `max-age`, so
    /// no shared cache (CDN, corporate proxy) serves an authenticated image to anyone else.
    pub cache_control: Option<HeaderText>,
}

impl Default for ImgproxyConfig {
    fn default() -> Self {
        ImgproxyConfig {
            key: None,
            salt: None,
            signature_size: Bounded::preset(32),
            allow_loopback_sources: false,
            allow_link_local_sources: false,
            allow_private_sources: false,
            source_hosts: Default::default(),
            source_resolve_timeout: Bounded::preset(Span::secs(2)),
            max_source_url_length: Bounded::preset(2048),
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
    pub dir: DirPath,
    pub max_upload_mb: Bounded<u64, 1, 4096>,
    pub source: SourceMode,
    /// How backends reach this gateway's public listener, e.g. `http://10.0.0.5:8080`.
    /// Unset: the public listener's own address (`127.0.0.1` for an unspecified host).
    pub source_base_url: Option<HttpUrl>,
    /// Lifetime of a signed source URL.
    pub source_url_ttl: Bounded<Span, 5_000, { u64::MAX }>,
    /// Hex secret that signs source URLs; must be the same on every instance.
    /// Unset: a random secret per process (fine for a single instance).
    pub source_secret: Option<HexSecret>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: DirPath::preset("data/images"),
            max_upload_mb: Bounded::preset(20),
            source: SourceMode::Http,
            source_base_url: None,
            source_url_ttl: Bounded::preset(Span::secs(300)),
            source_secret: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObservabilityConfig {
    /// error, warn, info, debug or trace.
    pub log_level: Live<LogLevel>,
    /// `json` (one object per line) or `text`.
    pub log_format: LogFormat,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig {
            log_level: Live::new(LogLevel(log::LevelFilter::Info)),
            log_format: LogFormat::Json,
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub enabled: bool,
    /// PEM certificate chain and private key; re-read on SIGHUP.
    pub cert: Live<Option<String>>,
    pub key: Live<Option<String>>,
    /// `"1.3"` (default: a TLS 1.2 client is refused) or `"1.2"`.
    pub min_version: TlsVersion,
    /// Serve the admin listener over TLS too, with the same certificate.
    pub admin: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: false,
            cert: Live::new(None),
            key: Live::new(None),
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
    pub bcrypt_cost: Bounded<u32, 4, 31>,
    /// How long a verified key is trusted without looking at the database again.
    pub cache_ttl: Positive,
    /// Verified (and, separately, rejected) keys remembered at most.
    pub cache_capacity: Bounded<u64, 1, 100_000_000>,
    /// How long an unknown or wrong key is remembered as such.
    pub negative_ttl: Positive,
    /// bcrypt verifications running at once; 0 means half the cores (at least one).
    pub hash_concurrency: Bounded<usize, 0, 1024>,
    /// How long a request waits for a bcrypt slot before it gets 503.
    pub hash_wait: Positive,
    /// How often `last_used_at` of keys in use is written (one statement per flush).
    pub last_used_flush: Positive,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            bcrypt_cost: Bounded::preset(10),
            cache_ttl: Bounded::preset(Span::secs(60)),
            cache_capacity: Bounded::preset(100_000),
            negative_ttl: Bounded::preset(Span::secs(30)),
            hash_concurrency: Bounded::preset(0),
            hash_wait: Bounded::preset(Span::secs(5)),
            last_used_flush: Bounded::preset(Span::secs(10)),
        }
    }
}

impl AuthConfig {
    pub fn hash_slots(&self) -> usize {
        if *self.hash_concurrency > 0 {
            return *self.hash_concurrency;
        }
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        (cores / 2).max(1)
    }
}
