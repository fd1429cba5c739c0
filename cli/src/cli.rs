//! The command line, as clap derive types. The access-control commands'
//! types are in `cli/access.rs`.

mod access;

use clap::{Args, Parser, Subcommand};
use zeroize::Zeroizing;

pub use self::access::*;
use crate::output::Format;

const LONG_ABOUT: &str =
    "secretctl talks to a secretd server (or to Vault/OpenBao, for the same API
subset): read and write KV version 2 secrets; create and manage tokens, ACL
policies, auth methods and audit devices; initialise, unseal and seal the
server, rotate its keys, manage secrets engines; read and write any API path.

KV paths are MOUNT/PATH, as with `vault kv`: secret/app/db is the key app/db in
the engine mounted at secret/. `read` and `write` take API paths, as `vault
read` and `vault write` do (sys/mounts, auth/token/create); so do `list` and
`delete` for paths under sys/ and auth/ (no engine can be mounted there), or
for any path with --raw.

Flags may also be written with one dash, as with `vault`: -policy=reader.

The server, token and CA file come from the flags, else from SECRETD_ADDR,
SECRETD_TOKEN and SECRETD_CACERT, else from VAULT_ADDR, VAULT_TOKEN and
VAULT_CACERT. The default address is https://127.0.0.1:8200. Without a token
from those, the one `login` saved is used: the file SECRETD_TOKEN_FILE, else
~/.secretd-token (mode 0600; refused if others can read it). `policy fmt` and
`audit verify` need no server.

Exit codes:
  0  success
  1  local error: bad usage or flags, unreadable file, bad configuration, a
     policy file that `policy fmt` refuses
  2  remote error: the server answered with an error (not found, permission
     denied, sealed, ...) or could not be reached
  Also 2: `get` of a deleted or destroyed version; `list` and `read` with
  nothing there; `audit list` with no devices; `audit verify` of a broken
  chain (a line removed, edited or moved: a \"no\" about the files, while a
  file it cannot read is 1); `status` of a sealed server (where any error
  exits 1, as `vault status`).
  `run` and `agent` have a code per cause instead: 78 configuration, 69
  server unreachable, 80 authentication denied, 77 permission denied, 66
  secret not found (see docs/injection.md).";

/// secretctl: command-line client for secretd.
#[derive(Parser)]
#[command(name = "secretctl", version, long_about = LONG_ABOUT)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command; they may come before or after it.
#[derive(Args)]
pub struct Global {
    /// The server's address (else VAULT_ADDR; default https://127.0.0.1:8200).
    #[arg(long, global = true, env = "SECRETD_ADDR", value_name = "URL")]
    pub address: Option<String>,
    /// The token to authenticate with (else VAULT_TOKEN).
    #[arg(
        long,
        global = true,
        env = "SECRETD_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        value_parser = parse_secret
    )]
    pub token: Option<Zeroizing<String>>,
    /// A PEM file of CA certificates to trust instead of the system's
    /// (else VAULT_CACERT).
    #[arg(long, global = true, env = "SECRETD_CACERT", value_name = "FILE")]
    pub ca_cert: Option<String>,
    /// Do NOT check the server's certificate (else VAULT_SKIP_VERIFY):
    /// anyone in between can read and change everything, tokens included.
    /// For a first try against a self-signed server only.
    #[arg(
        long,
        global = true,
        env = "SECRETD_SKIP_VERIFY",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::FalseyValueParser::new()
    )]
    pub tls_skip_verify: bool,
    /// The output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Print only this field's value, raw, with one trailing newline.
    #[arg(long, global = true, value_name = "KEY")]
    pub field: Option<String>,
}

fn parse_secret(s: &str) -> Result<Zeroizing<String>, String> {
    Ok(Zeroizing::new(s.to_owned()))
}

/// The commands.
#[derive(Subcommand)]
pub enum Command {
    /// Write a new version of a secret: put secret/app/db k=v k2=@file k3=-.
    Put(WriteArgs),
    /// Read a secret (the latest version, or --version N).
    Get(GetArgs),
    /// Merge keys into the latest version of a secret (HTTP PATCH).
    Patch(WriteArgs),
    /// List the keys under a directory: list secret/app, or an API path:
    /// list sys/policies/acl.
    List(ListArgs),
    /// Soft-delete the latest version, or --versions 1,2; or delete at an
    /// API path: delete sys/policies/acl/old.
    Delete(DeleteArgs),
    /// Restore soft-deleted versions.
    Undelete(VersionsArgs),
    /// Destroy versions for good.
    Destroy(VersionsArgs),
    /// Read, write or delete a secret's metadata.
    #[command(subcommand)]
    Metadata(MetadataCommand),
    /// Initialise, unseal, seal, rotate.
    #[command(subcommand)]
    Operator(OperatorCommand),
    /// Print the seal status (exit 2 when sealed).
    Status,
    /// Enable, disable, tune and list secrets engines.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Create, look up, renew and revoke tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Write, read, list, delete and format ACL policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Enable, disable and list auth methods.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Enable, disable and list audit devices; verify audit files.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Look up, renew, revoke and list the leases of dynamic secrets.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Log in with an auth method (kubernetes or ldap); the token is saved
    /// to the token file later commands use.
    Login(LoginArgs),
    /// Revoke the saved token and delete the token file.
    Logout(LogoutArgs),
    /// Read any API path: read sys/mounts; k=v pairs are query parameters.
    Read(RawArgs),
    /// Write to any API path: write sys/policies/acl/dev policy=@dev.hcl.
    Write(RawWriteArgs),
    /// Run a command with secrets in its environment:
    /// run --env DB_PASSWORD=secret/app/db#password -- ./server.
    Run(Box<crate::run::RunArgs>),
    /// Render secrets into files and keep them fresh:
    /// agent --config agent.toml [--once].
    Agent(crate::agent::AgentArgs),
}

/// `lease ...`.
#[derive(Subcommand)]
pub enum LeaseCommand {
    /// A lease's issue and expiry times and TTL.
    Lookup {
        /// The lease id, e.g. database/creds/ro/AbC...
        lease_id: String,
    },
    /// Renew a lease: a new TTL counted from now, capped by its maximum.
    Renew {
        lease_id: String,
        /// The TTL to ask for (default: the role's).
        #[arg(long, value_name = "DURATION")]
        increment: Option<String>,
    },
    /// Revoke a lease (its secret is taken back before this returns), or
    /// with --prefix every lease under a prefix (sudo).
    Revoke {
        /// The lease id, or with --prefix a prefix such as database/creds/ro.
        lease_id: String,
        /// Revoke every lease whose id starts with LEASE_ID.
        #[arg(long)]
        prefix: bool,
        /// Forget the leases under the prefix WITHOUT revoking their
        /// secrets (sudo): for irrevocable leases cleaned up by hand.
        #[arg(long, requires = "prefix")]
        force: bool,
    },
    /// List the lease ids under a prefix (sudo): database/creds/ro.
    List { prefix: String },
}

/// The auth methods `login` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LoginMethod {
    /// A Kubernetes service-account token (JWT).
    Kubernetes,
    /// An LDAP user name and password.
    Ldap,
}

impl LoginMethod {
    /// The mount a method is usually enabled at.
    pub fn default_mount(self) -> &'static str {
        match self {
            LoginMethod::Kubernetes => "kubernetes",
            LoginMethod::Ldap => "ldap",
        }
    }
}

/// `login`.
#[derive(Args)]
pub struct LoginArgs {
    /// The auth method.
    #[arg(long, value_enum)]
    pub method: LoginMethod,
    /// Where the method is mounted, below auth/ (default: the method's
    /// name).
    #[arg(long, value_name = "PATH")]
    pub mount: Option<String>,
    /// kubernetes: the role to log in as.
    #[arg(long)]
    pub role: Option<String>,
    /// kubernetes: the service-account token file, read at each login
    /// (default: /var/run/secrets/kubernetes.io/serviceaccount/token).
    #[arg(long, value_name = "FILE")]
    pub jwt_path: Option<std::path::PathBuf>,
    /// ldap: the user name.
    #[arg(long)]
    pub username: Option<String>,
    /// ldap: a file holding the password (`-`: stdin). Without it the
    /// password is asked for without echo, or read from stdin.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    /// Print the token instead of saving it.
    #[arg(long)]
    pub no_store: bool,
}

/// `logout`.
#[derive(Args)]
pub struct LogoutArgs {
    /// Only delete the token file; leave the token valid.
    #[arg(long)]
    pub no_revoke: bool,
}

/// `put` and `patch`.
#[derive(Args)]
pub struct WriteArgs {
    /// MOUNT/PATH of the secret, e.g. secret/app/db.
    pub path: String,
    /// key=value pairs: k=v, k= (empty), k=@file (the file's content),
    /// k=- (standard input; at most one).
    #[arg(value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
    /// Write only if the current version is N (0: only if it does not exist).
    #[arg(long, value_name = "N")]
    pub cas: Option<u64>,
}

/// `get`.
#[derive(Args)]
pub struct GetArgs {
    /// MOUNT/PATH of the secret.
    pub path: String,
    /// The version to read (default: the latest).
    #[arg(long, value_name = "N")]
    pub version: Option<u64>,
}

/// A single MOUNT/PATH argument.
#[derive(Args)]
pub struct PathArg {
    /// MOUNT/PATH of the secret, e.g. secret/app/db.
    pub path: String,
}

/// `list`.
#[derive(Args)]
pub struct ListArgs {
    /// MOUNT/DIR of KV secrets (secret/ or secret/app), or an API path
    /// (under sys/ or auth/, or any with --raw).
    pub path: String,
    /// PATH is an API path even if it is not under sys/ or auth/ (e.g.
    /// secret/metadata/app), as with `vault list`.
    #[arg(long)]
    pub raw: bool,
}

/// `delete`.
#[derive(Args)]
pub struct DeleteArgs {
    /// MOUNT/PATH of the secret, or an API path (under sys/ or auth/, or any
    /// with --raw).
    pub path: String,
    /// For an API path: key=value query parameters.
    #[arg(value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
    /// Versions to delete, comma-separated (default: the latest).
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "N,...",
        conflicts_with = "raw"
    )]
    pub versions: Vec<u64>,
    /// PATH is an API path even if it is not under sys/ or auth/, as with
    /// `vault delete`.
    #[arg(long)]
    pub raw: bool,
}

/// `read`.
#[derive(Args)]
pub struct RawArgs {
    /// The API path, e.g. sys/mounts or secret/data/app/db.
    pub path: String,
    /// Query parameters: k=v, k=@file, k=-.
    #[arg(value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
}

/// `write`.
#[derive(Args)]
pub struct RawWriteArgs {
    /// The API path, e.g. auth/token/create.
    pub path: String,
    /// The body's fields: k=v, k=@file (the file's content), k=- (stdin).
    /// A key given more than once becomes a list.
    #[arg(value_name = "KEY=VALUE")]
    pub pairs: Vec<String>,
    /// Write even with no fields (an empty body).
    #[arg(short, long)]
    pub force: bool,
}

/// `undelete` and `destroy`.
#[derive(Args)]
pub struct VersionsArgs {
    /// MOUNT/PATH of the secret.
    pub path: String,
    /// Versions, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "N,...", required = true)]
    pub versions: Vec<u64>,
}

/// `metadata ...`.
#[derive(Subcommand)]
pub enum MetadataCommand {
    /// Print a secret's metadata and its versions.
    Get(PathArg),
    /// Change a secret's settings or custom metadata.
    Put(MetadataPutArgs),
    /// Delete a secret: every version and its metadata.
    Delete(PathArg),
}

/// `metadata put`.
#[derive(Args)]
pub struct MetadataPutArgs {
    /// MOUNT/PATH of the secret.
    pub path: String,
    /// How many versions to keep (0: the engine's setting).
    #[arg(long, value_name = "N")]
    pub max_versions: Option<u32>,
    /// Whether every write must give --cas.
    #[arg(long, value_name = "BOOL")]
    pub cas_required: Option<bool>,
    /// Delete versions this long after they are written (e.g. 30d, 1h30m; 0s: never).
    #[arg(long, value_name = "DURATION")]
    pub delete_version_after: Option<String>,
    /// key=value custom metadata; repeat for more. Replaces all custom metadata.
    #[arg(long, value_name = "KEY=VALUE")]
    pub custom_metadata: Vec<String>,
}

/// `operator ...`.
#[derive(Subcommand)]
pub enum OperatorCommand {
    /// Initialise a new server: print the unseal keys and the root token.
    Init(InitArgs),
    /// Enter one unseal key (prompted for when not given).
    Unseal(UnsealArgs),
    /// Seal the server.
    Seal,
    /// Add a new key-encryption key term.
    Rotate,
    /// Print the key term and rewrap progress.
    KeyStatus,
    /// List the nodes serving the same database (sys/ha-status).
    Members,
}

/// `operator init`.
#[derive(Args)]
pub struct InitArgs {
    /// How many unseal keys to create.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub key_shares: u32,
    /// How many unseal keys unseal the server.
    #[arg(long, default_value_t = 3, value_name = "T")]
    pub key_threshold: u32,
}

/// `operator unseal`.
#[derive(Args)]
pub struct UnsealArgs {
    /// The unseal key (hex or base64). Omit it to be prompted (or to read
    /// one line from stdin when it is not a terminal): a key on the command
    /// line lands in the shell history.
    #[arg(value_name = "KEY", value_parser = parse_secret)]
    pub key: Option<Zeroizing<String>>,
    /// Forget the keys entered so far.
    #[arg(long, conflicts_with = "key")]
    pub reset: bool,
}

/// `secrets ...`.
#[derive(Subcommand)]
pub enum SecretsCommand {
    /// Enable a secrets engine: secrets enable [--path P] kv-v2.
    Enable(EnableArgs),
    /// Disable the secrets engine at PATH, deleting all its data.
    Disable(MountArg),
    /// Change a secrets engine's lease TTLs or description.
    Tune(TuneArgs),
    /// List the secrets engines and their lease TTLs.
    List,
}

/// `secrets tune`.
#[derive(Args)]
#[command(group(
    clap::ArgGroup::new("change")
        .required(true)
        .multiple(true)
        .args(["default_lease_ttl", "max_lease_ttl", "description"])
))]
pub struct TuneArgs {
    /// Where the engine is mounted, e.g. secret/.
    pub path: String,
    /// The default lease TTL, e.g. 1h; "system" for the system's.
    #[arg(long, value_name = "DURATION")]
    pub default_lease_ttl: Option<String>,
    /// The longest lease TTL; "system" for the system's (768h).
    #[arg(long, value_name = "DURATION")]
    pub max_lease_ttl: Option<String>,
    /// A new description.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
}

/// `secrets enable`.
#[derive(Args)]
pub struct EnableArgs {
    /// The engine type: kv-v2 (or kv with --version 2).
    #[arg(value_name = "TYPE")]
    pub engine: String,
    /// Where to mount it (default: the type's name).
    #[arg(long, value_name = "PATH")]
    pub path: Option<String>,
    /// A description for `secrets list`.
    #[arg(long, value_name = "TEXT")]
    pub description: Option<String>,
    /// The KV version (only 2 is supported).
    #[arg(long, value_name = "N")]
    pub version: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("secretctl").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["get", "secret/a", "--format", "json", "--field", "x"]).unwrap();
        assert_eq!(cli.global.format, Format::Json);
        assert_eq!(cli.global.field.as_deref(), Some("x"));
        let cli = parse(&["--address", "http://h:1", "list", "secret/"]).unwrap();
        assert_eq!(cli.global.address.as_deref(), Some("http://h:1"));
    }

    #[test]
    fn versions_are_comma_separated() {
        let cli = parse(&["destroy", "secret/a", "--versions", "1,2,5"]).unwrap();
        let Command::Destroy(a) = cli.command else {
            panic!("not destroy")
        };
        assert_eq!(a.versions, vec![1, 2, 5]);
        assert!(parse(&["undelete", "secret/a"]).is_err());
        assert!(parse(&["destroy", "secret/a", "--versions", "x"]).is_err());
    }

    #[test]
    fn unseal_reset_conflicts_with_a_key() {
        assert!(parse(&["operator", "unseal", "--reset", "abc"]).is_err());
        assert!(parse(&["operator", "unseal", "--reset"]).is_ok());
    }

    #[test]
    fn init_defaults_to_five_and_three() {
        let cli = parse(&["operator", "init"]).unwrap();
        let Command::Operator(OperatorCommand::Init(a)) = cli.command else {
            panic!("not init")
        };
        assert_eq!((a.key_shares, a.key_threshold), (5, 3));
    }

    fn parse_vault_style(args: &[&str]) -> Result<Cli, clap::Error> {
        crate::parse_command_line(
            std::iter::once("secretctl")
                .chain(args.iter().copied())
                .map(std::ffi::OsString::from)
                .collect(),
        )
    }

    #[test]
    fn vault_style_one_dash_flags_work() {
        let cli = parse_vault_style(&[
            "token",
            "create",
            "-policy",
            "reader",
            "-policy=writer",
            "-ttl=1h",
            "-orphan",
            "-format=json",
        ])
        .unwrap();
        assert_eq!(cli.global.format, Format::Json);
        let Command::Token(TokenCommand::Create(a)) = cli.command else {
            panic!("not token create")
        };
        assert_eq!(a.policies, ["reader", "writer"]);
        assert_eq!(a.ttl.as_deref(), Some("1h"));
        assert!(a.orphan);
        let cli = parse_vault_style(&["audit", "list", "-detailed"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Audit(AuditCommand::List(AuditListArgs { detailed: true }))
        ));
    }

    #[test]
    fn raw_commands_take_pairs() {
        let cli = parse(&["write", "auth/token/create", "policies=a", "ttl=1h"]).unwrap();
        let Command::Write(a) = cli.command else {
            panic!("not write")
        };
        assert_eq!(a.pairs, ["policies=a", "ttl=1h"]);
        assert!(!a.force);
        assert!(parse(&["write", "-f", "sys/rotate"]).is_ok());
        let cli = parse(&["delete", "--raw", "secret/data/x", "versions=1"]).unwrap();
        let Command::Delete(a) = cli.command else {
            panic!("not delete")
        };
        assert!(a.raw);
        assert!(parse(&["delete", "--raw", "secret/x", "--versions", "1"]).is_err());
        assert!(parse(&["list", "--raw", "secret/metadata/"]).is_ok());
        assert!(parse(&["read", "sys/mounts"]).is_ok());
    }

    #[test]
    fn access_commands_check_their_arguments() {
        assert!(
            parse(&["secrets", "tune", "secret/"]).is_err(),
            "nothing to tune"
        );
        assert!(parse(&["secrets", "tune", "secret/", "--max-lease-ttl", "1h"]).is_ok());
        assert!(parse(&["audit", "verify"]).is_err(), "needs a file");
        assert!(parse(&["audit", "verify", "a.log", "b.log"]).is_ok());
        assert!(parse(&["audit", "enable", "file", "file_path=/tmp/a.log"]).is_ok());
        assert!(parse(&["policy", "write", "dev"]).is_err(), "needs a file");
        assert!(parse(&["policy", "fmt", "-"]).is_ok());
        assert!(parse(&["auth", "enable", "kubernetes", "--path", "k8s"]).is_ok());
    }

    #[test]
    fn bad_usage_is_an_error_to_stderr() {
        let err = parse(&["frobnicate"]).err().unwrap();
        assert!(err.use_stderr());
        let help = parse(&["--help"]).err().unwrap();
        assert!(!help.use_stderr());
        let long = Cli::command().render_long_help().to_string();
        assert!(long.contains("Exit codes"), "{long}");
    }
}
