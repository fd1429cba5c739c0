//! `sys/rotate/config`: rotating the key-encryption key on a schedule, by
//! age (`interval`, at least 24h, 0 = never) or by use (`max_operations`:
//! data keys wrapped by the active term), as Vault's. A scheduled job of
//! the `sys/` mount checks every hour (see `core/schedules.rs`, so on
//! many nodes one of them rotates); rotation itself is `sys/rotate`'s,
//! and the background rewrap follows.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::core::{Core, Error, Fields, Operation, Response};
use crate::engines::BackendRequest;
use crate::storage::{MountRecord, UnixNanos};
use crate::time::{self as clock, now_nanos};

/// The scheduled job's name.
pub const JOB: &str = "rotate";
const ENTRY: &str = "rotate/config";
/// How often the job looks.
const CHECK_EVERY: u64 = 3600;
const MIN_INTERVAL: u64 = 24 * 3600;
/// Vault's default: well below AES-GCM's limit of 2^32 random nonces.
const DEFAULT_MAX_OPERATIONS: u64 = 3_865_470_566;

#[derive(Serialize, Deserialize)]
struct RotateConfig {
    enabled: bool,
    interval: u64,
    max_operations: u64,
}

impl Default for RotateConfig {
    fn default() -> Self {
        RotateConfig {
            enabled: true,
            interval: 0,
            max_operations: DEFAULT_MAX_OPERATIONS,
        }
    }
}

async fn load(core: &Core, mount: &MountRecord) -> Result<RotateConfig, Error> {
    Ok(core.read_entry(mount, ENTRY).await?.unwrap_or_default())
}

/// `GET|POST sys/rotate/config`.
pub async fn config(core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
    let mut config = load(core, req.mount).await?;
    match req.operation {
        Operation::Read => {
            let interval: Value = if config.interval == 0 {
                0.into()
            } else {
                secretd_client::duration::format_duration(config.interval).into()
            };
            Ok(Response::data(json!({
                "enabled": config.enabled,
                "interval": interval,
                "max_operations": config.max_operations,
            })))
        }
        Operation::Write => {
            let mut fields = Fields::new(req.data);
            if let Some(enabled) = fields.bool("enabled")? {
                config.enabled = enabled;
            }
            if let Some(interval) = fields.duration("interval")? {
                if interval != 0 && interval < MIN_INTERVAL {
                    return Err(Error::invalid(
                        "interval must be greater or equal to 24h0m0s",
                    ));
                }
                config.interval = interval;
            }
            if let Some(max) = fields.u64("max_operations")? {
                if max == 0 || max > DEFAULT_MAX_OPERATIONS {
                    return Err(Error::invalid(format!(
                        "max_operations must be between 1 and {DEFAULT_MAX_OPERATIONS}"
                    )));
                }
                config.max_operations = max;
            }
            fields.refuse_unrecognized()?;
            core.write_entry(req.mount, ENTRY, &config).await?;
            core.storage()
                .schedule(&req.mount.uuid, JOB, now_nanos())
                .await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// The scheduled check: rotates when the active term is too old or has
/// wrapped too many data keys; answers when to look again.
pub async fn run(core: &Core, mount: &MountRecord) -> Result<Option<UnixNanos>, Error> {
    let config = load(core, mount).await?;
    let now = now_nanos();
    let mut next = clock::add_seconds(now, CHECK_EVERY);
    if !config.enabled {
        return Ok(Some(next));
    }
    let status = core.barrier().key_status().await?;
    let expires =
        (config.interval > 0).then(|| clock::add_seconds(status.installed_at, config.interval));
    let too_old = expires.is_some_and(|at| at <= now);
    let too_used = status.encryptions >= config.max_operations;
    if too_old || too_used {
        let term = core.barrier().rotate().await?;
        tracing::info!(
            key.term = term,
            by_age = too_old,
            by_use = too_used,
            "rotated the key-encryption key on schedule"
        );
        if config.interval > 0 {
            next = next.min(clock::add_seconds(now, config.interval));
        }
    } else if let Some(at) = expires {
        next = next.min(at);
    }
    Ok(Some(next))
}

/// Makes sure the check is scheduled (at unseal: the defaults apply
/// before anyone writes the config).
pub async fn ensure_scheduled(core: &Core, mount: &MountRecord) -> Result<(), Error> {
    if core.storage().scheduled(&mount.uuid, JOB).await?.is_none() {
        core.storage()
            .schedule(&mount.uuid, JOB, clock::add_seconds(now_nanos(), 60))
            .await?;
    }
    Ok(())
}
