//! `lease lookup|renew|revoke|list`: the leases of dynamic secrets.

use secretd_client::duration::{format_duration, parse_duration};
use serde_json::json;

use crate::cli::LeaseCommand;
use crate::kv::list_report;
use crate::output::Report;
use crate::{Ctx, Doing, EXIT_OK, EXIT_REMOTE, Failure};

/// `lease ...`
pub async fn run(ctx: &Ctx, command: LeaseCommand) -> Result<u8, Failure> {
    let leases = ctx.client.lease();
    match command {
        LeaseCommand::Lookup { lease_id } => {
            let lease = leases
                .lookup(&lease_id)
                .await
                .doing(format_args!("looking up lease {lease_id}"))?;
            ctx.print(&Report::key_values(json!(lease)))?;
        }
        LeaseCommand::Renew {
            lease_id,
            increment,
        } => {
            let increment = increment
                .map(|d| {
                    parse_duration(&d).map_err(|e| Failure::local(format!("--increment: {e}")))
                })
                .transpose()?;
            let renewed = leases
                .renew(&lease_id, increment)
                .await
                .doing(format_args!("renewing lease {lease_id}"))?;
            ctx.warn(&renewed.warnings);
            ctx.print(&Report::key_values(json!({
                "lease_id": renewed.lease_id,
                "lease_duration": format_duration(renewed.lease_duration),
                "lease_renewable": renewed.renewable,
            })))?;
        }
        LeaseCommand::Revoke {
            lease_id,
            prefix,
            force,
        } => {
            let (what, done) = match (prefix, force) {
                (true, true) => (
                    "forgetting the leases under",
                    leases.revoke_force(&lease_id).await,
                ),
                (true, false) => (
                    "revoking the leases under",
                    leases.revoke_prefix(&lease_id).await,
                ),
                _ => ("revoking lease", leases.revoke(&lease_id).await),
            };
            done.doing(format_args!("{what} {lease_id}"))?;
            ctx.success(&if force {
                format!(
                    "Success! Forgot the leases under {lease_id}; their secrets were NOT revoked."
                )
            } else {
                format!("Success! Revoked {lease_id}.")
            });
        }
        LeaseCommand::List { prefix } => {
            let keys = leases
                .list(&prefix)
                .await
                .doing(format_args!("listing the leases under {prefix}"))?;
            if keys.is_empty() {
                eprintln!("No leases under {}/", prefix.trim_end_matches('/'));
                return Ok(EXIT_REMOTE);
            }
            ctx.print(&list_report(keys))?;
        }
    }
    Ok(EXIT_OK)
}
