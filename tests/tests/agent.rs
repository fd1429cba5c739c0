//! `secretctl agent` against a real server: `--once` (the init container)
//! renders every file with its mode and owner and fails with a distinct
//! code; the sidecar continues the init container's token and leases,
//! re-renders after a KV change and after a dynamic credential is
//! replaced, signals the application, revokes the old lease after the
//! grace period, and flips `/readyz` only after its first render.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use secretd_tests::{
    Api, Server, TestDatabase, binary, count, counting_engine, counting_target, initialize_static,
    ok, secretctl, signal, static_seal_config,
};

const ROOT: &str = "root-token-for-agent-tests";

/// The policy of the sidecar test's agent, as docs/injection.md gives it.
const AGENT_POLICY: &str = r#"
path "secret/data/app/*" { capabilities = ["read"] }
path "db/creds/app" { capabilities = ["read"] }
path "sys/leases/revoke" { capabilities = ["update"] }
"#;

/// A running `secretctl agent`, its stderr collected.
struct Agent {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Agent {
    fn spawn(url: &str, config: &Path, once: bool) -> Agent {
        let mut cmd = Command::new(binary("secretctl"));
        cmd.arg("agent")
            .arg("--config")
            .arg(config)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SECRETD_ADDR", url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if once {
            cmd.arg("--once");
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Agent { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the exit code.
    fn wait(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the stderr thread finish reading.
                std::thread::sleep(Duration::from_millis(50));
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the agent did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The address of its health endpoints, from its log.
    fn health_url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(url) = self
                .stderr()
                .lines()
                .find_map(|l| l.split("health endpoints on ").nth(1).map(str::to_owned))
            {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "no health endpoint:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn get(url: &str) -> (u16, String) {
    secretd_tests::install_crypto_provider();
    let resp = reqwest::get(url).await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Waits until `test` holds for the file's text.
fn wait_file(path: &Path, within: Duration, test: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if test(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never got there; it holds {text:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn toml_path(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn once_renders_every_file_with_its_mode_and_owner_or_fails_with_a_code() {
    let storage = TestDatabase::sqlite();
    let server = Server::dev(&storage.url, ROOT);
    let url = server.url.as_str();
    ok(&secretctl(
        url,
        ROOT,
        &["put", "secret/app/db", "username=app", "password=pw-1"],
    ));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("secrets");
    std::fs::create_dir(&out).unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, ROOT).unwrap();
    let log = dir.path().join("termination-log");
    std::fs::write(&log, "").unwrap();
    let write_config = |templates: &str| -> PathBuf {
        let path = dir.path().join("agent.toml");
        let config = format!(
            "state_file = \"{state}\"\ntermination_log = \"{log}\"\nattempts = 1\n\
             [auth]\nmethod = \"token\"\ntoken_file = \"{token}\"\n{templates}",
            state = toml_path(&out.join(".state")),
            log = toml_path(&log),
            token = toml_path(&token_file),
        );
        std::fs::write(&path, config).unwrap();
        path
    };
    let b_source = dir.path().join("db.json.tmpl");
    std::fs::write(&b_source, "{{ secret('secret/app/db') | tojson }}").unwrap();
    let config = write_config(&format!(
        "[[template]]\ndestination = \"{a}\"\n\
         contents = \"DB_USER={{{{ secret('secret/app/db').username }}}}\\nDB_PASSWORD={{{{ secret('secret/app/db').password }}}}\\n\"\n\
         mode = \"0440\"\nuid = 4242\ngid = 4343\n\
         [[template]]\ndestination = \"{b}\"\nsource = \"{b_source}\"\n",
        a = toml_path(&out.join("db.env")),
        b = toml_path(&out.join("db.json")),
        b_source = toml_path(&b_source),
    ));
    let mut agent = Agent::spawn(url, &config, true);
    assert_eq!(agent.wait(Duration::from_secs(20)), 0, "{}", agent.stderr());
    let env = out.join("db.env");
    assert_eq!(
        std::fs::read_to_string(&env).unwrap(),
        "DB_USER=app\nDB_PASSWORD=pw-1\n"
    );
    let meta = std::fs::metadata(&env).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o440);
    assert_eq!((meta.uid(), meta.gid()), (4242, 4343));
    let json = out.join("db.json");
    let parsed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(parsed["password"], "pw-1");
    assert_eq!(
        std::fs::metadata(&json).unwrap().permissions().mode() & 0o777,
        0o400
    );
    // The state for the sidecar: readable by the agent alone.
    let state = std::fs::metadata(out.join(".state")).unwrap();
    assert_eq!(state.permissions().mode() & 0o777, 0o600);
    assert!(!agent.stderr().contains("pw-1") && !agent.stderr().contains(ROOT));

    // Each failure: its exit code and one line in the termination log
    // (without a state file to resume).
    std::fs::remove_file(out.join(".state")).unwrap();
    let never = dir.path().join("never");
    for (what, templates, token, code, says) in [
        (
            "a key the secret does not have",
            "[[template]]\ndestination = \"{never}\"\ncontents = \"{{ secret('secret/app/db').nope }}\"\n",
            ROOT,
            66,
            "secret not found",
        ),
        (
            "a secret that does not exist",
            "[[template]]\ndestination = \"{never}\"\ncontents = \"{{ secret('secret/app/gone').x }}\"\n",
            ROOT,
            66,
            "secret not found",
        ),
        (
            "a token the server refuses",
            "[[template]]\ndestination = \"{never}\"\ncontents = \"{{ secret('secret/app/db').password }}\"\n",
            "not-a-token",
            80,
            "authentication denied",
        ),
        (
            "a template that does not parse",
            "[[template]]\ndestination = \"{never}\"\ncontents = \"{{ secret( }}\"\n",
            ROOT,
            78,
            "configuration error",
        ),
    ] {
        std::fs::write(&token_file, token).unwrap();
        std::fs::write(&log, "").unwrap();
        let config = write_config(&templates.replace("{never}", &toml_path(&never)));
        let _ = std::fs::remove_file(out.join(".state"));
        let mut agent = Agent::spawn(url, &config, true);
        assert_eq!(
            agent.wait(Duration::from_secs(20)),
            code,
            "{what}: {}",
            agent.stderr()
        );
        assert!(agent.stderr().contains(says), "{what}: {}", agent.stderr());
        let message = std::fs::read_to_string(&log).unwrap();
        assert!(
            message.contains(says) && message.lines().count() == 1,
            "{what}: {message:?}"
        );
        assert!(!never.exists());
    }
    std::fs::write(&token_file, ROOT).unwrap();
    let config = write_config(
        &"[[template]]\ndestination = \"{never}\"\ncontents = \"{{ secret('secret/app/db').password }}\"\n"
            .replace("{never}", &toml_path(&never)),
    );
    let mut agent = Agent::spawn("http://127.0.0.1:9", &config, true);
    assert_eq!(
        agent.wait(Duration::from_secs(20)),
        69,
        "{}",
        agent.stderr()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_sidecar_continues_the_init_leases_and_keeps_files_fresh() {
    let Some((_target, mut db, name)) = counting_target().await else {
        return;
    };
    let storage = TestDatabase::sqlite();
    let server = Server::dev(&storage.url, ROOT);
    let url = server.url.as_str();
    counting_engine(&Api::new(url, ROOT), &name, "app", "4s", "8s").await;
    ok(&secretctl(
        url,
        ROOT,
        &["put", "secret/app/db", "password=pw-1"],
    ));
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("secrets");
    std::fs::create_dir(&out).unwrap();
    // The agent's token has only what docs/injection.md says it needs.
    let api = Api::new(url, ROOT);
    let policy = json!({"policy": AGENT_POLICY});
    assert_eq!(
        api.call("PUT", "sys/policies/acl/agent", Some(policy))
            .await
            .0,
        204
    );
    let (_, created) = api
        .call(
            "POST",
            "auth/token/create",
            Some(json!({"policies": ["agent"]})),
        )
        .await;
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    // The application: records HUPs, its pid in a file.
    let pid_file = dir.path().join("app.pid");
    let hups = dir.path().join("hups");
    let ran = dir.path().join("command-saw");
    let mut app = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap 'echo hup >> {hups}' HUP; echo $$ > {pid}; while :; do sleep 0.05; done",
            hups = hups.display(),
            pid = pid_file.display()
        ))
        .spawn()
        .unwrap();
    wait_file(&pid_file, Duration::from_secs(5), |t| !t.is_empty());

    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "state_file = \"{state}\"\nlisten = \"127.0.0.1:0\"\nkv_poll_interval = \"1s\"\n\
             grace = \"1s\"\n\
             [auth]\nmethod = \"token\"\ntoken_file = \"{token}\"\n\
             [[template]]\ndestination = \"{db}\"\n\
             contents = \"{{{{ secret('db/creds/app').username }}}}\"\n\
             [[template]]\ndestination = \"{kv}\"\n\
             contents = \"{{{{ secret('secret/app/db').password }}}}\"\n\
             signal = \"HUP\"\npid_file = \"{pid}\"\nsplay = \"1s\"\n\
             command = [\"sh\", \"-c\", \"cat {kv} >> {ran}\"]\n",
            state = toml_path(&out.join(".state")),
            token = toml_path(&token_file),
            db = toml_path(&out.join("db-user")),
            kv = toml_path(&out.join("kv-password")),
            pid = toml_path(&pid_file),
            ran = toml_path(&ran),
        ),
    )
    .unwrap();

    // The init container.
    let mut init = Agent::spawn(url, &config, true);
    assert_eq!(init.wait(Duration::from_secs(20)), 0, "{}", init.stderr());
    let first_user = std::fs::read_to_string(out.join("db-user")).unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM issued").await, 1);

    // The sidecar takes over the same lease: no second credential, the
    // same file, ready at once.
    let sidecar = Agent::spawn(url, &config, false);
    let health = sidecar.health_url();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&format!("{health}/readyz")).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            sidecar.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM issued").await,
        1,
        "the sidecar read new credentials:\n{}",
        sidecar.stderr()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("db-user")).unwrap(),
        first_user
    );
    assert_eq!(get(&format!("{health}/healthz")).await.0, 200);
    let (status, metrics) = get(&format!("{health}/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("secretctl_agent_lease_expiry_seconds{path=\"db/creds/app\"}")
            && metrics.contains("secretctl_agent_ready 1"),
        "{metrics}"
    );

    // A KV change: re-rendered, and the application told.
    ok(&secretctl(
        url,
        ROOT,
        &["put", "secret/app/db", "password=pw-2"],
    ));
    wait_file(&out.join("kv-password"), Duration::from_secs(10), |t| {
        t == "pw-2"
    });
    wait_file(&hups, Duration::from_secs(10), |t| t == "hup\n");
    // The command ran after the file was written, and once.
    wait_file(&ran, Duration::from_secs(10), |t| t == "pw-2");

    // The dynamic credential nears its 8 s max TTL: a new one is
    // rendered, and the old lease is revoked after the grace period.
    let new_user = wait_file(&out.join("db-user"), Duration::from_secs(20), |t| {
        !t.is_empty() && t != first_user
    });
    assert_ne!(new_user, first_user);
    let revoked = format!("SELECT count(*) FROM revoked WHERE name = '{first_user}'");
    let deadline = Instant::now() + Duration::from_secs(10);
    while count(&mut db, &revoked).await == 0 {
        assert!(Instant::now() < deadline, "{first_user} was never revoked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!sidecar.stderr().contains("pw-2"), "{}", sidecar.stderr());

    let mut sidecar = sidecar;
    signal(sidecar.child.id(), "TERM");
    assert_eq!(
        sidecar.wait(Duration::from_secs(10)),
        0,
        "{}",
        sidecar.stderr()
    );
    let _ = app.kill();
    let _ = app.wait();
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_flips_only_after_the_first_render() {
    let storage = TestDatabase::sqlite();
    let dir = tempfile::tempdir().unwrap();
    let seal = static_seal_config(&dir);
    // Not initialised yet: the agent keeps trying.
    let server = Server::with_config(&storage.url, &seal);
    let url = server.url.clone();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "no-token-yet").unwrap();
    let out = dir.path().join("password");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nattempts = 30\n\
             [auth]\nmethod = \"token\"\ntoken_file = \"{token}\"\n\
             [[template]]\ndestination = \"{out}\"\n\
             contents = \"{{{{ secret('secret/app').password }}}}\"\n",
            token = toml_path(&token_file),
            out = toml_path(&out),
        ),
    )
    .unwrap();
    let agent = Agent::spawn(&url, &config, false);
    let health = agent.health_url();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(get(&format!("{health}/readyz")).await.0, 503);
    assert_eq!(get(&format!("{health}/healthz")).await.0, 200);
    assert!(!out.exists());

    let root = initialize_static(&server).await;
    ok(&secretctl(
        &url,
        &root,
        &["put", "secret/app", "password=pw"],
    ));
    std::fs::write(&token_file, &root).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while get(&format!("{health}/readyz")).await.0 != 200 {
        assert!(
            Instant::now() < deadline,
            "never ready:\n{}",
            agent.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "pw");
}
