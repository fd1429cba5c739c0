//! `login` and `logout`, and the token file they keep.
//!
//! `login` trades a Kubernetes service-account token or an LDAP password
//! for a secretd token and saves it to the token file (`SECRETD_TOKEN_FILE`,
//! else `~/.secretd-token`), created with mode 0600 and replaced
//! atomically. Commands given no token by flag or environment use it.
//! `logout` revokes it and deletes the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use secretd_client::TokenAuth;
use zeroize::Zeroizing;

use crate::cli::{LoginArgs, LoginMethod, LogoutArgs};
use crate::operator::read_secret;
use crate::token::{ShowToken, auth_report};
use crate::{Ctx, Doing, EXIT_OK, Failure};

/// The variable naming the token file.
pub const ENV_TOKEN_FILE: &str = "SECRETD_TOKEN_FILE";
/// The token file's name in the home directory.
const DEFAULT_TOKEN_FILE: &str = ".secretd-token";
/// Where a pod's service-account token is.
pub const DEFAULT_JWT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";
/// The most bytes read from a token or password file.
const MAX_SECRET_FILE: u64 = 64 * 1024;

/// The token file's path, if one can be named.
pub fn token_file() -> Option<PathBuf> {
    match std::env::var_os(ENV_TOKEN_FILE).filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| Path::new(&home).join(DEFAULT_TOKEN_FILE)),
    }
}

/// The saved token, if there is a token file. A file others can read is
/// refused rather than trusted (like ssh with a private key).
pub fn read_token_file() -> Result<Option<Zeroizing<String>>, Failure> {
    let Some(path) = token_file() else {
        return Ok(None);
    };
    let meta = match std::fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Failure::local(format!(
                "cannot read the token file {}: {e}",
                path.display()
            )));
        }
    };
    check_private(&path, &meta)?;
    let token = read_small_file(&path, "the token file")?;
    let token = Zeroizing::new(token.trim().to_owned());
    Ok((!token.is_empty()).then_some(token))
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &std::fs::Metadata) -> Result<(), Failure> {
    use std::os::unix::fs::PermissionsExt;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Failure::local(format!(
            "the token file {} can be read by other users; run `chmod 600 {}` or `secretctl logout`",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path, _meta: &std::fs::Metadata) -> Result<(), Failure> {
    Ok(())
}

/// Writes `token` to `path` with mode 0600: a new file beside it, synced,
/// then renamed over the old one, so a reader never sees half a token.
fn write_token_file(path: &Path, token: &str) -> Result<(), Failure> {
    let failed = |e: std::io::Error| {
        Failure::local(format!(
            "cannot write the token file {}: {e}",
            path.display()
        ))
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".secretd-token.");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    let mut file = builder.tempfile_in(dir).map_err(failed)?;
    file.write_all(token.as_bytes()).map_err(failed)?;
    file.write_all(b"\n").map_err(failed)?;
    file.as_file().sync_all().map_err(failed)?;
    file.persist(path).map_err(|e| failed(e.error))?;
    Ok(())
}

/// A small text file (a token or a password), whole.
fn read_small_file(path: &Path, what: &str) -> Result<String, Failure> {
    let unreadable =
        |e: std::io::Error| Failure::local(format!("cannot read {what} {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.len() > MAX_SECRET_FILE {
        return Err(Failure::local(format!(
            "{what} {} is larger than {MAX_SECRET_FILE} bytes",
            path.display()
        )));
    }
    let bytes = std::fs::read(path).map_err(unreadable)?;
    String::from_utf8(bytes)
        .map_err(|_| Failure::local(format!("{what} {} is not text", path.display())))
}

/// The LDAP password: from `--password-file` (`-` for stdin), else a
/// hidden prompt on a terminal, else one line of stdin. One trailing
/// newline is dropped; nothing else is trimmed.
fn ldap_password(file: Option<&Path>) -> Result<Zeroizing<String>, Failure> {
    let mut password = match file {
        Some(path) if path != Path::new("-") => {
            Zeroizing::new(read_small_file(path, "the password file")?)
        }
        _ => read_secret("Password", "the password")?,
    };
    if password.ends_with('\n') {
        password.pop();
        if password.ends_with('\r') {
            password.pop();
        }
    }
    Ok(password)
}

/// `login --method kubernetes|ldap ...`
pub async fn login(ctx: &Ctx, a: LoginArgs) -> Result<u8, Failure> {
    let mount = a
        .mount
        .clone()
        .unwrap_or_else(|| a.method.default_mount().to_owned());
    let auth: TokenAuth = match a.method {
        LoginMethod::Kubernetes => {
            let role = a
                .role
                .as_deref()
                .ok_or_else(|| Failure::local("--role is required with --method kubernetes"))?;
            let jwt_path = a
                .jwt_path
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_JWT_PATH));
            ctx.client
                .login_kubernetes(&mount, role, &jwt_path)
                .await
                .doing(format!("logging in at auth/{mount} as role {role}"))?
        }
        LoginMethod::Ldap => {
            let username = a
                .username
                .as_deref()
                .ok_or_else(|| Failure::local("--username is required with --method ldap"))?;
            let password = ldap_password(a.password_file.as_deref())?;
            ctx.client
                .login_ldap(&mount, username, &password)
                .await
                .doing(format!("logging in at auth/{mount} as {username}"))?
        }
    };
    ctx.warn(&auth.warnings);
    if a.no_store {
        ctx.print(&auth_report(&auth, ShowToken::Yes))?;
        return Ok(EXIT_OK);
    }
    let path = token_file().ok_or_else(|| {
        Failure::local(format!(
            "cannot name the token file: set {ENV_TOKEN_FILE} or HOME, or use --no-store"
        ))
    })?;
    write_token_file(&path, &auth.client_token)?;
    ctx.success(&format!(
        "Success! You are now logged in. The token is saved in {} and used by later \
         commands.\n",
        path.display()
    ));
    ctx.print(&auth_report(&auth, ShowToken::No))?;
    Ok(EXIT_OK)
}

/// `logout`: revokes the saved token (unless `--no-revoke`) and deletes
/// the token file.
pub async fn logout(ctx: &Ctx, a: LogoutArgs) -> Result<u8, Failure> {
    let path = token_file().ok_or_else(|| {
        Failure::local(format!(
            "cannot name the token file: set {ENV_TOKEN_FILE} or HOME"
        ))
    })?;
    let Some(token) = read_token_file()? else {
        ctx.success(&format!(
            "Not logged in: there is no token in {}.",
            path.display()
        ));
        return Ok(EXIT_OK);
    };
    if !a.no_revoke {
        let client = ctx.client.with_token(token.as_str());
        match client.token().revoke_self().await {
            Ok(()) => {}
            // Expired or revoked already: nothing left to revoke.
            Err(err) if err.is_permission_denied() => {}
            Err(err) => return Err(Failure::client("revoking the saved token", err)),
        }
    }
    std::fs::remove_file(&path).map_err(|e| {
        Failure::local(format!(
            "cannot delete the token file {}: {e}",
            path.display()
        ))
    })?;
    ctx.success(&format!(
        "Success! Logged out{}: deleted {}.",
        if a.no_revoke {
            ""
        } else {
            " and revoked the token"
        },
        path.display()
    ));
    Ok(EXIT_OK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_file_is_private_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        write_token_file(&path, "hvs.first").unwrap();
        write_token_file(&path, "hvs.second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hvs.second\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let meta = std::fs::metadata(&path).unwrap();
            let err = check_private(&path, &meta).unwrap_err();
            assert!(err.message.contains("chmod 600"), "{}", err.message);
        }
        // Nothing but the token file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_password_file_loses_one_newline_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, " pass word \n").unwrap();
        assert_eq!(ldap_password(Some(&path)).unwrap().as_str(), " pass word ");
        std::fs::write(&path, "crlf\r\n").unwrap();
        assert_eq!(ldap_password(Some(&path)).unwrap().as_str(), "crlf");
    }
}
