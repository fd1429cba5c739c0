//! PostgreSQL: any number of nodes on one database.
//!
//! Transactions run at READ COMMITTED; writes that race lock the row they
//! change (`FOR UPDATE`), so concurrent writers to one key queue up and the
//! database decides each check-and-set.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};

use super::StorageOptions;
use super::cache::RowCache;

type Conn = sqlx::PgConnection;

mod dialect {
    use super::super::sql::select_kv_metadata;

    /// Locks the key's metadata row for the rest of the transaction.
    pub const LOCK_KV_METADATA: &str = concat!(select_kv_metadata!(), " FOR UPDATE OF m");
    /// KV writes share the mount row; an unmount takes it alone.
    pub const LOCK_MOUNT_FOR_WRITE: &str =
        "SELECT CAST(1 AS BIGINT) FROM mounts WHERE uuid = $1 FOR SHARE";
    pub const LOCK_MOUNT_FOR_DELETE: &str =
        "SELECT CAST(1 AS BIGINT) FROM mounts WHERE uuid = $1 FOR UPDATE";
    /// A live parent token, kept from revocation until the child is stored.
    pub const LOCK_LIVE_PARENT: &str =
        "SELECT CAST(1 AS BIGINT) FROM tokens WHERE hash = $1 AND NOT revoked FOR SHARE";
    /// Due leases no other node holds: nodes share the work, and a row
    /// another node renewed meanwhile is checked again by the outer WHERE.
    pub const CLAIM_DUE_LEASES: &str = "UPDATE leases SET due_at = $2, attempts = attempts + 1, \
        expire_at = CASE WHEN expire_at > $1 THEN $1 ELSE expire_at END \
        WHERE id IN (SELECT id FROM leases WHERE due_at <= $1 AND NOT irrevocable \
        ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) AND due_at <= $1 AND NOT irrevocable \
        RETURNING id";
    /// The same, for the leases whose ids are in [$4, $5).
    pub const CLAIM_DUE_LEASES_UNDER: &str = "UPDATE leases SET due_at = $2, \
        attempts = attempts + 1, expire_at = CASE WHEN expire_at > $1 THEN $1 ELSE expire_at END \
        WHERE id IN (SELECT id FROM leases WHERE id >= $4 AND ($5 IS NULL OR id < $5) \
        AND due_at <= $1 AND NOT irrevocable ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED) \
        AND due_at <= $1 AND NOT irrevocable RETURNING id";
    /// Due jobs no other node holds.
    pub const CLAIM_DUE_SCHEDULES: &str = "UPDATE schedules SET claimed_until = $2, \
        attempts = attempts + 1 WHERE (mount_uuid, name) IN (SELECT mount_uuid, name \
        FROM schedules WHERE due_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) \
        ORDER BY due_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
        AND due_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) \
        RETURNING mount_uuid, name, attempts";
    /// Lease creations of one role queue while its quota is counted.
    pub const LOCK_ROLE_QUOTA: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Storage in a PostgreSQL database.
#[derive(Clone)]
pub struct PostgresStorage {
    pool: PgPool,
}

impl PostgresStorage {
    /// Connects to a `postgres://` URL and migrates the database.
    pub async fn connect(url: &str, options: &StorageOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StorageError::Config(format!("invalid postgres url: {e}")))?
            .application_name("secretd");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(2))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect)
            .await?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StorageError::Config(format!("migrating the postgres database: {e}")))?;
        Ok(PostgresStorage { pool })
    }

    fn reader(&self) -> &PgPool {
        &self.pool
    }

    /// Runs one write transaction on a pooled connection. PostgreSQL
    /// commits concurrent transactions together on its own.
    async fn write<T>(&self, _touched: Touched, job: Job<T>) -> Result<T> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let outcome = job(&mut tx).await?;
        if outcome.commit {
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(outcome.value)
    }

    /// Nodes share this database, so none may cache its rows (until
    /// changes are broadcast between nodes).
    fn cache(&self) -> Option<&RowCache> {
        None
    }

    pub fn pool_stats(&self) -> super::PoolStats {
        super::PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
            write_queue: 0,
        }
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

super::queries::impl_queries!(PostgresStorage);
