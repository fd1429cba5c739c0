//! KV version 2: versioned key/value secrets.
//!
//! Each version's data is one JSON object sealed by the barrier under a
//! name that binds it to (mount, path, version); a key's custom metadata is
//! sealed too. Check-and-set, pruning and soft deletes are decided inside
//! one storage transaction per call, so many writers and many nodes agree.

mod data;
mod metadata;

use self::data::VersionChange;

use async_trait::async_trait;
use secretd_client::duration::format_duration;
use secretd_client::wire;

use super::{Backend, BackendRequest};
use crate::barrier::RecordName;
use crate::core::{Core, Error, Fields, Operation, Response, ResponseStatus};
use crate::storage::KvConfigRecord;

/// Vault's limits on custom metadata.
const MAX_CUSTOM_KEYS: usize = 64;
const MAX_CUSTOM_KEY_LEN: usize = 128;
const MAX_CUSTOM_VALUE_LEN: usize = 512;

/// The most versions one key may keep. Vault has no such bound; without
/// one a `max_versions` of four billion lets one key's history fill the
/// database.
pub const MAX_VERSIONS_LIMIT: u32 = 1000;

/// `max_versions` from a request, refused above [`MAX_VERSIONS_LIMIT`].
fn max_versions(fields: &mut Fields<'_>) -> Result<Option<u32>, Error> {
    match fields.u32("max_versions")? {
        Some(n) if n > MAX_VERSIONS_LIMIT => Err(Error::invalid(format!(
            "max_versions is {n}, but a key keeps at most {MAX_VERSIONS_LIMIT} versions"
        ))),
        other => Ok(other),
    }
}

pub struct KvBackend;

#[async_trait]
impl Backend for KvBackend {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
        use Operation::*;
        let kv = Kv {
            core,
            mount: &req.mount.uuid,
        };
        let (area, key) = match req.path.split_once('/') {
            Some((area, key)) => (area, key),
            None => (req.path, ""),
        };
        match (area, req.operation) {
            ("config", Read) if key.is_empty() => kv.read_config().await,
            ("config", Write) if key.is_empty() => kv.write_config(req).await,
            ("metadata", List) => kv.list(key, req).await,
            ("data" | "delete" | "undelete" | "destroy" | "subkeys" | "metadata", _) => {
                if key.is_empty() || key.ends_with('/') {
                    return Err(if matches!(req.operation, Write | Patch) {
                        Error::invalid("cannot write to a path ending in '/'")
                    } else {
                        Error::UnsupportedPath
                    });
                }
                match (area, req.operation) {
                    ("data", Read) => kv.read(key, req).await,
                    ("data", Write) => kv.write(key, req).await,
                    ("data", Patch) => kv.patch(key, req).await,
                    ("data", Delete) => kv.delete_latest(key).await,
                    ("delete", Write) => kv.change_versions(key, req, VersionChange::Delete).await,
                    ("undelete", Write) => {
                        kv.change_versions(key, req, VersionChange::Undelete).await
                    }
                    ("destroy", Write) => {
                        kv.change_versions(key, req, VersionChange::Destroy).await
                    }
                    ("subkeys", Read) => kv.subkeys(key, req).await,
                    ("metadata", Read) => kv.read_metadata(key).await,
                    ("metadata", Write) => kv.write_metadata(key, req, false).await,
                    ("metadata", Patch) => kv.write_metadata(key, req, true).await,
                    ("metadata", Delete) => kv.delete_metadata(key).await,
                    _ => Err(Error::UnsupportedOperation),
                }
            }
            ("config", _) => Err(Error::UnsupportedOperation),
            _ => Ok(Response {
                status: ResponseStatus::NotFound,
                ..Response::empty()
            }
            .with_warning(
                "Invalid path for a versioned K/V secrets engine. See the API docs for the \
                 appropriate API endpoints to use. If using the secretctl CLI, use \
                 'secretctl get' for this operation.",
            )),
        }
    }

    /// A write to `data/` or `metadata/` creates the key when it has no
    /// metadata yet (Vault's existence check).
    async fn exists(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Option<bool>, Error> {
        let key = req
            .path
            .strip_prefix("data/")
            .or_else(|| req.path.strip_prefix("metadata/"));
        match key {
            Some(key) if !key.is_empty() => {
                let meta = core.storage().kv_metadata(&req.mount.uuid, key).await?;
                Ok(Some(meta.is_some()))
            }
            _ => Ok(None),
        }
    }
}

/// One request's view of one KV mount.
struct Kv<'a> {
    core: &'a Core,
    mount: &'a str,
}

/// The name (AAD) a version's value is sealed under.
fn version_name(mount: &str, path: &str, version: u64) -> RecordName {
    RecordName::new("kv/version")
        .part(mount)
        .part(path)
        .number(version)
}

impl Kv<'_> {
    fn version_name(&self, path: &str, version: u64) -> RecordName {
        version_name(self.mount, path, version)
    }

    fn custom_metadata_name(&self, path: &str) -> RecordName {
        RecordName::new("kv/custom-metadata")
            .part(self.mount)
            .part(path)
    }

    async fn config(&self) -> Result<KvConfigRecord, Error> {
        Ok(self
            .core
            .storage()
            .kv_config(self.mount)
            .await?
            .unwrap_or_default())
    }

    async fn read_config(&self) -> Result<Response, Error> {
        let config = self.config().await?;
        Ok(Response::data(wire::KvConfig {
            cas_required: config.cas_required,
            delete_version_after: format_duration(config.delete_version_after),
            max_versions: config.max_versions,
        }))
    }

    async fn write_config(&self, req: &BackendRequest<'_>) -> Result<Response, Error> {
        let mut fields = Fields::new(req.data);
        let mut config = self.config().await?;
        if let Some(max) = max_versions(&mut fields)? {
            config.max_versions = max;
        }
        if let Some(cas) = fields.bool("cas_required")? {
            config.cas_required = cas;
        }
        if let Some(after) = fields.duration("delete_version_after")? {
            config.delete_version_after = after;
        }
        self.core
            .storage()
            .set_kv_config(self.mount, &config)
            .await?;
        Ok(warn_unrecognized(Response::empty(), &fields))
    }

    async fn list(&self, dir: &str, req: &BackendRequest<'_>) -> Result<Response, Error> {
        let prefix = match dir {
            "" => String::new(),
            d if d.ends_with('/') => d.to_owned(),
            d => format!("{d}/"),
        };
        let mut fields = Fields::new(req.data);
        let after = fields.string("after")?.unwrap_or_default();
        let limit = fields.u32("limit")?.unwrap_or(0);
        let keys = self
            .core
            .storage()
            .kv_list(self.mount, &prefix, &after, limit)
            .await?;
        if keys.is_empty() {
            return Err(Error::NotFound);
        }
        Ok(Response::data(wire::KeyList { keys }))
    }
}

/// Adds Vault's warning about ignored parameters, if any.
fn warn_unrecognized(response: Response, fields: &Fields<'_>) -> Response {
    match fields.unrecognized_warning() {
        Some(w) => response.with_warning(w),
        None => response,
    }
}

/// Checks custom metadata against Vault's limits.
fn validate_custom_metadata(
    custom: &std::collections::BTreeMap<String, String>,
) -> Result<(), Error> {
    let fail = |msg: String| {
        Err(Error::invalid(format!(
            "custom_metadata validation failed: {msg}"
        )))
    };
    if custom.len() > MAX_CUSTOM_KEYS {
        return fail(format!(
            "payload must contain at most {MAX_CUSTOM_KEYS} keys, it contains {}",
            custom.len()
        ));
    }
    for (k, v) in custom {
        if k.is_empty() || k.len() > MAX_CUSTOM_KEY_LEN {
            return fail(format!(
                "length of key {k:?} is {} but must be 0 < len(key) <= {MAX_CUSTOM_KEY_LEN}",
                k.len()
            ));
        }
        if v.len() > MAX_CUSTOM_VALUE_LEN {
            return fail(format!(
                "length of value for key {k:?} is {} but must be 0 < len(value) <= {MAX_CUSTOM_VALUE_LEN}",
                v.len()
            ));
        }
        if k.chars().chain(v.chars()).any(char::is_control) {
            return fail(format!(
                "key {k:?} or its value contains an unprintable character"
            ));
        }
    }
    Ok(())
}
