//! Initialising, unsealing and sealing; the state `sys/seal-status` and
//! `sys/health` report.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use secretd_client::wire::{InitRequest, InitResponse, SealStatus, UnsealRequest};
use zeroize::Zeroizing;

use super::{Core, Error, mounts};
use crate::auth::token;
use crate::barrier::{InitSeal, Key, SealType};
use crate::storage::{InitRecord, StorageError};
use crate::time::now_nanos;

/// How this server's barrier is unsealed, from its configuration.
pub enum SealSettings {
    Shamir,
    /// The unseal key itself, read from a file or environment variable.
    Static(Key),
}

impl SealSettings {
    pub(super) fn seal_type(&self) -> SealType {
        match self {
            SealSettings::Shamir => SealType::Shamir,
            SealSettings::Static(_) => SealType::Static,
        }
    }
}

/// What `sys/health` reports; the HTTP layer picks the status code.
#[derive(Debug, Clone)]
pub struct HealthState {
    pub initialized: bool,
    pub sealed: bool,
    pub standby: bool,
    pub cluster_name: Option<String>,
    pub cluster_id: Option<String>,
}

/// What dev mode prints at start.
pub struct DevInit {
    pub root_token: Zeroizing<String>,
    pub unseal_key: Zeroizing<String>,
}

impl Core {
    pub async fn is_initialized(&self) -> Result<bool, Error> {
        Ok(self.barrier.config().await?.is_some())
    }

    /// `PUT sys/init`: creates the keys, the root token and the built-in
    /// mounts in one transaction. A Shamir seal stays sealed afterwards.
    pub async fn initialize(&self, req: &InitRequest) -> Result<InitResponse, Error> {
        if !req.pgp_keys.is_empty() || !req.root_token_pgp_key.is_empty() {
            return Err(Error::invalid(
                "PGP-encrypted keys are not supported by secretd",
            ));
        }
        let static_key = self.static_key();
        let seal = match (self.seal_type, &static_key) {
            (SealType::Shamir, _) => {
                if req.recovery_shares != 0 || req.recovery_threshold != 0 {
                    return Err(Error::invalid(
                        "recovery_shares and recovery_threshold do not apply to a shamir seal",
                    ));
                }
                InitSeal::Shamir {
                    shares: req.secret_shares,
                    threshold: req.secret_threshold,
                }
            }
            (SealType::Static, Some(key)) => InitSeal::Static(key),
            (SealType::Static, None) => return Err(Error::invalid("Vault is already initialized")),
        };
        let root_token = token::generate_token()?;
        let shares = self.initialize_with(seal, &root_token, Vec::new()).await?;
        self.forget_static_key();
        Ok(InitResponse {
            keys: shares.iter().map(hex::encode).collect(),
            keys_base64: shares.iter().map(|s| BASE64.encode(s)).collect(),
            root_token,
        })
    }

    /// Dev mode: one unseal key, unsealed at once, KV v2 at `secret/`.
    pub async fn initialize_dev(&self, root_token_id: Option<&str>) -> Result<DevInit, Error> {
        let root_token = match root_token_id {
            Some(id)
                if id.is_empty() || id.chars().any(|c| c.is_whitespace() || c.is_control()) =>
            {
                return Err(Error::invalid(
                    "the dev root token id must be non-empty and without spaces",
                ));
            }
            Some(id) => id.to_owned(),
            None => token::generate_token()?,
        };
        let secret = mounts::kv_v2_record("secret/", "key/value secret storage")?;
        let seal = InitSeal::Shamir {
            shares: 1,
            threshold: 1,
        };
        let mut shares = self
            .initialize_with(seal, &root_token, vec![secret])
            .await?;
        let share = shares
            .pop()
            .ok_or_else(|| Error::internal(anyhow::anyhow!("no unseal key")))?;
        let unseal_key = Zeroizing::new(BASE64.encode(&share));
        self.barrier.submit_unseal_share(share).await?;
        self.after_unseal().await?;
        Ok(DevInit {
            root_token: Zeroizing::new(root_token),
            unseal_key,
        })
    }

    async fn initialize_with(
        &self,
        seal: InitSeal<'_>,
        root_token: &str,
        mut extra_mounts: Vec<crate::storage::MountRecord>,
    ) -> Result<Vec<Zeroizing<Vec<u8>>>, Error> {
        if self.is_initialized().await? {
            return Err(Error::invalid("Vault is already initialized"));
        }
        let mut prepared = self.barrier.prepare_init(seal)?;
        let now = now_nanos();
        let root = token::root_token_record(
            prepared.token_hash(root_token),
            token::generate_accessor()?,
            now,
        );
        let mut mounts = mounts::builtin_records()?;
        mounts.append(&mut extra_mounts);
        let record = InitRecord {
            barrier: prepared.barrier.clone(),
            first_term: prepared.first_term.clone(),
            root_token: root,
            mounts,
        };
        match self.storage.initialize(&record).await {
            Ok(()) => {}
            Err(StorageError::Conflict(_)) => {
                return Err(Error::invalid("Vault is already initialized"));
            }
            Err(err) => return Err(err.into()),
        }
        let shares = std::mem::take(&mut prepared.shares);
        self.barrier.finish_init(prepared);
        if !self.barrier.is_sealed() {
            self.after_unseal().await?;
        }
        tracing::info!("secretd initialised");
        Ok(shares)
    }

    /// `PUT sys/unseal`: one share at a time, or `reset`.
    pub async fn unseal(&self, req: &UnsealRequest) -> Result<SealStatus, Error> {
        if req.reset {
            if !self.barrier.is_sealed() {
                return Err(Error::invalid("vault is unsealed"));
            }
            self.barrier.reset_unseal();
            return self.seal_status().await;
        }
        let Some(key) = req.key.as_deref() else {
            return Err(Error::invalid(
                "'key' must be specified in request body as JSON, or 'reset' set to true",
            ));
        };
        if !self.is_initialized().await? {
            return Err(Error::invalid("Vault is not initialized"));
        }
        let share = decode_share(key)?;
        self.barrier.submit_unseal_share(share).await?;
        if !self.barrier.is_sealed() {
            self.after_unseal().await?;
        }
        self.seal_status().await
    }

    /// Seals this node: every key leaves memory.
    pub async fn seal(&self) {
        self.barrier.seal().await;
        self.mounts.store(Default::default());
        self.audit.clear();
        tracing::info!("secretd sealed");
    }

    /// Loads what an unsealed node serves with. The audit devices come
    /// before the mount table: until the table is published no request
    /// reaches a backend, so none is carried out unaudited. If loading
    /// fails the node seals again rather than serve half-loaded.
    async fn after_unseal(&self) -> Result<(), Error> {
        let loaded = async {
            self.reload_audit().await?;
            self.reload_mounts().await?;
            self.ensure_default_policy().await?;
            self.ensure_key_rotation_check().await
        };
        if let Err(err) = loaded.await {
            tracing::error!(error = %err, "could not load the mount table, audit devices or policies; sealing again");
            self.seal().await;
            return Err(err);
        }
        tracing::info!("secretd unsealed");
        Ok(())
    }

    pub async fn seal_status(&self) -> Result<SealStatus, Error> {
        let config = self.barrier.config().await?;
        let sealed = self.barrier.is_sealed();
        let progress = self.barrier.unseal_progress();
        let (seal_type, t, n) = match &config {
            Some(c) => (c.seal_type, c.secret_threshold, c.secret_shares),
            None => (self.seal_type, 0, 0),
        };
        let (t, n) = if seal_type == SealType::Static {
            (0, 0)
        } else {
            (t, n)
        };
        let initialized = config.is_some();
        let unsealed_config = config.filter(|_| !sealed);
        Ok(SealStatus {
            seal_type: seal_type.as_str().to_owned(),
            initialized,
            sealed,
            t,
            n,
            progress: progress.progress,
            nonce: progress.nonce,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            build_date: String::new(),
            migration: false,
            recovery_seal: false,
            storage_type: self.storage.kind().to_owned(),
            cluster_name: unsealed_config.as_ref().map(|c| c.cluster_name.clone()),
            cluster_id: unsealed_config.as_ref().map(|c| c.cluster_id.clone()),
        })
    }

    pub async fn health(&self) -> Result<HealthState, Error> {
        let config = self.barrier.config().await?;
        let sealed = self.barrier.is_sealed();
        let shown = config.as_ref().filter(|_| !sealed);
        Ok(HealthState {
            initialized: config.is_some(),
            sealed,
            // Vault and OpenBao report a sealed node as a standby.
            standby: sealed,
            cluster_name: shown.map(|c| c.cluster_name.clone()),
            cluster_id: shown.map(|c| c.cluster_id.clone()),
        })
    }

    /// Refuses to start when storage was initialised with another seal type.
    pub(super) async fn check_seal_config(&self) -> anyhow::Result<()> {
        if let Some(config) = self.barrier.config().await? {
            let configured = self.seal_type;
            if config.seal_type != configured {
                anyhow::bail!(
                    "storage was initialised with a {} seal but the configuration says {}; \
                     set [seal] type = \"{}\"",
                    config.seal_type.as_str(),
                    configured.as_str(),
                    config.seal_type.as_str()
                );
            }
        }
        Ok(())
    }

    /// A copy of the static seal key, while it is still needed.
    fn static_key(&self) -> Option<Key> {
        self.static_key.lock().ok().and_then(|k| k.clone())
    }

    /// The static seal key is needed once (to init, or to unseal at start);
    /// after that it leaves memory. To unseal again, restart.
    fn forget_static_key(&self) {
        if let Ok(mut key) = self.static_key.lock() {
            *key = None;
        }
    }

    /// With a static seal, a node started before the cluster was
    /// initialised (by another node, on shared storage) unseals itself as
    /// soon as it is. Quiet while there is nothing to do.
    pub(super) async fn unseal_once_initialized(&self) {
        if self.static_key().is_none() || !self.is_initialized().await.unwrap_or(false) {
            return;
        }
        match self.auto_unseal().await {
            Ok(()) => tracing::info!("initialised by another node: unsealed with the static seal"),
            Err(err) => tracing::error!(error = %err, "cannot unseal with the static seal"),
        }
    }

    /// Unseals at start when the key is configured (static seal).
    pub(super) async fn auto_unseal(&self) -> anyhow::Result<()> {
        let Some(key) = self.static_key() else {
            return Ok(());
        };
        if !self.is_initialized().await? {
            tracing::info!("not initialised yet: initialise with `secretctl operator init`");
            return Ok(());
        }
        self.forget_static_key();
        self.barrier
            .unseal_with_key(&key)
            .await
            .map_err(|e| match e {
                crate::barrier::BarrierError::Decrypt => anyhow::anyhow!(
                    "the static seal key does not open this server's root key (wrong key file?)"
                ),
                other => other.into(),
            })?;
        self.after_unseal().await?;
        Ok(())
    }
}

/// A share as typed by an operator: hex (as Vault prints `keys`) or base64.
/// Public for the fuzzers (`fuzz/`) through `core::decode_share`.
pub fn decode_share(key: &str) -> Result<Zeroizing<Vec<u8>>, Error> {
    let key = key.trim();
    if let Ok(bytes) = hex::decode(key) {
        return Ok(Zeroizing::new(bytes));
    }
    BASE64
        .decode(key)
        .map(Zeroizing::new)
        .map_err(|_| Error::invalid("'key' must be a valid hex or base64 string"))
}
