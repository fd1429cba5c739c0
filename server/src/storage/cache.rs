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
//! may have changed that row in the meantime. To never keep such a stale
//! row, writers bump an epoch after committing and before removing the
//! entry, and a reader that sees the epoch move while it was filling
//! removes its own entry again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
    epoch: AtomicU64,
}

impl RowCache {
    pub fn new() -> Self {
        RowCache {
            tokens: Cache::new(TOKEN_CAPACITY),
            kv_latest: Cache::with_weighter(KV_ITEMS, KV_BYTES, KvWeight),
            epoch: AtomicU64::new(0),
        }
    }

    /// Read before going to the database; pass to the `fill_*` call.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn token(&self, hash: &[u8]) -> Option<TokenRecord> {
        self.tokens.get(hash).map(|t| (*t).clone())
    }

    pub fn fill_token(&self, seen_epoch: u64, record: &TokenRecord) {
        self.tokens
            .insert(record.hash.clone(), Arc::new(record.clone()));
        if self.epoch() != seen_epoch {
            self.tokens.remove(&record.hash);
        }
    }

    /// After a committed change to the token with this hash.
    pub fn invalidate_token(&self, hash: &[u8]) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.tokens.remove(hash);
    }

    pub fn kv_latest(&self, mount: &str, path: &str) -> Option<KvVersionRead> {
        self.kv_latest
            .get(&(mount.to_owned(), path.to_owned()))
            .map(|r| (*r).clone())
    }

    pub fn fill_kv_latest(&self, seen_epoch: u64, mount: &str, path: &str, read: &KvVersionRead) {
        let key = (mount.to_owned(), path.to_owned());
        self.kv_latest.insert(key.clone(), Arc::new(read.clone()));
        if self.epoch() != seen_epoch {
            self.kv_latest.remove(&key);
        }
    }

    /// After revocations, which may have touched any token.
    pub fn invalidate_all_tokens(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.tokens.clear();
    }

    /// After a committed change to a KV key.
    pub fn invalidate_kv(&self, mount: &str, path: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.kv_latest.remove(&(mount.to_owned(), path.to_owned()));
    }

    /// After a change that touches many keys (an unmount, a rewrap).
    pub fn invalidate_all_kv(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.kv_latest.clear();
    }
}

/// What a write transaction may change, so that the cache can drop it.
///
/// The writer applies it after the transaction commits, whether or not the
/// caller is still waiting: a request cancelled mid-write must not leave a
/// stale row behind.
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

    /// Drops from `cache` whatever the write may have changed.
    pub fn invalidate(&self, cache: &RowCache) {
        match self {
            Touched::Nothing => {}
            Touched::Kv { mount, path } => cache.invalidate_kv(mount, path),
            Touched::AllKv => cache.invalidate_all_kv(),
            Touched::Token(hash) => cache.invalidate_token(hash),
            Touched::AllTokens => cache.invalidate_all_tokens(),
            Touched::AllKvAndTokens => {
                cache.invalidate_all_kv();
                cache.invalidate_all_tokens();
            }
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
    use crate::storage::{KvVersionRecord, TokenRecord};

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

    #[test]
    fn a_fill_that_raced_a_write_does_not_stay() {
        let cache = RowCache::new();
        let seen = cache.epoch();
        // A write commits and invalidates while the reader is still reading.
        cache.invalidate_kv("m", "p");
        cache.fill_kv_latest(seen, "m", "p", &read(1));
        assert!(cache.kv_latest("m", "p").is_none());
        // A fill with a current epoch stays until the next write.
        let seen = cache.epoch();
        cache.fill_kv_latest(seen, "m", "p", &read(2));
        assert_eq!(cache.kv_latest("m", "p").unwrap().current_version, 2);
        cache.invalidate_kv("m", "p");
        assert!(cache.kv_latest("m", "p").is_none());
    }

    #[test]
    fn tokens_are_cached_and_invalidated() {
        let cache = RowCache::new();
        let token = crate::auth::token::root_token_record(vec![1], "a".into(), 0);
        let seen = cache.epoch();
        cache.fill_token(seen, &token);
        assert_eq!(cache.token(&[1]).unwrap(), token);
        cache.invalidate_token(&[1]);
        assert!(cache.token(&[1]).is_none());
        let _ = TokenRecord::clone(&token);
    }

    #[test]
    fn clearing_removes_every_key() {
        let cache = RowCache::new();
        cache.fill_kv_latest(cache.epoch(), "m", "a", &read(1));
        cache.fill_kv_latest(cache.epoch(), "n", "b", &read(1));
        cache.invalidate_all_kv();
        assert!(cache.kv_latest("m", "a").is_none() && cache.kv_latest("n", "b").is_none());
    }
}
