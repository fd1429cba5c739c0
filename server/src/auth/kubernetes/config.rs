//! `config`: where the cluster is and how a JWT is checked.
//!
//! **The choice rule.** With `kubernetes_host` set, every login is checked
//! by the cluster's TokenReview API, as in Vault; `pem_keys`, `jwks_url`
//! or `oidc_discovery_url` then add a local signature check before it.
//! Without `kubernetes_host`, the keys are the only check ("local" mode):
//! one of them is required, and so are `issuer` and an `exp` in every
//! token, since nothing else can notice a deleted service account. There
//! is no third switch: the config says which checks run by what it holds.
//!
//! A write replaces the whole config, as in Vault. What a read shows can be
//! written back unchanged: `token_reviewer_jwt_set: true` without a
//! `token_reviewer_jwt` keeps the stored one.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::keys::VerifyingKey;
use super::{Refusal, https};
use crate::core::{Error, Fields};

/// Where kubelet puts a pod's own service-account token and cluster CA.
pub const LOCAL_JWT: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
pub const LOCAL_CA: &str = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt";
/// Vault's default `issuer`, the one legacy tokens carry.
pub const LEGACY_ISSUER: &str = "kubernetes/serviceaccount";
/// The most a token or CA file may hold.
const MAX_FILE_LEN: u64 = 64 * 1024;

#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub kubernetes_host: String,
    pub kubernetes_ca_cert: String,
    pub token_reviewer_jwt: Option<SecretString>,
    /// Re-read at every login: kubelet rotates projected tokens. It must
    /// hold a JWT (see `read_token_file`).
    pub token_reviewer_jwt_file: String,
    pub pem_keys: Vec<String>,
    pub jwks_url: String,
    /// The issuer URL; `/.well-known/openid-configuration` is appended
    /// unless it is already there.
    pub oidc_discovery_url: String,
    /// The CA for `jwks_url` / `oidc_discovery_url`; the system's roots
    /// when empty.
    pub jwks_ca_pem: String,
    pub issuer: String,
    pub disable_iss_validation: bool,
    pub disable_local_ca_jwt: bool,
}

/// Where local validation finds its keys.
pub enum KeySource<'a> {
    None,
    Pem(&'a [String]),
    /// A JWKS URL, or the discovery document naming one.
    Remote {
        url: &'a str,
        discovery: bool,
    },
}

impl Config {
    /// Whether logins are checked by TokenReview (see the module doc).
    pub fn uses_token_review(&self) -> bool {
        !self.kubernetes_host.is_empty()
    }

    pub fn key_source(&self) -> KeySource<'_> {
        if !self.pem_keys.is_empty() {
            KeySource::Pem(&self.pem_keys)
        } else if !self.jwks_url.is_empty() {
            KeySource::Remote {
                url: &self.jwks_url,
                discovery: false,
            }
        } else if !self.oidc_discovery_url.is_empty() {
            KeySource::Remote {
                url: &self.oidc_discovery_url,
                discovery: true,
            }
        } else {
            KeySource::None
        }
    }

    /// The issuer a token's `iss` must equal, if it is checked.
    pub fn checked_issuer(&self) -> Option<&str> {
        match (self.disable_iss_validation, self.issuer.as_str()) {
            (true, _) => None,
            (false, "") => Some(LEGACY_ISSUER),
            (false, issuer) => Some(issuer),
        }
    }

    /// A write's config over the `current` one. Answers the warnings.
    pub fn from_write(
        current: Option<Config>,
        data: &Map<String, Value>,
    ) -> Result<(Config, Vec<String>), Error> {
        let mut f = Fields::new(data);
        let mut config = Config {
            kubernetes_host: f
                .string("kubernetes_host")?
                .unwrap_or_default()
                .trim()
                .trim_end_matches('/')
                .to_owned(),
            kubernetes_ca_cert: f.string("kubernetes_ca_cert")?.unwrap_or_default(),
            token_reviewer_jwt: f
                .string("token_reviewer_jwt")?
                .filter(|s| !s.is_empty())
                .map(|s| SecretString(Zeroizing::new(s))),
            token_reviewer_jwt_file: f.string("token_reviewer_jwt_file")?.unwrap_or_default(),
            pem_keys: f.string_list("pem_keys")?.unwrap_or_default(),
            jwks_url: f.string("jwks_url")?.unwrap_or_default(),
            oidc_discovery_url: f
                .string("oidc_discovery_url")?
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned(),
            jwks_ca_pem: f.string("jwks_ca_pem")?.unwrap_or_default(),
            issuer: f.string("issuer")?.unwrap_or_default(),
            disable_iss_validation: false,
            disable_local_ca_jwt: f.bool("disable_local_ca_jwt")?.unwrap_or(false),
        };
        let disable_iss_validation = f.bool("disable_iss_validation")?;
        if config.token_reviewer_jwt.is_none() && f.bool("token_reviewer_jwt_set")? == Some(true) {
            config.token_reviewer_jwt = current.and_then(|c| c.token_reviewer_jwt);
            if config.token_reviewer_jwt.is_none() {
                return Err(Error::invalid(
                    "token_reviewer_jwt_set is true but no reviewer JWT is stored: \
                     give token_reviewer_jwt",
                ));
            }
        }
        // Accepted when false, as clients such as Terraform send it.
        if f.bool("use_annotations_as_alias_metadata")? == Some(true) {
            return Err(Error::invalid(
                "use_annotations_as_alias_metadata is not supported by secretd \
                 (it has no identity entities)",
            ));
        }
        f.refuse_unrecognized()?;
        let mut warnings = Vec::new();
        config.check_keys()?;
        if config.uses_token_review() {
            https::check_url("kubernetes_host", &config.kubernetes_host)?;
            // Vault's default: TokenReview checks the issuer already.
            config.disable_iss_validation = disable_iss_validation.unwrap_or(true);
            config.check_token_review(&mut warnings)?;
        } else {
            config.check_local_only(disable_iss_validation)?;
        }
        Ok((config, warnings))
    }

    fn check_keys(&self) -> Result<(), Error> {
        let sources = [
            !self.pem_keys.is_empty(),
            !self.jwks_url.is_empty(),
            !self.oidc_discovery_url.is_empty(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(Error::invalid(
                "give one of pem_keys, jwks_url and oidc_discovery_url, not several",
            ));
        }
        for (i, pem) in self.pem_keys.iter().enumerate() {
            VerifyingKey::from_pem(pem)
                .map_err(|e| Error::invalid(format!("pem_keys[{i}]: {e}")))?;
        }
        if !self.jwks_url.is_empty() {
            https::check_url("jwks_url", &self.jwks_url)?;
        }
        if !self.oidc_discovery_url.is_empty() {
            https::check_url("oidc_discovery_url", &self.oidc_discovery_url)?;
        }
        if !self.jwks_ca_pem.is_empty() {
            if self.jwks_url.is_empty() && self.oidc_discovery_url.is_empty() {
                return Err(Error::invalid(
                    "jwks_ca_pem is only used with jwks_url or oidc_discovery_url",
                ));
            }
            https::roots_from_pem(&self.jwks_ca_pem)
                .map_err(|e| Error::invalid(format!("jwks_ca_pem: {e}")))?;
        }
        Ok(())
    }

    fn check_token_review(&self, warnings: &mut Vec<String>) -> Result<(), Error> {
        if !self.kubernetes_ca_cert.is_empty() {
            https::roots_from_pem(&self.kubernetes_ca_cert)
                .map_err(|e| Error::invalid(format!("kubernetes_ca_cert: {e}")))?;
        } else if self.disable_local_ca_jwt || !Path::new(LOCAL_CA).exists() {
            return Err(Error::invalid(
                "kubernetes_ca_cert is required: the API server's certificate is checked \
                 against it (in a pod, the pod's own ca.crt is used unless \
                 disable_local_ca_jwt is set)",
            ));
        }
        if self.token_reviewer_jwt.is_some() && !self.token_reviewer_jwt_file.is_empty() {
            return Err(Error::invalid(
                "give token_reviewer_jwt or token_reviewer_jwt_file, not both",
            ));
        }
        if !self.token_reviewer_jwt_file.is_empty() {
            let path = Path::new(&self.token_reviewer_jwt_file);
            if !path.is_absolute() {
                return Err(Error::invalid(
                    "token_reviewer_jwt_file must be an absolute path",
                ));
            }
            read_token_file(path)
                .map_err(|e| Error::invalid(format!("token_reviewer_jwt_file: {e}")))?;
        }
        let local_jwt = !self.disable_local_ca_jwt && Path::new(LOCAL_JWT).exists();
        if self.token_reviewer_jwt.is_none()
            && self.token_reviewer_jwt_file.is_empty()
            && !local_jwt
        {
            warnings.push(
                "no token_reviewer_jwt: each login's own JWT calls TokenReview, so every \
                 service account that logs in needs the system:auth-delegator role"
                    .to_owned(),
            );
        }
        Ok(())
    }

    fn check_local_only(&mut self, disable_iss_validation: Option<bool>) -> Result<(), Error> {
        if matches!(self.key_source(), KeySource::None) {
            return Err(Error::invalid(
                "kubernetes_host is required; or give pem_keys, jwks_url or \
                 oidc_discovery_url to check JWTs locally without TokenReview",
            ));
        }
        if self.issuer.is_empty() {
            return Err(Error::invalid(
                "issuer is required without kubernetes_host: local validation checks \
                 iss (kube-apiserver's --service-account-issuer)",
            ));
        }
        if disable_iss_validation == Some(true) {
            return Err(Error::invalid(
                "disable_iss_validation cannot be set without kubernetes_host: local \
                 validation always checks iss",
            ));
        }
        for (name, set) in [
            ("kubernetes_ca_cert", !self.kubernetes_ca_cert.is_empty()),
            ("token_reviewer_jwt", self.token_reviewer_jwt.is_some()),
            (
                "token_reviewer_jwt_file",
                !self.token_reviewer_jwt_file.is_empty(),
            ),
        ] {
            if set {
                return Err(Error::invalid(format!(
                    "{name} is only used with kubernetes_host (TokenReview)"
                )));
            }
        }
        self.disable_iss_validation = false;
        Ok(())
    }

    /// `GET config`: never the reviewer JWT, only whether one is set.
    pub fn output(&self) -> Map<String, Value> {
        let Value::Object(data) = json!({
            "kubernetes_host": self.kubernetes_host,
            "kubernetes_ca_cert": self.kubernetes_ca_cert,
            "token_reviewer_jwt_set": self.token_reviewer_jwt.is_some(),
            "token_reviewer_jwt_file": self.token_reviewer_jwt_file,
            "pem_keys": self.pem_keys,
            "jwks_url": self.jwks_url,
            "oidc_discovery_url": self.oidc_discovery_url,
            "jwks_ca_pem": self.jwks_ca_pem,
            "issuer": self.issuer,
            "disable_iss_validation": self.disable_iss_validation,
            "disable_local_ca_jwt": self.disable_local_ca_jwt,
        }) else {
            unreachable!("a JSON object literal")
        };
        data
    }

    /// The CA TokenReview's TLS trusts: the configured one, or the pod's.
    pub fn api_ca(&self) -> Result<String, Refusal> {
        if !self.kubernetes_ca_cert.is_empty() {
            return Ok(self.kubernetes_ca_cert.clone());
        }
        if self.disable_local_ca_jwt {
            return Err(Refusal::new("no kubernetes_ca_cert is configured"));
        }
        read_small_file(Path::new(LOCAL_CA))
            .map(|ca| ca.to_string())
            .map_err(|e| Refusal::new(format!("the pod's CA {LOCAL_CA}: {e}")))
    }

    /// The bearer of the TokenReview call: the configured JWT, else the
    /// file (read now, so a rotated token is used at once), else the pod's
    /// own token, else `None` (the caller's JWT reviews itself).
    pub fn reviewer_jwt(&self) -> Result<Option<Zeroizing<String>>, Refusal> {
        if let Some(jwt) = &self.token_reviewer_jwt {
            return Ok(Some(jwt.0.clone()));
        }
        let file = if !self.token_reviewer_jwt_file.is_empty() {
            &self.token_reviewer_jwt_file
        } else if !self.disable_local_ca_jwt && Path::new(LOCAL_JWT).exists() {
            LOCAL_JWT
        } else {
            return Ok(None);
        };
        read_token_file(Path::new(file))
            .map(Some)
            .map_err(|e| Refusal::new(format!("the reviewer token file {file}: {e}")))
    }
}

/// A file's trimmed text, refusing anything but a regular file no larger
/// than a token or CA bundle could be (a FIFO or `/dev/zero` would hang or
/// fill memory). Kept in a zeroizing string: it may be a token.
fn read_small_file(path: &Path) -> Result<Zeroizing<String>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    if !file.metadata().map_err(|e| e.to_string())?.is_file() {
        return Err("not a regular file".to_owned());
    }
    let mut text = Zeroizing::new(String::new());
    file.take(MAX_FILE_LEN + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > MAX_FILE_LEN {
        return Err(format!("larger than {MAX_FILE_LEN} bytes"));
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err("the file is empty".to_owned());
    }
    Ok(Zeroizing::new(trimmed.to_owned()))
}

/// A reviewer token file, which must hold a JWT. The check keeps the
/// file setting from turning into a way to send any file the server can
/// read (a key, a password file) as a bearer token to a `kubernetes_host`
/// of the config writer's choosing. The message never shows the content.
fn read_token_file(path: &Path) -> Result<Zeroizing<String>, String> {
    let token = read_small_file(path)?;
    if !looks_like_jwt(&token) {
        return Err("the file does not hold a JWT (three base64url parts)".to_owned());
    }
    Ok(token)
}

fn looks_like_jwt(text: &str) -> bool {
    let parts: Vec<&str> = text.split('.').collect();
    text.len() <= super::claims::MAX_JWT_LEN
        && parts.len() == 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// A secret kept in the (sealed) config: zeroized on drop, never printed.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl std::fmt::Debug for SecretString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|s| SecretString(Zeroizing::new(s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reviewer_files_must_hold_a_jwt() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        for (content, ok) in [
            ("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln\n", true),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
                false,
            ),
            ("root:x:0:0:root:/root:/bin/bash", false),
            ("a.b", false),
            ("a..c", false),
            ("", false),
        ] {
            std::fs::write(&file, content).unwrap();
            let read = read_token_file(&file);
            assert_eq!(read.is_ok(), ok, "{content:?}");
            if let Err(e) = read {
                let shown = !content.is_empty() && e.contains(content.trim());
                assert!(!shown, "the error shows the file: {e}");
            }
        }
        std::fs::write(&file, "x".repeat(MAX_FILE_LEN as usize + 1)).unwrap();
        assert!(read_small_file(&file).unwrap_err().contains("larger"));
        assert!(
            read_small_file(Path::new("/dev/zero"))
                .unwrap_err()
                .contains("regular")
        );
        assert!(read_small_file(dir.path()).is_err());
    }
}
