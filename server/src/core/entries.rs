//! A backend's own records (an auth method's config, roles, groups,
//! users): JSON sealed by the barrier, each under its own data key, bound
//! to its mount and path. Only the mount and the path are stored in clear.

use serde::Serialize;
use serde::de::DeserializeOwned;
use zeroize::Zeroizing;

use super::{Core, Error};
use crate::barrier::RecordName;
use crate::storage::{MountRecord, StorageError};
use crate::time::now_nanos;

/// The most records one list returns; more is a misuse of a config store.
const MAX_LISTED: u32 = 100_000;

fn record_name(mount: &MountRecord, path: &str) -> RecordName {
    RecordName::new("mount_entry").part(&mount.uuid).part(path)
}

impl Core {
    /// The record at `path` of `mount`, if there is one.
    pub async fn read_entry<T: DeserializeOwned>(
        &self,
        mount: &MountRecord,
        path: &str,
    ) -> Result<Option<T>, Error> {
        let Some(blob) = self.storage().mount_entry(&mount.uuid, path).await? else {
            return Ok(None);
        };
        let json = self
            .barrier()
            .open_value(&record_name(mount, path), &blob)
            .await?;
        serde_json::from_slice(&json)
            .map(Some)
            .map_err(|e| Error::internal(anyhow::anyhow!("mount entry {path}: {e}")))
    }

    /// Creates or replaces the record at `path` of `mount`.
    pub async fn write_entry<T: Serialize>(
        &self,
        mount: &MountRecord,
        path: &str,
        value: &T,
    ) -> Result<(), Error> {
        let json = Zeroizing::new(serde_json::to_vec(value).map_err(Error::internal)?);
        let blob = self
            .barrier()
            .seal_value(&record_name(mount, path), &json)?;
        match self
            .storage()
            .put_mount_entry(&mount.uuid, path, &blob, now_nanos())
            .await
        {
            // Disabled while we wrote: as if the path never existed.
            Err(StorageError::MountGone) => Err(Error::UnsupportedPath),
            other => Ok(other?),
        }
    }

    /// Deletes the record at `path`; false if there was none.
    pub async fn delete_entry(&self, mount: &MountRecord, path: &str) -> Result<bool, Error> {
        Ok(self.storage().delete_mount_entry(&mount.uuid, path).await?)
    }

    /// The names directly below `prefix` (`role/` → `dev`, `prod`), sorted;
    /// a deeper record shows as its first segment with a trailing `/`.
    pub async fn list_entries(
        &self,
        mount: &MountRecord,
        prefix: &str,
    ) -> Result<Vec<String>, Error> {
        let paths = self
            .storage()
            .mount_entry_paths(&mount.uuid, prefix, MAX_LISTED)
            .await?;
        let mut names: Vec<String> = paths
            .iter()
            .filter_map(|p| p.strip_prefix(prefix))
            .map(|rest| match rest.find('/') {
                Some(i) => rest[..=i].to_owned(),
                None => rest.to_owned(),
            })
            .collect();
        names.dedup();
        Ok(names)
    }
}
