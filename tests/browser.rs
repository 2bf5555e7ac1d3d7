//! The admin UI in a real browser. Headless Chromium, driven through Debian's chromedriver by
//! `tests/browser/ui.py` (Selenium), against a real gateway: 25 scenarios, from a wrong key to a
//! user that sees only its own record (the script lists them). Screenshots of each page land in
//! `target/browser-screenshots/` (and of the failing page when a scenario fails).

mod common;

use common::{Gateway, KEY};
use serde_json::json;
use std::process::Command;

fn browser_available() -> Result<(), String> {
    for tool in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        if !std::path::Path::new(tool).exists() {
            return Err(format!(
                "{tool} is missing (Debian: chromium chromium-driver)"
            ));
        }
    }
    let selenium = Command::new("python3")
        .args(["-c", "import selenium"])
        .status()
        .map_err(|e| e.to_string())?;
    if !selenium.success() {
        return Err("python3 has no selenium (pip install selenium)".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_ui_in_headless_chromium() {
    if let Err(why) = browser_available() {
        return common::servers::unavailable("the browser test", why).unwrap_or(());
    }
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b]).start().await;
    // 26 users with the legacy one, the viewer and b-quota: two pages of 20; one named like an
    // attack.
    for i in 0..22 {
        common::create_user(&gw, &format!("b-{i:02}"), "user", json!({})).await;
    }
    let (status, _) = common::admin(
        &gw,
        "POST",
        "/api/v1/users",
        KEY,
        Some(json!({"id": "xss", "name": "<img src=x onerror=alert(1)>",
            "email": "x@example.com", "role": "user"})),
    )
    .await;
    assert_eq!(status, 201);
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
    // This run's screenshots only (a failure's is named `failed-<scenario>.png`).
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/ui.py");
    let viewer = common::create_user(&gw, "b-viewer", "viewer", json!({})).await;
    let b00 = common::admin(&gw, "POST", "/api/v1/users/b-00/keys", KEY, Some(json!({})))
        .await
        .1["key"]
        .as_str()
        .unwrap()
        .to_string();
    // Quota threshold events for the overview: 80, 90 and 100 % of 5 requests.
    let spender = common::create_user(
        &gw,
        "b-quota",
        "user",
        json!({"quotas": {"monthly_requests": 5}}),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(common::convert(&gw, &spender).await.status(), 200);
    }
    let base = gw.admin_url("");
    let public = gw.url("");
    let photo = common::fixture("board-720x477.jpg");
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(script)
            .arg(base)
            .arg(KEY)
            .arg(&shots)
            .arg(public)
            .arg(photo)
            .arg(viewer)
            .arg(b00)
            .arg(common::CONVERT)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{printed}");
    assert!(out.status.success(), "{printed}");
    assert_eq!(printed.matches("ok: ").count(), 25, "{printed}");
}
