//! Rate limits and quotas in embedded mode, as clients and operators see them: statuses,
//! headers, error bodies and the usage API.

mod common;

use common::db::Engine;
use common::stub::{Mode, Stub};
use common::{
    admin, away_from_a_minute_boundary, client, convert, create_user, Gateway, TestDb, KEY,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Env {
    gw: Gateway,
    _a: Stub,
    _b: Stub,
    _db: Option<TestDb>,
}

async fn start(yaml: &str, server: &str) -> Env {
    start_on(None, yaml, server).await
}

/// On `db` (a PostgreSQL test database) instead of the default SQLite file.
async fn start_on(db: Option<TestDb>, yaml: &str, server: &str) -> Env {
    let a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let mut builder = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .yaml(yaml);
    if let Some(db) = &db {
        builder = builder.database(db);
    }
    if !server.is_empty() {
        builder = builder.server(server);
    }
    Env {
        gw: builder.start().await,
        _a: a,
        _b: b,
        _db: db,
    }
}

async fn upload(gw: &Gateway, key: &str, bytes: Vec<u8>) -> reqwest::Response {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes).file_name("a.jpg"),
    );
    client()
        .post(gw.url("/api/v1/upload"))
        .header("X-API-Key", key)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn header(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{name} missing: {:?}", r.headers()))
        .to_str()
        .unwrap()
        .to_string()
}

async fn error_body(r: reqwest::Response) -> Value {
    r.json::<Value>().await.unwrap()["error"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ip_bucket_gives_its_burst_then_refills() {
    let env = start(
        "rate_limits:\n  ip_level:\n    requests_per_minute: 60\n    burst: 20",
        "",
    )
    .await;
    let gw = &env.gw;
    for i in 0..20 {
        let r = convert(gw, KEY).await;
        assert_eq!(r.status(), 200, "burst request {i}");
        assert_eq!(header(&r, "x-ratelimit-limit"), "20");
        assert_eq!(header(&r, "x-ratelimit-remaining"), (19 - i).to_string());
    }
    let r = convert(gw, KEY).await;
    assert_eq!(r.status(), 429);
    assert_eq!(header(&r, "retry-after"), "1");
    assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
    assert!(header(&r, "ratelimit").starts_with("\"ip\";r=0;t="));
    assert_eq!(header(&r, "ratelimit-policy"), "\"ip\";q=20;w=20");
    let body = error_body(r).await;
    assert_eq!(
        (body["code"].as_str(), body["limit_type"].as_str()),
        (Some("rate_limited"), Some("ip"))
    );

    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(convert(gw, KEY).await.status(), 200, "one token a second");
    assert_eq!(convert(gw, KEY).await.status(), 429);
    // Health and readiness are never limited.
    let health = client().get(gw.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    // Failed authentications spend the same bucket, so they cannot hammer key verification.
    let r = client()
        .get(gw.url(common::CONVERT))
        .header(
            "X-API-Key",
            "imgproxy_nobody_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let series =
        |user: &str| format!("user_rate_limit_violations{{limit_type=\"ip\",user_id=\"{user}\"}}");
    assert_eq!(common::metric(gw, &series("legacy")).await, Some(2.0));
    assert_eq!(common::metric(gw, &series("anonymous")).await, Some(1.0));
}

#[tokio::test(flavor = "multi_thread")]
async fn user_limits_with_overrides_and_ietf_headers() {
    let env = start(
        "rate_limits:\n  user_level:\n    requests_per_minute: 5\n    requests_per_hour: 100",
        "",
    )
    .await;
    let gw = &env.gw;
    let key = create_user(gw, "rl-user", "user", json!({})).await;
    let tight = create_user(
        gw,
        "rl-tight",
        "user",
        json!({"rate_limits": {"requests_per_minute": 2}}),
    )
    .await;
    away_from_a_minute_boundary().await;
    for i in 0..5 {
        let r = convert(gw, &key).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-ratelimit-limit"), "5");
        assert_eq!(header(&r, "x-ratelimit-remaining"), (4 - i).to_string());
        assert_eq!(
            header(&r, "ratelimit-policy"),
            "\"user-minute\";q=5;w=60, \"user-hour\";q=100;w=3600"
        );
        let reset: i64 = header(&r, "x-ratelimit-reset").parse().unwrap();
        assert_eq!(reset % 60, 0, "the minute window ends on a minute");
    }
    let r = convert(gw, &key).await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "ratelimit").starts_with("\"user-minute\";r=0;t="));
    let retry: u64 = header(&r, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(error_body(r).await["limit_type"], "user_minute");

    assert_eq!(convert(gw, &tight).await.status(), 200);
    assert_eq!(convert(gw, &tight).await.status(), 200);
    assert_eq!(
        convert(gw, &tight).await.status(),
        429,
        "the per-user override"
    );
    // Lowering a limit takes effect at once.
    let (status, _) = admin(
        gw,
        "PUT",
        "/api/v1/users/rl-user",
        KEY,
        Some(json!({"rate_limits": {"requests_per_minute": 1000}})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        convert(gw, &key).await.status(),
        200,
        "a raised limit also applies at once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_refused_by_the_endpoint_level_costs_the_user_nothing() {
    let env = start(
        "rate_limits:\n  user_level:\n    requests_per_minute: 10\n    requests_per_hour: 1000\n  api_level:\n    /api/v1/convert:\n      requests_per_minute: 2",
        "",
    )
    .await;
    let gw = &env.gw;
    let key = create_user(gw, "api-user", "user", json!({})).await;
    away_from_a_minute_boundary().await;
    assert_eq!(convert(gw, &key).await.status(), 200);
    assert_eq!(convert(gw, &key).await.status(), 200);
    for _ in 0..3 {
        let r = convert(gw, &key).await;
        assert_eq!(r.status(), 429);
        assert_eq!(header(&r, "x-ratelimit-remaining"), "0");
        assert_eq!(error_body(r).await["limit_type"], "api");
    }
    // 2 converts and this upload: 7 of 10 left; the three refusals took nothing.
    let r = upload(
        gw,
        &key,
        std::fs::read(common::fixture("board-720x477.jpg")).unwrap(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "ratelimit"),
        format!(
            "\"user-minute\";r=7;t={}",
            header(&r, "ratelimit").rsplit('=').next().unwrap()
        )
    );
    assert_eq!(header(&r, "x-ratelimit-remaining"), "7");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_request_quota_is_402_with_a_usage_api_and_a_reset() {
    let env = start("quotas:\n  monthly_requests: 3\n  reset_day: 1", "").await;
    let gw = &env.gw;
    let key = create_user(gw, "q-user", "user", json!({})).await;
    for left in [2, 1, 0] {
        let r = convert(gw, &key).await;
        assert_eq!(r.status(), 200);
        assert_eq!(header(&r, "x-quota-limit"), "3");
        assert_eq!(header(&r, "x-quota-remaining"), left.to_string());
    }
    let r = convert(gw, &key).await;
    assert_eq!(r.status(), 402);
    let reset: i64 = header(&r, "x-quota-reset").parse().unwrap();
    let body = error_body(r).await;
    assert_eq!(body["code"], "quota_exceeded");
    assert_eq!(
        (
            body["quota"].as_str(),
            body["limit"].as_u64(),
            body["used"].as_u64()
        ),
        (Some("requests"), Some(3), Some(3))
    );
    let resets_at =
        chrono::DateTime::parse_from_rfc3339(body["resets_at"].as_str().unwrap()).unwrap();
    assert_eq!(resets_at.timestamp(), reset);
    assert_eq!(resets_at.format("%d %H:%M:%S").to_string(), "01 00:00:00");

    let (status, quota) = admin(gw, "GET", "/api/v1/users/q-user/quota", KEY, None).await;
    assert_eq!(status, 200, "{quota}");
    assert_eq!(quota["user_id"], "q-user");
    assert_eq!(
        quota["requests"],
        json!({"used": 3, "limit": 3, "remaining": 0})
    );
    assert_eq!(quota["resets_at"], body["resets_at"]);
    assert!(quota["bandwidth_bytes"]["used"].as_u64().unwrap() > 0);
    assert_eq!(quota["storage_bytes"]["used"], 0);
    // The same document on the public listener, for the caller's own id only.
    let own = client()
        .get(gw.url("/api/v1/users/q-user/quota"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    assert_eq!(own.json::<Value>().await.unwrap()["requests"]["used"], 3);
    let other = client()
        .get(gw.url("/api/v1/users/legacy/quota"))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 403);
    assert_eq!(
        admin(gw, "POST", "/api/v1/users/q-user/quota/reset", &key, None)
            .await
            .0,
        403
    );

    let (status, quota) = admin(gw, "POST", "/api/v1/users/q-user/quota/reset", KEY, None).await;
    assert_eq!(status, 200, "{quota}");
    assert_eq!(quota["requests"]["used"], 0);
    assert_eq!(convert(gw, &key).await.status(), 200);
    // Raising the user's quota applies at once.
    admin(
        gw,
        "PUT",
        "/api/v1/users/q-user",
        KEY,
        Some(json!({"quotas": {"monthly_requests": 1}})),
    )
    .await;
    assert_eq!(
        convert(gw, &key).await.status(),
        402,
        "lowered to 1, already 1 used"
    );
}

/// Issue 10, item 6: parallel uploads reserve their bytes before writing, so together they
/// never store more than the quota (the cap used to come from committed rows only: 30
/// parallel 250 KB uploads stored 7.5 MB against 1 MiB).
#[tokio::test(flavor = "multi_thread")]
async fn parallel_uploads_never_store_more_than_the_storage_quota() {
    let env = start("quotas:\n  storage_quota_mb: 1", "").await;
    let gw = &env.gw;
    let key = create_user(gw, "par-user", "user", json!({})).await;
    let photo = common::jpeg_of_size(250_000);
    let answers = common::parallel_uploads(&[gw], &key, 40, &photo).await;
    let used = common::storage_after_parallel_uploads(gw, "par-user", &answers, photo.len()).await;
    assert!(used <= 1024 * 1024, "{used} bytes stored against 1 MiB");
    let files = gw.stored_files();
    assert_eq!(files.len() as u64, used / photo.len() as u64, "{files:?}");
    // Nothing is left reserved: after deleting everything, the whole quota is free again.
    let listed = common::get_json(gw.url("/api/v1/images"), Some(&key)).await;
    for image in listed["images"].as_array().unwrap() {
        let url = gw.url(&format!("/api/v1/images/{}", image["id"].as_str().unwrap()));
        let r = client()
            .delete(url)
            .header("X-API-Key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    // One after another: uploads that overlap may count one another twice for a moment (an
    // upload's row is committed before its reservation is given back), which errs on the side
    // of refusing (`limits::reservations`), so parallel ones could not show this.
    let mut again = Vec::new();
    for _ in 0..4 {
        again.extend(common::parallel_uploads(&[gw], &key, 1, &photo).await);
    }
    assert!(again.iter().all(|(s, _)| *s == 200), "{again:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn uploads_past_storage_or_bandwidth_are_refused_before_they_are_stored() {
    let env = start(
        "quotas:\n  storage_quota_mb: 1\n  monthly_bandwidth_mb: 100",
        "",
    )
    .await;
    let gw = &env.gw;
    let key = create_user(gw, "s-user", "user", json!({})).await;
    let big = vec![0xffu8; 2 * 1024 * 1024];
    let r = upload(gw, &key, big.clone()).await;
    assert_eq!(r.status(), 402);
    let body = error_body(r).await;
    assert_eq!(
        (body["quota"].as_str(), body["resets_at"].as_str()),
        (Some("storage_bytes"), None)
    );
    // Chunked, without a Content-Length: refused while streaming.
    let stream = futures_util::stream::iter(
        big.chunks(64 * 1024)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream)).file_name("a.jpg"),
    );
    let r = client()
        .post(gw.url("/api/v1/upload"))
        .header("X-API-Key", &key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 402);
    assert_eq!(error_body(r).await["quota"], "storage_bytes");
    assert!(
        gw.stored_files().is_empty(),
        "nothing stored: {:?}",
        gw.stored_files()
    );

    let jpeg = std::fs::read(common::fixture("board-720x477.jpg")).unwrap();
    assert_eq!(upload(gw, &key, jpeg.clone()).await.status(), 200);
    let (_, quota) = admin(gw, "GET", "/api/v1/users/s-user/quota", KEY, None).await;
    assert_eq!(quota["storage_bytes"]["used"], jpeg.len());
    // The caller's uploads, and deleting one frees its storage.
    let listed = common::get_json(gw.url("/api/v1/images"), Some(&key)).await;
    assert_eq!(listed["storage_bytes"], jpeg.len());
    let id = listed["images"][0]["id"].as_str().unwrap().to_string();
    let other = create_user(gw, "s-other", "user", json!({})).await;
    let del = |who: String| {
        let url = gw.url(&format!("/api/v1/images/{id}"));
        async move {
            client()
                .delete(url)
                .header("X-API-Key", who)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        del(other).await.status(),
        404,
        "another user's image does not exist for them"
    );
    let r = del(key.clone()).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().contains_key("x-ratelimit-limit") || r.headers().contains_key("x-quota-limit")
    );
    assert_eq!(del(key.clone()).await.status(), 404);
    let (_, quota) = admin(gw, "GET", "/api/v1/users/s-user/quota", KEY, None).await;
    assert_eq!(quota["storage_bytes"]["used"], 0);
    assert!(gw.stored_files().is_empty());

    // Bandwidth: a user allowed 1 MiB a month; each upload costs about 100 KB.
    let thin = create_user(
        gw,
        "b-user",
        "user",
        json!({"quotas": {"monthly_bandwidth_mb": 1}}),
    )
    .await;
    let mut accepted = 0;
    let refused = loop {
        let r = upload(gw, &thin, jpeg.clone()).await;
        if r.status() != 200 {
            break r;
        }
        accepted += 1;
        assert!(accepted < 20, "bandwidth is never exhausted");
    };
    assert_eq!(refused.status(), 402);
    assert_eq!(error_body(refused).await["quota"], "bandwidth_bytes");
    assert!(
        (9..=10).contains(&accepted),
        "{accepted} uploads of 100 KB in 1 MiB"
    );
    // The refused upload's bytes count too; they are recorded once its answer is sent, which
    // the client may see first. Wait for the record, then nothing more gets through.
    let used_up = common::within(Duration::from_secs(2), || async {
        let (_, quota) = admin(gw, "GET", "/api/v1/users/b-user/quota", KEY, None).await;
        quota["bandwidth_bytes"]["remaining"] == 0
    })
    .await;
    assert!(
        used_up.is_some(),
        "the refused upload's bytes were never counted"
    );
    let r = convert(gw, &thin).await;
    assert_eq!(
        r.status(),
        402,
        "no request at all once bandwidth is used up"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn threshold_events_fire_once_each_through_the_webhook() {
    let hook = Stub::start("hook", Mode::Image).await;
    let env = start(
        &format!(
            "quotas:\n  monthly_requests: 10\n  webhook_url: {}/hooks/quota",
            hook.url()
        ),
        "",
    )
    .await;
    let gw = &env.gw;
    let key = create_user(gw, "t-user", "user", json!({})).await;
    for _ in 0..10 {
        assert_eq!(convert(gw, &key).await.status(), 200);
    }
    assert_eq!(convert(gw, &key).await.status(), 402);
    assert_eq!(convert(gw, &key).await.status(), 402);
    let events = || {
        hook.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == "/hooks/quota")
            .map(|r| serde_json::from_slice::<Value>(&r.body).unwrap())
            .collect::<Vec<_>>()
    };
    let arrived = common::within(Duration::from_secs(5), || async { events().len() >= 3 }).await;
    assert!(arrived.is_some(), "{:?}", events());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = events();
    let percents: Vec<u64> = events
        .iter()
        .map(|e| e["percent"].as_u64().unwrap())
        .collect();
    assert_eq!(percents, [80, 90, 100]);
    assert!(events
        .iter()
        .all(|e| e["user_id"] == "t-user" && e["quota"] == "requests" && e["limit"] == 10));
    gw.wait_log("\"event\":\"quota_threshold\"", 3).await;
    assert_eq!(gw.log().matches("\"event\":\"quota_threshold\"").count(), 3);
    // The overview's list: this instance's latest events, newest first.
    let (_, doc) = common::admin(gw, "GET", "/api/v1/metrics", common::KEY, None).await;
    let recent = doc["quotas"]["recent_events"].as_array().unwrap();
    let shown: Vec<_> = recent
        .iter()
        .map(|e| {
            (
                e["user_id"].as_str().unwrap(),
                e["percent"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [("t-user", 100), ("t-user", 90), ("t-user", 80)],
        "{doc}"
    );
    assert!(recent
        .iter()
        .all(|e| e["at"].is_string() && e["resets_at"].is_string()));
    for percent in [80, 90, 100] {
        let series = format!(
            "quota_threshold_events_total{{percent=\"{percent}\",quota_type=\"requests\"}}"
        );
        assert_eq!(common::metric(gw, &series).await, Some(1.0), "{series}");
    }
    let usage = "user_quota_usage{quota_type=\"requests\",user_id=\"t-user\"}";
    let flushed = common::within(Duration::from_secs(3), || async {
        common::metric(gw, usage).await == Some(10.0)
    })
    .await;
    assert!(
        flushed.is_some(),
        "{usage}: {:?}",
        common::metric(gw, usage).await
    );
}

/// SIGTERM: nothing lost. SIGKILL: at most the last flush interval (1 s) lost, never more
/// counted than accepted.
#[tokio::test(flavor = "multi_thread")]
async fn usage_survives_graceful_stops_and_hard_kills() {
    usage_survives(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_survives_graceful_stops_and_hard_kills_on_postgres() {
    usage_survives(Engine::Postgres).await;
}

async fn usage_survives(engine: Engine) {
    let db = match engine {
        Engine::Sqlite => None,
        Engine::Postgres => match TestDb::new(engine).await {
            Some(db) => Some(db),
            None => return,
        },
    };
    let mut env = start_on(
        db,
        "quotas:\n  monthly_requests: 100000",
        "  grace_period: 1s\n  graceful_shutdown_timeout: 2s",
    )
    .await;
    let key = create_user(&env.gw, "d-user", "user", json!({})).await;
    let used = |gw: &Gateway| {
        let url = gw.admin_url("/api/v1/users/d-user/quota");
        async move {
            let r = client()
                .get(url)
                .header("X-API-Key", KEY)
                .send()
                .await
                .unwrap();
            r.json::<Value>().await.unwrap()["requests"]["used"]
                .as_u64()
                .unwrap()
        }
    };
    for _ in 0..25 {
        assert_eq!(convert(&env.gw, &key).await.status(), 200);
    }
    let pid = env.gw.proc.pid().unwrap();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    env.gw.proc.wait_exit(Duration::from_secs(10));
    env.gw.restart().await;
    assert_eq!(used(&env.gw).await, 25, "a graceful stop loses nothing");

    // Load, then SIGKILL in the middle of it.
    let gw_url = env.gw.url(common::CONVERT);
    let load = tokio::spawn({
        let key = key.clone();
        async move {
            let mut accepted = Vec::new();
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(4) {
                match client().get(&gw_url).header("X-API-Key", &key).send().await {
                    Ok(r) if r.status() == 200 => accepted.push(Instant::now()),
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            accepted
        }
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let killed_at = Instant::now();
    env.gw.proc.kill();
    let accepted = load.await.unwrap();
    let settled = accepted
        .iter()
        .filter(|t| killed_at.duration_since(**t) > Duration::from_millis(1500))
        .count() as u64;
    env.gw.restart().await;
    let after = used(&env.gw).await - 25;
    let total = accepted.len() as u64;
    eprintln!("hard kill: {total} accepted, {after} recorded, {settled} accepted over 1.5 s before the kill");
    assert!(total > 0);
    assert!(after <= total, "never more than accepted");
    assert!(after >= settled, "at most the last flush interval is lost");
}
