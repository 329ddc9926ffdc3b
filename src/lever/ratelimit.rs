//! The client-side rate limiter: one async token bucket (GCRA form) shared by every request of a
//! run, so the whole run stays under the credential's limit however many tasks are in flight.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A token bucket refilled at `rate` tokens per second holding at most `burst` tokens.
///
/// Implemented as a generic cell rate algorithm: each acquisition reserves the next slot on a
/// shared timeline and sleeps until it, so callers are served in arrival order and never more
/// than `burst` requests go out back to back. A [`RateLimiter::pause`] holds every request until
/// it ends, including those already asleep on a slot reserved before it.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    tolerance: Duration,
    rate: f64,
    burst: u32,
    timeline: Mutex<Timeline>,
}

#[derive(Debug)]
struct Timeline {
    /// Theoretical arrival time of the next request.
    next_slot: Instant,
    /// No request goes out before this (the end of the latest pause).
    paused_until: Option<Instant>,
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
            timeline: Mutex::new(Timeline {
                next_slot: Instant::now(),
                paused_until: None,
            }),
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

    /// Waits until one more request may go out. A pause that starts while this request sleeps
    /// on its slot holds it too: it then reserves a slot after the pause.
    pub async fn acquire(&self) {
        loop {
            let wait = self.reserve(Instant::now());
            if wait.is_zero() {
                return;
            }
            tokio::time::sleep(wait).await;
            if !self.is_paused(Instant::now()) {
                return;
            }
        }
    }

    /// Holds every request back for `pause` (used after Lever answers 429), those already
    /// waiting for a slot included.
    pub fn pause(&self, pause: Duration) {
        self.pause_at(Instant::now(), pause);
    }

    fn pause_at(&self, now: Instant, pause: Duration) {
        let mut timeline = self.lock();
        let resume = now + pause;
        if timeline.next_slot < resume {
            timeline.next_slot = resume;
        }
        if timeline.paused_until.is_none_or(|until| until < resume) {
            timeline.paused_until = Some(resume);
        }
    }

    /// Whether a pause holds requests at `now`.
    fn is_paused(&self, now: Instant) -> bool {
        self.lock().paused_until.is_some_and(|until| until > now)
    }

    /// Reserves the next slot at `now` and returns how long to wait for it (never less than
    /// what is left of a pause, whatever burst the bucket holds).
    fn reserve(&self, now: Instant) -> Duration {
        let mut timeline = self.lock();
        let tat = timeline.next_slot.max(now);
        let mut allowed_at = tat.checked_sub(self.tolerance).unwrap_or(now);
        if let Some(until) = timeline.paused_until {
            allowed_at = allowed_at.max(until);
        }
        timeline.next_slot = tat + self.interval;
        allowed_at.saturating_duration_since(now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Timeline> {
        // A poisoned lock only means another task panicked mid-update of two plain Instants,
        // which are always valid values: keep going with them.
        self.timeline
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

    #[test]
    fn a_pause_holds_the_whole_burst() {
        let limiter = RateLimiter::new(10.0, 5);
        let start = Instant::now();
        limiter.pause_at(start, Duration::from_secs(2));
        for _ in 0..5 {
            assert!(limiter.reserve(start) >= Duration::from_secs(2));
        }
    }

    #[test]
    fn a_pause_holds_requests_that_reserved_before_it() {
        let limiter = RateLimiter::new(10.0, 1);
        let start = Instant::now();
        assert_eq!(limiter.reserve(start), Duration::ZERO);
        // Reserved for start + 100 ms, then Lever answers 429 with a 1 s pause at + 10 ms.
        assert_eq!(limiter.reserve(start), Duration::from_millis(100));
        limiter.pause_at(start + Duration::from_millis(10), Duration::from_secs(1));
        let woke = start + Duration::from_millis(100);
        assert!(limiter.is_paused(woke));
        assert!(limiter.reserve(woke) >= Duration::from_millis(910));
        assert!(!limiter.is_paused(start + Duration::from_millis(1010)));
    }

    #[tokio::test]
    async fn a_request_already_waiting_waits_out_a_later_pause() {
        let limiter = std::sync::Arc::new(RateLimiter::new(10.0, 1));
        let start = Instant::now();
        limiter.acquire().await;
        // This one reserves the slot at + 100 ms and sleeps on it...
        let queued = {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire().await;
                Instant::now()
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        // ...when a 429 pauses everyone for 400 ms.
        limiter.pause(Duration::from_millis(400));
        let went_at = queued.await.expect("task");
        assert!(
            went_at.duration_since(start) >= Duration::from_millis(420),
            "{:?}",
            went_at.duration_since(start)
        );
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
