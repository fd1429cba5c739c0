//! Tokens: how they are made, stored and looked up.
//!
//! A token is `hvs.` followed by 32 base62 characters (190 bits). Only its
//! HMAC-SHA256 under the barrier's token key is stored, so a copy of the
//! database yields no usable token, not even a guessable one such as a
//! chosen dev root token. The plaintext is shown once, when it is created.

use std::collections::BTreeMap;

use secretd_client::wire;

use crate::barrier::{Barrier, fill_random};
use crate::core::{ClientToken, Error};
use crate::storage::{Storage, TokenRecord, UnixNanos};
use crate::time;

/// The policy that may do everything.
pub const ROOT_POLICY: &str = "root";
const TOKEN_PREFIX: &str = "hvs.";
const TOKEN_RANDOM_CHARS: usize = 32;
const ACCESSOR_CHARS: usize = 24;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A random base62 string of `len` characters (rejection-sampled, so every
/// character is equally likely).
pub fn random_base62(len: usize) -> Result<String, Error> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf).map_err(Error::internal)?;
        for &b in &buf {
            // 248 = 4 * 62: bytes at or above it would bias the result.
            if b < 248 && out.len() < len {
                out.push(BASE62[usize::from(b % 62)] as char);
            }
        }
    }
    Ok(out)
}

/// A new token value.
pub fn generate_token() -> Result<String, Error> {
    Ok(format!(
        "{TOKEN_PREFIX}{}",
        random_base62(TOKEN_RANDOM_CHARS)?
    ))
}

/// A new accessor, the public handle of a token.
pub fn generate_accessor() -> Result<String, Error> {
    random_base62(ACCESSOR_CHARS)
}

/// A stored token as the request pipeline sees it.
#[derive(Debug, Clone)]
pub struct TokenEntry {
    pub record: TokenRecord,
}

impl TokenEntry {
    pub fn is_root(&self) -> bool {
        self.record.policies.iter().any(|p| p == ROOT_POLICY)
    }

    pub fn is_expired(&self, now: UnixNanos) -> bool {
        self.record.expire_at.is_some_and(|at| at <= now)
    }

    /// Seconds left, 0 for a token that never expires.
    pub fn ttl(&self, now: UnixNanos) -> u64 {
        self.record
            .expire_at
            .map_or(0, |at| time::seconds_between(now, at))
    }

    /// The `data` of a token lookup. `id` is the token itself when the
    /// caller presented it (lookup-self), empty otherwise.
    pub fn lookup_data(&self, id: &str, now: UnixNanos) -> wire::TokenLookup {
        let r = &self.record;
        let meta: Option<BTreeMap<String, String>> = serde_json::from_str(&r.meta).ok();
        wire::TokenLookup {
            accessor: r.accessor.clone(),
            creation_time: r.created_at / 1_000_000_000,
            creation_ttl: r.creation_ttl,
            display_name: r.display_name.clone(),
            entity_id: String::new(),
            expire_time: r.expire_at.map(time::rfc3339),
            explicit_max_ttl: r.explicit_max_ttl,
            id: id.to_owned(),
            issue_time: time::rfc3339(r.created_at),
            meta: meta.filter(|m| !m.is_empty()),
            num_uses: r.num_uses,
            orphan: r.orphan,
            path: r.path.clone(),
            policies: r.policies.clone(),
            renewable: r.renewable,
            ttl: self.ttl(now),
            token_type: r.token_type.clone(),
            period: (r.period > 0).then_some(r.period),
            last_renewal: r.last_renewal.map(time::rfc3339),
            last_renewal_time: r.last_renewal.map(|t| t / 1_000_000_000),
        }
    }
}

/// The root token `sys/init` (or dev mode) creates: all policies, no
/// expiry, no parent.
pub fn root_token_record(hash: Vec<u8>, accessor: String, now: UnixNanos) -> TokenRecord {
    TokenRecord {
        hash,
        accessor,
        parent: None,
        policies: vec![ROOT_POLICY.to_owned()],
        meta: "{}".to_owned(),
        display_name: "root".to_owned(),
        num_uses: 0,
        created_at: now,
        expire_at: None,
        creation_ttl: 0,
        explicit_max_ttl: 0,
        period: 0,
        renewable: false,
        orphan: true,
        token_type: "service".to_owned(),
        path: "auth/token/root".to_owned(),
        last_renewal: None,
        auth_mount: None,
        internal: None,
    }
}

/// Finds the live token a client presented; `None` for an unknown or
/// expired one (both are simply "permission denied" to the caller).
pub async fn lookup(
    storage: &Storage,
    barrier: &Barrier,
    token: &ClientToken,
) -> Result<Option<TokenEntry>, Error> {
    let value = token.expose();
    if value.is_empty() || value.len() > 512 {
        return Ok(None);
    }
    let hash = barrier.token_hash(value)?;
    let Some(record) = storage.token(&hash).await? else {
        return Ok(None);
    };
    let entry = TokenEntry { record };
    if entry.is_expired(time::now_nanos()) {
        return Ok(None);
    }
    Ok(Some(entry))
}

/// The live, unexpired token with this accessor.
pub async fn by_accessor(storage: &Storage, accessor: &str) -> Result<Option<TokenEntry>, Error> {
    let Some(record) = storage.token_by_accessor(accessor).await? else {
        return Ok(None);
    };
    let entry = TokenEntry { record };
    Ok((!entry.is_expired(time::now_nanos())).then_some(entry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_have_the_vault_prefix_and_enough_entropy() {
        let t = generate_token().unwrap();
        assert!(t.starts_with("hvs."));
        assert_eq!(t.len(), 4 + 32);
        assert!(t[4..].bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(generate_token().unwrap(), t);
    }

    #[test]
    fn base62_uses_every_character() {
        let s = random_base62(20_000).unwrap();
        for &c in BASE62 {
            assert!(s.as_bytes().contains(&c), "{} never drawn", c as char);
        }
    }

    #[test]
    fn root_token_never_expires() {
        let e = TokenEntry {
            record: root_token_record(vec![1], "acc".into(), 5),
        };
        assert!(e.is_root());
        assert!(!e.is_expired(i64::MAX));
        assert_eq!(e.ttl(100), 0);
        let data = e.lookup_data("hvs.x", 5);
        assert_eq!(data.expire_time, None);
        assert_eq!(data.policies, vec!["root"]);
        assert_eq!(data.token_type, "service");
        assert_eq!(data.meta, None);
    }
}
