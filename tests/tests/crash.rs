//! Crashes: `kill -9` of a node in the middle of its work.
//!
//! - One node on a SQLite file, killed several times at random moments of
//!   a stream of KV writes (plain, check-and-set, deletes, metadata) and
//!   restarted each time: every acknowledged write is there, every
//!   acknowledged version reads back exactly, versions have no gaps or
//!   duplicates, a write that was not acknowledged is either whole as its
//!   version or absent, and the file passes `PRAGMA integrity_check`.
//! - Three nodes on one PostgreSQL, issuing short-lived database
//!   credentials (real PostgreSQL roles) and writing KV versions, one of
//!   them killed in the middle of a revocation while writes and issues
//!   are in flight: the survivors read every write any node acknowledged
//!   and revoke every lease, including those the dead node had claimed
//!   (once its claims run out) and those it had reserved for credentials
//!   it was making; no role is left behind in `pg_roles`.
//!
//! The bounds are liveness bounds, not performance ones. The cluster test
//! takes a little over a minute: a dead node's claims keep the others off
//! its leases for `CLAIM_FOR`, 60 s, which no setting shortens.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use secretd_tests::{Api, Server, TestDatabase, count, initialize_static, static_seal_config};
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// How long a node that dies keeps its claimed leases from the others:
/// `CLAIM_FOR` in `server/src/core/leases.rs` (not configurable).
const CLAIM_FOR: Duration = Duration::from_secs(60);

/// A small xorshift generator: random kill moments and choices, from a
/// seed the test prints.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = uuid::Uuid::new_v4().as_u64_pair().0 | 1;
        eprintln!("seed {seed:#x}");
        Rng(seed)
    }

    fn fork(&mut self) -> Rng {
        Rng(self.next() | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

/// What the client learnt of one write.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// Answered 200 with this version.
    Acked(u64),
    /// Answered 400: the check-and-set did not match.
    Refused,
    /// No answer: the node died with the request in flight.
    Unknown,
}

/// One KV write: its key, the unique value it wrote, and its outcome.
#[derive(Debug, Clone)]
struct Write {
    key: String,
    value: String,
    outcome: Outcome,
}

/// Writes unique values to random `keys` until `stop` or until the node
/// stops answering; a quarter of the writes are check-and-set on the
/// version this writer last saw.
async fn write_kv(
    api: Api,
    keys: Vec<String>,
    tag: String,
    mut rng: Rng,
    stop: Arc<AtomicBool>,
) -> Vec<Write> {
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut writes = Vec::new();
    for seq in 0.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let key = keys[rng.below(keys.len() as u64) as usize].clone();
        let value = format!("{tag}-{seq}");
        let mut body = json!({"data": {"v": value}});
        let cas = rng.below(4) == 0;
        if cas {
            body["options"] = json!({"cas": seen.get(&key).copied().unwrap_or(0)});
        }
        let answer = api
            .try_call("PUT", &format!("secret/data/{key}"), Some(body))
            .await;
        let outcome = match answer {
            Some((200, resp)) => {
                let version = resp["data"]["version"].as_u64().unwrap();
                seen.insert(key.clone(), version);
                Outcome::Acked(version)
            }
            Some((400, resp)) if cas && resp.to_string().contains("check-and-set") => {
                Outcome::Refused
            }
            None => Outcome::Unknown,
            Some((status, resp)) => panic!("a write of {key} answered {status}: {resp}"),
        };
        let done = outcome == Outcome::Unknown;
        if outcome == Outcome::Refused {
            // Learn the current version for the next check-and-set.
            let Some((_, meta)) = api
                .try_call("GET", &format!("secret/metadata/{key}"), None)
                .await
            else {
                writes.push(Write {
                    key,
                    value,
                    outcome,
                });
                break;
            };
            if let Some(v) = meta["data"]["current_version"].as_u64() {
                seen.insert(key.clone(), v);
            }
        }
        writes.push(Write {
            key,
            value,
            outcome,
        });
        if done {
            break;
        }
    }
    writes
}

/// Checks one key against the writes made to it, reading each version
/// from `apis` in turn: versions 1..=current all exist (no gap), each
/// acknowledged version holds exactly its value, every other version holds
/// the value of a write that was in flight when a node died (each at most
/// once), and no refused write shows up. Returns the versions read.
async fn check_key(apis: &[Api], key: &str, writes: &[&Write]) -> u64 {
    let mut acked: BTreeMap<u64, &str> = BTreeMap::new();
    let mut unknown: HashSet<&str> = HashSet::new();
    let mut refused: HashSet<&str> = HashSet::new();
    for w in writes {
        match w.outcome {
            Outcome::Acked(v) => {
                if let Some(other) = acked.insert(v, &w.value) {
                    panic!(
                        "{key}: version {v} acknowledged twice ({other}, {})",
                        w.value
                    );
                }
            }
            Outcome::Unknown => {
                unknown.insert(&w.value);
            }
            Outcome::Refused => {
                refused.insert(&w.value);
            }
        }
    }
    let (status, meta) = apis[0]
        .call("GET", &format!("secret/metadata/{key}"), None)
        .await;
    if acked.is_empty() && status == 404 {
        return 0;
    }
    assert_eq!(status, 200, "{key}: {meta}");
    let current = meta["data"]["current_version"].as_u64().unwrap();
    let last_acked = acked.keys().next_back().copied().unwrap_or(0);
    assert!(
        current >= last_acked,
        "{key}: acknowledged version {last_acked} but the current one is {current}"
    );
    let listed: Vec<u64> = meta["data"]["versions"]
        .as_object()
        .unwrap()
        .keys()
        .map(|v| v.parse().unwrap())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(
        listed,
        (1..=current).collect::<Vec<_>>(),
        "{key}: versions missing from the metadata"
    );
    let mut unacked_seen = HashSet::new();
    for version in 1..=current {
        let api = &apis[version as usize % apis.len()];
        let (status, body) = api
            .call("GET", &format!("secret/data/{key}?version={version}"), None)
            .await;
        assert_eq!(status, 200, "{key} version {version}: {body}");
        let value = body["data"]["data"]["v"].as_str().unwrap_or_default();
        assert_eq!(
            body["data"]["metadata"]["version"], version,
            "{key}: {body}"
        );
        match acked.get(&version) {
            Some(want) => assert_eq!(value, *want, "{key} version {version}"),
            None => {
                assert!(
                    !refused.contains(value),
                    "{key} version {version}: a refused write ({value}) was stored"
                );
                assert!(
                    unknown.contains(value),
                    "{key} version {version} holds {value:?}, which no write in flight wrote"
                );
                assert!(
                    unacked_seen.insert(value.to_owned()),
                    "{key}: {value} stored twice"
                );
            }
        }
    }
    current
}

/// [`check_key`] for every key written, concurrently; the number of
/// versions read.
async fn check_writes(apis: &[Api], writes: &[Write]) -> u64 {
    let mut by_key: BTreeMap<&str, Vec<&Write>> = BTreeMap::new();
    for w in writes {
        by_key.entry(&w.key).or_default().push(w);
    }
    let mut total = 0;
    for (key, writes) in &by_key {
        total += check_key(apis, key, writes).await;
    }
    total
}

fn acked(writes: &[Write]) -> usize {
    writes
        .iter()
        .filter(|w| matches!(w.outcome, Outcome::Acked(_)))
        .count()
}

/// The most versions a key keeps (secretd's bound on `max_versions`). The
/// tests spread their writes over enough keys, and stop the sequential
/// writer short of it, so that no acknowledged version is pruned.
const MAX_VERSIONS: u64 = 1000;

/// Sets KV v2's `max_versions` to [`MAX_VERSIONS`].
async fn keep_every_version(api: &Api) {
    let (status, body) = api
        .call(
            "POST",
            "secret/config",
            Some(json!({"max_versions": MAX_VERSIONS})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
}

/// One key written, soft-deleted and given custom metadata one request
/// after another, so the last acknowledged change is well defined.
#[derive(Default)]
struct Sequential {
    writes: Vec<Write>,
    /// Versions whose soft deletion was acknowledged.
    deleted: Vec<u64>,
    /// Custom metadata `n` values acknowledged, and in flight at a kill.
    meta_acked: Vec<u64>,
    meta_unknown: Vec<u64>,
}

const SEQUENTIAL_KEY: &str = "sequential";

async fn write_sequentially(api: Api, cycle: usize, mut state: Sequential) -> Sequential {
    for seq in 0.. {
        let n = (cycle as u64) * 1_000_000 + seq;
        let value = format!("s{cycle}-{seq}");
        let body = json!({"data": {"v": value}});
        let answer = api
            .try_call("PUT", &format!("secret/data/{SEQUENTIAL_KEY}"), Some(body))
            .await;
        let version = match answer {
            Some((200, resp)) => resp["data"]["version"].as_u64().unwrap(),
            None => {
                state.writes.push(Write {
                    key: SEQUENTIAL_KEY.into(),
                    value,
                    outcome: Outcome::Unknown,
                });
                return state;
            }
            Some((status, resp)) => panic!("a sequential write answered {status}: {resp}"),
        };
        state.writes.push(Write {
            key: SEQUENTIAL_KEY.into(),
            value,
            outcome: Outcome::Acked(version),
        });
        if version >= MAX_VERSIONS - 100 {
            // Enough: more would prune the first versions.
            return state;
        }
        if seq % 3 == 0 {
            let body = json!({"versions": [version]});
            match api
                .try_call(
                    "POST",
                    &format!("secret/delete/{SEQUENTIAL_KEY}"),
                    Some(body),
                )
                .await
            {
                Some((204, _)) => state.deleted.push(version),
                None => return state,
                Some((status, resp)) => panic!("a delete answered {status}: {resp}"),
            }
        }
        let body = json!({"custom_metadata": {"n": n.to_string()}});
        match api
            .try_call(
                "POST",
                &format!("secret/metadata/{SEQUENTIAL_KEY}"),
                Some(body),
            )
            .await
        {
            Some((204, _)) => state.meta_acked.push(n),
            None => {
                state.meta_unknown.push(n);
                return state;
            }
            Some((status, resp)) => panic!("a metadata write answered {status}: {resp}"),
        }
    }
    state
}

/// The sequential key's deletions and metadata survived; then its versions
/// are undeleted so that [`check_writes`] can read them all.
async fn check_sequential(api: &Api, state: &Sequential) {
    let (status, meta) = api
        .call("GET", &format!("secret/metadata/{SEQUENTIAL_KEY}"), None)
        .await;
    assert_eq!(status, 200, "{meta}");
    for v in &state.deleted {
        let deleted = &meta["data"]["versions"][v.to_string()]["deletion_time"];
        assert!(
            deleted.as_str().is_some_and(|t| !t.is_empty()),
            "the acknowledged deletion of version {v} was lost: {}",
            meta["data"]["versions"][v.to_string()]
        );
    }
    let n: u64 = meta["data"]["custom_metadata"]["n"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let last = *state.meta_acked.last().unwrap();
    assert!(
        n == last || state.meta_unknown.iter().any(|&u| u == n && u > last),
        "custom metadata n = {n}, but the last acknowledged was {last}"
    );
    let current = meta["data"]["current_version"].as_u64().unwrap();
    let body = json!({"versions": (1..=current).collect::<Vec<_>>()});
    let (status, resp) = api
        .call(
            "POST",
            &format!("secret/undelete/{SEQUENTIAL_KEY}"),
            Some(body),
        )
        .await;
    assert_eq!(status, 204, "{resp}");
}

async fn sqlite_integrity(url: &str) {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).unwrap();
    let mut conn = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let (result,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(result, "ok", "PRAGMA integrity_check");
    conn.close().await.unwrap();
}

/// Times the SQLite node is killed.
const SQLITE_KILLS: usize = 5;
/// Concurrent writers on the SQLite node (plus the sequential one).
const SQLITE_WRITERS: usize = 8;

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_node_killed_mid_writes_keeps_every_acknowledged_version() {
    let db = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let seal = static_seal_config(&dir);
    let mut rng = Rng::new();
    // Many keys: a fast machine's thousands of writes stay far below
    // MAX_VERSIONS on each.
    let keys: Vec<String> = (0..48).map(|k| format!("k{k}")).collect();

    let mut server = Server::with_config(&db.url, &seal);
    let root = initialize_static(&server).await;
    keep_every_version(&Api::new(&server.url, &root)).await;

    let mut writes: Vec<Write> = Vec::new();
    let mut sequential = Sequential::default();
    let started = Instant::now();
    for cycle in 0..SQLITE_KILLS {
        let api = Api::new(&server.url, &root);
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..SQLITE_WRITERS)
            .map(|w| {
                tokio::spawn(write_kv(
                    api.clone(),
                    keys.clone(),
                    format!("c{cycle}w{w}"),
                    rng.fork(),
                    stop.clone(),
                ))
            })
            .collect();
        let seq_writer = tokio::spawn(write_sequentially(
            api.clone(),
            cycle,
            std::mem::take(&mut sequential),
        ));
        tokio::time::sleep(rng.millis(500, 1500)).await;
        server.kill();
        let before = acked(&writes);
        for writer in writers {
            writes.extend(writer.await.unwrap());
        }
        sequential = seq_writer.await.unwrap();
        eprintln!(
            "cycle {cycle}: {} writes acknowledged before the kill",
            acked(&writes) - before
        );
        assert!(acked(&writes) > before, "no write was acknowledged");
        // The file as the crash left it, before the server opens it again.
        sqlite_integrity(&db.url).await;
        server = Server::with_config(&db.url, &seal);
    }

    let api = Api::new(&server.url, &root);
    let (status, health) = api.call("GET", "sys/health", None).await;
    assert_eq!(
        (status, &health["sealed"]),
        (200, &json!(false)),
        "{health}"
    );
    check_sequential(&api, &sequential).await;
    writes.extend(sequential.writes.iter().cloned());
    let versions = check_writes(&[api], &writes).await;
    let unknown = writes
        .iter()
        .filter(|w| w.outcome == Outcome::Unknown)
        .count();
    eprintln!(
        "{SQLITE_KILLS} kills, {} writes acknowledged, {unknown} in flight at a kill, \
         {} deletions and {} metadata changes acknowledged, {versions} versions read back \
         in {:?}",
        acked(&writes),
        sequential.deleted.len(),
        sequential.meta_acked.len(),
        started.elapsed()
    );
    server.stop();
    sqlite_integrity(&db.url).await;
}

/// Asks for credentials of `role` until `stop` or until the node stops
/// answering: the user names and lease ids acknowledged, and whether a
/// request was in flight when the node died.
async fn issue_credentials(
    api: Api,
    role: String,
    stop: Arc<AtomicBool>,
) -> (Vec<(String, String)>, bool) {
    let mut issued = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        match api.try_call("GET", &format!("db/creds/{role}"), None).await {
            Some((200, body)) => issued.push((
                body["data"]["username"].as_str().unwrap().to_owned(),
                body["lease_id"].as_str().unwrap().to_owned(),
            )),
            None => return (issued, true),
            Some((status, body)) => panic!("creds/{role} answered {status}: {body}"),
        }
    }
    (issued, false)
}

/// The PostgreSQL roles made for `role` (Vault's user names:
/// `v-<display name>-<role>-<random>-<time>`) that still exist.
async fn roles_left(conn: &mut PgConnection, role: &str) -> Vec<String> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1")
            .bind(format!("v-%-{role}-%"))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
    rows.into_iter().map(|(name,)| name).collect()
}

/// How many revocation statements (`pg_sleep` in them) the process `pid`
/// is running on the PostgreSQL server: its sessions are found by their
/// client ports (Linux: its socket inodes in `/proc/PID/fd`, looked up in
/// `/proc/net/tcp`).
async fn revocations_in_progress(conn: &mut PgConnection, pid: u32) -> i64 {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read_link(entry.path()).ok())
        .filter_map(|link| {
            let link = link.to_str()?;
            Some(link.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9 && inodes.contains(fields[9]) {
                let (_, port) = fields[1].rsplit_once(':').unwrap();
                ports.push(i32::from_str_radix(port, 16).unwrap());
            }
        }
    }
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY($1) \
         AND state = 'active' AND query LIKE '%pg_sleep%'",
    )
    .bind(&ports)
    .fetch_one(conn)
    .await
    .unwrap();
    n
}

/// Roles outlive the test's databases: a failed run drops those it left.
struct DropRolesOnPanic {
    url: String,
    role: String,
}

impl Drop for DropRolesOnPanic {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let (url, role) = (self.url.clone(), self.role.clone());
        // On a thread of its own: we may be inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut conn = PgConnection::connect(&url).await.unwrap();
                for name in roles_left(&mut conn, &role).await {
                    let _ = sqlx::raw_sql(&format!("DROP ROLE IF EXISTS \"{name}\""))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}

/// Credentials' TTL: they fall due while the test writes.
const CREDENTIAL_TTL: u64 = 2;

#[tokio::test(flavor = "multi_thread")]
async fn cluster_node_killed_mid_writes_and_expiry_loses_nothing_and_leaks_no_role() {
    let Some(storage) = TestDatabase::postgres().await else {
        return;
    };
    let target = TestDatabase::postgres().await.unwrap();
    let target_name = target.url.rsplit('/').next().unwrap().to_owned();
    let mut target_conn = PgConnection::connect(&target.url).await.unwrap();
    let mut storage_conn = PgConnection::connect(&storage.url).await.unwrap();
    let mut rng = Rng::new();
    // Roles are global to the PostgreSQL server: a name of our own.
    let role = format!("c{}", &uuid::Uuid::new_v4().simple().to_string()[..7]);
    let _cleanup = DropRolesOnPanic {
        url: target.url.clone(),
        role: role.clone(),
    };

    let dir = tempfile::tempdir().unwrap();
    let seal = static_seal_config(&dir);
    let mut nodes: Vec<Server> = (0..3)
        .map(|_| Server::with_config(&storage.url, &seal))
        .collect();
    let root = initialize_static(&nodes[0]).await;
    let apis: Vec<Api> = nodes.iter().map(|n| Api::new(&n.url, &root)).collect();
    keep_every_version(&apis[0]).await;
    let setup = [
        ("sys/mounts/db", json!({"type": "database"})),
        (
            "db/config/pg",
            json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!(
                    "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:5432/{target_name}"
                ),
                "username": "postgres", "password": "unused-locally", "allowed_roles": "*",
            }),
        ),
        (
            &*format!("db/roles/{role}"),
            json!({
                "db_name": "pg",
                "default_ttl": format!("{CREDENTIAL_TTL}s"),
                "creation_statements": "CREATE ROLE \"{{name}}\" WITH LOGIN \
                    PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
                // The sleep keeps each revocation, and so each node's
                // claim, open for a while: the kill is likely to find
                // the node holding claimed leases.
                "revocation_statements": "SELECT pg_sleep(0.3); \
                    DROP ROLE IF EXISTS \"{{name}}\";",
            }),
        ),
    ];
    for (path, body) in setup {
        let (status, resp) = apis[0].call("POST", path, Some(body)).await;
        assert!((200..300).contains(&status), "{path}: {status} {resp}");
    }
    // Every node serves the mount and the role before the load starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    for api in &apis {
        while api.call("GET", &format!("db/roles/{role}"), None).await.0 != 200 {
            assert!(Instant::now() < deadline, "a node never saw the role");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Writers and issuers on every node; node 2 is killed at a random
    // moment after the first credentials fell due.
    let keys: Vec<String> = (0..32).map(|k| format!("k{k}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    let mut issuers = Vec::new();
    for (n, api) in apis.iter().enumerate() {
        for w in 0..2 {
            writers.push(tokio::spawn(write_kv(
                api.clone(),
                keys.clone(),
                format!("n{n}w{w}"),
                rng.fork(),
                stop.clone(),
            )));
            issuers.push(tokio::spawn(issue_credentials(
                api.clone(),
                role.clone(),
                stop.clone(),
            )));
        }
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(CREDENTIAL_TTL) + rng.millis(0, 1000)).await;
    // Killed while it revokes, so that it dies holding claims.
    let victim = nodes.pop().unwrap();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut revoking = false;
    while !revoking && Instant::now() < deadline {
        revoking = revocations_in_progress(&mut target_conn, victim.pid()).await > 0;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        revoking,
        "node 2 was never seen revoking a lease within 4 s; it should have been"
    );
    let roles_at_kill = roles_left(&mut target_conn, &role).await.len();
    victim.kill();
    let killed_at = Instant::now();
    let killed_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    eprintln!(
        "node 2 killed {:?} after the start, in the middle of a revocation \
         ({roles_at_kill} roles existed)",
        started.elapsed(),
    );
    // The survivors go on for a while.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);

    let mut writes = Vec::new();
    for writer in writers {
        writes.extend(writer.await.unwrap());
    }
    let mut issued = Vec::new();
    let mut in_flight = 0;
    for issuer in issuers {
        let (creds, cut) = issuer.await.unwrap();
        issued.extend(creds);
        in_flight += usize::from(cut);
    }
    let killed_writes = writes
        .iter()
        .filter(|w| w.value.starts_with("n2") && matches!(w.outcome, Outcome::Acked(_)))
        .count();
    eprintln!(
        "{} writes acknowledged ({killed_writes} by the killed node), {} credentials issued \
         ({in_flight} requests for one in flight at the kill)",
        acked(&writes),
        issued.len()
    );
    assert!(killed_writes > 0 && !issued.is_empty());

    // Every acknowledged write reads back from the survivors.
    let survivors = &apis[..2];
    let versions = check_writes(survivors, &writes).await;
    eprintln!("{versions} versions read back from the survivors");

    // What the dead node held, ten seconds after the kill: its claims
    // (claimed before the kill, so due again within CLAIM_FOR of it; the
    // survivors' claims of the time are done) and its reservations for
    // credentials it was making (due other than at their expiry; the
    // survivors' are settled).
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(killed_at.elapsed())).await;
    let claims_end = killed_ns + CLAIM_FOR.as_nanos() as i64;
    let held_claims = count(
        &mut storage_conn,
        &format!("SELECT count(*) FROM leases WHERE attempts > 0 AND due_at <= {claims_end}"),
    )
    .await;
    let held_reservations = count(
        &mut storage_conn,
        "SELECT count(*) FROM leases WHERE attempts = 0 AND due_at <> expire_at",
    )
    .await;
    let failed = count(
        &mut storage_conn,
        "SELECT count(*) FROM leases WHERE last_error IS NOT NULL",
    )
    .await;
    eprintln!(
        "10 s after the kill: the dead node held {held_claims} claimed leases and \
         {held_reservations} reserved ones; {} leases and {} roles left in all; \
         {failed} failed revocations",
        count(&mut storage_conn, "SELECT count(*) FROM leases").await,
        roles_left(&mut target_conn, &role).await.len()
    );

    // Every lease is revoked by the survivors, the dead node's included
    // once its claims and reservations run out, and no role is left.
    let bound = CLAIM_FOR + Duration::from_secs(CREDENTIAL_TTL) + Duration::from_secs(30);
    loop {
        let leases = count(&mut storage_conn, "SELECT count(*) FROM leases").await;
        let roles = roles_left(&mut target_conn, &role).await;
        if leases == 0 && roles.is_empty() {
            break;
        }
        if killed_at.elapsed() > bound {
            let unrevoked: Vec<(String, i64, Option<String>)> =
                sqlx::query_as("SELECT id, attempts, last_error FROM leases LIMIT 5")
                    .fetch_all(&mut storage_conn)
                    .await
                    .unwrap();
            panic!(
                "{:?} after the kill: {leases} leases unrevoked ({unrevoked:?}), \
                 {} roles left: {:?}",
                killed_at.elapsed(),
                roles.len(),
                &roles[..roles.len().min(5)]
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "every lease revoked and every role dropped {:?} after the kill",
        killed_at.elapsed()
    );
    for (_, lease) in &issued {
        let (status, body) = survivors[0]
            .call("PUT", "sys/leases/lookup", Some(json!({"lease_id": lease})))
            .await;
        assert_eq!(status, 400, "{lease}: {body}");
    }

    drop(nodes);
    drop(target_conn);
    drop(storage_conn);
    storage.remove().await;
    target.remove().await;
}
