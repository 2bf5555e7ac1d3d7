//! Calls a test makes to a running gateway: the HTTP client, admin calls, conversions,
//! metrics, polling.

use super::*;

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// The JSON error body's `code`, asserting the documented shape.
pub async fn error_code(response: reqwest::Response) -> String {
    let request_id = response
        .headers()
        .get("x-request-id")
        .expect("X-Request-ID on every answer")
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.unwrap();
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(error["request_id"], request_id.as_str(), "{body}");
    error["code"].as_str().unwrap().to_string()
}

/// One admin-listener call: status and JSON body.
pub async fn admin(
    gw: &Gateway,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client()
        .request(method.parse().unwrap(), gw.admin_url(path))
        .header("X-API-Key", key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Create a user through the admin API; its first key.
pub async fn create_user(gw: &Gateway, id: &str, role: &str, extra: Value) -> String {
    let mut body = json!({"id": id, "name": format!("User {id}"), "email": format!("{id}@example.com"), "role": role});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let (status, answer) = admin(gw, "POST", "/api/v1/users", KEY, Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    answer["api_key"]["key"].as_str().unwrap().to_string()
}

/// Poll `check` every 50 ms until it holds or `limit` passes; how long it took.
pub async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() <= limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Fixed one-minute windows: start away from the end of a clock minute, so a test's requests
/// stay inside one window (a test needs well under 20 s).
pub async fn away_from_a_minute_boundary() {
    let second = chrono::Utc::now().timestamp() % 60;
    if second >= 40 {
        tokio::time::sleep(Duration::from_secs((61 - second) as u64)).await;
    }
}

/// `GET /api/v1/convert` of a sample URL with `key` (stub backends answer it).
pub async fn convert(gw: &Gateway, key: &str) -> reqwest::Response {
    client()
        .get(gw.url(CONVERT))
        .header("X-API-Key", key)
        .send()
        .await
        .unwrap()
}

/// `GET /api/v1/convert?url=<source>&<query>` with the legacy key and extra `headers`.
pub async fn convert_source(
    gw: &Gateway,
    source: &str,
    query: &[(&str, &str)],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = client()
        .get(gw.url("/api/v1/convert"))
        .query(&[("url", source)])
        .query(query)
        .header("X-API-Key", KEY);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

/// The admin listener's `/metrics` exposition.
pub async fn metrics_text(gw: &Gateway) -> String {
    client()
        .get(gw.admin_url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of one series of the admin listener's `/metrics`, e.g.
/// `user_rate_limit_violations{limit_type="ip",user_id="legacy"}` (labels in name order).
pub async fn metric(gw: &Gateway, series: &str) -> Option<f64> {
    metrics_text(gw)
        .await
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// `GET url` (with `key`, if any) as JSON.
pub async fn get_json(url: String, key: Option<&str>) -> Value {
    let mut req = client().get(url);
    if let Some(key) = key {
        req = req.header("X-API-Key", key);
    }
    req.send().await.unwrap().json().await.unwrap()
}

/// Send every request at once; their statuses in order (0: no answer).
pub async fn all_at_once(requests: impl IntoIterator<Item = reqwest::RequestBuilder>) -> Vec<u16> {
    let handles: Vec<_> = requests
        .into_iter()
        .map(|request| {
            tokio::spawn(async move {
                request
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0)
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for h in handles {
        statuses.push(h.await.unwrap());
    }
    statuses
}
