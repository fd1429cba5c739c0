//! Request rate limits: per client address, per token, and a much
//! stricter one per client address on login paths (against password
//! guessing). Past a limit the answer is 429 with `Retry-After`.
//!
//! Each limit is a token bucket per key (GCRA, the `governor` crate):
//! a sustained rate and a burst. Keys are the client's IP address and a
//! digest of the token (never the token itself). Buckets of keys not seen
//! for a while are dropped now and then, so memory stays bounded by the
//! clients of the last moments.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

/// One limit: requests per second, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

impl Rate {
    /// `None` (no limit) when either number is 0.
    fn quota(self) -> Option<Quota> {
        let per_second = NonZeroU32::new(self.per_second)?;
        let burst = NonZeroU32::new(self.burst)?;
        Some(Quota::per_second(per_second).allow_burst(burst))
    }
}

/// The limits a server applies; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub per_address: Rate,
    pub per_token: Rate,
    pub login_per_address: Rate,
}

impl Default for RateLimitSettings {
    /// Generous for services, strict for logins: 2 logins a second from
    /// one address (20 at once) is plenty for pods and people, and far too
    /// slow to guess a password.
    fn default() -> Self {
        RateLimitSettings {
            per_address: Rate {
                per_second: 5000,
                burst: 10_000,
            },
            per_token: Rate {
                per_second: 2000,
                burst: 4000,
            },
            login_per_address: Rate {
                per_second: 2,
                burst: 20,
            },
        }
    }
}

impl RateLimitSettings {
    /// No limits at all (dev mode, benchmarks).
    pub fn off() -> Self {
        let none = Rate {
            per_second: 0,
            burst: 0,
        };
        RateLimitSettings {
            per_address: none,
            per_token: none,
            login_per_address: none,
        }
    }
}

/// How often (in checks) the buckets of idle keys are dropped.
const RETAIN_EVERY: u64 = 4096;

/// A refused request: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
    /// Which limit: "address", "token" or "login".
    pub which: &'static str,
}

/// One limit keyed by `K`.
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    checks: AtomicU64,
}

impl<K: std::hash::Hash + Eq + Clone> Keyed<K> {
    fn new(rate: Rate) -> Option<Keyed<K>> {
        Some(Keyed {
            limiter: RateLimiter::keyed(rate.quota()?),
            checks: AtomicU64::new(0),
        })
    }

    fn check(&self, key: &K, which: &'static str) -> Result<(), Limited> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % RETAIN_EVERY == RETAIN_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(key).map_err(|not_until| Limited {
            retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            which,
        })
    }
}

/// The limits of one server.
pub struct RateLimits {
    per_address: Option<Keyed<IpAddr>>,
    per_token: Option<Keyed<[u8; 16]>>,
    login_per_address: Option<Keyed<IpAddr>>,
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings) -> RateLimits {
        RateLimits {
            per_address: Keyed::new(settings.per_address),
            per_token: Keyed::new(settings.per_token),
            login_per_address: Keyed::new(settings.login_per_address),
        }
    }

    /// Counts a request from `address` with `token` (if any).
    pub fn check(&self, address: Option<IpAddr>, token: Option<&str>) -> Result<(), Limited> {
        if let (Some(limit), Some(address)) = (&self.per_address, address) {
            limit.check(&address, "address")?;
        }
        if let (Some(limit), Some(token)) = (&self.per_token, token) {
            limit.check(&token_key(token), "token")?;
        }
        Ok(())
    }

    /// Counts a login attempt from `address`.
    pub fn check_login(&self, address: Option<IpAddr>) -> Result<(), Limited> {
        match (&self.login_per_address, address) {
            (Some(limit), Some(address)) => limit.check(&address, "login"),
            _ => Ok(()),
        }
    }
}

/// The bucket key of a token: a digest, so the table holds no tokens.
fn token_key(token: &str) -> [u8; 16] {
    let digest = Sha256::digest(token.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Whole seconds to wait, at least one (what `Retry-After` carries).
pub fn retry_after_seconds(limited: &Limited) -> u64 {
    limited.retry_after.as_secs_f64().ceil().max(1.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(per_address: (u32, u32), per_token: (u32, u32), login: (u32, u32)) -> RateLimits {
        let rate = |(per_second, burst)| Rate { per_second, burst };
        RateLimits::new(RateLimitSettings {
            per_address: rate(per_address),
            per_token: rate(per_token),
            login_per_address: rate(login),
        })
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_per_key() {
        let limits = limits((1, 3), (0, 0), (0, 0));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            limits.check(Some(a), None).unwrap();
        }
        let refused = limits.check(Some(a), None).unwrap_err();
        assert_eq!(refused.which, "address");
        assert!(refused.retry_after <= Duration::from_secs(1));
        assert_eq!(retry_after_seconds(&refused), 1);
        // Another address has its own bucket.
        limits.check(Some(b), None).unwrap();
    }

    #[test]
    fn tokens_are_limited_by_digest_and_logins_separately() {
        let limits = limits((0, 0), (1, 2), (1, 1));
        limits.check(None, Some("s.one")).unwrap();
        limits.check(None, Some("s.one")).unwrap();
        assert_eq!(
            limits.check(None, Some("s.one")).unwrap_err().which,
            "token"
        );
        limits.check(None, Some("s.two")).unwrap();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        limits.check_login(Some(a)).unwrap();
        assert_eq!(limits.check_login(Some(a)).unwrap_err().which, "login");
        // Without an address (a test client) nothing is counted per address.
        limits.check_login(None).unwrap();
        assert_ne!(token_key("s.one"), token_key("s.two"));
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = RateLimits::new(RateLimitSettings::off());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..10_000 {
            limits.check(Some(a), Some("t")).unwrap();
            limits.check_login(Some(a)).unwrap();
        }
    }
}
