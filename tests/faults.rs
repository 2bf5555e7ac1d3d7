//! Whose fault a failure is: clients that hang up never count against a backend, a backend that
//! really dies is marked at once, imgproxy's 429 is retried once then answered 503, and a
//! source's own 4xx keeps its meaning while a refused signature is the gateway's 502.

mod common;

use common::stub::{Mode, Stub};
use common::{client, error_code, Gateway, CONVERT, KEY};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const HANGUPS: usize = 50;

async fn ready_status(gw: &Gateway) -> u16 {
    client()
        .get(gw.url("/api/v1/ready"))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn healthy(backends: &serde_json::Value) -> Vec<bool> {
    backends["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["healthy"].as_bool().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_that_hang_up_leave_backends_healthy_but_a_dead_backend_is_marked_at_once() {
    // A slow source: every backend takes 3 s to answer.
    let a = Stub::start("a", Mode::Sleep(Duration::from_secs(3))).await;
    let b = Stub::start("b", Mode::Sleep(Duration::from_secs(3))).await;
    let gw = Gateway::over(&[&a, &b])
        .yaml("rate_limits:\n  ip_level:\n    requests_per_minute: 100000\n    burst: 1000")
        .start()
        .await;

    // 50 clients send a convert and hang up 300 ms later, mid-request (`curl -m 0.3`).
    let request = format!("GET {CONVERT} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {KEY}\r\n\r\n");
    let hangups: Vec<_> = (0..HANGUPS)
        .map(|_| {
            let (port, request) = (gw.port, request.clone());
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                stream.write_all(request.as_bytes()).await.unwrap();
                tokio::time::sleep(Duration::from_millis(300)).await;
                drop(stream);
            })
        })
        .collect();
    for h in hangups {
        h.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let backends = gw.backends().await;
    assert_eq!(healthy(&backends), [true, true], "{backends}");
    assert_eq!(ready_status(&gw).await, 200);
    let log = gw.log();
    assert_eq!(
        log.matches("backend_marked_down").count(),
        0,
        "a client hang-up marked a backend down"
    );

    // A backend that really dies (accepts and closes without answering) is marked at once,
    // and the request that met it is answered by the other backend.
    a.set_mode(Mode::Close);
    b.set_mode(Mode::Image);
    for _ in 0..4 {
        let r = client()
            .get(gw.url(CONVERT))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap(), "b");
    }
    assert_eq!(healthy(&gw.backends().await), [false, true]);
    assert_eq!(ready_status(&gw).await, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_imgproxy_is_retried_once_elsewhere_then_503_with_retry_after() {
    let a = Stub::start("a", Mode::Status(429, "Too many requests")).await;
    let b = Stub::start("b", Mode::Image).await;
    let gw = Gateway::over(&[&a, &b]).start().await;
    for _ in 0..4 {
        let r = common::convert(&gw, KEY).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap(), "b");
    }
    b.set_mode(Mode::Status(429, "Too many requests"));
    let (served_a, served_b) = (a.served(), b.served());
    let r = common::convert(&gw, KEY).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(error_code(r).await, "backend_busy");
    assert_eq!(
        (a.served() - served_a) + (b.served() - served_b),
        2,
        "one try on each backend"
    );
    // Busy is not down.
    assert_eq!(healthy(&gw.backends().await), [true, true]);
}

/// Both backends answer `status` with `text`: what the client gets.
async fn answer_for(
    gw: &Gateway,
    stubs: &[&Stub],
    status: u16,
    text: &'static str,
) -> (u16, String, String) {
    for stub in stubs {
        stub.set_mode(Mode::Status(status, text));
    }
    let r = common::convert(gw, KEY).await;
    let code = r.status().as_u16();
    let body: serde_json::Value = r.json().await.unwrap();
    (
        code,
        body["error"]["code"].as_str().unwrap().to_string(),
        body["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sources_own_403_is_not_a_signature_problem() {
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b]).start().await;
    let stubs = [&a, &b];
    let answer = |status, text| answer_for(&gw, &stubs, status, text);
    // imgproxy 4 passes a source's 403 through with its "unreachable" text.
    let (status, code, message) = answer(403, "Source is unreachable").await;
    assert_eq!(
        (status, code.as_str()),
        (403, "source_refused"),
        "{message}"
    );
    assert!(!message.contains("signature"), "{message}");
    // imgproxy 3.31's text for the same.
    let (status, code, _) = answer(401, "Source image is unreachable").await;
    assert_eq!((status, code.as_str()), (403, "source_refused"));
    // A refused signature is the gateway's configuration: 502 naming the keys.
    let (status, code, message) = answer(403, "Forbidden").await;
    assert_eq!((status, code.as_str()), (502, "bad_gateway"));
    assert!(message.contains("imgproxy.key"), "{message}");
    // v4's refused source address; v3's 500 (a source that refuses the connection, or its own
    // failure) is the backend's.
    let (status, code, _) = answer(404, "Invalid source URL").await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    let (status, code, _) = answer(500, "Internal error").await;
    assert_eq!((status, code.as_str()), (502, "bad_gateway"));
    let (status, code, _) = answer(422, "Source response is incomplete").await;
    assert_eq!((status, code.as_str()), (502, "source_failed"));
}
