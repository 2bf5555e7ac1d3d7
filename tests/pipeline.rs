//! The pipeline in process, where a socket adds nothing: the public listener's `handle()`
//! (through Pingora's `request_filter`) and the admin listener's `response()` are driven with a
//! raw HTTP request over an in-memory stream, against a real `AppState` on a SQLite file. No
//! process is spawned and no port is opened; each case takes milliseconds.

use imgproxy_gateway::admin::AdminApp;
use imgproxy_gateway::config::load_str;
use imgproxy_gateway::db;
use imgproxy_gateway::identity::bootstrap;
use imgproxy_gateway::listen::{Listener, Listeners};
use imgproxy_gateway::proxy::Gateway;
use imgproxy_gateway::state::{self, AppState};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use pingora::proxy::{ProxyHttp, Session};
use serde_json::Value;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "a8e77f84e2729dc6728889d4be31b123";

/// A state as the services build it, on a fresh SQLite file; `yaml` adds sections.
async fn state(yaml: &str) -> (Arc<AppState>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let text = format!(
        "database:\n  driver: sqlite\n  dsn: sqlite://{d}/gw.db?mode=rwc\n\
storage:\n  dir: {d}/images\nauth:\n  bcrypt_cost: 4\n\
server:\n  trusted_proxies: [0.0.0.0]\n\
backends:\n  - url: http://127.0.0.1:1\n  - url: http://127.0.0.1:2\n{yaml}"
    );
    let config = load_str(&text, Vec::new()).unwrap();
    let store = db::open_migrated(&config.database).await.unwrap();
    let auth = state::authenticator(&config);
    bootstrap::legacy_user(&store, auth.hasher(), &config.legacy)
        .await
        .unwrap();
    store.close().await;
    let listeners = Listeners {
        public: Listener::new("server.port", ([127, 0, 0, 1], 0).into()).unwrap(),
        admin: Listener::new("admin.listen", ([127, 0, 0, 1], 0).into()).unwrap(),
    };
    let connection = db::connect(&config.database).await.unwrap();
    let state = AppState::build(config, listeners).unwrap();
    state.store.install(connection);
    state.store.ping().await;
    (Arc::new(state), dir)
}

/// What the client got: status, head and body.
struct Answer {
    status: u16,
    head: String,
    body: Value,
    /// `request_filter` handed the request on to a backend instead of answering.
    proxied: bool,
}

fn parse(raw: &[u8], proxied: bool) -> Answer {
    let text = String::from_utf8_lossy(raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Answer {
        status,
        head: head.to_ascii_lowercase(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
        proxied,
    }
}

/// One request through the public listener's filters, as Pingora runs them.
async fn public(gw: &Gateway, request: &str) -> Answer {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    client.write_all(request.as_bytes()).await.unwrap();
    let mut session = Session::new_h1(Box::new(server));
    assert!(session.read_request().await.unwrap());
    let mut ctx = gw.new_ctx();
    gw.early_request_filter(&mut session, &mut ctx)
        .await
        .unwrap();
    let answered = gw.request_filter(&mut session, &mut ctx).await.unwrap();
    drop(session);
    let mut raw = Vec::new();
    client.read_to_end(&mut raw).await.unwrap();
    parse(&raw, !answered)
}

/// One request through the admin listener's app.
async fn admin(app: &AdminApp, request: &str) -> Answer {
    let (mut client, server) = tokio::io::duplex(1 << 20);
    client.write_all(request.as_bytes()).await.unwrap();
    let mut session = ServerSession::new_http1(Box::new(server));
    assert!(session.read_request().await.unwrap());
    let response = app.response(&mut session).await;
    let (parts, body) = response.into_parts();
    let head: String = parts
        .headers
        .iter()
        .map(|(k, v)| format!("{k}: {}\r\n", v.to_str().unwrap_or("")))
        .collect();
    Answer {
        status: parts.status.as_u16(),
        head: head.to_ascii_lowercase(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        proxied: false,
    }
}

fn get(path: &str, headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: gw\r\n{headers}\r\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_pipeline_answers_without_a_process() {
    let (state, _dir) = state("").await;
    let gw = Gateway::new(Arc::clone(&state));

    let health = public(&gw, &get("/api/v1/health", "")).await;
    assert_eq!(health.status, 200, "{}", health.head);
    assert_eq!(health.body["database"], "ok");
    assert!(health.head.contains("x-request-id: "));

    let no_key = public(
        &gw,
        &get("/api/v1/convert?url=http://example.com/a.jpg", ""),
    )
    .await;
    assert_eq!((no_key.status, no_key.proxied), (401, false));
    assert_eq!(no_key.body["error"]["code"], "unauthorized");

    let unknown = public(&gw, &get("/nothing", "")).await;
    assert_eq!(unknown.status, 404);
    let trace = public(&gw, "TRACE /api/v1/convert HTTP/1.1\r\nHost: gw\r\n\r\n").await;
    assert_eq!(trace.status, 405);
    assert!(trace.head.contains("allow: get"), "{}", trace.head);

    // The legacy key's conversion passes admission and is handed to a backend.
    let pinned = "imgproxy:\n  source_hosts:\n    example.com: [93.184.216.34]\n";
    let (state, _dir2) = self::state(pinned).await;
    let gw = Gateway::new(state);
    let key = format!("X-API-Key: {KEY}\r\n");
    let convert = public(
        &gw,
        &get("/api/v1/convert?url=http://example.com/a.jpg", &key),
    )
    .await;
    assert!(convert.proxied, "status {}", convert.status);
    let bad = public(&gw, &get("/api/v1/convert?url=http://10.0.0.7/a.jpg", &key)).await;
    assert_eq!((bad.status, bad.proxied), (403, false), "{}", bad.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ip_level_refuses_in_process_with_its_headers() {
    let (state, _dir) =
        state("rate_limits:\n  ip_level: {requests_per_minute: 60, burst: 3}\n").await;
    let gw = Gateway::new(state);
    let from = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");
    for _ in 0..3 {
        assert_eq!(
            public(&gw, &get("/nothing", &from("198.51.100.1")))
                .await
                .status,
            404
        );
    }
    let refused = public(&gw, &get("/nothing", &from("198.51.100.1"))).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.body["error"]["limit_type"], "ip");
    assert!(refused.head.contains("retry-after: 1"), "{}", refused.head);
    // Another client has its own bucket.
    assert_eq!(
        public(&gw, &get("/nothing", &from("198.51.100.2")))
            .await
            .status,
        404
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_app_answers_without_a_process() {
    let (state, _dir) = state("").await;
    let app = AdminApp::new(state);
    let key = format!("X-API-Key: {KEY}\r\n");
    let users = admin(&app, &get("/api/v1/users", &key)).await;
    assert_eq!(users.status, 200);
    assert_eq!(users.body["users"][0]["id"], "legacy");
    let wrong = admin(&app, &get("/api/v1/users", "X-API-Key: nope\r\n")).await;
    assert_eq!(wrong.status, 401);
    let ui = admin(&app, &get("/admin", "")).await;
    assert_eq!(ui.status, 200);
    assert!(ui
        .head
        .contains("content-security-policy: default-src 'none'"));
    let created = admin(
        &app,
        &format!(
            "POST /api/v1/users HTTP/1.1\r\nHost: gw\r\n{key}Content-Type: application/json\r\n\
Content-Length: 65\r\n\r\n{{\"id\":\"inproc\",\"name\":\"In\",\"email\":\"i@example.com\",\"role\":\"user\"}}"
        ),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(created.body["api_key"]["key"]
        .as_str()
        .unwrap()
        .starts_with("imgproxy_inproc_"));
}
