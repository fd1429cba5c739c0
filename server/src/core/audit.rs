//! The audit device table: enabling, disabling and loading devices, and
//! the hook through which every request is audited.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::mounts::normalize_path;
use super::{Core, Error, Fields};
use crate::audit::{self, Device, FileOptions};
use crate::barrier::Key;
use crate::storage::{AuditDeviceRecord, StorageError};
use crate::time::now_nanos;

impl Core {
    pub fn audit(&self) -> &audit::Broker {
        &self.audit
    }

    /// Loads the audit devices from storage. Devices already running keep
    /// their writer (and the head of their chain); a device whose key does
    /// not open runs broken, failing its writes, rather than being left out.
    pub async fn reload_audit(&self) -> Result<(), Error> {
        let records = self.storage.audit_devices().await?;
        let mut devices = Vec::with_capacity(records.len());
        for record in records {
            if let Some(running) = self.audit.running(&record.uuid) {
                devices.push(running);
                continue;
            }
            let key = match &record.hmac_key {
                None => Err("its HMAC key is missing from the database".to_owned()),
                Some(sealed) => self
                    .barrier
                    .open_value(&audit::key_name(&record.uuid), sealed)
                    .await
                    .map_err(|e| format!("its HMAC key does not open: {e}"))
                    .and_then(|bytes| Key::from_slice(&bytes).map_err(|e| e.to_string())),
            };
            devices.push(Arc::new(Device::start(record, key)));
        }
        self.audit.install(devices);
        Ok(())
    }

    /// `PUT sys/audit/:path`: checks the options, opens the file once to
    /// prove it can be written, and stores the device with a fresh key.
    /// Returns warnings (unknown fields).
    pub async fn enable_audit(
        &self,
        path: &str,
        data: &Map<String, Value>,
    ) -> Result<Vec<String>, Error> {
        let path = normalize_path(path)?;
        let mut fields = Fields::new(data);
        let device_type = fields.string("type")?.ok_or_else(|| {
            Error::invalid("the audit device type is required (\"type\": \"file\")")
        })?;
        if device_type != "file" {
            return Err(Error::invalid(format!(
                "audit device type {device_type:?} is not supported by secretd; use \"file\" \
                 (with file_path \"stdout\" to send the log to a collector)"
            )));
        }
        let description = fields.string("description")?.unwrap_or_default();
        let local = fields.bool("local")?.unwrap_or(false);
        let options = fields.object("options")?.cloned().unwrap_or_default();
        let warnings = fields.unrecognized_warning().into_iter().collect();
        let options = FileOptions::parse(&options).map_err(Error::InvalidRequest)?;
        // Before the file is touched: a refused enable changes nothing.
        if self
            .storage
            .audit_devices()
            .await?
            .iter()
            .any(|d| d.path == path)
        {
            return Err(Error::invalid("path already in use"));
        }
        let target = options.target().map_err(Error::InvalidRequest)?;
        target.check().map_err(|e| {
            Error::invalid(format!(
                "sys/audit/{path}: cannot open {}: {e}",
                options.file_path
            ))
        })?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let key = Key::generate().map_err(Error::internal)?;
        let hmac_key = self
            .barrier
            .seal_value(&audit::key_name(&uuid), key.expose())?;
        let record = AuditDeviceRecord {
            path: path.clone(),
            uuid,
            device_type,
            description,
            options: serde_json::to_string(&options).map_err(Error::internal)?,
            local,
            hmac_key: Some(hmac_key),
            created_at: now_nanos(),
        };
        match self.storage.create_audit_device(&record).await {
            Err(StorageError::Conflict(_)) => return Err(Error::invalid("path already in use")),
            other => other?,
        }
        tracing::info!(device = %path, file_path = %options.file_path, "enabled an audit device");
        self.reload_audit().await?;
        Ok(warnings)
    }

    /// `DELETE sys/audit/:path`. Its key is shredded: its hashes can no
    /// longer be computed.
    pub async fn disable_audit(&self, path: &str) -> Result<(), Error> {
        let path = normalize_path(path)?;
        if self.storage.delete_audit_device(&path).await? {
            tracing::info!(device = %path, "disabled an audit device");
        }
        self.reload_audit().await
    }
}
