//! Response headers that tell a client where it stands: `X-RateLimit-*` and the IETF draft-10
//! `RateLimit-Policy`/`RateLimit` for the tightest rate limit, `X-Quota-*` for the monthly
//! request quota.

use super::rules::{Decision, Kind, Standing};
use bytes::{BufMut, Bytes, BytesMut};
use http::{HeaderName, HeaderValue};
use smallvec::SmallVec;
use std::cell::RefCell;

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
/// value is a slice of it, so the whole set costs a buffer and a list; `RateLimit-Policy`, the
/// same for every request of a plan, is reused while it says the same (`policy_of`).
pub fn render(decision: &Decision, now: u64) -> Headers {
    let tightest = decision.tightest();
    let quota = decision.standing(Kind::Requests);
    if tightest.is_none() && quota.is_none() {
        return Headers::new();
    }
    let mut values = Values::default();
    let mut policy = None;
    if let Some(t) = tightest {
        values.numbers(
            [
                &X_RATELIMIT_LIMIT,
                &X_RATELIMIT_REMAINING,
                &X_RATELIMIT_RESET,
            ],
            t,
        );
        policy = policy_of(decision);
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
    let mut headers = values.headers();
    if let Some(policy) = policy {
        // After the three `X-RateLimit-*` fields (all present: their values are digits).
        let at = headers.len().min(3);
        headers.insert(at, (RATELIMIT_POLICY.clone(), policy));
    }
    headers
}

/// What a `RateLimit-Policy` value says: each rate limit's kind, limit and window.
type Policies = SmallVec<[(Kind, u64, u64); 4]>;

thread_local! {
    /// The `RateLimit-Policy` value this thread wrote last, with what it says. The users of
    /// one plan share one value, so most requests reuse it (a clone of shared bytes) instead
    /// of writing it again.
    static LAST_POLICY: RefCell<Option<(Policies, HeaderValue)>> = const { RefCell::new(None) };
}

/// `"user-minute";q=1000;w=60, "user-hour";q=5000;w=3600`: every rate limit of `decision`.
fn policy_of(decision: &Decision) -> Option<HeaderValue> {
    let said: Policies = decision
        .standings
        .iter()
        .filter(|s| !s.kind.is_quota())
        .map(|s| (s.kind, s.limit, s.window))
        .collect();
    LAST_POLICY.with(|last| {
        let mut last = last.borrow_mut();
        if let Some((policies, value)) = last.as_ref() {
            if *policies == said {
                return Some(value.clone());
            }
        }
        let mut text = BytesMut::with_capacity(64);
        for (i, &(kind, limit, window)) in said.iter().enumerate() {
            text.put_slice(if i == 0 { b"\"" } else { b", \"" });
            text.put_slice(kind.policy().as_bytes());
            text.put_slice(b"\";q=");
            text.put_slice(itoa::Buffer::new().format(limit).as_bytes());
            text.put_slice(b";w=");
            text.put_slice(itoa::Buffer::new().format(window).as_bytes());
        }
        // Policy names and digits: always valid header text.
        let value = HeaderValue::from_maybe_shared(text.freeze()).ok()?;
        *last = Some((said, value.clone()));
        Some(value)
    })
}

/// Room for every value of one request: eight numbers of at most 20 digits (`u64::MAX`) and
/// `RateLimit`'s text around two of them (`"monthly-requests";r=;t=`, 24 bytes) take 184.
const ROOM: usize = 256;

/// The bytes written so far; shared by the header values once written.
struct Text {
    bytes: [u8; ROOM],
    len: usize,
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Header values written one after another into one buffer, each ended by its name. The
/// buffer becomes one shared allocation (`Bytes::from_owner`) that every value slices.
struct Values {
    text: Text,
    /// Each value's name and where it ends in `text`.
    ends: [(&'static HeaderName, usize); 8],
    count: usize,
}

impl Default for Values {
    fn default() -> Values {
        Values {
            text: Text {
                bytes: [0; ROOM],
                len: 0,
            },
            ends: [(&X_RATELIMIT_LIMIT, 0); 8],
            count: 0,
        }
    }
}

impl Values {
    /// What was written since the last end is the value of `name`.
    fn end(&mut self, name: &'static HeaderName) {
        if let Some(slot) = self.ends.get_mut(self.count) {
            *slot = (name, self.text.len);
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

    /// Appends `text` (`ROOM` holds the most a request writes; see there).
    fn text(&mut self, text: &str) {
        let Text { bytes, len } = &mut self.text;
        let n = text.len().min(ROOM - *len);
        bytes[*len..*len + n].copy_from_slice(&text.as_bytes()[..n]);
        *len += n;
    }

    fn number(&mut self, n: u64) {
        self.text(itoa::Buffer::new().format(n));
    }

    fn headers(self) -> Headers {
        let all = Bytes::from_owner(self.text);
        let mut start = 0;
        // One more for `RateLimit-Policy`.
        let mut headers = Headers::with_capacity(self.count + 1);
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

    /// The largest numbers there are, under the longest names, fit the buffer whole.
    #[test]
    fn the_longest_values_are_written_whole() {
        let max = u64::MAX;
        let d = Decision {
            rejected: None,
            standings: smallvec::smallvec![
                Standing {
                    kind: Kind::UserMinute,
                    limit: max,
                    remaining: max,
                    reset: max,
                    window: max,
                },
                Standing {
                    kind: Kind::Requests,
                    limit: max,
                    remaining: max,
                    reset: max,
                    window: max,
                },
            ],
            shared: false,
        };
        let all = "18446744073709551615";
        let rendered: Vec<(String, String)> = render(&d, 0)
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        let want = |name: &str, value: String| (name.to_string(), value);
        assert_eq!(
            rendered,
            [
                want("x-ratelimit-limit", all.into()),
                want("x-ratelimit-remaining", all.into()),
                want("x-ratelimit-reset", all.into()),
                want(
                    "ratelimit-policy",
                    format!("\"user-minute\";q={all};w={all}")
                ),
                want("ratelimit", format!("\"user-minute\";r={all};t={all}")),
                want("x-quota-limit", all.into()),
                want("x-quota-remaining", all.into()),
                want("x-quota-reset", all.into()),
            ]
        );
    }

    /// The policy a thread reuses is the one the decision says: another plan in between, or
    /// the same kinds with another limit or window, write their own.
    #[test]
    fn a_reused_policy_is_always_the_decisions_own() {
        let minute = |limit, window| Decision {
            rejected: None,
            standings: smallvec::smallvec![Standing {
                kind: Kind::UserMinute,
                limit,
                remaining: 1,
                reset: 100,
                window,
            }],
            shared: false,
        };
        let policy = |d: &Decision| {
            let headers = render(d, 0);
            let (name, value) = &headers[3];
            assert_eq!(name, &RATELIMIT_POLICY);
            value.to_str().unwrap().to_string()
        };
        for _ in 0..2 {
            assert_eq!(policy(&minute(10, 60)), "\"user-minute\";q=10;w=60");
            assert_eq!(policy(&minute(10, 60)), "\"user-minute\";q=10;w=60");
            assert_eq!(policy(&minute(11, 60)), "\"user-minute\";q=11;w=60");
            assert_eq!(policy(&minute(11, 30)), "\"user-minute\";q=11;w=30");
        }
    }
}
