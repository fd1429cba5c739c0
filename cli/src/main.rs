//! `secretctl`: the command-line client of secretd (and of the
//! Vault-compatible API subset it speaks).
//!
//! This file holds the command line (clap), the dispatch, and the exit
//! code policy; each group of commands lives in its own module.
#![forbid(unsafe_code)]

mod agent;
mod args;
mod audit;
mod cli;
mod inject;
mod kv;
mod lease;
mod login;
mod mounts;
mod operator;
mod output;
mod policy;
mod policy_fmt;
mod raw;
mod run;
mod token;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use secretd_client::{Client, ClientBuilder};

use crate::cli::{AuditCommand, Cli, Command, Global, PolicyCommand};
use crate::output::Report;

/// Exit code: success.
const EXIT_OK: u8 = 0;
/// Exit code: a local error (bad usage, unreadable file, bad config).
const EXIT_LOCAL: u8 = 1;
/// Exit code: the server answered with an error or could not be reached.
const EXIT_REMOTE: u8 = 2;

/// A failed command: the exit code and one line for stderr.
#[derive(Debug)]
pub struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    /// A local error (exit 1).
    pub fn local(message: impl Into<String>) -> Failure {
        Failure {
            code: EXIT_LOCAL,
            message: message.into(),
        }
    }

    /// Wraps a client error with what we were doing. Configuration and
    /// input errors are local (exit 1); everything the server said, or the
    /// failure to reach it, is remote (exit 2).
    pub fn client(doing: impl std::fmt::Display, err: secretd_client::Error) -> Failure {
        let code = match err {
            secretd_client::Error::Config(_) | secretd_client::Error::InvalidInput(_) => EXIT_LOCAL,
            _ => EXIT_REMOTE,
        };
        Failure {
            code,
            message: format!("{doing}: {err}"),
        }
    }
}

/// Shorthand for turning client results into [`Failure`]s.
pub trait Doing<T> {
    /// Labels the error with what was being done.
    fn doing(self, what: impl std::fmt::Display) -> Result<T, Failure>;
}

impl<T> Doing<T> for Result<T, secretd_client::Error> {
    fn doing(self, what: impl std::fmt::Display) -> Result<T, Failure> {
        self.map_err(|err| Failure::client(what, err))
    }
}

/// What every command gets: the client and how to print.
pub struct Ctx {
    /// The configured client.
    pub client: Client,
    /// Global output options.
    pub global: Global,
}

impl Global {
    /// Prints `report` to stdout in the chosen format.
    pub fn print(&self, report: &Report) -> Result<(), Failure> {
        let text = report
            .render(self.format, self.field.as_deref())
            .map_err(Failure::local)?;
        print!("{text}");
        Ok(())
    }
}

impl Ctx {
    /// Prints `report` to stdout in the chosen format.
    pub fn print(&self, report: &Report) -> Result<(), Failure> {
        self.global.print(report)
    }

    /// Prints the server's warnings to stderr, as the `vault` CLI does.
    pub fn warn(&self, warnings: &[String]) {
        if warnings.is_empty() {
            return;
        }
        eprintln!("WARNING! The following warnings were returned from the server:");
        for warning in warnings {
            eprintln!("  * {warning}");
        }
        eprintln!();
    }

    /// Prints a success line (table format only, not with `--field`).
    pub fn success(&self, message: &str) {
        if self.global.format == output::Format::Table && self.global.field.is_none() {
            println!("{message}");
        }
    }
}

/// The command line (`args` with the program name first), with the
/// `vault` CLI's one-dash long flags (`-policy=x`) accepted too.
pub fn parse_command_line(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
    let mut command = Cli::command();
    let args = args::vault_style_flags(&command, args);
    let matches = command.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))
}

fn main() -> ExitCode {
    let cli = match parse_command_line(std::env::args_os().collect()) {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version print to stdout and succeed; usage
            // errors exit 1 (not clap's 2, which means a remote error here).
            let _ = err.print();
            if !err.use_stderr() {
                return ExitCode::from(EXIT_OK);
            }
            if injects(std::env::args_os()) {
                let first_line = err.to_string();
                let first_line = first_line.lines().next().unwrap_or_default();
                let failure = inject::config(first_line.trim_start_matches("error: "));
                let log = std::env::var_os("SECRETD_TERMINATION_LOG")
                    .unwrap_or_else(|| inject::DEFAULT_TERMINATION_LOG.into());
                inject::write_termination_message(std::path::Path::new(&log), &failure);
                return ExitCode::from(inject::EXIT_CONFIG);
            }
            return ExitCode::from(EXIT_LOCAL);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("Error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_LOCAL);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("Error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

/// True when the command line is `run` or `agent` (whose usage errors
/// are configuration errors, exit 78, like their other ones).
fn injects(args: impl Iterator<Item = std::ffi::OsString>) -> bool {
    args.skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "run" || a == "agent")
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    // Commands that need no server run before any client is configured.
    match &cli.command {
        Command::Policy(PolicyCommand::Fmt(a)) => return policy::fmt(&a.file),
        Command::Audit(AuditCommand::Verify(a)) => return audit::verify(&cli.global, &a.files),
        _ => {}
    }
    // `run` brings its own login.
    let cli = match cli.command {
        Command::Run(a) => return run::run(&cli.global, *a).await,
        Command::Agent(a) => return agent::agent(&cli.global, a).await,
        command => Cli { command, ..cli },
    };
    let client = build_client(&cli.global)?;
    let ctx = Ctx {
        client,
        global: cli.global,
    };
    match cli.command {
        Command::Put(a) => kv::put(&ctx, a).await,
        Command::Get(a) => kv::get(&ctx, a).await,
        Command::Patch(a) => kv::patch(&ctx, a).await,
        Command::List(a) if raw::is_api_path(&a.path, a.raw) => raw::list(&ctx, &a.path).await,
        Command::List(a) => kv::list(&ctx, a).await,
        Command::Delete(a) if raw::is_api_path(&a.path, a.raw) => {
            raw::delete(&ctx, &a.path, &a.pairs).await
        }
        Command::Delete(a) => kv::delete(&ctx, a).await,
        Command::Undelete(a) => kv::undelete(&ctx, a).await,
        Command::Destroy(a) => kv::destroy(&ctx, a).await,
        Command::Metadata(m) => kv::metadata(&ctx, m).await,
        Command::Operator(o) => operator::run(&ctx, o).await,
        Command::Status => operator::status(&ctx).await,
        Command::Secrets(s) => mounts::run(&ctx, s).await,
        Command::Token(t) => token::run(&ctx, t).await,
        Command::Policy(p) => policy::run(&ctx, p).await,
        Command::Auth(a) => mounts::auth(&ctx, a).await,
        Command::Audit(a) => audit::run(&ctx, a).await,
        Command::Lease(l) => lease::run(&ctx, l).await,
        Command::Login(a) => login::login(&ctx, a).await,
        Command::Logout(a) => login::logout(&ctx, a).await,
        Command::Read(a) => raw::read(&ctx, a).await,
        Command::Write(a) => raw::write(&ctx, a).await,
        Command::Run(_) | Command::Agent(_) => unreachable!("handled above"),
    }
}

/// The client from the environment (SECRETD_* then VAULT_*), overridden
/// by the flags.
fn build_client(global: &Global) -> Result<Client, Failure> {
    let mut builder = client_builder(global, None, None);
    if let Some(token) = global.token.as_ref().filter(|t| !t.is_empty()) {
        builder = builder.token(token.as_str());
    } else if !builder.has_token()
        && let Some(token) = login::read_token_file()?
    {
        builder = builder.token(token.as_str());
    }
    builder
        .build()
        .map_err(|err| Failure::local(err.to_string()))
}

/// Where the server is and how to trust it: `address` and `ca_cert` (an
/// agent's configuration) first, then the flags, then the environment.
/// Warns on stderr when certificate checks are off.
pub fn client_builder(
    global: &Global,
    address: Option<&str>,
    ca_cert: Option<&str>,
) -> ClientBuilder {
    let mut builder = ClientBuilder::from_env();
    let given = |v: Option<&str>| v.filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(address) = given(address.or(global.address.as_deref())) {
        builder = builder.address(address);
    }
    if let Some(ca) = given(ca_cert.or(global.ca_cert.as_deref())) {
        builder = builder.ca_cert_file(ca);
    }
    if global.tls_skip_verify {
        builder = builder.danger_skip_tls_verify(true);
    }
    if builder.skips_verification() {
        eprintln!(
            "WARNING: TLS certificate checks are off (--tls-skip-verify / SECRETD_SKIP_VERIFY): \
             anyone in between can read and change everything, tokens included."
        );
    }
    builder
}
