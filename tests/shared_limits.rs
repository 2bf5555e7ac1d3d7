//! Limits and quotas in shared mode: several gateway processes on one PostgreSQL and one Redis
//! (or a three-master Redis Cluster) enforce exact totals, and a Redis outage (or a master
//! lost) degrades to local limits without a 5xx.

mod common;

use common::db::{redis_available, Engine, REDIS_URL};
use common::servers::RedisCluster;
use common::stub::{Mode, Stub};
use common::{admin, client, create_user, free_port, Gateway, Proc, TestDb, KEY};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Pair {
    a: Gateway,
    b: Gateway,
    _stubs: (Stub, Stub),
    _db: TestDb,
}

/// How long the gateways wait for Redis.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    /// 2 s: exactness tests must not fall back to local limits because a loaded machine (the
    /// whole suite runs at once) answered slower than the production default.
    Patient,
    /// The production default of 50 ms (outage tests, on a Redis of their own).
    Default,
}

/// Two gateways on one fresh PostgreSQL database and `redis_url`; `None` only outside CI when
/// a server is unreachable.
async fn pair(yaml: &str, redis_url: &str, wait: Wait) -> Option<Pair> {
    if redis_url == REDIS_URL && !redis_available().await {
        return None;
    }
    let db = TestDb::new(Engine::Postgres).await?;
    let s1 = Stub::start("a", Mode::Image).await;
    let s2 = Stub::start("b", Mode::Image).await;
    let timeout_ms = if wait == Wait::Patient { 2000 } else { 50 };
    // A fresh prefix: counters of earlier runs in the same minute must not count.
    let prefix = format!("test-{:016x}:", rand::random::<u64>());
    let start = || {
        Gateway::builder()
            .backend(s1.url(), 1)
            .backend(s2.url(), 1)
            .database(&db)
            .yaml(&format!(
                "redis:\n  url: {redis_url}\n  key_prefix: \"{prefix}\"\n  timeout_ms: {timeout_ms}\n{yaml}"
            ))
            .start()
    };
    let (a, b) = tokio::join!(start(), start());
    Some(Pair {
        a,
        b,
        _stubs: (s1, s2),
        _db: db,
    })
}

fn convert_url(gw: &Gateway) -> String {
    gw.url(common::CONVERT)
}

/// Fire `n` requests at once, alternating between the two instances; the statuses.
async fn burst(p: &Pair, key: &str, n: usize) -> Vec<u16> {
    let urls = [convert_url(&p.a), convert_url(&p.b)];
    common::all_at_once((0..n).map(|i| client().get(&urls[i % 2]).header("X-API-Key", key))).await
}

fn count(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

/// Both instances decided in Redis throughout: a local fallback (each limit ÷ 2 here) could
/// give the same totals.
fn assert_decided_in_redis(p: &Pair) {
    for gw in [&p.a, &p.b] {
        assert!(!gw.log().contains("redis_degraded"), "{}", gw.log());
    }
}

/// Print how a burst split, then check it: exactly `admitted` × 200 and `refusals` × `refused`.
fn assert_split(what: &str, statuses: &[u16], admitted: usize, refused: u16, refusals: usize) {
    let (ok, no) = (count(statuses, 200), count(statuses, refused));
    eprintln!("{what}: {ok} × 200, {no} × {refused}");
    assert_eq!((ok, no), (admitted, refusals), "{statuses:?}");
}

/// Issue 10, item 6 in shared mode: the reservations are in Redis, so 40 uploads split over two
/// instances store at most the 1 MiB quota.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_uploads_on_two_instances_never_exceed_the_storage_quota() {
    let Some(p) = pair("quotas:\n  storage_quota_mb: 1", REDIS_URL, Wait::Patient).await else {
        return;
    };
    let key = create_user(&p.a, "par-shared", "user", json!({})).await;
    let photo = common::jpeg_of_size(250_000);
    let answers = common::parallel_uploads(&[&p.a, &p.b], &key, 40, &photo).await;
    let used =
        common::storage_after_parallel_uploads(&p.a, "par-shared", &answers, photo.len()).await;
    assert!(used <= 1024 * 1024, "{used} bytes stored against 1 MiB");
}

/// A test on the shared Redis, and the same on a fresh three-master Redis Cluster.
macro_rules! on_redis_and_cluster {
    ($(#[$doc:meta])* $single:ident, $cluster:ident, $body:ident) => {
        $(#[$doc])*
        #[tokio::test(flavor = "multi_thread")]
        async fn $single() {
            $body(REDIS_URL).await;
        }

        $(#[$doc])*
        #[tokio::test(flavor = "multi_thread")]
        async fn $cluster() {
            let cluster = RedisCluster::start().await;
            $body(&cluster.url()).await;
        }
    };
}

on_redis_and_cluster!(
    two_instances_admit_exactly_the_user_limit,
    on_a_cluster_two_instances_admit_exactly_the_user_limit,
    exactly_the_user_limit
);

async fn exactly_the_user_limit(redis_url: &str) {
    let Some(p) = pair(
        "rate_limits:\n  user_level:\n    requests_per_minute: 100\n    requests_per_hour: 100000",
        redis_url,
        Wait::Patient,
    )
    .await
    else {
        return;
    };
    let key = create_user(&p.a, "exact", "user", json!({})).await;
    common::away_from_a_minute_boundary().await;
    let statuses = burst(&p, &key, 300).await;
    assert_split(
        "300 requests over 2 instances, user limit 100",
        &statuses,
        100,
        429,
        200,
    );
    assert_decided_in_redis(&p);
}

on_redis_and_cluster!(
    two_instances_stop_at_exactly_the_request_quota,
    on_a_cluster_two_instances_stop_at_exactly_the_request_quota,
    exactly_the_request_quota
);

async fn exactly_the_request_quota(redis_url: &str) {
    let hook = Stub::start("hook", Mode::Image).await;
    let yaml = format!(
        "quotas:\n  monthly_requests: 50\n  webhook_url: {}/quota",
        hook.url()
    );
    let Some(p) = pair(&yaml, redis_url, Wait::Patient).await else {
        return;
    };
    let key = create_user(&p.a, "quota50", "user", json!({})).await;
    let statuses = burst(&p, &key, 80).await;
    assert_split(
        "80 requests over 2 instances, quota 50",
        &statuses,
        50,
        402,
        30,
    );
    assert_decided_in_redis(&p);
    let r = common::convert(&p.b, &key).await;
    assert_eq!(r.status(), 402, "the 51st and later");
    // Both instances report the same usage, from Redis.
    for gw in [&p.a, &p.b] {
        let (_, quota) = admin(gw, "GET", "/api/v1/users/quota50/quota", KEY, None).await;
        assert_eq!(quota["requests"]["used"], 50, "{quota}");
    }
    // Threshold events: once each across both instances.
    let percents = || {
        let mut p: Vec<u64> = hook
            .requests
            .lock()
            .unwrap()
            .iter()
            .map(|r| {
                serde_json::from_slice::<Value>(&r.body).unwrap()["percent"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        p.sort();
        p
    };
    assert!(
        common::within(Duration::from_secs(5), || async { percents().len() >= 3 })
            .await
            .is_some()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(percents(), [80, 90, 100]);
    // A reset clears the shared counters: both instances admit again.
    let (status, quota) = admin(&p.a, "POST", "/api/v1/users/quota50/quota/reset", KEY, None).await;
    assert_eq!(
        (status, &quota["requests"]["used"]),
        (200, &json!(0)),
        "{quota}"
    );
    let r = common::convert(&p.b, &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-quota-remaining"], "49");
    // The other instance forgot its counts too (the reset went over the bus).
    let forgotten = common::within(Duration::from_secs(1), || async {
        let (_, quota) = admin(&p.a, "GET", "/api/v1/users/quota50/quota", KEY, None).await;
        quota["requests"]["used"] == 1
    })
    .await;
    assert!(forgotten.is_some());
}

on_redis_and_cluster!(
    /// On a cluster the user's levels are taken on one shard before the endpoint's lease
    /// refuses: the refusal gives them back.
    an_endpoint_refusal_in_redis_costs_the_user_nothing,
    on_a_cluster_an_endpoint_refusal_costs_the_user_nothing,
    an_endpoint_refusal_costs_the_user_nothing
);

async fn an_endpoint_refusal_costs_the_user_nothing(redis_url: &str) {
    let Some(p) = pair(
        "rate_limits:\n  user_level:\n    requests_per_minute: 10\n    requests_per_hour: 1000\n  api_level:\n    /api/v1/convert:\n      requests_per_minute: 2",
        redis_url,
        Wait::Patient,
    )
    .await else { return };
    let key = create_user(&p.a, "api-shared", "user", json!({})).await;
    common::away_from_a_minute_boundary().await;
    let statuses = burst(&p, &key, 6).await;
    assert_eq!(
        (count(&statuses, 200), count(&statuses, 429)),
        (2, 4),
        "{statuses:?}"
    );
    assert_decided_in_redis(&p);
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(
            std::fs::read(common::fixture("board-720x477.jpg")).unwrap(),
        )
        .file_name("a.jpg"),
    );
    let r = client()
        .post(p.b.url("/api/v1/upload"))
        .header("X-API-Key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-ratelimit-remaining"],
        "7",
        "2 converts + 1 upload of 10"
    );
    // Storage on PostgreSQL: the sum of stored originals.
    let (_, quota) = admin(&p.a, "GET", "/api/v1/users/api-shared/quota", KEY, None).await;
    assert_eq!(quota["storage_bytes"]["used"], 100961, "{quota}");
}

/// A private Redis on an ephemeral port, stopped in the middle of a run.
#[tokio::test(flavor = "multi_thread")]
async fn a_redis_outage_degrades_to_local_limits_without_errors() {
    let port = free_port();
    let mut redis = Outage::Redis {
        proc: spawn_redis(port),
        port,
    };
    common::wait_for_port(port).await;
    degrades_without_errors(&mut redis).await;
}

/// The master that holds the user's counters is killed in the middle of a run, and returns.
#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_master_lost_degrades_to_local_limits_without_errors() {
    let cluster = RedisCluster::start().await;
    let node = cluster.owner("u:outage");
    degrades_without_errors(&mut Outage::Cluster { cluster, node }).await;
}

fn spawn_redis(port: u16) -> Proc {
    Proc::spawn(
        std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null()),
    )
}

/// What goes down in an outage test.
enum Outage {
    Redis { proc: Proc, port: u16 },
    Cluster { cluster: RedisCluster, node: usize },
}

impl Outage {
    fn url(&self) -> String {
        match self {
            Outage::Redis { port, .. } => format!("redis://127.0.0.1:{port}"),
            Outage::Cluster { cluster, .. } => cluster.url(),
        }
    }

    fn down(&mut self) {
        match self {
            Outage::Redis { proc, .. } => proc.kill(),
            Outage::Cluster { cluster, node } => cluster.kill(*node),
        }
    }

    async fn up(&mut self) {
        match self {
            Outage::Redis { proc, port } => {
                *proc = spawn_redis(*port);
                common::wait_for_port(*port).await;
            }
            Outage::Cluster { cluster, node } => cluster.restart(*node).await,
        }
    }
}

async fn degrades_without_errors(redis: &mut Outage) {
    let url = redis.url();
    let Some(p) = pair(
        "rate_limits:\n  user_level:\n    requests_per_minute: 100000\n    requests_per_hour: 1000000\nquotas:\n  monthly_requests: 100000",
        &url,
        Wait::Default,
    )
    .await else { return };
    let key = create_user(&p.a, "outage", "user", json!({})).await;
    let health = |gw: &Gateway| {
        let url = gw.url("/api/v1/health");
        async move {
            client()
                .get(url)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()["redis"]
                .clone()
        }
    };
    assert_eq!(health(&p.a).await, "ok");

    let mut statuses = Vec::new();
    let mut latencies = Vec::new();
    let run = |p: &Pair, i: usize| {
        let url = if i.is_multiple_of(2) {
            convert_url(&p.a)
        } else {
            convert_url(&p.b)
        };
        let key = key.clone();
        async move {
            let t = Instant::now();
            let s = client()
                .get(url)
                .header("X-API-Key", key)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            (s, t.elapsed())
        }
    };
    for i in 0..300 {
        if i == 100 {
            redis.down();
        }
        if i == 200 {
            assert_eq!(health(&p.a).await, "degraded");
            assert_eq!(common::metric(&p.a, "redis_degraded").await, Some(1.0));
            redis.up().await;
        }
        let (s, d) = run(&p, i).await;
        statuses.push(s);
        latencies.push(d);
    }
    let p99 = |phase: &[Duration]| {
        let mut sorted = phase.to_vec();
        sorted.sort();
        sorted[sorted.len() * 99 / 100]
    };
    eprintln!(
        "300 requests, Redis down for the middle 100: {} × 200; p99 before {:?}, during {:?}, after {:?}",
        count(&statuses, 200),
        p99(&latencies[..100]),
        p99(&latencies[100..200]),
        p99(&latencies[200..])
    );
    assert_eq!(
        count(&statuses, 200),
        300,
        "no request failed: {statuses:?}"
    );
    // Back to Redis, and the requests counted locally during the outage were added to it.
    let recovered = common::within(Duration::from_secs(10), || async {
        let (_, quota) = admin(&p.a, "GET", "/api/v1/users/outage/quota", KEY, None).await;
        health(&p.a).await == "ok" && quota["requests"]["used"].as_u64() >= Some(200)
    })
    .await;
    let (_, quota) = admin(&p.a, "GET", "/api/v1/users/outage/quota", KEY, None).await;
    assert!(recovered.is_some(), "{quota}");
    assert_eq!(common::metric(&p.a, "redis_degraded").await, Some(0.0));
    assert!(p.a.log().contains("\"event\":\"redis_degraded\""));
    assert_eq!(
        p.a.log().matches("\"event\":\"redis_degraded\"").count(),
        1,
        "logged once"
    );
}
