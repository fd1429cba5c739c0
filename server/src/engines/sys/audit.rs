//! `sys/audit`, `sys/audit/:path` and `sys/audit-hash/:path`.

use secretd_client::wire::AuditDevice;
use serde_json::{Map, Value};

use super::data;
use crate::core::mounts::normalize_path;
use crate::core::{Core, Error, Fields, Operation, Response, to_object};
use crate::engines::BackendRequest;

/// `sys/audit` (the list) and `sys/audit/:path` (enable, disable).
pub async fn devices(
    core: &Core,
    req: &BackendRequest<'_>,
    path: Option<&str>,
) -> Result<Response, Error> {
    match (path, req.operation) {
        (None, Operation::Read) => {
            let mut list = Map::new();
            for device in core.audit().devices().iter() {
                let record = &device.record;
                // Stored options are a map of strings (see `FileOptions`).
                let output = AuditDevice {
                    device_type: record.device_type.clone(),
                    description: record.description.clone(),
                    options: serde_json::from_str(&record.options).unwrap_or_default(),
                    local: record.local,
                    path: record.path.clone(),
                };
                list.insert(record.path.clone(), Value::Object(to_object(output)));
            }
            Ok(data(list))
        }
        (Some(path), Operation::Write) => {
            let warnings = core.enable_audit(path, req.data).await?;
            Ok(Response {
                warnings,
                ..Response::empty()
            })
        }
        (Some(path), Operation::Delete) => {
            core.disable_audit(path).await?;
            Ok(Response::empty())
        }
        _ => Err(Error::UnsupportedOperation),
    }
}

/// `sys/audit-hash/:path {"input"}`: what the device writes for `input`,
/// so an operator can search the log for a known value.
pub fn hash(core: &Core, req: &BackendRequest<'_>, path: &str) -> Result<Response, Error> {
    if req.operation != Operation::Write {
        return Err(Error::UnsupportedOperation);
    }
    let path = normalize_path(path)?;
    let mut fields = Fields::new(req.data);
    let input = fields
        .string("input")?
        .ok_or_else(|| Error::invalid("input is required"))?;
    let hash = core
        .audit()
        .hash(&path, &input)
        .ok_or_else(|| Error::invalid(format!("unknown audit backend {path:?}")))?;
    Ok(data(Map::from_iter([(
        "hash".to_owned(),
        Value::String(hash),
    )])))
}
