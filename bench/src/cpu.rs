//! The load generator's own CPU use, read from `/proc/self/stat` (Linux).

use std::time::Duration;

/// Kernel clock ticks per second for `/proc` times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of this process so far, in seconds; `None`
/// where `/proc` is not there.
pub fn process_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat_seconds(&stat)
}

/// The CPU time spent between two readings as a share of one core over `wall`.
pub fn share_of_one_core(before: Option<f64>, after: Option<f64>, wall: Duration) -> Option<f64> {
    let wall = wall.as_secs_f64();
    match (before, after) {
        (Some(b), Some(a)) if wall > 0.0 => Some((a - b).max(0.0) / wall),
        _ => None,
    }
}

fn parse_stat_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces:
    // count fields after its closing parenthesis. utime and stime are
    // fields 14 and 15, i.e. the 12th and 13th after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_after_the_command_name() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_stat_seconds(stat), Some(3.0));
    }

    #[test]
    fn share_is_cpu_over_wall_time() {
        let share = share_of_one_core(Some(1.0), Some(3.0), Duration::from_secs(4));
        assert_eq!(share, Some(0.5));
        assert_eq!(
            share_of_one_core(None, Some(1.0), Duration::from_secs(1)),
            None
        );
    }
}
