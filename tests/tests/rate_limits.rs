//! Rate limits against a real server: past the per-address, per-token and
//! (much stricter) login limits the answer is 429 with `Retry-After`, and
//! after that wait requests pass again.

use std::time::Duration;

use secretd_tests::{Api, Server, TestDatabase, initialize_static, static_seal_config};
use serde_json::json;

/// A raw request: (status, Retry-After).
async fn call(url: &str, token: &str, method: &str, path: &str) -> (u16, Option<u64>) {
    secretd_tests::install_crypto_provider();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = reqwest::Client::new().request(method, format!("{url}/v1/{path}"));
    if !token.is_empty() {
        request = request.header("X-Vault-Token", token);
    }
    if path.ends_with("/login") {
        request = request.json(&json!({"role": "app", "jwt": "not-a-jwt"}));
    }
    let response = request.send().await.unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    (response.status().as_u16(), retry_after)
}

async fn server(limits: &str) -> (Server, String, tempfile::TempDir, TestDatabase) {
    let storage = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let config = format!("{}\n[limits]\n{limits}\n", static_seal_config(&dir));
    let server = Server::with_config(&storage.url, &config);
    let root = initialize_static(&server).await;
    (server, root, dir, storage)
}

#[tokio::test(flavor = "multi_thread")]
async fn logins_from_one_address_are_limited_hard() {
    let (server, root, _dir, _storage) =
        server("login_rate_per_address = 1\nlogin_burst_per_address = 3").await;
    let api = Api::new(&server.url, &root);
    let (status, body) = api
        .call(
            "POST",
            "sys/auth/kubernetes",
            Some(json!({"type": "kubernetes"})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    // Wrong guesses are answered (refused) for the burst of three, then
    // no more are tried (a slow machine may refill one or two).
    let mut answers = Vec::new();
    while answers.len() < 10 {
        let answer = call(&server.url, "", "POST", "auth/kubernetes/login").await;
        answers.push(answer);
        if answer.0 == 429 {
            break;
        }
    }
    assert_eq!(answers.last(), Some(&(429, Some(1))), "{answers:?}");
    assert!((4..=6).contains(&answers.len()), "{answers:?}");
    // Other requests from the same address are not login attempts.
    for _ in 0..10 {
        assert_eq!(call(&server.url, &root, "GET", "sys/mounts").await.0, 200);
    }
    // After the wait, one more attempt.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _) = call(&server.url, "", "POST", "auth/kubernetes/login").await;
    assert_ne!(status, 429);
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_are_limited_per_token_and_per_address() {
    // Slow refills, so that however slow the machine, the buckets empty.
    let (server, root, _dir, _storage) = server(
        "rate_per_token = 1\nburst_per_token = 5\nrate_per_address = 1\nburst_per_address = 40",
    )
    .await;
    let (_, created) = Api::new(&server.url, &root)
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["default"]})),
        )
        .await;
    let other = created["auth"]["client_token"].as_str().unwrap().to_owned();
    // The root token's burst runs out (two went on setting up).
    let mut answers = Vec::new();
    while answers.len() < 20 {
        let answer = call(&server.url, &root, "GET", "sys/mounts").await;
        answers.push(answer);
        if answer.0 == 429 {
            break;
        }
    }
    assert_eq!(answers.last(), Some(&(429, Some(1))), "{answers:?}");
    assert!(answers.len() <= 8, "{answers:?}");
    // Another token has its own allowance...
    assert_eq!(
        call(&server.url, &other, "GET", "auth/token/lookup-self")
            .await
            .0,
        200
    );
    // ...but the address's runs out too.
    let mut limited = false;
    for _ in 0..60 {
        if call(&server.url, "", "GET", "sys/seal-status").await.0 == 429 {
            limited = true;
            break;
        }
    }
    assert!(limited, "the address limit never applied");
}
