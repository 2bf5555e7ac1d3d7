//! Where the counters of rate limits and quotas live, behind one interface. **Embedded**: in
//! this process (`LocalLimiter`). **Shared**: in Redis (one server or a Redis Cluster), one round trip per decision
//! (`Shared`, `check.lua`), with this process's counters as the fallback while Redis cannot
//! answer (each rate limit ÷ `redis.expected_instances`) and the quota counts admitted
//! meanwhile kept as `Owed` until Redis answers again. `Limits` holds a `Counters` and decides
//! policy; this file alone knows which mode runs.

use super::local::LocalLimiter;
use super::reservations::{self, Ledger, Reservation};
use super::rules::{CounterKey, Decision, Rule, Shape};
use super::shared::{self, Shared};
use crate::db::usage::Write;
use crate::error::{GatewayError, GatewayResult};
use crate::state::unix_now_ms;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A quota count admitted while Redis was unreachable: what to add to its Redis counter, the
/// counter's value when Redis does not have it, and the end of its period (Unix s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwedCount {
    pub count: u64,
    pub seed: u64,
    pub end: u64,
}

/// Quota counts owed to Redis, by counter key.
#[derive(Default)]
pub struct Owed(Mutex<HashMap<String, OwedCount>>);

impl Owed {
    fn add(&self, key: String, count: u64, seed: u64, end: u64) {
        let mut owed = self.0.lock().unwrap_or_else(|p| p.into_inner());
        owed.entry(key)
            .or_insert(OwedCount {
                count: 0,
                seed,
                end,
            })
            .count += count;
    }

    fn take(&self) -> Vec<(String, OwedCount)> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect()
    }
}

/// Redis, with the fallback's share and what the fallback admitted.
struct InRedis {
    redis: Arc<Shared>,
    expected_instances: u64,
    owed: Owed,
}

pub struct Counters {
    /// Every counter in embedded mode; the fallback (and the quota counts seen) in shared mode.
    local: LocalLimiter,
    /// Bytes uploads in flight reserved against storage quotas, when kept in this process.
    reserved: Arc<Ledger>,
    in_redis: Option<InRedis>,
}

impl Counters {
    pub fn embedded() -> Counters {
        Counters {
            local: LocalLimiter::default(),
            reserved: Arc::default(),
            in_redis: None,
        }
    }

    pub fn in_redis(redis: Shared, expected_instances: u64) -> Counters {
        Counters {
            in_redis: Some(InRedis {
                redis: Arc::new(redis),
                expected_instances,
                owed: Owed::default(),
            }),
            ..Counters::embedded()
        }
    }

    /// Connect to Redis (shared mode) on the calling, long-lived runtime.
    pub fn connect(&self) -> Result<(), String> {
        self.in_redis.as_ref().map_or(Ok(()), |c| c.redis.connect())
    }

    /// Whether counters run on the local fallback because Redis is unreachable.
    pub fn degraded(&self) -> bool {
        self.in_redis.as_ref().is_some_and(|c| c.redis.degraded())
    }

    /// How usage rows are written: totals when Redis holds them (every instance writes the
    /// same total), increments in embedded mode (an upgrade's two processes add up).
    pub fn usage_writes(&self) -> Write {
        match self.in_redis {
            Some(_) => Write::Totals,
            None => Write::Increments,
        }
    }

    /// One decision over `rules`, consuming all or nothing when `consume`.
    pub async fn decide(&self, rules: &[Rule], consume: bool) -> Decision {
        let Some(c) = &self.in_redis else {
            return self.local_decision(rules, consume, 1);
        };
        // Boxed, so that the embedded mode's request future does not carry Redis's.
        if let Some(decision) = Box::pin(c.redis.check(rules, consume)).await {
            return decision;
        }
        let decision = self.local_decision(rules, consume, c.expected_instances);
        if consume && decision.admitted() {
            for rule in rules {
                if let Shape::Period { end, seed, .. } = rule.shape {
                    c.owed.add(rule.key.to_string(), 1, seed, end);
                }
            }
        }
        decision
    }

    fn local_decision(&self, rules: &[Rule], consume: bool, divisor: u64) -> Decision {
        if consume {
            self.local.check(rules, unix_now_ms(), divisor)
        } else {
            self.local.peek(rules, unix_now_ms(), divisor)
        }
    }

    /// Add `count` to the quota counter named by `key` (seeded at `seed`, its period ending at
    /// `end`); the shared total when Redis took it. Embedded mode keeps such counts in the usage
    /// entry (and never makes the name).
    pub async fn add_to_quota(
        &self,
        key: impl FnOnce() -> CounterKey,
        count: u64,
        seed: u64,
        end: u64,
    ) -> Option<u64> {
        let c = self.in_redis.as_ref()?;
        let key = key().to_string();
        // Boxed: the Redis call's state would otherwise widen every caller's future (the
        // request's `logging`, copied into a box per request) in embedded mode too.
        let total = Box::pin(
            c.redis
                .settle(&key, count, seed, end + shared::PERIOD_GRACE),
        )
        .await;
        if total.is_none() {
            c.owed.add(key, count, seed, end);
        }
        total
    }

    /// The shared totals of quota counters (absent = `None`); `None` when there are none to
    /// read (embedded mode, or Redis unreachable).
    pub async fn shared_totals(&self, keys: &[String]) -> Option<Vec<Option<u64>>> {
        self.in_redis.as_ref()?.redis.values(keys).await
    }

    /// Claim a once-only event (a threshold across instances): whether this call was first.
    /// Without Redis to ask, this instance goes ahead.
    pub async fn claim_once(&self, key: &str, expires_at: u64) -> bool {
        match &self.in_redis {
            Some(c) => c.redis.claim(key, expires_at).await != Some(false),
            None => true,
        }
    }

    /// Zero quota counters whose period ends at `end` and forget once-only `claims` (a quota
    /// reset); refused when Redis cannot take it, so no instance keeps counting the old total.
    pub async fn reset(
        &self,
        keys: &[CounterKey],
        claims: &[String],
        end: u64,
    ) -> GatewayResult<()> {
        for key in keys {
            self.local.set(key, 0, end);
        }
        let Some(c) = &self.in_redis else {
            return Ok(());
        };
        let unavailable = || GatewayError::NotReady("Redis did not take the reset".into());
        for key in keys {
            c.redis
                .set(key, 0, end + shared::PERIOD_GRACE)
                .await
                .ok_or_else(unavailable)?;
        }
        c.redis.delete(claims).await.ok_or_else(unavailable)
    }

    /// Add to Redis the quota counts admitted during an outage, once it answers again.
    pub async fn settle_owed(&self) {
        let Some(c) = &self.in_redis else {
            return;
        };
        if c.redis.degraded() {
            return;
        }
        for (key, owed) in c.owed.take() {
            let settled = c
                .redis
                .settle(&key, owed.count, owed.seed, owed.end + shared::PERIOD_GRACE)
                .await;
            match settled {
                None => c.owed.add(key, owed.count, owed.seed, owed.end),
                Some(_) => log::info!(
                    "{}",
                    serde_json::json!({"event": "usage_reconciled", "key": key,
                        "requests": owed.count})
                ),
            }
        }
    }

    /// Reserve `bytes` of `user`'s storage quota: the reservation and the user's total
    /// reserved, this one included (in Redis in shared mode and reachable).
    pub async fn reserve(&self, user: &str, bytes: u64) -> (Reservation, u64) {
        let redis = self.in_redis.as_ref().map(|c| &c.redis);
        reservations::reserve(&self.reserved, redis, user, bytes).await
    }

    /// This process's counters (quota counts seen, resets, the sweep).
    pub fn local(&self) -> &LocalLimiter {
        &self.local
    }
}
