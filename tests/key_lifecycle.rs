//! Issue 10, item 5: a key's lifecycle holds under hostile use. A rotated key never outlives
//! the key it replaces, issuance is capped under concurrency and limited per hour, and a
//! rotation of the legacy key survives restarts. Every scenario runs on SQLite and PostgreSQL.

mod common;

use common::db::Engine;
use common::{admin, client, convert_status, create_user, env, KEY};
use serde_json::{json, Value};

common::on_both_databases!(
    a_rotated_key_never_outlives_the_key_it_replaces,
    parallel_rotations_hold_the_live_key_cap,
    rotations_are_limited_per_user,
    a_rotated_legacy_key_survives_a_restart,
);

/// Issue 10, item 5 (the finding: rotating a key issued with an expiry returned a key with
/// `expires_at: null`).
async fn a_rotated_key_never_outlives_the_key_it_replaces(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let gw = &env.gw;
    create_user(gw, "exp-1", "user", json!({})).await;
    let (status, issued) = admin(
        gw,
        "POST",
        "/api/v1/users/exp-1/keys",
        KEY,
        Some(json!({"label": "temp", "expires_in_seconds": 3600})),
    )
    .await;
    assert_eq!(status, 201, "{issued}");
    let (key, expires) = (
        issued["key"].as_str().unwrap().to_string(),
        issued["expires_at"].as_str().unwrap().to_string(),
    );
    let id = issued["id"].as_str().unwrap().to_string();
    // The user rotates it (its own key): the new one ends when the old one would have.
    let (status, rotated) = admin(
        gw,
        "POST",
        "/api/v1/users/exp-1/keys/rotate",
        &key,
        Some(json!({"key_id": id, "grace_seconds": 0})),
    )
    .await;
    assert_eq!(status, 201, "{rotated}");
    assert_eq!(rotated["new"]["expires_at"], expires.as_str(), "{rotated}");
    // Only an admin may give the new key a lifetime of its own.
    let new_key = rotated["new"]["key"].as_str().unwrap().to_string();
    let new_id = rotated["new"]["id"].as_str().unwrap().to_string();
    let (status, refused) = admin(
        gw,
        "POST",
        "/api/v1/users/exp-1/keys/rotate",
        &new_key,
        Some(json!({"key_id": new_id, "expires_in_seconds": 999999})),
    )
    .await;
    assert_eq!(status, 403, "{refused}");
    let (status, extended) = admin(
        gw,
        "POST",
        "/api/v1/users/exp-1/keys/rotate",
        KEY,
        Some(json!({"key_id": new_id, "expires_in_seconds": 7200})),
    )
    .await;
    assert_eq!(status, 201, "{extended}");
    assert_ne!(extended["new"]["expires_at"], expires.as_str());
}

/// 20 parallel rotations of a user's key (old keys live through their grace) leave at most
/// the cap of 10 live keys; the cap was checked before it was acted on.
async fn parallel_rotations_hold_the_live_key_cap(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let gw = &env.gw;
    create_user(gw, "par-rot", "user", json!({})).await;
    let url = gw.admin_url("/api/v1/users/par-rot/keys/rotate");
    let statuses = common::all_at_once((0..20).map(|_| {
        client()
            .post(&url)
            .header("X-API-Key", KEY)
            .json(&json!({"grace_seconds": 3600, "key_id": null}))
    }))
    .await;
    let (_, keys) = admin(gw, "GET", "/api/v1/users/par-rot/keys", KEY, None).await;
    let live = keys["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("{keys}"))
        .iter()
        .filter(|k| k["revoked_at"].is_null())
        .count();
    assert!(live <= 10, "{live} live keys after {statuses:?}");
    assert!(
        statuses.iter().all(|s| [201, 409, 400].contains(s)),
        "{statuses:?}"
    );
}

/// Rotations (and new keys) are limited per user: 20 issued per hour, then 429 with a
/// `Retry-After`.
async fn rotations_are_limited_per_user(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let gw = &env.gw;
    create_user(gw, "rot-limit", "user", json!({})).await;
    let rotate = || {
        client()
            .post(gw.admin_url("/api/v1/users/rot-limit/keys/rotate"))
            .header("X-API-Key", KEY)
            .json(&json!({"grace_seconds": 0}))
            .send()
    };
    // The first key counts: 19 rotations make 20 issued keys.
    for i in 0..19 {
        let r = rotate().await.unwrap();
        assert_eq!(r.status(), 201, "rotation {i}: {}", r.text().await.unwrap());
    }
    let r = rotate().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["limit_type"], "key_issuance", "{body}");
}

/// Rotating the legacy key used to be undone at the next start (bootstrap revoked the new key
/// as a "replaced" legacy key). It now survives restarts, and the old value stays dead.
async fn a_rotated_legacy_key_survives_a_restart(engine: Engine) {
    let Some(mut env) = env(engine, |b| b).await else {
        return;
    };
    let (status, rotated) = admin(
        &env.gw,
        "POST",
        "/api/v1/users/legacy/keys/rotate",
        KEY,
        Some(json!({"grace_seconds": 0})),
    )
    .await;
    assert_eq!(status, 201, "{rotated}");
    let new_key = rotated["new"]["key"].as_str().unwrap().to_string();
    assert_eq!(convert_status(&env.gw, &new_key).await, 200);
    assert_eq!(convert_status(&env.gw, KEY).await, 401);
    env.gw.restart().await;
    assert_eq!(
        convert_status(&env.gw, &new_key).await,
        200,
        "kept across the restart"
    );
    assert_eq!(
        convert_status(&env.gw, KEY).await,
        401,
        "the old value stays revoked"
    );
}
