//! The `sys/` API: seal lifecycle, health, key rotation, mounts. The
//! access-control part (policies, auth methods, audit devices) is in
//! `access.rs`.

use std::collections::BTreeMap;

use reqwest::Method;

use crate::Error;
use crate::client::{Body, Client};
use crate::wire::{
    HaStatus, Health, InitRequest, InitResponse, InitStatus, KeyStatus, Leader, MountInput,
    MountOutput, MountTuneInput, SealStatus, UnsealRequest,
};

/// The `sys/` API. Get one with [`Client::sys`].
///
/// The seal lifecycle calls (`init`, `unseal`, `seal_status`, `health`,
/// `leader`) need no token.
#[derive(Debug, Clone)]
pub struct Sys {
    pub(crate) client: Client,
}

impl Sys {
    pub(crate) fn new(client: Client) -> Self {
        Sys { client }
    }

    /// Whether the server has been initialised (`GET sys/init`).
    pub async fn is_initialized(&self) -> Result<bool, Error> {
        let status: InitStatus = self.client.get_raw("sys/init").await?;
        Ok(status.initialized)
    }

    /// Initialises a new server: creates the root key, splits it into
    /// `shares` unseal keys of which `threshold` unseal, and creates the
    /// root token. The answer is the only time the keys and root token are
    /// shown. Fails with 400 if already initialised.
    pub async fn init(&self, shares: u32, threshold: u32) -> Result<InitResponse, Error> {
        let request = InitRequest {
            secret_shares: shares,
            secret_threshold: threshold,
            ..InitRequest::default()
        };
        self.client
            .send(Method::PUT, "sys/init", &[], Body::json(&request)?)
            .await?
            .success()?
            .decode("sys/init")
    }

    /// Enters one unseal key share (hex or base64). The answer says the
    /// progress; `sealed` is false once the threshold is reached.
    pub async fn unseal(&self, key: &str) -> Result<SealStatus, Error> {
        self.unseal_request(&UnsealRequest {
            key: Some(key.to_owned()),
            ..UnsealRequest::default()
        })
        .await
    }

    /// Forgets the shares entered so far.
    pub async fn unseal_reset(&self) -> Result<SealStatus, Error> {
        self.unseal_request(&UnsealRequest {
            reset: true,
            ..UnsealRequest::default()
        })
        .await
    }

    async fn unseal_request(&self, request: &UnsealRequest) -> Result<SealStatus, Error> {
        self.client
            .send(Method::PUT, "sys/unseal", &[], Body::json(request)?)
            .await?
            .success()?
            .decode("sys/unseal")
    }

    /// Seals the server: it forgets its keys until unsealed again. Needs a
    /// root (or sudo) token.
    pub async fn seal(&self) -> Result<(), Error> {
        self.client.call(Method::PUT, "sys/seal", Body::Empty).await
    }

    /// Whether the server is initialised and sealed, and the unseal
    /// progress.
    pub async fn seal_status(&self) -> Result<SealStatus, Error> {
        self.client.get_raw("sys/seal-status").await
    }

    /// The server's health. The status code also carries the state (200
    /// active, 429 standby, 501 not initialised, 503 sealed); this returns
    /// the parsed body for every one of them. Only an answer without a
    /// health body is an error.
    pub async fn health(&self) -> Result<Health, Error> {
        let answer = self
            .client
            .send(Method::GET, "sys/health", &[], Body::Empty)
            .await?;
        match answer.decode::<Health>("sys/health") {
            Ok(health) => Ok(health),
            Err(err) if answer.is_success() => Err(err),
            Err(_) => Err(Error::from_response(answer.status, &answer.body)),
        }
    }

    /// High-availability state (`ha_enabled: false` on a single node).
    pub async fn leader(&self) -> Result<Leader, Error> {
        self.client.get_raw("sys/leader").await
    }

    /// Adds a new key-encryption key term; new writes use it and data keys
    /// are rewrapped to it in the background. See [`Sys::key_status`].
    pub async fn rotate(&self) -> Result<(), Error> {
        self.client
            .call(Method::POST, "sys/rotate", Body::Empty)
            .await
    }

    /// Every node serving the same database, from its heartbeats.
    pub async fn ha_status(&self) -> Result<HaStatus, Error> {
        self.client.get_data("sys/ha-status", &[]).await
    }

    /// The active key term, when it was installed, and rewrap progress.
    pub async fn key_status(&self) -> Result<KeyStatus, Error> {
        self.client.get_data("sys/key-status", &[]).await
    }

    /// The secrets engines, keyed by path with a trailing slash
    /// (`"secret/"`).
    pub async fn mounts(&self) -> Result<BTreeMap<String, MountOutput>, Error> {
        self.client.get_data("sys/mounts", &[]).await
    }

    /// Mounts a secrets engine at `path`. For KV version 2 use
    /// `mount_type: "kv"` with option `version = "2"` (or `"kv-v2"`).
    pub async fn enable_secrets_engine(&self, path: &str, input: &MountInput) -> Result<(), Error> {
        let api_path = format!("sys/mounts/{}", mount_path(path)?);
        self.client
            .call(Method::POST, &api_path, Body::json(input)?)
            .await
    }

    /// Unmounts the secrets engine at `path`, deleting all its data.
    pub async fn disable_secrets_engine(&self, path: &str) -> Result<(), Error> {
        let api_path = format!("sys/mounts/{}", mount_path(path)?);
        self.client
            .call(Method::DELETE, &api_path, Body::Empty)
            .await
    }

    /// Changes the lease TTLs or the description of the secrets engine at
    /// `path`; absent fields are left as they are. The new values show in
    /// [`Sys::mounts`] (`config.default_lease_ttl`, `config.max_lease_ttl`).
    pub async fn tune_secrets_engine(
        &self,
        path: &str,
        tune: &MountTuneInput,
    ) -> Result<(), Error> {
        let api_path = format!("sys/mounts/{}/tune", mount_path(path)?);
        self.client
            .call(Method::POST, &api_path, Body::json(tune)?)
            .await
    }
}

/// A mount path without its surrounding slashes; an empty one is refused.
pub(crate) fn mount_path(path: &str) -> Result<&str, Error> {
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Err(Error::InvalidInput("the mount path is empty".into()));
    }
    Ok(path)
}
