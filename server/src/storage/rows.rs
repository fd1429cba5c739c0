//! Rows as the database returns them, and their conversion to records.
//! `FromRow` is derived generically, so each row type decodes on either
//! driver.

use super::{
    BarrierRecord, DataKeyRecord, KeyTermRecord, KvConfigRecord, KvKeySettings, KvVersionRead,
    KvVersionRecord, LeaseRecord, MountKind, MountRecord, Result, ScheduleRecord, SealedBlob,
    StorageError, TokenRecord, to_u32, to_u64,
};

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
    last_renewal: Option<i64>,
    auth_mount: Option<String>,
    internal: Option<Vec<u8>>,
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
            last_renewal: self.last_renewal,
            auth_mount: self.auth_mount,
            internal: self
                .internal
                .as_deref()
                .map(SealedBlob::from_bytes)
                .transpose()?,
        })
    }
}

pub(super) fn policies_json(policies: &[String]) -> String {
    // A Vec<String> always serialises.
    serde_json::to_string(policies).unwrap_or_else(|_| "[]".to_owned())
}

#[derive(sqlx::FromRow)]
pub(super) struct LeaseRow {
    id: String,
    mount_uuid: String,
    role: String,
    token_hash: Option<Vec<u8>>,
    issued_at: i64,
    expire_at: i64,
    last_renewal: Option<i64>,
    renewable: bool,
    dek: Vec<u8>,
    term: Option<i64>,
    wrapped: Option<Vec<u8>>,
    secret: Vec<u8>,
    due_at: i64,
    attempts: i64,
    irrevocable: bool,
    last_error: Option<String>,
}

impl LeaseRow {
    pub(super) fn into_record(self) -> Result<LeaseRecord> {
        let secret = sealed_blob(Some(self.dek), self.term, self.wrapped, Some(self.secret))?
            .ok_or_else(|| StorageError::Corrupt("lease secret".to_owned()))?;
        Ok(LeaseRecord {
            id: self.id,
            mount_uuid: self.mount_uuid,
            role: self.role,
            token_hash: self.token_hash,
            issued_at: self.issued_at,
            expire_at: self.expire_at,
            last_renewal: self.last_renewal,
            renewable: self.renewable,
            secret,
            due_at: self.due_at,
            attempts: to_u32(self.attempts, "lease attempts")?,
            irrevocable: self.irrevocable,
            last_error: self.last_error,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ScheduleRow {
    due_at: i64,
    claimed_until: Option<i64>,
    attempts: i64,
    last_error: Option<String>,
}

impl ScheduleRow {
    pub(super) fn into_record(self) -> Result<ScheduleRecord> {
        Ok(ScheduleRecord {
            due_at: self.due_at,
            claimed_until: self.claimed_until,
            attempts: to_u32(self.attempts, "job attempts")?,
            last_error: self.last_error,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct MountEntryRow {
    dek: Vec<u8>,
    term: Option<i64>,
    wrapped: Option<Vec<u8>>,
    value: Vec<u8>,
}

impl MountEntryRow {
    pub(super) fn into_blob(self) -> Result<SealedBlob> {
        sealed_blob(Some(self.dek), self.term, self.wrapped, Some(self.value))?
            .ok_or_else(|| StorageError::Corrupt("mount entry".to_owned()))
    }
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
    pub(super) fn into_read(self) -> Result<KvVersionRead> {
        Ok(KvVersionRead {
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

#[derive(sqlx::FromRow)]
pub(super) struct PolicyRow {
    name: String,
    policy: String,
    version: i64,
    created_at: i64,
    updated_at: i64,
}

#[derive(sqlx::FromRow)]
pub(super) struct NodeRow {
    id: String,
    hostname: String,
    api_address: String,
    version: String,
    sealed: bool,
    started_at: i64,
    last_seen: i64,
}

impl NodeRow {
    pub(super) fn into_record(self) -> super::NodeRecord {
        super::NodeRecord {
            id: self.id,
            hostname: self.hostname,
            api_address: self.api_address,
            version: self.version,
            sealed: self.sealed,
            started_at: self.started_at,
            last_seen: self.last_seen,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditDeviceRow {
    path: String,
    uuid: String,
    device_type: String,
    description: String,
    options: String,
    local: bool,
    hmac_dek: Vec<u8>,
    hmac_term: Option<i64>,
    hmac_wrapped: Option<Vec<u8>>,
    hmac_key: Vec<u8>,
    created_at: i64,
}

impl AuditDeviceRow {
    pub(super) fn into_record(self) -> Result<super::AuditDeviceRecord> {
        Ok(super::AuditDeviceRecord {
            path: self.path,
            uuid: self.uuid,
            device_type: self.device_type,
            description: self.description,
            options: self.options,
            local: self.local,
            hmac_key: sealed_blob(
                Some(self.hmac_dek),
                self.hmac_term,
                self.hmac_wrapped,
                Some(self.hmac_key),
            )
            .ok()
            .flatten(),
            created_at: self.created_at,
        })
    }
}

impl PolicyRow {
    pub(super) fn into_record(self) -> Result<super::PolicyRecord> {
        Ok(super::PolicyRecord {
            name: self.name,
            policy: self.policy,
            version: to_u64(self.version, "policy version")?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}
