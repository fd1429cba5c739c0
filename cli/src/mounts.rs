//! Mount commands: secrets engines (`secrets enable|disable|tune|list`)
//! and auth methods (`auth enable|disable|list`).

use std::collections::BTreeMap;

use secretd_client::duration::{format_duration, parse_duration};
use secretd_client::wire::{MountInput, MountOutput, MountTuneInput};
use serde_json::{Map, Value};

use crate::cli::{AuthCommand, AuthEnableArgs, EnableArgs, SecretsCommand, TuneArgs};
use crate::output::{Block, Report};
use crate::{Ctx, Doing, EXIT_OK, Failure};

/// `secrets ...`
pub async fn run(ctx: &Ctx, command: SecretsCommand) -> Result<u8, Failure> {
    let sys = ctx.client.sys();
    match command {
        SecretsCommand::Enable(a) => {
            let (path, input) = mount_input(&a)?;
            sys.enable_secrets_engine(&path, &input)
                .await
                .doing(format_args!("enabling {} at {path}/", a.engine))?;
            ctx.success(&format!(
                "Success! Enabled the {} secrets engine at: {path}/",
                a.engine
            ));
        }
        SecretsCommand::Disable(a) => {
            let path = a.path.trim_matches('/');
            sys.disable_secrets_engine(path)
                .await
                .doing(format_args!("disabling {path}/"))?;
            ctx.success(&format!(
                "Success! Disabled the secrets engine (if it existed) at: {path}/"
            ));
        }
        SecretsCommand::Tune(a) => {
            let path = a.path.trim_matches('/').to_owned();
            let tune = tune_input(&a)?;
            sys.tune_secrets_engine(&path, &tune)
                .await
                .doing(format_args!("tuning {path}/"))?;
            ctx.success(&format!("Success! Tuned the secrets engine at: {path}/"));
        }
        SecretsCommand::List => {
            let mounts = sys.mounts().await.doing("listing secrets engines")?;
            ctx.print(&mounts_report(&mounts))?;
        }
    }
    Ok(EXIT_OK)
}

/// `auth ...`
pub async fn auth(ctx: &Ctx, command: AuthCommand) -> Result<u8, Failure> {
    let sys = ctx.client.sys();
    match command {
        AuthCommand::Enable(a) => {
            let (path, input) = auth_input(&a)?;
            sys.enable_auth_method(&path, &input)
                .await
                .doing(format_args!("enabling {} at auth/{path}/", a.method_type))?;
            ctx.success(&format!(
                "Success! Enabled the {} auth method at: auth/{path}/",
                a.method_type
            ));
        }
        AuthCommand::Disable(a) => {
            let path = a.path.trim_matches('/');
            let path = path.strip_prefix("auth/").unwrap_or(path);
            sys.disable_auth_method(path)
                .await
                .doing(format_args!("disabling auth/{path}/"))?;
            ctx.success(&format!(
                "Success! Disabled the auth method (if it existed) at: auth/{path}/"
            ));
        }
        AuthCommand::List => {
            let methods = sys.auth_methods().await.doing("listing auth methods")?;
            ctx.print(&mounts_report(&methods))?;
        }
    }
    Ok(EXIT_OK)
}

/// A TTL flag: checked here, sent as typed; `system` means the system's.
fn ttl(flag: &str, value: &Option<String>) -> Result<Option<String>, Failure> {
    match value.as_deref() {
        None => Ok(None),
        Some("system") => Ok(Some("system".to_owned())),
        Some(v) => {
            parse_duration(v).map_err(|e| Failure::local(format!("{flag}: {e}")))?;
            Ok(Some(v.to_owned()))
        }
    }
}

/// The request of `secrets tune`.
fn tune_input(a: &TuneArgs) -> Result<MountTuneInput, Failure> {
    if a.path.trim_matches('/').is_empty() {
        return Err(Failure::local("the path is empty"));
    }
    Ok(MountTuneInput {
        default_lease_ttl: ttl("--default-lease-ttl", &a.default_lease_ttl)?,
        max_lease_ttl: ttl("--max-lease-ttl", &a.max_lease_ttl)?,
        description: a.description.clone(),
    })
}

/// The path (below `auth/`) and request of `auth enable`.
fn auth_input(a: &AuthEnableArgs) -> Result<(String, MountInput), Failure> {
    let path = a
        .path
        .as_deref()
        .unwrap_or(&a.method_type)
        .trim_matches('/');
    let path = path.strip_prefix("auth/").unwrap_or(path).to_owned();
    if path.is_empty() {
        return Err(Failure::local("--path is empty"));
    }
    let mut config = Map::new();
    let ttls = [
        (
            "default_lease_ttl",
            ttl("--default-lease-ttl", &a.default_lease_ttl)?,
        ),
        ("max_lease_ttl", ttl("--max-lease-ttl", &a.max_lease_ttl)?),
    ];
    for (key, value) in ttls {
        if let Some(value) = value {
            config.insert(key.to_owned(), Value::String(value));
        }
    }
    let input = MountInput {
        mount_type: a.method_type.clone(),
        description: a.description.clone().unwrap_or_default(),
        config: (!config.is_empty()).then_some(config),
        options: None,
    };
    Ok((path, input))
}

/// The mount path and request for `secrets enable`. Only KV version 2 is
/// known here: `kv-v2`, or `kv` with `--version 2`; other types are passed
/// to the server as they are.
fn mount_input(a: &EnableArgs) -> Result<(String, MountInput), Failure> {
    let engine = a.engine.as_str();
    let version = match (engine, a.version) {
        ("kv-v2", None | Some(2)) => "2",
        ("kv", Some(2)) => "2",
        ("kv", None) => {
            return Err(Failure::local(
                "only KV version 2 is supported: use `secrets enable kv-v2` or `kv --version 2`",
            ));
        }
        ("kv" | "kv-v2", Some(v)) => {
            return Err(Failure::local(format!(
                "KV version {v} is not supported: only version 2 is"
            )));
        }
        (_, Some(_)) => {
            return Err(Failure::local(format!(
                "--version applies to kv only, not to {engine:?}"
            )));
        }
        (_, None) => "",
    };
    let path = a
        .path
        .as_deref()
        .unwrap_or(engine)
        .trim_matches('/')
        .to_owned();
    if path.is_empty() {
        return Err(Failure::local("--path is empty"));
    }
    let input = if version.is_empty() {
        MountInput {
            mount_type: engine.to_owned(),
            description: a.description.clone().unwrap_or_default(),
            ..MountInput::default()
        }
    } else {
        MountInput {
            mount_type: "kv".into(),
            description: a.description.clone().unwrap_or_default(),
            options: Some(BTreeMap::from([("version".to_owned(), version.to_owned())])),
            ..MountInput::default()
        }
    };
    Ok((path, input))
}

/// `secrets list` and `auth list`: Path, Type, Accessor, Default TTL, Max
/// TTL, Description. A TTL of 0 is the system's ("system").
pub fn mounts_report(mounts: &BTreeMap<String, MountOutput>) -> Report {
    let ttl = |secs: u64| {
        if secs == 0 {
            "system".to_owned()
        } else {
            format_duration(secs)
        }
    };
    let rows = mounts
        .iter()
        .map(|(path, m)| {
            let kind = match m.options.as_ref().and_then(|o| o.get("version")) {
                Some(v) if m.mount_type == "kv" => format!("kv (v{v})"),
                _ => m.mount_type.clone(),
            };
            vec![
                path.clone(),
                kind,
                m.accessor.clone(),
                ttl(m.config.default_lease_ttl),
                ttl(m.config.max_lease_ttl),
                if m.description.is_empty() {
                    "n/a".into()
                } else {
                    m.description.clone()
                },
            ]
        })
        .collect();
    Report {
        json: serde_json::to_value(mounts).unwrap_or(Value::Null),
        blocks: vec![Block::Grid(
            [
                "Path",
                "Type",
                "Accessor",
                "Default TTL",
                "Max TTL",
                "Description",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use clap::Parser;
    use secretd_client::wire::MountConfigOutput;

    fn enable(
        engine: &str,
        path: Option<&str>,
        version: Option<u32>,
    ) -> Result<(String, MountInput), Failure> {
        mount_input(&EnableArgs {
            engine: engine.into(),
            path: path.map(String::from),
            description: None,
            version,
        })
    }

    #[test]
    fn kv_v2_is_sent_as_kv_with_version_2() {
        let (path, input) = enable("kv-v2", Some("/secret/"), None).unwrap();
        assert_eq!(path, "secret");
        assert_eq!(input.mount_type, "kv");
        assert_eq!(input.options.unwrap()["version"], "2");
        let (path, input) = enable("kv", None, Some(2)).unwrap();
        assert_eq!(path, "kv");
        assert_eq!(input.mount_type, "kv");
        let (path, _) = enable("kv-v2", None, None).unwrap();
        assert_eq!(path, "kv-v2");
    }

    #[test]
    fn other_kv_versions_are_refused() {
        assert!(enable("kv", None, None).is_err());
        assert!(enable("kv", None, Some(1)).is_err());
        assert!(enable("kv-v2", None, Some(1)).is_err());
        assert!(enable("database", None, Some(2)).is_err());
        let (_, input) = enable("database", None, None).unwrap();
        assert_eq!(input.mount_type, "database");
        assert!(input.options.is_none());
    }

    #[test]
    fn mounts_table() {
        let mut mounts = BTreeMap::new();
        mounts.insert(
            "secret/".to_owned(),
            MountOutput {
                mount_type: "kv".into(),
                accessor: "kv_1".into(),
                options: Some(BTreeMap::from([("version".into(), "2".into())])),
                ..MountOutput::default()
            },
        );
        mounts.insert(
            "short/".to_owned(),
            MountOutput {
                mount_type: "kv".into(),
                accessor: "kv_2".into(),
                description: "tuned".into(),
                config: MountConfigOutput {
                    default_lease_ttl: 3600,
                    max_lease_ttl: 7200,
                    ..MountConfigOutput::default()
                },
                ..MountOutput::default()
            },
        );
        let text = mounts_report(&mounts).render(Format::Table, None).unwrap();
        assert_eq!(
            text,
            "Path       Type       Accessor    Default TTL    Max TTL    Description\n\
             ----       ----       --------    -----------    -------    -----------\n\
             secret/    kv (v2)    kv_1        system         system     n/a\n\
             short/     kv         kv_2        1h0m0s         2h0m0s     tuned\n"
        );
    }

    fn tune(args: &[&str]) -> Result<MountTuneInput, String> {
        let mut all = vec!["secretctl", "secrets", "tune", "secret/"];
        all.extend_from_slice(args);
        let cli = crate::cli::Cli::try_parse_from(all).map_err(|e| e.to_string())?;
        let crate::cli::Command::Secrets(SecretsCommand::Tune(a)) = cli.command else {
            panic!("not tune")
        };
        tune_input(&a).map_err(|f| f.message)
    }

    #[test]
    fn tune_sends_what_was_given_and_needs_something() {
        let input = tune(&["--default-lease-ttl", "1h", "--max-lease-ttl=system"]).unwrap();
        assert_eq!(
            serde_json::to_value(&input).unwrap(),
            serde_json::json!({"default_lease_ttl": "1h", "max_lease_ttl": "system"})
        );
        let input = tune(&["--description", "team kv"]).unwrap();
        assert_eq!(input.description.as_deref(), Some("team kv"));
        assert!(tune(&[]).is_err(), "nothing to change");
        let err = tune(&["--max-lease-ttl", "forever"]).unwrap_err();
        assert!(err.contains("--max-lease-ttl"), "{err}");
    }

    #[test]
    fn auth_enable_path_defaults_to_the_type() {
        let args = |path: Option<&str>| AuthEnableArgs {
            method_type: "kubernetes".into(),
            path: path.map(str::to_owned),
            description: Some("k8s".into()),
            default_lease_ttl: Some("1h".into()),
            max_lease_ttl: None,
        };
        let (path, input) = auth_input(&args(None)).unwrap();
        assert_eq!(path, "kubernetes");
        assert_eq!(
            serde_json::to_value(&input).unwrap(),
            serde_json::json!({"type": "kubernetes", "description": "k8s",
                               "config": {"default_lease_ttl": "1h"}})
        );
        let (path, _) = auth_input(&args(Some("auth/k8s/"))).unwrap();
        assert_eq!(path, "k8s");
        assert!(auth_input(&args(Some("/"))).is_err());
    }
}
