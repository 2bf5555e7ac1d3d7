//! Usage that outlives a request: reading it back (the usage API), resetting it, and writing
//! it to the database (and, in shared mode, settling with Redis what was counted during an
//! outage).

use super::period::Period;
use super::rules::{self, UserLimits};
use super::thresholds::{self, Quota};
use super::usage::Entry;
use super::{claim_key, Limits};
use crate::db::usage::{self as usage_rows, Write};
use crate::db::{images, Store};
use crate::error::GatewayResult;
use crate::identity::record::format_time;
use chrono::Utc;
use serde_json::json;
use std::sync::Arc;

impl Limits {
    fn requests_used(&self, entry: &Entry) -> u64 {
        self.counters
            .local()
            .value(&rules::requests_key(&entry.user_id, &entry.period))
            .unwrap_or(entry.requests_seed())
    }

    /// Bring entries up to the shared totals (shared mode; no-op otherwise).
    async fn refresh(&self, entries: &[Arc<Entry>]) {
        if matches!(self.counters.usage_writes(), Write::Increments) {
            return;
        }
        let keys: Vec<String> = entries
            .iter()
            .flat_map(|e| {
                [
                    rules::requests_key(&e.user_id, &e.period).to_string(),
                    rules::bandwidth_key(&e.user_id, &e.period).to_string(),
                ]
            })
            .collect();
        if let Some(values) = self.counters.shared_totals(&keys).await {
            for (entry, pair) in entries.iter().zip(values.chunks(2)) {
                if let Some(requests) = pair[0] {
                    entry.observe_requests(requests);
                    self.counters.local().raise(
                        &rules::requests_key(&entry.user_id, &entry.period),
                        requests,
                        entry.period.end.timestamp() as u64,
                    );
                }
                if let Some(bandwidth) = pair[1] {
                    entry.observe_bandwidth(bandwidth);
                }
            }
        }
    }

    /// The quota document (`QuotaReport` in docs/openapi.json) for `user_id` with effective `limits`.
    pub async fn report(
        &self,
        store: &Store,
        user_id: &str,
        limits: &UserLimits,
    ) -> GatewayResult<serde_json::Value> {
        let period = Period::containing(Utc::now(), limits.reset_day);
        let entry = self.usage.entry(store, user_id, &period).await?;
        self.refresh(std::slice::from_ref(&entry)).await;
        // Without waiting behind a flush (which absorbs too) or other readers: this route has
        // no rate limit, and the lock also orders flushes and resets.
        if let Ok(_writing) = self.writing.try_lock() {
            self.absorb_stored(store, std::slice::from_ref(&entry))
                .await?;
        }
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
        let _writing = self.writing.lock().await;
        let period = Period::containing(Utc::now(), reset_day);
        let entry = self.usage.entry(store, user_id, &period).await?;
        for e in self.usage.of_user(user_id).into_iter().chain([entry]) {
            e.reset();
            let end = e.period.end.timestamp() as u64;
            let counters = [
                rules::requests_key(&e.user_id, &e.period),
                rules::bandwidth_key(&e.user_id, &e.period),
            ];
            let claims: Vec<String> = [Quota::Requests, Quota::Bandwidth, Quota::Storage]
                .into_iter()
                .flat_map(|q| thresholds::LEVELS.map(|pct| claim_key(&e, q, pct)))
                .collect();
            self.counters.reset(&counters, &claims, end).await?;
            let zero = entity::usage::Model {
                user_id: e.user_id.clone(),
                period_start: e.period.start,
                requests: 0,
                bandwidth_bytes: 0,
                announced: 0,
                updated_at: Utc::now(),
            };
            usage_rows::write(store, vec![zero], usage_rows::Write::Totals).await?;
        }
        Ok(())
    }

    /// Another instance reset `user_id`'s usage: zero what this one holds (no writes).
    pub fn forget(&self, user_id: &str) {
        for e in self.usage.of_user(user_id) {
            e.reset();
            let end = e.period.end.timestamp() as u64;
            self.counters
                .local()
                .set(&rules::requests_key(&e.user_id, &e.period), 0, end);
        }
    }

    /// Write changed usage to the database (every `quotas.flush_interval` and at shutdown);
    /// in shared mode, first settle what was counted locally during a Redis outage and read
    /// the shared totals.
    pub async fn flush(&self, store: &Store) -> GatewayResult<()> {
        let _writing = self.writing.lock().await;
        self.counters.settle_owed().await;
        self.refresh(&self.usage.dirty()).await;
        let taken = self.usage.take_dirty(Utc::now(), |e| self.requests_used(e));
        if taken.is_empty() {
            return Ok(());
        }
        let how = self.counters.usage_writes();
        let rows = if matches!(how, Write::Totals) {
            taken.iter().map(|(_, row)| row.clone()).collect()
        } else {
            taken
                .iter()
                .map(|(entry, row)| {
                    let (requests, bandwidth) =
                        entry.unflushed(row.requests as u64, row.bandwidth_bytes as u64);
                    entity::usage::Model {
                        requests,
                        bandwidth_bytes: bandwidth,
                        ..row.clone()
                    }
                })
                .collect()
        };
        for (entry, row) in &taken {
            for (quota, value) in [
                (Quota::Requests, row.requests),
                (Quota::Bandwidth, row.bandwidth_bytes),
            ] {
                self.metrics
                    .quota_usage
                    .with_label_values(&[&entry.user_id, quota.name()])
                    .set(value);
            }
        }
        let result = usage_rows::write(store, rows, how).await;
        for (entry, row) in &taken {
            match result {
                Ok(()) => entry.flushed(row.requests as u64, row.bandwidth_bytes as u64),
                // Retried by the next flush.
                Err(_) => entry.touch(),
            }
        }
        result?;
        let entries: Vec<Arc<Entry>> = taken.into_iter().map(|(e, _)| e).collect();
        // The write went through; a failed read-back is retried with the next flush's entries
        // (or the next usage report) and is no reason to call this flush failed.
        if let Err(e) = self.absorb_stored(store, &entries).await {
            log::warn!(
                "{}",
                json!({"event": "usage_absorb_failed", "error": e.to_string()})
            );
        }
        Ok(())
    }

    /// Embedded mode: take in what other processes added to the stored rows of `entries` since
    /// this one last wrote them (an upgrade's predecessor counts until it exits, after this
    /// process loaded the rows), so the usage this process admits by and reports is the
    /// stored total. Callers hold `writing`, so no write of this process is half seen.
    async fn absorb_stored(&self, store: &Store, entries: &[Arc<Entry>]) -> GatewayResult<()> {
        if matches!(self.counters.usage_writes(), Write::Totals) || entries.is_empty() {
            return Ok(());
        }
        let by_key: std::collections::HashMap<(&str, i64), &Arc<Entry>> = entries
            .iter()
            .map(|e| ((e.user_id.as_str(), e.period.start.timestamp()), e))
            .collect();
        let keys: Vec<_> = entries
            .iter()
            .map(|e| (e.user_id.clone(), e.period.start))
            .collect();
        for row in usage_rows::find_many(store, &keys).await? {
            let Some(entry) = by_key.get(&(row.user_id.as_str(), row.period_start.timestamp()))
            else {
                continue;
            };
            let (requests, bandwidth) = entry.external(
                row.requests.max(0) as u64,
                row.bandwidth_bytes.max(0) as u64,
            );
            if requests > 0 {
                self.counters.local().add(
                    &rules::requests_key(&entry.user_id, &entry.period),
                    requests,
                    entry.requests_seed(),
                    entry.period.end.timestamp() as u64,
                );
            }
            entry.take_in(requests, bandwidth);
        }
        Ok(())
    }
}
