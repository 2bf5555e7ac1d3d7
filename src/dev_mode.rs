//! `dev` mode and `dev-backend`: try the gateway without imgproxy.

use crate::cli::{DevArgs, DevBackendArgs};
use crate::config::{load_str, Config};
use crate::dev_imgproxy::{DevBackend, DevBackendOptions};
use crate::imgproxy::address::AddressPolicy;
use pingora::server::Server;
use pingora::services::listening::Service;
use rand::RngCore;

pub const DEV_BACKENDS: [(&str, u32); 2] = [("127.0.0.1:48080", 70), ("127.0.0.1:48081", 30)];

/// A listening service running a development backend.
pub fn backend_service(
    listen: &str,
    options: DevBackendOptions,
) -> Result<Service<DevBackend>, String> {
    let mut service = Service::new(format!("dev backend {listen}"), DevBackend::new(options)?);
    service.add_tcp(listen);
    Ok(service)
}

/// `imgproxy-gateway dev-backend --listen ADDR ...` as its own server.
pub fn run_backend(args: DevBackendArgs) -> Result<(), String> {
    args.listen.parse::<std::net::SocketAddr>().map_err(|_| {
        format!(
            "--listen: `{}` is not an address like 127.0.0.1:48080",
            args.listen
        )
    })?;
    let defaults = AddressPolicy::IMGPROXY;
    let switch = |flag: Option<bool>, name: &str, default: bool| -> Result<bool, String> {
        match (flag, std::env::var(name)) {
            (Some(value), _) => Ok(value),
            (None, Ok(text)) => match text.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" => Ok(true),
                "0" | "false" | "no" | "" => Ok(false),
                other => Err(format!("{name}: `{other}` is not true or false")),
            },
            (None, Err(_)) => Ok(default),
        }
    };
    let addresses = AddressPolicy {
        allow_loopback: switch(
            args.allow_loopback_source_addresses,
            "IMGPROXY_ALLOW_LOOPBACK_SOURCE_ADDRESSES",
            defaults.allow_loopback,
        )?,
        allow_link_local: switch(
            args.allow_link_local_source_addresses,
            "IMGPROXY_ALLOW_LINK_LOCAL_SOURCE_ADDRESSES",
            defaults.allow_link_local,
        )?,
        allow_private: switch(
            args.allow_private_source_addresses,
            "IMGPROXY_ALLOW_PRIVATE_SOURCE_ADDRESSES",
            defaults.allow_private,
        )?,
    };
    let options = DevBackendOptions {
        key: args.key,
        salt: args.salt,
        signature_size: args.signature_size,
        local_root: args.local_root,
        addresses,
    };
    let mut server = Server::new(None).map_err(|e| e.to_string())?;
    server.bootstrap();
    server.add_service(backend_service(&args.listen, options)?);
    log::info!(
        "{}",
        serde_json::json!({"event": "dev_backend_started", "listen": args.listen})
    );
    server.run(pingora::server::RunArgs::default());
    crate::logging::flush();
    Ok(())
}

fn random_hex(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// The dev configuration: built-in backends, signed URLs with a fresh key, state under `data`.
/// `GATEWAY__…` variables still override it.
pub fn dev_config(args: &DevArgs) -> Result<Config, String> {
    let data = args.data.display();
    let backends: String = DEV_BACKENDS
        .iter()
        .map(|(addr, weight)| format!("  - url: http://{addr}\n    weight: {weight}\n"))
        .collect();
    let yaml = format!(
        "server:\n  port: 8080\n  host: 127.0.0.1\n  pid_file: {data}/gateway.pid\n  upgrade_sock: {data}/upgrade.sock\n\
admin:\n  listen: 127.0.0.1:9090\n\
database:\n  dsn: sqlite://{data}/gateway.db?mode=rwc\n\
backends:\n{backends}\
health_check:\n  interval: 5s\n\
imgproxy:\n  key: '{}'\n  salt: '{}'\n  allow_loopback_sources: true\n  allow_private_sources: true\n\
storage:\n  dir: {data}/images\n  source_base_url: http://127.0.0.1:8080\n\
observability:\n  log_format: text\n",
        random_hex(32),
        random_hex(32),
    );
    load_str(&yaml, std::env::vars()).map_err(|e| e.to_string())
}

/// Add the two development backends, sharing the gateway's key and salt.
pub fn add_backends(server: &mut Server, config: &Config) -> Result<(), String> {
    for backend in config.backends.iter() {
        let listen = backend.url.authority();
        let options = DevBackendOptions {
            key: config.imgproxy.key.as_ref().map(|k| k.to_hex()),
            salt: config.imgproxy.salt.as_ref().map(|s| s.to_hex()),
            signature_size: *config.imgproxy.signature_size,
            local_root: Some(config.storage.dir.to_string().into()),
            // The gateway's upload source (storage.source_base_url) is on loopback here, which
            // imgproxy refuses by default; dev mode allows it as an operator would.
            addresses: AddressPolicy {
                allow_loopback: true,
                ..AddressPolicy::IMGPROXY
            },
        };
        server.add_service(backend_service(&listen, options)?);
    }
    Ok(())
}

pub fn banner(config: &Config) -> String {
    let public = format!("http://{}", config.server.public_addr());
    let key = &config.legacy.api_key;
    let sample = "tests/fixtures/board-720x477.jpg";
    format!(
        "\nimgproxy-gateway dev mode\n  gateway   {public}\n  admin     http://{admin}\n  backends  {backends}\n  state     {db}\n\n\
API key (legacy admin): {key}\n\nUpload a JPEG and get a WebP back:\n  curl -sS -H 'X-API-Key: {key}' -F file=@{sample} -o board.webp -D - {public}/api/v1/upload\nConvert the stored upload again (its id is the X-Image-Id header above), or any http(s) image with ?url=:\n  curl -sS -H 'X-API-Key: {key}' -o small.webp -D - '{public}/api/v1/convert?image_id=<X-Image-Id from the upload>&width=200'\nBackends and health:\n  curl -sS -H 'X-API-Key: {key}' http://{admin}/api/v1/backends\n",
        admin = config.admin.listen,
        backends = config.backends.iter().map(|b| format!("{} (weight {})", b.url, b.weight)).collect::<Vec<_>>().join(", "),
        db = crate::config::redacted(&config.database.dsn),
    )
}
