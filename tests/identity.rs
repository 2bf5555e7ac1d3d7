//! Users, keys, rotation, roles and IP whitelists as clients and operators see them. Every
//! scenario runs on SQLite and on PostgreSQL (`sqlite::` and `postgres::` tests).

mod common;

use common::db::Engine;
use common::stub::{Mode, Stub};
use common::{
    admin, client, convert, convert_status, create_user, env, error_code, within, Gateway, TestDb,
    BIN, KEY,
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

common::on_both_databases!(
    a_created_user_calls_with_its_own_key,
    rotation_keeps_the_old_key_until_its_grace_ends,
    revocation_suspension_and_deletion,
    bad_keys_are_401,
    bad_inputs_are_400_naming_the_field,
    the_legacy_key_is_an_admin_user_created_once,
    the_cli_bootstraps_users_and_keys,
);

async fn a_created_user_calls_with_its_own_key(engine: Engine) {
    let Some(env) = env(engine, |b| {
        b.auth("  bcrypt_cost: 4\n  last_used_flush: 200ms")
    })
    .await
    else {
        return;
    };
    let gw = &env.gw;
    let (status, answer) = admin(
        gw,
        "POST",
        "/api/v1/users",
        KEY,
        Some(
            json!({"id": "user_123", "name": "Ann", "email": "ann@example.com", "role": "user",
            "rate_limits": {"requests_per_minute": 60}}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let user = &answer["user"];
    assert_eq!(user["id"], "user_123");
    assert_eq!(user["status"], "active");
    assert_eq!(user["role"], "user");
    assert_eq!(user["ip_whitelist"], json!([]));
    assert_eq!(user["rate_limits"]["requests_per_minute"], 60);
    assert_eq!(user["quotas"], Value::Null);
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    let key = answer["api_key"]["key"].as_str().unwrap().to_string();
    let key_id = answer["api_key"]["id"].as_str().unwrap().to_string();
    assert!(key.starts_with("imgproxy_user_123_"), "{key}");
    assert_eq!(key.len(), "imgproxy_user_123_".len() + 43);
    assert_eq!(answer["api_key"]["label"], "primary");

    let r = convert(gw, &key).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().len(), 1);

    // The user reads its own record and key metadata; never a secret.
    let (status, me) = admin(gw, "GET", "/api/v1/users/user_123", &key, None).await;
    assert_eq!(
        (status, me["email"].as_str()),
        (200, Some("ann@example.com"))
    );
    let listed = within(Duration::from_secs(5), || async {
        let (_, keys) = admin(gw, "GET", "/api/v1/users/user_123/keys", &key, None).await;
        keys["keys"][0]["last_used_at"].is_string()
    })
    .await;
    assert!(listed.is_some(), "last_used_at is written in a batch");
    let (_, keys) = admin(gw, "GET", "/api/v1/users/user_123/keys", &key, None).await;
    let listed = keys["keys"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], key_id.as_str());
    assert_eq!(listed[0]["state"], "active");
    assert!(
        !keys.to_string().contains(&key[key.len() - 20..]),
        "no secret in listings"
    );

    let (status, answer) = admin(
        gw,
        "POST",
        "/api/v1/users",
        KEY,
        Some(json!({"id": "user_123", "name": "B", "email": "b@example.com", "role": "user"})),
    )
    .await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("conflict"))
    );

    let (status, audit) = admin(gw, "GET", "/api/v1/audit", KEY, None).await;
    assert_eq!(status, 200);
    let created = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.create" && e["target"] == "user_123")
        .expect("audited");
    assert_eq!(created["actor"], "legacy");
    assert!(created["request_id"].is_string());
    assert!(!audit.to_string().contains(&key), "no key in the audit log");

    // Issue 10, item 8: the audit entry is found by the gateway's own request id; what the
    // client sent as X-Request-ID is kept beside it and cannot take its place.
    let r = common::client()
        .post(gw.admin_url("/api/v1/users"))
        .header("X-API-Key", KEY)
        .header("X-Request-ID", "client-chosen-id")
        .json(&json!({"id": "traced", "name": "T", "email": "t@example.com", "role": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-request-id"], "client-chosen-id");
    let (_, audit) = admin(gw, "GET", "/api/v1/audit", KEY, None).await;
    let traced = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.create" && e["target"] == "traced")
        .expect("audited");
    assert_eq!(traced["client_request_id"], "client-chosen-id");
    let own = traced["request_id"].as_str().unwrap();
    assert!(
        own.len() == 32 && own.bytes().all(|b| b.is_ascii_hexdigit()),
        "{own}"
    );
    // The admin log line names the same id (lines are written within 100 ms).
    gw.wait_log(&format!("\"gateway_request_id\":\"{own}\""), 1)
        .await;
    assert!(!gw.log().contains(&key), "no key in the log");
}

async fn rotation_keeps_the_old_key_until_its_grace_ends(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let gw = &env.gw;
    let old = create_user(gw, "rot-1", "user", json!({})).await;
    assert_eq!(convert_status(gw, &old).await, 200);

    // A `user` may rotate its own key.
    let (status, answer) = admin(
        gw,
        "POST",
        "/api/v1/users/rot-1/keys/rotate",
        &old,
        Some(json!({"grace_seconds": 2})),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    let new = answer["new"]["key"].as_str().unwrap().to_string();
    assert_eq!(answer["new"]["label"], "primary");
    assert!(answer["old"]["expires_at"].is_string());
    assert_ne!(answer["old"]["id"], answer["new"]["id"]);

    let rotated_at = Instant::now();
    assert_eq!(convert_status(gw, &new).await, 200);
    assert_eq!(
        convert_status(gw, &old).await,
        200,
        "the old key works during its grace"
    );
    let died = within(Duration::from_secs(6), || async {
        convert_status(gw, &old).await == 401
    })
    .await;
    assert!(died.is_some(), "the old key stops after its grace");
    assert!(
        rotated_at.elapsed() >= Duration::from_millis(1500),
        "not before the grace ends"
    );
    let r = convert(gw, &old).await;
    assert_eq!(error_code(r).await, "unauthorized");
    assert_eq!(convert_status(gw, &new).await, 200);

    let (_, keys) = admin(gw, "GET", "/api/v1/users/rot-1/keys", KEY, None).await;
    let states: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["expired", "active"]);

    // Keys in a grace period count as live: rotation cannot pile them up without bound.
    let mut rotations = 0;
    let refused = loop {
        let (status, answer) = admin(
            gw,
            "POST",
            "/api/v1/users/rot-1/keys/rotate",
            KEY,
            Some(json!({"grace_seconds": 600})),
        )
        .await;
        if status != 201 {
            break (status, answer);
        }
        rotations += 1;
        assert!(rotations <= 10, "rotation never refused");
    };
    assert_eq!(rotations, 9, "1 live key + 9 expiring = the limit of 10");
    assert_eq!(
        (refused.0, refused.1["error"]["code"].as_str()),
        (409, Some("conflict"))
    );
}

async fn revocation_suspension_and_deletion(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let gw = &env.gw;
    let primary = create_user(gw, "rev", "user", json!({})).await;
    let (status, second) = admin(
        gw,
        "POST",
        "/api/v1/users/rev/keys",
        KEY,
        Some(json!({"label": "secondary"})),
    )
    .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["label"], "secondary");
    let secondary = second["key"].as_str().unwrap().to_string();
    assert_eq!(convert_status(gw, &secondary).await, 200);
    assert_eq!(convert_status(gw, &primary).await, 200);

    let path = format!("/api/v1/users/rev/keys/{}", second["id"].as_str().unwrap());
    let (status, revoked) = admin(gw, "DELETE", &path, KEY, None).await;
    assert_eq!((status, revoked["state"].as_str()), (200, Some("revoked")));
    assert_eq!(
        convert_status(gw, &secondary).await,
        401,
        "revocation is immediate"
    );
    assert_eq!(admin(gw, "DELETE", &path, KEY, None).await.0, 404);

    let (status, user) = admin(
        gw,
        "PUT",
        "/api/v1/users/rev",
        KEY,
        Some(json!({"status": "suspended"})),
    )
    .await;
    assert_eq!((status, user["status"].as_str()), (200, Some("suspended")));
    let r = convert(gw, &primary).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "forbidden");

    admin(
        gw,
        "PUT",
        "/api/v1/users/rev",
        KEY,
        Some(json!({"status": "active"})),
    )
    .await;
    assert_eq!(convert_status(gw, &primary).await, 200);

    let (status, user) = admin(gw, "DELETE", "/api/v1/users/rev", KEY, None).await;
    assert_eq!((status, user["status"].as_str()), (200, Some("deleted")));
    assert_eq!(
        convert_status(gw, &primary).await,
        401,
        "deleting revokes every key"
    );
    let (_, user) = admin(gw, "GET", "/api/v1/users/rev", KEY, None).await;
    assert_eq!(user["status"], "deleted");
    assert_eq!(
        admin(
            gw,
            "PUT",
            "/api/v1/users/rev",
            KEY,
            Some(json!({"name": "x"}))
        )
        .await
        .0,
        409
    );
    assert_eq!(
        admin(gw, "GET", "/api/v1/users/nobody", KEY, None).await.0,
        404
    );
}

async fn bad_keys_are_401(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let gw = &env.gw;
    let good = create_user(gw, "k401", "user", json!({})).await;
    let mut wrong_secret = good.clone();
    wrong_secret.replace_range(good.len() - 5.., "ZZZZZ");
    let other_user = good.replace("imgproxy_k401_", "imgproxy_k402_");
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("malformed", Some("nope".into())),
        ("not utf-8 shaped", Some("imgproxy_k401_short".into())),
        ("unknown", Some(format!("imgproxy_k401_{}", "A".repeat(43)))),
        ("wrong secret", Some(wrong_secret)),
        ("another user's id", Some(other_user)),
    ];
    for (what, key) in cases {
        for attempt in 0..2 {
            let mut req = client().get(gw.url(common::CONVERT));
            if let Some(key) = &key {
                req = req.header("X-API-Key", key);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 401, "{what} (attempt {attempt})");
            assert_eq!(error_code(r).await, "unauthorized");
        }
    }
    assert_eq!(convert_status(gw, &good).await, 200);
}

async fn bad_inputs_are_400_naming_the_field(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let gw = &env.gw;
    create_user(gw, "val", "user", json!({})).await;
    let base = json!({"id": "v2", "name": "V", "email": "v@example.com", "role": "user"});
    let with = |extra: Value| {
        let mut b = base.clone();
        b.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        b
    };
    for (method, path, body, field) in [
        (
            "POST",
            "/api/v1/users",
            with(json!({"plan": "gold"})),
            "plan",
        ),
        (
            "POST",
            "/api/v1/users",
            with(json!({"email": "not-an-email"})),
            "email",
        ),
        ("POST", "/api/v1/users", with(json!({"id": "Bad Id"})), "id"),
        (
            "POST",
            "/api/v1/users",
            with(json!({"role": "root"})),
            "role",
        ),
        (
            "POST",
            "/api/v1/users",
            with(json!({"ip_whitelist": ["10.0.0.0/33"]})),
            "ip_whitelist[0]",
        ),
        (
            "POST",
            "/api/v1/users",
            with(json!({"rate_limits": {"requests_per_minute": 0}})),
            "rate_limits.requests_per_minute",
        ),
        (
            "POST",
            "/api/v1/users",
            with(json!({"quotas": {"reset_day": 31}})),
            "quotas.reset_day",
        ),
        (
            "PUT",
            "/api/v1/users/val",
            json!({"status": "frozen"}),
            "status",
        ),
        (
            "PUT",
            "/api/v1/users/val",
            json!({"ip_whitelist": ["::1", "fe80::/200"]}),
            "ip_whitelist[1]",
        ),
        ("PUT", "/api/v1/users/val", json!({"id": "other"}), "id"),
        (
            "POST",
            "/api/v1/users/val/keys",
            json!({"label": "Has Space"}),
            "label",
        ),
        (
            "POST",
            "/api/v1/users/val/keys/rotate",
            json!({"grace_seconds": -1}),
            "grace_seconds",
        ),
    ] {
        let (status, answer) = admin(gw, method, path, KEY, Some(body.clone())).await;
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_parameter", "{answer}");
        assert_eq!(answer["error"]["field"], field, "{body}: {answer}");
    }
    let r = client()
        .post(gw.admin_url("/api/v1/users"))
        .header("X-API-Key", KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let (_, users) = admin(gw, "GET", "/api/v1/users", KEY, None).await;
    assert!(
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["id"] != "v2"),
        "nothing half-created"
    );
}

async fn the_legacy_key_is_an_admin_user_created_once(engine: Engine) {
    let Some(mut env) = env(engine, |b| b).await else {
        return;
    };
    env.gw.restart().await;
    env.gw.restart().await;
    let gw = &env.gw;
    assert_eq!(convert_status(gw, KEY).await, 200);
    let (status, user) = admin(gw, "GET", "/api/v1/users/legacy", KEY, None).await;
    assert_eq!((status, user["role"].as_str()), (200, Some("admin")));
    let (_, keys) = admin(gw, "GET", "/api/v1/users/legacy/keys", KEY, None).await;
    assert_eq!(keys["keys"].as_array().unwrap().len(), 1, "{keys}");
    let (_, users) = admin(gw, "GET", "/api/v1/users", KEY, None).await;
    assert_eq!(users["users"].as_array().unwrap().len(), 1);

    // An operator who changes `legacy.api_key` retires the old value.
    let replacement = "0123456789abcdef0123456789abcdef";
    let mut config = std::fs::read_to_string(env.gw.config_path()).unwrap();
    config.push_str(&format!("\nlegacy:\n  api_key: {replacement}\n"));
    std::fs::write(env.gw.config_path(), config).unwrap();
    env.gw.restart().await;
    let gw = &env.gw;
    assert_eq!(convert_status(gw, KEY).await, 401);
    assert_eq!(convert_status(gw, replacement).await, 200);

    let a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let fresh = TestDb::new(engine).await.unwrap();
    let off = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .database(&fresh)
        .yaml("legacy:\n  enabled: false")
        .start()
        .await;
    let r = convert(&off, KEY).await;
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "unauthorized");
}

async fn the_cli_bootstraps_users_and_keys(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let gw = &env.gw;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(&*BIN)
            .args(args)
            .arg("--config")
            .arg(gw.config_path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.success(), stdout, stderr)
    };
    let (ok, out, err) = cli(&[
        "user",
        "create",
        "--id",
        "cli-user",
        "--name",
        "Cli",
        "--email",
        "cli@example.com",
    ]);
    assert!(ok, "{out}{err}");
    let created: Value = serde_json::from_str(&out).unwrap();
    let key = created["api_key"]["key"].as_str().unwrap().to_string();
    assert_eq!(created["user"]["role"], "user");
    assert_eq!(convert_status(gw, &key).await, 200);

    let (ok, out, err) = cli(&["key", "create", "cli-user", "--label", "secondary"]);
    assert!(ok, "{out}{err}");
    let second: Value = serde_json::from_str(&out).unwrap();
    let (ok, out, err) = cli(&["key", "revoke", "cli-user", second["id"].as_str().unwrap()]);
    assert!(ok, "{out}{err}");
    assert_eq!(
        convert_status(gw, second["key"].as_str().unwrap()).await,
        401
    );

    let (ok, out, err) = cli(&["key", "rotate", "cli-user", "--grace-seconds", "0"]);
    assert!(ok, "{out}{err}");
    let rotated: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        convert_status(gw, rotated["new"]["key"].as_str().unwrap()).await,
        200
    );

    let (ok, out, _) = cli(&["user", "list"]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert!(listed["users"]
        .as_array()
        .unwrap()
        .iter()
        .any(|u| u["id"] == "cli-user"));
    let (ok, out, _) = cli(&["user", "suspend", "cli-user"]);
    assert!(ok);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["status"],
        "suspended"
    );

    let (ok, _, err) = cli(&[
        "user",
        "create",
        "--id",
        "Bad!",
        "--name",
        "x",
        "--email",
        "x@example.com",
    ]);
    assert!(!ok);
    assert!(err.contains("id:"), "{err}");
    let (_, audit) = admin(gw, "GET", "/api/v1/audit", KEY, None).await;
    assert!(audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["actor"] == "cli" && e["action"] == "key.rotate"));
}
