//! Work due at a time: a static database role's password rotation, the
//! key rotation of `sys/rotate/config`. A job is a row of `schedules`; the
//! worker of each node claims due rows (one node per run, see `storage`),
//! asks the mount's backend to run each, and records when it is next due,
//! or retries a failure with backoff.

use std::time::Duration;

use super::{Core, Error};
use crate::storage::UnixNanos;
use crate::time::{self as clock, now_nanos};

/// How often the worker looks for due jobs.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long a claim keeps other nodes off a job.
const CLAIM_FOR: u64 = 300;
/// Jobs claimed per pass.
const BATCH: u32 = 50;
/// The first retry's delay, doubled at each failure, capped.
const RETRY_BASE: u64 = 10;
const RETRY_MAX: u64 = 600;

fn retry_delay(attempts: u32) -> u64 {
    (RETRY_BASE << attempts.saturating_sub(1).min(10)).min(RETRY_MAX)
}

impl Core {
    /// Runs the job `name` of the mount with this uuid now, whether due
    /// or not (a rotation asked for by hand), unless another run of it is
    /// in progress. Answers when it is next due.
    pub async fn run_job_now(&self, mount_uuid: &str, name: &str) -> Result<UnixNanos, Error> {
        let now = now_nanos();
        let Some(attempts) = self
            .storage()
            .claim_job(mount_uuid, name, now, clock::add_seconds(now, CLAIM_FOR))
            .await?
        else {
            return Err(Error::invalid(format!(
                "{name} is already running (or is not scheduled); try again shortly"
            )));
        };
        self.run_claimed(mount_uuid, name, attempts).await
    }

    /// Runs every due job, in batches, until none is left; answers how
    /// many ran (successfully or not).
    pub async fn run_due_jobs(&self) -> Result<u64, Error> {
        let mut ran = 0;
        loop {
            let now = now_nanos();
            let jobs = self
                .storage()
                .claim_due_jobs(now, clock::add_seconds(now, CLAIM_FOR), BATCH)
                .await?;
            let full = jobs.len() >= BATCH as usize;
            for job in jobs {
                ran += 1;
                if let Err(err) = self
                    .run_claimed(&job.mount_uuid, &job.name, job.attempts)
                    .await
                {
                    tracing::warn!(job = %job.name, error = %err, "a scheduled job failed; will retry");
                }
            }
            if !full {
                return Ok(ran);
            }
        }
    }

    /// The `sys/` mount's hourly key rotation check (`sys/rotate/config`).
    pub(super) async fn ensure_key_rotation_check(&self) -> Result<(), Error> {
        let table = self.mount_table();
        let Some((sys, _)) = table.route("sys/rotate/config") else {
            return Ok(());
        };
        crate::engines::sys::rotate::ensure_scheduled(self, &sys.record).await
    }

    pub(super) async fn run_schedules(&self) {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.barrier().is_sealed() {
                continue;
            }
            if let Err(err) = self.run_due_jobs().await {
                tracing::warn!(error = %err, "the scheduled jobs pass failed; will retry");
            }
        }
    }

    async fn run_claimed(
        &self,
        mount_uuid: &str,
        name: &str,
        attempts: u32,
    ) -> Result<UnixNanos, Error> {
        let Some(mount) = self.mount_table().by_uuid(mount_uuid) else {
            // The mount went; its jobs with it.
            self.storage().unschedule(mount_uuid, name).await?;
            return Err(Error::UnsupportedPath);
        };
        match mount.backend.run_scheduled(self, &mount.record, name).await {
            Ok(Some(next)) => {
                self.storage().finish_job(mount_uuid, name, next).await?;
                Ok(next)
            }
            Ok(None) => {
                self.storage().unschedule(mount_uuid, name).await?;
                Ok(0)
            }
            Err(err) => {
                let retry_at = clock::add_seconds(now_nanos(), retry_delay(attempts));
                self.storage()
                    .fail_job(mount_uuid, name, retry_at, &err.to_string())
                    .await?;
                Err(err)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_ten_minutes() {
        assert_eq!(retry_delay(1), 10);
        assert_eq!(retry_delay(3), 40);
        assert_eq!(retry_delay(30), 600);
    }
}
