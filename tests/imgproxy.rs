//! What real imgproxy versions do differently, met through the dev backend, which answers like
//! imgproxy 4: sources in the base64 form whatever their characters, loopback sources refused
//! unless allowed, and caching headers that never let a shared cache serve a user's image.

mod common;

use common::stub::{Mode, Stub};
use common::{client, error_code, fixture, DevBackend, Gateway, KEY};
use reqwest::multipart::{Form, Part};
use std::sync::Arc;

const KEY_HEX: &str = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881";
const SALT_HEX: &str = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5";
const LOOPBACK: [&str; 2] = ["--allow-loopback-source-addresses", "true"];

async fn signed_backend(extra: &[&str]) -> DevBackend {
    let mut args = vec!["--key", KEY_HEX, "--salt", SALT_HEX];
    args.extend_from_slice(extra);
    DevBackend::start(&args).await
}

/// Two backends, so both are tried before an answer is final.
struct Backends(DevBackend, DevBackend);

async fn signed_backends(extra: &[&str]) -> Backends {
    Backends(signed_backend(extra).await, signed_backend(extra).await)
}

async fn signed_gateway(backends: &Backends, extra_imgproxy: &str) -> Gateway {
    Gateway::builder()
        .backend(backends.0.url(), 1)
        .backend(backends.1.url(), 1)
        .imgproxy(&format!(
            "key: '{KEY_HEX}'\nsalt: '{SALT_HEX}'\nallow_loopback_sources: true\n{extra_imgproxy}"
        ))
        .start()
        .await
}

async fn jpeg_source() -> Stub {
    let bytes = std::fs::read(fixture("board-720x477.jpg")).unwrap();
    Stub::start("source", Mode::File(Arc::new(bytes), "image/jpeg")).await
}

fn jpeg_form() -> Form {
    let bytes = std::fs::read(fixture("board-720x477.jpg")).unwrap();
    Form::new().part("file", Part::bytes(bytes).file_name("board.jpg"))
}

async fn convert(gw: &Gateway, source: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    common::convert_source(gw, source, &[("width", "100")], headers).await
}

#[tokio::test(flavor = "multi_thread")]
async fn sources_with_any_characters_reach_imgproxy_as_given() {
    let backend = signed_backends(&LOOPBACK).await;
    let gw = signed_gateway(&backend, "").await;
    let source = jpeg_source().await;
    // `:/` before a non-slash (imgproxy 3/4 rewrite it to `://` before checking the signature
    // of a plain source), `?`, `@`, an escaped slash and an upper-case scheme.
    let url = format!(
        "HTTP://127.0.0.1:{}/img/a:/b@2x.jpg?sig=a%2Fb&v=1",
        source.port
    );
    let r = convert(&gw, &url, &[]).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    assert_eq!(r.headers()["content-type"], "image/webp");
    let image = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((image.width(), image.height()), (100, 66));
    let fetched = source.requests.lock().unwrap()[0].path.clone();
    assert_eq!(fetched, "/img/a:/b@2x.jpg?sig=a%2Fb&v=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn imgproxys_loopback_guard_is_named_when_it_refuses_the_upload_source() {
    // The gateway's upload source (storage.source_base_url) is on 127.0.0.1; an imgproxy
    // without IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES refuses to fetch it.
    let backend = signed_backends(&[]).await;
    let gw = signed_gateway(&backend, "").await;
    let r = client()
        .post(gw.url("/api/v1/upload"))
        .header("X-API-Key", KEY)
        .multipart(jpeg_form())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_gateway");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES"),
        "{message}"
    );
    assert!(gw.stored_files().is_empty(), "{:?}", gw.stored_files());
    // A convert source on loopback is the client's: imgproxy's refusal is a 403.
    let source = jpeg_source().await;
    let r = convert(&gw, &source.url(), &[]).await;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r).await, "forbidden");
    assert_eq!(source.served(), 0, "imgproxy never connected");
}

#[tokio::test(flavor = "multi_thread")]
async fn images_are_private_and_conditional_requests_work() {
    let backend = signed_backends(&LOOPBACK).await;
    let gw = signed_gateway(&backend, "").await;
    let source = jpeg_source().await;
    let r = convert(&gw, &source.url(), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "private, max-age=31536000");
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"'), "{etag}");
    let r = convert(&gw, &source.url(), &[("If-None-Match", &etag)]).await;
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert_eq!(r.headers()["cache-control"], "private, max-age=31536000");
    assert!(r.bytes().await.unwrap().is_empty());
    // Every JSON answer is no-store, errors included.
    let r = convert(&gw, "http://127.0.0.1:1/x.jpg", &[]).await;
    assert_eq!(r.headers()["cache-control"], "no-store");
    let r = client()
        .get(gw.url("/api/v1/users/legacy/quota"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_may_choose_the_image_cache_control() {
    let backend = signed_backends(&LOOPBACK).await;
    let gw = signed_gateway(&backend, "cache_control: 'private, max-age=60'").await;
    let source = jpeg_source().await;
    let r = convert(&gw, &source.url(), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "private, max-age=60");
}
