//! End to end through the `rediscover` binary, as a recruiter (or cron) would run it:
//! `mock-lever` in a child process, then `sync` (which indexes), `status`, `match`, a deletion
//! in Lever (hidden at once by its webhook notice) and an incremental `sync` that purges it from
//! every answer.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

const KEY: &str = "cli-test-key";

fn rediscover() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rediscover"));
    cmd.env_remove("LEVER_API_KEY")
        .env_remove("REDISCOVER_DATA")
        .env_remove("REDISCOVER_TOKEN")
        .env(
            "REDISCOVER_MODELS",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("models"),
        )
        .env("RUST_LOG", "warn");
    cmd
}

/// A `rediscover mock-lever` child process, killed on drop.
struct MockProcess {
    child: Child,
    base_url: String,
}

impl MockProcess {
    fn start(candidates: usize, seed: u64) -> MockProcess {
        MockProcess::spawn(&[
            "--candidates",
            &candidates.to_string(),
            "--seed",
            &seed.to_string(),
        ])
    }

    /// A mock serving the fixture directory `dir`.
    fn start_fixture(dir: &Path) -> MockProcess {
        MockProcess::spawn(&["--fixture", dir.to_str().expect("a UTF-8 temp path")])
    }

    fn spawn(pool: &[&str]) -> MockProcess {
        let mut child = rediscover()
            .args(["mock-lever", "--listen", "127.0.0.1:0", "--api-key", KEY])
            .args(pool)
            .args(["--rate", "1000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mock-lever");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("mock-lever prints its base URL");
        let base_url = line.trim().to_string();
        assert!(
            base_url.starts_with("http://127.0.0.1:") && base_url.ends_with("/v1"),
            "unexpected first line {base_url:?}"
        );
        MockProcess { child, base_url }
    }

    fn control(&self, path: &str, body: Value) -> Value {
        let root = self.base_url.trim_end_matches("/v1");
        let response = control_http::blocking_post(&format!("{root}{path}"), body);
        serde_json::from_str(&response).unwrap_or(Value::Null)
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A tiny blocking POST over a current-thread runtime (the tests are not async).
mod control_http {
    pub fn blocking_post(url: &str, body: serde_json::Value) -> String {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let client = reqwest::Client::new();
            let response = client
                .post(url)
                .basic_auth(super::KEY, Some(""))
                .json(&body)
                .send()
                .await
                .expect("control request");
            assert!(
                response.status().is_success(),
                "control call failed: {}",
                response.status()
            );
            response.text().await.expect("control body")
        })
    }
}

fn run_ok(cmd: &mut Command) -> Output {
    let output = cmd.output().expect("run rediscover");
    assert!(
        output.status.success(),
        "rediscover failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn last_json_line(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("some output");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {line}"))
}

/// `rediscover sync --json` from the mock into `data`.
fn sync_command(mock: &MockProcess, data: &Path) -> Command {
    let mut command = rediscover();
    command
        .args([
            "sync",
            "--lever-url",
            &mock.base_url,
            "--rate",
            "500",
            "--json",
        ])
        .arg("--data")
        .arg(data)
        .env("LEVER_API_KEY", KEY);
    command
}

fn sync(mock: &MockProcess, data: &Path) -> Value {
    let output = run_ok(&mut sync_command(mock, data));
    last_json_line(&output)
}

fn match_ids(data: &Path, text: &str) -> Vec<String> {
    let output = run_ok(
        rediscover()
            .args(["match", "--text", text, "--limit", "50", "--json"])
            .arg("--data")
            .arg(data),
    );
    let response = last_json_line(&output);
    response["results"]
        .as_array()
        .expect("results array")
        .iter()
        .map(|r| {
            r["opportunity_id"]
                .as_str()
                .expect("opportunity_id")
                .to_string()
        })
        .collect()
}

#[test]
fn sync_index_match_then_a_deletion_in_lever_is_purged_everywhere() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mock = MockProcess::start(40, 11);

    let first = sync(&mock, &data);
    assert_eq!(first["opportunities_total"], 40, "{first}");
    assert_eq!(first["index_action"], "rebuilt", "{first}");
    for key in [
        "opportunities_changed",
        "opportunities_deleted",
        "api_calls",
        "retries",
        "rate_limited",
        "wall_seconds",
    ] {
        assert!(first.get(key).is_some(), "sync --json lacks {key}: {first}");
    }

    for key in ["changed_ids", "deleted_ids"] {
        assert!(first.get(key).is_none(), "a backfill lists no ids: {first}");
    }
    assert!(first["failed_ids"].is_array(), "{first}");

    // A one-shot query logs nothing at info; at debug, plain text when stderr is no terminal.
    for (level, expected) in [("rediscover=info", false), ("rediscover=debug", true)] {
        let output = run_ok(
            rediscover()
                .args(["match", "--text", "engineer", "--semantic", "0", "--data"])
                .arg(&data)
                .env("RUST_LOG", level),
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.contains("index generation loaded"),
            expected,
            "{level}: {stderr}"
        );
        assert!(
            !stderr.contains('\u{1b}'),
            "no colour codes in a pipe: {stderr:?}"
        );
    }

    let status = last_json_line(&run_ok(
        rediscover().args(["status", "--json", "--data"]).arg(&data),
    ));
    assert_eq!(status["opportunities"], 40, "{status}");
    assert!(
        status["resumes_with_text"].as_u64().unwrap_or(0) > 0,
        "{status}"
    );
    assert!(status["last_sync_at"].is_number(), "{status}");

    let query = "software engineer backend services databases";
    let before = match_ids(&data, query);
    assert!(!before.is_empty(), "a generated pool has engineers");
    let victim = before[0].clone();

    mock.control(
        "/_mock/mutate",
        serde_json::json!({"op": "delete", "opportunity_id": victim}),
    );
    // Lever's candidateDeleted webhook, as `serve` queues it: answers drop the candidate
    // before any sync runs.
    rediscover::sync::inbox::Inbox::new(&data)
        .append(&rediscover::sync::inbox::Notice {
            event: "candidateDeleted".into(),
            opportunity_id: victim.clone(),
            triggered_at: None,
        })
        .expect("queue a notice");
    assert!(!match_ids(&data, query).contains(&victim));
    let status = last_json_line(&run_ok(
        rediscover().args(["status", "--json", "--data"]).arg(&data),
    ));
    assert_eq!(status["webhook_notices_waiting"], 1, "{status}");

    let second = sync(&mock, &data);
    assert_eq!(second["opportunities_deleted"], 1, "{second}");
    assert_eq!(second["webhook_notices"], 1, "{second}");
    assert_eq!(second["index_action"], "updated", "{second}");

    let after = match_ids(&data, query);
    assert!(
        !after.contains(&victim),
        "a candidate deleted in Lever still appears"
    );
    let status = last_json_line(&run_ok(
        rediscover().args(["status", "--json", "--data"]).arg(&data),
    ));
    assert_eq!(status["opportunities"], 39, "{status}");
    assert_eq!(status["webhook_notices_waiting"], 0, "{status}");

    // A damaged index pointer: status still shows the store, says what is wrong and exits
    // non-zero; `rediscover index` repairs it.
    std::fs::write(data.join("index").join("CURRENT"), "garbage\n").expect("damage");
    let damaged = rediscover()
        .args(["status", "--json", "--data"])
        .arg(&data)
        .output()
        .expect("status");
    assert_eq!(damaged.status.code(), Some(1));
    let status = last_json_line(&damaged);
    assert_eq!(status["opportunities"], 39, "{status}");
    assert!(status["index"].is_null(), "{status}");
    let error = status["index_error"].as_str().expect("index_error");
    assert!(error.contains("run `rediscover index`"), "{error}");
    run_ok(rediscover().args(["index", "--data"]).arg(&data));
    let status = last_json_line(&run_ok(
        rediscover().args(["status", "--json", "--data"]).arg(&data),
    ));
    assert!(status["index_error"].is_null(), "{status}");
    assert_eq!(status["index"]["candidates"], 39, "{status}");
}

#[test]
fn errors_are_one_line_and_exit_non_zero() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let output = rediscover()
        .args(["match", "--text", "nurse", "--data"])
        .arg(tmp.path())
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one error line, got: {stderr}"
    );
    assert!(stderr.starts_with("rediscover: "), "{stderr}");

    let output = rediscover()
        .args(["sync", "--lever-url", "http://127.0.0.1:9/v1", "--data"])
        .arg(tmp.path())
        .output()
        .expect("run");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("LEVER_API_KEY"));
}

#[test]
fn help_teaches_every_command() {
    let output = run_ok(rediscover().arg("--help"));
    let help = String::from_utf8_lossy(&output.stdout);
    for command in [
        "demo",
        "mock-lever",
        "sync",
        "status",
        "index",
        "match",
        "serve",
        "webhooks",
        "eval",
    ] {
        assert!(help.contains(command), "--help does not mention {command}");
    }
    for command in [
        vec!["sync"],
        vec!["index"],
        vec!["match"],
        vec!["serve"],
        vec!["status"],
        vec!["webhooks", "subscribe"],
        vec!["demo"],
        vec!["eval"],
    ] {
        let output = run_ok(rediscover().args(&command).arg("--help"));
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("Examples:"), "{command:?} --help: {help}");
    }
    let output = run_ok(rediscover().args(["webhooks", "subscribe", "--help"]));
    let help = String::from_utf8_lossy(&output.stdout);
    for event in rediscover::lever::webhook::CANDIDATE_EVENTS {
        assert!(help.contains(event), "{help}");
    }
    assert!(help.contains("comma-separated"), "{help}");
}

#[test]
fn arguments_that_cannot_work_are_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let refused = |args: &[&str], needle: &str| {
        let output = rediscover()
            .args(args)
            .arg("--data")
            .arg(tmp.path())
            .env("LEVER_API_KEY", KEY)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    };
    refused(
        &[
            "sync",
            "--lever-url",
            "http://127.0.0.1:9/v1",
            "--concurrency",
            "0",
        ],
        "at least 1",
    );
    refused(
        &[
            "webhooks",
            "subscribe",
            "--url",
            "https://rediscover.example.com/webhooks/lever",
            "--lever-url",
            "http://127.0.0.1:9/v1",
            "--events",
            "candidateDeleted,candidateDelete",
        ],
        "candidateDelete'",
    );
    refused(
        &[
            "sync",
            "--lever-url",
            "http://127.0.0.1:9/v1",
            "--burst",
            "0",
        ],
        "--burst",
    );
    refused(
        &[
            "sync",
            "--lever-url",
            "http://127.0.0.1:9/v1",
            "--rate",
            "-1",
        ],
        "rate must be a positive number, got -1",
    );
    // A negative number is a value to check, not an unknown flag.
    refused(
        &["match", "--text", "rust", "--semantic", "-0.1"],
        "semantic weight must be between 0 and 1, got -0.1",
    );
    assert_eq!(std::fs::read_dir(tmp.path()).expect("read").count(), 0);
}

/// With `--json`, cron gets its report line even when the index step fails after the store
/// was committed; the run still exits non-zero.
#[test]
fn sync_json_reports_the_run_when_the_index_step_fails() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mock = MockProcess::start(12, 4);
    std::fs::create_dir_all(&data).expect("mkdir");
    let held = std::fs::File::create(data.join("index.lock")).expect("lock file");
    held.try_lock().expect("hold the index lock");
    let output = sync_command(&mock, &data).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let report = last_json_line(&output);
    assert_eq!(report["opportunities_total"], 12, "{report}");
    let error = report["index_error"].as_str().expect("index_error");
    assert!(error.contains("being built by another"), "{error}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("the store is synced, but indexing failed"),
        "{stderr}"
    );
    // In a cron log (`>> sync.log 2>&1`) the report is the last line, and the error is told
    // once.
    let log_path = tmp.path().join("sync.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let status = sync_command(&mock, &data)
        .stdout(log.try_clone().expect("clone"))
        .stderr(log)
        .status()
        .expect("run");
    assert_eq!(status.code(), Some(2));
    let log = std::fs::read_to_string(&log_path).expect("read log");
    let last = log
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .expect("a line");
    let report: Value = serde_json::from_str(last).expect("the last line is the report");
    assert!(report["index_error"].is_string(), "{report}");
    assert_eq!(
        log.matches("rediscover: the store is synced").count(),
        1,
        "{log}"
    );
}

#[test]
fn webhooks_subscribe_keeps_each_signature_token_and_never_subscribes_twice() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mock = MockProcess::start(5, 3);
    let url = "http://127.0.0.1:9/webhooks/lever";
    let list = || {
        run_ok(
            rediscover()
                .env("LEVER_API_KEY", KEY)
                .args(["webhooks", "list", "--lever-url"])
                .arg(&mock.base_url)
                .arg("--data")
                .arg(&data),
        )
    };
    let none = list();
    assert!(none.stdout.is_empty(), "no rows to parse");
    let said = String::from_utf8_lossy(&none.stderr);
    assert!(said.contains("no webhooks"), "{said}");
    let subscribe = || {
        run_ok(
            rediscover()
                .env("LEVER_API_KEY", KEY)
                .args(["webhooks", "subscribe", "--url", url, "--lever-url"])
                .arg(&mock.base_url)
                .arg("--data")
                .arg(&data),
        )
    };
    let first = String::from_utf8_lossy(&subscribe().stdout).to_string();
    assert_eq!(first.matches("subscribed ").count(), 5, "{first}");

    let listed = String::from_utf8_lossy(&list().stdout).to_string();
    let rows: Vec<&str> = listed.lines().collect();
    assert_eq!(rows.len(), 5, "{listed}");
    assert!(rows.iter().all(|r| r.ends_with(url)), "{listed}");
    for event in [
        "candidateDeleted",
        "candidateStageChange",
        "applicationCreated",
    ] {
        assert!(listed.contains(event), "{listed}");
    }

    let tokens_path = data.join(rediscover::sync::inbox::TOKENS_FILE);
    let tokens = rediscover::sync::inbox::signature_tokens(&data)
        .expect("tokens")
        .expect("a tokens file");
    assert_eq!(tokens.len(), 5);
    assert!(tokens.iter().all(|t| t.len() >= 32), "{tokens:?}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&tokens_path)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the tokens are secrets");
    }

    // Again: every event is already delivered to that URL.
    let second = String::from_utf8_lossy(&subscribe().stdout).to_string();
    assert_eq!(second.matches("already subscribed ").count(), 5, "{second}");
    let again = rediscover::sync::inbox::signature_tokens(&data)
        .expect("tokens")
        .expect("a tokens file");
    assert_eq!(again, tokens);

    // A webhook created at Lever whose token never reached the file (a timeout, a failed
    // save): a rerun says so, and what to do, instead of calling it kept.
    let text = std::fs::read_to_string(&tokens_path).expect("tokens file");
    let lines: Vec<&str> = text.lines().collect();
    let (kept, lost) = lines.split_at(lines.len() - 2);
    let lost_id = lost[0].rsplit(' ').next().expect("webhook id").to_owned();
    std::fs::write(&tokens_path, format!("{}\n", kept.join("\n"))).expect("rewrite");
    let rerun = rediscover()
        .env("LEVER_API_KEY", KEY)
        .args(["webhooks", "subscribe", "--url", url, "--lever-url"])
        .arg(&mock.base_url)
        .arg("--data")
        .arg(&data)
        .output()
        .expect("run");
    assert!(!rerun.status.success());
    let stdout = String::from_utf8_lossy(&rerun.stdout);
    let stderr = String::from_utf8_lossy(&rerun.stderr);
    assert_eq!(stdout.matches("already subscribed ").count(), 4, "{stdout}");
    assert!(!stdout.contains(&lost_id), "{stdout}");
    assert!(
        stderr.contains(&lost_id) && stderr.contains("delete"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(&tokens[0]),
        "no token is printed: {stderr}"
    );

    let bad = rediscover()
        .env("LEVER_API_KEY", KEY)
        .args([
            "webhooks",
            "subscribe",
            "--url",
            "ftp://example.com/x",
            "--lever-url",
        ])
        .arg(&mock.base_url)
        .arg("--data")
        .arg(&data)
        .output()
        .expect("run");
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("https"), "{stderr}");
}

#[test]
fn a_wrong_key_is_reported_once_and_a_url_without_v1_gets_a_hint() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mock = MockProcess::start(3, 5);
    let failing_sync = |url: &str, key: &str| {
        let output = rediscover()
            .args(["sync", "--no-index", "--lever-url", url])
            .arg("--data")
            .arg(&data)
            .env("LEVER_API_KEY", key)
            .output()
            .expect("run");
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        stderr
    };

    let stderr = failing_sync(&mock.base_url, "not-the-key");
    assert_eq!(stderr.matches("HTTP 401").count(), 1, "{stderr}");
    assert_eq!(stderr.matches("LEVER_API_KEY").count(), 1, "{stderr}");

    let root = mock.base_url.trim_end_matches("/v1");
    let stderr = failing_sync(root, KEY);
    assert_eq!(stderr.matches("HTTP 404").count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("--lever-url {root}/v1")),
        "the missing /v1 is pointed out: {stderr}"
    );
}

#[test]
fn a_data_folder_without_a_store_is_an_error_not_an_empty_pool() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    for data in [&missing, &empty] {
        for args in [
            vec!["status"],
            vec!["status", "--json"],
            vec!["index"],
            vec!["match", "--text", "rust"],
            vec!["match", "--text", "rust", "--semantic", "0"],
            vec!["serve", "--listen", "127.0.0.1:0", "--no-model"],
        ] {
            let output = rediscover()
                .args(&args)
                .arg("--data")
                .arg(data)
                .output()
                .expect("run");
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(!output.status.success(), "{args:?} on {data:?} succeeded");
            assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
            assert!(
                stderr.contains("rediscover sync --data")
                    && stderr.contains(&*data.to_string_lossy()),
                "{args:?}: {stderr}"
            );
        }
    }
    assert!(!missing.exists(), "a mistyped --data is not created");
    assert_eq!(std::fs::read_dir(&empty).expect("read").count(), 0);
}

/// The README's first command, small: the demo syncs a generated pool, indexes it and prints
/// ranked people; run again with another pool it replaces the first instead of keeping it.
/// Arguments that cannot work fail before anything is synced.
#[test]
fn the_demo_ranks_people_and_a_new_seed_replaces_the_pool() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("demo");
    let demo = |candidates: &str, seed: &str, extra: &[&str]| {
        rediscover()
            .args(["demo", "--candidates", candidates, "--seed", seed])
            .args(extra)
            .arg("--data")
            .arg(&data)
            .output()
            .expect("run demo")
    };
    let opportunities = || {
        let output = run_ok(rediscover().args(["status", "--json", "--data"]).arg(&data));
        last_json_line(&output)["opportunities"].clone()
    };

    for (extra, needle) in [
        (&["--limit", "0"][..], "--limit must be between 1 and 200"),
        (
            &["--posting", "no such posting"][..],
            "no posting of the generated pool",
        ),
    ] {
        let output = demo("15", "3", extra);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{extra:?}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(!data.exists(), "{extra:?}: nothing synced");
    }

    let demo_says = |candidates: &str, seed: &str, needle: &str| {
        let output = demo(candidates, seed, &["--limit", "3"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(stdout.contains(needle), "{stdout}");
    };
    demo_says("15", "3", "Rediscovered for the open posting");
    assert_eq!(opportunities(), 15);
    demo_says("12", "4", "holds the pool of 15 candidates, seed 3");
    assert_eq!(opportunities(), 12, "the second pool replaced the first");

    // A store another sync wrote into since, or one without the demo's pool file, is never
    // replaced (it may be a real Lever account's).
    let mock = MockProcess::start(3, 9);
    run_ok(
        rediscover()
            .args(["sync", "--no-index", "--lever-url", &mock.base_url])
            .arg("--data")
            .arg(&data)
            .env("LEVER_API_KEY", KEY),
    );
    let synced = opportunities();
    for remove_marker in [false, true] {
        if remove_marker {
            std::fs::remove_file(data.join("demo-pool")).expect("remove the pool file");
        }
        let refused = demo("12", "5", &[]);
        assert!(!refused.status.success());
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains("a store the demo did not write"),
            "{stderr}"
        );
        assert_eq!(opportunities(), synced);
    }
}

/// A sync whose reader went away (`| head`) or whose stdout is full still commits and
/// indexes; only the full stdout is reported (exit 2), a closed pipe is not an error.
#[test]
fn a_sync_whose_output_cannot_be_written_still_indexes() {
    let mock = MockProcess::start(8, 6);
    let tmp = tempfile::tempdir().expect("tempdir");
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    for (name, closed) in [("closed", true), ("full", false)] {
        let data = tmp.path().join(name);
        let mut command = rediscover();
        command
            .args(["sync", "--lever-url", &mock.base_url, "--rate", "500"])
            .arg("--data")
            .arg(&data)
            .env("LEVER_API_KEY", KEY)
            .stderr(Stdio::piped());
        if closed {
            command.stdout(Stdio::piped());
        } else {
            let Ok(full) = full.as_ref().map(|f| f.try_clone().expect("clone")) else {
                continue; // no /dev/full on this system
            };
            command.stdout(full);
        }
        let mut child = command.spawn().expect("spawn");
        drop(child.stdout.take());
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        if closed {
            assert!(output.status.success(), "{stderr}");
        } else {
            assert_eq!(output.status.code(), Some(2), "{stderr}");
            assert!(
                stderr.contains("cannot write to standard output"),
                "{stderr}"
            );
        }
        assert!(!stderr.contains("internal error"), "{stderr}");
        let status = last_json_line(&run_ok(
            rediscover().args(["status", "--json", "--data"]).arg(&data),
        ));
        assert_eq!(status["index_behind_store"], false, "{name}: {status}");
        assert_eq!(status["index"]["candidates"], 8, "{name}: {status}");
    }
}

/// The characters the tokenizer's trace log quotes one a line (`### 'M' with size 1: ...`), in
/// order: how it spelled out every text it read.
fn spelled_by_tokenizer(log: &str) -> String {
    log.lines()
        .filter_map(|line| line.split_once("### '")?.1.split_once("' with size"))
        .map(|(quoted, _)| quoted)
        .collect()
}

#[test]
fn trace_logs_never_hold_candidate_text() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mock = MockProcess::start(6, 29);
    let query = "registered nurse patient care";
    let mut logs = Vec::new();
    for level in ["trace", "trace,tokenizers=trace,tantivy=trace"] {
        let _ = std::fs::remove_dir_all(&data);
        // One thread, so a text spelled out a character a line would read in order.
        let sync = run_ok(
            sync_command(&mock, &data)
                .env("RUST_LOG", level)
                .env("RAYON_NUM_THREADS", "1"),
        );
        logs.push(String::from_utf8_lossy(&sync.stderr).into_owned());
        let matched = run_ok(
            rediscover()
                .args(["match", "--text", query, "--json", "--data"])
                .arg(&data)
                .env("RUST_LOG", level)
                .env("RAYON_NUM_THREADS", "1"),
        );
        logs.push(String::from_utf8_lossy(&matched.stderr).into_owned());
    }
    // The people and their text, as `match` shows them.
    let answer = last_json_line(&run_ok(
        rediscover()
            .args(["match", "--text", query, "--json", "--data"])
            .arg(&data),
    ));
    let mut private: Vec<String> = vec![query.to_owned()];
    for result in answer["results"].as_array().expect("results") {
        private.push(result["name"].as_str().expect("name").to_owned());
        let reasons = &result["reasons"];
        for text in [&reasons["snippet"]["text"], &reasons["semantic"]["passage"]] {
            // Runs of three words: no log message of the program's own says those.
            let words: Vec<&str> = text.as_str().unwrap_or("").split_whitespace().collect();
            private.extend(words.windows(3).map(|w| w.join(" ")));
        }
    }
    assert!(
        private.len() > 20,
        "the pool gave text to look for: {answer}"
    );
    for log in &logs {
        assert!(
            log.contains("TRACE") || log.contains("DEBUG"),
            "verbose logging is on: {log}"
        );
        let log = log.to_lowercase();
        let spelled = spelled_by_tokenizer(&log);
        for text in &private {
            let text = text.to_lowercase();
            assert!(!log.contains(&text), "the log quotes {text:?}");
            assert!(!spelled.contains(&text), "the log spells out {text:?}");
        }
    }
}

/// `rediscover match --semantic 0 --json` (keyword side only, so only what the words find is
/// listed), with an optional boolean keyword filter.
fn keyword_match(data: &Path, text: &str, keywords: Option<&str>) -> Value {
    let mut command = rediscover();
    command
        .args(["match", "--text", text, "--semantic", "0", "--json"])
        .arg("--data")
        .arg(data);
    if let Some(keywords) = keywords {
        command.args(["--keywords", keywords]);
    }
    last_json_line(&run_ok(&mut command))
}

fn result_ids(response: &Value) -> Vec<&str> {
    response["results"]
        .as_array()
        .expect("results array")
        .iter()
        .map(|r| r["opportunity_id"].as_str().expect("opportunity_id"))
        .collect()
}

/// The highlighted words of the first result's snippet.
fn highlighted(response: &Value) -> Vec<String> {
    let snippet = &response["results"][0]["reasons"]["snippet"];
    let text = snippet["text"].as_str().expect("a snippet");
    snippet["highlights"]
        .as_array()
        .expect("highlights")
        .iter()
        .map(|h| {
            let (a, b) = (
                h[0].as_u64().unwrap() as usize,
                h[1].as_u64().unwrap() as usize,
            );
            text[a..b].to_owned()
        })
        .collect()
}

/// Versioned technology names (`C++17`) are found by their base (`C++`), and accented or
/// decomposed words (`Müller`, a PDF's `De\u{301}veloppeur`) by their plain spelling and the
/// other way round, through a sync of a fixture, keyword search and the keyword filter; the
/// snippet highlights the words as written. Then an index of the previous analysis is not
/// searched: `match` asks for `rediscover index`, and the next sync rebuilds it, reusing its
/// vectors.
#[test]
fn versioned_and_accented_words_are_found_by_their_plain_form() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let fixture = tmp.path().join("fixture");
    std::fs::create_dir(&fixture).expect("fixture dir");
    let opportunity = |id: &str, headline: &str, text: &str| {
        serde_json::json!({
            "id": id,
            "name": format!("Person {id}"),
            "headline": headline,
            "_resumes": [{"id": format!("r-{id}"), "_text": text, "file": {"ext": "txt", "status": "processed"}}],
        })
        .to_string()
    };
    let lines = [
        opportunity(
            "o-cpp",
            "Systems engineer",
            "Built trading engines in C++17 and desktop tools in C#10 on .NET6 for ten years.",
        ),
        opportunity(
            "o-accents",
            "Ingénieur logiciel",
            "De\u{301}veloppeur backend chez Müller Logistik, Straße 5, Berlin. Also ran a café.",
        ),
        opportunity(
            "o-plain",
            "Support engineer",
            "Wrote C and Java at a logistics firm in Berlin, grew its net revenue; likes coffee.",
        ),
    ];
    std::fs::write(fixture.join("opportunities.jsonl"), lines.join("\n") + "\n")
        .expect("write fixture");
    let data = tmp.path().join("data");
    let mock = MockProcess::start_fixture(&fixture);
    let first = sync(&mock, &data);
    assert_eq!(first["opportunities_total"], 3, "{first}");

    let cpp = keyword_match(&data, "C++", None);
    assert_eq!(result_ids(&cpp), vec!["o-cpp"], "{cpp}");
    let term = &cpp["results"][0]["reasons"]["matched_terms"][0];
    assert_eq!(
        (&term["token"], &term["exact"]),
        (&"c++".into(), &true.into())
    );
    assert_eq!(highlighted(&cpp), vec!["C++17"], "{cpp}");
    for (query, highlight) in [("C#", "C#10"), (".NET", "NET6"), ("C++17", "C++17")] {
        let found = keyword_match(&data, query, None);
        assert_eq!(result_ids(&found), vec!["o-cpp"], "{query}: {found}");
        assert_eq!(highlighted(&found), vec![highlight], "{query}: {found}");
    }
    // The keyword filter too: `C++` keeps the person who wrote `C++17`.
    let filtered = keyword_match(&data, "engineer", Some("C++"));
    assert_eq!(result_ids(&filtered), vec!["o-cpp"], "{filtered}");

    for (query, highlight) in [
        ("muller", "Müller"),
        ("Müller", "Müller"),
        ("developpeur", "De\u{301}veloppeur"),
        ("Développeur", "De\u{301}veloppeur"),
        ("strasse", "Straße"),
        ("cafe", "café"),
    ] {
        let found = keyword_match(&data, query, None);
        assert_eq!(result_ids(&found), vec!["o-accents"], "{query}: {found}");
        assert_eq!(highlighted(&found), vec![highlight], "{query}: {found}");
    }
    let filtered = keyword_match(&data, "backend", Some("muller AND developpeur"));
    assert_eq!(result_ids(&filtered), vec!["o-accents"], "{filtered}");

    // An index written with the previous analysis (format 3) is not searched...
    let current = std::fs::read_to_string(data.join("index/CURRENT")).expect("CURRENT");
    let meta_path = data.join("index").join(current.trim()).join("meta.json");
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(&meta_path).expect("meta")).expect("meta JSON");
    meta["format_version"] = 3.into();
    std::fs::write(&meta_path, meta.to_string()).expect("write meta");
    let refused = rediscover()
        .args(["match", "--text", "C++", "--semantic", "0", "--data"])
        .arg(&data)
        .output()
        .expect("match");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("run `rediscover index`"), "{stderr}");
    // ...and the next sync rebuilds it, embedding nothing again.
    let output = run_ok(sync_command(&mock, &data).env("RUST_LOG", "rediscover=info"));
    let second = last_json_line(&output);
    assert_eq!(second["index_action"], "rebuilt", "{second}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("reusing the vectors of the current index"),
        "{stderr}"
    );
    assert_eq!(
        result_ids(&keyword_match(&data, "C++", None)),
        vec!["o-cpp"]
    );
}

/// A truncated store segment costs only the records it cut: `index` rebuilds without them,
/// queries answer, and the next sync with a change drops them from the store and fetches them
/// again.
#[test]
fn a_truncated_store_segment_costs_only_the_records_it_cut() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mock = MockProcess::start(12, 33);
    sync(&mock, &data);
    let segment = std::fs::read_dir(data.join("store"))
        .expect("store")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
        })
        .expect("a segment");
    let len = std::fs::metadata(&segment).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .and_then(|f| f.set_len(len - 100))
        .expect("truncate");
    let status = last_json_line(&run_ok(
        rediscover().args(["status", "--json", "--data"]).arg(&data),
    ));
    assert_eq!(status["opportunities"], 12, "{status}");
    run_ok(rediscover().args(["index", "--data"]).arg(&data));
    assert!(!match_ids(&data, "engineer").is_empty());
    mock.control(
        "/_mock/mutate",
        serde_json::json!({"op": "add_candidates", "count": 1, "seed": 6}),
    );
    sync(&mock, &data);
    let report = sync(&mock, &data);
    assert_eq!(report["opportunities_failed"], 0, "{report}");
    let status = last_json_line(&run_ok(
        rediscover().args(["status", "--json", "--data"]).arg(&data),
    ));
    assert_eq!(
        status["opportunities"], 13,
        "the cut record came back: {status}"
    );
}

/// Runs a `match` that must fail; its stderr.
fn failing_match(data: &Path) -> String {
    let output = rediscover()
        .args(["match", "--text", "engineer", "--data"])
        .arg(data)
        .output()
        .expect("run match");
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A truncated keyword segment file is damage like any other: queries name the remedy, and the
/// next sync with changes rebuilds instead of linking the damaged file into its new generation.
#[test]
fn a_sync_rebuilds_a_damaged_keyword_segment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mock = MockProcess::start(8, 32);
    assert_eq!(sync(&mock, &data)["index_action"], "rebuilt");
    let current = std::fs::read_to_string(data.join("index").join("CURRENT")).expect("pointer");
    let keyword = data.join("index").join(current.trim()).join("keyword");
    // Searching writes nothing: with tantivy's meta lock file impossible to create (as in a
    // read-only folder; a directory in its place also stops root), queries still answer.
    let lock = keyword.join(".tantivy-meta.lock");
    let _ = std::fs::remove_file(&lock);
    std::fs::create_dir(&lock).expect("block the lock file");
    assert!(!match_ids(&data, "engineer").is_empty());
    std::fs::remove_dir(&lock).expect("unblock");
    let largest = std::fs::read_dir(&keyword)
        .expect("keyword dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "idx"))
        .max_by_key(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .expect("a segment file");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&largest)
        .and_then(|f| f.set_len(100))
        .expect("truncate");
    let stderr = failing_match(&data);
    assert!(stderr.contains("rediscover index"), "{stderr}");
    let status = rediscover()
        .args(["status", "--json", "--data"])
        .arg(&data)
        .output()
        .expect("status");
    assert_eq!(status.status.code(), Some(1), "status names the damage");
    let error = last_json_line(&status)["index_error"].to_string();
    assert!(error.contains("rediscover index"), "{error}");
    mock.control(
        "/_mock/mutate",
        serde_json::json!({"op": "add_candidates", "count": 2, "seed": 5}),
    );
    let report = sync(&mock, &data);
    assert_eq!(report["index_action"], "rebuilt", "{report}");
    assert!(!match_ids(&data, "engineer").is_empty());
}

/// A damaged index pointer stops queries with its remedy; the next sync rebuilds the indexes
/// from the store (reusing nothing it cannot read) instead of failing too.
#[test]
fn a_sync_rebuilds_a_damaged_index() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let mock = MockProcess::start(8, 31);
    assert_eq!(sync(&mock, &data)["index_action"], "rebuilt");
    let current = data.join("index").join("CURRENT");
    std::fs::write(&current, "gen-000000000001-gone\n").expect("damage the pointer");
    let stderr = failing_match(&data);
    assert!(
        stderr.contains("which is missing") && stderr.contains("rediscover index"),
        "{stderr}"
    );
    let report = sync(&mock, &data);
    assert_eq!(report["index_action"], "rebuilt", "{report}");
    assert!(!match_ids(&data, "engineer").is_empty());
}
