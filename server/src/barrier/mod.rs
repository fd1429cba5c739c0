//! The barrier: envelope encryption and the seal.
//!
//! Key hierarchy (see `docs/security.md`):
//!
//! ```text
//! unseal key ──seals──► root key ──seals──► KEK term 1..n ──wrap──► data keys ──seal──► values
//!  (Shamir shares,         (barrier row)       (keyring rows)        (data_keys rows)
//!   or a static key)                     └──seals──► token-hash key
//! ```
//!
//! Every stored value gets a fresh data key (DEK). The value is sealed with
//! AES-256-GCM under the DEK and an AAD that names the record (kind, mount,
//! path, version), so a ciphertext moved to another row fails to open; the
//! DEK is wrapped by the active KEK under an AAD naming the DEK's id.
//! Rotation adds a KEK term and rewraps DEKs, never the data. While sealed
//! no key is in memory; sealing drops them (they are zeroized on drop).

mod crypto;
pub mod shamir;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use zeroize::Zeroizing;

pub use self::crypto::{
    CryptoError, KEY_LEN, Key, constant_time_eq, fill_random, hmac_sha256, tls_provider,
};
use crate::storage::{
    BarrierRecord, DataKeyRecord, KeyTermRecord, SealedBlob, Storage, StorageError, UnixNanos,
};
use crate::time::now_nanos;

const ROOT_KEY_AAD: &[u8] = b"secretd/v1/root-key";
const TOKEN_KEY_AAD: &[u8] = b"secretd/v1/token-key";
const DEK_ID_LEN: usize = 16;

/// Why a barrier operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BarrierError {
    #[error("Vault is sealed")]
    Sealed,
    #[error("Vault is not initialized")]
    NotInitialized,
    #[error("Vault is already initialized")]
    AlreadyInitialized,
    /// A stored value or key did not open: tampered, moved, or a wrong key.
    #[error("a stored value failed to decrypt")]
    Decrypt,
    /// Bad input to init or unseal; the message is for the caller.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl From<CryptoError> for BarrierError {
    fn from(_: CryptoError) -> Self {
        BarrierError::Decrypt
    }
}

type Result<T, E = BarrierError> = std::result::Result<T, E>;

/// How the unseal key is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SealType {
    /// Split into shares given to operators; `sys/unseal` joins them.
    Shamir,
    /// Read from a key file or environment variable at start (automation).
    Static,
}

impl SealType {
    pub fn as_str(self) -> &'static str {
        match self {
            SealType::Shamir => "shamir",
            SealType::Static => "static",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "shamir" => Ok(SealType::Shamir),
            "static" => Ok(SealType::Static),
            other => Err(BarrierError::Storage(StorageError::Corrupt(format!(
                "unknown seal type {other:?}"
            )))),
        }
    }
}

/// The seal's settings, fixed at init.
#[derive(Debug, Clone)]
pub struct SealConfig {
    pub seal_type: SealType,
    pub secret_shares: u32,
    pub secret_threshold: u32,
    pub cluster_id: String,
    pub cluster_name: String,
}

/// How a new barrier is to be sealed.
pub enum InitSeal<'a> {
    Shamir { shares: u32, threshold: u32 },
    Static(&'a Key),
}

/// Keys made by [`Barrier::prepare_init`], not yet stored.
pub struct PreparedInit {
    pub barrier: BarrierRecord,
    pub first_term: KeyTermRecord,
    /// The unseal key shares (empty for a static seal). Shown once.
    pub shares: Vec<Zeroizing<Vec<u8>>>,
    keys: Keys,
}

impl PreparedInit {
    /// The keyed hash of a token under the new barrier's token key.
    pub fn token_hash(&self, token: &str) -> Vec<u8> {
        self.keys.token_hash(token)
    }
}

/// Where an unseal attempt stands.
#[derive(Debug, Clone, Default)]
pub struct UnsealProgress {
    pub progress: u32,
    pub nonce: String,
}

/// What a rewrap pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RewrapReport {
    pub rewrapped: u64,
    /// Data keys that did not open and were left as they were.
    pub unreadable: u64,
}

/// Keyring state reported by `sys/key-status`.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub term: u32,
    pub installed_at: UnixNanos,
    pub encryptions: u64,
    pub rewrap_pending: u64,
    pub data_keys: u64,
}

/// The name a sealed value is bound to (its AAD): a kind and the parts
/// that identify the record. Parts are length-prefixed, so no two
/// different names encode alike.
#[derive(Debug, Clone)]
pub struct RecordName(Vec<u8>);

impl RecordName {
    pub fn new(kind: &str) -> Self {
        RecordName(Vec::with_capacity(64)).part(kind)
    }

    pub fn part(mut self, part: &str) -> Self {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(part.as_bytes());
        self
    }

    pub fn number(self, n: u64) -> Self {
        self.part(&n.to_string())
    }
}

/// The keys of an unsealed barrier.
struct Keys {
    root: Key,
    keks: BTreeMap<u32, Key>,
    installed: BTreeMap<u32, UnixNanos>,
    active: u32,
    token_key: Key,
}

impl Keys {
    fn token_hash(&self, token: &str) -> Vec<u8> {
        crypto::hmac_sha256(&self.token_key, token.as_bytes()).to_vec()
    }

    fn active_kek(&self) -> Result<&Key> {
        self.keks.get(&self.active).ok_or(BarrierError::Decrypt)
    }

    /// The same keys with a keyring read from storage.
    fn with_terms(&self, terms: &[KeyTermRecord]) -> Result<Keys> {
        let mut keks = BTreeMap::new();
        let mut installed = BTreeMap::new();
        for t in terms {
            let bytes = crypto::open(&self.root, &kek_aad(t.term), &t.sealed_key)?;
            keks.insert(t.term, Key::from_slice(&bytes)?);
            installed.insert(t.term, t.installed_at);
        }
        let active = keks
            .keys()
            .next_back()
            .copied()
            .ok_or(BarrierError::Decrypt)?;
        Ok(Keys {
            root: self.root.clone(),
            keks,
            installed,
            active,
            token_key: self.token_key.clone(),
        })
    }
}

fn kek_aad(term: u32) -> Vec<u8> {
    format!("secretd/v1/kek/{term}").into_bytes()
}

fn dek_aad(id: &[u8]) -> Vec<u8> {
    let mut aad = b"secretd/v1/dek/".to_vec();
    aad.extend_from_slice(id);
    aad
}

/// The barrier of one server process.
pub struct Barrier {
    storage: Storage,
    keys: ArcSwapOption<Keys>,
    config: ArcSwapOption<SealConfig>,
    progress: Mutex<Vec<Zeroizing<Vec<u8>>>>,
    nonce: Mutex<String>,
    /// Serialises unseal attempts and keyring reloads.
    reload: tokio::sync::Mutex<()>,
    rewrap_wanted: tokio::sync::Notify,
}

impl Barrier {
    pub fn new(storage: Storage) -> Self {
        Barrier {
            storage,
            keys: ArcSwapOption::empty(),
            config: ArcSwapOption::empty(),
            progress: Mutex::new(Vec::new()),
            nonce: Mutex::new(String::new()),
            reload: tokio::sync::Mutex::new(()),
            rewrap_wanted: tokio::sync::Notify::new(),
        }
    }

    /// The seal settings, or `None` before init. Cached once known.
    pub async fn config(&self) -> Result<Option<Arc<SealConfig>>> {
        if let Some(config) = self.config.load_full() {
            return Ok(Some(config));
        }
        let Some(record) = self.storage.barrier_record().await? else {
            return Ok(None);
        };
        let config = Arc::new(SealConfig {
            seal_type: SealType::parse(&record.seal_type)?,
            secret_shares: record.secret_shares,
            secret_threshold: record.secret_threshold,
            cluster_id: record.cluster_id,
            cluster_name: record.cluster_name,
        });
        self.config.store(Some(config.clone()));
        Ok(Some(config))
    }

    pub fn is_sealed(&self) -> bool {
        self.keys.load().is_none()
    }

    fn keys(&self) -> Result<Arc<Keys>> {
        self.keys.load_full().ok_or(BarrierError::Sealed)
    }

    /// Makes every key a new barrier needs, without storing anything.
    pub fn prepare_init(&self, seal: InitSeal<'_>) -> Result<PreparedInit> {
        let (seal_type, unseal_key, shares, threshold) = match seal {
            InitSeal::Shamir { shares, threshold } => {
                shamir::check_parameters(shares, threshold)
                    .map_err(|e| BarrierError::Invalid(e.to_string()))?;
                (SealType::Shamir, Key::generate()?, shares, threshold)
            }
            InitSeal::Static(key) => (SealType::Static, key.clone(), 1, 1),
        };
        let split = match seal_type {
            SealType::Shamir => shamir::split(&unseal_key, shares, threshold)
                .map_err(|e| BarrierError::Invalid(e.to_string()))?,
            SealType::Static => Vec::new(),
        };
        let now = now_nanos();
        let root = Key::generate()?;
        let kek = Key::generate()?;
        let token_key = Key::generate()?;
        let cluster_id = uuid::Uuid::new_v4().to_string();
        let barrier = BarrierRecord {
            seal_type: seal_type.as_str().to_owned(),
            secret_shares: shares,
            secret_threshold: threshold,
            sealed_root_key: crypto::seal(&unseal_key, ROOT_KEY_AAD, root.expose())?,
            sealed_token_key: crypto::seal(&root, TOKEN_KEY_AAD, token_key.expose())?,
            cluster_name: format!("secretd-cluster-{}", &cluster_id[..8]),
            cluster_id,
            initialized_at: now,
        };
        let first_term = KeyTermRecord {
            term: 1,
            sealed_key: crypto::seal(&root, &kek_aad(1), kek.expose())?,
            installed_at: now,
        };
        let keys = Keys {
            root,
            keks: BTreeMap::from([(1, kek)]),
            installed: BTreeMap::from([(1, now)]),
            active: 1,
            token_key,
        };
        Ok(PreparedInit {
            barrier,
            first_term,
            shares: split,
            keys,
        })
    }

    /// After the init record is stored: a static seal unseals at once, a
    /// Shamir seal stays sealed until its shares are entered.
    pub fn finish_init(&self, prepared: PreparedInit) {
        self.config.store(None);
        if prepared.barrier.seal_type == SealType::Static.as_str() {
            self.keys.store(Some(Arc::new(prepared.keys)));
        }
    }

    /// Where the current unseal attempt stands.
    pub fn unseal_progress(&self) -> UnsealProgress {
        let progress = self.progress.lock().map(|p| p.len()).unwrap_or(0);
        UnsealProgress {
            progress: u32::try_from(progress).unwrap_or(u32::MAX),
            nonce: self.nonce.lock().map(|n| n.clone()).unwrap_or_default(),
        }
    }

    /// Forgets the shares entered so far.
    pub fn reset_unseal(&self) {
        if let Ok(mut p) = self.progress.lock() {
            p.clear();
        }
        if let Ok(mut n) = self.nonce.lock() {
            n.clear();
        }
    }

    /// Adds one unseal key share. When the threshold is reached the shares
    /// are joined and the barrier unseals, or the attempt is reset and the
    /// error says the shares were wrong.
    pub async fn submit_unseal_share(&self, share: Zeroizing<Vec<u8>>) -> Result<()> {
        let config = self.config().await?.ok_or(BarrierError::NotInitialized)?;
        if config.seal_type != SealType::Shamir {
            return Err(BarrierError::Invalid(
                "this server uses a static seal and unseals itself at start; restart it to unseal"
                    .to_owned(),
            ));
        }
        if !self.is_sealed() {
            return Ok(());
        }
        if share.len() != shamir::share_len(config.secret_shares) {
            return Err(BarrierError::Invalid(format!(
                "invalid key: an unseal key share is {} bytes, this one is {}",
                shamir::share_len(config.secret_shares),
                share.len()
            )));
        }
        let ready = {
            let mut progress = self.progress.lock().map_err(|_| BarrierError::Decrypt)?;
            if progress.iter().any(|p| constant_time_eq(p, &share)) {
                // Vault ignores a share entered twice.
                return Ok(());
            }
            if progress.is_empty()
                && let Ok(mut nonce) = self.nonce.lock()
            {
                *nonce = uuid::Uuid::new_v4().to_string();
            }
            progress.push(share);
            if progress.len() < config.secret_threshold as usize {
                return Ok(());
            }
            std::mem::take(&mut *progress)
        };
        self.reset_unseal();
        let unseal_key = shamir::combine(&ready, config.secret_shares)
            .map_err(|_| BarrierError::Invalid("the unseal key shares are not valid".to_owned()))?;
        self.unseal_with_key(&unseal_key)
            .await
            .map_err(|e| match e {
                BarrierError::Decrypt => BarrierError::Invalid(
                    "unseal failed: the key shares do not open this server's root key".to_owned(),
                ),
                other => other,
            })
    }

    /// Opens the root key with the unseal key and loads the keyring.
    pub async fn unseal_with_key(&self, unseal_key: &Key) -> Result<()> {
        let _guard = self.reload.lock().await;
        if !self.is_sealed() {
            return Ok(());
        }
        let record = self
            .storage
            .barrier_record()
            .await?
            .ok_or(BarrierError::NotInitialized)?;
        let root = Key::from_slice(&crypto::open(
            unseal_key,
            ROOT_KEY_AAD,
            &record.sealed_root_key,
        )?)?;
        let token_key = Key::from_slice(&crypto::open(
            &root,
            TOKEN_KEY_AAD,
            &record.sealed_token_key,
        )?)?;
        let terms = self.storage.key_terms().await?;
        let bare = Keys {
            root,
            keks: BTreeMap::new(),
            installed: BTreeMap::new(),
            active: 0,
            token_key,
        };
        let keys = bare.with_terms(&terms)?;
        self.keys.store(Some(Arc::new(keys)));
        self.rewrap_wanted.notify_one();
        Ok(())
    }

    /// Drops every key. Requests in flight finish with the keys they hold.
    /// Takes the lock that unseal, rotation and keyring reloads hold while
    /// they publish keys, so none of them can undo the seal.
    pub async fn seal(&self) {
        let _guard = self.reload.lock().await;
        self.keys.store(None);
        self.reset_unseal();
    }

    /// The keyed hash under which a token is stored.
    pub fn token_hash(&self, token: &str) -> Result<Vec<u8>> {
        Ok(self.keys()?.token_hash(token))
    }

    /// Seals `plaintext` under a fresh data key wrapped by the active KEK.
    pub fn seal_value(&self, name: &RecordName, plaintext: &[u8]) -> Result<SealedBlob> {
        let keys = self.keys()?;
        let dek = Key::generate()?;
        let mut id = vec![0u8; DEK_ID_LEN];
        fill_random(&mut id)?;
        let wrapped = crypto::seal(keys.active_kek()?, &dek_aad(&id), dek.expose())?;
        let ciphertext = crypto::seal(&dek, &name.0, plaintext)?;
        Ok(SealedBlob {
            dek: DataKeyRecord {
                id,
                term: keys.active,
                wrapped,
            },
            ciphertext,
        })
    }

    /// Opens a value sealed by [`Barrier::seal_value`] under the same name.
    pub async fn open_value(
        &self,
        name: &RecordName,
        blob: &SealedBlob,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let mut keys = self.keys()?;
        if !keys.keks.contains_key(&blob.dek.term) {
            // Another node rotated: learn the new term.
            self.reload_keyring().await?;
            keys = self.keys()?;
        }
        let kek = keys.keks.get(&blob.dek.term).ok_or(BarrierError::Decrypt)?;
        let dek = Key::from_slice(&crypto::open(
            kek,
            &dek_aad(&blob.dek.id),
            &blob.dek.wrapped,
        )?)?;
        Ok(crypto::open(&dek, &name.0, &blob.ciphertext)?)
    }

    /// Re-reads the keyring from storage (terms added by another node).
    pub async fn reload_keyring(&self) -> Result<()> {
        let _guard = self.reload.lock().await;
        let keys = self.keys()?;
        let terms = self.storage.key_terms().await?;
        if terms.last().map(|t| t.term) != Some(keys.active) || terms.len() != keys.keks.len() {
            let fresh = keys.with_terms(&terms)?;
            self.keys.store(Some(Arc::new(fresh)));
            self.rewrap_wanted.notify_one();
        }
        Ok(())
    }

    /// Adds a new KEK term, makes it active, and wakes the rewrap job.
    /// Returns the new term.
    pub async fn rotate(&self) -> Result<u32> {
        let _guard = self.reload.lock().await;
        let keys = self.keys()?;
        let term = keys.keks.keys().next_back().copied().unwrap_or(0) + 1;
        let kek = Key::generate()?;
        let record = KeyTermRecord {
            term,
            sealed_key: crypto::seal(&keys.root, &kek_aad(term), kek.expose())?,
            installed_at: now_nanos(),
        };
        match self.storage.add_key_term(&record).await {
            Ok(()) => {}
            // Another node added this term first; take the keyring as stored.
            Err(StorageError::Conflict(_)) => {}
            Err(err) => return Err(err.into()),
        }
        let terms = self.storage.key_terms().await?;
        let fresh = keys.with_terms(&terms)?;
        let active = fresh.active;
        self.keys.store(Some(Arc::new(fresh)));
        self.rewrap_wanted.notify_one();
        Ok(active)
    }

    /// The active term, when it was installed, and rewrap progress.
    pub async fn key_status(&self) -> Result<KeyStatus> {
        let keys = self.keys()?;
        let counts = self.storage.data_key_counts(keys.active).await?;
        Ok(KeyStatus {
            term: keys.active,
            installed_at: keys.installed.get(&keys.active).copied().unwrap_or(0),
            encryptions: counts.on_term,
            rewrap_pending: counts.below_term,
            data_keys: counts.total,
        })
    }

    /// Rewraps every data key from an older term to the active one, `batch`
    /// keys per transaction. A key that does not open (tampered or
    /// corrupt) is logged, counted and skipped, so it cannot stall
    /// rotation; it stays on its old term and in `rewrap_pending`.
    pub async fn rewrap_pass(&self, batch: u32) -> Result<RewrapReport> {
        let mut report = RewrapReport::default();
        let mut after = Vec::new();
        loop {
            let keys = self.keys()?;
            let stale = self
                .storage
                .data_keys_below_term(keys.active, &after, batch)
                .await?;
            let Some(last) = stale.last() else {
                return Ok(report);
            };
            after = last.id.clone();
            let kek = keys.active_kek()?;
            let mut rewrapped = Vec::with_capacity(stale.len());
            for old in stale {
                let aad = dek_aad(&old.id);
                let opened = keys
                    .keks
                    .get(&old.term)
                    .ok_or(CryptoError)
                    .and_then(|old_kek| crypto::open(old_kek, &aad, &old.wrapped));
                let Ok(dek) = opened else {
                    tracing::error!(
                        data_key.id = %hex::encode(&old.id),
                        data_key.term = old.term,
                        "a data key does not open with its key term; skipping it"
                    );
                    report.unreadable += 1;
                    continue;
                };
                let wrapped = crypto::seal(kek, &aad, &dek)?;
                let new = DataKeyRecord {
                    id: old.id,
                    term: keys.active,
                    wrapped,
                };
                rewrapped.push((new, old.term));
            }
            report.rewrapped += self.storage.rewrap_data_keys(&rewrapped).await?;
        }
    }

    /// Resolves when a rotation or unseal asks for a rewrap pass.
    pub async fn rewrap_wanted(&self) {
        self.rewrap_wanted.notified().await;
    }
}

#[cfg(test)]
mod storage_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_names_do_not_collide() {
        let a = RecordName::new("kv").part("ab").part("c");
        let b = RecordName::new("kv").part("a").part("bc");
        assert_ne!(a.0, b.0);
        let v1 = RecordName::new("kv").part("m").part("p").number(1);
        let v2 = RecordName::new("kv").part("m").part("p").number(2);
        assert_ne!(v1.0, v2.0);
    }
}
