//! Token commands: create, lookup, renew, revoke.

use secretd_client::TokenAuth;
use secretd_client::duration::{format_duration, parse_duration};
use secretd_client::wire::{TokenCreateRequest, TokenLookup};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::args;
use crate::cli::{
    RevokeMode, TokenCommand, TokenCreateArgs, TokenLookupArgs, TokenRenewArgs, TokenRevokeArgs,
    TokenTarget,
};
use crate::output::{Block, Report};
use crate::{Ctx, Doing, EXIT_OK, Failure};

/// `token ...`
pub async fn run(ctx: &Ctx, command: TokenCommand) -> Result<u8, Failure> {
    match command {
        TokenCommand::Create(a) => create(ctx, a).await,
        TokenCommand::Lookup(a) => lookup(ctx, a).await,
        TokenCommand::Renew(a) => renew(ctx, a).await,
        TokenCommand::Revoke(a) => revoke(ctx, a).await,
    }
}

async fn create(ctx: &Ctx, a: TokenCreateArgs) -> Result<u8, Failure> {
    let request = create_request(&a)?;
    let tokens = ctx.client.token();
    let auth = if a.orphan {
        tokens.create_orphan(&request).await
    } else {
        tokens.create(&request).await
    }
    .doing("creating a token")?;
    ctx.warn(&auth.warnings);
    ctx.print(&auth_report(&auth, ShowToken::Yes))?;
    Ok(EXIT_OK)
}

async fn lookup(ctx: &Ctx, a: TokenLookupArgs) -> Result<u8, Failure> {
    let tokens = ctx.client.token();
    let lookup = match target(a.target)? {
        Target::Current => tokens.lookup_self().await,
        Target::Token(token) => tokens.lookup(&token).await,
        Target::Accessor(accessor) => tokens.lookup_accessor(&accessor).await,
    }
    .doing("looking up the token")?;
    ctx.print(&lookup_report(&lookup))?;
    Ok(EXIT_OK)
}

async fn renew(ctx: &Ctx, a: TokenRenewArgs) -> Result<u8, Failure> {
    let increment = a
        .increment
        .as_deref()
        .map(|d| duration("--increment", d))
        .transpose()?;
    let tokens = ctx.client.token();
    let auth = match target(a.target)? {
        Target::Current => tokens.renew_self(increment).await,
        Target::Token(token) => tokens.renew(&token, increment).await,
        Target::Accessor(accessor) => tokens.renew_accessor(&accessor, increment).await,
    }
    .doing("renewing the token")?;
    ctx.warn(&auth.warnings);
    ctx.print(&auth_report(&auth, ShowToken::No))?;
    Ok(EXIT_OK)
}

async fn revoke(ctx: &Ctx, a: TokenRevokeArgs) -> Result<u8, Failure> {
    let tokens = ctx.client.token();
    let orphan = a.mode == Some(RevokeMode::Orphan);
    let which = if a.revoke_self {
        Target::Current
    } else {
        target(a.target)?
    };
    let message = match which {
        Target::Current => {
            tokens.revoke_self().await.doing("revoking the token")?;
            "Success! Revoked the current token and its children."
        }
        Target::Token(token) if orphan => {
            tokens
                .revoke_orphan(&token)
                .await
                .doing("revoking the token")?;
            "Success! Revoked the token (if it existed); its children are now orphans."
        }
        Target::Token(token) => {
            tokens.revoke(&token).await.doing("revoking the token")?;
            "Success! Revoked the token and its children (if it existed)."
        }
        Target::Accessor(accessor) => {
            tokens
                .revoke_accessor(&accessor)
                .await
                .doing("revoking the token")?;
            "Success! Revoked the token and its children (if it existed)."
        }
    };
    ctx.success(message);
    Ok(EXIT_OK)
}

/// Which token: the client's own, one given by value, or by accessor.
enum Target {
    Current,
    Token(Zeroizing<String>),
    Accessor(String),
}

/// The target of a command; a token of `-` is read from stdin.
fn target(t: TokenTarget) -> Result<Target, Failure> {
    match (t.token_value, t.accessor) {
        (_, Some(accessor)) => Ok(Target::Accessor(accessor)),
        (Some(token), None) => {
            let token = if token.as_str() == "-" {
                crate::operator::read_secret("Token", "the token")?
            } else {
                token
            };
            let token = Zeroizing::new(token.trim().to_owned());
            if token.is_empty() {
                return Err(Failure::local("the token is empty"));
            }
            Ok(Target::Token(token))
        }
        (None, None) => Ok(Target::Current),
    }
}

fn duration(flag: &str, value: &str) -> Result<u64, Failure> {
    parse_duration(value).map_err(|e| Failure::local(format!("{flag}: {e}")))
}

/// The request of `token create`; durations are checked here (a typo is a
/// local error) and sent as typed.
fn create_request(a: &TokenCreateArgs) -> Result<TokenCreateRequest, Failure> {
    let durations = [
        ("--ttl", &a.ttl),
        ("--explicit-max-ttl", &a.explicit_max_ttl),
        ("--period", &a.period),
    ];
    for (flag, value) in durations {
        if let Some(value) = value {
            duration(flag, value)?;
        }
    }
    let policies: Vec<String> = a
        .policies
        .iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    Ok(TokenCreateRequest {
        policies,
        meta: args::plain_pairs(&a.metadata, "--metadata").map_err(Failure::local)?,
        no_parent: false,
        no_default_policy: a.no_default_policy,
        renewable: a.renewable,
        ttl: a.ttl.clone(),
        explicit_max_ttl: a.explicit_max_ttl.clone(),
        period: a.period.clone(),
        num_uses: a.use_limit,
        display_name: a.display_name.clone(),
    })
}

/// Whether a report shows the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowToken {
    /// `token create` (the only time it is shown) and raw writes.
    Yes,
    /// Renewals: the caller has it already.
    No,
}

/// The `vault token create` table: token, token_accessor, token_duration,
/// token_renewable, token_policies, identity_policies, policies,
/// token_meta_*. JSON: the `auth` object and the warnings.
pub fn auth_report(auth: &TokenAuth, show: ShowToken) -> Report {
    let mut rows: Vec<(String, Value)> = Vec::new();
    if show == ShowToken::Yes {
        rows.push(("token".into(), json!(auth.client_token.as_str())));
    }
    let duration = if auth.lease_duration == 0 {
        "∞".to_owned()
    } else {
        format_duration(auth.lease_duration)
    };
    rows.extend([
        ("token_accessor".into(), json!(auth.accessor)),
        ("token_duration".into(), json!(duration)),
        ("token_renewable".into(), json!(auth.renewable)),
        ("token_policies".into(), json!(auth.token_policies)),
        ("identity_policies".into(), json!([])),
        ("policies".into(), json!(auth.policies)),
    ]);
    for (key, value) in &auth.metadata {
        rows.push((format!("token_meta_{key}"), json!(value)));
    }
    let mut auth_json = json!({
        "accessor": auth.accessor,
        "policies": auth.policies,
        "token_policies": auth.token_policies,
        "metadata": auth.metadata,
        "lease_duration": auth.lease_duration,
        "renewable": auth.renewable,
        "entity_id": auth.entity_id,
        "token_type": auth.token_type,
        "orphan": auth.orphan,
        "num_uses": auth.num_uses,
    });
    if show == ShowToken::Yes {
        auth_json["client_token"] = json!(auth.client_token.as_str());
    }
    Report {
        json: json!({"auth": auth_json, "warnings": auth.warnings}),
        blocks: vec![Block::Table(rows)],
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
    use crate::cli::Cli;
    use crate::output::Format;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("secretctl").chain(args.iter().copied()))
    }

    fn create_args(args: &[&str]) -> TokenCreateArgs {
        let mut all = vec!["token", "create"];
        all.extend_from_slice(args);
        match parse(&all).unwrap().command {
            crate::cli::Command::Token(TokenCommand::Create(a)) => a,
            _ => panic!("not token create"),
        }
    }

    #[test]
    fn create_flags_become_the_request() {
        let a = create_args(&[
            "--policy",
            "reader",
            "--policy=writer,audit",
            "--ttl",
            "1h",
            "--explicit-max-ttl=24h",
            "--use-limit",
            "5",
            "--no-default-policy",
            "--display-name",
            "ci",
            "--metadata",
            "team=a",
            "--metadata",
            "env=prod",
            "--renewable=false",
            "--orphan",
        ]);
        assert!(a.orphan);
        let request = create_request(&a).unwrap();
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"policies": ["reader", "writer", "audit"], "meta": {"team": "a", "env": "prod"},
                   "no_default_policy": true, "renewable": false, "ttl": "1h",
                   "explicit_max_ttl": "24h", "num_uses": 5, "display_name": "ci"})
        );
        let defaults = create_request(&create_args(&[])).unwrap();
        assert_eq!(serde_json::to_value(&defaults).unwrap(), json!({}));
        assert_eq!(create_args(&["--renewable"]).renewable, Some(true));
    }

    #[test]
    fn create_refuses_bad_durations_and_metadata_locally() {
        let err = create_request(&create_args(&["--ttl", "soon"])).unwrap_err();
        assert!(err.message.contains("--ttl"), "{}", err.message);
        assert!(create_request(&create_args(&["--period", "1x"])).is_err());
        assert!(create_request(&create_args(&["--metadata", "novalue"])).is_err());
    }

    #[test]
    fn revoke_needs_exactly_one_target_and_orphan_needs_a_token() {
        assert!(parse(&["token", "revoke"]).is_err());
        assert!(parse(&["token", "revoke", "--self"]).is_ok());
        assert!(parse(&["token", "revoke", "hvs.x"]).is_ok());
        assert!(parse(&["token", "revoke", "--accessor", "a"]).is_ok());
        assert!(parse(&["token", "revoke", "--self", "hvs.x"]).is_err());
        assert!(parse(&["token", "revoke", "--accessor", "a", "hvs.x"]).is_err());
        assert!(parse(&["token", "revoke", "--mode", "orphan", "hvs.x"]).is_ok());
        assert!(parse(&["token", "revoke", "--mode", "orphan", "--self"]).is_err());
        assert!(parse(&["token", "revoke", "--mode", "orphan", "--accessor", "a"]).is_err());
        assert!(parse(&["token", "revoke", "--mode", "path", "hvs.x"]).is_err());
        assert!(parse(&["token", "lookup"]).is_ok());
        assert!(parse(&["token", "lookup", "--accessor", "a", "hvs.x"]).is_err());
        assert!(parse(&["token", "renew", "--increment", "1h"]).is_ok());
    }

    #[test]
    fn targets() {
        let t = |token: Option<&str>, accessor: Option<&str>| {
            target(TokenTarget {
                token_value: token.map(|t| Zeroizing::new(t.to_owned())),
                accessor: accessor.map(str::to_owned),
            })
        };
        assert!(matches!(t(None, None), Ok(Target::Current)));
        assert!(matches!(t(None, Some("acc")), Ok(Target::Accessor(a)) if a == "acc"));
        assert!(matches!(t(Some(" hvs.x\n"), None), Ok(Target::Token(v)) if v.as_str() == "hvs.x"));
        assert!(t(Some("  "), None).is_err());
    }

    fn auth() -> TokenAuth {
        TokenAuth {
            client_token: Zeroizing::new("hvs.new-secret".into()),
            accessor: "acc1".into(),
            policies: vec!["default".into(), "reader".into()],
            token_policies: vec!["default".into(), "reader".into()],
            metadata: [("team".to_owned(), "a".to_owned())].into(),
            lease_duration: 3600,
            renewable: true,
            token_type: "service".into(),
            ..TokenAuth::default()
        }
    }

    #[test]
    fn create_prints_the_token_like_vault() {
        let report = auth_report(&auth(), ShowToken::Yes);
        let text = report.render(Format::Table, None).unwrap();
        assert_eq!(
            text,
            "Key                  Value\n\
             ---                  -----\n\
             token                hvs.new-secret\n\
             token_accessor       acc1\n\
             token_duration       1h0m0s\n\
             token_renewable      true\n\
             token_policies       [\"default\",\"reader\"]\n\
             identity_policies    []\n\
             policies             [\"default\",\"reader\"]\n\
             token_meta_team      a\n"
        );
        assert_eq!(
            report.render(Format::Table, Some("token")).unwrap(),
            "hvs.new-secret\n"
        );
        let json = report.render(Format::Json, None).unwrap();
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["auth"]["client_token"], "hvs.new-secret");
        assert_eq!(back["auth"]["lease_duration"], 3600);
    }

    #[test]
    fn renewals_do_not_print_the_token() {
        let report = auth_report(&auth(), ShowToken::No);
        for format in [Format::Table, Format::Json] {
            let text = report.render(format, None).unwrap();
            assert!(!text.contains("new-secret"), "{text}");
        }
        assert!(report.render(Format::Table, Some("token")).is_err());
        let never = TokenAuth {
            lease_duration: 0,
            ..auth()
        };
        let text = auth_report(&never, ShowToken::No)
            .render(Format::Table, Some("token_duration"))
            .unwrap();
        assert_eq!(text, "∞\n");
    }

    #[test]
    fn lookup_never_shows_the_token() {
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
}
