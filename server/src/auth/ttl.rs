//! How long a token (or later, a lease) lives: Vault's TTL rules.
//!
//! - The effective maximum is the smallest of the mount's max (768h by
//!   default), the backend's or role's max, and the token's explicit max;
//!   it counts from the token's creation.
//! - A new TTL is the increment asked for, counted from now (not added to
//!   what is left), else the backend's TTL, else the mount's default.
//! - Past the maximum the TTL is capped, with Vault's warning.
//! - A periodic token's TTL is its period every time; only an explicit max
//!   limits it.

use secretd_client::duration::format_duration;

use crate::storage::UnixNanos;
use crate::time;

/// Everything the calculation depends on; all durations in seconds, 0 for
/// "not set".
#[derive(Debug, Clone, Copy, Default)]
pub struct TtlRules {
    pub increment: u64,
    pub period: u64,
    pub backend_ttl: u64,
    pub backend_max_ttl: u64,
    pub explicit_max_ttl: u64,
    pub mount_default_ttl: u64,
    pub mount_max_ttl: u64,
    /// When the token was created (the maximum counts from here).
    pub start: UnixNanos,
    pub now: UnixNanos,
}

/// A TTL and the warnings that came with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ttl {
    pub seconds: u64,
    pub warnings: Vec<String>,
}

/// The TTL the rules give, or Vault's error when the maximum has passed.
pub fn calculate(rules: &TtlRules) -> Result<Ttl, String> {
    let mut max = rules.mount_max_ttl;
    for limit in [rules.backend_max_ttl, rules.explicit_max_ttl] {
        if limit > 0 && limit < max {
            max = limit;
        }
    }
    if max == 0 {
        return Err("max TTL must be greater than zero".to_owned());
    }
    let mut warnings = Vec::new();
    let (mut ttl, limit) = if rules.period > 0 {
        let mut period = rules.period;
        if period > max {
            warnings.push(format!(
                "period of {:?} exceeded the effective max_ttl of {:?}; period value is capped accordingly",
                human_duration(period),
                human_duration(max)
            ));
            period = max;
        }
        let limit = (rules.explicit_max_ttl > 0).then_some(rules.explicit_max_ttl);
        (period, limit)
    } else {
        let ttl = [rules.increment, rules.backend_ttl, rules.mount_default_ttl]
            .into_iter()
            .find(|&t| t > 0)
            .unwrap_or(max);
        (ttl, Some(max))
    };
    if let Some(limit) = limit {
        let deadline = time::add_seconds(rules.start, limit);
        let left = time::seconds_between(rules.now, deadline);
        if deadline <= rules.now || left == 0 {
            return Err("past the max TTL, cannot renew".to_owned());
        }
        if left < ttl {
            warnings.push(format!(
                "TTL of {:?} exceeded the effective max_ttl of {:?}; TTL value is capped accordingly",
                human_duration(ttl),
                human_duration(left)
            ));
            ttl = left;
        }
    }
    Ok(Ttl {
        seconds: ttl,
        warnings,
    })
}

/// Go's duration string without trailing zero units, as Vault prints TTLs
/// in warnings: `1h`, `30m`, `1h59m59s`, `768h`.
pub fn human_duration(secs: u64) -> String {
    let mut s = format_duration(secs);
    if s.ends_with("m0s") {
        s.truncate(s.len() - 2);
    }
    if s.ends_with("h0m") {
        s.truncate(s.len() - 2);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: u64 = 3600;
    const NOW: UnixNanos = 1_000_000 * 1_000_000_000;

    fn rules() -> TtlRules {
        TtlRules {
            mount_default_ttl: 768 * HOUR,
            mount_max_ttl: 768 * HOUR,
            start: NOW,
            now: NOW,
            ..TtlRules::default()
        }
    }

    fn ago(secs: u64) -> UnixNanos {
        NOW - (secs as i64) * 1_000_000_000
    }

    #[test]
    fn the_increment_counts_from_now() {
        let r = TtlRules {
            increment: HOUR,
            start: ago(HOUR / 2),
            ..rules()
        };
        assert_eq!(calculate(&r).unwrap().seconds, HOUR);
    }

    #[test]
    fn fallbacks_are_backend_then_mount_default() {
        assert_eq!(
            calculate(&TtlRules {
                backend_ttl: 60,
                ..rules()
            })
            .unwrap()
            .seconds,
            60
        );
        assert_eq!(calculate(&rules()).unwrap().seconds, 768 * HOUR);
    }

    #[test]
    fn explicit_max_caps_with_vaults_warning() {
        let r = TtlRules {
            increment: HOUR,
            explicit_max_ttl: HOUR / 2,
            ..rules()
        };
        let ttl = calculate(&r).unwrap();
        assert_eq!(ttl.seconds, 1800);
        assert_eq!(
            ttl.warnings,
            vec![
                r#"TTL of "1h" exceeded the effective max_ttl of "30m"; TTL value is capped accordingly"#
            ]
        );
    }

    #[test]
    fn the_max_counts_from_creation() {
        // Created an hour and a second ago with a two-hour max: 59m59s left.
        let r = TtlRules {
            increment: 3 * HOUR,
            explicit_max_ttl: 2 * HOUR,
            start: ago(HOUR + 1),
            ..rules()
        };
        let ttl = calculate(&r).unwrap();
        assert_eq!(ttl.seconds, HOUR - 1);
        assert!(ttl.warnings[0].contains(r#"max_ttl of "59m59s""#));
        let past = TtlRules {
            increment: HOUR,
            explicit_max_ttl: HOUR,
            start: ago(2 * HOUR),
            ..rules()
        };
        assert_eq!(
            calculate(&past).unwrap_err(),
            "past the max TTL, cannot renew"
        );
    }

    #[test]
    fn the_smallest_max_wins() {
        let r = TtlRules {
            increment: 1000 * HOUR,
            ..rules()
        };
        let ttl = calculate(&r).unwrap();
        assert_eq!(ttl.seconds, 768 * HOUR);
        assert!(
            ttl.warnings[0].contains(r#"TTL of "1000h" exceeded the effective max_ttl of "768h""#)
        );
        let r = TtlRules {
            increment: 5 * HOUR,
            backend_max_ttl: 2 * HOUR,
            explicit_max_ttl: 3 * HOUR,
            ..rules()
        };
        assert_eq!(calculate(&r).unwrap().seconds, 2 * HOUR);
        let r = TtlRules {
            increment: 5 * HOUR,
            mount_max_ttl: HOUR,
            ..rules()
        };
        assert_eq!(calculate(&r).unwrap().seconds, HOUR);
    }

    #[test]
    fn periodic_tokens_get_their_period_each_time() {
        let r = TtlRules {
            period: HOUR,
            increment: 5 * HOUR,
            start: ago(1000 * HOUR),
            ..rules()
        };
        let ttl = calculate(&r).unwrap();
        assert_eq!(
            (ttl.seconds, ttl.warnings.len()),
            (HOUR, 0),
            "no system max for a periodic token"
        );
        let capped = TtlRules {
            period: HOUR,
            explicit_max_ttl: 2 * HOUR,
            start: ago(HOUR + 1800),
            ..rules()
        };
        assert_eq!(calculate(&capped).unwrap().seconds, 1800);
        let big = TtlRules {
            period: 1000 * HOUR,
            ..rules()
        };
        let ttl = calculate(&big).unwrap();
        assert_eq!(ttl.seconds, 768 * HOUR);
        assert!(ttl.warnings[0].starts_with("period of"));
    }

    #[test]
    fn human_durations_drop_zero_units() {
        assert_eq!(human_duration(3600), "1h");
        assert_eq!(human_duration(1800), "30m");
        assert_eq!(human_duration(7199), "1h59m59s");
        assert_eq!(human_duration(3660), "1h1m");
        assert_eq!(human_duration(0), "0s");
    }
}
