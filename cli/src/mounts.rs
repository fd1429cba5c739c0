//! Secrets engine commands (`secrets enable|disable|list`) and `token
//! lookup`.

use std::collections::BTreeMap;

use secretd_client::wire::{MountInput, MountOutput, TokenLookup};
use serde_json::Value;

use crate::cli::{EnableArgs, SecretsCommand, TokenCommand};
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
        SecretsCommand::List => {
            let mounts = sys.mounts().await.doing("listing secrets engines")?;
            ctx.print(&mounts_report(&mounts))?;
        }
    }
    Ok(EXIT_OK)
}

/// `token lookup`: the current token, without its value.
pub async fn token(ctx: &Ctx, command: TokenCommand) -> Result<u8, Failure> {
    match command {
        TokenCommand::Lookup => {
            let lookup = ctx
                .client
                .token()
                .lookup_self()
                .await
                .doing("looking up the token")?;
            ctx.print(&lookup_report(&lookup))?;
        }
    }
    Ok(EXIT_OK)
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

/// `secrets list`: Path, Type, Accessor, Description.
pub fn mounts_report(mounts: &BTreeMap<String, MountOutput>) -> Report {
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
            ["Path", "Type", "Accessor", "Description"]
                .map(String::from)
                .to_vec(),
            rows,
        )],
    }
}

/// `token lookup`: every field except the token itself.
pub fn lookup_report(lookup: &TokenLookup) -> Report {
    let mut json = serde_json::to_value(lookup).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut json {
        map.remove("id");
    }
    Report::key_values(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;

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
    fn token_lookup_never_shows_the_token() {
        let lookup = TokenLookup {
            id: "hvs.secret-token".into(),
            accessor: "acc".into(),
            policies: vec!["root".into()],
            token_type: "service".into(),
            ..TokenLookup::default()
        };
        let report = lookup_report(&lookup);
        for format in [Format::Table, Format::Json] {
            let text = report.render(format, None).unwrap();
            assert!(!text.contains("secret-token"), "{text}");
            assert!(text.contains("acc"));
        }
        assert!(report.render(Format::Table, Some("id")).is_err());
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
        let text = mounts_report(&mounts).render(Format::Table, None).unwrap();
        assert_eq!(
            text,
            "Path       Type       Accessor    Description\n\
             ----       ----       --------    -----------\n\
             secret/    kv (v2)    kv_1        n/a\n"
        );
    }
}
