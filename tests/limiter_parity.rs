//! The admit algorithm exists twice: in Rust (`limits/local.rs`, embedded mode and the outage
//! fallback) and in Lua (`limits/check.lua`, shared mode on Redis). The same rule vectors run
//! through both, at the same instants, on a real Redis: every decision and every standing
//! (limit, remaining, reset, window) must be the same.

mod common;

use imgproxy_gateway::limits::local::LocalLimiter;
use imgproxy_gateway::limits::rules::{Decision, Kind, Rule, Shape};
use imgproxy_gateway::limits::shared::Shared;
use std::time::Duration;

fn bucket(key: &str, burst: u64, per_minute: u64) -> Rule {
    Rule {
        kind: Kind::Ip,
        key: key.into(),
        limit: burst,
        shape: Shape::Bucket { per_minute },
    }
}

fn window(kind: Kind, key: &str, limit: u64, start: u64, secs: u64) -> Rule {
    Rule {
        kind,
        key: key.into(),
        limit,
        shape: Shape::Window { start, secs },
    }
}

fn period(key: &str, limit: u64, start: u64, end: u64, seed: u64) -> Rule {
    Rule {
        kind: Kind::Requests,
        key: key.into(),
        limit,
        shape: Shape::Period { start, end, seed },
    }
}

/// One step of a vector: the rules of a request, whether it consumes, and when (ms after t0).
struct Step {
    rules: Vec<Rule>,
    consume: bool,
    at_ms: u64,
}

fn steps(rules: &[Rule], consume: bool, at_ms: u64, times: usize) -> Vec<Step> {
    (0..times)
        .map(|_| Step {
            rules: rules.to_vec(),
            consume,
            at_ms,
        })
        .collect()
}

/// The vectors, run in order on one history. `t0` is now (Unix ms), so every Redis expiry lies
/// ahead.
fn vectors(t0: u64) -> Vec<(&'static str, Vec<Step>)> {
    let s0 = t0 / 1000;
    let minute = s0 - s0 % 60;
    let hour = s0 - s0 % 3600;
    let ip = bucket("ip:a", 3, 60);
    let slow = bucket("ip:slow", 5, 7);
    let user = window(Kind::UserMinute, "um:a", 2, minute, 60);
    let hourly = window(Kind::UserHour, "uh:a", 4, hour, 3600);
    let api = window(Kind::Api, "api:a", 3, minute, 60);
    let quota = period("qr:a", 10, s0 - 100, s0 + 86_400, 8);
    let fresh = period("qr:fresh", 3, s0 - 100, s0 + 86_400, 0);
    let mut out = Vec::new();

    let mut v = steps(std::slice::from_ref(&ip), true, 0, 4);
    v.extend(steps(std::slice::from_ref(&ip), true, 999, 1));
    v.extend(steps(std::slice::from_ref(&ip), true, 1_000, 2));
    v.extend(steps(std::slice::from_ref(&ip), false, 1_500, 1));
    v.extend(steps(std::slice::from_ref(&ip), true, 2_000, 1));
    v.extend(steps(std::slice::from_ref(&ip), false, 5_000, 1));
    out.push(("a bucket: burst, refusal, refill by the second", v));

    let mut v = steps(std::slice::from_ref(&slow), true, 0, 6);
    v.extend(steps(std::slice::from_ref(&slow), true, 8_571, 2));
    v.extend(steps(std::slice::from_ref(&slow), false, 30_000, 1));
    out.push(("a bucket with a rate that does not divide a second", v));

    let all = vec![ip.clone(), user.clone(), api.clone()];
    let mut v = steps(&all, true, 10_000, 3);
    v.extend(steps(std::slice::from_ref(&api), false, 10_000, 1));
    v.extend(steps(std::slice::from_ref(&ip), false, 10_000, 1));
    out.push(("a refusal at the user level takes nothing at the others", v));

    let with_quota = vec![user.clone(), hourly.clone(), quota.clone()];
    let mut v = steps(&with_quota, true, 20_000, 1);
    v.extend(steps(std::slice::from_ref(&quota), true, 20_000, 3));
    v.extend(steps(&[hourly.clone(), quota.clone()], false, 20_000, 1));
    out.push(("a quota seeded from the database, then refused", v));

    let mut v = steps(std::slice::from_ref(&fresh), false, 0, 1);
    v.extend(steps(std::slice::from_ref(&fresh), true, 0, 4));
    out.push(("a quota with no usage yet; a look takes nothing", v));
    out
}

/// A decision's comparable part (`shared` says only which engine answered).
fn seen(d: &Decision) -> String {
    format!("{:?} {:?}", d.rejected, d.standings)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rust_and_lua_engines_decide_alike() {
    if !common::db::redis_available().await {
        return;
    }
    let prefix = format!("parity:{}:", rand::random::<u64>());
    let gauge = prometheus::IntGauge::new("parity_redis_degraded", "test").unwrap();
    let shared = Shared::new(
        common::db::REDIS_URL.into(),
        prefix,
        Duration::from_secs(2),
        gauge,
    );
    shared.connect().unwrap();
    // The client connects in the background.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = chrono::Utc::now().timestamp_millis() as u64;
    let mut compared = 0;
    // One history for both engines: later vectors meet the counters earlier ones left.
    let local = LocalLimiter::default();
    for (name, steps) in vectors(t0) {
        for (i, step) in steps.iter().enumerate() {
            let now = t0 + step.at_ms;
            let rust = if step.consume {
                local.check(&step.rules, now, 1)
            } else {
                local.peek(&step.rules, now, 1)
            };
            let lua = shared
                .check_at(&step.rules, step.consume, now)
                .await
                .unwrap_or_else(|| panic!("{name}: Redis did not answer step {i}"));
            assert_eq!(seen(&rust), seen(&lua), "{name}, step {i}");
            compared += 1;
        }
    }
    println!("{compared} steps decided alike");
    assert!(compared >= 30);
}
