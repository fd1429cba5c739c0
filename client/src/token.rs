//! The token API (`auth/token/`).

use crate::Error;
use crate::client::Client;
use crate::wire::TokenLookup;

/// The token API. Get one with [`Client::token`].
#[derive(Debug, Clone)]
pub struct TokenApi {
    client: Client,
}

impl TokenApi {
    pub(crate) fn new(client: Client) -> Self {
        TokenApi { client }
    }

    /// Looks up the client's own token: policies, TTL, expiry. A missing,
    /// unknown or expired token is a 403 ([`Error::is_permission_denied`]).
    ///
    /// Note that the answer's `id` field is the token itself.
    pub async fn lookup_self(&self) -> Result<TokenLookup, Error> {
        self.client.get_data("auth/token/lookup-self", &[]).await
    }
}
