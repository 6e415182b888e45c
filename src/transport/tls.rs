//! TLS: certificate and key from PEM files, or a self-signed certificate for `localhost`
//! made at start; a rustls server config offering ALPN `h2` and `http/1.1`.

use std::fmt;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::TlsConfig;

/// TLS could not be set up, and why.
#[derive(Debug)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// A server config and, when it was generated, the self-signed certificate (so a log
/// line or a test can name it).
pub struct LoadedTls {
    /// The rustls config to accept connections with.
    pub server_config: Arc<ServerConfig>,
    /// The generated certificate, when none was configured.
    pub self_signed: Option<CertificateDer<'static>>,
}

/// The crypto provider the gateway uses (ring).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads the configured certificate, or generates a self-signed one for `localhost`.
pub fn load(config: &TlsConfig) -> Result<LoadedTls, TlsError> {
    let (chain, key, self_signed) = match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| TlsError(format!("certificate {}: {e}", cert.display())))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError(format!("certificate {}: {e}", cert.display())))?;
            if chain.is_empty() {
                return Err(TlsError(format!(
                    "certificate {}: no CERTIFICATE block",
                    cert.display()
                )));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| TlsError(format!("private key {}: {e}", key.display())))?;
            (chain, key, None)
        }
        _ => {
            let generated = rcgen::generate_simple_self_signed(vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ])
            .map_err(|e| TlsError(format!("generating a self-signed certificate: {e}")))?;
            let cert = generated.cert.der().clone();
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                generated.signing_key.serialize_der(),
            ));
            (vec![cert.clone()], key, Some(cert))
        }
    };
    let mut server_config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(format!("TLS versions: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            TlsError(format!(
                "certificate and key do not form a usable pair: {e}"
            ))
        })?;
    server_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(LoadedTls {
        server_config: Arc::new(server_config),
        self_signed,
    })
}
