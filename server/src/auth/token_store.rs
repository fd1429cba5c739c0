//! `auth/token/*`: creating, looking up, renewing and revoking tokens.
//!
//! Revoking a token revokes the tree below it; the storage layer does that
//! in bounded batches and returns once every token of the tree is refused.
//! Options that widen what a token can do (no parent, a period, a chosen
//! id, policies the caller does not have) need root or `sudo`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use secretd_client::wire;
use serde_json::Value;

use super::method::open_internal;
use super::token::{self, TokenEntry, generate_accessor, generate_token};
use super::ttl::{self, TtlRules};
use crate::core::{ClientToken, Core, Error, Fields, LoginTerms, Operation, Response};
use crate::engines::{Backend, BackendRequest, RenewLogin, matches_any};
use crate::policy::{Capabilities, DEFAULT_POLICY, ROOT_POLICY, normalize_name};
use crate::storage::{MountRecord, StorageError, TokenRecord};
use crate::time::{self as clock, now_nanos};

/// Root-protected token paths.
const SUDO_PATHS: &[&str] = &["revoke-orphan*", "accessors*"];

pub struct TokenBackend;

#[async_trait]
impl Backend for TokenBackend {
    async fn handle(&self, core: &Core, req: &BackendRequest<'_>) -> Result<Response, Error> {
        use Operation::*;
        let tokens = Tokens { core, req };
        match (req.path, req.operation) {
            ("create", Write) => tokens.create(false, "auth/token/create").await,
            ("create-orphan", Write) => tokens.create(true, "auth/token/create-orphan").await,
            ("lookup-self", Read | Write) => {
                let id = req
                    .request
                    .token
                    .as_ref()
                    .map(|t| t.expose())
                    .unwrap_or_default();
                Ok(Response::data(req.token.lookup_data(id, now_nanos())))
            }
            ("lookup", Read | Write) => {
                let (value, entry) = tokens.token_from_body().await?;
                Ok(Response::data(entry.lookup_data(&value, now_nanos())))
            }
            ("lookup-accessor", Read | Write) => {
                let entry = tokens.token_from_accessor().await?;
                Ok(Response::data(entry.lookup_data("", now_nanos())))
            }
            ("renew-self", Write) => {
                let id = req
                    .request
                    .token
                    .as_ref()
                    .map(|t| t.expose())
                    .unwrap_or_default();
                tokens.renew(req.token, id).await
            }
            ("renew", Write) => {
                let (value, entry) = tokens.token_from_body().await?;
                tokens.renew(&entry, &value).await
            }
            ("renew-accessor", Write) => {
                let entry = tokens.token_from_accessor().await?;
                tokens.renew(&entry, "").await
            }
            ("revoke-self", Write) => {
                core.storage()
                    .revoke_token(&req.token.record.hash, false)
                    .await?;
                Ok(Response::empty())
            }
            ("revoke", Write) => {
                if let Some(entry) = tokens.optional_token_from_body().await? {
                    core.storage()
                        .revoke_token(&entry.record.hash, false)
                        .await?;
                }
                Ok(Response::empty())
            }
            ("revoke-orphan", Write) => {
                if let Some(entry) = tokens.optional_token_from_body().await? {
                    core.storage()
                        .revoke_token(&entry.record.hash, true)
                        .await?;
                }
                Ok(Response::empty())
            }
            ("revoke-accessor", Write) => {
                let accessor = required(req, "accessor")?;
                match token::by_accessor(core.storage(), &accessor).await? {
                    Some(entry) => {
                        core.storage()
                            .revoke_token(&entry.record.hash, false)
                            .await?;
                        Ok(Response::empty())
                    }
                    None => Ok(Response::empty().with_warning("No token found with this accessor")),
                }
            }
            ("accessors/", List) => {
                let keys = core.storage().token_accessors().await?;
                if keys.is_empty() {
                    return Err(Error::NotFound);
                }
                Ok(Response::data(wire::KeyList { keys }))
            }
            (
                "create" | "create-orphan" | "lookup-self" | "lookup" | "lookup-accessor" | "renew"
                | "renew-self" | "renew-accessor" | "revoke" | "revoke-self" | "revoke-orphan"
                | "revoke-accessor" | "accessors/",
                _,
            ) => Err(Error::UnsupportedOperation),
            _ => Err(Error::UnsupportedPath),
        }
    }

    fn requires_sudo(&self, path: &str) -> bool {
        matches_any(path, SUDO_PATHS)
    }
}

fn required(req: &BackendRequest<'_>, name: &'static str) -> Result<String, Error> {
    Fields::new(req.data)
        .string(name)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::invalid(format!("missing {name}")))
}

struct Tokens<'a> {
    core: &'a Core,
    req: &'a BackendRequest<'a>,
}

impl Tokens<'_> {
    /// Whether the caller may use root-only options on this path.
    fn privileged(&self) -> bool {
        let path = &self.req.request.path;
        self.req.acl.is_root()
            || self
                .req
                .acl
                .capabilities(path, false)
                .contains(Capabilities::SUDO)
    }

    /// The token named by `token` in the body; Vault answers an unknown one
    /// with 403 "bad token".
    async fn token_from_body(&self) -> Result<(String, TokenEntry), Error> {
        let value = required(self.req, "token")?;
        let entry = token::lookup(
            self.core.storage(),
            self.core.barrier(),
            &ClientToken::new(value.clone()),
        )
        .await?
        .ok_or_else(|| Error::Forbidden("bad token".to_owned()))?;
        Ok((value, entry))
    }

    async fn optional_token_from_body(&self) -> Result<Option<TokenEntry>, Error> {
        let value = required(self.req, "token")?;
        token::lookup(
            self.core.storage(),
            self.core.barrier(),
            &ClientToken::new(value),
        )
        .await
    }

    async fn token_from_accessor(&self) -> Result<TokenEntry, Error> {
        let accessor = required(self.req, "accessor")?;
        token::by_accessor(self.core.storage(), &accessor)
            .await?
            .ok_or_else(|| Error::invalid("invalid accessor"))
    }

    /// The `auth/token/` mount's default and max lease TTLs.
    fn mount_ttls(&self) -> (u64, u64) {
        crate::core::mounts::lease_ttls(self.req.mount)
    }

    async fn create(&self, orphan_endpoint: bool, path: &str) -> Result<Response, Error> {
        let mut fields = Fields::new(self.req.data);
        let privileged = self.privileged();
        let parent = &self.req.token.record;
        let mut warnings = Vec::new();

        let kind = fields
            .string("type")?
            .unwrap_or_else(|| "service".to_owned());
        if kind != "service" && kind != "default" && kind != "default-service" {
            return Err(Error::invalid(format!(
                "token type {kind:?} is not supported by secretd; only service tokens exist"
            )));
        }
        if fields.string("role_name")?.is_some() {
            return Err(Error::invalid("token roles are not supported by secretd"));
        }
        // The create-orphan endpoint is governed by its ACL alone; asking
        // for `no_parent` on create needs root or sudo, as in Vault.
        let no_parent = fields.bool("no_parent")?.unwrap_or(false);
        let orphan = orphan_endpoint || no_parent;
        if no_parent && !orphan_endpoint && !privileged {
            return Err(Error::invalid(
                "root or sudo privileges required to create orphan token",
            ));
        }
        if parent.num_uses > 0 {
            return Err(Error::invalid(
                "a token with a use limit cannot create child tokens",
            ));
        }
        let period = fields.duration("period")?.unwrap_or(0);
        if period > 0 && !privileged {
            return Err(Error::invalid(
                "root or sudo privileges required to create periodic token",
            ));
        }
        let custom_id = fields.string("id")?.filter(|id| !id.is_empty());
        if let Some(id) = &custom_id {
            if !self.req.acl.is_root() {
                return Err(Error::invalid(
                    "root privileges required to specify token id",
                ));
            }
            check_custom_id(id)?;
        }
        let ttl_asked = fields.duration("ttl")?.unwrap_or(0);
        let explicit_max_ttl = fields.duration("explicit_max_ttl")?.unwrap_or(0);
        let num_uses = match fields.raw("num_uses") {
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| n < 0) => {
                return Err(Error::invalid("number of uses cannot be negative"));
            }
            _ => fields.u64("num_uses")?.unwrap_or(0),
        };
        if i64::try_from(num_uses).is_err() {
            return Err(Error::invalid("num_uses is too large"));
        }
        let renewable = fields.bool("renewable")?.unwrap_or(true);
        let meta = fields.string_map("meta")?.unwrap_or_default();
        let display_name = match fields.string("display_name")?.filter(|n| !n.is_empty()) {
            Some(name) => format!("token-{}", sanitize_display_name(&name)),
            None => "token".to_owned(),
        };
        let no_default = fields.bool("no_default_policy")?.unwrap_or(false);
        let asked: Option<Vec<String>> = fields
            .string_list("policies")?
            .map(|list| {
                list.iter()
                    .map(|p| normalize_name(p))
                    .collect::<Result<_, _>>()
            })
            .transpose()
            .map_err(Error::InvalidRequest)?;

        let policies = self
            .child_policies(asked, no_default, privileged, &mut warnings)
            .await?;
        let is_root = policies.iter().any(|p| p == ROOT_POLICY);
        let now = now_nanos();
        let (default_ttl, max_ttl) = self.mount_ttls();
        let ttl = if is_root && ttl_asked == 0 && period == 0 && explicit_max_ttl == 0 {
            // A root token asked for without a TTL does not expire, but
            // only a root token that does not expire either may make one.
            if parent.expire_at.is_some() {
                return Err(Error::invalid(
                    "expiring root tokens cannot create non-expiring root tokens",
                ));
            }
            0
        } else {
            let computed = ttl::calculate(&TtlRules {
                increment: ttl_asked,
                period,
                explicit_max_ttl,
                mount_default_ttl: default_ttl,
                mount_max_ttl: max_ttl,
                start: now,
                now,
                ..TtlRules::default()
            })
            .map_err(Error::InvalidRequest)?;
            warnings.extend(computed.warnings);
            computed.seconds
        };
        let value = match custom_id {
            Some(id) => id,
            None => generate_token()?,
        };
        let record = TokenRecord {
            hash: self.core.barrier().token_hash(&value)?,
            accessor: generate_accessor()?,
            parent: (!orphan).then(|| parent.hash.clone()),
            policies: policies.clone(),
            meta: serde_json::to_string(&meta).map_err(Error::internal)?,
            display_name,
            num_uses,
            created_at: now,
            expire_at: (ttl > 0).then(|| clock::add_seconds(now, ttl)),
            creation_ttl: ttl,
            explicit_max_ttl,
            period,
            // A token that does not expire has nothing to renew.
            renewable: renewable && ttl > 0,
            orphan,
            token_type: "service".to_owned(),
            path: path.to_owned(),
            last_renewal: None,
            auth_mount: None,
            internal: None,
        };
        match self.core.storage().create_token(&record).await {
            Ok(()) => {}
            Err(StorageError::ParentRevoked) => return Err(Error::PermissionDenied),
            Err(StorageError::Conflict(_)) => {
                return Err(Error::invalid("a token with this id already exists"));
            }
            Err(err) => return Err(err.into()),
        }
        if let Some(warning) = fields.unrecognized_warning() {
            warnings.push(warning);
        }
        Ok(Response {
            auth: Some(auth_object(&record, value, ttl, &meta)),
            warnings,
            ..Response::empty()
        })
    }

    /// A child's policies: as asked (or the parent's), a subset of the
    /// parent's unless privileged, `default` added unless refused, and just
    /// `root` when root is among them.
    async fn child_policies(
        &self,
        asked: Option<Vec<String>>,
        no_default: bool,
        privileged: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Vec<String>, Error> {
        let parent = &self.req.token.record.policies;
        let has = |name: &str| parent.iter().any(|p| p == name);
        let parent_is_root = has(ROOT_POLICY);
        let mut policies = match asked {
            Some(asked) if !asked.is_empty() => asked,
            _ => parent.clone(),
        };
        if policies.iter().any(|p| p == ROOT_POLICY) {
            // Not even sudo makes a root token: only root does.
            if !parent_is_root {
                return Err(Error::invalid(
                    "root tokens may not be created without parent token being root",
                ));
            }
            return Ok(vec![ROOT_POLICY.to_owned()]);
        }
        // `default` comes with a child only where its parent could give it.
        let unchecked = privileged || parent_is_root;
        if !no_default && (unchecked || has(DEFAULT_POLICY)) {
            policies.push(DEFAULT_POLICY.to_owned());
        }
        policies.sort();
        policies.dedup();
        if !unchecked && policies.iter().any(|p| !has(p)) {
            return Err(Error::invalid("child policies must be subset of parent"));
        }
        if no_default {
            policies.retain(|p| p != DEFAULT_POLICY);
        }
        for name in &policies {
            if !self.core.policy_exists(name).await? {
                warnings.push(format!("Policy {name:?} does not exist"));
            }
        }
        Ok(policies)
    }

    /// Asks the auth method that issued `record` whether the login still
    /// holds, and on what terms; answers its mount too.
    async fn login_terms(
        &self,
        record: &TokenRecord,
        mount_uuid: &str,
    ) -> Result<(MountRecord, LoginTerms), Error> {
        let Some(mount) = self.core.mount_table().by_uuid(mount_uuid) else {
            // Disabling the method revoked the token; this is a race.
            return Err(Error::Forbidden("bad token".to_owned()));
        };
        let internal = open_internal(self.core, record).await?;
        let terms = mount
            .backend
            .renew_login(
                self.core,
                &RenewLogin {
                    mount: &mount.record,
                    token: record,
                    internal: internal.as_deref().map(Vec::as_slice),
                },
            )
            .await?;
        Ok((mount.record.clone(), terms))
    }

    /// Renews `entry`: the TTL rules from now, capped by its maxima.
    async fn renew(&self, entry: &TokenEntry, value: &str) -> Result<Response, Error> {
        let record = &entry.record;
        if !record.renewable {
            return Err(Error::invalid("lease is not renewable"));
        }
        let increment = Fields::new(self.req.data)
            .duration("increment")?
            .unwrap_or(0);
        let now = now_nanos();
        // Without an increment, the token gets its last TTL again (Vault
        // renews with the lease's TTL, which each renewal updates).
        let last_ttl = match record.expire_at {
            Some(expire_at) => {
                clock::seconds_between(record.last_renewal.unwrap_or(record.created_at), expire_at)
            }
            None => record.creation_ttl,
        };
        let mut rules = TtlRules {
            increment,
            backend_ttl: last_ttl,
            period: record.period,
            explicit_max_ttl: record.explicit_max_ttl,
            start: record.created_at,
            now,
            ..TtlRules::default()
        };
        match &record.auth_mount {
            // A login's token: its auth method checks the login still
            // holds and says the terms, under its own mount's TTLs.
            Some(uuid) => {
                let (mount, terms) = self.login_terms(record, uuid).await?;
                rules.backend_ttl = terms.ttl;
                rules.backend_max_ttl = terms.max_ttl;
                rules.period = terms.period;
                (rules.mount_default_ttl, rules.mount_max_ttl) =
                    crate::core::mounts::lease_ttls(&mount);
            }
            None => {
                (rules.mount_default_ttl, rules.mount_max_ttl) = self.mount_ttls();
            }
        }
        let computed = ttl::calculate(&rules).map_err(Error::InvalidRequest)?;
        let expire_at = clock::add_seconds(now, computed.seconds);
        if !self
            .core
            .storage()
            .renew_token(&record.hash, Some(expire_at), now)
            .await?
        {
            return Err(Error::Forbidden("bad token".to_owned()));
        }
        let meta: BTreeMap<String, String> = serde_json::from_str(&record.meta).unwrap_or_default();
        Ok(Response {
            auth: Some(auth_object(
                record,
                value.to_owned(),
                computed.seconds,
                &meta,
            )),
            warnings: computed.warnings,
            ..Response::empty()
        })
    }
}

/// The `auth` object of a creation or renewal.
pub(crate) fn auth_object(
    record: &TokenRecord,
    client_token: String,
    ttl: u64,
    meta: &BTreeMap<String, String>,
) -> wire::Auth {
    wire::Auth {
        client_token,
        accessor: record.accessor.clone(),
        policies: record.policies.clone(),
        token_policies: record.policies.clone(),
        metadata: (!meta.is_empty()).then(|| meta.clone()),
        lease_duration: ttl,
        renewable: record.renewable,
        entity_id: String::new(),
        token_type: record.token_type.clone(),
        orphan: record.orphan,
        mfa_requirement: None,
        num_uses: record.num_uses,
    }
}

/// Vault's rules for a chosen token id.
fn check_custom_id(id: &str) -> Result<(), Error> {
    if id.contains('.') {
        return Err(Error::invalid("token IDs can not contain a '.'"));
    }
    if id.len() > 256 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            "a token ID must be at most 256 characters, without spaces",
        ));
    }
    Ok(())
}

/// Keeps a display name printable and short.
fn sanitize_display_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(128).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_ids_follow_vaults_rules() {
        assert!(check_custom_id("my-token").is_ok());
        assert!(check_custom_id("hvs.x").is_err());
        assert!(check_custom_id("has space").is_err());
    }

    #[test]
    fn auth_objects_carry_no_empty_metadata() {
        let record = token::root_token_record(vec![1], "acc".into(), 0);
        let a = auth_object(&record, "hvs.x".into(), 60, &BTreeMap::new());
        assert_eq!(a.metadata, None);
        assert_eq!(a.lease_duration, 60);
        let printed = format!("{a:?}");
        assert!(!printed.contains("hvs.x"));
    }
}
