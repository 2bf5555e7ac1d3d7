//! Outages under load, driven by keep-alive clients that never retry (so every lost request
//! counts): a backend killed, Redis killed and restarted, PostgreSQL stopped and started, and
//! the storage disk full. Each run is bounded (≤ 15 s of load) and prints what it saw.

mod common;

use common::load::Load;
use common::servers::{PrivatePostgres, PrivateRedis, SmallDisk};
use common::stub::{Mode, Stub};
use common::{admin, client, create_user, error_code, fixture, DevBackend, Gateway, CONVERT, KEY};
use reqwest::multipart::{Form, Part};
use serde_json::json;
use std::time::{Duration, Instant};

/// Limits far above what the load reaches: every level is still checked and counted.
const NO_REFUSALS: &str = "rate_limits:\n  ip_level:\n    requests_per_minute: 10000000\n    burst: 10000000\n  user_level:\n    requests_per_minute: 10000000\n    requests_per_hour: 100000000\n  api_level:\n    /api/v1/convert:\n      requests_per_minute: 10000000\nquotas:\n  monthly_requests: 1000000000000\n";

/// One load test at a time: each compares latencies within its run, which another test's load
/// on the same two cores would distort.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn sleep(seconds: f64) -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_secs_f64(seconds))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_under_64_connections_fails_no_request() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let gw = Gateway::over(&[&a, &b]).yaml(NO_REFUSALS).start().await;
    let load = Load::start(
        &[gw.port],
        CONVERT,
        &[("X-API-Key", KEY)],
        64,
        Duration::from_secs(15),
    );
    sleep(3.0).await;
    let killed = load.elapsed();
    a.kill();
    sleep(4.0).await;
    let report = load.stop().await;
    println!(
        "{}",
        report.summary("backend killed at 3 s under 64 connections")
    );
    report.assert_clean("backend killed");
    assert!(report.between(killed, killed + Duration::from_secs(3)) > 100);
    let backends = gw.backends().await;
    assert_eq!(backends["backends"][0]["healthy"], false, "{backends}");
    assert_eq!(backends["backends"][1]["healthy"], true, "{backends}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_killed_under_wrk_fails_no_request() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let mut a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let gw = Gateway::over(&[&a, &b]).yaml(NO_REFUSALS).start().await;
    let Some(wrk) = common::load::wrk(&gw.url(CONVERT), &format!("X-API-Key: {KEY}"), 64, 8) else {
        return;
    };
    sleep(3.0).await;
    a.kill();
    let report = common::load::wrk_report(wrk).await;
    println!(
        "wrk, 64 connections for 8 s, backend killed at 3 s: {} requests, {} socket errors, {} \
         non-2xx, p99 {}",
        report.requests, report.socket_errors, report.non_2xx, report.p99
    );
    assert!(report.requests > 1000, "{}", report.output);
    assert_eq!(
        (report.socket_errors, report.non_2xx),
        (0, 0),
        "{}",
        report.output
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_costs_nothing_and_loses_no_count() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(db) = common::TestDb::new(common::db::Engine::Postgres).await else {
        return;
    };
    let mut redis = PrivateRedis::start().await;
    let (s1, s2) = common::image_stubs().await;
    let gw = Gateway::over(&[&s1, &s2])
        .database(&db)
        .yaml(&format!("redis:\n  url: {}\n{NO_REFUSALS}", redis.url()))
        .start()
        .await;
    let key = create_user(&gw, "redis-outage", "user", json!({})).await;

    let load = Load::start(
        &[gw.port],
        CONVERT,
        &[("X-API-Key", &key)],
        32,
        Duration::from_secs(15),
    );
    sleep(4.0).await;
    let down = load.elapsed();
    redis.kill();
    sleep(4.0).await;
    let up = load.elapsed();
    redis.restart().await;
    sleep(4.0).await;
    let report = load.stop().await;
    let (before, during, after) = (
        report.p99(Duration::ZERO, down),
        report.p99(down, up),
        report.p99(up, Duration::from_secs(15)),
    );
    println!(
        "{}; p99 before {before:?}, during the outage {during:?}, after {after:?}",
        report.summary("Redis killed at 4 s, back at 8 s, 32 connections")
    );
    report.assert_clean("Redis outage");
    assert!(
        during <= before * 2,
        "p99 during the outage {during:?} is more than twice p99 before it {before:?}"
    );
    // Everything counted locally during the outage reaches Redis (which came back empty) and
    // the usage API: exactly the 200s, once each.
    let answered = report.count(200) as u64;
    let settled = common::within(Duration::from_secs(10), || async {
        let (_, quota) = admin(&gw, "GET", "/api/v1/users/redis-outage/quota", KEY, None).await;
        quota["requests"]["used"].as_u64() == Some(answered)
    })
    .await;
    let (_, quota) = admin(&gw, "GET", "/api/v1/users/redis-outage/quota", KEY, None).await;
    assert!(
        settled.is_some(),
        "usage {} after recovery, {answered} answered",
        quota["requests"]["used"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_and_started_under_load() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    if !common::db::redis_available().await {
        return;
    }
    let (s1, s2) = common::image_stubs().await;
    let prefix = format!("test-{:016x}:", rand::random::<u64>());
    let gw = Gateway::over(&[&s1, &s2])
        .database(&common::TestDb::at("postgres", &pg.dsn()))
        .database_line("  timeout: 2s")
        .yaml(&format!(
            "redis:\n  url: {}\n  key_prefix: \"{prefix}\"\n{NO_REFUSALS}",
            common::db::REDIS_URL
        ))
        .start()
        .await;
    let cached = create_user(&gw, "cached", "user", json!({})).await;
    let unseen = create_user(&gw, "unseen", "user", json!({})).await;
    assert_eq!(common::convert_status(&gw, &cached).await, 200);

    let load = Load::start(
        &[gw.port],
        CONVERT,
        &[("X-API-Key", &cached)],
        32,
        Duration::from_secs(15),
    );
    sleep(2.0).await;
    tokio::task::block_in_place(|| pg.down());
    sleep(0.5).await;
    // A key never seen needs the database: a prompt 503 that says to come back.
    let started = Instant::now();
    let r = common::convert(&gw, &unseen).await;
    let waited = started.elapsed();
    assert_eq!(r.status(), 503, "{:?}", r.text().await);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error_code(r).await, "not_ready");
    assert!(waited < Duration::from_secs(4), "answered after {waited:?}");
    let ready = client().get(gw.url("/api/v1/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let why = ready.text().await.unwrap();
    assert!(why.contains("database"), "{why}");
    sleep(2.0).await;
    tokio::task::block_in_place(|| pg.up());
    let recovered = common::within(Duration::from_secs(15), || async {
        common::convert_status(&gw, &unseen).await == 200
    })
    .await;
    let report = load.stop().await;
    println!(
        "{}; the unseen key got 503 in {waited:?}; recovered {recovered:?} after the restart",
        report.summary("PostgreSQL down for ~4.5 s, 32 connections with a cached key")
    );
    report.assert_clean("PostgreSQL outage, cached key");
    assert!(recovered.is_some(), "the unseen key never got in");
    let ready = client().get(gw.url("/api/v1/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_storage_disk_refuses_uploads_with_507_and_converts_go_on() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let Some(disk) = SmallDisk::mount("1m") else {
        return;
    };
    let args = ["--allow-loopback-source-addresses", "true"];
    let (a, b) = (
        DevBackend::start(&args).await,
        DevBackend::start(&args).await,
    );
    let source = Stub::start(
        "source",
        Mode::File(
            std::sync::Arc::new(std::fs::read(fixture("video-150x103.png")).unwrap()),
            "image/png",
        ),
    )
    .await;
    let gw = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .storage_dir(disk.path())
        .imgproxy("allow_loopback_sources: true")
        .start()
        .await;
    let photo = std::fs::read(fixture("board-720x477.jpg")).unwrap();
    let upload = || {
        let form = Form::new().part("file", Part::bytes(photo.clone()).file_name("board.jpg"));
        client()
            .post(gw.url("/api/v1/upload"))
            .header("X-API-Key", KEY)
            .multipart(form)
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..15 {
        let r = upload().await.unwrap();
        let status = r.status().as_u16();
        statuses.push(status);
        if status == 507 {
            assert_eq!(r.headers()["content-type"], "application/json");
            assert_eq!(error_code(r).await, "insufficient_storage");
            break;
        }
        assert_eq!(status, 200, "{:?}", r.text().await);
    }
    println!("uploads of 100 KB onto a 1 MiB disk: {statuses:?}");
    assert_eq!(statuses.last(), Some(&507), "{statuses:?}");
    let partial: Vec<_> = std::fs::read_dir(disk.path().join(".partial"))
        .unwrap()
        .collect();
    assert!(partial.is_empty(), "partial files left: {partial:?}");
    let stored = gw.stored_files().len();
    assert_eq!(
        stored,
        statuses.len() - 1,
        "every accepted upload kept, no other"
    );
    let r = upload().await.unwrap();
    assert_eq!(r.status(), 507);
    // Converts need no storage.
    let r = common::convert_source(&gw, &source.url(), &[], &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/webp");
}
