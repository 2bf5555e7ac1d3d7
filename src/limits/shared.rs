//! Limits across instances: every rule of a request checked and consumed in one Redis round trip
//! (`check.lua`, loaded once, run with EVALSHA), each call bounded by `redis.timeout_ms`. A
//! circuit breaker stops calling a Redis that failed for `OPEN_FOR`; meanwhile the caller falls
//! back to its in-process limiter, at each rate limit ÷ `redis.expected_instances`. On a Redis
//! Cluster a decision takes one script per slot its keys fall in (`cluster.rs`).

use super::cluster::{self, Leases};
use super::rules::{CounterKey, Decision, Rule, Shape};
use crate::state::unix_now_ms;
use fred::clients::Client;
use fred::interfaces::{ClientLike, KeysInterface};
use fred::types::scripts::Script;
use std::borrow::Borrow;
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
/// Give back one request to each counter (a later step of a cluster decision refused): a
/// bucket regains a token (up to its capacity), a counter loses one.
/// KEYS[i]: the counter; ARGV[i]: "b" or "c"; ARGV[#KEYS + i]: a bucket's capacity.
const REFUND: &str = r#"
for i = 1, #KEYS do
  if ARGV[i] == "b" then
    local t = tonumber(redis.call("HGET", KEYS[i], "t"))
    if t then redis.call("HSET", KEYS[i], "t", tostring(math.min(tonumber(ARGV[#KEYS + i]), t + 1))) end
  else
    local v = tonumber(redis.call("GET", KEYS[i]))
    if v and v > 0 then redis.call("DECR", KEYS[i]) end
  end
end
return 0
"#;
/// Lease up to ARGV[1] requests of a window whose limit is ARGV[2] (expiring at ARGV[3]):
/// { requests granted, the window's total leased }.
const LEASE: &str = r#"
local v = tonumber(redis.call("GET", KEYS[1])) or 0
local grant = math.min(tonumber(ARGV[1]), tonumber(ARGV[2]) - v)
if grant <= 0 then return { 0, v } end
v = redis.call("INCRBY", KEYS[1], grant)
redis.call("EXPIREAT", KEYS[1], ARGV[3])
return { grant, v }
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
    refund: Script,
    lease: Script,
    /// On a Redis Cluster: decisions split by slot, endpoint windows leased.
    cluster: bool,
    /// `redis.expected_instances`: how many share an endpoint's budget.
    instances: u64,
    leases: Leases,
    /// Unix ms until which Redis is not called (0 = closed breaker).
    open_until: AtomicU64,
    degraded: AtomicBool,
    /// The `redis_degraded` metric.
    gauge: prometheus::IntGauge,
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
            refund: Script::from_lua(REFUND),
            lease: Script::from_lua(LEASE),
            cluster: false,
            instances: 1,
            leases: Leases::default(),
            open_until: AtomicU64::new(0),
            degraded: AtomicBool::new(false),
            gauge,
        }
    }

    /// On a Redis Cluster shared by `instances`.
    pub fn on_cluster(mut self, instances: u64) -> Shared {
        self.cluster = true;
        self.instances = instances;
        self
    }

    pub fn instances(&self) -> u64 {
        self.instances
    }

    fn key(&self, key: impl std::fmt::Display) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The cluster slot of `key` (the prefix has no braces, so the hash tag is the key's own).
    pub fn slot(&self, key: impl std::fmt::Display) -> u16 {
        fred::util::redis_keyslot(self.key(key).as_bytes())
    }

    /// `keys` grouped by slot (one group on a single Redis), each group's positions in order.
    fn by_slot(&self, keys: &[String]) -> Vec<Vec<usize>> {
        if !self.cluster {
            return vec![(0..keys.len()).collect()];
        }
        let mut groups: Vec<(u16, Vec<usize>)> = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let slot = self.slot(key);
            match groups.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, group)) => group.push(i),
                None => groups.push((slot, vec![i])),
            }
        }
        groups.into_iter().map(|(_, g)| g).collect()
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
        if unix_now_ms() < self.open_until.load(Ordering::Relaxed) {
            return None;
        }
        if !client.is_connected() {
            self.failed("not connected");
            return None;
        }
        Some(client)
    }

    fn failed(&self, error: &str) {
        self.open_until.store(
            unix_now_ms() + OPEN_FOR.as_millis() as u64,
            Ordering::Relaxed,
        );
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
        self.check_at(rules, consume, unix_now_ms()).await
    }

    /// `check` as of `now` (Unix ms): the parity test runs the same vectors through both
    /// engines at the same instants.
    pub async fn check_at(&self, rules: &[Rule], consume: bool, now: u64) -> Option<Decision> {
        if self.cluster {
            return cluster::check(self, &self.leases, rules, consume, now).await;
        }
        self.run_script(rules, consume, now).await
    }

    /// Every rule in one `check.lua` call (on a cluster, rules of one slot, borrowed).
    pub(super) async fn run_script<R: Borrow<Rule>>(
        &self,
        rules: &[R],
        consume: bool,
        now: u64,
    ) -> Option<Decision> {
        let rules: Vec<&Rule> = rules.iter().map(Borrow::borrow).collect();
        let keys: Vec<String> = rules.iter().map(|r| self.key(&r.key)).collect();
        let mut args: Vec<String> = vec![now.to_string(), if consume { "1" } else { "0" }.into()];
        for rule in &rules {
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

    /// Give back what a consumed `run_script` of `rules` took.
    pub(super) async fn refund(&self, rules: &[&Rule]) -> Option<()> {
        let keys: Vec<String> = rules.iter().map(|r| self.key(&r.key)).collect();
        let kinds = rules.iter().map(|r| match r.shape {
            Shape::Bucket { .. } => "b".to_string(),
            _ => "c".to_string(),
        });
        let args: Vec<String> = kinds
            .chain(rules.iter().map(|r| r.capacity(1).to_string()))
            .collect();
        let _: i64 = self
            .call(|client| self.refund.evalsha_with_reload(client, keys, args))
            .await?;
        Some(())
    }

    /// Lease up to `chunk` requests of the window `key` (limit `limit`, expiring at
    /// `expires_at`): the requests granted and the window's total leased.
    pub(super) async fn lease(
        &self,
        key: &CounterKey,
        chunk: u64,
        limit: u64,
        expires_at: u64,
    ) -> Option<(u64, u64)> {
        let args = vec![chunk.to_string(), limit.to_string(), expires_at.to_string()];
        let out: Vec<i64> = self
            .call(|client| {
                self.lease
                    .evalsha_with_reload(client, vec![self.key(key)], args)
            })
            .await?;
        Some((
            u64::try_from(*out.first()?).unwrap_or(0),
            u64::try_from(*out.get(1)?).unwrap_or(0),
        ))
    }

    /// Current values of counters (absent = `None`): one MGET per slot.
    pub async fn values(&self, keys: &[String]) -> Option<Vec<Option<u64>>> {
        let mut out = vec![None; keys.len()];
        for group in self.by_slot(keys) {
            if group.is_empty() {
                continue;
            }
            let names: Vec<String> = group.iter().map(|&i| self.key(&keys[i])).collect();
            let values: Vec<Option<i64>> = self.call(|client| client.mget(names)).await?;
            for (&i, value) in group.iter().zip(values) {
                out[i] = value.map(|v| v.max(0) as u64);
            }
        }
        Some(out)
    }

    /// Add `count` to a counter in one round trip; a counter Redis does not have (it keeps
    /// nothing on disk) starts at `seed`. Its new value.
    pub async fn settle(&self, key: &str, count: u64, seed: u64, expires_at: u64) -> Option<u64> {
        let key = self.key(key);
        let args = vec![count.to_string(), seed.to_string(), expires_at.to_string()];
        let value: i64 = self
            .call(|client| self.settle.evalsha_with_reload(client, vec![key], args))
            .await?;
        Some(value.max(0) as u64)
    }

    /// Add `delta` to a counter that expires at `expires_at` (unix s); its new value.
    pub async fn add(&self, key: &str, delta: i64, expires_at: u64) -> Option<i64> {
        let key = self.key(key);
        let args = vec![delta.to_string(), expires_at.to_string()];
        self.call(|client| self.add.evalsha_with_reload(client, vec![key], args))
            .await
    }

    /// Remove keys (claims forgotten by a quota reset): one DEL per slot.
    pub async fn delete(&self, keys: &[String]) -> Option<()> {
        for group in self.by_slot(keys) {
            let names: Vec<String> = group.iter().map(|&i| self.key(&keys[i])).collect();
            if !names.is_empty() {
                let _: i64 = self.call(|client| client.del(names)).await?;
            }
        }
        Some(())
    }

    /// Claim a once-only event: whether this call was first.
    pub async fn claim(&self, key: &str, expires_at: u64) -> Option<bool> {
        let key = self.key(key);
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
    pub async fn set(&self, key: &CounterKey, value: u64, expires_at: u64) -> Option<()> {
        let key = self.key(key);
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
