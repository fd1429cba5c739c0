//! `sys/*` endpoints that need a token: mounts, keyring, seal.
//!
//! The unauthenticated lifecycle endpoints (`sys/init`, `sys/unseal`,
//! `sys/seal-status`, `sys/health`, `sys/leader`) have raw wire formats and
//! are answered by the HTTP layer straight from `core`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use secretd_client::wire::{KeyStatus, MountOutput, UiMount};
use serde_json::{Map, Value};

use super::{Backend, BackendRequest};
use crate::core::mounts::mount_output;
use crate::core::{Core, Error, Operation, Response, to_object};
use crate::storage::MountKind;
use crate::time::rfc3339;

pub struct SysBackend;

#[async_trait]
impl Backend for SysBackend {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
        use Operation::*;
        let path = req.path;
        if let Some(mount) = path.strip_prefix("mounts/") {
            return match req.operation {
                Read => Ok(Response::data(mount_output(&core.secret_mount(mount)?))),
                Write => {
                    let warnings = core.mount_secret_engine(mount, req.data).await?;
                    Ok(Response {
                        warnings,
                        ..Response::empty()
                    })
                }
                Delete => {
                    core.unmount_secret_engine(mount).await?;
                    Ok(Response::empty())
                }
                _ => Err(Error::UnsupportedOperation),
            };
        }
        if let Some(inner) = path.strip_prefix("internal/ui/mounts/") {
            return match req.operation {
                Read => ui_mount(core, inner),
                _ => Err(Error::UnsupportedOperation),
            };
        }
        match (path, req.operation) {
            ("mounts", Read) => Ok(Response {
                data: Some(mounts_of_kind(core, MountKind::Secret)),
                ..Response::empty()
            }),
            ("internal/ui/mounts", Read) => {
                let mut data = Map::new();
                data.insert(
                    "auth".into(),
                    Value::Object(mounts_of_kind(core, MountKind::Auth)),
                );
                data.insert(
                    "secret".into(),
                    Value::Object(mounts_of_kind(core, MountKind::Secret)),
                );
                Ok(Response {
                    data: Some(data),
                    ..Response::empty()
                })
            }
            ("rotate" | "rotate/keyring", Write) => {
                let term = core.barrier().rotate().await?;
                tracing::info!(key.term = term, "installed a new key-encryption key term");
                Ok(Response::empty())
            }
            ("key-status", Read) => {
                let status = core.barrier().key_status().await?;
                Ok(Response::data(KeyStatus {
                    term: status.term,
                    install_time: rfc3339(status.installed_at),
                    encryptions: status.encryptions,
                    rewrap_pending: status.rewrap_pending,
                    data_keys: status.data_keys,
                }))
            }
            ("seal", Write) => {
                core.seal().await;
                Ok(Response::empty())
            }
            (
                "mounts" | "internal/ui/mounts" | "rotate" | "rotate/keyring" | "key-status"
                | "seal",
                _,
            ) => Err(Error::UnsupportedOperation),
            _ => Err(Error::UnsupportedPath),
        }
    }
}

/// `{"secret/": {...}, ...}` for one kind of mount.
fn mounts_of_kind(core: &Core, kind: MountKind) -> Map<String, Value> {
    let table = core.mount_table();
    let mounts: BTreeMap<String, MountOutput> = table
        .by_kind(kind)
        .map(|record| {
            let key = match kind {
                MountKind::Auth => record.path.trim_start_matches("auth/").to_owned(),
                MountKind::Secret => record.path.clone(),
            };
            (key, mount_output(record))
        })
        .collect();
    to_object(mounts)
}

/// The mount serving `path` (any path inside it), for `vault kv` and Agent.
fn ui_mount(core: &Core, path: &str) -> Result<Response, Error> {
    let lookup = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    let table = core.mount_table();
    let (mount, _) = table.route(&lookup).ok_or(Error::PermissionDenied)?;
    Ok(Response::data(UiMount {
        path: mount.record.path.clone(),
        mount: mount_output(&mount.record),
    }))
}
