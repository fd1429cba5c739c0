//! What every auth method shares: the `token_*` settings of its roles and
//! configs, and the token core issues for a successful login.

use std::collections::BTreeMap;

use secretd_client::wire;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::token::{generate_accessor, generate_token};
use super::token_store::auth_object;
use super::ttl::{self, TtlRules};
use crate::barrier::RecordName;
use crate::core::{Core, Error, Fields, Login, LoginTerms};
use crate::policy::{DEFAULT_POLICY, ROOT_POLICY, normalize_name};
use crate::storage::{MountRecord, TokenRecord};
use crate::time::{self as clock, now_nanos};

/// The `token_*` fields of a role (kubernetes) or a config (ldap), with
/// Vault's legacy aliases `policies`, `ttl`, `max_ttl` and `period`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct TokenSettings {
    pub token_ttl: u64,
    pub token_max_ttl: u64,
    pub token_policies: Vec<String>,
    pub token_explicit_max_ttl: u64,
    pub token_no_default_policy: bool,
    pub token_num_uses: u64,
    pub token_period: u64,
    /// `default` or `service`: secretd issues service tokens only.
    pub token_type: String,
}

impl TokenSettings {
    /// Reads the token fields a write carries over the current values.
    pub fn update(&mut self, fields: &mut Fields<'_>) -> Result<(), Error> {
        // The legacy name counts only where the new one is absent, as Vault.
        let mut duration = |new: &'static str, old: &'static str| -> Result<Option<u64>, Error> {
            let legacy = fields.duration(old)?;
            Ok(fields.duration(new)?.or(legacy))
        };
        if let Some(v) = duration("token_ttl", "ttl")? {
            self.token_ttl = v;
        }
        if let Some(v) = duration("token_max_ttl", "max_ttl")? {
            self.token_max_ttl = v;
        }
        if let Some(v) = duration("token_period", "period")? {
            self.token_period = v;
        }
        if let Some(v) = fields.duration("token_explicit_max_ttl")? {
            self.token_explicit_max_ttl = v;
        }
        let legacy = fields.string_list("policies")?;
        if let Some(list) = fields.string_list("token_policies")?.or(legacy) {
            self.token_policies = policy_names(&list)?;
        }
        if let Some(v) = fields.bool("token_no_default_policy")? {
            self.token_no_default_policy = v;
        }
        if let Some(v) = fields.u64("token_num_uses")? {
            if i64::try_from(v).is_err() {
                return Err(Error::invalid("token_num_uses is too large"));
            }
            self.token_num_uses = v;
        }
        if let Some(list) = fields.string_list("token_bound_cidrs")?
            && !list.is_empty()
        {
            return Err(Error::invalid(
                "token_bound_cidrs is not supported by secretd yet; leave it empty",
            ));
        }
        // OpenBao's: bind a token to the address that logged in.
        if fields.bool("token_strictly_bind_ip")? == Some(true) {
            return Err(Error::invalid(
                "token_strictly_bind_ip is not supported by secretd yet; leave it false",
            ));
        }
        if let Some(kind) = fields.string("token_type")? {
            match kind.as_str() {
                "" | "default" | "service" | "default-service" => {
                    self.token_type = if kind.is_empty() {
                        "default".into()
                    } else {
                        kind
                    };
                }
                other => {
                    return Err(Error::invalid(format!(
                        "token_type {other:?} is not supported by secretd; only service tokens exist"
                    )));
                }
            }
        }
        if self.token_max_ttl > 0 && self.token_ttl > self.token_max_ttl {
            return Err(Error::invalid(
                "\"token_ttl\" value must be less than \"token_max_ttl\" value",
            ));
        }
        Ok(())
    }

    /// The token fields of a read, as Vault shows them (seconds).
    pub fn output(&self, data: &mut Map<String, Value>) {
        let kind = if self.token_type.is_empty() {
            "default"
        } else {
            &self.token_type
        };
        data.insert("token_ttl".into(), self.token_ttl.into());
        data.insert("token_max_ttl".into(), self.token_max_ttl.into());
        data.insert("token_policies".into(), self.token_policies.clone().into());
        data.insert("token_bound_cidrs".into(), Value::Array(Vec::new()));
        data.insert(
            "token_explicit_max_ttl".into(),
            self.token_explicit_max_ttl.into(),
        );
        data.insert(
            "token_no_default_policy".into(),
            self.token_no_default_policy.into(),
        );
        data.insert("token_num_uses".into(), self.token_num_uses.into());
        data.insert("token_period".into(), self.token_period.into());
        data.insert("token_type".into(), kind.into());
    }

    /// The terms of a login under these settings.
    pub fn terms(&self) -> LoginTerms {
        LoginTerms {
            ttl: self.token_ttl,
            max_ttl: self.token_max_ttl,
            explicit_max_ttl: self.token_explicit_max_ttl,
            period: self.token_period,
            num_uses: self.token_num_uses,
            no_default_policy: self.token_no_default_policy,
        }
    }
}

/// Policy names as stored: canonical (lower case, trimmed).
pub fn policy_names(list: &[String]) -> Result<Vec<String>, Error> {
    list.iter()
        .map(|p| normalize_name(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::InvalidRequest)
}

/// The final policy set of a login: canonical, sorted, `default` added
/// unless refused. No auth method may hand out `root`.
pub fn login_policies(policies: &[String], no_default: bool) -> Result<Vec<String>, Error> {
    let mut policies = policy_names(policies)?;
    if policies.iter().any(|p| p == ROOT_POLICY) {
        return Err(Error::invalid("auth methods cannot create root tokens"));
    }
    if !no_default {
        policies.push(DEFAULT_POLICY.to_owned());
    }
    policies.sort();
    policies.dedup();
    Ok(policies)
}

fn internal_name(accessor: &str) -> RecordName {
    RecordName::new("token_internal").part(accessor)
}

/// Issues the token of a successful login at `path` of `mount`: an orphan
/// with the login's policies, metadata and terms, under the mount's TTLs.
/// Returns the `auth` object and any TTL warnings.
pub async fn issue_token(
    core: &Core,
    mount: &MountRecord,
    path: &str,
    login: Login,
) -> Result<(wire::Auth, Vec<String>), Error> {
    let policies = login_policies(&login.policies, login.terms.no_default_policy)?;
    let (default_ttl, max_ttl) = crate::core::mounts::lease_ttls(mount);
    let now = now_nanos();
    let terms = &login.terms;
    let ttl = ttl::calculate(&TtlRules {
        period: terms.period,
        backend_ttl: terms.ttl,
        backend_max_ttl: terms.max_ttl,
        explicit_max_ttl: terms.explicit_max_ttl,
        mount_default_ttl: default_ttl,
        mount_max_ttl: max_ttl,
        start: now,
        now,
        ..TtlRules::default()
    })
    .map_err(Error::InvalidRequest)?;
    let value = generate_token()?;
    let accessor = generate_accessor()?;
    let internal = match &login.internal {
        Some(secret) => Some(
            core.barrier()
                .seal_value(&internal_name(&accessor), secret)?,
        ),
        None => None,
    };
    let meta: BTreeMap<String, String> = login.metadata;
    let record = TokenRecord {
        hash: core.barrier().token_hash(&value)?,
        accessor,
        parent: None,
        policies,
        meta: serde_json::to_string(&meta).map_err(Error::internal)?,
        display_name: login.display_name,
        num_uses: terms.num_uses,
        created_at: now,
        expire_at: Some(clock::add_seconds(now, ttl.seconds)),
        creation_ttl: ttl.seconds,
        explicit_max_ttl: terms.explicit_max_ttl,
        period: terms.period,
        renewable: true,
        orphan: true,
        token_type: "service".to_owned(),
        path: path.to_owned(),
        last_renewal: None,
        auth_mount: Some(mount.uuid.clone()),
        internal,
    };
    core.storage().create_token(&record).await?;
    Ok((
        auth_object(&record, value, ttl.seconds, &meta),
        ttl.warnings,
    ))
}

/// What a login kept on its token, opened for the renewal.
pub async fn open_internal(
    core: &Core,
    token: &TokenRecord,
) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, Error> {
    match &token.internal {
        Some(blob) => Ok(Some(
            core.barrier()
                .open_value(&internal_name(&token.accessor), blob)
                .await?,
        )),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn new_names_win_over_legacy_ones() {
        let data =
            fields(json!({"ttl": "1h", "token_ttl": "30m", "policies": "a,B", "max_ttl": 7200}));
        let mut s = TokenSettings::default();
        s.update(&mut Fields::new(&data)).unwrap();
        assert_eq!(s.token_ttl, 1800);
        assert_eq!(s.token_max_ttl, 7200);
        assert_eq!(s.token_policies, vec!["a", "b"]);
        let mut out = Map::new();
        s.output(&mut out);
        assert_eq!(out["token_ttl"], 1800);
        assert_eq!(out["token_type"], "default");
        assert_eq!(out["token_bound_cidrs"], json!([]));
    }

    #[test]
    fn settings_refuse_what_secretd_cannot_honour() {
        for bad in [
            json!({"token_type": "batch"}),
            json!({"token_bound_cidrs": ["10.0.0.0/8"]}),
            json!({"token_ttl": "2h", "token_max_ttl": "1h"}),
            json!({"token_num_uses": -1}),
            json!({"token_policies": ["Has Space"]}),
        ] {
            let data = fields(bad.clone());
            let mut s = TokenSettings::default();
            assert!(s.update(&mut Fields::new(&data)).is_err(), "{bad}");
        }
    }

    #[test]
    fn logins_get_default_but_never_root() {
        assert_eq!(
            login_policies(&["dev".into(), "dev".into()], false).unwrap(),
            vec!["default", "dev"]
        );
        assert_eq!(login_policies(&["dev".into()], true).unwrap(), vec!["dev"]);
        assert!(login_policies(&["root".into()], false).is_err());
    }
}
