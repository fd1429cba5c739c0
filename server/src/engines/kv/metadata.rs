//! `metadata/`: a key's settings, custom metadata and version history.

use std::collections::BTreeMap;

use secretd_client::duration::format_duration;
use secretd_client::wire;
use serde_json::Value;
use zeroize::Zeroizing;

use super::data::deletion_time;
use super::{Kv, validate_custom_metadata, warn_unrecognized};
use crate::core::{Error, Fields, Response};
use crate::engines::BackendRequest;
use crate::storage::KvMetadataUpdate;
use crate::time::{now_nanos, rfc3339};

impl Kv<'_> {
    pub(super) async fn read_metadata(&self, path: &str) -> Result<Response, Error> {
        let meta = self
            .core
            .storage()
            .kv_metadata(self.mount, path)
            .await?
            .ok_or(Error::NotFound)?;
        let custom_metadata = self
            .open_custom_metadata(path, meta.custom_metadata.as_ref())
            .await?;
        let versions = meta
            .versions
            .iter()
            .map(|v| {
                let info = wire::KvVersionInfo {
                    created_time: rfc3339(v.created_at),
                    deletion_time: deletion_time(v),
                    destroyed: v.destroyed,
                };
                (v.version.to_string(), info)
            })
            .collect();
        Ok(Response::data(wire::KvMetadata {
            cas_required: meta.settings.cas_required,
            created_time: rfc3339(meta.created_at),
            current_version: meta.current_version,
            custom_metadata,
            delete_version_after: format_duration(meta.settings.delete_version_after),
            max_versions: meta.settings.max_versions,
            oldest_version: meta.oldest_version,
            updated_time: rfc3339(meta.updated_at),
            versions,
        }))
    }

    /// POST replaces the custom metadata it is given; PATCH merges into it
    /// (a null value removes a key). Settings not given are left alone.
    pub(super) async fn write_metadata(
        &self,
        path: &str,
        req: &BackendRequest<'_>,
        merge: bool,
    ) -> Result<Response, Error> {
        let mut fields = Fields::new(req.data);
        let mut update = KvMetadataUpdate {
            max_versions: super::max_versions(&mut fields)?,
            cas_required: fields.bool("cas_required")?,
            delete_version_after: fields.duration("delete_version_after")?,
            custom_metadata: None,
        };
        let custom = match (merge, fields.raw("custom_metadata")) {
            (_, None) => None,
            (false, Some(_)) => fields.string_map("custom_metadata")?,
            (true, Some(patch)) => Some(self.merged_custom_metadata(path, patch).await?),
        };
        if let Some(custom) = custom {
            validate_custom_metadata(&custom)?;
            update.custom_metadata = Some(if custom.is_empty() {
                None
            } else {
                let plain = Zeroizing::new(serde_json::to_vec(&custom).map_err(Error::internal)?);
                Some(
                    self.core
                        .barrier()
                        .seal_value(&self.custom_metadata_name(path), &plain)?,
                )
            });
        }
        self.core
            .storage()
            .kv_update_metadata(self.mount, path, &update, now_nanos())
            .await?;
        Ok(warn_unrecognized(Response::empty(), &fields))
    }

    async fn merged_custom_metadata(
        &self,
        path: &str,
        patch: &Value,
    ) -> Result<BTreeMap<String, String>, Error> {
        let Value::Object(patch) = patch else {
            return Err(Error::invalid("custom_metadata must be an object"));
        };
        let current = match self.core.storage().kv_metadata(self.mount, path).await? {
            Some(meta) => {
                self.open_custom_metadata(path, meta.custom_metadata.as_ref())
                    .await?
            }
            None => None,
        };
        let mut merged = current.unwrap_or_default();
        for (key, value) in patch {
            match value {
                Value::Null => {
                    merged.remove(key);
                }
                Value::String(s) => {
                    merged.insert(key.clone(), s.clone());
                }
                _ => {
                    return Err(Error::invalid(format!(
                        "custom_metadata values must be strings; {key:?} is not"
                    )));
                }
            }
        }
        Ok(merged)
    }

    pub(super) async fn delete_metadata(&self, path: &str) -> Result<Response, Error> {
        self.core.storage().kv_delete_key(self.mount, path).await?;
        Ok(Response::empty())
    }
}
