//! Optional TLS (rustls, ring provider): builds the server's `ServerTlsConfig` from the PEM
//! files named in [`ServerConfig`]. Files are read once, at start; replacing a certificate
//! takes a restart.

use std::path::Path;

use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::{ServeError, ServerConfig};

/// `server` with the TLS settings of `config` applied (unchanged for plaintext). The
/// certificate and key are parsed here, so a bad file fails before anything is served.
pub(crate) fn apply(config: &ServerConfig, server: Server) -> Result<Server, ServeError> {
    match server_tls(config)? {
        None => Ok(server),
        Some(tls) => server
            .tls_config(tls)
            .map_err(|e| ServeError::Tls(format!("certificate or key rejected: {e}"))),
    }
}

/// The TLS settings of `config`, or `None` for plaintext. Errors name the setting and the
/// file: a missing key, an unreadable file, or a file without a PEM block.
fn server_tls(config: &ServerConfig) -> Result<Option<ServerTlsConfig>, ServeError> {
    let (cert, key) = match (&config.tls_cert, &config.tls_key) {
        (None, None) => {
            if config.tls_client_ca.is_some() {
                return Err(ServeError::Tls(
                    "server.tls_client_ca is set but TLS is off: set server.tls_cert and \
                     server.tls_key"
                        .into(),
                ));
            }
            return Ok(None);
        }
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => {
            return Err(ServeError::Tls(
                "server.tls_cert is set without server.tls_key".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(ServeError::Tls(
                "server.tls_key is set without server.tls_cert".into(),
            ));
        }
    };
    let identity = Identity::from_pem(
        read_pem("server.tls_cert", cert)?,
        read_pem("server.tls_key", key)?,
    );
    let mut tls = ServerTlsConfig::new().identity(identity);
    if let Some(ca) = &config.tls_client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(read_pem("server.tls_client_ca", ca)?));
    }
    Ok(Some(tls))
}

/// Reads a PEM file; checks for a PEM block so a wrong file fails here, with its name,
/// rather than as an opaque handshake error later.
fn read_pem(setting: &str, path: &Path) -> Result<Vec<u8>, ServeError> {
    let bytes = std::fs::read(path)
        .map_err(|e| ServeError::Tls(format!("{setting}: cannot read {}: {e}", path.display())))?;
    if !bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return Err(ServeError::Tls(format!(
            "{setting}: {} is not a PEM file (no \"-----BEGIN\" block)",
            path.display()
        )));
    }
    Ok(bytes)
}
