//! The admin UI's server side: the page and assets served from the binary with a strict
//! Content-Security-Policy, nothing inline and nothing from another origin; the configuration
//! page's source with no secret in it; an admin that cannot lock itself out. `tests/browser.rs`
//! drives the pages in a real browser.

mod common;

use common::{client, Gateway};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

#[tokio::test(flavor = "multi_thread")]
async fn the_ui_is_served_from_the_binary_with_strict_headers() {
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b]).start().await;
    let scripts = [
        "/admin/app.js",
        "/admin/api.js",
        "/admin/chart.js",
        "/admin/lists.js",
        "/admin/overview.js",
        "/admin/user.js",
        "/admin/users.js",
    ];
    let mut served: Vec<&str> = imgproxy_gateway::admin::ui::Asset::paths().collect();
    served.sort_unstable();
    let mut expected = [&["/admin", "/admin/style.css"][..], &scripts[..]].concat();
    expected.sort_unstable();
    assert_eq!(served, expected);
    let mut all_scripts = String::new();
    let assets = [
        ("/admin", "text/html; charset=utf-8"),
        ("/admin/", "text/html; charset=utf-8"),
        ("/admin/style.css", "text/css; charset=utf-8"),
    ]
    .into_iter()
    .chain(scripts.map(|s| (s, "text/javascript; charset=utf-8")));
    for (path, content_type) in assets {
        let r = client().get(gw.admin_url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers().clone();
        assert_eq!(h["content-type"], content_type, "{path}");
        assert_eq!(h["content-security-policy"], CSP, "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        let body = r.text().await.unwrap();
        assert!(!body.is_empty());
        // Nothing from another origin, nothing inline (SVG's namespace name is no address).
        let named = body.replace("\"http://www.w3.org/2000/svg\"", "");
        assert!(
            !named.contains("http://")
                && !named.contains("https://")
                && !named.contains("src=\"//"),
            "{path} names another origin"
        );
        if path == "/admin" {
            assert!(body.contains("<script type=\"module\" src=\"/admin/app.js\"></script>"));
            assert_eq!(body.matches("<script").count(), 1, "one script, by src");
            assert!(!body.contains(" style="), "no inline style");
            assert!(!has_handler_attribute(&body), "no inline handlers");
        }
        if path.ends_with(".js") {
            assert!(!body.contains("localStorage") && !body.contains("document.cookie"));
            assert!(
                !body.contains("innerHTML") && !body.contains("outerHTML"),
                "text only, never HTML"
            );
            assert!(!body.contains("insertAdjacentHTML") && !body.contains("eval("));
            // Imports only from this origin's UI.
            for import in body.lines().filter(|l| l.starts_with("import ")) {
                assert!(import.contains("from \"./"), "{path}: {import}");
            }
            all_scripts.push_str(&body);
        }
    }
    assert!(all_scripts.contains("sessionStorage"));
    assert_eq!(
        client()
            .post(gw.admin_url("/admin"))
            .send()
            .await
            .unwrap()
            .status(),
        405
    );
    assert_eq!(
        client()
            .get(gw.admin_url("/admin/nothing.js"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // The UI's login call: a key reads its own user record.
    let key = common::create_user(&gw, "ui-user", "user", serde_json::json!({})).await;
    let (status, user) = common::admin(&gw, "GET", "/api/v1/users/ui-user", &key, None).await;
    assert_eq!(
        (status, user["role"].as_str()),
        (200, Some("user")),
        "{user}"
    );
}

/// Whether `html` has an attribute like `onclick=` or `onerror =`.
fn has_handler_attribute(html: &str) -> bool {
    let lower = html.to_lowercase();
    lower.match_indices(" on").any(|(at, _)| {
        let rest = &lower[at + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
        name_len > 0 && rest[name_len..].trim_start().starts_with('=')
    })
}

/// The configuration page's source: the running configuration with every secret replaced,
/// and the settings that reload without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn the_effective_configuration_is_shown_without_its_secrets() {
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b])
        .admin_line("  metrics_token: metrics-tok3n-123456")
        .imgproxy("key: 0a1b2c3d4e5f\nsalt: 5f4e3d2c1b0a")
        .start()
        .await;
    let (status, doc) = common::admin(&gw, "GET", "/api/v1/config", common::KEY, None).await;
    assert_eq!(status, 200, "{doc}");
    let text = doc.to_string();
    for secret in ["metrics-tok3n", "0a1b2c3d4e5f", "5f4e3d2c1b0a", common::KEY] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    let config = &doc["config"];
    assert_eq!(config["admin"]["metrics_token"], "***");
    assert_eq!(config["imgproxy"]["key"], "***");
    assert_eq!(config["legacy"]["api_key"], "***");
    // As configured (the harness asks for port 0); the listeners tell the port in use.
    assert_eq!(config["server"]["port"], 0);
    assert_eq!(doc["listening"]["public"], format!("127.0.0.1:{}", gw.port));
    assert_eq!(config["backends"].as_array().unwrap().len(), 2);
    let reloadable: Vec<&str> = doc["reloadable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(reloadable.contains(&"backends") && reloadable.contains(&"rate_limits"));
    assert!(!reloadable.contains(&"server.port"));
}

/// An admin cannot lock itself out (the last admin would leave nobody to undo it); another
/// admin can.
#[tokio::test(flavor = "multi_thread")]
async fn an_admin_cannot_suspend_delete_or_demote_itself() {
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b]).start().await;
    let me = "/api/v1/users/legacy";
    for (method, body) in [
        ("PUT", Some(serde_json::json!({"status": "suspended"}))),
        ("PUT", Some(serde_json::json!({"role": "viewer"}))),
        ("DELETE", None),
    ] {
        let (status, answer) = common::admin(&gw, method, me, common::KEY, body).await;
        assert_eq!(status, 409, "{method} {answer}");
        assert_eq!(answer["error"]["code"], "conflict");
    }
    let (status, user) = common::admin(&gw, "GET", me, common::KEY, None).await;
    assert_eq!((status, user["status"].as_str()), (200, Some("active")));
    // Its other fields, and another admin's changes, go through.
    let (status, _) = common::admin(
        &gw,
        "PUT",
        me,
        common::KEY,
        Some(serde_json::json!({"name": "Legacy admin"})),
    )
    .await;
    assert_eq!(status, 200);
    let other = common::create_user(&gw, "second-admin", "admin", serde_json::json!({})).await;
    let (status, user) = common::admin(
        &gw,
        "PUT",
        me,
        &other,
        Some(serde_json::json!({"status": "suspended"})),
    )
    .await;
    assert_eq!(
        (status, user["status"].as_str()),
        (200, Some("suspended")),
        "{user}"
    );
}
