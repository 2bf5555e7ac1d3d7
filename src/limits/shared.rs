//! Limits across instances: every rule of a request checked and consumed in one Redis round trip
//! (`check.lua`, loaded once, run with EVALSHA), each call bounded by `redis.timeout_ms`. A
//! circuit breaker stops calling a Redis that failed for `OPEN_FOR`; meanwhile the caller falls
//! back to its in-process limiter, at each rate limit ÷ `redis.expected_instances`.

use super::rules::{Decision, Rule, Shape};
use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::scripts::Script;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

const SCRIPT: &str = include_str!("check.lua");
/// Add counts to a counter, or create it at `seed + count` when Redis does not have it.
const SETTLE: &str = r#"
local v = redis.call("GET", KEYS[1])
if v then v = redis.call("INCRBY", KEYS[1], ARGV[1])
else v = tonumber(ARGV[2]) + tonumber(ARGV[1]); redis.call("SET", KEYS[1], v) end
redis.call("EXPIREAT", KEYS[1], ARGV[3])
return v
"#;
/// Add a (possibly negative) delta to a counter and push its expiry; a counter that reaches
/// zero goes.
const ADD: &str = r#"
local v = redis.call("INCRBY", KEYS[1], ARGV[1])
if v <= 0 then redis.call("DEL", KEYS[1]) else redis.call("EXPIREAT", KEYS[1], ARGV[2]) end
return v
"#;
/// How long a failed Redis is left alone before the next try.
const OPEN_FOR: Duration = Duration::from_secs(1);
/// Counters of a quota period outlive it by this much, so the last flush can read them.
pub const PERIOD_GRACE: u64 = 7 * 24 * 3600;

pub struct Shared {
    url: String,
    prefix: String,
    timeout: Duration,
    client: OnceLock<Client>,
    script: Script,
    settle: Script,
    add: Script,
    /// Unix ms until which Redis is not called (0 = closed breaker).
    open_until: AtomicU64,
    degraded: AtomicBool,
    /// The `redis_degraded` metric.
    gauge: prometheus::IntGauge,
}

fn now_ms() -> u64 {
    chrono::Utc::now().timestamp_millis().max(0) as u64
}

impl Shared {
    pub fn new(
        url: String,
        prefix: String,
        timeout: Duration,
        gauge: prometheus::IntGauge,
    ) -> Shared {
        Shared {
            url,
            prefix,
            timeout,
            client: OnceLock::new(),
            script: Script::from_lua(SCRIPT),
            settle: Script::from_lua(SETTLE),
            add: Script::from_lua(ADD),
            open_until: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            gauge,
        }
    }

    /// Connect on the calling runtime (the state service's, which lives as long as the process).
    pub fn connect(&self) -> Result<(), String> {
        let client = crate::redis::builder(&self.url, self.timeout)?
            .build()
            .map_err(|e| format!("redis: {e}"))?;
        client.connect();
        let _ = self.client.set(client);
        Ok(())
    }

    /// Whether Redis is being bypassed right now.
    pub fn degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }

    /// The client, unless the breaker is open or the connection is known to be down (then the
    /// call fails at once instead of waiting out its timeout).
    fn available(&self) -> Option<&Client> {
        let client = self.client.get()?;
        if now_ms() < self.open_until.load(Ordering::Relaxed) {
            return None;
        }
        if !client.is_connected() {
            self.failed("not connected");
            return None;
        }
        Some(client)
    }

    fn failed(&self, error: &str) {
        self.open_until
            .store(now_ms() + OPEN_FOR.as_millis() as u64, Ordering::Relaxed);
        if !self.degraded.swap(true, Ordering::Relaxed) {
            self.gauge.set(1);
            log::error!(
                "{}",
                serde_json::json!({"event": "redis_degraded", "error": error,
                    "fallback": "local limits at limit / redis.expected_instances"})
            );
        }
    }

    fn recovered(&self) {
        if self.degraded.swap(false, Ordering::Relaxed) {
            self.gauge.set(0);
            log::warn!("{}", serde_json::json!({"event": "redis_recovered"}));
        }
    }

    /// Run `op` against Redis within the timeout; `None` when Redis is bypassed or failed.
    async fn call<'a, T, F, Fut>(&'a self, op: F) -> Option<T>
    where
        F: FnOnce(&'a Client) -> Fut,
        Fut: std::future::Future<Output = fred::prelude::FredResult<T>> + 'a,
    {
        let client = self.available()?;
        match tokio::time::timeout(self.timeout, op(client)).await {
            Ok(Ok(value)) => {
                self.recovered();
                Some(value)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("timeout");
                None
            }
        }
    }

    /// Check (and, with `consume`, take) every rule in one round trip; `None` when Redis
    /// cannot answer and the caller must decide locally.
    pub async fn check(&self, rules: &[Rule], consume: bool) -> Option<Decision> {
        self.check_at(rules, consume, now_ms()).await
    }

    /// `check` as of `now` (Unix ms): the parity test runs the same vectors through both
    /// engines at the same instants.
    pub async fn check_at(&self, rules: &[Rule], consume: bool, now: u64) -> Option<Decision> {
        let keys: Vec<String> = rules
            .iter()
            .map(|r| format!("{}{}", self.prefix, r.key))
            .collect();
        let mut args: Vec<String> = vec![now.to_string(), if consume { "1" } else { "0" }.into()];
        for rule in rules {
            let (kind, p1, p2) = match rule.shape {
                Shape::Bucket { per_minute } => ("b", per_minute, 0),
                Shape::Window { start, secs } => ("c", start + secs + 60, 0),
                Shape::Period { end, seed, .. } => ("c", end + PERIOD_GRACE, seed),
            };
            args.extend([
                kind.into(),
                rule.capacity(1).to_string(),
                p1.to_string(),
                p2.to_string(),
            ]);
        }
        let out: Vec<i64> = self
            .call(|client| self.script.evalsha_with_reload(client, keys, args))
            .await?;
        let rejected_at = usize::try_from(*out.first()?).ok()?;
        let mut decision = Decision::default();
        for (i, rule) in rules.iter().enumerate() {
            let raw = *out.get(i + 1)? as f64;
            let current = match rule.shape {
                Shape::Bucket { .. } => raw / 1000.0,
                _ => raw,
            };
            let standing = if consume && rejected_at == 0 {
                rule.judge(current, now, 1).1
            } else {
                rule.look(current, now, 1)
            };
            decision.standings.push(standing);
        }
        decision.rejected = (rejected_at > 0).then(|| rules[rejected_at - 1].kind);
        decision.shared = true;
        Some(decision)
    }

    /// Current values of counters (absent = `None`).
    pub async fn values(&self, keys: &[String]) -> Option<Vec<Option<u64>>> {
        if keys.is_empty() {
            return Some(Vec::new());
        }
        let keys: Vec<String> = keys.iter().map(|k| format!("{}{k}", self.prefix)).collect();
        let values: Vec<Option<i64>> = self.call(|client| client.mget(keys)).await?;
        Some(
            values
                .into_iter()
                .map(|v| v.map(|v| v.max(0) as u64))
                .collect(),
        )
    }

    /// Add `count` to a counter in one round trip; a counter Redis does not have (it keeps
    /// nothing on disk) starts at `seed`. Its new value.
    pub async fn settle(&self, key: &str, count: u64, seed: u64, expires_at: u64) -> Option<u64> {
        let key = format!("{}{key}", self.prefix);
        let args = vec![count.to_string(), seed.to_string(), expires_at.to_string()];
        let value: i64 = self
            .call(|client| self.settle.evalsha_with_reload(client, vec![key], args))
            .await?;
        Some(value.max(0) as u64)
    }

    /// Add `delta` to a counter that expires at `expires_at` (unix s); its new value.
    pub async fn add(&self, key: &str, delta: i64, expires_at: u64) -> Option<i64> {
        let key = format!("{}{key}", self.prefix);
        let args = vec![delta.to_string(), expires_at.to_string()];
        self.call(|client| self.add.evalsha_with_reload(client, vec![key], args))
            .await
    }

    /// Remove keys (claims forgotten by a quota reset).
    pub async fn delete(&self, keys: &[String]) -> Option<()> {
        let keys: Vec<String> = keys.iter().map(|k| format!("{}{k}", self.prefix)).collect();
        let _: i64 = self.call(|client| client.del(keys)).await?;
        Some(())
    }

    /// Claim a once-only event: whether this call was first.
    pub async fn claim(&self, key: &str, expires_at: u64) -> Option<bool> {
        let key = format!("{}{key}", self.prefix);
        let set: Option<String> = self
            .call(|client| {
                client.set(
                    key,
                    "1",
                    Some(fred::types::Expiration::EXAT(expires_at as i64)),
                    Some(fred::types::SetOptions::NX),
                    false,
                )
            })
            .await?;
        Some(set.is_some())
    }

    /// Set counters (a quota reset).
    pub async fn set(&self, key: &str, value: u64, expires_at: u64) -> Option<()> {
        let key = format!("{}{key}", self.prefix);
        self.call(|client| {
            client.set::<(), _, _>(
                key,
                value as i64,
                Some(fred::types::Expiration::EXAT(expires_at as i64)),
                None,
                false,
            )
        })
        .await
    }
}
