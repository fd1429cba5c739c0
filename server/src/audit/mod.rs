//! Audit devices: every request and response, hashed, before the answer
//! leaves.
//!
//! The broker holds the enabled devices of this node. A request is carried
//! out only once at least one device has written its request entry, and
//! answered only once one has written the response entry; if none can,
//! the request fails with 500 and the reason is logged and shown in
//! `sys/health`. Each device's HMAC key is sealed in the barrier
//! (`audit_devices` table), so hashes are stable across restarts and
//! nodes, and `sys/audit-hash` can tell an operator what to grep for.

mod format;
mod sink;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use self::format::Event;
use self::format::Formatter;
use self::sink::Sink;
pub use self::sink::Target;
use crate::barrier::{Key, RecordName};
use crate::core::{Error, Response};
use crate::metrics::AuditFailures;
use crate::storage::AuditDeviceRecord;

/// How long a request waits for a device before counting it as failed.
pub const DEVICE_TIMEOUT: Duration = Duration::from_secs(5);

/// The name a device's HMAC key is sealed under.
pub fn key_name(uuid: &str) -> RecordName {
    RecordName::new("audit-hmac-key").part(uuid)
}

/// A `file` device's options, as `sys/audit` takes and shows them: a map
/// of strings (Vault's `map[string]string`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOptions {
    pub file_path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac_accessor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

impl FileOptions {
    /// Reads and checks the `options` of `sys/audit/:path`.
    pub fn parse(options: &Map<String, Value>) -> Result<FileOptions, String> {
        let mut strings = Map::new();
        for (name, value) in options {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Bool(b) => b.to_string(),
                Value::Number(n) => n.to_string(),
                _ => return Err(format!("option {name:?} must be a string")),
            };
            strings.insert(name.clone(), Value::String(text));
        }
        let known = [
            "file_path",
            "path",
            "mode",
            "log_raw",
            "hmac_accessor",
            "format",
        ];
        if let Some(unknown) = strings.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(format!(
                "option {unknown:?} is not supported by secretd's file device \
                 (supported: file_path, mode, log_raw, hmac_accessor, format)"
            ));
        }
        // Vault accepts `path` as an old name of `file_path`.
        if let Some(path) = strings.remove("path")
            && !strings.contains_key("file_path")
        {
            strings.insert("file_path".into(), path);
        }
        let options: FileOptions =
            serde_json::from_value(Value::Object(strings)).map_err(|_| {
                "file_path is required: a file's absolute path, \"stdout\" or \"discard\""
                    .to_owned()
            })?;
        options.target()?;
        options.flags()?;
        if let Some(format) = &options.format
            && format != "json"
        {
            return Err(format!("format {format:?} is not supported; only \"json\""));
        }
        Ok(options)
    }

    pub fn target(&self) -> Result<Target, String> {
        match self.file_path.as_str() {
            "stdout" => Ok(Target::Stdout),
            "discard" => Ok(Target::Discard),
            path if path.starts_with('/') => {
                let mode = match self.mode.as_deref() {
                    None => Some(0o600),
                    Some(text) => match u32::from_str_radix(text, 8) {
                        Ok(0) => None,
                        Ok(mode) if mode & !0o777 != 0 => {
                            return Err(format!(
                                "mode {text:?} is not an octal file mode such as \"0600\""
                            ));
                        }
                        // An audit log is neither a program nor everyone's to write.
                        Ok(mode) if mode & 0o113 != 0 => {
                            return Err(format!(
                                "mode {text:?} makes the log executable or writable by others; \
                                 use a mode such as \"0600\" or \"0640\""
                            ));
                        }
                        Ok(mode) => Some(mode),
                        Err(_) => {
                            return Err(format!(
                                "mode {text:?} is not an octal file mode such as \"0600\""
                            ));
                        }
                    },
                };
                Ok(Target::File {
                    path: path.into(),
                    mode,
                })
            }
            other => Err(format!(
                "file_path {other:?} must be an absolute path, \"stdout\" or \"discard\""
            )),
        }
    }

    /// `(log_raw, hmac_accessor)`.
    fn flags(&self) -> Result<(bool, bool), String> {
        let flag = |name: &str, value: &Option<String>, default: bool| match value.as_deref() {
            None => Ok(default),
            Some("true" | "1") => Ok(true),
            Some("false" | "0") => Ok(false),
            Some(other) => Err(format!("{name} must be true or false, not {other:?}")),
        };
        Ok((
            flag("log_raw", &self.log_raw, false)?,
            flag("hmac_accessor", &self.hmac_accessor, true)?,
        ))
    }
}

/// One enabled device on this node. A device that cannot run (its key
/// does not open, its stored options do not parse) stays in the set as
/// broken: it fails every write, so the broker fails closed rather than
/// auditing less than the operator enabled.
pub struct Device {
    pub record: AuditDeviceRecord,
    state: Result<Running, String>,
}

struct Running {
    key: Key,
    log_raw: bool,
    hmac_accessor: bool,
    sink: Sink,
}

impl Device {
    /// Starts the writer of a stored device, given its opened key or why
    /// the key could not be opened.
    pub fn start(record: AuditDeviceRecord, key: Result<Key, String>) -> Device {
        let state = key.and_then(|key| {
            let options: FileOptions = serde_json::from_str(&record.options)
                .map_err(|e| format!("stored options do not parse: {e}"))?;
            let (log_raw, hmac_accessor) = options.flags()?;
            let sink = Sink::start(&record.path, options.target()?)
                .map_err(|e| format!("could not start the writer: {e}"))?;
            Ok(Running {
                key,
                log_raw,
                hmac_accessor,
                sink,
            })
        });
        if let Err(reason) = &state {
            tracing::error!(device = %record.path, %reason, "audit device cannot run");
        }
        Device { record, state }
    }

    fn formatter(running: &Running) -> Formatter<'_> {
        Formatter {
            key: &running.key,
            log_raw: running.log_raw,
            hmac_accessor: running.hmac_accessor,
        }
    }
}

/// The devices of this node and their health.
#[derive(Default)]
pub struct Broker {
    devices: ArcSwap<Vec<Arc<Device>>>,
    /// The last failure of each device whose last write failed.
    failures: Mutex<BTreeMap<String, String>>,
    /// Every failed write, counted for the metrics.
    failed_writes: AuditFailures,
}

impl Broker {
    /// A broker that counts its devices' failed writes in `failed_writes`.
    pub fn new(failed_writes: AuditFailures) -> Broker {
        Broker {
            failed_writes,
            ..Broker::default()
        }
    }

    pub fn devices(&self) -> Arc<Vec<Arc<Device>>> {
        self.devices.load_full()
    }

    /// Whether a device with this uuid is running, so a reload keeps it
    /// (its file and the head of its chain) rather than starting anew.
    pub fn running(&self, uuid: &str) -> Option<Arc<Device>> {
        self.devices()
            .iter()
            .find(|d| d.record.uuid == uuid)
            .cloned()
    }

    /// Replaces the device set; devices left out stop after their queue.
    pub fn install(&self, devices: Vec<Arc<Device>>) {
        let paths: Vec<String> = devices.iter().map(|d| d.record.path.clone()).collect();
        {
            let mut failures = self.failures_mut();
            failures.retain(|path, _| paths.contains(path));
            for device in &devices {
                if let Err(reason) = &device.state {
                    failures.insert(device.record.path.clone(), reason.clone());
                }
            }
        }
        self.devices.store(Arc::new(devices));
    }

    /// Drops every device (sealing).
    pub fn clear(&self) {
        self.install(Vec::new());
    }

    /// Reopens every file (SIGHUP, after log rotation).
    pub fn reopen(&self) {
        for device in self.devices().iter() {
            if let Ok(running) = &device.state {
                running.sink.reopen();
            }
        }
    }

    /// The hash a device writes for `input`.
    pub fn hash(&self, path: &str, input: &str) -> Option<String> {
        let devices = self.devices();
        let device = devices.iter().find(|d| d.record.path == path)?;
        let running = device.state.as_ref().ok()?;
        Some(Device::formatter(running).hash(input))
    }

    /// Devices whose last write failed, with the reason.
    pub fn failures(&self) -> BTreeMap<String, String> {
        self.failures_mut().clone()
    }

    fn failures_mut(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the request entry; `error` when the request is refused.
    pub async fn log_request(&self, event: &Event<'_>, error: Option<&Error>) -> Result<(), Error> {
        self.log(|f| f.request(event, error)).await
    }

    /// Writes the response entry.
    pub async fn log_response(
        &self,
        event: &Event<'_>,
        outcome: Result<&Response, &Error>,
    ) -> Result<(), Error> {
        self.log(|f| f.response(event, outcome)).await
    }

    async fn log(&self, entry: impl Fn(&Formatter<'_>) -> Vec<u8>) -> Result<(), Error> {
        let devices = self.devices();
        if devices.is_empty() {
            return Ok(());
        }
        let writes = devices.iter().map(|device| {
            let line = device
                .state
                .as_ref()
                .map(|running| (running, entry(&Device::formatter(running))));
            async move {
                let result = match line {
                    Ok((running, line)) => running.sink.write(line, DEVICE_TIMEOUT).await,
                    Err(reason) => Err(reason.clone()),
                };
                (device, result)
            }
        });
        let results = futures::future::join_all(writes).await;
        let mut written = false;
        for (device, result) in results {
            if result.is_err() {
                self.failed_writes.record(&device.record.path);
            }
            self.note(&device.record.path, result.as_ref().err());
            written |= result.is_ok();
        }
        if written {
            Ok(())
        } else {
            Err(Error::AuditFailed)
        }
    }

    /// Records a device's success or failure, logging changes only: a
    /// broken disk must not flood the server log with one line per request.
    fn note(&self, path: &str, error: Option<&String>) {
        let mut failures = self.failures_mut();
        match error {
            Some(error) => {
                if failures.get(path) != Some(error) {
                    tracing::error!(device = path, error = %error, "audit device cannot write");
                    failures.insert(path.to_owned(), error.clone());
                }
            }
            None => {
                if failures.remove(path).is_some() {
                    tracing::info!(device = path, "audit device writes again");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(value: Value) -> Result<FileOptions, String> {
        let Value::Object(map) = value else {
            unreachable!()
        };
        FileOptions::parse(&map)
    }

    #[test]
    fn file_options_are_checked() {
        let ok = options(json!({"file_path": "/var/log/a.log", "mode": "0640", "log_raw": true}))
            .unwrap();
        assert_eq!(ok.log_raw.as_deref(), Some("true"));
        assert_eq!(
            ok.target().unwrap(),
            Target::File {
                path: "/var/log/a.log".into(),
                mode: Some(0o640)
            }
        );
        assert_eq!(
            options(json!({"path": "stdout"})).unwrap().target(),
            Ok(Target::Stdout)
        );
        assert_eq!(
            options(json!({"file_path": "/x", "mode": "0000"}))
                .unwrap()
                .target(),
            Ok(Target::File {
                path: "/x".into(),
                mode: None
            }),
            "mode 0000 leaves the file's mode alone, as in Vault"
        );
        for (bad, message) in [
            (json!({}), "file_path is required"),
            (json!({"file_path": "relative.log"}), "absolute path"),
            (json!({"file_path": "/x", "mode": "rw"}), "octal"),
            (json!({"file_path": "/x", "mode": "7777"}), "octal"),
            (json!({"file_path": "/x", "mode": "0755"}), "executable"),
            (
                json!({"file_path": "/x", "mode": "0666"}),
                "writable by others",
            ),
            (
                json!({"file_path": "/x", "log_raw": "maybe"}),
                "true or false",
            ),
            (json!({"file_path": "/x", "prefix": "p"}), "not supported"),
            (
                json!({"file_path": "/x", "format": "jsonx"}),
                "only \"json\"",
            ),
            (json!({"file_path": ["/x"]}), "must be a string"),
        ] {
            let err = options(bad.clone()).unwrap_err();
            assert!(err.contains(message), "{bad}: {err}");
        }
    }
}
