//! TLS on the public (and optionally the admin) listener: rustls through Pingora, with the
//! certificate held in a resolver so SIGHUP can swap it without touching a connection, and
//! `tls.min_version` enforced before the handshake (`hello`).

pub mod hello;

use crate::config::TlsVersion;
use arc_swap::ArcSwap;
use pingora::listeners::tls::TlsSettings;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

pub struct Certificates {
    current: ArcSwap<CertifiedKey>,
    tls13_only: bool,
}

/// Add a TLS endpoint on `addr` to `service`, with the certificate and minimum version of
/// `certs`.
pub fn listen<A>(
    service: &mut pingora::services::listening::Service<A>,
    addr: &str,
    options: Option<pingora::listeners::TcpSocketOptions>,
    certs: &Arc<Certificates>,
) {
    service.add_tls_with_settings(addr, options, certs.settings());
    if certs.tls13_only {
        service
            .endpoints()
            .set_pre_tls_callback(Arc::new(hello::RequireTls13));
    }
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("tls13_only", &self.tls13_only)
            .finish()
    }
}

/// Read a PEM certificate chain and private key into a signing key for rustls.
pub fn read(cert: &str, key: &str) -> Result<CertifiedKey, String> {
    let (chain, private) = pingora::tls::load_certs_and_key_files(cert, key)
        .map_err(|e| format!("tls: cannot read `{cert}` / `{key}`: {e}"))?
        .ok_or_else(|| format!("tls: `{cert}` holds no certificate or `{key}` no private key"))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, private, &provider)
        .map_err(|e| format!("tls: `{key}` does not fit `{cert}`: {e}"))
}

impl Certificates {
    pub fn load(
        cert: &str,
        key: &str,
        min_version: TlsVersion,
    ) -> Result<Arc<Certificates>, String> {
        Ok(Arc::new(Certificates {
            current: ArcSwap::from_pointee(read(cert, key)?),
            tls13_only: min_version == TlsVersion::V1_3,
        }))
    }

    /// Use `certificate` (see `read`) from the next handshake on; connections already
    /// established keep theirs.
    pub fn install(&self, certificate: CertifiedKey) {
        self.current.store(Arc::new(certificate));
    }

    /// Listener settings that take their certificate from here.
    fn settings(self: &Arc<Self>) -> TlsSettings {
        let mut settings =
            TlsSettings::intermediate("", "").expect("settings without files always build");
        settings.set_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        settings
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
