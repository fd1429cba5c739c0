//! [`Client`] and the request plumbing every API group shares: URL
//! building, headers, status handling and decoding.

use std::sync::Arc;

use reqwest::header::{CONTENT_TYPE, HeaderValue};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use crate::Error;
use crate::builder::ClientBuilder;
use crate::kv2::Kv2;
use crate::logical::Logical;
use crate::sys::Sys;
use crate::token::TokenApi;
use crate::wire::{Envelope, KeyList};

/// An async client for secretd (and Vault/OpenBao, for the same API
/// subset). Cheap to clone: clones share one connection pool.
///
/// ```no_run
/// # async fn demo() -> Result<(), secretd_client::Error> {
/// use secretd_client::Client;
///
/// let client = Client::builder()
///     .address("https://secretd.example:8200")
///     .token("hvs.example")
///     .ca_cert_file("/etc/secretd/ca.pem")
///     .build()?;
/// let secret = client.kv2("secret").get("app/db").await?;
/// # let _ = secret;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.inner.base.as_str())
            .field("token", &self.inner.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// What a request carries besides its path, already encoded.
pub(crate) enum Body {
    /// No body.
    Empty,
    /// A JSON body.
    Json(Vec<u8>),
    /// A JSON merge patch (`application/merge-patch+json`), for PATCH.
    MergePatch(Vec<u8>),
}

impl Body {
    /// `value` as a JSON body.
    pub fn json(value: &impl Serialize) -> Result<Body, Error> {
        encode(value).map(Body::Json)
    }

    /// `value` as a JSON merge-patch body.
    pub fn merge_patch(value: &impl Serialize) -> Result<Body, Error> {
        encode(value).map(Body::MergePatch)
    }
}

fn encode(value: &impl Serialize) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value)
        .map_err(|e| Error::InvalidInput(format!("cannot encode the request body as JSON: {e}")))
}

/// An answer as received: status and body bytes.
pub(crate) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The answer as a success, or the server's error.
    pub fn success(self) -> Result<Answer, Error> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(Error::from_response(self.status, &self.body))
        }
    }

    /// The body decoded as `T`.
    pub fn decode<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|error| Error::Decode {
            path: path.to_owned(),
            error,
        })
    }

    /// The `data` of an enveloped answer; an answer with no data (or a 204)
    /// is a decoding error, since the caller expected some.
    pub fn envelope_data<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.envelope::<T>(path)?
            .data
            .ok_or_else(|| missing(path, "data"))
    }

    /// The whole envelope of an answer; an empty answer (a 204) is a
    /// decoding error, since the caller expected one.
    pub fn envelope<T: DeserializeOwned>(&self, path: &str) -> Result<Envelope<T>, Error> {
        if self.body.is_empty() {
            return Err(missing(path, "data"));
        }
        self.decode(path)
    }
}

/// The decoding error for an answer that lacks the part the caller needs.
pub(crate) fn missing(path: &str, what: &str) -> Error {
    Error::Decode {
        path: path.to_owned(),
        error: serde::de::Error::custom(format!("the answer has no {what}")),
    }
}

/// The `LIST` method, which `reqwest` does not name.
pub(crate) fn list_method() -> Result<Method, Error> {
    Method::from_bytes(b"LIST").map_err(|e| Error::InvalidInput(format!("the LIST method: {e}")))
}

impl Client {
    /// A builder with nothing set; see [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A client configured from the environment (see
    /// [`ClientBuilder::from_env`]).
    pub fn from_env() -> Result<Client, Error> {
        ClientBuilder::from_env().build()
    }

    pub(crate) fn new(http: reqwest::Client, base: Url, token: Option<Zeroizing<String>>) -> Self {
        Client {
            inner: Arc::new(Inner { http, base, token }),
        }
    }

    /// The server address this client talks to.
    pub fn address(&self) -> &str {
        self.inner.base.as_str()
    }

    /// True if a token is set.
    pub fn has_token(&self) -> bool {
        self.inner.token.is_some()
    }

    /// The same client (same address, TLS and connection pool) with another
    /// token, e.g. the root token that `sys().init()` returned.
    pub fn with_token(&self, token: impl Into<String>) -> Client {
        Client::new(
            self.inner.http.clone(),
            self.inner.base.clone(),
            Some(Zeroizing::new(token.into())),
        )
    }

    /// The KV version 2 engine mounted at `mount` (e.g. `"secret"`).
    pub fn kv2(&self, mount: &str) -> Kv2 {
        Kv2::new(self.clone(), mount)
    }

    /// The `sys/` API: seal lifecycle, health, keys, mounts.
    pub fn sys(&self) -> Sys {
        Sys::new(self.clone())
    }

    /// The token API (`auth/token/`).
    pub fn token(&self) -> TokenApi {
        TokenApi::new(self.clone())
    }

    /// Requests to any API path, answered with the whole envelope (as
    /// `vault read|write|list|delete`).
    pub fn logical(&self) -> Logical {
        Logical::new(self.clone())
    }

    /// The full URL of an API path: `{address}/v1/{path}`, each segment
    /// percent-encoded. A trailing `/` on `path` is kept (LIST needs it).
    /// `.` and `..` segments are refused rather than silently resolved.
    pub(crate) fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, Error> {
        api_url(&self.inner.base, path, query)
    }

    /// Sends one request and returns the answer, whatever its status.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Body,
    ) -> Result<Answer, Error> {
        let url = self.url(path, query)?;
        let mut request = self
            .inner
            .http
            .request(method, url)
            .header("X-Vault-Request", "true");
        if let Some(token) = &self.inner.token {
            let mut value = HeaderValue::from_str(token)
                .map_err(|_| Error::Config("the token cannot be sent in an HTTP header".into()))?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        request = match body {
            Body::Empty => request,
            Body::Json(bytes) => request.header(CONTENT_TYPE, "application/json").body(bytes),
            Body::MergePatch(bytes) => request
                .header(CONTENT_TYPE, "application/merge-patch+json")
                .body(bytes),
        };
        let response = request.send().await.map_err(Error::Http)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(Error::Http)?.to_vec();
        Ok(Answer { status, body })
    }

    /// GET a raw (non-enveloped) JSON answer.
    pub(crate) async fn get_raw<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.send(Method::GET, path, &[], Body::Empty)
            .await?
            .success()?
            .decode(path)
    }

    /// GET an enveloped answer's `data`.
    pub(crate) async fn get_data<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, Error> {
        self.send(Method::GET, path, query, Body::Empty)
            .await?
            .success()?
            .envelope_data(path)
    }

    /// A write (`method` with a JSON body) that answers with enveloped data.
    pub(crate) async fn write_data<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Error> {
        self.send(method, path, &[], Body::json(body)?)
            .await?
            .success()?
            .envelope_data(path)
    }

    /// The keys of a `LIST` answer (`path` ends with `/`). A 404 without
    /// messages means no keys, as Vault answers an empty list, and gives an
    /// empty `Vec`.
    pub(crate) async fn list_keys(&self, path: &str) -> Result<Vec<String>, Error> {
        let answer = self.send(list_method()?, path, &[], Body::Empty).await?;
        match answer.success() {
            Ok(answer) => Ok(answer.envelope_data::<KeyList>(path)?.keys),
            Err(err) if err.is_not_found() && err.errors().is_empty() => Ok(Vec::new()),
            Err(err) => Err(err),
        }
    }

    /// A request whose answer carries nothing we need (204, or 200 with
    /// warnings only).
    pub(crate) async fn call(&self, method: Method, path: &str, body: Body) -> Result<(), Error> {
        self.send(method, path, &[], body).await?.success()?;
        Ok(())
    }
}

/// See [`Client::url`].
pub(crate) fn api_url(base: &Url, path: &str, query: &[(&str, String)]) -> Result<Url, Error> {
    let path = path.trim_start_matches('/');
    if path.split('/').any(|s| s == "." || s == "..") {
        return Err(Error::InvalidInput(format!(
            "path {path:?} has a \".\" or \"..\" segment"
        )));
    }
    let mut url = base.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| Error::Config(format!("the address {base} cannot take a path")))?;
        segments.pop_if_empty().push("v1");
        if !path.is_empty() {
            segments.extend(path.split('/'));
        }
    }
    if !query.is_empty() {
        url.query_pairs_mut()
            .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(base: &str, path: &str) -> String {
        let base = crate::builder::parse_address(base).unwrap();
        api_url(&base, path, &[]).unwrap().to_string()
    }

    #[test]
    fn joins_address_and_path() {
        assert_eq!(
            url("http://127.0.0.1:8200", "secret/data/app/db"),
            "http://127.0.0.1:8200/v1/secret/data/app/db"
        );
        assert_eq!(
            url("http://127.0.0.1:8200/", "/sys/health"),
            "http://127.0.0.1:8200/v1/sys/health"
        );
    }

    #[test]
    fn keeps_a_path_prefix_of_the_address() {
        assert_eq!(
            url("https://proxy.example/secretd/", "sys/health"),
            "https://proxy.example/secretd/v1/sys/health"
        );
        assert_eq!(
            url("https://proxy.example/secretd", "sys/health"),
            "https://proxy.example/secretd/v1/sys/health"
        );
    }

    #[test]
    fn keeps_the_trailing_slash_for_list() {
        assert_eq!(
            url("http://h:1", "secret/metadata/app/"),
            "http://h:1/v1/secret/metadata/app/"
        );
    }

    #[test]
    fn percent_encodes_segments() {
        assert_eq!(
            url("http://h:1", "secret/data/my app/a?b#c%d"),
            "http://h:1/v1/secret/data/my%20app/a%3Fb%23c%25d"
        );
    }

    #[test]
    fn refuses_dot_segments() {
        let base = crate::builder::parse_address("http://h:1").unwrap();
        for bad in ["secret/data/../sys/seal", "secret/data/./x", ".."] {
            let err = api_url(&base, bad, &[]).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{bad}");
        }
    }

    #[test]
    fn adds_query_parameters() {
        let base = crate::builder::parse_address("http://h:1").unwrap();
        let u = api_url(&base, "secret/data/x", &[("version", "3".to_owned())]).unwrap();
        assert_eq!(u.as_str(), "http://h:1/v1/secret/data/x?version=3");
    }

    #[test]
    fn envelope_without_data_is_a_decode_error() {
        let answer = Answer {
            status: 204,
            body: Vec::new(),
        };
        let err = answer
            .envelope_data::<serde_json::Value>("sys/x")
            .unwrap_err();
        assert!(matches!(err, Error::Decode { .. }));
        let answer = Answer {
            status: 200,
            body: br#"{"data":null}"#.to_vec(),
        };
        assert!(answer.envelope_data::<serde_json::Value>("sys/x").is_err());
    }
}
