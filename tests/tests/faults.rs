//! Faults: a secretd node on its own PostgreSQL cluster, which is stopped
//! (as a crash would) under a stream of writes and started again. While it
//! is gone requests get 503 within the connect timeout, never a hang or a
//! 500; afterwards the node serves again on its own, and every write it
//! acknowledged is there.

use std::time::{Duration, Instant};

use secretd::engines::database::private_pg::{PrivatePostgres, SUPERUSER_PASSWORD};
use secretd_tests::{Api, Server, config_file, initialize_static, static_seal_config};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_postgresql_restart_gives_503s_then_recovery_with_nothing_lost() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = config_file(
        dir.path(),
        &pg.url("postgres", SUPERUSER_PASSWORD),
        &format!("connect_timeout = 2\n\n{}", static_seal_config(&dir)),
    );
    let server = Server::from_config_file(&path);
    let root = initialize_static(&server).await;
    let api = Api::new(&server.url, &root);

    // Writes acknowledged before the crash.
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let (status, _) = api
            .call(
                "PUT",
                &format!("secret/data/k{i}"),
                Some(json!({"data": {"v": i}})),
            )
            .await;
        assert_eq!(status, 200);
        acknowledged.push(i);
    }

    // A writer keeps going while the database goes away and comes back.
    let writer_api = api.clone();
    let writer = tokio::spawn(async move {
        let mut acknowledged = Vec::new();
        let mut statuses = std::collections::BTreeMap::<u16, u32>::new();
        let mut slowest = Duration::ZERO;
        let started = Instant::now();
        let mut i = 1000;
        while started.elapsed() < Duration::from_secs(12) {
            let t = Instant::now();
            let (status, _) = writer_api
                .call(
                    "PUT",
                    &format!("secret/data/k{i}"),
                    Some(json!({"data": {"v": i}})),
                )
                .await;
            slowest = slowest.max(t.elapsed());
            *statuses.entry(status).or_default() += 1;
            if status == 200 {
                acknowledged.push(i);
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (acknowledged, statuses, slowest)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.stop();
    // While it is gone: 503, quickly.
    let t = Instant::now();
    let (status, body) = api.call("GET", "secret/data/k1", None).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t.elapsed()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg.restart();

    // Back on its own, without a restart of secretd.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _) = api.call("GET", "secret/data/k1", None).await;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never recovered: {status}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (during, statuses, slowest) = writer.await.unwrap();
    assert!(
        statuses.keys().all(|s| [200, 503].contains(s)),
        "only successes and 503s: {statuses:?}"
    );
    assert!(statuses.get(&503).is_some_and(|n| *n > 0), "{statuses:?}");
    assert!(
        slowest < Duration::from_secs(10),
        "a request took {slowest:?}"
    );

    // Every acknowledged write reads back exactly.
    for i in acknowledged.iter().chain(&during) {
        let (status, body) = api.call("GET", &format!("secret/data/k{i}"), None).await;
        assert_eq!(status, 200, "k{i}: {body}");
        assert_eq!(body["data"]["data"]["v"], json!(i), "k{i}");
    }
}
