//! Upload and stored-image conversion through real development backends (separate processes
//! decoding and encoding real images), and the upload size limit.

mod common;

use common::{client, error_code, fixture, DevBackend, Gateway, KEY};
use reqwest::multipart::{Form, Part};

const KEY_HEX: &str = "943b421c9eb07c830af81030552c86009268de4e532ba2ee2eab8247c6da0881";
const SALT_HEX: &str = "520f986b998545b4785e0defbc4f3c1203f22de2374a3d53cb7a7fe9fea309c5";

/// A gateway signing its URLs, in front of two dev backends that check the signatures.
async fn signed_setup() -> (Gateway, DevBackend, DevBackend) {
    let args = [
        "--key",
        KEY_HEX,
        "--salt",
        SALT_HEX,
        "--allow-loopback-source-addresses",
        "true",
    ];
    let a = DevBackend::start(&args).await;
    let b = DevBackend::start(&args).await;
    let gw = Gateway::builder()
        .backend(a.url(), 70)
        .backend(b.url(), 30)
        .imgproxy(&format!("key: '{KEY_HEX}'\nsalt: '{SALT_HEX}'"))
        .start()
        .await;
    (gw, a, b)
}

fn jpeg_form() -> Form {
    let bytes = std::fs::read(fixture("board-720x477.jpg")).unwrap();
    Form::new().part(
        "file",
        Part::bytes(bytes)
            .file_name("board.jpg")
            .mime_str("image/jpeg")
            .unwrap(),
    )
}

async fn upload(gw: &Gateway, query: &str, form: Form) -> reqwest::Response {
    client()
        .post(gw.url(&format!("/api/v1/upload{query}")))
        .header("X-API-Key", KEY)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_jpeg_upload_comes_back_as_webp_of_the_right_size() {
    let (gw, _a, _b) = signed_setup().await;
    let r = upload(&gw, "", jpeg_form()).await;
    assert_eq!(r.status(), 200, "{}", gw.log());
    assert_eq!(r.headers()["content-type"], "image/webp");
    let id = r.headers()["x-image-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let webp = r.bytes().await.unwrap();
    let img = image::load_from_memory_with_format(&webp, image::ImageFormat::WebP).unwrap();
    assert_eq!((img.width(), img.height()), (720, 477));
    // The original is stored under its id.
    let stored = std::fs::read(gw.images_dir().join(&id)).unwrap();
    assert_eq!(stored, std::fs::read(fixture("board-720x477.jpg")).unwrap());

    // Fields choose format and size.
    let form = jpeg_form().text("format", "png").text("width", "300");
    let r = upload(&gw, "", form).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    let img = image::load_from_memory(&r.bytes().await.unwrap()).unwrap();
    assert_eq!((img.width(), img.height()), (300, 199));

    // The stored original converts again by id.
    let r = client()
        .get(gw.url(&format!(
            "/api/v1/convert?image_id={id}&width=100&format=jpeg&quality=60"
        )))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let img =
        image::load_from_memory_with_format(&r.bytes().await.unwrap(), image::ImageFormat::Jpeg)
            .unwrap();
    assert_eq!((img.width(), img.height()), (100, 66));
}

#[tokio::test(flavor = "multi_thread")]
async fn png_and_gif_uploads_convert() {
    let (gw, _a, _b) = signed_setup().await;
    for name in ["video-150x103.png", "video-150x103.gif"] {
        let form = Form::new().part(
            "file",
            Part::bytes(std::fs::read(fixture(name)).unwrap()).file_name(name),
        );
        let r = upload(&gw, "?quality=50", form).await;
        assert_eq!(r.status(), 200, "{name}");
        let img = image::load_from_memory_with_format(
            &r.bytes().await.unwrap(),
            image::ImageFormat::WebP,
        )
        .unwrap();
        assert_eq!((img.width(), img.height()), (150, 103), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_uploads_are_refused_and_leave_nothing() {
    let (gw, _a, _b) = signed_setup().await;
    let cases: Vec<(Form, u16, &str)> = vec![
        (Form::new().text("width", "10"), 400, "invalid_parameter"),
        (
            Form::new().part(
                "file",
                Part::bytes(b"not an image".to_vec()).file_name("x.txt"),
            ),
            422,
            "invalid_image",
        ),
        (
            Form::new().part("file", Part::bytes(Vec::new()).file_name("empty.jpg")),
            400,
            "invalid_parameter",
        ),
        (jpeg_form().text("colour", "red"), 400, "bad_request"),
        (jpeg_form().text("width", "wide"), 400, "invalid_parameter"),
        (jpeg_form().text("format", "tiff"), 400, "invalid_parameter"),
    ];
    for (form, status, code) in cases {
        let r = upload(&gw, "", form).await;
        assert_eq!(r.status(), status, "{code}");
        assert_eq!(error_code(r).await, code);
    }
    let r = client()
        .post(gw.url("/api/v1/upload"))
        .header("X-API-Key", KEY)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = client()
        .post(gw.url("/api/v1/upload"))
        .multipart(jpeg_form())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(gw.stored_files(), Vec::<std::path::PathBuf>::new());
}

fn big_body(boundary: &str, size: usize) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    body.resize(body.len() + size, b'x');
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_mib_over_a_twenty_mib_limit_is_413_and_stores_nothing() {
    let (gw, _a, _b) = signed_setup().await;
    let boundary = "XyZboundary";
    let content_type = format!("multipart/form-data; boundary={boundary}");

    // Declared length: refused before the body is read.
    let r = client()
        .post(gw.url("/api/v1/upload"))
        .header("X-API-Key", KEY)
        .header("Content-Type", &content_type)
        .body(big_body(boundary, 50 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "payload_too_large");

    // No declared length (chunked): refused while streaming, the partial file removed.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big_body(boundary, 50 * 1024 * 1024)
        .chunks(256 * 1024)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let r = client()
        .post(gw.url("/api/v1/upload"))
        .header("X-API-Key", KEY)
        .header("Content-Type", &content_type)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(error_code(r).await, "payload_too_large");
    assert_eq!(gw.stored_files(), Vec::<std::path::PathBuf>::new());

    // Just under the limit is accepted as far as storage goes (the backend then refuses the
    // fake JPEG as an invalid image, and the request still answers cleanly).
    let r = client()
        .post(gw.url("/api/v1/upload"))
        .header("X-API-Key", KEY)
        .header("Content-Type", &content_type)
        .body(big_body(boundary, 19 * 1024 * 1024))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(error_code(r).await, "invalid_image");
    assert_eq!(
        gw.stored_files(),
        Vec::<std::path::PathBuf>::new(),
        "a refused original is not kept"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expect_continue_is_answered_before_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (gw, _a, _b) = signed_setup().await;
    let boundary = "b0undary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"v.png\"\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&std::fs::read(fixture("video-150x103.png")).unwrap());
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", gw.port))
        .await
        .unwrap();
    let head = format!(
        "POST /api/v1/upload HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nExpect: 100-continue\r\n\
Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_exact(&mut interim),
    )
    .await
    .expect("no 100 Continue within 10 s")
    .unwrap();
    assert_eq!(
        &interim, b"HTTP/1.1 100 Continue\r\n\r\n",
        "the body was not asked for"
    );
    stream.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}\n{}",
        &text[..text.len().min(400)],
        gw.log()
    );
    assert!(text
        .to_ascii_lowercase()
        .contains("content-type: image/webp"));
}

/// A client that sends its whole body before it reads (Python's urllib), on a connection it
/// closes after one request: status line of the answer it then reads.
async fn send_all_then_read(port: u16, head: &str, body: &[u8]) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("head: {e}"))?;
    stream
        .write_all(body)
        .await
        .map_err(|e| format!("body: {e}"))?;
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        stream.read_to_end(&mut answer),
    )
    .await
    .map_err(|_| "no answer within 20 s".to_string())?
    .map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&answer).to_string();
    Ok(text.lines().next().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn early_refusals_are_read_by_clients_that_send_connection_close() {
    let (gw, _a, _b) = signed_setup().await;
    let boundary = "cl0se";
    let body = big_body(boundary, 21 * 1024 * 1024);
    let head = |key: &str| {
        format!(
            "POST /api/v1/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: multipart/form-data; boundary={boundary}\r\n\
             Content-Length: {}\r\n{key}\r\n",
            body.len()
        )
    };
    // 413 from the declared length, before the body is read.
    let status = send_all_then_read(gw.port, &head(&format!("X-API-Key: {KEY}\r\n")), &body).await;
    assert_eq!(status.as_deref(), Ok("HTTP/1.1 413 Payload Too Large"));
    // 401: no key, the body never read.
    let status = send_all_then_read(gw.port, &head(""), &body).await;
    assert_eq!(status.as_deref(), Ok("HTTP/1.1 401 Unauthorized"));
    assert_eq!(gw.stored_files(), Vec::<std::path::PathBuf>::new());
    // What the lingering close reads is thrown away, and never billed as bandwidth.
    let quota = common::get_json(gw.admin_url("/api/v1/users/legacy/quota"), Some(KEY)).await;
    let billed = quota["bandwidth_bytes"]["used"].as_u64().unwrap();
    assert!(
        billed < 64 * 1024,
        "{billed} bytes billed for a refused upload"
    );
}
