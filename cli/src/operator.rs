//! Operator commands: init, unseal, seal, rotate, key-status, members,
//! and status.

use std::io::{BufRead, IsTerminal};

use secretd_client::wire::{HaStatus, InitResponse, KeyStatus, Leader, SealStatus};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::cli::{InitArgs, OperatorCommand, UnsealArgs};
use crate::output::{Block, Report};
use crate::{Ctx, Doing, EXIT_LOCAL, EXIT_OK, EXIT_REMOTE, Failure};

/// `operator ...`
pub async fn run(ctx: &Ctx, command: OperatorCommand) -> Result<u8, Failure> {
    let sys = ctx.client.sys();
    match command {
        OperatorCommand::Init(a) => init(ctx, a).await,
        OperatorCommand::Unseal(a) => unseal(ctx, a).await,
        OperatorCommand::Seal => {
            sys.seal().await.doing("sealing")?;
            ctx.success("Success! The server is sealed.");
            Ok(EXIT_OK)
        }
        OperatorCommand::Rotate => {
            sys.rotate().await.doing("rotating the key")?;
            let status = sys
                .key_status()
                .await
                .doing("reading the key status after rotating")?;
            ctx.success("Success! Rotated the key-encryption key.\n");
            ctx.print(&key_status_report(&status))?;
            Ok(EXIT_OK)
        }
        OperatorCommand::KeyStatus => {
            let status = sys.key_status().await.doing("reading the key status")?;
            ctx.print(&key_status_report(&status))?;
            Ok(EXIT_OK)
        }
        OperatorCommand::Members => {
            let status = sys.ha_status().await.doing("listing the nodes")?;
            ctx.print(&members_report(&status))?;
            Ok(EXIT_OK)
        }
    }
}

async fn init(ctx: &Ctx, a: InitArgs) -> Result<u8, Failure> {
    if a.key_threshold == 0 || a.key_shares == 0 || a.key_threshold > a.key_shares {
        return Err(Failure::local(format!(
            "--key-threshold ({}) must be between 1 and --key-shares ({})",
            a.key_threshold, a.key_shares
        )));
    }
    let answer = ctx
        .client
        .sys()
        .init(a.key_shares, a.key_threshold)
        .await
        .doing("initialising")?;
    ctx.print(&init_report(&answer, a.key_threshold))?;
    Ok(EXIT_OK)
}

async fn unseal(ctx: &Ctx, a: UnsealArgs) -> Result<u8, Failure> {
    let sys = ctx.client.sys();
    let status = if a.reset {
        sys.unseal_reset().await.doing("resetting the unseal")?
    } else {
        let key = match a.key {
            Some(key) => key,
            None => read_key()?,
        };
        let key = Zeroizing::new(key.trim().to_owned());
        if key.is_empty() {
            return Err(Failure::local("the unseal key is empty"));
        }
        sys.unseal(&key).await.doing("unsealing")?
    };
    ctx.print(&seal_status_report(&status, None))?;
    Ok(EXIT_OK)
}

/// The key from a hidden prompt on a terminal, else one line of stdin.
fn read_key() -> Result<Zeroizing<String>, Failure> {
    read_secret("Unseal Key", "the unseal key")
}

/// A secret (`what`) from a hidden prompt (`prompt`) on a terminal, else
/// one line of stdin, untrimmed.
pub fn read_secret(prompt: &str, what: &str) -> Result<Zeroizing<String>, Failure> {
    if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("{prompt} (will be hidden): "))
            .map(Zeroizing::new)
            .map_err(|e| Failure::local(format!("cannot read {what}: {e}")))
    } else {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::local(format!("cannot read {what} from stdin: {e}")))?;
        Ok(line)
    }
}

/// `status`: exit 0 unsealed, 2 sealed, 1 on any error (as `vault status`).
pub async fn status(ctx: &Ctx) -> Result<u8, Failure> {
    let sys = ctx.client.sys();
    let seal = sys.seal_status().await.map_err(|err| Failure {
        code: EXIT_LOCAL,
        message: format!("reading the seal status: {err}"),
    })?;
    // Only an unsealed server answers sys/leader reliably.
    let leader = if seal.sealed {
        None
    } else {
        Some(sys.leader().await.map_err(|err| Failure {
            code: EXIT_LOCAL,
            message: format!("reading the leader status: {err}"),
        })?)
    };
    ctx.print(&seal_status_report(&seal, leader.as_ref()))?;
    Ok(if seal.sealed { EXIT_REMOTE } else { EXIT_OK })
}

/// The answer of `operator init`: every key, the root token, and a warning.
pub fn init_report(answer: &InitResponse, threshold: u32) -> Report {
    let mut blocks: Vec<Block> = answer
        .keys
        .iter()
        .enumerate()
        .map(|(i, key)| Block::Line(format!("Unseal Key {}: {key}", i + 1)))
        .collect();
    blocks.push(Block::Line(String::new()));
    blocks.push(Block::Line(format!(
        "Initial Root Token: {}",
        answer.root_token
    )));
    blocks.push(Block::Line(String::new()));
    blocks.push(Block::Line(format!(
        "secretd initialized with {} key shares and a key threshold of {threshold}.\n\
         These keys and the root token are shown only this once. Store each key\n\
         safely and apart (a password manager or sealed envelopes for different\n\
         people): at least {threshold} of them are needed to unseal the server every\n\
         time it starts. Anyone holding {threshold} keys can unseal it; anyone holding\n\
         the root token can read every secret. Revoke the root token once other\n\
         access is set up.",
        answer.keys.len()
    )));
    Report {
        json: json!({
            "keys": answer.keys,
            "keys_base64": answer.keys_base64,
            "root_token": answer.root_token,
        }),
        blocks,
    }
}

/// Seal status (and leader, for `status`) as `vault status` shows it.
pub fn seal_status_report(seal: &SealStatus, leader: Option<&Leader>) -> Report {
    let mut rows: Vec<(String, Value)> = vec![
        ("Seal Type".into(), json!(seal.seal_type)),
        ("Initialized".into(), json!(seal.initialized)),
        ("Sealed".into(), json!(seal.sealed)),
        ("Total Shares".into(), json!(seal.n)),
        ("Threshold".into(), json!(seal.t)),
    ];
    if seal.sealed {
        rows.push((
            "Unseal Progress".into(),
            json!(format!("{}/{}", seal.progress, seal.t)),
        ));
        rows.push(("Unseal Nonce".into(), json!(seal.nonce)));
    }
    rows.push(("Version".into(), json!(seal.version)));
    rows.push(("Build Date".into(), json!(seal.build_date)));
    rows.push(("Storage Type".into(), json!(seal.storage_type)));
    if let Some(name) = &seal.cluster_name {
        rows.push(("Cluster Name".into(), json!(name)));
    }
    if let Some(id) = &seal.cluster_id {
        rows.push(("Cluster ID".into(), json!(id)));
    }
    let mut json = serde_json::to_value(seal).unwrap_or(Value::Null);
    if let Some(leader) = leader {
        rows.push(("HA Enabled".into(), json!(leader.ha_enabled)));
        if let (Value::Object(out), Ok(Value::Object(extra))) =
            (&mut json, serde_json::to_value(leader))
        {
            out.extend(extra);
        }
    }
    Report {
        json,
        blocks: vec![Block::Table(rows)],
    }
}

/// `operator key-status` (and after `rotate`).
pub fn key_status_report(status: &KeyStatus) -> Report {
    let rows = vec![
        ("Key Term".into(), json!(status.term)),
        ("Install Time".into(), json!(status.install_time)),
        ("Encryptions".into(), json!(status.encryptions)),
        ("Data Keys".into(), json!(status.data_keys)),
        ("Rewrap Pending".into(), json!(status.rewrap_pending)),
    ];
    Report {
        json: serde_json::to_value(status).unwrap_or(Value::Null),
        blocks: vec![Block::Table(rows)],
    }
}

/// `operator members`: one row per node, as `vault operator members`.
pub fn members_report(status: &HaStatus) -> Report {
    let columns = [
        "Host Name",
        "API Address",
        "Active Node",
        "Sealed",
        "Version",
        "Last Echo",
    ];
    let rows = status
        .nodes
        .iter()
        .map(|n| {
            vec![
                n.hostname.clone(),
                n.api_address.clone(),
                n.active_node.to_string(),
                n.sealed.to_string(),
                n.version.clone(),
                n.last_echo.clone().unwrap_or_else(|| "n/a".into()),
            ]
        })
        .collect();
    Report {
        json: serde_json::to_value(status).unwrap_or(Value::Null),
        blocks: vec![Block::Grid(
            columns.iter().map(|c| (*c).to_owned()).collect(),
            rows,
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;

    #[test]
    fn members_are_one_row_each() {
        let status = HaStatus {
            nodes: vec![
                secretd_client::wire::HaNode {
                    hostname: "a".into(),
                    api_address: "https://a:8200".into(),
                    active_node: true,
                    version: "0.1.0".into(),
                    ..Default::default()
                },
                secretd_client::wire::HaNode {
                    hostname: "b".into(),
                    api_address: "https://b:8200".into(),
                    last_echo: Some("2026-11-24T04:00:00Z".into()),
                    sealed: true,
                    version: "0.1.0".into(),
                    ..Default::default()
                },
            ],
        };
        let text = members_report(&status).render(Format::Table, None).unwrap();
        let lines: Vec<Vec<&str>> = text
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(
            lines.contains(&vec![
                "a",
                "https://a:8200",
                "true",
                "false",
                "0.1.0",
                "n/a"
            ]),
            "{text}"
        );
        assert!(
            lines.contains(&vec![
                "b",
                "https://b:8200",
                "false",
                "true",
                "0.1.0",
                "2026-11-24T04:00:00Z"
            ]),
            "{text}"
        );
    }

    fn sealed() -> SealStatus {
        SealStatus {
            seal_type: "shamir".into(),
            initialized: true,
            sealed: true,
            t: 2,
            n: 3,
            progress: 1,
            ..SealStatus::default()
        }
    }

    #[test]
    fn sealed_status_shows_progress() {
        let text = seal_status_report(&sealed(), None)
            .render(Format::Table, None)
            .unwrap();
        assert!(text.contains("Unseal Progress    1/2"), "{text}");
        assert!(text.contains("Sealed             true"), "{text}");
        assert!(!text.contains("HA Enabled"));
    }

    #[test]
    fn status_json_merges_the_leader() {
        let mut s = sealed();
        s.sealed = false;
        let leader = Leader::default();
        let report = seal_status_report(&s, Some(&leader));
        assert_eq!(report.json["ha_enabled"], false);
        assert_eq!(report.json["sealed"], false);
        let text = report.render(Format::Table, None).unwrap();
        assert!(text.contains("HA Enabled"));
        assert!(!text.contains("Unseal Progress"));
        assert_eq!(
            report.render(Format::Table, Some("Sealed")).unwrap(),
            "false\n"
        );
    }

    #[test]
    fn init_prints_every_key_and_the_token_once() {
        let answer = InitResponse {
            keys: vec!["aa".into(), "bb".into(), "cc".into()],
            keys_base64: vec!["qg==".into(), "uw==".into(), "zA==".into()],
            root_token: "s.root".into(),
        };
        let report = init_report(&answer, 2);
        let text = report.render(Format::Table, None).unwrap();
        assert!(text.starts_with(
            "Unseal Key 1: aa\nUnseal Key 2: bb\nUnseal Key 3: cc\n\nInitial Root Token: s.root\n"
        ));
        assert_eq!(text.matches("s.root").count(), 1);
        assert!(text.contains("3 key shares and a key threshold of 2"));
        assert_eq!(
            report.render(Format::Table, Some("root_token")).unwrap(),
            "s.root\n"
        );
        let json = report.render(Format::Json, None).unwrap();
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["keys"][1], "bb");
    }
}
