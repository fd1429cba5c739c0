//! `role/:name`: which service accounts may log in, and what their tokens
//! may do.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::Refusal;
use super::claims::ServiceAccount;
use crate::auth::method::TokenSettings;
use crate::core::{Error, Fields};

const NAMES: &str = "bound_service_account_names";
const NAMESPACES: &str = "bound_service_account_namespaces";

pub const ALIAS_UID: &str = "serviceaccount_uid";
pub const ALIAS_NAME: &str = "serviceaccount_name";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Role {
    pub bound_service_account_names: Vec<String>,
    pub bound_service_account_namespaces: Vec<String>,
    /// When set, the JWT's `aud` must contain it and TokenReview is asked
    /// for it.
    pub audience: String,
    pub alias_name_source: String,
    #[serde(flatten)]
    pub token: TokenSettings,
}

impl Role {
    /// Applies a write over the current role (`None` for a new one), as
    /// Vault does: fields left out keep their values. Answers the warnings.
    pub fn update(
        current: Option<Role>,
        data: &Map<String, Value>,
    ) -> Result<(Role, Vec<String>), Error> {
        let mut role = current.unwrap_or_else(|| Role {
            alias_name_source: ALIAS_UID.to_owned(),
            ..Role::default()
        });
        let mut fields = Fields::new(data);
        let _ = fields.string("name")?;
        if let Some(names) = fields.string_list(NAMES)? {
            role.bound_service_account_names = names;
        }
        if let Some(namespaces) = fields.string_list(NAMESPACES)? {
            role.bound_service_account_namespaces = namespaces;
        }
        if let Some(audience) = fields.string("audience")? {
            role.audience = audience;
        }
        if let Some(source) = fields.string("alias_name_source")? {
            if source != ALIAS_UID && source != ALIAS_NAME {
                return Err(Error::invalid(format!(
                    "alias_name_source must be {ALIAS_UID:?} or {ALIAS_NAME:?}, not {source:?}"
                )));
            }
            role.alias_name_source = source;
        }
        // Accepted empty, as clients such as Terraform send it; a selector
        // would need the cluster's namespace labels.
        if fields
            .string("bound_service_account_namespace_selector")?
            .is_some_and(|s| !s.is_empty())
        {
            return Err(Error::invalid(
                "bound_service_account_namespace_selector is not supported by secretd; \
                 list the namespaces (globs allowed) in bound_service_account_namespaces",
            ));
        }
        role.token.update(&mut fields)?;
        fields.refuse_unrecognized()?;
        check_bounds(NAMES, &role.bound_service_account_names)?;
        check_bounds(NAMESPACES, &role.bound_service_account_namespaces)?;
        let mut warnings = Vec::new();
        if role.audience.is_empty() {
            warnings.push(
                "this role has no audience: a token the cluster issued for any other \
                 service is accepted too; set audience (for example \"secretd\") and \
                 request it in the pod's projected token"
                    .to_owned(),
            );
        }
        Ok((role, warnings))
    }

    /// `GET role/:name`.
    pub fn output(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert(NAMES.into(), json!(self.bound_service_account_names));
        data.insert(
            NAMESPACES.into(),
            json!(self.bound_service_account_namespaces),
        );
        // Shown only when set, as Vault.
        if !self.audience.is_empty() {
            data.insert("audience".into(), json!(self.audience));
        }
        data.insert("alias_name_source".into(), json!(self.alias_name_source));
        self.token.output(&mut data);
        data
    }

    /// Whether the role's bounds admit this account.
    pub fn admits(&self, account: &ServiceAccount) -> Result<(), Refusal> {
        if !matches_any(&self.bound_service_account_names, &account.name) {
            return Err(Refusal::new(format!(
                "service account name not authorized: {:?} is not in {NAMES}",
                account.name
            )));
        }
        if !matches_any(&self.bound_service_account_namespaces, &account.namespace) {
            return Err(Refusal::new(format!(
                "namespace not authorized: {:?} is not in {NAMESPACES}",
                account.namespace
            )));
        }
        Ok(())
    }

    /// The entity alias name Vault would give this login.
    pub fn alias_name(&self, account: &ServiceAccount) -> String {
        if self.alias_name_source == ALIAS_NAME {
            format!("{}/{}", account.namespace, account.name)
        } else {
            account.uid.clone()
        }
    }
}

fn check_bounds(name: &str, list: &[String]) -> Result<(), Error> {
    if list.is_empty() {
        return Err(Error::invalid(format!("{name:?} can not be empty")));
    }
    if list.len() > 1 && list.iter().any(|s| s == "*") {
        return Err(Error::invalid(format!(
            "{name:?} can not mix \"*\" with values"
        )));
    }
    if list.iter().any(String::is_empty) {
        return Err(Error::invalid(format!("{name:?} has an empty entry")));
    }
    Ok(())
}

fn matches_any(patterns: &[String], value: &str) -> bool {
    patterns.iter().any(|p| glob_match(p, value))
}

/// `*` matches any run of characters (none included); everything else is
/// literal. As Vault's `StrListContainsGlob`.
pub fn glob_match(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: an exact match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// A role name as Vault allows them: letters, digits, `_`, `-` and `.`,
/// starting and ending with a letter, digit or `_`.
pub fn valid_name(name: &str) -> bool {
    let edge = |c: char| c.is_ascii_alphanumeric() || c == '_';
    !name.is_empty()
        && name.len() <= 128
        && name.starts_with(edge)
        && name.ends_with(edge)
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_vaults() {
        for (p, v, want) in [
            ("*", "anything", true),
            ("*", "", true),
            ("app", "app", true),
            ("app", "app2", false),
            ("app-*", "app-web", true),
            ("app-*", "app-", true),
            ("app-*", "ap", false),
            ("*-web", "prod-web", true),
            ("*-web", "prod-web2", false),
            ("team-*-prod", "team-a-prod", true),
            ("team-*-prod", "team-prod", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxcyyb", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob_match(p, v), want, "{p:?} ~ {v:?}");
        }
    }

    #[test]
    fn role_names_are_checked() {
        for ok in ["dev", "team_a", "web-1.prod", "_x"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "-x", "x-", "a/b", "a b", "é"] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
