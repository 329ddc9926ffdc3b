//! Lever's rate limit: one token bucket per credential (capacity `burst`, refill `rate`/s).

use std::collections::HashMap;
use std::time::Instant;

use super::auth::Credential;

/// Token buckets of every credential seen so far.
pub(crate) struct RateLimiter {
    rate_per_sec: f64,
    burst: f64,
    buckets: HashMap<Credential, Bucket>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// A limiter where every new credential starts with a full bucket.
    pub(crate) fn new(rate_per_sec: f64, burst: u32) -> Self {
        RateLimiter {
            rate_per_sec: rate_per_sec.max(0.0),
            burst: f64::from(burst.max(1)),
            buckets: HashMap::new(),
        }
    }

    /// Changes rate and capacity; existing buckets keep their tokens (capped).
    pub(crate) fn reconfigure(&mut self, rate_per_sec: Option<f64>, burst: Option<u32>) {
        if let Some(rate) = rate_per_sec {
            self.rate_per_sec = rate.max(0.0);
        }
        if let Some(burst) = burst {
            self.burst = f64::from(burst.max(1));
        }
    }

    /// Takes one token for `who` at `now`; false when the bucket is empty.
    pub(crate) fn try_acquire(&mut self, who: &Credential, now: Instant) -> bool {
        let (rate, burst) = (self.rate_per_sec, self.burst);
        let bucket = self.buckets.entry(who.clone()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn burst_then_refill() {
        let who = Credential::bearer("t");
        let mut limiter = RateLimiter::new(10.0, 20);
        let t0 = Instant::now();
        assert_eq!(
            (0..25).filter(|_| limiter.try_acquire(&who, t0)).count(),
            20
        );
        assert!(!limiter.try_acquire(&who, t0 + Duration::from_millis(50)));
        assert!(limiter.try_acquire(&who, t0 + Duration::from_millis(150)));
        // One second refills ten tokens, never more than the burst.
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(
            (0..30).filter(|_| limiter.try_acquire(&who, t1)).count(),
            20
        );
    }
}
