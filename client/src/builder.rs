//! [`ClientBuilder`]: where the server is, how to trust it, who we are.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;
use zeroize::Zeroizing;

use crate::Error;
use crate::client::Client;
use crate::tls::{self, Roots};

/// The address used when none is configured, as Vault's.
pub const DEFAULT_ADDRESS: &str = "https://127.0.0.1:8200";

/// How long one request may take, from connecting to the last byte of the
/// answer, unless [`ClientBuilder::timeout`] says otherwise (Vault's
/// default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// The environment variables read by [`ClientBuilder::from_env`]: for each
/// setting, the secretd name first, then Vault's.
pub const ENV_ADDRESS: [&str; 2] = ["SECRETD_ADDR", "VAULT_ADDR"];
/// See [`ENV_ADDRESS`].
pub const ENV_TOKEN: [&str; 2] = ["SECRETD_TOKEN", "VAULT_TOKEN"];
/// See [`ENV_ADDRESS`].
pub const ENV_CA_CERT: [&str; 2] = ["SECRETD_CACERT", "VAULT_CACERT"];
/// See [`ENV_ADDRESS`]: `1` or `true` turns certificate checks off.
pub const ENV_SKIP_VERIFY: [&str; 2] = ["SECRETD_SKIP_VERIFY", "VAULT_SKIP_VERIFY"];

/// Builds a [`Client`]. Every setting is optional; see [`Client`] for an
/// example.
///
/// The token is kept in a zeroizing buffer and is never shown by `Debug`.
#[derive(Clone, Default)]
pub struct ClientBuilder {
    address: Option<String>,
    token: Option<Zeroizing<String>>,
    ca_cert_file: Option<PathBuf>,
    timeout: Option<Duration>,
    skip_verify: bool,
}

impl std::fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_cert_file", &self.ca_cert_file)
            .field("timeout", &self.timeout)
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

impl ClientBuilder {
    /// A builder with nothing set: [`DEFAULT_ADDRESS`], no token, the
    /// system's trusted roots, [`DEFAULT_TIMEOUT`].
    pub fn new() -> Self {
        Self::default()
    }

    /// A builder set from the process environment: `SECRETD_ADDR` (else
    /// `VAULT_ADDR`), `SECRETD_TOKEN` (else `VAULT_TOKEN`) and
    /// `SECRETD_CACERT` (else `VAULT_CACERT`). Empty variables count as
    /// unset. Later calls on the builder override what was read.
    pub fn from_env() -> Self {
        Self::from_env_vars(|name| std::env::var(name).ok())
    }

    /// Like [`ClientBuilder::from_env`], reading variables through `lookup`
    /// instead of the process environment (for tests and for programs that
    /// keep their own environment map).
    pub fn from_env_vars(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let first = |names: [&str; 2]| {
            names
                .iter()
                .filter_map(|name| lookup(name))
                .find(|value| !value.is_empty())
        };
        let mut builder = Self::new();
        builder.address = first(ENV_ADDRESS);
        builder.token = first(ENV_TOKEN).map(Zeroizing::new);
        builder.ca_cert_file = first(ENV_CA_CERT).map(PathBuf::from);
        builder.skip_verify = first(ENV_SKIP_VERIFY)
            .is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true"));
        builder
    }

    /// The server's address, e.g. `https://secretd.example:8200`. A path
    /// prefix is kept (`https://proxy.example/secretd` calls
    /// `https://proxy.example/secretd/v1/...`).
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(address.into());
        self
    }

    /// Whether a token is set (by [`ClientBuilder::token`] or the
    /// environment).
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The token sent as `X-Vault-Token` with every request.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(Zeroizing::new(token.into()));
        self
    }

    /// Trust only the CA certificates in this PEM file instead of the
    /// system's trust store (what `VAULT_CACERT` does).
    pub fn ca_cert_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_cert_file = Some(path.into());
        self
    }

    /// The time limit of each request (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The address that [`ClientBuilder::build`] will use.
    pub fn configured_address(&self) -> &str {
        self.address.as_deref().unwrap_or(DEFAULT_ADDRESS)
    }

    /// Accepts any server certificate: **anyone between the client and the
    /// server can then read and change everything, tokens included**. For
    /// a first test against a self-signed server only; never the default.
    /// Programs that offer it should say so loudly when it is on
    /// ([`ClientBuilder::skips_verification`]).
    pub fn danger_skip_tls_verify(mut self, skip: bool) -> Self {
        self.skip_verify = skip;
        self
    }

    /// True when certificate checks are off (see
    /// [`ClientBuilder::danger_skip_tls_verify`], `SECRETD_SKIP_VERIFY`).
    pub fn skips_verification(&self) -> bool {
        self.skip_verify
    }

    /// Checks the settings and builds the client. Fails with
    /// [`Error::Config`] for a bad address, an unreadable CA file, a token
    /// that is not a valid header value, or (for `https` without a CA file)
    /// a system without trusted roots.
    pub fn build(self) -> Result<Client, Error> {
        let base = parse_address(self.configured_address())?;
        if let Some(token) = &self.token {
            check_token(token)?;
        }
        let roots = match (&self.ca_cert_file, base.scheme()) {
            _ if self.skip_verify => Roots::Anything,
            (Some(path), _) => Roots::CaFile(path),
            (None, "https") => Roots::System,
            (None, _) => Roots::None,
        };
        let tls = tls::client_config(roots)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(self.timeout.unwrap_or(DEFAULT_TIMEOUT))
            .redirect(redirect_policy())
            .user_agent(concat!("secretd-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client::new(http, base, self.token))
    }
}

/// Parses and checks the server address: http or https, a host, no query
/// or fragment. The path (if any) is kept without its trailing slash.
pub(crate) fn parse_address(address: &str) -> Result<Url, Error> {
    let bad = |why: &str| Error::Config(format!("bad server address {address:?}: {why}"));
    if !address.contains("://") {
        return Err(bad("give the scheme too, e.g. https://127.0.0.1:8200"));
    }
    let url = Url::parse(address.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("there is no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("it must not have a query or fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("it must not hold credentials"));
    }
    Ok(url)
}

/// A token must be sendable as a header value. The message never shows it.
fn check_token(token: &str) -> Result<(), Error> {
    if token.is_empty() {
        return Err(Error::Config("the token is empty".into()));
    }
    if reqwest::header::HeaderValue::from_str(token).is_err() || token.trim() != token {
        return Err(Error::Config(
            "the token holds characters that cannot be sent in an HTTP header \
             (spaces, newlines or control characters)"
                .into(),
        ));
    }
    Ok(())
}

/// Follow at most three redirects (a standby sends clients to the active
/// node), never from https to http.
fn redirect_policy() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let downgrade = attempt.url().scheme() == "http"
            && attempt.previous().iter().any(|u| u.scheme() == "https");
        if downgrade {
            attempt.error("refusing to follow a redirect from https to http")
        } else if attempt.previous().len() > 3 {
            attempt.error("too many redirects")
        } else {
            attempt.follow()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn secretd_variables_win_over_vault_ones() {
        let b = ClientBuilder::from_env_vars(env(&[
            ("SECRETD_ADDR", "http://a:1"),
            ("VAULT_ADDR", "http://b:2"),
            ("SECRETD_TOKEN", "s-token"),
            ("VAULT_TOKEN", "v-token"),
            ("SECRETD_CACERT", "/s.pem"),
            ("VAULT_CACERT", "/v.pem"),
        ]));
        assert_eq!(b.configured_address(), "http://a:1");
        assert_eq!(b.token.as_deref().map(String::as_str), Some("s-token"));
        assert_eq!(b.ca_cert_file, Some(PathBuf::from("/s.pem")));
    }

    #[test]
    fn vault_variables_are_the_fallback_and_empty_counts_as_unset() {
        let b = ClientBuilder::from_env_vars(env(&[
            ("SECRETD_ADDR", ""),
            ("VAULT_ADDR", "http://b:2"),
            ("VAULT_TOKEN", "v-token"),
            ("VAULT_CACERT", "/v.pem"),
        ]));
        assert_eq!(b.configured_address(), "http://b:2");
        assert_eq!(b.token.as_deref().map(String::as_str), Some("v-token"));
        assert_eq!(b.ca_cert_file, Some(PathBuf::from("/v.pem")));
    }

    #[test]
    fn nothing_set_means_the_defaults() {
        let b = ClientBuilder::from_env_vars(env(&[]));
        assert_eq!(b.configured_address(), DEFAULT_ADDRESS);
        assert!(b.token.is_none());
        assert!(b.ca_cert_file.is_none());
    }

    #[test]
    fn explicit_settings_override_the_environment() {
        let b = ClientBuilder::from_env_vars(env(&[("SECRETD_ADDR", "http://a:1")]))
            .address("http://c:3");
        assert_eq!(b.configured_address(), "http://c:3");
    }

    #[test]
    fn debug_never_shows_the_token() {
        let b = ClientBuilder::new().token("hvs.very-secret");
        let shown = format!("{b:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
        let client = ClientBuilder::new()
            .address("http://127.0.0.1:8200")
            .token("hvs.very-secret")
            .build()
            .unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    #[test]
    fn addresses_are_checked() {
        for bad in [
            "127.0.0.1:8200",
            "localhost:8200",
            "ftp://host",
            "http://",
            "http://host/?x=1",
            "http://user:pw@host",
            "",
        ] {
            let err = parse_address(bad).unwrap_err();
            assert!(matches!(err, Error::Config(_)), "{bad}");
        }
        assert!(parse_address("https://secretd.example:8200/").is_ok());
        assert!(parse_address("http://[::1]:8200").is_ok());
    }

    #[test]
    fn bad_tokens_are_refused_without_showing_them() {
        let err = ClientBuilder::new()
            .address("http://127.0.0.1:1")
            .token("abc\ndef-secret")
            .build()
            .unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        assert!(!err.to_string().contains("def-secret"));
    }
}
