//! `auth/ldap`: people log in with their directory password; their LDAP
//! groups (and local groups and users) map to policies.
//!
//! Paths below the mount, as Vault: `config`, `groups/:name`,
//! `users/:name` (CRUD and LIST) and `login/:username {password}`. The
//! flow against the directory is in `directory`, escaping in `escape`,
//! TLS in `tls`. A login keeps the password on its token, sealed by the
//! barrier, so that renewal can run the whole login again: a user whose
//! password changed, who was removed, or whose groups no longer give the
//! same policies cannot renew.

pub mod config;
pub mod directory;
pub mod escape;
pub mod local;
#[cfg(any(test, feature = "testing"))]
pub mod slapd;
#[cfg(test)]
mod tests;
mod tls;

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use secretd_client::wire;
use serde_json::Value;
use tracing::debug;
use zeroize::Zeroizing;

use self::config::LdapConfig;
use self::directory::DirectoryError;
use self::local::{GroupEntry, UserEntry};
use crate::core::{Core, Error, Fields, Login, LoginTerms, Operation, Response};
use crate::engines::{Backend, BackendRequest, LoginRequest, RenewLogin};
use crate::policy::DEFAULT_POLICY;
use crate::storage::MountRecord;

/// The mount type.
pub const TYPE: &str = "ldap";

pub struct LdapBackend;

const CONFIG: &str = "config";

/// The answer of the directory and local mappings for one user.
struct Checked {
    username: String,
    policies: Vec<String>,
    warnings: Vec<String>,
}

#[async_trait]
impl Backend for LdapBackend {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
        use Operation::*;
        let mount = req.mount;
        match (req.path, req.operation) {
            (CONFIG, Read) => {
                let cfg = load_config(core, mount).await?.unwrap_or_default();
                Ok(Response::data(cfg.output()))
            }
            (CONFIG, Write) => {
                let mut cfg = load_config(core, mount).await?.unwrap_or_default();
                let mut fields = Fields::new(req.data);
                let warnings = cfg.update(&mut fields)?;
                core.write_entry(mount, CONFIG, &cfg).await?;
                let mut resp = Response::empty();
                for w in warnings {
                    resp = resp.with_warning(w);
                }
                Ok(resp)
            }
            ("groups/", List) => list(core, mount, "groups/").await,
            ("users/", List) => list(core, mount, "users/").await,
            (CONFIG | "groups/" | "users/", _) => Err(Error::UnsupportedOperation),
            (path, op) => {
                if let Some(name) = path.strip_prefix("groups/") {
                    self.group(core, req, name, op).await
                } else if let Some(name) = path.strip_prefix("users/") {
                    self.user(core, req, name, op).await
                } else {
                    Err(Error::UnsupportedPath)
                }
            }
        }
    }

    async fn exists(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Option<bool>, Error> {
        let path = if req.path == CONFIG {
            CONFIG.to_owned()
        } else if req.path.starts_with("groups/") || req.path.starts_with("users/") {
            let cfg = load_config(core, req.mount).await?.unwrap_or_default();
            cfg.canonical(req.path)
        } else {
            return Ok(None);
        };
        let found: Option<Value> = core.read_entry(req.mount, &path).await?;
        Ok(Some(found.is_some()))
    }

    fn is_login_path(&self, path: &str) -> bool {
        path.strip_prefix("login/").is_some_and(|u| !u.is_empty())
    }

    async fn login(&self, core: &Core, req: &LoginRequest<'_>) -> Result<Response, Error> {
        if req.operation != Operation::Write {
            return Err(Error::UnsupportedOperation);
        }
        let username = req
            .path
            .strip_prefix("login/")
            .filter(|u| !u.is_empty())
            .ok_or_else(|| Error::invalid("missing username"))?;
        let password = Zeroizing::new(
            Fields::new(req.data)
                .string("password")?
                .unwrap_or_default(),
        );
        let cfg = load_config(core, req.mount)
            .await?
            .ok_or_else(|| Error::invalid("ldap backend not configured"))?;
        let checked = check(core, req.mount, &cfg, username, &password).await?;
        let login = Login {
            policies: checked.policies,
            metadata: BTreeMap::from([("username".to_owned(), checked.username.clone())]),
            display_name: format!("ldap-{}", checked.username),
            terms: cfg.token.terms(),
            internal: Some(Zeroizing::new(password.as_bytes().to_vec())),
        };
        let mut resp = Response::login(login);
        for w in checked.warnings {
            resp = resp.with_warning(w);
        }
        Ok(resp)
    }

    async fn renew_login(&self, core: &Core, req: &RenewLogin<'_>) -> Result<LoginTerms, Error> {
        let password = req
            .internal
            .map(|p| Zeroizing::new(String::from_utf8_lossy(p).into_owned()))
            .ok_or_else(|| {
                Error::invalid("this token carries no password to re-check; log in again")
            })?;
        let meta: BTreeMap<String, String> =
            serde_json::from_str(&req.token.meta).map_err(Error::internal)?;
        let username = meta
            .get("username")
            .ok_or_else(|| Error::invalid("this token names no LDAP user; log in again"))?;
        let cfg = load_config(core, req.mount)
            .await?
            .ok_or_else(|| Error::invalid("ldap backend not configured"))?;
        let checked = check(core, req.mount, &cfg, username, &password).await?;
        if !equivalent_policies(&checked.policies, &req.token.policies) {
            debug!(
                auth.username = %checked.username,
                auth.policies = ?checked.policies,
                token.policies = ?req.token.policies,
                "LDAP renewal refused: the policies have changed"
            );
            return Err(Error::invalid("policies have changed, not renewing"));
        }
        Ok(cfg.token.terms())
    }
}

/// Vault's `EquivalentPolicies`: the same set once `default` is left out
/// of both sides (core may add it after the backend answered).
pub fn equivalent_policies(a: &[String], b: &[String]) -> bool {
    let set = |v: &[String]| -> BTreeSet<String> {
        v.iter()
            .filter(|p| p.as_str() != DEFAULT_POLICY)
            .cloned()
            .collect()
    };
    set(a) == set(b)
}

async fn load_config(core: &Core, mount: &MountRecord) -> Result<Option<LdapConfig>, Error> {
    core.read_entry(mount, CONFIG).await
}

async fn list(core: &Core, mount: &MountRecord, prefix: &str) -> Result<Response, Error> {
    let keys = core.list_entries(mount, prefix).await?;
    if keys.is_empty() {
        return Err(Error::NotFound);
    }
    Ok(Response::data(wire::KeyList { keys }))
}

/// Logs `username` in against the directory and maps what it says to
/// policies: local `users/<u>` groups plus the LDAP groups give the
/// `groups/<g>` policies; with the user's own and `token_policies`.
async fn check(
    core: &Core,
    mount: &MountRecord,
    cfg: &LdapConfig,
    username: &str,
    password: &str,
) -> Result<Checked, Error> {
    if password.is_empty() && cfg.deny_null_bind {
        return Err(Error::invalid(
            "password cannot be of zero length when passwordless binds are being denied",
        ));
    }
    let username = cfg.canonical(username);
    let found = directory::authenticate(cfg, &username, password)
        .await
        .map_err(|err: DirectoryError| Error::invalid(err.to_string()))?;
    let mut warnings = Vec::new();
    if found.groups.is_empty() {
        warnings.push(format!(
            "no LDAP groups found in groupDN {:?}; only policies from locally-defined groups available",
            cfg.groupdn
        ));
    }
    let user: Option<UserEntry> = if username.contains('/') {
        None
    } else {
        core.read_entry(mount, &format!("users/{username}")).await?
    };
    let user = user.unwrap_or_default();
    let wanted: BTreeSet<String> = user
        .groups
        .iter()
        .chain(&found.groups)
        .map(|g| cfg.canonical(g))
        .collect();
    let mut policies: BTreeSet<String> = BTreeSet::new();
    // Read only the local groups that exist: a user may be in thousands
    // of directory groups, a mount has few local ones.
    for name in core.list_entries(mount, "groups/").await? {
        if wanted.contains(&name) {
            let group: Option<GroupEntry> =
                core.read_entry(mount, &format!("groups/{name}")).await?;
            policies.extend(group.unwrap_or_default().policies);
        }
    }
    policies.extend(user.policies);
    policies.extend(cfg.token.token_policies.iter().cloned());
    debug!(
        auth.username = %username,
        ldap.user_dn = %found.user_dn,
        ldap.groups = ?found.groups,
        auth.policies = ?policies,
        "LDAP login checked"
    );
    Ok(Checked {
        username,
        policies: policies.into_iter().collect(),
        warnings,
    })
}

impl LdapBackend {
    async fn group(
        &self,
        core: &Core,
        req: &BackendRequest<'_>,
        name: &str,
        op: Operation,
    ) -> Result<Response, Error> {
        local::check_name(name, "group")?;
        let cfg = load_config(core, req.mount).await?.unwrap_or_default();
        let path = format!("groups/{}", cfg.canonical(name));
        match op {
            Operation::Read => {
                let entry: Option<GroupEntry> = core.read_entry(req.mount, &path).await?;
                entry
                    .map(|e| Response::data(e.output()))
                    .ok_or(Error::NotFound)
            }
            Operation::Write => {
                let mut fields = Fields::new(req.data);
                let entry = GroupEntry {
                    policies: local::policies(&mut fields)?,
                };
                core.write_entry(req.mount, &path, &entry).await?;
                Ok(with_unrecognized(&fields))
            }
            Operation::Delete => {
                core.delete_entry(req.mount, &path).await?;
                Ok(Response::empty())
            }
            _ => Err(Error::UnsupportedOperation),
        }
    }

    async fn user(
        &self,
        core: &Core,
        req: &BackendRequest<'_>,
        name: &str,
        op: Operation,
    ) -> Result<Response, Error> {
        local::check_name(name, "user")?;
        let cfg = load_config(core, req.mount).await?.unwrap_or_default();
        let path = format!("users/{}", cfg.canonical(name));
        match op {
            Operation::Read => {
                let entry: Option<UserEntry> = core.read_entry(req.mount, &path).await?;
                entry
                    .map(|e| Response::data(e.output()))
                    .ok_or(Error::NotFound)
            }
            Operation::Write => {
                let mut fields = Fields::new(req.data);
                let entry = UserEntry {
                    groups: local::groups(&mut fields, cfg.case_sensitive_names)?,
                    policies: local::policies(&mut fields)?,
                };
                core.write_entry(req.mount, &path, &entry).await?;
                Ok(with_unrecognized(&fields))
            }
            Operation::Delete => {
                core.delete_entry(req.mount, &path).await?;
                Ok(Response::empty())
            }
            _ => Err(Error::UnsupportedOperation),
        }
    }
}

fn with_unrecognized(fields: &Fields<'_>) -> Response {
    match fields.unrecognized_warning() {
        Some(w) => Response::empty().with_warning(w),
        None => Response::empty(),
    }
}
