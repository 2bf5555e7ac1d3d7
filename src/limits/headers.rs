//! Response headers that tell a client where it stands: `X-RateLimit-*` and the IETF draft-10
//! `RateLimit-Policy`/`RateLimit` for the tightest rate limit, `X-Quota-*` for the monthly
//! request quota.

use super::rules::{Decision, Kind};

pub type Headers = Vec<(&'static str, String)>;

pub fn render(decision: &Decision, now: u64) -> Headers {
    let mut out = Headers::new();
    if let Some(t) = decision.tightest() {
        out.push(("X-RateLimit-Limit", t.limit.to_string()));
        out.push(("X-RateLimit-Remaining", t.remaining.to_string()));
        out.push(("X-RateLimit-Reset", t.reset.to_string()));
        let policies: Vec<String> = decision
            .standings
            .iter()
            .filter(|s| !s.kind.is_quota())
            .map(|s| format!("\"{}\";q={};w={}", s.kind.policy(), s.limit, s.window))
            .collect();
        out.push(("RateLimit-Policy", policies.join(", ")));
        out.push((
            "RateLimit",
            format!(
                "\"{}\";r={};t={}",
                t.kind.policy(),
                t.remaining,
                t.reset.saturating_sub(now)
            ),
        ));
    }
    if let Some(q) = decision.standing(Kind::Requests) {
        out.push(("X-Quota-Limit", q.limit.to_string()));
        out.push(("X-Quota-Remaining", q.remaining.to_string()));
        out.push(("X-Quota-Reset", q.reset.to_string()));
    }
    out
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
            standings: vec![
                s(Kind::Ip, 20, 19, 1_001, 20),
                s(Kind::UserMinute, 1000, 998, 1_042, 60),
                s(Kind::UserHour, 5000, 4000, 3_600, 3600),
                s(Kind::Requests, 100_000, 5, 2_000_000, 2_592_000),
            ],
            shared: false,
        };
        let h: std::collections::HashMap<_, _> = render(&d, 1_000).into_iter().collect();
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
