//! Logging in with an auth method: a Kubernetes service account's token
//! or an LDAP user's password, traded for a secretd token.

use std::path::Path;

use reqwest::Method;
use serde::Serialize;
use zeroize::Zeroizing;

use crate::Error;
use crate::client::{Body, Client};
use crate::token::{TokenAuth, auth_from_answer};

/// The most bytes of a token, JWT or password file read; real
/// service-account tokens are a few KiB.
const MAX_SECRET_FILE: u64 = 64 * 1024;

#[derive(Serialize)]
struct KubernetesLogin<'a> {
    role: &'a str,
    jwt: &'a str,
}

#[derive(Serialize)]
struct LdapLogin<'a> {
    password: &'a str,
}

impl Client {
    /// Logs in with the Kubernetes auth method mounted at `auth/<mount>`
    /// as `role`, with the service-account token in `jwt_path` (in a pod:
    /// `/var/run/secrets/kubernetes.io/serviceaccount/token`, or a
    /// projected token's path). The file is read on every call, since the
    /// kubelet replaces projected tokens before they expire.
    ///
    /// The answer carries the new token; use it with
    /// [`Client::with_token`].
    pub async fn login_kubernetes(
        &self,
        mount: &str,
        role: &str,
        jwt_path: impl AsRef<Path>,
    ) -> Result<TokenAuth, Error> {
        let jwt = read_small_file(jwt_path.as_ref()).await?;
        let body = KubernetesLogin {
            role,
            jwt: jwt.trim(),
        };
        self.login(&format!("auth/{}/login", mount_name(mount)?), &body)
            .await
    }

    /// Logs in with the LDAP auth method mounted at `auth/<mount>` as
    /// `username` with `password`.
    pub async fn login_ldap(
        &self,
        mount: &str,
        username: &str,
        password: &str,
    ) -> Result<TokenAuth, Error> {
        if username.is_empty() || username.contains('/') {
            return Err(Error::InvalidInput(
                "an LDAP username must be non-empty and without '/'".into(),
            ));
        }
        let path = format!("auth/{}/login/{username}", mount_name(mount)?);
        self.login(&path, &LdapLogin { password }).await
    }

    async fn login(&self, path: &str, body: &impl Serialize) -> Result<TokenAuth, Error> {
        let answer = self
            .send(Method::POST, path, &[], Body::json(body)?)
            .await?
            .success()?;
        auth_from_answer(path, &answer)
    }
}

/// A mount name without slashes around it.
fn mount_name(mount: &str) -> Result<&str, Error> {
    let mount = mount.trim_matches('/');
    if mount.is_empty() {
        return Err(Error::InvalidInput("the auth mount is empty".into()));
    }
    Ok(mount)
}

/// A small text file (a token, a JWT, a password), whole, in a zeroizing
/// buffer.
pub(crate) async fn read_small_file(path: &Path) -> Result<Zeroizing<String>, Error> {
    let unreadable =
        |e: std::io::Error| Error::Config(format!("cannot read {}: {e}", path.display()));
    let meta = tokio::fs::metadata(path).await.map_err(unreadable)?;
    if meta.len() > MAX_SECRET_FILE {
        return Err(Error::Config(format!(
            "{} is larger than {MAX_SECRET_FILE} bytes",
            path.display()
        )));
    }
    let bytes = Zeroizing::new(tokio::fs::read(path).await.map_err(unreadable)?);
    String::from_utf8(bytes.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| Error::Config(format!("{} is not text", path.display())))
}
