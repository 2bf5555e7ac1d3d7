//! Quota threshold events at 80 %, 90 % and 100 %, each once per user, quota and period: a JSON
//! log line and, when `quotas.webhook_url` is set, a POST sent off the request path (bounded
//! queue, retried with backoff).

use super::usage::Entry;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;

pub const LEVELS: [u64; 3] = [80, 90, 100];

/// How many of this instance's latest events the overview shows.
pub const RECENT: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quota {
    Requests,
    Bandwidth,
    Storage,
}

impl Quota {
    pub fn name(self) -> &'static str {
        match self {
            Quota::Requests => "requests",
            Quota::Bandwidth => "bandwidth_bytes",
            Quota::Storage => "storage_bytes",
        }
    }

    pub fn index(self) -> u32 {
        self as u32
    }
}

/// The highest level reached by `used` of `limit` (0 = unlimited never reaches any).
pub fn reached(used: u64, limit: u64) -> Option<(usize, u64)> {
    if limit == 0 {
        return None;
    }
    LEVELS
        .iter()
        .enumerate()
        .rev()
        .find(|(_, pct)| used.saturating_mul(100) >= limit.saturating_mul(**pct))
        .map(|(i, pct)| (i, *pct))
}

pub struct Notifier {
    queue: Option<mpsc::Sender<serde_json::Value>>,
    /// The latest events, newest last (at most `RECENT`); an event is rare, the lock is cheap.
    recent: Mutex<VecDeque<serde_json::Value>>,
}

impl Notifier {
    /// Without a webhook, events are only logged.
    pub fn new(webhook: Option<String>) -> (Notifier, Option<Sender>) {
        let recent = Mutex::new(VecDeque::with_capacity(RECENT));
        match webhook {
            None => (
                Notifier {
                    queue: None,
                    recent,
                },
                None,
            ),
            Some(url) => {
                let (tx, rx) = mpsc::channel(1024);
                let notifier = Notifier {
                    queue: Some(tx),
                    recent,
                };
                (notifier, Some(Sender { url, rx }))
            }
        }
    }

    /// This instance's latest events, newest first.
    pub fn recent(&self) -> Vec<serde_json::Value> {
        let recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.iter().rev().cloned().collect()
    }

    /// Levels `used` reached that `entry` has not announced this period (now marked).
    pub fn newly_reached(&self, entry: &Entry, quota: Quota, used: u64, limit: u64) -> Vec<u64> {
        let Some((top, _)) = reached(used, limit) else {
            return Vec::new();
        };
        LEVELS
            .iter()
            .enumerate()
            .take(top + 1)
            .filter(|(i, _)| entry.announce(quota.index() * 3 + *i as u32))
            .map(|(_, pct)| *pct)
            .collect()
    }

    /// Log the event and queue it for the webhook.
    pub fn send(&self, entry: &Entry, quota: Quota, percent: u64, used: u64, limit: u64) {
        let event = json!({"event": "quota_threshold", "user_id": entry.user_id,
            "quota": quota.name(), "percent": percent, "used": used, "limit": limit,
            "period_start": crate::identity::record::format_time(&entry.period.start),
            "resets_at": crate::identity::record::format_time(&entry.period.end)});
        log::warn!("{event}");
        {
            let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
            if recent.len() == RECENT {
                recent.pop_front();
            }
            let mut shown = event.clone();
            shown["at"] = crate::identity::record::format_time(&chrono::Utc::now()).into();
            recent.push_back(shown);
        }
        if let Some(queue) = &self.queue {
            if queue.try_send(event).is_err() {
                log::warn!("{}", json!({"event": "webhook_queue_full"}));
            }
        }
    }
}

/// The webhook sender: runs on the state service's runtime until the queue closes.
pub struct Sender {
    url: String,
    rx: mpsc::Receiver<serde_json::Value>,
}

impl Sender {
    pub async fn run(mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        while let Some(event) = self.rx.recv().await {
            let mut delay = Duration::from_millis(500);
            for attempt in 1..=4 {
                match client.post(&self.url).json(&event).send().await {
                    Ok(r) if r.status().is_success() => break,
                    outcome => {
                        let error = match outcome {
                            Ok(r) => format!("status {}", r.status().as_u16()),
                            Err(e) => e.to_string(),
                        };
                        log::warn!(
                            "{}",
                            json!({"event": "webhook_failed", "attempt": attempt, "error": error})
                        );
                        if attempt < 4 {
                            tokio::time::sleep(delay).await;
                            delay *= 2;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_reached() {
        assert_eq!(reached(79, 100), None);
        assert_eq!(reached(80, 100), Some((0, 80)));
        assert_eq!(reached(95, 100), Some((1, 90)));
        assert_eq!(reached(100, 100), Some((2, 100)));
        assert_eq!(reached(500, 100), Some((2, 100)));
        assert_eq!(reached(5, 0), None);
        assert_eq!(reached(8, 10), Some((0, 80)));
        assert_eq!(reached(9, 10), Some((1, 90)));
    }
}
