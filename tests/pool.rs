//! The backend pool as clients experience it: weighted interleaving, failover without failed
//! requests, passive marking, recovery after good checks, and 502/503/504.

mod common;

use common::stub::{Mode, Stub};
use common::{client, error_code, Gateway, KEY};
use std::time::{Duration, Instant};

const FAST_CHECKS: &str = "health_check:\n  interval: 1s\n  timeout: 1s\n  unhealthy_threshold: 3\n  healthy_threshold: 2";

async fn convert(gw: &Gateway) -> reqwest::Response {
    client()
        .get(gw.url(common::CONVERT))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap()
}

fn longest_run(picks: &[String]) -> usize {
    picks
        .chunk_by(|a, b| a == b)
        .map(<[String]>::len)
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_70_30_pool_interleaves_by_weight() {
    let a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let gw = Gateway::builder()
        .backend(a.url(), 70)
        .backend(b.url(), 30)
        .start()
        .await;
    let http = client();
    let mut picks = Vec::with_capacity(1000);
    for _ in 0..1000 {
        let r = http
            .get(gw.url(common::CONVERT))
            .header("X-API-Key", KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        picks.push(String::from_utf8(r.bytes().await.unwrap().to_vec()).unwrap());
    }
    let on_a = picks.iter().filter(|p| *p == "a").count();
    assert!((665..=735).contains(&on_a), "a served {on_a} of 1000");
    assert!(
        (265..=335).contains(&(1000 - on_a)),
        "b served {} of 1000",
        1000 - on_a
    );
    assert!(
        longest_run(&picks) <= 3,
        "longest run on one backend: {}",
        longest_run(&picks)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_backend_costs_no_request_and_comes_back_after_good_checks() {
    let mut a = Stub::start("a", Mode::Image).await;
    let b = Stub::start("b", Mode::Image).await;
    let gw = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .yaml(FAST_CHECKS)
        .start()
        .await;

    // Four clients in parallel; `a` dies in the middle.
    let mut clients = Vec::new();
    for _ in 0..4 {
        let url = gw.url(common::CONVERT);
        clients.push(tokio::spawn(async move {
            let http = client();
            let mut failures = Vec::new();
            for _ in 0..60 {
                let r = http
                    .get(&url)
                    .header("X-API-Key", KEY)
                    .send()
                    .await
                    .unwrap();
                if r.status() != 200 {
                    failures.push(r.status().as_u16());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            failures
        }));
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    a.kill();
    for c in clients {
        assert_eq!(c.await.unwrap(), Vec::<u16>::new(), "failed requests");
    }

    // Marked down at once: no further request goes to `a`.
    let status = gw.backends().await;
    assert_eq!(status["backends"][0]["healthy"], false, "{status}");
    assert!(status["backends"][0]["connect_failures"].as_u64().unwrap() >= 1);
    let picked_before = status["backends"][0]["requests"].as_u64().unwrap();
    for _ in 0..20 {
        assert_eq!(convert(&gw).await.bytes().await.unwrap(), "b");
    }
    let picked_after = gw.backends().await["backends"][0]["requests"]
        .as_u64()
        .unwrap();
    assert_eq!(
        picked_before, picked_after,
        "a dead backend is not even tried"
    );

    // Back after two good checks (checks run every second).
    a.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.backends().await["backends"][0]["healthy"] != true {
        assert!(
            Instant::now() < deadline,
            "backend did not come back: {}",
            gw.backends().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let served_before = a.served();
    for _ in 0..10 {
        assert_eq!(convert(&gw).await.status(), 200);
    }
    assert!(
        a.served() > served_before,
        "the recovered backend receives traffic again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_connections_fail_over_and_all_dead_is_503() {
    let mut a = Stub::start("a", Mode::Image).await;
    let mut b = Stub::start("b", Mode::Image).await;
    let gw = Gateway::builder()
        .backend(a.url(), 50)
        .backend(b.url(), 50)
        .start()
        .await;
    a.kill();
    for _ in 0..10 {
        let r = convert(&gw).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.bytes().await.unwrap(), "b");
    }
    b.kill();
    let r = convert(&gw).await;
    assert_eq!(r.status(), 503);
    assert_eq!(error_code(r).await, "no_healthy_backend");
    let ready = client().get(gw.url("/api/v1/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert_eq!(error_code(ready).await, "not_ready");
    b.restart().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backend_that_does_not_answer_is_502_and_a_slow_one_504() {
    let a = Stub::start("a", Mode::Close).await;
    let b = Stub::start("b", Mode::Close).await;
    let gw = Gateway::builder()
        .backend(a.url(), 1)
        .backend(b.url(), 1)
        .yaml("upstream:\n  response_timeout: 1s")
        .start()
        .await;
    let r = convert(&gw).await;
    assert_eq!(r.status(), 502);
    assert_eq!(error_code(r).await, "bad_gateway");
    assert_eq!(a.served() + b.served(), 2, "tried each backend once");

    a.set_mode(Mode::Sleep(Duration::from_secs(3)));
    b.set_mode(Mode::Sleep(Duration::from_secs(3)));
    let r = convert(&gw).await;
    assert_eq!(r.status(), 504);
    assert_eq!(error_code(r).await, "gateway_timeout");
    assert_eq!(a.served() + b.served(), 3, "a slow backend is not retried");
}
