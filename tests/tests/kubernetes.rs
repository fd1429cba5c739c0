//! Kubernetes login end to end, on both databases: a real server, set up
//! with `secretctl`; a pod's projected service-account token (signed here
//! with a P-256 key the mount trusts) logs in with `secretctl login`, and
//! the saved token reads what its role's policy allows and nothing else;
//! and `secretctl run --watch` logs in again with the token file as the
//! kubelet rotated it.
//! (TokenReview against an HTTPS API server is tested in process, in
//! `server/src/auth/kubernetes/tests.rs`.)

use std::process::Output;

use secretd_tests::{
    Db, K8S_ISSUER as ISSUER, Server, ok, on_both_databases, projected_claims as projected,
    secretctl, secretctl_env, sign_jwt as sign,
};
use serde_json::Value;

on_both_databases!(a_pod_logs_in_with_secretctl_and_reads_its_secrets);

const ROOT: &str = "e2e-root-token";

const APP_READER: &str = r#"
path "secret/data/app/*" {
  capabilities = ["read"]
}
"#;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn a_pod_logs_in_with_secretctl_and_reads_its_secrets(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::dev(&database.url, ROOT);
    let url = &server.url;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();

    // The cluster's signing key; the mount trusts its public half.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(path("sa.pub"), key.public_key_pem()).unwrap();
    std::fs::write(path("app-reader.hcl"), APP_READER).unwrap();
    ok(&secretctl(
        url,
        ROOT,
        &["policy", "write", "app-reader", &path("app-reader.hcl")],
    ));
    ok(&secretctl(
        url,
        ROOT,
        &["auth", "enable", "--path", "k8s", "kubernetes"],
    ));
    ok(&secretctl(
        url,
        ROOT,
        &[
            "write",
            "auth/k8s/config",
            &format!("pem_keys=@{}", path("sa.pub")),
            &format!("issuer={ISSUER}"),
        ],
    ));
    ok(&secretctl(
        url,
        ROOT,
        &[
            "write",
            "auth/k8s/role/app",
            "bound_service_account_names=app",
            "bound_service_account_namespaces=prod",
            "audience=secretd",
            "token_policies=app-reader",
            "token_ttl=10m",
        ],
    ));
    ok(&secretctl(
        url,
        ROOT,
        &["put", "secret/app/db", "password=app-pass"],
    ));
    ok(&secretctl(
        url,
        ROOT,
        &["put", "secret/other/db", "password=other-pass"],
    ));

    // The pod's token file, as kubelet projects it.
    let jwt = sign(&key, &projected("prod", "app", "secretd"));
    std::fs::write(path("token"), &jwt).unwrap();
    let token_file = path("secretd-token");
    let env = [("SECRETD_TOKEN_FILE", token_file.as_str())];
    let login = [
        "login",
        "--method",
        "kubernetes",
        "--role",
        "app",
        "--jwt-path",
        &path("token"),
        "--mount",
        "k8s",
    ];
    ok(&secretctl_env(url, "", &env, &login, None));

    let out = secretctl_env(
        url,
        "",
        &env,
        &["get", "secret/app/db", "--field", "password"],
        None,
    );
    assert_eq!(ok(&out).trim(), "app-pass");
    let out = secretctl_env(url, "", &env, &["get", "secret/other/db"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    let out = secretctl_env(url, "", &env, &["token", "lookup", "--field", "meta"], None);
    let meta: Value = serde_json::from_str(ok(&out).trim()).unwrap();
    assert_eq!(meta["service_account_namespace"], "prod");
    assert_eq!(meta["role"], "app");

    // A pod of another namespace is refused; the log says why, without
    // the token.
    let stranger = sign(&key, &projected("dev", "app", "secretd"));
    std::fs::write(path("token"), &stranger).unwrap();
    let out = secretctl_env(url, "", &env, &login, None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("permission denied"),
        "{}",
        stderr(&out)
    );
    let log = server.log();
    assert!(log.contains("namespace not authorized"), "{log}");
    assert!(
        !log.contains(&stranger) && !log.contains(&jwt),
        "a JWT reached the log"
    );

    server.stop();
    database.remove().await;
}

/// `secretctl run --watch` in a pod: it logs in with the projected token
/// and, when its token reaches its max TTL, logs in again with the token
/// file as the kubelet has replaced it (here: signed by a new key that
/// alone is trusted by then, so the old file's token no longer works).
#[tokio::test(flavor = "multi_thread")]
async fn run_logs_in_again_with_the_rotated_projected_token() {
    let database = secretd_tests::TestDatabase::sqlite();
    let server = Server::dev(&database.url, ROOT);
    let url = &server.url;
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let old_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let new_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(path("old.pub"), old_key.public_key_pem()).unwrap();
    std::fs::write(path("new.pub"), new_key.public_key_pem()).unwrap();
    std::fs::write(path("app-reader.hcl"), APP_READER).unwrap();
    let setup: [&[&str]; 5] = [
        &["policy", "write", "app-reader", &path("app-reader.hcl")],
        &["auth", "enable", "kubernetes"],
        &[
            "write",
            "auth/kubernetes/config",
            &format!("pem_keys=@{}", path("old.pub")),
            &format!("issuer={ISSUER}"),
        ],
        &[
            "write",
            "auth/kubernetes/role/app",
            "bound_service_account_names=app",
            "bound_service_account_namespaces=prod",
            "audience=secretd",
            "token_policies=app-reader",
            "token_ttl=2s",
            "token_max_ttl=3s",
        ],
        &["put", "secret/app/db", "password=first"],
    ];
    for args in setup {
        ok(&secretctl(url, ROOT, args));
    }
    std::fs::write(
        path("token"),
        sign(&old_key, &projected("prod", "app", "secretd")),
    )
    .unwrap();
    let out = path("out");
    let mut child = std::process::Command::new(secretd_tests::binary("secretctl"))
        .args([
            "run",
            "--watch",
            "--poll-interval",
            "1s",
            "--splay",
            "0s",
            "--env",
            "PW=secret/app/db#password",
            "--",
            "sh",
            "-c",
            "echo $PW >> \"$OUT\"; exec sleep 1000",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SECRETD_ADDR", url)
        .env("SECRETD_AUTH_METHOD", "kubernetes")
        .env("SECRETD_AUTH_ROLE", "app")
        .env("SECRETD_AUTH_TOKEN_FILE", path("token"))
        .env("OUT", &out)
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let wait_lines = |n: usize| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            if text.lines().count() >= n {
                return text;
            }
            assert!(std::time::Instant::now() < deadline, "{out}: {text:?}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    assert_eq!(wait_lines(1), "first\n");

    // The kubelet rotates the token; the cluster now signs with a new key.
    std::fs::write(
        path("token"),
        sign(&new_key, &projected("prod", "app", "secretd")),
    )
    .unwrap();
    ok(&secretctl(
        url,
        ROOT,
        &[
            "write",
            "auth/kubernetes/config",
            &format!("pem_keys=@{}", path("new.pub")),
            &format!("issuer={ISSUER}"),
        ],
    ));
    // Past two max TTLs of the first token: every token since was had
    // with the new file, and still reads.
    std::thread::sleep(std::time::Duration::from_secs(7));
    ok(&secretctl(
        url,
        ROOT,
        &["put", "secret/app/db", "password=second"],
    ));
    assert_eq!(wait_lines(2), "first\nsecond\n");
    secretd_tests::signal(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143));
}
