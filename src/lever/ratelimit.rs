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
///
/// The rate adapts to what Lever accepts (additive increase, multiplicative decrease): a wave of
/// 429s halves it (another integration may share the credential's budget, or `--rate` was set
/// above Lever's limit), and each second's worth of successes adds back a tenth of the
/// configured rate, never above it.
#[derive(Debug)]
pub struct RateLimiter {
    /// The configured (and highest) sustained rate.
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
    /// The sustained rate in force, at most the configured one.
    rate: f64,
    /// `1 / rate`.
    interval: Duration,
    /// How far ahead of the timeline a burst may go.
    tolerance: Duration,
    /// Successes since the rate last changed.
    successes: u32,
}

impl Timeline {
    fn set_rate(&mut self, rate: f64, burst: u32) {
        self.rate = rate;
        self.interval = Duration::from_secs_f64(1.0 / rate);
        self.tolerance = self.interval * (burst - 1);
        self.successes = 0;
    }
}

/// The adapted rate never falls below this share of the configured one.
const MIN_RATE_SHARE: f64 = 1.0 / 16.0;

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
        let mut timeline = Timeline {
            next_slot: Instant::now(),
            paused_until: None,
            rate,
            interval: Duration::ZERO,
            tolerance: Duration::ZERO,
            successes: 0,
        };
        timeline.set_rate(rate, burst);
        RateLimiter {
            rate,
            burst,
            timeline: Mutex::new(timeline),
        }
    }

    /// The default burst for a sustained rate: a quarter second of requests, 1 to 10.
    pub fn default_burst(rate: f64) -> u32 {
        (rate / 4.0).ceil().clamp(1.0, 10.0) as u32
    }

    /// Sustained requests per second, as configured.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Sustained requests per second in force now (lower than [`RateLimiter::rate`] after 429s).
    pub fn current_rate(&self) -> f64 {
        self.lock().rate
    }

    /// Lever answered 429: halves the rate, once per wave (429s of requests sent before the
    /// pause they caused are the same wave). Call before [`RateLimiter::pause`].
    pub fn throttled(&self) {
        self.throttled_at(Instant::now());
    }

    fn throttled_at(&self, now: Instant) {
        let mut timeline = self.lock();
        if timeline.paused_until.is_some_and(|until| until > now) {
            return;
        }
        let lower = (timeline.rate / 2.0).max(self.rate * MIN_RATE_SHARE);
        timeline.set_rate(lower, self.burst);
    }

    /// A request succeeded: after a second's worth of successes at the rate in force, the rate
    /// climbs back by a tenth of the configured one.
    pub fn succeeded(&self) {
        let mut timeline = self.lock();
        if timeline.rate >= self.rate {
            return;
        }
        timeline.successes += 1;
        if f64::from(timeline.successes) >= timeline.rate {
            let higher = (timeline.rate + self.rate / 10.0).min(self.rate);
            timeline.set_rate(higher, self.burst);
        }
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
        let mut allowed_at = tat.checked_sub(timeline.tolerance).unwrap_or(now);
        if let Some(until) = timeline.paused_until {
            allowed_at = allowed_at.max(until);
        }
        timeline.next_slot = tat + timeline.interval;
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
    fn a_wave_of_429s_halves_the_rate_once_and_successes_restore_it() {
        let limiter = RateLimiter::new(10.0, 1);
        let start = Instant::now();
        limiter.throttled_at(start);
        limiter.pause_at(start, Duration::from_secs(1));
        // The rest of the wave arrives during the pause it caused.
        limiter.throttled_at(start + Duration::from_millis(50));
        assert_eq!(limiter.current_rate(), 5.0);
        let after = start + Duration::from_secs(2);
        limiter.throttled_at(after);
        assert_eq!(limiter.current_rate(), 2.5);
        // Spaced at the lower rate now.
        limiter.reserve(after + Duration::from_secs(5));
        let wait = limiter.reserve(after + Duration::from_secs(5));
        assert_eq!(wait, Duration::from_millis(400));
        for _ in 0..3 {
            limiter.succeeded();
        }
        assert_eq!(limiter.current_rate(), 3.5);
        for _ in 0..200 {
            limiter.succeeded();
        }
        assert_eq!(
            limiter.current_rate(),
            10.0,
            "never above the configured rate"
        );
        assert_eq!(limiter.rate(), 10.0);
        for _ in 0..20 {
            limiter.throttled_at(after + Duration::from_secs(100));
        }
        assert_eq!(limiter.current_rate(), 10.0 / 16.0, "a floor");
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
