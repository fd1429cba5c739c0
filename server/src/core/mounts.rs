//! The mount table: which backend serves which path prefix.
//!
//! Mounts live in storage; each node keeps the table in memory and reloads
//! it after its own changes, at unseal, and every few seconds, so a mount
//! made on another node is seen soon after.

use std::collections::BTreeMap;
use std::sync::Arc;

use secretd_client::wire::{MountConfigOutput, MountOutput};
use serde_json::{Map, Value};

use super::fields::Fields;
use super::{Core, Error};
use crate::auth::TokenBackend;
use crate::auth::kubernetes::KubernetesBackend;
use crate::engines::Backend;
use crate::engines::kv::KvBackend;
use crate::engines::sys::SysBackend;
use crate::storage::{MountKind, MountRecord, StorageError};
use crate::time::now_nanos;

/// Mount types and what serves them.
pub const TYPE_KV: &str = "kv";
pub const TYPE_DATABASE: &str = "database";
pub const TYPE_SYSTEM: &str = "system";
pub const TYPE_TOKEN: &str = "token";
pub const TYPE_KUBERNETES: &str = "kubernetes";

/// Vault's system-wide lease limit: the default and the maximum TTL.
pub const SYSTEM_MAX_LEASE_TTL: u64 = 768 * 3600;

/// Prefixes no secret engine may take.
const RESERVED: &[&str] = &["sys/", "auth/", "cubbyhole/", "identity/", "audit/"];

/// One mounted backend.
pub struct Mount {
    pub record: MountRecord,
    pub backend: Arc<dyn Backend>,
}

/// Mounts ordered longest path first, for longest-prefix routing.
#[derive(Default)]
pub struct MountTable {
    mounts: Vec<Arc<Mount>>,
}

impl MountTable {
    pub fn build(records: Vec<MountRecord>) -> Self {
        let mut mounts: Vec<Arc<Mount>> = records
            .into_iter()
            .filter_map(|record| {
                let backend = backend_for(&record.mount_type)?;
                Some(Arc::new(Mount { record, backend }))
            })
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.record.path.len()));
        MountTable { mounts }
    }

    /// The mount serving `path` and the path below it.
    pub fn route<'p>(&self, path: &'p str) -> Option<(Arc<Mount>, &'p str)> {
        self.mounts.iter().find_map(|m| {
            path.strip_prefix(m.record.path.as_str())
                .map(|rest| (m.clone(), rest))
        })
    }

    /// The mount with this uuid, if it is still mounted.
    pub fn by_uuid(&self, uuid: &str) -> Option<Arc<Mount>> {
        self.mounts.iter().find(|m| m.record.uuid == uuid).cloned()
    }

    pub fn by_kind(&self, kind: MountKind) -> impl Iterator<Item = &MountRecord> {
        self.mounts
            .iter()
            .map(|m| &m.record)
            .filter(move |r| r.kind == kind)
    }
}

fn backend_for(mount_type: &str) -> Option<Arc<dyn Backend>> {
    match mount_type {
        TYPE_KV => Some(Arc::new(KvBackend)),
        TYPE_DATABASE => Some(Arc::new(crate::engines::database::DatabaseBackend)),
        TYPE_SYSTEM => Some(Arc::new(SysBackend)),
        TYPE_TOKEN => Some(Arc::new(TokenBackend)),
        TYPE_KUBERNETES => Some(Arc::new(KubernetesBackend)),
        crate::auth::ldap::TYPE => Some(Arc::new(crate::auth::ldap::LdapBackend)),
        #[cfg(test)]
        crate::engines::test_leases::TYPE => {
            Some(Arc::new(crate::engines::test_leases::TestLeasesBackend))
        }
        #[cfg(test)]
        crate::auth::test_method::TYPE => {
            Some(Arc::new(crate::auth::test_method::TestLoginBackend))
        }
        _ => None,
    }
}

/// A new mount record with fresh identifiers.
pub fn new_record(
    path: &str,
    kind: MountKind,
    mount_type: &str,
    description: &str,
    options: &BTreeMap<String, String>,
    config: &MountConfigOutput,
) -> Result<MountRecord, Error> {
    let accessor_prefix = match (kind, mount_type) {
        (MountKind::Auth, t) => format!("auth_{t}"),
        (MountKind::Secret, t) => t.to_owned(),
    };
    let mut suffix = [0u8; 4];
    crate::barrier::fill_random(&mut suffix).map_err(Error::internal)?;
    Ok(MountRecord {
        uuid: uuid::Uuid::new_v4().to_string(),
        path: path.to_owned(),
        kind,
        mount_type: mount_type.to_owned(),
        description: description.to_owned(),
        accessor: format!("{accessor_prefix}_{}", hex::encode(suffix)),
        options: serde_json::to_string(options).map_err(Error::internal)?,
        config: serde_json::to_string(config).map_err(Error::internal)?,
        created_at: now_nanos(),
    })
}

/// The mounts every initialised server has.
pub fn builtin_records() -> Result<Vec<MountRecord>, Error> {
    let none = BTreeMap::new();
    let config = MountConfigOutput::default();
    Ok(vec![
        new_record(
            "sys/",
            MountKind::Secret,
            TYPE_SYSTEM,
            "system endpoints used for control, policy and debugging",
            &none,
            &config,
        )?,
        new_record(
            "auth/token/",
            MountKind::Auth,
            TYPE_TOKEN,
            "token based credentials",
            &none,
            &config,
        )?,
    ])
}

/// The KV version 2 engine at `path`.
pub fn kv_v2_record(path: &str, description: &str) -> Result<MountRecord, Error> {
    let options = BTreeMap::from([("version".to_owned(), "2".to_owned())]);
    new_record(
        path,
        MountKind::Secret,
        TYPE_KV,
        description,
        &options,
        &MountConfigOutput::default(),
    )
}

/// The description, options and config of a `sys/mounts` or `sys/auth`
/// body.
fn mount_settings(
    fields: &mut Fields<'_>,
) -> Result<(String, BTreeMap<String, String>, MountConfigOutput), Error> {
    let description = fields.string("description")?.unwrap_or_default();
    let options = fields.string_map("options")?.unwrap_or_default();
    let mut config = MountConfigOutput::default();
    if let Some(raw) = fields.object("config")? {
        let mut c = Fields::new(raw);
        config.default_lease_ttl = c.duration("default_lease_ttl")?.unwrap_or(0);
        config.max_lease_ttl = c.duration("max_lease_ttl")?.unwrap_or(0);
        config.force_no_cache = c.bool("force_no_cache")?.unwrap_or(false);
    }
    let _ = fields.bool("local")?;
    let _ = fields.bool("seal_wrap")?;
    Ok((description, options, config))
}

/// A mount's default and max lease TTLs in seconds, the system's where
/// the mount sets none.
pub fn lease_ttls(record: &MountRecord) -> (u64, u64) {
    let config: MountConfigOutput = serde_json::from_str(&record.config).unwrap_or_default();
    let or_system = |t: u64| if t == 0 { SYSTEM_MAX_LEASE_TTL } else { t };
    (
        or_system(config.default_lease_ttl),
        or_system(config.max_lease_ttl),
    )
}

/// `GET sys/mounts/:path/tune`: TTLs in seconds, 0 meaning the system's.
pub fn tune_output(record: &MountRecord) -> Map<String, Value> {
    let config: MountConfigOutput = serde_json::from_str(&record.config).unwrap_or_default();
    let or_system = |ttl: u64| if ttl == 0 { SYSTEM_MAX_LEASE_TTL } else { ttl };
    let mut data = Map::new();
    data.insert(
        "default_lease_ttl".into(),
        or_system(config.default_lease_ttl).into(),
    );
    data.insert(
        "max_lease_ttl".into(),
        or_system(config.max_lease_ttl).into(),
    );
    data.insert("force_no_cache".into(), config.force_no_cache.into());
    data.insert("description".into(), record.description.clone().into());
    data
}

/// `GET sys/mounts` shape of one mount.
pub fn mount_output(record: &MountRecord) -> MountOutput {
    let options: Option<BTreeMap<String, String>> = serde_json::from_str(&record.options)
        .ok()
        .filter(|o: &BTreeMap<String, String>| !o.is_empty());
    MountOutput {
        mount_type: record.mount_type.clone(),
        description: record.description.clone(),
        accessor: record.accessor.clone(),
        config: serde_json::from_str(&record.config).unwrap_or_default(),
        options,
        local: false,
        seal_wrap: false,
        external_entropy_access: false,
        plugin_version: String::new(),
        running_plugin_version: format!("v{}+builtin.secretd", env!("CARGO_PKG_VERSION")),
        running_sha256: String::new(),
        uuid: record.uuid.clone(),
    }
}

/// Normalises a mount path: no surrounding slashes in, one trailing out.
pub fn normalize_path(path: &str) -> Result<String, Error> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        return Err(Error::invalid("a mount path is required"));
    }
    Ok(format!("{trimmed}/"))
}

impl Core {
    /// Mounts a secret engine at `path` from a `sys/mounts/:path` body.
    pub async fn mount_secret_engine(
        &self,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Vec<String>, Error> {
        let path = normalize_path(path)?;
        let mut fields = Fields::new(data);
        let requested_type = fields
            .string("type")?
            .ok_or_else(|| Error::invalid("the mount type is required (\"type\": \"kv-v2\")"))?;
        let (description, options, config) = mount_settings(&mut fields)?;
        let (mount_type, options) = match requested_type.as_str() {
            "kv-v2" => (
                TYPE_KV,
                BTreeMap::from([("version".to_owned(), "2".to_owned())]),
            ),
            "kv" if options.get("version").map(String::as_str) == Some("2") => (TYPE_KV, options),
            TYPE_DATABASE => (TYPE_DATABASE, options),
            #[cfg(test)]
            crate::engines::test_leases::TYPE => (crate::engines::test_leases::TYPE, options),
            "kv" | "kv-v1" => {
                return Err(Error::invalid(
                    "secretd implements version 2 of the KV engine only; mount it with \
                     \"type\": \"kv-v2\" or \"options\": {\"version\": \"2\"}",
                ));
            }
            other => {
                return Err(Error::invalid(format!(
                    "plugin not found in the catalog: {other}"
                )));
            }
        };
        if RESERVED.iter().any(|r| path.starts_with(r)) {
            return Err(Error::invalid(format!(
                "cannot mount {path:?}: the prefix is reserved"
            )));
        }
        let record = new_record(
            &path,
            MountKind::Secret,
            mount_type,
            &description,
            &options,
            &config,
        )?;
        self.add_mount(&record).await?;
        Ok(fields.unrecognized_warning().into_iter().collect())
    }

    /// Stores a new mount where nothing is mounted yet, and routes to it.
    async fn add_mount(&self, record: &MountRecord) -> Result<(), Error> {
        self.check_mount_path_free(&record.path)?;
        match self.storage().create_mount(record).await {
            Ok(()) => {}
            Err(StorageError::Conflict(_)) => {
                return Err(Error::invalid(format!(
                    "path is already in use at {}",
                    record.path
                )));
            }
            Err(err) => return Err(err.into()),
        }
        self.reload_mounts().await
    }

    /// Refuses a path that is, contains, or lies inside an existing mount.
    fn check_mount_path_free(&self, path: &str) -> Result<(), Error> {
        let table = self.mount_table();
        let clash = table
            .by_kind(MountKind::Secret)
            .chain(table.by_kind(MountKind::Auth))
            .find(|m| path.starts_with(m.path.as_str()) || m.path.starts_with(path));
        match clash {
            Some(m) => Err(Error::invalid(format!(
                "path is already in use at {}",
                m.path
            ))),
            None => Ok(()),
        }
    }

    /// Unmounts the secret engine at `path` and deletes everything in it.
    /// Unmounting a path where nothing is mounted succeeds, as in Vault.
    pub async fn unmount_secret_engine(&self, path: &str) -> Result<(), Error> {
        let path = normalize_path(path)?;
        if RESERVED.iter().any(|r| path.starts_with(r)) {
            return Err(Error::invalid(format!("cannot unmount {path:?}")));
        }
        let table = self.mount_table();
        let Some(record) = table
            .by_kind(MountKind::Secret)
            .find(|m| m.path == path)
            .cloned()
        else {
            return Ok(());
        };
        // Its leases are revoked first; if any cannot be (irrevocable ones
        // included), nothing is unmounted: revoke-force forgets them.
        let refused = |reason: String| {
            Error::invalid(format!(
                "cannot unmount {path:?}: {reason} (sys/leases/revoke-force/{path} forgets \
                 its leases without revoking them)"
            ))
        };
        self.revoke_lease_prefix(&record.path, true)
            .await
            .map_err(|err| refused(err.to_string()))?;
        if !self.storage().lease_ids(&record.path, 1).await?.is_empty() {
            return Err(refused("some of its leases are irrevocable".to_owned()));
        }
        self.storage().delete_mount(&record.uuid).await?;
        self.reload_mounts().await?;
        Ok(())
    }

    /// The auth method mounted at `path` (as in `sys/auth/:path`, without
    /// the `auth/` prefix).
    pub fn auth_mount(&self, path: &str) -> Result<MountRecord, Error> {
        let path = format!("auth/{}", normalize_path(path)?);
        self.mount_table()
            .by_kind(MountKind::Auth)
            .find(|m| m.path == path)
            .cloned()
            .ok_or(Error::NotFound)
    }

    /// `POST sys/auth/:path`: an auth method of a type secretd has
    /// (`kubernetes`, `ldap`), as many mounts of each as wanted. The token
    /// method is built in and exists exactly once.
    pub async fn mount_auth_method(
        &self,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Vec<String>, Error> {
        let path = format!("auth/{}", normalize_path(path)?);
        let mut fields = Fields::new(data);
        let kind = fields.string("type")?.ok_or_else(|| {
            Error::invalid("the auth method type is required (\"type\": \"...\")")
        })?;
        let (description, options, config) = mount_settings(&mut fields)?;
        if kind == TYPE_TOKEN {
            return Err(Error::invalid(
                "token credential backend cannot be instantiated",
            ));
        }
        if backend_for(&kind).is_none() {
            return Err(Error::invalid(format!("unknown auth method type: {kind}")));
        }
        let record = new_record(
            &path,
            MountKind::Auth,
            &kind,
            &description,
            &options,
            &config,
        )?;
        self.add_mount(&record).await?;
        tracing::info!(path = %path, method = %kind, "enabled an auth method");
        Ok(fields.unrecognized_warning().into_iter().collect())
    }

    /// `DELETE sys/auth/:path`; the token method cannot be disabled.
    pub async fn unmount_auth_method(&self, path: &str) -> Result<(), Error> {
        let record = match self.auth_mount(path) {
            Ok(record) => record,
            Err(Error::NotFound) => return Ok(()),
            Err(err) => return Err(err),
        };
        if record.mount_type == TYPE_TOKEN {
            return Err(Error::invalid(
                "token credential backend cannot be disabled",
            ));
        }
        // Its tokens are revoked in the same transaction; their children
        // follow in the next cleanup pass.
        self.storage().delete_mount(&record.uuid).await?;
        tracing::info!(path = %record.path, "disabled an auth method and revoked its tokens");
        self.reload_mounts().await
    }

    /// `POST sys/mounts/:path/tune` and `sys/auth/:path/tune`: lease TTLs
    /// (capped by the system's 768h) and the description.
    pub async fn tune_mount(
        &self,
        record: &MountRecord,
        data: &Map<String, Value>,
    ) -> Result<Vec<String>, Error> {
        let mut fields = Fields::new(data);
        let mut config: MountConfigOutput =
            serde_json::from_str(&record.config).unwrap_or_default();
        let mut ttl = |name: &'static str| -> Result<Option<u64>, Error> {
            match fields.raw(name) {
                Some(Value::String(s)) if s == "system" => Ok(Some(0)),
                Some(_) => fields.duration(name),
                None => Ok(None),
            }
        };
        if let Some(d) = ttl("default_lease_ttl")? {
            config.default_lease_ttl = d;
        }
        if let Some(m) = ttl("max_lease_ttl")? {
            config.max_lease_ttl = m;
        }
        let description = fields
            .string("description")?
            .unwrap_or_else(|| record.description.clone());
        if config.max_lease_ttl > SYSTEM_MAX_LEASE_TTL {
            return Err(Error::invalid(format!(
                "max_lease_ttl exceeds the system max of {}",
                secretd_client::duration::format_duration(SYSTEM_MAX_LEASE_TTL)
            )));
        }
        let max = if config.max_lease_ttl == 0 {
            SYSTEM_MAX_LEASE_TTL
        } else {
            config.max_lease_ttl
        };
        if config.default_lease_ttl > max {
            return Err(Error::invalid(
                "default lease TTL greater than max lease TTL",
            ));
        }
        let json = serde_json::to_string(&config).map_err(Error::internal)?;
        self.storage()
            .tune_mount(&record.uuid, &description, &json)
            .await?;
        self.reload_mounts().await?;
        Ok(fields.unrecognized_warning().into_iter().collect())
    }

    /// The secret engine mounted exactly at `path`.
    pub fn secret_mount(&self, path: &str) -> Result<MountRecord, Error> {
        let path = normalize_path(path)?;
        self.mount_table()
            .by_kind(MountKind::Secret)
            .find(|m| m.path == path)
            .cloned()
            .ok_or(Error::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str) -> MountRecord {
        kv_v2_record(path, "").unwrap()
    }

    #[test]
    fn routes_to_the_longest_prefix() {
        let table = MountTable::build(vec![
            record("secret/"),
            record("secret/team/"),
            record("kv/"),
        ]);
        let (m, rest) = table.route("secret/team/data/x").unwrap();
        assert_eq!(m.record.path, "secret/team/");
        assert_eq!(rest, "data/x");
        let (m, rest) = table.route("secret/data/x").unwrap();
        assert_eq!(m.record.path, "secret/");
        assert_eq!(rest, "data/x");
        assert!(table.route("secrets/data/x").is_none());
        assert!(table.route("secret").is_none());
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(normalize_path("/secret/").unwrap(), "secret/");
        assert_eq!(normalize_path("a/b").unwrap(), "a/b/");
        assert!(normalize_path("//").is_err());
    }
}
