//! Cache invalidation across instances: every change is published on a Redis channel and every
//! instance drops what it invalidates. Without `redis.url` (embedded mode) only this process
//! exists and publishing is a no-op. When the subscription drops, messages may have been missed,
//! so a reconnect clears the whole cache.

use super::cache::Change;
use crate::redis::builder;
use fred::clients::{Client, SubscriberClient};
use fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use std::sync::OnceLock;
use std::time::Duration;

/// The channel, after `redis.key_prefix`.
const CHANNEL: &str = "identity";

pub struct Bus {
    url: Option<String>,
    channel: String,
    timeout: Duration,
    publisher: OnceLock<Client>,
}

impl Bus {
    pub fn new(url: Option<String>, prefix: &str, timeout: Duration) -> Bus {
        Bus {
            url,
            channel: format!("{prefix}{CHANNEL}"),
            timeout,
            publisher: OnceLock::new(),
        }
    }

    pub fn shared(&self) -> bool {
        self.url.is_some()
    }

    /// `disabled` (embedded mode), `ok` or `unavailable`, for `/api/v1/health`.
    pub fn status(&self) -> &'static str {
        match (self.shared(), self.publisher.get()) {
            (false, _) => "disabled",
            (true, Some(client)) if client.is_connected() => "ok",
            (true, _) => "unavailable",
        }
    }

    /// Connect the publisher. The client lives on the runtime that calls this, which must
    /// outlive every publish (the state service's, or the CLI's).
    pub fn connect_publisher(&self) -> Result<(), String> {
        let Some(url) = &self.url else {
            return Ok(());
        };
        let client = builder(url, self.timeout)?
            .build()
            .map_err(|e| format!("redis: {e}"))?;
        client.connect();
        let _ = self.publisher.set(client);
        Ok(())
    }

    /// Wait until the publisher is connected, up to `wait`.
    pub async fn wait_connected(&self, wait: Duration) -> bool {
        match self.publisher.get() {
            Some(client) => tokio::time::timeout(wait, client.wait_for_connect())
                .await
                .is_ok_and(|r| r.is_ok()),
            None => !self.shared(),
        }
    }

    /// Tell every instance; a failure only delays other instances until their cache TTL.
    pub async fn publish(&self, change: &Change) {
        let Some(client) = self.publisher.get() else {
            return;
        };
        let message = serde_json::to_string(change).unwrap_or_default();
        let sent = tokio::time::timeout(
            self.timeout,
            client.publish::<i64, _, _>(self.channel.as_str(), message),
        )
        .await;
        if !matches!(sent, Ok(Ok(_))) {
            log::warn!(
                "{}",
                serde_json::json!({"event": "invalidation_publish_failed", "change": change,
                    "error": match sent { Ok(Err(e)) => e.to_string(), _ => "timeout".into() }})
            );
        }
    }

    /// Apply every published change to `auth` until `stop` resolves; reconnects by itself.
    pub async fn subscribe(
        &self,
        apply: impl Fn(&Change),
        stop: impl std::future::Future<Output = ()>,
    ) {
        let Some(url) = &self.url else {
            return stop.await;
        };
        let subscriber: SubscriberClient = match builder(url, self.timeout).and_then(|b| {
            b.build_subscriber_client()
                .map_err(|e| format!("redis: {e}"))
        }) {
            Ok(s) => s,
            Err(e) => {
                log::error!(
                    "{}",
                    serde_json::json!({"event": "invalidation_disabled", "error": e})
                );
                return stop.await;
            }
        };
        let mut messages = subscriber.message_rx();
        let mut reconnects = subscriber.reconnect_rx();
        subscriber.connect();
        let _resubscribe = subscriber.manage_subscriptions();
        let subscribed = async {
            loop {
                if subscriber.wait_for_connect().await.is_ok()
                    && subscriber.subscribe(self.channel.as_str()).await.is_ok()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        let listen = async {
            subscribed.await;
            log::info!(
                "{}",
                serde_json::json!({"event": "invalidation_subscribed", "channel": self.channel})
            );
            loop {
                tokio::select! {
                    message = messages.recv() => match message {
                        Ok(message) => {
                            let text = message.value.as_str().map(|s| s.to_string()).unwrap_or_default();
                            match serde_json::from_str::<Change>(&text) {
                                Ok(change) => apply(&change),
                                Err(_) => apply(&Change::All),
                            }
                        }
                        // Lagged behind: some changes are unknown, forget everything.
                        Err(_) => apply(&Change::All),
                    },
                    Ok(_) = reconnects.recv() => {
                        log::warn!("{}", serde_json::json!({"event": "invalidation_reconnected"}));
                        apply(&Change::All);
                    }
                }
            }
        };
        tokio::select! {
            _ = listen => {}
            _ = stop => {}
        }
        let _ = subscriber.quit().await;
    }
}
