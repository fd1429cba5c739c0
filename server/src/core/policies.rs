//! Stored ACL policies and the compiled ACL of each set of policies.
//!
//! Compiled ACLs are cached by policy set. A change made through this node
//! clears the cache at once; on PostgreSQL, where another node may change a
//! policy, a cached ACL is also rebuilt after a second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Core, Error};
use crate::policy::{
    self, Acl, DEFAULT_POLICY, DEFAULT_POLICY_TEXT, Policy, ROOT_POLICY, normalize_name,
};
use crate::storage::PolicyRecord;
use crate::time::now_nanos;

/// Policy sets whose ACL is kept at most.
const MAX_CACHED_ACLS: usize = 1024;

/// How long a cached ACL is trusted when other nodes share the database.
const SHARED_ACL_TTL: Duration = Duration::from_secs(1);

/// Compiled ACLs by the (sorted) names of the policies they merge.
#[derive(Default)]
pub struct AclCache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    entries: HashMap<Vec<String>, CachedAcl>,
    /// Bumped by every clear, so that an ACL built from policies read
    /// before a change is not cached after it.
    generation: u64,
}

struct CachedAcl {
    acl: Arc<Acl>,
    built: Instant,
}

impl AclCache {
    /// The cached ACL, or the generation to hand back to `put`.
    fn get(&self, key: &[String], ttl: Option<Duration>) -> Result<Arc<Acl>, u64> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.entries.get(key) {
            Some(cached) if ttl.is_none_or(|ttl| cached.built.elapsed() <= ttl) => {
                Ok(Arc::clone(&cached.acl))
            }
            _ => Err(inner.generation),
        }
    }

    fn put(&self, key: Vec<String>, acl: Arc<Acl>, generation: u64, built: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.entries.len() >= MAX_CACHED_ACLS {
            // Distinct policy sets are few in practice; start over if not.
            inner.entries.clear();
        }
        if inner.generation == generation {
            inner.entries.insert(key, CachedAcl { acl, built });
        }
    }

    pub fn clear(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.entries.clear();
        inner.generation += 1;
    }
}

impl Core {
    /// The ACL of a token's policies.
    pub async fn acl_for(&self, names: &[String]) -> Result<Arc<Acl>, Error> {
        if names.iter().any(|n| n == ROOT_POLICY) {
            return Ok(Arc::new(Acl::root()));
        }
        let mut key: Vec<String> = names.to_vec();
        key.sort();
        key.dedup();
        let ttl = self.storage.is_shared().then_some(SHARED_ACL_TTL);
        let generation = match self.acls.get(&key, ttl) {
            Ok(acl) => return Ok(acl),
            Err(generation) => generation,
        };
        let started = Instant::now();
        let mut policies = Vec::with_capacity(key.len());
        for name in &key {
            if let Some(policy) = self.load_policy(name).await? {
                policies.push(policy);
            }
        }
        let acl = Arc::new(Acl::new(&policies));
        self.acls.put(key, Arc::clone(&acl), generation, started);
        Ok(acl)
    }

    /// A stored policy, parsed. A policy that no longer parses (it was
    /// validated when written) grants nothing and is logged.
    async fn load_policy(&self, name: &str) -> Result<Option<Policy>, Error> {
        let Some(record) = self.storage.policy(name).await? else {
            return Ok(None);
        };
        match policy::parse::parse(name, &record.policy) {
            Ok(policy) => Ok(Some(policy)),
            Err(err) => {
                tracing::error!(policy.name = name, error = %err, "a stored policy does not parse; it grants nothing");
                Ok(None)
            }
        }
    }

    /// Installs the built-in `default` policy if it is missing.
    pub(super) async fn ensure_default_policy(&self) -> Result<(), Error> {
        self.storage
            .ensure_policy(DEFAULT_POLICY, DEFAULT_POLICY_TEXT, now_nanos())
            .await?;
        Ok(())
    }

    /// Every policy name, `root` included.
    pub async fn policy_names(&self) -> Result<Vec<String>, Error> {
        let mut names = self.storage.policy_names().await?;
        names.push(ROOT_POLICY.to_owned());
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// A policy by name; `root` reads as an empty policy, as in Vault.
    pub async fn read_policy(&self, name: &str) -> Result<Option<PolicyRecord>, Error> {
        let name = normalize_name(name).map_err(Error::InvalidRequest)?;
        if name == ROOT_POLICY {
            return Ok(Some(PolicyRecord {
                name,
                policy: String::new(),
                version: 0,
                created_at: 0,
                updated_at: 0,
            }));
        }
        Ok(self.storage.policy(&name).await?)
    }

    /// Whether a policy of this name exists (for token creation warnings).
    pub async fn policy_exists(&self, name: &str) -> Result<bool, Error> {
        Ok(name == ROOT_POLICY || self.storage.policy(name).await?.is_some())
    }

    /// Creates or replaces a policy after checking that it parses.
    pub async fn write_policy(&self, name: &str, text: &str) -> Result<(), Error> {
        let name = normalize_name(name).map_err(Error::InvalidRequest)?;
        if name == ROOT_POLICY {
            return Err(Error::invalid("cannot update \"root\" policy"));
        }
        policy::parse::parse(&name, text).map_err(|e| Error::InvalidRequest(e.to_string()))?;
        self.storage.put_policy(&name, text, now_nanos()).await?;
        self.acls.clear();
        Ok(())
    }

    /// Deletes a policy; `default` and `root` cannot be deleted.
    pub async fn delete_policy(&self, name: &str) -> Result<(), Error> {
        let name = normalize_name(name).map_err(Error::InvalidRequest)?;
        match name.as_str() {
            ROOT_POLICY => return Err(Error::invalid("cannot delete \"root\" policy")),
            DEFAULT_POLICY => return Err(Error::invalid("cannot delete default policy")),
            _ => {}
        }
        self.storage.delete_policy(&name).await?;
        self.acls.clear();
        Ok(())
    }
}
