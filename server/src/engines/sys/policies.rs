//! `sys/policies/acl/*`, the legacy `sys/policy/*`, and
//! `sys/capabilities{,-self,-accessor}`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value, json};

use crate::auth::token;
use crate::core::{Core, Error, Fields, Operation, Response};
use crate::engines::BackendRequest;

/// `sys/policies/acl[/:name]` (`legacy = false`) or `sys/policy[/:name]`.
pub(super) async fn handle(
    core: &Core,
    req: &BackendRequest<'_>,
    name: Option<&str>,
    legacy: bool,
) -> Result<Response, Error> {
    use Operation::*;
    if let Some(name) = name {
        canonical(name)?;
    }
    match (name, req.operation) {
        (None, List) | (None, Read) if legacy || req.operation == List => {
            let names = core.policy_names().await?;
            let mut data = Map::new();
            data.insert("keys".into(), json!(names));
            if legacy {
                data.insert("policies".into(), json!(names));
            }
            Ok(Response {
                data: Some(data),
                ..Response::empty()
            })
        }
        (Some(name), Read) => {
            let record = core.read_policy(name).await?.ok_or(Error::NotFound)?;
            let text_key = if legacy { "rules" } else { "policy" };
            let mut data = Map::new();
            data.insert("name".into(), record.name.into());
            data.insert(text_key.into(), record.policy.into());
            data.insert("version".into(), record.version.into());
            Ok(Response {
                data: Some(data),
                ..Response::empty()
            })
        }
        (Some(name), Write) => {
            let mut fields = Fields::new(req.data);
            let text = match fields.string("policy")? {
                Some(text) => Some(text),
                None if legacy => fields.string("rules")?,
                None => None,
            };
            let text =
                text.ok_or_else(|| Error::invalid("'policy' parameter not supplied or empty"))?;
            core.write_policy(name, &decode_policy(&text)).await?;
            Ok(Response::empty())
        }
        (Some(name), Delete) => {
            core.delete_policy(name).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// A policy name in a path must be written as it is stored (lower case,
/// no surrounding spaces): the ACL was checked on the path as written, so
/// `sys/policies/acl/ADMIN` must not act on `admin`, which a policy may
/// deny. Vault folds the case instead.
fn canonical(name: &str) -> Result<(), Error> {
    let folded = crate::policy::normalize_name(name).map_err(Error::InvalidRequest)?;
    if folded != name {
        return Err(Error::invalid(format!(
            "policy names are lower case without spaces: use {folded:?}"
        )));
    }
    Ok(())
}

/// Vault accepts a policy document base64-encoded too.
fn decode_policy(text: &str) -> String {
    BASE64
        .decode(text.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .unwrap_or_else(|| text.to_owned())
}

/// Whether the policy named in a `sys/policies/acl/:name` write exists,
/// for create-versus-update.
pub(super) async fn exists(core: &Core, name: &str) -> Result<Option<bool>, Error> {
    Ok(Some(core.read_policy(name).await?.is_some()))
}

/// Which token `sys/capabilities*` asks about.
pub(super) enum Subject {
    /// The caller itself.
    Caller,
    /// A token given in the body (`token`).
    Token,
    /// A token given by its accessor (`accessor`).
    Accessor,
}

/// `{"<path>": [caps], ..., "capabilities": [caps of a single path]}`.
pub(super) async fn capabilities(
    core: &Core,
    req: &BackendRequest<'_>,
    subject: Subject,
) -> Result<Response, Error> {
    if req.operation != Operation::Write {
        return Err(Error::UnsupportedOperation);
    }
    let mut fields = Fields::new(req.data);
    let record = match subject {
        Subject::Caller => req.token.record.clone(),
        Subject::Token => {
            let value = fields
                .string("token")?
                .ok_or_else(|| Error::invalid("missing token"))?;
            let client = crate::core::ClientToken::new(value);
            let entry = token::lookup(core.storage(), core.barrier(), &client)
                .await?
                .ok_or_else(|| Error::invalid("invalid token"))?;
            entry.record
        }
        Subject::Accessor => {
            let accessor = fields
                .string("accessor")?
                .ok_or_else(|| Error::invalid("missing accessor"))?;
            crate::auth::token::by_accessor(core.storage(), &accessor)
                .await?
                .ok_or_else(|| Error::invalid("invalid accessor"))?
                .record
        }
    };
    let mut paths = fields.string_list("paths")?.unwrap_or_default();
    if let Some(path) = fields.string("path")? {
        paths.push(path);
    }
    if paths.is_empty() {
        return Err(Error::invalid("paths must be supplied"));
    }
    let acl = core.acl_for(&record.policies).await?;
    let mut data = Map::new();
    for path in &paths {
        let path = path.trim_start_matches('/');
        let names: Vec<&str> = if acl.is_root() {
            vec!["root"]
        } else {
            acl.capabilities(path, false).names()
        };
        data.insert(path.to_owned(), json!(names));
    }
    if let [only] = paths.as_slice() {
        let single = data
            .get(only.trim_start_matches('/'))
            .cloned()
            .unwrap_or(Value::Null);
        data.insert("capabilities".into(), single);
    }
    Ok(Response {
        data: Some(data),
        ..Response::empty()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_may_come_base64_encoded() {
        let text = "path \"a\" { capabilities = [\"read\"] }";
        assert_eq!(decode_policy(&BASE64.encode(text)), text);
        assert_eq!(decode_policy(text), text);
    }
}
