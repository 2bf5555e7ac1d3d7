//! Issue 10, items 1 and 4: one admission for every route of both listeners. Every route but
//! health and readiness spends the client's IP level, keys are verified only after the IP
//! token is spent, IPv6 clients share a bucket per /64, and forged secrets for one key id
//! cannot take the verification slots from other keys.
//!
//! Each case claims its own client address through `X-Forwarded-For` (the gateway trusts the
//! loopback proxy here), so the cases do not share an IP bucket.

mod common;

use common::stub::{Mode, Stub};
use common::{client, create_user, Gateway, KEY};
use serde_json::json;
use std::time::{Duration, Instant};

const BURST: usize = 20;

/// Builds one request of a case, again for each send.
type Request = Box<dyn Fn() -> reqwest::RequestBuilder>;

struct Env {
    gw: Gateway,
    _stubs: (Stub, Stub),
}

async fn start(yaml: &str, auth: &str) -> Env {
    let a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let mut builder = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .server("  trusted_proxies: [127.0.0.1/32]")
        .yaml(yaml);
    if !auth.is_empty() {
        builder = builder.auth(auth);
    }
    Env {
        gw: builder.start().await,
        _stubs: (a, b),
    }
}

/// An IP level of `BURST` that does not refill within a test.
fn ip_level() -> String {
    format!("rate_limits:\n  ip_level:\n    requests_per_minute: 1\n    burst: {BURST}")
}

/// `n` requests one after the other from client address `ip`: their statuses.
async fn statuses(n: usize, ip: &str, request: impl Fn() -> reqwest::RequestBuilder) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        let r = request()
            .header("X-Forwarded-For", ip)
            .send()
            .await
            .unwrap();
        out.push(r.status().as_u16());
    }
    out
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// The finding: 25 requests against an IP burst of 20 all answered on these routes. Now the
/// first 20 get the route's own answer and the rest 429, on both listeners.
#[tokio::test(flavor = "multi_thread")]
async fn every_route_but_health_spends_the_ip_level_on_both_listeners() {
    let env = start(&ip_level(), "").await;
    let gw = &env.gw;
    let key = create_user(gw, "q-user", "user", json!({})).await;
    let quota = gw.url("/api/v1/users/q-user/quota");
    let bad_source =
        gw.url("/internal/v1/source/0123456789abcdef0123456789abcdef?exp=9999999999&sig=AAAA");
    let cases: Vec<(&str, &str, u16, Request)> = vec![
        ("own quota", "198.51.100.1", 200, {
            let (url, key) = (quota.clone(), key.clone());
            Box::new(move || client().get(&url).header("X-API-Key", &key))
        }),
        ("unknown route", "198.51.100.2", 404, {
            let url = gw.url("/nothing/here");
            Box::new(move || client().get(&url))
        }),
        ("source with a bad signature", "198.51.100.3", 403, {
            let url = bad_source.clone();
            Box::new(move || client().get(&url))
        }),
        ("admin route, right key", "198.51.100.4", 200, {
            let url = gw.admin_url("/api/v1/users");
            Box::new(move || client().get(&url).header("X-API-Key", KEY))
        }),
        ("admin route, wrong key", "198.51.100.5", 401, {
            let url = gw.admin_url("/api/v1/users");
            Box::new(move || {
                client().get(&url).header(
                    "X-API-Key",
                    "imgproxy_legacy_wrongwrongwrongwrongwrongwrongwrong",
                )
            })
        }),
        ("admin unknown route", "198.51.100.6", 404, {
            let url = gw.admin_url("/api/v1/nothing");
            Box::new(move || client().get(&url))
        }),
    ];
    for (what, ip, status, request) in &cases {
        let got = statuses(BURST + 5, ip, request).await;
        assert_eq!(count(&got, *status), BURST, "{what}: {got:?}");
        assert_eq!(count(&got, 429), 5, "{what}: {got:?}");
        assert!(got[..BURST].iter().all(|s| s == status), "{what}: {got:?}");
    }
    // Health and readiness stay unlimited on both listeners.
    for path in ["/api/v1/health", "/api/v1/ready"] {
        for url in [gw.url(path), gw.admin_url(path)] {
            let got = statuses(BURST + 5, "198.51.100.9", || client().get(&url)).await;
            assert_eq!(count(&got, 200), BURST + 5, "{url}: {got:?}");
        }
    }
    // A refusal names its reason in the metrics, from a closed set.
    let denied = common::metric(gw, "access_denied_total{reason=\"source_signature\"}").await;
    assert_eq!(denied, Some(BURST as f64));
}

/// IPv6 clients are limited per /64: addresses of one network share a bucket, another network
/// has its own.
#[tokio::test(flavor = "multi_thread")]
async fn ipv6_clients_share_a_bucket_per_64() {
    let env = start(&ip_level(), "").await;
    let url = env.gw.url("/nothing/here");
    let mut got = Vec::new();
    for i in 0..(BURST + 5) {
        let ip = format!("2001:db8:1:2:{:x}::{:x}", i * 7919 % 65536, i + 1);
        got.extend(statuses(1, &ip, || client().get(&url)).await);
    }
    assert_eq!(count(&got, 404), BURST, "{got:?}");
    assert_eq!(count(&got, 429), 5, "{got:?}");
    let other = statuses(1, "2001:db8:1:3::1", || client().get(&url)).await;
    assert_eq!(other, [404], "another /64 has its own bucket");
}

/// The IP token is spent before a key is verified: of 100 concurrent forged keys from one
/// client, at most the burst reach verification (401); the rest are 429 without a bcrypt. The
/// guard used to only look before verifying, so the whole burst queued for bcrypt and a new
/// key from another client waited past `hash_wait` (503 `auth_busy`).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_forgeries_spend_the_ip_level_before_verification() {
    let env = start(
        &ip_level(),
        "  bcrypt_cost: 10\n  hash_concurrency: 1\n  hash_wait: 2s",
    )
    .await;
    let gw = &env.gw;
    let mut keys = Vec::new();
    for i in 0..10 {
        keys.push(create_user(gw, &format!("f-{i}"), "user", json!({})).await);
    }
    let bystander = create_user(gw, "bystander", "user", json!({})).await;
    let url = gw.url(common::CONVERT);
    let requests: Vec<_> = (0..100)
        .map(|i| {
            let real = &keys[i % keys.len()];
            // The real key id (the first 12 secret characters), a forged rest.
            let forged = format!("{}{i:031}", &real[..real.len() - 31]);
            client()
                .get(&url)
                .header("X-API-Key", forged)
                .header("X-Forwarded-For", "198.51.100.20")
        })
        .collect();
    let burst = tokio::spawn(common::all_at_once(requests));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = client()
        .get(&url)
        .header("X-API-Key", &bystander)
        .header("X-Forwarded-For", "198.51.100.21")
        .send()
        .await
        .unwrap();
    let bystander_status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let got = burst.await.unwrap();
    // Those that reached verification answer 401, or 503 (`auth_busy`) when bcrypt's queue
    // outlasts `hash_wait` on a loaded machine (seen: 17 and 3 while fuzzers held both
    // cores); every other one is 429.
    let verified = count(&got, 401) + count(&got, 503);
    assert!(verified <= BURST, "{got:?}");
    assert_eq!(verified + count(&got, 429), 100, "{got:?}");
    assert_eq!(
        bystander_status, 200,
        "a new key from another client: {body}"
    );
}

/// Item 4: 400 concurrent forged secrets for one key id (its user knows it) cost a few
/// bcrypts, not 400: a new key of another user, never verified before, still answers 200
/// within `hash_wait`, and the attacked user's real key keeps working.
#[tokio::test(flavor = "multi_thread")]
async fn forgeries_for_one_key_id_cannot_exhaust_bcrypt() {
    let env = start(
        "",
        "  bcrypt_cost: 10\n  hash_concurrency: 1\n  hash_wait: 3s",
    )
    .await;
    let gw = &env.gw;
    let victim = create_user(gw, "victim", "user", json!({})).await;
    let url = gw.url(common::CONVERT);
    assert_eq!(common::convert_status(gw, &victim).await, 200);
    let (_, created) = common::admin(
        gw,
        "POST",
        "/api/v1/users",
        KEY,
        Some(json!({"id": "bystander", "name": "B", "email": "b@example.com", "role": "user"})),
    )
    .await;
    let bystander = created["api_key"]["key"].as_str().unwrap().to_string();
    let forged_prefix = victim[..victim.len() - 31].to_string();
    let target = url.clone();
    let forgeries = tokio::spawn(common::all_at_once((0..400).map(move |i| {
        client()
            .get(&target)
            .header("X-API-Key", format!("{forged_prefix}{i:031}"))
    })));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let r = client()
        .get(&url)
        .header("X-API-Key", &bystander)
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    let status = r.status().as_u16();
    let body = r.text().await.unwrap();
    let got = forgeries.await.unwrap();
    println!("the new key answered {status} after {waited:?} among 400 forgeries");
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&got, 401), 400, "every forgery is refused: {got:?}");
    assert_eq!(
        common::convert_status(gw, &victim).await,
        200,
        "the proven key still works"
    );
    let locked = common::metric(gw, "access_denied_total{reason=\"key_locked_out\"}").await;
    assert!(
        locked.unwrap_or(0.0) >= 300.0,
        "refused without bcrypt: {locked:?}"
    );
}

/// Health and readiness cost no query: the state service pings the database once a second and
/// they answer from that (they used to ping on every request). Counted in the statements a
/// private PostgreSQL logs.
#[tokio::test(flavor = "multi_thread")]
async fn health_and_readiness_cost_no_query() {
    let Some(pg) = tokio::task::spawn_blocking(common::servers::PrivatePostgres::start)
        .await
        .unwrap()
    else {
        return;
    };
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b])
        .database(&common::TestDb::at("postgres", &pg.dsn()))
        .start()
        .await;
    let before = pg.statements("SELECT 1");
    let started = Instant::now();
    let mut answered = 0;
    for _ in 0..100 {
        for url in [
            gw.url("/api/v1/health"),
            gw.url("/api/v1/ready"),
            gw.admin_url("/api/v1/ready"),
        ] {
            if client().get(&url).send().await.unwrap().status() == 200 {
                answered += 1;
            }
        }
    }
    let took = started.elapsed();
    let pings = pg.statements("SELECT 1") - before;
    println!("300 health and readiness answers in {took:?} cost {pings} pings");
    assert_eq!(answered, 300);
    assert!(
        pings <= 30,
        "{pings} database pings for 300 answers (the state service pings once a second; \
         these took {took:?})"
    );
    // The count sees the state service's own pings (so it can see a request's too).
    let seen = common::within(Duration::from_secs(5), || async {
        pg.statements("SELECT 1") > before + pings
    })
    .await;
    assert!(seen.is_some(), "no ping logged: the count is blind");
}
