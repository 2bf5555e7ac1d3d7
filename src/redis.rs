//! The one way the gateway connects to Redis, for both of its users: the shared counters
//! (`limits::shared`) and the identity bus (`identity::bus`). Every command fails after
//! `redis.timeout_ms` and is not retried (each caller has its answer to a failure: the limits
//! fall back to local counters, a lost invalidation is covered by a reconnect clearing the
//! cache); a lost connection is retried every 250 ms, so shared mode comes back within a
//! fraction of a second of Redis.

use fred::types::config::{Config, ReconnectPolicy};
use fred::types::Builder;
use std::time::Duration;

/// Between reconnection attempts.
const RECONNECT_EVERY_MS: u32 = 250;
/// The least time a connection may take to open.
const MIN_CONNECT: Duration = Duration::from_millis(500);

/// A client builder for `url`; build a `Client` or a `SubscriberClient` from it.
pub fn builder(url: &str, timeout: Duration) -> Result<Builder, String> {
    let config = Config::from_url(url).map_err(|e| format!("redis.url: {e}"))?;
    let mut builder = Builder::from_config(config);
    builder
        .set_policy(ReconnectPolicy::new_constant(0, RECONNECT_EVERY_MS))
        .with_connection_config(|c| {
            c.connection_timeout = timeout.max(MIN_CONNECT);
            c.max_command_attempts = 1;
        })
        .with_performance_config(|p| p.default_command_timeout = timeout);
    Ok(builder)
}
