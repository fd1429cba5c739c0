//! SQLite: one file, one node.
//!
//! - **One process.** An exclusive lock on `<db>.lock` is held for as long
//!   as the storage is open, so a second server on the same file refuses
//!   to start. That is what lets this process cache rows ([`RowCache`]).
//! - **Durable writes.** WAL with `synchronous = FULL`: an acknowledged
//!   write has been fsynced.
//! - **Group commit.** One writer task owns the only connection that
//!   writes. It takes every write transaction queued while it was busy,
//!   runs each in its own savepoint inside one transaction, commits once
//!   (one fsync for the whole batch), and only then answers each caller.
//!   A transaction that fails or decides to roll back undoes only its own
//!   savepoint; if the batch itself cannot commit, every caller in it gets
//!   the error and none of their changes is kept. The writer then closes
//!   its connection (rolling back whatever it still held) and opens a new
//!   one for the next batch.
//! - **Reads** use a pool of read-only connections; WAL readers see the
//!   last committed state and never wait for the writer.

use std::fs::{File, TryLockError};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use futures::FutureExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::StorageOptions;
use super::cache::RowCache;

type Conn = sqlx::SqliteConnection;

mod dialect {
    /// SQLite has no row locks; the single writer serialises writes, so a
    /// plain read inside the write transaction is enough.
    pub(in super::super) use super::super::sql::SELECT_KV_METADATA as LOCK_KV_METADATA;
    pub const LOCK_MOUNT_FOR_WRITE: &str = "SELECT CAST(1 AS BIGINT) FROM mounts WHERE uuid = $1";
    pub const LOCK_MOUNT_FOR_DELETE: &str = LOCK_MOUNT_FOR_WRITE;
    /// A live parent token, kept from revocation until the child is stored.
    pub const LOCK_LIVE_PARENT: &str =
        "SELECT CAST(1 AS BIGINT) FROM tokens WHERE hash = $1 AND NOT revoked";
    pub const CLAIM_DUE_LEASES: &str = "UPDATE leases SET due_at = $2, attempts = attempts + 1, \
        expire_at = CASE WHEN expire_at > $1 THEN $1 ELSE expire_at END \
        WHERE id IN (SELECT id FROM leases WHERE due_at <= $1 AND NOT irrevocable \
        ORDER BY due_at LIMIT $3) RETURNING id";
    pub const CLAIM_DUE_LEASES_UNDER: &str = "UPDATE leases SET due_at = $2, \
        attempts = attempts + 1, expire_at = CASE WHEN expire_at > $1 THEN $1 ELSE expire_at END \
        WHERE id IN (SELECT id FROM leases WHERE id >= $4 AND ($5 IS NULL OR id < $5) \
        AND due_at <= $1 AND NOT irrevocable ORDER BY id LIMIT $3) RETURNING id";
    pub const CLAIM_DUE_SCHEDULES: &str = "UPDATE schedules SET claimed_until = $2, \
        attempts = attempts + 1 WHERE (mount_uuid, name) IN (SELECT mount_uuid, name \
        FROM schedules WHERE due_at <= $1 AND (claimed_until IS NULL OR claimed_until <= $1) \
        ORDER BY due_at LIMIT $3) RETURNING mount_uuid, name, attempts";
    /// The single writer already serialises lease creations.
    pub const LOCK_ROLE_QUOTA: &str = "SELECT $1";
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Most write transactions committed together.
const MAX_BATCH: usize = 256;
/// Writes that may wait for the writer before callers wait to queue.
const QUEUE_DEPTH: usize = 4096;

/// Storage in one SQLite file.
#[derive(Clone)]
pub struct SqliteStorage {
    inner: Arc<Inner>,
}

struct Inner {
    reader: SqlitePool,
    writes: mpsc::Sender<WriterMessage>,
    cache: Arc<RowCache>,
    /// Held (locked) for the life of the storage.
    _lock: File,
}

impl SqliteStorage {
    /// Opens (creating if needed, with mode 0600) the database file named
    /// by a `sqlite://` URL, locks it for this process and migrates it.
    pub async fn connect(url: &str, options: &StorageOptions) -> Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StorageError::Config(format!("invalid sqlite url: {e}")))?;
        let file = connect.get_filename().to_owned();
        if file.as_os_str().is_empty() || file.to_string_lossy().contains(":memory:") {
            return Err(StorageError::Config(
                "sqlite storage needs a file path (sqlite:///path/to/secretd.db)".to_owned(),
            ));
        }
        let lock = lock_database(&file)?;
        create_private_file(&file)?;
        let connect = connect
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(options.connect_timeout)
            .foreign_keys(true);
        let mut writer = connect.connect().await?;
        MIGRATOR
            .run(&mut writer)
            .await
            .map_err(|e| StorageError::Config(format!("migrating the sqlite database: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.connect_timeout)
            // Each check costs a round trip to the connection's thread, and
            // a local file connection does not go stale.
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(connect.clone().read_only(true))
            .await?;
        let (writes, queue) = mpsc::channel(QUEUE_DEPTH);
        let cache = Arc::new(RowCache::new());
        tokio::spawn(run_writer(
            Writer::new(writer, connect),
            queue,
            Arc::clone(&cache),
        ));
        Ok(SqliteStorage {
            inner: Arc::new(Inner {
                reader,
                writes,
                cache,
                _lock: lock,
            }),
        })
    }

    fn reader(&self) -> &SqlitePool {
        &self.inner.reader
    }

    /// Queues one write transaction for the writer and waits until the
    /// batch it joined has committed. The writer drops what it `touched`
    /// from the cache after the commit, even if this caller stops waiting.
    async fn write<T: Send + 'static>(&self, touched: Touched, job: Job<T>) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let pending = Box::new(Pending {
            job: Some(job),
            touched,
            result: None,
            reply,
        });
        self.inner
            .writes
            .send(WriterMessage::Write(pending))
            .await
            .map_err(|_| StorageError::Closed)?;
        answer.await.map_err(|_| StorageError::Closed)?
    }

    fn cache(&self) -> Option<&RowCache> {
        Some(&self.inner.cache)
    }

    /// The read pool, and the writes waiting for the writer.
    pub fn pool_stats(&self) -> super::PoolStats {
        let reader = self.reader();
        let writes = &self.inner.writes;
        super::PoolStats {
            size: reader.size(),
            idle: u32::try_from(reader.num_idle()).unwrap_or(u32::MAX),
            max: reader.options().get_max_connections(),
            write_queue: writes.max_capacity() - writes.capacity(),
        }
    }

    /// Lets queued writes finish, then closes every connection.
    pub async fn close(&self) {
        let (ack, done) = oneshot::channel();
        if self
            .inner
            .writes
            .send(WriterMessage::Close(ack))
            .await
            .is_ok()
        {
            let _ = done.await;
        }
        self.inner.reader.close().await;
    }
}

enum WriterMessage {
    Write(Box<dyn BatchedWrite>),
    Close(oneshot::Sender<()>),
}

/// A write transaction waiting in the writer's queue.
trait BatchedWrite: Send {
    /// Runs inside its savepoint; says whether to keep its changes.
    fn run<'c>(&'c mut self, conn: &'c mut Conn) -> futures::future::BoxFuture<'c, bool>;
    /// What the write may have changed, for the cache.
    fn touched(&self) -> &Touched;
    /// Answers the caller once the batch has committed, or with the batch's
    /// failure.
    fn finish(self: Box<Self>, batch_failure: Option<&str>);
}

struct Pending<T> {
    job: Option<Job<T>>,
    touched: Touched,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T: Send> BatchedWrite for Pending<T> {
    fn run<'c>(&'c mut self, conn: &'c mut Conn) -> futures::future::BoxFuture<'c, bool> {
        Box::pin(async move {
            let Some(job) = self.job.take() else {
                return false;
            };
            match job(conn).await {
                Ok(outcome) => {
                    self.result = Some(Ok(outcome.value));
                    outcome.commit
                }
                Err(err) => {
                    self.result = Some(Err(err));
                    false
                }
            }
        })
    }

    fn touched(&self) -> &Touched {
        &self.touched
    }

    fn finish(self: Box<Self>, batch_failure: Option<&str>) {
        let result = match (batch_failure, self.result) {
            // The transaction's own error says more than the batch's.
            (_, Some(Err(err))) => Err(err),
            (None, Some(Ok(value))) => Ok(value),
            (Some(failure), _) => Err(StorageError::CommitFailed(failure.to_owned())),
            (None, None) => Err(StorageError::CommitFailed("the write never ran".to_owned())),
        };
        let _ = self.reply.send(result);
    }
}

/// The writer's connection, and how to open a new one.
struct Writer {
    conn: Option<Conn>,
    connect: SqliteConnectOptions,
}

impl Writer {
    fn new(conn: Conn, connect: SqliteConnectOptions) -> Writer {
        Writer {
            conn: Some(conn),
            connect,
        }
    }

    /// Runs a batch, on a new connection if the last batch failed.
    async fn commit(&mut self, batch: &mut [Box<dyn BatchedWrite>]) -> Result<(), String> {
        if self.conn.is_none() {
            let conn = self
                .connect
                .connect()
                .await
                .map_err(|e| format!("cannot open the database again: {e}"))?;
            self.conn = Some(conn);
        }
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| "no database connection".to_owned())?;
        let result = commit_batch(conn, batch).await;
        if result.is_err() {
            // After a failed COMMIT or ROLLBACK (a full or read-only disk),
            // SQLite and sqlx can disagree about whether a transaction is
            // open; the next batches would then "commit" into a transaction
            // that never ends, acknowledged and lost. Closing the
            // connection rolls back whatever it still holds.
            self.close().await;
        }
        result
    }

    async fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }
}

/// A failed batch is logged at most once per period: on a full disk every
/// batch fails, and a line each would flood the log.
static FAILED_BATCH_LOG: crate::time::Throttle = crate::time::Throttle::new(5);

/// The writer task: batches queued writes until told to close.
async fn run_writer(
    mut writer: Writer,
    mut queue: mpsc::Receiver<WriterMessage>,
    cache: Arc<RowCache>,
) {
    let mut batch: Vec<Box<dyn BatchedWrite>> = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut closing = None;
        let mut next = Some(first);
        while let Some(message) = next {
            match message {
                WriterMessage::Write(write) => batch.push(write),
                WriterMessage::Close(ack) => closing = Some(ack),
            }
            next = if closing.is_none() && batch.len() < MAX_BATCH {
                queue.try_recv().ok()
            } else {
                None
            };
        }
        if !batch.is_empty() {
            // The rows the batch changes leave the cache before the COMMIT
            // and may come back only after it (cache.rs); also around a
            // failed batch, which costs nothing but cache misses.
            cache.begin_commit(batch.iter().map(|write| write.touched().clone()));
            let failure = writer.commit(&mut batch).await.err();
            cache.end_commit();
            if let Some(failure) = &failure
                && let Some(suppressed) = FAILED_BATCH_LOG.admit()
            {
                tracing::warn!(error = %failure, writes = batch.len(), suppressed, "a batch of writes failed");
            }
            for write in batch.drain(..) {
                write.finish(failure.as_deref());
            }
        }
        if let Some(ack) = closing {
            writer.close().await;
            let _ = ack.send(());
            return;
        }
    }
}

/// One transaction, one savepoint per write, one commit.
async fn commit_batch(conn: &mut Conn, batch: &mut [Box<dyn BatchedWrite>]) -> Result<(), String> {
    let describe = |e: sqlx::Error| e.to_string();
    let mut tx = conn.begin().await.map_err(describe)?;
    for write in batch.iter_mut() {
        let mut savepoint = Connection::begin(&mut *tx).await.map_err(describe)?;
        // A panic in one write must not take the writer (and every later
        // write) down with it: that write is rolled back and fails alone.
        let kept = AssertUnwindSafe(write.run(&mut savepoint))
            .catch_unwind()
            .await;
        if kept.is_err() {
            tracing::error!("a write transaction panicked; it was rolled back");
        }
        if matches!(kept, Ok(true)) {
            savepoint.commit().await.map_err(describe)?;
        } else {
            savepoint.rollback().await.map_err(describe)?;
        }
    }
    tx.commit().await.map_err(describe)
}

/// Takes the exclusive lock that makes this process the database's only
/// user; refuses if another process holds it.
fn lock_database(db: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(|e| {
            StorageError::Config(format!("cannot open the lock file {}: {e}", path.display()))
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StorageError::Config(format!(
            "another secretd process is using {} (it holds {})",
            db.display(),
            path.display()
        ))),
        Err(TryLockError::Error(e)) => Err(StorageError::Config(format!(
            "cannot lock {}: {e}",
            path.display()
        ))),
    }
}

/// Creates the database file readable by its owner only, before SQLite
/// creates it with the process umask.
fn create_private_file(path: &Path) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn count(storage: &SqliteStorage) -> i64 {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM fault_test")
            .fetch_one(storage.reader())
            .await
            .unwrap();
        n
    }

    fn statement(sql: &'static str) -> Job<()> {
        job(move |conn| {
            Box::pin(async move {
                sqlx::query(sql).execute(&mut *conn).await?;
                Ok(TxOutcome::commit(()))
            })
        })
    }

    /// A batch whose transaction ends in a state sqlx does not know of (as
    /// after a COMMIT that failed on a full disk) must not leave the next
    /// batches inside a transaction that never commits.
    #[tokio::test]
    async fn writes_after_a_failed_batch_are_committed() {
        let db = crate::storage::testing::TestDatabase::sqlite();
        let storage = SqliteStorage::connect(&db.url, &StorageOptions::default())
            .await
            .unwrap();
        storage
            .write(
                Touched::Nothing,
                statement("CREATE TABLE fault_test (v INTEGER)"),
            )
            .await
            .unwrap();
        // Ends the batch's transaction behind sqlx's back and opens another.
        let broken = storage
            .write(Touched::Nothing, statement("COMMIT; BEGIN"))
            .await;
        assert!(
            matches!(broken, Err(StorageError::CommitFailed(_))),
            "{broken:?}"
        );
        storage
            .write(
                Touched::Nothing,
                statement("INSERT INTO fault_test VALUES (1)"),
            )
            .await
            .unwrap();
        assert_eq!(
            count(&storage).await,
            1,
            "the acknowledged write is visible"
        );
        storage.close().await;
    }
}
