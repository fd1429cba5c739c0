//! What `run` and `agent` share: how they log in, how secrets are named
//! (references), and how they fail (one line, a distinct exit code, and
//! Kubernetes' termination message).

use std::fmt;
use std::path::{Path, PathBuf};

use secretd_client::secrecy::SecretString;
use secretd_client::{Error, KeeperError, Login};

use crate::Failure;
use crate::cli::Global;

/// Exit code: the command line or configuration is wrong (sysexits
/// `EX_CONFIG`).
pub const EXIT_CONFIG: u8 = 78;
/// Exit code: the server could not be reached, or was sealed or failing,
/// after every retry (`EX_UNAVAILABLE`).
pub const EXIT_UNREACHABLE: u8 = 69;
/// Exit code: the login was refused, or the token is not valid.
pub const EXIT_AUTH_DENIED: u8 = 80;
/// Exit code: the token may not read a secret (`EX_NOPERM`).
pub const EXIT_PERMISSION_DENIED: u8 = 77;
/// Exit code: a secret, or a field of it, does not exist (`EX_NOINPUT`).
pub const EXIT_NOT_FOUND: u8 = 66;
/// Exit code: the command could not be started: not found (as a shell).
pub const EXIT_NO_COMMAND: u8 = 127;
/// Exit code: the command could not be started: not executable.
pub const EXIT_CANNOT_EXECUTE: u8 = 126;

/// Where the kubelet reads a container's termination message.
pub const DEFAULT_TERMINATION_LOG: &str = "/dev/termination-log";

/// A configuration error (exit 78).
pub fn config(message: impl std::fmt::Display) -> Failure {
    Failure {
        code: EXIT_CONFIG,
        message: format!("configuration error: {message}"),
    }
}

/// The exit code and line for a keeper that could not log in or read.
pub fn keeper_failure(err: &KeeperError) -> Failure {
    let code = match err {
        KeeperError::Stopped => EXIT_UNREACHABLE,
        KeeperError::Login(error) => match error {
            Error::Config(_) | Error::InvalidInput(_) => EXIT_CONFIG,
            e if secretd_client::is_transient(e) => EXIT_UNREACHABLE,
            Error::Api { .. } => EXIT_AUTH_DENIED,
            _ => EXIT_UNREACHABLE,
        },
        KeeperError::Read { error, .. } => match error {
            Error::Config(_) | Error::InvalidInput(_) => EXIT_CONFIG,
            e if secretd_client::is_transient(e) => EXIT_UNREACHABLE,
            Error::Api { status: 403, .. } => EXIT_PERMISSION_DENIED,
            Error::Api { status: 401, .. } => EXIT_AUTH_DENIED,
            Error::Api { .. } => EXIT_NOT_FOUND,
            _ => EXIT_UNREACHABLE,
        },
    };
    let cause = match code {
        EXIT_CONFIG => "configuration error",
        EXIT_UNREACHABLE => "server unreachable",
        EXIT_AUTH_DENIED => "authentication denied",
        EXIT_PERMISSION_DENIED => "permission denied",
        _ => "secret not found",
    };
    Failure {
        code,
        message: format!("{cause}: {err}"),
    }
}

/// Writes the failure's line where the kubelet looks for a termination
/// message, if that file exists (it does in a container of a pod).
pub fn write_termination_message(path: &Path, failure: &Failure) {
    if !path.exists() {
        return;
    }
    // The kubelet shows at most 4 KiB; one line is what we promise.
    let line: String = failure.message.chars().take(4000).collect();
    let _ = std::fs::write(path, format!("{line}\n"));
}

/// How `run` and `agent` log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMethod {
    /// A Kubernetes service-account token (re-read at every login).
    Kubernetes,
    /// An LDAP user, with the password in a file (re-read at every login).
    Ldap,
    /// A secretd token in a file (re-read when a new token is needed).
    Token,
}

/// The parts of a login, from flags or the agent's `[auth]` table.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    pub method: Option<AuthMethod>,
    pub mount: Option<String>,
    pub role: Option<String>,
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    /// kubernetes: the service-account token; token: the secretd token.
    pub token_file: Option<PathBuf>,
}

impl AuthSpec {
    /// The login to use; without a method, the token of the flags, the
    /// environment or `secretctl login`'s token file.
    pub fn login(&self, global: &Global) -> Result<Login, Failure> {
        let need = |value: &Option<String>, what: &str| {
            value
                .clone()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| config(format!("the {what} is missing for this auth method")))
        };
        let Some(method) = self.method else {
            return given_token(global).map(Login::Token);
        };
        Ok(match method {
            AuthMethod::Kubernetes => Login::Kubernetes {
                mount: self.mount.clone().unwrap_or_else(|| "kubernetes".into()),
                role: need(&self.role, "role")?,
                jwt_path: self
                    .token_file
                    .clone()
                    .unwrap_or_else(|| crate::login::DEFAULT_JWT_PATH.into()),
            },
            AuthMethod::Ldap => Login::Ldap {
                mount: self.mount.clone().unwrap_or_else(|| "ldap".into()),
                username: need(&self.username, "username")?,
                password_file: self
                    .password_file
                    .clone()
                    .ok_or_else(|| config("the ldap auth method needs a password file"))?,
            },
            AuthMethod::Token => Login::TokenFile(
                self.token_file
                    .clone()
                    .ok_or_else(|| config("the token auth method needs a token file"))?,
            ),
        })
    }
}

/// The token as every other command finds it: `--token`/`SECRETD_TOKEN`,
/// `VAULT_TOKEN`, then the token file of `secretctl login`.
fn given_token(global: &Global) -> Result<SecretString, Failure> {
    let from_flag = global.token.as_ref().filter(|t| !t.is_empty());
    if let Some(token) = from_flag {
        return Ok(SecretString::from(token.as_str()));
    }
    if let Some(token) = std::env::var("VAULT_TOKEN").ok().filter(|t| !t.is_empty()) {
        return Ok(SecretString::from(token));
    }
    match crate::login::read_token_file().map_err(|f| config(f.message))? {
        Some(token) => Ok(SecretString::from(token.as_str())),
        None => Err(config(
            "no token: set SECRETD_TOKEN, give --auth-method, or run `secretctl login`",
        )),
    }
}

/// A secret's path and, optionally, one field of it:
/// `secret/app/db#password`, `database/creds/ro#username`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reference {
    pub path: String,
    pub field: Option<String>,
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}#{field}", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// The prefix that marks a reference in an environment variable's value.
pub const ENV_REFERENCE_PREFIX: &str = "secretd:";

impl Reference {
    /// Parses `PATH[#FIELD]`.
    pub fn parse(input: &str) -> Result<Reference, String> {
        let (path, field) = match input.split_once('#') {
            Some((path, field)) => (path, Some(field)),
            None => (input, None),
        };
        let path = path.trim().trim_matches('/');
        if path.is_empty() || !path.contains('/') {
            return Err(format!(
                "{input:?} is not a secret reference: give MOUNT/PATH[#FIELD], e.g. secret/app/db#password"
            ));
        }
        if path
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(format!(
                "{input:?}: a secret path has no empty, '.' or '..' segments"
            ));
        }
        if path.chars().any(|c| c.is_control() || c == '?') {
            return Err(format!(
                "{input:?}: a secret path has no control characters or '?'"
            ));
        }
        let field = match field {
            Some("") => return Err(format!("{input:?}: the field after '#' is empty")),
            Some(f) if f.contains('#') => {
                return Err(format!("{input:?}: only one '#' may name a field"));
            }
            other => other.map(str::to_owned),
        };
        Ok(Reference {
            path: path.to_owned(),
            field,
        })
    }
}

/// True for a usable environment variable name.
pub fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A secret's key as an environment variable name: upper-cased, every
/// other character than a letter, digit or `_` made `_`.
pub fn env_name_for_key(prefix: &str, key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if prefix.is_empty() && name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    format!("{prefix}{name}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn references_parse_with_and_without_a_field() {
        assert_eq!(
            Reference::parse("secret/app/db#password").unwrap(),
            Reference {
                path: "secret/app/db".into(),
                field: Some("password".into())
            }
        );
        assert_eq!(
            Reference::parse("/database/creds/ro/").unwrap(),
            Reference {
                path: "database/creds/ro".into(),
                field: None
            }
        );
        for bad in [
            "",
            "secret",
            "#x",
            "secret/app#",
            "secret//app",
            "secret/../sys#x",
            "secret/a#b#c",
            "secret/a?x=1",
            "secret/a\nb",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn keys_become_environment_names() {
        assert_eq!(env_name_for_key("", "password"), "PASSWORD");
        assert_eq!(env_name_for_key("DB_", "user-name"), "DB_USER_NAME");
        assert_eq!(env_name_for_key("", "1st"), "_1ST");
        assert_eq!(env_name_for_key("", "ключ"), "____");
        assert!(is_env_name("DB_PASSWORD") && is_env_name("_x1"));
        assert!(!is_env_name("1X") && !is_env_name("A-B") && !is_env_name(""));
    }

    #[test]
    fn failures_have_one_distinct_code_per_cause() {
        let api = |status| Error::Api {
            status,
            errors: vec!["x".into()],
        };
        let read = |error| KeeperError::Read {
            path: "secret/app".into(),
            error,
        };
        let cases = [
            (KeeperError::Login(api(403)), EXIT_AUTH_DENIED),
            (KeeperError::Login(api(400)), EXIT_AUTH_DENIED),
            (KeeperError::Login(api(503)), EXIT_UNREACHABLE),
            (KeeperError::Login(Error::Config("x".into())), EXIT_CONFIG),
            (read(api(403)), EXIT_PERMISSION_DENIED),
            (read(api(404)), EXIT_NOT_FOUND),
            (read(api(500)), EXIT_UNREACHABLE),
            (read(api(429)), EXIT_UNREACHABLE),
        ];
        for (err, code) in cases {
            let failure = keeper_failure(&err);
            assert_eq!(failure.code, code, "{err}");
            assert!(!failure.message.contains('\n'), "{}", failure.message);
        }
    }

    #[test]
    fn the_termination_message_is_written_only_where_the_file_exists() {
        let dir = tempfile::tempdir().unwrap();
        let failure = config("bad reference");
        let missing = dir.path().join("termination-log");
        write_termination_message(&missing, &failure);
        assert!(!missing.exists());
        std::fs::write(&missing, "").unwrap();
        write_termination_message(&missing, &failure);
        assert_eq!(
            std::fs::read_to_string(&missing).unwrap(),
            "configuration error: bad reference\n"
        );
    }

    proptest! {
        #[test]
        fn parsing_any_reference_never_panics_and_keeps_clean_paths(input in "\\PC{0,40}") {
            if let Ok(r) = Reference::parse(&input) {
                prop_assert!(!r.path.is_empty());
                prop_assert!(!r.path.split('/').any(|s| s.is_empty() || s == ".."));
                prop_assert!(r.field.as_deref() != Some(""));
            }
        }

        #[test]
        fn generated_names_are_valid(prefix in "[A-Z_]{0,4}", key in "\\PC{1,20}") {
            let name = env_name_for_key(&prefix, &key);
            prop_assert!(is_env_name(&name), "{name}");
        }
    }
}
