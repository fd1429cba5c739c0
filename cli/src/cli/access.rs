//! The command line of the access-control commands: `token`, `policy`,
//! `auth` and `audit`.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use zeroize::Zeroizing;

use super::parse_secret;

/// `token ...`.
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token (a child of the current one, or --orphan) and print
    /// it: the only time it is shown.
    Create(TokenCreateArgs),
    /// Look up a token: the current one, TOKEN, or --accessor. Its value is
    /// never printed.
    Lookup(TokenLookupArgs),
    /// Renew a token: the current one, TOKEN, or --accessor.
    Renew(TokenRenewArgs),
    /// Revoke a token and the tokens created under it: TOKEN, --self or
    /// --accessor.
    Revoke(TokenRevokeArgs),
}

/// `token create`.
#[derive(Args)]
pub struct TokenCreateArgs {
    /// A policy of the new token; repeat (or separate with commas) for more.
    /// Default: the current token's policies.
    #[arg(long = "policy", value_name = "NAME", value_delimiter = ',')]
    pub policies: Vec<String>,
    /// Its time to live, e.g. 1h (default: the token mount's, 768h).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// A limit that renewals cannot extend.
    #[arg(long, value_name = "DURATION")]
    pub explicit_max_ttl: Option<String>,
    /// Make a periodic token: every renewal resets its TTL to this (root or
    /// sudo only).
    #[arg(long, value_name = "DURATION")]
    pub period: Option<String>,
    /// How many requests the token may make (default: unlimited).
    #[arg(long, value_name = "N")]
    pub use_limit: Option<u64>,
    /// Create it without a parent, so revoking the current token leaves it
    /// (uses auth/token/create-orphan).
    #[arg(long)]
    pub orphan: bool,
    /// Leave out the default policy.
    #[arg(long)]
    pub no_default_policy: bool,
    /// A name shown in lookups (prefixed "token-").
    #[arg(long, value_name = "NAME")]
    pub display_name: Option<String>,
    /// key=value metadata shown in lookups and audit logs; repeat for more.
    #[arg(long, value_name = "KEY=VALUE")]
    pub metadata: Vec<String>,
    /// Whether it can be renewed: --renewable=false makes it not (default:
    /// true).
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub renewable: Option<bool>,
}

/// Which token a command is about.
#[derive(Args)]
pub struct TokenTarget {
    /// The token; - reads it from stdin (a token on the command line lands
    /// in the shell history). Default: the current token.
    #[arg(value_name = "TOKEN", value_parser = parse_secret)]
    pub token_value: Option<Zeroizing<String>>,
    /// The token's accessor instead of the token.
    #[arg(long, value_name = "ACCESSOR", conflicts_with = "token_value")]
    pub accessor: Option<String>,
}

/// `token lookup`.
#[derive(Args)]
pub struct TokenLookupArgs {
    #[command(flatten)]
    pub target: TokenTarget,
}

/// `token renew`.
#[derive(Args)]
pub struct TokenRenewArgs {
    #[command(flatten)]
    pub target: TokenTarget,
    /// The TTL to ask for, counted from now (default: the token's own).
    #[arg(long, value_name = "DURATION")]
    pub increment: Option<String>,
}

/// `token revoke`.
#[derive(Args)]
#[command(group(
    ArgGroup::new("which")
        .required(true)
        .args(["token_value", "revoke_self", "accessor"])
))]
pub struct TokenRevokeArgs {
    #[command(flatten)]
    pub target: TokenTarget,
    /// Revoke the current token.
    #[arg(long = "self", conflicts_with_all = ["token_value", "accessor"])]
    pub revoke_self: bool,
    /// orphan: revoke only the token; the tokens created under it become
    /// orphans (root or sudo only; needs TOKEN).
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        requires = "token_value",
        conflicts_with_all = ["revoke_self", "accessor"]
    )]
    pub mode: Option<RevokeMode>,
}

/// `token revoke --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RevokeMode {
    /// Revoke the token but not its children.
    Orphan,
}

/// `policy ...`.
#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Create or replace a policy from an HCL or JSON file (- reads stdin).
    Write(PolicyWriteArgs),
    /// Print a policy as written.
    Read(PolicyNameArg),
    /// List the policies.
    List,
    /// Delete a policy.
    Delete(PolicyNameArg),
    /// Check an HCL policy file and rewrite it in place in the canonical
    /// layout, comments kept; - formats stdin to stdout. Needs no server.
    Fmt(PolicyFmtArgs),
}

/// `policy write`.
#[derive(Args)]
pub struct PolicyWriteArgs {
    /// The policy's name.
    pub name: String,
    /// The file with the policy (HCL or JSON), or - for stdin.
    #[arg(value_name = "FILE")]
    pub file: String,
}

/// A policy name.
#[derive(Args)]
pub struct PolicyNameArg {
    /// The policy's name.
    pub name: String,
}

/// `policy fmt`.
#[derive(Args)]
pub struct PolicyFmtArgs {
    /// The HCL policy file, or - (stdin to stdout).
    #[arg(value_name = "FILE")]
    pub file: String,
}

/// `auth ...`.
#[derive(Subcommand)]
pub enum AuthCommand {
    /// Enable an auth method at auth/PATH (default: its type).
    Enable(AuthEnableArgs),
    /// Disable the auth method at auth/PATH, revoking the tokens it issued.
    Disable(MountArg),
    /// List the auth methods.
    List,
}

/// `auth enable`.
#[derive(Args)]
pub struct AuthEnableArgs {
    /// The auth method's type, e.g. kubernetes.
    #[arg(value_name = "TYPE")]
    pub method_type: String,
    /// Where to enable it, below auth/ (default: the type's name).
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// A description for `auth list`.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The default TTL of the tokens it issues.
    #[arg(long, value_name = "DURATION")]
    pub default_lease_ttl: Option<String>,
    /// The longest TTL of the tokens it issues.
    #[arg(long, value_name = "DURATION")]
    pub max_lease_ttl: Option<String>,
}

/// Where a secrets engine, auth method or audit device is mounted.
#[derive(Args)]
pub struct MountArg {
    /// The path, e.g. kv/ or file/.
    pub path: String,
}

/// `audit ...`.
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Enable an audit device: audit enable file
    /// file_path=/var/log/secretd/audit.log.
    Enable(AuditEnableArgs),
    /// Disable the audit device at PATH.
    Disable(MountArg),
    /// List the audit devices.
    List(AuditListArgs),
    /// Check the hash chain of audit files, in order (rotated files oldest
    /// first). Needs no server; exits 2 if a line was removed, edited or
    /// moved.
    Verify(AuditVerifyArgs),
}

/// `audit enable`.
#[derive(Args)]
pub struct AuditEnableArgs {
    /// The device type: file.
    #[arg(value_name = "TYPE")]
    pub device_type: String,
    /// The device's options: file_path=PATH|stdout|discard, mode=0600,
    /// hmac_accessor=false, log_raw=true, ...
    #[arg(value_name = "KEY=VALUE")]
    pub options: Vec<String>,
    /// Where to enable it (default: the type's name).
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// A description for `audit list`.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

/// `audit list`.
#[derive(Args)]
pub struct AuditListArgs {
    /// Also show each device's options.
    #[arg(long)]
    pub detailed: bool,
}

/// `audit verify`.
#[derive(Args)]
pub struct AuditVerifyArgs {
    /// The audit files, oldest first.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}
