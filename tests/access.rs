//! Access control as clients and operators see it: every role on every management route, and
//! IP whitelists with and without trusted proxies. Each scenario runs on SQLite and PostgreSQL.

mod common;

use common::db::Engine;
use common::stub::{Mode, Stub};
use common::{admin, client, create_user, env, error_code, Gateway, KEY};
use serde_json::{json, Value};

common::on_both_databases!(
    every_role_on_every_management_route,
    ip_whitelists_and_forwarded_for,
);

async fn every_role_on_every_management_route(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let gw = &env.gw;
    let viewer = create_user(gw, "r-viewer", "viewer", json!({})).await;
    let user = create_user(gw, "r-user", "user", json!({})).await;
    create_user(gw, "r-other", "user", json!({})).await;
    let roles = [
        ("admin", KEY.to_string()),
        ("viewer", viewer),
        ("user", user),
    ];
    for i in 0..roles.len() {
        create_user(gw, &format!("r-gone-{i}"), "user", json!({})).await;
    }
    // Every management route, on the caller's own record and on someone else's; `{i}` is the
    // role's index, so that creating and deleting never collide.
    let new_user = json!({"id": "new-{i}", "name": "N", "email": "n@example.com", "role": "user"});
    #[rustfmt::skip]
    let table: Vec<(&str, &str, Option<Value>, [bool; 3])> = vec![
        //                                                                 admin  viewer user
        ("GET",    "/api/v1/users",                          None,                   [true, true,  false]),
        ("POST",   "/api/v1/users",                          Some(new_user),         [true, false, false]),
        ("GET",    "/api/v1/users/r-user",                   None,                   [true, true,  true ]),
        ("GET",    "/api/v1/users/r-other",                  None,                   [true, true,  false]),
        ("PUT",    "/api/v1/users/r-user",                   Some(json!({"name": "Me"})), [true, false, false]),
        ("PUT",    "/api/v1/users/r-other",                  Some(json!({"name": "O"})),  [true, false, false]),
        ("DELETE", "/api/v1/users/r-gone-{i}",               None,                   [true, false, false]),
        ("GET",    "/api/v1/users/r-user/keys",              None,                   [true, true,  true ]),
        ("GET",    "/api/v1/users/r-other/keys",             None,                   [true, true,  false]),
        ("POST",   "/api/v1/users/r-user/keys",              Some(json!({"label": "secondary"})), [true, false, false]),
        ("POST",   "/api/v1/users/r-other/keys",             Some(json!({"label": "secondary"})), [true, false, false]),
        ("POST",   "/api/v1/users/r-other/keys/rotate",      Some(json!({"grace_seconds": 60})),  [true, false, false]),
        ("DELETE", "/api/v1/users/r-user/keys/nosuchkey000", None,                   [true, false, false]),
        ("DELETE", "/api/v1/users/r-other/keys/nosuchkey000",None,                   [true, false, false]),
        ("GET",    "/api/v1/users/r-user/quota",             None,                   [true, true,  true ]),
        ("GET",    "/api/v1/users/r-other/quota",            None,                   [true, true,  false]),
        ("POST",   "/api/v1/users/r-user/quota/reset",       None,                   [true, false, false]),
        ("POST",   "/api/v1/users/r-other/quota/reset",      None,                   [true, false, false]),
        ("GET",    "/api/v1/backends",                       None,                   [true, true,  false]),
        ("GET",    "/api/v1/audit",                          None,                   [true, true,  false]),
        ("GET",    "/api/v1/metrics",                        None,                   [true, true,  false]),
        ("GET",    "/api/v1/config",                         None,                   [true, true,  false]),
    ];
    for (method, path, body, allowed) in table {
        for (i, (role, key)) in roles.iter().enumerate() {
            let path = path.replace("{i}", &i.to_string());
            let body = body.as_ref().map(|b| {
                serde_json::from_str(&b.to_string().replace("{i}", &i.to_string())).unwrap()
            });
            let (status, answer) = admin(gw, method, &path, key, body).await;
            if allowed[i] {
                // Allowed means the role check passed: success, or 404 for the missing key.
                assert!(
                    status < 400 || status == 404,
                    "{role} may {method} {path}: {status} {answer}"
                );
            } else {
                assert_eq!(status, 403, "{role} may not {method} {path}: {answer}");
                assert_eq!(answer["error"]["code"], "forbidden");
            }
        }
    }
    // A `user` rotates only its own keys (its rotation is tested with grace periods elsewhere).
    let (_, someone) = admin(
        gw,
        "POST",
        "/api/v1/users/r-other/keys/rotate",
        &roles[2].1,
        Some(json!({})),
    )
    .await;
    assert_eq!(someone["error"]["code"], "forbidden");
    // No key at all: 401 on every guarded route, health stays open.
    assert_eq!(
        client()
            .get(gw.admin_url("/api/v1/users"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client()
            .get(gw.admin_url("/api/v1/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

async fn ip_whitelists_and_forwarded_for(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let direct = &env.gw;
    let key = create_user(
        direct,
        "net",
        "user",
        json!({"ip_whitelist": ["10.0.0.0/8", "2001:db8::/32"]}),
    )
    .await;
    let open = create_user(direct, "net-open", "user", json!({})).await;
    let local = create_user(
        direct,
        "net-local",
        "user",
        json!({"ip_whitelist": ["127.0.0.1"]}),
    )
    .await;
    let send = |gw: &Gateway, key: &str, xff: Option<&str>| {
        let mut req = client()
            .get(gw.url(common::CONVERT))
            .header("X-API-Key", key);
        if let Some(xff) = xff {
            req = req.header("X-Forwarded-For", xff);
        }
        async move { req.send().await.unwrap() }
    };
    let r = send(direct, &key, None).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "forbidden");
    assert_eq!(
        send(direct, &key, Some("10.1.2.3")).await.status(),
        403,
        "spoofed X-Forwarded-For from an untrusted peer"
    );
    assert_eq!(send(direct, &open, None).await.status(), 200);
    assert_eq!(
        send(direct, &local, Some("10.1.2.3")).await.status(),
        200,
        "the socket address counts"
    );

    // The same database behind a gateway that trusts 127.0.0.1 as its proxy.
    let a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let behind = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .database(&env._db)
        .server("  trusted_proxies: [\"127.0.0.1\"]")
        .start()
        .await;
    for (xff, status) in [
        (Some("10.1.2.3"), 200),
        (Some("2001:db8::9"), 200),
        (Some("[2001:db8::9]:443"), 200),
        (Some("192.0.2.1"), 403),
        (Some("10.1.2.3, 192.0.2.1"), 403),
        (Some("192.0.2.1, 10.1.2.3"), 200),
        (Some("2001:db9::1"), 403),
        (None, 403),
    ] {
        assert_eq!(send(&behind, &key, xff).await.status(), status, "{xff:?}");
    }
    assert_eq!(send(&behind, &local, Some("10.1.2.3")).await.status(), 403);
}
