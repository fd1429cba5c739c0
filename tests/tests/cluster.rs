//! Three nodes on one PostgreSQL, started before the cluster is
//! initialised: one initialises, the others unseal on their own (static
//! seal); a write on one node is read on the others; concurrent
//! check-and-set writes across nodes have one winner per version; and
//! what nodes cache (mounts, policies, keys) and token revocations reach
//! every node within a second; `sys/ha-status` on each lists all three,
//! and a node that stops leaves the list.

use std::time::{Duration, Instant};

use secretd_tests::{
    Api, Server, TestDatabase, initialize_static, ok, secretctl, static_seal_config,
};
use serde_json::{Value, json};

/// What the issue allows for a change to reach every node.
const PROPAGATION: Duration = Duration::from_secs(1);

/// Calls `probe` on every node until each answers `want`; fails past
/// `within` (counted from `since`).
async fn seen_everywhere(
    apis: &[Api],
    since: Instant,
    within: Duration,
    what: &str,
    probe: impl AsyncFn(&Api) -> bool,
) {
    for (i, api) in apis.iter().enumerate() {
        while !probe(api).await {
            assert!(
                since.elapsed() <= within,
                "node {i} did not see {what} within {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn status(api: &Api, method: &str, path: &str, body: Option<Value>) -> u16 {
    api.call(method, path, body).await.0
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_share_writes_and_see_each_others_changes_within_a_second() {
    let Some(storage) = TestDatabase::postgres().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let seal = static_seal_config(&dir);
    let mut nodes: Vec<Server> = (0..3)
        .map(|_| Server::with_config(&storage.url, &seal))
        .collect();

    // Node 0 initialises; the others, already running, unseal themselves.
    let root = initialize_static(&nodes[0]).await;
    let apis: Vec<Api> = nodes.iter().map(|n| Api::new(&n.url, &root)).collect();
    let unauthenticated: Vec<Api> = nodes.iter().map(|n| Api::new(&n.url, "")).collect();
    seen_everywhere(
        &unauthenticated,
        Instant::now(),
        Duration::from_secs(10),
        "the initialisation",
        async |api| api.call("GET", "sys/health", None).await.0 == 200,
    )
    .await;

    // A write on one node is read on the others at once.
    let body = json!({"data": {"v": "from node 0"}});
    assert_eq!(
        status(&apis[0], "PUT", "secret/data/shared", Some(body)).await,
        200
    );
    for api in &apis[1..] {
        let (code, read) = api.call("GET", "secret/data/shared", None).await;
        assert_eq!(code, 200, "{read}");
        assert_eq!(read["data"]["data"]["v"], "from node 0");
    }

    // Check-and-set writes from all nodes at once: one winner per version.
    for version in 0..10u64 {
        let mut writes = Vec::new();
        for (i, api) in apis.iter().enumerate() {
            for j in 0..3 {
                let api = api.clone();
                writes.push(tokio::spawn(async move {
                    let body =
                        json!({"options": {"cas": version}, "data": {"by": format!("{i}/{j}")}});
                    api.call("PUT", "secret/data/cas", Some(body)).await.0
                }));
            }
        }
        let mut won = 0;
        for write in writes {
            match write.await.unwrap() {
                200 => won += 1,
                400 => {}
                other => panic!("a CAS write answered {other}"),
            }
        }
        assert_eq!(won, 1, "version {} had {won} winners", version + 1);
    }

    // A mount made on node 0 serves on every node.
    let since = Instant::now();
    let mount = json!({"type": "kv-v2"});
    assert_eq!(
        status(&apis[0], "POST", "sys/mounts/team", Some(mount)).await,
        204
    );
    seen_everywhere(&apis, since, PROPAGATION, "the new mount", async |api| {
        let body = json!({"data": {"k": "v"}});
        status(api, "PUT", "team/data/x", Some(body)).await == 200
    })
    .await;

    // A token whose policy is widened on node 0.
    let narrow = json!({"policy": "path \"secret/data/a\" { capabilities = [\"read\"] }"});
    assert_eq!(
        status(&apis[0], "PUT", "sys/policies/acl/app", Some(narrow)).await,
        204
    );
    let (_, created) = apis[0]
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["app"]})),
        )
        .await;
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let as_app: Vec<Api> = nodes.iter().map(|n| Api::new(&n.url, &token)).collect();
    for api in &as_app {
        assert_eq!(status(api, "GET", "secret/data/shared", None).await, 403);
    }
    let since = Instant::now();
    let wide = json!({"policy": "path \"secret/data/*\" { capabilities = [\"read\"] }"});
    assert_eq!(
        status(&apis[0], "PUT", "sys/policies/acl/app", Some(wide)).await,
        204
    );
    seen_everywhere(
        &as_app,
        since,
        PROPAGATION,
        "the policy change",
        async |api| status(api, "GET", "secret/data/shared", None).await == 200,
    )
    .await;

    // Revoked on node 0: refused by every node.
    let since = Instant::now();
    let revoke = json!({"token": token});
    assert_eq!(
        status(&apis[0], "PUT", "auth/token/revoke", Some(revoke)).await,
        204
    );
    seen_everywhere(&as_app, since, PROPAGATION, "the revocation", async |api| {
        status(api, "GET", "secret/data/shared", None).await == 403
    })
    .await;

    // A key rotation on node 0: every node encrypts with the new term.
    let since = Instant::now();
    assert_eq!(status(&apis[0], "PUT", "sys/rotate", None).await, 204);
    seen_everywhere(&apis, since, PROPAGATION, "the new key term", async |api| {
        api.call("GET", "sys/key-status", None).await.1["data"]["term"] == 2
    })
    .await;
    // What each node writes now, every node reads.
    for (i, api) in apis.iter().enumerate() {
        let body = json!({"data": {"v": i}});
        assert_eq!(
            status(api, "PUT", &format!("secret/data/after-{i}"), Some(body)).await,
            200
        );
    }
    for api in &apis {
        for i in 0..3 {
            let (code, read) = api
                .call("GET", &format!("secret/data/after-{i}"), None)
                .await;
            assert_eq!((code, read["data"]["data"]["v"].clone()), (200, json!(i)));
        }
    }

    // Every node lists the three (each by the address it serves on), itself
    // without an echo and the others with their last heartbeat.
    let mut urls: Vec<String> = nodes.iter().map(|n| n.url.clone()).collect();
    urls.sort();
    for (i, api) in apis.iter().enumerate() {
        let listed = ha_status(api).await;
        let addresses: Vec<String> = listed.iter().map(|(a, _)| a.clone()).collect();
        assert_eq!(addresses, urls, "node {i}");
        for (address, echo) in &listed {
            assert_eq!(
                echo.is_none(),
                *address == nodes[i].url,
                "node {i}: {listed:?}"
            );
        }
    }
    // `secretctl operator members` shows the same, one row per node.
    let members = secretctl(&nodes[0].url, &root, &["operator", "members"]);
    let members = ok(&members);
    for url in &urls {
        assert_eq!(
            members.lines().filter(|l| l.contains(url.as_str())).count(),
            1,
            "{members}"
        );
    }
    // A node that stops removes itself at once.
    let stopped = nodes.pop().unwrap();
    let gone = stopped.url.clone();
    assert!(stopped.stop().success());
    for api in &apis[..2] {
        let listed = ha_status(api).await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed.iter().all(|(a, _)| *a != gone), "{listed:?}");
    }
}

/// `sys/ha-status` as (api_address, last_echo) pairs, every node active.
async fn ha_status(api: &Api) -> Vec<(String, Option<String>)> {
    let (code, body) = api.call("GET", "sys/ha-status", None).await;
    assert_eq!(code, 200, "{body}");
    let mut listed: Vec<(String, Option<String>)> = body["data"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            assert_eq!(n["active_node"], true, "{n}");
            (
                n["api_address"].as_str().unwrap().to_owned(),
                n["last_echo"].as_str().map(str::to_owned),
            )
        })
        .collect();
    listed.sort();
    listed
}
