//! `sys/*` endpoints that need a token: mounts and auth methods, policies
//! and capabilities, keyring, seal.
//!
//! The unauthenticated lifecycle endpoints (`sys/init`, `sys/unseal`,
//! `sys/seal-status`, `sys/health`, `sys/leader`) have raw wire formats and
//! are answered by the HTTP layer straight from `core`.

mod audit;
mod leases;
mod policies;
pub mod rotate;

use std::collections::BTreeMap;

use async_trait::async_trait;
use secretd_client::wire::{HaNode, HaStatus, KeyStatus, MountOutput, UiMount};
use serde_json::{Map, Value};

use self::policies::Subject;
use super::{Backend, BackendRequest, matches_any};
use crate::core::mounts::{mount_output, tune_output};
use crate::core::{Core, Error, Operation, Response, to_object};
use crate::storage::{MountKind, MountRecord};
use crate::time::rfc3339;

/// Vault's root-protected `sys/` paths: they also need `sudo`.
const SUDO_PATHS: &[&str] = &[
    "auth/*",
    "remount",
    "audit",
    "audit/*",
    "rotate",
    "rotate/keyring",
    "seal",
    "leases/revoke-prefix/*",
    "leases/revoke-force/*",
    "leases/lookup/*",
];

pub struct SysBackend;

#[async_trait]
impl Backend for SysBackend {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
        use Operation::*;
        let path = req.path;
        if let Some(rest) = path.strip_prefix("mounts/") {
            return match rest.strip_suffix("/tune") {
                Some(mount) => tune(core, req, &core.secret_mount(mount)?).await,
                None => mounts(core, req, rest).await,
            };
        }
        if let Some(rest) = path.strip_prefix("auth/") {
            return match rest.strip_suffix("/tune") {
                Some(mount) => tune(core, req, &core.auth_mount(mount)?).await,
                None => auth_methods(core, req, rest).await,
            };
        }
        // Only `policies/acl` and `policies/acl/NAME` (and the legacy
        // `policy`, `policy/NAME`): the ACL was checked on exactly that path.
        if let Some(name) = path.strip_prefix("policies/acl").and_then(policy_name) {
            return policies::handle(core, req, name, false).await;
        }
        if let Some(name) = path.strip_prefix("policy").and_then(policy_name) {
            return policies::handle(core, req, name, true).await;
        }
        if path == "rotate/config" {
            return rotate::config(core, req).await;
        }
        if let Some(rest) = path.strip_prefix("leases")
            && (rest.is_empty() || rest.starts_with('/'))
        {
            return leases::handle(core, req, rest).await;
        }
        if path == "audit" {
            return audit::devices(core, req, None).await;
        }
        if let Some(device) = path.strip_prefix("audit/") {
            return audit::devices(core, req, Some(device)).await;
        }
        if let Some(device) = path.strip_prefix("audit-hash/") {
            return audit::hash(core, req, device);
        }
        if let Some(inner) = path.strip_prefix("internal/ui/mounts") {
            return match req.operation {
                Read => ui_mounts(core, req, inner.trim_start_matches('/')),
                _ => Err(Error::UnsupportedOperation),
            };
        }
        match (path, req.operation) {
            ("metrics", Read) => metrics(core, req).await,
            ("ha-status", Read) => ha_status(core).await,
            ("mounts", Read) => Ok(data(mounts_of_kind(core, MountKind::Secret))),
            ("auth", Read) => Ok(data(mounts_of_kind(core, MountKind::Auth))),
            ("capabilities", Write) => policies::capabilities(core, req, Subject::Token).await,
            ("capabilities-self", Write) => {
                policies::capabilities(core, req, Subject::Caller).await
            }
            ("capabilities-accessor", Write) => {
                policies::capabilities(core, req, Subject::Accessor).await
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
                "metrics"
                | "ha-status"
                | "mounts"
                | "auth"
                | "capabilities"
                | "capabilities-self"
                | "capabilities-accessor"
                | "rotate"
                | "rotate/keyring"
                | "key-status"
                | "seal",
                _,
            ) => Err(Error::UnsupportedOperation),
            _ => Err(Error::UnsupportedPath),
        }
    }

    async fn run_scheduled(
        &self,
        core: &Core,
        mount: &MountRecord,
        name: &str,
    ) -> Result<Option<crate::storage::UnixNanos>, Error> {
        match name {
            rotate::JOB => rotate::run(core, mount).await,
            other => Err(Error::invalid(format!("no scheduled job named {other}"))),
        }
    }

    async fn exists(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Option<bool>, Error> {
        let name = req
            .path
            .strip_prefix("policies/acl/")
            .or_else(|| req.path.strip_prefix("policy/"))
            .filter(|name| !name.is_empty());
        match name {
            Some(name) => policies::exists(core, name).await,
            None => Ok(None),
        }
    }

    fn requires_sudo(&self, path: &str) -> bool {
        matches_any(path, SUDO_PATHS)
    }

    fn checks_own_access(&self, path: &str) -> bool {
        path.starts_with("internal/ui/mounts")
    }
}

/// After `policies/acl` or `policy`: `Some(None)` for the list (with or
/// without a trailing slash), `Some(Some(name))` for one policy, `None`
/// for any other path (`policies/aclx`).
fn policy_name(rest: &str) -> Option<Option<&str>> {
    match rest {
        "" | "/" => Some(None),
        _ => rest.strip_prefix('/').map(Some),
    }
}

fn data(map: Map<String, Value>) -> Response {
    Response {
        data: Some(map),
        ..Response::empty()
    }
}

/// `sys/mounts/:path`.
async fn mounts(core: &Core, req: &BackendRequest<'_>, mount: &str) -> Result<Response, Error> {
    match req.operation {
        Operation::Read => Ok(Response::data(mount_output(&core.secret_mount(mount)?))),
        Operation::Write => {
            let warnings = core.mount_secret_engine(mount, req.data).await?;
            Ok(Response {
                warnings,
                ..Response::empty()
            })
        }
        Operation::Delete => {
            core.unmount_secret_engine(mount).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// `sys/auth/:path`.
async fn auth_methods(
    core: &Core,
    req: &BackendRequest<'_>,
    mount: &str,
) -> Result<Response, Error> {
    match req.operation {
        Operation::Read => Ok(Response::data(mount_output(&core.auth_mount(mount)?))),
        Operation::Write => {
            let warnings = core.mount_auth_method(mount, req.data).await?;
            Ok(Response {
                warnings,
                ..Response::empty()
            })
        }
        Operation::Delete => {
            core.unmount_auth_method(mount).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// `sys/mounts/:path/tune` and `sys/auth/:path/tune`.
async fn tune(
    core: &Core,
    req: &BackendRequest<'_>,
    record: &MountRecord,
) -> Result<Response, Error> {
    match req.operation {
        Operation::Read => Ok(data(tune_output(record))),
        Operation::Write => {
            let warnings = core.tune_mount(record, req.data).await?;
            Ok(Response {
                warnings,
                ..Response::empty()
            })
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// `sys/ha-status`: the nodes serving this database (`core/nodes.rs`).
async fn ha_status(core: &Core) -> Result<Response, Error> {
    let nodes = core.cluster_nodes().await?;
    Ok(Response::data(HaStatus {
        nodes: nodes
            .into_iter()
            .map(|node| HaNode {
                hostname: node.record.hostname,
                api_address: node.record.api_address,
                cluster_address: String::new(),
                active_node: !node.record.sealed,
                last_echo: (!node.is_self).then(|| rfc3339(node.record.last_seen)),
                version: node.record.version,
                sealed: node.record.sealed,
                started_at: rfc3339(node.record.started_at),
            })
            .collect(),
    }))
}

/// `sys/metrics?format=prometheus`: every series in the Prometheus text
/// format. Vault's other format (go-metrics' JSON dump) is not served.
async fn metrics(core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
    match req.data.get("format").and_then(Value::as_str) {
        Some("prometheus") => {
            let text = core.metrics().render(core).await?;
            Ok(Response::raw(
                crate::metrics::PROMETHEUS_CONTENT_TYPE,
                text.into_bytes(),
            ))
        }
        None | Some("") => Err(Error::invalid(
            "secretd serves metrics only in the Prometheus text format: add ?format=prometheus",
        )),
        Some(other) => Err(Error::invalid(format!(
            "metric response format {other:?} unknown"
        ))),
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

/// `sys/internal/ui/mounts[/:path]`, for `vault kv` and Agent: allowed to
/// any token with some capability under the mount in question.
fn ui_mounts(core: &Core, req: &BackendRequest<'_>, path: &str) -> Result<Response, Error> {
    if path.is_empty() {
        // Only the mounts the caller can reach.
        let visible = |kind| {
            let mut mounts = mounts_of_kind(core, kind);
            let prefix = if kind == MountKind::Auth { "auth/" } else { "" };
            mounts.retain(|key, _| req.acl.has_access_under(&format!("{prefix}{key}")));
            Value::Object(mounts)
        };
        let mut map = Map::new();
        map.insert("auth".into(), visible(MountKind::Auth));
        map.insert("secret".into(), visible(MountKind::Secret));
        return Ok(data(map));
    }
    let lookup = if path.ends_with('/') {
        path.to_owned()
    } else {
        format!("{path}/")
    };
    let table = core.mount_table();
    let (mount, _) = table.route(&lookup).ok_or(Error::PermissionDenied)?;
    if !req.acl.has_access_under(&mount.record.path) {
        return Err(Error::PermissionDenied);
    }
    Ok(Response::data(UiMount {
        path: mount.record.path.clone(),
        mount: mount_output(&mount.record),
    }))
}
