//! The client-side rate limiter: one async token bucket (GCRA form) shared by every request of a
//! run, so the whole run stays under the credential's limit however many tasks are in flight.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket refilled at `rate` tokens per second holding at most `burst` tokens.
///
/// Implemented as a generic cell rate algorithm: each acquisition reserves the next slot on a
/// shared timeline and sleeps until it, so callers are served in arrival order and never more
/// than `burst` requests go out back to back.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    rate: f64,
    burst: u32,
    /// Theoretical arrival time of the next request.
    next_slot: Mutex<Instant>,
}

impl RateLimiter {
    /// A limiter allowing `rate` requests per second sustained and `burst` back to back.
    ///
    /// `rate` must be positive and finite; `burst` below 1 counts as 1.
    pub fn new(rate: f64, burst: u32) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            1.0
        };
        let burst = burst.max(1);
        let interval = Duration::from_secs_f64(1.0 / rate);
        RateLimiter {
            interval,
            tolerance: interval * (burst - 1),
            rate,
            burst,
            next_slot: Mutex::new(Instant::now()),
        }
    }

    /// The default burst for a sustained rate: a quarter second of requests, 1 to 10.
    pub fn default_burst(rate: f64) -> u32 {
        (rate / 4.0).ceil().clamp(1.0, 10.0) as u32
    }

    /// Sustained requests per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Requests allowed back to back.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// Waits until one more request may go out.
    pub async fn acquire(&self) {
        let wait = self.reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Holds every request back for `pause` (used after Lever answers 429).
    pub fn pause(&self, pause: Duration) {
        let now = Instant::now();
        let mut slot = self.lock();
        let resume = now + pause;
        if *slot < resume {
            *slot = resume;
        }
    }

    /// Reserves the next slot at `now` and returns how long to wait for it.
    fn reserve(&self, now: Instant) -> Duration {
        let mut slot = self.lock();
        let tat = (*slot).max(now);
        let allowed_at = tat.checked_sub(self.tolerance).unwrap_or(now);
        *slot = tat + self.interval;
        allowed_at.saturating_duration_since(now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Instant> {
        // A poisoned lock only means another task panicked mid-update of a plain Instant,
        // which is always a valid value: keep going with it.
        self.next_slot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_steady_spacing() {
        let limiter = RateLimiter::new(10.0, 3);
        let start = Instant::now();
        let waits: Vec<Duration> = (0..6).map(|_| limiter.reserve(start)).collect();
        assert_eq!(waits[0], Duration::ZERO);
        assert_eq!(waits[1], Duration::ZERO);
        assert_eq!(waits[2], Duration::ZERO);
        assert_eq!(waits[3], Duration::from_millis(100));
        assert_eq!(waits[4], Duration::from_millis(200));
        assert_eq!(waits[5], Duration::from_millis(300));
    }

    #[test]
    fn idle_time_refills_only_up_to_burst() {
        let limiter = RateLimiter::new(10.0, 2);
        let start = Instant::now();
        let later = start + Duration::from_secs(10);
        let waits: Vec<Duration> = (0..4).map(|_| limiter.reserve(later)).collect();
        assert_eq!(
            waits,
            vec![
                Duration::ZERO,
                Duration::ZERO,
                Duration::from_millis(100),
                Duration::from_millis(200)
            ]
        );
    }

    #[test]
    fn pause_delays_the_next_slot() {
        let limiter = RateLimiter::new(100.0, 1);
        limiter.pause(Duration::from_millis(500));
        let wait = limiter.reserve(Instant::now());
        assert!(wait > Duration::from_millis(400), "{wait:?}");
    }

    #[tokio::test]
    async fn sustained_rate_is_respected() {
        let limiter = std::sync::Arc::new(RateLimiter::new(200.0, 2));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move { limiter.acquire().await }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        // 40 requests at 200/s with a burst of 2 need at least 38 intervals of 5 ms.
        assert!(start.elapsed() >= Duration::from_millis(185));
    }
}
