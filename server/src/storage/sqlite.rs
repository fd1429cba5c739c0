//! SQLite: one file, one node.
//!
//! WAL mode with `synchronous = FULL`, so every acknowledged write has been
//! fsynced. Writes go through a pool of exactly one connection, so write
//! transactions never race each other for SQLite's lock; reads use a
//! separate pool and run concurrently with the writer (WAL readers see the
//! last committed state).

use std::str::FromStr;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::StorageOptions;

type Db = sqlx::Sqlite;

mod dialect {
    /// SQLite has no row locks; the single writer connection serialises
    /// writes, so a plain read inside the write transaction is enough.
    pub const LOCK_KV_METADATA: &str = "SELECT m.current_version, m.oldest_version, \
        m.max_versions, m.cas_required, m.delete_version_after, m.created_at, m.updated_at, \
        m.custom_dek, m.custom_metadata, cdk.term AS custom_term, cdk.wrapped AS custom_wrapped, \
        c.max_versions AS config_max_versions, c.cas_required AS config_cas_required, \
        c.delete_version_after AS config_delete_version_after \
        FROM kv_metadata m LEFT JOIN data_keys cdk ON cdk.id = m.custom_dek \
        LEFT JOIN kv_config c ON c.mount_uuid = m.mount_uuid \
        WHERE m.mount_uuid = $1 AND m.path = $2";
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Storage in one SQLite file.
#[derive(Clone)]
pub struct SqliteStorage {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStorage {
    /// Opens (creating if needed, with mode 0600) the database file named
    /// by a `sqlite://` URL and migrates it.
    pub async fn connect(url: &str, options: &StorageOptions) -> Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StorageError::Config(format!("invalid sqlite url: {e}")))?;
        let file = connect.get_filename().to_owned();
        if file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:") {
            return Err(StorageError::Config(
                "sqlite storage needs a file path (sqlite:///path/to/secretd.db)".to_owned(),
            ));
        }
        create_private_file(&file)?;
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.connect_timeout)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect.clone())
            .await?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StorageError::Config(format!("migrating the sqlite database: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.connect_timeout)
            .connect_with(connect.read_only(true))
            .await?;
        Ok(SqliteStorage { writer, reader })
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Creates the database file readable by its owner only, before SQLite
/// creates it with the process umask.
fn create_private_file(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StorageError::Config(format!(
            "cannot create the database file {}: {e}",
            path.display()
        ))),
    }
}

super::queries::impl_queries!(SqliteStorage);
