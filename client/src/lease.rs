//! The lease API (`sys/leases/`): look up, renew and revoke the leases of
//! dynamic secrets.

use reqwest::Method;
use serde::Serialize;
use serde_json::Value;

use crate::Error;
use crate::client::{Body, Client};
use crate::wire::{Envelope, LeaseLookup};

/// The lease API. Get one with [`Client::lease`].
#[derive(Debug, Clone)]
pub struct LeaseApi {
    client: Client,
}

/// A lease after a renewal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseRenewal {
    pub lease_id: String,
    /// The new TTL in seconds, counted from now.
    pub lease_duration: u64,
    pub renewable: bool,
    /// Vault's warnings, such as a TTL capped by the lease's maximum.
    pub warnings: Vec<String>,
}

#[derive(Serialize)]
struct LeaseBody<'a> {
    lease_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    increment: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sync: Option<bool>,
}

impl Client {
    /// The lease API (`sys/leases/`).
    pub fn lease(&self) -> LeaseApi {
        LeaseApi {
            client: self.clone(),
        }
    }
}

impl LeaseApi {
    /// A lease's issue and expiry times and TTL. An unknown lease is a 400
    /// (`invalid lease`).
    pub async fn lookup(&self, lease_id: &str) -> Result<LeaseLookup, Error> {
        let body = LeaseBody {
            lease_id,
            increment: None,
            sync: None,
        };
        self.client
            .write_data(Method::PUT, "sys/leases/lookup", &body)
            .await
    }

    /// Renews a lease: `increment` (seconds) asks for a TTL counted from
    /// now, which the server caps; `None` means the role's TTL.
    pub async fn renew(
        &self,
        lease_id: &str,
        increment: Option<u64>,
    ) -> Result<LeaseRenewal, Error> {
        let body = LeaseBody {
            lease_id,
            increment,
            sync: None,
        };
        let path = "sys/leases/renew";
        let envelope: Envelope<Value> = self
            .client
            .send(Method::PUT, path, &[], Body::json(&body)?)
            .await?
            .success()?
            .envelope(path)?;
        Ok(LeaseRenewal {
            lease_id: envelope.lease_id,
            lease_duration: envelope.lease_duration,
            renewable: envelope.renewable,
            warnings: envelope.warnings.unwrap_or_default(),
        })
    }

    /// Revokes a lease: the secret is taken back before this returns. A
    /// lease that does not exist is not an error.
    pub async fn revoke(&self, lease_id: &str) -> Result<(), Error> {
        let body = LeaseBody {
            lease_id,
            increment: None,
            sync: Some(true),
        };
        self.client
            .call(Method::PUT, "sys/leases/revoke", Body::json(&body)?)
            .await
    }

    /// Revokes every lease whose id starts with `prefix` (needs `sudo`).
    pub async fn revoke_prefix(&self, prefix: &str) -> Result<(), Error> {
        self.client
            .call(
                Method::PUT,
                &format!("sys/leases/revoke-prefix/{}", prefix.trim_matches('/')),
                Body::Empty,
            )
            .await
    }

    /// Forgets every lease under `prefix` **without** revoking its secret
    /// (needs `sudo`): for irrevocable leases cleaned up by hand.
    pub async fn revoke_force(&self, prefix: &str) -> Result<(), Error> {
        self.client
            .call(
                Method::PUT,
                &format!("sys/leases/revoke-force/{}", prefix.trim_matches('/')),
                Body::Empty,
            )
            .await
    }

    /// The next segments of the lease ids under `prefix` (needs `sudo`);
    /// empty when there are none.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let prefix = prefix.trim_matches('/');
        self.client
            .list_keys(&format!("sys/leases/lookup/{prefix}/"))
            .await
    }
}
