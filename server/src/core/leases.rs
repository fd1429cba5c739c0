//! The lease manager: every dynamic secret a backend hands out is a row of
//! the `leases` table until it is revoked. Nothing is kept in memory and
//! nothing is loaded at start: the expiry worker claims due rows in
//! batches (see `storage`), so several nodes share the work and a node's
//! restart costs nothing, however many leases there are.
//!
//! A revocation calls the backend's `revoke_secret`; success deletes the
//! row and shreds the data key of what the backend kept; a failure is
//! retried with exponential backoff, and after [`MAX_ATTEMPTS`] the lease
//! is marked irrevocable: listed by `sys/leases?type=irrevocable`, logged,
//! and removed only by `revoke-force`.

use std::time::Duration;

use futures::StreamExt;
use zeroize::Zeroizing;

use super::mounts::{Mount, lease_ttls};
use super::{Core, Error, LeaseGrant, LeaseInfo};
use crate::auth::token::random_base62;
use crate::auth::ttl::{self, TtlRules};
use crate::barrier::RecordName;
use crate::engines::{BackendRequest, LeaseRequest};
use crate::storage::{LeaseRecord, MountRecord, StorageError, TokenRecord, UnixNanos};
use crate::time::{self as clock, now_nanos};

/// Random characters after the request path in a lease id, as Vault's.
const LEASE_ID_CHARS: usize = 24;
/// How often the worker looks for due leases.
pub const EXPIRY_INTERVAL: Duration = Duration::from_secs(1);
/// Leases claimed per transaction: as many as are revoked at once, so a
/// claim is held for one revocation's time at most.
const CLAIM_BATCH: u32 = PARALLEL_REVOCATIONS as u32;
/// How long a claim keeps other nodes off a lease: twice the longest a
/// revocation may take ([`REVOKE_TIMEOUT`]). A node that dies holding
/// claims delays those leases by this much.
const CLAIM_FOR: u64 = 60;
/// The longest a backend may take to revoke one lease.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a lease stored ahead of its secret keeps the expiry worker
/// off: longer than a backend may take to make the secret (a database's
/// statements time out after 30 s). If the node dies before it answers,
/// what it made is revoked this long after the request.
const RESERVE_FOR: u64 = CLAIM_FOR;
/// Revocations tried before a lease is marked irrevocable.
pub const MAX_ATTEMPTS: u32 = 6;
/// The first retry's delay, doubled at each failure, capped at an hour.
const RETRY_BASE: u64 = 10;
const RETRY_MAX: u64 = 3600;
/// Revocations of one batch run at the same time.
const PARALLEL_REVOCATIONS: usize = 16;
/// Leases claimed per pass of a synchronous revoke-prefix.
const PREFIX_BATCH: u32 = CLAIM_BATCH;

fn internal_name(id: &str) -> RecordName {
    RecordName::new("lease").part(id)
}

/// When a lease that failed `attempts` times is tried again.
fn retry_delay(attempts: u32) -> u64 {
    let doublings = attempts.saturating_sub(1).min(16);
    (RETRY_BASE << doublings).min(RETRY_MAX)
}

/// The TTL of a new lease at `now` from a backend's `ttl` and `max_ttl`
/// under its mount's TTLs: what the lease will say, so that a backend can
/// make its secret expire at the same moment.
pub fn lease_ttl(
    mount: &MountRecord,
    ttl: u64,
    max_ttl: u64,
    now: UnixNanos,
) -> Result<ttl::Ttl, Error> {
    let (default_ttl, mount_max_ttl) = lease_ttls(mount);
    ttl::calculate(&TtlRules {
        backend_ttl: ttl,
        backend_max_ttl: max_ttl,
        mount_default_ttl: default_ttl,
        mount_max_ttl,
        start: now,
        now,
        ..TtlRules::default()
    })
    .map_err(Error::InvalidRequest)
}

/// Why a lease could not be stored, for the caller.
fn refusal(err: StorageError, role: &str) -> Error {
    match err {
        StorageError::QuotaExceeded(held) => Error::TooManyRequests(format!(
            "role {role:?} holds {held} leases, its max_leases; revoke some or wait for them to expire"
        )),
        StorageError::ParentRevoked => Error::PermissionDenied,
        StorageError::MountGone => Error::UnsupportedPath,
        other => other.into(),
    }
}

/// A lease stored before its secret is made ([`Core::reserve_lease`]).
pub struct ReservedLease {
    record: LeaseRecord,
    ttl: ttl::Ttl,
    /// When the expiry worker takes it, unless it is settled before.
    reserved_until: UnixNanos,
}

/// What happened to a claimed lease.
enum Outcome {
    Revoked,
    Failed(String),
}

impl Core {
    /// Puts a backend's dynamic secret, answered at `path`, under a lease
    /// owned by `token`. If the lease cannot be stored (the role's quota,
    /// a token revoked meanwhile), the secret is revoked again at once.
    /// A lease the backend reserved is settled instead.
    pub(crate) async fn grant_lease(
        &self,
        mount: &Mount,
        path: &str,
        token: &TokenRecord,
        grant: LeaseGrant,
    ) -> Result<(LeaseInfo, Vec<String>), Error> {
        if let Some(reserved) = &grant.reserved {
            return self.settle_reserved(mount, &grant, reserved).await;
        }
        let (record, ttl) = self.new_lease(&mount.record, path, token, &grant, now_nanos())?;
        if let Err(err) = self.storage().create_lease(&record, grant.max_leases).await {
            // The backend made the secret already: take it back.
            self.take_back(mount, &record, &grant).await;
            return Err(refusal(err, &grant.role));
        }
        let info = LeaseInfo {
            id: record.id,
            duration: ttl.seconds,
            renewable: record.renewable,
        };
        Ok((info, ttl.warnings))
    }

    /// Stores the lease of a secret before the backend makes it, for
    /// secrets that live outside secretd (a database user): if this node
    /// dies before it answers, the lease is there to revoke what was made.
    /// The lease keeps the expiry worker off for [`RESERVE_FOR`]; the
    /// answer (with [`LeaseGrant::reserved`]) settles it to its expiry,
    /// and [`Core::release_lease`] drops it if nothing was made after all.
    pub async fn reserve_lease(
        &self,
        req: &BackendRequest<'_>,
        grant: &LeaseGrant,
    ) -> Result<ReservedLease, Error> {
        let now = now_nanos();
        let (mut record, ttl) =
            self.new_lease(req.mount, &req.request.path, &req.token.record, grant, now)?;
        let reserved_until = clock::add_seconds(now, RESERVE_FOR);
        record.due_at = reserved_until;
        self.storage()
            .create_lease(&record, grant.max_leases)
            .await
            .map_err(|err| refusal(err, &grant.role))?;
        Ok(ReservedLease {
            record,
            ttl,
            reserved_until,
        })
    }

    /// Drops a reserved lease whose secret was not made.
    pub async fn release_lease(&self, reserved: ReservedLease) {
        if let Err(err) = self.storage().finish_lease(&reserved.record.id).await {
            tracing::warn!(
                lease.id = %reserved.record.id, error = %err,
                "could not drop the lease of a secret that was not made; \
                 it is revoked when its reservation ends"
            );
        }
    }

    /// Makes a reserved lease due at its expiry. If it was revoked (or
    /// made due) before that, by its token's revocation or a
    /// revoke-prefix, the secret may have been made after the revocation
    /// ran: it is revoked again, and the request refused.
    async fn settle_reserved(
        &self,
        mount: &Mount,
        grant: &LeaseGrant,
        reserved: &ReservedLease,
    ) -> Result<(LeaseInfo, Vec<String>), Error> {
        let record = &reserved.record;
        let settled = self
            .storage()
            .settle_lease(&record.id, reserved.reserved_until, record.expire_at)
            .await?;
        if !settled {
            self.take_back(mount, record, grant).await;
            return Err(Error::PermissionDenied);
        }
        let info = LeaseInfo {
            id: record.id.clone(),
            duration: reserved.ttl.seconds,
            renewable: record.renewable,
        };
        Ok((info, reserved.ttl.warnings.clone()))
    }

    /// A new lease's record, due at its expiry, and its TTL.
    fn new_lease(
        &self,
        mount: &MountRecord,
        path: &str,
        token: &TokenRecord,
        grant: &LeaseGrant,
        now: UnixNanos,
    ) -> Result<(LeaseRecord, ttl::Ttl), Error> {
        let ttl = lease_ttl(mount, grant.ttl, grant.max_ttl, now)?;
        let id = format!(
            "{}/{}",
            path.trim_end_matches('/'),
            random_base62(LEASE_ID_CHARS)?
        );
        let expire_at = clock::add_seconds(now, ttl.seconds);
        let record = LeaseRecord {
            secret: self
                .barrier()
                .seal_value(&internal_name(&id), &grant.internal)?,
            id,
            mount_uuid: mount.uuid.clone(),
            role: grant.role.clone(),
            token_hash: Some(token.hash.clone()),
            issued_at: now,
            expire_at,
            last_renewal: None,
            renewable: grant.renewable,
            due_at: expire_at,
            attempts: 0,
            irrevocable: false,
            last_error: None,
        };
        Ok((record, ttl))
    }

    /// Revokes a secret whose lease was refused, at once.
    async fn take_back(&self, mount: &Mount, lease: &LeaseRecord, grant: &LeaseGrant) {
        let req = LeaseRequest {
            mount: &mount.record,
            lease,
            internal: &grant.internal,
        };
        if let Err(rollback) = mount.backend.revoke_secret(self, &req).await {
            tracing::error!(
                lease.role = %grant.role, error = %rollback,
                "a secret refused a lease could not be revoked; it outlives its request"
            );
        }
    }

    /// `sys/leases/lookup`: a lease that exists (400 `invalid lease`).
    pub async fn lookup_lease(&self, id: &str) -> Result<LeaseRecord, Error> {
        self.storage()
            .lease(id)
            .await?
            .ok_or_else(|| Error::invalid("invalid lease"))
    }

    /// `sys/leases/renew`: the backend's current terms, Vault's TTL rules
    /// from the lease's issue time, the backend's renewal, then the row.
    pub async fn renew_lease(
        &self,
        id: &str,
        increment: u64,
    ) -> Result<(LeaseInfo, Vec<String>), Error> {
        let lease = self
            .storage()
            .lease(id)
            .await?
            .ok_or_else(|| Error::invalid("lease not found"))?;
        let now = now_nanos();
        if lease.irrevocable || lease.expire_at <= now || lease.due_at <= now {
            return Err(Error::invalid("lease expired"));
        }
        if !lease.renewable {
            return Err(Error::invalid("lease is not renewable"));
        }
        let mount = self
            .mount_table()
            .by_uuid(&lease.mount_uuid)
            .ok_or_else(|| Error::invalid("lease not found"))?;
        let internal = self.open_lease(&lease).await?;
        let req = LeaseRequest {
            mount: &mount.record,
            lease: &lease,
            internal: &internal,
        };
        let terms = mount.backend.lease_terms(self, &req).await?;
        let (default_ttl, max_ttl) = lease_ttls(&mount.record);
        let ttl = ttl::calculate(&TtlRules {
            increment,
            backend_ttl: terms.ttl,
            backend_max_ttl: terms.max_ttl,
            mount_default_ttl: default_ttl,
            mount_max_ttl: max_ttl,
            start: lease.issued_at,
            now,
            ..TtlRules::default()
        })
        .map_err(Error::InvalidRequest)?;
        let expire_at = clock::add_seconds(now, ttl.seconds);
        mount.backend.renew_secret(self, &req, expire_at).await?;
        if !self.storage().renew_lease(id, expire_at, now).await? {
            return Err(Error::invalid("lease expired"));
        }
        let info = LeaseInfo {
            id: lease.id,
            duration: ttl.seconds,
            renewable: true,
        };
        Ok((info, ttl.warnings))
    }

    /// `sys/leases/revoke` with `sync`: revokes the lease now. A lease that
    /// does not exist, or is irrevocable, is left as it is.
    pub async fn revoke_lease(&self, id: &str) -> Result<(), Error> {
        let now = now_nanos();
        let deadline = clock::add_seconds(now, CLAIM_FOR);
        match self.storage().claim_lease(id, now, deadline).await? {
            Some(lease) => match self.revoke_claimed(lease).await {
                Outcome::Revoked => Ok(()),
                Outcome::Failed(reason) => Err(Error::invalid(format!(
                    "failed to revoke lease {id}: {reason}; it will be retried"
                ))),
            },
            None => Ok(()),
        }
    }

    /// `sys/leases/revoke` without `sync`, and `revoke-prefix`: makes the
    /// leases under `prefix` due now, for the worker; with `sync`, also
    /// revokes them before answering.
    pub async fn revoke_lease_prefix(&self, prefix: &str, sync: bool) -> Result<(), Error> {
        self.storage().expire_leases(prefix, now_nanos()).await?;
        if !sync {
            return Ok(());
        }
        let mut failures = Vec::new();
        loop {
            let now = now_nanos();
            let claimed = self
                .storage()
                .claim_due_leases_under(
                    prefix,
                    now,
                    clock::add_seconds(now, CLAIM_FOR),
                    PREFIX_BATCH,
                )
                .await?;
            if claimed.is_empty() {
                break;
            }
            let outcomes: Vec<(String, Outcome)> = futures::stream::iter(claimed)
                .map(|lease| async move {
                    let id = lease.id.clone();
                    (id, self.revoke_claimed(lease).await)
                })
                .buffer_unordered(PARALLEL_REVOCATIONS)
                .collect()
                .await;
            for (id, outcome) in outcomes {
                if let Outcome::Failed(reason) = outcome {
                    failures.push(format!("{id}: {reason}"));
                }
            }
        }
        match failures.len() {
            0 => Ok(()),
            n => Err(Error::invalid(format!(
                "failed to revoke {n} lease(s) under {prefix:?}; they will be retried: {}",
                failures.join("; ")
            ))),
        }
    }

    /// `sys/leases/revoke-force`: forgets the leases under `prefix`
    /// without asking their backend. What they handed out stays valid.
    pub async fn force_revoke_lease_prefix(&self, prefix: &str) -> Result<u64, Error> {
        let n = self.storage().force_delete_leases(prefix).await?;
        if n > 0 {
            tracing::warn!(
                prefix,
                leases = n,
                "forgot leases without revoking them (revoke-force); their secrets may still work"
            );
        }
        Ok(n)
    }

    /// Revokes every due lease, in batches, until none is left: what the
    /// expiry worker does every [`EXPIRY_INTERVAL`]. Returns how many were
    /// revoked.
    pub async fn expire_due_leases(&self) -> Result<u64, Error> {
        let mut revoked = 0;
        loop {
            let now = now_nanos();
            let claimed = self
                .storage()
                .claim_due_leases(now, clock::add_seconds(now, CLAIM_FOR), CLAIM_BATCH)
                .await?;
            let full = claimed.len() >= CLAIM_BATCH as usize;
            revoked += futures::stream::iter(claimed)
                .map(|lease| self.revoke_claimed(lease))
                .buffer_unordered(PARALLEL_REVOCATIONS)
                .filter(|outcome| std::future::ready(matches!(outcome, Outcome::Revoked)))
                .count()
                .await as u64;
            if !full {
                return Ok(revoked);
            }
        }
    }

    /// The expiry worker's loop.
    pub(super) async fn run_lease_expiry(&self) {
        let mut tick = tokio::time::interval(EXPIRY_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.barrier().is_sealed() {
                continue;
            }
            match self.expire_due_leases().await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(leases.revoked = n, "revoked expired leases"),
                Err(err) => {
                    tracing::warn!(error = %err, "the lease expiry pass failed; will retry")
                }
            }
        }
    }

    async fn open_lease(&self, lease: &LeaseRecord) -> Result<Zeroizing<Vec<u8>>, Error> {
        Ok(self
            .barrier()
            .open_value(&internal_name(&lease.id), &lease.secret)
            .await?)
    }

    /// Revokes a lease this node claimed, and records the outcome.
    async fn revoke_claimed(&self, lease: LeaseRecord) -> Outcome {
        let result = match self.mount_table().by_uuid(&lease.mount_uuid) {
            // The mount went (its leases with it): nothing left to revoke.
            None => Ok(()),
            Some(mount) => self.call_revoke(&mount, &lease).await,
        };
        match result {
            Ok(()) => match self.storage().finish_lease(&lease.id).await {
                Ok(_) => Outcome::Revoked,
                // Revoked, but still listed: the next claim revokes it
                // again, which backends must take calmly.
                Err(err) => Outcome::Failed(format!("revoked, but not deleted: {err}")),
            },
            Err(reason) => {
                self.record_failure(&lease, &reason).await;
                Outcome::Failed(reason)
            }
        }
    }

    async fn call_revoke(&self, mount: &Mount, lease: &LeaseRecord) -> Result<(), String> {
        let internal = self.open_lease(lease).await.map_err(|e| e.to_string())?;
        let req = LeaseRequest {
            mount: &mount.record,
            lease,
            internal: &internal,
        };
        match tokio::time::timeout(REVOKE_TIMEOUT, mount.backend.revoke_secret(self, &req)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!(
                "the backend did not revoke it within {}s",
                REVOKE_TIMEOUT.as_secs()
            )),
        }
    }

    async fn record_failure(&self, lease: &LeaseRecord, reason: &str) {
        let irrevocable = lease.attempts >= MAX_ATTEMPTS;
        match self.mount_table().by_uuid(&lease.mount_uuid) {
            Some(mount) => self
                .metrics()
                .observe_revocation_failure(&mount.record.path),
            None => self
                .metrics()
                .observe_revocation_failure(crate::metrics::UNKNOWN_ROUTE),
        }
        let retry_at: UnixNanos = clock::add_seconds(now_nanos(), retry_delay(lease.attempts));
        if irrevocable {
            tracing::error!(
                lease.id = %lease.id, attempts = lease.attempts, error = reason,
                "a lease could not be revoked and is now irrevocable; \
                 see sys/leases?type=irrevocable, and revoke-force once it is cleaned up by hand"
            );
        } else {
            tracing::warn!(
                lease.id = %lease.id, attempts = lease.attempts, error = reason,
                retry_in_s = retry_delay(lease.attempts),
                "revoking a lease failed; will retry"
            );
        }
        if let Err(err) = self
            .storage()
            .fail_lease(&lease.id, retry_at, reason, irrevocable)
            .await
        {
            // The claim's deadline brings it back anyway.
            tracing::warn!(lease.id = %lease.id, error = %err, "could not record a failed revocation");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_delay(1), 10);
        assert_eq!(retry_delay(2), 20);
        assert_eq!(retry_delay(5), 160);
        assert_eq!(retry_delay(40), 3600);
    }
}
