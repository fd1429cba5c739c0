//! The agent's configuration file (TOML). Unknown keys are refused, so a
//! typo fails at start instead of being ignored.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use secretd_client::duration::parse_duration;
use serde::Deserialize;

use crate::inject::AuthSpec;

/// The largest configuration file or template source read.
const MAX_FILE: u64 = 1024 * 1024;

/// `agent.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// The server (else `--address` / SECRETD_ADDR).
    pub address: Option<String>,
    /// CA certificates to trust (else `--ca-cert` / SECRETD_CACERT).
    pub ca_cert: Option<String>,
    /// Where the token and leases are kept for a later agent to continue
    /// (in a memory-backed volume shared by the init container and the
    /// sidecar).
    pub state_file: Option<PathBuf>,
    /// Address of `/healthz`, `/readyz` and `/metrics` (sidecar mode).
    pub listen: Option<SocketAddr>,
    /// How often KV secrets are read again.
    #[serde(default = "default_poll", deserialize_with = "duration")]
    pub kv_poll_interval: Duration,
    /// How long replaced credentials stay valid before their lease is
    /// revoked.
    #[serde(default = "default_grace", deserialize_with = "duration")]
    pub grace: Duration,
    /// How many times to try at start while the server is unreachable.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// On SIGTERM, revoke the leases and the token (sidecar mode).
    #[serde(default)]
    pub revoke_on_exit: bool,
    /// Where a failure's one-line reason goes, if the file exists.
    #[serde(default = "default_termination_log")]
    pub termination_log: PathBuf,
    /// How to log in.
    #[serde(default)]
    pub auth: AuthSpec,
    /// The files to render.
    #[serde(default, rename = "template")]
    pub templates: Vec<TemplateConfig>,
}

/// One `[[template]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// The file to write (atomically: a temporary file, then rename).
    pub destination: PathBuf,
    /// The template, inline...
    pub contents: Option<String>,
    /// ...or from a file.
    pub source: Option<PathBuf>,
    /// Octal file mode, e.g. "0440" (default "0400").
    #[serde(default = "default_mode", deserialize_with = "mode")]
    pub mode: u32,
    /// Owner of the file (needs CAP_CHOWN unless it is the agent's own).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// After each change: run this command (argv, no shell)...
    #[serde(default)]
    pub command: Vec<String>,
    /// ...and/or send this signal ("HUP") to the process in `pid_file`
    /// or named `process_name` (with `shareProcessNamespace`).
    #[serde(default, deserialize_with = "signal")]
    pub signal: Option<Signal>,
    pub pid_file: Option<PathBuf>,
    pub process_name: Option<String>,
    /// Wait a random time up to this long before notifying, so replicas
    /// do not reload together (default 5s).
    #[serde(default = "default_splay", deserialize_with = "duration")]
    pub splay: Duration,
}

fn default_poll() -> Duration {
    Duration::from_secs(60)
}
fn default_grace() -> Duration {
    Duration::from_secs(30)
}
fn default_attempts() -> u32 {
    5
}
fn default_splay() -> Duration {
    Duration::from_secs(5)
}
fn default_mode() -> u32 {
    0o400
}
fn default_termination_log() -> PathBuf {
    crate::inject::DEFAULT_TERMINATION_LOG.into()
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Duration::from_secs)
        .map_err(serde::de::Error::custom)
}

fn mode<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let text = String::deserialize(d)?;
    match u32::from_str_radix(&text, 8) {
        Ok(mode) if mode <= 0o777 => Ok(mode),
        _ => Err(serde::de::Error::custom(format!(
            "{text:?} is not an octal file mode such as \"0440\""
        ))),
    }
}

fn signal<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Signal>, D::Error> {
    let text = String::deserialize(d)?;
    crate::run::parse_signal(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl AgentConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<AgentConfig, String> {
        let text = read_text(path)?;
        let config: AgentConfig =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        config
            .check()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        if self.templates.is_empty() {
            return Err("no [[template]]: nothing to render".into());
        }
        for (i, t) in self.templates.iter().enumerate() {
            let which = format!("template {} ({})", i + 1, t.destination.display());
            if !t.destination.is_absolute() {
                return Err(format!("{which}: the destination must be an absolute path"));
            }
            if t.contents.is_some() == t.source.is_some() {
                return Err(format!("{which}: give exactly one of contents and source"));
            }
            if t.signal.is_some() == (t.pid_file.is_none() && t.process_name.is_none()) {
                return Err(format!(
                    "{which}: signal needs pid_file or process_name, and they need signal"
                ));
            }
            if t.pid_file.is_some() && t.process_name.is_some() {
                return Err(format!("{which}: give pid_file or process_name, not both"));
            }
            if self.templates[..i]
                .iter()
                .any(|other| other.destination == t.destination)
            {
                return Err(format!("{which}: another template writes the same file"));
            }
        }
        Ok(())
    }
}

/// A small text file, whole.
pub fn read_text(path: &Path) -> Result<String, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_FILE {
        return Err(format!(
            "{} is larger than {MAX_FILE} bytes",
            path.display()
        ));
    }
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<AgentConfig, String> {
        let config: AgentConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn a_full_config_parses() {
        let config = parse(
            r#"
            address = "https://secretd:8200"
            state_file = "/run/secrets/app/.agent-state"
            listen = "0.0.0.0:8787"
            kv_poll_interval = "30s"
            [auth]
            method = "kubernetes"
            role = "app"
            token_file = "/var/run/secrets/secretd/token"
            [[template]]
            destination = "/run/secrets/app/db.env"
            contents = "PW={{ secret('secret/app/db').password }}"
            mode = "0440"
            uid = 1000
            gid = 2000
            signal = "HUP"
            pid_file = "/run/app/app.pid"
            splay = "5s"
            "#,
        )
        .unwrap();
        assert_eq!(config.kv_poll_interval, Duration::from_secs(30));
        assert_eq!(config.attempts, 5);
        let t = &config.templates[0];
        assert_eq!(t.mode, 0o440);
        assert_eq!(t.signal, Some(Signal::SIGHUP));
        assert_eq!(t.splay, Duration::from_secs(5));
    }

    #[test]
    fn mistakes_are_refused_with_the_reason() {
        let base = "[[template]]\ndestination = \"/x/a\"\n";
        for (text, says) in [
            ("tempalte = 1\n", "unknown field"),
            ("", "no [[template]]"),
            (
                "[[template]]\ndestination = \"rel\"\ncontents = \"x\"\n",
                "absolute",
            ),
            (base, "exactly one of contents and source"),
            (
                &format!("{base}contents = \"x\"\nmode = \"999\"\n"),
                "octal file mode",
            ),
            (
                &format!("{base}contents = \"x\"\nsignal = \"HUP\"\n"),
                "signal needs pid_file",
            ),
            (
                &format!("{base}contents = \"x\"\nsignal = \"NOPE\"\npid_file = \"/p\"\n"),
                "not a signal",
            ),
            (
                &format!("{base}contents = \"x\"\n{base}contents = \"y\"\n"),
                "same file",
            ),
            (
                &format!("{base}contents = \"x\"\nkv_poll_interval = \"soon\"\n"),
                "unknown field",
            ),
            (
                "kv_poll_interval = \"soon\"\n[[template]]\ndestination = \"/a\"\ncontents = \"x\"\n",
                "",
            ),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
