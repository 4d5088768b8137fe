//! The client side of TLS targets (`wss://`, `rss://`): which server to trust, and the name to
//! ask for. The record layer itself is wampd's (`wampd::link::tls`), so a TLS run measures the
//! same code on both ends.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};

/// How the server's certificate is checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Trust {
    /// No flag given: a TLS URL is refused rather than trusting something silently.
    #[default]
    Unset,
    /// Certificates in this PEM file are the roots.
    Ca(String),
    /// Any certificate (benchmarks against a throwaway certificate only).
    Insecure,
}

/// Settings shared by every TLS session of a run.
#[derive(Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tls({:?})", self.name)
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Tls) -> bool {
        self.name == other.name
    }
}

impl Eq for Tls {}

impl Tls {
    /// Client settings for `host`; the error says which flag is missing or which file is bad.
    pub fn new(host: &str, trust: &Trust) -> Result<Tls, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let config = match trust {
            Trust::Unset => {
                return Err("a TLS url needs --ca FILE (or --insecure for benchmarks)".into())
            }
            Trust::Ca(path) => builder.with_root_certificates(roots(path)?),
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
        };
        let name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("bad TLS server name {host:?}: {e}"))?;
        Ok(Tls {
            config: Arc::new(config.with_no_client_auth()),
            name,
        })
    }

    /// A fresh client connection (one per session).
    pub fn connection(&self) -> Result<ClientConnection, String> {
        ClientConnection::new(self.config.clone(), self.name.clone()).map_err(|e| e.to_string())
    }
}

fn roots(path: &str) -> Result<rustls::RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no certificate in it"));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots.add(c).map_err(|e| format!("{path}: {e}"))?;
    }
    Ok(roots)
}

/// Accepts any certificate chain and name, but still checks the handshake signatures, so that a
/// benchmark pays the same crypto as a verified client bar the chain walk.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
