//! Audit entries in Vault's JSON format, with secrets replaced by their
//! HMAC under the device's key.
//!
//! Hashed: the client token and its accessor (wherever they appear), and
//! every string in the request's and the response's `data`, at any depth.
//! Numbers, booleans and map keys stay in clear, as in Vault. Unlike
//! Vault, strings that look like timestamps are hashed too: a secret value
//! that happens to be a date is still a secret.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use secretd_client::wire;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::barrier::{Key, hmac_sha256};
use crate::core::{Error, Response};
use crate::storage::{MountRecord, TokenRecord};
use crate::time::{now_nanos, rfc3339};

/// The most strings one entry's `data` has hashed.
const MAX_HASHED_STRINGS: usize = 4096;

/// Counts the strings in `value`, stopping past the limit.
fn count_strings(value: &Value, count: &mut usize) -> usize {
    match value {
        Value::String(_) => *count += 1,
        Value::Array(items) => {
            for item in items {
                if count_strings(item, count) > MAX_HASHED_STRINGS {
                    break;
                }
            }
        }
        Value::Object(map) => {
            for item in map.values() {
                if count_strings(item, count) > MAX_HASHED_STRINGS {
                    break;
                }
            }
        }
        _ => {}
    }
    *count
}

/// What is known of a request when it is audited. Borrowed, so that
/// building one costs nothing when no device is enabled.
pub struct Event<'a> {
    pub id: &'a str,
    /// Vault's operation name: `create`, `update`, `read`, `list`, ...
    pub operation: &'static str,
    pub path: &'a str,
    pub data: Option<&'a Map<String, Value>>,
    /// The token as presented, if any.
    pub client_token: Option<&'a str>,
    /// The token's record, once it checked out.
    pub token: Option<&'a TokenRecord>,
    pub mount: Option<&'a MountRecord>,
    pub remote_addr: Option<SocketAddr>,
}

/// How one device writes its entries.
pub struct Formatter<'k> {
    pub key: &'k Key,
    /// Values in clear (the `log_raw` option): for debugging only.
    pub log_raw: bool,
    /// Whether accessors are hashed (the `hmac_accessor` option).
    pub hmac_accessor: bool,
}

impl Formatter<'_> {
    /// `hmac-sha256:<hex>` of `value` under the device's key.
    pub fn hash(&self, value: &str) -> String {
        format!(
            "hmac-sha256:{}",
            hex::encode(hmac_sha256(self.key, value.as_bytes()))
        )
    }

    fn secret(&self, value: &str) -> String {
        if self.log_raw {
            value.to_owned()
        } else {
            self.hash(value)
        }
    }

    fn accessor(&self, value: &str) -> String {
        if self.hmac_accessor {
            self.secret(value)
        } else {
            value.to_owned()
        }
    }

    /// Every string in `value`, at any depth, hashed.
    fn data(&self, value: &Value) -> Value {
        match value {
            Value::String(s) => Value::String(self.secret(s)),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.data(v)).collect()),
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), self.data(v))).collect())
            }
            other => other.clone(),
        }
    }

    /// `data` with its strings hashed; a body with more strings than an
    /// entry hashes is summarised instead, so that no request can make the
    /// log many times larger than itself (each hash is 76 bytes).
    fn data_map(&self, map: &Map<String, Value>) -> Option<Value> {
        if map.is_empty() {
            return None;
        }
        let value = Value::Object(map.clone());
        let mut strings = 0;
        if count_strings(&value, &mut strings) > MAX_HASHED_STRINGS {
            return Some(serde_json::json!({
                "secretd_elided": format!(
                    "more than {MAX_HASHED_STRINGS} strings; not hashed into the audit log"
                )
            }));
        }
        Some(self.data(&value))
    }

    /// The request entry, written before the request is carried out.
    pub fn request(&self, event: &Event<'_>, error: Option<&Error>) -> Vec<u8> {
        self.serialize(&Entry {
            time: rfc3339(now_nanos()),
            kind: "request",
            auth: self.auth(event.token, event.client_token),
            request: self.request_part(event),
            response: None,
            error: error.map(ToString::to_string),
        })
    }

    /// The response entry, written before the answer leaves.
    pub fn response(&self, event: &Event<'_>, outcome: Result<&Response, &Error>) -> Vec<u8> {
        let (response, error) = match outcome {
            Ok(response) => (Some(self.response_part(event.mount, response)), None),
            Err(err) => (None, Some(err.to_string())),
        };
        self.serialize(&Entry {
            time: rfc3339(now_nanos()),
            kind: "response",
            auth: self.auth(event.token, event.client_token),
            request: self.request_part(event),
            response,
            error,
        })
    }

    fn serialize(&self, entry: &Entry) -> Vec<u8> {
        // Entries are maps of strings and numbers: serialising cannot fail.
        serde_json::to_vec(entry).unwrap_or_else(|_| b"{}".to_vec())
    }

    fn auth(&self, token: Option<&TokenRecord>, presented: Option<&str>) -> AuthPart {
        let Some(token) = token else {
            return AuthPart::default();
        };
        let metadata: Option<BTreeMap<String, String>> = serde_json::from_str(&token.meta).ok();
        AuthPart {
            client_token: presented.map(|t| self.secret(t)),
            accessor: Some(self.accessor(&token.accessor)),
            display_name: Some(token.display_name.clone()),
            policies: Some(token.policies.clone()),
            token_policies: Some(token.policies.clone()),
            metadata: metadata.filter(|m| !m.is_empty()),
            token_type: Some(token.token_type.clone()),
            token_ttl: (token.creation_ttl > 0).then_some(token.creation_ttl),
            token_issue_time: Some(rfc3339(token.created_at - token.created_at % 1_000_000_000)),
        }
    }

    fn request_part(&self, event: &Event<'_>) -> RequestPart {
        let mount = MountPart::of(event.mount);
        RequestPart {
            id: event.id.to_owned(),
            operation: event.operation,
            mount_point: mount.mount_point,
            mount_type: mount.mount_type,
            mount_accessor: mount.mount_accessor,
            client_token: event.client_token.map(|t| self.secret(t)),
            client_token_accessor: event.token.map(|t| self.accessor(&t.accessor)),
            namespace: Namespace { id: "root" },
            path: event.path.to_owned(),
            data: event.data.and_then(|d| self.data_map(d)),
            remote_address: event.remote_addr.map(|a| a.ip().to_string()),
            remote_port: event.remote_addr.map(|a| a.port()),
        }
    }

    fn response_part(&self, mount: Option<&MountRecord>, response: &Response) -> ResponsePart {
        ResponsePart {
            mount: MountPart::of(mount),
            auth: response.auth.as_ref().map(|auth| self.response_auth(auth)),
            data: response.data.as_ref().and_then(|d| self.data_map(d)),
            warnings: (!response.warnings.is_empty()).then(|| response.warnings.clone()),
        }
    }

    fn response_auth(&self, auth: &wire::Auth) -> ResponseAuthPart {
        ResponseAuthPart {
            client_token: self.secret(&auth.client_token),
            accessor: self.accessor(&auth.accessor),
            policies: auth.policies.clone(),
            token_policies: auth.token_policies.clone(),
            metadata: auth.metadata.clone().filter(|m| !m.is_empty()),
            token_type: auth.token_type.clone(),
            token_ttl: auth.lease_duration,
            orphan: auth.orphan,
            num_uses: auth.num_uses,
        }
    }
}

#[derive(Serialize)]
struct Entry {
    time: String,
    #[serde(rename = "type")]
    kind: &'static str,
    auth: AuthPart,
    request: RequestPart,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<ResponsePart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize, Default)]
struct AuthPart {
    #[serde(skip_serializing_if = "Option::is_none")]
    client_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accessor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    display_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    policies: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_policies: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_issue_time: Option<String>,
}

#[derive(Serialize)]
struct Namespace {
    id: &'static str,
}

#[derive(Serialize)]
struct RequestPart {
    id: String,
    operation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mount_point: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mount_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mount_accessor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_token_accessor: Option<String>,
    namespace: Namespace,
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_port: Option<u16>,
}

#[derive(Serialize, Default)]
struct MountPart {
    #[serde(skip_serializing_if = "Option::is_none")]
    mount_point: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mount_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mount_accessor: Option<String>,
}

impl MountPart {
    fn of(mount: Option<&MountRecord>) -> MountPart {
        mount.map_or_else(MountPart::default, |m| MountPart {
            mount_point: Some(m.path.clone()),
            mount_type: Some(m.mount_type.clone()),
            mount_accessor: Some(m.accessor.clone()),
        })
    }
}

#[derive(Serialize)]
struct ResponsePart {
    #[serde(flatten)]
    mount: MountPart,
    #[serde(skip_serializing_if = "Option::is_none")]
    auth: Option<ResponseAuthPart>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<String>>,
}

#[derive(Serialize)]
struct ResponseAuthPart {
    client_token: String,
    accessor: String,
    policies: Vec<String>,
    token_policies: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<BTreeMap<String, String>>,
    token_type: String,
    token_ttl: u64,
    orphan: bool,
    num_uses: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key() -> Key {
        Key::from_slice(&[7u8; 32]).unwrap()
    }

    fn token() -> TokenRecord {
        let mut t = crate::auth::token::root_token_record(vec![1], "acc-1".into(), 1);
        t.meta = r#"{"team":"blue"}"#.into();
        t
    }

    fn parse(line: &[u8]) -> Value {
        serde_json::from_slice(line).unwrap()
    }

    #[test]
    fn every_string_in_data_and_every_token_is_hashed() {
        let key = key();
        let f = Formatter {
            key: &key,
            log_raw: false,
            hmac_accessor: true,
        };
        let Value::Object(data) = json!({
            "data": {"password": "hunter2", "list": ["a", {"deep": "b"}], "n": 5, "ok": true,
                     "when": "2024-01-01T00:00:00Z"}
        }) else {
            unreachable!()
        };
        let token = token();
        let event = Event {
            id: "req-1",
            operation: "update",
            path: "secret/data/x",
            data: Some(&data),
            client_token: Some("s.plaintexttoken"),
            token: Some(&token),
            mount: None,
            remote_addr: "127.0.0.1:4000".parse().ok(),
        };
        let line = f.request(&event, None);
        let text = String::from_utf8(line.clone()).unwrap();
        for secret in [
            "hunter2",
            "s.plaintexttoken",
            "acc-1",
            "\"a\"",
            "\"b\"",
            "2024-01-01",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        let entry = parse(&line);
        assert_eq!(entry["type"], "request");
        assert_eq!(entry["request"]["path"], "secret/data/x");
        assert_eq!(entry["request"]["operation"], "update");
        assert_eq!(entry["request"]["remote_address"], "127.0.0.1");
        assert_eq!(entry["request"]["remote_port"], 4000);
        assert_eq!(entry["request"]["namespace"]["id"], "root");
        assert_eq!(entry["request"]["data"]["data"]["n"], 5);
        assert_eq!(entry["request"]["data"]["data"]["ok"], true);
        assert_eq!(
            entry["request"]["data"]["data"]["password"],
            f.hash("hunter2")
        );
        assert_eq!(entry["auth"]["client_token"], f.hash("s.plaintexttoken"));
        assert_eq!(entry["request"]["client_token"], f.hash("s.plaintexttoken"));
        assert_eq!(entry["auth"]["accessor"], f.hash("acc-1"));
        assert_eq!(entry["auth"]["policies"], json!(["root"]));
        assert_eq!(entry["auth"]["metadata"]["team"], "blue");
        assert!(entry.get("error").is_none());
        assert!(
            f.hash("x").starts_with("hmac-sha256:") && f.hash("x").len() == 12 + 64,
            "Vault's form"
        );
    }

    #[test]
    fn responses_hash_issued_tokens_and_carry_errors() {
        let key = key();
        let f = Formatter {
            key: &key,
            log_raw: false,
            hmac_accessor: false,
        };
        let event = Event {
            id: "req-2",
            operation: "update",
            path: "auth/token/create",
            data: None,
            client_token: None,
            token: None,
            mount: None,
            remote_addr: None,
        };
        let response = Response {
            auth: Some(wire::Auth {
                client_token: "s.newtoken".into(),
                accessor: "new-accessor".into(),
                policies: vec!["default".into()],
                ..Default::default()
            }),
            data: Some(Map::from_iter([("id".to_owned(), json!("s.newtoken"))])),
            ..Response::default()
        };
        let line = f.response(&event, Ok(&response));
        let text = String::from_utf8(line.clone()).unwrap();
        assert!(!text.contains("s.newtoken"), "{text}");
        let entry = parse(&line);
        assert_eq!(
            entry["response"]["auth"]["client_token"],
            f.hash("s.newtoken")
        );
        assert_eq!(
            entry["response"]["auth"]["accessor"], "new-accessor",
            "hmac_accessor=false leaves accessors in clear"
        );
        assert_eq!(entry["auth"], json!({}), "no token checked out");

        let denied = parse(&f.response(&event, Err(&Error::PermissionDenied)));
        assert_eq!(denied["error"], "permission denied");
        assert!(denied.get("response").is_none());
    }

    #[test]
    fn a_body_of_many_strings_is_summarised_not_amplified() {
        let key = key();
        let f = Formatter {
            key: &key,
            log_raw: false,
            hmac_accessor: true,
        };
        let many: Vec<Value> = (0..MAX_HASHED_STRINGS + 1).map(|_| json!("a")).collect();
        let Value::Object(data) = json!({"list": many}) else {
            unreachable!()
        };
        let event = Event {
            id: "r",
            operation: "update",
            path: "x",
            data: Some(&data),
            client_token: None,
            token: None,
            mount: None,
            remote_addr: None,
        };
        let line = f.request(&event, None);
        assert!(line.len() < 1024, "{} bytes", line.len());
        let entry = parse(&line);
        assert!(entry["request"]["data"]["secretd_elided"].is_string());
        // Up to the limit, everything is hashed.
        let Value::Object(data) = json!({"list": vec![json!("a"); MAX_HASHED_STRINGS]}) else {
            unreachable!()
        };
        let event = Event {
            data: Some(&data),
            ..event
        };
        let entry = parse(&f.request(&event, None));
        assert_eq!(entry["request"]["data"]["list"][0], f.hash("a"));
    }

    #[test]
    fn log_raw_keeps_values_in_clear() {
        let key = key();
        let f = Formatter {
            key: &key,
            log_raw: true,
            hmac_accessor: true,
        };
        let Value::Object(data) = json!({"p": "visible"}) else {
            unreachable!()
        };
        let event = Event {
            id: "r",
            operation: "update",
            path: "x",
            data: Some(&data),
            client_token: Some("tok"),
            token: None,
            mount: None,
            remote_addr: None,
        };
        let entry = parse(&f.request(&event, None));
        assert_eq!(entry["request"]["data"]["p"], "visible");
        assert_eq!(entry["request"]["client_token"], "tok");
    }
}
