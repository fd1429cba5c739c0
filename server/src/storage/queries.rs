//! The SQL both databases share, written once.
//!
//! [`impl_queries!`] expands to the storage methods for one driver; each
//! implementation module invokes it with its type and its `dialect` module,
//! which holds the few statements that differ (row locks). The row types
//! below derive `FromRow` generically, so they decode on either driver.

use super::{
    BarrierRecord, DataKeyRecord, KeyTermRecord, KvConfigRecord, KvKeySettings, KvVersionRecord,
    MountKind, MountRecord, Result, SealedBlob, StorageError, TokenRecord, to_u32, to_u64,
};

pub(super) const SELECT_BARRIER: &str = "SELECT seal_type, secret_shares, secret_threshold, \
    sealed_root_key, sealed_token_key, cluster_id, cluster_name, initialized_at FROM barrier WHERE id = 1";
pub(super) const INSERT_BARRIER: &str = "INSERT INTO barrier (id, seal_type, secret_shares, \
    secret_threshold, sealed_root_key, sealed_token_key, cluster_id, cluster_name, initialized_at) \
    VALUES (1, $1, $2, $3, $4, $5, $6, $7, $8)";
pub(super) const SELECT_KEY_TERMS: &str =
    "SELECT term, sealed_key, installed_at FROM keyring ORDER BY term";
pub(super) const INSERT_KEY_TERM: &str =
    "INSERT INTO keyring (term, sealed_key, installed_at) VALUES ($1, $2, $3)";
pub(super) const INSERT_DATA_KEY: &str =
    "INSERT INTO data_keys (id, term, wrapped) VALUES ($1, $2, $3)";
pub(super) const SELECT_DATA_KEYS_BELOW: &str =
    "SELECT id, term, wrapped FROM data_keys WHERE term < $1 ORDER BY id LIMIT $2";
pub(super) const REWRAP_DATA_KEY: &str =
    "UPDATE data_keys SET term = $1, wrapped = $2 WHERE id = $3 AND term = $4";
pub(super) const COUNT_DATA_KEYS: &str = "SELECT COUNT(*) AS total, \
    COUNT(*) FILTER (WHERE term = $1) AS on_term, COUNT(*) FILTER (WHERE term < $1) AS below_term \
    FROM data_keys";
pub(super) const DELETE_DATA_KEY: &str = "DELETE FROM data_keys WHERE id = $1";

pub(super) const SELECT_MOUNTS: &str = "SELECT uuid, path, kind, mount_type, description, \
    accessor, options, config, created_at FROM mounts ORDER BY path";
pub(super) const INSERT_MOUNT: &str = "INSERT INTO mounts (uuid, path, kind, mount_type, \
    description, accessor, options, config, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(super) const DELETE_MOUNT_DATA_KEYS: &str = "DELETE FROM data_keys WHERE id IN \
    (SELECT dek FROM kv_versions WHERE mount_uuid = $1 AND dek IS NOT NULL \
     UNION SELECT custom_dek FROM kv_metadata WHERE mount_uuid = $1 AND custom_dek IS NOT NULL)";
pub(super) const DELETE_MOUNT_VERSIONS: &str = "DELETE FROM kv_versions WHERE mount_uuid = $1";
pub(super) const DELETE_MOUNT_METADATA: &str = "DELETE FROM kv_metadata WHERE mount_uuid = $1";
pub(super) const DELETE_MOUNT_CONFIG: &str = "DELETE FROM kv_config WHERE mount_uuid = $1";
pub(super) const DELETE_MOUNT: &str = "DELETE FROM mounts WHERE uuid = $1";

pub(super) const INSERT_TOKEN: &str = "INSERT INTO tokens (hash, accessor, parent, policies, \
    meta, display_name, num_uses, created_at, expire_at, creation_ttl, explicit_max_ttl, period, \
    renewable, orphan, token_type, path) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
pub(super) const SELECT_TOKEN: &str = "SELECT hash, accessor, parent, policies, meta, \
    display_name, num_uses, created_at, expire_at, creation_ttl, explicit_max_ttl, period, \
    renewable, orphan, token_type, path FROM tokens WHERE hash = $1";

pub(super) const SELECT_KV_CONFIG: &str = "SELECT max_versions, cas_required, \
    delete_version_after FROM kv_config WHERE mount_uuid = $1";
pub(super) const UPSERT_KV_CONFIG: &str = "INSERT INTO kv_config (mount_uuid, max_versions, \
    cas_required, delete_version_after) VALUES ($1, $2, $3, $4) ON CONFLICT (mount_uuid) DO UPDATE \
    SET max_versions = excluded.max_versions, cas_required = excluded.cas_required, \
    delete_version_after = excluded.delete_version_after";

pub(super) const ENSURE_KV_METADATA: &str = "INSERT INTO kv_metadata (mount_uuid, path, \
    current_version, oldest_version, max_versions, cas_required, delete_version_after, \
    created_at, updated_at) VALUES ($1, $2, 0, 0, 0, FALSE, 0, $3, $3) \
    ON CONFLICT (mount_uuid, path) DO NOTHING";
pub(super) const SELECT_KV_METADATA: &str = "SELECT m.current_version, m.oldest_version, \
    m.max_versions, m.cas_required, m.delete_version_after, m.created_at, m.updated_at, \
    m.custom_dek, m.custom_metadata, cdk.term AS custom_term, cdk.wrapped AS custom_wrapped, \
    c.max_versions AS config_max_versions, c.cas_required AS config_cas_required, \
    c.delete_version_after AS config_delete_version_after \
    FROM kv_metadata m LEFT JOIN data_keys cdk ON cdk.id = m.custom_dek \
    LEFT JOIN kv_config c ON c.mount_uuid = m.mount_uuid \
    WHERE m.mount_uuid = $1 AND m.path = $2";
pub(super) const INSERT_KV_VERSION: &str = "INSERT INTO kv_versions (mount_uuid, path, version, \
    created_at, deletion_time, destroyed, dek, ciphertext) VALUES ($1, $2, $3, $4, $5, FALSE, $6, $7)";
pub(super) const BUMP_KV_VERSION: &str = "UPDATE kv_metadata SET current_version = $3, \
    updated_at = $4, oldest_version = CASE WHEN oldest_version = 0 THEN $3 ELSE oldest_version END \
    WHERE mount_uuid = $1 AND path = $2";
pub(super) const PRUNE_KV_DATA_KEYS: &str = "DELETE FROM data_keys WHERE id IN (SELECT dek FROM \
    kv_versions WHERE mount_uuid = $1 AND path = $2 AND version <= $3 AND dek IS NOT NULL)";
pub(super) const PRUNE_KV_VERSIONS: &str =
    "DELETE FROM kv_versions WHERE mount_uuid = $1 AND path = $2 AND version <= $3";
pub(super) const PRUNE_KV_OLDEST: &str = "UPDATE kv_metadata SET oldest_version = $3 \
    WHERE mount_uuid = $1 AND path = $2 AND oldest_version < $3";
pub(super) const SELECT_KV_VERSION: &str = "SELECT m.current_version, m.custom_dek, \
    m.custom_metadata, cdk.term AS custom_term, cdk.wrapped AS custom_wrapped, v.version, \
    v.created_at, v.deletion_time, v.destroyed, v.dek, v.ciphertext, vdk.term AS dek_term, \
    vdk.wrapped AS dek_wrapped FROM kv_metadata m JOIN kv_versions v ON v.mount_uuid = m.mount_uuid \
    AND v.path = m.path AND v.version = CASE WHEN $3 = 0 THEN m.current_version ELSE $3 END \
    LEFT JOIN data_keys vdk ON vdk.id = v.dek LEFT JOIN data_keys cdk ON cdk.id = m.custom_dek \
    WHERE m.mount_uuid = $1 AND m.path = $2";
pub(super) const SELECT_KV_VERSION_LIST: &str = "SELECT version, created_at, deletion_time, \
    destroyed FROM kv_versions WHERE mount_uuid = $1 AND path = $2 ORDER BY version";
pub(super) const UPDATE_KV_SETTINGS: &str = "UPDATE kv_metadata SET \
    max_versions = COALESCE($3, max_versions), cas_required = COALESCE($4, cas_required), \
    delete_version_after = COALESCE($5, delete_version_after), updated_at = $6 \
    WHERE mount_uuid = $1 AND path = $2";
pub(super) const UPDATE_KV_CUSTOM: &str = "UPDATE kv_metadata SET custom_dek = $3, \
    custom_metadata = $4, updated_at = $5 WHERE mount_uuid = $1 AND path = $2";
pub(super) const SOFT_DELETE_LATEST: &str = "UPDATE kv_versions SET deletion_time = $3 \
    WHERE mount_uuid = $1 AND path = $2 AND destroyed = FALSE \
    AND (deletion_time IS NULL OR deletion_time > $3) \
    AND version = (SELECT current_version FROM kv_metadata WHERE mount_uuid = $1 AND path = $2)";
pub(super) const SOFT_DELETE_VERSION: &str = "UPDATE kv_versions SET deletion_time = $3 \
    WHERE mount_uuid = $1 AND path = $2 AND version = $4 AND destroyed = FALSE \
    AND (deletion_time IS NULL OR deletion_time > $3)";
pub(super) const UNDELETE_VERSION: &str = "UPDATE kv_versions SET deletion_time = NULL \
    WHERE mount_uuid = $1 AND path = $2 AND version = $3 AND destroyed = FALSE";
pub(super) const DESTROY_VERSION_KEY: &str = "DELETE FROM data_keys WHERE id = (SELECT dek FROM \
    kv_versions WHERE mount_uuid = $1 AND path = $2 AND version = $3)";
pub(super) const DESTROY_VERSION: &str = "UPDATE kv_versions SET destroyed = TRUE, dek = NULL, \
    ciphertext = NULL, deletion_time = NULL WHERE mount_uuid = $1 AND path = $2 AND version = $3";
pub(super) const DELETE_KEY_DATA_KEYS: &str = "DELETE FROM data_keys WHERE id IN \
    (SELECT dek FROM kv_versions WHERE mount_uuid = $1 AND path = $2 AND dek IS NOT NULL \
     UNION SELECT custom_dek FROM kv_metadata WHERE mount_uuid = $1 AND path = $2 \
     AND custom_dek IS NOT NULL)";
pub(super) const DELETE_KEY_VERSIONS: &str =
    "DELETE FROM kv_versions WHERE mount_uuid = $1 AND path = $2";
pub(super) const DELETE_KEY_METADATA: &str =
    "DELETE FROM kv_metadata WHERE mount_uuid = $1 AND path = $2";
pub(super) const LIST_KV_PATHS_FROM: &str = "SELECT path FROM kv_metadata WHERE mount_uuid = $1 \
    AND path >= $2 AND ($3 IS NULL OR path < $3) ORDER BY path LIMIT $4";
pub(super) const LIST_KV_PATHS_AFTER: &str = "SELECT path FROM kv_metadata WHERE mount_uuid = $1 \
    AND path > $2 AND ($3 IS NULL OR path < $3) ORDER BY path LIMIT $4";

// ---------------------------------------------------------------------------
// Rows.

#[derive(sqlx::FromRow)]
pub(super) struct BarrierRow {
    seal_type: String,
    secret_shares: i64,
    secret_threshold: i64,
    sealed_root_key: Vec<u8>,
    sealed_token_key: Vec<u8>,
    cluster_id: String,
    cluster_name: String,
    initialized_at: i64,
}

impl BarrierRow {
    pub(super) fn into_record(self) -> Result<BarrierRecord> {
        Ok(BarrierRecord {
            seal_type: self.seal_type,
            secret_shares: to_u32(self.secret_shares, "secret_shares")?,
            secret_threshold: to_u32(self.secret_threshold, "secret_threshold")?,
            sealed_root_key: self.sealed_root_key,
            sealed_token_key: self.sealed_token_key,
            cluster_id: self.cluster_id,
            cluster_name: self.cluster_name,
            initialized_at: self.initialized_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct KeyTermRow {
    term: i64,
    sealed_key: Vec<u8>,
    installed_at: i64,
}

impl KeyTermRow {
    pub(super) fn into_record(self) -> Result<KeyTermRecord> {
        Ok(KeyTermRecord {
            term: to_u32(self.term, "key term")?,
            sealed_key: self.sealed_key,
            installed_at: self.installed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct DataKeyRow {
    id: Vec<u8>,
    term: i64,
    wrapped: Vec<u8>,
}

impl DataKeyRow {
    pub(super) fn into_record(self) -> Result<DataKeyRecord> {
        Ok(DataKeyRecord {
            id: self.id,
            term: to_u32(self.term, "data key term")?,
            wrapped: self.wrapped,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct CountsRow {
    pub(super) total: i64,
    pub(super) on_term: i64,
    pub(super) below_term: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct MountRow {
    uuid: String,
    path: String,
    kind: String,
    mount_type: String,
    description: String,
    accessor: String,
    options: String,
    config: String,
    created_at: i64,
}

impl MountRow {
    pub(super) fn into_record(self) -> Result<MountRecord> {
        Ok(MountRecord {
            uuid: self.uuid,
            path: self.path,
            kind: MountKind::parse(&self.kind)?,
            mount_type: self.mount_type,
            description: self.description,
            accessor: self.accessor,
            options: self.options,
            config: self.config,
            created_at: self.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct TokenRow {
    hash: Vec<u8>,
    accessor: String,
    parent: Option<Vec<u8>>,
    policies: String,
    meta: String,
    display_name: String,
    num_uses: i64,
    created_at: i64,
    expire_at: Option<i64>,
    creation_ttl: i64,
    explicit_max_ttl: i64,
    period: i64,
    renewable: bool,
    orphan: bool,
    token_type: String,
    path: String,
}

impl TokenRow {
    pub(super) fn into_record(self) -> Result<TokenRecord> {
        let policies = serde_json::from_str(&self.policies)
            .map_err(|_| StorageError::Corrupt("token policies".to_owned()))?;
        Ok(TokenRecord {
            hash: self.hash,
            accessor: self.accessor,
            parent: self.parent,
            policies,
            meta: self.meta,
            display_name: self.display_name,
            num_uses: to_u64(self.num_uses, "num_uses")?,
            created_at: self.created_at,
            expire_at: self.expire_at,
            creation_ttl: to_u64(self.creation_ttl, "creation_ttl")?,
            explicit_max_ttl: to_u64(self.explicit_max_ttl, "explicit_max_ttl")?,
            period: to_u64(self.period, "period")?,
            renewable: self.renewable,
            orphan: self.orphan,
            token_type: self.token_type,
            path: self.path,
        })
    }
}

pub(super) fn policies_json(policies: &[String]) -> String {
    // A Vec<String> always serialises.
    serde_json::to_string(policies).unwrap_or_else(|_| "[]".to_owned())
}

#[derive(sqlx::FromRow)]
pub(super) struct KvConfigRow {
    max_versions: i64,
    cas_required: bool,
    delete_version_after: i64,
}

impl KvConfigRow {
    pub(super) fn into_record(self) -> Result<KvConfigRecord> {
        Ok(KvConfigRecord {
            max_versions: to_u32(self.max_versions, "max_versions")?,
            cas_required: self.cas_required,
            delete_version_after: to_u64(self.delete_version_after, "delete_version_after")?,
        })
    }
}

/// A key's metadata row with its custom metadata's data key and its
/// mount's config joined (the config columns are null if never set).
#[derive(sqlx::FromRow)]
pub(super) struct KvMetadataRow {
    pub(super) current_version: i64,
    pub(super) oldest_version: i64,
    max_versions: i64,
    cas_required: bool,
    delete_version_after: i64,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    custom_dek: Option<Vec<u8>>,
    custom_metadata: Option<Vec<u8>>,
    custom_term: Option<i64>,
    custom_wrapped: Option<Vec<u8>>,
    config_max_versions: Option<i64>,
    config_cas_required: Option<bool>,
    config_delete_version_after: Option<i64>,
}

impl KvMetadataRow {
    pub(super) fn mount_config(&self) -> Result<KvConfigRecord> {
        Ok(KvConfigRecord {
            max_versions: to_u32(self.config_max_versions.unwrap_or(0), "max_versions")?,
            cas_required: self.config_cas_required.unwrap_or(false),
            delete_version_after: to_u64(
                self.config_delete_version_after.unwrap_or(0),
                "delete_version_after",
            )?,
        })
    }

    pub(super) fn settings(&self) -> Result<KvKeySettings> {
        Ok(KvKeySettings {
            max_versions: to_u32(self.max_versions, "max_versions")?,
            cas_required: self.cas_required,
            delete_version_after: to_u64(self.delete_version_after, "delete_version_after")?,
        })
    }

    pub(super) fn custom_metadata(&self) -> Result<Option<SealedBlob>> {
        sealed_blob(
            self.custom_dek.clone(),
            self.custom_term,
            self.custom_wrapped.clone(),
            self.custom_metadata.clone(),
        )
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct KvVersionRow {
    pub(super) current_version: i64,
    custom_dek: Option<Vec<u8>>,
    custom_metadata: Option<Vec<u8>>,
    custom_term: Option<i64>,
    custom_wrapped: Option<Vec<u8>>,
    version: i64,
    created_at: i64,
    deletion_time: Option<i64>,
    destroyed: bool,
    dek: Option<Vec<u8>>,
    ciphertext: Option<Vec<u8>>,
    dek_term: Option<i64>,
    dek_wrapped: Option<Vec<u8>>,
}

impl KvVersionRow {
    pub(super) fn into_read(self) -> Result<super::KvVersionRead> {
        Ok(super::KvVersionRead {
            current_version: to_u64(self.current_version, "current_version")?,
            custom_metadata: sealed_blob(
                self.custom_dek,
                self.custom_term,
                self.custom_wrapped,
                self.custom_metadata,
            )?,
            version: KvVersionRecord {
                version: to_u64(self.version, "version")?,
                created_at: self.created_at,
                deletion_time: self.deletion_time,
                destroyed: self.destroyed,
                value: sealed_blob(self.dek, self.dek_term, self.dek_wrapped, self.ciphertext)?,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct KvVersionInfoRow {
    version: i64,
    created_at: i64,
    deletion_time: Option<i64>,
    destroyed: bool,
}

impl KvVersionInfoRow {
    pub(super) fn into_record(self) -> Result<KvVersionRecord> {
        Ok(KvVersionRecord {
            version: to_u64(self.version, "version")?,
            created_at: self.created_at,
            deletion_time: self.deletion_time,
            destroyed: self.destroyed,
            value: None,
        })
    }
}

/// Assembles a sealed value from its columns: all present, or none.
fn sealed_blob(
    id: Option<Vec<u8>>,
    term: Option<i64>,
    wrapped: Option<Vec<u8>>,
    ciphertext: Option<Vec<u8>>,
) -> Result<Option<SealedBlob>> {
    match (id, term, wrapped, ciphertext) {
        (None, _, _, None) => Ok(None),
        (Some(id), Some(term), Some(wrapped), Some(ciphertext)) => Ok(Some(SealedBlob {
            dek: DataKeyRecord {
                id,
                term: to_u32(term, "data key term")?,
                wrapped,
            },
            ciphertext,
        })),
        _ => Err(StorageError::Corrupt(
            "a sealed value without its data key".to_owned(),
        )),
    }
}

/// Where the next page of a listing starts.
pub(super) enum ListCursor {
    /// At this path or after it.
    From(String),
    /// Strictly after this path.
    After(String),
}

/// Folds one path into the names directly under `prefix`; returns the name
/// and where the scan continues (past a whole sub-directory at once).
pub(super) fn fold_listed_path(prefix: &str, path: &str) -> Option<(String, ListCursor)> {
    let rel = path.strip_prefix(prefix)?;
    match rel.find('/') {
        Some(i) => {
            let dir = &rel[..=i];
            let next = super::prefix_upper_bound(&format!("{prefix}{dir}"))?;
            Some((dir.to_owned(), ListCursor::From(next)))
        }
        None => Some((rel.to_owned(), ListCursor::After(path.to_owned()))),
    }
}

/// Rows fetched per listing query.
pub(super) const LIST_BATCH: i64 = 1000;

/// The storage methods, expanded once per driver. The invoking module must
/// have `reader()` and `writer()` pools and a `dialect` module with
/// `LOCK_KV_METADATA`.
macro_rules! impl_queries {
    ($storage:ty) => {
        use $crate::storage::queries as q;
        use $crate::storage::{
            BarrierRecord, DataKeyCounts, DataKeyRecord, InitRecord, KeyTermRecord, KvConfigRecord,
            KvMetadataRead, KvMetadataUpdate, KvVersionRead, KvVersions, KvWrite, KvWriteOutcome,
            MountRecord, Result, SealedBlob, StorageError, TokenRecord, UnixNanos, to_i64, to_u64,
        };

        impl $storage {
            pub async fn barrier_record(&self) -> Result<Option<BarrierRecord>> {
                let row: Option<q::BarrierRow> = sqlx::query_as(q::SELECT_BARRIER)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(q::BarrierRow::into_record).transpose()
            }

            pub async fn initialize(&self, init: &InitRecord) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                let b = &init.barrier;
                let inserted = sqlx::query(q::INSERT_BARRIER)
                    .bind(&b.seal_type)
                    .bind(i64::from(b.secret_shares))
                    .bind(i64::from(b.secret_threshold))
                    .bind(&b.sealed_root_key)
                    .bind(&b.sealed_token_key)
                    .bind(&b.cluster_id)
                    .bind(&b.cluster_name)
                    .bind(b.initialized_at)
                    .execute(&mut *tx)
                    .await;
                if let Err(err) = inserted {
                    return Err(match StorageError::from(err) {
                        StorageError::Conflict(_) => StorageError::Conflict("initialisation"),
                        other => other,
                    });
                }
                insert_key_term(&mut *tx, &init.first_term).await?;
                insert_token(&mut *tx, &init.root_token).await?;
                for mount in &init.mounts {
                    insert_mount(&mut *tx, mount).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub async fn key_terms(&self) -> Result<Vec<KeyTermRecord>> {
                let rows: Vec<q::KeyTermRow> = sqlx::query_as(q::SELECT_KEY_TERMS)
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map(q::KeyTermRow::into_record).collect()
            }

            pub async fn add_key_term(&self, term: &KeyTermRecord) -> Result<()> {
                insert_key_term(self.writer(), term)
                    .await
                    .map_err(|e| match e {
                        StorageError::Conflict(_) => StorageError::Conflict("key term"),
                        other => other,
                    })
            }

            pub async fn data_keys_below_term(
                &self,
                term: u32,
                limit: u32,
            ) -> Result<Vec<DataKeyRecord>> {
                let rows: Vec<q::DataKeyRow> = sqlx::query_as(q::SELECT_DATA_KEYS_BELOW)
                    .bind(i64::from(term))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map(q::DataKeyRow::into_record).collect()
            }

            pub async fn rewrap_data_keys(
                &self,
                rewrapped: &[(DataKeyRecord, u32)],
            ) -> Result<u64> {
                let mut tx = self.writer().begin().await?;
                let mut done = 0;
                for (key, old_term) in rewrapped {
                    done += sqlx::query(q::REWRAP_DATA_KEY)
                        .bind(i64::from(key.term))
                        .bind(&key.wrapped)
                        .bind(&key.id)
                        .bind(i64::from(*old_term))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                }
                tx.commit().await?;
                Ok(done)
            }

            pub async fn data_key_counts(&self, term: u32) -> Result<DataKeyCounts> {
                let row: q::CountsRow = sqlx::query_as(q::COUNT_DATA_KEYS)
                    .bind(i64::from(term))
                    .fetch_one(self.reader())
                    .await?;
                Ok(DataKeyCounts {
                    total: to_u64(row.total, "count")?,
                    on_term: to_u64(row.on_term, "count")?,
                    below_term: to_u64(row.below_term, "count")?,
                })
            }

            pub async fn mounts(&self) -> Result<Vec<MountRecord>> {
                let rows: Vec<q::MountRow> = sqlx::query_as(q::SELECT_MOUNTS)
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map(q::MountRow::into_record).collect()
            }

            pub async fn create_mount(&self, mount: &MountRecord) -> Result<()> {
                insert_mount(self.writer(), mount)
                    .await
                    .map_err(|e| match e {
                        StorageError::Conflict(_) => StorageError::Conflict("mount path"),
                        other => other,
                    })
            }

            pub async fn delete_mount(&self, uuid: &str) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                for sql in [
                    q::DELETE_MOUNT_DATA_KEYS,
                    q::DELETE_MOUNT_VERSIONS,
                    q::DELETE_MOUNT_METADATA,
                    q::DELETE_MOUNT_CONFIG,
                    q::DELETE_MOUNT,
                ] {
                    sqlx::query(sql).bind(uuid).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub async fn create_token(&self, token: &TokenRecord) -> Result<()> {
                insert_token(self.writer(), token).await
            }

            pub async fn token(&self, hash: &[u8]) -> Result<Option<TokenRecord>> {
                let row: Option<q::TokenRow> = sqlx::query_as(q::SELECT_TOKEN)
                    .bind(hash)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(q::TokenRow::into_record).transpose()
            }

            pub async fn kv_config(&self, mount: &str) -> Result<Option<KvConfigRecord>> {
                let row: Option<q::KvConfigRow> = sqlx::query_as(q::SELECT_KV_CONFIG)
                    .bind(mount)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(q::KvConfigRow::into_record).transpose()
            }

            pub async fn set_kv_config(&self, mount: &str, config: &KvConfigRecord) -> Result<()> {
                sqlx::query(q::UPSERT_KV_CONFIG)
                    .bind(mount)
                    .bind(i64::from(config.max_versions))
                    .bind(config.cas_required)
                    .bind(to_i64(config.delete_version_after, "delete_version_after")?)
                    .execute(self.writer())
                    .await?;
                Ok(())
            }

            pub async fn kv_write<F, E>(
                &self,
                write: &KvWrite<'_>,
                seal: F,
            ) -> Result<KvWriteOutcome<E>>
            where
                F: Fn(u64) -> std::result::Result<SealedBlob, E> + Send + Sync,
                E: Send,
            {
                let (mount, path, now) = (write.mount, write.path, write.now);
                let mut tx = self.writer().begin().await?;
                sqlx::query(q::ENSURE_KV_METADATA)
                    .bind(mount)
                    .bind(path)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let meta: q::KvMetadataRow = sqlx::query_as(dialect::LOCK_KV_METADATA)
                    .bind(mount)
                    .bind(path)
                    .fetch_one(&mut *tx)
                    .await?;
                let settings = meta.settings()?;
                let config = meta.mount_config()?;
                let current = to_u64(meta.current_version, "current_version")?;
                let cas_required = settings.cas_required || config.cas_required;
                match write.cas {
                    None if cas_required => return Ok(KvWriteOutcome::CasRequired),
                    Some(cas) if cas != current => return Ok(KvWriteOutcome::CasMismatch),
                    _ => {}
                }
                if write.expect_version.is_some_and(|v| v != current) {
                    return Ok(KvWriteOutcome::Raced);
                }
                let version = current + 1;
                let sealed = match seal(version) {
                    Ok(sealed) => sealed,
                    Err(err) => return Ok(KvWriteOutcome::SealFailed(err)),
                };
                let delete_after = match settings.delete_version_after {
                    0 => config.delete_version_after,
                    own => own,
                };
                let deletion_time = match delete_after {
                    0 => None,
                    secs => Some($crate::time::add_seconds(now, secs)),
                };
                let version_i64 = to_i64(version, "version")?;
                insert_data_key(&mut *tx, &sealed.dek).await?;
                sqlx::query(q::INSERT_KV_VERSION)
                    .bind(mount)
                    .bind(path)
                    .bind(version_i64)
                    .bind(now)
                    .bind(deletion_time)
                    .bind(&sealed.dek.id)
                    .bind(&sealed.ciphertext)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(q::BUMP_KV_VERSION)
                    .bind(mount)
                    .bind(path)
                    .bind(version_i64)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let keep = match settings.max_versions.max(config.max_versions) {
                    0 => $crate::storage::DEFAULT_MAX_VERSIONS,
                    n => u64::from(n),
                };
                if version > keep {
                    let cutoff = to_i64(version - keep, "version")?;
                    for sql in [q::PRUNE_KV_DATA_KEYS, q::PRUNE_KV_VERSIONS] {
                        sqlx::query(sql)
                            .bind(mount)
                            .bind(path)
                            .bind(cutoff)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query(q::PRUNE_KV_OLDEST)
                        .bind(mount)
                        .bind(path)
                        .bind(cutoff + 1)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(KvWriteOutcome::Written {
                    version,
                    created_at: now,
                    deletion_time,
                    custom_metadata: meta.custom_metadata()?,
                })
            }

            pub async fn kv_read(
                &self,
                mount: &str,
                path: &str,
                version: u64,
            ) -> Result<Option<KvVersionRead>> {
                let row: Option<q::KvVersionRow> = sqlx::query_as(q::SELECT_KV_VERSION)
                    .bind(mount)
                    .bind(path)
                    .bind(to_i64(version, "version")?)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(q::KvVersionRow::into_read).transpose()
            }

            pub async fn kv_metadata(
                &self,
                mount: &str,
                path: &str,
            ) -> Result<Option<KvMetadataRead>> {
                let mut conn = self.reader().acquire().await?;
                let meta: Option<q::KvMetadataRow> = sqlx::query_as(q::SELECT_KV_METADATA)
                    .bind(mount)
                    .bind(path)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(meta) = meta else {
                    return Ok(None);
                };
                let rows: Vec<q::KvVersionInfoRow> = sqlx::query_as(q::SELECT_KV_VERSION_LIST)
                    .bind(mount)
                    .bind(path)
                    .fetch_all(&mut *conn)
                    .await?;
                Ok(Some(KvMetadataRead {
                    current_version: to_u64(meta.current_version, "current_version")?,
                    oldest_version: to_u64(meta.oldest_version, "oldest_version")?,
                    settings: meta.settings()?,
                    custom_metadata: meta.custom_metadata()?,
                    created_at: meta.created_at,
                    updated_at: meta.updated_at,
                    versions: rows
                        .into_iter()
                        .map(q::KvVersionInfoRow::into_record)
                        .collect::<Result<_>>()?,
                }))
            }

            pub async fn kv_update_metadata(
                &self,
                mount: &str,
                path: &str,
                update: &KvMetadataUpdate,
                now: UnixNanos,
            ) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query(q::ENSURE_KV_METADATA)
                    .bind(mount)
                    .bind(path)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let meta: q::KvMetadataRow = sqlx::query_as(dialect::LOCK_KV_METADATA)
                    .bind(mount)
                    .bind(path)
                    .fetch_one(&mut *tx)
                    .await?;
                sqlx::query(q::UPDATE_KV_SETTINGS)
                    .bind(mount)
                    .bind(path)
                    .bind(update.max_versions.map(i64::from))
                    .bind(update.cas_required)
                    .bind(
                        update
                            .delete_version_after
                            .map(|d| to_i64(d, "delete_version_after"))
                            .transpose()?,
                    )
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if let Some(custom) = &update.custom_metadata {
                    if let Some(old) = meta.custom_metadata()? {
                        sqlx::query(q::DELETE_DATA_KEY)
                            .bind(&old.dek.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    if let Some(new) = custom {
                        insert_data_key(&mut *tx, &new.dek).await?;
                    }
                    sqlx::query(q::UPDATE_KV_CUSTOM)
                        .bind(mount)
                        .bind(path)
                        .bind(custom.as_ref().map(|c| &c.dek.id))
                        .bind(custom.as_ref().map(|c| &c.ciphertext))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub async fn kv_delete_versions(
                &self,
                mount: &str,
                path: &str,
                versions: KvVersions<'_>,
                now: UnixNanos,
            ) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                match versions {
                    KvVersions::Latest => {
                        sqlx::query(q::SOFT_DELETE_LATEST)
                            .bind(mount)
                            .bind(path)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                    KvVersions::These(list) => {
                        for &version in list {
                            sqlx::query(q::SOFT_DELETE_VERSION)
                                .bind(mount)
                                .bind(path)
                                .bind(now)
                                .bind(to_i64(version, "version")?)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            pub async fn kv_undelete_versions(
                &self,
                mount: &str,
                path: &str,
                versions: &[u64],
            ) -> Result<()> {
                self.for_each_version(q::UNDELETE_VERSION, None, mount, path, versions)
                    .await
            }

            pub async fn kv_destroy_versions(
                &self,
                mount: &str,
                path: &str,
                versions: &[u64],
            ) -> Result<()> {
                self.for_each_version(
                    q::DESTROY_VERSION_KEY,
                    Some(q::DESTROY_VERSION),
                    mount,
                    path,
                    versions,
                )
                .await
            }

            /// Runs one or two statements for each version, in one transaction.
            async fn for_each_version(
                &self,
                first: &'static str,
                second: Option<&'static str>,
                mount: &str,
                path: &str,
                versions: &[u64],
            ) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                for &version in versions {
                    for sql in std::iter::once(first).chain(second) {
                        sqlx::query(sql)
                            .bind(mount)
                            .bind(path)
                            .bind(to_i64(version, "version")?)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            pub async fn kv_delete_key(&self, mount: &str, path: &str) -> Result<()> {
                let mut tx = self.writer().begin().await?;
                for sql in [
                    q::DELETE_KEY_DATA_KEYS,
                    q::DELETE_KEY_VERSIONS,
                    q::DELETE_KEY_METADATA,
                ] {
                    sqlx::query(sql)
                        .bind(mount)
                        .bind(path)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            pub async fn kv_list(
                &self,
                mount: &str,
                prefix: &str,
                after: &str,
                limit: u32,
            ) -> Result<Vec<String>> {
                let upper = $crate::storage::prefix_upper_bound(prefix);
                let mut cursor = if after.is_empty() {
                    q::ListCursor::From(prefix.to_owned())
                } else {
                    match q::fold_listed_path(prefix, &format!("{prefix}{after}")) {
                        Some((_, next)) => next,
                        None => return Ok(Vec::new()),
                    }
                };
                let mut names = Vec::new();
                'scan: loop {
                    let (sql, from) = match &cursor {
                        q::ListCursor::From(p) => (q::LIST_KV_PATHS_FROM, p.clone()),
                        q::ListCursor::After(p) => (q::LIST_KV_PATHS_AFTER, p.clone()),
                    };
                    let paths: Vec<(String,)> = sqlx::query_as(sql)
                        .bind(mount)
                        .bind(&from)
                        .bind(upper.as_deref())
                        .bind(q::LIST_BATCH)
                        .fetch_all(self.reader())
                        .await?;
                    let fetched = paths.len();
                    for (path,) in paths {
                        let Some((name, next)) = q::fold_listed_path(prefix, &path) else {
                            continue;
                        };
                        let skips_directory = matches!(next, q::ListCursor::From(_));
                        names.push(name);
                        cursor = next;
                        if limit != 0 && names.len() >= limit as usize {
                            break 'scan;
                        }
                        if skips_directory {
                            // Everything under the directory is folded into
                            // its one name: continue past it.
                            continue 'scan;
                        }
                    }
                    if (fetched as i64) < q::LIST_BATCH {
                        break;
                    }
                }
                Ok(names)
            }
        }

        async fn insert_key_term<'e, X>(ex: X, term: &KeyTermRecord) -> Result<()>
        where
            X: sqlx::Executor<'e, Database = Db>,
        {
            sqlx::query(q::INSERT_KEY_TERM)
                .bind(i64::from(term.term))
                .bind(&term.sealed_key)
                .bind(term.installed_at)
                .execute(ex)
                .await?;
            Ok(())
        }

        async fn insert_data_key<'e, X>(ex: X, key: &DataKeyRecord) -> Result<()>
        where
            X: sqlx::Executor<'e, Database = Db>,
        {
            sqlx::query(q::INSERT_DATA_KEY)
                .bind(&key.id)
                .bind(i64::from(key.term))
                .bind(&key.wrapped)
                .execute(ex)
                .await?;
            Ok(())
        }

        async fn insert_mount<'e, X>(ex: X, m: &MountRecord) -> Result<()>
        where
            X: sqlx::Executor<'e, Database = Db>,
        {
            sqlx::query(q::INSERT_MOUNT)
                .bind(&m.uuid)
                .bind(&m.path)
                .bind(m.kind.as_str())
                .bind(&m.mount_type)
                .bind(&m.description)
                .bind(&m.accessor)
                .bind(&m.options)
                .bind(&m.config)
                .bind(m.created_at)
                .execute(ex)
                .await?;
            Ok(())
        }

        async fn insert_token<'e, X>(ex: X, t: &TokenRecord) -> Result<()>
        where
            X: sqlx::Executor<'e, Database = Db>,
        {
            sqlx::query(q::INSERT_TOKEN)
                .bind(&t.hash)
                .bind(&t.accessor)
                .bind(t.parent.as_deref())
                .bind(q::policies_json(&t.policies))
                .bind(&t.meta)
                .bind(&t.display_name)
                .bind(to_i64(t.num_uses, "num_uses")?)
                .bind(t.created_at)
                .bind(t.expire_at)
                .bind(to_i64(t.creation_ttl, "creation_ttl")?)
                .bind(to_i64(t.explicit_max_ttl, "explicit_max_ttl")?)
                .bind(to_i64(t.period, "period")?)
                .bind(t.renewable)
                .bind(t.orphan)
                .bind(&t.token_type)
                .bind(&t.path)
                .execute(ex)
                .await?;
            Ok(())
        }
    };
}

pub(super) use impl_queries;
