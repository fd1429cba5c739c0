//! Secret engines and other backends behind mount points.
//!
//! A backend implements [`Backend`] and is mounted by type; `core` has
//! already authenticated the caller, checked the ACL and found the mount
//! when `handle` is called, so a backend only does its own work.

pub mod database;
pub mod kv;
pub mod sys;
#[cfg(test)]
pub mod test_leases;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::auth::token::TokenEntry;
use crate::core::{Core, Error, LoginTerms, Operation, Request, Response};
use crate::policy::Acl;
use crate::storage::{LeaseRecord, MountRecord, TokenRecord, UnixNanos};

/// A request as a backend sees it.
pub struct BackendRequest<'a> {
    pub operation: Operation,
    /// The path below the mount point (`data/app/db` for `secret/data/app/db`).
    pub path: &'a str,
    pub data: &'a Map<String, Value>,
    pub mount: &'a MountRecord,
    pub token: &'a TokenEntry,
    /// The caller's ACL, for backends that decide more than core does
    /// (sudo-only options, checks of their own).
    pub acl: &'a Acl,
    pub request: &'a Request,
}

/// A login as an auth method sees it: no token, no ACL.
pub struct LoginRequest<'a> {
    pub operation: Operation,
    /// The path below the mount (`login`, `login/alice`).
    pub path: &'a str,
    pub data: &'a Map<String, Value>,
    pub mount: &'a MountRecord,
    pub request: &'a Request,
}

/// The renewal of a token an auth method issued.
pub struct RenewLogin<'a> {
    pub mount: &'a MountRecord,
    pub token: &'a TokenRecord,
    /// What the login kept on the token ([`crate::core::Login::internal`]).
    pub internal: Option<&'a [u8]>,
}

/// A lease as its backend sees it when renewing or revoking it.
pub struct LeaseRequest<'a> {
    pub mount: &'a MountRecord,
    pub lease: &'a LeaseRecord,
    /// What [`crate::core::LeaseGrant::internal`] held, opened.
    pub internal: &'a [u8],
}

/// A backend's current terms for a lease being renewed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseTerms {
    pub ttl: u64,
    pub max_ttl: u64,
}

#[async_trait]
pub trait Backend: Send + Sync {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error>;

    /// Whether a write to this path creates something (`Some(false)`: the
    /// caller needs `create`) or changes it (`Some(true)`: `update`).
    /// `None` when the distinction does not apply (`update`).
    async fn exists(&self, _core: &Core, _req: &BackendRequest<'_>) -> Result<Option<bool>, Error> {
        Ok(None)
    }

    /// Root-protected paths (below the mount) that also need `sudo`.
    fn requires_sudo(&self, _path: &str) -> bool {
        false
    }

    /// Paths (below the mount) that are logins: called without a token,
    /// never ACL-checked, sent to [`Backend::login`] and never to `handle`.
    fn is_login_path(&self, _path: &str) -> bool {
        false
    }

    /// A login. Success answers [`Response::login`]; core makes the token.
    async fn login(&self, _core: &Core, _req: &LoginRequest<'_>) -> Result<Response, Error> {
        Err(Error::UnsupportedPath)
    }

    /// Renewal of a token this mount issued: checks the login still holds
    /// and answers the current terms, or refuses.
    async fn renew_login(&self, _core: &Core, _req: &RenewLogin<'_>) -> Result<LoginTerms, Error> {
        Err(Error::invalid("this auth method does not renew its tokens"))
    }

    /// The current terms of one of this backend's leases, asked before a
    /// renewal (a role's TTLs, say); an error refuses the renewal.
    async fn lease_terms(
        &self,
        _core: &Core,
        _req: &LeaseRequest<'_>,
    ) -> Result<LeaseTerms, Error> {
        Err(Error::invalid("lease is not renewable"))
    }

    /// Extends what a lease handed out until `expire_at` (a database
    /// role's `VALID UNTIL`, say).
    async fn renew_secret(
        &self,
        _core: &Core,
        _req: &LeaseRequest<'_>,
        _expire_at: UnixNanos,
    ) -> Result<(), Error> {
        Ok(())
    }

    /// Takes back what a lease handed out. Must be idempotent: after a
    /// crash, another node may call it again for the same lease.
    async fn revoke_secret(&self, _core: &Core, _req: &LeaseRequest<'_>) -> Result<(), Error> {
        Err(Error::invalid("this backend has no leases to revoke"))
    }

    /// Runs the scheduled job `name` of this mount (see `core/schedules.rs`):
    /// answers when it is next due, or `None` to drop it.
    async fn run_scheduled(
        &self,
        _core: &Core,
        _mount: &MountRecord,
        name: &str,
    ) -> Result<Option<UnixNanos>, Error> {
        Err(Error::invalid(format!("no scheduled job named {name}")))
    }

    /// Paths whose access the backend checks itself (core skips its ACL
    /// check; the backend must use `BackendRequest::acl`).
    fn checks_own_access(&self, _path: &str) -> bool {
        false
    }
}

/// Whether `path` matches one of Vault's root-path patterns (a trailing
/// `*` is a prefix match).
pub fn matches_any(path: &str, patterns: &[&str]) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => path.starts_with(prefix),
        None => path == *p,
    })
}
