//! Key verification under pressure: a change made on one instance reaches another within a
//! second (PostgreSQL + Redis), and a flood of forged keys cannot starve verified ones.

mod common;

use common::db::{redis_available, Engine, REDIS_URL};
use common::stub::{Mode, Stub};
use common::{admin, client, convert_status, create_user, env, within, Gateway, TestDb, KEY};
use serde_json::json;
use std::time::{Duration, Instant};

/// Two gateways on one PostgreSQL and one Redis: a change made on A is enforced by B within 1 s.
#[tokio::test(flavor = "multi_thread")]
async fn shared_mode_changes_reach_the_other_instance_within_a_second() {
    let Some(db) = TestDb::new(Engine::Postgres).await else {
        return;
    };
    if !redis_available().await {
        return;
    }
    let a1 = Stub::start("a", Mode::Image).await;
    let b1 = Stub::start("b", Mode::Image).await;
    let prefix = format!("test-{:016x}:", rand::random::<u64>());
    let start = || {
        Gateway::builder()
            .backend(a1.url(), 1)
            .backend(b1.url(), 1)
            .database(&db)
            .auth("  bcrypt_cost: 4\n  cache_ttl: 10m")
            .yaml(&format!(
                "redis:\n  url: {REDIS_URL}\n  timeout_ms: 500\n  key_prefix: \"{prefix}\""
            ))
            .start()
    };
    // Both start together: one legacy user and one legacy key between them.
    let (a, b) = tokio::join!(start(), start());
    let (_, keys) = admin(&a, "GET", "/api/v1/users/legacy/keys", KEY, None).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    let health = common::get_json(b.url("/api/v1/health"), None).await;
    assert_eq!(health["redis"], "ok");

    let key = create_user(&a, "shared", "user", json!({})).await;
    assert_eq!(convert_status(&b, &key).await, 200);
    assert_eq!(convert_status(&b, &key).await, 200, "now cached on B");

    admin(
        &a,
        "PUT",
        "/api/v1/users/shared",
        KEY,
        Some(json!({"status": "suspended"})),
    )
    .await;
    let took = within(Duration::from_secs(1), || async {
        convert_status(&b, &key).await == 403
    })
    .await;
    assert!(took.is_some(), "B refuses the suspended user within 1 s");
    admin(
        &a,
        "PUT",
        "/api/v1/users/shared",
        KEY,
        Some(json!({"status": "active"})),
    )
    .await;
    let took = within(Duration::from_secs(1), || async {
        convert_status(&b, &key).await == 200
    })
    .await;
    assert!(took.is_some(), "B accepts the reactivated user within 1 s");

    let (_, keys) = admin(&a, "GET", "/api/v1/users/shared/keys", KEY, None).await;
    let key_id = keys["keys"][0]["id"].as_str().unwrap().to_string();
    let revoked = Instant::now();
    let (status, _) = admin(
        &a,
        "DELETE",
        &format!("/api/v1/users/shared/keys/{key_id}"),
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 200);
    let took = within(Duration::from_secs(1), || async {
        convert_status(&b, &key).await == 401
    })
    .await;
    assert!(took.is_some(), "B refuses the revoked key within 1 s");
    eprintln!("revocation reached B after {:?}", revoked.elapsed());
}

/// A flood of keys that each need a bcrypt (the victim's public key id with made-up secrets)
/// queues behind a bounded number of bcrypt slots and is turned away with 503; a key that is
/// already verified keeps working during the flood, and wrong keys are 401, never 5xx otherwise.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_unknown_keys_cannot_starve_verified_ones() {
    let env = env(Engine::Sqlite, |b| {
        b.auth("  bcrypt_cost: 12\n  hash_concurrency: 1\n  hash_wait: 50ms")
    })
    .await
    .unwrap();
    let gw = &env.gw;
    let key = create_user(gw, "victim", "user", json!({})).await;
    assert_eq!(convert_status(gw, &key).await, 200, "verified and cached");
    let prefix = &key[..key.len() - 31];
    let flood: Vec<_> = (0..40)
        .map(|i| {
            let forged = format!("{prefix}{:0>31}", i);
            let url = gw.url(common::CONVERT);
            tokio::spawn(async move {
                let r = client()
                    .get(url)
                    .header("X-API-Key", forged)
                    .send()
                    .await
                    .unwrap();
                (
                    r.status().as_u16(),
                    r.headers().get("retry-after").is_some(),
                )
            })
        })
        .collect();
    assert_eq!(
        convert_status(gw, &key).await,
        200,
        "the verified key during the flood"
    );
    let mut busy = 0;
    for answer in flood {
        let (status, retry_after) = answer.await.unwrap();
        assert!(status == 401 || status == 503, "{status}");
        if status == 503 {
            assert!(retry_after, "503 auth_busy carries Retry-After");
            busy += 1;
        }
    }
    assert!(busy > 0, "the bcrypt queue is bounded");
    assert_eq!(convert_status(gw, &key).await, 200);
}
