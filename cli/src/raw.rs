//! Commands on any API path, as `vault read|write|list|delete`: the
//! request goes to the path as given and the answer is printed as it came.
//!
//! `read` and `write` always take API paths. `list` and `delete` are KV
//! commands (`list secret/app`) unless the path is under a prefix no
//! secrets engine can be mounted at (`sys/`, `auth/`, ...) or `--raw` is
//! given.

use secretd_client::LogicalResponse;
use secretd_client::duration::format_duration;
use serde_json::{Value, json};

use crate::args;
use crate::cli::{RawArgs, RawWriteArgs};
use crate::kv::list_report;
use crate::output::{Block, Report};
use crate::token::{ShowToken, auth_report};
use crate::{Ctx, Doing, EXIT_OK, EXIT_REMOTE, Failure};

/// Where no secrets engine can be mounted: the server refuses these
/// prefixes for mounts, so a path under one is never a KV path.
const API_ONLY_PREFIXES: &[&str] = &["sys", "auth", "cubbyhole", "identity", "audit"];

/// Whether `list` or `delete` should treat `path` as an API path.
pub fn is_api_path(path: &str, raw: bool) -> bool {
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    raw || API_ONLY_PREFIXES.contains(&first)
}

/// An API path as typed, without a leading slash; never empty.
fn api_path(input: &str) -> Result<String, Failure> {
    let path = input.trim().trim_start_matches('/');
    if path.is_empty() {
        return Err(Failure::local(
            "the path is empty: give an API path, e.g. sys/mounts",
        ));
    }
    Ok(path.to_owned())
}

/// `k=v` arguments as query parameters (values from files and stdin read).
fn query(pairs: &[String]) -> Result<Vec<(String, String)>, Failure> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    args::read_values_from_io(pairs).map_err(Failure::local)
}

fn as_refs(query: &[(String, String)]) -> Vec<(&str, &str)> {
    query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// `read PATH [k=v...]`: exit 2 with a message when there is nothing.
pub async fn read(ctx: &Ctx, a: RawArgs) -> Result<u8, Failure> {
    let path = api_path(&a.path)?;
    let query = query(&a.pairs)?;
    let answer = ctx
        .client
        .logical()
        .read_with(&path, &as_refs(&query))
        .await
        .doing(format_args!("reading {path}"))?;
    let Some(response) = answer else {
        eprintln!("No value found at {path}");
        return Ok(EXIT_REMOTE);
    };
    ctx.warn(&response.warnings);
    ctx.print(&response_report(&response))?;
    Ok(EXIT_OK)
}

/// `write PATH k=v...`: the pairs as a JSON object (a repeated key becomes
/// a list), sent with PUT.
pub async fn write(ctx: &Ctx, a: RawWriteArgs) -> Result<u8, Failure> {
    let path = api_path(&a.path)?;
    if a.pairs.is_empty() && !a.force {
        return Err(Failure::local(
            "nothing to write: give key=value pairs, or --force to send an empty body",
        ));
    }
    let body = Value::Object(args::collect_repeated(query(&a.pairs)?));
    let answer = ctx
        .client
        .logical()
        .write(&path, &body)
        .await
        .doing(format_args!("writing {path}"))?;
    print_answer(ctx, answer, &format!("Success! Data written to: {path}"))
}

/// `list PATH` for an API path: exit 2 with a message when there are no
/// keys.
pub async fn list(ctx: &Ctx, input: &str) -> Result<u8, Failure> {
    let path = api_path(input)?;
    let answer = ctx
        .client
        .logical()
        .list(&path)
        .await
        .doing(format_args!("listing {path}"))?;
    let keys = answer
        .as_ref()
        .map(LogicalResponse::keys)
        .unwrap_or_default();
    if let Some(response) = &answer {
        ctx.warn(&response.warnings);
    }
    if keys.is_empty() {
        eprintln!("No value found at {}/", path.trim_end_matches('/'));
        return Ok(EXIT_REMOTE);
    }
    ctx.print(&list_report(keys))?;
    Ok(EXIT_OK)
}

/// `delete PATH [k=v...]` for an API path; pairs are query parameters.
pub async fn delete(ctx: &Ctx, input: &str, pairs: &[String]) -> Result<u8, Failure> {
    let path = api_path(input)?;
    let query = query(pairs)?;
    let answer = ctx
        .client
        .logical()
        .delete_with(&path, &as_refs(&query))
        .await
        .doing(format_args!("deleting {path}"))?;
    print_answer(
        ctx,
        answer,
        &format!("Success! Data deleted (if it existed) at: {path}"),
    )
}

/// After a write or delete: the answer if it says something, else
/// `success`. Warnings go to stderr.
fn print_answer(ctx: &Ctx, answer: Option<LogicalResponse>, success: &str) -> Result<u8, Failure> {
    match answer {
        Some(response) if response.data.is_some() || response.auth.is_some() => {
            ctx.warn(&response.warnings);
            ctx.print(&response_report(&response))?;
        }
        Some(response) => {
            ctx.warn(&response.warnings);
            ctx.success(success);
        }
        None => ctx.success(success),
    }
    Ok(EXIT_OK)
}

/// An answer: the token table when it hands out a token (as `vault write
/// auth/token/create` prints), else the lease and the data as a Key/Value
/// table. JSON: the whole envelope.
pub fn response_report(response: &LogicalResponse) -> Report {
    let auth_part = response
        .auth
        .as_ref()
        .map(|auth| auth_report(auth, ShowToken::Yes));
    let json = json!({
        "request_id": response.request_id,
        "lease_id": response.lease_id,
        "lease_duration": response.lease_duration,
        "renewable": response.renewable,
        "data": response.data,
        "warnings": response.warnings,
        "auth": auth_part.as_ref().map(|r| r.json["auth"].clone()),
    });
    if let Some(auth) = auth_part {
        return Report {
            json,
            blocks: auth.blocks,
        };
    }
    let mut rows: Vec<(String, Value)> = Vec::new();
    if !response.lease_id.is_empty() {
        rows.push(("lease_id".into(), json!(response.lease_id)));
        rows.push((
            "lease_duration".into(),
            json!(format_duration(response.lease_duration)),
        ));
        rows.push(("lease_renewable".into(), json!(response.renewable)));
    }
    if let Some(data) = &response.data {
        rows.extend(data.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    Report {
        json,
        blocks: vec![Block::Table(rows)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;
    use secretd_client::TokenAuth;
    use zeroize::Zeroizing;

    #[test]
    fn only_reserved_prefixes_or_raw_make_list_and_delete_api_commands() {
        for api in [
            "sys/policies/acl",
            "/sys/mounts",
            "auth/token/accessors",
            "identity/x",
        ] {
            assert!(is_api_path(api, false), "{api}");
        }
        for kv in ["secret/app", "secret/", "system/x", "authors/a", ""] {
            assert!(!is_api_path(kv, false), "{kv}");
        }
        assert!(is_api_path("secret/metadata/app", true));
        assert!(api_path(" /sys/mounts").unwrap() == "sys/mounts");
        assert!(api_path("/").is_err());
    }

    #[test]
    fn data_is_a_key_value_table_with_the_lease_first() {
        let response = LogicalResponse {
            lease_id: "database/creds/ro/abc".into(),
            lease_duration: 3600,
            renewable: true,
            data: Some(
                json!({"username": "v-ro", "nested": {"a": 1}})
                    .as_object()
                    .unwrap()
                    .clone(),
            ),
            ..LogicalResponse::default()
        };
        let report = response_report(&response);
        assert_eq!(
            report.render(Format::Table, None).unwrap(),
            "Key                Value\n\
             ---                -----\n\
             lease_id           database/creds/ro/abc\n\
             lease_duration     1h0m0s\n\
             lease_renewable    true\n\
             nested             {\"a\":1}\n\
             username           v-ro\n"
        );
        assert_eq!(
            report.render(Format::Table, Some("username")).unwrap(),
            "v-ro\n"
        );
        let json: Value =
            serde_json::from_str(&report.render(Format::Json, None).unwrap()).unwrap();
        assert_eq!(json["data"]["username"], "v-ro");
        assert_eq!(json["lease_duration"], 3600);
    }

    #[test]
    fn an_answer_with_a_token_prints_the_token_table() {
        let response = LogicalResponse {
            auth: Some(TokenAuth {
                client_token: Zeroizing::new("hvs.raw-created".into()),
                accessor: "acc".into(),
                lease_duration: 60,
                ..TokenAuth::default()
            }),
            warnings: vec!["w".into()],
            ..LogicalResponse::default()
        };
        let report = response_report(&response);
        assert_eq!(
            report.render(Format::Table, Some("token")).unwrap(),
            "hvs.raw-created\n"
        );
        let json: Value =
            serde_json::from_str(&report.render(Format::Json, None).unwrap()).unwrap();
        assert_eq!(json["auth"]["client_token"], "hvs.raw-created");
        assert_eq!(json["warnings"][0], "w");
        assert_eq!(json["data"], Value::Null);
    }
}
