//! Tests only: a secrets engine of type `test-leases` whose credentials
//! are entries in a process-wide registry, so tests can see which exist.
//!
//! - `roles/:name {ttl, max_ttl, max_leases}` (sealed records);
//! - `GET creds/:role`: a new credential under a lease;
//! - `fail {count}`: the next `count` revocations fail.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::core::{Core, Error, Fields, LeaseGrant, Operation, Response};
use crate::engines::{Backend, BackendRequest, LeaseRequest, LeaseTerms};
use crate::storage::UnixNanos;

pub const TYPE: &str = "test-leases";

#[derive(Default)]
struct Registry {
    /// Live credentials, by mount uuid.
    live: BTreeMap<String, BTreeSet<String>>,
    /// The expiry each credential was last renewed to.
    renewed_to: BTreeMap<String, UnixNanos>,
    /// Revocations still to fail, by mount uuid.
    failing: BTreeMap<String, u32>,
    /// Revocations done, by credential.
    revocations: BTreeMap<String, u32>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn registry<T>(f: impl FnOnce(&mut Registry) -> T) -> T {
    let mut guard = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Registry::default))
}

/// The live credentials of a mount.
pub fn live(mount_uuid: &str) -> BTreeSet<String> {
    registry(|r| r.live.get(mount_uuid).cloned().unwrap_or_default())
}

/// How often a credential was revoked.
pub fn revocations(credential: &str) -> u32 {
    registry(|r| r.revocations.get(credential).copied().unwrap_or(0))
}

/// The expiry a credential was last renewed to.
pub fn renewed_to(credential: &str) -> Option<UnixNanos> {
    registry(|r| r.renewed_to.get(credential).copied())
}

#[derive(Default, Serialize, Deserialize)]
struct Role {
    ttl: u64,
    max_ttl: u64,
    max_leases: u64,
}

pub struct TestLeasesBackend;

#[async_trait]
impl Backend for TestLeasesBackend {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
        let mut fields = Fields::new(req.data);
        if let Some(name) = req.path.strip_prefix("roles/") {
            let role = Role {
                ttl: fields.duration("ttl")?.unwrap_or(0),
                max_ttl: fields.duration("max_ttl")?.unwrap_or(0),
                max_leases: fields.u64("max_leases")?.unwrap_or(0),
            };
            core.write_entry(req.mount, &format!("roles/{name}"), &role)
                .await?;
            return Ok(Response::empty());
        }
        if req.path == "fail" {
            let count = fields.u32("count")?.unwrap_or(0);
            registry(|r| r.failing.insert(req.mount.uuid.clone(), count));
            return Ok(Response::empty());
        }
        let (Some(name), Operation::Read) = (req.path.strip_prefix("creds/"), req.operation) else {
            return Err(Error::UnsupportedPath);
        };
        let role: Role = core
            .read_entry(req.mount, &format!("roles/{name}"))
            .await?
            .ok_or_else(|| Error::invalid(format!("unknown role {name:?}")))?;
        let credential = format!("cred-{}", crate::auth::token::random_base62(12)?);
        registry(|r| {
            r.live
                .entry(req.mount.uuid.clone())
                .or_default()
                .insert(credential.clone())
        });
        let mut response = Response::data(serde_json::json!({ "username": credential }));
        response.secret = Some(LeaseGrant {
            role: name.to_owned(),
            ttl: role.ttl,
            max_ttl: role.max_ttl,
            renewable: true,
            max_leases: role.max_leases,
            internal: Zeroizing::new(format!("{name}\n{credential}").into_bytes()),
            reserved: None,
        });
        Ok(response)
    }

    async fn lease_terms(&self, core: &Core, req: &LeaseRequest<'_>) -> Result<LeaseTerms, Error> {
        let (role, _) = split(req.internal);
        let role: Role = core
            .read_entry(req.mount, &format!("roles/{role}"))
            .await?
            .ok_or_else(|| Error::invalid("the lease's role is gone"))?;
        Ok(LeaseTerms {
            ttl: role.ttl,
            max_ttl: role.max_ttl,
        })
    }

    async fn renew_secret(
        &self,
        _core: &Core,
        req: &LeaseRequest<'_>,
        expire_at: UnixNanos,
    ) -> Result<(), Error> {
        let (_, credential) = split(req.internal);
        registry(|r| r.renewed_to.insert(credential, expire_at));
        Ok(())
    }

    async fn revoke_secret(&self, _core: &Core, req: &LeaseRequest<'_>) -> Result<(), Error> {
        let (_, credential) = split(req.internal);
        registry(|r| {
            let failing = r.failing.entry(req.mount.uuid.clone()).or_default();
            if *failing > 0 {
                *failing -= 1;
                return Err(Error::invalid("the test backend refuses to revoke"));
            }
            if let Some(live) = r.live.get_mut(&req.mount.uuid) {
                live.remove(&credential);
            }
            *r.revocations.entry(credential).or_default() += 1;
            Ok(())
        })
    }
}

fn split(internal: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(internal);
    let (role, credential) = text.split_once('\n').unwrap_or(("", ""));
    (role.to_owned(), credential.to_owned())
}
