//! Access control from the command line, with the real binaries on both
//! databases: `secretctl policy *`, a token scoped by a policy, `token
//! lookup|renew|revoke`, `read|write|list|delete` on raw API paths,
//! `secrets tune`, `auth list`. And the commands that need no server:
//! `policy fmt` and `audit verify` (on files built with the chain's own
//! writer, `secretd_client::audit::ChainHead`).
//!
//! `audit enable|list|disable` end to end come with the server's audit
//! devices.

use std::path::Path;
use std::process::Output;

use secretd_client::audit::ChainHead;
use secretd_tests::{Db, Server, ok, on_both_databases, secretctl, secretctl_with_stdin};
use serde_json::Value;

on_both_databases!(
    policies_and_a_token_scoped_by_one,
    token_lookup_renew_and_revoke,
    raw_paths_tune_and_auth_list,
);

const ROOT: &str = "root";

const READER_POLICY: &str = r#"# Reads the app's secrets, nothing else.
path "secret/data/app/*" {
  capabilities = ["read", "list"]
}
"#;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_str(&ok(output)).unwrap()
}

fn write_file(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

async fn policies_and_a_token_scoped_by_one(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::dev(&database.url, ROOT);
    let url = &server.url;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "reader.hcl", READER_POLICY);

    ok(&secretctl(url, ROOT, &["policy", "write", "reader", &file]));
    let listed = ok(&secretctl(url, ROOT, &["policy", "list"]));
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        ["default", "reader", "root"]
    );
    let read = ok(&secretctl(url, ROOT, &["policy", "read", "reader"]));
    assert_eq!(read, READER_POLICY, "read prints the document as written");
    let read = json(&secretctl(
        url,
        ROOT,
        &["policy", "read", "reader", "--format", "json"],
    ));
    assert_eq!(read["name"], "reader");

    // A policy from stdin; the server refuses one it cannot parse.
    let piped = secretctl_with_stdin(
        url,
        ROOT,
        &["policy", "write", "other", "-"],
        Some("path \"sys/mounts\" { capabilities = [\"read\"] }"),
    );
    ok(&piped);
    let bad = secretctl_with_stdin(
        url,
        ROOT,
        &["policy", "write", "bad", "-"],
        Some("path \"x\" { capabilities = [\"reed\"] }"),
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("reed"), "{}", stderr(&bad));

    ok(&secretctl(
        url,
        ROOT,
        &["put", "secret/app/db", "password=hunter2"],
    ));
    ok(&secretctl(
        url,
        ROOT,
        &["put", "secret/other/db", "password=x"],
    ));

    // As the vault CLI writes it: one dash.
    let token = ok(&secretctl(
        url,
        ROOT,
        &["token", "create", "-policy", "reader", "--field", "token"],
    ));
    let token = token.trim();
    assert!(token.starts_with("hvs."), "{token}");
    let password = ok(&secretctl(
        url,
        token,
        &["get", "secret/app/db", "--field", "password"],
    ));
    assert_eq!(password, "hunter2\n");

    let denied = secretctl(url, token, &["put", "secret/other/db", "password=y"]);
    assert_eq!(denied.status.code(), Some(2));
    assert!(
        stderr(&denied).contains("permission denied"),
        "{}",
        stderr(&denied)
    );
    let denied = secretctl(url, token, &["put", "secret/app/db", "password=y"]);
    assert_eq!(denied.status.code(), Some(2), "read and list only");
    let denied = secretctl(url, token, &["get", "secret/other/db"]);
    assert!(
        stderr(&denied).contains("permission denied"),
        "{}",
        stderr(&denied)
    );
    let denied = secretctl(url, token, &["policy", "list"]);
    assert_eq!(denied.status.code(), Some(2));

    // Deleting the policy takes the access away from the token at once.
    ok(&secretctl(url, ROOT, &["policy", "delete", "reader"]));
    let gone = secretctl(url, token, &["get", "secret/app/db"]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(
        stderr(&gone).contains("permission denied"),
        "{}",
        stderr(&gone)
    );
    let missing = secretctl(url, ROOT, &["policy", "read", "reader"]);
    assert_eq!(missing.status.code(), Some(2));

    // fmt rewrites a file in place and needs no server (no address here).
    let messy = write_file(
        dir.path(),
        "messy.hcl",
        "# top\npath \"a/*\"{\ncapabilities=[\"read\",\"list\"] # why\n}",
    );
    let formatted = secretctl("http://127.0.0.1:1", "", &["policy", "fmt", &messy]);
    ok(&formatted);
    assert_eq!(
        std::fs::read_to_string(&messy).unwrap(),
        "# top\npath \"a/*\" {\n  capabilities = [\"read\", \"list\"] # why\n}\n"
    );
    let refused = write_file(dir.path(), "refused.hcl", "path \"a\" { color = \"red\" }");
    let out = secretctl("", "", &["policy", "fmt", &refused]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown key \"color\""),
        "{}",
        stderr(&out)
    );
}

async fn token_lookup_renew_and_revoke(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::dev(&database.url, ROOT);
    let url = &server.url;

    let created = json(&secretctl(
        url,
        ROOT,
        &[
            "token",
            "create",
            "--policy",
            "default",
            "--ttl",
            "1h",
            "--display-name",
            "ci",
            "--metadata",
            "team=payments",
            "--format",
            "json",
        ],
    ));
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let accessor = created["auth"]["accessor"].as_str().unwrap().to_owned();
    assert_eq!(created["auth"]["lease_duration"], 3600);
    assert_eq!(created["auth"]["metadata"]["team"], "payments");

    // Lookup: itself, by value (from stdin), by accessor. Never the token.
    let own = ok(&secretctl(url, &token, &["token", "lookup"]));
    assert!(!own.contains(&token), "lookup printed the token:\n{own}");
    assert!(own.contains("token-ci"), "{own}");
    let by_value = secretctl_with_stdin(
        url,
        ROOT,
        &["token", "lookup", "-", "--format", "json"],
        Some(&format!("{token}\n")),
    );
    let by_value: Value = serde_json::from_str(&ok(&by_value)).unwrap();
    assert_eq!(by_value["accessor"], accessor.as_str());
    assert!(by_value.get("id").is_none());
    let by_accessor = ok(&secretctl(
        url,
        ROOT,
        &[
            "token",
            "lookup",
            "--accessor",
            &accessor,
            "--field",
            "display_name",
        ],
    ));
    assert_eq!(by_accessor, "token-ci\n");

    // Renew: itself with an increment, by accessor. The token is not shown.
    let renewed = ok(&secretctl(
        url,
        &token,
        &["token", "renew", "--increment", "30m"],
    ));
    assert!(renewed.contains("token_duration       30m0s"), "{renewed}");
    assert!(!renewed.contains(&token), "{renewed}");
    let ttl = ok(&secretctl(
        url,
        &token,
        &["token", "lookup", "--field", "ttl"],
    ));
    let ttl: u64 = ttl.trim().parse().unwrap();
    assert!((1700..=1800).contains(&ttl), "ttl {ttl}");
    ok(&secretctl(
        url,
        ROOT,
        &["token", "renew", "--accessor", &accessor, "-increment=2h"],
    ));

    // Revoke by value: the token stops working.
    ok(&secretctl(url, ROOT, &["token", "revoke", &token]));
    let revoked = secretctl(url, &token, &["token", "lookup"]);
    assert_eq!(revoked.status.code(), Some(2));
    assert!(stderr(&revoked).contains("403"), "{}", stderr(&revoked));

    // Revoke --self and --accessor.
    let own = ok(&secretctl(
        url,
        ROOT,
        &["token", "create", "--field", "token"],
    ));
    let own = own.trim();
    ok(&secretctl(url, own, &["token", "revoke", "--self"]));
    assert_eq!(
        secretctl(url, own, &["token", "lookup"]).status.code(),
        Some(2)
    );
    let other = json(&secretctl(
        url,
        ROOT,
        &["token", "create", "--format", "json"],
    ));
    let other_token = other["auth"]["client_token"].as_str().unwrap();
    let other_accessor = other["auth"]["accessor"].as_str().unwrap();
    ok(&secretctl(
        url,
        ROOT,
        &["token", "revoke", "--accessor", other_accessor],
    ));
    assert_eq!(
        secretctl(url, other_token, &["token", "lookup"])
            .status
            .code(),
        Some(2)
    );

    // Revoke --mode orphan: the parent goes, its child stays.
    let parent = ok(&secretctl(
        url,
        ROOT,
        &["token", "create", "--field", "token"],
    ));
    let parent = parent.trim();
    let child = ok(&secretctl(
        url,
        parent,
        &["token", "create", "--field", "token"],
    ));
    let child = child.trim();
    ok(&secretctl(
        url,
        ROOT,
        &["token", "revoke", "--mode", "orphan", parent],
    ));
    assert_eq!(
        secretctl(url, parent, &["token", "lookup"]).status.code(),
        Some(2)
    );
    let orphan = ok(&secretctl(
        url,
        child,
        &["token", "lookup", "--field", "orphan"],
    ));
    assert_eq!(orphan, "true\n");

    // An orphan created directly, and the accessor list (sudo).
    let orphan = json(&secretctl(
        url,
        ROOT,
        &["token", "create", "--orphan", "--format", "json"],
    ));
    assert_eq!(orphan["auth"]["orphan"], true);
    let accessors = ok(&secretctl(url, ROOT, &["list", "auth/token/accessors"]));
    assert!(
        accessors.contains(orphan["auth"]["accessor"].as_str().unwrap()),
        "{accessors}"
    );
}

async fn raw_paths_tune_and_auth_list(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::dev(&database.url, ROOT);
    let url = &server.url;
    let dir = tempfile::tempdir().unwrap();
    let file = write_file(dir.path(), "x.hcl", READER_POLICY);

    // write with a value from a file, list, read, delete.
    let written = ok(&secretctl(
        url,
        ROOT,
        &["write", "sys/policies/acl/x", &format!("policy=@{file}")],
    ));
    assert!(written.contains("Success! Data written to: sys/policies/acl/x"));
    let listed = ok(&secretctl(url, ROOT, &["list", "sys/policies/acl"]));
    assert!(listed.lines().any(|l| l == "x"), "{listed}");
    let policy = ok(&secretctl(
        url,
        ROOT,
        &["read", "sys/policies/acl/x", "--field", "policy"],
    ));
    assert_eq!(policy.trim_end(), READER_POLICY.trim_end());
    ok(&secretctl(url, ROOT, &["delete", "sys/policies/acl/x"]));
    let missing = secretctl(url, ROOT, &["read", "sys/policies/acl/x"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(stderr(&missing).contains("No value found at sys/policies/acl/x"));

    // read sys/mounts; a KV path with a query parameter; an empty list.
    let mounts = json(&secretctl(
        url,
        ROOT,
        &["read", "sys/mounts", "--format", "json"],
    ));
    assert_eq!(mounts["data"]["secret/"]["type"], "kv");
    ok(&secretctl(url, ROOT, &["put", "secret/app/db", "v=1"]));
    ok(&secretctl(url, ROOT, &["put", "secret/app/db", "v=2"]));
    let first = ok(&secretctl(
        url,
        ROOT,
        &["read", "secret/data/app/db", "version=1", "--field", "data"],
    ));
    assert_eq!(first, "{\"v\":\"1\"}\n");
    let raw_list = ok(&secretctl(
        url,
        ROOT,
        &["list", "--raw", "secret/metadata/app"],
    ));
    assert!(raw_list.contains("db"), "{raw_list}");
    let empty = secretctl(url, ROOT, &["list", "--raw", "secret/metadata/none"]);
    assert_eq!(empty.status.code(), Some(2));

    // write auth/token/create prints the token table, as vault write does;
    // repeated keys are a list. Warnings go to stderr.
    let created = secretctl(
        url,
        ROOT,
        &[
            "write",
            "auth/token/create",
            "policies=default",
            "policies=nope",
            "ttl=10m",
        ],
    );
    let table = ok(&created);
    assert!(table.contains("token                hvs."), "{table}");
    assert!(table.contains("token_duration       10m0s"), "{table}");
    assert!(table.contains("\"nope\""), "{table}");
    assert!(stderr(&created).contains("Policy \"nope\" does not exist"));
    let forbidden = secretctl(url, ROOT, &["write", "auth/token/create"]);
    assert_eq!(forbidden.status.code(), Some(1), "no pairs without -f");
    ok(&secretctl(url, ROOT, &["write", "-f", "auth/token/create"]));

    // secrets tune, then secrets list shows the TTLs (and the raw read too).
    ok(&secretctl(
        url,
        ROOT,
        &[
            "secrets",
            "tune",
            "secret/",
            "--default-lease-ttl",
            "1h",
            "--max-lease-ttl",
            "24h",
        ],
    ));
    let list = ok(&secretctl(url, ROOT, &["secrets", "list"]));
    let row = list
        .lines()
        .find(|l| l.starts_with("secret/"))
        .unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("1h0m0s") && row.contains("24h0m0s"), "{row}");
    let tuned = json(&secretctl(
        url,
        ROOT,
        &["secrets", "list", "--format", "json"],
    ));
    assert_eq!(tuned["secret/"]["config"]["default_lease_ttl"], 3600);
    let too_long = secretctl(
        url,
        ROOT,
        &["secrets", "tune", "secret/", "--max-lease-ttl", "10000h"],
    );
    assert_eq!(too_long.status.code(), Some(2), "{}", stderr(&too_long));

    // auth list shows the token method.
    let auth = ok(&secretctl(url, ROOT, &["auth", "list"]));
    let row = auth
        .lines()
        .find(|l| l.starts_with("token/"))
        .unwrap_or_else(|| panic!("{auth}"));
    assert!(row.contains("token"), "{row}");
    let disabled = secretctl(url, ROOT, &["auth", "disable", "token"]);
    assert_eq!(disabled.status.code(), Some(2), "the token method stays");
}

/// Lines of a valid chain, as the server writes them.
fn chain(n: usize) -> Vec<String> {
    let mut head = ChainHead::default();
    (0..n)
        .map(|i| {
            let body = format!(r#"{{"type":"request","request":{{"path":"secret/data/{i}"}}}}"#);
            String::from_utf8(head.link(body.as_bytes())).unwrap()
        })
        .collect()
}

fn audit_file(dir: &Path, name: &str, lines: &[String]) -> String {
    write_file(dir, name, &format!("{}\n", lines.join("\n")))
}

fn verify(files: &[&str]) -> Output {
    let mut args = vec!["audit", "verify"];
    args.extend_from_slice(files);
    // No server: the address points nowhere.
    secretctl("http://127.0.0.1:1", "", &args)
}

#[test]
fn audit_verify_passes_a_chain_and_finds_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let lines = chain(6);

    // A whole chain, in one file and rotated into two.
    let whole = audit_file(dir.path(), "audit.log", &lines);
    let report = ok(&verify(&[&whole]));
    assert!(report.contains("lines           6"), "{report}");
    assert!(report.contains("starts_chain    true"), "{report}");
    assert!(report.contains("last_seq        6"), "{report}");
    let old = audit_file(dir.path(), "audit.log.1", &lines[..3]);
    let new = audit_file(dir.path(), "audit.log.2", &lines[3..]);
    let json: Value = serde_json::from_str(&ok(&secretctl(
        "",
        "",
        &["audit", "verify", &old, &new, "--format", "json"],
    )))
    .unwrap();
    assert_eq!(json["lines"], 6);
    assert_eq!(json["starts_chain"], true);
    // The newer file alone continues a chain.
    let tail = ok(&verify(&[&new]));
    assert!(
        tail.contains("continues an earlier file from seq 4"),
        "{tail}"
    );

    let broken = |name: &str, lines: &[String], at: &str| {
        let file = audit_file(dir.path(), name, lines);
        let out = verify(&[&file]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        let expected = format!("{file}:{at}: ");
        assert!(
            stderr(&out).starts_with(&expected),
            "{name}: {}",
            stderr(&out)
        );
        stderr(&out)
    };
    let mut removed = lines.clone();
    removed.remove(2);
    broken("removed.log", &removed, "3");
    let mut edited = lines.clone();
    edited[1] = edited[1].replace("secret/data/1", "secret/data/9");
    broken("edited.log", &edited, "3");
    let mut swapped = lines.clone();
    swapped.swap(2, 3);
    broken("swapped.log", &swapped, "3");
    // Rotated files given in the wrong order.
    let out = verify(&[&new, &old]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(&format!("{old}:1: ")),
        "{}",
        stderr(&out)
    );

    // A torn last line: no newline, not JSON.
    let torn = write_file(
        dir.path(),
        "torn.log",
        &format!("{}\n{}", lines[..5].join("\n"), &lines[5][..20]),
    );
    let out = verify(&[&torn]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&format!("{torn}:6: the last line is torn")));

    // A file that cannot be read is a local error.
    let out = verify(&[&dir.path().join("missing.log").display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}
