//! TLS on the public listener (and the admin one when asked): TLS 1.3 by default, a 1.2 client
//! refused unless `tls.min_version: "1.2"`, and a certificate swapped by SIGHUP.

mod common;

use common::{Gateway, KEY};
use std::path::Path;
use std::process::Command;

/// A self-signed certificate for 127.0.0.1 (and its DER form, to recognise it), made with the
/// openssl command line.
struct Cert {
    pem: Vec<u8>,
    der: Vec<u8>,
}

fn make_cert(dir: &Path, name: &str) -> Cert {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={name}"))
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // An end-entity certificate (webpki refuses a CA certificate as a server's).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .args(["-addext", "extendedKeyUsage=serverAuth"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(status.success());
    let der = Command::new("openssl")
        .args(["x509", "-outform", "der", "-in"])
        .arg(&cert)
        .output()
        .unwrap()
        .stdout;
    Cert {
        pem: std::fs::read(&cert).unwrap(),
        der,
    }
}

fn tls_yaml(dir: &Path, name: &str, min_version: &str, admin: bool) -> String {
    format!(
        "tls:\n  enabled: true\n  cert: {}\n  key: {}\n  min_version: \"{min_version}\"\n  admin: {admin}",
        dir.join(format!("{name}.crt")).display(),
        dir.join(format!("{name}.key")).display()
    )
}

/// A client that trusts both test certificates and speaks only the given TLS versions.
fn client(
    roots: &[&Cert],
    min: reqwest::tls::Version,
    max: reqwest::tls::Version,
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_info(true)
        .min_tls_version(min)
        .max_tls_version(max)
        .timeout(std::time::Duration::from_secs(10));
    for cert in roots {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&cert.pem).unwrap());
    }
    builder.build().unwrap()
}

async fn served_certificate(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client
        .get(url)
        .header("X-API-Key", KEY)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    assert_eq!(response.status(), 200);
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .expect("tls info");
    Ok(info.peer_certificate().unwrap().to_vec())
}

use reqwest::tls::Version;

#[tokio::test(flavor = "multi_thread")]
async fn tls13_only_refuses_a_tls12_client_and_reloads_its_certificate_on_sighup() {
    let certs = tempfile::tempdir().unwrap();
    let first = make_cert(certs.path(), "first");
    let second = make_cert(certs.path(), "second");
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b])
        .yaml(&tls_yaml(certs.path(), "first", "1.3", false))
        .tls(&first.pem, false)
        .start()
        .await;
    let convert = gw.url(common::CONVERT);

    let tls13 = client(&[&first, &second], Version::TLS_1_3, Version::TLS_1_3);
    assert_eq!(
        served_certificate(&tls13, &convert).await.unwrap(),
        first.der
    );
    let tls12 = client(&[&first, &second], Version::TLS_1_2, Version::TLS_1_2);
    let refused = served_certificate(&tls12, &convert).await.unwrap_err();
    // Refused for its version: the gateway's protocol_version alert, not any connect error.
    assert!(
        refused.contains("AlertReceived(ProtocolVersion)"),
        "{refused}"
    );

    // The admin listener stays plain HTTP unless tls.admin.
    let admin = common::client()
        .get(gw.admin_url("/api/v1/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(admin.status(), 200);

    // Renew: the files change in place, SIGHUP, and new connections get the new certificate.
    for ext in ["crt", "key"] {
        std::fs::copy(
            certs.path().join(format!("second.{ext}")),
            certs.path().join(format!("first.{ext}")),
        )
        .unwrap();
    }
    gw.proc.signal("HUP");
    gw.wait_log("\"config_reloaded\"", 1).await;
    let fresh = client(&[&first, &second], Version::TLS_1_3, Version::TLS_1_3);
    assert_eq!(
        served_certificate(&fresh, &convert).await.unwrap(),
        second.der
    );

    // A broken certificate file is refused and the current certificate stays.
    std::fs::write(certs.path().join("first.crt"), "not a certificate").unwrap();
    gw.proc.signal("HUP");
    let line = gw.wait_log("\"config_reload_failed\"", 1).await;
    assert!(line.contains("holds no certificate"), "{line}");
    let again = client(&[&first, &second], Version::TLS_1_3, Version::TLS_1_3);
    assert_eq!(
        served_certificate(&again, &convert).await.unwrap(),
        second.der
    );

    // Turning TLS off needs a restart; the certificate paths it drops cannot apply without it.
    let section = tls_yaml(certs.path(), "first", "1.3", false);
    gw.edit_config(|y| y.replace(&section, "tls:\n  enabled: false"));
    let line = gw.wait_log("\"config_reload_failed\"", 2).await;
    assert!(line.contains("tls.cert: is required"), "{line}");
    let still = client(&[&first, &second], Version::TLS_1_3, Version::TLS_1_3);
    assert_eq!(
        served_certificate(&still, &convert).await.unwrap(),
        second.der
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn min_version_12_accepts_both_and_admin_can_use_tls() {
    let certs = tempfile::tempdir().unwrap();
    let cert = make_cert(certs.path(), "gw");
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b])
        .yaml(&tls_yaml(certs.path(), "gw", "1.2", true))
        .tls(&cert.pem, true)
        .start()
        .await;
    let convert = gw.url(common::CONVERT);
    for version in [Version::TLS_1_2, Version::TLS_1_3] {
        let client = client(&[&cert], version, version);
        assert_eq!(
            served_certificate(&client, &convert).await.unwrap(),
            cert.der
        );
        let admin = gw.admin_url("/api/v1/backends");
        assert!(admin.starts_with("https://"));
        assert_eq!(served_certificate(&client, &admin).await.unwrap(), cert.der);
    }
}

/// A real rustls ClientHello offering only `versions`, its handshake message re-framed as
/// records of at most `size` bytes (as some clients and middleboxes send it).
fn split_client_hello(
    versions: &[&'static rustls::SupportedProtocolVersion],
    size: usize,
) -> Vec<u8> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let mut connection =
        rustls::ClientConnection::new(std::sync::Arc::new(config), "localhost".try_into().unwrap())
            .unwrap();
    let mut record = Vec::new();
    connection.write_tls(&mut record).unwrap();
    assert_eq!(record[0], 0x16, "a handshake record");
    imgproxy_gateway::tls::hello::split_into_records(&record, size)
}

/// The first bytes the server answers to `hello`.
async fn first_answer(port: u16, hello: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    for record in hello.chunks(64) {
        stream.write_all(record).await.unwrap();
        stream.flush().await.unwrap();
    }
    let mut answer = vec![0; 7];
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_exact(&mut answer),
    )
    .await
    .expect("an answer within 10 s")
    .unwrap();
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn tls13_only_holds_for_a_client_hello_split_across_records() {
    let certs = tempfile::tempdir().unwrap();
    let cert = make_cert(certs.path(), "split");
    let (a, b) = common::image_stubs().await;
    let gw = Gateway::over(&[&a, &b])
        .yaml(&tls_yaml(certs.path(), "split", "1.3", false))
        .tls(&cert.pem, false)
        .start()
        .await;
    const ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 70];
    for size in [40, 100] {
        let tls12 = split_client_hello(&[&rustls::version::TLS12], size);
        assert_eq!(
            first_answer(gw.port, &tls12).await,
            ALERT,
            "records of {size}"
        );
        let tls13 = split_client_hello(&[&rustls::version::TLS13], size);
        let answer = first_answer(gw.port, &tls13).await;
        assert_eq!(
            answer[0], 0x16,
            "a ServerHello for TLS 1.3, records of {size}: {answer:?}"
        );
    }
}
