//! `GET /api/v1/users` and `GET /api/v1/audit` search, filter and page on the server, on
//! SQLite and PostgreSQL.

mod common;

use common::db::Engine;
use common::{admin, env, KEY};
use serde_json::json;

common::on_both_databases!(the_user_list_is_searched_filtered_and_paged_by_the_server);

/// Issue 11 (its first slice): `GET /api/v1/users?q=&status=&role=&limit=&after=`, so a UI
/// over ten thousand users asks only for the page it shows.
async fn the_user_list_is_searched_filtered_and_paged_by_the_server(engine: Engine) {
    let Some(env) = env(engine, |b| b).await else {
        return;
    };
    let gw = &env.gw;
    for i in 0..23 {
        let role = ["user", "viewer", "admin"][i % 3];
        let (status, created) = admin(
            gw,
            "POST",
            "/api/v1/users",
            KEY,
            Some(
                json!({"id": format!("p-{i:02}"), "name": format!("Person {i} Müller"),
                "email": format!("p{i}@Example.com"), "role": role}),
            ),
        )
        .await;
        assert_eq!(status, 201, "{created}");
    }
    admin(gw, "DELETE", "/api/v1/users/p-07", KEY, None).await;
    let list = |query: &str| {
        let query = query.to_string();
        async move {
            let (status, page) =
                admin(gw, "GET", &format!("/api/v1/users?{query}"), KEY, None).await;
            assert_eq!(status, 200, "{query}: {page}");
            let ids: Vec<String> = page["users"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_string())
                .collect();
            (ids, page["next"].as_str().map(str::to_string))
        }
    };
    // Paging: every user exactly once, in id order, 10 at a time.
    let (mut seen, mut after) = (Vec::new(), None::<String>);
    loop {
        let query = match &after {
            Some(a) => format!("q=p-&limit=10&after={a}"),
            None => "q=p-&limit=10".to_string(),
        };
        let (ids, next) = list(&query).await;
        assert!(ids.len() <= 10);
        seen.extend(ids);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let expected: Vec<String> = (0..23).map(|i| format!("p-{i:02}")).collect();
    assert_eq!(seen, expected);
    // Search is case-insensitive over id, name and email; wildcards are literal.
    assert_eq!(list("q=PERSON%2012%20m").await.0, ["p-12"]);
    assert_eq!(list("q=p12%40example").await.0, ["p-12"]);
    assert!(list("q=%25").await.0.is_empty(), "% matches only itself");
    assert!(list("q=p_1").await.0.is_empty(), "_ matches only itself");
    // Filters.
    let (admins, _) = list("q=p-&role=admin").await;
    assert_eq!(admins.len(), 7, "{admins:?}");
    assert_eq!(list("status=deleted").await.0, ["p-07"]);
    // The audit log filters on the server by actor, action and target.
    let (status, audit) = admin(
        gw,
        "GET",
        "/api/v1/audit?actor=legacy&action=user.create&target=p-05",
        KEY,
        None,
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{audit}");
    assert_eq!(entries[0]["target"], "p-05");
    let (status, _) = admin(gw, "GET", "/api/v1/audit?who=x", KEY, None).await;
    assert_eq!(status, 400);
    // Bad parameters name themselves.
    for (query, field) in [
        ("limit=0", "limit"),
        ("status=x", "status"),
        ("sort=id", "sort"),
    ] {
        let (status, answer) = admin(gw, "GET", &format!("/api/v1/users?{query}"), KEY, None).await;
        assert_eq!(status, 400, "{query}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
}
