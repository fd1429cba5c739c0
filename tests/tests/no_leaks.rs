//! A whole run, end to end, with debug logging: a static seal, an audit
//! device, KV secrets, policies and tokens, a Kubernetes login, database
//! credentials from the real PostgreSQL (read, looked up, revoked),
//! `secretctl run` and `secretctl agent`, and refused attempts with wrong
//! tokens and JWTs. Then every line the server logged, every audit line,
//! and everything `run` and the agent printed is searched for each secret
//! and token the run used: none may appear.

use std::process::{Command, Stdio};

use secretd_tests::{
    Api, K8S_ISSUER as ISSUER, Server, TestDatabase, binary, counting_engine, counting_target,
    initialize_static, ok, projected_claims, secretctl, sign_jwt, static_seal_config,
};
use serde_json::{Value, json};

/// Runs `secretctl` with `env` only; returns (exit code, stdout, stderr).
fn secretctl_with(url: &str, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("secretctl"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SECRETD_ADDR", url)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_or_token_reaches_a_log() {
    let Some((_target, _db, target_name)) = counting_target().await else {
        return;
    };
    let storage = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let seal = static_seal_config(&dir);
    let server = Server::with_config(&storage.url, &seal);
    let root = initialize_static(&server).await;
    let url = server.url.as_str();
    let api = Api::new(url, &root);
    let mut secrets: Vec<(String, String)> = vec![
        ("the root token".into(), root.clone()),
        (
            "the seal key".into(),
            std::fs::read_to_string(path("seal.key"))
                .unwrap()
                .trim()
                .to_owned(),
        ),
    ];

    // Audit everything.
    ok(&secretctl(
        url,
        &root,
        &[
            "audit",
            "enable",
            "file",
            &format!("file_path={}", path("audit.log")),
        ],
    ));

    // KV secrets and a token that may read them.
    let password = format!("kv-password-{}", uuid::Uuid::new_v4().simple());
    secrets.push(("a KV value".into(), password.clone()));
    ok(&secretctl(
        url,
        &root,
        &[
            "put",
            "secret/app/db",
            &format!("password={password}"),
            "user=app",
        ],
    ));
    let policy = "path \"secret/data/app/*\" { capabilities = [\"read\"] }\n\
                  path \"db/creds/app\" { capabilities = [\"read\"] }\n\
                  path \"sys/leases/revoke\" { capabilities = [\"update\"] }\n";
    std::fs::write(path("app.hcl"), policy).unwrap();
    ok(&secretctl(
        url,
        &root,
        &["policy", "write", "app", &path("app.hcl")],
    ));
    let app_token = ok(&secretctl(
        url,
        &root,
        &["token", "create", "--policy", "app", "--field", "token"],
    ))
    .trim()
    .to_owned();
    secrets.push(("a child token".into(), app_token.clone()));

    // Kubernetes login: the JWT is a credential too.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    std::fs::write(path("sa.pub"), key.public_key_pem()).unwrap();
    ok(&secretctl(url, &root, &["auth", "enable", "kubernetes"]));
    ok(&secretctl(
        url,
        &root,
        &[
            "write",
            "auth/kubernetes/config",
            &format!("pem_keys=@{}", path("sa.pub")),
            &format!("issuer={ISSUER}"),
        ],
    ));
    ok(&secretctl(
        url,
        &root,
        &[
            "write",
            "auth/kubernetes/role/app",
            "bound_service_account_names=app",
            "bound_service_account_namespaces=prod",
            "audience=secretd",
            "token_policies=app",
        ],
    ));
    let jwt = sign_jwt(&key, &projected_claims("prod", "app", "secretd"));
    secrets.push(("a service-account JWT".into(), jwt.clone()));
    std::fs::write(path("jwt"), &jwt).unwrap();
    let (status, login) = Api::new(url, "")
        .call(
            "POST",
            "auth/kubernetes/login",
            Some(json!({"role": "app", "jwt": jwt})),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let k8s_token = login["auth"]["client_token"].as_str().unwrap().to_owned();
    secrets.push(("a login's token".into(), k8s_token.clone()));

    // Database credentials: read, renewed, revoked.
    counting_engine(&api, &target_name, "app", "1h", "").await;
    let (status, creds) = Api::new(url, &k8s_token)
        .call("GET", "db/creds/app", None)
        .await;
    assert_eq!(status, 200, "{creds}");
    let db_password = creds["data"]["password"].as_str().unwrap().to_owned();
    secrets.push(("a database password".into(), db_password));
    let lease_id = creds["lease_id"].as_str().unwrap().to_owned();
    let (status, _) = api
        .call(
            "PUT",
            "sys/leases/lookup",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = api
        .call(
            "PUT",
            "sys/leases/revoke",
            Some(json!({"lease_id": lease_id})),
        )
        .await;
    assert_eq!(status, 204);

    // Refused attempts carry secrets too.
    let wrong_token = format!("wrong-token-{}", uuid::Uuid::new_v4().simple());
    secrets.push(("a wrong token".into(), wrong_token.clone()));
    assert_eq!(
        Api::new(url, &wrong_token)
            .call("GET", "secret/data/app/db", None)
            .await
            .0,
        403
    );
    let stranger_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = sign_jwt(&stranger_key, &projected_claims("prod", "app", "secretd"));
    secrets.push(("a forged JWT".into(), forged.clone()));
    let (status, _) = Api::new(url, "")
        .call(
            "POST",
            "auth/kubernetes/login",
            Some(json!({"role": "app", "jwt": forged})),
        )
        .await;
    assert_eq!(status, 403);

    // secretctl run and the agent, logging in with the JWT.
    let jwt_file = path("jwt");
    let auth_env = [
        ("SECRETD_AUTH_METHOD", "kubernetes"),
        ("SECRETD_AUTH_ROLE", "app"),
        ("SECRETD_AUTH_TOKEN_FILE", jwt_file.as_str()),
    ];
    let (code, run_out, run_err) = secretctl_with(
        url,
        &auth_env,
        &[
            "run",
            "--env",
            "PW=secret/app/db#password",
            "--env",
            "DB=db/creds/app#password",
            "--",
            "sh",
            "-c",
            "test -n \"$PW\" && test -n \"$DB\"",
        ],
    );
    assert_eq!(code, 0, "{run_err}");
    std::fs::write(
        path("agent.toml"),
        format!(
            "[auth]\nmethod = \"kubernetes\"\nrole = \"app\"\ntoken_file = \"{}\"\n\
             [[template]]\ndestination = \"{}\"\ncontents = \"{{{{ secret('secret/app/db').password }}}} {{{{ secret('secret/app/db').nope }}}}\"\n",
            path("jwt"),
            path("out.txt")
        ),
    )
    .unwrap();
    // A template that fails on a missing key: its message must not quote
    // the value next to it.
    let (code, agent_out, agent_err) = secretctl_with(
        url,
        &[],
        &["agent", "--once", "--config", &path("agent.toml")],
    );
    assert_eq!(code, 66, "{agent_err}");

    // Every line anyone wrote.
    // (The harness runs every server with secretd=debug.)
    let server_log = server.log();
    assert!(
        server_log.contains("DEBUG") && server_log.contains("kubernetes"),
        "debug logging, and the refused login, are in the log:\n{server_log}"
    );
    let audit_log = std::fs::read_to_string(path("audit.log")).unwrap();
    let entries: Vec<Value> = audit_log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.len() > 20, "{} audit entries", entries.len());
    for (what, value) in &secrets {
        assert!(value.len() >= 16, "{what} is too short to search for");
        for (place, text) in [
            ("the server log", &server_log),
            ("the audit log", &audit_log),
            ("run's output", &format!("{run_out}{run_err}")),
            ("the agent's output", &format!("{agent_out}{agent_err}")),
        ] {
            assert!(!text.contains(value.as_str()), "{what} is in {place}");
        }
    }
}
