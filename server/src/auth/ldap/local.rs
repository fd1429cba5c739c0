//! Local groups and users (`groups/:name`, `users/:name`): policies for
//! LDAP group names, and extra groups and policies for one user.
//!
//! Names are lower-cased when written unless `case_sensitive_names` is
//! set, and looked up the same way, so `Devs` in the directory matches a
//! local group written as `devs`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::core::{Error, Fields};
use crate::policy::normalize_name;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GroupEntry {
    pub policies: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct UserEntry {
    pub groups: Vec<String>,
    pub policies: Vec<String>,
}

/// Policy names from a write: normalised, sorted, without repeats.
pub fn policies(fields: &mut Fields<'_>) -> Result<Vec<String>, Error> {
    let mut out = fields
        .string_list("policies")?
        .unwrap_or_default()
        .iter()
        .map(|p| normalize_name(p).map_err(Error::invalid))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// Group names from a user write, canonical, sorted, without repeats.
pub fn groups(fields: &mut Fields<'_>, case_sensitive: bool) -> Result<Vec<String>, Error> {
    let mut out: Vec<String> = fields
        .string_list("groups")?
        .unwrap_or_default()
        .into_iter()
        .map(|g| if case_sensitive { g } else { g.to_lowercase() })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Checks a local group or user name from the path.
pub fn check_name(name: &str, what: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::invalid(format!("{what} name is missing")));
    }
    if name.contains('/') {
        return Err(Error::invalid(format!("{what} names cannot contain '/'")));
    }
    Ok(())
}

impl GroupEntry {
    pub fn output(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("policies".into(), self.policies.clone().into());
        data
    }
}

impl UserEntry {
    /// `groups` is a comma-separated string, `policies` a list, as Vault.
    pub fn output(&self) -> Map<String, Value> {
        let mut data = Map::new();
        data.insert("groups".into(), self.groups.join(",").into());
        data.insert("policies".into(), self.policies.clone().into());
        data
    }
}
