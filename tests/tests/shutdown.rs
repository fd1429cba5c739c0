//! SIGTERM while clients are writing: every acknowledged write survives,
//! nothing half-written is visible, and the process exits cleanly.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use secretd_tests::{Api, Db, Server, on_both_databases, signal};
use serde_json::json;

on_both_databases!(sigterm_drains_in_flight_writes);

async fn sigterm_drains_in_flight_writes(db: Db) {
    let Some(database) = db.create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seal = secretd_tests::static_seal_config(&dir);
    let server = Server::with_config(&database.url, &seal);
    let anonymous = Api::new(&server.url, "");
    let (status, init) = anonymous.call("PUT", "sys/init", Some(json!({}))).await;
    assert_eq!(status, 200, "{init}");
    assert_eq!(
        init["keys"],
        json!([]),
        "a static seal has no shares to hand out"
    );
    let root = init["root_token"].as_str().unwrap().to_owned();
    let api = Arc::new(Api::new(&server.url, &root));
    let (status, _) = api
        .call("POST", "sys/mounts/secret", Some(json!({"type": "kv-v2"})))
        .await;
    assert_eq!(status, 204);

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let (api, stop) = (api.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("w{w}/k{i}");
                    let body = json!({"data": {"value": format!("{key}-value")}});
                    match try_write(&api, &key, body).await {
                        Some(200) => acknowledged.push(key),
                        Some(_) | None => break,
                    }
                }
                acknowledged
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pid = server.pid();
    signal(pid, "TERM");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    let status = server.stop_after_signal();
    assert!(status.success(), "secretd exited with {status}");
    assert!(
        acknowledged.len() > 16,
        "the writers got going ({} writes)",
        acknowledged.len()
    );

    let restarted = Server::with_config(&database.url, &seal);
    let api = Api::new(&restarted.url, &root);
    let (_, sealed) = api.call("GET", "sys/seal-status", None).await;
    assert_eq!(
        sealed["sealed"], false,
        "a static seal unseals itself at start"
    );
    for key in &acknowledged {
        let (status, body) = api.call("GET", &format!("secret/data/{key}"), None).await;
        assert_eq!(status, 200, "acknowledged write {key} was lost");
        assert_eq!(body["data"]["data"]["value"], format!("{key}-value"));
    }
    drop(restarted);
    database.remove().await;
}

/// A write that may meet a server going away: the status, or `None` if
/// the connection failed.
async fn try_write(api: &Api, key: &str, body: serde_json::Value) -> Option<u16> {
    api.try_call("POST", &format!("secret/data/{key}"), Some(body))
        .await
        .map(|(s, _)| s)
}
