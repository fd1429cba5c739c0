//! `sys/ha-status` through the API: who may read it, and what it says of
//! this node and of the other nodes in the registry.

use axum::http::StatusCode;
use serde_json::json;

use super::{App, ROOT};
use crate::core::nodes::NODE_EXPIRY;
use crate::storage::NodeRecord;
use crate::time::now_nanos;

fn other_node(id: &str, hostname: &str, last_seen: i64, sealed: bool) -> NodeRecord {
    NodeRecord {
        id: id.to_owned(),
        hostname: hostname.to_owned(),
        api_address: format!("https://{hostname}:8200"),
        version: "0.0.9".to_owned(),
        sealed,
        started_at: last_seen - 1_000_000_000,
        last_seen,
    }
}

#[tokio::test]
async fn ha_status_lists_the_live_nodes_and_needs_read() {
    let app = App::dev().await;
    let plain = app.token(ROOT, json!({"policies": ["default"]})).await;
    let r = app
        .with_token(&plain, "GET", "/v1/sys/ha-status", None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);

    // Two other nodes heard from recently (one of them sealed), one gone.
    // (Written by hand, as other nodes on PostgreSQL would: this node's own
    // heartbeat, on SQLite, would delete them.)
    app.core.stop();
    let now = now_nanos();
    let expiry = i64::try_from(NODE_EXPIRY.as_nanos()).unwrap();
    let storage = app.core.storage();
    storage
        .put_node(&other_node("b", "node-b", now - 1_000_000_000, false))
        .await
        .unwrap();
    storage
        .put_node(&other_node("c", "node-c", now, true))
        .await
        .unwrap();
    storage
        .put_node(&other_node(
            "d",
            "node-d",
            now - expiry - 1_000_000_000,
            false,
        ))
        .await
        .unwrap();

    app.policy(
        "watcher",
        r#"path "sys/ha-status" { capabilities = ["read"] }"#,
    )
    .await;
    let watcher = app.token(ROOT, json!({"policies": ["watcher"]})).await;
    let r = app
        .with_token(&watcher, "GET", "/v1/sys/ha-status", None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // Vault's sys injector: `nodes` also at the top level.
    assert_eq!(r.body["nodes"], r.body["data"]["nodes"]);
    let nodes = r.body["data"]["nodes"].as_array().unwrap();
    let names: Vec<&str> = nodes
        .iter()
        .map(|n| n["hostname"].as_str().unwrap())
        .collect();
    let me = crate::core::nodes::hostname();
    let mut expected = vec![me.as_str(), "node-b", "node-c"];
    expected.sort();
    assert_eq!(names, expected, "node-d expired");
    let by_name = |name: &str| nodes.iter().find(|n| n["hostname"] == name).unwrap();
    // This node: active, no echo (it is the one answering).
    let this = by_name(&me);
    assert_eq!(this["active_node"], true);
    assert_eq!(this["last_echo"], json!(null));
    assert_eq!(this["version"], env!("CARGO_PKG_VERSION"));
    // Another live node: active, with the time of its last heartbeat.
    let b = by_name("node-b");
    assert_eq!(b["active_node"], true);
    assert_eq!(b["api_address"], "https://node-b:8200");
    assert_eq!(b["last_echo"], crate::time::rfc3339(now - 1_000_000_000));
    assert_eq!(b["cluster_address"], "");
    // A sealed node serves nothing: listed, but not active.
    let c = by_name("node-c");
    assert_eq!(
        (c["active_node"].clone(), c["sealed"].clone()),
        (json!(false), json!(true))
    );

    let r = app.root("PUT", "/v1/sys/ha-status", Some(json!({}))).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{:?}", r.body);
}

#[tokio::test]
async fn the_heartbeat_writes_this_node_and_clears_gone_ones() {
    let app = App::dev().await;
    let storage = app.core.storage();
    // The first heartbeat runs as the node starts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while storage.nodes(0).await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "no heartbeat");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    app.core.stop();
    let expiry = i64::try_from(NODE_EXPIRY.as_nanos()).unwrap();
    let long_gone = now_nanos() - 2 * expiry;
    storage
        .put_node(&other_node("gone", "node-gone", long_gone, false))
        .await
        .unwrap();
    app.core.heartbeat().await.unwrap();
    let rows = storage.nodes(0).await.unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_ne!(rows[0].id, "gone");
    assert!(!rows[0].sealed);
    assert!(rows[0].last_seen > long_gone + expiry);

    // On SQLite (one process), any other row is a process that is gone.
    storage
        .put_node(&other_node("earlier", "node-earlier", now_nanos(), false))
        .await
        .unwrap();
    app.core.heartbeat().await.unwrap();
    assert_eq!(storage.nodes(0).await.unwrap().len(), 1);

    app.core.leave_registry().await;
    assert!(storage.nodes(0).await.unwrap().is_empty());
}
