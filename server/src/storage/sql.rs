//! The SQL both databases run, written once with `$n` parameters (sqlx
//! binds them on SQLite too). Statements that differ per dialect live in
//! the `dialect` module beside each implementation.

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
    "SELECT id, term, wrapped FROM data_keys WHERE term < $1 AND id > $2 ORDER BY id LIMIT $3";
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
pub(super) const DELETE_MOUNT_ENTRY_KEYS: &str =
    "DELETE FROM data_keys WHERE id IN (SELECT dek FROM mount_entries WHERE mount_uuid = $1)";
pub(super) const DELETE_MOUNT_ENTRIES: &str = "DELETE FROM mount_entries WHERE mount_uuid = $1";
/// Revokes every live token an auth mount issued (their trees follow).
pub(super) const REVOKE_MOUNT_TOKENS: &str =
    "UPDATE tokens SET revoked = TRUE WHERE auth_mount = $1 AND NOT revoked";
pub(super) const DELETE_MOUNT: &str = "DELETE FROM mounts WHERE uuid = $1";
pub(super) const TUNE_MOUNT: &str =
    "UPDATE mounts SET description = $2, config = $3 WHERE uuid = $1";

pub(super) const INSERT_TOKEN: &str = "INSERT INTO tokens (hash, accessor, parent, policies, \
    meta, display_name, num_uses, created_at, expire_at, creation_ttl, explicit_max_ttl, period, \
    renewable, orphan, token_type, path, auth_mount, internal) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)";
pub(super) const SELECT_TOKEN: &str = "SELECT hash, accessor, parent, policies, meta, \
    display_name, num_uses, created_at, expire_at, creation_ttl, explicit_max_ttl, period, \
    renewable, orphan, token_type, path, last_renewal, auth_mount, internal FROM tokens \
    WHERE hash = $1 AND NOT revoked";
pub(super) const SELECT_TOKEN_BY_ACCESSOR: &str = "SELECT hash, accessor, parent, policies, meta, \
    display_name, num_uses, created_at, expire_at, creation_ttl, explicit_max_ttl, period, \
    renewable, orphan, token_type, path, last_renewal, auth_mount, internal FROM tokens \
    WHERE accessor = $1 AND NOT revoked";
pub(super) const SELECT_ACCESSORS: &str =
    "SELECT accessor FROM tokens WHERE NOT revoked ORDER BY accessor";
/// A use of a token with a use limit; returns the uses left. The last use
/// revokes the token in the same statement, so that no request can take a
/// token with no uses left for one without a limit.
pub(super) const USE_TOKEN: &str = "UPDATE tokens SET num_uses = num_uses - 1, \
    revoked = (num_uses = 1) WHERE hash = $1 AND num_uses > 0 AND NOT revoked RETURNING num_uses";
/// Renews a token that is live and not expired at $3.
pub(super) const RENEW_TOKEN: &str = "UPDATE tokens SET expire_at = $2, last_renewal = $3 \
    WHERE hash = $1 AND NOT revoked AND (expire_at IS NULL OR expire_at > $3)";
pub(super) const REVOKE_TOKEN: &str = "UPDATE tokens SET revoked = TRUE WHERE hash = $1";
/// Makes up to $2 children of a token orphans (revoke-orphan).
pub(super) const ORPHAN_CHILDREN: &str = "UPDATE tokens SET parent = NULL, orphan = TRUE \
    WHERE hash IN (SELECT hash FROM tokens WHERE parent = $1 LIMIT $2)";
/// Revokes up to $1 tokens whose parent is revoked: one step down every
/// revoked tree at once.
pub(super) const CASCADE_REVOCATION: &str = "UPDATE tokens SET revoked = TRUE \
    WHERE hash IN (SELECT c.hash FROM tokens c JOIN tokens p ON c.parent = p.hash \
    WHERE p.revoked AND NOT c.revoked LIMIT $1)";
/// The outer `expire_at` check is evaluated again on a row another
/// transaction renewed meanwhile (PostgreSQL), so a renewal is not undone.
pub(super) const REVOKE_EXPIRED: &str = "UPDATE tokens SET revoked = TRUE \
    WHERE hash IN (SELECT hash FROM tokens WHERE expire_at <= $1 AND NOT revoked LIMIT $2) \
    AND expire_at <= $1";
/// Deletes up to $1 revoked tokens none of whose children is still live
/// and that own no lease any more (their leases are revoked first).
pub(super) const SWEEP_REVOKED: &str = "DELETE FROM tokens WHERE hash IN (SELECT t.hash \
    FROM tokens t WHERE t.revoked AND NOT EXISTS (SELECT 1 FROM tokens c \
    WHERE c.parent = t.hash AND NOT c.revoked) \
    AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.token_hash = t.hash) LIMIT $1)";

pub(super) const UPSERT_NODE: &str = "INSERT INTO nodes (id, hostname, api_address, version, \
    sealed, started_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (id) DO UPDATE \
    SET hostname = excluded.hostname, api_address = excluded.api_address, \
    version = excluded.version, sealed = excluded.sealed, last_seen = excluded.last_seen";
pub(super) const SELECT_NODES: &str = "SELECT id, hostname, api_address, version, sealed, \
    started_at, last_seen FROM nodes WHERE last_seen >= $1 ORDER BY id";
pub(super) const DELETE_NODE: &str = "DELETE FROM nodes WHERE id = $1";
pub(super) const DELETE_NODES_SEEN_BEFORE: &str = "DELETE FROM nodes WHERE last_seen < $1";

pub(super) const SELECT_POLICY: &str =
    "SELECT name, policy, version, created_at, updated_at FROM policies WHERE name = $1";
pub(super) const SELECT_POLICY_NAMES: &str = "SELECT name FROM policies ORDER BY name";
pub(super) const SELECT_CHANGE_COUNTERS: &str =
    "SELECT topic, version FROM change_counters ORDER BY topic";
pub(super) const UPSERT_POLICY: &str = "INSERT INTO policies (name, policy, version, created_at, \
    updated_at) VALUES ($1, $2, 1, $3, $3) ON CONFLICT (name) DO UPDATE \
    SET policy = excluded.policy, version = policies.version + 1, updated_at = excluded.updated_at";
pub(super) const INSERT_POLICY_IF_MISSING: &str = "INSERT INTO policies (name, policy, version, \
    created_at, updated_at) VALUES ($1, $2, 1, $3, $3) ON CONFLICT (name) DO NOTHING";
pub(super) const DELETE_POLICY: &str = "DELETE FROM policies WHERE name = $1";

pub(super) const SELECT_AUDIT_DEVICES: &str = "SELECT a.path, a.uuid, a.device_type, \
    a.description, a.options, a.local, a.hmac_dek, k.term AS hmac_term, k.wrapped AS hmac_wrapped, \
    a.hmac_key, a.created_at FROM audit_devices a LEFT JOIN data_keys k ON k.id = a.hmac_dek \
    ORDER BY a.path";
pub(super) const INSERT_AUDIT_DEVICE: &str = "INSERT INTO audit_devices (path, uuid, \
    device_type, description, options, local, hmac_dek, hmac_key, created_at) \
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
pub(super) const DELETE_AUDIT_DEVICE_KEY: &str =
    "DELETE FROM data_keys WHERE id IN (SELECT hmac_dek FROM audit_devices WHERE path = $1)";
pub(super) const DELETE_AUDIT_DEVICE: &str = "DELETE FROM audit_devices WHERE path = $1";

pub(super) const SELECT_MOUNT_ENTRY: &str = "SELECT e.dek, k.term, k.wrapped, e.value \
    FROM mount_entries e LEFT JOIN data_keys k ON k.id = e.dek \
    WHERE e.mount_uuid = $1 AND e.path = $2";
/// Paths from $2 (inclusive) to $3 (exclusive, NULL for no bound).
pub(super) const LIST_MOUNT_ENTRIES: &str = "SELECT path FROM mount_entries \
    WHERE mount_uuid = $1 AND path >= $2 AND ($3 IS NULL OR path < $3) ORDER BY path LIMIT $4";
pub(super) const DELETE_MOUNT_ENTRY_KEY: &str = "DELETE FROM data_keys WHERE id IN \
    (SELECT dek FROM mount_entries WHERE mount_uuid = $1 AND path = $2)";
pub(super) const UPSERT_MOUNT_ENTRY: &str = "INSERT INTO mount_entries (mount_uuid, path, dek, \
    value, updated_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (mount_uuid, path) DO UPDATE \
    SET dek = excluded.dek, value = excluded.value, updated_at = excluded.updated_at";
pub(super) const DELETE_MOUNT_ENTRY: &str =
    "DELETE FROM mount_entries WHERE mount_uuid = $1 AND path = $2";

pub(super) const INSERT_LEASE: &str = "INSERT INTO leases (id, mount_uuid, role, token_hash, \
    issued_at, expire_at, last_renewal, renewable, dek, secret, due_at, attempts, irrevocable, \
    last_error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)";
pub(super) const SELECT_LEASE: &str = "SELECT l.id, l.mount_uuid, l.role, l.token_hash, \
    l.issued_at, l.expire_at, l.last_renewal, l.renewable, l.dek, k.term, k.wrapped, l.secret, \
    l.due_at, l.attempts, l.irrevocable, l.last_error \
    FROM leases l LEFT JOIN data_keys k ON k.id = l.dek WHERE l.id = $1";
pub(super) const SELECT_IRREVOCABLE_LEASES: &str = "SELECT l.id, l.mount_uuid, l.role, \
    l.token_hash, l.issued_at, l.expire_at, l.last_renewal, l.renewable, l.dek, k.term, k.wrapped, \
    l.secret, l.due_at, l.attempts, l.irrevocable, l.last_error \
    FROM leases l LEFT JOIN data_keys k ON k.id = l.dek WHERE l.irrevocable ORDER BY l.id LIMIT $1";
/// Ids from $1 (inclusive) to $2 (exclusive, NULL for no bound).
pub(super) const LIST_LEASE_IDS: &str =
    "SELECT id FROM leases WHERE id >= $1 AND ($2 IS NULL OR id < $2) ORDER BY id LIMIT $3";
/// A lease due for revocation (`due_at` passed) cannot be renewed, nor
/// one already expired.
pub(super) const RENEW_LEASE: &str = "UPDATE leases SET expire_at = $2, due_at = $2, \
    last_renewal = $3 WHERE id = $1 AND expire_at > $3 AND due_at > $3 AND NOT irrevocable";
/// A reserved lease, untouched since (unclaimed, not made due), made due
/// at its expiry.
pub(super) const SETTLE_LEASE: &str = "UPDATE leases SET due_at = $3 \
    WHERE id = $1 AND due_at = $2 AND attempts = 0 AND NOT irrevocable";
pub(super) const CLAIM_LEASE: &str = "UPDATE leases SET due_at = $2, attempts = attempts + 1, \
    expire_at = CASE WHEN expire_at > $1 THEN $1 ELSE expire_at END \
    WHERE id = $3 AND NOT irrevocable RETURNING id";
pub(super) const DELETE_LEASE_KEY: &str =
    "DELETE FROM data_keys WHERE id IN (SELECT dek FROM leases WHERE id = $1)";
pub(super) const DELETE_LEASE: &str = "DELETE FROM leases WHERE id = $1";
pub(super) const FAIL_LEASE: &str =
    "UPDATE leases SET due_at = $2, last_error = $3, irrevocable = $4 WHERE id = $1";
pub(super) const EXPIRE_LEASES: &str = "UPDATE leases SET due_at = $1 \
    WHERE id >= $2 AND ($3 IS NULL OR id < $3) AND due_at > $1 AND NOT irrevocable";
pub(super) const EXPIRE_LEASES_OF_REVOKED_TOKENS: &str = "UPDATE leases SET due_at = $1 \
    WHERE id IN (SELECT l.id FROM leases l JOIN tokens t ON t.hash = l.token_hash \
    WHERE t.revoked AND l.due_at > $1 AND NOT l.irrevocable LIMIT $2)";
pub(super) const DELETE_LEASE_KEYS_IN_RANGE: &str = "DELETE FROM data_keys WHERE id IN \
    (SELECT dek FROM leases WHERE id >= $1 AND ($2 IS NULL OR id < $2))";
pub(super) const DELETE_LEASES_IN_RANGE: &str =
    "DELETE FROM leases WHERE id >= $1 AND ($2 IS NULL OR id < $2)";
pub(super) const COUNT_ROLE_LEASES: &str =
    "SELECT COUNT(*) FROM leases WHERE mount_uuid = $1 AND role = $2";
pub(super) const COUNT_LEASES: &str = "SELECT COUNT(*), \
    COALESCE(SUM(CASE WHEN irrevocable THEN 1 ELSE 0 END), 0) FROM leases";
pub(super) const COUNT_LEASES_BY_ROLE: &str = "SELECT mount_uuid, role, COUNT(*), \
    COALESCE(SUM(CASE WHEN irrevocable THEN 1 ELSE 0 END), 0) FROM leases GROUP BY mount_uuid, role";
/// When the most overdue lease fell due: its expiry, or the moment a
/// revoke-prefix made it due, whichever came first.
pub(super) const OLDEST_OVERDUE_LEASE: &str = "SELECT \
    MIN(CASE WHEN due_at < expire_at THEN due_at ELSE expire_at END) FROM leases \
    WHERE NOT irrevocable AND (expire_at <= $1 OR due_at <= $1)";
pub(super) const DELETE_MOUNT_LEASE_KEYS: &str =
    "DELETE FROM data_keys WHERE id IN (SELECT dek FROM leases WHERE mount_uuid = $1)";
pub(super) const DELETE_MOUNT_LEASES: &str = "DELETE FROM leases WHERE mount_uuid = $1";

pub(super) const UPSERT_SCHEDULE: &str = "INSERT INTO schedules (mount_uuid, name, due_at) \
    VALUES ($1, $2, $3) ON CONFLICT (mount_uuid, name) DO UPDATE SET due_at = excluded.due_at";
pub(super) const DELETE_SCHEDULE: &str =
    "DELETE FROM schedules WHERE mount_uuid = $1 AND name = $2";
pub(super) const DELETE_MOUNT_SCHEDULES: &str = "DELETE FROM schedules WHERE mount_uuid = $1";
/// Claims one job now unless another claim of it is still running.
pub(super) const CLAIM_SCHEDULE: &str = "UPDATE schedules SET claimed_until = $4, \
    attempts = attempts + 1 WHERE mount_uuid = $1 AND name = $2 \
    AND (claimed_until IS NULL OR claimed_until <= $3) RETURNING attempts";
pub(super) const FINISH_SCHEDULE: &str = "UPDATE schedules SET due_at = $3, \
    claimed_until = NULL, attempts = 0, last_error = NULL WHERE mount_uuid = $1 AND name = $2";
pub(super) const FAIL_SCHEDULE: &str = "UPDATE schedules SET due_at = $3, \
    claimed_until = NULL, last_error = $4 WHERE mount_uuid = $1 AND name = $2";
pub(super) const SELECT_SCHEDULE: &str = "SELECT due_at, claimed_until, attempts, last_error \
    FROM schedules WHERE mount_uuid = $1 AND name = $2";

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
/// A key's metadata with its custom metadata's data key and its mount's
/// KV config joined. A macro so that dialects can append a row lock.
macro_rules! select_kv_metadata {
    () => {
        "SELECT m.current_version, m.oldest_version, \
    m.max_versions, m.cas_required, m.delete_version_after, m.created_at, m.updated_at, \
    m.custom_dek, m.custom_metadata, cdk.term AS custom_term, cdk.wrapped AS custom_wrapped, \
    c.max_versions AS config_max_versions, c.cas_required AS config_cas_required, \
    c.delete_version_after AS config_delete_version_after \
    FROM kv_metadata m LEFT JOIN data_keys cdk ON cdk.id = m.custom_dek \
    LEFT JOIN kv_config c ON c.mount_uuid = m.mount_uuid \
    WHERE m.mount_uuid = $1 AND m.path = $2"
    };
}
pub(super) use select_kv_metadata;

pub(super) const SELECT_KV_METADATA: &str = select_kv_metadata!();
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
