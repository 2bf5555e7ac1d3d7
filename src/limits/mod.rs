//! Rate limits (429) and quotas (402): the rules of a request, checked and consumed all or
//! nothing, the usage they count, and the headers and reports that show it.

mod cluster;
pub mod counters;
pub mod headers;
pub mod local;
pub mod period;
mod persist;
pub mod reservations;
pub mod rules;
pub mod shared;
pub mod thresholds;
pub mod usage;

use crate::config::Config;
use crate::db::{images, Store};
use crate::error::{GatewayError, GatewayResult};
use crate::identity::record::format_time;
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::state::unix_now_ms;
use chrono::Utc;
use counters::Counters;
use headers::Headers;
use period::Period;
use rules::{Decision, Kind, Rule, UserLimits};
use shared::Shared;
use std::net::IpAddr;
use std::sync::Arc;
use thresholds::{Notifier, Quota};
use usage::{Entry, UsageBook};

/// The policy of rate limits and quotas (which rules a request meets, quota pre-checks,
/// thresholds, reports); the counters behind it are embedded or in Redis (`counters`).
pub struct Limits {
    counters: Counters,
    usage: UsageBook,
    notifier: Notifier,
    metrics: Arc<Metrics>,
    /// Serializes flushes and resets, so a flush never writes counts from before a reset.
    writing: tokio::sync::Mutex<()>,
}

/// An admitted request: its headers, its user's effective limits and usage entry.
pub struct Admission {
    pub headers: Headers,
    pub limits: UserLimits,
    pub entry: Arc<Entry>,
}

/// Which levels an admission takes.
#[derive(Clone, Copy, Debug)]
pub struct Scope {
    /// The IP token was spent already (before a key verification): the IP level is not taken
    /// again, and this is where it stood (for the headers).
    pub ip_spent: Option<Option<rules::Standing>>,
    /// The request counts against the monthly quotas (the image endpoints).
    pub metered: bool,
}

/// A refused request: the error and the headers that still tell the client where it stands.
pub struct Refusal {
    pub error: GatewayError,
    pub headers: Headers,
}

impl From<GatewayError> for Refusal {
    fn from(error: GatewayError) -> Refusal {
        Refusal {
            error,
            headers: Headers::new(),
        }
    }
}

/// Most bytes an upload may store, and the error past it.
pub struct UploadCap {
    pub bytes: u64,
    pub error: GatewayError,
}

/// What an upload may store, and the storage it holds meanwhile.
pub struct UploadAllowance {
    pub cap: Option<UploadCap>,
    pub reservation: Option<reservations::Reservation>,
}

impl UploadAllowance {
    /// Give the reserved storage back: the upload's row is committed, or it failed.
    pub async fn release(self) {
        if let Some(reservation) = self.reservation {
            reservation.release().await;
        }
    }
}

/// The endpoint that stores bytes (checked against the storage quota before admission).
const UPLOAD: &str = "/api/v1/upload";

/// `user_id` of requests refused before authentication.
const ANONYMOUS: &str = "anonymous";

/// The Redis key that makes a threshold event once-only across instances.
fn claim_key(entry: &Entry, quota: Quota, percent: u64) -> String {
    format!(
        "th:{}:{}:{}:{percent}",
        rules::user_tag(&entry.user_id),
        entry.period.id(),
        quota.name()
    )
}

fn exceeded(quota: Quota, used: u64, limit: u64, period: &Period) -> GatewayError {
    GatewayError::QuotaExceeded {
        quota: quota.name(),
        limit,
        used,
        resets_at: match quota {
            Quota::Storage => None,
            _ => Some(format_time(&period.end)),
        },
    }
}

fn rate_limited(decision: &Decision, kind: Kind, now: u64) -> GatewayError {
    let reset = decision.standing(kind).map_or(now + 1, |s| s.reset);
    GatewayError::RateLimited {
        limit_type: kind.name(),
        retry_after: reset.saturating_sub(now).max(1),
    }
}

impl Limits {
    pub fn new(config: &Config, notifier: Notifier, metrics: Arc<Metrics>) -> Limits {
        let counters = match config.redis.client_url() {
            None => Counters::embedded(),
            Some(url) => {
                let instances = *config.redis.expected_instances;
                let redis = Shared::new(
                    url,
                    config.redis.key_prefix.to_string(),
                    config.redis.timeout(),
                    metrics.redis_degraded.clone(),
                );
                let redis = match config.redis.clustered() {
                    true => redis.on_cluster(instances),
                    false => redis,
                };
                Counters::in_redis(redis, instances)
            }
        };
        Limits {
            counters,
            usage: UsageBook::default(),
            notifier,
            metrics,
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Connect to Redis (shared mode) on the calling, long-lived runtime.
    pub fn connect(&self) -> Result<(), String> {
        self.counters.connect()
    }

    /// This instance's latest quota threshold events, newest first.
    pub fn recent_threshold_events(&self) -> Vec<serde_json::Value> {
        self.notifier.recent()
    }

    /// Whether limits run on local fallbacks because Redis is unreachable.
    pub fn degraded(&self) -> bool {
        self.counters.degraded()
    }

    async fn decide(&self, rules: &[Rule], consume: bool) -> Decision {
        self.counters.decide(rules, consume).await
    }

    /// The IP level alone: `consume: false` only looks (before an expensive verification),
    /// `consume: true` counts a request that failed authentication.
    pub async fn check_ip(
        &self,
        config: &Config,
        ip: IpAddr,
        consume: bool,
    ) -> Result<Option<rules::Standing>, Refusal> {
        let Some(rule) = rules::ip_rule(config, ip) else {
            return Ok(None);
        };
        let now = Utc::now().timestamp() as u64;
        let decision = self.decide(&[rule], consume).await;
        match decision.rejected {
            None => Ok(decision.standing(Kind::Ip).copied()),
            Some(kind) => {
                self.violation(ANONYMOUS, kind);
                Err(Refusal {
                    error: rate_limited(&decision, kind, now),
                    headers: headers::render(&decision, now),
                })
            }
        }
    }

    /// Check and consume every level of `scope` for an authenticated request to `endpoint`.
    pub async fn admit(
        &self,
        config: &Config,
        store: &Store,
        identity: &Identity,
        endpoint: &'static str,
        ip: IpAddr,
        scope: Scope,
    ) -> Result<Admission, Refusal> {
        let limits = UserLimits::of(config, identity);
        let now_at = Utc::now();
        let now = now_at.timestamp() as u64;
        let period = Period::containing(now_at, limits.reset_day);
        let entry = self.usage.entry(store, &identity.user_id, &period).await?;
        let user = &identity.user;
        let rules = rules::request_rules(config, &limits, &entry, user, endpoint, ip, now, scope);
        // Quotas that only a later step could enforce are checked first, so a request they
        // refuse consumes nothing.
        let bandwidth = limits.monthly_bandwidth_bytes;
        let mut exhausted = None;
        if scope.metered && bandwidth > 0 && entry.bandwidth() >= bandwidth {
            exhausted = Some(exceeded(
                Quota::Bandwidth,
                entry.bandwidth(),
                bandwidth,
                &period,
            ));
        } else if scope.metered && endpoint == UPLOAD && limits.storage_bytes > 0 {
            let stored = Box::pin(images::stored_bytes(store, &identity.user_id)).await?;
            if stored >= limits.storage_bytes {
                exhausted = Some(exceeded(
                    Quota::Storage,
                    stored,
                    limits.storage_bytes,
                    &period,
                ));
            }
        }
        if let Some(error) = exhausted {
            let decision = self.decide(&rules, false).await;
            return Err(Refusal {
                error,
                headers: headers::render(&decision, now),
            });
        }
        let mut decision = self.decide(&rules, true).await;
        if let Some(Some(ip)) = scope.ip_spent {
            decision.standings.insert(0, ip);
        }
        let headers = headers::render(&decision, now);
        match decision.rejected {
            None => {
                entry.touch();
                if let Some(q) = decision.standing(Kind::Requests) {
                    let used = q.limit - q.remaining;
                    if decision.shared {
                        // The shared total as of this request: the seed should Redis lose the
                        // counter (a restart without persistence), so nothing admitted before
                        // the loss goes uncounted.
                        entry.observe_requests(used);
                    }
                    self.announce(&entry, Quota::Requests, used, q.limit).await;
                }
                Ok(Admission {
                    headers,
                    limits,
                    entry,
                })
            }
            Some(Kind::Requests) => Err(Refusal {
                error: exceeded(
                    Quota::Requests,
                    limits.monthly_requests,
                    limits.monthly_requests,
                    &period,
                ),
                headers,
            }),
            Some(kind) => {
                self.violation(&identity.user_id, kind);
                Err(Refusal {
                    error: rate_limited(&decision, kind, now),
                    headers,
                })
            }
        }
    }

    /// How much an upload may store: the smaller of the storage and bandwidth quotas left.
    /// What an upload of at most `wanted` bytes may store: the smallest of the bytes it could
    /// reserve against the storage quota and what the bandwidth quota leaves, with the error
    /// past it. The reservation is held until `UploadAllowance::release` (or drop).
    pub async fn upload_cap(
        &self,
        store: &Store,
        admission: &Admission,
        wanted: u64,
    ) -> GatewayResult<UploadAllowance> {
        let (limits, entry) = (&admission.limits, &admission.entry);
        let mut cap: Option<UploadCap> = None;
        let mut consider = |bytes: u64, error: GatewayError| {
            if cap.as_ref().is_none_or(|c| bytes < c.bytes) {
                cap = Some(UploadCap { bytes, error });
            }
        };
        let mut reservation = None;
        if limits.storage_bytes > 0 {
            let limit = limits.storage_bytes;
            let stored = images::stored_bytes(store, &entry.user_id).await?;
            if stored >= limit {
                return Err(exceeded(Quota::Storage, stored, limit, &entry.period));
            }
            // Reserve first, read the stored bytes after (see `storage`).
            let bytes = wanted.min(limit - stored);
            let (held, reserved) = self.counters.reserve(&entry.user_id, bytes).await;
            let stored = images::stored_bytes(store, &entry.user_id).await?;
            let used = stored + reserved - bytes;
            if stored + reserved > limit {
                held.release().await;
                return Err(exceeded(Quota::Storage, used, limit, &entry.period));
            }
            consider(bytes, exceeded(Quota::Storage, used, limit, &entry.period));
            reservation = Some(held);
        }
        if limits.monthly_bandwidth_bytes > 0 {
            let used = entry.bandwidth();
            let error = exceeded(
                Quota::Bandwidth,
                used,
                limits.monthly_bandwidth_bytes,
                &entry.period,
            );
            consider(limits.monthly_bandwidth_bytes.saturating_sub(used), error);
        }
        Ok(UploadAllowance { cap, reservation })
    }

    /// Count the body bytes of an image request once it is answered.
    pub async fn record_bandwidth(&self, admission: &Admission, bytes: u64) {
        let entry = &admission.entry;
        let (before, mut after) = entry.add_bandwidth(bytes);
        let key = || rules::bandwidth_key(&entry.user_id, &entry.period);
        let end = entry.period.end.timestamp() as u64;
        if let Some(total) = self.counters.add_to_quota(key, bytes, before, end).await {
            after = entry.observe_bandwidth(total);
        }
        self.announce(
            entry,
            Quota::Bandwidth,
            after,
            admission.limits.monthly_bandwidth_bytes,
        )
        .await;
    }

    /// Note a stored upload against the storage quota's thresholds.
    pub async fn record_upload(&self, store: &Store, admission: &Admission) {
        if admission.limits.storage_bytes == 0 {
            return;
        }
        if let Ok(stored) = images::stored_bytes(store, &admission.entry.user_id).await {
            let limit = admission.limits.storage_bytes;
            self.metrics
                .quota_usage
                .with_label_values(&[&admission.entry.user_id, Quota::Storage.name()])
                .set(stored as i64);
            self.announce(&admission.entry, Quota::Storage, stored, limit)
                .await;
        }
    }

    fn violation(&self, user_id: &str, kind: Kind) {
        self.metrics
            .rate_limit_violations
            .with_label_values(&[user_id, kind.name()])
            .inc();
    }

    /// Threshold events newly reached, once per period: here by the entry's marks, across
    /// instances by a Redis claim (when Redis cannot answer, this instance sends anyway).
    async fn announce(&self, entry: &Entry, quota: Quota, used: u64, limit: u64) {
        for percent in self.notifier.newly_reached(entry, quota, used, limit) {
            let claim = claim_key(entry, quota, percent);
            let expires = entry.period.end.timestamp() as u64 + shared::PERIOD_GRACE;
            if !Box::pin(self.counters.claim_once(&claim, expires)).await {
                continue;
            }
            self.notifier.send(entry, quota, percent, used, limit);
            self.metrics
                .quota_threshold_events
                .with_label_values(&[quota.name(), &percent.to_string()])
                .inc();
        }
    }

    /// Forget ended windows and idle buckets.
    pub fn sweep(&self) {
        self.counters.local().sweep(unix_now_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const METERED: Scope = Scope {
        ip_spent: None,
        metered: true,
    };

    fn identity() -> Identity {
        Identity::plain("u1", "k1")
    }

    /// A configuration on a fresh SQLite database, and its store (the directory lives as long
    /// as the first value).
    async fn sqlite() -> (tempfile::TempDir, Config, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.database.dsn = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let store = crate::db::open_migrated(&config.database).await.unwrap();
        (dir, config, store)
    }

    /// Two processes counting the same user at once (the old and the new one during an
    /// upgrade) both land in the database: flushes add, they never overwrite.
    #[tokio::test]
    async fn two_processes_flushing_one_database_add_up() {
        let (_dir, config, store) = sqlite().await;
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let (old, new) = (
            Limits::new(&config, Notifier::new(None).0, Arc::default()),
            Limits::new(&config, Notifier::new(None).0, Arc::default()),
        );
        let who = identity();
        for round in 0..3 {
            for limits in [&old, &new] {
                for _ in 0..5 {
                    let admitted = limits
                        .admit(&config, &store, &who, "/api/v1/convert", ip, METERED)
                        .await;
                    assert!(admitted.is_ok(), "round {round}");
                }
                limits.flush(&store).await.unwrap();
            }
        }
        let fresh = Limits::new(&config, Notifier::new(None).0, Arc::default());
        let report = fresh
            .report(&store, "u1", &UserLimits::of(&config, &who))
            .await
            .unwrap();
        assert_eq!(report["requests"]["used"], 30);
        // A reset writes zero, whoever counted.
        fresh.reset(&store, "u1", 1).await.unwrap();
        let again = Limits::new(&config, Notifier::new(None).0, Arc::default());
        let report = again
            .report(&store, "u1", &UserLimits::of(&config, &who))
            .await
            .unwrap();
        assert_eq!(report["requests"]["used"], 0);
    }

    /// The bandwidth count runs in every request's `logging`, whose future Pingora's
    /// async-trait copies into a fresh box per request: the Redis call must not widen it
    /// (5.9 KB in a debug build when it was awaited inline, 208 bytes boxed).
    #[tokio::test]
    async fn counting_bandwidth_keeps_the_request_future_small() {
        let (_dir, config, store) = sqlite().await;
        let limits = Limits::new(&config, Notifier::new(None).0, Arc::default());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let admission = limits
            .admit(&config, &store, &identity(), "/api/v1/convert", ip, METERED)
            .await
            .ok()
            .unwrap();
        let counting = limits.record_bandwidth(&admission, 5);
        assert!(std::mem::size_of_val(&counting) < 1024);
        counting.await;
        assert_eq!(admission.entry.bandwidth(), 5);
    }
}
