//! The token API (`auth/token/`): create, look up, renew and revoke
//! tokens, and [`TokenAuth`], the answer that carries a token.

use std::collections::BTreeMap;

use reqwest::Method;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::Error;
use crate::client::{Answer, Body, Client, missing};
use crate::wire::{Auth, Envelope, TokenCreateRequest, TokenLookup};

/// The `auth` part of an answer that hands out or renews a token: the
/// token itself and what it may do.
///
/// The token is kept in a zeroizing buffer and `Debug` never shows it.
#[derive(Clone, Default)]
pub struct TokenAuth {
    /// The token. Empty after a renewal by accessor.
    pub client_token: Zeroizing<String>,
    /// The token's accessor: names it for lookup, renewal and revocation
    /// without being able to use it.
    pub accessor: String,
    /// Every policy of the token.
    pub policies: Vec<String>,
    /// The policies attached to the token itself.
    pub token_policies: Vec<String>,
    /// The metadata given at creation.
    pub metadata: BTreeMap<String, String>,
    /// The TTL in seconds; 0 for a token that never expires.
    pub lease_duration: u64,
    pub renewable: bool,
    pub orphan: bool,
    /// `service` (secretd has no batch tokens).
    pub token_type: String,
    /// How many uses are left; 0 for unlimited.
    pub num_uses: u64,
    pub entity_id: String,
    /// What the server warned about with this answer, e.g. a policy that
    /// does not exist or a TTL that was capped.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenAuth")
            .field("client_token", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .field("orphan", &self.orphan)
            .field("num_uses", &self.num_uses)
            .field("warnings", &self.warnings)
            .finish_non_exhaustive()
    }
}

impl TokenAuth {
    /// Takes the wire `auth` object and the answer's warnings; the token's
    /// buffer moves into the zeroizing one, it is not copied.
    pub(crate) fn from_wire(auth: Auth, warnings: Option<Vec<String>>) -> TokenAuth {
        TokenAuth {
            client_token: Zeroizing::new(auth.client_token),
            accessor: auth.accessor,
            policies: auth.policies,
            token_policies: auth.token_policies,
            metadata: auth.metadata.unwrap_or_default(),
            lease_duration: auth.lease_duration,
            renewable: auth.renewable,
            orphan: auth.orphan,
            token_type: auth.token_type,
            num_uses: auth.num_uses,
            entity_id: auth.entity_id,
            warnings: warnings.unwrap_or_default(),
        }
    }
}

/// The token API. Get one with [`Client::token`].
///
/// Tokens given as arguments are only ever put in request bodies, never
/// in URLs (where proxies log them).
#[derive(Debug, Clone)]
pub struct TokenApi {
    client: Client,
}

/// `{"token": ...}`, `{"accessor": ...}`, with an optional `increment`.
#[derive(Serialize, Default)]
struct Target<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    accessor: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    increment: Option<u64>,
}

impl<'a> Target<'a> {
    fn token(token: &'a str) -> Result<Self, Error> {
        Ok(Target {
            token: Some(non_empty("token", token)?),
            ..Target::default()
        })
    }

    fn accessor(accessor: &'a str) -> Result<Self, Error> {
        Ok(Target {
            accessor: Some(non_empty("accessor", accessor)?),
            ..Target::default()
        })
    }

    fn increment(self, increment: Option<u64>) -> Self {
        Target { increment, ..self }
    }
}

fn non_empty<'a>(what: &str, value: &'a str) -> Result<&'a str, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::InvalidInput(format!("the {what} is empty")));
    }
    Ok(value)
}

impl TokenApi {
    pub(crate) fn new(client: Client) -> Self {
        TokenApi { client }
    }

    /// Creates a child of the client's token (revoked with it).
    pub async fn create(&self, request: &TokenCreateRequest) -> Result<TokenAuth, Error> {
        self.auth_call(Method::POST, "auth/token/create", Body::json(request)?)
            .await
    }

    /// Creates a token with no parent: revoking the client's token leaves
    /// it alone.
    pub async fn create_orphan(&self, request: &TokenCreateRequest) -> Result<TokenAuth, Error> {
        self.auth_call(
            Method::POST,
            "auth/token/create-orphan",
            Body::json(request)?,
        )
        .await
    }

    /// Looks up the client's own token: policies, TTL, expiry. A missing,
    /// unknown or expired token is a 403 ([`Error::is_permission_denied`]).
    ///
    /// Note that the answer's `id` field is the token itself.
    pub async fn lookup_self(&self) -> Result<TokenLookup, Error> {
        self.client.get_data("auth/token/lookup-self", &[]).await
    }

    /// Looks up another token. An unknown token is a 403 (`bad token`).
    pub async fn lookup(&self, token: &str) -> Result<TokenLookup, Error> {
        self.client
            .write_data(Method::POST, "auth/token/lookup", &Target::token(token)?)
            .await
    }

    /// Looks up a token by its accessor (the answer's `id` is empty). An
    /// unknown accessor is a 400.
    pub async fn lookup_accessor(&self, accessor: &str) -> Result<TokenLookup, Error> {
        self.client
            .write_data(
                Method::POST,
                "auth/token/lookup-accessor",
                &Target::accessor(accessor)?,
            )
            .await
    }

    /// Renews the client's own token. `increment` (seconds) asks for a TTL
    /// counted from now; the server caps it, and `None` means the token's
    /// usual TTL.
    pub async fn renew_self(&self, increment: Option<u64>) -> Result<TokenAuth, Error> {
        let body = Target::default().increment(increment);
        self.auth_call(Method::PUT, "auth/token/renew-self", Body::json(&body)?)
            .await
    }

    /// Renews another token; see [`TokenApi::renew_self`].
    pub async fn renew(&self, token: &str, increment: Option<u64>) -> Result<TokenAuth, Error> {
        let body = Target::token(token)?.increment(increment);
        self.auth_call(Method::PUT, "auth/token/renew", Body::json(&body)?)
            .await
    }

    /// Renews a token by its accessor (the answer's `client_token` is
    /// empty); see [`TokenApi::renew_self`].
    pub async fn renew_accessor(
        &self,
        accessor: &str,
        increment: Option<u64>,
    ) -> Result<TokenAuth, Error> {
        let body = Target::accessor(accessor)?.increment(increment);
        self.auth_call(
            Method::POST,
            "auth/token/renew-accessor",
            Body::json(&body)?,
        )
        .await
    }

    /// Revokes a token and every token created under it. Revoking a token
    /// that does not exist succeeds, as in Vault.
    pub async fn revoke(&self, token: &str) -> Result<(), Error> {
        self.client
            .call(
                Method::PUT,
                "auth/token/revoke",
                Body::json(&Target::token(token)?)?,
            )
            .await
    }

    /// Revokes the client's own token and its children.
    pub async fn revoke_self(&self) -> Result<(), Error> {
        self.client
            .call(Method::PUT, "auth/token/revoke-self", Body::Empty)
            .await
    }

    /// Revokes a token (and its children) by its accessor.
    pub async fn revoke_accessor(&self, accessor: &str) -> Result<(), Error> {
        self.client
            .call(
                Method::POST,
                "auth/token/revoke-accessor",
                Body::json(&Target::accessor(accessor)?)?,
            )
            .await
    }

    /// Revokes a token but not its children, which become orphans. Needs
    /// root or `sudo`.
    pub async fn revoke_orphan(&self, token: &str) -> Result<(), Error> {
        self.client
            .call(
                Method::PUT,
                "auth/token/revoke-orphan",
                Body::json(&Target::token(token)?)?,
            )
            .await
    }

    /// The accessors of every token. Needs root or `sudo`.
    pub async fn list_accessors(&self) -> Result<Vec<String>, Error> {
        self.client.list_keys("auth/token/accessors/").await
    }

    /// A call whose answer carries a token in its `auth` part.
    async fn auth_call(&self, method: Method, path: &str, body: Body) -> Result<TokenAuth, Error> {
        let answer = self.client.send(method, path, &[], body).await?.success()?;
        auth_from_answer(path, &answer)
    }
}

/// The [`TokenAuth`] of an enveloped answer.
pub(crate) fn auth_from_answer(path: &str, answer: &Answer) -> Result<TokenAuth, Error> {
    let envelope: Envelope<serde_json::Value> = answer.envelope(path)?;
    let auth = envelope.auth.ok_or_else(|| missing(path, "auth"))?;
    Ok(TokenAuth::from_wire(auth, envelope.warnings))
}
