//! Audit devices through the API: what is logged, what is hashed, and
//! what happens when no device can write.

use std::path::Path;

use secretd_client::audit::Verifier;

use super::*;

/// The log's entries, after checking its hash chain.
fn read_log(path: &Path) -> Vec<Value> {
    let text = std::fs::read(path).unwrap();
    let mut verifier = Verifier::new();
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            verifier.feed(line).unwrap();
            serde_json::from_slice(line).unwrap()
        })
        .collect()
}

impl App {
    async fn enable_file_audit(&self, device: &str, file: &Path) {
        let r = self
            .root(
                "PUT",
                &format!("/v1/sys/audit/{device}"),
                Some(json!({"type": "file", "options": {"file_path": file}})),
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    }
}

#[tokio::test]
async fn requests_and_responses_are_logged_hashed_and_chained() {
    let app = App::dev().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    app.enable_file_audit("file", &file).await;

    let r = app.root("GET", "/v1/sys/audit", None).await;
    assert_eq!(r.body["data"]["file/"]["type"], "file");
    assert_eq!(r.body["data"]["file/"]["path"], "file/");
    assert_eq!(
        r.body["data"]["file/"]["options"]["file_path"],
        file.to_str().unwrap()
    );
    assert_eq!(
        r.body["file/"]["type"], "file",
        "sys/audit is injected at the top"
    );

    app.root(
        "POST",
        "/v1/secret/data/app/db",
        Some(json!({"data": {"password": "correct-horse-battery", "port": 5432}})),
    )
    .await;
    let read = app.root("GET", "/v1/secret/data/app/db", None).await;
    assert_eq!(
        read.body["data"]["data"]["password"],
        "correct-horse-battery"
    );
    let child = app.token(ROOT, json!({"policies": ["default"]})).await;
    let denied = app
        .with_token(&child, "GET", "/v1/secret/data/app/db", None)
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    let unknown = app
        .with_token("not-a-real-token", "GET", "/v1/secret/data/app/db", None)
        .await;
    assert_eq!(unknown.status, StatusCode::FORBIDDEN);

    let text = std::fs::read_to_string(&file).unwrap();
    for secret in [
        "correct-horse-battery",
        ROOT,
        child.as_str(),
        "not-a-real-token",
    ] {
        assert!(!text.contains(secret), "{secret} is in the audit log");
    }
    let entries = read_log(&file);
    let hash = |input: &str| {
        let app = &app;
        let input = input.to_owned();
        async move {
            let r = app
                .root(
                    "POST",
                    "/v1/sys/audit-hash/file",
                    Some(json!({ "input": input })),
                )
                .await;
            r.body["data"]["hash"].as_str().unwrap().to_owned()
        }
    };
    let write = entries
        .iter()
        .find(|e| e["type"] == "request" && e["request"]["path"] == "secret/data/app/db")
        .unwrap();
    // Root may both create and update, so no existence check was made
    // (see docs/audit.md): the write is logged as an update.
    assert_eq!(write["request"]["operation"], "update");
    assert_eq!(write["request"]["mount_type"], "kv");
    assert_eq!(write["request"]["mount_point"], "secret/");
    assert_eq!(
        write["request"]["data"]["data"]["password"],
        hash("correct-horse-battery").await
    );
    assert_eq!(write["request"]["data"]["data"]["port"], 5432);
    assert_eq!(write["auth"]["client_token"], hash(ROOT).await);
    assert_eq!(write["auth"]["policies"], json!(["root"]));
    let read_response = entries
        .iter()
        .find(|e| {
            e["type"] == "response"
                && e["request"]["path"] == "secret/data/app/db"
                && e["request"]["operation"] == "read"
                && e.get("error").is_none()
        })
        .unwrap();
    assert_eq!(
        read_response["response"]["data"]["data"]["password"],
        hash("correct-horse-battery").await
    );
    let created = entries
        .iter()
        .find(|e| e["type"] == "response" && e["request"]["path"] == "auth/token/create")
        .unwrap();
    assert_eq!(
        created["response"]["auth"]["client_token"],
        hash(&child).await
    );
    // Refusals are logged, request and response, with the reason.
    let refusals: Vec<&Value> = entries
        .iter()
        .filter(|e| e["error"] == "permission denied")
        .collect();
    assert_eq!(refusals.len(), 4, "two refused requests, two lines each");
    let unknown_hash = hash("not-a-real-token").await;
    assert!(
        refusals.iter().any(
            |e| e["request"]["client_token"] == unknown_hash.as_str() && e["auth"] == json!({})
        )
    );
    let child_hash = hash(&child).await;
    assert!(
        refusals
            .iter()
            .any(|e| e["auth"]["client_token"] == child_hash.as_str())
    );

    // Errors of the device API.
    for (path, body, message) in [
        (
            "file",
            json!({"type": "file", "options": {"file_path": "/tmp/x"}}),
            "path already in use",
        ),
        (
            "s",
            json!({"type": "socket", "options": {}}),
            "not supported",
        ),
        (
            "f2",
            json!({"type": "file", "options": {}}),
            "file_path is required",
        ),
        (
            "f3",
            json!({"type": "file", "options": {"file_path": dir.path().join("no/such/dir.log")}}),
            "cannot open",
        ),
    ] {
        let r = app
            .root("PUT", &format!("/v1/sys/audit/{path}"), Some(body))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(errors(&r)[0].contains(message), "{path}: {:?}", errors(&r));
    }
    let r = app
        .root(
            "POST",
            "/v1/sys/audit-hash/nosuch",
            Some(json!({"input": "x"})),
        )
        .await;
    assert_eq!(errors(&r), vec!["unknown audit backend \"nosuch/\""]);
    // Enabling and disabling need sudo.
    app.policy(
        "auditor",
        "path \"sys/audit*\" {\n  capabilities = [\"create\", \"update\", \"read\", \"delete\"]\n}\n",
    )
    .await;
    let auditor = app.token(ROOT, json!({"policies": ["auditor"]})).await;
    let r = app
        .with_token(&auditor, "DELETE", "/v1/sys/audit/file", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let r = app.root("DELETE", "/v1/sys/audit/file", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let lines = std::fs::read(&file).unwrap().len();
    app.root("GET", "/v1/secret/data/app/db", None).await;
    assert_eq!(
        std::fs::read(&file).unwrap().len(),
        lines,
        "disabled: nothing more"
    );
    let r = app.root("GET", "/v1/sys/audit", None).await;
    assert_eq!(r.body["data"], json!({}));
}

#[tokio::test]
async fn requests_fail_closed_while_no_device_can_write_and_recover() {
    let app = App::dev().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    app.enable_file_audit("file", &file).await;
    assert_eq!(
        app.root("GET", "/v1/sys/mounts", None).await.status,
        StatusCode::OK
    );

    // The log is rotated away and the file cannot be created again.
    std::fs::rename(&file, dir.path().join("audit.log.1")).unwrap();
    std::fs::create_dir(&file).unwrap();
    app.core.audit().reopen();
    let r = app
        .root(
            "POST",
            "/v1/secret/data/unlogged",
            Some(json!({"data": {"k": "v"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        errors(&r)[0].contains("no audit device"),
        "{:?}",
        errors(&r)
    );
    let r = app.root("GET", "/v1/secret/data/unlogged", None).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    // The write was refused before it was carried out.
    let health = app.send("GET", "/v1/sys/health", None, &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    let reason = health.body["audit_failures"]["file/"].as_str().unwrap();
    assert!(reason.contains("directory"), "{reason}");

    // Fixed: requests go through again and health is clean.
    std::fs::remove_dir(&file).unwrap();
    let r = app.root("GET", "/v1/secret/data/unlogged", None).await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "the refused write never happened"
    );
    let health = app.send("GET", "/v1/sys/health", None, &[]).await;
    assert!(
        health.body.get("audit_failures").is_none(),
        "{:?}",
        health.body
    );

    // With a second device that works, the broken one does not stop
    // requests, but it still shows in health.
    let second = dir.path().join("second.log");
    app.enable_file_audit("second", &second).await;
    std::fs::rename(&file, dir.path().join("audit.log.2")).unwrap();
    std::fs::create_dir(&file).unwrap();
    app.core.audit().reopen();
    let r = app.root("GET", "/v1/sys/mounts", None).await;
    assert_eq!(r.status, StatusCode::OK);
    let health = app.send("GET", "/v1/sys/health", None, &[]).await;
    assert!(health.body["audit_failures"]["file/"].is_string());
    assert!(health.body["audit_failures"].get("second/").is_none());
    assert!(!read_log(&second).is_empty());
}

#[tokio::test]
async fn devices_survive_a_seal_and_keep_their_key() {
    let app = App::new().await;
    let init = app.core.initialize_dev(Some(ROOT)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("audit.log");
    app.enable_file_audit("file", &file).await;
    let hash = || app.core.audit().hash("file/", "value");
    let before = hash().unwrap();
    app.root("PUT", "/v1/sys/seal", None).await;
    assert!(
        app.core.audit().devices().is_empty(),
        "sealed: no keys, no devices"
    );
    let r = app
        .send(
            "PUT",
            "/v1/sys/unseal",
            Some(json!({"key": init.unseal_key.as_str()})),
            &[],
        )
        .await;
    assert_eq!(r.body["sealed"], false);
    assert_eq!(hash(), Some(before), "the same HMAC key after unsealing");
    // The chain carries on in the same file.
    app.root("GET", "/v1/sys/mounts", None).await;
    read_log(&file);
}

#[tokio::test]
async fn a_device_cannot_be_pointed_at_a_file_that_is_not_an_audit_log() {
    let app = App::dev().await;
    let dir = tempfile::tempdir().unwrap();
    let precious = dir.path().join("seal.key");
    std::fs::write(&precious, b"0123456789abcdef\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&precious, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = app
        .root(
            "PUT",
            "/v1/sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": precious, "mode": "0644"}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        errors(&r)[0].contains("other than a secretd audit log"),
        "{:?}",
        errors(&r)
    );
    assert_eq!(std::fs::read(&precious).unwrap(), b"0123456789abcdef\n");
    let mode = std::fs::metadata(&precious).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "its mode was not changed");
    // A refused enable at a path in use touches nothing either.
    let log = dir.path().join("audit.log");
    app.enable_file_audit("file", &log).await;
    let other = dir.path().join("other.log");
    let r = app
        .root(
            "PUT",
            "/v1/sys/audit/file",
            Some(json!({"type": "file", "options": {"file_path": other}})),
        )
        .await;
    assert_eq!(errors(&r), vec!["path already in use"]);
    assert!(!other.exists());
}
