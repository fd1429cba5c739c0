//! Faults of the local disk under a running server, on file systems the
//! tests mount (root only; skipped otherwise, unless
//! `SECRETD_REQUIRE_SERVICES` is set):
//!
//! - the SQLite database's file system fills up under a stream of writes;
//! - the SQLite database's file system goes read-only under a stream of
//!   writes, as ext4 does on an error (`errors=remount-ro`);
//! - the audit file's file system fills up.
//!
//! Each gives clear errors within a bound, never a hang; what was
//! acknowledged is kept; and the server recovers when the fault goes.
//!
//! Linux refuses `mount -o remount,ro` while a file on the mount is open
//! for writing (EBUSY), as SQLite's files are while secretd runs, so an
//! operator cannot make the directory read-only under a running server;
//! the kernel can, after an error, and that is what the second test does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use secretd_tests::{
    Api, Server, binary, config_file, initialize_static, ok, scrape_metrics, secretctl,
    static_seal_config,
};
use serde_json::{Value, json};
use sqlx::Connection;

/// A liveness bound for one request: far above anything the server
/// should take, far below a hang.
const ANSWER_BOUND: Duration = Duration::from_secs(15);

/// An API call that must answer within [`ANSWER_BOUND`]: a hang fails
/// the test instead of hanging it.
async fn call(api: &Api, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    match tokio::time::timeout(ANSWER_BOUND, api.call(method, path, body)).await {
        Ok(answer) => answer,
        Err(_) => panic!("{method} {path}: no answer within {ANSWER_BOUND:?}"),
    }
}

/// Skips (or, when services are required, fails) a test that cannot set
/// up its file system.
fn cannot(why: &str) {
    assert!(
        std::env::var_os("SECRETD_REQUIRE_SERVICES").is_none(),
        "SECRETD_REQUIRE_SERVICES is set but {why} (these tests run as root)"
    );
    eprintln!("skipping: {why}");
}

/// Runs a command; whether it succeeded, and what it printed on failure.
fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// Unmounts `dir`, lazily if it is still busy.
fn unmount(dir: &Path) {
    if run("umount", &[path_str(dir)]).is_err() {
        let _ = run("umount", &["-l", path_str(dir)]);
    }
}

/// A tmpfs of a fixed size, unmounted on drop (also on panic).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let options = format!("size={size},mode=0700");
        match run(
            "mount",
            &["-t", "tmpfs", "-o", &options, "tmpfs", path_str(dir.path())],
        ) {
            Ok(()) => Some(Tmpfs { dir }),
            Err(err) => {
                cannot(&format!("cannot mount a tmpfs ({err})"));
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system with `ballast` until no byte is left.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("ballast");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(28) => break, // ENOSPC
                Err(err) => panic!("filling {}: {err}", path.display()),
            }
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        unmount(self.dir.path());
    }
}

/// An ext4 file system on a loop device (its image on a tmpfs), mounted
/// with `errors=remount-ro`; unmounted and detached on drop.
struct Ext4 {
    dir: tempfile::TempDir,
    device: String,
    _image: Tmpfs,
}

impl Ext4 {
    fn make() -> Option<Ext4> {
        let image_fs = Tmpfs::mount("80m")?;
        let image = image_fs.path().join("fs.img");
        std::fs::File::create(&image)
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        if let Err(err) = run("mkfs.ext4", &["-q", "-F", path_str(&image)]) {
            cannot(&format!("cannot make an ext4 file system ({err})"));
            return None;
        }
        let device = match Command::new("losetup")
            .args(["-f", "--show", path_str(&image)])
            .output()
        {
            Ok(out) if out.status.success() => {
                String::from_utf8_lossy(&out.stdout).trim().to_owned()
            }
            other => {
                cannot(&format!("no loop device ({other:?})"));
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let ext4 = Ext4 {
            dir,
            device,
            _image: image_fs,
        };
        ext4.mount();
        Some(ext4)
    }

    fn mount(&self) {
        run(
            "mount",
            &[
                "-o",
                "errors=remount-ro",
                &self.device,
                path_str(self.dir.path()),
            ],
        )
        .unwrap();
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// What ext4 does on an error with `errors=remount-ro`: the journal is
    /// aborted and every later write fails with EROFS, also on open files.
    fn fail(&self) {
        let name = self.device.trim_start_matches("/dev/");
        std::fs::write(format!("/sys/fs/ext4/{name}/trigger_fs_error"), "1").unwrap();
    }

    /// The operator's repair: unmount, check, mount again.
    fn repair(&self) {
        run("umount", &[path_str(self.dir.path())]).unwrap();
        // 1: errors were corrected; anything above is a real problem.
        let status = Command::new("e2fsck")
            .args(["-f", "-y", &self.device])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(matches!(status.code(), Some(0 | 1)), "e2fsck: {status}");
        self.mount();
    }
}

impl Drop for Ext4 {
    fn drop(&mut self) {
        unmount(self.dir.path());
        let _ = run("losetup", &["-d", &self.device]);
    }
}

/// A config file for a static-seal server on the SQLite file `db`; the
/// seal key lives in `dir`.
fn sqlite_config(dir: &tempfile::TempDir, db: &Path) -> PathBuf {
    let url = format!("sqlite://{}", db.display());
    config_file(dir.path(), &url, &format!("\n{}", static_seal_config(dir)))
}

/// What a stream of KV writes saw.
struct Stream {
    acknowledged: Vec<u32>,
    statuses: BTreeMap<u16, u32>,
    /// The first answer that was not a 200.
    first_failure: Option<Value>,
    /// Writes acknowledged after the first failure.
    recovered: u32,
    /// Writes that were answered 503.
    refused: Vec<u32>,
    slowest: Duration,
}

/// Writes `secret/data/k<i>` (from 1000 up) until `stop` is set.
fn write_stream(api: &Api, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Stream> {
    let api = api.clone();
    tokio::spawn(async move {
        let mut stream = Stream {
            acknowledged: Vec::new(),
            statuses: BTreeMap::new(),
            first_failure: None,
            recovered: 0,
            refused: Vec::new(),
            slowest: Duration::ZERO,
        };
        let mut i = 1000;
        while !stop.load(Ordering::SeqCst) {
            let t = Instant::now();
            let (status, body) = call(
                &api,
                "PUT",
                &format!("secret/data/k{i}"),
                Some(json!({"data": {"v": i, "pad": "x".repeat(300)}})),
            )
            .await;
            stream.slowest = stream.slowest.max(t.elapsed());
            *stream.statuses.entry(status).or_default() += 1;
            if status == 200 {
                stream.acknowledged.push(i);
                stream.recovered += u32::from(stream.first_failure.is_some());
            } else {
                stream.refused.push(i);
                if stream.first_failure.is_none() {
                    stream.first_failure = Some(json!({"status": status, "body": body}));
                }
            }
            i += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stream
    })
}

/// Waits until a write of `k<probe>` gets `want` (200: succeeds), with
/// the stream going on meanwhile.
async fn wait_for_write(api: &Api, want_ok: bool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = call(
            api,
            "PUT",
            "secret/data/probe",
            Some(json!({"data": {"v": 1}})),
        )
        .await;
        if (status == 200) == want_ok {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "writes still answer {status} {body} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every acknowledged write reads back exactly, and no refused one is
/// there.
async fn all_read_back(api: &Api, acknowledged: &[u32], refused: &[u32]) {
    for i in acknowledged {
        let (status, body) = call(api, "GET", &format!("secret/data/k{i}"), None).await;
        assert_eq!(status, 200, "k{i}: {body}");
        assert_eq!(body["data"]["data"]["v"], json!(i), "k{i}");
    }
    for i in refused {
        let (status, body) = call(api, "GET", &format!("secret/data/k{i}"), None).await;
        assert_eq!(status, 404, "k{i} was answered 503 but is there: {body}");
    }
}

async fn integrity(db: &Path) -> String {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let (answer,): (String,) = sqlx::query_as("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    answer
}

/// Checks the answer to a write the storage could not take: a Vault
/// error envelope, 503, saying storage is unavailable.
fn assert_storage_unavailable(failure: &Value) {
    assert_eq!(failure["status"], 503, "{failure}");
    let message = failure["body"]["errors"][0].as_str().unwrap_or_default();
    assert!(message.contains("storage"), "{failure}");
}

/// The writes acknowledged before a fault.
async fn seed(api: &Api) -> Vec<u32> {
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let (status, body) = call(
            api,
            "PUT",
            &format!("secret/data/k{i}"),
            Some(json!({"data": {"v": i}})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        acknowledged.push(i);
    }
    acknowledged
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_sqlite_disk_gives_503s_keeps_reads_and_recovers_without_restart() {
    let Some(disk) = Tmpfs::mount("16m") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = disk.path().join("secretd.db");
    let config = sqlite_config(&dir, &db);
    let server = Server::from_config_file(&config);
    let root = initialize_static(&server).await;
    let api = Api::new(&server.url, &root);
    let mut acknowledged = seed(&api).await;

    let stop = Arc::new(AtomicBool::new(false));
    let stream = write_stream(&api, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ballast = disk.fill();
    wait_for_write(&api, false, ANSWER_BOUND).await;

    // Full: reads still work, and health says the node is up.
    let (status, body) = call(&api, "GET", "secret/data/k7", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["data"]["v"], 7);
    let (status, _) = Api::new(&server.url, "")
        .call("GET", "sys/health", None)
        .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Space again: writes go through without a restart.
    std::fs::remove_file(&ballast).unwrap();
    wait_for_write(&api, true, ANSWER_BOUND).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::SeqCst);
    let stream = stream.await.unwrap();
    assert!(
        stream.statuses.keys().all(|s| [200, 503].contains(s)),
        "only successes and 503s: {:?}",
        stream.statuses
    );
    assert_storage_unavailable(stream.first_failure.as_ref().unwrap());
    assert!(
        stream.slowest < ANSWER_BOUND,
        "a write took {:?}",
        stream.slowest
    );
    assert!(
        stream.recovered > 0,
        "no write was acknowledged after the disk had space again"
    );
    let log = server.log();
    assert!(log.contains("storage unavailable"), "{log}");

    acknowledged.extend(&stream.acknowledged);
    all_read_back(&api, &acknowledged, &stream.refused).await;
    // And after a restart, from the file alone.
    assert!(server.stop().success());
    assert_eq!(integrity(&db).await, "ok");
    let server = Server::from_config_file(&config);
    all_read_back(
        &Api::new(&server.url, &root),
        &acknowledged,
        &stream.refused,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sqlite_disk_gone_read_only_gives_503s_and_loses_nothing() {
    let Some(disk) = Ext4::make() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = disk.path().join("secretd.db");
    let config = sqlite_config(&dir, &db);
    let server = Server::from_config_file(&config);
    let root = initialize_static(&server).await;
    let api = Api::new(&server.url, &root);
    let mut acknowledged = seed(&api).await;

    let stop = Arc::new(AtomicBool::new(false));
    let stream = write_stream(&api, Arc::clone(&stop));
    tokio::time::sleep(Duration::from_secs(1)).await;
    disk.fail();
    wait_for_write(&api, false, ANSWER_BOUND).await;
    let (status, body) = call(&api, "GET", "secret/data/k7", None).await;
    assert_eq!(status, 200, "reads go on: {body}");
    assert_eq!(body["data"]["data"]["v"], 7);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let stream = stream.await.unwrap();
    assert!(
        stream.statuses.keys().all(|s| [200, 503].contains(s)),
        "only successes and 503s: {:?}",
        stream.statuses
    );
    assert_storage_unavailable(stream.first_failure.as_ref().unwrap());
    assert!(
        stream.slowest < ANSWER_BOUND,
        "a write took {:?}",
        stream.slowest
    );
    acknowledged.extend(&stream.acknowledged);
    // Shutting down on a read-only disk does not hang.
    server.stop();

    // A server will not start on the read-only file system, and says why.
    let mut child = Command::new(binary("secretd"))
        .arg("server")
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + ANSWER_BOUND;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("secretd neither started nor gave up on a read-only disk");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("Read-only file system"), "{stderr}");

    // Repaired, the server starts on the same file with every write it
    // acknowledged, and the database is sound.
    disk.repair();
    assert_eq!(integrity(&db).await, "ok");
    let server = Server::from_config_file(&config);
    let api = Api::new(&server.url, &root);
    all_read_back(&api, &acknowledged, &stream.refused).await;
    let (status, body) = call(
        &api,
        "PUT",
        "secret/data/after",
        Some(json!({"data": {"v": 1}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

/// The audit log's lines: each a JSON object.
fn audit_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_audit_disk_fails_requests_closed_until_there_is_space() {
    let Some(disk) = Tmpfs::mount("256k") else {
        return;
    };
    let database = secretd_tests::TestDatabase::sqlite();
    const ROOT: &str = "audit-disk-root-token";
    const PASSWORD: &str = "only-the-database-knows-this";
    let server = Server::dev(&database.url, ROOT);
    let api = Api::new(&server.url, ROOT);
    let log = disk.path().join("audit.log");
    let (status, body) = call(
        &api,
        "PUT",
        "sys/audit/file",
        Some(json!({"type": "file", "options": {"file_path": log}})),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let (status, _) = call(
        &api,
        "POST",
        "secret/data/app",
        Some(json!({"data": {"password": PASSWORD}})),
    )
    .await;
    assert_eq!(status, 200);

    // The disk fills up. A request entry of more than a page (here: many
    // HMAC'd fields) can never fit in what is left of the file's last page.
    let ballast = disk.fill();
    let big: serde_json::Map<String, Value> = (0..100)
        .map(|i| (format!("field{i}"), json!("refused")))
        .collect();
    let t = Instant::now();
    let (status, body) = call(
        &api,
        "POST",
        "secret/data/app",
        Some(json!({ "data": big })),
    )
    .await;
    assert!(t.elapsed() < ANSWER_BOUND, "took {:?}", t.elapsed());
    assert_eq!(status, 500, "{body}");
    let message = body["errors"][0].as_str().unwrap();
    assert!(message.contains("audit"), "{body}");
    // Reads fail closed too, and nothing secret is in the answer.
    for _ in 0..5 {
        let (status, body) = call(&api, "GET", "secret/data/app", None).await;
        assert_eq!(status, 500, "{body}");
        assert!(!body.to_string().contains(PASSWORD), "{body}");
        assert_eq!(body.as_object().unwrap().len(), 1, "only errors: {body}");
    }
    let (status, health) = Api::new(&server.url, "")
        .call("GET", "sys/health", None)
        .await;
    assert_eq!(status, 200);
    let reason = health["audit_failures"]["file/"]
        .as_str()
        .unwrap_or_default();
    assert!(reason.contains("No space left on device"), "{health}");
    assert!(server.log().contains("audit device cannot write"));
    // A scrape is a request like any other: it fails closed too.
    let (status, _) = scrape_metrics(&server.url, ROOT).await;
    assert_eq!(status, 500);

    // Space again: requests go through without a restart, and the refused
    // write never happened.
    std::fs::remove_file(&ballast).unwrap();
    let (status, body) = call(&api, "GET", "secret/data/app", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"]["data"],
        json!({"password": PASSWORD}),
        "the refused write was not carried out"
    );
    let (_, health) = Api::new(&server.url, "")
        .call("GET", "sys/health", None)
        .await;
    assert!(health.get("audit_failures").is_none(), "{health}");
    let (status, metrics) = scrape_metrics(&server.url, ROOT).await;
    assert_eq!(status, 200);
    let failures = metrics
        .lines()
        .find_map(|l| l.strip_prefix(r#"secretd_audit_device_failures_total{device="file/"} "#))
        .map(|v| v.parse::<f64>().unwrap());
    assert!(failures.is_some_and(|n| n >= 6.0), "{metrics}");

    // The log is whole lines of JSON, with no secret, and its chain holds.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains(PASSWORD));
    let lines = audit_lines(&log);
    assert!(lines.len() >= 4, "{} lines", lines.len());
    let report = ok(&secretctl(
        "http://127.0.0.1:9",
        "",
        &["audit", "verify", path_str(&log)],
    ));
    assert!(report.contains(&lines.len().to_string()), "{report}");
}
