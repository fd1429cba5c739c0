//! `secretd-bench`: KV v2 read and write throughput and latency against a
//! running Vault-API server (secretd, OpenBao, or the floor).
//!
//! ```text
//! secretd-bench --addr 127.0.0.1:8200 --token root --scenarios read,write
//! ```
#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http::Method;
use secretd_bench::load::{self, Phases, RequestSpec, Target};
use secretd_bench::report::{Report, RunShape};
use secretd_bench::{cpu, payload};

#[derive(Parser)]
#[command(
    name = "secretd-bench",
    about = "KV v2 throughput and latency over keep-alive connections"
)]
struct Args {
    /// The server: host:port or http://host:port.
    #[arg(long, default_value = "127.0.0.1:8200")]
    addr: String,
    /// The token sent as X-Vault-Token.
    #[arg(
        long,
        env = "VAULT_TOKEN",
        default_value = "root",
        hide_env_values = true
    )]
    token: String,
    /// The KV v2 mount.
    #[arg(long, default_value = "secret")]
    mount: String,
    /// Scenarios to run, in order (read, write).
    #[arg(long, value_delimiter = ',', default_value = "read,write")]
    scenarios: Vec<Scenario>,
    /// Concurrent clients, each with one keep-alive connection.
    #[arg(long, short = 'c', default_value_t = 32)]
    connections: usize,
    /// Timed run per scenario, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up before the timed run, in seconds (same load, not counted).
    #[arg(long, default_value_t = 3.0)]
    warmup: f64,
    /// Number of distinct keys, visited round-robin.
    #[arg(long, default_value_t = 100)]
    keys: usize,
    /// Size of each secret value in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Prefix of the key names (under the mount's data/).
    #[arg(long, default_value = "bench")]
    key_prefix: String,
    /// The name of the target in the report.
    #[arg(long, default_value = "target")]
    label: String,
    /// Fail (exit 1) when more than this fraction of requests failed.
    #[arg(long, default_value_t = 0.01)]
    max_error_rate: f64,
    /// Print one JSON object per scenario (JSON Lines) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Read,
    Write,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Read => "read",
            Scenario::Write => "write",
        }
    }
}

impl FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Scenario::Read),
            "write" => Ok(Scenario::Write),
            other => Err(format!("unknown scenario {other:?} (read, write)")),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("secretd-bench: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    // One thread: the load generator is pinned to one core, and a single
    // thread keeps its per-request cost lowest (no cross-thread wake-ups).
    match runtime.block_on(run(&args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("secretd-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> anyhow::Result<()> {
    if args.connections == 0 || args.keys == 0 {
        bail!("--connections and --keys must be at least 1");
    }
    let target = Target::parse(&args.addr, &args.token)?;
    let warmup = seconds(args.warmup, "--warmup")?;
    let duration = seconds(args.duration, "--duration")?;
    if duration.is_zero() {
        bail!("--duration must be more than zero");
    }
    let mut failed = Vec::new();
    for &scenario in &args.scenarios {
        let requests = prepare(args, &target, scenario).await?;
        let phases = Phases::starting_now(warmup, duration);
        let cpu_before = cpu::process_seconds();
        let outcome = load::run(&target, Arc::new(requests), args.connections, phases).await?;
        let client_cpu =
            cpu::share_of_one_core(cpu_before, cpu::process_seconds(), warmup + duration);
        let report = Report::new(
            &RunShape {
                label: &args.label,
                addr: &target.authority,
                scenario: scenario.name(),
                connections: args.connections,
                warmup,
                duration,
                keys: args.keys,
                value_bytes: args.value_size,
                client_cpu,
            },
            &outcome,
        );
        if args.json {
            println!("{}", serde_json::to_string(&report)?);
        } else {
            print!("{}", report.human());
        }
        if report.requests == 0 || report.error_rate > args.max_error_rate {
            failed.push(format!(
                "{}: {} ok, error rate {:.2}% ({:?})",
                scenario.name(),
                report.requests,
                report.error_rate * 100.0,
                report.errors
            ));
        }
    }
    if !failed.is_empty() {
        bail!("too many failed requests: {}", failed.join("; "));
    }
    Ok(())
}

/// The request list of a scenario; seeds the keys a read needs first.
async fn prepare(
    args: &Args,
    target: &Target,
    scenario: Scenario,
) -> anyhow::Result<Vec<RequestSpec>> {
    let path = |i: usize| {
        format!(
            "/v1/{}/data/{}-{}-{i}",
            args.mount,
            args.key_prefix,
            scenario.name()
        )
    };
    let writes: Vec<RequestSpec> = (0..args.keys)
        .map(|i| RequestSpec {
            method: Method::POST,
            path: path(i),
            body: Bytes::from(payload::write_body(&payload::value(
                i as u64,
                args.value_size,
            ))),
        })
        .collect();
    match scenario {
        Scenario::Write => Ok(writes),
        Scenario::Read => {
            load::send_each_once(target, writes, args.connections.min(8))
                .await
                .context("seeding the keys to read")?;
            Ok((0..args.keys)
                .map(|i| RequestSpec {
                    method: Method::GET,
                    path: path(i),
                    body: Bytes::new(),
                })
                .collect())
        }
    }
}

fn seconds(value: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(value).with_context(|| format!("{flag} must be seconds >= 0"))
}
