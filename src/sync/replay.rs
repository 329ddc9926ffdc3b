//! Replay protection for Lever webhook deliveries. Lever signs only a delivery's random token and
//! its time, not its event or data, so a captured delivery could be sent again, even rewritten
//! (another event, another opportunity) under the same signature. The receiver therefore queues
//! a token once, and nothing triggered longer ago than [`WINDOW_MS`].
//!
//! Invariants:
//! - The tokens of the window are kept in `DATA/webhook-seen`, one JSON line each, so a restart
//!   forgets none of them (a crash may lose the last few: appends are not synced); older ones
//!   are dropped when the file is rewritten (temp file, fsync, rename).
//! - A token is claimed in memory before its notice is written, so copies arriving together
//!   queue once; it is recorded in the file only after its notice is on disk, and given back if
//!   the notice could not be kept, so a delivery Lever retries with the same token is queued.
//! - Lines hold a token and a time: no personal data.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

/// The file of tokens seen, in the data folder.
pub const SEEN_FILE: &str = "webhook-seen";
/// How old a delivery may be and still be queued: Lever's admin pages rerun deliveries of the
/// past two weeks, and a day more allows for clocks and queues.
pub const WINDOW_MS: i64 = 15 * 24 * 3600 * 1000;
/// How far ahead of this machine's clock a delivery may say it was triggered (clock skew);
/// one dated later would stay in the seen-tokens file for good.
pub const MAX_AHEAD_MS: i64 = 24 * 3600 * 1000;

/// The file is looked at for expired tokens no more often than every this many appends.
const MIN_CHECK_LINES: usize = if cfg!(test) { 16 } else { 1024 };

/// The seen-tokens file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("webhook replay record {path}: {source}")]
pub struct Error {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// What to do with a correctly signed delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Never seen and inside the window: queue it.
    Fresh,
    /// Its token was already received: a retry of a delivery that was kept, or a replay.
    Repeat,
    /// Triggered before the window (a replay, or a rerun the nightly sync covers anyway), or
    /// dated more than [`MAX_AHEAD_MS`] ahead of this clock.
    Stale,
}

/// One line of the file.
#[derive(Serialize, Deserialize)]
struct Line {
    at: i64,
    token: String,
}

/// The tokens of the window, loaded on first use.
struct Seen {
    tokens: HashMap<String, i64>,
    /// Lines in the file, expired ones included (decides when to rewrite it).
    lines: usize,
    /// At this many lines, expired tokens are dropped and the file rewritten if mostly expired.
    next_check: usize,
    /// The file's last line was cut short by a crash.
    torn: bool,
}

/// The tokens received in the window, shared by every delivery a server handles.
pub struct ReplayGuard {
    path: PathBuf,
    seen: Mutex<Option<Seen>>,
}

impl std::fmt::Debug for ReplayGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayGuard")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ReplayGuard {
    /// The guard of the data folder `data_dir` (nothing is read until the first delivery).
    pub fn new(data_dir: &Path) -> ReplayGuard {
        ReplayGuard {
            path: data_dir.join(SEEN_FILE),
            seen: Mutex::new(None),
        }
    }

    /// Judges a signed delivery with `token`, triggered at `triggered_at` (ms), at `now` (ms).
    /// A fresh token is claimed at once, so a copy arriving meanwhile is a [`Verdict::Repeat`]:
    /// then [`ReplayGuard::record`] it once its notice is kept, or [`ReplayGuard::release`] it
    /// if the notice could not be kept (Lever will deliver it again).
    pub fn claim(&self, token: &str, triggered_at: i64, now: i64) -> Result<Verdict, Error> {
        if triggered_at < now.saturating_sub(WINDOW_MS)
            || triggered_at > now.saturating_add(MAX_AHEAD_MS)
        {
            return Ok(Verdict::Stale);
        }
        let mut guard = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = self.loaded(&mut guard, now)?;
        if seen.tokens.contains_key(token) {
            return Ok(Verdict::Repeat);
        }
        seen.tokens.insert(token.to_owned(), triggered_at);
        Ok(Verdict::Fresh)
    }

    /// Gives a claimed token back: its notice was not kept.
    pub fn release(&self, token: &str) {
        let mut guard = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(seen) = guard.as_mut() {
            seen.tokens.remove(token);
        }
    }

    /// Records a claimed `token` in the file (call once its notice is kept). The file is
    /// rewritten without expired tokens when they make up most of it.
    pub fn record(&self, token: &str, triggered_at: i64, now: i64) -> Result<(), Error> {
        let mut guard = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let seen = self.loaded(&mut guard, now)?;
        seen.tokens.insert(token.to_owned(), triggered_at);
        let mut line = Vec::new();
        if seen.torn {
            line.push(b'\n');
        }
        serde_json::to_writer(
            &mut line,
            &Line {
                at: triggered_at,
                token: token.to_owned(),
            },
        )
        .map_err(|e| self.error(e.into()))?;
        line.push(b'\n');
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| self.error(e))?;
        // Not synced: a token lost in a crash weakens the protection of one delivery, loses
        // no data, and a second fsync per delivery would halve the intake.
        file.write_all(&line).map_err(|e| self.error(e))?;
        seen.torn = false;
        seen.lines += 1;
        if seen.lines >= seen.next_check {
            // Amortised: the next look comes after as many lines again.
            let horizon = now.saturating_sub(WINDOW_MS);
            seen.tokens.retain(|_, at| *at >= horizon);
            if seen.lines > 2 * seen.tokens.len() {
                self.rewrite(seen)?;
            }
            seen.next_check = (2 * seen.lines).max(MIN_CHECK_LINES);
        }
        Ok(())
    }

    /// The tokens, read from the file on first use (expired ones dropped).
    fn loaded<'a>(&self, slot: &'a mut Option<Seen>, now: i64) -> Result<&'a mut Seen, Error> {
        if slot.is_none() {
            *slot = Some(self.read(now)?);
        }
        // PANICS: filled just above.
        Ok(slot.as_mut().expect("loaded"))
    }

    fn read(&self, now: i64) -> Result<Seen, Error> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(self.error(e)),
        };
        let horizon = now.saturating_sub(WINDOW_MS);
        let mut tokens = HashMap::new();
        let mut lines = 0;
        for raw in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            lines += 1;
            // A torn line (a crash mid-append) is skipped; its token was never answered 2xx.
            if let Ok(line) = serde_json::from_slice::<Line>(raw)
                && line.at >= horizon
            {
                tokens.insert(line.token, line.at);
            }
        }
        let next_check = if lines > 2 * tokens.len() {
            0
        } else {
            (2 * lines).max(MIN_CHECK_LINES)
        };
        Ok(Seen {
            tokens,
            next_check,
            lines,
            torn: bytes.last().is_some_and(|&b| b != b'\n'),
        })
    }

    /// Replaces the file with the tokens in memory.
    fn rewrite(&self, seen: &mut Seen) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(seen.tokens.len() * 72);
        for (token, &at) in &seen.tokens {
            let line = Line {
                at,
                token: token.clone(),
            };
            serde_json::to_writer(&mut bytes, &line).map_err(|e| self.error(e.into()))?;
            bytes.push(b'\n');
        }
        let temp = self.path.with_extension("tmp");
        let written = (|| {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(&bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, &self.path)
        })();
        written.map_err(|e| self.error(e))?;
        seen.lines = seen.tokens.len();
        seen.torn = false;
        Ok(())
    }

    fn error(&self, source: std::io::Error) -> Error {
        Error {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn a_token_is_queued_once_and_old_deliveries_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let guard = ReplayGuard::new(dir.path());
        assert_eq!(guard.claim("a", NOW - 5, NOW).unwrap(), Verdict::Fresh);
        // A copy arriving while the first is being kept is a repeat already.
        assert_eq!(guard.claim("a", NOW - 5, NOW).unwrap(), Verdict::Repeat);
        guard.record("a", NOW - 5, NOW).unwrap();
        assert_eq!(guard.claim("a", NOW - 5, NOW).unwrap(), Verdict::Repeat);
        assert_eq!(guard.claim("b", NOW - 5, NOW).unwrap(), Verdict::Fresh);
        // Not kept: Lever's next attempt with the same token is fresh.
        guard.release("b");
        assert_eq!(guard.claim("b", NOW - 5, NOW).unwrap(), Verdict::Fresh);
        assert_eq!(
            guard.claim("c", NOW - WINDOW_MS - 1, NOW).unwrap(),
            Verdict::Stale
        );
        assert_eq!(
            guard.claim("e", NOW + MAX_AHEAD_MS + 1, NOW).unwrap(),
            Verdict::Stale,
            "dated a year ahead, it would never leave the file"
        );
        assert_eq!(
            guard.claim("f", NOW + MAX_AHEAD_MS, NOW).unwrap(),
            Verdict::Fresh,
            "a clock a little behind Lever's"
        );
        // A restart remembers, and a torn last line is skipped, not glued to the next.
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(SEEN_FILE))
            .unwrap();
        file.write_all(b"{\"at\":1,\"tok").unwrap();
        let again = ReplayGuard::new(dir.path());
        assert_eq!(again.claim("a", NOW - 5, NOW).unwrap(), Verdict::Repeat);
        again.record("d", NOW, NOW).unwrap();
        let third = ReplayGuard::new(dir.path());
        assert_eq!(third.claim("d", NOW, NOW).unwrap(), Verdict::Repeat);
    }

    #[test]
    fn expired_tokens_leave_the_file_when_it_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let guard = ReplayGuard::new(dir.path());
        for i in 0..40 {
            guard.record(&format!("old-{i}"), NOW, NOW).unwrap();
        }
        let later = NOW + WINDOW_MS + 10;
        let guard = ReplayGuard::new(dir.path());
        for i in 0..40 {
            guard.record(&format!("new-{i}"), later, later).unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join(SEEN_FILE)).unwrap();
        assert!(!text.contains("old-"), "expired tokens kept");
        assert!(text.lines().count() <= 40 && text.contains("new-39"));
        assert_eq!(guard.claim("new-5", later, later).unwrap(), Verdict::Repeat);
        // A long-running server drops what expires while it runs, too.
        let much_later = later + WINDOW_MS + 10;
        for i in 0..100 {
            guard
                .record(&format!("last-{i}"), much_later, much_later)
                .unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join(SEEN_FILE)).unwrap();
        assert!(
            !text.contains("new-"),
            "tokens expired in a running server kept"
        );
        assert!(text.contains("last-99"));
    }
}
