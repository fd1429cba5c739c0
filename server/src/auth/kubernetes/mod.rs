//! The Kubernetes auth method (`auth/kubernetes/`): a pod logs in with its
//! service-account JWT and gets a token with its role's policies.
//!
//! Paths: `config` (read, write), `role/:name` (read, write, delete),
//! `role/` (list), and `login {role, jwt}`, the one path callable without
//! a token. How a JWT is checked, by TokenReview or locally against the
//! issuer's keys, is the config's choice (`config.rs`) and the flow is in
//! `login.rs`.
//!
//! A missing or unknown role is a 400; a login the cluster could not be
//! asked about (its API server or the issuer's keys unreachable, timing
//! out or failing) is a 502; any other failed login is a 403 "permission
//! denied". The reason goes to the server log only, never with the JWT.
//! Unknown parameters are refused (400) rather than ignored, as Vault does
//! with a warning: a misspelt bound or audience would otherwise leave a
//! role looser than its author meant, in silence.
//!
//! The backend keeps no state of its own: records are sealed entries of
//! the mount (`config`, `role/<name>`), read on every request, so every
//! node sees a change at once. Only fetched JWKS and HTTPS clients are
//! cached (`jwks.rs`, `https.rs`).

mod claims;
mod config;
mod https;
mod jwks;
mod keys;
mod login;
mod review;
mod role;

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde_json::{Map, Value};

use self::claims::Jwt;
use self::config::Config;
use self::role::Role;
use crate::core::{Core, Error, Fields, Login, LoginTerms, Operation, Response};
use crate::engines::{Backend, BackendRequest, LoginRequest, RenewLogin};
use crate::storage::MountRecord;

const CONFIG: &str = "config";
const ROLE_PREFIX: &str = "role/";

pub struct KubernetesBackend;

/// Why a login was refused: for the log, never for the caller.
#[derive(Debug)]
pub struct Refusal {
    reason: String,
    /// The cluster could not be asked: no fault of the caller's.
    unavailable: bool,
}

impl Refusal {
    pub fn new(reason: impl Into<String>) -> Refusal {
        Refusal {
            reason: reason.into(),
            unavailable: false,
        }
    }

    /// The API server did not answer (in time), or failed: the login may
    /// work when tried again.
    pub fn unavailable(reason: impl Into<String>) -> Refusal {
        Refusal {
            reason: reason.into(),
            unavailable: true,
        }
    }

    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

/// What the caller of a login is told when the cluster could not be asked.
const UNAVAILABLE: &str = "the Kubernetes API server or the token issuer's keys \
    could not be reached to check the token (unreachable, timed out or failing); \
    try again later";

#[async_trait]
impl Backend for KubernetesBackend {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
        use Operation::*;
        let mount = req.mount;
        match (req.path, req.operation) {
            (CONFIG, Read) => {
                let config: Config = core
                    .read_entry(mount, CONFIG)
                    .await?
                    .ok_or(Error::NotFound)?;
                Ok(Response {
                    data: Some(config.output()),
                    ..Response::default()
                })
            }
            (CONFIG, Write) => {
                let current: Option<Config> = core.read_entry(mount, CONFIG).await?;
                let (config, warnings) = Config::from_write(current, req.data)?;
                core.write_entry(mount, CONFIG, &config).await?;
                Ok(with_warnings(Response::empty(), warnings))
            }
            ("role" | "role/", List) => {
                let keys = core.list_entries(mount, ROLE_PREFIX).await?;
                if keys.is_empty() {
                    return Err(Error::NotFound);
                }
                Ok(Response::data(secretd_client::wire::KeyList { keys }))
            }
            (path, operation) if path.starts_with(ROLE_PREFIX) => {
                let name = &path[ROLE_PREFIX.len()..];
                if !role::valid_name(name) {
                    return Err(Error::invalid(format!(
                        "invalid role name {name:?}: use letters, digits, '_', '-' and '.'"
                    )));
                }
                self.role(core, mount, name, operation, req.data).await
            }
            (CONFIG | "login", _) => Err(Error::UnsupportedOperation),
            _ => Err(Error::UnsupportedPath),
        }
    }

    fn is_login_path(&self, path: &str) -> bool {
        path == "login"
    }

    async fn login(&self, core: &Core, req: &LoginRequest<'_>) -> Result<Response, Error> {
        if req.operation != Operation::Write {
            return Err(Error::UnsupportedOperation);
        }
        let mut fields = Fields::new(req.data);
        let role_name = fields
            .string("role")?
            .filter(|r| !r.is_empty())
            .ok_or_else(|| Error::invalid("missing role"))?;
        let jwt = fields
            .string("jwt")?
            .filter(|j| !j.is_empty())
            .ok_or_else(|| Error::invalid("missing jwt"))?;
        fields.refuse_unrecognized()?;
        let unknown_role = || Error::invalid(format!("invalid role name \"{role_name}\""));
        if !role::valid_name(&role_name) {
            return Err(unknown_role());
        }
        let role: Role = core
            .read_entry(req.mount, &role_path(&role_name))
            .await?
            .ok_or_else(unknown_role)?;
        let refused = |refusal: Refusal| {
            tracing::warn!(
                auth.mount = %req.mount.path,
                auth.role = %role_name,
                request.id = %req.request.id,
                reason = %refusal,
                "kubernetes login refused"
            );
            if refusal.is_unavailable() {
                Error::Upstream(UNAVAILABLE.to_owned())
            } else {
                Error::PermissionDenied
            }
        };
        let jwt = Jwt::new(jwt).map_err(refused)?;
        let config: Config = match core.read_entry(req.mount, CONFIG).await? {
            Some(config) => config,
            None => return Err(refused(Refusal::new("the auth method is not configured"))),
        };
        let account = login::authenticate(&req.mount.uuid, &config, &role, &jwt)
            .await
            .map_err(refused)?;
        tracing::debug!(
            auth.mount = %req.mount.path,
            auth.role = %role_name,
            auth.alias = %role.alias_name(&account),
            k8s.namespace = %account.namespace,
            k8s.service_account = %account.name,
            "kubernetes login"
        );
        let metadata = BTreeMap::from([
            ("role".to_owned(), role_name.clone()),
            ("service_account_name".to_owned(), account.name.clone()),
            (
                "service_account_namespace".to_owned(),
                account.namespace.clone(),
            ),
            (
                "service_account_secret_name".to_owned(),
                account.secret_name.clone(),
            ),
            ("service_account_uid".to_owned(), account.uid.clone()),
        ]);
        Ok(Response::login(Login {
            policies: role.token.token_policies.clone(),
            metadata,
            display_name: format!("kubernetes-{}-{}", account.namespace, account.name),
            terms: role.token.terms(),
            internal: None,
        }))
    }

    /// As Vault: the role must still exist, and its current TTLs apply;
    /// the cluster is not asked again.
    async fn renew_login(&self, core: &Core, req: &RenewLogin<'_>) -> Result<LoginTerms, Error> {
        let meta: BTreeMap<String, String> =
            serde_json::from_str(&req.token.meta).unwrap_or_default();
        let name = meta.get("role").cloned().unwrap_or_default();
        let role: Option<Role> = if role::valid_name(&name) {
            core.read_entry(req.mount, &role_path(&name)).await?
        } else {
            None
        };
        match role {
            Some(role) => Ok(role.token.terms()),
            None => Err(Error::Forbidden(format!(
                "role {name:?} no longer exists; log in again with another role"
            ))),
        }
    }
}

impl KubernetesBackend {
    async fn role(
        &self,
        core: &Core,
        mount: &MountRecord,
        name: &str,
        operation: Operation,
        data: &Map<String, Value>,
    ) -> Result<Response, Error> {
        let path = role_path(name);
        match operation {
            Operation::Read => {
                let role: Role = core
                    .read_entry(mount, &path)
                    .await?
                    .ok_or(Error::NotFound)?;
                Ok(Response {
                    data: Some(role.output()),
                    ..Response::default()
                })
            }
            Operation::Write => {
                let current: Option<Role> = core.read_entry(mount, &path).await?;
                let (role, warnings) = Role::update(current, data)?;
                core.write_entry(mount, &path, &role).await?;
                Ok(with_warnings(Response::empty(), warnings))
            }
            Operation::Delete => {
                core.delete_entry(mount, &path).await?;
                Ok(Response::empty())
            }
            Operation::Patch | Operation::List => Err(Error::UnsupportedOperation),
        }
    }
}

fn role_path(name: &str) -> String {
    format!("{ROLE_PREFIX}{name}")
}

fn with_warnings(mut response: Response, warnings: Vec<String>) -> Response {
    response.warnings.extend(warnings);
    response
}

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
