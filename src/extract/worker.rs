//! Text extraction in a child process (`rediscover extract-worker`), so a hostile file can only
//! kill that child: a compression bomb meets the child's memory limit, a loop meets the deadline
//! and is killed with its process, a stack overflow ends the child, not the sync.
//!
//! Invariants:
//! - The child gets the file's bytes on stdin and answers one JSON `Result<String, Error>` on
//!   the stdout it was started with; everything else it might print (a parser's debug line, the
//!   allocator's last words) goes to `/dev/null`, so no document text reaches a log.
//! - The child's data segment (heap and the extraction thread's stack) is limited with
//!   `RLIMIT_DATA` before it reads anything: a file that needs more dies in the child.
//! - A child past its deadline is killed and reaped. One whose parent dies first (a sync
//!   killed with `kill -9`) is killed by the kernel (`PR_SET_PDEATHSIG`), and none computes
//!   longer than [`CPU_LIMIT_SECONDS`] (`RLIMIT_CPU`) whatever happens to its parent.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{EXTRACTION_STACK_BYTES, Error, Format, extract_on_large_stack, extract_within};

/// The subcommand of the `rediscover` binary that serves one extraction.
pub const SUBCOMMAND: &str = "extract-worker";
/// Memory one file's extraction may use in a child, besides its stack: a 25 MB resume PDF needs
/// a few hundred MB at most, while a PDF whose streams inflate to 300 MB took 2.5 GB.
pub const DEFAULT_MEMORY_BUDGET_BYTES: u64 = 1 << 30;
/// Data segment room beyond the budget and the stack: the runtime's own allocations.
const RUNTIME_SLACK_BYTES: u64 = 64 << 20;
/// Most CPU time a child may use: twice the deadline, a backstop for a child whose parent
/// could not kill it.
pub const CPU_LIMIT_SECONDS: u64 = 2 * super::EXTRACTION_DEADLINE.as_secs();

/// Where a sync extracts resume text.
#[derive(Debug, Clone, Default)]
pub enum Isolation {
    /// On a thread of this process with a deadline ([`extract_within`]): a file that exhausts
    /// memory or the stack takes the process with it. For library users without the binary.
    #[default]
    Thread,
    /// In a child process per file, with a memory limit and a deadline: what the `rediscover`
    /// binary uses.
    Process(Worker),
}

impl Isolation {
    /// Extracts `bytes` as `format`, given up after `deadline`. Plain text needs no parser and
    /// is always read in this process.
    pub async fn extract(
        &self,
        format: Format,
        bytes: Vec<u8>,
        deadline: Duration,
    ) -> Result<String, Error> {
        match self {
            Isolation::Process(worker) if format != Format::Txt => {
                worker.extract(format, bytes, deadline).await
            }
            _ => extract_within(format, bytes, deadline).await,
        }
    }
}

/// A program that answers [`SUBCOMMAND`] (the `rediscover` binary), and the memory each
/// extraction may use.
#[derive(Debug, Clone)]
pub struct Worker {
    /// The program to start.
    pub program: PathBuf,
    /// Memory one extraction may use besides its stack.
    pub memory_budget_bytes: u64,
}

impl Worker {
    /// `program` with the default budget ([`DEFAULT_MEMORY_BUDGET_BYTES`]).
    pub fn new(program: impl Into<PathBuf>) -> Worker {
        Worker {
            program: program.into(),
            memory_budget_bytes: DEFAULT_MEMORY_BUDGET_BYTES,
        }
    }

    /// The running executable as the worker: for the `rediscover` binary's own commands.
    pub fn current_exe() -> std::io::Result<Worker> {
        std::env::current_exe().map(Worker::new)
    }

    async fn extract(
        &self,
        format: Format,
        bytes: Vec<u8>,
        deadline: Duration,
    ) -> Result<String, Error> {
        let mut child = tokio::process::Command::new(&self.program)
            .arg(SUBCOMMAND)
            .arg("--format")
            .arg(format.name())
            .arg("--memory-budget")
            .arg(self.memory_budget_bytes.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::NoWorker(e.to_string()))?;
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::NoWorker("no pipe to the child".to_owned()));
        };
        let exchange = async {
            let feed = async move {
                // A child that dies early closes its stdin; its exit status tells why.
                let _ = stdin.write_all(&bytes).await;
            };
            let mut answer = Vec::new();
            let (_, read) = tokio::join!(feed, stdout.read_to_end(&mut answer));
            (read.map(|_| answer), child.wait().await)
        };
        let outcome = tokio::time::timeout(deadline, exchange).await;
        let Ok((answer, status)) = outcome else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(Error::TimedOut {
                seconds: deadline.as_secs(),
            });
        };
        let status = status.map_err(|e| Error::NoWorker(e.to_string()))?;
        let answer = answer.unwrap_or_default();
        if status.success()
            && let Ok(result) = serde_json::from_slice::<Result<String, Error>>(&answer)
        {
            return result;
        }
        Err(Error::Crashed(describe(status)))
    }
}

/// How a child ended, in words.
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.signal(), status.code()) {
        (Some(6), _) => "aborted".to_owned(),
        (Some(9), _) => "killed".to_owned(),
        (Some(11), _) => "segmentation fault".to_owned(),
        (Some(signal), _) => format!("signal {signal}"),
        (None, Some(0)) => "no answer".to_owned(),
        (None, Some(code)) => format!("exit code {code}"),
        (None, None) => "unknown status".to_owned(),
    }
}

/// Serves one extraction as the child of [`Worker`]: limits this process's data segment to
/// `memory_budget_bytes` plus the extraction stack, reads the file from stdin and writes the
/// JSON answer to stdout. Returns the process's exit code.
pub fn serve_worker(format: Format, memory_budget_bytes: u64) -> u8 {
    use std::io::{Read, Write};
    let Some(mut answer) = private_stdout() else {
        return 3;
    };
    if !die_with_parent() {
        return 3;
    }
    let limit = memory_budget_bytes
        .saturating_add(EXTRACTION_STACK_BYTES as u64)
        .saturating_add(RUNTIME_SLACK_BYTES);
    if !set_limit(libc::RLIMIT_DATA, limit) || !set_limit(libc::RLIMIT_CPU, CPU_LIMIT_SECONDS) {
        return 3;
    }
    let mut bytes = Vec::new();
    if std::io::stdin().read_to_end(&mut bytes).is_err() {
        return 3;
    }
    let result = extract_on_large_stack(format, bytes);
    let Ok(json) = serde_json::to_vec(&result) else {
        return 3;
    };
    if answer
        .write_all(&json)
        .and_then(|()| answer.flush())
        .is_err()
    {
        return 3;
    }
    0
}

/// The stdout this process was started with, for the answer alone; file descriptor 1 is pointed
/// at `/dev/null`, so whatever else writes there is dropped.
fn private_stdout() -> Option<std::fs::File> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .ok()?;
    // SAFETY: dup and dup2 only touch the descriptor table; the duplicate is owned by the
    // returned File alone, and descriptor 1 stays open (now on /dev/null) for std's stdout.
    unsafe {
        let answer = libc::dup(1);
        if answer < 0 {
            return None;
        }
        if libc::dup2(null.as_raw_fd(), 1) < 0 {
            libc::close(answer);
            return None;
        }
        Some(std::fs::File::from_raw_fd(answer))
    }
}

/// Sets one of this process's limits (`RLIMIT_DATA`: heap, anonymous maps and thread stacks,
/// in bytes; `RLIMIT_CPU`: seconds of CPU time, then SIGXCPU ends the process).
fn set_limit(resource: libc::__rlimit_resource_t, value: u64) -> bool {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads the struct it is given and changes only this process's limit.
    unsafe { libc::setrlimit(resource, &limit) == 0 }
}

/// Asks the kernel to kill this process when the thread that started it ends, and gives up
/// if the parent is already gone (it died before the request was made).
fn die_with_parent() -> bool {
    // SAFETY: prctl(PR_SET_PDEATHSIG) changes only this process's death signal; getppid has
    // no preconditions.
    unsafe {
        let parent = libc::getppid();
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 && libc::getppid() == parent
    }
}
