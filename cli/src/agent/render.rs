//! Templates → files: the template language (minijinja), finding which
//! secrets a template needs by rendering it, atomic writes with mode and
//! owner, and what to do after a file changed.
//!
//! A template asks for secrets with `secret("PATH")`, which gives the
//! secret's keys and values: `{{ secret("secret/app/db").password }}`,
//! `{{ secret("database/creds/app").username }}`,
//! `{{ secret("secret/app/config") | tojson }}`. Which secrets a template
//! needs is found by rendering it: a `secret(...)` not read yet is noted
//! and stands in as an empty value whatever is asked of it, so one render
//! names every path it can reach; the agent reads them and renders again
//! (paths that depend on other secrets take another round). A missing key
//! is an error (undefined values are strict), never an empty string in the
//! file. A failing render is reported by kind and line only: the message
//! of an expression could hold a secret's value.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use minijinja::{Environment, ErrorKind, Value};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use secretd_client::Snapshot;
use secretd_client::secrecy::ExposeSecret;
use zeroize::Zeroizing;

use super::config::{TemplateConfig, read_text};
use super::template;
use crate::inject::Reference;

/// What the `secret()` function sees: the keeper's snapshot, and the
/// paths asked for that it does not hold.
#[derive(Default)]
struct Lookup {
    snapshot: Arc<Snapshot>,
    missing: BTreeSet<String>,
}

/// Why rendering did not give every file.
#[derive(Debug)]
pub enum RenderError {
    /// These secrets are needed and not read yet.
    Missing(BTreeSet<String>),
    /// A template refers to a key the secret does not have.
    Undefined(String),
    /// A template is wrong (syntax, a bad path, a failing filter).
    Invalid(String),
}

impl std::fmt::Display for RenderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RenderError::Missing(paths) => write!(f, "secrets not read yet: {paths:?}"),
            RenderError::Undefined(m) | RenderError::Invalid(m) => f.write_str(m),
        }
    }
}

/// The templates of the configuration, compiled.
pub struct Renderer {
    env: Environment<'static>,
    lookup: Arc<Mutex<Lookup>>,
    names: Vec<String>,
}

impl Renderer {
    /// Compiles every template (a syntax error is reported here, before
    /// anything is read).
    pub fn new(templates: &[TemplateConfig]) -> Result<Renderer, String> {
        let lookup = Arc::new(Mutex::new(Lookup::default()));
        let mut env = template::environment();
        let shared = lookup.clone();
        env.add_function("secret", move |path: String| secret(&shared, &path));
        let mut names = Vec::new();
        for t in templates {
            let name = t.destination.display().to_string();
            let source = match (&t.contents, &t.source) {
                (Some(text), _) => text.clone(),
                (None, Some(file)) => read_text(file)?,
                (None, None) => return Err(format!("{name}: no template")),
            };
            env.add_template_owned(name.clone(), source)
                .map_err(|e| format!("template for {name}: {e}"))?;
            names.push(name);
        }
        Ok(Renderer { env, lookup, names })
    }

    /// Renders every template from `snapshot`, in configuration order.
    pub fn render(&self, snapshot: &Arc<Snapshot>) -> Result<Vec<Zeroizing<String>>, RenderError> {
        {
            let mut lookup = self.lookup.lock().unwrap_or_else(|p| p.into_inner());
            lookup.snapshot = snapshot.clone();
            lookup.missing.clear();
        }
        let mut out = Vec::with_capacity(self.names.len());
        let mut first_error = None;
        for name in &self.names {
            let result = self
                .env
                .get_template(name)
                .and_then(|t| t.render(minijinja::context! {}));
            match result {
                Ok(text) => out.push(Zeroizing::new(text)),
                Err(err) if first_error.is_none() => {
                    first_error = Some((name.clone(), err));
                }
                Err(_) => {}
            }
        }
        let missing = std::mem::take(
            &mut self
                .lookup
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .missing,
        );
        if !missing.is_empty() {
            return Err(RenderError::Missing(missing));
        }
        match first_error {
            None => Ok(out),
            Some((name, err)) if err.kind() == ErrorKind::UndefinedError => {
                Err(RenderError::Undefined(describe(&name, &err)))
            }
            Some((name, err)) => Err(RenderError::Invalid(describe(&name, &err))),
        }
    }
}

/// `secret("PATH")`.
fn secret(lookup: &Mutex<Lookup>, path: &str) -> Result<Value, minijinja::Error> {
    let reference = Reference::parse(path)
        .map_err(|e| minijinja::Error::new(ErrorKind::InvalidOperation, e))?;
    if reference.field.is_some() {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "secret({path:?}) takes a path without '#': secret(\"{}\").field",
                reference.path
            ),
        ));
    }
    let mut lookup = lookup.lock().unwrap_or_else(|p| p.into_inner());
    match lookup.snapshot.secrets.get(&reference.path) {
        Some(secret) => Ok(Value::from_serialize(&secret.data.expose_secret().0)),
        None => {
            lookup.missing.insert(reference.path.clone());
            Ok(Value::from_object(NotRead))
        }
    }
}

/// What `secret()` gives for a path not read yet: any attribute of it is
/// another one, it iterates as nothing, and it prints as nothing, so the
/// render goes on to the next `secret()`. Its output is never used.
#[derive(Debug)]
struct NotRead;

impl minijinja::value::Object for NotRead {
    fn get_value(self: &Arc<Self>, _key: &Value) -> Option<Value> {
        Some(Value::from_object(NotRead))
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        minijinja::value::Enumerator::Empty
    }

    fn render(self: &Arc<Self>, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

/// A render error without its detail: an expression's message may quote
/// the values it was given.
fn describe(name: &str, err: &minijinja::Error) -> String {
    match err.line() {
        Some(line) => format!("template for {name}, line {line}: {}", err.kind()),
        None => format!("template for {name}: {}", err.kind()),
    }
}

/// True when `path` already holds exactly `content`.
pub fn holds(path: &Path, content: &str) -> bool {
    std::fs::read(path).is_ok_and(|bytes| Zeroizing::new(bytes).as_slice() == content.as_bytes())
}

/// Writes `content` to the template's destination atomically: a private
/// temporary file in the same directory, owner and mode set, synced, then
/// renamed over the old file (readers see the old file or the new one,
/// never half of one).
pub fn write_file(t: &TemplateConfig, content: &str) -> std::io::Result<()> {
    let dir = t.destination.parent().unwrap_or(Path::new("/"));
    let mut file = tempfile::Builder::new()
        .prefix(".secretctl-")
        .tempfile_in(dir)?;
    file.write_all(content.as_bytes())?;
    if t.uid.is_some() || t.gid.is_some() {
        std::os::unix::fs::fchown(file.as_file(), t.uid, t.gid)?;
    }
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(t.mode))?;
    file.as_file().sync_all()?;
    file.persist(&t.destination).map_err(|e| e.error)?;
    Ok(())
}

/// The process to signal: from the pid file, or the first other process
/// whose name (`/proc/PID/comm`) is `name`.
pub fn target_process(t: &TemplateConfig) -> Result<Pid, String> {
    if let Some(file) = &t.pid_file {
        let text = read_text(file)?;
        return match text.trim().parse::<i32>() {
            Ok(pid) if pid > 1 => Ok(Pid::from_raw(pid)),
            _ => Err(format!("{} does not hold a process id", file.display())),
        };
    }
    let name = t.process_name.as_deref().unwrap_or_default();
    // The kernel keeps the first 15 bytes of a name.
    let short: String = name.chars().take(15).collect();
    let me = std::process::id() as i32;
    let entries = std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
    let mut pids: Vec<i32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| *pid != me)
        .collect();
    pids.sort_unstable();
    pids.into_iter()
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == short)
        })
        .map(Pid::from_raw)
        .ok_or_else(|| format!("no process named {name:?} (is shareProcessNamespace set?)"))
}

/// Runs the template's command and sends its signal, after its splay.
/// Failures are logged: the file is written either way.
pub async fn notify(t: &TemplateConfig) {
    tokio::time::sleep(secretd_client::jitter(t.splay)).await;
    let name = t.destination.display();
    if let Some((program, args)) = t.command.split_first() {
        // The agent's own variables (its token above all) stay with it.
        let env = std::env::vars_os()
            .filter(|(name, _)| !name.to_str().is_some_and(crate::run::is_own_variable));
        let run = tokio::process::Command::new(program)
            .args(args)
            .env_clear()
            .envs(env)
            .kill_on_drop(true)
            .status();
        match tokio::time::timeout(std::time::Duration::from_secs(60), run).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => super::log(format_args!("{name}: the command exited with {status}")),
            Ok(Err(e)) => super::log(format_args!("{name}: cannot run {program}: {e}")),
            Err(_) => super::log(format_args!("{name}: the command ran over 60 s; killed")),
        }
    }
    if let Some(sig) = t.signal {
        match target_process(t).and_then(|pid| send(pid, sig)) {
            Ok(()) => super::log(format_args!("{name}: sent {sig} to the application")),
            Err(e) => super::log(format_args!("{name}: cannot send {sig}: {e}")),
        }
    }
}

fn send(pid: Pid, sig: Signal) -> Result<(), String> {
    kill(pid, sig).map_err(|e| format!("process {pid}: {e}"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use secretd_client::secrecy::SecretBox;
    use secretd_client::{Secret, SecretData};

    use super::*;

    fn template(destination: &Path, contents: &str) -> TemplateConfig {
        TemplateConfig {
            destination: destination.to_path_buf(),
            contents: Some(contents.into()),
            source: None,
            mode: 0o440,
            uid: None,
            gid: None,
            command: vec![],
            signal: None,
            pid_file: None,
            process_name: None,
            splay: Duration::ZERO,
        }
    }

    fn snapshot(secrets: &[(&str, &str)]) -> Arc<Snapshot> {
        let secrets: BTreeMap<String, Arc<Secret>> = secrets
            .iter()
            .map(|(path, json)| {
                let secret = Secret {
                    path: (*path).into(),
                    data: SecretBox::new(Box::new(SecretData(serde_json::from_str(json).unwrap()))),
                    version: None,
                    lease: None,
                    revision: 1,
                };
                ((*path).to_owned(), Arc::new(secret))
            })
            .collect();
        Arc::new(Snapshot {
            generation: 1,
            secrets,
            token_expires_at: None,
        })
    }

    #[test]
    fn rendering_finds_the_secrets_it_needs_then_fills_them_in() {
        let dir = tempfile::tempdir().unwrap();
        let renderer = Renderer::new(&[
            template(
                &dir.path().join("a"),
                "user={{ secret('db/creds/app').username }}\n",
            ),
            template(
                &dir.path().join("b"),
                "{% set c = secret('secret/app/config') %}{{ c | tojson }}",
            ),
        ])
        .unwrap();
        match renderer.render(&snapshot(&[])) {
            Err(RenderError::Missing(paths)) => assert_eq!(
                paths.into_iter().collect::<Vec<_>>(),
                ["db/creds/app", "secret/app/config"]
            ),
            other => panic!("{:?}", other.map(|_| ())),
        }
        let full = snapshot(&[
            ("db/creds/app", r#"{"username":"v-app","password":"p"}"#),
            ("secret/app/config", r#"{"port":5432}"#),
        ]);
        let out = renderer.render(&full).unwrap();
        assert_eq!(out[0].as_str(), "user=v-app\n");
        assert_eq!(out[1].as_str(), r#"{"port":5432}"#);
    }

    #[test]
    fn one_render_names_every_secret_a_template_needs() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..12)
            .map(|i| format!("{{{{ secret('secret/s{i}').k | urlencode }}}}{{% for x in secret('secret/l{i}') %}}{{% endfor %}}\n"))
            .collect();
        let renderer = Renderer::new(&[template(&dir.path().join("a"), &text)]).unwrap();
        let Err(RenderError::Missing(paths)) = renderer.render(&snapshot(&[])) else {
            panic!("not read yet, yet rendered");
        };
        assert_eq!(paths.len(), 24, "{paths:?}");
    }

    #[test]
    fn a_failing_render_does_not_quote_secret_values() {
        let dir = tempfile::tempdir().unwrap();
        let renderer = Renderer::new(&[template(
            &dir.path().join("a"),
            "x\n{{ secret('secret/x').k + 1 }}",
        )])
        .unwrap();
        let err = renderer
            .render(&snapshot(&[("secret/x", r#"{"k":"hunter2"}"#)]))
            .err()
            .unwrap();
        let shown = err.to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("line 2"), "{shown}");
    }

    #[test]
    fn a_missing_key_or_a_bad_template_is_an_error_not_an_empty_value() {
        let dir = tempfile::tempdir().unwrap();
        let renderer = Renderer::new(&[template(
            &dir.path().join("a"),
            "{{ secret('secret/x').nope }}",
        )])
        .unwrap();
        let snap = snapshot(&[("secret/x", r#"{"k":"v"}"#)]);
        assert!(matches!(
            renderer.render(&snap),
            Err(RenderError::Undefined(_))
        ));

        let bad_path =
            Renderer::new(&[template(&dir.path().join("a"), "{{ secret('../x') }}")]).unwrap();
        assert!(matches!(
            bad_path.render(&snap),
            Err(RenderError::Invalid(_))
        ));
        let with_field = Renderer::new(&[template(
            &dir.path().join("a"),
            "{{ secret('secret/x#k') }}",
        )])
        .unwrap();
        assert!(matches!(
            with_field.render(&snap),
            Err(RenderError::Invalid(_))
        ));

        let syntax = Renderer::new(&[template(&dir.path().join("a"), "{{ secret(")]);
        assert!(syntax.is_err());
    }

    #[test]
    fn the_examples_of_docs_injection_md_render() {
        let dir = tempfile::tempdir().unwrap();
        let examples = [
            ("{{ secret(\"secret/app/db\").password }}", "p@ss word"),
            (
                "{% set db = secret(\"database/creds/app\") %}postgres://{{ db.username }}:{{ db.password | urlencode }}@db:5432/app",
                "postgres://v-app:p%40ss%20word@db:5432/app",
            ),
            (
                "{{ secret(\"secret/app/config\") | tojson }}",
                r#"{"log-level":"info","port":5432}"#,
            ),
            (
                "{% for key, value in secret(\"secret/app/config\") | items %}{{ key | upper }}={{ value }}\n{% endfor %}",
                "LOG-LEVEL=info\nPORT=5432\n",
            ),
        ];
        let templates: Vec<_> = examples
            .iter()
            .enumerate()
            .map(|(i, (text, _))| template(&dir.path().join(i.to_string()), text))
            .collect();
        let renderer = Renderer::new(&templates).unwrap();
        let out = renderer
            .render(&snapshot(&[
                ("secret/app/db", r#"{"password":"p@ss word"}"#),
                (
                    "database/creds/app",
                    r#"{"username":"v-app","password":"p@ss word"}"#,
                ),
                ("secret/app/config", r#"{"port":5432,"log-level":"info"}"#),
            ]))
            .unwrap();
        for (got, (_, want)) in out.iter().zip(examples) {
            assert_eq!(got.as_str(), want);
        }
    }

    #[test]
    fn html_looking_destinations_are_not_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let renderer = Renderer::new(&[template(
            &dir.path().join("page.html"),
            "{{ secret('secret/x').k }}",
        )])
        .unwrap();
        let out = renderer
            .render(&snapshot(&[("secret/x", r#"{"k":"<a&b>"}"#)]))
            .unwrap();
        assert_eq!(out[0].as_str(), "<a&b>");
    }

    #[test]
    fn files_are_replaced_whole_with_their_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.env");
        let t = template(&path, "");
        write_file(&t, "one").unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        write_file(&t, "two").unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        assert_eq!(meta.permissions().mode() & 0o777, 0o440);
        // A new file, renamed over the old one.
        assert_ne!(std::os::unix::fs::MetadataExt::ino(&meta), inode);
        assert!(holds(&path, "two") && !holds(&path, "one"));
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_process_to_signal_comes_from_a_pid_file_or_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("app.pid");
        let mut t = template(&dir.path().join("a"), "");
        t.pid_file = Some(pid_file.clone());
        std::fs::write(&pid_file, "4242\n").unwrap();
        assert_eq!(target_process(&t), Ok(Pid::from_raw(4242)));
        std::fs::write(&pid_file, "1").unwrap();
        assert!(target_process(&t).is_err());

        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let mut t = template(&dir.path().join("a"), "");
        t.process_name = Some("sleep".into());
        let found = target_process(&t).unwrap();
        let comm = std::fs::read_to_string(format!("/proc/{found}/comm")).unwrap();
        assert_eq!(comm.trim(), "sleep");
        t.process_name = Some("no-such-process-name".into());
        assert!(target_process(&t).is_err());
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
