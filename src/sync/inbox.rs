//! The webhook inbox: Lever's "something changed on opportunity X" notices, kept in the data
//! folder until a sync run has acted on them (re-fetched the opportunity, or purged it on 404).
//! A sync also leaves its own notices here for the opportunities it could not bring up to date,
//! so the next run fetches them by id ([`RETRY_EVENT`]).
//!
//! Invariants:
//! - A notice is appended and flushed to disk before the receiver answers 2xx, so Lever
//!   redelivers anything that was not kept; the folder is synced too when that creates the
//!   file, and after each rewrite's rename, so a crash neither loses the file nor brings back
//!   notices already removed.
//! - Appends and [`Inbox::consume`] hold the same file lock, and a run removes only the lines it
//!   read, found by their content (not their place in the file, which another run's consume may
//!   have rewritten meanwhile), so a notice that arrives while a sync runs waits for the next run.
//! - Lines hold an event name, an opportunity id and a time: no personal data.
//! - A torn last line (a crash mid-append) is skipped, never glued to the next notice.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The inbox file in the data folder: one JSON [`Notice`] per line.
pub const INBOX_FILE: &str = "webhook-inbox.jsonl";
/// The lock taken around every append and consume.
const LOCK_FILE: &str = "webhook-inbox.lock";
/// The signature tokens deliveries are checked against, one per line, in the data folder.
pub const TOKENS_FILE: &str = "webhook-tokens";
/// The event Lever sends when a candidate is deleted.
pub const DELETED_EVENT: &str = "candidateDeleted";
/// Our own event: a sync could not bring this opportunity up to date (an error, an unreadable
/// record), so the next run fetches it by id while the incremental window moves on.
pub const RETRY_EVENT: &str = "rediscoverRetry";

/// An inbox file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("webhook inbox {path}: {source}")]
pub struct Error {
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

/// One webhook delivery worth a sync's attention.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    /// Lever's event name, e.g. `candidateStageChange`.
    pub event: String,
    /// The opportunity concerned.
    pub opportunity_id: String,
    /// When Lever triggered the event (ms), if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggered_at: Option<i64>,
}

impl Notice {
    /// Whether Lever says the candidate was deleted.
    pub fn is_deletion(&self) -> bool {
        self.event == DELETED_EVENT
    }
}

/// What [`Inbox::read`] found: the notices, and the unreadable lines [`Inbox::consume`] drops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pending {
    /// The readable notices, in arrival order.
    pub notices: Vec<Notice>,
    /// Lines that could not be read (dropped at the next consume).
    pub unreadable: usize,
    /// The unreadable lines themselves, so a consume removes exactly those.
    unreadable_lines: Vec<Vec<u8>>,
}

impl Pending {
    /// The distinct opportunity ids, in first-arrival order.
    pub fn opportunity_ids(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.notices
            .iter()
            .filter(|n| seen.insert(n.opportunity_id.as_str()))
            .map(|n| n.opportunity_id.clone())
            .collect()
    }

    /// The ids Lever reported deleted.
    pub fn deleted_ids(&self) -> HashSet<String> {
        self.notices
            .iter()
            .filter(|n| n.is_deletion())
            .map(|n| n.opportunity_id.clone())
            .collect()
    }
}

/// The inbox of one data folder.
#[derive(Debug, Clone)]
pub struct Inbox {
    path: PathBuf,
    lock_path: PathBuf,
}

impl Inbox {
    /// The inbox in `data_dir` (nothing is created until the first append).
    pub fn new(data_dir: &Path) -> Inbox {
        Inbox {
            path: data_dir.join(INBOX_FILE),
            lock_path: data_dir.join(LOCK_FILE),
        }
    }

    /// Appends one notice durably (written and synced before this returns).
    pub fn append(&self, notice: &Notice) -> Result<(), Error> {
        let mut line = serde_json::to_vec(notice).map_err(|e| self.error(e.into()))?;
        line.push(b'\n');
        let _lock = self.lock()?;
        let mut options = OpenOptions::new();
        options.read(true).append(true);
        let (mut file, created) = match options.clone().create_new(true).open(&self.path) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                (options.open(&self.path).map_err(|e| self.error(e))?, false)
            }
            Err(e) => return Err(self.error(e)),
        };
        if !ends_with_newline(&mut file).map_err(|e| self.error(e))? {
            // A crash tore the last line: end it, so this notice starts a line of its own.
            line.insert(0, b'\n');
        }
        file.write_all(&line).map_err(|e| self.error(e))?;
        file.sync_data().map_err(|e| self.error(e))?;
        if created {
            // The new file's name must survive a crash too.
            self.sync_folder()?;
        }
        Ok(())
    }

    /// Every whole line now in the inbox (empty when there is no inbox).
    pub fn read(&self) -> Result<Pending, Error> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Pending::default()),
            Err(e) => return Err(self.error(e)),
        };
        let (whole, _torn) = whole_lines(&bytes);
        let mut pending = Pending::default();
        for line in whole.split(|&b| b == b'\n') {
            match parse_line(line) {
                Line::Blank => {}
                Line::Notice(notice) => pending.notices.push(notice),
                Line::Unreadable(line) => {
                    pending.unreadable += 1;
                    pending.unreadable_lines.push(line.to_vec());
                }
            }
        }
        Ok(pending)
    }

    /// Removes what `read` returned, except the notices `keep` holds on to; whatever arrived
    /// after the read stays.
    ///
    /// Lines are found by content, not by position: another run may have consumed (and so
    /// rewritten) the file since `read`, and a notice appended after that must survive. A
    /// notice is its event, opportunity id and time, so removing every copy of one that was
    /// acted on removes only redeliveries of what this run already handled.
    pub fn consume(&self, read: &Pending, keep: impl Fn(&Notice) -> bool) -> Result<(), Error> {
        let done: HashSet<&Notice> = read.notices.iter().filter(|n| !keep(n)).collect();
        let unreadable: HashSet<&[u8]> = read
            .unreadable_lines
            .iter()
            .map(|l| l.trim_ascii())
            .collect();
        if done.is_empty() && unreadable.is_empty() {
            return Ok(());
        }
        let _lock = self.lock()?;
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.error(e)),
        };
        let (whole, torn) = whole_lines(&bytes);
        let mut kept = Vec::with_capacity(bytes.len());
        let mut removed = false;
        for line in whole.split_inclusive(|&b| b == b'\n') {
            match parse_line(line) {
                Line::Blank => {}
                Line::Notice(notice) if done.contains(&notice) => removed = true,
                Line::Unreadable(text) if unreadable.contains(text) => removed = true,
                Line::Notice(_) | Line::Unreadable(_) => kept.extend_from_slice(line),
            }
        }
        if !removed {
            return Ok(());
        }
        // A torn last line (a crash mid-append) stays last; the next append ends it.
        kept.extend_from_slice(torn);
        let temporary = self.path.with_extension("jsonl.tmp");
        std::fs::write(&temporary, &kept)
            .and_then(|()| File::open(&temporary)?.sync_all())
            .and_then(|()| std::fs::rename(&temporary, &self.path))
            .map_err(|e| self.error(e))?;
        // Without this, a crash could bring back the old file, and with it notices acted on.
        self.sync_folder()
    }

    /// The inbox file's length and modification time, to notice changes cheaply; `None` when
    /// there is no inbox.
    pub fn stamp(&self) -> Option<(u64, SystemTime)> {
        let meta = std::fs::metadata(&self.path).ok()?;
        Some((meta.len(), meta.modified().ok()?))
    }

    fn lock(&self) -> Result<File, Error> {
        if let Some(dir) = self.lock_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .map_err(|e| self.error(e))?;
        // Released when the file is dropped.
        file.lock().map_err(|e| self.error(e))?;
        Ok(file)
    }

    /// fsyncs the data folder, so a file created or renamed in it stays after a crash.
    fn sync_folder(&self) -> Result<(), Error> {
        let dir = match self.path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| Error {
                path: dir.to_path_buf(),
                source,
            })?;
        #[cfg(test)]
        tests::FOLDER_SYNCS.with(|n| n.set(n.get() + 1));
        Ok(())
    }

    fn error(&self, source: std::io::Error) -> Error {
        Error {
            path: self.path.clone(),
            source,
        }
    }
}

/// The webhook signature tokens in `data_dir/webhook-tokens` (blank lines and `#` comments
/// skipped); `None` when the file does not exist, which means webhooks are not set up.
pub fn signature_tokens(data_dir: &Path) -> Result<Option<Vec<String>>, Error> {
    let path = data_dir.join(TOKENS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned)
                .collect(),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error { path, source }),
    }
}

/// Whether `data_dir/webhook-tokens` holds a token under a `#` comment naming webhook
/// `webhook_id`, as [`save_signature_token`] writes it (`# <event> webhook <id>`).
pub fn has_token_for_webhook(data_dir: &Path, webhook_id: &str) -> Result<bool, Error> {
    let path = data_dir.join(TOKENS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(false),
        Err(source) => return Err(Error { path, source }),
    };
    let mut named = false;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.strip_prefix('#') {
            Some(comment) => named = comment.split_whitespace().any(|w| w == webhook_id),
            None if named => return Ok(true),
            None => {}
        }
    }
    Ok(false)
}

/// Adds a webhook's signature token to `data_dir/webhook-tokens` (created readable by its
/// owner only), after a `# comment` line; a token already there is not added twice.
pub fn save_signature_token(data_dir: &Path, token: &str, comment: &str) -> Result<(), Error> {
    let path = data_dir.join(TOKENS_FILE);
    let error = |source| Error {
        path: path.clone(),
        source,
    };
    if signature_tokens(data_dir)?
        .unwrap_or_default()
        .iter()
        .any(|t| t == token)
    {
        return Ok(());
    }
    std::fs::create_dir_all(data_dir).map_err(error)?;
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(error)?;
    file.write_all(format!("# {comment}\n{token}\n").as_bytes())
        .and_then(|()| file.sync_data())
        .map_err(error)
}

/// `bytes` split into its whole lines (up to the last newline) and a torn tail.
fn whole_lines(bytes: &[u8]) -> (&[u8], &[u8]) {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes.split_at(end)
}

/// One line of the inbox, as read.
enum Line<'a> {
    Blank,
    Notice(Notice),
    /// Not a notice; trimmed.
    Unreadable(&'a [u8]),
}

fn parse_line(line: &[u8]) -> Line<'_> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Line::Blank;
    }
    match serde_json::from_slice::<Notice>(line) {
        // An id that cannot be Lever's (queued before deliveries were checked) would be
        // fetched by every run and never leave: it is unreadable, and so dropped.
        Ok(notice) if crate::lever::webhook::plausible_id(&notice.opportunity_id) => {
            Line::Notice(notice)
        }
        Ok(_) | Err(_) => Line::Unreadable(line),
    }
}

fn ends_with_newline(file: &mut File) -> std::io::Result<bool> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// How many times this thread fsynced an inbox's folder.
        pub(super) static FOLDER_SYNCS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn the_folder_is_synced_when_the_inbox_is_created_and_after_each_rewrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inbox = Inbox::new(dir.path());
        let syncs = || FOLDER_SYNCS.with(std::cell::Cell::get);
        let before = syncs();
        inbox
            .append(&notice("candidateHired", "a"))
            .expect("append");
        assert_eq!(syncs(), before + 1, "the new file's name is synced");
        inbox
            .append(&notice("candidateHired", "b"))
            .expect("append");
        assert_eq!(
            syncs(),
            before + 1,
            "an append to an existing file needs no folder sync"
        );
        let pending = inbox.read().expect("read");
        inbox.consume(&pending, |_| false).expect("consume");
        assert_eq!(syncs(), before + 2, "the rename is synced");
        assert!(inbox.read().expect("read").notices.is_empty());
    }

    #[test]
    fn a_token_is_found_by_the_comment_naming_its_webhook() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(!has_token_for_webhook(dir.path(), "w1").expect("no file"));
        save_signature_token(dir.path(), "token-1", "candidateHired webhook w1").expect("save");
        std::fs::write(
            dir.path().join(TOKENS_FILE),
            format!(
                "{}# candidateDeleted webhook w2\n\n# by hand\ntoken-3\n",
                std::fs::read_to_string(dir.path().join(TOKENS_FILE)).expect("read")
            ),
        )
        .expect("write");
        assert!(has_token_for_webhook(dir.path(), "w1").expect("read"));
        assert!(!has_token_for_webhook(dir.path(), "w2").expect("read"));
        assert!(!has_token_for_webhook(dir.path(), "w").expect("read"));
    }

    fn notice(event: &str, id: &str) -> Notice {
        Notice {
            event: event.into(),
            opportunity_id: id.into(),
            triggered_at: Some(1),
        }
    }

    #[test]
    fn a_missing_inbox_reads_empty_and_consumes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inbox = Inbox::new(dir.path());
        let pending = inbox.read().expect("read");
        assert!(pending.notices.is_empty());
        inbox.consume(&pending, |_| false).expect("consume");
        assert!(!dir.path().join(INBOX_FILE).exists());
    }

    #[test]
    fn consume_removes_what_was_read_but_keeps_later_and_kept_notices() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inbox = Inbox::new(dir.path());
        inbox
            .append(&notice("candidateStageChange", "a"))
            .expect("append");
        inbox.append(&notice(DELETED_EVENT, "b")).expect("append");
        inbox
            .append(&notice("candidateHired", "a"))
            .expect("append");
        let pending = inbox.read().expect("read");
        assert_eq!(pending.opportunity_ids(), ["a", "b"]);
        assert_eq!(pending.deleted_ids(), HashSet::from(["b".to_owned()]));

        // Arrives while the sync runs.
        inbox
            .append(&notice("candidateArchiveChange", "c"))
            .expect("append");
        inbox
            .consume(&pending, |n| n.opportunity_id == "b")
            .expect("consume");
        let left = inbox.read().expect("read");
        assert_eq!(
            left.notices,
            [
                notice(DELETED_EVENT, "b"),
                notice("candidateArchiveChange", "c")
            ]
        );
        inbox.consume(&left, |_| false).expect("consume");
        assert!(inbox.read().expect("read").notices.is_empty());
    }

    #[test]
    fn a_notice_appended_after_another_run_consumed_survives_this_runs_consume() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inbox = Inbox::new(dir.path());
        inbox
            .append(&notice("candidateStageChange", "a"))
            .expect("append");
        inbox
            .append(&notice("candidateHired", "b"))
            .expect("append");
        let first = inbox.read().expect("read");

        // A second run reads the same notices and consumes them first: the file shrinks.
        let second = inbox.read().expect("read");
        inbox.consume(&second, |_| false).expect("consume");
        // Then Lever delivers a new notice, and the first run consumes what it read.
        inbox
            .append(&notice("candidateArchiveChange", "c"))
            .expect("append");
        inbox.consume(&first, |_| false).expect("consume");

        assert_eq!(
            inbox.read().expect("read").notices,
            [notice("candidateArchiveChange", "c")]
        );
    }

    #[test]
    fn a_queued_id_that_cannot_be_levers_is_dropped_like_an_unreadable_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inbox = Inbox::new(dir.path());
        inbox
            .append(&notice("candidateStageChange", &"x".repeat(250_000)))
            .expect("append");
        inbox
            .append(&notice("candidateHired", "a"))
            .expect("append");
        let pending = inbox.read().expect("read");
        assert_eq!(pending.opportunity_ids(), ["a"]);
        assert_eq!(pending.unreadable, 1);
        inbox.consume(&pending, |_| false).expect("consume");
        let left = inbox.read().expect("read");
        assert_eq!((left.notices.len(), left.unreadable), (0, 0));
    }

    #[test]
    fn consume_removes_every_copy_of_a_notice_read_and_the_unreadable_lines_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inbox = Inbox::new(dir.path());
        let path = dir.path().join(INBOX_FILE);
        inbox
            .append(&notice("candidateHired", "a"))
            .expect("append");
        std::fs::write(
            &path,
            format!(
                "{}not json\n",
                std::fs::read_to_string(&path).expect("read")
            ),
        )
        .expect("write");
        let pending = inbox.read().expect("read");
        assert_eq!(pending.unreadable, 1);

        // A redelivery of the same notice, and another that is not the same (another time).
        inbox
            .append(&notice("candidateHired", "a"))
            .expect("append");
        let later = Notice {
            triggered_at: Some(2),
            ..notice("candidateHired", "a")
        };
        inbox.append(&later).expect("append");
        inbox.consume(&pending, |_| false).expect("consume");

        let left = inbox.read().expect("read");
        assert_eq!(left.notices, [later]);
        assert_eq!(left.unreadable, 0);
    }

    #[test]
    fn a_torn_last_line_is_skipped_and_never_swallows_the_next_notice() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inbox = Inbox::new(dir.path());
        inbox
            .append(&notice("candidateHired", "a"))
            .expect("append");
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(INBOX_FILE))
            .expect("open");
        file.write_all(br#"{"event":"candidateDel"#).expect("tear");
        assert_eq!(inbox.read().expect("read").notices.len(), 1);

        inbox.append(&notice(DELETED_EVENT, "b")).expect("append");
        let pending = inbox.read().expect("read");
        assert_eq!(
            pending.notices,
            [notice("candidateHired", "a"), notice(DELETED_EVENT, "b")]
        );
        assert_eq!(pending.unreadable, 1);
    }
}
