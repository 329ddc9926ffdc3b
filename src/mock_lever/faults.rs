//! Fault injection: a seeded share of 500/503 answers, added latency and forced answers.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

/// A change to fault injection and limits; `None` fields stay as they are.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultUpdate {
    /// Share (0..=1) of `/v1` requests answered 500 or 503.
    pub fail_rate: Option<f64>,
    /// Latency added to each `/v1` request, milliseconds.
    pub latency_ms: Option<u64>,
    /// Rate-limit refill per credential, requests per second.
    pub rate_per_sec: Option<f64>,
    /// Rate-limit capacity per credential.
    pub burst: Option<u32>,
    /// `Retry-After` seconds on 429 answers (0 removes the header).
    pub retry_after_secs: Option<u64>,
    /// Status to force (429, 500 or 503) on the next `force_count` `/v1` requests.
    pub force_status: Option<u16>,
    /// How many requests get `force_status`.
    pub force_count: Option<u32>,
}

/// What the fault dice decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve normally.
    Pass,
    /// Answer with this status instead.
    Fail(u16),
}

/// Current fault settings and the dice.
pub(crate) struct Faults {
    rng: ChaCha8Rng,
    pub(crate) fail_rate: f64,
    pub(crate) latency_ms: u64,
    pub(crate) retry_after_secs: Option<u64>,
    forced: Option<(u16, u32)>,
}

impl Faults {
    /// Faults with the configured rate and seed.
    pub(crate) fn new(
        fail_rate: f64,
        latency_ms: u64,
        seed: u64,
        retry_after_secs: Option<u64>,
    ) -> Self {
        Faults {
            rng: ChaCha8Rng::seed_from_u64(seed),
            fail_rate: fail_rate.clamp(0.0, 1.0),
            latency_ms,
            retry_after_secs,
            forced: None,
        }
    }

    /// Applies an update (rate fields are handled by the rate limiter).
    pub(crate) fn update(&mut self, update: &FaultUpdate) {
        if let Some(rate) = update.fail_rate {
            self.fail_rate = rate.clamp(0.0, 1.0);
        }
        if let Some(latency) = update.latency_ms {
            self.latency_ms = latency;
        }
        if let Some(secs) = update.retry_after_secs {
            self.retry_after_secs = (secs > 0).then_some(secs);
        }
        if let Some(status) = update.force_status {
            let status = if matches!(status, 429 | 500 | 503) {
                status
            } else {
                503
            };
            self.forced = Some((status, update.force_count.unwrap_or(1)));
        }
    }

    /// A forced answer, if any are left (checked before the rate limiter).
    pub(crate) fn take_forced(&mut self) -> Option<u16> {
        let (status, left) = self.forced?;
        self.forced = (left > 1).then_some((status, left - 1));
        (left > 0).then_some(status)
    }

    /// Rolls the fail-rate dice.
    pub(crate) fn roll(&mut self) -> Verdict {
        if self.fail_rate > 0.0 && self.rng.gen_bool(self.fail_rate) {
            Verdict::Fail(if self.rng.gen_bool(0.5) { 500 } else { 503 })
        } else {
            Verdict::Pass
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_answers_run_out_and_dice_are_seeded() {
        let mut faults = Faults::new(0.3, 0, 9, None);
        faults.update(&FaultUpdate {
            force_status: Some(429),
            force_count: Some(2),
            ..Default::default()
        });
        assert_eq!(faults.take_forced(), Some(429));
        assert_eq!(faults.take_forced(), Some(429));
        assert_eq!(faults.take_forced(), None);
        let a: Vec<_> = (0..200).map(|_| faults.roll()).collect();
        let mut again = Faults::new(0.3, 0, 9, None);
        let b: Vec<_> = (0..200).map(|_| again.roll()).collect();
        assert_eq!(a, b);
        let failed = a.iter().filter(|v| **v != Verdict::Pass).count();
        assert!((30..90).contains(&failed), "{failed}");
    }
}
