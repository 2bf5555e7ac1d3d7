//! The command line: check-config validates without starting and names the bad key.

mod common;

use common::BIN;
use std::process::Command;

fn check_config(yaml: &str, env: &[(&str, &str)]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.yaml");
    std::fs::write(&file, yaml).unwrap();
    let out = Command::new(&*BIN)
        .arg("check-config")
        .arg(&file)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out.status.success(), printed(&out))
}

/// Everything a command printed, stdout then stderr.
fn printed(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn the_shipped_configuration_is_valid() {
    let out = Command::new(&*BIN)
        .args([
            "check-config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/conf/gateway.yaml"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (2 backends"));
}

#[test]
fn invalid_configurations_name_the_key() {
    let two = "backends:\n  - url: http://127.0.0.1:1\n  - url: http://127.0.0.1:2\n";
    for (yaml, env, expected) in [
        (
            "backends:\n  - url: http://127.0.0.1:1\n",
            vec![],
            "backends: needs between 2 and 10 entries (got 1)",
        ),
        (
            two,
            vec![("GATEWAY__BACKENDS__1__WEIGHT", "101")],
            "backends[1].weight: must be between 1 and 100 (got 101)",
        ),
        (
            &format!("{two}server:\n  read_timeout: soon\n"),
            vec![],
            "server.read_timeout",
        ),
        (&format!("{two}surprise: 1\n"), vec![], "surprise"),
        (
            "backends:\n  - url: htp:/x\n  - url: http://127.0.0.1:2\n",
            vec![],
            "backends[0].url",
        ),
    ] {
        let (ok, text) = check_config(yaml, &env);
        assert!(!ok, "{yaml}");
        assert!(text.contains(expected), "expected `{expected}` in: {text}");
    }
    let (ok, text) = check_config(two, &[("GATEWAY__SERVER__PORT", "8181")]);
    assert!(ok, "{text}");
    assert!(text.contains("public port 8181"), "{text}");
}

/// Issue 10, item 7: the published legacy key on a listener others can reach is named, at
/// start and by check-config; a legacy key of the wrong shape is refused.
#[test]
fn the_published_legacy_key_on_an_open_admin_listener_is_a_warning() {
    let two = "backends:\n  - url: http://127.0.0.1:1\n  - url: http://127.0.0.1:2\n";
    let closed = format!("{two}server:\n  host: 127.0.0.1\nadmin:\n  listen: 127.0.0.1:9090\n");
    let (ok, text) = check_config(&closed, &[]);
    assert!(ok && !text.contains("warning"), "{text}");
    let open = format!("{two}server:\n  host: 127.0.0.1\nadmin:\n  listen: 0.0.0.0:9090\n");
    let (ok, text) = check_config(&open, &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("warning: legacy.api_key is the published default and admin.listen (0.0.0.0:9090) is not on loopback"),
        "{text}"
    );
    let (ok, text) = check_config(&open, &[("GATEWAY__LEGACY__API_KEY", "Zq8hV2mKp4Lr9sTx")]);
    assert!(ok && !text.contains("warning"), "{text}");
    let (ok, text) = check_config(&open, &[("GATEWAY__LEGACY__API_KEY", "change-me")]);
    assert!(!ok);
    assert!(
        text.contains("legacy.api_key: must be 16 to 128 letters and digits"),
        "{text}"
    );
}

/// The image does not publish the admin listener, and compose's balancer replaces any
/// `X-Forwarded-For` a client sends and is the only address the gateways trust for it.
#[test]
fn the_shipped_deployment_keeps_the_admin_listener_and_client_addresses_closed() {
    let read = |name: &str| {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/").to_string() + name)
            .unwrap()
    };
    let docker = read("Dockerfile");
    let instructions: Vec<&str> = docker
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        instructions
            .iter()
            .all(|l| !l.contains("9090") || l.contains("127.0.0.1:9090")),
        "the Dockerfile exposes the admin listener: {instructions:?}"
    );
    let haproxy = read("conf/haproxy.cfg");
    assert!(haproxy.contains("mode http"), "{haproxy}");
    assert!(
        haproxy.contains("http-request set-header X-Forwarded-For %[src]"),
        "{haproxy}"
    );
    let compose = read("conf/docker-compose.yml");
    assert!(compose.contains("GATEWAY__SERVER__TRUSTED_PROXIES: \"[172.28.0.2/32]\""));
    assert!(compose.contains("ipv4_address: 172.28.0.2"));
    assert!(!compose.contains("172.16.0.0/12"));
    assert!(compose.contains("IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES: \"false\""));
    assert!(!compose.contains("IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES: \"true\""));
}

#[test]
fn help_lists_the_commands() {
    let out = Command::new(&*BIN).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["run", "dev", "dev-backend", "migrate", "check-config"] {
        assert!(text.contains(command), "{command} missing from --help");
    }
}

#[test]
fn passwords_in_dsns_and_urls_are_never_printed() {
    let two = "backends:\n  - url: http://127.0.0.1:1\n  - url: http://127.0.0.1:2\n";
    for yaml in [
        format!("{two}database:\n  driver: sqlite\n  dsn: postgres://gw:hunter2@127.0.0.1:1/gw\n"),
        format!("{two}redis:\n  url: http://:hunter2@127.0.0.1:1\n"),
    ] {
        let (ok, text) = check_config(&yaml, &[]);
        assert!(!ok, "{text}");
        assert!(text.contains(":***@"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
    // A database that refuses the connection: the error names it, without the password.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.yaml");
    std::fs::write(
        &file,
        format!("{two}database:\n  driver: postgres\n  dsn: postgres://gw:hunter2@127.0.0.1:1/gw\n  timeout: 2s\n"),
    )
    .unwrap();
    let out = Command::new(&*BIN)
        .args(["migrate", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let text = printed(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("postgres://gw:***@127.0.0.1:1/gw"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
}
