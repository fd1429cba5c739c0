//! The client library's lease keeper against a real server: a token
//! that reaches its max TTL is replaced by a new login and the secrets
//! stay readable; a saved state is resumed by another keeper with the same
//! token and leases, without a second set of credentials.

use std::time::{Duration, Instant};

use secretd_client::secrecy::ExposeSecret;
use secretd_client::{Client, KeeperOptions, LeaseKeeper, Login, Snapshot};
use secretd_tests::{
    Api, Server, TestDatabase, count, counting_engine, counting_target, ok, secretctl,
};
use serde_json::json;

const ROOT: &str = "root-token-for-keeper-tests";

fn client(url: &str) -> Client {
    Client::builder().address(url).build().unwrap()
}

async fn short_token(api: &Api, ttl: &str, max: &str) -> String {
    let (status, body) = api
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["root"], "ttl": ttl, "explicit_max_ttl": max})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["auth"]["client_token"].as_str().unwrap().to_owned()
}

/// Waits for a snapshot that satisfies `test`.
async fn wait_for(
    keeper: &LeaseKeeper,
    within: Duration,
    test: impl Fn(&Snapshot) -> bool,
) -> std::sync::Arc<Snapshot> {
    let mut updates = keeper.subscribe();
    let deadline = Instant::now() + within;
    loop {
        let snapshot = updates.borrow_and_update().clone();
        if test(&snapshot) {
            return snapshot;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no such snapshot within {within:?}");
        let _ = tokio::time::timeout(left, updates.changed()).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_at_its_max_ttl_is_replaced_by_a_new_login() {
    let storage = TestDatabase::sqlite();
    let server = Server::dev(&storage.url, ROOT);
    let api = Api::new(&server.url, ROOT);
    ok(&secretctl(&server.url, ROOT, &["put", "secret/app", "v=1"]));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let first = short_token(&api, "3s", "4s").await;
    std::fs::write(&token_file, &first).unwrap();

    let options = KeeperOptions {
        poll_interval: Duration::from_secs(1),
        ..KeeperOptions::default()
    };
    let keeper = LeaseKeeper::start(
        client(&server.url),
        Login::TokenFile(token_file.clone()),
        &["secret/app".to_string()],
        options,
    )
    .await
    .unwrap();
    let started = keeper.snapshot();
    let first_end = started.token_expires_at.unwrap();
    // Something else refreshes the file, as a token sink would.
    let second = short_token(&api, "1h", "2h").await;
    std::fs::write(&token_file, &second).unwrap();

    // Renewed once (capped by the 4 s max), then a new login from the file.
    let renewed = wait_for(&keeper, Duration::from_secs(15), |s| {
        s.token_expires_at
            .is_some_and(|t| t > first_end + Duration::from_secs(60))
    })
    .await;
    assert!(
        keeper
            .stats()
            .logins
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 2
    );

    // The first token is gone; KV changes are still seen with the new one.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (status, _) = Api::new(&server.url, &first)
        .call("GET", "auth/token/lookup-self", None)
        .await;
    assert_eq!(status, 403);
    ok(&secretctl(&server.url, ROOT, &["put", "secret/app", "v=2"]));
    let changed = wait_for(&keeper, Duration::from_secs(10), |s| {
        s.secrets["secret/app"].version == Some(2)
    })
    .await;
    let secret = &changed.secrets["secret/app"];
    assert_eq!(secret.field("v").unwrap().expose_secret(), "2");
    assert!(secret.revision > renewed.secrets["secret/app"].revision);
    keeper.stop(false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_state_is_resumed_with_the_same_token_and_leases() {
    let Some((_target, mut db, name)) = counting_target().await else {
        return;
    };
    let storage = TestDatabase::sqlite();
    let server = Server::dev(&storage.url, ROOT);
    let api = Api::new(&server.url, ROOT);
    counting_engine(&api, &name, "app", "1h", "").await;
    let token = short_token(&api, "1h", "2h").await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let paths = ["db/creds/app".to_string()];

    let first = LeaseKeeper::start(
        client(&server.url),
        Login::TokenFile(token_file.clone()),
        &paths,
        KeeperOptions::default(),
    )
    .await
    .unwrap();
    let before = first.snapshot();
    let saved = first.save().await.unwrap();
    first.stop(false).await;
    // The saved state neither prints its token nor its values.
    let shown = format!("{saved:?}");
    let user = before.secrets["db/creds/app"].field("username").unwrap();
    assert!(!shown.contains(&token) && !shown.contains(user.expose_secret()));

    // The file now holds a token the server does not know: the resumed
    // keeper must not need it.
    std::fs::write(&token_file, "not-a-token").unwrap();
    let second = LeaseKeeper::start(
        client(&server.url),
        Login::TokenFile(token_file.clone()),
        &paths,
        KeeperOptions {
            resume: Some(saved),
            ..KeeperOptions::default()
        },
    )
    .await
    .unwrap();
    let after = second.snapshot();
    let (a, b) = (
        &before.secrets["db/creds/app"],
        &after.secrets["db/creds/app"],
    );
    assert_eq!(a.lease.as_ref().unwrap().id, b.lease.as_ref().unwrap().id);
    assert_eq!(
        a.field("password").unwrap().expose_secret(),
        b.field("password").unwrap().expose_secret()
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM issued").await, 1);

    // Revoking on stop takes the credentials back.
    second.stop(true).await;
    assert_eq!(count(&mut db, "SELECT count(*) FROM revoked").await, 1);
}
