//! `sys/metrics` of a real server on PostgreSQL: leases of the database
//! engine are counted by mount and role, the pool is reported, and the
//! scrape needs a token allowed to read `sys/metrics`.

use secretd_tests::{Api, Server, TestDatabase, counting_engine, counting_target, scrape_metrics};

const ROOT: &str = "root-token-for-metrics-e2e";

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn database_leases_show_up_by_mount_and_role() {
    let Some(storage) = TestDatabase::postgres().await else {
        return;
    };
    let (_target, _db, target_name) = counting_target().await.unwrap();
    let server = Server::dev(&storage.url, ROOT);
    let api = Api::new(&server.url, ROOT);
    counting_engine(&api, &target_name, "short", "1h", "").await;
    let mut usernames = Vec::new();
    for _ in 0..3 {
        let (status, body) = api.call("GET", "db/creds/short", None).await;
        assert_eq!(status, 200, "{body}");
        usernames.push(body["data"]["username"].as_str().unwrap().to_owned());
        usernames.push(body["data"]["password"].as_str().unwrap().to_owned());
        usernames.push(body["lease_id"].as_str().unwrap().to_owned());
    }

    let (status, _) = scrape_metrics(&server.url, "not-a-token").await;
    assert_eq!(status, 403);
    let (status, text) = scrape_metrics(&server.url, ROOT).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(
        value(&text, r#"secretd_leases{mount="db/",role="short"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            r#"secretd_http_requests_total{route="db/",method="GET",status="200"}"#
        ),
        Some(3.0)
    );
    assert_eq!(value(&text, "secretd_sealed"), Some(0.0));
    assert!(value(&text, "secretd_storage_connections_max").unwrap() >= 2.0);
    assert!(value(&text, "secretd_storage_connections_idle").is_some());
    for secret in usernames.iter().map(String::as_str).chain([ROOT]) {
        assert!(!text.contains(secret), "{secret} is in the metrics");
    }
}
