//! Start-up refuses bad configuration with a message that names what is
//! wrong, and never serves something unsafe by accident.

use std::process::{Command, Output};

use secretd_tests::{Api, Server, TestDatabase, binary};
use serde_json::json;

fn secretd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary("secretd"));
    cmd.args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn refused_with(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "secretd started; expected it to refuse ({needle})"
    );
    assert!(
        stderr.contains(needle),
        "the error does not name {needle:?}:\n{stderr}"
    );
}

fn config_file(dir: &tempfile::TempDir, text: &str) -> String {
    let path = dir.path().join("secretd.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn bad_configuration_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/x.db", dir.path().display());
    let cases = [
        (
            format!("[listener]\nadress = \"127.0.0.1:0\"\n[storage]\nurl = \"{db}\"\n"),
            "adress",
        ),
        (
            format!(
                "[listener]\naddress = \"nowhere\"\ntls_disable = true\n[storage]\nurl = \"{db}\"\n"
            ),
            "listener.address",
        ),
        (
            format!("[listener]\naddress = \"127.0.0.1:0\"\n[storage]\nurl = \"{db}\"\n"),
            "tls_disable",
        ),
        (
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n".to_owned(),
            "storage.url",
        ),
        (
            "[listener]\ntls_disable = true\n[storage]\nurl = \"mysql://x\"\n".to_owned(),
            "storage.url",
        ),
        (
            format!(
                "[listener]\ntls_disable = true\n[storage]\nurl = \"{db}\"\n[seal]\ntype = \"kms\"\n"
            ),
            "kms",
        ),
        (
            format!(
                "[listener]\ntls_disable = true\n[storage]\nurl = \"{db}\"\n[seal]\ntype = \"static\"\n"
            ),
            "key_file",
        ),
        (
            format!(
                "[listener]\ntls_disable = true\n[storage]\nurl = \"{db}\"\n[seal]\ntype = \"static\"\nkey_file = \"/nonexistent/key\"\n"
            ),
            "/nonexistent/key",
        ),
        (
            format!(
                "[listener]\naddress = \"127.0.0.1:0\"\ntls_cert_file = \"/nonexistent/c.pem\"\ntls_key_file = \"/nonexistent/k.pem\"\n[storage]\nurl = \"{db}\"\n"
            ),
            "/nonexistent/c.pem",
        ),
    ];
    for (text, needle) in cases {
        let path = config_file(&dir, &text);
        refused_with(&secretd(&["server", "--config", &path], &[]), needle);
    }
    let path = config_file(
        &dir,
        &format!(
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n[storage]\nurl = \"{db}\"\n"
        ),
    );
    refused_with(
        &secretd(
            &["server", "--config", &path],
            &[("SECRETD_LIMITS_MAX_JSON_DEPTH", "deep")],
        ),
        "SECRETD_LIMITS_MAX_JSON_DEPTH",
    );
    refused_with(&secretd(&["server"], &[]), "--config");
}

#[test]
fn dev_mode_listens_on_loopback_only() {
    let out = secretd(
        &["server", "--dev", "--dev-listen-address", "0.0.0.0:0"],
        &[],
    );
    refused_with(&out, "loopback");
    let out = secretd(&["server", "--dev", "--config", "x.toml"], &[]);
    assert!(
        !out.status.success(),
        "--dev and --config together are refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dev_mode_refuses_a_database_that_is_already_initialised() {
    let database = TestDatabase::sqlite();
    let first = Server::dev(&database.url, "root");
    drop(first);
    let out = secretd(
        &[
            "server",
            "--dev",
            "--dev-listen-address",
            "127.0.0.1:0",
            "--dev-storage",
            &database.url,
        ],
        &[],
    );
    refused_with(&out, "empty storage");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_seal_type_other_than_the_one_initialised_is_refused() {
    let database = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::with_config(&database.url, "");
    let (status, _) = Api::new(&server.url, "")
        .call(
            "PUT",
            "sys/init",
            Some(json!({"secret_shares": 1, "secret_threshold": 1})),
        )
        .await;
    assert_eq!(status, 200);
    drop(server);
    let key = dir.path().join("key");
    std::fs::write(&key, "ab".repeat(32)).unwrap();
    let path = config_file(
        &dir,
        &format!(
            "[listener]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n[storage]\nurl = \"{}\"\n\
             [seal]\ntype = \"static\"\nkey_file = \"{}\"\n",
            database.url,
            key.display()
        ),
    );
    refused_with(&secretd(&["server", "--config", &path], &[]), "shamir seal");
}
