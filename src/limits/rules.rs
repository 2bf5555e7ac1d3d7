//! The limits one request is checked against, as data: the same rules drive the in-process
//! engine, the Redis script, the response headers and the usage API.

use super::period::Period;
use super::usage::Entry;
use crate::config::Config;
use crate::identity::model::{QuotaOverride, RateLimitOverride};
use crate::identity::Identity;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Ip,
    UserMinute,
    UserHour,
    Api,
    /// The monthly request quota (402, not 429).
    Requests,
}

impl Kind {
    /// `limit_type` of metrics and errors.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ip => "ip",
            Kind::UserMinute => "user_minute",
            Kind::UserHour => "user_hour",
            Kind::Api => "api",
            Kind::Requests => "requests",
        }
    }

    /// Policy name of the IETF `RateLimit` headers.
    pub fn policy(self) -> &'static str {
        match self {
            Kind::Ip => "ip",
            Kind::UserMinute => "user-minute",
            Kind::UserHour => "user-hour",
            Kind::Api => "api",
            Kind::Requests => "monthly-requests",
        }
    }

    pub fn is_quota(self) -> bool {
        self == Kind::Requests
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// Token bucket of `limit` tokens refilled at `per_minute` / 60 per second.
    Bucket { per_minute: u64 },
    /// Fixed window `[start, start + secs)` aligned to the Unix epoch.
    Window { start: u64, secs: u64 },
    /// A quota period `[start, end)`; `seed` is the usage already recorded when the counter is
    /// first created (from the database).
    Period { start: u64, end: u64, seed: u64 },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub kind: Kind,
    /// The counter's name, unique per subject and window.
    pub key: String,
    pub limit: u64,
    pub shape: Shape,
}

impl Rule {
    /// The limit this instance enforces: rate limits split by `divisor` (one instance's share
    /// while the shared store is unreachable), quotas never.
    pub fn capacity(&self, divisor: u64) -> u64 {
        if self.kind.is_quota() {
            self.limit
        } else {
            (self.limit / divisor.max(1)).max(1)
        }
    }

    /// Tokens a bucket gains per millisecond.
    fn rate(&self, divisor: u64) -> f64 {
        match self.shape {
            Shape::Bucket { per_minute } => {
                (per_minute as f64 / divisor.max(1) as f64).max(1.0) / 60_000.0
            }
            _ => 0.0,
        }
    }

    /// A bucket's tokens after `elapsed_ms` of refill.
    pub fn refill(&self, tokens: f64, elapsed_ms: u64, divisor: u64) -> f64 {
        (tokens + elapsed_ms as f64 * self.rate(divisor)).min(self.capacity(divisor) as f64)
    }

    fn count(&self, current: f64, limit: u64, reset: u64, window: u64) -> (bool, Standing) {
        let used = current as u64;
        let admitted = used < limit;
        let after = used + u64::from(admitted);
        let standing = Standing {
            kind: self.kind,
            limit,
            remaining: limit.saturating_sub(after),
            reset,
            window,
        };
        (admitted, standing)
    }

    /// Where the rule stands without taking anything (the answer to a refused request).
    pub fn look(&self, current: f64, now_ms: u64, divisor: u64) -> Standing {
        let (admitted, mut standing) = self.judge(current, now_ms, divisor);
        if admitted {
            standing.remaining += 1;
        }
        standing
    }

    /// Given the current value (a bucket's tokens after refill, or a counter's count before
    /// this request), whether the rule admits one more request and where it then stands.
    pub fn judge(&self, current: f64, now_ms: u64, divisor: u64) -> (bool, Standing) {
        let now = now_ms / 1000;
        let limit = self.capacity(divisor);
        let standing = |remaining: u64, reset: u64, window: u64| Standing {
            kind: self.kind,
            limit,
            remaining,
            reset,
            window,
        };
        match self.shape {
            Shape::Bucket { .. } => {
                let rate = self.rate(divisor);
                let admitted = current >= 1.0;
                let after = if admitted { current - 1.0 } else { current };
                let wait_ms = if admitted {
                    (limit as f64 - after) / rate
                } else {
                    (1.0 - current) / rate
                };
                let window = (limit as f64 / rate / 1000.0).ceil() as u64;
                let reset = now + (wait_ms / 1000.0).ceil().max(0.0) as u64;
                (admitted, standing(after.floor() as u64, reset, window))
            }
            Shape::Window { start, secs } => self.count(current, limit, start + secs, secs),
            Shape::Period { start, end, .. } => self.count(current, limit, end, end - start),
        }
    }
}

/// Where one rule stands after a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Standing {
    pub kind: Kind,
    pub limit: u64,
    pub remaining: u64,
    /// Unix seconds when the counter resets (bucket: when it is full again, or when the next
    /// token arrives while it is empty).
    pub reset: u64,
    /// Seconds of the policy's window (`w` of `RateLimit-Policy`).
    pub window: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// The first level that refused; nothing was consumed anywhere.
    pub rejected: Option<Kind>,
    pub standings: Vec<Standing>,
    /// Decided by Redis (shared totals), not by this process's fallback.
    pub shared: bool,
}

impl Decision {
    pub fn admitted(&self) -> bool {
        self.rejected.is_none()
    }

    pub fn standing(&self, kind: Kind) -> Option<&Standing> {
        self.standings.iter().find(|s| s.kind == kind)
    }

    /// The rate limit closest to refusing (fewest remaining; of equals, the shortest window).
    pub fn tightest(&self) -> Option<&Standing> {
        self.standings
            .iter()
            .filter(|s| !s.kind.is_quota())
            .min_by_key(|s| (s.remaining, s.window))
    }
}

/// Effective limits of a user: per-user overrides over the configured defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserLimits {
    pub per_minute: Option<u64>,
    pub per_hour: Option<u64>,
    /// 0 = unlimited.
    pub monthly_requests: u64,
    pub monthly_bandwidth_bytes: u64,
    pub storage_bytes: u64,
    pub reset_day: u32,
}

const MB: u64 = 1024 * 1024;

impl UserLimits {
    pub fn of(config: &Config, identity: &Identity) -> UserLimits {
        Self::with(
            config,
            identity.rate_limits.as_ref(),
            identity.quotas.as_ref(),
        )
    }

    /// The configured defaults under a user's overrides.
    pub fn with(
        config: &Config,
        rl: Option<&RateLimitOverride>,
        q: Option<&QuotaOverride>,
    ) -> UserLimits {
        let user = config.rate_limits.user_level.as_ref();
        let d = &config.quotas;
        UserLimits {
            per_minute: rl
                .and_then(|r| r.requests_per_minute)
                .or(user.map(|u| *u.requests_per_minute))
                .map(u64::from),
            per_hour: rl
                .and_then(|r| r.requests_per_hour)
                .or(user.map(|u| *u.requests_per_hour))
                .map(u64::from),
            monthly_requests: q
                .and_then(|q| q.monthly_requests)
                .unwrap_or(*d.monthly_requests),
            monthly_bandwidth_bytes: q
                .and_then(|q| q.monthly_bandwidth_mb)
                .unwrap_or(*d.monthly_bandwidth_mb)
                .saturating_mul(MB),
            storage_bytes: q
                .and_then(|q| q.storage_quota_mb)
                .unwrap_or(*d.storage_quota_mb)
                .saturating_mul(MB),
            reset_day: q.and_then(|q| q.reset_day).unwrap_or(**d.reset_day),
        }
    }
}

fn window(kind: Kind, key: String, limit: u64, secs: u64, now: u64) -> Rule {
    Rule {
        kind,
        key: format!("{key}:{}", now - now % secs),
        limit,
        shape: Shape::Window {
            start: now - now % secs,
            secs,
        },
    }
}

/// The client's IP bucket: its IPv4 address (IPv4-mapped IPv6 included), or its IPv6
/// network of `v6_prefix` bits.
pub fn ip_bucket(ip: IpAddr, v6_prefix: u8) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let prefix = v6_prefix.min(128);
                let net = ipnet::Ipv6Net::new(v6, prefix).map_or(v6, |n| n.trunc().addr());
                format!("{net}/{prefix}")
            }
        },
    }
}

/// The IP level alone (checked before an expensive key verification, and for requests that
/// fail authentication).
pub fn ip_rule(config: &Config, ip: IpAddr) -> Option<Rule> {
    config.rate_limits.ip_level.as_ref().map(|l| Rule {
        kind: Kind::Ip,
        key: format!("ip:{{ip:{}}}", ip_bucket(ip, *l.ipv6_prefix)),
        limit: u64::from(*l.burst),
        shape: Shape::Bucket {
            per_minute: u64::from(*l.requests_per_minute),
        },
    })
}

/// Every level an authenticated request to `endpoint` is checked against, in order. The usage
/// `entry` names the user and period, and seeds the request counter with the stored count.
pub fn request_rules(
    config: &Config,
    limits: &UserLimits,
    entry: &Entry,
    endpoint: &str,
    ip: IpAddr,
    now: u64,
    scope: super::Scope,
) -> Vec<Rule> {
    let (user_id, period) = (entry.user_id.as_str(), &entry.period);
    let mut rules: Vec<Rule> = ip_rule(config, ip)
        .filter(|_| scope.ip_spent.is_none())
        .into_iter()
        .collect();
    if let Some(n) = limits.per_minute {
        rules.push(window(
            Kind::UserMinute,
            format!("um:{}", user_tag(user_id)),
            n,
            60,
            now,
        ));
    }
    if let Some(n) = limits.per_hour {
        rules.push(window(
            Kind::UserHour,
            format!("uh:{}", user_tag(user_id)),
            n,
            3600,
            now,
        ));
    }
    if let Some(api) = config.rate_limits.api_level.get(endpoint) {
        let n = u64::from(*api.requests_per_minute);
        rules.push(window(
            Kind::Api,
            format!("api:{{api:{endpoint}}}"),
            n,
            60,
            now,
        ));
    }
    if scope.metered && limits.monthly_requests > 0 {
        rules.push(Rule {
            kind: Kind::Requests,
            key: requests_key(user_id, period),
            limit: limits.monthly_requests,
            shape: Shape::Period {
                start: period.start.timestamp() as u64,
                end: period.end.timestamp() as u64,
                seed: entry.requests_seed(),
            },
        });
    }
    rules
}

/// The hash tag in every counter of one user (`{u:<id>}`): on a Redis Cluster all of them are
/// on one shard, so one script decides a user's levels together. The IP level and each
/// endpoint have tags of their own (`{ip:…}`, `{api:…}`).
pub fn user_tag(user_id: &str) -> String {
    format!("{{u:{user_id}}}")
}

/// The counter of a user's bandwidth bytes in a period (shared mode).
pub fn bandwidth_key(user_id: &str, period: &Period) -> String {
    format!("qb:{}:{}", user_tag(user_id), period.id())
}

/// The counter of a user's requests in a period.
pub fn requests_key(user_id: &str, period: &Period) -> String {
    format!("qr:{}:{}", user_tag(user_id), period.id())
}

#[cfg(test)]
mod tests {
    use super::ip_bucket;

    #[test]
    fn ipv6_clients_share_their_network_bucket() {
        let bucket = |ip: &str, prefix| ip_bucket(ip.parse().unwrap(), prefix);
        assert_eq!(bucket("203.0.113.7", 64), "203.0.113.7");
        assert_eq!(bucket("::ffff:203.0.113.7", 64), "203.0.113.7");
        assert_eq!(bucket("2001:db8:1:2:aaaa::1", 64), "2001:db8:1:2::/64");
        assert_eq!(
            bucket("2001:db8:1:2:ffff:ffff:ffff:ffff", 64),
            "2001:db8:1:2::/64"
        );
        assert_eq!(bucket("2001:db8:1:2::1", 48), "2001:db8:1::/48");
        assert_eq!(bucket("2001:db8::1", 128), "2001:db8::1/128");
    }
}
