//! Access control end to end, on both databases: policies limit tokens,
//! token trees die together, use limits and TTL caps hold, and a policy
//! change reaches every node.

use std::time::{Duration, Instant};

use secretd_tests::{Api, Db, Server, on_both_databases};
use serde_json::{Value, json};

on_both_databases!(
    a_read_only_token_reads_and_nothing_more,
    revoking_a_parent_kills_its_children,
    use_limits_run_out_exactly,
    renewals_follow_the_ttl_caps,
    expired_tokens_are_refused_and_cleaned_up,
);

const ROOT: &str = "e2e-root-token";

const READER: &str = r#"
path "secret/data/app/*" {
  capabilities = ["read"]
}
path "secret/metadata/app/*" {
  capabilities = ["list"]
}
"#;

const CREATOR: &str = "path \"auth/token/create\" {\n  capabilities = [\"update\"]\n}\n";

async fn dev(db: Db) -> Option<(secretd::storage::testing::TestDatabase, Server, Api)> {
    let database = db.create().await?;
    let server = Server::dev(&database.url, ROOT);
    let api = Api::new(&server.url, ROOT);
    Some((database, server, api))
}

/// Creates a token as `api`'s token; returns (token, accessor).
async fn create_token(api: &Api, body: Value) -> (String, String) {
    let (status, reply) = api.call("POST", "auth/token/create", Some(body)).await;
    assert_eq!(status, 200, "{reply}");
    (
        reply["auth"]["client_token"].as_str().unwrap().to_owned(),
        reply["auth"]["accessor"].as_str().unwrap().to_owned(),
    )
}

async fn put_policy(api: &Api, name: &str, text: &str) {
    let (status, reply) = api
        .call(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": text })),
        )
        .await;
    assert_eq!(status, 204, "{reply}");
}

async fn a_read_only_token_reads_and_nothing_more(db: Db) {
    let Some((_db, server, root)) = dev(db).await else {
        return;
    };
    for path in ["secret/data/app/db", "secret/data/other"] {
        let (status, _) = root
            .call("POST", path, Some(json!({"data": {"password": "p"}})))
            .await;
        assert_eq!(status, 200);
    }
    put_policy(&root, "reader", READER).await;
    let (token, _) = create_token(&root, json!({"policies": ["reader"]})).await;
    let reader = Api::new(&server.url, &token);

    let (status, secret) = reader.call("GET", "secret/data/app/db", None).await;
    assert_eq!(status, 200);
    assert_eq!(secret["data"]["data"]["password"], "p");
    let (status, list) = reader.call("LIST", "secret/metadata/app/", None).await;
    assert_eq!((status, &list["data"]["keys"]), (200, &json!(["db"])));

    for (method, path, body) in [
        (
            "POST",
            "secret/data/app/db",
            Some(json!({"data": {"password": "q"}})),
        ),
        ("DELETE", "secret/data/app/db", None),
        ("DELETE", "secret/metadata/app/db", None),
        ("GET", "secret/data/other", None),
        ("LIST", "secret/metadata/", None),
        ("GET", "sys/mounts", None),
        ("LIST", "sys/policies/acl", None),
        (
            "PUT",
            "sys/policies/acl/reader",
            Some(json!({"policy": ""})),
        ),
        ("POST", "sys/seal", None),
        (
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["root"]})),
        ),
    ] {
        let (status, reply) = reader.call(method, path, body).await;
        assert_eq!(status, 403, "{method} {path}: {reply}");
        assert_eq!(
            reply["errors"],
            json!(["permission denied"]),
            "{method} {path}"
        );
    }
    // Its own token it may look up; nothing was changed by the refusals.
    let (status, me) = reader.call("GET", "auth/token/lookup-self", None).await;
    assert_eq!(status, 200);
    assert_eq!(me["data"]["policies"], json!(["default", "reader"]));
    let (_, secret) = root.call("GET", "secret/data/app/db", None).await;
    assert_eq!(secret["data"]["data"]["password"], "p");

    // A token allowed to create tokens still cannot give more than it has.
    put_policy(&root, "creator", CREATOR).await;
    let (creator, _) = create_token(&root, json!({"policies": ["creator", "reader"]})).await;
    let creator = Api::new(&server.url, &creator);
    let (status, reply) = creator
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["root"]})),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = creator
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["reader"]})),
        )
        .await;
    assert_eq!(status, 200, "{reply}");

    // A policy change takes effect on the next request.
    put_policy(
        &root,
        "reader",
        "path \"secret/*\" {\n  capabilities = [\"deny\"]\n}\n",
    )
    .await;
    let (status, _) = reader.call("GET", "secret/data/app/db", None).await;
    assert_eq!(status, 403);
}

async fn revoking_a_parent_kills_its_children(db: Db) {
    let Some((_db, server, root)) = dev(db).await else {
        return;
    };
    put_policy(&root, "creator", CREATOR).await;
    let (parent, _) = create_token(&root, json!({"policies": ["creator"]})).await;
    let parent_api = Api::new(&server.url, &parent);
    let (child, _) = create_token(&parent_api, json!({})).await;
    let (grandchild, grandchild_accessor) =
        create_token(&Api::new(&server.url, &child), json!({})).await;
    let (orphan, _) =
        create_token(&root, json!({"policies": ["default"], "no_parent": true})).await;
    for token in [&parent, &child, &grandchild, &orphan] {
        let (status, _) = Api::new(&server.url, token)
            .call("GET", "auth/token/lookup-self", None)
            .await;
        assert_eq!(status, 200);
    }
    let (status, _) = root
        .call("POST", "auth/token/revoke", Some(json!({"token": parent})))
        .await;
    assert_eq!(status, 204);
    for token in [&parent, &child, &grandchild] {
        let (status, _) = Api::new(&server.url, token)
            .call("GET", "auth/token/lookup-self", None)
            .await;
        assert_eq!(status, 403, "a token of the revoked tree still works");
    }
    let (status, reply) = root
        .call(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": grandchild_accessor})),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    let (status, _) = Api::new(&server.url, &orphan)
        .call("GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(status, 200, "an orphan outlives the tree it came from");

    // revoke-orphan keeps the children, as orphans.
    let (parent, _) = create_token(&root, json!({"policies": ["creator"]})).await;
    let (child, _) = create_token(&Api::new(&server.url, &parent), json!({})).await;
    let (status, _) = root
        .call(
            "POST",
            "auth/token/revoke-orphan",
            Some(json!({"token": parent})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, me) = Api::new(&server.url, &child)
        .call("GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!((status, &me["data"]["orphan"]), (200, &json!(true)));
}

async fn use_limits_run_out_exactly(db: Db) {
    let Some((_db, server, root)) = dev(db).await else {
        return;
    };
    root.call(
        "POST",
        "secret/data/app/db",
        Some(json!({"data": {"k": "v"}})),
    )
    .await;
    put_policy(&root, "reader", READER).await;
    let (token, _) = create_token(&root, json!({"policies": ["reader"], "num_uses": 3})).await;
    let limited = Api::new(&server.url, &token);
    for _ in 0..3 {
        let (status, _) = limited.call("GET", "secret/data/app/db", None).await;
        assert_eq!(status, 200);
    }
    let (status, _) = limited.call("GET", "secret/data/app/db", None).await;
    assert_eq!(status, 403, "the fourth use is refused");

    // Concurrent requests cannot overspend a token.
    let (token, _) = create_token(&root, json!({"policies": ["reader"], "num_uses": 5})).await;
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let api = Api::new(&server.url, &token);
            tokio::spawn(async move { api.call("GET", "secret/data/app/db", None).await.0 })
        })
        .collect();
    let mut granted = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            200 => granted += 1,
            403 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(granted, 5);
}

async fn renewals_follow_the_ttl_caps(db: Db) {
    let Some((_db, server, root)) = dev(db).await else {
        return;
    };
    let (token, accessor) = create_token(
        &root,
        json!({"policies": ["default"], "ttl": "1h", "explicit_max_ttl": "90m"}),
    )
    .await;
    let api = Api::new(&server.url, &token);
    let (status, renewed) = api
        .call(
            "POST",
            "auth/token/renew-self",
            Some(json!({"increment": "2h"})),
        )
        .await;
    assert_eq!(status, 200, "{renewed}");
    let ttl = renewed["auth"]["lease_duration"].as_u64().unwrap();
    assert!(
        ttl <= 5400 && ttl > 5300,
        "capped by the explicit max: {ttl}"
    );
    let warning = renewed["warnings"][0].as_str().unwrap();
    assert!(
        warning.starts_with("TTL of \"2h\" exceeded the effective max_ttl of"),
        "{warning}"
    );
    // Below the cap, the increment counts from now.
    let (_, renewed) = root
        .call(
            "POST",
            "auth/token/renew-accessor",
            Some(json!({"accessor": accessor, "increment": "10m"})),
        )
        .await;
    assert_eq!(renewed["auth"]["lease_duration"], 600);
    let (_, looked) = root
        .call(
            "POST",
            "auth/token/lookup-accessor",
            Some(json!({"accessor": accessor})),
        )
        .await;
    let left = looked["data"]["ttl"].as_u64().unwrap();
    assert!(left <= 600 && left > 500, "{left}");

    // The token mount's max caps tokens without an explicit max.
    let (status, _) = root
        .call(
            "POST",
            "sys/auth/token/tune",
            Some(json!({"max_lease_ttl": "30m"})),
        )
        .await;
    assert_eq!(status, 204);
    let (token, _) = create_token(&root, json!({"policies": ["default"], "ttl": "1h"})).await;
    let (_, me) = Api::new(&server.url, &token)
        .call("GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(me["data"]["creation_ttl"], 1800);

    // A periodic token renews to its period, forever.
    let (token, _) = create_token(&root, json!({"policies": ["default"], "period": "10m"})).await;
    let (_, renewed) = Api::new(&server.url, &token)
        .call(
            "POST",
            "auth/token/renew-self",
            Some(json!({"increment": "1h"})),
        )
        .await;
    assert_eq!(renewed["auth"]["lease_duration"], 600);
}

async fn expired_tokens_are_refused_and_cleaned_up(db: Db) {
    let Some((_db, server, root)) = dev(db).await else {
        return;
    };
    let (token, accessor) =
        create_token(&root, json!({"policies": ["default"], "ttl": "1s"})).await;
    let api = Api::new(&server.url, &token);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _) = api.call("GET", "auth/token/lookup-self", None).await;
    assert_eq!(status, 403, "refused as soon as it expires");
    // The background cleanup deletes it (every few seconds).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, list) = root.call("LIST", "auth/token/accessors", None).await;
        assert_eq!(status, 200);
        let listed = list["data"]["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == accessor.as_str());
        if !listed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expired token was never cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Two nodes on one PostgreSQL database: a policy written on one is
/// enforced by the other within moments.
#[tokio::test(flavor = "multi_thread")]
async fn a_policy_change_reaches_every_node() {
    let Some(database) = Db::Postgres.create().await else {
        return;
    };
    let first = Server::dev(&database.url, ROOT);
    let second = Server::with_config(&database.url, "");
    // The second node shares the first's seal: unseal it with the dev key.
    let key = first
        .banner
        .lines()
        .find_map(|l| l.strip_prefix("Unseal Key: "))
        .expect("the dev banner prints the unseal key")
        .trim()
        .to_owned();
    let (status, _) = Api::new(&second.url, "")
        .call("PUT", "sys/unseal", Some(json!({"key": key})))
        .await;
    assert_eq!(status, 200);
    let root = Api::new(&first.url, ROOT);
    root.call(
        "POST",
        "secret/data/app/db",
        Some(json!({"data": {"k": "v"}})),
    )
    .await;
    put_policy(&root, "reader", READER).await;
    let (token, _) = create_token(&root, json!({"policies": ["reader"]})).await;
    let on_second = Api::new(&second.url, &token);
    let (status, _) = on_second.call("GET", "secret/data/app/db", None).await;
    assert_eq!(status, 200);

    put_policy(
        &root,
        "reader",
        "path \"secret/*\" {\n  capabilities = [\"deny\"]\n}\n",
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while on_second.call("GET", "secret/data/app/db", None).await.0 != 403 {
        assert!(
            Instant::now() < deadline,
            "the other node never saw the change"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
