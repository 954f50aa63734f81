//! TLS server configuration from the certificate files named in `[tls]`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// TLS 1.3 and 1.2 only (older versions are broken), aws-lc-rs as the one crypto provider.
pub fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    build(
        cert,
        key,
        &[&rustls::version::TLS13, &rustls::version::TLS12],
    )
}

/// TLS 1.3 only: for protocols without legacy clients to serve (pop3s, docs/imap-plan.md step 9).
pub fn server_config_tls13(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    build(cert, key, &[&rustls::version::TLS13])
}

fn build(
    cert: &Path,
    key: &Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> anyhow::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read certificates from {}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read the private key from {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and private key do not form a usable pair")?;
    Ok(Arc::new(config))
}
