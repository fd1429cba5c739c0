//! `secretctl run [OPTIONS] -- CMD [ARGS...]`: secrets as environment
//! variables for a command.
//!
//! Without `--watch` the command replaces secretctl (`exec`): it becomes
//! the process (PID 1 in a container) and gets its signals itself. With
//! `--watch` secretctl stays as a small supervisor: it forwards signals,
//! reaps, exits as the child did, keeps the token and leases alive, and
//! acts on a change of the secrets (restart the child, signal it, or
//! nothing).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use secretd_client::duration::parse_duration;
use secretd_client::secrecy::{ExposeSecret, SecretString};
use secretd_client::{Client, KeeperOptions, LeaseKeeper, Snapshot, jitter};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Failure;
use crate::cli::Global;
use crate::inject::{
    self, AuthMethod, AuthSpec, ENV_REFERENCE_PREFIX, EXIT_CANNOT_EXECUTE, EXIT_NO_COMMAND,
    EXIT_NOT_FOUND, Reference, config, env_name_for_key, is_env_name,
};

/// `run`.
#[derive(Args)]
pub struct RunArgs {
    /// Set NAME to one field of a secret: --env DB_PASSWORD=secret/app/db#password,
    /// --env DB_USER=database/creds/ro#username. Repeatable.
    #[arg(long = "env", value_name = "NAME=PATH#FIELD")]
    pub env: Vec<String>,
    /// Set every key of a secret, upper-cased, with an optional prefix:
    /// --from secret/app/db gives USERNAME, PASSWORD; --from DB_=secret/app/db
    /// gives DB_USERNAME, DB_PASSWORD. Repeatable.
    #[arg(long = "from", value_name = "[PREFIX=]PATH")]
    pub from: Vec<String>,
    /// Stay as a supervisor: forward signals, keep the token and leases
    /// alive, act on changes (--on-change).
    #[arg(long)]
    pub watch: bool,
    /// With --watch, what to do when a secret changes or a lease is
    /// replaced: restart, signal:NAME (e.g. signal:HUP), or none.
    #[arg(long, value_name = "ACTION", default_value = "restart", value_parser = parse_on_change)]
    pub on_change: OnChange,
    /// With --watch, revoke the leases (and the login's token) when the
    /// command ends.
    #[arg(long)]
    pub revoke_on_exit: bool,
    /// With --watch, wait a random time up to this long before acting on a
    /// change, so replicas do not restart together.
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = duration)]
    pub splay: Duration,
    /// With --watch and --on-change restart, how long the command has
    /// after SIGTERM before SIGKILL.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub kill_timeout: Duration,
    /// How often KV secrets are read again to notice a change.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub poll_interval: Duration,
    /// How long replaced credentials stay valid before their lease is
    /// revoked.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = duration)]
    pub grace: Duration,
    /// How many times to try at start while the server is unreachable or
    /// unavailable (with backoff and jitter).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub attempts: u32,
    /// Where a failure's one-line reason is written, if the file exists
    /// (Kubernetes' terminationMessagePath).
    #[arg(
        long,
        value_name = "FILE",
        env = "SECRETD_TERMINATION_LOG",
        default_value = inject::DEFAULT_TERMINATION_LOG
    )]
    pub termination_log: PathBuf,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// How `run` logs in (without --auth-method: the token of --token,
/// SECRETD_TOKEN or `secretctl login`).
#[derive(Args, Debug, Clone, Default)]
pub struct AuthArgs {
    /// Log in with this auth method instead of using a token.
    #[arg(long, env = "SECRETD_AUTH_METHOD", value_enum)]
    pub auth_method: Option<AuthMethod>,
    /// Where the auth method is mounted (default: its name).
    #[arg(long, env = "SECRETD_AUTH_MOUNT", value_name = "PATH")]
    pub auth_mount: Option<String>,
    /// kubernetes: the role to log in as.
    #[arg(long, env = "SECRETD_AUTH_ROLE", value_name = "ROLE")]
    pub auth_role: Option<String>,
    /// kubernetes: the service-account token file (default
    /// /var/run/secrets/kubernetes.io/serviceaccount/token); token: a
    /// file holding a secretd token.
    #[arg(long, env = "SECRETD_AUTH_TOKEN_FILE", value_name = "FILE")]
    pub auth_token_file: Option<PathBuf>,
    /// ldap: the user name.
    #[arg(long, env = "SECRETD_AUTH_USERNAME", value_name = "NAME")]
    pub auth_username: Option<String>,
    /// ldap: a file holding the password.
    #[arg(long, env = "SECRETD_AUTH_PASSWORD_FILE", value_name = "FILE")]
    pub auth_password_file: Option<PathBuf>,
}

impl AuthArgs {
    fn spec(&self) -> AuthSpec {
        AuthSpec {
            method: self.auth_method,
            mount: self.auth_mount.clone(),
            role: self.auth_role.clone(),
            username: self.auth_username.clone(),
            password_file: self.auth_password_file.clone(),
            token_file: self.auth_token_file.clone(),
        }
    }
}

/// What `--watch` does on a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChange {
    Restart,
    Signal(Signal),
    Nothing,
}

fn parse_on_change(input: &str) -> Result<OnChange, String> {
    match input {
        "restart" => Ok(OnChange::Restart),
        "none" => Ok(OnChange::Nothing),
        other => match other.strip_prefix("signal:") {
            Some(name) => parse_signal(name).map(OnChange::Signal),
            None => Err(format!(
                "{other:?}: give restart, none, or signal:NAME (e.g. signal:HUP)"
            )),
        },
    }
}

/// A signal by name: `HUP`, `SIGHUP`, `hup`.
pub fn parse_signal(name: &str) -> Result<Signal, String> {
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    full.parse::<Signal>()
        .map_err(|_| format!("{name:?} is not a signal name (e.g. HUP, USR1, TERM)"))
}

fn duration(input: &str) -> Result<Duration, String> {
    parse_duration(input)
        .map(Duration::from_secs)
        .map_err(|e| e.to_string())
}

/// The signals a `--watch` supervisor passes on to its child.
const FORWARDED: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
];

/// Environment variables of secretctl's own that the command never sees.
pub(crate) fn is_own_variable(name: &str) -> bool {
    name.starts_with("SECRETD_") || matches!(name, "VAULT_TOKEN" | "VAULT_ADDR" | "VAULT_CACERT")
}

/// Which variables come from which secrets.
#[derive(Debug, Default)]
struct Plan {
    /// `--from`: every key of the secret at the path, with a prefix.
    from: Vec<(String, String)>,
    /// One field each; later entries win.
    vars: Vec<(String, Reference)>,
}

impl Plan {
    fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .from
            .iter()
            .map(|(_, path)| path.clone())
            .chain(self.vars.iter().map(|(_, r)| r.path.clone()))
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }
}

/// The plan from `--from`, references in the environment, and `--env`,
/// in that order of precedence (later wins).
fn plan(a: &RunArgs, environment: &[(OsString, OsString)]) -> Result<Plan, Failure> {
    let mut plan = Plan::default();
    for spec in &a.from {
        let (prefix, path) = spec.split_once('=').unwrap_or(("", spec.as_str()));
        if !prefix.is_empty() && !is_env_name(prefix) {
            return Err(config(format!(
                "--from {spec}: the prefix {prefix:?} is not a valid variable name"
            )));
        }
        let reference = Reference::parse(path).map_err(|e| config(format!("--from {e}")))?;
        if reference.field.is_some() {
            return Err(config(format!(
                "--from {spec}: takes a whole secret; name one field with --env NAME={path}"
            )));
        }
        plan.from.push((prefix.to_owned(), reference.path));
    }
    for (name, value) in environment {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if let Some(reference) = value.strip_prefix(ENV_REFERENCE_PREFIX) {
            plan.vars
                .push((name.to_owned(), field_reference(name, reference)?));
        }
    }
    for spec in &a.env {
        let Some((name, reference)) = spec.split_once('=') else {
            return Err(config(format!(
                "--env {spec:?}: give NAME=PATH#FIELD, e.g. DB_PASSWORD=secret/app/db#password"
            )));
        };
        if !is_env_name(name) {
            return Err(config(format!(
                "--env {spec:?}: {name:?} is not a valid variable name"
            )));
        }
        plan.vars
            .push((name.to_owned(), field_reference(name, reference)?));
    }
    if plan.from.is_empty() && plan.vars.is_empty() {
        return Err(config(
            "no secrets asked for: give --env NAME=PATH#FIELD, --from PATH, or NAME=secretd:PATH#FIELD in the environment",
        ));
    }
    Ok(plan)
}

fn field_reference(name: &str, input: &str) -> Result<Reference, Failure> {
    let reference = Reference::parse(input).map_err(|e| config(format!("{name}: {e}")))?;
    if reference.field.is_none() {
        return Err(config(format!(
            "{name}: {input:?} names a whole secret: add the field, e.g. {input}#password"
        )));
    }
    Ok(reference)
}

/// The secret variables, from a snapshot.
fn secret_variables(
    plan: &Plan,
    snapshot: &Snapshot,
) -> Result<Vec<(String, SecretString)>, Failure> {
    let missing = |what: String| Failure {
        code: EXIT_NOT_FOUND,
        message: format!("secret not found: {what}"),
    };
    let secret = |path: &str| {
        snapshot
            .secrets
            .get(path)
            .ok_or_else(|| missing(format!("{path} was not read")))
    };
    let mut out = Vec::new();
    for (prefix, path) in &plan.from {
        let secret = secret(path)?;
        for key in secret.data.expose_secret().0.keys() {
            if let Some(value) = secret.field(key) {
                out.push((env_name_for_key(prefix, key), value));
            }
        }
    }
    for (name, reference) in &plan.vars {
        let field = reference.field.as_deref().unwrap_or_default();
        let value = secret(&reference.path)?
            .field(field)
            .ok_or_else(|| missing(format!("{} has no field {field:?}", reference.path)))?;
        out.push((name.clone(), value));
    }
    Ok(out)
}

/// The command's environment: ours without secretctl's own variables,
/// with the secrets set (replacing references).
fn child_environment(
    base: &[(OsString, OsString)],
    secrets: &[(String, SecretString)],
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = base
        .iter()
        .filter(|(name, _)| !name.to_str().is_some_and(is_own_variable))
        .filter(|(name, _)| !secrets.iter().any(|(n, _)| name == n.as_str()))
        .cloned()
        .collect();
    // Later entries win: keep the last value of each name.
    for (i, (name, value)) in secrets.iter().enumerate() {
        if secrets[i + 1..].iter().any(|(n, _)| n == name) {
            continue;
        }
        env.push((name.into(), value.expose_secret().into()));
    }
    env
}

/// `run`: resolves, then execs or supervises. A failure before the command
/// starts is also written to the termination log.
pub async fn run(global: &Global, a: RunArgs) -> Result<u8, Failure> {
    let result = start(global, &a).await;
    match result {
        Ok(code) => Ok(code),
        Err(failure) => {
            inject::write_termination_message(&a.termination_log, &failure);
            Err(failure)
        }
    }
}

/// A client for the server of the flags or the environment, without a
/// token (the keeper brings its own).
pub fn server_client(global: &Global) -> Result<Client, Failure> {
    crate::client_builder(global, None, None)
        .build()
        .map_err(config)
}

async fn start(global: &Global, a: &RunArgs) -> Result<u8, Failure> {
    let environment: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let plan = plan(a, &environment)?;
    let login = a.auth.spec().login(global)?;
    let client = server_client(global)?;
    let options = KeeperOptions {
        poll_interval: a.poll_interval,
        grace: a.grace,
        start_attempts: a.attempts.max(1),
        ..KeeperOptions::default()
    };
    let keeper = LeaseKeeper::start(client, login, &plan.paths(), options)
        .await
        .map_err(|e| inject::keeper_failure(&e))?;
    let snapshot = keeper.snapshot();
    let secrets = secret_variables(&plan, &snapshot)?;
    let env = child_environment(&environment, &secrets);
    drop(secrets);
    if !a.watch {
        keeper.stop(false).await;
        let err = command(&a.command, &env).exec();
        return Err(cannot_start(&a.command, &err));
    }
    supervise(keeper, &plan, a, &environment, snapshot).await
}

fn command(argv: &[OsString], env: &[(OsString, OsString)]) -> Command {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    command
}

fn cannot_start(argv: &[OsString], err: &std::io::Error) -> Failure {
    let code = match err.kind() {
        std::io::ErrorKind::NotFound => EXIT_NO_COMMAND,
        _ => EXIT_CANNOT_EXECUTE,
    };
    Failure {
        code,
        message: format!("cannot run {}: {err}", argv[0].to_string_lossy()),
    }
}

/// True when a secret the plan uses has new values.
fn changed(plan: &Plan, old: &Snapshot, new: &Snapshot) -> bool {
    plan.paths().iter().any(|path| {
        let revision = |s: &Snapshot| s.secrets.get(path).map(|secret| secret.revision);
        revision(old) != revision(new)
    })
}

/// The `--watch` supervisor. Returns the child's exit code, or 128 plus
/// the number of the signal that ended it.
async fn supervise(
    keeper: LeaseKeeper,
    plan: &Plan,
    a: &RunArgs,
    environment: &[(OsString, OsString)],
    mut applied: Arc<Snapshot>,
) -> Result<u8, Failure> {
    let os = |what: &str, e: std::io::Error| Failure::local(format!("{what}: {e}"));
    // Listen before the child exists, so its end cannot be missed.
    let mut children =
        signal(SignalKind::child()).map_err(|e| os("cannot watch child processes", e))?;
    let (forward, mut forwarded) = mpsc::unbounded_channel();
    for sig in FORWARDED {
        let mut stream =
            signal(SignalKind::from_raw(sig as i32)).map_err(|e| os("cannot catch signals", e))?;
        let forward = forward.clone();
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                if forward.send(sig).is_err() {
                    break;
                }
            }
        });
    }
    // Orphans of the child are ours to reap, as they would be PID 1's.
    let _ = nix::sys::prctl::set_child_subreaper(true);

    let spawn = |snapshot: &Snapshot| -> Result<Pid, Failure> {
        let secrets = secret_variables(plan, snapshot)?;
        let env = child_environment(environment, &secrets);
        let child = command(&a.command, &env)
            .spawn()
            .map_err(|e| cannot_start(&a.command, &e))?;
        Ok(Pid::from_raw(child.id() as i32))
    };
    let mut child = match spawn(&applied) {
        Ok(pid) => pid,
        Err(failure) => {
            keeper.stop(a.revoke_on_exit).await;
            return Err(failure);
        }
    };
    let mut updates = keeper.subscribe();
    updates.borrow_and_update();
    let mut keeper_alive = true;
    let mut stopping = false;
    let mut restarting = false;
    let mut act_at: Option<Instant> = None;
    let mut kill_at: Option<Instant> = None;
    let far = || Instant::now() + Duration::from_secs(86_400);

    let code = loop {
        tokio::select! {
            Some(sig) = forwarded.recv() => {
                let _ = kill(child, sig);
                if matches!(sig, Signal::SIGTERM | Signal::SIGINT | Signal::SIGQUIT) {
                    stopping = true;
                    act_at = None;
                }
            }
            _ = children.recv() => {
                let Some(status) = reap(child) else { continue };
                if restarting && !stopping {
                    restarting = false;
                    kill_at = None;
                    applied = keeper.snapshot();
                    match spawn(&applied) {
                        Ok(pid) => child = pid,
                        Err(failure) => {
                            keeper.stop(a.revoke_on_exit).await;
                            return Err(failure);
                        }
                    }
                    continue;
                }
                break status;
            }
            result = updates.changed(), if keeper_alive => {
                if result.is_err() {
                    // Nothing renews the credentials any more: end the
                    // command rather than let it run on with dying ones.
                    keeper_alive = false;
                    stopping = true;
                    act_at = None;
                    eprintln!("secretctl run: the lease keeper stopped; stopping the command");
                    let _ = kill(child, Signal::SIGTERM);
                    kill_at = Some(Instant::now() + a.kill_timeout);
                    continue;
                }
                let latest = updates.borrow_and_update().clone();
                if !stopping && act_at.is_none() && changed(plan, &applied, &latest) {
                    act_at = Some(Instant::now() + jitter(a.splay));
                }
            }
            () = tokio::time::sleep_until(act_at.unwrap_or_else(far)), if act_at.is_some() => {
                act_at = None;
                // A restart since may have taken the change in already.
                if !changed(plan, &applied, &keeper.snapshot()) {
                    continue;
                }
                let latest = keeper.snapshot();
                match a.on_change {
                    // The command keeps running unless the new values make
                    // a whole environment.
                    OnChange::Restart => if let Err(failure) = secret_variables(plan, &latest) {
                        eprintln!("secretctl run: not restarting: {}", failure.message);
                        applied = latest;
                    } else {
                        restarting = true;
                        let _ = kill(child, Signal::SIGTERM);
                        kill_at = Some(Instant::now() + a.kill_timeout);
                    }
                    OnChange::Signal(sig) => {
                        applied = latest;
                        let _ = kill(child, sig);
                    }
                    OnChange::Nothing => applied = latest,
                }
            }
            () = tokio::time::sleep_until(kill_at.unwrap_or_else(far)), if kill_at.is_some() => {
                kill_at = None;
                let _ = kill(child, Signal::SIGKILL);
            }
        }
    };
    keeper.stop(a.revoke_on_exit).await;
    if !keeper_alive {
        return Err(Failure {
            code: inject::EXIT_UNREACHABLE,
            message: "server unreachable: the lease keeper stopped, so the command was stopped"
                .into(),
        });
    }
    Ok(code)
}

/// Reaps every ended child; the exit code when `child` is among them.
fn reap(child: Pid) -> Option<u8> {
    let mut ours = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == child => ours = Some(code as u8),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => {
                ours = Some(128u8.saturating_add(sig as i32 as u8));
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return ours,
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        run: RunArgs,
    }

    fn args(extra: &[&str]) -> RunArgs {
        let mut argv = vec!["run"];
        argv.extend_from_slice(extra);
        Wrapper::try_parse_from(argv).unwrap().run
    }

    fn os(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    #[test]
    fn the_plan_takes_every_reference_form() {
        let a = args(&[
            "--from",
            "secret/app/common",
            "--from",
            "DB_=secret/app/db",
            "--env",
            "PW=secret/app/db#password",
            "--",
            "true",
        ]);
        let env = os(&[("TOKEN", "secretd:secret/app/api#token"), ("HOME", "/root")]);
        let plan = plan(&a, &env).unwrap();
        assert_eq!(
            plan.from,
            vec![
                (String::new(), "secret/app/common".into()),
                ("DB_".into(), "secret/app/db".into())
            ]
        );
        assert_eq!(plan.vars[0].0, "TOKEN");
        assert_eq!(plan.vars[1].0, "PW");
        assert_eq!(
            plan.paths(),
            vec!["secret/app/api", "secret/app/common", "secret/app/db"]
        );
    }

    #[test]
    fn bad_references_are_configuration_errors() {
        for bad in [
            vec!["--env", "PW", "--", "true"],
            vec!["--env", "1PW=secret/app#x", "--", "true"],
            vec!["--env", "PW=secret/app", "--", "true"],
            vec!["--from", "bad-prefix=secret/app", "--", "true"],
            vec!["--from", "secret/app#field", "--", "true"],
            vec!["--", "true"],
        ] {
            let err = plan(&args(&bad), &[]).unwrap_err();
            assert_eq!(err.code, inject::EXIT_CONFIG, "{bad:?}: {}", err.message);
        }
        let err = plan(&args(&["--", "true"]), &os(&[("X", "secretd:secret/app")])).unwrap_err();
        assert!(err.message.contains("X:"), "{}", err.message);
    }

    #[test]
    fn the_child_environment_drops_our_variables_and_replaces_references() {
        let base = os(&[
            ("SECRETD_TOKEN", "s.x"),
            ("SECRETD_ADDR", "https://x"),
            ("VAULT_TOKEN", "s.y"),
            ("PW", "secretd:secret/app#pw"),
            ("PATH", "/bin"),
        ]);
        let secrets = vec![
            ("PW".to_string(), SecretString::from("first")),
            ("PW".to_string(), SecretString::from("second")),
        ];
        let env = child_environment(&base, &secrets);
        assert_eq!(env, os(&[("PATH", "/bin"), ("PW", "second")]));
    }

    #[test]
    fn on_change_actions_and_signals_parse() {
        assert_eq!(parse_on_change("restart"), Ok(OnChange::Restart));
        assert_eq!(parse_on_change("none"), Ok(OnChange::Nothing));
        assert_eq!(
            parse_on_change("signal:HUP"),
            Ok(OnChange::Signal(Signal::SIGHUP))
        );
        assert_eq!(
            parse_on_change("signal:sigusr1"),
            Ok(OnChange::Signal(Signal::SIGUSR1))
        );
        assert!(parse_on_change("signal:NOPE").is_err());
        assert!(parse_on_change("reload").is_err());
    }
}
