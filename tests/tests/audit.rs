//! The audit log of a real run, on both databases: nothing secret in it,
//! its chain verified by `secretctl audit verify` (and broken by any
//! tampering), fail-closed when the file cannot be written, rotation by
//! SIGHUP.

use std::path::Path;
use std::time::{Duration, Instant};

use secretd_client::Client;
use secretd_tests::{Api, Db, Server, ok, on_both_databases, secretctl, signal};
use serde_json::{Value, json};

on_both_databases!(
    a_full_run_leaves_no_secret_in_the_log_and_a_chain_that_verifies,
    an_unwritable_log_fails_requests_until_it_is_fixed,
);

const ROOT: &str = "audit-e2e-root-token";

fn verify(files: &[&Path]) -> std::process::Output {
    let mut args = vec!["audit", "verify"];
    let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(names.iter().map(String::as_str));
    // No server: verification works offline.
    secretctl("http://127.0.0.1:9", "", &args)
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}

async fn a_full_run_leaves_no_secret_in_the_log_and_a_chain_that_verifies(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::dev(&database.url, ROOT);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    ok(&secretctl(
        &server.url,
        ROOT,
        &[
            "audit",
            "enable",
            "file",
            &format!("file_path={}", log.display()),
        ],
    ));
    let listed = ok(&secretctl(&server.url, ROOT, &["audit", "list"]));
    assert!(listed.contains("file/"), "{listed}");

    // A run through the CLI, the client library and raw HTTP.
    let password = "p4ssw0rd-only-in-the-database";
    ok(&secretctl(
        &server.url,
        ROOT,
        &[
            "put",
            "secret/app/db",
            &format!("password={password}"),
            "user=app",
        ],
    ));
    let policy = dir.path().join("app.hcl");
    std::fs::write(
        &policy,
        "path \"secret/data/app/*\" {\n  capabilities = [\"read\"]\n}\n",
    )
    .unwrap();
    ok(&secretctl(
        &server.url,
        ROOT,
        &["policy", "write", "app", policy.to_str().unwrap()],
    ));
    let app_token = ok(&secretctl(
        &server.url,
        ROOT,
        &["token", "create", "--policy", "app", "--field", "token"],
    ))
    .trim()
    .to_owned();
    let client = Client::builder()
        .address(&server.url)
        .token(app_token.clone())
        .build()
        .unwrap();
    let secret = client.kv2("secret").get("app/db").await.unwrap();
    assert_eq!(secret.get("password"), Some(&json!(password)));
    assert!(
        client
            .kv2("secret")
            .put("app/db", json!({"x": "y"}))
            .await
            .is_err()
    );
    let (status, _) = Api::new(&server.url, "wrong-token-value")
        .call("GET", "secret/data/app/db", None)
        .await;
    assert_eq!(status, 403);

    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [password, ROOT, app_token.as_str(), "wrong-token-value"] {
        assert!(!text.contains(secret), "{secret:?} is in the audit log");
    }
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.len() >= 12, "{} entries", entries.len());
    assert!(
        entries
            .iter()
            .any(|e| e["request"]["path"] == "secret/data/app/db"
                && e["error"] == "permission denied"),
        "the refused write is in the log"
    );

    // The chain verifies, offline...
    let report = ok(&verify(&[&log]));
    assert!(report.contains(&entries.len().to_string()), "{report}");
    // ...and any tampering breaks it.
    let original = lines(&log);
    let mut removed = original.clone();
    removed.remove(5);
    let mut edited = original.clone();
    edited[5] = edited[5].replace("\"operation\":\"read\"", "\"operation\":\"list\"");
    if edited[5] == original[5] {
        edited[5] = edited[5].replace("\"type\":\"", "\"type\":\"x");
    }
    assert_ne!(edited[5], original[5]);
    let mut swapped = original.clone();
    swapped.swap(4, 5);
    for (name, tampered) in [
        ("removed", removed),
        ("edited", edited),
        ("swapped", swapped),
    ] {
        let copy = dir.path().join(format!("{name}.log"));
        write_lines(&copy, &tampered);
        let out = verify(&[&copy]);
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("{name}.log:")), "{name}: {stderr}");
    }

    // Rotation: move the file away, SIGHUP, and the chain carries on
    // across the two files.
    let rotated = dir.path().join("audit.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(server.pid(), "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !log.exists() {
        assert!(Instant::now() < deadline, "SIGHUP did not reopen the log");
        // Any audited request; the device reopens before its next line.
        Api::new(&server.url, ROOT)
            .call("GET", "sys/mounts", None)
            .await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Api::new(&server.url, ROOT)
        .call("GET", "sys/mounts", None)
        .await;
    ok(&verify(&[&rotated, &log]));
    let out = verify(&[&log, &rotated]);
    assert_eq!(out.status.code(), Some(2), "files out of order");
}

async fn an_unwritable_log_fails_requests_until_it_is_fixed(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let server = Server::dev(&database.url, ROOT);
    let api = Api::new(&server.url, ROOT);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    let (status, _) = api
        .call(
            "PUT",
            "sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": log}})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = api
        .call("POST", "secret/data/a", Some(json!({"data": {"k": "1"}})))
        .await;
    assert_eq!(status, 200);

    // The log is rotated away and its path becomes unwritable.
    std::fs::rename(&log, dir.path().join("audit.log.1")).unwrap();
    std::fs::create_dir(&log).unwrap();
    signal(server.pid(), "HUP");
    // Writes succeed until the writer has reopened the path; `written` is
    // the last one answered 200.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut written = "1".to_owned();
    let mut attempt = 0;
    let (status, body) = loop {
        attempt += 1;
        let value = format!("v{attempt}");
        let (status, body) = api
            .call("POST", "secret/data/a", Some(json!({"data": {"k": value}})))
            .await;
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        written = value;
    };
    assert_eq!(status, 500, "{body}");
    assert!(
        body["errors"][0].as_str().unwrap().contains("audit"),
        "{body}"
    );
    // Now that the device is broken, a write is refused before it runs.
    let (status, _) = api
        .call(
            "POST",
            "secret/data/a",
            Some(json!({"data": {"k": "refused"}})),
        )
        .await;
    assert_eq!(status, 500);
    let (status, health) = Api::new(&server.url, "")
        .call("GET", "sys/health", None)
        .await;
    assert_eq!(status, 200);
    assert!(health["audit_failures"]["file/"].is_string(), "{health}");
    assert!(server.log().contains("audit device cannot write"));

    // Fixed: requests go through again, and the refused write never happened.
    std::fs::remove_dir(&log).unwrap();
    let (status, body) = api.call("GET", "secret/data/a", None).await;
    assert_eq!(status, 200);
    // The write that broke on the device's reopen may have run (its
    // request line went to the old file); the one refused after never did.
    let k = body["data"]["data"]["k"].as_str().unwrap().to_owned();
    assert!(
        k == written || k == format!("v{attempt}"),
        "{k} is neither the last acknowledged write ({written}) nor the one in flight"
    );
    let (_, health) = Api::new(&server.url, "")
        .call("GET", "sys/health", None)
        .await;
    assert!(health.get("audit_failures").is_none(), "{health}");
}
