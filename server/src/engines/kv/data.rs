//! `data/`, `delete/`, `undelete/`, `destroy/` and `subkeys/`.

use std::collections::BTreeMap;

use secretd_client::wire;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::{Kv, warn_unrecognized};
use crate::core::{Error, Fields, Response, ResponseStatus, to_object};
use crate::engines::BackendRequest;
use crate::storage::{KvVersionRecord, KvVersions, KvWrite, KvWriteOutcome, SealedBlob};
use crate::time::{now_nanos, rfc3339};

/// How often a PATCH re-reads and retries when another write got in
/// between its read and its write.
const PATCH_ATTEMPTS: usize = 5;

/// What `change_versions` does to the versions it is given.
pub(super) enum VersionChange {
    /// Soft delete: the data stays and can be undeleted.
    Delete,
    Undelete,
    /// The data keys are deleted: the data is gone everywhere.
    Destroy,
}

/// A version as loaded for a reader.
pub(super) struct LoadedVersion {
    pub metadata: wire::KvVersionMetadata,
    /// `None` when the version is deleted or destroyed.
    pub data: Option<Map<String, Value>>,
}

impl Kv<'_> {
    /// Loads `version` (0 = current) of `path`; `None` if it does not exist.
    pub(super) async fn load(
        &self,
        path: &str,
        version: u64,
    ) -> Result<Option<LoadedVersion>, Error> {
        let Some(read) = self
            .core
            .storage()
            .kv_read(self.mount, path, version)
            .await?
        else {
            return Ok(None);
        };
        let v = &read.version;
        let custom_metadata = self
            .open_custom_metadata(path, read.custom_metadata.as_ref())
            .await?;
        let metadata = version_metadata(v, custom_metadata);
        let live = !v.destroyed && v.deletion_time.is_none_or(|t| t > now_nanos());
        let data = match (&v.value, live) {
            (Some(blob), true) => {
                let plain = self
                    .core
                    .barrier()
                    .open_value(&self.version_name(path, v.version), blob)
                    .await?;
                Some(serde_json::from_slice(&plain).map_err(Error::internal)?)
            }
            _ => None,
        };
        Ok(Some(LoadedVersion { metadata, data }))
    }

    pub(super) async fn open_custom_metadata(
        &self,
        path: &str,
        blob: Option<&SealedBlob>,
    ) -> Result<Option<BTreeMap<String, String>>, Error> {
        let Some(blob) = blob else {
            return Ok(None);
        };
        let plain = self
            .core
            .barrier()
            .open_value(&self.custom_metadata_name(path), blob)
            .await?;
        Ok(Some(
            serde_json::from_slice(&plain).map_err(Error::internal)?,
        ))
    }

    pub(super) async fn read(
        &self,
        path: &str,
        req: &BackendRequest<'_>,
    ) -> Result<Response, Error> {
        let version = Fields::new(req.data).u64("version")?.unwrap_or(0);
        let loaded = self.load(path, version).await?.ok_or(Error::NotFound)?;
        let status = match loaded.data {
            Some(_) => ResponseStatus::Ok,
            None => ResponseStatus::NotFound,
        };
        Ok(Response {
            status,
            ..Response::data(wire::KvData {
                data: loaded.data,
                metadata: loaded.metadata,
            })
        })
    }

    pub(super) async fn write(
        &self,
        path: &str,
        req: &BackendRequest<'_>,
    ) -> Result<Response, Error> {
        let mut fields = Fields::new(req.data);
        let data = fields
            .object("data")?
            .ok_or_else(|| Error::invalid("no data provided"))?;
        let cas = cas_option(&mut fields)?;
        let plain = Zeroizing::new(serde_json::to_vec(data).map_err(Error::internal)?);
        let metadata = self
            .store_version(path, &plain, cas, None)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("a plain write cannot race")))?;
        Ok(warn_unrecognized(Response::data(metadata), &fields))
    }

    /// Writes a new version; `Ok(None)` when `expect_version` no longer holds.
    async fn store_version(
        &self,
        path: &str,
        plain: &[u8],
        cas: Option<u64>,
        expect_version: Option<u64>,
    ) -> Result<Option<wire::KvVersionMetadata>, Error> {
        let write = KvWrite {
            mount: self.mount,
            path,
            cas,
            expect_version,
            now: now_nanos(),
        };
        // Storage seals inside its transaction, once it knows the version.
        let barrier = self.core.barrier_handle();
        let (mount, key) = (self.mount.to_owned(), path.to_owned());
        let plain = Zeroizing::new(plain.to_vec());
        let seal =
            move |version| barrier.seal_value(&super::version_name(&mount, &key, version), &plain);
        let outcome = self.core.storage().kv_write(&write, seal).await?;
        match outcome {
            KvWriteOutcome::Written {
                version,
                created_at,
                deletion_time,
                custom_metadata,
            } => {
                let custom_metadata = self
                    .open_custom_metadata(path, custom_metadata.as_ref())
                    .await?;
                Ok(Some(wire::KvVersionMetadata {
                    created_time: rfc3339(created_at),
                    custom_metadata,
                    deletion_time: deletion_time.map(rfc3339).unwrap_or_default(),
                    destroyed: false,
                    version,
                }))
            }
            KvWriteOutcome::CasMismatch => Err(Error::invalid(
                "check-and-set parameter did not match the current version",
            )),
            KvWriteOutcome::CasRequired => Err(Error::invalid(
                "check-and-set parameter required for this call",
            )),
            KvWriteOutcome::Raced => Ok(None),
            KvWriteOutcome::SealFailed(err) => Err(err.into()),
        }
    }

    /// JSON merge patch (RFC 7386) of the current version into a new one.
    pub(super) async fn patch(
        &self,
        path: &str,
        req: &BackendRequest<'_>,
    ) -> Result<Response, Error> {
        let mut fields = Fields::new(req.data);
        let patch = fields
            .object("data")?
            .ok_or_else(|| Error::invalid("no data provided"))?;
        let cas = cas_option(&mut fields)?;
        for _ in 0..PATCH_ATTEMPTS {
            let current = self.load(path, 0).await?.ok_or(Error::NotFound)?;
            let mut data = Value::Object(current.data.ok_or(Error::NotFound)?);
            merge_patch(&mut data, &Value::Object(patch.clone()));
            let plain = Zeroizing::new(serde_json::to_vec(&data).map_err(Error::internal)?);
            let expected = Some(current.metadata.version);
            if let Some(metadata) = self.store_version(path, &plain, cas, expected).await? {
                return Ok(warn_unrecognized(Response::data(metadata), &fields));
            }
        }
        Err(Error::invalid(
            "the secret changed while it was being patched; try again",
        ))
    }

    pub(super) async fn delete_latest(&self, path: &str) -> Result<Response, Error> {
        self.core
            .storage()
            .kv_delete_versions(self.mount, path, KvVersions::Latest, now_nanos())
            .await?;
        Ok(Response::empty())
    }

    /// `delete/`, `undelete/` or `destroy/` of the versions in the body.
    pub(super) async fn change_versions(
        &self,
        path: &str,
        req: &BackendRequest<'_>,
        change: VersionChange,
    ) -> Result<Response, Error> {
        let versions = required_versions(req)?;
        let storage = self.core.storage();
        match change {
            VersionChange::Delete => {
                let which = KvVersions::These(&versions);
                storage
                    .kv_delete_versions(self.mount, path, which, now_nanos())
                    .await?
            }
            VersionChange::Undelete => {
                storage
                    .kv_undelete_versions(self.mount, path, &versions)
                    .await?
            }
            VersionChange::Destroy => {
                storage
                    .kv_destroy_versions(self.mount, path, &versions)
                    .await?
            }
        }
        Ok(Response::empty())
    }

    pub(super) async fn subkeys(
        &self,
        path: &str,
        req: &BackendRequest<'_>,
    ) -> Result<Response, Error> {
        let mut fields = Fields::new(req.data);
        let version = fields.u64("version")?.unwrap_or(0);
        let depth = fields.u64("depth")?.unwrap_or(0);
        let loaded = self.load(path, version).await?.ok_or(Error::NotFound)?;
        let (status, subkeys) = match &loaded.data {
            Some(data) => (ResponseStatus::Ok, Some(key_structure(data, depth, 1))),
            None => (ResponseStatus::NotFound, None),
        };
        Ok(Response {
            status,
            ..Response::data(wire::KvSubkeys {
                subkeys,
                metadata: loaded.metadata,
            })
        })
    }
}

/// The `options.cas` of a write.
fn cas_option(fields: &mut Fields<'_>) -> Result<Option<u64>, Error> {
    match fields.object("options")? {
        Some(options) => Fields::new(options).u64("cas"),
        None => Ok(None),
    }
}

fn required_versions(req: &BackendRequest<'_>) -> Result<Vec<u64>, Error> {
    match Fields::new(req.data).u64_list("versions")? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Error::invalid("no version number provided")),
    }
}

/// A version's metadata as the wire shows it.
pub(super) fn version_metadata(
    v: &KvVersionRecord,
    custom_metadata: Option<BTreeMap<String, String>>,
) -> wire::KvVersionMetadata {
    wire::KvVersionMetadata {
        created_time: rfc3339(v.created_at),
        custom_metadata,
        deletion_time: deletion_time(v),
        destroyed: v.destroyed,
        version: v.version,
    }
}

/// Vault shows no deletion time for a destroyed version.
pub(super) fn deletion_time(v: &KvVersionRecord) -> String {
    match (v.destroyed, v.deletion_time) {
        (false, Some(t)) => rfc3339(t),
        _ => String::new(),
    }
}

/// RFC 7386: `null` removes a key, objects merge, anything else replaces.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// The keys of `data` with every leaf replaced by null, down to `depth`
/// levels (0 = all).
fn key_structure(data: &Map<String, Value>, depth: u64, level: u64) -> Value {
    Value::Object(to_object(
        data.iter()
            .map(|(k, v)| {
                let child = match v {
                    Value::Object(inner) if depth == 0 || level < depth => {
                        key_structure(inner, depth, level + 1)
                    }
                    _ => Value::Null,
                };
                (k.clone(), child)
            })
            .collect::<Map<String, Value>>(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}, "keep": 1});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}, "new": [1]}));
        assert_eq!(
            doc,
            json!({"a": "z", "c": {"d": "e"}, "keep": 1, "new": [1]})
        );
        let mut scalar = json!("x");
        merge_patch(&mut scalar, &json!({"a": 1}));
        assert_eq!(scalar, json!({"a": 1}));
    }

    #[test]
    fn key_structure_hides_values_and_honours_depth() {
        let data = json!({"a": {"b": 1, "c": [1, 2]}, "x": "y"});
        let Value::Object(map) = data else {
            unreachable!()
        };
        assert_eq!(
            key_structure(&map, 0, 1),
            json!({"a": {"b": null, "c": null}, "x": null})
        );
        assert_eq!(key_structure(&map, 1, 1), json!({"a": null, "x": null}));
    }
}
