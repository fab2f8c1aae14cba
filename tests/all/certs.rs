//! Throwaway PKI for the TLS tests: a CA, a server certificate for `localhost` and
//! 127.0.0.1, and client certificates, written as PEM files into a directory.

use std::path::{Path, PathBuf};

use anyhow::Result;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// PEM files of one CA and what it signed.
pub struct Pki {
    /// The CA certificate (what clients trust, and what the server checks client
    /// certificates against).
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Pki {
    /// Generates a CA named `name` and its server and client certificates under `dir`.
    pub fn generate(dir: &Path, name: &str) -> Result<Self> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

        let leaf = |sans: Vec<String>, usage: ExtendedKeyUsagePurpose| -> Result<_> {
            let mut params = CertificateParams::new(sans)?;
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate()?;
            let cert = params.signed_by(&key, &ca)?;
            Ok((cert.pem(), key.serialize_pem()))
        };
        let (server_cert, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        )?;
        let (client_cert, client_key) = leaf(
            vec![format!("{name}-client")],
            ExtendedKeyUsagePurpose::ClientAuth,
        )?;

        let write = |file: &str, pem: &str| -> Result<PathBuf> {
            let path = dir.join(format!("{name}-{file}"));
            std::fs::write(&path, pem)?;
            Ok(path)
        };
        Ok(Self {
            ca: write("ca.pem", &ca.pem())?,
            server_cert: write("server.pem", &server_cert)?,
            server_key: write("server.key", &server_key)?,
            client_cert: write("client.pem", &client_cert)?,
            client_key: write("client.key", &client_key)?,
        })
    }
}

impl Pki {
    /// `GET path` over HTTPS from `addr`, trusting this CA and presenting this PKI's client
    /// certificate; the whole response, head and body.
    pub fn https_get(&self, addr: std::net::SocketAddr, path: &str) -> Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        use tokio_rustls::rustls::pki_types::pem::PemObject as _;
        use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
        use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto::ring};

        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_file(&self.ca)?)?;
        let chain =
            CertificateDer::pem_file_iter(&self.client_cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&self.client_key)?;
        let config =
            ClientConfig::builder_with_provider(std::sync::Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_client_auth_cert(chain, key)?;
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Bounded, so a server that stops answering fails the test instead of hanging it.
        runtime.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(30), async {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let mut tls = connector
                    .connect(ServerName::try_from("localhost")?, tcp)
                    .await?;
                tls.write_all(
                    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await?;
                tls.flush().await?;
                let mut response = Vec::new();
                tls.read_to_end(&mut response).await?;
                Ok(String::from_utf8_lossy(&response).into_owned())
            })
            .await
            .map_err(|_| anyhow::anyhow!("no HTTPS answer from {addr} within 30 s"))?
        })
    }
}
