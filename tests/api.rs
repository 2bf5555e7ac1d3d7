//! Every public route and error status of the core gateway, as a client sees them.

mod common;

use common::stub::{Mode, Stub};
use common::{client, error_code, Gateway, KEY};

async fn gateway_with(mode_a: Mode, mode_b: Mode, imgproxy: &str) -> (Gateway, Stub, Stub) {
    let a = Stub::start("a", mode_a).await;
    let b = Stub::start("b", mode_b).await;
    let gw = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .imgproxy(imgproxy)
        .start()
        .await;
    (gw, a, b)
}

const ALLOW_LOOPBACK: &str = "allow_loopback_sources: true";

#[tokio::test(flavor = "multi_thread")]
async fn health_and_ready_on_both_listeners_without_a_key() {
    let (gw, _a, _b) = gateway_with(Mode::Image, Mode::Image, "").await;
    for url in [gw.url("/api/v1/health"), gw.admin_url("/api/v1/health")] {
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert!(r.headers().contains_key("x-request-id"));
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["status"], "ok");
        assert_eq!(body["backends"]["healthy"], 2);
        assert_eq!(body["backends"]["total"], 2);
        assert_eq!(body["database"], "ok");
        assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    }
    for url in [gw.url("/api/v1/ready"), gw.admin_url("/api/v1/ready")] {
        let r = client().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert_eq!(r.json::<serde_json::Value>().await.unwrap()["ready"], true);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn convert_needs_exactly_the_legacy_key() {
    let (gw, a, b) = gateway_with(Mode::Image, Mode::Image, ALLOW_LOOPBACK).await;
    let url = gw.url("/api/v1/convert?url=http://127.0.0.1:1/cat.jpg");
    let r = client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(error_code(r).await, "unauthorized");
    let r = client()
        .get(&url)
        .header("X-API-Key", "wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        a.served() + b.served(),
        0,
        "refused requests never reach a backend"
    );
    let r = client()
        .get(&url)
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/webp");
    let body = r.bytes().await.unwrap();
    assert!(body == "a" || body == "b");
}

#[tokio::test(flavor = "multi_thread")]
async fn convert_builds_imgproxy_urls_and_forwards_the_request_id() {
    let key = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881";
    let salt = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5";
    let yaml = format!("key: '{key}'\nsalt: '{salt}'\ndefault_format: png");
    let (gw, a, b) = gateway_with(Mode::Image, Mode::Image, &yaml).await;
    let r = client()
        .get(gw.url("/api/v1/convert?url=http%3A%2F%2Fimg.example.com%2Fpretty%2Fimage.jpg&width=300&height=300&format=webp"))
        .header("X-API-Key", KEY)
        .header("X-Request-ID", "trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "trace-42");
    let recorded = recorded(&a, &b);
    assert_eq!(recorded.len(), 1);
    // base64url("http://img.example.com/pretty/image.jpg"), the form every imgproxy reads alike.
    let path = "/rs:fit:300:300/aHR0cDovL2ltZy5leGFtcGxlLmNvbS9wcmV0dHkvaW1hZ2UuanBn.webp";
    let signer = imgproxy_gateway::imgproxy::Signer::from_hex(Some(key), Some(salt), 32).unwrap();
    assert_eq!(recorded[0].path, format!("/{}{path}", signer.sign(path)));
    assert_ne!(signer.sign(path), "insecure");
    assert_eq!(recorded[0].headers["x-request-id"], "trace-42");
    assert!(
        !recorded[0].headers.contains_key("x-api-key"),
        "the key never reaches a backend"
    );
    // The default format applies when none is asked for.
    client()
        .get(gw.url("/api/v1/convert?url=http://img.example.com/a.jpg"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    let last = a
        .requests
        .lock()
        .unwrap()
        .iter()
        .chain(b.requests.lock().unwrap().iter())
        .map(|r| r.path.clone())
        .find(|p| p.ends_with(".png"))
        .unwrap();
    assert!(
        last.ends_with("/rs:fit:0:0/aHR0cDovL2ltZy5leGFtcGxlLmNvbS9hLmpwZw.png"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn request_ids_are_kept_when_well_formed_and_generated_otherwise() {
    let (gw, _a, _b) = gateway_with(Mode::Image, Mode::Image, "").await;
    let r = client()
        .get(gw.url("/api/v1/health"))
        .header("X-Request-ID", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123");
    let r = client()
        .get(gw.url("/api/v1/health"))
        .header("X-Request-ID", "bad id <script>")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let r = client().get(gw.url("/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r).await, "not_found");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_are_rejected_before_any_backend() {
    let (gw, a, b) = gateway_with(Mode::Image, Mode::Image, "").await;
    let get = |q: &str| {
        client()
            .get(gw.url(&format!("/api/v1/convert?{q}")))
            .header("X-API-Key", KEY)
            .send()
    };
    for (query, status, code) in [
        ("", 400, "invalid_parameter"),
        ("url=ftp://example.com/a.jpg", 400, "invalid_parameter"),
        (
            "url=http://example.com/a.jpg&width=abc",
            400,
            "invalid_parameter",
        ),
        (
            "url=http://example.com/a.jpg&width=99999",
            400,
            "invalid_parameter",
        ),
        (
            "url=http://example.com/a.jpg&quality=0",
            400,
            "invalid_parameter",
        ),
        (
            "url=http://example.com/a.jpg&format=bmp",
            400,
            "invalid_parameter",
        ),
        (
            "url=http://example.com/a.jpg&colour=red",
            400,
            "bad_request",
        ),
        (
            "url=http://example.com/a.jpg&image_id=x",
            400,
            "bad_request",
        ),
        ("url=http://127.0.0.1/a.jpg", 403, "forbidden"),
        (
            "url=http://169.254.169.254/latest/meta-data",
            403,
            "forbidden",
        ),
        (
            "image_id=00000000000000000000000000000000",
            404,
            "not_found",
        ),
        ("image_id=../../etc/passwd", 404, "not_found"),
    ] {
        let r = get(query).await.unwrap();
        assert_eq!(r.status(), status, "{query}");
        assert_eq!(error_code(r).await, code, "{query}");
    }
    let long = format!("url=http://example.com/{}", "a".repeat(3000));
    assert_eq!(get(&long).await.unwrap().status(), 400);
    assert_eq!(a.served() + b.served(), 0);
    // Wrong method: 405 with Allow.
    let r = client()
        .post(gw.url("/api/v1/convert"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    assert_eq!(error_code(r).await, "method_not_allowed");
    let r = client()
        .get(gw.url("/api/v1/upload"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "POST");
}

/// Names from `/etc/hosts` (answered by the system resolver, no DNS server needed) that stand
/// for a loopback address, `localhost` itself aside (refused by name).
fn loopback_names_in_etc_hosts() -> Vec<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts
        .lines()
        .filter_map(|line| {
            let mut words = line.split('#').next()?.split_whitespace();
            let ip: std::net::IpAddr = words.next()?.parse().ok()?;
            ip.is_loopback()
                .then(|| words.map(str::to_string).collect::<Vec<_>>())
        })
        .flatten()
        .filter(|name| !name.contains("localhost"))
        .collect()
}

/// Issue 10, item 3: a name is refused when any address it resolves to is in a closed range;
/// link-local and metadata stay closed when private and loopback sources are open (dev mode's
/// settings); IPv4 inside IPv6 (NAT64, 6to4, mapped) counts as that IPv4.
#[tokio::test(flavor = "multi_thread")]
async fn source_names_and_embedded_addresses_are_checked_before_any_backend() {
    let (a, b) = (
        Stub::start("a", Mode::Image).await,
        Stub::start("b", Mode::Image).await,
    );
    let gw = |imgproxy: &'static str| {
        Gateway::builder()
            .backend(a.url(), 1)
            .backend(b.url(), 1)
            .source_host("rebind.test", "[93.184.216.34, 10.0.0.7]")
            .source_host("meta.test", "['64:ff9b::a9fe:a9fe']")
            .source_host("six.test", "['2002:a9fe:a9fe::']")
            .source_host("mixed.test", "[93.184.216.34, 169.254.169.254]")
            .imgproxy(imgproxy)
            .start()
    };
    let strict = gw("").await;
    let get = |gw: &Gateway, source: &str| {
        client()
            .get(gw.url("/api/v1/convert"))
            .query(&[("url", source)])
            .header("X-API-Key", KEY)
            .send()
    };
    let names = loopback_names_in_etc_hosts();
    assert!(
        !names.is_empty(),
        "/etc/hosts names no loopback host besides localhost"
    );
    let mut refused: Vec<String> = names
        .iter()
        .map(|name| format!("http://{name}/a.jpg"))
        .collect();
    refused.extend(
        [
            "http://rebind.test/a.jpg",
            "http://meta.test/latest/meta-data",
            "http://six.test/latest/meta-data",
            "http://mixed.test/a.jpg",
            "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
            "http://[::ffff:169.254.169.254]/latest/meta-data",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://100.100.100.200/latest/meta-data",
        ]
        .map(String::from),
    );
    for source in &refused {
        let r = get(&strict, source).await.unwrap();
        assert_eq!(r.status(), 403, "{source}");
        assert_eq!(error_code(r).await, "forbidden", "{source}");
    }
    let r = get(&strict, "http://unknown-name.test/a.jpg")
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a name that does not resolve");
    assert_eq!(a.served() + b.served(), 0, "nothing reached a backend");

    // Dev mode's switches: loopback and private open, link-local and metadata still closed.
    let dev = gw("allow_loopback_sources: true\nallow_private_sources: true").await;
    for source in [
        "http://169.254.169.254/latest/meta-data",
        "http://meta.test/latest/meta-data",
        "http://mixed.test/a.jpg",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        assert_eq!(get(&dev, source).await.unwrap().status(), 403, "{source}");
    }
    assert_eq!(a.served() + b.served(), 0);
    for source in [
        "http://rebind.test/a.jpg",
        &format!("http://{}/a.jpg", names[0]),
    ] {
        assert_eq!(get(&dev, source).await.unwrap().status(), 200, "{source}");
    }
    assert_eq!(a.served() + b.served(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn backend_errors_keep_their_meaning() {
    let (gw, a, b) = gateway_with(Mode::Image, Mode::Image, "").await;
    for (mode, status, code) in [
        (
            Mode::Status(404, "Source image is unreachable"),
            404,
            "source_not_found",
        ),
        // imgproxy could not parse the gateway's own URL: the gateway's problem.
        (Mode::Status(404, "Invalid URL"), 502, "bad_gateway"),
        (
            Mode::Status(422, "Invalid source image"),
            422,
            "invalid_image",
        ),
        (Mode::Status(400, "Bad request"), 400, "bad_request"),
        (Mode::Status(403, "Forbidden"), 502, "bad_gateway"),
        // imgproxy 3.x's answer for its own failures and for a source that refuses to connect.
        (Mode::Status(500, "Internal error"), 502, "bad_gateway"),
        (Mode::Status(500, "boom"), 502, "bad_gateway"),
        (Mode::Status(503, "Timeout"), 504, "gateway_timeout"),
    ] {
        a.set_mode(mode.clone());
        b.set_mode(mode.clone());
        let r = client()
            .get(gw.url(common::CONVERT))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{mode:?}");
        let r_id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{mode:?}");
        assert_eq!(body["error"]["request_id"], r_id.as_str());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_backends_lists_the_pool() {
    let (gw, a, b) = gateway_with(Mode::Image, Mode::Image, "").await;
    let r = client()
        .get(gw.admin_url("/api/v1/backends"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the pool is not public");
    let body = gw.backends().await;
    let list = body["backends"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    for (entry, stub) in list.iter().zip([&a, &b]) {
        assert_eq!(entry["url"], stub.url().as_str());
        assert_eq!(entry["weight"], 1);
        assert_eq!(entry["healthy"], true);
        assert!(entry.get("last_check").is_some());
        assert!(entry.get("response_time_ms").is_some());
    }
    let r = client()
        .get(gw.admin_url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

/// What both stubs were asked, in order per stub.
fn recorded(a: &common::stub::Stub, b: &common::stub::Stub) -> Vec<common::stub::Recorded> {
    let mut all = a.requests.lock().unwrap().clone();
    all.extend(b.requests.lock().unwrap().iter().cloned());
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn backends_get_only_the_headers_the_gateway_chose() {
    let (gw, a, b) = gateway_with(Mode::Image, Mode::Image, "").await;
    let r = client()
        .get(gw.url(common::CONVERT))
        .header("X-API-Key", KEY)
        .header("Authorization", "Bearer secret")
        .header("Cookie", "session=secret")
        .header("Forwarded", "for=10.0.0.1")
        .header("X-Forwarded-For", "10.0.0.1")
        .header("X-Real-IP", "10.0.0.1")
        .header("Range", "bytes=0-10")
        .header("Accept", "image/avif")
        .header("Sec-CH-DPR", "3")
        .header("If-None-Match", "\"abc\"")
        .header("X-Request-ID", "allow-list-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let recorded = recorded(&a, &b);
    assert_eq!(recorded.len(), 1);
    let mut names: Vec<&str> = recorded[0].headers.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        ["host", "if-none-match", "x-request-id"],
        "{:?}",
        recorded[0].headers
    );
    assert_eq!(recorded[0].headers["if-none-match"], "\"abc\"");
    assert_eq!(recorded[0].headers["x-request-id"], "allow-list-1");
}

/// Every answer on a keep-alive connection, read until it closes: the status lines.
async fn statuses_on_one_connection(port: u16, requests: &[u8]) -> Vec<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream.write_all(requests).await.unwrap();
    let mut answers = Vec::new();
    let read = stream.read_to_end(&mut answers);
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("the gateway closes the connection after the last request")
        .unwrap();
    String::from_utf8_lossy(&answers)
        .lines()
        .filter(|line| line.starts_with("HTTP/1.1 "))
        .map(str::to_string)
        .collect()
}

/// A body on a convert request (by length or chunked) is refused with 400, read as a body
/// (the lingering close), never taken for the next request on the connection and never relayed
/// to a backend; the client's request is reduced before Pingora copies it, keeping the fields
/// that frame its body.
#[tokio::test(flavor = "multi_thread")]
async fn a_body_on_a_convert_request_is_refused_and_never_a_second_request() {
    let (gw, a, b) = gateway_with(Mode::Image, Mode::Image, "").await;
    let smuggled = format!(
        "GET /api/v1/convert?url=http://example.com/smuggled.jpg HTTP/1.1\r\nHost: gw\r\nX-API-Key: {KEY}\r\n\r\n"
    );
    let head = |framing: &str| {
        format!(
            "GET {} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {KEY}\r\nCookie: c=1\r\n{framing}\r\n",
            common::CONVERT
        )
    };
    let next = format!(
        "GET {} HTTP/1.1\r\nHost: gw\r\nX-API-Key: {KEY}\r\nConnection: close\r\n\r\n",
        common::CONVERT
    );
    let by_length = head(&format!("Content-Length: {}\r\n", smuggled.len())) + &smuggled;
    let chunked = head("Transfer-Encoding: chunked\r\n")
        + &format!("{:x}\r\n{smuggled}\r\n0\r\n\r\n", smuggled.len());
    let mut proxied = 0;
    for with_body in [by_length, chunked] {
        let statuses = statuses_on_one_connection(gw.port, (with_body + &next).as_bytes()).await;
        // The body is refused; the gateway may close after that answer rather than read on,
        // or answer the next request. The smuggled one is never answered.
        assert_eq!(
            statuses.first().map(String::as_str),
            Some("HTTP/1.1 400 Bad Request")
        );
        assert!(
            statuses.len() <= 2 && statuses[1..].iter().all(|s| s == "HTTP/1.1 200 OK"),
            "{statuses:?}"
        );
        proxied += statuses.len() - 1;
    }
    let recorded = recorded(&a, &b);
    assert_eq!(recorded.len(), proxied, "only plain requests: {recorded:?}");
    assert!(
        recorded
            .iter()
            .all(|r| r.body.is_empty() && !r.headers.contains_key("transfer-encoding")),
        "a body reached a backend: {recorded:?}"
    );
}
