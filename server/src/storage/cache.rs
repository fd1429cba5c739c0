//! Row caches for a database this process owns alone.
//!
//! A SQLite database is locked by one secretd process (see `sqlite.rs`),
//! and every write goes through this storage layer, so an in-process cache
//! of rows can be kept exact: each write invalidates what it changed. The
//! caches hold rows as stored (sealed blobs and token records), never
//! plaintext. PostgreSQL, shared by many nodes, has no cache until changes
//! are broadcast between nodes.
//!
//! A reader fills the cache with a row it read from the database; a write
//! may change that row in the meantime. The writer brackets each commit:
//! before it, [`RowCache::begin_commit`] drops what the batch may change
//! and holds off fills of those rows; after it, [`RowCache::end_commit`]
//! lets them in again. Both move an epoch, and a fill is kept only if the
//! epoch has not moved since its reader looked: a row read before or
//! during a commit is never kept. So a cached row is never older than the
//! database, not even between the COMMIT and the end of the bracket.

use std::sync::{Arc, Mutex, MutexGuard};

use quick_cache::Weighter;
use quick_cache::sync::Cache;

use super::{KvVersionRead, TokenRecord};

/// Tokens kept in memory (by count).
const TOKEN_CAPACITY: usize = 65_536;
/// Entries the KV cache is sized for, and the bytes of sealed data it may hold.
const KV_ITEMS: usize = 16_384;
const KV_BYTES: u64 = 64 * 1024 * 1024;

type KvKey = (String, String);

#[derive(Clone)]
struct KvWeight;

impl Weighter<KvKey, Arc<KvVersionRead>> for KvWeight {
    fn weight(&self, key: &KvKey, value: &Arc<KvVersionRead>) -> u64 {
        let blob = |b: &Option<super::SealedBlob>| {
            b.as_ref()
                .map_or(0, |b| b.ciphertext.len() + b.dek.wrapped.len())
        };
        (key.0.len()
            + key.1.len()
            + blob(&value.version.value)
            + blob(&value.custom_metadata)
            + 128) as u64
    }
}

/// The latest version of recently read keys, and recently used tokens.
pub struct RowCache {
    tokens: Cache<Vec<u8>, Arc<TokenRecord>>,
    kv_latest: Cache<KvKey, Arc<KvVersionRead>, KvWeight>,
    fills: Mutex<Fills>,
}

/// What decides whether a fill may be kept; changed only under the lock.
#[derive(Default)]
struct Fills {
    /// Moves at the start and the end of every commit.
    epoch: u64,
    /// What the batch being committed may change (empty between commits).
    committing: Vec<Touched>,
}

impl RowCache {
    pub fn new() -> Self {
        RowCache {
            tokens: Cache::new(TOKEN_CAPACITY),
            kv_latest: Cache::with_weighter(KV_ITEMS, KV_BYTES, KvWeight),
            fills: Mutex::new(Fills::default()),
        }
    }

    fn fills(&self) -> MutexGuard<'_, Fills> {
        // Nothing under the lock can panic half-way; a poisoned lock holds
        // a consistent state.
        self.fills.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read before going to the database; pass to the `fill_*` call.
    pub fn epoch(&self) -> u64 {
        self.fills().epoch
    }

    /// Before a batch commits: drops every row it may change, and keeps
    /// fills of those rows out until [`RowCache::end_commit`].
    pub fn begin_commit(&self, touched: impl IntoIterator<Item = Touched>) {
        let mut fills = self.fills();
        fills.epoch += 1;
        fills.committing.extend(touched);
        for touched in &fills.committing {
            touched.drop_from(self);
        }
    }

    /// After the batch committed or failed: rows may be filled again, by
    /// reads that start from now on.
    pub fn end_commit(&self) {
        let mut fills = self.fills();
        fills.epoch += 1;
        fills.committing.clear();
    }

    pub fn token(&self, hash: &[u8]) -> Option<TokenRecord> {
        self.tokens.get(hash).map(|t| (*t).clone())
    }

    pub fn fill_token(&self, seen_epoch: u64, record: &TokenRecord) {
        let fills = self.fills();
        if fills.epoch == seen_epoch
            && !fills
                .committing
                .iter()
                .any(|t| t.covers_token(&record.hash))
        {
            self.tokens
                .insert(record.hash.clone(), Arc::new(record.clone()));
        }
    }

    pub fn kv_latest(&self, mount: &str, path: &str) -> Option<KvVersionRead> {
        self.kv_latest
            .get(&(mount.to_owned(), path.to_owned()))
            .map(|r| (*r).clone())
    }

    pub fn fill_kv_latest(&self, seen_epoch: u64, mount: &str, path: &str, read: &KvVersionRead) {
        let fills = self.fills();
        if fills.epoch == seen_epoch && !fills.committing.iter().any(|t| t.covers_kv(mount, path)) {
            self.kv_latest
                .insert((mount.to_owned(), path.to_owned()), Arc::new(read.clone()));
        }
    }
}

/// What a write transaction may change, so that the cache can drop it.
///
/// The writer applies it around the commit, whether or not the caller is
/// still waiting: a request cancelled mid-write must not leave a stale row
/// behind.
#[derive(Clone)]
pub enum Touched {
    Nothing,
    Kv {
        mount: String,
        path: String,
    },
    AllKv,
    Token(Vec<u8>),
    /// Revocations mark tokens found only while the write runs.
    AllTokens,
    /// Deleting a mount drops its KV rows and revokes the tokens it issued.
    AllKvAndTokens,
}

impl Touched {
    pub fn kv(mount: &str, path: &str) -> Touched {
        Touched::Kv {
            mount: mount.to_owned(),
            path: path.to_owned(),
        }
    }

    /// Drops from `cache` whatever the write may change.
    fn drop_from(&self, cache: &RowCache) {
        match self {
            Touched::Nothing => {}
            Touched::Kv { mount, path } => {
                cache.kv_latest.remove(&(mount.clone(), path.clone()));
            }
            Touched::AllKv => cache.kv_latest.clear(),
            Touched::Token(hash) => {
                cache.tokens.remove(hash);
            }
            Touched::AllTokens => cache.tokens.clear(),
            Touched::AllKvAndTokens => {
                cache.kv_latest.clear();
                cache.tokens.clear();
            }
        }
    }

    fn covers_kv(&self, m: &str, p: &str) -> bool {
        match self {
            Touched::Kv { mount, path } => mount == m && path == p,
            Touched::AllKv | Touched::AllKvAndTokens => true,
            Touched::Nothing | Touched::Token(_) | Touched::AllTokens => false,
        }
    }

    fn covers_token(&self, h: &[u8]) -> bool {
        match self {
            Touched::Token(hash) => hash == h,
            Touched::AllTokens | Touched::AllKvAndTokens => true,
            Touched::Nothing | Touched::Kv { .. } | Touched::AllKv => false,
        }
    }
}

impl Default for RowCache {
    fn default() -> Self {
        RowCache::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::KvVersionRecord;

    fn read(version: u64) -> KvVersionRead {
        KvVersionRead {
            current_version: version,
            custom_metadata: None,
            version: KvVersionRecord {
                version,
                created_at: 0,
                deletion_time: None,
                destroyed: false,
                value: None,
            },
        }
    }

    /// One whole commit of a batch that touched these.
    fn commit(cache: &RowCache, touched: &[Touched]) {
        cache.begin_commit(touched.iter().cloned());
        cache.end_commit();
    }

    #[test]
    fn a_fill_that_raced_a_write_does_not_stay() {
        let cache = RowCache::new();
        let seen = cache.epoch();
        // A write commits while the reader is still reading.
        commit(&cache, &[Touched::kv("m", "p")]);
        cache.fill_kv_latest(seen, "m", "p", &read(1));
        assert!(cache.kv_latest("m", "p").is_none());
        // A fill with a current epoch stays until the next write.
        let seen = cache.epoch();
        cache.fill_kv_latest(seen, "m", "p", &read(2));
        assert_eq!(cache.kv_latest("m", "p").unwrap().current_version, 2);
        commit(&cache, &[Touched::kv("m", "p")]);
        assert!(cache.kv_latest("m", "p").is_none());
    }

    /// Between the COMMIT and the end of the bracket the database already
    /// has the new row: the cache must not hand out the old one then.
    #[test]
    fn no_row_is_cached_while_a_commit_that_changes_it_runs() {
        let cache = RowCache::new();
        cache.fill_kv_latest(cache.epoch(), "m", "p", &read(1));
        cache.fill_kv_latest(cache.epoch(), "m", "other", &read(1));
        let before = cache.epoch();
        cache.begin_commit([Touched::kv("m", "p")]);
        assert!(cache.kv_latest("m", "p").is_none(), "dropped before COMMIT");
        assert!(cache.kv_latest("m", "other").is_some(), "others stay");
        // Reads during the commit: the touched row is never filled, not
        // with an epoch from before the commit nor from during it.
        let during = cache.epoch();
        cache.fill_kv_latest(before, "m", "p", &read(1));
        cache.fill_kv_latest(during, "m", "p", &read(1));
        assert!(cache.kv_latest("m", "p").is_none());
        cache.fill_kv_latest(during, "m", "third", &read(1));
        assert!(
            cache.kv_latest("m", "third").is_some(),
            "untouched rows fill"
        );
        cache.end_commit();
        // A read that started during the commit may have seen the old row.
        cache.fill_kv_latest(during, "m", "p", &read(1));
        assert!(cache.kv_latest("m", "p").is_none());
        cache.fill_kv_latest(cache.epoch(), "m", "p", &read(2));
        assert_eq!(cache.kv_latest("m", "p").unwrap().current_version, 2);
    }

    #[test]
    fn tokens_are_cached_and_invalidated() {
        let cache = RowCache::new();
        let token = crate::auth::token::root_token_record(vec![1], "a".into(), 0);
        cache.fill_token(cache.epoch(), &token);
        assert_eq!(cache.token(&[1]).unwrap(), token);
        cache.begin_commit([Touched::Token(vec![1])]);
        assert!(cache.token(&[1]).is_none());
        cache.fill_token(cache.epoch(), &token);
        assert!(cache.token(&[1]).is_none(), "not while it is committed");
        cache.end_commit();
        cache.fill_token(cache.epoch(), &token);
        commit(&cache, &[Touched::AllTokens]);
        assert!(cache.token(&[1]).is_none());
    }

    #[test]
    fn clearing_removes_every_key() {
        let cache = RowCache::new();
        cache.fill_kv_latest(cache.epoch(), "m", "a", &read(1));
        cache.fill_kv_latest(cache.epoch(), "n", "b", &read(1));
        commit(&cache, &[Touched::AllKv]);
        assert!(cache.kv_latest("m", "a").is_none() && cache.kv_latest("n", "b").is_none());
    }
}
