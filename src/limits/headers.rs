//! Response headers that tell a client where it stands: `X-RateLimit-*` and the IETF draft-10
//! `RateLimit-Policy`/`RateLimit` for the tightest rate limit, `X-Quota-*` for the monthly
//! request quota.

use super::rules::{Decision, Kind, Standing};
use bytes::{BufMut, BytesMut};
use http::HeaderValue;

/// Header names with their values; the values of one request share one buffer.
pub type Headers = Vec<(&'static str, HeaderValue)>;

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
                "X-RateLimit-Limit",
                "X-RateLimit-Remaining",
                "X-RateLimit-Reset",
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
        values.end("RateLimit-Policy");
        // `"user-minute";r=998;t=42`
        values.text("\"");
        values.text(t.kind.policy());
        values.text("\";r=");
        values.number(t.remaining);
        values.text(";t=");
        values.number(t.reset.saturating_sub(now));
        values.end("RateLimit");
    }
    if let Some(q) = quota {
        values.numbers(["X-Quota-Limit", "X-Quota-Remaining", "X-Quota-Reset"], q);
    }
    values.headers()
}

/// Header values written one after another into one buffer, each ended by its name.
struct Values {
    text: BytesMut,
    /// Each value's name and where it ends in `text`.
    ends: [(&'static str, usize); 8],
    count: usize,
}

impl Default for Values {
    fn default() -> Values {
        Values {
            text: BytesMut::with_capacity(256),
            ends: [("", 0); 8],
            count: 0,
        }
    }
}

impl Values {
    /// What was written since the last end is the value of `name`.
    fn end(&mut self, name: &'static str) {
        if let Some(slot) = self.ends.get_mut(self.count) {
            *slot = (name, self.text.len());
            self.count += 1;
        }
    }

    /// The limit, remaining and reset of `s`, under `names`.
    fn numbers(&mut self, names: [&'static str; 3], s: &Standing) {
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
                headers.push((name, value));
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
        let h: std::collections::HashMap<_, _> = render(&d, 1_000).into_iter().collect();
        assert_eq!(h.len(), 8);
        assert_eq!(h["X-RateLimit-Limit"], "20");
        assert_eq!(h["X-RateLimit-Remaining"], "19");
        assert_eq!(h["X-RateLimit-Reset"], "1001");
        assert_eq!(h["RateLimit"], "\"ip\";r=19;t=1");
        assert_eq!(
            h["RateLimit-Policy"],
            "\"ip\";q=20;w=20, \"user-minute\";q=1000;w=60, \"user-hour\";q=5000;w=3600"
        );
        assert_eq!(h["X-Quota-Remaining"], "5");
        assert_eq!(h["X-Quota-Reset"], "2000000");
        assert!(render(&Decision::default(), 0).is_empty());
    }
}
