//! A scenario's results, for people and for scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::load::Outcome;

/// What one scenario against one target measured.
#[derive(Debug, Serialize)]
pub struct Report {
    pub label: String,
    pub addr: String,
    pub scenario: String,
    pub connections: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub keys: usize,
    pub value_bytes: usize,
    /// Successful (2xx) requests in the timed window.
    pub requests: u64,
    /// Successful requests per second.
    pub rps: f64,
    pub latency_us: Latency,
    pub errors: BTreeMap<String, u64>,
    pub error_rate: f64,
    pub mean_response_bytes: u64,
    pub reconnects: u64,
    /// The load generator's CPU time over the run, as a share of one core
    /// (near 1.0 means the client, not the server, may be the limit).
    pub client_cpu: Option<f64>,
}

/// Latency of the successful requests, in microseconds.
#[derive(Debug, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// How the scenario was run, for the report.
pub struct RunShape<'a> {
    pub label: &'a str,
    pub addr: &'a str,
    pub scenario: &'a str,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub keys: usize,
    pub value_bytes: usize,
    pub client_cpu: Option<f64>,
}

impl Report {
    pub fn new(shape: &RunShape<'_>, outcome: &Outcome) -> Self {
        let h = &outcome.latency_us;
        let errors = outcome.error_count();
        let attempted = outcome.ok + errors;
        Report {
            label: shape.label.to_owned(),
            addr: shape.addr.to_owned(),
            scenario: shape.scenario.to_owned(),
            connections: shape.connections,
            warmup_s: shape.warmup.as_secs_f64(),
            duration_s: shape.duration.as_secs_f64(),
            keys: shape.keys,
            value_bytes: shape.value_bytes,
            requests: outcome.ok,
            rps: outcome.ok as f64 / shape.duration.as_secs_f64(),
            latency_us: Latency {
                mean: h.mean(),
                p50: h.value_at_quantile(0.50),
                p90: h.value_at_quantile(0.90),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
            },
            errors: outcome.errors.clone(),
            error_rate: if attempted == 0 {
                0.0
            } else {
                errors as f64 / attempted as f64
            },
            mean_response_bytes: outcome
                .response_bytes
                .checked_div(outcome.ok)
                .unwrap_or_default(),
            reconnects: outcome.reconnects,
            client_cpu: shape.client_cpu,
        }
    }

    /// A few lines for a person at a terminal.
    pub fn human(&self) -> String {
        let l = &self.latency_us;
        let mut out = format!(
            "{} {} ({}): {} connections, {:.1} s after {:.1} s warm-up, {} keys, {}-byte values\n",
            self.label,
            self.scenario,
            self.addr,
            self.connections,
            self.duration_s,
            self.warmup_s,
            self.keys,
            self.value_bytes
        );
        let _ = writeln!(
            out,
            "  throughput  {:.0} req/s ({} ok, {} bytes per answer)",
            self.rps, self.requests, self.mean_response_bytes
        );
        let _ = writeln!(
            out,
            "  latency     p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  (mean {})",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max),
            ms(l.mean as u64)
        );
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(kind, n)| format!("{kind}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            out,
            "  errors      {errors}; reconnects {}",
            self.reconnects
        );
        if let Some(cpu) = self.client_cpu {
            let _ = writeln!(
                out,
                "  client CPU  {:.0}% of one core{}",
                cpu * 100.0,
                if cpu > 0.9 {
                    " (the load generator may be the limit)"
                } else {
                    ""
                }
            );
        }
        out
    }
}

/// Microseconds as milliseconds with three decimals.
fn ms(us: u64) -> String {
    format!("{:.3} ms", us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn milliseconds_keep_microsecond_precision() {
        assert_eq!(ms(1234), "1.234 ms");
        assert_eq!(ms(7), "0.007 ms");
    }
}
