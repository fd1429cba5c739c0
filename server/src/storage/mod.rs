//! Storage: the only place that speaks SQL.
//!
//! [`Storage`] is one API in domain terms with two implementations,
//! SQLite (one node, embedded) and PostgreSQL (many nodes). Each method is
//! one transaction named for its use. Values arrive and leave sealed by the
//! barrier: storage never sees the plaintext of a secret.
//!
//! Both databases run the same SQL where the dialects agree (sqlx binds
//! `$1`-style parameters on SQLite too); the statements live once in
//! [`queries`] and are compiled against each driver there. Races are decided
//! by the database: row locks on PostgreSQL, a single writer connection on
//! SQLite, unique keys on both.

mod cache;
mod postgres;
mod queries;
mod rows;
mod sql;
mod sqlite;

#[cfg(any(test, feature = "testing"))]
pub mod conformance;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::time::Duration;

pub use self::postgres::PostgresStorage;
pub use self::sqlite::SqliteStorage;

/// Versions a KV key keeps when neither its metadata nor its mount says.
pub const DEFAULT_MAX_VERSIONS: u64 = 10;

/// Unix time in nanoseconds, the unit of every timestamp we store.
pub type UnixNanos = i64;

/// Why a storage call failed, in terms a caller can act on.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A unique key said no: the thing already exists.
    #[error("already exists: {0}")]
    Conflict(&'static str),
    /// The database cannot be reached or is not answering; try again later.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else; a bug or a broken database.
    #[error("database error")]
    Internal(#[source] sqlx::Error),
    /// A stored row does not have the shape this version expects.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The storage URL or options are wrong.
    #[error("{0}")]
    Config(String),
    /// A write ran but the transaction holding it could not be committed;
    /// nothing of it was kept.
    #[error("the write could not be committed: {0}")]
    CommitFailed(String),
    /// The parent of a token being created was revoked meanwhile.
    #[error("the parent token was revoked")]
    ParentRevoked,
    /// The mount a KV write was routed to was removed meanwhile.
    #[error("the mount was removed")]
    MountGone,
    /// The storage was closed (the server is shutting down).
    #[error("storage is closed")]
    Closed,
    /// A role already holds its maximum number of leases.
    #[error("the role has {0} leases, its maximum")]
    QuotaExceeded(u64),
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                StorageError::Conflict("a row with that key")
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => StorageError::Unavailable(err),
            sqlx::Error::Database(db) if is_transient(db.code().as_deref()) => {
                StorageError::Unavailable(err)
            }
            _ => StorageError::Internal(err),
        }
    }
}

/// Database error codes that mean "not now" rather than "never".
/// PostgreSQL's are five-character SQLSTATEs; SQLite's are numbers whose
/// low byte is the primary code (1034, a failed fsync, is IOERR).
fn is_transient(code: Option<&str>) -> bool {
    let Some(code) = code else {
        return false;
    };
    if code.len() == 5 {
        // PostgreSQL: connection exceptions, admin shutdown, cannot connect
        // now, insufficient resources (disk full, out of memory, too many
        // connections), serialization failure, deadlock.
        return matches!(
            code,
            "08000"
                | "08003"
                | "08006"
                | "57P01"
                | "57P02"
                | "57P03"
                | "53100"
                | "53200"
                | "53300"
                | "40001"
                | "40P01"
        );
    }
    // SQLite: BUSY, LOCKED, NOMEM, READONLY, IOERR, FULL, CANTOPEN.
    code.parse::<u32>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 7 | 8 | 10 | 13 | 14))
}

#[cfg(test)]
mod error_tests {
    use super::is_transient;

    #[test]
    fn transient_codes_of_both_databases() {
        // SQLite primary and extended codes: IOERR_WRITE (778), IOERR_FSYNC
        // (1034), READONLY_DBMOVED (1032), FULL, BUSY_SNAPSHOT (517).
        for code in ["10", "778", "1034", "8", "1032", "13", "5", "517"] {
            assert!(is_transient(Some(code)), "{code}");
        }
        // Constraint (19, 2067), corrupt (11), misuse (21): not transient.
        for code in ["19", "2067", "11", "21", "1"] {
            assert!(!is_transient(Some(code)), "{code}");
        }
        for code in ["08006", "57P01", "53100", "40001"] {
            assert!(is_transient(Some(code)), "{code}");
        }
        // Unique violation, syntax error, undefined table.
        for code in ["23505", "42601", "42P01"] {
            assert!(!is_transient(Some(code)), "{code}");
        }
        assert!(!is_transient(None));
    }
}

// ---------------------------------------------------------------------------
// Records.

/// How the server was initialised: written once by `sys/init`.
#[derive(Clone)]
pub struct BarrierRecord {
    pub seal_type: String,
    pub secret_shares: u32,
    pub secret_threshold: u32,
    /// The root key, sealed by the unseal key.
    pub sealed_root_key: Vec<u8>,
    /// The token-hashing key, sealed by the root key.
    pub sealed_token_key: Vec<u8>,
    pub cluster_id: String,
    pub cluster_name: String,
    pub initialized_at: UnixNanos,
}

/// One key-encryption key, sealed by the root key.
#[derive(Clone)]
pub struct KeyTermRecord {
    pub term: u32,
    pub sealed_key: Vec<u8>,
    pub installed_at: UnixNanos,
}

/// A data key wrapped by the key-encryption key of `term`.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKeyRecord {
    pub id: Vec<u8>,
    pub term: u32,
    pub wrapped: Vec<u8>,
}

/// A value sealed under its own data key.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedBlob {
    pub dek: DataKeyRecord,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedBlob")
            .field("term", &self.dek.term)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

impl SealedBlob {
    const FORMAT: u8 = 1;

    /// The blob with its wrapped data key as one byte string, for a
    /// short-lived value kept in its own row instead of `data_keys` (it
    /// dies with the row; rotation leaves it on its term, which is kept).
    pub fn to_bytes(&self) -> Vec<u8> {
        let id_len = u8::try_from(self.dek.id.len()).unwrap_or(u8::MAX);
        let wrapped_len = u16::try_from(self.dek.wrapped.len()).unwrap_or(u16::MAX);
        let mut out = Vec::with_capacity(
            8 + self.dek.id.len() + self.dek.wrapped.len() + self.ciphertext.len(),
        );
        out.push(Self::FORMAT);
        out.extend_from_slice(&self.dek.term.to_be_bytes());
        out.push(id_len);
        out.extend_from_slice(&self.dek.id[..usize::from(id_len)]);
        out.extend_from_slice(&wrapped_len.to_be_bytes());
        out.extend_from_slice(&self.dek.wrapped[..usize::from(wrapped_len)]);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Reads what [`SealedBlob::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Result<SealedBlob> {
        let corrupt = || StorageError::Corrupt("sealed blob".to_owned());
        let (&format, rest) = bytes.split_first().ok_or_else(corrupt)?;
        if format != Self::FORMAT || rest.len() < 5 {
            return Err(corrupt());
        }
        let (term, rest) = rest.split_at(4);
        let term = u32::from_be_bytes(term.try_into().map_err(|_| corrupt())?);
        let (&id_len, rest) = rest.split_first().ok_or_else(corrupt)?;
        let id_len = usize::from(id_len);
        if rest.len() < id_len + 2 {
            return Err(corrupt());
        }
        let (id, rest) = rest.split_at(id_len);
        let (wrapped_len, rest) = rest.split_at(2);
        let wrapped_len = usize::from(u16::from_be_bytes(
            wrapped_len.try_into().map_err(|_| corrupt())?,
        ));
        if rest.len() < wrapped_len {
            return Err(corrupt());
        }
        let (wrapped, ciphertext) = rest.split_at(wrapped_len);
        Ok(SealedBlob {
            dek: DataKeyRecord {
                id: id.to_vec(),
                term,
                wrapped: wrapped.to_vec(),
            },
            ciphertext: ciphertext.to_vec(),
        })
    }
}

/// A lease on a dynamic secret: what was handed out, until when, and
/// what its backend needs to take it back.
#[derive(Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `<request path>/<random>`, as Vault's.
    pub id: String,
    pub mount_uuid: String,
    /// The backend's role ('' when none), for quotas and counts.
    pub role: String,
    /// The token whose request created the lease.
    pub token_hash: Option<Vec<u8>>,
    pub issued_at: UnixNanos,
    pub expire_at: UnixNanos,
    pub last_renewal: Option<UnixNanos>,
    pub renewable: bool,
    /// What the backend needs to renew and revoke it, sealed.
    pub secret: SealedBlob,
    /// When the expiry worker acts next (see the `leases` table).
    pub due_at: UnixNanos,
    /// Revocations tried so far.
    pub attempts: u32,
    /// Given up on after too many failures; kept until forced out.
    pub irrevocable: bool,
    pub last_error: Option<String>,
}

impl std::fmt::Debug for LeaseRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaseRecord")
            .field("id", &self.id)
            .field("role", &self.role)
            .field("expire_at", &self.expire_at)
            .field("due_at", &self.due_at)
            .field("attempts", &self.attempts)
            .field("irrevocable", &self.irrevocable)
            .finish_non_exhaustive()
    }
}

/// A job due at a time (see the `schedules` table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleRecord {
    pub due_at: UnixNanos,
    pub claimed_until: Option<UnixNanos>,
    /// Runs tried since the last success.
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// A job claimed by this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedJob {
    pub mount_uuid: String,
    pub name: String,
    pub attempts: u32,
}

/// How many data keys exist and how many still wait to be rewrapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataKeyCounts {
    pub total: u64,
    pub on_term: u64,
    pub below_term: u64,
}

/// What the leases table holds, for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaseStats {
    /// Lease counts per mount and role, in no particular order.
    pub by_role: Vec<RoleLeases>,
    /// The earliest moment a lease still stored (and not irrevocable)
    /// fell due for revocation, if one has; `None` if none is overdue.
    pub oldest_overdue: Option<UnixNanos>,
    /// When the counts were read.
    pub read_at: UnixNanos,
}

/// The leases of one role of one mount.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleLeases {
    pub mount_uuid: String,
    pub role: String,
    pub leases: u64,
    pub irrevocable: u64,
}

/// The state of the connection pool, as sqlx reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open, in use or idle.
    pub size: u32,
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
    /// Write transactions queued for SQLite's single writer.
    pub write_queue: usize,
}

/// Everything `sys/init` writes, in one transaction.
#[derive(Clone)]
pub struct InitRecord {
    pub barrier: BarrierRecord,
    pub first_term: KeyTermRecord,
    pub root_token: TokenRecord,
    pub mounts: Vec<MountRecord>,
}

/// Secret engines and auth methods share one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Secret,
    Auth,
}

impl MountKind {
    fn as_str(self) -> &'static str {
        match self {
            MountKind::Secret => "secret",
            MountKind::Auth => "auth",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "secret" => Ok(MountKind::Secret),
            "auth" => Ok(MountKind::Auth),
            other => Err(StorageError::Corrupt(format!(
                "unknown mount kind {other:?}"
            ))),
        }
    }
}

/// A mounted engine. `options` and `config` are JSON objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRecord {
    pub uuid: String,
    /// With a trailing slash: `secret/`.
    pub path: String,
    pub kind: MountKind,
    pub mount_type: String,
    pub description: String,
    pub accessor: String,
    pub options: String,
    pub config: String,
    pub created_at: UnixNanos,
}

/// A token, stored by the keyed hash of its value.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub hash: Vec<u8>,
    pub accessor: String,
    pub parent: Option<Vec<u8>>,
    pub policies: Vec<String>,
    /// JSON object of string to string.
    pub meta: String,
    pub display_name: String,
    pub num_uses: u64,
    pub created_at: UnixNanos,
    pub expire_at: Option<UnixNanos>,
    pub creation_ttl: u64,
    pub explicit_max_ttl: u64,
    pub period: u64,
    pub renewable: bool,
    pub orphan: bool,
    pub token_type: String,
    pub path: String,
    pub last_renewal: Option<UnixNanos>,
    /// The uuid of the auth mount whose login issued the token.
    pub auth_mount: Option<String>,
    /// What that auth method needs to renew the token, sealed.
    pub internal: Option<SealedBlob>,
}

impl std::fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRecord")
            .field("accessor", &self.accessor)
            .field("policies", &self.policies)
            .field("expire_at", &self.expire_at)
            .finish_non_exhaustive()
    }
}

/// An ACL policy as stored: its HCL text and a version counting updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    pub name: String,
    pub policy: String,
    pub version: u64,
    pub created_at: UnixNanos,
    pub updated_at: UnixNanos,
}

/// A node serving this database, as it last reported itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRecord {
    /// Random, new at every start.
    pub id: String,
    pub hostname: String,
    /// Where clients reach it (`api_addr`).
    pub api_address: String,
    pub version: String,
    pub sealed: bool,
    pub started_at: UnixNanos,
    /// When it last wrote this row, on its own clock.
    pub last_seen: UnixNanos,
}

/// An enabled audit device. `options` is the device's options as JSON;
/// `hmac_key` its HMAC key, sealed under the record name of
/// `audit::key_name`, or `None` if its data key is missing from a damaged
/// database (the device then runs broken, failing closed). `Debug` leaves
/// the key out.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditDeviceRecord {
    pub path: String,
    pub uuid: String,
    pub device_type: String,
    pub description: String,
    pub options: String,
    pub local: bool,
    pub hmac_key: Option<SealedBlob>,
    pub created_at: UnixNanos,
}

impl std::fmt::Debug for AuditDeviceRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditDeviceRecord")
            .field("path", &self.path)
            .field("uuid", &self.uuid)
            .field("device_type", &self.device_type)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// A KV mount's `config`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvConfigRecord {
    pub max_versions: u32,
    pub cas_required: bool,
    /// Seconds; 0 = never.
    pub delete_version_after: u64,
}

/// The settings that may live on a key's metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KvKeySettings {
    pub max_versions: u32,
    pub cas_required: bool,
    pub delete_version_after: u64,
}

/// A write of a new version.
pub struct KvWrite<'a> {
    pub mount: &'a str,
    pub path: &'a str,
    /// The caller's check-and-set: only if the current version is `n`
    /// (0 = the key must not exist). Also satisfies `cas_required`.
    pub cas: Option<u64>,
    /// The server's own optimistic check (a PATCH wrote what it read at
    /// this version); a mismatch is [`KvWriteOutcome::Raced`], not a CAS
    /// failure.
    pub expect_version: Option<u64>,
    pub now: UnixNanos,
}

/// What a KV write did.
pub enum KvWriteOutcome<E> {
    Written {
        version: u64,
        created_at: UnixNanos,
        deletion_time: Option<UnixNanos>,
        custom_metadata: Option<SealedBlob>,
    },
    CasMismatch,
    CasRequired,
    /// `expect_version` did not hold: another write came first.
    Raced,
    /// The caller's sealing function failed; nothing was written.
    SealFailed(E),
}

/// One version as stored.
#[derive(Clone)]
pub struct KvVersionRecord {
    pub version: u64,
    pub created_at: UnixNanos,
    pub deletion_time: Option<UnixNanos>,
    pub destroyed: bool,
    /// None once destroyed.
    pub value: Option<SealedBlob>,
}

/// A version read together with the key's custom metadata.
#[derive(Clone)]
pub struct KvVersionRead {
    pub current_version: u64,
    pub custom_metadata: Option<SealedBlob>,
    pub version: KvVersionRecord,
}

/// A key's metadata with every version it still has.
pub struct KvMetadataRead {
    pub current_version: u64,
    pub oldest_version: u64,
    pub settings: KvKeySettings,
    pub custom_metadata: Option<SealedBlob>,
    pub created_at: UnixNanos,
    pub updated_at: UnixNanos,
    /// Without their values.
    pub versions: Vec<KvVersionRecord>,
}

/// A change to a key's metadata; `None` leaves a field as it is.
#[derive(Clone, Default)]
pub struct KvMetadataUpdate {
    pub max_versions: Option<u32>,
    pub cas_required: Option<bool>,
    pub delete_version_after: Option<u64>,
    /// `Some(None)` clears the custom metadata.
    pub custom_metadata: Option<Option<SealedBlob>>,
}

/// Which versions an operation applies to.
#[derive(Debug, Clone, Copy)]
pub enum KvVersions<'a> {
    Latest,
    These(&'a [u64]),
}

// ---------------------------------------------------------------------------
// The storage handle.

/// Options for opening storage.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    pub max_connections: u32,
    pub connect_timeout: Duration,
}

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            max_connections: 16,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The database behind a server: SQLite or PostgreSQL.
#[derive(Clone)]
pub enum Storage {
    Sqlite(SqliteStorage),
    Postgres(PostgresStorage),
}

impl Storage {
    /// Opens the database named by `url` (`sqlite:///path/to.db` or
    /// `postgres://...`) and runs its migrations.
    pub async fn connect(url: &str, options: &StorageOptions) -> Result<Storage> {
        if url.starts_with("sqlite:") {
            Ok(Storage::Sqlite(SqliteStorage::connect(url, options).await?))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Storage::Postgres(
                PostgresStorage::connect(url, options).await?,
            ))
        } else {
            Err(StorageError::Config(
                "storage url must start with sqlite:// or postgres://".to_owned(),
            ))
        }
    }

    /// `sqlite` or `postgresql`, as `sys/seal-status` reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            Storage::Sqlite(_) => "sqlite",
            Storage::Postgres(_) => "postgresql",
        }
    }

    /// Whether several servers share this database (PostgreSQL), so that
    /// nothing cached from it can be trusted for long.
    pub fn is_shared(&self) -> bool {
        matches!(self, Storage::Postgres(_))
    }

    /// The connection pool's state (SQLite: of the read pool, and the
    /// writer's queue).
    pub fn pool_stats(&self) -> PoolStats {
        match self {
            Storage::Sqlite(s) => s.pool_stats(),
            Storage::Postgres(s) => s.pool_stats(),
        }
    }

    /// Closes every connection, waiting for in-flight queries.
    pub async fn close(&self) {
        match self {
            Storage::Sqlite(s) => s.close().await,
            Storage::Postgres(s) => s.close().await,
        }
    }
}

/// Forwards each method to the implementation behind the enum.
macro_rules! delegate {
    ($(
        $(#[$doc:meta])*
        fn $name:ident(&self $(, $arg:ident : $ty:ty)*) -> $ret:ty;
    )*) => {
        impl Storage {$(
            $(#[$doc])*
            pub async fn $name(&self $(, $arg: $ty)*) -> $ret {
                match self {
                    Storage::Sqlite(s) => s.$name($($arg),*).await,
                    Storage::Postgres(s) => s.$name($($arg),*).await,
                }
            }
        )*}
    };
}

impl Storage {
    /// Writes the next version of a key. `seal` is called once, inside the
    /// transaction, with the version number the value will have, so the
    /// barrier can bind the ciphertext to it.
    pub async fn kv_write<F, E>(&self, write: &KvWrite<'_>, seal: F) -> Result<KvWriteOutcome<E>>
    where
        F: Fn(u64) -> Result<SealedBlob, E> + Send + Sync + 'static,
        E: Send + 'static,
    {
        match self {
            Storage::Sqlite(s) => s.kv_write(write, seal).await,
            Storage::Postgres(s) => s.kv_write(write, seal).await,
        }
    }
}

delegate! {
    /// The initialisation record, or `None` before `sys/init`.
    fn barrier_record(&self) -> Result<Option<BarrierRecord>>;
    /// Writes everything `sys/init` creates; `Conflict` if already done.
    fn initialize(&self, init: &InitRecord) -> Result<()>;
    /// Every key-encryption key term, oldest first.
    fn key_terms(&self) -> Result<Vec<KeyTermRecord>>;
    /// Adds a key term; `Conflict` if the term exists (another node won).
    fn add_key_term(&self, term: &KeyTermRecord) -> Result<()>;
    /// Up to `limit` data keys wrapped by a term older than `term`, in id
    /// order, with ids after `after` (empty: from the start).
    fn data_keys_below_term(&self, term: u32, after: &[u8], limit: u32) -> Result<Vec<DataKeyRecord>>;
    /// Replaces wrapped data keys, each only if still wrapped by its old term.
    fn rewrap_data_keys(&self, rewrapped: &[(DataKeyRecord, u32)]) -> Result<u64>;
    /// Counts data keys in all, on `term`, and below it.
    fn data_key_counts(&self, term: u32) -> Result<DataKeyCounts>;

    /// Every mount, secret engines and auth methods.
    fn mounts(&self) -> Result<Vec<MountRecord>>;
    /// Adds a mount; `Conflict` if the path or accessor is taken.
    fn create_mount(&self, mount: &MountRecord) -> Result<()>;
    /// Changes a mount's description and config (JSON).
    fn tune_mount(&self, uuid: &str, description: &str, config: &str) -> Result<()>;
    /// Removes a mount and everything stored under it.
    fn delete_mount(&self, uuid: &str) -> Result<()>;

    /// Stores a new token; `ParentRevoked` if its parent is no longer live.
    fn create_token(&self, token: &TokenRecord) -> Result<()>;
    /// The live (not revoked) token with this hash.
    fn token(&self, hash: &[u8]) -> Result<Option<TokenRecord>>;
    /// The live token with this accessor.
    fn token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>>;
    /// The accessors of every live token.
    fn token_accessors(&self) -> Result<Vec<String>>;
    /// Counts one use of a token with a use limit: the uses left, or
    /// `None` if it had none left (or is revoked). The last use revokes it.
    fn use_token(&self, hash: &[u8]) -> Result<Option<u64>>;
    /// Moves a live token's expiry; false if it is revoked or expired at `now`.
    fn renew_token(&self, hash: &[u8], expire_at: Option<UnixNanos>, now: UnixNanos) -> Result<bool>;
    /// Revokes a token and, in bounded batches, every token below it; with
    /// `orphan_children` its children are made orphans and kept instead.
    /// Returns when the whole tree is refused.
    fn revoke_token(&self, hash: &[u8], orphan_children: bool) -> Result<()>;
    /// Revokes up to `limit` expired tokens (their trees follow).
    fn revoke_expired_tokens(&self, now: UnixNanos, limit: u32) -> Result<u64>;
    /// Revokes up to `limit` tokens whose parent is revoked.
    fn cascade_revocations(&self, limit: u32) -> Result<u64>;
    /// Deletes up to `limit` revoked tokens that no live token hangs below.
    fn sweep_revoked_tokens(&self, limit: u32) -> Result<u64>;

    /// How many times each cached topic (`mounts`, `policies`, `audit`,
    /// `keyring`) has changed: a database trigger counts every statement
    /// that changes its table, in the same transaction.
    fn change_counters(&self) -> Result<Vec<(String, u64)>>;

    /// Creates or refreshes a node's row (its heartbeat).
    fn put_node(&self, node: &NodeRecord) -> Result<()>;
    /// The nodes seen at or after `since`, by id.
    fn nodes(&self, since: UnixNanos) -> Result<Vec<NodeRecord>>;
    /// Deletes a node's row; false if there was none.
    fn delete_node(&self, id: &str) -> Result<bool>;
    /// Deletes the rows of nodes last seen before `before`.
    fn delete_nodes_seen_before(&self, before: UnixNanos) -> Result<u64>;

    /// The stored policy with this name.
    fn policy(&self, name: &str) -> Result<Option<PolicyRecord>>;
    /// The names of every stored policy.
    fn policy_names(&self) -> Result<Vec<String>>;
    /// Creates or replaces a policy.
    fn put_policy(&self, name: &str, policy: &str, now: UnixNanos) -> Result<()>;
    /// Creates a policy unless one of that name exists.
    fn ensure_policy(&self, name: &str, policy: &str, now: UnixNanos) -> Result<()>;
    /// Deletes a policy; false if there was none.
    fn delete_policy(&self, name: &str) -> Result<bool>;

    /// Every enabled audit device, by path.
    fn audit_devices(&self) -> Result<Vec<AuditDeviceRecord>>;
    /// Adds an audit device with its sealed key; `Conflict` if the path
    /// (or uuid) is taken.
    fn create_audit_device(&self, device: &AuditDeviceRecord) -> Result<()>;
    /// Removes an audit device and shreds its key; false if there was none.
    fn delete_audit_device(&self, path: &str) -> Result<bool>;

    /// A backend's own record (an auth method's config or role), sealed.
    fn mount_entry(&self, mount: &str, path: &str) -> Result<Option<SealedBlob>>;
    /// Creates or replaces a backend record; its old data key is shredded.
    /// `MountGone` if the mount was deleted meanwhile.
    fn put_mount_entry(&self, mount: &str, path: &str, value: &SealedBlob, now: UnixNanos) -> Result<()>;
    /// Deletes a backend record and its data key; false if there was none.
    fn delete_mount_entry(&self, mount: &str, path: &str) -> Result<bool>;
    /// The paths of a mount's records that start with `prefix`, in byte
    /// order, at most `limit` of them.
    fn mount_entry_paths(&self, mount: &str, prefix: &str, limit: u32) -> Result<Vec<String>>;

    /// Stores a new lease; `ParentRevoked` if its token is no longer live,
    /// `MountGone` if its mount was deleted, `QuotaExceeded` if its role
    /// (with `max_leases` > 0) already holds that many.
    fn create_lease(&self, lease: &LeaseRecord, max_leases: u64) -> Result<()>;
    /// The lease with this id.
    fn lease(&self, id: &str) -> Result<Option<LeaseRecord>>;
    /// Lease ids that start with `prefix`, in byte order, at most `limit`.
    fn lease_ids(&self, prefix: &str, limit: u32) -> Result<Vec<String>>;
    /// Moves the expiry of a lease that is neither expired at `now` nor
    /// due for revocation; false otherwise.
    fn renew_lease(&self, id: &str, expire_at: UnixNanos, now: UnixNanos) -> Result<bool>;
    /// Makes a lease stored ahead of its secret (due at `reserved_until`)
    /// due at `due_at` instead, unless it was claimed or made due since;
    /// false then (or if it is gone).
    fn settle_lease(&self, id: &str, reserved_until: UnixNanos, due_at: UnixNanos) -> Result<bool>;
    /// Claims up to `limit` leases due at `now` for revocation until
    /// `deadline` (after which another node may claim them again); each
    /// claim counts an attempt and ends the lease's validity.
    fn claim_due_leases(&self, now: UnixNanos, deadline: UnixNanos, limit: u32) -> Result<Vec<LeaseRecord>>;
    /// Claims, as `claim_due_leases`, the due leases whose ids start with
    /// `prefix`.
    fn claim_due_leases_under(&self, prefix: &str, now: UnixNanos, deadline: UnixNanos, limit: u32) -> Result<Vec<LeaseRecord>>;
    /// Claims one lease for revocation now, whatever its expiry.
    fn claim_lease(&self, id: &str, now: UnixNanos, deadline: UnixNanos) -> Result<Option<LeaseRecord>>;
    /// Deletes a revoked lease and shreds its data key.
    fn finish_lease(&self, id: &str) -> Result<bool>;
    /// Records a failed revocation: tried again at `retry_at`, or never
    /// again if `irrevocable`.
    fn fail_lease(&self, id: &str, retry_at: UnixNanos, error: &str, irrevocable: bool) -> Result<()>;
    /// Makes every lease under `prefix` due at `now` (revoke-prefix).
    fn expire_leases(&self, prefix: &str, now: UnixNanos) -> Result<u64>;
    /// Makes due at `now` up to `limit` leases whose token is revoked.
    fn expire_leases_of_revoked_tokens(&self, now: UnixNanos, limit: u32) -> Result<u64>;
    /// Deletes every lease under `prefix` without revoking anything
    /// (revoke-force), shredding their data keys.
    fn force_delete_leases(&self, prefix: &str) -> Result<u64>;
    /// How many leases a role of a mount holds.
    fn role_lease_count(&self, mount: &str, role: &str) -> Result<u64>;
    /// How many leases there are, and how many of them are irrevocable.
    fn lease_counts(&self) -> Result<(u64, u64)>;
    /// Lease counts by mount and role, and the oldest lease overdue at `now`.
    fn lease_stats(&self, now: UnixNanos) -> Result<LeaseStats>;
    /// Up to `limit` irrevocable leases, by id.
    fn irrevocable_leases(&self, limit: u32) -> Result<Vec<LeaseRecord>>;

    /// Creates a job or moves when it is due.
    fn schedule(&self, mount: &str, name: &str, due_at: UnixNanos) -> Result<()>;
    /// Removes a job; false if there was none.
    fn unschedule(&self, mount: &str, name: &str) -> Result<bool>;
    /// A job's state.
    fn scheduled(&self, mount: &str, name: &str) -> Result<Option<ScheduleRecord>>;
    /// Claims up to `limit` jobs due at `now` that no live claim holds,
    /// until `deadline`.
    fn claim_due_jobs(&self, now: UnixNanos, deadline: UnixNanos, limit: u32) -> Result<Vec<ClaimedJob>>;
    /// Claims one job now, due or not, unless a live claim holds it;
    /// answers its attempts, `None` if it is held (or does not exist).
    fn claim_job(&self, mount: &str, name: &str, now: UnixNanos, deadline: UnixNanos) -> Result<Option<u32>>;
    /// Records a run: next due at `next`, unclaimed.
    fn finish_job(&self, mount: &str, name: &str, next: UnixNanos) -> Result<()>;
    /// Records a failed run: tried again at `retry_at`.
    fn fail_job(&self, mount: &str, name: &str, retry_at: UnixNanos, error: &str) -> Result<()>;

    /// A KV mount's config, if it was ever written.
    fn kv_config(&self, mount: &str) -> Result<Option<KvConfigRecord>>;
    /// Replaces a KV mount's config.
    fn set_kv_config(&self, mount: &str, config: &KvConfigRecord) -> Result<()>;
    /// One version (0 = the current one) with the key's custom metadata.
    fn kv_read(&self, mount: &str, path: &str, version: u64) -> Result<Option<KvVersionRead>>;
    /// A key's metadata and versions.
    fn kv_metadata(&self, mount: &str, path: &str) -> Result<Option<KvMetadataRead>>;
    /// Creates or changes a key's metadata without writing a version.
    fn kv_update_metadata(&self, mount: &str, path: &str, update: &KvMetadataUpdate, now: UnixNanos) -> Result<()>;
    /// Soft-deletes versions that are live (or only scheduled for deletion).
    fn kv_delete_versions(&self, mount: &str, path: &str, versions: KvVersions<'_>, now: UnixNanos) -> Result<()>;
    /// Clears the deletion of versions that are not destroyed.
    fn kv_undelete_versions(&self, mount: &str, path: &str, versions: &[u64]) -> Result<()>;
    /// Destroys versions: their data keys and ciphertexts are deleted.
    fn kv_destroy_versions(&self, mount: &str, path: &str, versions: &[u64]) -> Result<()>;
    /// Deletes a key with all its versions and metadata.
    fn kv_delete_key(&self, mount: &str, path: &str) -> Result<()>;
    /// Names directly under `prefix` (sub-directories end in `/`), in byte
    /// order, after the name `after`, at most `limit` of them (0 = all).
    fn kv_list(&self, mount: &str, prefix: &str, after: &str, limit: u32) -> Result<Vec<String>>;
}

/// The smallest string greater than every string that starts with
/// `prefix`, for range scans; `None` when there is none.
fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // Skip the surrogate gap, which no `char` can hold.
        let next = match last as u32 + 1 {
            0xD800 => 0xE000,
            n => n,
        };
        if let Some(next) = char::from_u32(next) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

fn to_i64(n: u64, what: &'static str) -> Result<i64> {
    i64::try_from(n).map_err(|_| StorageError::Corrupt(format!("{what} out of range")))
}

fn to_u64(n: i64, what: &'static str) -> Result<u64> {
    u64::try_from(n).map_err(|_| StorageError::Corrupt(format!("{what} is negative")))
}

fn to_u32(n: i64, what: &'static str) -> Result<u32> {
    u32::try_from(n).map_err(|_| StorageError::Corrupt(format!("{what} out of range")))
}

#[cfg(test)]
mod conformance_tests {
    crate::storage_conformance_tests!(
        initializes_exactly_once,
        key_terms_are_unique_and_ordered,
        rewrap_is_conditional_on_the_old_term,
        mounts_are_unique_and_deletion_removes_their_data,
        tokens_round_trip,
        versions_count_up_and_read_back,
        check_and_set_is_enforced,
        cas_can_be_required_by_mount_or_key,
        expected_version_detects_a_race,
        a_failed_seal_writes_nothing,
        old_versions_are_pruned_with_their_keys,
        ten_versions_are_kept_by_default,
        delete_version_after_schedules_deletion,
        soft_delete_undelete_and_destroy,
        metadata_updates_only_what_is_given,
        deleting_a_key_removes_everything,
        listing_folds_directories,
        listing_pages_through_large_directories,
        concurrent_writers_get_distinct_versions,
        concurrent_cas_writers_have_one_winner_per_version,
        every_change_is_seen_by_the_next_read,
        a_failing_write_does_not_fail_its_neighbours,
        a_cancelled_write_leaves_no_stale_read,
        deleting_a_key_while_it_is_written_leaves_no_orphans,
        revoking_a_token_revokes_its_tree,
        a_deep_tree_is_revoked_in_bounded_batches,
        use_counts_are_spent_exactly_once,
        renewal_moves_the_expiry_of_live_tokens_only,
        policies_round_trip,
        every_cached_change_is_counted,
        nodes_are_listed_until_they_expire,
        audit_devices_round_trip,
        mount_entries_are_sealed_records_that_die_with_their_mount,
        leases_round_trip_and_list_by_prefix,
        renewal_stops_at_expiry_and_at_revocation,
        a_reserved_lease_settles_only_if_untouched,
        due_leases_are_claimed_once_and_taken_over_after_the_deadline,
        failed_revocations_back_off_then_become_irrevocable,
        lease_stats_count_by_role_and_find_the_most_overdue,
        a_role_quota_holds_under_concurrent_creation,
        a_revoked_tokens_leases_fall_due_before_it_is_deleted,
        jobs_are_claimed_once_then_rescheduled_or_retried,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sqlite_database_has_one_process_at_a_time() {
        let db = testing::TestDatabase::sqlite();
        let first = db.open().await;
        let second = Storage::connect(&db.url, &StorageOptions::default()).await;
        let Err(StorageError::Config(message)) = second else {
            panic!("a second open of the same database was allowed");
        };
        assert!(message.contains("another secretd process"), "{message}");
        first.close().await;
        drop(first);
        let again = Storage::connect(&db.url, &StorageOptions::default()).await;
        assert!(again.is_ok(), "the lock goes with the storage");
    }

    #[tokio::test]
    async fn writes_after_close_fail_cleanly() {
        let db = testing::TestDatabase::sqlite();
        let storage = db.open().await;
        storage.close().await;
        let token = crate::auth::token::root_token_record(vec![1], "a".into(), 0);
        assert!(matches!(
            storage.create_token(&token).await,
            Err(StorageError::Closed)
        ));
    }

    #[test]
    fn a_sealed_blob_survives_its_byte_form() {
        let blob = SealedBlob {
            dek: DataKeyRecord {
                id: vec![1; 16],
                term: 7,
                wrapped: vec![2; 60],
            },
            ciphertext: b"sealed".to_vec(),
        };
        assert_eq!(SealedBlob::from_bytes(&blob.to_bytes()).unwrap(), blob);
        let bytes = blob.to_bytes();
        for cut in 0..bytes.len() - b"sealed".len() {
            assert!(
                SealedBlob::from_bytes(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn reading_any_bytes_as_a_sealed_blob_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = SealedBlob::from_bytes(&bytes);
        }
    }

    #[test]
    fn upper_bound_covers_the_prefix() {
        assert_eq!(prefix_upper_bound("app/").as_deref(), Some("app0"));
        assert_eq!(prefix_upper_bound("a").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound(""), None);
        let b = prefix_upper_bound("x/").unwrap();
        assert!("x/zzz\u{10FFFF}".as_bytes() < b.as_bytes());
        assert!("x0".as_bytes() >= b.as_bytes());
    }
}
