//! Any API path, the way `vault read|write|list|delete` reach it:
//! [`Logical`] and the answer it returns, [`LogicalResponse`].

use reqwest::Method;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Error;
use crate::client::{Answer, Body, Client, list_method};
use crate::token::TokenAuth;
use crate::wire::Envelope;

/// Requests to any API path, answered with the whole envelope. Get one
/// with [`Client::logical`].
///
/// Paths are API paths below `/v1/` (`sys/mounts`,
/// `secret/data/app/db`, `auth/token/create`). Prefer the typed APIs
/// ([`Client::kv2`], [`Client::sys`], [`Client::token`]) where they exist.
#[derive(Debug, Clone)]
pub struct Logical {
    client: Client,
}

/// An enveloped answer as it came, with the token of an `auth` part in a
/// [`TokenAuth`]. `Debug` shows the keys of `data`, never its values.
#[derive(Clone, Default)]
pub struct LogicalResponse {
    pub request_id: String,
    pub lease_id: String,
    /// Seconds.
    pub lease_duration: u64,
    pub renewable: bool,
    pub data: Option<Map<String, Value>>,
    /// What the server warned about (empty when it did not).
    pub warnings: Vec<String>,
    /// The token an answer hands out (a login, `auth/token/create`).
    pub auth: Option<TokenAuth>,
    pub wrap_info: Option<Value>,
}

impl std::fmt::Debug for LogicalResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.data.as_ref().map(|d| d.keys().collect::<Vec<_>>());
        f.debug_struct("LogicalResponse")
            .field("request_id", &self.request_id)
            .field("lease_id", &self.lease_id)
            .field("lease_duration", &self.lease_duration)
            .field("data_keys", &keys)
            .field("warnings", &self.warnings)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl LogicalResponse {
    fn from_envelope(envelope: Envelope<Map<String, Value>>) -> LogicalResponse {
        let warnings = envelope.warnings.unwrap_or_default();
        LogicalResponse {
            request_id: envelope.request_id,
            lease_id: envelope.lease_id,
            lease_duration: envelope.lease_duration,
            renewable: envelope.renewable,
            data: envelope.data,
            auth: envelope
                .auth
                .map(|auth| TokenAuth::from_wire(auth, Some(warnings.clone()))),
            warnings,
            wrap_info: envelope.wrap_info,
        }
    }

    /// The `keys` of a list answer (empty if there are none).
    pub fn keys(&self) -> Vec<String> {
        self.data
            .as_ref()
            .and_then(|d| d.get("keys"))
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Logical {
    pub(crate) fn new(client: Client) -> Self {
        Logical { client }
    }

    /// `GET path`. `None` when the server answers 404 with no messages
    /// (nothing there). A KV v2 version that is deleted is a 404 *with*
    /// data; that comes back as `Some`, with `data.data` null.
    pub async fn read(&self, path: &str) -> Result<Option<LogicalResponse>, Error> {
        self.read_with(path, &[]).await
    }

    /// `GET path?k=v&...`; see [`Logical::read`].
    pub async fn read_with(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<LogicalResponse>, Error> {
        let query: Vec<(&str, String)> = query.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let answer = self
            .client
            .send(Method::GET, path, &query, Body::Empty)
            .await?;
        maybe_absent(path, answer)
    }

    /// `PUT path` with `body` as JSON (an object). `None` when the server
    /// answers 204 (nothing to say).
    pub async fn write(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Option<LogicalResponse>, Error> {
        let answer = self
            .client
            .send(Method::PUT, path, &[], Body::json(body)?)
            .await?
            .success()?;
        response(path, &answer)
    }

    /// `LIST path/`. `None` when there is nothing to list (Vault answers
    /// an empty list with a 404); see [`LogicalResponse::keys`].
    pub async fn list(&self, path: &str) -> Result<Option<LogicalResponse>, Error> {
        let path = if path.ends_with('/') {
            path.to_owned()
        } else {
            format!("{path}/")
        };
        let answer = self
            .client
            .send(list_method()?, &path, &[], Body::Empty)
            .await?;
        maybe_absent(&path, answer)
    }

    /// `DELETE path`. `None` when the server answers 204.
    pub async fn delete(&self, path: &str) -> Result<Option<LogicalResponse>, Error> {
        self.delete_with(path, &[]).await
    }

    /// `DELETE path?k=v&...`; see [`Logical::delete`].
    pub async fn delete_with(
        &self,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<Option<LogicalResponse>, Error> {
        let query: Vec<(&str, String)> = query.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let answer = self
            .client
            .send(Method::DELETE, path, &query, Body::Empty)
            .await?
            .success()?;
        response(path, &answer)
    }
}

/// A success answer: `None` for an empty one (204), else its envelope.
fn response(path: &str, answer: &Answer) -> Result<Option<LogicalResponse>, Error> {
    if answer.body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(Some(LogicalResponse::from_envelope(answer.envelope(path)?)))
}

/// Like [`response`], where a 404 means "nothing there": `None` if it
/// carries no messages, the envelope if it carries data.
fn maybe_absent(path: &str, answer: Answer) -> Result<Option<LogicalResponse>, Error> {
    if answer.status == 404 {
        if let Ok(envelope) = serde_json::from_slice::<Envelope<Map<String, Value>>>(&answer.body)
            && envelope.data.is_some()
        {
            return Ok(Some(LogicalResponse::from_envelope(envelope)));
        }
        let err = Error::from_response(answer.status, &answer.body);
        return if err.errors().is_empty() {
            Ok(None)
        } else {
            Err(err)
        };
    }
    response(path, &answer.success()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_bare_404_is_nothing_and_one_with_messages_an_error() {
        assert!(
            maybe_absent("x", answer(404, r#"{"errors":[]}"#))
                .unwrap()
                .is_none()
        );
        assert!(maybe_absent("x", answer(404, "")).unwrap().is_none());
        let err = maybe_absent("x", answer(404, r#"{"errors":["unsupported path"]}"#)).unwrap_err();
        assert!(err.is_not_found());
    }

    #[test]
    fn a_404_with_data_is_the_data() {
        let deleted = r#"{"data":{"data":null,"metadata":{"version":2}}}"#;
        let r = maybe_absent("secret/data/x", answer(404, deleted))
            .unwrap()
            .unwrap();
        assert_eq!(r.data.unwrap()["metadata"]["version"], 2);
    }

    #[test]
    fn auth_and_warnings_are_read_and_the_token_is_not_shown() {
        let body = r#"{"request_id":"r","data":null,"warnings":["Policy \"x\" does not exist"],
            "auth":{"client_token":"hvs.secret-value","accessor":"acc","policies":["default","x"],
            "lease_duration":3600,"renewable":true}}"#;
        let r = response("auth/token/create", &answer(200, body))
            .unwrap()
            .unwrap();
        let auth = r.auth.as_ref().unwrap();
        assert_eq!(auth.client_token.as_str(), "hvs.secret-value");
        assert_eq!(auth.warnings, r.warnings);
        assert_eq!(r.warnings.len(), 1);
        let shown = format!("{r:?}");
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(shown.contains("acc"));
    }

    #[test]
    fn data_values_are_not_shown_by_debug() {
        let r = response("x", &answer(200, r#"{"data":{"password":"hunter2"}}"#))
            .unwrap()
            .unwrap();
        let shown = format!("{r:?}");
        assert!(
            shown.contains("password") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert!(response("x", &answer(204, "")).unwrap().is_none());
    }

    #[test]
    fn keys_of_a_list() {
        let r = response("x/", &answer(200, r#"{"data":{"keys":["a","b/"]}}"#))
            .unwrap()
            .unwrap();
        assert_eq!(r.keys(), vec!["a", "b/"]);
        assert!(LogicalResponse::default().keys().is_empty());
    }
}
