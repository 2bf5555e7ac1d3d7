//! Response headers that tell a client where it stands: `X-RateLimit-*` and the IETF draft-10
//! `RateLimit-Policy`/`RateLimit` for the tightest rate limit, `X-Quota-*` for the monthly
//! request quota.

use super::rules::{Decision, Kind, Standing};
use bytes::{BufMut, BytesMut};
use http::{HeaderName, HeaderValue};

/// Header names with their values; the values of one request share one buffer. The names are
/// built once (`from_static`), so a header costs no parsing or copy of its name.
pub type Headers = Vec<(HeaderName, HeaderValue)>;

pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub static X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");
pub static RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
pub static RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
pub static X_QUOTA_LIMIT: HeaderName = HeaderName::from_static("x-quota-limit");
pub static X_QUOTA_REMAINING: HeaderName = HeaderName::from_static("x-quota-remaining");
pub static X_QUOTA_RESET: HeaderName = HeaderName::from_static("x-quota-reset");

/// The headers of `decision` at `now`: every value is written into one buffer, and each header
/// value is a slice of it, so the whole set costs a buffer and a list.
pub fn render(decision: &Decision, now: u64) -> Headers {
    let tightest = decision.tightest();
    let quota = decision.standing(Kind::Requests);
    if tightest.is_none() && quota.is_none() {
        return Headers::new();
    }
    let mut values = Values::default();
    if let Some(t) = tightest {
        values.numbers(
            [
                &X_RATELIMIT_LIMIT,
                &X_RATELIMIT_REMAINING,
                &X_RATELIMIT_RESET,
            ],
            t,
        );
        let policies = decision.standings.iter().filter(|s| !s.kind.is_quota());
        for (i, s) in policies.enumerate() {
            // `"user-minute";q=1000;w=60`, comma-separated
            values.text(if i == 0 { "\"" } else { ", \"" });
            values.text(s.kind.policy());
            values.text("\";q=");
            values.number(s.limit);
            values.text(";w=");
            values.number(s.window);
        }
        values.end(&RATELIMIT_POLICY);
        // `"user-minute";r=998;t=42`
        values.text("\"");
        values.text(t.kind.policy());
        values.text("\";r=");
        values.number(t.remaining);
        values.text(";t=");
        values.number(t.reset.saturating_sub(now));
        values.end(&RATELIMIT);
    }
    if let Some(q) = quota {
        values.numbers([&X_QUOTA_LIMIT, &X_QUOTA_REMAINING, &X_QUOTA_RESET], q);
    }
    values.headers()
}

/// Header values written one after another into one buffer, each ended by its name.
struct Values {
    text: BytesMut,
    /// Each value's name and where it ends in `text`.
    ends: [(&'static HeaderName, usize); 8],
    count: usize,
}

impl Default for Values {
    fn default() -> Values {
        Values {
            text: BytesMut::with_capacity(256),
            ends: [(&X_RATELIMIT_LIMIT, 0); 8],
            count: 0,
        }
    }
}

impl Values {
    /// What was written since the last end is the value of `name`.
    fn end(&mut self, name: &'static HeaderName) {
        if let Some(slot) = self.ends.get_mut(self.count) {
            *slot = (name, self.text.len());
            self.count += 1;
        }
    }

    /// The limit, remaining and reset of `s`, under `names`.
    fn numbers(&mut self, names: [&'static HeaderName; 3], s: &Standing) {
        for (name, value) in names.into_iter().zip([s.limit, s.remaining, s.reset]) {
            self.number(value);
            self.end(name);
        }
    }

    fn text(&mut self, text: &str) {
        self.text.put_slice(text.as_bytes());
    }

    fn number(&mut self, n: u64) {
        self.text(itoa::Buffer::new().format(n));
    }

    fn headers(self) -> Headers {
        let all = self.text.freeze();
        let mut start = 0;
        let mut headers = Headers::with_capacity(self.count);
        for &(name, stop) in &self.ends[..self.count] {
            if let Ok(value) = HeaderValue::from_maybe_shared(all.slice(start..stop)) {
                headers.push((name.clone(), value));
            }
            start = stop;
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::rules::Standing;

    #[test]
    fn the_tightest_limit_and_every_policy() {
        let s = |kind, limit, remaining, reset, window| Standing {
            kind,
            limit,
            remaining,
            reset,
            window,
        };
        let d = Decision {
            rejected: None,
            standings: smallvec::smallvec![
                s(Kind::Ip, 20, 19, 1_001, 20),
                s(Kind::UserMinute, 1000, 998, 1_042, 60),
                s(Kind::UserHour, 5000, 4000, 3_600, 3600),
                s(Kind::Requests, 100_000, 5, 2_000_000, 2_592_000),
            ],
            shared: false,
        };
        let h: std::collections::HashMap<String, String> = render(&d, 1_000)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        assert_eq!(h.len(), 8);
        assert_eq!(h["x-ratelimit-limit"], "20");
        assert_eq!(h["x-ratelimit-remaining"], "19");
        assert_eq!(h["x-ratelimit-reset"], "1001");
        assert_eq!(h["ratelimit"], "\"ip\";r=19;t=1");
        assert_eq!(
            h["ratelimit-policy"],
            "\"ip\";q=20;w=20, \"user-minute\";q=1000;w=60, \"user-hour\";q=5000;w=3600"
        );
        assert_eq!(h["x-quota-limit"], "100000");
        assert_eq!(h["x-quota-remaining"], "5");
        assert_eq!(h["x-quota-reset"], "2000000");
        assert!(render(&Decision::default(), 0).is_empty());
    }
}
