//! The server's metrics, served by `GET sys/metrics?format=prometheus`.
//!
//! One [`Metrics`] per [`Core`] holds the registry and every handle.
//! Events on the hot path (a request answered, a login, an audit write
//! that failed) bump atomics inside `prometheus-client`'s families; what
//! is a state rather than an event (seal, pool, leases) is read when a
//! scraper asks. Lease counts come from storage and are kept for
//! [`LEASE_CACHE`], so that scrapes cannot turn into a database load.
//!
//! Labels are bounded by construction: a route is a mount path from the
//! mount table (or `unknown`), a method one of a fixed list, a login's
//! label the auth method's type, a lease's its mount path and role. No
//! request path, token, accessor, lease id or value is ever a label.
//! `docs/metrics.md` lists every series.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::core::{Core, Error};
use crate::storage::{LeaseStats, PoolStats};
use crate::time::now_nanos;

/// How long lease counts read from storage are served before the next
/// scrape reads them again.
pub const LEASE_CACHE: Duration = Duration::from_secs(10);

/// The route label of a request that reached no mount.
pub const UNKNOWN_ROUTE: &str = "unknown";

/// Upper bounds of the request latency buckets, in seconds.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The Content-Type of the Prometheus text exposition format.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MountLabels {
    mount: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LeaseLabels {
    mount: String,
    role: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeviceLabels {
    device: String,
}

type LatencyFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Failed writes of the audit devices, by device path: a handle the audit
/// broker keeps (detached from any registry by default, as in tests).
#[derive(Clone, Debug, Default)]
pub struct AuditFailures(Family<DeviceLabels, Counter>);

impl AuditFailures {
    pub fn record(&self, device: &str) {
        self.0
            .get_or_create(&DeviceLabels {
                device: device.to_owned(),
            })
            .inc();
    }
}

/// The registry and the handles of every series.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: LatencyFamily,
    logins: Family<MethodLabels, Counter>,
    login_failures: Family<MethodLabels, Counter>,
    revocation_failures: Family<MountLabels, Counter>,
    audit_failures: AuditFailures,
    sealed: Gauge,
    initialized: Gauge,
    leases: Family<LeaseLabels, Gauge>,
    irrevocable: Family<LeaseLabels, Gauge>,
    expiry_lag: Gauge<f64, AtomicU64>,
    pool_in_use: Gauge,
    pool_idle: Gauge,
    pool_max: Gauge,
    write_queue: Gauge,
    /// Held for a whole scrape: one reader of storage at a time, and the
    /// lease families are never seen half refilled.
    scrape: tokio::sync::Mutex<Option<(Instant, LeaseStats)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("secretd");
        let requests = Family::default();
        registry.register(
            "http_requests",
            "API requests answered, by route (the mount path, or unknown), method and status code",
            Family::clone(&requests),
        );
        let latency: LatencyFamily =
            Family::new_with_constructor(|| Histogram::new(LATENCY_BUCKETS));
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an API request, by route",
            latency.clone(),
        );
        let logins = Family::default();
        registry.register(
            "logins",
            "Successful logins, by auth method type",
            Family::clone(&logins),
        );
        let login_failures = Family::default();
        registry.register(
            "login_failures",
            "Refused or failed logins, by auth method type (unknown: the mount went away)",
            Family::clone(&login_failures),
        );
        let revocation_failures = Family::default();
        registry.register(
            "lease_revocation_failures",
            "Failed attempts to revoke a lease, by mount path",
            Family::clone(&revocation_failures),
        );
        let audit_failures = AuditFailures::default();
        registry.register(
            "audit_device_failures",
            "Audit entries an audit device could not write, by device path",
            audit_failures.0.clone(),
        );
        let sealed = Gauge::default();
        registry.register(
            "sealed",
            "1 if this node is sealed, 0 if unsealed",
            sealed.clone(),
        );
        let initialized = Gauge::default();
        registry.register(
            "initialized",
            "1 if storage is initialised, else 0",
            initialized.clone(),
        );
        let leases = Family::default();
        registry.register(
            "leases",
            "Leases in storage, by mount path and role (read at most every 10 s)",
            Family::clone(&leases),
        );
        let irrevocable = Family::default();
        registry.register(
            "leases_irrevocable",
            "Leases given up after failed revocations, by mount path and role",
            Family::clone(&irrevocable),
        );
        let expiry_lag = Gauge::default();
        registry.register(
            "lease_expiry_lag_seconds",
            "How long the oldest expired lease not yet revoked (and not irrevocable) is overdue; 0 if none",
            expiry_lag.clone(),
        );
        let pool_in_use = Gauge::default();
        registry.register(
            "storage_connections_in_use",
            "Database connections in use (SQLite: of the read pool)",
            pool_in_use.clone(),
        );
        let pool_idle = Gauge::default();
        registry.register(
            "storage_connections_idle",
            "Database connections open and idle (SQLite: of the read pool)",
            pool_idle.clone(),
        );
        let pool_max = Gauge::default();
        registry.register(
            "storage_connections_max",
            "Most database connections the pool opens (SQLite: of the read pool)",
            pool_max.clone(),
        );
        let write_queue = Gauge::default();
        registry.register(
            "storage_write_queue",
            "Write transactions waiting for SQLite's single writer (always 0 on PostgreSQL)",
            write_queue.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            logins,
            login_failures,
            revocation_failures,
            audit_failures,
            sealed,
            initialized,
            leases,
            irrevocable,
            expiry_lag,
            pool_in_use,
            pool_idle,
            pool_max,
            write_queue,
            scrape: tokio::sync::Mutex::new(None),
        }
    }

    /// Counts an answered API request. `route` is a mount path or
    /// [`UNKNOWN_ROUTE`]; `method` comes from [`method_label`].
    pub fn observe_request(
        &self,
        route: String,
        method: &'static str,
        status: u16,
        took: Duration,
    ) {
        self.latency
            .get_or_create(&RouteLabels {
                route: route.clone(),
            })
            .observe(took.as_secs_f64());
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// Counts a login through an auth method of type `method`.
    pub fn observe_login(&self, method: &str, succeeded: bool) {
        let family = if succeeded {
            &self.logins
        } else {
            &self.login_failures
        };
        family
            .get_or_create(&MethodLabels {
                method: method.to_owned(),
            })
            .inc();
    }

    /// Counts a failed revocation of a lease of the mount at `mount`.
    pub fn observe_revocation_failure(&self, mount: &str) {
        self.revocation_failures
            .get_or_create(&MountLabels {
                mount: mount.to_owned(),
            })
            .inc();
    }

    /// The handle the audit broker counts failed writes with.
    pub fn audit_failures(&self) -> AuditFailures {
        self.audit_failures.clone()
    }

    /// Reads the states (seal, pool, leases) and answers every series in
    /// the Prometheus text format.
    pub async fn render(&self, core: &Core) -> Result<String, Error> {
        let mut cached = self.scrape.lock().await;
        let health = core.health().await?;
        self.sealed.set(i64::from(health.sealed));
        self.initialized.set(i64::from(health.initialized));
        self.set_pool(&core.storage().pool_stats());
        let fresh = cached
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < LEASE_CACHE);
        if !fresh && !health.sealed {
            match core.storage().lease_stats(now_nanos()).await {
                Ok(stats) => {
                    self.set_leases(core, &stats);
                    *cached = Some((Instant::now(), stats));
                }
                // The last counts stay; the other series still help.
                Err(err) => tracing::warn!(error = %err, "cannot count leases for the metrics"),
            }
        }
        let mut text = String::new();
        encode_registry(&mut text, &self.registry)
            .map_err(|_| Error::Internal(anyhow::anyhow!("encoding the metrics failed")))?;
        Ok(to_prometheus_text(&text))
    }

    /// Makes the next scrape read the lease counts again.
    #[cfg(test)]
    pub async fn forget_lease_counts(&self) {
        *self.scrape.lock().await = None;
    }

    fn set_pool(&self, pool: &PoolStats) {
        self.pool_in_use
            .set(i64::from(pool.size.saturating_sub(pool.idle)));
        self.pool_idle.set(i64::from(pool.idle));
        self.pool_max.set(i64::from(pool.max));
        self.write_queue
            .set(i64::try_from(pool.write_queue).unwrap_or(i64::MAX));
    }

    fn set_leases(&self, core: &Core, stats: &LeaseStats) {
        let table = core.mount_table();
        self.leases.clear();
        self.irrevocable.clear();
        for role in &stats.by_role {
            let labels = LeaseLabels {
                mount: table.by_uuid(&role.mount_uuid).map_or_else(
                    || UNKNOWN_ROUTE.to_owned(),
                    |mount| mount.record.path.clone(),
                ),
                role: role.role.clone(),
            };
            // Leases of a mount gone meanwhile add up under `unknown`.
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.leases
                .get_or_create(&labels)
                .inc_by(count(role.leases));
            if role.irrevocable > 0 {
                self.irrevocable
                    .get_or_create(&labels)
                    .inc_by(count(role.irrevocable));
            }
        }
        let lag = stats.oldest_overdue.map_or(0.0, |since| {
            (stats.read_at.saturating_sub(since)) as f64 / 1e9
        });
        self.expiry_lag.set(lag);
    }
}

/// A request method as a label: the methods Vault clients use, `other`
/// for anything else (so a client cannot invent label values).
pub fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "PUT" => "PUT",
        "POST" => "POST",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "LIST" => "LIST",
        "HEAD" => "HEAD",
        _ => "other",
    }
}

/// Turns `prometheus-client`'s OpenMetrics text into the Prometheus text
/// format (0.0.4) that Vault and OpenBao serve: a counter's `HELP` and
/// `TYPE` name its `_total` series, and there is no `# EOF`.
fn to_prometheus_text(openmetrics: &str) -> String {
    let lines: Vec<&str> = openmetrics.lines().collect();
    let mut out = String::with_capacity(openmetrics.len() + 256);
    for (i, line) in lines.iter().enumerate() {
        if *line == "# EOF" {
            continue;
        }
        let counter_name = |line: &str| {
            line.strip_prefix("# TYPE ")
                .and_then(|rest| rest.strip_suffix(" counter"))
                .map(str::to_owned)
        };
        let renamed = if let Some(name) = counter_name(line) {
            Some(format!("# TYPE {name}_total counter"))
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let next_is_counter = lines
                .get(i + 1)
                .and_then(|next| counter_name(next))
                .is_some_and(|n| n == name);
            next_is_counter.then(|| format!("# HELP {name}_total {help}"))
        } else {
            None
        };
        out.push_str(renamed.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(metrics: &Metrics) -> String {
        let mut text = String::new();
        encode_registry(&mut text, &metrics.registry).unwrap();
        to_prometheus_text(&text)
    }

    #[test]
    fn counters_move_and_speak_the_prometheus_text_format() {
        let metrics = Metrics::new();
        metrics.observe_request("secret/".into(), "GET", 200, Duration::from_millis(3));
        metrics.observe_request("secret/".into(), "GET", 200, Duration::from_millis(30));
        metrics.observe_request("unknown".into(), "other", 404, Duration::from_micros(10));
        metrics.observe_login("test-login", false);
        metrics.observe_login("test-login", true);
        metrics.observe_login("test-login", true);
        let out = text(&metrics);
        assert!(
            out.contains("# HELP secretd_http_requests_total API requests answered"),
            "{out}"
        );
        assert!(out.contains("# TYPE secretd_http_requests_total counter"));
        assert!(out.contains(
            r#"secretd_http_requests_total{route="secret/",method="GET",status="200"} 2"#
        ));
        assert!(out.contains(
            r#"secretd_http_requests_total{route="unknown",method="other",status="404"} 1"#
        ));
        assert!(out.contains("# TYPE secretd_http_request_duration_seconds histogram"));
        assert!(out.contains(
            r#"secretd_http_request_duration_seconds_bucket{le="0.005",route="secret/"} 1"#
        ));
        assert!(out.contains(
            r#"secretd_http_request_duration_seconds_bucket{le="0.05",route="secret/"} 2"#
        ));
        assert!(out.contains(r#"secretd_http_request_duration_seconds_count{route="secret/"} 2"#));
        assert!(out.contains(r#"secretd_logins_total{method="test-login"} 2"#));
        assert!(out.contains(r#"secretd_login_failures_total{method="test-login"} 1"#));
        assert!(out.contains("# TYPE secretd_sealed gauge\nsecretd_sealed 0\n"));
        assert!(!out.contains("# EOF"));
        // Every series has its HELP and TYPE, named as the samples are.
        for line in out.lines().filter(|l| l.starts_with("# TYPE ")) {
            let name = line.split(' ').nth(2).unwrap();
            assert!(out.contains(&format!("# HELP {name} ")), "{name}");
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::new();
        metrics.observe_revocation_failure("we\"ird\\mount\n/");
        let out = text(&metrics);
        assert!(
            out.contains(r#"secretd_lease_revocation_failures_total{mount="we\"ird\\mount\n/"} 1"#),
            "{out}"
        );
    }

    #[test]
    fn audit_failures_count_per_device_through_the_brokers_handle() {
        let metrics = Metrics::new();
        let handle = metrics.audit_failures();
        handle.record("file/");
        handle.record("file/");
        assert!(
            text(&metrics).contains(r#"secretd_audit_device_failures_total{device="file/"} 2"#)
        );
    }

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label("LIST"), "LIST");
        assert_eq!(method_label("BREW"), "other");
        assert_eq!(method_label("get"), "other");
    }

    #[test]
    fn only_counters_are_renamed() {
        let om = "# HELP a_b A b.\n# TYPE a_b counter\na_b_total 1\n\
                  # HELP g A gauge.\n# TYPE g gauge\ng 2\n# EOF\n";
        assert_eq!(
            to_prometheus_text(om),
            "# HELP a_b_total A b.\n# TYPE a_b_total counter\na_b_total 1\n\
             # HELP g A gauge.\n# TYPE g gauge\ng 2\n"
        );
    }
}
