//! Kubernetes login end to end, on both databases: a real server, set up
//! with `secretctl`; a pod's projected service-account token (signed here
//! with a P-256 key the mount trusts) logs in with `secretctl login`, and
//! the saved token reads what its role's policy allows and nothing else.
//! (TokenReview against an HTTPS API server is tested in process, in
//! `server/src/auth/kubernetes/tests.rs`.)

use std::process::Output;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secretd_tests::{Db, Server, ok, on_both_databases, secretctl, secretctl_env};
use serde_json::{Value, json};

on_both_databases!(a_pod_logs_in_with_secretctl_and_reads_its_secrets);

const ROOT: &str = "e2e-root-token";
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

const APP_READER: &str = r#"
path "secret/data/app/*" {
  capabilities = ["read"]
}
"#;

/// The claims kube-apiserver puts in a projected token for `ns/name`.
fn projected(namespace: &str, name: &str, audience: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    json!({
        "aud": [audience],
        "exp": now + 3600,
        "iat": now,
        "iss": ISSUER,
        "jti": "3f4e5d6c-7b8a-4c9d-8e0f-1a2b3c4d5e6f",
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"},
            "pod": {"name": format!("{name}-5d8f7c9b6-abcde"), "uid": "2c3d4e5f-6a7b-4c8d-9e0f-a1b2c3d4e5f6"},
            "serviceaccount": {"name": name, "uid": "7e6d5c4b-3a29-4817-b6a5-f4e3d2c1b0a9"}
        },
        "nbf": now,
        "sub": format!("system:serviceaccount:{namespace}:{name}")
    })
}

fn sign(key: &rcgen::KeyPair, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = None;
    header.kid = Some("e2e".into());
    let key = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

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
