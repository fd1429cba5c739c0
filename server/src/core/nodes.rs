//! The node registry behind `sys/ha-status`: every node writes its own
//! row (a heartbeat) every [`HEARTBEAT`] and deletes it when it shuts
//! down. A node not heard from for [`NODE_EXPIRY`] is gone: it is no
//! longer listed, and the next heartbeat of any node deletes its row (on
//! SQLite, which one process owns, every other row goes at once).
//!
//! secretd has no leader: every unsealed node serves reads and writes.
//! So `sys/leader` answers `ha_enabled: false`, and `sys/ha-status` lists
//! each unsealed node as active.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{Core, Error};
use crate::storage::{NodeRecord, UnixNanos};
use crate::time::now_nanos;

/// How often a node writes its row.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How often a node looks whether it was sealed or unsealed, to say so.
const SEAL_CHECK: Duration = Duration::from_millis(250);
/// A node whose row is older than this is gone (six missed heartbeats).
pub const NODE_EXPIRY: Duration = Duration::from_secs(30);

/// Who this process is, in the registry.
pub(super) struct NodeIdentity {
    /// Random, new at every start: a restarted node is a new node.
    id: String,
    hostname: String,
    /// Set once, when the server knows where it listens.
    api_address: OnceLock<String>,
    started_at: UnixNanos,
}

impl NodeIdentity {
    pub(super) fn new() -> NodeIdentity {
        NodeIdentity {
            id: uuid::Uuid::new_v4().to_string(),
            hostname: hostname(),
            api_address: OnceLock::new(),
            started_at: now_nanos(),
        }
    }
}

/// The machine's name (in Kubernetes, the pod's), or `unknown`.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|name| name.into_string().ok())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A node as `sys/ha-status` shows it to the node answering.
pub struct NodeView {
    pub record: NodeRecord,
    /// The answering node itself.
    pub is_self: bool,
}

impl Core {
    /// Where clients reach this node; set once, before [`Core::start`].
    pub fn set_api_address(&self, address: String) {
        let _ = self.node.api_address.set(address);
    }

    /// This node's row as of `now`.
    fn node_record(&self, now: UnixNanos) -> NodeRecord {
        NodeRecord {
            id: self.node.id.clone(),
            hostname: self.node.hostname.clone(),
            api_address: self.node.api_address.get().cloned().unwrap_or_default(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            sealed: self.barrier.is_sealed(),
            started_at: self.node.started_at,
            last_seen: now,
        }
    }

    /// Writes this node's row every [`HEARTBEAT`] from the start, and
    /// within [`SEAL_CHECK`] of the node being sealed or unsealed.
    pub(super) async fn run_heartbeat(&self) {
        let mut tick = tokio::time::interval(SEAL_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The seal state last written, and when (none: not yet written).
        let mut written: Option<(bool, Instant)> = None;
        let mut failing = false;
        loop {
            tick.tick().await;
            let sealed = self.barrier.is_sealed();
            if let Some((was_sealed, at)) = written
                && was_sealed == sealed
                && at.elapsed() < HEARTBEAT
            {
                continue;
            }
            match self.heartbeat().await {
                Ok(()) => {
                    if failing {
                        tracing::info!("this node's heartbeat is written again");
                    }
                    failing = false;
                    written = Some((sealed, Instant::now()));
                }
                Err(err) => {
                    if !failing {
                        tracing::warn!(error = %err, "cannot write this node's heartbeat; will retry");
                    }
                    failing = true;
                    // Retried after a whole period, not at every check.
                    written = Some((sealed, Instant::now()));
                }
            }
        }
    }

    /// One heartbeat: writes this node's row and deletes the rows of
    /// nodes gone for [`NODE_EXPIRY`]. A SQLite database has one process,
    /// so there every other row is of a process that is gone.
    pub async fn heartbeat(&self) -> Result<(), Error> {
        let now = now_nanos();
        self.storage.put_node(&self.node_record(now)).await?;
        let gone_before = if self.storage.is_shared() {
            expired_before(now)
        } else {
            now
        };
        self.storage.delete_nodes_seen_before(gone_before).await?;
        Ok(())
    }

    /// The nodes heard from within [`NODE_EXPIRY`], this one always among
    /// them, by hostname then API address.
    pub async fn cluster_nodes(&self) -> Result<Vec<NodeView>, Error> {
        let now = now_nanos();
        let mut nodes: Vec<NodeView> = self
            .storage
            .nodes(expired_before(now))
            .await?
            .into_iter()
            .filter(|record| record.id != self.node.id)
            .map(|record| NodeView {
                record,
                is_self: false,
            })
            .collect();
        nodes.push(NodeView {
            record: self.node_record(now),
            is_self: true,
        });
        nodes.sort_by(|a, b| {
            (&a.record.hostname, &a.record.api_address, &a.record.id).cmp(&(
                &b.record.hostname,
                &b.record.api_address,
                &b.record.id,
            ))
        });
        Ok(nodes)
    }

    /// Deletes this node's row, at shutdown (after [`Core::stop`], so no
    /// heartbeat writes it again).
    pub async fn leave_registry(&self) {
        if let Err(err) = self.storage.delete_node(&self.node.id).await {
            tracing::warn!(error = %err, "cannot remove this node from the registry; others will once it expires");
        }
    }
}

/// Rows last seen before this are of nodes that are gone.
fn expired_before(now: UnixNanos) -> UnixNanos {
    now.saturating_sub(i64::try_from(NODE_EXPIRY.as_nanos()).unwrap_or(i64::MAX))
}
