//! Issue 10, item 7: the compose topology's balancer (`conf/haproxy.cfg`, a real haproxy)
//! replaces the `X-Forwarded-For` a client sends, so behind it no client can claim another
//! address for whitelists, IP limits or logs. The shipped file used to run in TCP mode, passing
//! the client's own header to gateways that trusted the whole 172.16/12 network.

mod common;

use common::servers::Balancer;
use common::{client, create_user, Gateway};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_balancer_replaces_a_spoofed_forwarded_for() {
    let (a, b) = common::image_stubs().await;
    // The gateway trusts the balancer's address only (loopback here, 172.28.0.2 in compose).
    let gw = Gateway::over(&[&a, &b])
        .server("  trusted_proxies: [127.0.0.1/32]")
        .start()
        .await;
    let Some(balancer) = Balancer::start(gw.port).await else {
        return;
    };
    let fenced = create_user(
        &gw,
        "fenced",
        "user",
        json!({"ip_whitelist": ["10.0.0.1/32"]}),
    )
    .await;
    let local = create_user(
        &gw,
        "local",
        "user",
        json!({"ip_whitelist": ["127.0.0.1/32"]}),
    )
    .await;
    let through = |key: &str, spoof: Option<&str>| {
        let mut request = client()
            .get(format!(
                "http://127.0.0.1:{}{}",
                balancer.port,
                common::CONVERT
            ))
            .header("X-API-Key", key);
        if let Some(ip) = spoof {
            request = request.header("X-Forwarded-For", ip);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // The client claims the whitelisted address: the balancer says where it really is.
    assert_eq!(through(&fenced, Some("10.0.0.1")).await, 403);
    assert_eq!(through(&fenced, Some("1.2.3.4, 10.0.0.1")).await, 403);
    // What the balancer forwards is believed: the real address passes its whitelist.
    assert_eq!(through(&local, Some("10.0.0.1")).await, 200);
    assert_eq!(through(&local, None).await, 200);
    // The refusal is logged as ip_blocked (lines are written within 100 ms).
    gw.wait_log("\"event\":\"ip_blocked\"", 1).await;
}
