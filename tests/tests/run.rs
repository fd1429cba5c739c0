//! `secretctl run` against a real server: every reference form, `exec`,
//! the exit code of each failure, and the `--watch` supervisor (signals,
//! exit codes, restart and signal on change, dynamic credentials replaced
//! before their max TTL, revocation on exit).
//!
//! Dynamic credentials come from the database engine on the real
//! PostgreSQL, with a role whose statements record what it issues and
//! revokes.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secretd_tests::{
    Api, Server, TestDatabase, binary, count, counting_engine, counting_target, ok, secretctl,
    signal,
};

const ROOT: &str = "root-token-for-run-tests";

/// `secretctl run ARGS` as a child with only `env` (and PATH) in its
/// environment, output to pipes.
fn spawn_run(url: &str, env: &[(&str, &str)], args: &[&str]) -> Child {
    Command::new(binary("secretctl"))
        .arg("run")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SECRETD_ADDR", url)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Runs to the end: (exit code, stdout, stderr).
fn run(url: &str, env: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let out = spawn_run(url, env, args).wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until `file` holds at least `lines` lines; returns them.
fn wait_lines(file: &Path, lines: usize, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let got: Vec<String> = text.lines().map(str::to_owned).collect();
        if got.len() >= lines {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{} has {got:?}, waited for {lines} lines",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits for the child to exit; its code, or 128 + signal as a shell says.
fn wait_exit(child: &mut Child, within: Duration) -> i32 {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("secretctl run did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn put(url: &str, path: &str, pairs: &[&str]) {
    let mut args = vec!["put", path];
    args.extend_from_slice(pairs);
    ok(&secretctl(url, ROOT, &args));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_reference_form_reaches_the_command_which_replaces_secretctl() {
    let storage = TestDatabase::sqlite();
    let server = Server::dev(&storage.url, ROOT);
    let url = server.url.as_str();
    put(url, "secret/app/db", &["username=app", "password=pw-1"]);
    put(url, "secret/app/api", &["token=api-token"]);
    // Dynamic credentials, when PostgreSQL is here.
    let target = counting_target().await;
    if let Some((_, _, name)) = &target {
        counting_engine(&Api::new(url, ROOT), name, "ro", "1h", "").await;
    }

    let mut args = vec![
        "--env",
        "PW=secret/app/db#password",
        "--from",
        "DB_=secret/app/db",
        "--from",
        "secret/app/api",
    ];
    if target.is_some() {
        args.extend_from_slice(&["--env", "DYN_USER=db/creds/ro#username"]);
    }
    args.extend_from_slice(&["--", "sh", "-c", "echo pid=$$; env"]);
    let child = spawn_run(
        url,
        &[
            ("SECRETD_TOKEN", ROOT),
            ("API", "secretd:secret/app/api#token"),
            ("KEEP", "kept"),
        ],
        &args,
    );
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vars: Vec<&str> = stdout.lines().collect();
    // exec: the command is the process secretctl was.
    assert!(vars.contains(&format!("pid={pid}").as_str()), "{stdout}");
    for expected in [
        "PW=pw-1",
        "DB_USERNAME=app",
        "DB_PASSWORD=pw-1",
        "TOKEN=api-token",
        "API=api-token",
        "KEEP=kept",
    ] {
        assert!(
            vars.contains(&expected),
            "{expected} missing from:\n{stdout}"
        );
    }
    assert!(
        !stdout.contains("SECRETD_") && !stdout.contains(ROOT),
        "secretctl's own variables leaked:\n{stdout}"
    );
    if let Some((_, mut db, _)) = target {
        let user = vars
            .iter()
            .find_map(|v| v.strip_prefix("DYN_USER="))
            .expect("DYN_USER");
        let issued = count(
            &mut db,
            &format!("SELECT count(*) FROM issued WHERE name = '{user}'"),
        )
        .await;
        assert_eq!(issued, 1, "{user} was not issued by the database engine");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_failure_has_its_own_exit_code_and_one_line() {
    let storage = TestDatabase::sqlite();
    let server = Server::dev(&storage.url, ROOT);
    let url = server.url.as_str();
    put(url, "secret/app/db", &["password=pw"]);
    put(url, "secret/app/api", &["token=t"]);
    let api = Api::new(url, ROOT);
    let (status, body) = api
        .call(
            "PUT",
            "sys/policies/acl/api-only",
            Some(serde_json::json!({"policy": "path \"secret/data/app/api\" { capabilities = [\"read\"] }"})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (_, created) = api
        .call(
            "POST",
            "auth/token/create",
            Some(serde_json::json!({"policies": ["api-only"]})),
        )
        .await;
    let limited = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let log_str = log.display().to_string();
    let root_env = [
        ("SECRETD_TOKEN", ROOT),
        ("SECRETD_TERMINATION_LOG", log_str.as_str()),
    ];

    // (what, exit code, environment, arguments, what stderr says)
    type Case<'a> = (&'a str, i32, Vec<(&'a str, &'a str)>, Vec<&'a str>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "a reference without a field",
            78,
            root_env.to_vec(),
            vec!["--env", "PW=secret/app/db", "--", "true"],
            "configuration error",
        ),
        (
            "an unknown flag",
            78,
            root_env.to_vec(),
            vec!["--no-such-flag", "--", "true"],
            "--no-such-flag",
        ),
        (
            "a secret that does not exist",
            66,
            root_env.to_vec(),
            vec!["--env", "X=secret/app/missing#x", "--", "true"],
            "secret not found",
        ),
        (
            "a field that does not exist",
            66,
            root_env.to_vec(),
            vec!["--env", "X=secret/app/db#nope", "--", "true"],
            "no field \"nope\"",
        ),
        (
            "a token the server does not know",
            80,
            vec![
                ("SECRETD_TOKEN", "not-a-token"),
                ("SECRETD_TERMINATION_LOG", log_str.as_str()),
            ],
            vec!["--env", "X=secret/app/db#password", "--", "true"],
            "authentication denied",
        ),
        (
            "a token whose policy does not allow the read",
            77,
            vec![
                ("SECRETD_TOKEN", limited.as_str()),
                ("SECRETD_TERMINATION_LOG", log_str.as_str()),
            ],
            vec!["--env", "X=secret/app/db#password", "--", "true"],
            "permission denied",
        ),
        (
            "a command that does not exist",
            127,
            root_env.to_vec(),
            vec![
                "--env",
                "X=secret/app/db#password",
                "--",
                "/no/such/command",
            ],
            "cannot run /no/such/command",
        ),
    ];
    for (what, code, env, args, says) in cases {
        std::fs::write(&log, "").unwrap();
        let (got, _, stderr) = run(url, &env, &args);
        assert_eq!(got, code, "{what}: {stderr}");
        assert!(stderr.contains(says), "{what}: {stderr}");
        if code != 127 {
            let message = std::fs::read_to_string(&log).unwrap();
            assert!(
                message.contains(says) && message.lines().count() == 1,
                "{what}: termination message {message:?}"
            );
        }
    }

    // A server that is not there: the attempts run out, then 69.
    let started = Instant::now();
    let (got, _, stderr) = run(
        "http://127.0.0.1:9",
        &root_env,
        &[
            "--attempts",
            "2",
            "--env",
            "X=secret/app/db#password",
            "--",
            "true",
        ],
    );
    assert_eq!(got, 69, "{stderr}");
    assert!(stderr.contains("server unreachable"), "{stderr}");
    assert!(started.elapsed() >= Duration::from_millis(900), "no retry");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap()
            .contains("server unreachable")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_supervisor_forwards_signals_and_exits_as_its_child_did() {
    let storage = TestDatabase::sqlite();
    let server = Server::dev(&storage.url, ROOT);
    let url = server.url.as_str();
    put(url, "secret/app/db", &["password=pw"]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_str = out.display().to_string();
    let env = [("SECRETD_TOKEN", ROOT), ("OUT", out_str.as_str())];
    let watch = ["--watch", "--env", "PW=secret/app/db#password", "--"];

    // The child's own exit code comes back.
    let mut args = watch.to_vec();
    args.extend_from_slice(&["sh", "-c", "exit 7"]);
    assert_eq!(run(url, &env, &args).0, 7);

    // Killed by a signal: 128 + its number.
    let mut args = watch.to_vec();
    args.extend_from_slice(&["sh", "-c", "kill -9 $$"]);
    assert_eq!(run(url, &env, &args).0, 137);

    // Each forwarded signal reaches the child; TERM ends it, with its code.
    let script = "trap 'echo HUP >> $OUT' HUP; trap 'echo USR1 >> $OUT' USR1; \
                  trap 'echo TERM >> $OUT; exit 3' TERM; echo ready >> $OUT; \
                  while :; do sleep 0.05; done";
    let mut args = watch.to_vec();
    args.extend_from_slice(&["sh", "-c", script]);
    let mut child = spawn_run(url, &env, &args);
    wait_lines(&out, 1, Duration::from_secs(10));
    signal(child.id(), "HUP");
    wait_lines(&out, 2, Duration::from_secs(10));
    signal(child.id(), "USR1");
    wait_lines(&out, 3, Duration::from_secs(10));
    signal(child.id(), "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 3);
    assert_eq!(
        wait_lines(&out, 4, Duration::from_secs(1)),
        ["ready", "HUP", "USR1", "TERM"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_secret_restarts_or_signals_the_child() {
    let storage = TestDatabase::sqlite();
    let server = Server::dev(&storage.url, ROOT);
    let url = server.url.as_str();
    put(url, "secret/app/db", &["password=pw-1"]);
    let dir = tempfile::tempdir().unwrap();

    // restart: the new child sees the new value.
    let out = dir.path().join("restart");
    let out_str = out.display().to_string();
    let env = [("SECRETD_TOKEN", ROOT), ("OUT", out_str.as_str())];
    let mut child = spawn_run(
        url,
        &env,
        &[
            "--watch",
            "--poll-interval",
            "1s",
            "--splay",
            "0s",
            "--env",
            "PW=secret/app/db#password",
            "--",
            "sh",
            "-c",
            "echo $PW >> $OUT; exec sleep 1000",
        ],
    );
    wait_lines(&out, 1, Duration::from_secs(10));
    put(url, "secret/app/db", &["password=pw-2"]);
    assert_eq!(
        wait_lines(&out, 2, Duration::from_secs(15)),
        ["pw-1", "pw-2"]
    );
    // A version without the field: the command keeps running as it is.
    put(url, "secret/app/db", &["user=only"]);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(wait_lines(&out, 2, Duration::from_secs(1)).len(), 2);
    signal(child.id(), "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 143);
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("not restarting"), "{stderr}");
    assert!(stderr.contains("no field \"password\""), "{stderr}");
    put(url, "secret/app/db", &["password=pw-2"]);

    // signal:HUP: the same child, told.
    let out = dir.path().join("hup");
    let out_str = out.display().to_string();
    let env = [("SECRETD_TOKEN", ROOT), ("OUT", out_str.as_str())];
    let mut child = spawn_run(
        url,
        &env,
        &[
            "--watch",
            "--poll-interval",
            "1s",
            "--splay",
            "0s",
            "--on-change",
            "signal:HUP",
            "--env",
            "PW=secret/app/db#password",
            "--",
            "sh",
            "-c",
            "trap 'echo hup >> $OUT' HUP; echo start-$PW >> $OUT; while :; do sleep 0.05; done",
        ],
    );
    wait_lines(&out, 1, Duration::from_secs(10));
    put(url, "secret/app/db", &["password=pw-3"]);
    assert_eq!(
        wait_lines(&out, 2, Duration::from_secs(15)),
        ["start-pw-2", "hup"]
    );
    signal(child.id(), "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 143);
}

#[tokio::test(flavor = "multi_thread")]
async fn dynamic_credentials_are_replaced_before_their_max_ttl_and_revoked_on_exit() {
    let Some((_target, mut db, name)) = counting_target().await else {
        return;
    };
    let storage = TestDatabase::sqlite();
    let server = Server::dev(&storage.url, ROOT);
    let url = server.url.as_str();
    counting_engine(&Api::new(url, ROOT), &name, "short", "4s", "8s").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("users");
    let out_str = out.display().to_string();
    let env = [("SECRETD_TOKEN", ROOT), ("OUT", out_str.as_str())];
    let mut child = spawn_run(
        url,
        &env,
        &[
            "--watch",
            "--splay",
            "0s",
            "--grace",
            "1s",
            "--revoke-on-exit",
            "--env",
            "DB_USER=db/creds/short#username",
            "--",
            "sh",
            "-c",
            "echo $DB_USER >> $OUT; exec sleep 1000",
        ],
    );
    // Renewed at 2.7 s, then again at 5.3 s but capped by the 8 s max TTL:
    // replaced at once, so that the old credentials outlive the grace
    // period; a second child starts with the new ones.
    let users = wait_lines(&out, 2, Duration::from_secs(20));
    assert_ne!(users[0], users[1]);
    // The old lease is revoked (after the grace period), once.
    let deadline = Instant::now() + Duration::from_secs(10);
    let revoked_first = format!("SELECT count(*) FROM revoked WHERE name = '{}'", users[0]);
    while count(&mut db, &revoked_first).await == 0 {
        assert!(Instant::now() < deadline, "{} was never revoked", users[0]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(count(&mut db, &revoked_first).await, 1);
    // TERM: the child ends, and --revoke-on-exit takes the current
    // credentials back at once.
    signal(child.id(), "TERM");
    assert_eq!(wait_exit(&mut child, Duration::from_secs(10)), 143);
    let users = wait_lines(&out, 2, Duration::from_secs(1));
    let current = users.last().unwrap();
    let revoked = count(
        &mut db,
        &format!("SELECT count(*) FROM revoked WHERE name = '{current}'"),
    )
    .await;
    assert_eq!(revoked, 1, "{current} was not revoked on exit");
}
