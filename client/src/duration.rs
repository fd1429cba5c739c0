//! Durations as Vault writes and reads them.
//!
//! Vault accepts a duration as an integer number of seconds or as a Go
//! duration string (`"90s"`, `"1h30m"`, `"1.5h"`), and prints durations in
//! Go's `time.Duration.String()` form (`"0s"`, `"3h25m19s"`, `"768h0m0s"`).
//! No maintained crate speaks exactly Go's format, so the two small
//! functions below do, with property tests beside them.

use std::fmt;

/// Why a duration string was refused. The message names the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError(String);

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DurationError {}

/// The largest duration we accept: 100 years, far beyond any TTL a
/// server would honour and well inside `i64` seconds.
pub const MAX_SECONDS: u64 = 100 * 365 * 24 * 3600;

/// Parses a Go duration or a plain number of seconds into whole seconds.
///
/// Fractions below one second are truncated, as Vault does when it turns a
/// duration into a TTL. Negative durations are refused.
pub fn parse_duration(input: &str) -> Result<u64, DurationError> {
    let s = input.trim();
    let bad = || DurationError(format!("invalid duration {input:?}"));
    if s.is_empty() {
        return Err(bad());
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = s.parse().map_err(|_| bad())?;
        return check_max(secs as f64, input);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest == "0" {
        return Ok(0);
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if num_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .bytes()
            .take_while(|b| !(b.is_ascii_digit() || *b == b'.'))
            .count();
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86400e9,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total_nanos += number * nanos_per_unit;
    }
    check_max(total_nanos / 1e9, input)
}

fn check_max(secs: f64, input: &str) -> Result<u64, DurationError> {
    if !secs.is_finite() || secs > MAX_SECONDS as f64 {
        return Err(DurationError(format!(
            "duration {input:?} is longer than the maximum of {}",
            format_duration(MAX_SECONDS)
        )));
    }
    Ok(secs as u64)
}

/// Formats whole seconds the way Go's `time.Duration.String()` does.
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".to_owned();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_go_forms_and_plain_seconds() {
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("0s"), Ok(0));
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("1.5h"), Ok(5400));
        assert_eq!(parse_duration("768h0m0s"), Ok(768 * 3600));
        assert_eq!(parse_duration("1500ms"), Ok(1));
        assert_eq!(parse_duration("2d"), Ok(172_800));
    }

    #[test]
    fn refuses_garbage_and_overflow() {
        for bad in [
            "",
            "h",
            "1x",
            "-1s",
            "1h-2m",
            "..s",
            "1e9h",
            "99999999999999999999",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(59), "59s");
        assert_eq!(format_duration(60), "1m0s");
        assert_eq!(format_duration(12319), "3h25m19s");
        assert_eq!(format_duration(768 * 3600), "768h0m0s");
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(secs in 0u64..MAX_SECONDS) {
            prop_assert_eq!(parse_duration(&format_duration(secs)), Ok(secs));
        }

        #[test]
        fn never_panics_on_any_input(s in "\\PC{0,40}") {
            let _ = parse_duration(&s);
        }
    }
}
