//! The storage methods, written once for both drivers.
//!
//! [`impl_queries!`] expands to the methods of one implementation. The
//! invoking module provides:
//!
//! - `type Db` and `type Conn` (the sqlx database and connection types);
//! - `fn reader(&self)`, a pool for reads;
//! - `async fn write(&self, job)`, which runs `job` as one write
//!   transaction (PostgreSQL: a pooled transaction; SQLite: a savepoint in
//!   the writer's group commit) and returns its value once committed;
//! - `fn cache(&self) -> Option<&RowCache>`, present where this process
//!   owns the database alone;
//! - a `dialect` module with the statements that differ (row locks).
//!
//! Each write is a closure over owned inputs that receives the connection
//! inside its transaction and says whether its changes stay
//! ([`TxOutcome`]). Callers see the result only after the commit.

/// What a write transaction decided.
pub struct TxOutcome<T> {
    pub value: T,
    /// Keep the transaction's changes (commit) or drop them (roll back).
    pub commit: bool,
}

impl<T> TxOutcome<T> {
    pub fn commit(value: T) -> Self {
        TxOutcome {
            value,
            commit: true,
        }
    }

    pub fn rollback(value: T) -> Self {
        TxOutcome {
            value,
            commit: false,
        }
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

/// Tokens revoked, orphaned or swept per transaction.
pub(super) const TOKEN_BATCH: u32 = 1000;

/// Rows fetched per listing query.
pub(super) const LIST_BATCH: i64 = 1000;

macro_rules! impl_queries {
    ($storage:ty) => {
        use futures::future::BoxFuture;
        use $crate::storage::cache::Touched;
        use $crate::storage::queries::{self as q, TxOutcome};
        use $crate::storage::rows::{self, policies_json};
        use $crate::storage::sql;
        use $crate::storage::{
            BarrierRecord, ClaimedJob, DataKeyCounts, DataKeyRecord, InitRecord, KeyTermRecord,
            KvConfigRecord, KvMetadataRead, KvMetadataUpdate, KvVersionRead, KvVersions, KvWrite,
            KvWriteOutcome, LeaseRecord, LeaseStats, MountRecord, Result, RoleLeases,
            ScheduleRecord, SealedBlob, StorageError, TokenRecord, UnixNanos, to_i64, to_u32,
            to_u64,
        };

        /// A write transaction as a closure over the connection.
        type Job<T> =
            Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<TxOutcome<T>>> + Send>;

        /// Boxes a write closure, fixing its higher-ranked signature.
        fn job<T, F>(f: F) -> Job<T>
        where
            F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<TxOutcome<T>>> + Send + 'static,
        {
            Box::new(f)
        }

        impl $storage {
            pub async fn barrier_record(&self) -> Result<Option<BarrierRecord>> {
                let row: Option<rows::BarrierRow> = sqlx::query_as(sql::SELECT_BARRIER)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(rows::BarrierRow::into_record).transpose()
            }

            pub async fn initialize(&self, init: &InitRecord) -> Result<()> {
                let init = InitRecord {
                    barrier: init.barrier.clone(),
                    first_term: init.first_term.clone(),
                    root_token: init.root_token.clone(),
                    mounts: init.mounts.clone(),
                };
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let b = &init.barrier;
                            let inserted = sqlx::query(sql::INSERT_BARRIER)
                                .bind(&b.seal_type)
                                .bind(i64::from(b.secret_shares))
                                .bind(i64::from(b.secret_threshold))
                                .bind(&b.sealed_root_key)
                                .bind(&b.sealed_token_key)
                                .bind(&b.cluster_id)
                                .bind(&b.cluster_name)
                                .bind(b.initialized_at)
                                .execute(&mut *conn)
                                .await;
                            if let Err(err) = inserted {
                                return Err(match StorageError::from(err) {
                                    StorageError::Conflict(_) => {
                                        StorageError::Conflict("initialisation")
                                    }
                                    other => other,
                                });
                            }
                            insert_key_term(&mut *conn, &init.first_term).await?;
                            insert_token(&mut *conn, &init.root_token).await?;
                            for mount in &init.mounts {
                                insert_mount(&mut *conn, mount).await?;
                            }
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn key_terms(&self) -> Result<Vec<KeyTermRecord>> {
                let rows: Vec<rows::KeyTermRow> = sqlx::query_as(sql::SELECT_KEY_TERMS)
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter()
                    .map(rows::KeyTermRow::into_record)
                    .collect()
            }

            pub async fn add_key_term(&self, term: &KeyTermRecord) -> Result<()> {
                let term = term.clone();
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            insert_key_term(&mut *conn, &term)
                                .await
                                .map_err(|e| match e {
                                    StorageError::Conflict(_) => StorageError::Conflict("key term"),
                                    other => other,
                                })?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn data_keys_below_term(
                &self,
                term: u32,
                after: &[u8],
                limit: u32,
            ) -> Result<Vec<DataKeyRecord>> {
                let rows: Vec<rows::DataKeyRow> = sqlx::query_as(sql::SELECT_DATA_KEYS_BELOW)
                    .bind(i64::from(term))
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter()
                    .map(rows::DataKeyRow::into_record)
                    .collect()
            }

            pub async fn rewrap_data_keys(
                &self,
                rewrapped: &[(DataKeyRecord, u32)],
            ) -> Result<u64> {
                let rewrapped = rewrapped.to_vec();
                let done = self
                    .write(
                        Touched::AllKv,
                        job(move |conn| {
                            Box::pin(async move {
                                let mut done = 0;
                                for (key, old_term) in &rewrapped {
                                    done += sqlx::query(sql::REWRAP_DATA_KEY)
                                        .bind(i64::from(key.term))
                                        .bind(&key.wrapped)
                                        .bind(&key.id)
                                        .bind(i64::from(*old_term))
                                        .execute(&mut *conn)
                                        .await?
                                        .rows_affected();
                                }
                                Ok(TxOutcome::commit(done))
                            })
                        }),
                    )
                    .await?;
                Ok(done)
            }

            pub async fn data_key_counts(&self, term: u32) -> Result<DataKeyCounts> {
                let row: rows::CountsRow = sqlx::query_as(sql::COUNT_DATA_KEYS)
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
                let rows: Vec<rows::MountRow> = sqlx::query_as(sql::SELECT_MOUNTS)
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map(rows::MountRow::into_record).collect()
            }

            pub async fn create_mount(&self, mount: &MountRecord) -> Result<()> {
                let mount = mount.clone();
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            insert_mount(&mut *conn, &mount)
                                .await
                                .map_err(|e| match e {
                                    StorageError::Conflict(_) => {
                                        StorageError::Conflict("mount path")
                                    }
                                    other => other,
                                })?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn tune_mount(
                &self,
                uuid: &str,
                description: &str,
                config: &str,
            ) -> Result<()> {
                let (uuid, description, config) =
                    (uuid.to_owned(), description.to_owned(), config.to_owned());
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            sqlx::query(sql::TUNE_MOUNT)
                                .bind(&uuid)
                                .bind(&description)
                                .bind(&config)
                                .execute(&mut *conn)
                                .await?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn delete_mount(&self, uuid: &str) -> Result<()> {
                let uuid = uuid.to_owned();
                self.write(
                    Touched::AllKvAndTokens,
                    job(move |conn| {
                        Box::pin(async move {
                            // Waits for KV writes in flight on this mount,
                            // and makes later ones find it gone.
                            sqlx::query(dialect::LOCK_MOUNT_FOR_DELETE)
                                .bind(&uuid)
                                .fetch_optional(&mut *conn)
                                .await?;
                            for statement in [
                                sql::REVOKE_MOUNT_TOKENS,
                                sql::DELETE_MOUNT_LEASE_KEYS,
                                sql::DELETE_MOUNT_LEASES,
                                sql::DELETE_MOUNT_SCHEDULES,
                                sql::DELETE_MOUNT_ENTRY_KEYS,
                                sql::DELETE_MOUNT_ENTRIES,
                                sql::DELETE_MOUNT_DATA_KEYS,
                                sql::DELETE_MOUNT_VERSIONS,
                                sql::DELETE_MOUNT_METADATA,
                                sql::DELETE_MOUNT_CONFIG,
                                sql::DELETE_MOUNT,
                            ] {
                                sqlx::query(statement)
                                    .bind(&uuid)
                                    .execute(&mut *conn)
                                    .await?;
                            }
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn create_token(&self, token: &TokenRecord) -> Result<()> {
                let token = token.clone();
                let touched = Touched::Token(token.hash.clone());
                self.write(
                    touched,
                    job(move |conn| {
                        Box::pin(async move {
                            if let Some(parent) = &token.parent {
                                // Held until the child is stored, so a
                                // revocation of the parent either sees the
                                // child or makes this insert fail.
                                let live: Option<(i64,)> =
                                    sqlx::query_as(dialect::LOCK_LIVE_PARENT)
                                        .bind(parent)
                                        .fetch_optional(&mut *conn)
                                        .await?;
                                if live.is_none() {
                                    return Err(StorageError::ParentRevoked);
                                }
                            }
                            insert_token(&mut *conn, &token).await?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn token(&self, hash: &[u8]) -> Result<Option<TokenRecord>> {
                let cache = self.cache();
                if let Some(hit) = cache.and_then(|c| c.token(hash)) {
                    return Ok(Some(hit));
                }
                let epoch = cache.map(|c| c.epoch());
                let row: Option<rows::TokenRow> = sqlx::query_as(sql::SELECT_TOKEN)
                    .bind(hash)
                    .fetch_optional(self.reader())
                    .await?;
                let record = row.map(rows::TokenRow::into_record).transpose()?;
                if let (Some(cache), Some(epoch), Some(record)) = (cache, epoch, &record) {
                    cache.fill_token(epoch, record);
                }
                Ok(record)
            }

            pub async fn token_by_accessor(&self, accessor: &str) -> Result<Option<TokenRecord>> {
                let row: Option<rows::TokenRow> = sqlx::query_as(sql::SELECT_TOKEN_BY_ACCESSOR)
                    .bind(accessor)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(rows::TokenRow::into_record).transpose()
            }

            pub async fn token_accessors(&self) -> Result<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(sql::SELECT_ACCESSORS)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.into_iter().map(|(a,)| a).collect())
            }

            pub async fn use_token(&self, hash: &[u8]) -> Result<Option<u64>> {
                let owned = hash.to_vec();
                self.write(
                    Touched::Token(hash.to_vec()),
                    job(move |conn| {
                        Box::pin(async move {
                            let left: Option<(i64,)> = sqlx::query_as(sql::USE_TOKEN)
                                .bind(&owned)
                                .fetch_optional(&mut *conn)
                                .await?;
                            let left = left.map(|(n,)| to_u64(n, "num_uses")).transpose()?;
                            Ok(TxOutcome::commit(left))
                        })
                    }),
                )
                .await
            }

            pub async fn renew_token(
                &self,
                hash: &[u8],
                expire_at: Option<UnixNanos>,
                now: UnixNanos,
            ) -> Result<bool> {
                let owned = hash.to_vec();
                self.write(
                    Touched::Token(hash.to_vec()),
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(sql::RENEW_TOKEN)
                                .bind(&owned)
                                .bind(expire_at)
                                .bind(now)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done > 0))
                        })
                    }),
                )
                .await
            }

            pub async fn revoke_token(&self, hash: &[u8], orphan_children: bool) -> Result<()> {
                if orphan_children {
                    while self.orphan_children(hash, q::TOKEN_BATCH).await? > 0 {}
                }
                let owned = hash.to_vec();
                self.write(
                    Touched::Token(hash.to_vec()),
                    job(move |conn| {
                        Box::pin(async move {
                            sqlx::query(sql::REVOKE_TOKEN)
                                .bind(&owned)
                                .execute(&mut *conn)
                                .await?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await?;
                // Down the tree, one bounded batch per transaction; this also
                // finishes any other revocation still in progress.
                while self.cascade_revocations(q::TOKEN_BATCH).await? > 0 {}
                Ok(())
            }

            async fn orphan_children(&self, hash: &[u8], limit: u32) -> Result<u64> {
                let owned = hash.to_vec();
                self.write(
                    Touched::AllTokens,
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(sql::ORPHAN_CHILDREN)
                                .bind(&owned)
                                .bind(i64::from(limit))
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done))
                        })
                    }),
                )
                .await
            }

            pub async fn revoke_expired_tokens(&self, now: UnixNanos, limit: u32) -> Result<u64> {
                self.write(
                    Touched::AllTokens,
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(sql::REVOKE_EXPIRED)
                                .bind(now)
                                .bind(i64::from(limit))
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done))
                        })
                    }),
                )
                .await
            }

            pub async fn cascade_revocations(&self, limit: u32) -> Result<u64> {
                self.token_batch(sql::CASCADE_REVOCATION, limit).await
            }

            pub async fn sweep_revoked_tokens(&self, limit: u32) -> Result<u64> {
                self.token_batch(sql::SWEEP_REVOKED, limit).await
            }

            /// One bounded batch statement over tokens ($1 = the limit).
            async fn token_batch(&self, statement: &'static str, limit: u32) -> Result<u64> {
                self.write(
                    Touched::AllTokens,
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(statement)
                                .bind(i64::from(limit))
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done))
                        })
                    }),
                )
                .await
            }

            pub async fn policy(
                &self,
                name: &str,
            ) -> Result<Option<$crate::storage::PolicyRecord>> {
                let row: Option<rows::PolicyRow> = sqlx::query_as(sql::SELECT_POLICY)
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(rows::PolicyRow::into_record).transpose()
            }

            pub async fn change_counters(&self) -> Result<Vec<(String, u64)>> {
                let rows: Vec<(String, i64)> = sqlx::query_as(sql::SELECT_CHANGE_COUNTERS)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows
                    .into_iter()
                    .map(|(topic, version)| (topic, version as u64))
                    .collect())
            }

            pub async fn put_node(&self, node: &$crate::storage::NodeRecord) -> Result<()> {
                let node = node.clone();
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            sqlx::query(sql::UPSERT_NODE)
                                .bind(&node.id)
                                .bind(&node.hostname)
                                .bind(&node.api_address)
                                .bind(&node.version)
                                .bind(node.sealed)
                                .bind(node.started_at)
                                .bind(node.last_seen)
                                .execute(&mut *conn)
                                .await?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn nodes(
                &self,
                since: UnixNanos,
            ) -> Result<Vec<$crate::storage::NodeRecord>> {
                let rows: Vec<rows::NodeRow> = sqlx::query_as(sql::SELECT_NODES)
                    .bind(since)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.into_iter().map(rows::NodeRow::into_record).collect())
            }

            pub async fn delete_node(&self, id: &str) -> Result<bool> {
                self.delete_nodes(sql::DELETE_NODE, id.to_owned())
                    .await
                    .map(|n| n > 0)
            }

            pub async fn delete_nodes_seen_before(&self, before: UnixNanos) -> Result<u64> {
                self.delete_nodes(sql::DELETE_NODES_SEEN_BEFORE, before)
                    .await
            }

            /// One statement deleting node rows, with one parameter.
            async fn delete_nodes<T>(&self, statement: &'static str, arg: T) -> Result<u64>
            where
                T: for<'q> sqlx::Encode<'q, <Conn as sqlx::Connection>::Database>
                    + sqlx::Type<<Conn as sqlx::Connection>::Database>
                    + Send
                    + Sync
                    + 'static,
            {
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(statement)
                                .bind(arg)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done))
                        })
                    }),
                )
                .await
            }

            pub async fn policy_names(&self) -> Result<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(sql::SELECT_POLICY_NAMES)
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.into_iter().map(|(n,)| n).collect())
            }

            pub async fn put_policy(&self, name: &str, policy: &str, now: UnixNanos) -> Result<()> {
                self.policy_statement(sql::UPSERT_POLICY, name, policy, now)
                    .await
            }

            pub async fn ensure_policy(
                &self,
                name: &str,
                policy: &str,
                now: UnixNanos,
            ) -> Result<()> {
                self.policy_statement(sql::INSERT_POLICY_IF_MISSING, name, policy, now)
                    .await
            }

            async fn policy_statement(
                &self,
                statement: &'static str,
                name: &str,
                policy: &str,
                now: UnixNanos,
            ) -> Result<()> {
                let (name, policy) = (name.to_owned(), policy.to_owned());
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            sqlx::query(statement)
                                .bind(&name)
                                .bind(&policy)
                                .bind(now)
                                .execute(&mut *conn)
                                .await?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn delete_policy(&self, name: &str) -> Result<bool> {
                let name = name.to_owned();
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(sql::DELETE_POLICY)
                                .bind(&name)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done > 0))
                        })
                    }),
                )
                .await
            }

            pub async fn audit_devices(&self) -> Result<Vec<$crate::storage::AuditDeviceRecord>> {
                let rows: Vec<rows::AuditDeviceRow> = sqlx::query_as(sql::SELECT_AUDIT_DEVICES)
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter()
                    .map(rows::AuditDeviceRow::into_record)
                    .collect()
            }

            pub async fn create_audit_device(
                &self,
                device: &$crate::storage::AuditDeviceRecord,
            ) -> Result<()> {
                let device = device.clone();
                let Some(key) = device.hmac_key.clone() else {
                    return Err(StorageError::Corrupt(
                        "an audit device without a key".into(),
                    ));
                };
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            insert_data_key(&mut *conn, &key.dek).await?;
                            sqlx::query(sql::INSERT_AUDIT_DEVICE)
                                .bind(&device.path)
                                .bind(&device.uuid)
                                .bind(&device.device_type)
                                .bind(&device.description)
                                .bind(&device.options)
                                .bind(device.local)
                                .bind(&key.dek.id)
                                .bind(&key.ciphertext)
                                .bind(device.created_at)
                                .execute(&mut *conn)
                                .await
                                .map_err(|e| match StorageError::from(e) {
                                    StorageError::Conflict(_) => {
                                        StorageError::Conflict("audit device path")
                                    }
                                    other => other,
                                })?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn delete_audit_device(&self, path: &str) -> Result<bool> {
                self.delete_keyed(sql::DELETE_AUDIT_DEVICE_KEY, sql::DELETE_AUDIT_DEVICE, path)
                    .await
            }

            /// Shreds a row's data key (`key_statement`) and deletes the row
            /// (`row_statement`), both bound to `id`, in one transaction;
            /// false if there was no row.
            async fn delete_keyed(
                &self,
                key_statement: &'static str,
                row_statement: &'static str,
                id: &str,
            ) -> Result<bool> {
                let id = id.to_owned();
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            sqlx::query(key_statement)
                                .bind(&id)
                                .execute(&mut *conn)
                                .await?;
                            let done = sqlx::query(row_statement)
                                .bind(&id)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done > 0))
                        })
                    }),
                )
                .await
            }

            pub async fn mount_entry(&self, mount: &str, path: &str) -> Result<Option<SealedBlob>> {
                let row: Option<rows::MountEntryRow> = sqlx::query_as(sql::SELECT_MOUNT_ENTRY)
                    .bind(mount)
                    .bind(path)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(rows::MountEntryRow::into_blob).transpose()
            }

            pub async fn put_mount_entry(
                &self,
                mount: &str,
                path: &str,
                value: &SealedBlob,
                now: UnixNanos,
            ) -> Result<()> {
                let (mount, path, value) = (mount.to_owned(), path.to_owned(), value.clone());
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            require_mount(&mut *conn, &mount).await?;
                            sqlx::query(sql::DELETE_MOUNT_ENTRY_KEY)
                                .bind(&mount)
                                .bind(&path)
                                .execute(&mut *conn)
                                .await?;
                            insert_data_key(&mut *conn, &value.dek).await?;
                            sqlx::query(sql::UPSERT_MOUNT_ENTRY)
                                .bind(&mount)
                                .bind(&path)
                                .bind(&value.dek.id)
                                .bind(&value.ciphertext)
                                .bind(now)
                                .execute(&mut *conn)
                                .await?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn delete_mount_entry(&self, mount: &str, path: &str) -> Result<bool> {
                let (mount, path) = (mount.to_owned(), path.to_owned());
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            sqlx::query(sql::DELETE_MOUNT_ENTRY_KEY)
                                .bind(&mount)
                                .bind(&path)
                                .execute(&mut *conn)
                                .await?;
                            let done = sqlx::query(sql::DELETE_MOUNT_ENTRY)
                                .bind(&mount)
                                .bind(&path)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done > 0))
                        })
                    }),
                )
                .await
            }

            pub async fn mount_entry_paths(
                &self,
                mount: &str,
                prefix: &str,
                limit: u32,
            ) -> Result<Vec<String>> {
                let upper = $crate::storage::prefix_upper_bound(prefix);
                let rows: Vec<(String,)> = sqlx::query_as(sql::LIST_MOUNT_ENTRIES)
                    .bind(mount)
                    .bind(prefix)
                    .bind(upper.as_deref())
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.into_iter().map(|(p,)| p).collect())
            }

            pub async fn create_lease(&self, lease: &LeaseRecord, max_leases: u64) -> Result<()> {
                let lease = lease.clone();
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            require_mount(&mut *conn, &lease.mount_uuid).await?;
                            if let Some(token) = &lease.token_hash {
                                // Held until the lease is stored, so the
                                // token's revocation sees it.
                                let live: Option<(i64,)> =
                                    sqlx::query_as(dialect::LOCK_LIVE_PARENT)
                                        .bind(token)
                                        .fetch_optional(&mut *conn)
                                        .await?;
                                if live.is_none() {
                                    return Err(StorageError::ParentRevoked);
                                }
                            }
                            if max_leases > 0 {
                                sqlx::query(dialect::LOCK_ROLE_QUOTA)
                                    .bind(format!("{}/{}", lease.mount_uuid, lease.role))
                                    .execute(&mut *conn)
                                    .await?;
                                let (held,): (i64,) = sqlx::query_as(sql::COUNT_ROLE_LEASES)
                                    .bind(&lease.mount_uuid)
                                    .bind(&lease.role)
                                    .fetch_one(&mut *conn)
                                    .await?;
                                let held = to_u64(held, "lease count")?;
                                if held >= max_leases {
                                    return Err(StorageError::QuotaExceeded(held));
                                }
                            }
                            insert_data_key(&mut *conn, &lease.secret.dek).await?;
                            sqlx::query(sql::INSERT_LEASE)
                                .bind(&lease.id)
                                .bind(&lease.mount_uuid)
                                .bind(&lease.role)
                                .bind(lease.token_hash.as_deref())
                                .bind(lease.issued_at)
                                .bind(lease.expire_at)
                                .bind(lease.last_renewal)
                                .bind(lease.renewable)
                                .bind(&lease.secret.dek.id)
                                .bind(&lease.secret.ciphertext)
                                .bind(lease.due_at)
                                .bind(i64::from(lease.attempts))
                                .bind(lease.irrevocable)
                                .bind(lease.last_error.as_deref())
                                .execute(&mut *conn)
                                .await
                                .map_err(|e| match StorageError::from(e) {
                                    StorageError::Conflict(_) => StorageError::Conflict("lease id"),
                                    other => other,
                                })?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn lease(&self, id: &str) -> Result<Option<LeaseRecord>> {
                let row: Option<rows::LeaseRow> = sqlx::query_as(sql::SELECT_LEASE)
                    .bind(id)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(rows::LeaseRow::into_record).transpose()
            }

            pub async fn lease_ids(&self, prefix: &str, limit: u32) -> Result<Vec<String>> {
                let upper = $crate::storage::prefix_upper_bound(prefix);
                let rows: Vec<(String,)> = sqlx::query_as(sql::LIST_LEASE_IDS)
                    .bind(prefix)
                    .bind(upper.as_deref())
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            pub async fn renew_lease(
                &self,
                id: &str,
                expire_at: UnixNanos,
                now: UnixNanos,
            ) -> Result<bool> {
                let id = id.to_owned();
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(sql::RENEW_LEASE)
                                .bind(&id)
                                .bind(expire_at)
                                .bind(now)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done > 0))
                        })
                    }),
                )
                .await
            }

            pub async fn settle_lease(
                &self,
                id: &str,
                reserved_until: UnixNanos,
                due_at: UnixNanos,
            ) -> Result<bool> {
                let id = id.to_owned();
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(sql::SETTLE_LEASE)
                                .bind(&id)
                                .bind(reserved_until)
                                .bind(due_at)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done > 0))
                        })
                    }),
                )
                .await
            }

            pub async fn claim_due_leases(
                &self,
                now: UnixNanos,
                deadline: UnixNanos,
                limit: u32,
            ) -> Result<Vec<LeaseRecord>> {
                self.claim(dialect::CLAIM_DUE_LEASES, None, now, deadline, limit)
                    .await
            }

            pub async fn claim_due_leases_under(
                &self,
                prefix: &str,
                now: UnixNanos,
                deadline: UnixNanos,
                limit: u32,
            ) -> Result<Vec<LeaseRecord>> {
                self.claim(
                    dialect::CLAIM_DUE_LEASES_UNDER,
                    Some(prefix),
                    now,
                    deadline,
                    limit,
                )
                .await
            }

            /// Runs a claim statement ($1 now, $2 deadline, $3 limit, and
            /// with a prefix $4/$5 its id range) and reads what it claimed.
            async fn claim(
                &self,
                statement: &'static str,
                prefix: Option<&str>,
                now: UnixNanos,
                deadline: UnixNanos,
                limit: u32,
            ) -> Result<Vec<LeaseRecord>> {
                let range = prefix.map(|p| (p.to_owned(), $crate::storage::prefix_upper_bound(p)));
                let ids: Vec<String> = self
                    .write(
                        Touched::Nothing,
                        job(move |conn| {
                            Box::pin(async move {
                                let mut query = sqlx::query_as(statement)
                                    .bind(now)
                                    .bind(deadline)
                                    .bind(i64::from(limit));
                                if let Some((from, to)) = &range {
                                    query = query.bind(from.clone()).bind(to.clone());
                                }
                                let rows: Vec<(String,)> = query.fetch_all(&mut *conn).await?;
                                Ok(TxOutcome::commit(
                                    rows.into_iter().map(|(id,)| id).collect(),
                                ))
                            })
                        }),
                    )
                    .await?;
                self.leases_by_id(&ids).await
            }

            pub async fn claim_lease(
                &self,
                id: &str,
                now: UnixNanos,
                deadline: UnixNanos,
            ) -> Result<Option<LeaseRecord>> {
                let owned = id.to_owned();
                let claimed: Option<(String,)> = self
                    .write(
                        Touched::Nothing,
                        job(move |conn| {
                            Box::pin(async move {
                                let row = sqlx::query_as(sql::CLAIM_LEASE)
                                    .bind(now)
                                    .bind(deadline)
                                    .bind(&owned)
                                    .fetch_optional(&mut *conn)
                                    .await?;
                                Ok(TxOutcome::commit(row))
                            })
                        }),
                    )
                    .await?;
                match claimed {
                    Some(_) => self.lease(id).await,
                    None => Ok(None),
                }
            }

            /// The leases with these ids that still exist, in that order.
            async fn leases_by_id(&self, ids: &[String]) -> Result<Vec<LeaseRecord>> {
                let mut leases = Vec::with_capacity(ids.len());
                for id in ids {
                    if let Some(lease) = self.lease(id).await? {
                        leases.push(lease);
                    }
                }
                Ok(leases)
            }

            pub async fn finish_lease(&self, id: &str) -> Result<bool> {
                self.delete_keyed(sql::DELETE_LEASE_KEY, sql::DELETE_LEASE, id)
                    .await
            }

            pub async fn fail_lease(
                &self,
                id: &str,
                retry_at: UnixNanos,
                error: &str,
                irrevocable: bool,
            ) -> Result<()> {
                let (id, error) = (id.to_owned(), error.to_owned());
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            sqlx::query(sql::FAIL_LEASE)
                                .bind(&id)
                                .bind(retry_at)
                                .bind(&error)
                                .bind(irrevocable)
                                .execute(&mut *conn)
                                .await?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn expire_leases(&self, prefix: &str, now: UnixNanos) -> Result<u64> {
                let prefix = prefix.to_owned();
                let upper = $crate::storage::prefix_upper_bound(&prefix);
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(sql::EXPIRE_LEASES)
                                .bind(now)
                                .bind(&prefix)
                                .bind(upper.as_deref())
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done))
                        })
                    }),
                )
                .await
            }

            pub async fn expire_leases_of_revoked_tokens(
                &self,
                now: UnixNanos,
                limit: u32,
            ) -> Result<u64> {
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(sql::EXPIRE_LEASES_OF_REVOKED_TOKENS)
                                .bind(now)
                                .bind(i64::from(limit))
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done))
                        })
                    }),
                )
                .await
            }

            pub async fn force_delete_leases(&self, prefix: &str) -> Result<u64> {
                let prefix = prefix.to_owned();
                let upper = $crate::storage::prefix_upper_bound(&prefix);
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            sqlx::query(sql::DELETE_LEASE_KEYS_IN_RANGE)
                                .bind(&prefix)
                                .bind(upper.as_deref())
                                .execute(&mut *conn)
                                .await?;
                            let done = sqlx::query(sql::DELETE_LEASES_IN_RANGE)
                                .bind(&prefix)
                                .bind(upper.as_deref())
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done))
                        })
                    }),
                )
                .await
            }

            pub async fn role_lease_count(&self, mount: &str, role: &str) -> Result<u64> {
                let (n,): (i64,) = sqlx::query_as(sql::COUNT_ROLE_LEASES)
                    .bind(mount)
                    .bind(role)
                    .fetch_one(self.reader())
                    .await?;
                to_u64(n, "lease count")
            }

            pub async fn lease_counts(&self) -> Result<(u64, u64)> {
                let (all, irrevocable): (i64, i64) = sqlx::query_as(sql::COUNT_LEASES)
                    .fetch_one(self.reader())
                    .await?;
                Ok((
                    to_u64(all, "lease count")?,
                    to_u64(irrevocable, "irrevocable lease count")?,
                ))
            }

            pub async fn lease_stats(&self, now: UnixNanos) -> Result<LeaseStats> {
                let rows: Vec<(String, String, i64, i64)> =
                    sqlx::query_as(sql::COUNT_LEASES_BY_ROLE)
                        .fetch_all(self.reader())
                        .await?;
                let (oldest,): (Option<i64>,) = sqlx::query_as(sql::OLDEST_OVERDUE_LEASE)
                    .bind(now)
                    .fetch_one(self.reader())
                    .await?;
                let by_role = rows
                    .into_iter()
                    .map(|(mount_uuid, role, leases, irrevocable)| {
                        Ok(RoleLeases {
                            mount_uuid,
                            role,
                            leases: to_u64(leases, "lease count")?,
                            irrevocable: to_u64(irrevocable, "irrevocable lease count")?,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(LeaseStats {
                    by_role,
                    oldest_overdue: oldest,
                    read_at: now,
                })
            }

            pub async fn irrevocable_leases(&self, limit: u32) -> Result<Vec<LeaseRecord>> {
                let rows: Vec<rows::LeaseRow> = sqlx::query_as(sql::SELECT_IRREVOCABLE_LEASES)
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map(rows::LeaseRow::into_record).collect()
            }

            pub async fn schedule(&self, mount: &str, name: &str, due_at: UnixNanos) -> Result<()> {
                let (mount, name) = (mount.to_owned(), name.to_owned());
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            sqlx::query(sql::UPSERT_SCHEDULE)
                                .bind(&mount)
                                .bind(&name)
                                .bind(due_at)
                                .execute(&mut *conn)
                                .await?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn unschedule(&self, mount: &str, name: &str) -> Result<bool> {
                let (mount, name) = (mount.to_owned(), name.to_owned());
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let done = sqlx::query(sql::DELETE_SCHEDULE)
                                .bind(&mount)
                                .bind(&name)
                                .execute(&mut *conn)
                                .await?
                                .rows_affected();
                            Ok(TxOutcome::commit(done > 0))
                        })
                    }),
                )
                .await
            }

            pub async fn scheduled(
                &self,
                mount: &str,
                name: &str,
            ) -> Result<Option<ScheduleRecord>> {
                let row: Option<rows::ScheduleRow> = sqlx::query_as(sql::SELECT_SCHEDULE)
                    .bind(mount)
                    .bind(name)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(rows::ScheduleRow::into_record).transpose()
            }

            pub async fn claim_due_jobs(
                &self,
                now: UnixNanos,
                deadline: UnixNanos,
                limit: u32,
            ) -> Result<Vec<ClaimedJob>> {
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let rows: Vec<(String, String, i64)> =
                                sqlx::query_as(dialect::CLAIM_DUE_SCHEDULES)
                                    .bind(now)
                                    .bind(deadline)
                                    .bind(i64::from(limit))
                                    .fetch_all(&mut *conn)
                                    .await?;
                            let jobs = rows
                                .into_iter()
                                .map(|(mount_uuid, name, attempts)| {
                                    Ok(ClaimedJob {
                                        mount_uuid,
                                        name,
                                        attempts: to_u32(attempts, "job attempts")?,
                                    })
                                })
                                .collect::<Result<Vec<_>>>()?;
                            Ok(TxOutcome::commit(jobs))
                        })
                    }),
                )
                .await
            }

            pub async fn claim_job(
                &self,
                mount: &str,
                name: &str,
                now: UnixNanos,
                deadline: UnixNanos,
            ) -> Result<Option<u32>> {
                let (mount, name) = (mount.to_owned(), name.to_owned());
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let row: Option<(i64,)> = sqlx::query_as(sql::CLAIM_SCHEDULE)
                                .bind(&mount)
                                .bind(&name)
                                .bind(now)
                                .bind(deadline)
                                .fetch_optional(&mut *conn)
                                .await?;
                            let attempts = row.map(|(n,)| to_u32(n, "job attempts")).transpose()?;
                            Ok(TxOutcome::commit(attempts))
                        })
                    }),
                )
                .await
            }

            pub async fn finish_job(&self, mount: &str, name: &str, next: UnixNanos) -> Result<()> {
                self.job_update(sql::FINISH_SCHEDULE, mount, name, next, None)
                    .await
            }

            pub async fn fail_job(
                &self,
                mount: &str,
                name: &str,
                retry_at: UnixNanos,
                error: &str,
            ) -> Result<()> {
                self.job_update(sql::FAIL_SCHEDULE, mount, name, retry_at, Some(error))
                    .await
            }

            /// A job's next due time ($3) and, for a failure, its error ($4).
            async fn job_update(
                &self,
                statement: &'static str,
                mount: &str,
                name: &str,
                at: UnixNanos,
                error: Option<&str>,
            ) -> Result<()> {
                let (mount, name, error) =
                    (mount.to_owned(), name.to_owned(), error.map(str::to_owned));
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            let mut query =
                                sqlx::query(statement).bind(&mount).bind(&name).bind(at);
                            if let Some(error) = &error {
                                query = query.bind(error.clone());
                            }
                            query.execute(&mut *conn).await?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn kv_config(&self, mount: &str) -> Result<Option<KvConfigRecord>> {
                let row: Option<rows::KvConfigRow> = sqlx::query_as(sql::SELECT_KV_CONFIG)
                    .bind(mount)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(rows::KvConfigRow::into_record).transpose()
            }

            pub async fn set_kv_config(&self, mount: &str, config: &KvConfigRecord) -> Result<()> {
                let mount = mount.to_owned();
                let config = *config;
                let delete_after = to_i64(config.delete_version_after, "delete_version_after")?;
                self.write(
                    Touched::Nothing,
                    job(move |conn| {
                        Box::pin(async move {
                            sqlx::query(sql::UPSERT_KV_CONFIG)
                                .bind(&mount)
                                .bind(i64::from(config.max_versions))
                                .bind(config.cas_required)
                                .bind(delete_after)
                                .execute(&mut *conn)
                                .await?;
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn kv_write<F, E>(
                &self,
                write: &KvWrite<'_>,
                seal: F,
            ) -> Result<KvWriteOutcome<E>>
            where
                F: Fn(u64) -> std::result::Result<SealedBlob, E> + Send + Sync + 'static,
                E: Send + 'static,
            {
                let (mount, path) = (write.mount.to_owned(), write.path.to_owned());
                let (cas, expect_version, now) = (write.cas, write.expect_version, write.now);
                let touched = Touched::kv(&mount, &path);
                self.write(
                    touched,
                    job(move |conn| {
                        Box::pin(async move {
                            let outcome =
                                write_version(conn, &mount, &path, cas, expect_version, now, &seal)
                                    .await?;
                            Ok(match outcome {
                                KvWriteOutcome::Written { .. } => TxOutcome::commit(outcome),
                                // Refused: drop the metadata row the attempt created.
                                _ => TxOutcome::rollback(outcome),
                            })
                        })
                    }),
                )
                .await
            }

            pub async fn kv_read(
                &self,
                mount: &str,
                path: &str,
                version: u64,
            ) -> Result<Option<KvVersionRead>> {
                let cache = self.cache().filter(|_| version == 0);
                if let Some(hit) = cache.and_then(|c| c.kv_latest(mount, path)) {
                    return Ok(Some(hit));
                }
                let epoch = cache.map(|c| c.epoch());
                let row: Option<rows::KvVersionRow> = sqlx::query_as(sql::SELECT_KV_VERSION)
                    .bind(mount)
                    .bind(path)
                    .bind(to_i64(version, "version")?)
                    .fetch_optional(self.reader())
                    .await?;
                let read = row.map(rows::KvVersionRow::into_read).transpose()?;
                if let (Some(cache), Some(epoch), Some(read)) = (cache, epoch, &read) {
                    cache.fill_kv_latest(epoch, mount, path, read);
                }
                Ok(read)
            }

            pub async fn kv_metadata(
                &self,
                mount: &str,
                path: &str,
            ) -> Result<Option<KvMetadataRead>> {
                // One read transaction: the metadata and the version list are
                // one snapshot even while writes and pruning go on.
                let mut conn = self.reader().begin().await?;
                let meta: Option<rows::KvMetadataRow> = sqlx::query_as(sql::SELECT_KV_METADATA)
                    .bind(mount)
                    .bind(path)
                    .fetch_optional(&mut *conn)
                    .await?;
                let Some(meta) = meta else {
                    return Ok(None);
                };
                let rows: Vec<rows::KvVersionInfoRow> = sqlx::query_as(sql::SELECT_KV_VERSION_LIST)
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
                        .map(rows::KvVersionInfoRow::into_record)
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
                let (mount, path) = (mount.to_owned(), path.to_owned());
                let max_versions = update.max_versions.map(i64::from);
                let cas_required = update.cas_required;
                let delete_after = update
                    .delete_version_after
                    .map(|d| to_i64(d, "delete_version_after"))
                    .transpose()?;
                let custom = update.custom_metadata.clone();
                let touched = Touched::kv(&mount, &path);
                self.write(
                    touched,
                    job(move |conn| {
                        Box::pin(async move {
                            require_mount(&mut *conn, &mount).await?;
                            let meta =
                                ensure_and_lock_metadata(&mut *conn, &mount, &path, now).await?;
                            sqlx::query(sql::UPDATE_KV_SETTINGS)
                                .bind(&mount)
                                .bind(&path)
                                .bind(max_versions)
                                .bind(cas_required)
                                .bind(delete_after)
                                .bind(now)
                                .execute(&mut *conn)
                                .await?;
                            if let Some(custom) = &custom {
                                if let Some(old) = meta.custom_metadata()? {
                                    sqlx::query(sql::DELETE_DATA_KEY)
                                        .bind(&old.dek.id)
                                        .execute(&mut *conn)
                                        .await?;
                                }
                                if let Some(new) = custom {
                                    insert_data_key(&mut *conn, &new.dek).await?;
                                }
                                sqlx::query(sql::UPDATE_KV_CUSTOM)
                                    .bind(&mount)
                                    .bind(&path)
                                    .bind(custom.as_ref().map(|c| &c.dek.id))
                                    .bind(custom.as_ref().map(|c| &c.ciphertext))
                                    .bind(now)
                                    .execute(&mut *conn)
                                    .await?;
                            }
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn kv_delete_versions(
                &self,
                mount: &str,
                path: &str,
                versions: KvVersions<'_>,
                now: UnixNanos,
            ) -> Result<()> {
                let (mount, path) = (mount.to_owned(), path.to_owned());
                let list: Option<Vec<i64>> = match versions {
                    KvVersions::Latest => None,
                    KvVersions::These(list) => Some(
                        list.iter()
                            .map(|&v| to_i64(v, "version"))
                            .collect::<Result<_>>()?,
                    ),
                };
                let touched = Touched::kv(&mount, &path);
                self.write(
                    touched,
                    job(move |conn| {
                        Box::pin(async move {
                            if !lock_kv_key(&mut *conn, &mount, &path).await? {
                                // No such key when we looked: nothing to do.
                                return Ok(TxOutcome::commit(()));
                            }
                            match &list {
                                None => {
                                    sqlx::query(sql::SOFT_DELETE_LATEST)
                                        .bind(&mount)
                                        .bind(&path)
                                        .bind(now)
                                        .execute(&mut *conn)
                                        .await?;
                                }
                                Some(list) => {
                                    for &version in list {
                                        sqlx::query(sql::SOFT_DELETE_VERSION)
                                            .bind(&mount)
                                            .bind(&path)
                                            .bind(now)
                                            .bind(version)
                                            .execute(&mut *conn)
                                            .await?;
                                    }
                                }
                            }
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn kv_undelete_versions(
                &self,
                mount: &str,
                path: &str,
                versions: &[u64],
            ) -> Result<()> {
                self.for_each_version(&[sql::UNDELETE_VERSION], mount, path, versions)
                    .await
            }

            pub async fn kv_destroy_versions(
                &self,
                mount: &str,
                path: &str,
                versions: &[u64],
            ) -> Result<()> {
                self.for_each_version(
                    &[sql::DESTROY_VERSION_KEY, sql::DESTROY_VERSION],
                    mount,
                    path,
                    versions,
                )
                .await
            }

            /// Runs `statements` for each version, in one transaction.
            async fn for_each_version(
                &self,
                statements: &'static [&'static str],
                mount: &str,
                path: &str,
                versions: &[u64],
            ) -> Result<()> {
                let (mount, path) = (mount.to_owned(), path.to_owned());
                let versions: Vec<i64> = versions
                    .iter()
                    .map(|&v| to_i64(v, "version"))
                    .collect::<Result<_>>()?;
                let touched = Touched::kv(&mount, &path);
                self.write(
                    touched,
                    job(move |conn| {
                        Box::pin(async move {
                            if !lock_kv_key(&mut *conn, &mount, &path).await? {
                                // No such key when we looked: nothing to do.
                                return Ok(TxOutcome::commit(()));
                            }
                            for &version in &versions {
                                for statement in statements {
                                    sqlx::query(statement)
                                        .bind(&mount)
                                        .bind(&path)
                                        .bind(version)
                                        .execute(&mut *conn)
                                        .await?;
                                }
                            }
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
            }

            pub async fn kv_delete_key(&self, mount: &str, path: &str) -> Result<()> {
                let (mount, path) = (mount.to_owned(), path.to_owned());
                let touched = Touched::kv(&mount, &path);
                self.write(
                    touched,
                    job(move |conn| {
                        Box::pin(async move {
                            if !lock_kv_key(&mut *conn, &mount, &path).await? {
                                // No such key when we looked: nothing to do.
                                return Ok(TxOutcome::commit(()));
                            }
                            for statement in [
                                sql::DELETE_KEY_DATA_KEYS,
                                sql::DELETE_KEY_VERSIONS,
                                sql::DELETE_KEY_METADATA,
                            ] {
                                sqlx::query(statement)
                                    .bind(&mount)
                                    .bind(&path)
                                    .execute(&mut *conn)
                                    .await?;
                            }
                            Ok(TxOutcome::commit(()))
                        })
                    }),
                )
                .await
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
                    let (statement, from) = match &cursor {
                        q::ListCursor::From(p) => (sql::LIST_KV_PATHS_FROM, p.clone()),
                        q::ListCursor::After(p) => (sql::LIST_KV_PATHS_AFTER, p.clone()),
                    };
                    let paths: Vec<(String,)> = sqlx::query_as(statement)
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
                            // Everything under the directory folds into its
                            // one name: continue past it.
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

        /// The body of a KV write, inside its transaction: ensure and lock
        /// the key's metadata, check CAS, seal at the decided version,
        /// insert, and prune past the versions to keep.
        async fn write_version<F, E>(
            conn: &mut Conn,
            mount: &str,
            path: &str,
            cas: Option<u64>,
            expect_version: Option<u64>,
            now: UnixNanos,
            seal: &F,
        ) -> Result<KvWriteOutcome<E>>
        where
            F: Fn(u64) -> std::result::Result<SealedBlob, E> + Send + Sync,
        {
            require_mount(&mut *conn, mount).await?;
            let meta = ensure_and_lock_metadata(&mut *conn, mount, path, now).await?;
            let settings = meta.settings()?;
            let config = meta.mount_config()?;
            let current = to_u64(meta.current_version, "current_version")?;
            let cas_required = settings.cas_required || config.cas_required;
            match cas {
                None if cas_required => return Ok(KvWriteOutcome::CasRequired),
                Some(cas) if cas != current => return Ok(KvWriteOutcome::CasMismatch),
                _ => {}
            }
            if expect_version.is_some_and(|v| v != current) {
                return Ok(KvWriteOutcome::Raced);
            }
            let version = current + 1;
            let sealed = match seal(version) {
                Ok(sealed) => sealed,
                Err(err) => return Ok(KvWriteOutcome::SealFailed(err)),
            };
            let deletion_time = match (settings.delete_version_after, config.delete_version_after) {
                (0, 0) => None,
                (0, secs) | (secs, _) => Some($crate::time::add_seconds(now, secs)),
            };
            let version_i64 = to_i64(version, "version")?;
            insert_data_key(&mut *conn, &sealed.dek).await?;
            sqlx::query(sql::INSERT_KV_VERSION)
                .bind(mount)
                .bind(path)
                .bind(version_i64)
                .bind(now)
                .bind(deletion_time)
                .bind(&sealed.dek.id)
                .bind(&sealed.ciphertext)
                .execute(&mut *conn)
                .await?;
            sqlx::query(sql::BUMP_KV_VERSION)
                .bind(mount)
                .bind(path)
                .bind(version_i64)
                .bind(now)
                .execute(&mut *conn)
                .await?;
            let keep = match settings.max_versions.max(config.max_versions) {
                0 => $crate::storage::DEFAULT_MAX_VERSIONS,
                n => u64::from(n),
            };
            if version > keep {
                let cutoff = to_i64(version - keep, "version")?;
                for statement in [sql::PRUNE_KV_DATA_KEYS, sql::PRUNE_KV_VERSIONS] {
                    sqlx::query(statement)
                        .bind(mount)
                        .bind(path)
                        .bind(cutoff)
                        .execute(&mut *conn)
                        .await?;
                }
                sqlx::query(sql::PRUNE_KV_OLDEST)
                    .bind(mount)
                    .bind(path)
                    .bind(cutoff + 1)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(KvWriteOutcome::Written {
                version,
                created_at: now,
                deletion_time,
                custom_metadata: meta.custom_metadata()?,
            })
        }

        /// Fails with `MountGone` unless the mount exists, and keeps it
        /// from being deleted until this transaction ends (PostgreSQL).
        async fn require_mount(conn: &mut Conn, mount: &str) -> Result<()> {
            let found: Option<(i64,)> = sqlx::query_as(dialect::LOCK_MOUNT_FOR_WRITE)
                .bind(mount)
                .fetch_optional(&mut *conn)
                .await?;
            found.map(|_| ()).ok_or(StorageError::MountGone)
        }

        /// Creates the key's metadata row if it is missing and locks it. On
        /// PostgreSQL a concurrent delete can remove the row between the two
        /// statements (the lock then finds nothing); creating it again is
        /// right, since the delete committed first.
        async fn ensure_and_lock_metadata(
            conn: &mut Conn,
            mount: &str,
            path: &str,
            now: UnixNanos,
        ) -> Result<rows::KvMetadataRow> {
            for _ in 0..3 {
                sqlx::query(sql::ENSURE_KV_METADATA)
                    .bind(mount)
                    .bind(path)
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                let meta: Option<rows::KvMetadataRow> = sqlx::query_as(dialect::LOCK_KV_METADATA)
                    .bind(mount)
                    .bind(path)
                    .fetch_optional(&mut *conn)
                    .await?;
                if let Some(meta) = meta {
                    return Ok(meta);
                }
            }
            Err(StorageError::Unavailable(sqlx::Error::Protocol(
                "a key's metadata kept disappearing under concurrent deletes".to_owned(),
            )))
        }

        /// Locks a key's metadata row; false if the key does not exist.
        /// Every change to a key's versions holds this lock, so a delete and
        /// a write of one key never interleave (on PostgreSQL each statement
        /// sees a new snapshot, so without it a delete could remove a
        /// concurrent write's version but not its data key).
        async fn lock_kv_key(conn: &mut Conn, mount: &str, path: &str) -> Result<bool> {
            let row: Option<rows::KvMetadataRow> = sqlx::query_as(dialect::LOCK_KV_METADATA)
                .bind(mount)
                .bind(path)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(row.is_some())
        }

        async fn insert_key_term(conn: &mut Conn, term: &KeyTermRecord) -> Result<()> {
            sqlx::query(sql::INSERT_KEY_TERM)
                .bind(i64::from(term.term))
                .bind(&term.sealed_key)
                .bind(term.installed_at)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        async fn insert_data_key(conn: &mut Conn, key: &DataKeyRecord) -> Result<()> {
            sqlx::query(sql::INSERT_DATA_KEY)
                .bind(&key.id)
                .bind(i64::from(key.term))
                .bind(&key.wrapped)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        async fn insert_mount(conn: &mut Conn, m: &MountRecord) -> Result<()> {
            sqlx::query(sql::INSERT_MOUNT)
                .bind(&m.uuid)
                .bind(&m.path)
                .bind(m.kind.as_str())
                .bind(&m.mount_type)
                .bind(&m.description)
                .bind(&m.accessor)
                .bind(&m.options)
                .bind(&m.config)
                .bind(m.created_at)
                .execute(&mut *conn)
                .await?;
            Ok(())
        }

        async fn insert_token(conn: &mut Conn, t: &TokenRecord) -> Result<()> {
            sqlx::query(sql::INSERT_TOKEN)
                .bind(&t.hash)
                .bind(&t.accessor)
                .bind(t.parent.as_deref())
                .bind(policies_json(&t.policies))
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
                .bind(t.auth_mount.as_deref())
                .bind(t.internal.as_ref().map(SealedBlob::to_bytes))
                .execute(&mut *conn)
                .await?;
            Ok(())
        }
    };
}

pub(super) use impl_queries;
