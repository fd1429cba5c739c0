//! The access-control part of the `sys/` API, on [`Sys`]: ACL policies,
//! auth methods and audit devices.

use std::collections::BTreeMap;

use reqwest::Method;

use crate::Error;
use crate::client::Body;
use crate::sys::{Sys, mount_path};
use crate::wire::{
    AclPolicy, AclPolicyWrite, AuditDevice, AuditDeviceInput, MountInput, MountOutput,
};

impl Sys {
    /// The names of the ACL policies, the built-in `default` and `root`
    /// included.
    pub async fn policies(&self) -> Result<Vec<String>, Error> {
        self.client.list_keys("sys/policies/acl/").await
    }

    /// One ACL policy as written. A missing policy is a 404.
    pub async fn read_policy(&self, name: &str) -> Result<AclPolicy, Error> {
        self.client.get_data(&policy_path(name)?, &[]).await
    }

    /// Creates or replaces an ACL policy; `policy` is the document in HCL
    /// or JSON. The server refuses a document it cannot parse (400).
    pub async fn write_policy(&self, name: &str, policy: &str) -> Result<(), Error> {
        let body = AclPolicyWrite {
            policy: policy.to_owned(),
        };
        self.client
            .call(Method::PUT, &policy_path(name)?, Body::json(&body)?)
            .await
    }

    /// Deletes an ACL policy; tokens that have it lose what it granted.
    /// `default` and `root` cannot be deleted.
    pub async fn delete_policy(&self, name: &str) -> Result<(), Error> {
        self.client
            .call(Method::DELETE, &policy_path(name)?, Body::Empty)
            .await
    }

    /// The auth methods, keyed by path below `auth/` with a trailing slash
    /// (`"token/"`).
    pub async fn auth_methods(&self) -> Result<BTreeMap<String, MountOutput>, Error> {
        self.client.get_data("sys/auth", &[]).await
    }

    /// Enables an auth method at `auth/{path}` (`input.mount_type` is its
    /// type, e.g. `kubernetes`). Needs `sudo`.
    pub async fn enable_auth_method(&self, path: &str, input: &MountInput) -> Result<(), Error> {
        let api_path = format!("sys/auth/{}", mount_path(path)?);
        self.client
            .call(Method::POST, &api_path, Body::json(input)?)
            .await
    }

    /// Disables the auth method at `auth/{path}`, revoking the tokens it
    /// issued. Needs `sudo`.
    pub async fn disable_auth_method(&self, path: &str) -> Result<(), Error> {
        let api_path = format!("sys/auth/{}", mount_path(path)?);
        self.client
            .call(Method::DELETE, &api_path, Body::Empty)
            .await
    }

    /// The audit devices, keyed by path with a trailing slash (`"file/"`).
    pub async fn audit_devices(&self) -> Result<BTreeMap<String, AuditDevice>, Error> {
        self.client.get_data("sys/audit", &[]).await
    }

    /// Enables an audit device at `path` (by convention its type,
    /// `file`). Needs `sudo`.
    pub async fn enable_audit_device(
        &self,
        path: &str,
        input: &AuditDeviceInput,
    ) -> Result<(), Error> {
        let api_path = format!("sys/audit/{}", mount_path(path)?);
        self.client
            .call(Method::PUT, &api_path, Body::json(input)?)
            .await
    }

    /// Disables the audit device at `path`. Needs `sudo`.
    pub async fn disable_audit_device(&self, path: &str) -> Result<(), Error> {
        let api_path = format!("sys/audit/{}", mount_path(path)?);
        self.client
            .call(Method::DELETE, &api_path, Body::Empty)
            .await
    }
}

/// `sys/policies/acl/{name}`; a name must be one path segment.
fn policy_path(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.contains('/') {
        return Err(Error::InvalidInput(format!(
            "{name:?} is not a policy name (it must be non-empty, without '/')"
        )));
    }
    Ok(format!("sys/policies/acl/{name}"))
}
