//! The limits one request is checked against, as data: the same rules drive the in-process
//! engine, the Redis script, the response headers and the usage API.

use super::period::Period;
use super::usage::Entry;
use crate::config::Config;
use crate::identity::model::{QuotaOverride, RateLimitOverride};
use crate::identity::Identity;
use serde::Serialize;
use smallvec::SmallVec;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

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

/// A counter's name, unique per subject and window. Its text (`Display`) names the counter in
/// Redis (`ip:{ip:203.0.113.7}`, `um:{u:alice}:1764892800`, `qr:{u:alice}:20261201`…); the
/// in-process limiter hashes and compares its parts, so a request builds no text: the user's
/// name is shared from the identity snapshot, the rest is numbers and static strings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CounterKey {
    subject: Subject,
    /// The window's start (Unix s), or the quota period's `YYYYMMDD`.
    window: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Subject {
    /// `ip:{ip:<bucket>}`
    Ip(IpBucket),
    /// `api:{api:<endpoint>}`
    Api(&'static str),
    /// `<counter>:{u:<user id>}`
    User(&'static str, Arc<str>),
    /// A name as given (tools and tests).
    Text(Arc<str>),
}

impl CounterKey {
    fn user(counter: &'static str, user: &Arc<str>, window: u64) -> CounterKey {
        CounterKey {
            subject: Subject::User(counter, Arc::clone(user)),
            window: Some(window),
        }
    }
}

impl From<&str> for CounterKey {
    fn from(name: &str) -> CounterKey {
        CounterKey {
            subject: Subject::Text(name.into()),
            window: None,
        }
    }
}

impl fmt::Display for CounterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.subject {
            Subject::Ip(bucket) => write!(f, "ip:{{ip:{bucket}}}")?,
            Subject::Api(endpoint) => write!(f, "api:{{api:{endpoint}}}")?,
            Subject::User(counter, user) => write!(f, "{counter}:{}", UserTag(user))?,
            Subject::Text(name) => f.write_str(name)?,
        }
        match self.window {
            Some(window) => write!(f, ":{window}"),
            None => Ok(()),
        }
    }
}

/// The rules of one request (five levels at most), kept on the stack.
pub type Rules = SmallVec<[Rule; 5]>;

/// Where each rule of a decision stands, in the rules' order.
pub type Standings = SmallVec<[Standing; 6]>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub kind: Kind,
    pub key: CounterKey,
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
    pub standings: Standings,
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

fn window(kind: Kind, subject: Subject, limit: u64, secs: u64, now: u64) -> Rule {
    let start = now - now % secs;
    Rule {
        kind,
        key: CounterKey {
            subject,
            window: Some(start),
        },
        limit,
        shape: Shape::Window { start, secs },
    }
}

/// The IP level's subject: an IPv4 address (IPv4-mapped IPv6 included), or an IPv6 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpBucket {
    V4(Ipv4Addr),
    V6 { network: Ipv6Addr, prefix: u8 },
}

impl fmt::Display for IpBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpBucket::V4(v4) => write!(f, "{v4}"),
            IpBucket::V6 { network, prefix } => write!(f, "{network}/{prefix}"),
        }
    }
}

/// The client's IP bucket: its IPv4 address (IPv4-mapped IPv6 included), or its IPv6
/// network of `v6_prefix` bits.
pub fn ip_bucket(ip: IpAddr, v6_prefix: u8) -> IpBucket {
    match ip {
        IpAddr::V4(v4) => IpBucket::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpBucket::V4(v4),
            None => {
                let prefix = v6_prefix.min(128);
                let network = ipnet::Ipv6Net::new(v6, prefix).map_or(v6, |n| n.trunc().addr());
                IpBucket::V6 { network, prefix }
            }
        },
    }
}

/// The IP level alone (checked before an expensive key verification, and for requests that
/// fail authentication).
pub fn ip_rule(config: &Config, ip: IpAddr) -> Option<Rule> {
    config.rate_limits.ip_level.as_ref().map(|l| Rule {
        kind: Kind::Ip,
        key: CounterKey {
            subject: Subject::Ip(ip_bucket(ip, *l.ipv6_prefix)),
            window: None,
        },
        limit: u64::from(*l.burst),
        shape: Shape::Bucket {
            per_minute: u64::from(*l.requests_per_minute),
        },
    })
}

/// Every level an authenticated request to `endpoint` is checked against, in order. The usage
/// `entry` names the user and period, and seeds the request counter with the stored count;
/// `user` is the user's id as the identity snapshot shares it.
#[allow(clippy::too_many_arguments)]
pub fn request_rules(
    config: &Config,
    limits: &UserLimits,
    entry: &Entry,
    user: &Arc<str>,
    endpoint: &'static str,
    ip: IpAddr,
    now: u64,
    scope: super::Scope,
) -> Rules {
    let period = &entry.period;
    let mut rules: Rules = ip_rule(config, ip)
        .filter(|_| scope.ip_spent.is_none())
        .into_iter()
        .collect();
    let of_user = |counter| Subject::User(counter, Arc::clone(user));
    if let Some(n) = limits.per_minute {
        rules.push(window(Kind::UserMinute, of_user("um"), n, 60, now));
    }
    if let Some(n) = limits.per_hour {
        rules.push(window(Kind::UserHour, of_user("uh"), n, 3600, now));
    }
    if let Some(api) = config.rate_limits.api_level.get(endpoint) {
        let n = u64::from(*api.requests_per_minute);
        rules.push(window(Kind::Api, Subject::Api(endpoint), n, 60, now));
    }
    if scope.metered && limits.monthly_requests > 0 {
        rules.push(Rule {
            kind: Kind::Requests,
            key: CounterKey::user("qr", user, period.number()),
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
    UserTag(user_id).to_string()
}

struct UserTag<'a>(&'a str);

impl fmt::Display for UserTag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{u:{}}}", self.0)
    }
}

/// The counter of a user's bandwidth bytes in a period (shared mode).
pub fn bandwidth_key(user_id: &str, period: &Period) -> CounterKey {
    CounterKey::user("qb", &user_id.into(), period.number())
}

/// The counter of a user's requests in a period.
pub fn requests_key(user_id: &str, period: &Period) -> CounterKey {
    CounterKey::user("qr", &user_id.into(), period.number())
}

#[cfg(test)]
mod tests {
    use super::ip_bucket;

    #[test]
    fn ipv6_clients_share_their_network_bucket() {
        let bucket = |ip: &str, prefix| ip_bucket(ip.parse().unwrap(), prefix).to_string();
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

    /// The names Redis knows the counters by (they outlive a process: an upgrade's old and
    /// new process share them).
    #[test]
    fn counter_names_in_redis() {
        use super::*;
        let user: Arc<str> = "alice".into();
        let ip = |ip: &str| CounterKey {
            subject: Subject::Ip(ip_bucket(ip.parse().unwrap(), 64)),
            window: None,
        };
        assert_eq!(ip("203.0.113.7").to_string(), "ip:{ip:203.0.113.7}");
        assert_eq!(
            ip("2001:db8:1:2::1").to_string(),
            "ip:{ip:2001:db8:1:2::/64}"
        );
        let minute = window(
            Kind::UserMinute,
            Subject::User("um", user.clone()),
            5,
            60,
            130,
        );
        assert_eq!(minute.key.to_string(), "um:{u:alice}:120");
        let api = window(Kind::Api, Subject::Api("/api/v1/convert"), 5, 60, 130);
        assert_eq!(api.key.to_string(), "api:{api:/api/v1/convert}:120");
        let period = super::super::period::Period::containing(
            chrono::DateTime::from_timestamp(1_764_892_800, 0).unwrap(),
            1,
        );
        assert_eq!(
            requests_key("alice", &period).to_string(),
            "qr:{u:alice}:20251201"
        );
        assert_eq!(
            bandwidth_key("alice", &period).to_string(),
            "qb:{u:alice}:20251201"
        );
        assert_eq!(
            CounterKey::user("qr", &user, period.number()),
            requests_key("alice", &period)
        );
        assert_eq!(CounterKey::from("x:y").to_string(), "x:y");
    }
}
