//! Rate limits (429) and quotas (402): the rules of a request, checked and consumed all or
//! nothing, the usage they count, and the headers and reports that show it.

pub mod headers;
pub mod local;
pub mod period;
pub mod rules;
pub mod thresholds;
pub mod usage;

use crate::config::Config;
use crate::error::{GatewayError, GatewayResult};
use crate::identity::record::format_time;
use crate::identity::Identity;
use crate::store::{images, usage as usage_rows, Store};
use chrono::Utc;
use headers::Headers;
use local::LocalLimiter;
use period::Period;
use rules::{Decision, Kind, UserLimits};
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use thresholds::{Notifier, Quota};
use usage::{Entry, UsageBook};

pub struct Limits {
    local: LocalLimiter,
    usage: UsageBook,
    notifier: Notifier,
}

/// An admitted request: its headers, its user's effective limits and usage entry.
pub struct Admission {
    pub headers: Headers,
    pub limits: UserLimits,
    pub entry: Arc<Entry>,
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

fn now_ms() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
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
    pub fn new(notifier: Notifier) -> Limits {
        Limits {
            local: LocalLimiter::default(),
            usage: UsageBook::default(),
            notifier,
        }
    }

    /// The IP level alone: `consume: false` only looks (before an expensive verification),
    /// `consume: true` counts a request that failed authentication.
    pub fn check_ip(&self, config: &Config, ip: IpAddr, consume: bool) -> Result<(), Refusal> {
        let Some(rule) = rules::ip_rule(config, ip) else {
            return Ok(());
        };
        let rules = [rule];
        let (now, ms) = (Utc::now().timestamp() as u64, now_ms());
        let decision = if consume {
            self.local.check(&rules, ms, 1)
        } else {
            self.local.peek(&rules, ms, 1)
        };
        match decision.rejected {
            None => Ok(()),
            Some(kind) => Err(Refusal {
                error: rate_limited(&decision, kind, now),
                headers: headers::render(&decision, now),
            }),
        }
    }

    /// Check and consume every level for an authenticated request to `endpoint`.
    pub async fn admit(
        &self,
        config: &Config,
        store: &Store,
        identity: &Identity,
        endpoint: &str,
        ip: IpAddr,
    ) -> Result<Admission, Refusal> {
        let limits = UserLimits::of(config, identity);
        let now_at = Utc::now();
        let now = now_at.timestamp() as u64;
        let period = Period::containing(now_at, limits.reset_day);
        let entry = self.usage.entry(store, &identity.user_id, &period).await?;
        let rules = rules::request_rules(config, &limits, &entry, endpoint, ip, now);
        let bandwidth = limits.monthly_bandwidth_bytes;
        if bandwidth > 0 && entry.bandwidth() >= bandwidth {
            let decision = self.local.peek(&rules, now_ms(), 1);
            return Err(Refusal {
                error: exceeded(Quota::Bandwidth, entry.bandwidth(), bandwidth, &period),
                headers: headers::render(&decision, now),
            });
        }
        let decision = self.local.check(&rules, now_ms(), 1);
        let headers = headers::render(&decision, now);
        match decision.rejected {
            None => {
                entry.touch();
                if let Some(q) = decision.standing(Kind::Requests) {
                    self.notifier
                        .observe(&entry, Quota::Requests, q.limit - q.remaining, q.limit);
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
            Some(kind) => Err(Refusal {
                error: rate_limited(&decision, kind, now),
                headers,
            }),
        }
    }

    /// How much an upload may store: the smaller of the storage and bandwidth quotas left.
    pub async fn upload_cap(
        &self,
        store: &Store,
        admission: &Admission,
    ) -> GatewayResult<Option<UploadCap>> {
        let (limits, entry) = (&admission.limits, &admission.entry);
        let mut cap: Option<UploadCap> = None;
        let mut consider = |bytes: u64, error: GatewayError| {
            if cap.as_ref().is_none_or(|c| bytes < c.bytes) {
                cap = Some(UploadCap { bytes, error });
            }
        };
        if limits.storage_bytes > 0 {
            let stored = images::stored_bytes(store, &entry.user_id).await?;
            let error = exceeded(Quota::Storage, stored, limits.storage_bytes, &entry.period);
            if stored >= limits.storage_bytes {
                return Err(error);
            }
            consider(limits.storage_bytes - stored, error);
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
        Ok(cap)
    }

    /// Count the body bytes of an image request once it is answered.
    pub fn record_bandwidth(&self, admission: &Admission, bytes: u64) {
        let (_, after) = admission.entry.add_bandwidth(bytes);
        self.notifier.observe(
            &admission.entry,
            Quota::Bandwidth,
            after,
            admission.limits.monthly_bandwidth_bytes,
        );
    }

    /// Note a stored upload against the storage quota's thresholds.
    pub async fn record_upload(&self, store: &Store, admission: &Admission) {
        if admission.limits.storage_bytes == 0 {
            return;
        }
        if let Ok(stored) = images::stored_bytes(store, &admission.entry.user_id).await {
            self.notifier.observe(
                &admission.entry,
                Quota::Storage,
                stored,
                admission.limits.storage_bytes,
            );
        }
    }

    fn requests_used(&self, entry: &Entry) -> u64 {
        self.local
            .value(&rules::requests_key(&entry.user_id, &entry.period))
            .unwrap_or(entry.requests_seed)
    }

    /// DESIGN §8's quota document for `user_id` with effective `limits`.
    pub async fn report(
        &self,
        store: &Store,
        user_id: &str,
        limits: &UserLimits,
    ) -> GatewayResult<serde_json::Value> {
        let period = Period::containing(Utc::now(), limits.reset_day);
        let entry = self.usage.entry(store, user_id, &period).await?;
        let stored = images::stored_bytes(store, user_id).await?;
        let item = |used: u64, limit: u64| {
            if limit == 0 {
                json!({"used": used, "limit": null, "remaining": null})
            } else {
                json!({"used": used, "limit": limit, "remaining": limit.saturating_sub(used)})
            }
        };
        Ok(json!({
            "user_id": user_id,
            "period_start": format_time(&period.start),
            "resets_at": format_time(&period.end),
            "requests": item(self.requests_used(&entry), limits.monthly_requests),
            "bandwidth_bytes": item(entry.bandwidth(), limits.monthly_bandwidth_bytes),
            "storage_bytes": item(stored, limits.storage_bytes),
        }))
    }

    /// Zero this period's requests and bandwidth of `user_id`, and write it at once.
    pub async fn reset(&self, store: &Store, user_id: &str, reset_day: u32) -> GatewayResult<()> {
        let period = Period::containing(Utc::now(), reset_day);
        let entry = self.usage.entry(store, user_id, &period).await?;
        for e in self.usage.of_user(user_id).into_iter().chain([entry]) {
            e.reset();
            self.local.set(
                &rules::requests_key(&e.user_id, &e.period),
                0,
                e.period.end.timestamp() as u64,
            );
        }
        self.flush(store).await
    }

    /// Write changed usage to the database (every `quotas.flush_interval` and at shutdown).
    pub async fn flush(&self, store: &Store) -> GatewayResult<()> {
        let rows = self.usage.take_dirty(Utc::now(), |e| self.requests_used(e));
        if rows.is_empty() {
            return Ok(());
        }
        let result = usage_rows::save_all(store, rows.clone()).await;
        if result.is_err() {
            self.usage.restore(&rows);
        }
        result
    }

    /// Forget ended windows and idle buckets.
    pub fn sweep(&self) {
        self.local.sweep(now_ms());
    }
}
