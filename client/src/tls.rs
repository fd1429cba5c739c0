//! The TLS configuration: rustls with the `ring` provider, passed to
//! reqwest ready-made, so nothing depends on a process-wide default
//! provider being installed.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;

use crate::Error;

/// Which certificates to trust.
pub(crate) enum Roots<'a> {
    /// Only the certificates in this PEM file (like `VAULT_CACERT`).
    CaFile(&'a Path),
    /// The operating system's trust store.
    System,
    /// Nothing: for plain-HTTP addresses, where TLS is never used.
    None,
    /// Any certificate at all (`--tls-skip-verify`): the handshake still
    /// checks that the server holds the key of the certificate it shows,
    /// but not who that is.
    Anything,
}

/// A rustls client configuration trusting `roots`, offering HTTP/2 and
/// HTTP/1.1.
pub(crate) fn client_config(roots: Roots<'_>) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS setup: {e}")))?;
    let store = match roots {
        Roots::CaFile(path) => ca_file_roots(path)?,
        Roots::System => system_roots()?,
        Roots::None => RootCertStore::empty(),
        Roots::Anything => {
            let mut config = builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            return Ok(config);
        }
    };
    let mut config = builder.with_root_certificates(store).with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

fn ca_file_roots(path: &Path) -> Result<RootCertStore, Error> {
    let shown = path.display();
    let file =
        File::open(path).map_err(|e| Error::Config(format!("cannot open CA file {shown}: {e}")))?;
    let mut store = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut BufReader::new(file)) {
        let cert = cert.map_err(|e| Error::Config(format!("cannot read CA file {shown}: {e}")))?;
        store
            .add(cert)
            .map_err(|e| Error::Config(format!("bad certificate in CA file {shown}: {e}")))?;
    }
    if store.is_empty() {
        return Err(Error::Config(format!(
            "CA file {shown} holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(store)
}

fn system_roots() -> Result<RootCertStore, Error> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(loaded.certs);
    if store.is_empty() {
        let why = loaded
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(Error::Config(format!(
            "found no trusted root certificates on this system{why}; \
             set a CA file (SECRETD_CACERT) to trust the server"
        )));
    }
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_without_certificates_is_refused_with_its_name() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "not a certificate").unwrap();
        let err = client_config(Roots::CaFile(file.path())).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("holds no PEM certificate"), "{msg}");
        assert!(msg.contains(&file.path().display().to_string()), "{msg}");
    }

    #[test]
    fn a_missing_file_is_a_config_error() {
        let err = client_config(Roots::CaFile(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(err.to_string().contains("/nonexistent/ca.pem"));
    }

    /// A throwaway self-signed CA certificate (public part only).
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBeDCCAR+gAwIBAgIUOPvEL9exee7AqIv6EJfIA2QoFCEwCgYIKoZIzj0EAwIw\n\
EjEQMA4GA1UEAwwHdGVzdC1jYTAeFw0yNjExMjMyMDAxMDFaFw0yNjExMjUyMDAx\n\
MDFaMBIxEDAOBgNVBAMMB3Rlc3QtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n\
AAQTPWtFR/v6x2kycbGMEr09y65YneKwLYnNfO7lKkce2kwhOHmWr0NQ6GehrxCO\n\
wVSWvmD6GU3bEIwcn5vwK783o1MwUTAdBgNVHQ4EFgQU9CxRikDxzVFQE6bVWvPa\n\
ZV7OwKAwHwYDVR0jBBgwFoAU9CxRikDxzVFQE6bVWvPaZV7OwKAwDwYDVR0TAQH/\n\
BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiApS/b4eDLN9RNHGIUNNOTADFE8nwjN\n\
D6Wsc/TmTfN8OQIgTUh0X/TVZq9ZGqDSQGGy7jSBbEKZlOn3jmx4AiGKQ3M=\n\
-----END CERTIFICATE-----\n";

    #[test]
    fn a_ca_file_with_a_certificate_is_trusted() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(TEST_CA_PEM.as_bytes()).unwrap();
        let config = client_config(Roots::CaFile(file.path())).unwrap();
        assert_eq!(
            config.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    #[test]
    fn plain_http_needs_no_roots() {
        let config = client_config(Roots::None).unwrap();
        assert_eq!(config.alpn_protocols.len(), 2);
    }
}

/// Takes any certificate, but still checks the handshake's signatures
/// (with the provider's algorithms), so the server must hold the key of
/// the certificate it shows.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
