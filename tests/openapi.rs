//! The OpenAPI document (`docs/openapi.json`, served at `/api/v1/openapi.json` on both
//! listeners): it names every route the gateway serves, on the listener that serves it, and a
//! live gateway answers within it (schemathesis, from PyPI, for a bounded number of examples:
//! no 5xx, no status, content type or body outside the document).

mod common;

use common::{client, Gateway, KEY};
use http::Method;
use imgproxy_gateway::admin::routes::{self as admin, AdminRoute};
use imgproxy_gateway::proxy::route::{self as public, Route};
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

fn document() -> Value {
    serde_json::from_str(imgproxy_gateway::openapi::DOCUMENT).expect("docs/openapi.json is JSON")
}

/// Which variant a route is, as a number: the match is exhaustive, so a new route does not
/// compile until it has a number here, and then the test below fails until the table has it.
fn admin_index(route: &AdminRoute) -> usize {
    use AdminRoute::*;
    match route {
        Ui(_) => 0,
        Metrics => 1,
        Health => 2,
        Ready => 3,
        OpenApi => 4,
        Backends => 5,
        MetricsJson => 6,
        Audit => 7,
        Config => 8,
        Users => 9,
        CreateUser => 10,
        User(_) => 11,
        UpdateUser(_) => 12,
        DeleteUser(_) => 13,
        Keys(_) => 14,
        CreateKey(_) => 15,
        RotateKey(_) => 16,
        RevokeKey(..) => 17,
        Quota(_) => 18,
        ResetQuota(_) => 19,
    }
}
const ADMIN_ROUTES: usize = 20;

fn public_index(route: &Route) -> usize {
    match route {
        Route::Unknown => usize::MAX,
        Route::Health => 0,
        Route::Ready => 1,
        Route::OpenApi => 2,
        Route::Upload => 3,
        Route::Convert => 4,
        Route::Source(_) => 5,
        Route::Quota(_) => 6,
        Route::Images => 7,
        Route::DeleteImage(_) => 8,
    }
}
const PUBLIC_ROUTES: usize = 9;

/// (method, path in the document, a concrete path) of every admin route.
const ADMIN_TABLE: &[(&str, &str, &str)] = &[
    ("get", "/admin", "/admin"),
    ("get", "/admin/{asset}", "/admin/app.js"),
    ("get", "/metrics", "/metrics"),
    ("get", "/api/v1/health", "/api/v1/health"),
    ("get", "/api/v1/ready", "/api/v1/ready"),
    ("get", "/api/v1/openapi.json", "/api/v1/openapi.json"),
    ("get", "/api/v1/backends", "/api/v1/backends"),
    ("get", "/api/v1/metrics", "/api/v1/metrics"),
    ("get", "/api/v1/audit", "/api/v1/audit"),
    ("get", "/api/v1/config", "/api/v1/config"),
    ("get", "/api/v1/users", "/api/v1/users"),
    ("post", "/api/v1/users", "/api/v1/users"),
    ("get", "/api/v1/users/{id}", "/api/v1/users/u"),
    ("put", "/api/v1/users/{id}", "/api/v1/users/u"),
    ("delete", "/api/v1/users/{id}", "/api/v1/users/u"),
    ("get", "/api/v1/users/{id}/keys", "/api/v1/users/u/keys"),
    ("post", "/api/v1/users/{id}/keys", "/api/v1/users/u/keys"),
    (
        "post",
        "/api/v1/users/{id}/keys/rotate",
        "/api/v1/users/u/keys/rotate",
    ),
    (
        "delete",
        "/api/v1/users/{id}/keys/{key_id}",
        "/api/v1/users/u/keys/k",
    ),
    ("get", "/api/v1/users/{id}/quota", "/api/v1/users/u/quota"),
    (
        "post",
        "/api/v1/users/{id}/quota/reset",
        "/api/v1/users/u/quota/reset",
    ),
];

const PUBLIC_TABLE: &[(&str, &str, &str)] = &[
    ("get", "/api/v1/health", "/api/v1/health"),
    ("get", "/api/v1/ready", "/api/v1/ready"),
    ("get", "/api/v1/openapi.json", "/api/v1/openapi.json"),
    ("post", "/api/v1/upload", "/api/v1/upload"),
    ("get", "/api/v1/convert", "/api/v1/convert"),
    ("get", "/internal/v1/source/{id}", "/internal/v1/source/abc"),
    ("get", "/api/v1/users/{id}/quota", "/api/v1/users/u/quota"),
    ("get", "/api/v1/images", "/api/v1/images"),
    ("delete", "/api/v1/images/{id}", "/api/v1/images/i"),
];

/// The (method, path) pairs the document gives `listener` (a port of its `servers`).
fn documented(doc: &Value, port: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let servers = item["servers"]
            .as_array()
            .expect("every path names its listeners");
        if !servers
            .iter()
            .any(|s| s["url"].as_str().unwrap().ends_with(port))
        {
            continue;
        }
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                out.insert((method.to_string(), path.clone()));
            }
        }
    }
    out
}

fn table_set(table: &[(&str, &str, &str)]) -> BTreeSet<(String, String)> {
    table
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect()
}

/// The variant numbers of every route in `table`, each resolved by `resolve`.
fn variants<R>(
    table: &[(&str, &str, &str)],
    resolve: impl Fn(&Method, &str) -> imgproxy_gateway::error::GatewayResult<R>,
    index: impl Fn(&R) -> usize,
) -> BTreeSet<usize> {
    table
        .iter()
        .map(|(m, _, path)| {
            let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
            let route = resolve(&method, path).unwrap_or_else(|e| panic!("{m} {path}: {e}"));
            index(&route)
        })
        .collect()
}

#[test]
fn the_document_names_every_route_on_its_listener() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let admin_seen = variants(ADMIN_TABLE, admin::resolve, admin_index);
    assert_eq!(
        admin_seen,
        (0..ADMIN_ROUTES).collect(),
        "every admin route is in the table"
    );
    assert_eq!(
        documented(&doc, ":9090"),
        table_set(ADMIN_TABLE),
        "admin listener"
    );
    let public_seen = variants(PUBLIC_TABLE, public::resolve, public_index);
    assert_eq!(
        public_seen,
        (0..PUBLIC_ROUTES).collect(),
        "every public route is in the table"
    );
    assert_eq!(
        documented(&doc, ":8080"),
        table_set(PUBLIC_TABLE),
        "public listener"
    );

    // Every operation documents its errors with the one error shape and needs the key unless
    // it says otherwise.
    for item in doc["paths"].as_object().unwrap().values() {
        for (m, op) in item.as_object().unwrap() {
            if m == "servers" || m == "parameters" {
                continue;
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("400") && responses.contains_key("429"),
                "{op}"
            );
        }
    }
}

fn schemathesis_available() -> Result<(), String> {
    match Command::new("schemathesis").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
        Err(e) => Err(format!("schemathesis: {e} (pip install schemathesis)")),
    }
}

/// Runs schemathesis against `base` for the operations whose path matches `paths`.
fn schemathesis(
    schema: &std::path::Path,
    base: &str,
    paths: &str,
    examples: u32,
) -> (bool, String) {
    // schemathesis keeps a cache where it runs: not in the checkout.
    let scratch = tempfile::tempdir().unwrap();
    let out = Command::new("timeout")
        .current_dir(scratch.path())
        .arg("300")
        .arg("schemathesis")
        .arg("run")
        .arg(schema)
        .args(["--url", base])
        .args(["--header", &format!("X-API-Key: {KEY}")])
        .args(["--include-path-regex", paths])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", &examples.to_string()])
        .args(["--workers", "1", "--seed", "1", "--no-color"])
        .args(["--request-timeout", "10"])
        .args(["--generation-database", "none"])
        .output()
        .expect("runs schemathesis");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), printed)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_live_gateway_answers_within_the_document() {
    if let Err(why) = schemathesis_available() {
        return common::servers::unavailable("the schemathesis run", why).unwrap_or(());
    }
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b]).start().await;
    for url in [
        gw.url("/api/v1/openapi.json"),
        gw.admin_url("/api/v1/openapi.json"),
    ] {
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.headers()["content-type"], "application/json");
        assert_eq!(r.text().await.unwrap(), imgproxy_gateway::openapi::DOCUMENT);
    }
    let schema = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let (admin_url, public_url) = (gw.admin_url(""), gw.url(""));
    let runs = tokio::task::spawn_blocking(move || {
        [
            // The public run first: the admin run changes users and keys (the legacy key's
            // among them).
            ("public", schemathesis(&schema, &public_url, "^/(api/v1/(health|ready|openapi|upload|convert|images|users/[^/]+/quota$)|internal)", 100)),
            ("admin", schemathesis(&schema, &admin_url, "^/(admin|metrics|api/v1/(health|ready|openapi|backends|metrics|audit|config|users))", 100)),
        ]
    })
    .await
    .unwrap();
    for (listener, (ok, printed)) in &runs {
        println!("== schemathesis on the {listener} listener\n{printed}");
        assert!(
            ok,
            "schemathesis found answers outside the document on the {listener} listener"
        );
    }
    // The gateway is still up and nothing it answered was a 5xx.
    assert_eq!(
        client()
            .get(gw.url("/api/v1/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}
