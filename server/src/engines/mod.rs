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
use crate::core::{Core, Error, Operation, Request, Response};
use crate::storage::MountRecord;

/// A request as a backend sees it.
pub struct BackendRequest<'a> {
    pub operation: Operation,
    /// The path below the mount point (`data/app/db` for `secret/data/app/db`).
    pub path: &'a str,
    pub data: &'a Map<String, Value>,
    pub mount: &'a MountRecord,
    pub token: &'a TokenEntry,
    pub request: &'a Request,
}

#[async_trait]
pub trait Backend: Send + Sync {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error>;
}
