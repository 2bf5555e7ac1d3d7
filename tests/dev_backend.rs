//! The development backend answers like imgproxy: health, signatures (published vectors,
//! truncation, padding), URL forms, sources and error statuses with imgproxy's texts.

mod common;

use common::{client, fixture, DevBackend};
use imgproxy_gateway::imgproxy::Signer;

const KEY_HEX: &str = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881";
const SALT_HEX: &str = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5";

async fn get(backend: &DevBackend, path: &str) -> (u16, String, Vec<u8>) {
    let r = client()
        .get(format!("{}{path}", backend.url()))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn health_methods_and_signatures() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("board-720x477.jpg"), dir.path().join("board.jpg")).unwrap();
    let root = dir.path().to_str().unwrap();
    let backend =
        DevBackend::start(&["--key", KEY_HEX, "--salt", SALT_HEX, "--local-root", root]).await;
    assert_eq!(
        get(&backend, "/health").await,
        (200, "text/plain".into(), b"imgproxy is running".to_vec())
    );

    // The published vector's signature is accepted (the source itself is unreachable here).
    let vector = "/m3k5QADfcKPDj-SDI2AIogZbC3FlAXszuwhtWXYqavc/rs:fit:300:300/plain/http://img.example.com/pretty/image.jpg";
    let (status, _, body) = get(&backend, vector).await;
    assert_eq!(
        (status, body.as_slice()),
        (404, &b"Source is unreachable"[..])
    );
    // Tampered, padded and missing signatures are refused.
    for bad in [
        "/m3k5QADfcKPDj-SDI2AIogZbC3FlAXszuwhtWXYqavd/rs:fit:300:300/plain/http://img.example.com/pretty/image.jpg",
        "/m3k5QADfcKPDj-SDI2AIogZbC3FlAXszuwhtWXYqavc=/rs:fit:300:300/plain/http://img.example.com/pretty/image.jpg",
        "/insecure/rs:fit:300:300/plain/http://img.example.com/pretty/image.jpg",
    ] {
        assert_eq!(get(&backend, bad).await.0, 403, "{bad}");
        assert_eq!(get(&backend, bad).await.2, b"Forbidden");
    }

    // A signed local source converts to a real WebP of the requested size.
    let signer = Signer::from_hex(Some(KEY_HEX), Some(SALT_HEX), 32).unwrap();
    let (status, ct, body) = get(
        &backend,
        &signer.signed_path("/rs:fit:360:0/q:75/plain/local:///board.jpg@webp"),
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "image/webp"));
    let img = image::load_from_memory_with_format(&body, image::ImageFormat::WebP).unwrap();
    assert_eq!((img.width(), img.height()), (360, 239));
    // Base64 source form.
    use base64::Engine;
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("local:///board.jpg");
    let (status, ct, _) = get(
        &backend,
        &signer.signed_path(&format!("/w:50/{encoded}.png")),
    )
    .await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));

    // imgproxy's statuses and texts.
    for (path, status, text) in [
        ("/zz:1/plain/local:///board.jpg@webp", 404, "Invalid URL"),
        (
            "/plain/local:///missing.jpg@webp",
            404,
            "Source is unreachable",
        ),
        ("/plain/local:///board.jpg@avif", 422, "Invalid URL"),
    ] {
        let (s, ct, body) = get(&backend, &signer.signed_path(path)).await;
        assert_eq!(
            (s, ct.as_str(), body.as_slice()),
            (status, "text/plain", text.as_bytes()),
            "{path}"
        );
    }
    std::fs::write(dir.path().join("text.jpg"), b"this is text").unwrap();
    let (s, _, body) = get(
        &backend,
        &signer.signed_path("/plain/local:///text.jpg@webp"),
    )
    .await;
    assert_eq!((s, body.as_slice()), (422, &b"Invalid source image"[..]));

    let r = client()
        .post(format!("{}/health", backend.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = client()
        .delete(format!(
            "{}{}",
            backend.url(),
            signer.signed_path("/plain/local:///board.jpg")
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn signature_size_truncates_like_imgproxy() {
    let backend = DevBackend::start(&[
        "--key",
        KEY_HEX,
        "--salt",
        SALT_HEX,
        "--signature-size",
        "8",
    ])
    .await;
    let path = "/rs:fit:300:300/plain/http://127.0.0.1:1/image.jpg";
    let short = Signer::from_hex(Some(KEY_HEX), Some(SALT_HEX), 8).unwrap();
    let full = Signer::from_hex(Some(KEY_HEX), Some(SALT_HEX), 32).unwrap();
    assert_eq!(
        get(&backend, &short.signed_path(path)).await.0,
        404,
        "truncated signature accepted; source unreachable"
    );
    assert_eq!(
        get(&backend, &full.signed_path(path)).await.0,
        403,
        "a full-length signature is refused at size 8"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sources_are_fetched_as_imgproxy_4_does() {
    use common::stub::{Mode, Stub};
    let signer = Signer::insecure();
    let source = Stub::start("source", Mode::Status(403, "no")).await;
    let path = |url: &str| {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(url);
        signer.signed_path(&format!("/rs:fit:0:0/{encoded}.webp"))
    };
    let at = |p: &str| format!("{}{p}", source.url());

    // Loopback and link-local sources are refused by default, before any connection.
    let guarded = DevBackend::start(&[]).await;
    for url in [
        at("/a.jpg"),
        "http://169.254.169.254/latest".into(),
        "http://[::1]:1/x".into(),
    ] {
        let (status, _, body) = get(&guarded, &path(&url)).await;
        assert_eq!(
            (status, body.as_slice()),
            (404, &b"Invalid source URL"[..]),
            "{url}"
        );
    }
    assert_eq!(source.served(), 0);
    let (status, _, body) = get(&guarded, &path("http://localhost:1/a.jpg")).await;
    assert_eq!(
        (status, body.as_slice()),
        (404, &b"Invalid source URL"[..]),
        "a name resolving to loopback"
    );

    // Allowed, a source's own 4xx passes through and its 5xx is a 502.
    let open = DevBackend::start(&["--allow-loopback-source-addresses", "true"]).await;
    let (status, _, body) = get(&open, &path(&at("/a.jpg"))).await;
    assert_eq!(
        (status, body.as_slice()),
        (403, &b"Source is unreachable"[..])
    );
    source.set_mode(Mode::Status(500, "down"));
    assert_eq!(get(&open, &path(&at("/a.jpg"))).await.0, 502);
    // imgproxy's 5 s download timeout.
    source.set_mode(Mode::Sleep(std::time::Duration::from_secs(7)));
    let started = std::time::Instant::now();
    let (status, _, body) = get(&open, &path(&at("/a.jpg"))).await;
    assert_eq!(
        (status, body.as_slice()),
        (504, &b"Source is unreachable"[..])
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(7));
}
