//! `sys/leases/*`: look up, list, renew and revoke leases (Vault's API).

use serde_json::{Map, Value, json};

use crate::core::{Core, Error, Fields, Operation, Response};
use crate::engines::BackendRequest;
use crate::time::{now_nanos, rfc3339, seconds_between};

/// The most lease ids one LIST reads before folding them into names.
const LIST_LIMIT: u32 = 100_000;
/// The most irrevocable leases `sys/leases?type=irrevocable` shows.
const IRREVOCABLE_LIMIT: u32 = 10_000;

/// `sys/leases` and everything below it (`rest` is the path after
/// `leases`, with its leading `/` if any).
pub async fn handle(core: &Core, req: &BackendRequest<'_>, rest: &str) -> Result<Response, Error> {
    use Operation::*;
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let (verb, tail) = rest.split_once('/').unwrap_or((rest, ""));
    match (verb, req.operation) {
        ("", Read) => irrevocable(core, req).await,
        ("lookup", Write) if tail.is_empty() => lookup(core, req).await,
        ("lookup", List) => list(core, tail).await,
        ("renew", Write) => renew(core, req, tail).await,
        ("revoke", Write) => {
            let id = lease_id(req, tail)?;
            let sync = Fields::new(req.data).bool("sync")?.unwrap_or(true);
            if sync {
                core.revoke_lease(&id).await?;
            } else if core.storage().lease(&id).await?.is_some() {
                core.revoke_lease_prefix(&id, false).await?;
            }
            Ok(Response::empty())
        }
        ("revoke-prefix", Write) => {
            let sync = Fields::new(req.data).bool("sync")?.unwrap_or(true);
            core.revoke_lease_prefix(tail, sync).await?;
            Ok(Response::empty())
        }
        ("revoke-force", Write) => {
            core.force_revoke_lease_prefix(tail).await?;
            Ok(Response::empty())
        }
        ("tidy", Write) => {
            core.expire_due_leases().await?;
            Ok(Response::empty())
        }
        ("count", Read) => count(core, req).await,
        (
            "" | "lookup" | "renew" | "revoke" | "revoke-prefix" | "revoke-force" | "tidy"
            | "count",
            _,
        ) => Err(Error::UnsupportedOperation),
        _ => Err(Error::UnsupportedPath),
    }
}

/// The lease named in the path (`renew/<id>`) or the body's `lease_id`.
fn lease_id(req: &BackendRequest<'_>, tail: &str) -> Result<String, Error> {
    let from_body = Fields::new(req.data).string("lease_id")?;
    match (tail, from_body) {
        (_, Some(id)) if !id.is_empty() => Ok(id),
        ("", _) => Err(Error::invalid("lease_id must be specified")),
        (id, _) => Ok(id.to_owned()),
    }
}

async fn lookup(core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
    let lease = core.lookup_lease(&lease_id(req, "")?).await?;
    let now = now_nanos();
    Ok(Response::data(json!({
        "id": lease.id,
        "issue_time": rfc3339(lease.issued_at),
        "expire_time": rfc3339(lease.expire_at),
        "last_renewal": lease.last_renewal.map(rfc3339),
        "renewable": lease.renewable && !lease.irrevocable,
        "ttl": seconds_between(now, lease.expire_at),
    })))
}

/// `LIST sys/leases/lookup/<prefix>/`: the names directly below the
/// prefix, sub-prefixes ending in `/`; 404 when there are none.
async fn list(core: &Core, prefix: &str) -> Result<Response, Error> {
    let ids = core.storage().lease_ids(prefix, LIST_LIMIT).await?;
    let mut keys: Vec<String> = ids
        .iter()
        .filter_map(|id| id.strip_prefix(prefix))
        .map(|rest| match rest.find('/') {
            Some(i) => rest[..=i].to_owned(),
            None => rest.to_owned(),
        })
        .collect();
    keys.dedup();
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(Response::data(json!({ "keys": keys })))
}

async fn renew(core: &Core, req: &BackendRequest<'_>, tail: &str) -> Result<Response, Error> {
    let id = lease_id(req, tail)?;
    if id.starts_with("auth/") {
        return Err(Error::invalid(
            "tokens cannot be renewed through this endpoint",
        ));
    }
    let increment = Fields::new(req.data).duration("increment")?.unwrap_or(0);
    let (lease, warnings) = core.renew_lease(&id, increment).await?;
    // Vault answers a renewal with the lease fields and no data.
    Ok(Response {
        lease: Some(lease),
        warnings,
        ..Response::empty()
    })
}

/// `type` must be `irrevocable`, as in OpenBao.
fn irrevocable_type(req: &BackendRequest<'_>) -> Result<(), Error> {
    match Fields::new(req.data).string("type")?.as_deref() {
        Some("irrevocable") => Ok(()),
        _ => Err(Error::NotFound),
    }
}

async fn count(core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
    irrevocable_type(req)?;
    let (_, irrevocable) = core.storage().lease_counts().await?;
    Ok(Response::data(
        json!({"counts": {}, "lease_count": irrevocable}),
    ))
}

async fn irrevocable(core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
    irrevocable_type(req)?;
    let leases = core.storage().irrevocable_leases(IRREVOCABLE_LIMIT).await?;
    let listed: Vec<Value> = leases
        .iter()
        .map(|l| {
            let mut entry = Map::new();
            entry.insert("lease_id".into(), l.id.clone().into());
            entry.insert("mount_id".into(), l.mount_uuid.clone().into());
            entry.insert("expire_time".into(), rfc3339(l.expire_at).into());
            entry.insert(
                "error".into(),
                l.last_error.clone().unwrap_or_default().into(),
            );
            Value::Object(entry)
        })
        .collect();
    Ok(Response::data(json!({
        "lease_count": listed.len(),
        "leases": listed,
    })))
}
