//! Wall-clock time in the two forms the server uses: Unix nanoseconds in
//! storage, RFC 3339 with nanoseconds on the wire (as Vault prints them);
//! and a throttle for log lines that would otherwise repeat per request.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, SecondsFormat, Utc};

use crate::storage::UnixNanos;

/// Now, in Unix nanoseconds.
pub fn now_nanos() -> UnixNanos {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// `2018-03-22T02:24:06.945319214Z`; trailing zeros of the fraction are
/// dropped, as Go's `RFC3339Nano` does.
pub fn rfc3339(nanos: UnixNanos) -> String {
    let t: DateTime<Utc> = DateTime::from_timestamp_nanos(nanos);
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Whole seconds from `from` until `to`, never negative.
pub fn seconds_between(from: UnixNanos, to: UnixNanos) -> u64 {
    u64::try_from(to.saturating_sub(from) / 1_000_000_000).unwrap_or(0)
}

/// `secs` seconds after `at`, saturating.
pub fn add_seconds(at: UnixNanos, secs: u64) -> UnixNanos {
    at.saturating_add(
        i64::try_from(secs)
            .unwrap_or(i64::MAX)
            .saturating_mul(1_000_000_000),
    )
}

/// Lets one event (a log line) through per period and counts the rest.
pub struct Throttle {
    period_secs: u64,
    /// When the last event went through, in seconds since the Unix epoch.
    last: AtomicU64,
    held_back: AtomicU64,
}

impl Throttle {
    pub const fn new(period_secs: u64) -> Throttle {
        Throttle {
            period_secs,
            last: AtomicU64::new(0),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(events held back since the last one)` when this one may go
    /// through.
    pub fn admit(&self) -> Option<u64> {
        let now = u64::try_from(now_nanos() / 1_000_000_000).unwrap_or(0);
        let last = self.last.load(Ordering::Relaxed);
        if now >= last.saturating_add(self.period_secs)
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held_back.swap(0, Ordering::Relaxed));
        }
        self.held_back.fetch_add(1, Ordering::Relaxed);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_throttle_lets_one_through_per_period_then_counts_the_rest() {
        let throttle = Throttle::new(5);
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        // As if the period had passed.
        throttle.last.store(0, Ordering::Relaxed);
        assert_eq!(throttle.admit(), Some(2));
    }

    #[test]
    fn formats_like_go_rfc3339_nano() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(1_521_685_446_945_319_214),
            "2018-03-22T02:24:06.945319214Z"
        );
        assert_eq!(
            rfc3339(1_521_685_446_500_000_000),
            "2018-03-22T02:24:06.500Z"
        );
    }

    #[test]
    fn seconds_arithmetic_saturates() {
        assert_eq!(seconds_between(10_000_000_000, 5), 0);
        assert_eq!(seconds_between(0, 3_500_000_000), 3);
        assert_eq!(add_seconds(0, 2), 2_000_000_000);
        assert_eq!(add_seconds(i64::MAX - 1, 10), i64::MAX);
    }
}
