//! What the server saw: per-second request counts, 429s, injected faults, webhook deliveries.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;

/// Request counters of `/v1` (control routes are not counted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Every `/v1` request received.
    pub total: u64,
    /// Requests that reached a route handler (any status).
    pub served: u64,
    /// 401 answers.
    pub unauthorized: u64,
    /// 429 answers (empty bucket or forced).
    pub rate_limited: u64,
    /// 500/503 answers injected by the fail rate or forced.
    pub injected_faults: u64,
    /// Requests received per Unix second.
    pub per_second: BTreeMap<u64, u64>,
    /// Arrival time of every request, Unix milliseconds, in order.
    pub request_times_ms: Vec<u64>,
    /// Webhook delivery attempts.
    pub webhook_attempts: u64,
    /// Webhook deliveries answered 2xx.
    pub webhook_delivered: u64,
    /// Webhook deliveries given up after all retries.
    pub webhook_failed: u64,
}

impl Stats {
    /// The most requests received in one calendar second.
    pub fn max_per_second(&self) -> u64 {
        self.per_second.values().copied().max().unwrap_or(0)
    }

    /// The most requests received in any sliding window of `window_ms` milliseconds.
    pub fn max_in_window(&self, window_ms: u64) -> usize {
        let times = &self.request_times_ms;
        let mut best = 0;
        let mut start = 0;
        for end in 0..times.len() {
            while times[end].saturating_sub(times[start]) >= window_ms {
                start += 1;
            }
            best = best.max(end - start + 1);
        }
        best
    }
}

/// How a `/v1` request ended, for the counters.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Unauthorized,
    RateLimited,
    Fault,
    Served,
}

/// Thread-safe counters.
#[derive(Default)]
pub(crate) struct StatsRecorder {
    inner: Mutex<Stats>,
}

impl StatsRecorder {
    fn with<R>(&self, f: impl FnOnce(&mut Stats) -> R) -> R {
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Records one `/v1` request received at `now_ms`.
    pub(crate) fn request(&self, now_ms: u64, outcome: Outcome) {
        self.with(|s| {
            s.total += 1;
            *s.per_second.entry(now_ms / 1000).or_default() += 1;
            s.request_times_ms.push(now_ms);
            match outcome {
                Outcome::Unauthorized => s.unauthorized += 1,
                Outcome::RateLimited => s.rate_limited += 1,
                Outcome::Fault => s.injected_faults += 1,
                Outcome::Served => s.served += 1,
            }
        });
    }

    /// Records a webhook attempt and, when final, its result.
    pub(crate) fn webhook(&self, delivered: bool, final_attempt: bool) {
        self.with(|s| {
            s.webhook_attempts += 1;
            if delivered {
                s.webhook_delivered += 1;
            } else if final_attempt {
                s.webhook_failed += 1;
            }
        });
    }

    /// A copy of the counters.
    pub(crate) fn snapshot(&self) -> Stats {
        self.with(|s| s.clone())
    }

    /// Zeroes every counter.
    pub(crate) fn reset(&self) {
        self.with(|s| *s = Stats::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_and_seconds() {
        let rec = StatsRecorder::default();
        for t in [0, 100, 999, 1000, 1500, 1998, 3000] {
            rec.request(t, Outcome::Served);
        }
        let stats = rec.snapshot();
        assert_eq!(stats.max_per_second(), 3);
        assert_eq!(stats.max_in_window(1000), 4); // 999, 1000, 1500, 1998
        assert_eq!(stats.total, 7);
    }
}
