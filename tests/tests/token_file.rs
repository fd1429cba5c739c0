//! The token file `secretctl login` writes and later commands use, with
//! the real binaries on both databases: used when no token is given,
//! refused when others can read it, revoked and deleted by `logout`.
//! (Logins themselves are tested with each method.)

use std::os::unix::fs::PermissionsExt;
use std::process::Output;

use secretd_tests::{Db, Server, ok, on_both_databases, secretctl, secretctl_env};

on_both_databases!(commands_use_the_saved_token_and_logout_revokes_it);

const ROOT: &str = "root";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn commands_use_the_saved_token_and_logout_revokes_it(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::dev(&database.url, ROOT);
    let url = &server.url;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let file_str = file.display().to_string();
    let env = [("SECRETD_TOKEN_FILE", file_str.as_str())];

    let token = ok(&secretctl(
        url,
        ROOT,
        &["token", "create", "--policy", "default", "--field", "token"],
    ));
    let token = token.trim();

    // No token file: a command without a token is refused by the server.
    let out = secretctl_env(url, "", &env, &["token", "lookup"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    std::fs::write(&file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = secretctl_env(
        url,
        "",
        &env,
        &["token", "lookup", "--field", "policies"],
        None,
    );
    assert_eq!(ok(&out).trim(), "[\"default\"]");
    // A token given in the environment wins over the file.
    let out = secretctl_env(
        url,
        ROOT,
        &env,
        &["token", "lookup", "--field", "policies"],
        None,
    );
    assert_eq!(ok(&out).trim(), "[\"root\"]");

    // A file others can read is refused, not used.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = secretctl_env(url, "", &env, &["token", "lookup"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();

    // logout revokes the token and deletes the file.
    ok(&secretctl_env(url, "", &env, &["logout"], None));
    assert!(!file.exists());
    let out = secretctl(url, token, &["token", "lookup"]);
    assert_eq!(out.status.code(), Some(2), "the token outlived logout");
    let out = secretctl_env(url, "", &env, &["logout"], None);
    assert!(ok(&out).contains("Not logged in"));

    server.stop();
    database.remove().await;
}
