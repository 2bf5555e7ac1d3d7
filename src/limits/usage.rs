//! Quota usage in this process: one entry per user and period, loaded from the database on first
//! use and written back by the flusher (every `quotas.flush_interval`, and at shutdown). The
//! request count itself lives in the limiter's counter for the period (seeded from the entry),
//! so the number that admits requests is the number reported and stored.

use super::period::Period;
use crate::db::{usage, Store};
use crate::error::GatewayResult;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub struct Entry {
    pub user_id: String,
    pub period: Period,
    /// The highest request count known here besides the limiter's own counter: the database's
    /// when loaded, then the shared totals seen (the seed of a counter Redis lost).
    requests_seed: AtomicU64,
    bandwidth: AtomicU64,
    announced: AtomicU32,
    dirty: AtomicBool,
    /// Requests and bandwidth already in the database from this process (embedded mode writes
    /// the difference, so two processes during an upgrade never overwrite each other).
    flushed_requests: AtomicU64,
    flushed_bandwidth: AtomicU64,
}

impl Entry {
    pub fn requests_seed(&self) -> u64 {
        self.requests_seed.load(Ordering::Relaxed)
    }

    /// A request total seen elsewhere (Redis).
    pub fn observe_requests(&self, total: u64) {
        self.requests_seed.fetch_max(total, Ordering::Relaxed);
    }

    /// A bandwidth total seen elsewhere (Redis); the total now known.
    pub fn observe_bandwidth(&self, total: u64) -> u64 {
        self.bandwidth
            .fetch_max(total, Ordering::Relaxed)
            .max(total)
    }

    pub fn bandwidth(&self) -> u64 {
        self.bandwidth.load(Ordering::Relaxed)
    }

    /// Count `bytes`; the total before and after.
    pub fn add_bandwidth(&self, bytes: u64) -> (u64, u64) {
        let before = self.bandwidth.fetch_add(bytes, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
        (before, before + bytes)
    }

    pub fn touch(&self) {
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Mark threshold `bit` as announced; whether it was new.
    pub fn announce(&self, bit: u32) -> bool {
        let mask = 1 << bit;
        let before = self.announced.fetch_or(mask, Ordering::Relaxed);
        if before & mask == 0 {
            self.dirty.store(true, Ordering::Relaxed);
            return true;
        }
        false
    }

    /// What a write of these totals adds to the database row.
    pub fn unflushed(&self, requests: u64, bandwidth: u64) -> (i64, i64) {
        (
            requests as i64 - self.flushed_requests.load(Ordering::Relaxed) as i64,
            bandwidth as i64 - self.flushed_bandwidth.load(Ordering::Relaxed) as i64,
        )
    }

    pub fn flushed(&self, requests: u64, bandwidth: u64) {
        self.flushed_requests.store(requests, Ordering::Relaxed);
        self.flushed_bandwidth.store(bandwidth, Ordering::Relaxed);
    }

    /// What other processes added to the stored row (`stored_*`, read after this process's
    /// last write): an upgrade's predecessor writes its last counts when it exits, after this
    /// process loaded the row. `(requests, bandwidth)`.
    pub fn external(&self, stored_requests: u64, stored_bandwidth: u64) -> (u64, u64) {
        (
            stored_requests.saturating_sub(self.flushed_requests.load(Ordering::Relaxed)),
            stored_bandwidth.saturating_sub(self.flushed_bandwidth.load(Ordering::Relaxed)),
        )
    }

    /// Count what `external` found as already stored (the caller has added the requests to the
    /// limiter's counter first, so no request built with the older seed misses them).
    pub fn take_in(&self, requests: u64, bandwidth: u64) {
        self.flushed_requests.fetch_add(requests, Ordering::Relaxed);
        self.flushed_bandwidth
            .fetch_add(bandwidth, Ordering::Relaxed);
        self.requests_seed.fetch_add(requests, Ordering::Relaxed);
        self.bandwidth.fetch_add(bandwidth, Ordering::Relaxed);
    }

    pub fn reset(&self) {
        self.requests_seed.store(0, Ordering::Relaxed);
        self.flushed(0, 0);
        self.bandwidth.store(0, Ordering::Relaxed);
        self.announced.store(0, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
    }
}

const SHARDS: usize = 16;

/// Hashes user ids and period starts: fast, and keyed at random per process (user ids are
/// chosen by operators, but need not be trusted to spread well).
type Hashing = foldhash::fast::RandomState;

/// Period start → user id → entry, in shards by user, so the per-request lookup takes one
/// short lock among many and allocates nothing.
type Shard = HashMap<i64, HashMap<String, Arc<Entry>, Hashing>, Hashing>;

pub struct UsageBook {
    shards: Vec<Mutex<Shard>>,
    /// Picks a user's shard (keyed apart from the maps' own hashers).
    spread: Hashing,
}

impl Default for UsageBook {
    fn default() -> Self {
        UsageBook {
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
            spread: Hashing::default(),
        }
    }
}

impl UsageBook {
    fn shard(&self, user_id: &str) -> std::sync::MutexGuard<'_, Shard> {
        use std::hash::BuildHasher;
        self.shards[(self.spread.hash_one(user_id) as usize) % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Every entry for which `keep` holds.
    fn all(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Arc<Entry>> {
        self.shards
            .iter()
            .flat_map(|shard| {
                let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
                shard
                    .values()
                    .flat_map(|users| users.values())
                    .filter(|e| keep(e))
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The entry of `user_id` for `period`, loading it from the database the first time.
    pub async fn entry(
        &self,
        store: &Store,
        user_id: &str,
        period: &Period,
    ) -> GatewayResult<Arc<Entry>> {
        let start = period.start.timestamp();
        let cached = self
            .shard(user_id)
            .get(&start)
            .and_then(|users| users.get(user_id))
            .cloned();
        if let Some(entry) = cached {
            return Ok(entry);
        }
        // Boxed: a database read's future is large, and needed once per user and period.
        let row = Box::pin(usage::find(store, user_id, period.start)).await?;
        let (requests, bandwidth) = row.as_ref().map_or((0, 0), |r| {
            (r.requests.max(0) as u64, r.bandwidth_bytes.max(0) as u64)
        });
        let entry = Arc::new(Entry {
            user_id: user_id.to_string(),
            period: *period,
            requests_seed: AtomicU64::new(requests),
            bandwidth: AtomicU64::new(bandwidth),
            flushed_requests: AtomicU64::new(requests),
            flushed_bandwidth: AtomicU64::new(bandwidth),
            announced: AtomicU32::new(row.as_ref().map_or(0, |r| r.announced as u32)),
            dirty: AtomicBool::new(false),
        });
        Ok(self
            .shard(user_id)
            .entry(start)
            .or_default()
            .entry(user_id.to_string())
            .or_insert(entry)
            .clone())
    }

    /// Entries changed since the last call, each with a row of its totals (request count as
    /// given by `requests`). Entries of ended periods are dropped once written.
    pub fn take_dirty(
        &self,
        now: DateTime<Utc>,
        requests: impl Fn(&Entry) -> u64,
    ) -> Vec<(Arc<Entry>, entity::usage::Model)> {
        let rows = self
            .all(|e| e.dirty.swap(false, Ordering::Relaxed))
            .into_iter()
            .map(|e| {
                let row = entity::usage::Model {
                    user_id: e.user_id.clone(),
                    period_start: e.period.start,
                    requests: requests(&e) as i64,
                    bandwidth_bytes: e.bandwidth() as i64,
                    announced: e.announced.load(Ordering::Relaxed) as i32,
                    updated_at: now,
                };
                (e, row)
            })
            .collect();
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            for users in shard.values_mut() {
                users.retain(|_, e| e.period.end > now || e.dirty.load(Ordering::Relaxed));
            }
            shard.retain(|_, users| !users.is_empty());
        }
        rows
    }

    /// Entries changed since the last flush (left marked).
    pub fn dirty(&self) -> Vec<Arc<Entry>> {
        self.all(|e| e.dirty.load(Ordering::Relaxed))
    }

    /// Every entry of `user_id` (quota reset).
    pub fn of_user(&self, user_id: &str) -> Vec<Arc<Entry>> {
        self.shard(user_id)
            .values()
            .filter_map(|users| users.get(user_id).cloned())
            .collect()
    }
}
