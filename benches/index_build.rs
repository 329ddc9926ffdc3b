//! Index build and reopen: build rate (candidates/s) at N synthetic candidates, bytes per
//! candidate, reopen time and resident memory of a fresh process after reopen, and HNSW
//! recall@10 against exact search, with query latency, for several `ef` values.
//!
//! Candidates are made with a fixed seed from real text: job titles from
//! `/work/shared/data/jobbert_eval/titles.csv` and resume windows from
//! `/work/shared/data/vanetik_vacancy_resume/CV_txt/*.txt` (`BENCH_DATA` overrides the folder).
//! Queries are held-out titles from `titles.test.csv`.
//!
//! Run: `BENCH_CANDIDATES=2000 cargo bench --bench index_build`.
//!
//! `BENCH_INSERT_VECTORS=N` instead measures incremental updates: N random unit vectors built
//! by hnsw_rs (a full build), then N more inserted into its flat graph by an update, with
//! vectors/s of both and recall@10 of queries near the inserted vectors.
//!
//! `BENCH_RELOAD_CANDIDATES=N` instead measures the vector layer alone at scale: N candidates
//! of random unit vectors, then in a fresh process reopen time, resident memory after reopen
//! and after 100 queries, and recall@10 against exact search with latency for several `ef`.
//!
//! `BENCH_PURGE_DATA=DIR` instead measures what deleting candidates costs on a copy of the data
//! folder DIR (store and index, e.g. the search bench's 100k pool): a rebuild first (which also
//! brings an index of an older version up to this one), then rounds of `BENCH_PURGE_DELETES`
//! (default 10) seeded deletions, each timed as the store commit (which rewrites the segments
//! that held them) and the index update (tombstones emptied, segments holding deleted documents
//! merged, tombstoned points removed from the graph), with the recall@10 of the live vectors
//! after each round. `BENCH_PURGE_REBUILD=0` skips the rebuild. The copy is removed afterwards;
//! DIR is not changed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rediscover::domain::{Candidate, Note, Position, ReferenceData, Resume, TextStatus};
use rediscover::index::chunk::{ChunkKind, Passage};
use rediscover::index::vector::{VectorIndex, VectorWriter};
use rediscover::index::{self, CandidateRow, Embedder, Indexes, Progress, VectorHit};

/// When set, this process only reopens the index in that data folder and reports.
const REOPEN_ENV: &str = "BENCH_REOPEN_DATA";
/// When set, this process only reopens the vector files in that folder and reports.
const REOPEN_VECTORS_ENV: &str = "BENCH_REOPEN_VECTORS";
/// Passages per candidate in the vector reload measurement.
const PASSAGES_PER_CANDIDATE: usize = 5;
/// Queries of each kind in the vector reload measurement.
const QUERIES: usize = 100;
/// Characters of resume text per synthetic candidate (about one to two passages).
const RESUME_CHARS: usize = 1200;

fn main() {
    if let Some(data) = std::env::var_os(REOPEN_ENV) {
        reopen_and_report(Path::new(&data));
        return;
    }
    if let Some(dir) = std::env::var_os(REOPEN_VECTORS_ENV) {
        reopen_vectors_and_report(Path::new(&dir));
        return;
    }
    if let Some(n) = std::env::var("BENCH_INSERT_VECTORS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        insert_rate(n);
        return;
    }
    if let Some(dir) = std::env::var_os("BENCH_PURGE_DATA") {
        let deletes = std::env::var("BENCH_PURGE_DELETES")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(10);
        purge_cost(Path::new(&dir), deletes);
        return;
    }
    if let Some(n) = std::env::var("BENCH_RELOAD_CANDIDATES")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
    {
        vector_reload_at_scale(n);
        return;
    }
    let n: usize = std::env::var("BENCH_CANDIDATES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    let data_root = std::env::var_os("BENCH_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/shared/data"));
    let models = std::env::var_os("REDISCOVER_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    let embedder = Embedder::load(&models).unwrap_or_else(|e| {
        eprintln!("index bench: cannot load the model ({e}); run models/fetch.sh");
        std::process::exit(1)
    });
    let titles = read_titles(&data_root.join("jobbert_eval/titles.csv"));
    let resumes = read_resumes(&data_root.join("vanetik_vacancy_resume/CV_txt"));
    if titles.is_empty() || resumes.is_empty() {
        eprintln!("index bench: no source text under {}", data_root.display());
        std::process::exit(1);
    }
    let candidates = synthetic(n, &titles, &resumes);
    let tmp = tempfile::tempdir().unwrap_or_else(|e| {
        eprintln!("index bench: no temp dir: {e}");
        std::process::exit(1)
    });

    let start = Instant::now();
    let stats = match index::rebuild(
        tmp.path(),
        1,
        candidates.into_iter(),
        &ReferenceData::default(),
        &embedder,
        &Progress::none(),
    ) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("index bench: build failed: {e}");
            std::process::exit(1)
        }
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "build: {n} candidates, {} vectors in {secs:.1} s = {:.1} candidates/s, {:.1} vectors/s",
        stats.vectors,
        n as f64 / secs,
        stats.vectors as f64 / secs
    );
    println!(
        "disk: {} bytes = {:.0} bytes/candidate",
        stats.bytes_on_disk,
        stats.bytes_on_disk as f64 / n as f64
    );

    // Reopen in a fresh process so build memory does not count.
    match std::env::current_exe()
        .and_then(|exe| Command::new(exe).env(REOPEN_ENV, tmp.path()).output())
    {
        Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
        Err(e) => eprintln!("index bench: reopen child failed: {e}"),
    }

    recall(
        tmp.path(),
        &embedder,
        &data_root.join("jobbert_eval/titles.test.csv"),
    );
}

fn reopen_and_report(data: &Path) {
    let before = rss_kib();
    let start = Instant::now();
    let ix = match Indexes::open(data) {
        Ok(ix) => ix,
        Err(e) => {
            eprintln!("reopen failed: {e}");
            std::process::exit(1)
        }
    };
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    println!(
        "reopen: {open_ms:.0} ms, RSS {} MiB after open (+{} MiB), {} candidates",
        rss_kib() / 1024,
        rss_kib().saturating_sub(before) / 1024,
        ix.stats().candidates
    );
}

fn recall(data: &Path, embedder: &Embedder, queries_csv: &Path) {
    let ix = match Indexes::open(data) {
        Ok(ix) => ix,
        Err(e) => {
            eprintln!("index bench: open failed: {e}");
            return;
        }
    };
    let titles = read_titles(queries_csv);
    let queries: Vec<&str> = titles.iter().take(200).map(String::as_str).collect();
    let vectors = embedder.embed_passages(&queries).unwrap_or_default();
    let exact: Vec<Vec<VectorHit>> = vectors
        .iter()
        .map(|q| ix.vectors().exact_search(q, 10))
        .collect();
    for ef in [16, 32, 64, 128, 256] {
        let start = Instant::now();
        let mut found = 0usize;
        let mut total = 0usize;
        for (q, truth) in vectors.iter().zip(&exact) {
            // A hit counts when it is as similar as the exact 10th: duplicate passages tie.
            let kth = truth.last().map_or(f32::MIN, |h| h.similarity) - 1e-6;
            let hits = ix.vectors().search(q, 10, ef);
            found += hits.iter().filter(|h| h.similarity >= kth).count();
            total += truth.len();
        }
        let us = start.elapsed().as_secs_f64() * 1e6 / vectors.len().max(1) as f64;
        println!(
            "hnsw ef={ef:>3}: recall@10 {:.4}, {us:.0} us/query ({} queries)",
            found as f64 / total.max(1) as f64,
            vectors.len()
        );
    }
}

/// Resident set size of this process (KiB), from /proc/self/status.
fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}

/// A KiB field of /proc/self/status (`VmRSS:`, `RssAnon:`, `RssFile:`...).
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Job titles from a jobbert CSV (`index,title,uri`).
fn read_titles(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let (_, rest) = l.split_once(',')?;
            let (title, _) = rest.rsplit_once(',')?;
            let title = title.trim().trim_matches('"').trim();
            (!title.is_empty()).then(|| title.to_owned())
        })
        .collect()
}

fn read_resumes(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .filter(|t| t.len() > 200)
        .collect()
}

/// `n` candidates with a fixed seed: a title, a window of a real resume, sometimes a note.
fn synthetic(n: usize, titles: &[String], resumes: &[String]) -> Vec<Candidate> {
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    (0..n)
        .map(|i| {
            let title = &titles[rng.gen_range(0..titles.len())];
            let resume = &resumes[rng.gen_range(0..resumes.len())];
            let start = floor_char(
                resume,
                rng.gen_range(0..resume.len().saturating_sub(RESUME_CHARS).max(1)),
            );
            let end = floor_char(resume, (start + RESUME_CHARS).min(resume.len()));
            let mut c = Candidate {
                id: format!("opp-{i:06}"),
                contact_id: format!("contact-{:06}", i / 2),
                headline: title.clone(),
                location: ["Berlin", "Remote", "London", ""][i % 4].into(),
                resumes: vec![Resume {
                    id: format!("res-{i}"),
                    text: Some(resume[start..end].to_owned()),
                    text_status: TextStatus::Extracted,
                    positions: vec![Position {
                        title: title.clone(),
                        org: format!("Company {}", rng.gen_range(0..500)),
                        ..Position::default()
                    }],
                    ..Resume::default()
                }],
                ..Candidate::default()
            };
            if rng.gen_bool(0.3) {
                c.notes.push(Note {
                    id: format!("note-{i}"),
                    comments: vec![format!("Phone screen for {title}: strong communication.")],
                    ..Note::default()
                });
            }
            c
        })
        .collect()
}

fn floor_char(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Storage-layer reopen at scale without the cost of embedding: `n` candidates of
/// `PASSAGES_PER_CANDIDATE` random unit vectors each (the HNSW graph, chunk table, texts and
/// rows, i.e. everything `Indexes::open` reads except tantivy, which opens by mmap in ms).
/// Run: `BENCH_RELOAD_CANDIDATES=100000 cargo bench --bench index_build`.
fn vector_reload_at_scale(n: usize) {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| {
        eprintln!("index bench: no temp dir: {e}");
        std::process::exit(1)
    });
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let start = Instant::now();
    let result = (|| {
        let mut writer = VectorWriter::create(tmp.path(), n * PASSAGES_PER_CANDIDATE)?;
        let text = "x".repeat(600);
        for ordinal in 0..n as u32 {
            let passages: Vec<Passage> = (0..PASSAGES_PER_CANDIDATE)
                .map(|_| Passage {
                    kind: ChunkKind::Resume,
                    start: 0,
                    end: text.len() as u32,
                    text: text.clone(),
                })
                .collect();
            let vectors = (0..PASSAGES_PER_CANDIDATE)
                .map(|_| unit_vector(&mut rng))
                .collect();
            writer.add(ordinal, &passages, vectors)?;
        }
        writer.finish()?;
        let rows: Vec<CandidateRow> = (0..n)
            .map(|i| {
                CandidateRow::new(
                    &Candidate {
                        id: format!("opp-{i:08}"),
                        contact_id: format!("contact-{i:08}"),
                        location: "berlin".into(),
                        tags: vec!["backend".into(), "referral".into()],
                        ..Candidate::default()
                    },
                    &ReferenceData::default(),
                )
            })
            .collect();
        index::rows::write(tmp.path(), &rows)?;
        Ok::<_, index::Error>(())
    })();
    match result {
        Ok(()) if n > 0 => {}
        Ok(()) => return,
        Err(e) => {
            eprintln!("index bench: vector build failed: {e}");
            std::process::exit(1)
        }
    }
    println!(
        "vector layer: {n} candidates x {PASSAGES_PER_CANDIDATE} random vectors written in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    for file in ["graph.bin", "vectors.f32", "chunks.bin", "chunks.txt"] {
        let bytes = std::fs::metadata(tmp.path().join(file)).map_or(0, |m| m.len());
        println!("  {file}: {:.1} MiB", bytes as f64 / (1 << 20) as f64);
    }
    match std::env::current_exe().and_then(|exe| {
        Command::new(exe)
            .env(REOPEN_VECTORS_ENV, tmp.path())
            .output()
    }) {
        Ok(out) => print!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("index bench: reopen child failed: {e}"),
    }
}

fn reopen_vectors_and_report(dir: &Path) {
    // Queries first, so their memory is not counted: near a stored vector (the first rows,
    // regenerated from the writer's seed) and uniformly random.
    let mut rows = ChaCha8Rng::seed_from_u64(9);
    let mut noise = ChaCha8Rng::seed_from_u64(10);
    let near: Vec<Vec<f32>> = (0..QUERIES)
        .map(|_| {
            let v = unit_vector(&mut rows);
            let r = unit_vector(&mut noise);
            normalised(v.iter().zip(&r).map(|(a, b)| a + b).collect())
        })
        .collect();
    let random: Vec<Vec<f32>> = (0..QUERIES).map(|_| unit_vector(&mut noise)).collect();

    let before = rss_kib();
    let anon_before = status_kib("RssAnon:");
    let start = Instant::now();
    let vectors = match VectorIndex::open(dir) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("reopen failed: {e}");
            std::process::exit(1)
        }
    };
    let rows = index::rows::read(dir).map(|r| r.len()).unwrap_or(0);
    let open_ms = start.elapsed().as_secs_f64() * 1e3;
    let after_open = rss_kib();
    println!(
        "vector layer reopen: {open_ms:.0} ms for {} vectors + {rows} rows, RSS {} MiB (+{} MiB)",
        vectors.len(),
        after_open / 1024,
        after_open.saturating_sub(before) / 1024
    );
    let start = Instant::now();
    for q in &near {
        std::hint::black_box(vectors.search(q, 10, index::DEFAULT_EF));
    }
    let first_ms = start.elapsed().as_secs_f64() * 1e3;
    let after_queries = rss_kib();
    let anon = status_kib("RssAnon:").saturating_sub(anon_before);
    println!(
        "after {QUERIES} queries (ef={}, cold pages): {first_ms:.0} ms total, RSS {} MiB (+{} MiB \
         since open, +{} MiB since start = {:.0} bytes/vector; of which anonymous +{} KiB, the \
         rest clean mmap'd file pages)",
        index::DEFAULT_EF,
        after_queries / 1024,
        after_queries.saturating_sub(after_open) / 1024,
        after_queries.saturating_sub(before) / 1024,
        after_queries.saturating_sub(before) as f64 * 1024.0 / vectors.len().max(1) as f64,
        anon
    );
    for (kind, queries) in [("near", &near), ("random", &random)] {
        let exact: Vec<Vec<VectorHit>> = queries
            .iter()
            .map(|q| vectors.exact_search(q, 10))
            .collect();
        for ef in [32, 64, 128] {
            let start = Instant::now();
            let hits: Vec<Vec<VectorHit>> =
                queries.iter().map(|q| vectors.search(q, 10, ef)).collect();
            let us = start.elapsed().as_secs_f64() * 1e6 / queries.len() as f64;
            let found: usize = hits
                .iter()
                .zip(&exact)
                .map(|(h, t)| {
                    h.iter()
                        .filter(|x| t.iter().any(|y| y.chunk == x.chunk))
                        .count()
                })
                .sum();
            let total: usize = exact.iter().map(Vec::len).sum();
            println!(
                "flat hnsw {kind:>6} queries ef={ef:>3}: recall@10 {:.4}, {us:.0} us/query",
                found as f64 / total.max(1) as f64
            );
        }
    }
}

/// See `BENCH_INSERT_VECTORS` in the file's doc. Run:
/// `BENCH_INSERT_VECTORS=3000 cargo bench --bench index_build`.
fn insert_rate(n: usize) {
    let (Ok(first), Ok(second)) = (tempfile::tempdir(), tempfile::tempdir()) else {
        eprintln!("index bench: no temp dir");
        std::process::exit(1)
    };
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let vectors: Vec<Vec<f32>> = (0..2 * n).map(|_| unit_vector(&mut rng)).collect();
    let passage = [Passage {
        kind: ChunkKind::Resume,
        start: 0,
        end: 4,
        text: "text".into(),
    }];
    let timed = (|| {
        let start = Instant::now();
        let mut writer = VectorWriter::create(first.path(), n)?;
        for (ordinal, v) in vectors[..n].iter().enumerate() {
            writer.add(ordinal as u32, &passage, vec![v.clone()])?;
        }
        writer.finish()?;
        let built = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let (mut writer, _) =
            VectorWriter::continue_from(first.path(), second.path(), &|_| false, 1.0)?;
        let loaded = start.elapsed().as_secs_f64();
        let start = Instant::now();
        for (ordinal, v) in vectors[n..].iter().enumerate() {
            writer.add((n + ordinal) as u32, &passage, vec![v.clone()])?;
        }
        let inserted = start.elapsed().as_secs_f64();
        let start = Instant::now();
        writer.finish()?;
        Ok::<_, index::Error>((built, loaded, inserted, start.elapsed().as_secs_f64()))
    })();
    let (built, loaded, inserted, written) = timed.unwrap_or_else(|e| {
        eprintln!("index bench: insert run failed: {e}");
        std::process::exit(1)
    });
    println!(
        "hnsw_rs full build: {n} vectors in {built:.2} s = {:.0} vectors/s (parallel, with export)",
        n as f64 / built
    );
    println!(
        "update: load {loaded:.3} s, insert {n} vectors in {inserted:.2} s = {:.0} vectors/s \
         (one thread), write {written:.3} s",
        n as f64 / inserted
    );
    // The same 2N vectors all inserted by hnsw_rs, for comparison.
    let Ok(third) = tempfile::tempdir() else {
        eprintln!("index bench: no temp dir");
        std::process::exit(1)
    };
    let all = (|| {
        let mut writer = VectorWriter::create(third.path(), 2 * n)?;
        for (ordinal, v) in vectors.iter().enumerate() {
            writer.add(ordinal as u32, &passage, vec![v.clone()])?;
        }
        writer.finish()
    })();
    if let Err(e) = all {
        eprintln!("index bench: hnsw_rs build failed: {e}");
        std::process::exit(1)
    }
    let mut noise = ChaCha8Rng::seed_from_u64(12);
    let queries: Vec<Vec<f32>> = vectors[n..]
        .iter()
        .step_by((n / QUERIES).max(1))
        .map(|v| {
            let r = unit_vector(&mut noise);
            normalised(v.iter().zip(&r).map(|(a, b)| a + b).collect())
        })
        .collect();
    for (what, dir) in [
        ("hnsw_rs build, then our insert", second.path()),
        ("hnsw_rs for all", third.path()),
    ] {
        let index = VectorIndex::open(dir).unwrap_or_else(|e| {
            eprintln!("index bench: reopen failed: {e}");
            std::process::exit(1)
        });
        let recall = |ef: usize| {
            let (mut found, mut total) = (0, 0);
            for q in &queries {
                let truth = index.exact_search(q, 10);
                found += index
                    .search(q, 10, ef)
                    .iter()
                    .filter(|h| truth.iter().any(|t| t.chunk == h.chunk))
                    .count();
                total += truth.len();
            }
            found as f64 / total.max(1) as f64
        };
        println!(
            "{what}: layer-0 degree {:.1}; recall@10 of queries near the last {n} vectors: \
             ef 64 {:.4}, ef 128 {:.4}",
            base_degree(dir),
            recall(64),
            recall(128)
        );
    }
}

/// Mean neighbours per point on layer 0, from the layer table of `graph.bin`.
fn base_degree(dir: &Path) -> f64 {
    let Ok(bytes) = std::fs::read(dir.join("graph.bin")) else {
        return 0.0;
    };
    let u32_at = |at: usize| {
        bytes
            .get(at..at + 4)
            .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (points, edges) = (u32_at(16), u32_at(48) as u64 | (u32_at(52) as u64) << 32);
    edges as f64 / points.max(1) as f64
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

fn unit_vector(rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut v: Vec<f32> = (0..384).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// See `BENCH_PURGE_DATA` in the file's doc. Run:
/// `BENCH_PURGE_DATA=/work/bench100k/data cargo bench --bench index_build`.
fn purge_cost(source: &Path, deletes: usize) {
    use rediscover::pipeline;
    use rediscover::store::Store;
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("index bench: {what}: {e}");
        std::process::exit(1)
    };
    let tmp = tempfile::tempdir().unwrap_or_else(|e| fail("no temp dir", &e));
    let data = tmp.path().join("data");
    copy_dir(source, &data).unwrap_or_else(|e| fail("cannot copy the data folder", &e));
    let models = std::env::var_os("REDISCOVER_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models"));
    let embedder = Embedder::load(&models).unwrap_or_else(|e| fail("cannot load the model", &e));
    let store = Store::open(&data).unwrap_or_else(|e| fail("cannot open the store", &e));
    if std::env::var("BENCH_PURGE_REBUILD").as_deref() != Ok("0") {
        let started = Instant::now();
        pipeline::rebuild(&data, &store, &embedder, &Progress::none())
            .unwrap_or_else(|e| fail("rebuild failed", &e));
        println!(
            "purge bench: rebuild from the previous vectors {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    println!(
        "purge bench: {} candidates; store {:.1} MiB, index {:.1} MiB; {}",
        store.len(),
        mib(&data.join("store")),
        mib(&data.join("index")),
        live_recall(&data)
    );
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for round in 1..=3 {
        let store = Store::open(&data).unwrap_or_else(|e| fail("cannot open the store", &e));
        let ids: Vec<String> = store.ids().map(str::to_owned).collect();
        let mut batch = Store::begin(&data).unwrap_or_else(|e| fail("cannot begin", &e));
        for _ in 0..deletes {
            let id = &ids[rng.gen_range(0..ids.len())];
            batch
                .delete(id)
                .unwrap_or_else(|e| fail("delete failed", &e));
        }
        let started = Instant::now();
        let commit = batch
            .commit(store.sync_state().clone())
            .unwrap_or_else(|e| fail("commit failed", &e));
        let committed = started.elapsed().as_secs_f64();
        let store = Store::open(&data).unwrap_or_else(|e| fail("cannot open the store", &e));
        let started = Instant::now();
        let outcome = pipeline::bring_up_to_date(
            &data,
            &store,
            Some(&commit),
            &embedder,
            None,
            &Progress::none(),
        )
        .unwrap_or_else(|e| fail("index update failed", &e));
        println!(
            "  round {round}: {} deletions: store commit {committed:.2} s, index {:?} in {:.2} s; store {:.1} MiB, index {:.1} MiB; {}",
            commit.deleted.len(),
            outcome.action,
            started.elapsed().as_secs_f64(),
            mib(&data.join("store")),
            mib(&data.join("index")),
            live_recall(&data)
        );
    }
}

/// Recall@10 of the current generation's vector search against exact search over its live
/// vectors (tie-aware: a hit as similar as the exact 10th counts), for 200 seeded queries near
/// live passages, at the `ef` of the default and of a 20-result query.
fn live_recall(data: &Path) -> String {
    let Ok(indexes) = Indexes::open(data) else {
        return "no index".to_owned();
    };
    let vectors = indexes.vectors();
    let live: Vec<u32> = (0..vectors.len() as u32)
        .filter(|&c| !vectors.is_tombstoned(c))
        .collect();
    if live.is_empty() {
        return "no live vectors".to_owned();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut queries: Vec<Vec<f32>> = Vec::with_capacity(200);
    for _ in 0..200 {
        let chunk = live[rng.gen_range(0..live.len())];
        if let Some(v) = vectors.vector(chunk) {
            let noisy = v
                .iter()
                .map(|x| x + rng.gen_range(-0.06f32..0.06))
                .collect();
            queries.push(normalised(noisy));
        }
    }
    let tombstones = vectors.tombstones();
    let recall = |ef: usize| {
        let found: usize = queries
            .iter()
            .map(|q| {
                let truth = vectors.exact_search(q, 10);
                let tenth = truth.last().map_or(f32::MIN, |h| h.similarity);
                vectors
                    .search(q, 10, ef)
                    .iter()
                    .filter(|h| h.similarity >= tenth - 1e-6)
                    .count()
                    .min(truth.len())
            })
            .sum();
        found as f64 / (queries.len() * 10) as f64
    };
    format!(
        "{tombstones} tombstoned vectors; recall@10 of live vectors ef 64 {:.4}, ef 160 {:.4}",
        recall(64),
        recall(160)
    )
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn mib(dir: &Path) -> f64 {
    fn size(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => size(&e.path()),
                _ => e.metadata().map(|m| m.len()).unwrap_or(0),
            })
            .sum()
    }
    size(dir) as f64 / (1 << 20) as f64
}
