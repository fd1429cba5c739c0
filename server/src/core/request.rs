//! What a request is once the HTTP layer has translated it, and what a
//! handler answers.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use secretd_client::wire;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

/// Vault's logical operations. ACL capabilities map to them one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    /// POST or PUT; create-versus-update is the backend's existence check.
    Write,
    Patch,
    Delete,
    List,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "update",
            Operation::Patch => "patch",
            Operation::Delete => "delete",
            Operation::List => "list",
        }
    }
}

/// A client token as presented. Zeroized on drop, never printed.
pub struct ClientToken(Zeroizing<String>);

impl ClientToken {
    pub fn new(token: String) -> Self {
        ClientToken(Zeroizing::new(token))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ClientToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientToken(<redacted>)")
    }
}

/// One API request in domain terms. Its `Debug` shows the parameter
/// names, never their values (they are secrets).
pub struct Request {
    pub id: String,
    pub operation: Operation,
    /// The API path without `/v1/`, validated; a trailing `/` only on lists.
    pub path: String,
    /// The JSON body, or the query parameters of a GET, DELETE or LIST.
    pub data: Map<String, Value>,
    pub token: Option<ClientToken>,
    pub remote_addr: Option<SocketAddr>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("operation", &self.operation)
            .field("path", &self.path)
            .field("data_keys", &self.data.keys().collect::<Vec<_>>())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("remote_addr", &self.remote_addr)
            .finish()
    }
}

/// How a response is to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseStatus {
    #[default]
    Ok,
    /// 404 with the full envelope (a deleted or destroyed KV version).
    NotFound,
}

/// What a token issued by a login may do, as the auth method's role or
/// config says. Durations in seconds, 0 for "not set".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoginTerms {
    pub ttl: u64,
    pub max_ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub num_uses: u64,
    pub no_default_policy: bool,
}

/// An auth method's verdict on a successful login; core makes the token.
pub struct Login {
    /// From the role or groups; core adds `default` unless refused.
    pub policies: Vec<String>,
    /// The answer's `auth.metadata` and the token's `meta`.
    pub metadata: BTreeMap<String, String>,
    /// The token's display name, such as `ldap-alice`.
    pub display_name: String,
    pub terms: LoginTerms,
    /// Kept on the token, sealed, and handed back when it is renewed.
    pub internal: Option<Zeroizing<Vec<u8>>>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("policies", &self.policies)
            .field("display_name", &self.display_name)
            .field("terms", &self.terms)
            .field("internal", &self.internal.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A backend's dynamic secret, for core to put under a lease: what the
/// backend needs to renew and revoke it, and its role's terms.
pub struct LeaseGrant {
    /// The backend's role, for quotas and counts.
    pub role: String,
    /// The role's TTL and max TTL in seconds (0: the mount's).
    pub ttl: u64,
    pub max_ttl: u64,
    pub renewable: bool,
    /// The role's quota: 0 for none.
    pub max_leases: u64,
    /// Handed back, opened, to the backend's renew and revoke hooks.
    pub internal: Zeroizing<Vec<u8>>,
    /// The lease stored before the secret was made, if the backend did
    /// that (see [`Core::reserve_lease`](super::Core::reserve_lease)).
    pub reserved: Option<super::leases::ReservedLease>,
}

impl std::fmt::Debug for LeaseGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseGrant")
            .field("role", &self.role)
            .field("ttl", &self.ttl)
            .field("max_ttl", &self.max_ttl)
            .finish_non_exhaustive()
    }
}

/// The lease of an answer: the envelope's `lease_id`, `lease_duration`
/// and `renewable`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: String,
    pub duration: u64,
    pub renewable: bool,
}

/// A handler's answer. Empty (no data, auth or warnings) becomes 204.
/// Its `Debug` shows the shape, never the data.
#[derive(Default)]
pub struct Response {
    pub status: ResponseStatus,
    pub data: Option<Map<String, Value>>,
    pub auth: Option<wire::Auth>,
    pub warnings: Vec<String>,
    /// A login's verdict, which core turns into a token and `auth`.
    pub login: Option<Login>,
    /// A dynamic secret in `data`, which core puts under a lease.
    pub secret: Option<LeaseGrant>,
    /// The lease core made for `secret`.
    pub lease: Option<LeaseInfo>,
    /// A body sent as it is instead of Vault's envelope (`sys/metrics`).
    pub raw: Option<RawBody>,
}

/// A response body that is not JSON, with its media type.
pub struct RawBody {
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field(
                "data_keys",
                &self.data.as_ref().map(|d| d.keys().collect::<Vec<_>>()),
            )
            .field("auth", &self.auth)
            .field("warnings", &self.warnings)
            .field("login", &self.login)
            .field("secret", &self.secret)
            .field("lease", &self.lease)
            .field("raw", &self.raw.as_ref().map(|r| r.content_type))
            .finish()
    }
}

impl Response {
    /// Nothing to say: 204.
    pub fn empty() -> Self {
        Response::default()
    }

    /// `data` from a value that serialises to a JSON object.
    pub fn data(value: impl serde::Serialize) -> Self {
        Response {
            data: Some(to_object(value)),
            ..Response::default()
        }
    }

    /// A successful login, for core to turn into a token.
    pub fn login(login: Login) -> Self {
        Response {
            login: Some(login),
            ..Response::default()
        }
    }

    /// A body sent as it is, with its media type.
    pub fn raw(content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            raw: Some(RawBody { content_type, body }),
            ..Response::default()
        }
    }

    pub fn with_warning(mut self, warning: impl Into<String>) -> Self {
        self.warnings.push(warning.into());
        self
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_none()
            && self.auth.is_none()
            && self.login.is_none()
            && self.lease.is_none()
            && self.warnings.is_empty()
            && self.raw.is_none()
    }
}

/// Serialises a wire struct into a JSON object. Our wire types are all
/// structs or maps, so anything else is a bug that yields an empty object.
pub fn to_object(value: impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn debug_output_never_shows_values_or_tokens() {
        let Value::Object(data) = json!({"password": "hunter2"}) else {
            unreachable!()
        };
        let req = Request {
            id: "r1".into(),
            operation: Operation::Write,
            path: "secret/data/x".into(),
            data: data.clone(),
            token: Some(ClientToken::new("hvs.supersecret".into())),
            remote_addr: None,
        };
        let printed = format!("{req:?}");
        assert!(
            printed.contains("password") && !printed.contains("hunter2"),
            "{printed}"
        );
        assert!(!printed.contains("supersecret"), "{printed}");
        let resp = Response {
            data: Some(data),
            ..Response::default()
        };
        let printed = format!("{resp:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
