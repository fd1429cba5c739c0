//! Configuration: a TOML file, overridden by `SECRETD_*` environment
//! variables, validated once at start into [`Settings`].
//!
//! Unknown keys and bad values stop start-up with a message that names
//! them. Secret values (the storage URL, which may hold a password, and
//! the static seal key) can come from files (`*_file`), so Kubernetes
//! Secret volumes work without putting secrets in the environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::barrier::{KEY_LEN, Key};
use crate::core::SealSettings;
use crate::http::{JsonLimits, Limits, Rate, RateLimitSettings};
use crate::storage::StorageOptions;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub listener: ListenerConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub seal: SealConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    #[serde(default = "default_address")]
    pub address: String,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    /// PEM CA certificates: when set, every client must present a
    /// certificate issued by one of them (mutual TLS).
    pub tls_client_ca_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_disable: bool,
    /// Where clients reach this node, as `sys/ha-status` lists it
    /// (`https://secretd-0.secretd:8200`); by default the listener's.
    pub api_addr: Option<String>,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            api_addr: None,
            address: default_address(),
            tls_cert_file: None,
            tls_key_file: None,
            tls_client_ca_file: None,
            tls_disable: false,
        }
    }
}

fn default_address() -> String {
    "127.0.0.1:8200".to_owned()
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub url: Option<String>,
    pub url_file: Option<PathBuf>,
    pub max_connections: Option<u32>,
    /// Seconds to wait for a database connection.
    pub connect_timeout: Option<u64>,
}

impl std::fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageConfig")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("url_file", &self.url_file)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SealKind {
    #[default]
    Shamir,
    Static,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealConfig {
    #[serde(rename = "type", default)]
    pub seal_type: SealKind,
    /// A file holding the 32-byte key: raw, 64 hex digits, or base64.
    pub key_file: Option<PathBuf>,
    /// The name of an environment variable holding the key (hex or base64).
    pub key_env: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default = "default_level")]
    pub level: String,
    #[serde(default)]
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: default_level(),
            format: LogFormat::default(),
        }
    }
}

fn default_level() -> String {
    "info".to_owned()
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    pub max_request_size: Option<usize>,
    pub max_json_depth: Option<usize>,
    pub max_json_object_entry_count: Option<usize>,
    pub max_json_array_element_count: Option<usize>,
    /// Requests per second from one client address, and the burst.
    pub rate_per_address: Option<u32>,
    pub burst_per_address: Option<u32>,
    /// Requests per second with one token, and the burst.
    pub rate_per_token: Option<u32>,
    pub burst_per_token: Option<u32>,
    /// Login attempts per second from one client address, and the burst.
    pub login_rate_per_address: Option<u32>,
    pub login_burst_per_address: Option<u32>,
}

/// The rate limits: each a rate and a burst, defaults for what is not
/// given; a rate of 0 turns that limit off.
fn rate_settings(
    config: &LimitsConfig,
    defaults: RateLimitSettings,
) -> anyhow::Result<RateLimitSettings> {
    let rate = |name: &str, rate: Option<u32>, burst: Option<u32>, default: Rate| {
        let per_second = rate.unwrap_or(default.per_second);
        let burst = burst.unwrap_or(if rate.is_some() {
            per_second.saturating_mul(2)
        } else {
            default.burst
        });
        if per_second > 0 && burst == 0 {
            bail!("limits: the burst of {name} must be at least 1 (or its rate 0, for no limit)");
        }
        Ok(Rate { per_second, burst })
    };
    Ok(RateLimitSettings {
        per_address: rate(
            "rate_per_address",
            config.rate_per_address,
            config.burst_per_address,
            defaults.per_address,
        )?,
        per_token: rate(
            "rate_per_token",
            config.rate_per_token,
            config.burst_per_token,
            defaults.per_token,
        )?,
        login_per_address: rate(
            "login_rate_per_address",
            config.login_rate_per_address,
            config.login_burst_per_address,
            defaults.login_per_address,
        )?,
    })
}

/// How a config value from the environment is typed.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int,
}

/// Every key an environment variable may override: `SECRETD_<SECTION>_<KEY>`.
const ENV_KEYS: &[(&str, &str, Kind)] = &[
    ("listener", "address", Kind::Str),
    ("listener", "tls_cert_file", Kind::Str),
    ("listener", "tls_key_file", Kind::Str),
    ("listener", "tls_client_ca_file", Kind::Str),
    ("listener", "tls_disable", Kind::Bool),
    ("listener", "api_addr", Kind::Str),
    ("storage", "url", Kind::Str),
    ("storage", "url_file", Kind::Str),
    ("storage", "max_connections", Kind::Int),
    ("storage", "connect_timeout", Kind::Int),
    ("seal", "type", Kind::Str),
    ("seal", "key_file", Kind::Str),
    ("seal", "key_env", Kind::Str),
    ("log", "level", Kind::Str),
    ("log", "format", Kind::Str),
    ("limits", "max_request_size", Kind::Int),
    ("limits", "max_json_depth", Kind::Int),
    ("limits", "max_json_object_entry_count", Kind::Int),
    ("limits", "max_json_array_element_count", Kind::Int),
    ("limits", "rate_per_address", Kind::Int),
    ("limits", "burst_per_address", Kind::Int),
    ("limits", "rate_per_token", Kind::Int),
    ("limits", "burst_per_token", Kind::Int),
    ("limits", "login_rate_per_address", Kind::Int),
    ("limits", "login_burst_per_address", Kind::Int),
];

/// The environment variable that overrides `section.key`.
pub fn env_name(section: &str, key: &str) -> String {
    format!("SECRETD_{}_{}", section.to_uppercase(), key.to_uppercase())
}

/// Reads the file (if any) and applies environment overrides.
pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> anyhow::Result<FileConfig> {
    let mut table = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading the config file {}", path.display()))?;
            text.parse::<toml::Table>()
                .with_context(|| format!("parsing the config file {}", path.display()))?
        }
        None => toml::Table::new(),
    };
    for (section, key, kind) in ENV_KEYS {
        let name = env_name(section, key);
        let Some(raw) = env.get(&name) else { continue };
        let value = match kind {
            Kind::Str => toml::Value::String(raw.clone()),
            Kind::Bool => toml::Value::Boolean(match raw.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => bail!("{name}: expected true or false, got {other:?}"),
            }),
            Kind::Int => toml::Value::Integer(
                raw.trim()
                    .parse()
                    .with_context(|| format!("{name}: expected an integer, got {raw:?}"))?,
            ),
        };
        let entry = table
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            bail!("[{section}] must be a table");
        };
        section_table.insert(key.to_string(), value);
    }
    FileConfig::deserialize(toml::Value::Table(table))
        .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
}

/// TLS certificate and key files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Clients must present a certificate from these CAs.
    pub client_ca: Option<PathBuf>,
}

/// The validated configuration a server runs with.
pub struct Settings {
    pub address: SocketAddr,
    pub api_addr: Option<String>,
    pub tls: Option<TlsFiles>,
    pub storage_url: Zeroizing<String>,
    pub storage: StorageOptions,
    pub seal: SealSettings,
    pub limits: Limits,
    pub log: LogConfig,
}

impl FileConfig {
    /// Checks every value and reads the secrets the config points at.
    pub fn validate(self, env: &HashMap<String, String>) -> anyhow::Result<Settings> {
        let address: SocketAddr = self.listener.address.parse().with_context(|| {
            format!(
                "listener.address: {:?} is not an address like 0.0.0.0:8200",
                self.listener.address
            )
        })?;
        let tls = match (
            self.listener.tls_disable,
            self.listener.tls_cert_file,
            self.listener.tls_key_file,
        ) {
            (true, _, _) => {
                if self.listener.tls_client_ca_file.is_some() {
                    bail!("listener: tls_client_ca_file needs TLS, but tls_disable = true");
                }
                None
            }
            (false, Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca: self.listener.tls_client_ca_file,
            }),
            (false, _, _) => bail!(
                "listener: tls_cert_file and tls_key_file are required; \
                 to serve plain HTTP set tls_disable = true explicitly"
            ),
        };
        let storage_url = match (self.storage.url, self.storage.url_file) {
            (Some(url), None) => Zeroizing::new(url),
            (None, Some(file)) => Zeroizing::new(
                std::fs::read_to_string(&file)
                    .with_context(|| format!("storage.url_file: reading {}", file.display()))?
                    .trim()
                    .to_owned(),
            ),
            (Some(_), Some(_)) => bail!("storage: set url or url_file, not both"),
            (None, None) => bail!(
                "storage.url is required (sqlite:///var/lib/secretd/secretd.db or postgres://...)"
            ),
        };
        if !(storage_url.starts_with("sqlite:")
            || storage_url.starts_with("postgres://")
            || storage_url.starts_with("postgresql://"))
        {
            bail!("storage.url must start with sqlite:// or postgres://");
        }
        let defaults = StorageOptions::default();
        let storage = StorageOptions {
            max_connections: match self.storage.max_connections {
                Some(0) => bail!("storage.max_connections must be at least 1"),
                Some(n) => n,
                None => defaults.max_connections,
            },
            connect_timeout: self
                .storage
                .connect_timeout
                .map_or(defaults.connect_timeout, Duration::from_secs),
        };
        let seal = match self.seal.seal_type {
            SealKind::Shamir => {
                if self.seal.key_file.is_some() || self.seal.key_env.is_some() {
                    bail!("seal: key_file and key_env apply only to type = \"static\"");
                }
                SealSettings::Shamir
            }
            SealKind::Static => SealSettings::Static(read_static_key(&self.seal, env)?),
        };
        let limit_defaults = Limits::default();
        let limits = Limits {
            max_request_size: self
                .limits
                .max_request_size
                .unwrap_or(limit_defaults.max_request_size),
            json: JsonLimits {
                max_depth: self
                    .limits
                    .max_json_depth
                    .unwrap_or(limit_defaults.json.max_depth),
                max_object_entries: self
                    .limits
                    .max_json_object_entry_count
                    .unwrap_or(limit_defaults.json.max_object_entries),
                max_array_elements: self
                    .limits
                    .max_json_array_element_count
                    .unwrap_or(limit_defaults.json.max_array_elements),
            },
            rate: rate_settings(&self.limits, limit_defaults.rate)?,
        };
        if limits.max_request_size < 1024 {
            bail!("limits.max_request_size must be at least 1024 bytes");
        }
        if limits.json.max_depth < 4 {
            bail!("limits.max_json_depth must be at least 4");
        }
        if limits.json.max_object_entries < 64 || limits.json.max_array_elements < 64 {
            bail!(
                "limits.max_json_object_entry_count and max_json_array_element_count \
                 must be at least 64"
            );
        }
        let api_addr = match self.listener.api_addr {
            Some(addr) if !(addr.starts_with("https://") || addr.starts_with("http://")) => {
                bail!(
                    "listener.api_addr: {addr:?} must be a URL like https://secretd-0.secretd:8200"
                )
            }
            other => other,
        };
        Ok(Settings {
            address,
            api_addr,
            tls,
            storage_url,
            storage,
            seal,
            limits,
            log: self.log,
        })
    }
}

/// The static seal key from its file or environment variable.
fn read_static_key(seal: &SealConfig, env: &HashMap<String, String>) -> anyhow::Result<Key> {
    let (raw, origin) = match (&seal.key_file, &seal.key_env) {
        (Some(file), None) => (
            Zeroizing::new(
                std::fs::read(file)
                    .with_context(|| format!("seal.key_file: reading {}", file.display()))?,
            ),
            format!("seal.key_file {}", file.display()),
        ),
        (None, Some(var)) => (
            Zeroizing::new(
                env.get(var)
                    .with_context(|| {
                        format!("seal.key_env: the environment variable {var} is not set")
                    })?
                    .clone()
                    .into_bytes(),
            ),
            format!("seal.key_env {var}"),
        ),
        (Some(_), Some(_)) => bail!("seal: set key_file or key_env, not both"),
        (None, None) => bail!("seal: type = \"static\" needs key_file or key_env"),
    };
    parse_key(&raw).with_context(|| {
        format!("{origin}: the key must be 32 bytes, given raw, as 64 hex digits, or in base64")
    })
}

/// A 32-byte key given raw, as hex, or as base64 (surrounding whitespace
/// ignored for the text forms). Thirty-two bytes of printable text are not
/// taken as a raw key: that is a mistyped text key, not random bytes.
pub fn parse_key(raw: &[u8]) -> anyhow::Result<Key> {
    let looks_like_text = raw
        .iter()
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if raw.len() == KEY_LEN && !looks_like_text {
        return Key::from_slice(raw).map_err(|_| anyhow::anyhow!("bad key"));
    }
    let text = std::str::from_utf8(raw)
        .map_err(|_| anyhow::anyhow!("bad key"))?
        .trim();
    let decoded = Zeroizing::new(
        hex::decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(text))
            .map_err(|_| anyhow::anyhow!("bad key"))?,
    );
    Key::from_slice(&decoded).map_err(|_| anyhow::anyhow!("bad key length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn a_minimal_file_validates() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "c.toml",
            "[listener]\naddress = \"0.0.0.0:8200\"\ntls_disable = true\n[storage]\nurl = \"sqlite:///tmp/x.db\"\n",
        );
        let settings = load(Some(&path), &env(&[]))
            .unwrap()
            .validate(&env(&[]))
            .unwrap();
        assert_eq!(settings.address.port(), 8200);
        assert!(settings.tls.is_none());
        assert!(matches!(settings.seal, SealSettings::Shamir));
    }

    #[test]
    fn unknown_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(&dir, "c.toml", "[listener]\nadress = \"x\"\n");
        let err = load(Some(&path), &env(&[])).unwrap_err().to_string();
        assert!(err.contains("adress"), "{err}");
        let path = write(&dir, "d.toml", "[storag]\nurl = \"x\"\n");
        let err = load(Some(&path), &env(&[])).unwrap_err().to_string();
        assert!(err.contains("storag"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = env(&[
            ("SECRETD_LISTENER_ADDRESS", "nowhere"),
            ("SECRETD_STORAGE_URL", "sqlite:///x"),
        ]);
        let err = load(None, &e)
            .unwrap()
            .validate(&e)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("listener.address"), "{err}");
        let e = env(&[("SECRETD_LISTENER_TLS_DISABLE", "yes")]);
        let err = load(None, &e).unwrap_err().to_string();
        assert!(err.contains("SECRETD_LISTENER_TLS_DISABLE"), "{err}");
        let e = env(&[("SECRETD_SEAL_TYPE", "kms")]);
        let err = load(None, &e).unwrap_err().to_string();
        assert!(err.contains("kms"), "{err}");
        let e = env(&[
            ("SECRETD_STORAGE_URL", "sqlite:///x"),
            ("SECRETD_LISTENER_TLS_DISABLE", "true"),
            ("SECRETD_LISTENER_API_ADDR", "node-1:8200"),
        ]);
        let err = load(None, &e).unwrap().validate(&e).err().unwrap();
        assert!(err.to_string().contains("listener.api_addr"), "{err}");
    }

    #[test]
    fn tls_is_required_unless_disabled_explicitly() {
        let e = env(&[("SECRETD_STORAGE_URL", "sqlite:///x")]);
        let err = load(None, &e)
            .unwrap()
            .validate(&e)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("tls_disable"), "{err}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            &dir,
            "c.toml",
            "[listener]\naddress = \"127.0.0.1:1\"\ntls_disable = true\n[storage]\nurl = \"sqlite:///a.db\"\n",
        );
        let e = env(&[
            ("SECRETD_LISTENER_ADDRESS", "127.0.0.1:2"),
            ("SECRETD_LIMITS_MAX_REQUEST_SIZE", "4096"),
        ]);
        let settings = load(Some(&path), &e).unwrap().validate(&e).unwrap();
        assert_eq!(settings.address.port(), 2);
        assert_eq!(settings.limits.max_request_size, 4096);
    }

    #[test]
    fn every_env_key_is_a_real_config_key() {
        for (section, key, kind) in ENV_KEYS {
            let value = match (*section, *key, kind) {
                (_, "type", _) => "static",
                (_, "format", _) => "json",
                (_, _, Kind::Bool) => "true",
                (_, _, Kind::Int) => "7",
                _ => "x",
            };
            let e = env(&[(env_name(section, key).as_str(), value)]);
            assert!(load(None, &e).is_ok(), "{section}.{key} is not accepted");
        }
    }

    #[test]
    fn secrets_come_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let url = write(&dir, "url", "sqlite:///from-file.db\n");
        let key = write(&dir, "key", &"ab".repeat(32));
        let e = env(&[
            ("SECRETD_LISTENER_TLS_DISABLE", "true"),
            ("SECRETD_STORAGE_URL_FILE", url.to_str().unwrap()),
            ("SECRETD_SEAL_TYPE", "static"),
            ("SECRETD_SEAL_KEY_FILE", key.to_str().unwrap()),
        ]);
        let settings = load(None, &e).unwrap().validate(&e).unwrap();
        assert_eq!(settings.storage_url.as_str(), "sqlite:///from-file.db");
        let SealSettings::Static(k) = settings.seal else {
            panic!("not static")
        };
        assert_eq!(k.expose(), &[0xab; 32]);
    }

    #[test]
    fn static_keys_parse_in_three_forms_and_bad_ones_are_refused() {
        assert_eq!(parse_key(&[0xf7u8; 32]).unwrap().expose(), &[0xf7; 32]);
        assert_eq!(
            parse_key(hex::encode([9u8; 32]).as_bytes())
                .unwrap()
                .expose(),
            &[9; 32]
        );
        let b64 = base64::engine::general_purpose::STANDARD.encode([3u8; 32]);
        assert_eq!(
            parse_key(format!("{b64}\n").as_bytes()).unwrap().expose(),
            &[3; 32]
        );
        assert!(parse_key(b"short").is_err());
        assert!(parse_key(hex::encode([1u8; 16]).as_bytes()).is_err());
    }

    #[test]
    fn key_env_names_a_missing_variable() {
        let e = env(&[
            ("SECRETD_LISTENER_TLS_DISABLE", "true"),
            ("SECRETD_STORAGE_URL", "sqlite:///x"),
            ("SECRETD_SEAL_TYPE", "static"),
            ("SECRETD_SEAL_KEY_ENV", "MY_KEY"),
        ]);
        let err = load(None, &e)
            .unwrap()
            .validate(&e)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("MY_KEY"), "{err}");
    }
}
