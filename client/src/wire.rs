//! The JSON shapes of the Vault-compatible API, defined once.
//!
//! The server serialises these and the client deserialises them, so the two
//! cannot drift apart. Field names and presence follow Vault/OpenBao exactly
//! (see `VAULT_API.md`): clients such as hvac, vaultrs and External Secrets
//! Operator read them. Deserialisation is lenient (missing fields default)
//! so the client also works against Vault and OpenBao themselves.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The envelope around every JSON answer except the seal lifecycle ones.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Envelope<T> {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub lease_id: String,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub lease_duration: u64,
    pub data: Option<T>,
    #[serde(default)]
    pub wrap_info: Option<Value>,
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
    #[serde(default)]
    pub auth: Option<Auth>,
}

/// The body of every error answer: `{"errors": ["..."]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The `auth` object of a login or token-creation answer.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Auth {
    pub client_token: String,
    pub accessor: String,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub token_policies: Vec<String>,
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub lease_duration: u64,
    #[serde(default)]
    pub renewable: bool,
    #[serde(default)]
    pub entity_id: String,
    #[serde(default)]
    pub token_type: String,
    #[serde(default)]
    pub orphan: bool,
    #[serde(default)]
    pub mfa_requirement: Option<Value>,
    #[serde(default)]
    pub num_uses: u64,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("client_token", &"<redacted>")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------
// Seal lifecycle: raw JSON, no envelope.

/// `GET /v1/sys/init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitStatus {
    pub initialized: bool,
}

/// `PUT /v1/sys/init`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InitRequest {
    #[serde(default)]
    pub secret_shares: u32,
    #[serde(default)]
    pub secret_threshold: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pgp_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub root_token_pgp_key: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recovery_shares: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recovery_threshold: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The answer to `PUT /v1/sys/init`: the only time the unseal key shares and
/// the root token are ever shown.
#[derive(Clone, Serialize, Deserialize)]
pub struct InitResponse {
    pub keys: Vec<String>,
    pub keys_base64: Vec<String>,
    pub root_token: String,
}

impl std::fmt::Debug for InitResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitResponse")
            .field("keys", &format_args!("<{} redacted>", self.keys.len()))
            .field("root_token", &"<redacted>")
            .finish()
    }
}

/// `PUT /v1/sys/unseal`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct UnsealRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub reset: bool,
    #[serde(default)]
    pub migrate: bool,
}

impl std::fmt::Debug for UnsealRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnsealRequest")
            .field("key", &self.key.as_ref().map(|_| "<redacted>"))
            .field("reset", &self.reset)
            .finish()
    }
}

/// `GET /v1/sys/seal-status`, also the answer to each `PUT /v1/sys/unseal`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SealStatus {
    #[serde(rename = "type")]
    pub seal_type: String,
    pub initialized: bool,
    pub sealed: bool,
    /// Threshold: how many shares unseal.
    pub t: u32,
    /// How many shares exist.
    pub n: u32,
    /// Shares entered so far in this unseal attempt.
    pub progress: u32,
    pub nonce: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub build_date: String,
    #[serde(default)]
    pub migration: bool,
    #[serde(default)]
    pub recovery_seal: bool,
    #[serde(default)]
    pub storage_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// `GET /v1/sys/health` (the status code carries the state too).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Health {
    pub initialized: bool,
    pub sealed: bool,
    pub standby: bool,
    #[serde(default)]
    pub performance_standby: bool,
    #[serde(default)]
    pub replication_performance_mode: String,
    #[serde(default)]
    pub replication_dr_mode: String,
    #[serde(default)]
    pub server_time_utc: i64,
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// secretd only: audit devices whose last write failed, with why. While
    /// no device can write, every audited request fails with 500.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub audit_failures: BTreeMap<String, String>,
}

/// `GET /v1/sys/leader`. Without HA only `ha_enabled: false` is sent.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Leader {
    pub ha_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_self: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader_cluster_address: Option<String>,
}

// ---------------------------------------------------------------------------
// sys: mounts and keyring (enveloped).

/// The `config` of a mount as reported by `GET sys/mounts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountConfigOutput {
    #[serde(default)]
    pub default_lease_ttl: u64,
    #[serde(default)]
    pub force_no_cache: bool,
    #[serde(default)]
    pub max_lease_ttl: u64,
}

/// One entry of `GET sys/mounts` (keyed by path, e.g. `"secret/"`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountOutput {
    #[serde(rename = "type")]
    pub mount_type: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub accessor: String,
    #[serde(default)]
    pub config: MountConfigOutput,
    #[serde(default)]
    pub options: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub seal_wrap: bool,
    #[serde(default)]
    pub external_entropy_access: bool,
    #[serde(default)]
    pub plugin_version: String,
    #[serde(default)]
    pub running_plugin_version: String,
    #[serde(default)]
    pub running_sha256: String,
    #[serde(default)]
    pub uuid: String,
}

/// `GET sys/internal/ui/mounts/:path`: the mount that serves a path.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UiMount {
    pub path: String,
    #[serde(flatten)]
    pub mount: MountOutput,
}

/// `POST sys/mounts/:path`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MountInput {
    #[serde(rename = "type")]
    pub mount_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<BTreeMap<String, String>>,
}

/// `GET sys/key-status`. `rewrap_pending` and `data_keys` are secretd's own:
/// how many data keys are still wrapped by an older key term, of how many.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyStatus {
    pub term: u32,
    pub install_time: String,
    #[serde(default)]
    pub encryptions: u64,
    #[serde(default)]
    pub rewrap_pending: u64,
    #[serde(default)]
    pub data_keys: u64,
}

/// `GET sys/ha-status`: every node serving the same database.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HaStatus {
    pub nodes: Vec<HaNode>,
}

/// One node in `sys/ha-status`. Every unsealed node serves reads and
/// writes, so each is an `active_node`; `last_echo` is when the answering
/// node last saw the other's heartbeat (null for itself). `sealed` and
/// `started_at` are secretd's own.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HaNode {
    pub hostname: String,
    pub api_address: String,
    #[serde(default)]
    pub cluster_address: String,
    pub active_node: bool,
    pub last_echo: Option<String>,
    pub version: String,
    #[serde(default)]
    pub sealed: bool,
    #[serde(default)]
    pub started_at: String,
}

// ---------------------------------------------------------------------------
// Tokens.

/// `PUT sys/leases/lookup`: a lease's times (RFC 3339) and TTL.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLookup {
    pub id: String,
    pub issue_time: String,
    pub expire_time: String,
    #[serde(default)]
    pub last_renewal: Option<String>,
    pub renewable: bool,
    pub ttl: u64,
}

/// `GET auth/token/lookup-self` and friends. `Debug` leaves out `id`
/// (the token itself).
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct TokenLookup {
    pub accessor: String,
    pub creation_time: i64,
    pub creation_ttl: u64,
    pub display_name: String,
    #[serde(default)]
    pub entity_id: String,
    /// RFC 3339, or null for a token that never expires.
    pub expire_time: Option<String>,
    #[serde(default)]
    pub explicit_max_ttl: u64,
    /// The token itself; empty in a lookup by accessor. A lookup-self answer
    /// echoes the caller's own token, as Vault does.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub issue_time: String,
    #[serde(default)]
    pub meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub num_uses: u64,
    #[serde(default)]
    pub orphan: bool,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub policies: Vec<String>,
    #[serde(default)]
    pub renewable: bool,
    pub ttl: u64,
    #[serde(rename = "type")]
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u64>,
    /// RFC 3339; only once the token has been renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewal: Option<String>,
    /// Unix seconds; only once the token has been renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_renewal_time: Option<i64>,
}

impl std::fmt::Debug for TokenLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLookup")
            .field("id", &if self.id.is_empty() { "" } else { "<redacted>" })
            .field("accessor", &self.accessor)
            .field("display_name", &self.display_name)
            .field("policies", &self.policies)
            .field("ttl", &self.ttl)
            .field("expire_time", &self.expire_time)
            .field("renewable", &self.renewable)
            .field("orphan", &self.orphan)
            .field("num_uses", &self.num_uses)
            .field("type", &self.token_type)
            .finish_non_exhaustive()
    }
}

/// `POST auth/token/create` and `auth/token/create-orphan`. Fields left
/// empty are not sent, so the server's defaults apply: the parent's
/// policies, the mount's TTL, renewable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreateRequest {
    /// The new token's policies (`default` is added unless
    /// `no_default_policy`). Must be a subset of the caller's unless it
    /// is root or has `sudo`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    /// Metadata shown by lookups (and in audit logs).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta: BTreeMap<String, String>,
    /// Create an orphan (no parent) through `create`; needs root or sudo.
    /// `create-orphan` makes orphans without it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_parent: bool,
    /// Leave out the `default` policy.
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_default_policy: bool,
    /// Whether the token can be renewed (the server's default: true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewable: Option<bool>,
    /// A Go duration string or seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// A hard limit on the token's life, renewals included; a Go duration
    /// string or seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explicit_max_ttl: Option<String>,
    /// Makes a periodic token: each renewal resets its TTL to this (root
    /// or sudo only). A Go duration string or seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<String>,
    /// How many requests the token may make (0 or absent: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_uses: Option<u64>,
    /// Shown in lookups, prefixed `token-` by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

// ---------------------------------------------------------------------------
// sys: ACL policies, mount tuning, audit devices (enveloped).

/// `GET sys/policies/acl/:name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclPolicy {
    pub name: String,
    /// The policy document as written (HCL or JSON).
    pub policy: String,
    /// How many times the policy was written (OpenBao and secretd).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
}

/// `PUT sys/policies/acl/:name`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclPolicyWrite {
    /// The policy document (HCL or JSON).
    pub policy: String,
}

/// `POST sys/mounts/:path/tune` (and `sys/auth/:path/tune`). Absent fields
/// are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountTuneInput {
    /// A Go duration string or seconds; `"system"` (or 0) means the
    /// system's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_lease_ttl: Option<String>,
    /// A Go duration string or seconds; `"system"` (or 0) means the
    /// system's maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lease_ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One entry of `GET sys/audit`, keyed by path with a trailing slash
/// (`"file/"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDevice {
    #[serde(rename = "type")]
    pub device_type: String,
    #[serde(default)]
    pub description: String,
    /// The device's options as strings (`file_path`, `mode`, ...).
    #[serde(default, deserialize_with = "null_as_default")]
    pub options: BTreeMap<String, String>,
    #[serde(default)]
    pub local: bool,
    /// The path again, with its trailing slash.
    #[serde(default)]
    pub path: String,
}

/// `PUT sys/audit/:path`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditDeviceInput {
    /// The device type: `file`.
    #[serde(rename = "type")]
    pub device_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The device's options, as strings: for `file`, `file_path` (a path,
    /// `stdout` or `discard`), `mode`, `hmac_accessor`, `log_raw`, ...
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub local: bool,
}

/// `null` read as the type's default (an empty map), as Go's `omitempty`
/// peers sometimes send it.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

// ---------------------------------------------------------------------------
// KV version 2.

/// `data` of a `LIST` answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KeyList {
    pub keys: Vec<String>,
}

/// The metadata of one version, as returned with a read or a write.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvVersionMetadata {
    pub created_time: String,
    #[serde(default)]
    pub custom_metadata: Option<BTreeMap<String, String>>,
    /// Empty unless the version is (or is scheduled to be) deleted.
    #[serde(default)]
    pub deletion_time: String,
    #[serde(default)]
    pub destroyed: bool,
    pub version: u64,
}

/// `data` of `GET :mount/data/:path`. `data` is null for a deleted or
/// destroyed version, which is answered with status 404.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct KvData {
    pub data: Option<Map<String, Value>>,
    pub metadata: KvVersionMetadata,
}

impl std::fmt::Debug for KvData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvData")
            .field(
                "data",
                &self
                    .data
                    .as_ref()
                    .map(|d| format!("<{} keys redacted>", d.len())),
            )
            .field("metadata", &self.metadata)
            .finish()
    }
}

/// `options` of a KV write.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvWriteOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas: Option<u64>,
}

/// `POST :mount/data/:path`.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct KvWrite {
    pub data: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<KvWriteOptions>,
}

/// `GET :mount/config`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvConfig {
    pub cas_required: bool,
    pub delete_version_after: String,
    pub max_versions: u32,
}

/// One version's entry in the metadata answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvVersionInfo {
    pub created_time: String,
    #[serde(default)]
    pub deletion_time: String,
    #[serde(default)]
    pub destroyed: bool,
}

/// `GET :mount/metadata/:path`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvMetadata {
    pub cas_required: bool,
    pub created_time: String,
    pub current_version: u64,
    pub custom_metadata: Option<BTreeMap<String, String>>,
    pub delete_version_after: String,
    pub max_versions: u32,
    pub oldest_version: u64,
    pub updated_time: String,
    /// Keyed by the version number as a string, as Vault does.
    pub versions: BTreeMap<String, KvVersionInfo>,
}

/// `POST :mount/metadata/:path`. Absent fields are left as they are.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvMetadataWrite {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_versions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas_required: Option<bool>,
    /// A Go duration string or seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_version_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metadata: Option<BTreeMap<String, String>>,
}

/// Body of `delete/`, `undelete/` and `destroy/`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvVersions {
    pub versions: Vec<u64>,
}

/// `GET :mount/subkeys/:path`: the key structure without values (leaves
/// are null).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct KvSubkeys {
    pub subkeys: Option<Value>,
    pub metadata: KvVersionMetadata,
}

/// `POST :mount/config`. Absent fields are left as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvConfigWrite {
    /// How many versions to keep (0: the default of 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_versions: Option<u32>,
    /// Whether every write must carry `options.cas`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas_required: Option<bool>,
    /// A Go duration string or seconds; `"0s"` keeps versions forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_version_after: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_a_token() {
        let lookup = TokenLookup {
            id: "hvs.looked-up-secret".into(),
            accessor: "acc".into(),
            ..TokenLookup::default()
        };
        let auth = Auth {
            client_token: "hvs.auth-secret".into(),
            accessor: "acc".into(),
            ..Auth::default()
        };
        let shown = format!("{lookup:?} {auth:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("acc"));
        let by_accessor = TokenLookup::default();
        assert!(!format!("{by_accessor:?}").contains("redacted"));
    }
}
