//! Secret engines and other backends behind mount points.
//!
//! A backend implements [`Backend`] and is mounted by type; `core` has
//! already authenticated the caller, checked the ACL and found the mount
//! when `handle` is called, so a backend only does its own work.

pub mod kv;
pub mod sys;

use async_trait::async_trait;
use serde_json::{Map, Value};

use crate::auth::token::TokenEntry;
use crate::core::{Core, Error, LoginTerms, Operation, Request, Response};
use crate::policy::Acl;
use crate::storage::{MountRecord, TokenRecord};

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
