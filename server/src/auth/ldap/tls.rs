//! The rustls client config for `ldaps://` and StartTLS, on ring like the
//! rest of the server.
//!
//! The configured `certificate` (PEM, one or more CAs) is the only trust
//! root when set; otherwise the system's roots are used, as Vault does.
//! `insecure_tls` replaces certificate verification with acceptance of any
//! certificate (signatures on the handshake are still checked): it is
//! named `insecure_*` and logged as a warning on every connection.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::config::{LdapConfig, TlsVersion};

fn certificates(pem: &str, field: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("could not parse {field}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("could not parse {field}: no PEM certificate found"));
    }
    Ok(certs)
}

fn private_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|_| "could not parse client_tls_key".to_owned())?
        .ok_or_else(|| "could not parse client_tls_key: no PEM private key found".to_owned())
}

/// Checks the PEM fields of a config when it is written.
pub fn check_pem(cfg: &LdapConfig) -> Result<(), String> {
    if !cfg.certificate.trim().is_empty() {
        certificates(&cfg.certificate, "certificate")?;
    }
    if !cfg.client_tls_cert.trim().is_empty() {
        certificates(&cfg.client_tls_cert, "client_tls_cert")?;
        private_key(cfg.client_tls_key.expose())?;
    }
    Ok(())
}

fn provider() -> Arc<CryptoProvider> {
    crate::barrier::tls_provider()
}

/// The client config for this LDAP config's TLS connections.
pub fn client_config(cfg: &LdapConfig) -> Result<Arc<ClientConfig>, String> {
    let min =
        TlsVersion::parse(&cfg.tls_min_version, "tls_min_version").map_err(|e| e.to_string())?;
    let max =
        TlsVersion::parse(&cfg.tls_max_version, "tls_max_version").map_err(|e| e.to_string())?;
    let mut versions = Vec::new();
    if min <= TlsVersion::Tls12 && max >= TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err(
            "no TLS version between tls_min_version and tls_max_version is supported".into(),
        );
    }
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS settings: {e}"))?;
    let builder = if cfg.insecure_tls {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(InsecureAnyCertificate(
                provider.signature_verification_algorithms,
            )))
    } else {
        let mut roots = RootCertStore::empty();
        if cfg.certificate.trim().is_empty() {
            let native = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                return Err("no system CA certificates found; set certificate".into());
            }
        } else {
            for cert in certificates(&cfg.certificate, "certificate")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("certificate is not a usable CA: {e}"))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = if cfg.client_tls_cert.trim().is_empty() {
        builder.with_no_client_auth()
    } else {
        let chain = certificates(&cfg.client_tls_cert, "client_tls_cert")?;
        let key = private_key(cfg.client_tls_key.expose())?;
        builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client_tls_cert and client_tls_key: {e}"))?
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate: only for `insecure_tls`.
#[derive(Debug)]
struct InsecureAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for InsecureAnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
