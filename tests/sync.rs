//! Integration tests: sync. A small scripted Lever (below) covers faults the tests must control
//! exactly (malformed pages, stale tokens, corrupt files, wrong keys); the mock Lever covers
//! whole pools, rate limits, interruption and incremental runs.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use base64::Engine;
use serde_json::{Value, json};

use rediscover::domain::{Candidate, TextStatus};
use rediscover::extract::{Format, Isolation, Worker, extract};
use rediscover::index::{Embedder, chunk};
use rediscover::lever::{ApiKey, ClientConfig, Credentials};
use rediscover::pipeline::{self, Prefetcher};
use rediscover::store::{Store, SyncState};
use rediscover::sync::inbox::{Inbox, RETRY_EVENT};
use rediscover::sync::{SyncMode, SyncOptions, SyncReport, run};

use crate::util::{corrupt_stored_record, files_under};

const KEY: &str = "test-key";

/// The real CV data set: `shared/` sits beside the repository (or two levels up from a worktree).
fn cv_dir() -> std::path::PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    [manifest.join("../shared"), manifest.join("../../shared")]
        .into_iter()
        .map(|shared| shared.join("data/vanetik_vacancy_resume"))
        .find(|dir| dir.join("CV").is_dir())
        .expect("shared/data/vanetik_vacancy_resume beside the repository")
}

// ---------------------------------------------------------------------------------------------
// A scripted Lever: fixed records, exact faults.

#[derive(Default)]
struct Script {
    opportunities: Vec<Value>,
    /// Opportunity id -> resume list; absent means the list answers 404.
    resumes: HashMap<String, Vec<Value>>,
    /// (opportunity id, resume id) -> (status, body).
    files: HashMap<(String, String), (u16, Vec<u8>)>,
    notes: HashMap<String, Vec<Value>>,
    feedback: HashMap<String, Vec<Value>>,
    /// Raw bodies of the /opportunities pages, replacing the generated ones.
    raw_pages: Option<Vec<String>>,
    /// Answer 503 (half of them with `Retry-After: 0`) to this many requests first.
    fail_first: AtomicU32,
    /// Reject the first page-2 token once with `Invalid offset token`.
    stale_token_once: AtomicBool,
    /// Items of `/opportunities/deleted`.
    deleted: Vec<Value>,
    /// Items of `/applications/deleted`; absent means the route answers 404.
    deleted_applications: Option<Vec<Value>>,
    /// Opportunities this key may not see: they and their children answer 403.
    forbidden: HashSet<String>,
    /// The key lacks the notes permission: every note list answers 403.
    notes_forbidden: bool,
    requests: AtomicU64,
    page_size: usize,
}

async fn serve(script: Arc<Script>) -> String {
    let app = Router::new().fallback(handle).with_state(script);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/v1")
}

fn reply(status: u16, body: impl Into<Body>) -> Response {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.into())
        .expect("response")
}

fn list(data: &[Value]) -> Response {
    reply(200, json!({"data": data, "hasNext": false}).to_string())
}

async fn handle(State(s): State<Arc<Script>>, uri: Uri, headers: HeaderMap) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{KEY}:"))
    );
    if headers.get("authorization").and_then(|h| h.to_str().ok()) != Some(expected.as_str()) {
        return reply(
            401,
            r#"{"code":"UnauthorizedError","message":"Invalid API key"}"#,
        );
    }
    if s.fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        let mut response = reply(
            503,
            r#"{"code":"ServiceUnavailable","message":"maintenance"}"#,
        );
        if s.requests.load(Ordering::SeqCst) % 2 == 0 {
            response
                .headers_mut()
                .insert("retry-after", "0".parse().expect("header"));
        }
        return response;
    }
    let query: HashMap<String, String> = uri
        .query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default();
    let path = uri.path().trim_start_matches("/v1/");
    let parts: Vec<&str> = path.split('/').collect();
    let forbidden = reply(403, r#"{"code":"ForbiddenError","message":"no access"}"#);
    if let ["opportunities", id, ..] = parts.as_slice()
        && s.forbidden.contains(*id)
    {
        return forbidden;
    }
    if s.notes_forbidden && matches!(parts.as_slice(), ["opportunities", _, "notes"]) {
        return forbidden;
    }
    match parts.as_slice() {
        ["stages"] => list(&[json!({"id": "lead-new", "text": "New lead"})]),
        ["archive_reasons"] => {
            list(&[json!({"id": "r1", "text": "Timing", "status": "active", "type": "non-hired"})])
        }
        ["users"] => list(&[json!({"id": "u1", "name": "Riley"})]),
        ["tags"] => list(&[json!({"text": "Talent Pool", "count": 1})]),
        ["postings"] => {
            list(&[json!({"id": "p1", "text": "Engineer", "content": {"description": "Build."}})])
        }
        ["opportunities", "deleted"] => list(&s.deleted),
        ["applications", "deleted"] => match &s.deleted_applications {
            Some(items) => list(items),
            None => reply(404, r#"{"code":"ResourceNotFound","message":"no route"}"#),
        },
        ["opportunities"] => opportunities_page(&s, query.get("offset").map(String::as_str)),
        ["opportunities", id] => match s.opportunities.iter().find(|o| o["id"] == *id) {
            Some(opp) => reply(200, json!({"data": opp}).to_string()),
            None => reply(404, r#"{"code":"ResourceNotFound","message":"not found"}"#),
        },
        ["opportunities", id, "resumes"] => match s.resumes.get(*id) {
            Some(resumes) => list(resumes),
            None => reply(404, r#"{"code":"ResourceNotFound","message":"not found"}"#),
        },
        ["opportunities", id, "resumes", rid, "download"] => {
            match s.files.get(&(id.to_string(), rid.to_string())) {
                Some((status, bytes)) => Response::builder()
                    .status(*status)
                    .body(Body::from(bytes.clone()))
                    .expect("response"),
                None => reply(404, r#"{"code":"ResourceNotFound","message":"not found"}"#),
            }
        }
        ["opportunities", id, "notes"] => {
            list(s.notes.get(*id).map(Vec::as_slice).unwrap_or_default())
        }
        ["opportunities", id, "feedback"] => {
            list(s.feedback.get(*id).map(Vec::as_slice).unwrap_or_default())
        }
        _ => reply(404, r#"{"code":"ResourceNotFound","message":"no route"}"#),
    }
}

fn opportunities_page(s: &Script, offset: Option<&str>) -> Response {
    let page: usize = offset
        .and_then(|o| o.strip_prefix("p"))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    if page == 2 && s.stale_token_once.swap(false, Ordering::SeqCst) {
        return reply(
            400,
            r#"{"code":"BadRequestError","message":"Invalid offset token"}"#,
        );
    }
    if let Some(raw) = &s.raw_pages {
        return reply(200, raw.get(page).cloned().unwrap_or_default());
    }
    let size = s.page_size.max(1);
    let chunk: Vec<Value> = s
        .opportunities
        .iter()
        .skip(page * size)
        .take(size)
        .cloned()
        .collect();
    let has_next = (page + 1) * size < s.opportunities.len();
    let mut body = json!({"data": chunk, "hasNext": has_next});
    if has_next {
        body["next"] = json!(format!("p{}", page + 1));
    }
    reply(200, body.to_string())
}

fn opportunity(id: &str) -> Value {
    json!({
        "id": id, "name": format!("Person {id}"), "contact": format!("c-{id}"),
        "headline": "Acme", "stage": {"id": "lead-new", "text": "New lead"},
        "stageChanges": [{"toStageId": "lead-new", "toStageIndex": 0, "updatedAt": 1}],
        "emails": [format!("{id}@example.org")], "phones": [], "links": [],
        "archived": null, "tags": ["Talent Pool"], "sources": ["LinkedIn"], "origin": "sourced",
        "applications": [{"id": format!("a-{id}"), "posting": "p1"}],
        "createdAt": 1_700_000_000_000_i64, "updatedAt": null, "lastInteractionAt": 1_700_000_000_000_i64,
        "urls": {"show": format!("https://hire.lever.co/candidates/{id}")}
    })
}

fn resume(id: &str, ext: &str, status: &str) -> Value {
    json!({"id": id, "createdAt": 1, "file": {"name": format!("cv.{ext}"), "ext": ext, "status": status},
           "parsedData": {"positions": [{"org": "Acme", "title": "Engineer"}], "schools": []}})
}

fn options(data: &Path, url: &str, key: &str) -> SyncOptions {
    let client = ClientConfig {
        base_url: url.to_owned(),
        rate: 1000.0,
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(50),
        ..ClientConfig::default()
    };
    let mut options = SyncOptions::new(
        data,
        client,
        Credentials::ApiKey(ApiKey::new(key).expect("key")),
    );
    options.progress = false;
    options
}

fn stored(data: &Path) -> HashMap<String, Candidate> {
    let store = Store::open(data).expect("open");
    store
        .candidates()
        .map(|c| c.expect("record"))
        .map(|c| (c.id.clone(), c))
        .collect()
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 2)
        .map(str::to_lowercase)
        .collect()
}

fn real_docx() -> (Vec<u8>, String) {
    let dir = cv_dir();
    let bytes = std::fs::read(dir.join("CV/1.docx")).expect("CV/1.docx");
    let txt = std::fs::read_to_string(dir.join("CV_txt/1.txt")).expect("CV_txt/1.txt");
    (bytes, txt)
}

#[tokio::test]
async fn scripted_lever_faults_and_odd_files_are_recorded_and_candidates_kept() {
    let mut script = Script {
        page_size: 2,
        fail_first: AtomicU32::new(4),
        ..Script::default()
    };
    for id in ["o1", "o2", "o3", "o4", "o5"] {
        script.opportunities.push(opportunity(id));
    }
    // o1: corrupt PDF; o2: corrupt DOCX; o3: a 404 resume list; o4: 422 and a txt; o5: real DOCX.
    script
        .resumes
        .insert("o1".into(), vec![resume("r1", "pdf", "processed")]);
    script.files.insert(
        ("o1".into(), "r1".into()),
        (200, b"%PDF-1.4\n garbage".to_vec()),
    );
    script
        .resumes
        .insert("o2".into(), vec![resume("r2", "docx", "processed")]);
    script.files.insert(
        ("o2".into(), "r2".into()),
        (200, b"PK\x03\x04 not a zip".to_vec()),
    );
    script.resumes.insert(
        "o4".into(),
        vec![
            resume("r4", "pdf", "processed"),
            resume("r4b", "txt", "processed"),
        ],
    );
    script
        .files
        .insert(("o4".into(), "r4".into()), (422, Vec::new()));
    script.files.insert(
        ("o4".into(), "r4b".into()),
        (200, b"Plain text resume".to_vec()),
    );
    let (docx, docx_txt) = real_docx();
    script
        .resumes
        .insert("o5".into(), vec![resume("r5", "docx", "processed")]);
    script.files.insert(("o5".into(), "r5".into()), (200, docx));
    script.notes.insert(
        "o1".into(),
        vec![
            json!({"id": "n1", "fields": [{"value": "keep me", "score": 3}], "deletedAt": null}),
            json!({"id": "n2", "fields": [{"value": "deleted"}], "deletedAt": 5}),
        ],
    );
    script.feedback.insert(
        "o1".into(),
        vec![json!({"id": "f1", "type": "interview", "text": "Onsite",
                    "fields": [{"type": "score-system", "text": "Overall", "value": "4 - Strong Hire"}]})],
    );
    let url = serve(Arc::new(script)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(options(dir.path(), &url, KEY)).await.expect("sync");

    assert_eq!(report.mode, SyncMode::Full);
    assert_eq!(report.opportunities_total, 5);
    assert_eq!(report.opportunities_failed, 0);
    assert!(report.retries >= 4, "{report:?}");
    let store = stored(dir.path());
    assert!(matches!(
        store["o1"].resumes[0].text_status,
        TextStatus::Failed(_)
    ));
    assert!(matches!(
        store["o2"].resumes[0].text_status,
        TextStatus::Failed(_)
    ));
    assert!(store["o3"].resumes.is_empty());
    assert_eq!(
        store["o4"].resumes[0].text_status,
        TextStatus::Unprocessable
    );
    assert_eq!(
        store["o4"].resumes[1].text.as_deref(),
        Some("Plain text resume")
    );
    assert_eq!(store["o1"].resumes[0].positions[0].org, "Acme");
    assert_eq!(store["o1"].notes.len(), 1);
    assert_eq!(store["o1"].notes[0].comments, vec!["keep me"]);
    assert_eq!(store["o1"].feedback[0].rating, Some(4));
    assert_eq!(store["o1"].posting_ids, vec!["p1"]);
    assert_eq!(report.resume_text_failed, 2);
    let text = store["o5"].resume_text().expect("docx text").to_owned();
    let extracted: HashSet<String> = words(&text).into_iter().collect();
    let expected = words(&docx_txt);
    let found = expected.iter().filter(|w| extracted.contains(*w)).count();
    assert!(
        found * 10 >= expected.len() * 9,
        "{found} of {} words",
        expected.len()
    );
}

/// A resume file whose extraction earlier runs never finished twice (the process died or hung
/// in it, which no panic guard contains) is not extracted again: the candidate is stored
/// without that text, and every other file is extracted as usual. A file with one unfinished
/// extraction (the process may have been stopped while it read a good resume) is tried again.
#[tokio::test]
async fn a_resume_file_that_killed_an_earlier_run_is_not_extracted_again() {
    let mut script = Script {
        page_size: 10,
        ..Script::default()
    };
    for (opp, resume_id) in [("o1", "r1"), ("o2", "r2")] {
        script.opportunities.push(opportunity(opp));
        script
            .resumes
            .insert(opp.into(), vec![resume(resume_id, "txt", "processed")]);
        script.files.insert(
            (opp.into(), resume_id.into()),
            (200, format!("Resume text of {opp}").into_bytes()),
        );
    }
    let url = serve(Arc::new(script)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // What runs that died extracting r1 twice, and r2 once, leave behind.
    let markers = dir.path().join("extracting");
    std::fs::create_dir_all(&markers).expect("markers");
    std::fs::write(markers.join("r1"), b"2").expect("marker");
    std::fs::write(markers.join("r2"), b"1").expect("marker");

    let report = run(options(dir.path(), &url, KEY)).await.expect("sync");
    assert_eq!(report.opportunities_failed, 0, "{report:?}");
    let store = stored(dir.path());
    assert_eq!(store["o1"].resume_text(), None);
    assert!(
        matches!(&store["o1"].resumes[0].text_status, TextStatus::Failed(r) if r.contains("not tried again")),
        "{:?}",
        store["o1"].resumes[0].text_status
    );
    assert_eq!(store["o2"].resume_text(), Some("Resume text of o2"));
    // r1's marker stays (later runs skip it too); r2's is gone with its second extraction.
    let left: Vec<String> = std::fs::read_dir(&markers)
        .expect("markers")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec!["r1"]);
    assert_eq!(rediscover::sync::skipped_resume_files(dir.path()), 1);
}

/// The sync's worker: the `rediscover` binary's `extract-worker`, with a small memory budget.
fn small_worker() -> Isolation {
    Isolation::Process(Worker {
        program: env!("CARGO_BIN_EXE_rediscover").into(),
        memory_budget_bytes: 64 << 20,
    })
}

/// A one-page PDF whose content stream inflates to `mib` MiB of zeros: built from one
/// sync-flushed deflate block of 1 MiB repeated, so it takes milliseconds to write.
fn inflating_pdf(mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let zeros = vec![0u8; 1 << 20];
    let mut deflate = Compress::new(Compression::best(), false);
    let mut block = |out: &mut Vec<u8>| {
        let mut buf = Vec::with_capacity(64 << 10);
        deflate
            .compress_vec(&zeros, &mut buf, FlushCompress::Sync)
            .expect("deflate");
        assert_eq!(deflate.total_in() % (1 << 20), 0, "one whole MiB per block");
        out.extend_from_slice(&buf);
    };
    let (mut first, mut next) = (Vec::new(), Vec::new());
    block(&mut first);
    block(&mut next);
    // zlib: header, the blocks, an empty final block, the Adler-32 of n zeros (a = 1, b = n).
    let mut stream = vec![0x78, 0x01];
    stream.extend_from_slice(&first);
    for _ in 1..mib {
        stream.extend_from_slice(&next);
    }
    stream.extend_from_slice(&[0x03, 0x00]);
    let n = ((mib as u64) << 20) % 65521;
    stream.extend_from_slice(&((n << 16) | 1).to_be_bytes()[4..]);
    let mut contents = format!(
        "<< /Length {} /Filter /FlateDecode >>\nstream\n",
        stream.len()
    )
    .into_bytes();
    contents.extend_from_slice(&stream);
    contents.extend_from_slice(b"\nendstream");
    let objects: [&[u8]; 4] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        &contents,
    ];
    let mut pdf = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(b"xref\n0 5\n0000000000 65535 f \n");
    for offset in offsets {
        pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    pdf.extend_from_slice(
        format!("trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
    );
    pdf
}

/// A 435-byte PDF whose page tree is its own parent: the parser never ends.
const LOOPING_PDF: &str = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 /Parent 2 0 R >>\nendobj\n\
3 0 obj\n<< /Type /Page /Parent 3 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>\nendobj\n\
4 0 obj\n<< /Length 10 >>\nstream\nBT ET\n\nendstream\nendobj\nxref\n0 5\n\
0000000000 65535 f \n0000000009 00000 n \n0000000058 00000 n \n0000000129 00000 n \n\
0000000216 00000 n \ntrailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n272\n%%EOF\n";

/// The extraction child answers what the same extraction in this process answers, typed errors
/// included, and a file the parser loops on is given up at the deadline with its child killed.
#[tokio::test]
async fn the_extraction_child_answers_like_this_process_and_is_killed_at_its_deadline() {
    let worker = small_worker();
    let pdf =
        rediscover::mock_lever::render_pdf("Jane Doe\nSenior Rust engineer at Acme, 2019-2024");
    let here = extract(Format::Pdf, &pdf).expect("pdf text");
    assert!(here.contains("Rust engineer"), "{here}");
    let deadline = Duration::from_secs(60);
    assert_eq!(worker.extract(Format::Pdf, pdf, deadline).await, Ok(here));
    assert_eq!(
        worker
            .extract(Format::Pdf, b"PK not a pdf".to_vec(), deadline)
            .await,
        Err(rediscover::extract::Error::WrongFormat {
            expected: Format::Pdf
        })
    );
    let started = std::time::Instant::now();
    let looping = worker
        .extract(
            Format::Pdf,
            LOOPING_PDF.as_bytes().to_vec(),
            Duration::from_millis(1500),
        )
        .await;
    assert_eq!(
        looping,
        Err(rediscover::extract::Error::TimedOut { seconds: 1 })
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// An extraction child whose parent dies (a sync killed with `kill -9` while a file loops)
/// dies with it instead of computing on alone.
#[test]
fn an_extraction_child_dies_with_its_parent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pdf = dir.path().join("loop.pdf");
    std::fs::write(&pdf, LOOPING_PDF).expect("write");
    let script = format!(
        "'{}' extract-worker --format pdf --memory-budget 67108864 < '{}' > /dev/null 2>&1 & echo $!; sleep 1",
        env!("CARGO_BIN_EXE_rediscover"),
        pdf.display()
    );
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("pid");
    // Running (R or S) while its parent lives; gone or a zombie once the kernel killed it.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit(") ")
                    .next()
                    .map(|rest| rest.starts_with(['R', 'S', 'D']))
            })
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while alive() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survived = alive();
    if survived {
        let _ = std::process::Command::new("kill")
            .args(["-9", &pid.to_string()])
            .status();
    }
    assert!(!survived, "the child outlived its parent");
}

/// A resume PDF that inflates past the extraction's memory budget kills only its child: the
/// sync goes on, stores that candidate without the text, extracts the others, and counts one
/// strike against the file (the next run tries it once more, alone).
#[tokio::test]
async fn a_compression_bomb_kills_only_its_extraction_child() {
    let mut script = Script {
        page_size: 10,
        ..Script::default()
    };
    let good = rediscover::mock_lever::render_pdf("Grace Hopper\nCompiler engineer");
    for (opp, resume_id, bytes) in [("o1", "r1", inflating_pdf(512)), ("o2", "r2", good.clone())] {
        script.opportunities.push(opportunity(opp));
        script
            .resumes
            .insert(opp.into(), vec![resume(resume_id, "pdf", "processed")]);
        script
            .files
            .insert((opp.into(), resume_id.into()), (200, bytes));
    }
    let url = serve(Arc::new(script)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = options(dir.path(), &url, KEY);
    options.extraction = small_worker();
    let report = run(options).await.expect("sync");
    assert_eq!(report.opportunities_failed, 0, "{report:?}");
    assert_eq!(report.resume_text_failed, 1, "{report:?}");
    let store = stored(dir.path());
    assert!(
        matches!(&store["o1"].resumes[0].text_status, TextStatus::Failed(r) if r.contains("process died")),
        "{:?}",
        store["o1"].resumes[0].text_status
    );
    assert_eq!(
        store["o2"].resume_text().map(str::to_owned),
        Some(extract(Format::Pdf, &good).expect("text"))
    );
    let marker = dir.path().join("extracting").join("r1");
    assert_eq!(std::fs::read_to_string(marker).expect("one strike"), "1");
}

/// A resume file Lever keeps failing to send (5xx after every retry) does not keep a new
/// candidate out of the pool: it is stored without that text and fetched again next run. Once
/// stored with its text, a failing download keeps the stored version.
#[tokio::test]
async fn a_resume_download_that_keeps_failing_does_not_hold_back_a_new_candidate() {
    let lever = |status: u16| {
        let mut script = Script {
            page_size: 10,
            ..Script::default()
        };
        script.opportunities.push(opportunity("o1"));
        script
            .resumes
            .insert("o1".into(), vec![resume("r1", "txt", "processed")]);
        script.files.insert(
            ("o1".into(), "r1".into()),
            (status, b"Rust engineer, ten years of Tokio".to_vec()),
        );
        serve(Arc::new(script))
    };
    let failing = lever(500).await;
    let working = lever(200).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let retry_queued = || {
        Inbox::new(dir.path())
            .read()
            .expect("inbox")
            .notices
            .iter()
            .any(|n| n.opportunity_id == "o1" && n.event == RETRY_EVENT)
    };

    let report = run(options(dir.path(), &failing, KEY)).await.expect("sync");
    assert_eq!(report.opportunities_failed, 0, "{report:?}");
    let store = stored(dir.path());
    assert!(
        matches!(&store["o1"].resumes[0].text_status, TextStatus::Failed(r) if r.contains("download")),
        "{:?}",
        store["o1"].resumes[0].text_status
    );
    assert_eq!(store["o1"].notes.len(), 0);
    assert!(retry_queued(), "fetched again next run");

    run(options(dir.path(), &working, KEY)).await.expect("sync");
    let text = |dir: &Path| stored(dir)["o1"].resume_text().map(str::to_owned);
    assert_eq!(
        text(dir.path()).as_deref(),
        Some("Rust engineer, ten years of Tokio")
    );

    let report = run(options(dir.path(), &failing, KEY)).await.expect("sync");
    assert_eq!(report.opportunities_failed, 1, "{report:?}");
    assert_eq!(
        text(dir.path()).as_deref(),
        Some("Rust engineer, ten years of Tokio"),
        "the stored text stays"
    );
    assert!(retry_queued());
}

#[tokio::test]
async fn wrong_key_fails_clearly_and_leaves_the_store_as_it_was() {
    let mut script = Script {
        page_size: 10,
        ..Script::default()
    };
    script.opportunities.push(opportunity("o1"));
    script.resumes.insert("o1".into(), Vec::new());
    let url = serve(Arc::new(script)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let first = run(options(dir.path(), &url, KEY)).await.expect("sync");
    let before = stored(dir.path());
    let listing_before: Vec<_> = std::fs::read_dir(dir.path().join("store"))
        .expect("store dir")
        .map(|e| e.expect("entry").file_name())
        .collect();

    let err = run(options(dir.path(), &url, "wrong-key"))
        .await
        .expect_err("must fail");
    let message = err.to_string();
    assert!(message.contains("401"), "{message}");
    assert!(!message.contains("wrong-key"), "{message}");
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(store.generation(), first.generation);
    assert_eq!(stored(dir.path()), before);
    let mut listing_after: Vec<_> = std::fs::read_dir(dir.path().join("store"))
        .expect("store dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    let mut listing_before = listing_before;
    listing_before.sort();
    listing_after.sort();
    assert_eq!(listing_before, listing_after);

    let empty = tempfile::tempdir().expect("tempdir");
    run(options(empty.path(), &url, "wrong-key"))
        .await
        .expect_err("must fail");
    assert!(!empty.path().join("store").exists());
}

#[tokio::test]
async fn malformed_records_and_pages_are_reported_and_skipped() {
    let page = |data: Value, next: Option<&str>| {
        let mut body = json!({"data": data, "hasNext": next.is_some()});
        if let Some(next) = next {
            body["next"] = json!(next);
        }
        body.to_string()
    };
    let mut broken_type = opportunity("bad-type");
    broken_type["stageChanges"] = json!("Private Person");
    let script = Script {
        raw_pages: Some(vec![
            page(
                json!([opportunity("good1"), {"name": "No Id Person"}, broken_type, "junk"]),
                Some("p1"),
            ),
            page(json!({"unexpected": "object"}), Some("p2")),
            page(json!([opportunity("good2")]), None),
        ]),
        resumes: [("good1".to_string(), vec![]), ("good2".to_string(), vec![])].into(),
        ..Script::default()
    };
    let url = serve(Arc::new(script)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(options(dir.path(), &url, KEY)).await.expect("sync");
    let store = stored(dir.path());
    let mut ids: Vec<_> = store.keys().cloned().collect();
    ids.sort();
    assert_eq!(ids, vec!["good1", "good2"]);
    assert_eq!(report.malformed_records, 4, "{:?}", report.malformed);
    assert!(
        report
            .malformed
            .iter()
            .any(|m| m.id.as_deref() == Some("bad-type"))
    );
    let reported = serde_json::to_string(&report.malformed).expect("json");
    assert!(!reported.contains("Private Person") && !reported.contains("No Id Person"));
    // The one with an id failed (retried next run); the others leave the listing incomplete.
    assert_eq!(report.failed_ids, vec!["bad-type".to_string()]);
    assert!(!report.listing_complete);
}

#[tokio::test]
async fn a_stale_paging_token_restarts_the_listing_without_duplicates() {
    let mut script = Script {
        page_size: 2,
        stale_token_once: AtomicBool::new(true),
        ..Script::default()
    };
    for i in 0..7 {
        let id = format!("o{i}");
        script.resumes.insert(id.clone(), Vec::new());
        script.opportunities.push(opportunity(&id));
    }
    let url = serve(Arc::new(script)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let report: SyncReport = run(options(dir.path(), &url, KEY)).await.expect("sync");
    assert_eq!(report.opportunities_total, 7);
    assert_eq!(report.opportunities_fetched, 7);
    assert_eq!(stored(dir.path()).len(), 7);
}

#[tokio::test]
async fn a_post_is_sent_again_after_a_429_but_never_after_a_5xx() {
    use axum::routing::post;
    use rediscover::lever::{LeverClient, webhook};
    // Answers 429, then 503, then 201, counting the POSTs.
    let posts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&posts);
    let app = Router::new().route(
        "/v1/webhooks",
        post(move || {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => reply(429, r#"{"code":"TooManyRequests","message":"slow down"}"#),
                    1 => reply(503, "{}"),
                    _ => reply(
                        201,
                        json!({"data": {"id": "w1", "event": "candidateDeleted", "url": "https://x/y",
                                        "configuration": {"signatureToken": "secret-token"}}})
                        .to_string(),
                    ),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/v1", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = LeverClient::new(
        options(Path::new("/nonexistent"), &url, KEY).client,
        Credentials::ApiKey(ApiKey::new(KEY).expect("key")),
    )
    .expect("client");

    let failed = webhook::subscribe(&client, "https://x/y", "candidateDeleted").await;
    assert!(
        failed.is_err(),
        "a 503 after a POST may hide a created webhook"
    );
    assert_eq!(
        posts.load(Ordering::SeqCst),
        2,
        "the 429 was sent again, the 503 was not"
    );

    let created = webhook::subscribe(&client, "https://x/y", "candidateDeleted")
        .await
        .expect("created");
    assert_eq!(created.id, "w1");
    assert_eq!(
        created.configuration.signature_token.as_deref(),
        Some("secret-token")
    );
}

/// A scripted Lever holding `ids`, each with an `updatedAt` (so a later run finds it unchanged
/// and keeps its children), no resumes and one note.
fn quiet_script(ids: &[&str]) -> Script {
    let mut script = Script {
        page_size: 10,
        ..Script::default()
    };
    for id in ids {
        let mut opp = opportunity(id);
        opp["updatedAt"] = json!(1_700_000_000_000_i64);
        script.opportunities.push(opp);
        script.resumes.insert((*id).to_owned(), Vec::new());
        script.notes.insert(
            (*id).to_owned(),
            vec![json!({"id": format!("n-{id}"), "fields": [{"value": format!("note on {id}")}]})],
        );
    }
    script
}

async fn sync_with(script: Script, data: &Path) -> SyncReport {
    let url = serve(Arc::new(script)).await;
    run(options(data, &url, KEY)).await.expect("sync")
}

fn window(data: &Path) -> (Option<i64>, Option<i64>) {
    let store = Store::open(data).expect("open");
    let state = store.sync_state();
    (state.last_run_started_at, state.deleted_checkpoint)
}

#[tokio::test]
async fn an_unreadable_record_or_child_keeps_the_stored_version_and_the_window() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = sync_with(quiet_script(&["o1", "o2", "o3"]), dir.path()).await;
    assert!(first.listing_complete && first.failed_ids.is_empty());
    let before_window = window(dir.path());
    assert!(before_window.0.is_some());
    let before = stored(dir.path());

    // Both changed in Lever: o1 now has an unreadable field, o2 an unreadable note.
    let mut script = quiet_script(&["o1", "o2", "o3"]);
    script.opportunities[0]["updatedAt"] = json!(1_800_000_000_000_i64);
    script.opportunities[0]["stageChanges"] = json!("Private Person");
    script.opportunities[1]["updatedAt"] = json!(1_800_000_000_000_i64);
    script.opportunities[1]["headline"] = json!("Changed");
    script
        .notes
        .get_mut("o2")
        .expect("notes")
        .push(json!({"id": "n-odd", "fields": "Private Note"}));
    let second = sync_with(script, dir.path()).await;
    let mut failed = second.failed_ids.clone();
    failed.sort();
    assert_eq!(failed, ["o1", "o2"], "{:?}", second.malformed);
    assert!(second.listing_complete);
    assert_eq!(second.malformed_records, 2, "{:?}", second.malformed);
    // Kept as stored (o2 without its new headline and still with its note), queued for the
    // next run; the window moves on for everything else.
    assert_eq!(stored(dir.path()), before);
    let second_window = window(dir.path());
    assert_ne!(second_window, before_window);
    let queued = Inbox::new(dir.path()).read().expect("inbox");
    let mut retried = queued.opportunity_ids();
    retried.sort();
    assert_eq!(retried, ["o1", "o2"]);
    assert!(queued.notices.iter().all(|n| n.event == RETRY_EVENT));
    let reported = serde_json::to_string(&second.malformed).expect("json");
    assert!(!reported.contains("Private"), "{reported}");

    // Still unreadable: fetched by id again, still queued (once), the window still moves.
    let mut script = quiet_script(&["o1", "o2", "o3"]);
    script.opportunities[0]["stageChanges"] = json!("Private Person");
    let third = sync_with(script, dir.path()).await;
    assert_eq!(third.failed_ids, ["o1"]);
    third.release_notices(dir.path()).expect("release");
    let queued = Inbox::new(dir.path()).read().expect("inbox");
    assert_eq!(queued.opportunity_ids(), ["o1"]);
    assert_eq!(queued.notices.len(), 1);
    assert_ne!(window(dir.path()), second_window);

    // Readable again, though Lever's updatedAt did not move since: fetched by id and stored.
    let mut script = quiet_script(&["o1", "o2", "o3"]);
    script.opportunities[0]["headline"] = json!("Fixed in Lever");
    let fourth = sync_with(script, dir.path()).await;
    assert!(fourth.failed_ids.is_empty());
    fourth.release_notices(dir.path()).expect("release");
    assert!(
        Inbox::new(dir.path())
            .read()
            .expect("inbox")
            .notices
            .is_empty()
    );
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(
        store.get("o1").expect("get").expect("o1").headline,
        "Fixed in Lever"
    );
}

#[tokio::test]
async fn a_cut_short_listing_purges_nothing_and_the_next_run_is_full_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A record without an id: the listing is incomplete, so the next run is full again.
    let mut script = quiet_script(&["o1", "o2", "o3"]);
    script.opportunities.push(json!({"name": "No Id Person"}));
    let first = sync_with(script, dir.path()).await;
    assert!(!first.listing_complete);
    assert!(first.failed_ids.is_empty());
    assert_eq!(first.opportunities_total, 3);
    assert_eq!(window(dir.path()), (None, None));

    let mut o1 = opportunity("o1");
    o1["updatedAt"] = json!(1_700_000_000_000_i64);
    let page1 = json!({"data": [o1], "hasNext": true, "next": "p1"}).to_string();
    for last in [
        json!({"data": null, "hasNext": false}),
        json!({"hasNext": false}),
        json!({"data": [], "hasNext": true}),
    ] {
        let script = Script {
            raw_pages: Some(vec![page1.clone(), last.to_string()]),
            resumes: [("o1".to_string(), vec![])].into(),
            ..Script::default()
        };
        let report = sync_with(script, dir.path()).await;
        assert_eq!(report.mode, SyncMode::Full, "{last}");
        assert!(!report.listing_complete, "{last}");
        assert_eq!(report.opportunities_deleted, 0, "{last}");
        assert_eq!(stored(dir.path()).len(), 3, "{last}");
    }

    // A complete listing of o1 alone purges the others.
    let report = sync_with(quiet_script(&["o1"]), dir.path()).await;
    assert!(report.listing_complete);
    assert_eq!(report.opportunities_deleted, 2);
    assert!(window(dir.path()).0.is_some());
}

#[tokio::test]
async fn unreadable_deletions_hold_the_window_and_deleted_applications_name_their_opportunity() {
    let dir = tempfile::tempdir().expect("tempdir");
    sync_with(quiet_script(&["o1", "o2", "o3"]), dir.path()).await;
    let before_window = window(dir.path());

    let mut script = quiet_script(&["o1", "o2", "o3"]);
    script.deleted = vec![json!({"deletedAt": 5})];
    script.deleted_applications = Some(vec![
        json!({"id": "a1", "opportunity": "o1", "deletedAt": 5}),
        json!({"id": "a2", "postingId": "p1", "deletedAt": 5}),
    ]);
    let report = sync_with(script, dir.path()).await;
    assert_eq!(report.mode, SyncMode::Incremental);
    assert!(!report.listing_complete);
    assert!(report.failed_ids.is_empty());
    assert_eq!(window(dir.path()), before_window);
    // o1, named by its deleted application, has its children fetched again; the rest are kept.
    assert_eq!(
        (report.opportunities_fetched, report.opportunities_unchanged),
        (1, 2)
    );
    assert!(
        report
            .malformed
            .iter()
            .any(|m| m.id.as_deref() == Some("a2") && m.reason == "no opportunity id"),
        "{:?}",
        report.malformed
    );

    let mut script = quiet_script(&["o1", "o2"]);
    script.deleted = vec![json!({"id": "o3", "deletedAt": 5})];
    script.deleted_applications = Some(vec![json!({"id": "a2", "deletedAt": 5})]);
    let report = sync_with(script, dir.path()).await;
    assert!(report.listing_complete);
    assert_eq!(report.commit.deleted, vec!["o3".to_string()]);
    assert_ne!(window(dir.path()), before_window);
}

#[tokio::test]
async fn an_opportunity_the_key_may_not_see_is_purged_but_a_missing_permission_stops_the_run() {
    use rediscover::sync::inbox::{Inbox, Notice};
    let dir = tempfile::tempdir().expect("tempdir");
    sync_with(quiet_script(&["o1", "o2", "o3", "o4"]), dir.path()).await;

    // o2 changed, then became invisible to this key between the listing and its children;
    // a webhook names o3, which this key may no longer see (nor list).
    let inbox = Inbox::new(dir.path());
    inbox
        .append(&Notice {
            event: "candidateStageChange".into(),
            opportunity_id: "o3".into(),
            triggered_at: None,
        })
        .expect("append");
    let mut script = quiet_script(&["o1", "o2", "o4"]);
    script.opportunities[1]["updatedAt"] = json!(1_800_000_000_000_i64);
    script.forbidden = ["o2".to_string(), "o3".to_string()].into();
    let report = sync_with(script, dir.path()).await;
    assert_eq!(report.opportunities_not_visible, 2);
    assert!(report.failed_ids.is_empty());
    let mut deleted = report.commit.deleted.clone();
    deleted.sort();
    assert_eq!(deleted, ["o2", "o3"]);
    report.release_notices(dir.path()).expect("release");
    assert!(inbox.read().expect("inbox").notices.is_empty());

    // A key without the notes permission is refused on every opportunity: the run stops.
    let generation = Store::open(dir.path()).expect("open").generation();
    let mut script = quiet_script(&["o1", "o4"]);
    script.opportunities[0]["updatedAt"] = json!(1_900_000_000_000_i64);
    script.notes_forbidden = true;
    let url = serve(Arc::new(script)).await;
    let err = run(options(dir.path(), &url, KEY))
        .await
        .expect_err("a missing permission is fatal");
    assert!(err.to_string().contains("403"), "{err}");
    assert_eq!(
        Store::open(dir.path()).expect("open").generation(),
        generation
    );
    assert_eq!(stored(dir.path()).len(), 2);
}

#[test]
fn real_docx_resumes_extract_to_readable_text() {
    let dir = cv_dir();
    let mut checked = 0;
    for n in 1..=8 {
        let bytes = std::fs::read(dir.join(format!("CV/{n}.docx"))).expect("docx");
        let txt = std::fs::read_to_string(dir.join(format!("CV_txt/{n}.txt"))).expect("txt twin");
        let text = extract(Format::Docx, &bytes).expect("docx text");
        let extracted: HashSet<String> = words(&text).into_iter().collect();
        let expected = words(&txt);
        let found = expected.iter().filter(|w| extracted.contains(*w)).count();
        assert!(
            found * 10 >= expected.len() * 9,
            "CV {n}: {found} of {} words",
            expected.len()
        );
        checked += 1;
    }
    assert_eq!(checked, 8);
}

// ---------------------------------------------------------------------------------------------
// Against the mock Lever.

use rediscover::mock_lever::{FaultUpdate, MockConfig, MockLever, MutateOp, Pool, generate_pool};

async fn mock(pool: Pool, rate: f64) -> MockLever {
    let config = MockConfig {
        api_keys: vec![KEY.into()],
        rate_per_sec: rate,
        burst: (rate as u32).max(20),
        ..MockConfig::default()
    };
    MockLever::start("127.0.0.1:0".parse().expect("addr"), pool, config)
        .await
        .expect("mock")
}

fn words_joined(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Every opportunity of the pool is stored with its resume texts, notes and feedback.
fn assert_store_matches_pool(data: &Path, pool: &Pool) {
    let store = stored(data);
    let mut expected_ids: Vec<&str> = pool.opportunities().iter().map(|o| o.id()).collect();
    expected_ids.sort();
    let mut ids: Vec<&str> = store.keys().map(String::as_str).collect();
    ids.sort();
    assert_eq!(ids, expected_ids);
    for opp in pool.opportunities() {
        let c = &store[opp.id()];
        let o = &opp.opportunity;
        assert_eq!(c.contact_id, opp.contact_id());
        assert_eq!(c.name, str_of(o, "name"));
        assert_eq!(c.headline, str_of(o, "headline"));
        assert_eq!(c.updated_at, opp.updated_at());
        let stage = o
            .get("stage")
            .map(|s| s.as_str().unwrap_or_else(|| str_of(s, "id")));
        assert_eq!(Some(c.stage_id.as_str()), stage);
        let tags: Vec<&str> = o["tags"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(c.tags, tags);
        assert_eq!(
            c.archived.as_ref().map(|a| a.reason_id.as_str()),
            o["archived"].get("reason").and_then(Value::as_str)
        );

        let resume_ids: Vec<&str> = opp.resumes.iter().map(|r| r.id()).collect();
        let stored_ids: Vec<&str> = c.resumes.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(stored_ids, resume_ids, "resumes of {}", opp.id());
        for (mock_resume, resume) in opp.resumes.iter().zip(&c.resumes) {
            match (mock_resume.file_status(), mock_resume.file_ext()) {
                (None, _) => assert_eq!(resume.text_status, TextStatus::NoFile),
                (Some("error"), _) => assert_eq!(resume.text_status, TextStatus::Unprocessable),
                (Some(_), Some(ext)) if Format::from_ext(ext).is_some() => {
                    assert_eq!(
                        resume.text_status,
                        TextStatus::Extracted,
                        "resume {}",
                        resume.id
                    );
                    assert_eq!(
                        words_joined(resume.text.as_deref().unwrap_or("")),
                        words_joined(&mock_resume.text),
                        "text of resume {} ({ext})",
                        resume.id
                    );
                }
                (Some(_), _) => assert!(matches!(resume.text_status, TextStatus::Unsupported(_))),
            }
        }

        // Secret notes are never stored.
        let live_notes: Vec<&Value> = opp
            .notes
            .iter()
            .filter(|n| n["deletedAt"].is_null() && n["secret"] != true)
            .collect();
        assert_eq!(c.notes.len(), live_notes.len(), "notes of {}", opp.id());
        for note in live_notes {
            let stored_note = c
                .notes
                .iter()
                .find(|n| n.id == str_of(note, "id"))
                .expect("note stored");
            let comments: Vec<&str> = note["fields"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| str_of(f, "value"))
                .filter(|v| !v.trim().is_empty())
                .collect();
            assert_eq!(stored_note.comments, comments);
        }
        let live_feedback: Vec<&Value> = opp
            .feedback
            .iter()
            .filter(|f| f["deletedAt"].is_null())
            .collect();
        assert_eq!(
            c.feedback.len(),
            live_feedback.len(),
            "feedback of {}",
            opp.id()
        );
        for form in live_feedback {
            let stored_form = c
                .feedback
                .iter()
                .find(|f| f.id == str_of(form, "id"))
                .expect("feedback stored");
            for field in form["fields"].as_array().into_iter().flatten() {
                if field["type"] == "textarea"
                    && field["value"]
                        .as_str()
                        .is_some_and(|v| !v.trim().is_empty())
                {
                    let answer = field["value"].as_str().unwrap_or_default();
                    assert!(
                        stored_form.answers.iter().any(|a| a.answer == answer),
                        "answer of {}",
                        stored_form.id
                    );
                }
            }
        }
    }
}

/// The pool's live opportunity ids, in order.
fn opportunity_ids(pool: &Pool) -> Vec<String> {
    pool.opportunities()
        .iter()
        .map(|o| o.id().to_owned())
        .collect()
}

/// The id of the pool's last pipeline stage.
fn last_stage(pool: &Pool) -> String {
    pool.stages()
        .last()
        .map(|s| str_of(s, "id").to_owned())
        .expect("stage")
}

fn fast_options(data: &Path, url: &str, rate: f64) -> SyncOptions {
    let mut options = options(data, url, KEY);
    options.client.rate = rate;
    options
}

/// An incremental run only sees what changed since the last one; `full` lists everything
/// again: here a data folder synced from one pool, then pointed at another whose records all
/// predate the window, ends up holding exactly the second pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_lists_everything_again_and_purges_what_lever_no_longer_has() {
    let first = mock(generate_pool(20, 1), 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    run(fast_options(dir.path(), &first.base_url(), 5_000.0))
        .await
        .expect("first");
    let second = mock(generate_pool(15, 2), 10_000.0).await;
    let incremental = run(fast_options(dir.path(), &second.base_url(), 5_000.0))
        .await
        .expect("incremental");
    assert_eq!(incremental.mode, SyncMode::Incremental);
    assert_eq!(
        Store::open(dir.path()).expect("open").len(),
        20,
        "the window sees nothing"
    );

    let mut options = fast_options(dir.path(), &second.base_url(), 5_000.0);
    options.full = true;
    let full = run(options).await.expect("full");
    assert_eq!(full.mode, SyncMode::Full);
    assert_eq!(full.commit.deleted.len(), 20);
    assert_store_matches_pool(dir.path(), &second.pool());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_sync_equals_the_mock_pool() {
    let lever = mock(generate_pool(200, 11), 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("sync");
    let pool = lever.pool();
    assert_eq!(
        report.opportunities_total as usize,
        pool.opportunities().len()
    );
    assert_eq!(
        report.opportunities_changed as usize,
        pool.opportunities().len()
    );
    assert_eq!(report.malformed_records, 0);
    assert_store_matches_pool(dir.path(), &pool);
    let store = Store::open(dir.path()).expect("open");
    assert_eq!(store.reference().postings.len(), pool.postings().len());
    assert!(
        store
            .reference()
            .postings
            .iter()
            .all(|p| !p.description.is_empty())
    );
    assert_eq!(store.reference().stages.len(), pool.stages().len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_notes_never_reach_the_store() {
    let lever = mock(generate_pool(60, 11), 10_000.0).await;
    let pool = lever.pool();
    let secret_ids: Vec<&str> = pool
        .opportunities()
        .iter()
        .flat_map(|o| &o.notes)
        .filter(|n| n["secret"] == true && n["deletedAt"].is_null())
        .map(|n| str_of(n, "id"))
        .collect();
    assert!(!secret_ids.is_empty(), "the pool has live secret notes");
    // One more through Lever's note route, with a text no other note has.
    let target = opportunity_ids(&pool)[0].clone();
    let (secret_text, open_text) = ("Zorblax salary expectations", "Quixotic platform lead");
    let client = reqwest::Client::new();
    for (text, secret) in [(secret_text, true), (open_text, false)] {
        let response = client
            .post(format!("{}/opportunities/{target}/notes", lever.base_url()))
            .basic_auth(KEY, Some(""))
            .json(&json!({"value": text, "secret": secret}))
            .send()
            .await
            .expect("create note");
        assert_eq!(response.status(), 201);
    }

    let dir = tempfile::tempdir().expect("tempdir");
    run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("sync");
    let store = stored(dir.path());
    assert_eq!(store.len(), pool.opportunities().len());
    for candidate in store.values() {
        for note in &candidate.notes {
            assert!(
                !secret_ids.contains(&note.id.as_str()),
                "secret note {} stored",
                note.id
            );
        }
    }
    assert!(
        store[&target]
            .notes
            .iter()
            .any(|n| n.comments.iter().any(|c| c == open_text)),
        "the open note is stored"
    );
    let holds = |bytes: &[u8], text: &str| bytes.windows(text.len()).any(|w| w == text.as_bytes());
    let files = files_under(dir.path());
    // Texts are stored as plain bytes, so a search of the files finds them.
    assert!(files.iter().any(|(_, bytes)| holds(bytes, open_text)));
    for (path, bytes) in files {
        assert!(
            !holds(&bytes, secret_text),
            "a secret note's text is in {}",
            path.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_sync_fetches_is_embedded_while_it_fetches() {
    let models = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    let embedder = Arc::new(Embedder::load_with_sessions(&models, 2).expect("run models/fetch.sh"));
    let lever = mock(generate_pool(24, 3), 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let prefetcher = Prefetcher::start(Arc::clone(&embedder)).expect("prefetcher");
    let mut options = fast_options(dir.path(), &lever.base_url(), 5_000.0);
    options.fetched = Some(prefetcher.sender());
    let report = run(options).await.expect("sync");
    // Finishing reports progress over every candidate the run offered, whether embedded
    // before the end of the sync or after it.
    let events = Arc::new(std::sync::Mutex::new(Vec::new()));
    let progress = {
        let events = Arc::clone(&events);
        rediscover::index::Progress::new(move |event| {
            use rediscover::index::ProgressEvent;
            let event = match event {
                ProgressEvent::Start { phase, total } => format!("start {phase} {total:?}"),
                ProgressEvent::Advance(n) => format!("advance {n}"),
                ProgressEvent::Finish => "finish".to_owned(),
            };
            events.lock().unwrap().push(event);
        })
    };
    let cache = prefetcher.finish_with(progress);
    assert_eq!(report.opportunities_fetched, 24);
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events.first().map(String::as_str),
        Some("start embedding Some(24)"),
        "{events:?}"
    );
    assert_eq!(
        events.last().map(String::as_str),
        Some("finish"),
        "{events:?}"
    );
    let advanced: u64 = events
        .iter()
        .filter_map(|e| e.strip_prefix("advance ")?.parse::<u64>().ok())
        .sum();
    assert_eq!(advanced, 24, "{events:?}");
    let store = Store::open(dir.path()).expect("open");
    let mut passages = 0;
    for candidate in store.candidates() {
        let candidate = candidate.expect("stored candidate");
        for passage in chunk::passages(&candidate, &embedder).expect("chunk") {
            assert!(
                cache.contains(&passage.text),
                "a fetched passage was not embedded ahead"
            );
            passages += 1;
        }
    }
    assert!(passages >= 24 && cache.len() <= passages);
    let outcome = pipeline::bring_up_to_date(
        dir.path(),
        &store,
        Some(&report.commit),
        &embedder,
        Some(&cache),
        &rediscover::index::Progress::none(),
    )
    .expect("index");
    assert_eq!(outcome.action, pipeline::IndexAction::Rebuilt);
    assert_eq!(outcome.stats.expect("stats").candidates, 24);

    // A run that fetches everything again (`--full`) starts from the index's vectors, so
    // the unchanged candidates it fetches are not embedded a second time.
    let reusing = Prefetcher::start_reusing(Arc::clone(&embedder), Some(dir.path().into()))
        .expect("prefetcher");
    let preloaded = reusing.finish();
    assert_eq!(preloaded.len(), cache.len(), "every vector of the index");
    let plain = Prefetcher::start(Arc::clone(&embedder)).expect("prefetcher");
    assert!(plain.finish().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_rate_limits_do_not_change_the_result() {
    let pool = generate_pool(80, 5);
    let clean = mock(pool.clone(), 10_000.0).await;
    let clean_dir = tempfile::tempdir().expect("tempdir");
    run(fast_options(clean_dir.path(), &clean.base_url(), 5_000.0))
        .await
        .expect("clean sync");

    let faulty = mock(pool, 10_000.0).await;
    faulty.set_faults(FaultUpdate {
        fail_rate: Some(0.15),
        ..FaultUpdate::default()
    });
    faulty.force_next(429, 6);
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(fast_options(dir.path(), &faulty.base_url(), 5_000.0))
        .await
        .expect("faulty sync");
    let stats = faulty.stats();
    assert!(
        stats.injected_faults > 0 && stats.rate_limited >= 6,
        "{stats:?}"
    );
    assert!(report.retries >= stats.injected_faults + 6);
    assert!(report.rate_limited >= 6);
    assert_eq!(report.opportunities_failed, 0);
    assert_eq!(stored(dir.path()), stored(clean_dir.path()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_never_exceeds_its_limiter() {
    let lever = mock(generate_pool(30, 3), 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut options = fast_options(dir.path(), &lever.base_url(), 50.0);
    options.client.burst = Some(5);
    let report = run(options).await.expect("sync");
    let stats = lever.stats();
    assert_eq!(stats.total, report.api_calls);
    // A token bucket of rate r and burst b sends at most r + b requests in any one second (55);
    // 5 more allow for arrival jitter on a loaded machine. Unthrottled, all ~125 requests of
    // this run would land within one second.
    let busiest = stats.max_in_window(1000);
    assert!(busiest <= 60, "max in a second: {busiest}");
    assert!(stats.max_per_second() <= 60);
    assert!(report.wall_seconds >= (report.api_calls as f64 - 5.0) / 50.0 * 0.95);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_sync_resumes_to_the_same_store() {
    let pool = generate_pool(120, 21);
    let lever = mock(pool.clone(), 10_000.0).await;
    let reference_dir = tempfile::tempdir().expect("tempdir");
    run(fast_options(
        reference_dir.path(),
        &lever.base_url(),
        5_000.0,
    ))
    .await
    .expect("reference");

    let interrupted = mock(pool, 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let task = tokio::spawn(run(fast_options(
        dir.path(),
        &interrupted.base_url(),
        400.0,
    )));
    while interrupted.stats().total < 150 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    assert!(task.await.is_err(), "the run was cancelled");
    assert_eq!(
        Store::open(dir.path()).expect("open").generation(),
        0,
        "nothing published"
    );

    let report = run(fast_options(dir.path(), &interrupted.base_url(), 5_000.0))
        .await
        .expect("resume");
    assert!(report.resumed);
    assert!(report.opportunities_resumed > 0, "{report:?}");
    assert_eq!(stored(dir.path()), stored(reference_dir.path()));
    assert_eq!(report.opportunities_total, 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_backfill_does_not_publish_what_lever_deleted_meanwhile() {
    let lever = mock(generate_pool(60, 17), 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ids = opportunity_ids(&lever.pool());
    // Interrupt the backfill (again, resuming, until it has staged something).
    let mut staged = Vec::new();
    for _ in 0..20 {
        let calls = lever.stats().total;
        let task = tokio::spawn(run(fast_options(dir.path(), &lever.base_url(), 200.0)));
        while lever.stats().total < calls + 40 && !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        task.abort();
        assert!(task.await.is_err(), "the run was cancelled");
        let batch = Store::begin(dir.path()).expect("begin");
        staged = batch.staged_upserts().map(str::to_owned).collect();
        drop(batch);
        if !staged.is_empty() {
            break;
        }
    }
    assert_eq!(
        Store::open(dir.path()).expect("open").generation(),
        0,
        "nothing published"
    );
    let gone = staged.first().expect("a staged opportunity").clone();
    lever
        .mutate(MutateOp::Delete {
            opportunity_id: gone.clone(),
        })
        .expect("delete");

    let report = run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("resume");
    assert!(report.resumed && report.listing_complete, "{report:?}");
    assert_eq!(report.mode, SyncMode::Full);
    let store = Store::open(dir.path()).expect("open");
    assert!(
        !store.contains(&gone),
        "a deleted opportunity was published"
    );
    assert!(!report.commit.changed.contains(&gone));
    assert_eq!(store.len(), ids.len() - 1);
    assert_store_matches_pool(dir.path(), &lever.pool());
}

/// A resumed run keeps what the interrupted run fetched only while Lever says it did not change:
/// a note added in between is published by the resuming run, not a night later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_sync_fetches_again_what_lever_changed_meanwhile() {
    let lever = mock(generate_pool(60, 23), 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Interrupt the backfill until it has staged two opportunities Lever gives an `updatedAt`
    // (one without is fetched again by any run).
    let dated: HashSet<String> = lever
        .pool()
        .opportunities()
        .iter()
        .filter(|o| o.updated_at().is_some())
        .map(|o| o.id().to_owned())
        .collect();
    let mut staged = Vec::new();
    for _ in 0..20 {
        let calls = lever.stats().total;
        let mut options = fast_options(dir.path(), &lever.base_url(), 200.0);
        // Few at a time, so some finish before the interruption.
        options.concurrency = 2;
        let task = tokio::spawn(run(options));
        while lever.stats().total < calls + 60 && !task.is_finished() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        task.abort();
        assert!(task.await.is_err(), "the run was cancelled");
        let batch = Store::begin(dir.path()).expect("begin");
        staged = batch
            .staged_upserts()
            .filter(|id| dated.contains(*id))
            .map(str::to_owned)
            .collect();
        drop(batch);
        if staged.len() >= 2 {
            break;
        }
    }
    assert!(staged.len() >= 2, "two staged opportunities: {staged:?}");
    let (changed, kept) = (staged[0].clone(), staged[1].clone());
    lever
        .mutate(MutateOp::AddNote {
            opportunity_id: changed.clone(),
            text: "Asked to be considered for platform roles".into(),
        })
        .expect("note");

    let report = run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("resume");
    assert!(report.resumed, "{report:?}");
    assert!(
        report.opportunities_resumed >= 1,
        "{kept} was kept: {report:?}"
    );
    let store = stored(dir.path());
    assert!(
        store[&changed]
            .notes
            .iter()
            .any(|n| n.comments.iter().any(|c| c.contains("platform roles"))),
        "the note added after the interruption is missing"
    );
    assert_store_matches_pool(dir.path(), &lever.pool());
}

/// Lever pages by (stage, creation time, id): an opportunity moved back in that order while a
/// full run reads the list is never listed. A complete full listing over a populated store does
/// not purge it: Lever is asked for it by id, it keeps its stored version, and the next run
/// fetches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_run_does_not_purge_what_the_listing_skipped() {
    // More opportunities than the listing reads ahead of the writer (256, and a page), so the
    // last ones are not listed yet when the trigger is fetched.
    let lever = mock(generate_pool(400, 23), 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("first sync");
    // A populated store whose next run is a full one (as after an incomplete full run).
    Store::begin(dir.path())
        .expect("begin")
        .commit(SyncState::default())
        .expect("commit");
    let pool = lever.pool();
    let key = |o: &rediscover::mock_lever::MockOpportunity, stage: &str| {
        (
            pool.stage_index(stage).expect("stage"),
            o.opportunity["createdAt"].as_i64().expect("createdAt"),
            o.id().to_owned(),
        )
    };
    let stage_of = |o: &rediscover::mock_lever::MockOpportunity| {
        o.opportunity["stage"].as_str().expect("stage").to_owned()
    };
    let mut order: Vec<_> = pool
        .opportunities()
        .iter()
        .map(|o| (key(o, &stage_of(o)), o.id().to_owned()))
        .collect();
    order.sort();
    // The last opportunity listed moves to the first one's stage once the listing is past
    // where it lands there.
    let moved = order.last().expect("opportunities").1.clone();
    let first_stage = stage_of(pool.opportunity(&order[0].1).expect("first"));
    let landing = key(pool.opportunity(&moved).expect("moved"), &first_stage);
    let past = order.iter().position(|(k, _)| *k > landing).expect("past");
    let trigger = order[past + 1].1.clone();
    assert!(
        past + 1 + 256 + 2 * 10 < order.len() - 1,
        "the trigger comes early in the list"
    );
    // Every opportunity changed, so each one is fetched (and offered) in list order.
    for (_, id) in &order {
        lever
            .mutate(MutateOp::AddNote {
                opportunity_id: id.clone(),
                text: "Checked in.".into(),
            })
            .expect("note");
    }
    let (sender, received) = std::sync::mpsc::sync_channel(1_000);
    let mut options = fast_options(dir.path(), &lever.base_url(), 5_000.0);
    options.client.page_size = 10;
    options.concurrency = 1;
    options.fetched = Some(sender);
    let task = tokio::spawn(run(options));
    loop {
        match received.try_recv() {
            Ok(candidate) if candidate.id == trigger => break,
            Ok(_) => {}
            Err(std::sync::mpsc::TryRecvError::Empty) => {
                assert!(!task.is_finished(), "the run ended before the trigger");
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    lever
        .mutate(MutateOp::MoveStage {
            opportunity_id: moved.clone(),
            stage_id: first_stage,
        })
        .expect("move");
    let report = task.await.expect("join").expect("full run");
    let later: Vec<String> = received.try_iter().map(|c| c.id).collect();
    assert!(
        !later.contains(&moved),
        "the moved opportunity was listed after all"
    );
    assert_eq!(report.mode, SyncMode::Full);
    assert!(report.listing_complete, "{report:?}");
    assert!(
        !report.commit.deleted.contains(&moved),
        "an opportunity the listing skipped was purged"
    );
    assert!(Store::open(dir.path()).expect("open").contains(&moved));
    let queued = Inbox::new(dir.path()).read().expect("inbox");
    assert!(
        queued
            .notices
            .iter()
            .any(|n| n.opportunity_id == moved && n.event == RETRY_EVENT),
        "{queued:?}"
    );
    // The next run fetches it by id: the store equals the pool again.
    run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("next sync");
    assert_store_matches_pool(dir.path(), &lever.pool());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_stored_records_do_not_stop_a_sync_and_are_fetched_again() {
    let lever = mock(generate_pool(30, 5), 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("full");
    let pool = lever.pool();
    let ids = opportunity_ids(&pool);
    // `named` is fetched again (a webhook notice) though nothing changed in Lever; `other`
    // is not, but lives in the segment the next commit rewrites.
    let (named, other) = (ids[0].clone(), ids[1].clone());
    corrupt_stored_record(dir.path(), &named);
    corrupt_stored_record(dir.path(), &other);
    let store = Store::open(dir.path()).expect("open");
    assert!(store.get(&named).is_err() && store.get(&other).is_err());
    drop(store);
    Inbox::new(dir.path())
        .append(&rediscover::sync::inbox::Notice {
            event: "candidateStageChange".into(),
            opportunity_id: named.clone(),
            triggered_at: Some(1),
        })
        .expect("notice");

    let report = run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("a sync over a corrupt record");
    assert_eq!(report.opportunities_failed, 0);
    let store = Store::open(dir.path()).expect("open");
    assert!(store.get(&named).expect("readable").is_some());
    // Dropped rather than copied forward unreadable, and queued for the next run.
    assert_eq!(report.commit.deleted, std::slice::from_ref(&other));
    assert!(!store.contains(&other));
    let queued = Inbox::new(dir.path()).read().expect("inbox");
    assert!(
        queued
            .notices
            .iter()
            .any(|n| n.opportunity_id == other && n.event == RETRY_EVENT)
    );
    drop(store);

    run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("next sync");
    assert_store_matches_pool(dir.path(), &lever.pool());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_sync_picks_up_exactly_the_changes() {
    let lever = mock(generate_pool(100, 8), 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("full");
    let pool = lever.pool();
    let ids = opportunity_ids(&pool);
    let with_resume = pool
        .opportunities()
        .iter()
        .find(|o| {
            o.resumes
                .iter()
                .any(|r| r.file_status() == Some("processed"))
        })
        .map(|o| o.id().to_owned())
        .expect("an opportunity with a resume file");
    let stage = last_stage(&pool);
    let reason = pool.archive_reasons()[0]["id"]
        .as_str()
        .expect("reason")
        .to_owned();
    let mut expected_changed: HashSet<String> = HashSet::new();
    let ops = [
        MutateOp::AddNote {
            opportunity_id: ids[1].clone(),
            text: "Revisit for platform roles".into(),
        },
        MutateOp::MoveStage {
            opportunity_id: ids[2].clone(),
            stage_id: stage,
        },
        MutateOp::Archive {
            opportunity_id: ids[3].clone(),
            reason_id: Some(reason),
        },
        MutateOp::AddTags {
            opportunity_id: ids[4].clone(),
            tags: vec!["Rediscovered 2026".into()],
        },
        MutateOp::UpdateResumeText {
            opportunity_id: with_resume.clone(),
            resume_id: None,
            text: "Kubernetes operator author".into(),
        },
    ];
    for op in ops {
        lever.mutate(op).expect("mutate");
    }
    expected_changed.extend([
        ids[1].clone(),
        ids[2].clone(),
        ids[3].clone(),
        ids[4].clone(),
        with_resume,
    ]);
    lever
        .mutate(MutateOp::Delete {
            opportunity_id: ids[5].clone(),
        })
        .expect("delete");
    // An application deleted on its own leaves the opportunity's updatedAt alone: only
    // `/applications/deleted` tells.
    let applicant = pool
        .opportunities()
        .iter()
        .skip(6)
        .find(|o| !o.applications.is_empty())
        .map(|o| o.id().to_owned())
        .expect("an opportunity with an application");
    lever
        .mutate(MutateOp::DeleteApplication {
            opportunity_id: applicant.clone(),
            application_id: None,
        })
        .expect("delete application");
    expected_changed.insert(applicant.clone());
    let added = lever
        .mutate(MutateOp::AddCandidates { count: 3, seed: 99 })
        .expect("add");
    let before = lever.pool();
    let added_ids: Vec<String> = before
        .opportunities()
        .iter()
        .map(|o| o.id().to_owned())
        .filter(|id| !ids.contains(id))
        .collect();
    assert_eq!(added_ids.len(), 3, "{added}");
    expected_changed.extend(added_ids);

    lever.reset_stats();
    let report = run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("incremental");
    assert_eq!(report.mode, SyncMode::Incremental);
    let changed: HashSet<String> = report.commit.changed.iter().cloned().collect();
    assert_eq!(changed, expected_changed);
    assert_eq!(report.commit.deleted, vec![ids[5].clone()]);
    // Only the changed ones were fetched: a few list pages plus children of 9 opportunities.
    assert!(report.api_calls < 65, "{} calls", report.api_calls);
    assert_store_matches_pool(dir.path(), &lever.pool());
    let now_stored = stored(dir.path());
    let expected_postings: Vec<String> = lever
        .pool()
        .opportunity(&applicant)
        .map(|o| {
            o.applications
                .iter()
                .filter_map(|a| a["posting"].as_str().map(str::to_owned))
                .collect()
        })
        .expect("applicant");
    assert_eq!(now_stored[&applicant].posting_ids, expected_postings);

    // Nothing changed: nothing to do.
    let quiet = run(fast_options(dir.path(), &lever.base_url(), 5_000.0))
        .await
        .expect("quiet");
    assert!(quiet.commit.changed.is_empty() && quiet.commit.deleted.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_the_cli_sync_then_rerun_gives_the_same_store() {
    let pool = generate_pool(60, 33);
    let lever = mock(pool.clone(), 10_000.0).await;
    let reference_dir = tempfile::tempdir().expect("tempdir");
    run(fast_options(
        reference_dir.path(),
        &lever.base_url(),
        5_000.0,
    ))
    .await
    .expect("reference");

    let victim = mock(pool, 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cli = |rate: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_rediscover"));
        command
            .args([
                "sync",
                "--lever-url",
                &victim.base_url(),
                "--rate",
                rate,
                "--json",
                "--no-index",
                "--data",
            ])
            .arg(dir.path())
            .env("LEVER_API_KEY", KEY)
            .env_remove("LEVER_URL")
            .env_remove("REDISCOVER_DATA")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        command
    };
    let mut child = cli("150").spawn().expect("spawn");
    while victim.stats().total < 80 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");

    let mut rerun = cli("5000");
    let output = tokio::task::spawn_blocking(move || rerun.output())
        .await
        .expect("join")
        .expect("rerun");
    assert!(output.status.success(), "{:?}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout.lines().last().expect("a JSON line");
    let report: Value = serde_json::from_str(last).expect("json");
    for key in [
        "opportunities_total",
        "opportunities_changed",
        "opportunities_deleted",
        "api_calls",
        "retries",
        "rate_limited",
        "wall_seconds",
    ] {
        assert!(report.get(key).is_some(), "missing {key} in {last}");
    }
    assert_eq!(report["opportunities_total"], 60);
    assert_eq!(report["resumed"], true);
    assert_eq!(stored(dir.path()), stored(reference_dir.path()));
}

#[test]
fn cli_sync_without_a_key_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rediscover"))
        .args(["sync", "--lever-url", "http://127.0.0.1:9/v1", "--data"])
        .arg(dir.path())
        .env_remove("LEVER_API_KEY")
        .env_remove("LEVER_OAUTH_CLIENT_ID")
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("LEVER_API_KEY is not set"), "{stderr}");
    assert!(!dir.path().join("store").exists());
}

#[tokio::test]
async fn processes_sharing_the_oauth_token_file_never_spend_a_rotated_refresh_token() {
    use rediscover::lever::wire::WireStage;
    use rediscover::lever::{LeverClient, OAuthConfig, OAuthSession};

    let config = MockConfig {
        oauth: Some(rediscover::mock_lever::OAuthConfig {
            client_id: "id".into(),
            client_secret: "secret".into(),
            refresh_token: "rt-0".into(),
            access_ttl_ms: 3_600_000,
            scope: rediscover::mock_lever::OAuthConfig::DEFAULT_SCOPE.into(),
        }),
        rate_per_sec: 1000.0,
        burst: 100,
        ..MockConfig::default()
    };
    let lever = MockLever::start(
        "127.0.0.1:0".parse().expect("addr"),
        generate_pool(3, 1),
        config,
    )
    .await
    .expect("mock");
    let dir = tempfile::tempdir().expect("tempdir");
    let oauth = OAuthConfig {
        token_url: lever.oauth_token_url(),
        client_id: "id".into(),
        client_secret: "secret".into(),
        token_file: dir.path().join("lever-oauth.json"),
    };
    // Two processes: each loads the token file once, at start, and keeps its own copy.
    OAuthSession::seed(oauth.clone(), "rt-0").expect("seed");
    let client = |session: OAuthSession| {
        let config = ClientConfig {
            base_url: lever.base_url(),
            rate: 100.0,
            ..ClientConfig::default()
        };
        LeverClient::new(config, Credentials::OAuth(Arc::new(session))).expect("client")
    };
    let first = client(OAuthSession::load(oauth.clone()).expect("load"));
    let second = client(OAuthSession::load(oauth.clone()).expect("load"));
    let stages = |client: LeverClient| async move {
        client
            .list_all::<WireStage>("/stages", Vec::new())
            .await
            .map(|(stages, _)| stages.len())
    };

    // The first spends rt-0; the second must take over its tokens, not spend rt-0 again.
    assert!(stages(first.clone()).await.expect("first") > 0);
    assert!(
        stages(second.clone())
            .await
            .expect("second, after the first refreshed")
            > 0
    );
    // Access tokens expire: the second refreshes (a 401), then the first must not spend the
    // refresh token the second just rotated away.
    lever.expire_access_tokens();
    assert!(stages(second.clone()).await.expect("second refreshes") > 0);
    assert!(
        stages(first.clone())
            .await
            .expect("first, after the second refreshed")
            > 0
    );
    // Whatever the file holds last is still good for a new process.
    lever.expire_access_tokens();
    let third = client(OAuthSession::load(oauth.clone()).expect("load"));
    assert!(stages(third).await.expect("a new process") > 0);
    assert!(dir.path().join("lever-oauth.json.lock").exists());
}

#[tokio::test]
async fn oauth_401_refreshes_once_and_retries_with_the_rotated_token() {
    use axum::routing::{get, post};
    use rediscover::lever::wire::WireStage;
    use rediscover::lever::{LeverClient, OAuthConfig, OAuthSession};

    let issued = Arc::new(AtomicU32::new(0));
    let counter = issued.clone();
    let app = Router::new()
        .route(
            "/oauth/token",
            post(move || {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    axum::Json(json!({"access_token": format!("at-{n}"),
                                      "refresh_token": format!("rt-{n}"), "expires_in": 3600}))
                }
            }),
        )
        .route(
            "/v1/stages",
            get(|headers: HeaderMap| async move {
                // Only the second access token is accepted: the first one "expired".
                match headers.get("authorization").and_then(|h| h.to_str().ok()) {
                    Some("Bearer at-2") => list(&[json!({"id": "lead-new", "text": "New lead"})]),
                    _ => reply(401, r#"{"code":"UnauthorizedError","message":"expired"}"#),
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("tempdir");
    let oauth = OAuthConfig {
        token_url: format!("http://{addr}/oauth/token"),
        client_id: "id".into(),
        client_secret: "secret".into(),
        token_file: dir.path().join("lever-oauth.json"),
    };
    let session = OAuthSession::seed(oauth.clone(), "rt-0").expect("seed");
    let config = ClientConfig {
        base_url: format!("http://{addr}/v1"),
        rate: 100.0,
        ..ClientConfig::default()
    };
    let client = LeverClient::new(config, Credentials::OAuth(Arc::new(session))).expect("client");
    let (stages, _) = client
        .list_all::<WireStage>("/stages", Vec::new())
        .await
        .expect("stages");
    assert_eq!(stages.len(), 1);
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    let saved = std::fs::read_to_string(&oauth.token_file).expect("token file");
    assert!(
        saved.contains("rt-2"),
        "the rotated refresh token is persisted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lever_webhooks_reach_the_inbox_and_the_next_sync_acts_on_them() {
    use rediscover::api::http::{AppState, app};
    use rediscover::sync::inbox::{Inbox, Notice, TOKENS_FILE};

    let lever = mock(generate_pool(40, 21), 10_000.0).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path();
    run(fast_options(data, &lever.base_url(), 5_000.0))
        .await
        .expect("full");

    // rediscover's server, where Lever delivers (no index yet: the route does not need one).
    let engine = rediscover::engine::Engine::open(data, None).expect("engine");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/webhooks/lever",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(axum::serve(listener, app(AppState::new(Arc::new(engine), None))).into_future());

    // Subscribe through Lever's API; each webhook has its own signature token.
    let mut tokens = String::new();
    for event in ["candidateDeleted", "candidateStageChange"] {
        let created: Value = reqwest::Client::new()
            .post(format!("{}/webhooks", lever.base_url()))
            .basic_auth(KEY, Some(""))
            .json(&json!({"url": url, "event": event}))
            .send()
            .await
            .expect("subscribe")
            .json()
            .await
            .expect("subscription");
        let token = created["data"]["configuration"]["signatureToken"]
            .as_str()
            .expect("signature token");
        tokens.push_str(token);
        tokens.push('\n');
    }
    std::fs::write(data.join(TOKENS_FILE), tokens).expect("tokens");

    let pool = lever.pool();
    let ids = opportunity_ids(&pool);
    let stage = last_stage(&pool);
    lever
        .mutate(MutateOp::Delete {
            opportunity_id: ids[0].clone(),
        })
        .expect("delete");
    lever
        .mutate(MutateOp::MoveStage {
            opportunity_id: ids[1].clone(),
            stage_id: stage,
        })
        .expect("move");

    let inbox = Inbox::new(data);
    let mut waited = Duration::ZERO;
    let notices = loop {
        let pending = inbox.read().expect("inbox");
        if pending.notices.len() >= 2 || waited > Duration::from_secs(20) {
            break pending.notices;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += Duration::from_millis(50);
    };
    let mut seen: Vec<(&str, &str)> = notices
        .iter()
        .map(|n| (n.event.as_str(), n.opportunity_id.as_str()))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("candidateDeleted", ids[0].as_str()),
            ("candidateStageChange", ids[1].as_str())
        ]
    );

    let report = run(fast_options(data, &lever.base_url(), 5_000.0))
        .await
        .expect("incremental");
    assert_eq!(report.webhook_notices, 2);
    assert_eq!(report.commit.deleted, vec![ids[0].clone()]);
    assert!(report.commit.changed.contains(&ids[1]));
    // The notices stay (the deletion hidden) until the caller has updated the indexes.
    assert_eq!(inbox.read().expect("inbox").notices.len(), 2);
    report.release_notices(data).expect("release");
    assert!(inbox.read().expect("inbox").notices.is_empty());
    assert_store_matches_pool(data, &lever.pool());

    // A notice about an opportunity whose timestamps did not move still has its children
    // fetched again; nothing else is.
    let quiet = pool
        .opportunities()
        .iter()
        .skip(2)
        .find(|o| o.updated_at().is_some())
        .map(|o| o.id().to_owned())
        .expect("an opportunity with updatedAt");
    inbox
        .append(&Notice {
            event: "interviewCreated".into(),
            opportunity_id: quiet,
            triggered_at: None,
        })
        .expect("append");
    let forced = run(fast_options(data, &lever.base_url(), 5_000.0))
        .await
        .expect("forced");
    assert_eq!(forced.webhook_notices, 1);
    assert_eq!(forced.opportunities_fetched, 1);
    forced.release_notices(data).expect("release");
    assert!(inbox.read().expect("inbox").notices.is_empty());
}
