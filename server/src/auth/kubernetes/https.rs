//! HTTPS clients for TokenReview calls and JWKS fetches.
//!
//! TLS is rustls with the ring provider; the roots are exactly the
//! configured CA (or the system's, for a public OIDC issuer without
//! `jwks_ca_pem`). Clients are cached by their roots, so logins reuse
//! connections and a changed CA gets a new client at once.

use std::sync::LazyLock;
use std::time::Duration;

use reqwest::Url;
use rustls::RootCertStore;

use crate::core::Error;

/// How long a TCP and TLS connection may take to set up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest answer read (a TokenReview, a JWKS, a discovery document).
pub const MAX_RESPONSE_LEN: usize = 1024 * 1024;

/// Whom a client trusts.
#[derive(Clone, Copy)]
pub enum Trust<'a> {
    /// The certificates of this PEM bundle, and nothing else.
    Pem(&'a str),
    /// The operating system's roots.
    System,
}

static CLIENTS: LazyLock<quick_cache::sync::Cache<String, reqwest::Client>> =
    LazyLock::new(|| quick_cache::sync::Cache::new(64));

/// A client trusting `trust`, from the cache or new.
pub fn client(trust: Trust<'_>) -> Result<reqwest::Client, String> {
    let key = match trust {
        Trust::Pem(pem) => pem.to_owned(),
        Trust::System => String::new(),
    };
    CLIENTS.get_or_insert_with(&key, || build(trust))
}

fn build(trust: Trust<'_>) -> Result<reqwest::Client, String> {
    let roots = match trust {
        Trust::Pem(pem) => roots_from_pem(pem)?,
        Trust::System => system_roots()?,
    };
    let provider = crate::barrier::tls_provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        // A redirect could carry the reviewer's bearer token elsewhere.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("secretd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// The certificates of a PEM bundle as the only roots.
pub fn roots_from_pem(pem: &str) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
        let cert = cert.map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
        store
            .add(cert)
            .map_err(|e| format!("a certificate cannot be used as a root: {e}"))?;
    }
    if store.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(store)
}

fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err("the system has no usable root certificates; set jwks_ca_pem".to_owned());
    }
    Ok(store)
}

/// Checks that a configured address is an https URL with a host.
pub fn check_url(name: &str, value: &str) -> Result<Url, Error> {
    let url = Url::parse(value).map_err(|e| Error::invalid(format!("{name}: {e}")))?;
    if url.scheme() != "https" {
        return Err(Error::invalid(format!(
            "{name} must be an https:// URL: tokens travel over it"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) || url.query().is_some() || url.fragment().is_some()
    {
        return Err(Error::invalid(format!(
            "{name} must have a host and no query or fragment"
        )));
    }
    Ok(url)
}

/// An error with its causes ("error sending request: operation timed
/// out"): reqwest's own message names neither a timeout nor a refusal.
pub fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Reads an answer's body, refusing one over [`MAX_RESPONSE_LEN`].
pub async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_LEN as u64)
    {
        return Err(format!(
            "the answer is larger than {MAX_RESPONSE_LEN} bytes"
        ));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the answer: {}", describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_LEN {
            return Err(format!(
                "the answer is larger than {MAX_RESPONSE_LEN} bytes"
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
