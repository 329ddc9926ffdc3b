//! Hot-path latency of `match` on a seeded synthetic pool, broken down by step, plus the
//! keyword collector comparison and queries/s from concurrent HTTP clients.
//!
//! Environment: `BENCH_CANDIDATES` (default 10000), `BENCH_EMBEDDED` (candidates embedded by
//! the model, default up to 10000; the rest get noisy copies of real vectors, see
//! `build_pool`), `BENCH_QUERIES` (default 200), `BENCH_DIR` (reuse a built pool across runs),
//! `BENCH_CLIENTS` (default 4), `BENCH_RECALL_ONLY` (only the vector recall sweep),
//! `BENCH_FILTERED_ONLY` (only full postings, unfiltered then filtered to a few rows).
//! Run: `cargo bench --bench search`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rediscover::api::http::{AppState, app};
use rediscover::domain::{
    Archived, Candidate, Position, ReferenceData, Resume, Stage, StageChange, TextStatus,
};
use rediscover::engine::Engine;
use rediscover::index::{self, Embedder, Indexes, VectorCache};
use rediscover::search::{
    self, Filters, KeywordCollector, Query, QueryEmbedder, SearchResponse, Timings,
};
use rediscover::store::{Store, SyncState};

struct Family {
    roles: &'static [&'static str],
    skills: &'static [&'static str],
}

const FAMILIES: &[Family] = &[
    Family {
        roles: &[
            "Backend Engineer",
            "Software Engineer",
            "Platform Engineer",
            "Site Reliability Engineer",
        ],
        skills: &[
            "Rust",
            "Go",
            "Java",
            "Kotlin",
            "PostgreSQL",
            "Kafka",
            "Kubernetes",
            "gRPC",
            "Redis",
            "AWS",
            "Terraform",
            "microservices",
            "distributed systems",
            "C++",
            "Linux",
            "observability",
        ],
    },
    Family {
        roles: &["Frontend Developer", "Full Stack Developer", "UI Engineer"],
        skills: &[
            "React",
            "TypeScript",
            "JavaScript",
            "CSS",
            "Next.js",
            "GraphQL",
            "accessibility",
            "design systems",
            "Node.js",
            "Vue",
            "web performance",
            "testing",
        ],
    },
    Family {
        roles: &[
            "Data Scientist",
            "Machine Learning Engineer",
            "Data Engineer",
            "Analytics Engineer",
        ],
        skills: &[
            "Python",
            "PyTorch",
            "pandas",
            "SQL",
            "Spark",
            "Airflow",
            "dbt",
            "statistics",
            "forecasting",
            "NLP",
            "recommendation systems",
            "A/B testing",
            "feature engineering",
        ],
    },
    Family {
        roles: &["Product Manager", "Product Owner", "Program Manager"],
        skills: &[
            "roadmaps",
            "user research",
            "stakeholder management",
            "agile",
            "prioritisation",
            "OKRs",
            "discovery",
            "analytics",
            "pricing",
            "go-to-market",
        ],
    },
    Family {
        roles: &[
            "Account Executive",
            "Sales Development Representative",
            "Customer Success Manager",
        ],
        skills: &[
            "pipeline generation",
            "Salesforce",
            "negotiation",
            "SaaS sales",
            "enterprise accounts",
            "renewals",
            "cold outreach",
            "forecasting",
            "onboarding",
            "upselling",
        ],
    },
    Family {
        roles: &["Recruiter", "Talent Partner", "HR Business Partner"],
        skills: &[
            "sourcing",
            "interviewing",
            "employer branding",
            "Lever",
            "onboarding",
            "compensation",
            "employee relations",
            "workforce planning",
        ],
    },
    Family {
        roles: &["Accountant", "Financial Analyst", "Controller"],
        skills: &[
            "IFRS",
            "GAAP",
            "month-end close",
            "audits",
            "budgeting",
            "Excel",
            "financial modelling",
            "tax",
            "treasury",
            "NetSuite",
        ],
    },
    Family {
        roles: &[
            "Registered Nurse",
            "Clinical Nurse Specialist",
            "Physician Assistant",
        ],
        skills: &[
            "patient care",
            "intensive care",
            "triage",
            "medication administration",
            "wound care",
            "electronic health records",
            "paediatrics",
            "emergency medicine",
        ],
    },
];

const SENIORITY: &[&str] = &["Junior", "", "Senior", "Staff", "Lead", "Principal"];
const EMPLOYERS: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark Industries",
    "Wayne Enterprises",
    "Vandelay",
    "Soylent",
    "Tyrell",
    "Cyberdyne",
    "Wonka",
];
const CITIES: &[&str] = &[
    "Berlin",
    "London",
    "Paris",
    "Lisbon",
    "Remote",
    "New York",
    "Toronto",
    "Amsterdam",
    "Madrid",
    "Warsaw",
];
const VERBS: &[&str] = &[
    "built",
    "led",
    "designed",
    "maintained",
    "improved",
    "launched",
    "scaled",
    "owned",
    "migrated",
    "automated",
];
const OBJECTS: &[&str] = &[
    "the core platform",
    "a customer-facing product",
    "internal tooling",
    "the data pipeline",
    "the billing system",
    "a new market",
    "the on-call process",
    "the hiring pipeline",
    "quarterly planning",
    "the reporting stack",
];

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    // PANICS: every list above is non-empty.
    items.choose(rng).expect("non-empty list")
}

fn skills_sentence(rng: &mut ChaCha8Rng, family: &Family, n: usize) -> String {
    let chosen: Vec<&str> = family.skills.choose_multiple(rng, n).copied().collect();
    format!(
        "{} {} using {}.",
        capitalise(pick::<&str>(rng, VERBS)),
        pick(rng, OBJECTS),
        chosen.join(", ")
    )
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map_or_else(String::new, |c| c.to_uppercase().chain(chars).collect())
}

fn role(rng: &mut ChaCha8Rng, family: &Family) -> String {
    let seniority = pick(rng, SENIORITY);
    format!("{seniority} {}", pick(rng, family.roles))
        .trim()
        .to_owned()
}

fn synthetic_candidate(i: usize, rng: &mut ChaCha8Rng) -> Candidate {
    let family = pick(rng, FAMILIES);
    let title = role(rng, family);
    let positions: Vec<Position> = (0..rng.gen_range(1..=3))
        .map(|_| Position {
            title: role(rng, family),
            org: pick(rng, EMPLOYERS).to_string(),
            ..Position::default()
        })
        .collect();
    let resume: Vec<String> = (0..rng.gen_range(3..=6))
        .map(|_| skills_sentence(rng, family, 3))
        .collect();
    let contact = if i % 10 == 9 { i - 1 } else { i };
    Candidate {
        id: format!("opp-{i:06}"),
        contact_id: format!("contact-{contact:06}"),
        name: format!("Person {i}"),
        headline: format!("{title} at {}", pick(rng, EMPLOYERS)),
        location: pick(rng, CITIES).to_string(),
        tags: family
            .skills
            .choose_multiple(rng, 2)
            .map(|s| s.to_lowercase())
            .collect(),
        stage_id: "phone".into(),
        stage_changes: vec![StageChange {
            to_stage_id: "phone".into(),
            to_stage_index: 1,
            at: 0,
        }],
        archived: rng.gen_bool(0.8).then(|| Archived {
            reason_id: "timing".into(),
            archived_at: 0,
        }),
        last_interaction_at: Some(1_700_000_000_000 - rng.gen_range(0..1_000) * 86_400_000),
        profile_url: format!("https://hire.example.invalid/candidates/contact-{contact:06}"),
        resumes: vec![Resume {
            id: format!("res-{i}"),
            text: Some(resume.join(" ")),
            text_status: TextStatus::Extracted,
            positions,
            ..Resume::default()
        }],
        ..Candidate::default()
    }
}

fn posting(rng: &mut ChaCha8Rng) -> (String, String) {
    let family = pick(rng, FAMILIES);
    let title = role(rng, family);
    let mut body = format!("We are hiring a {title} in {}. ", pick(rng, CITIES));
    while body.split_whitespace().count() < 170 {
        body.push_str(&skills_sentence(rng, family, 4));
        body.push(' ');
        body.push_str("You will work with a friendly team, mentor others and care about quality. ");
    }
    (title, body)
}

/// Builds the pool's store and indexes. The passages of the first `embedded` candidates are
/// embedded by the model; every later candidate's passages get a noisy copy (cosine about 0.93)
/// of the real vector of the same passage of candidate `i % embedded`, handed to the real build
/// through its [`VectorCache`]. Embedding 100k candidates takes over an hour on 2 cores; the
/// copies keep the real vectors' clustered distribution at the size being measured.
fn build_pool(data: &Path, n: usize, embedded: usize, embedder: &Embedder) {
    let mut rng = ChaCha8Rng::seed_from_u64(2024);
    let started = Instant::now();
    let mut batch = Store::begin(data).expect("store batch");
    for i in 0..n {
        batch
            .upsert(synthetic_candidate(i, &mut rng))
            .expect("upsert");
    }
    batch
        .set_reference(ReferenceData {
            stages: vec![
                Stage {
                    id: "new".into(),
                    text: "New".into(),
                },
                Stage {
                    id: "phone".into(),
                    text: "Phone screen".into(),
                },
            ],
            ..ReferenceData::default()
        })
        .expect("reference");
    let commit = batch.commit(SyncState::default()).expect("commit");
    let store = Store::open(data).expect("store");
    let cache = VectorCache::new(embedder);
    let embedded = embedded.clamp(1, n.max(1));
    if embedded < n {
        let mut noise = ChaCha8Rng::seed_from_u64(4242);
        let passages: Vec<Vec<String>> = store
            .candidates()
            .map(|c| {
                let c = c.expect("stored candidate");
                let passages = index::chunk::passages(&c, embedder).expect("chunk");
                passages.into_iter().map(|p| p.text).collect()
            })
            .collect();
        // The model embeds the first `embedded` candidates, many passages per call so every
        // core works; their vectors go through the cache too, so the build embeds nothing twice.
        let mut real: Vec<Vec<Vec<f32>>> = Vec::with_capacity(embedded);
        for group in passages[..embedded].chunks(256) {
            let texts: Vec<&str> = group.iter().flatten().map(String::as_str).collect();
            let mut vectors = embedder.embed_passages(&texts).expect("embed").into_iter();
            for texts in group {
                let own: Vec<Vec<f32>> = vectors.by_ref().take(texts.len()).collect();
                for (text, v) in texts.iter().zip(&own) {
                    cache.insert(text, v.clone()).expect("cache");
                }
                real.push(own);
            }
        }
        eprintln!(
            "  {embedded} candidates embedded ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        for (i, texts) in passages.iter().enumerate().skip(embedded) {
            let source = &real[i % embedded];
            if source.is_empty() {
                continue;
            }
            for (j, text) in texts.iter().enumerate() {
                let base = &source[j.min(source.len() - 1)];
                cache
                    .insert(text, noisy_copy(base, &mut noise))
                    .expect("cache");
            }
        }
    }
    let candidates = store
        .candidates()
        .map(|c| Ok::<_, std::convert::Infallible>(c.expect("stored candidate")));
    let stats = index::try_rebuild(
        data,
        commit.generation,
        candidates,
        store.reference(),
        embedder,
        Some(&cache),
        &index::Progress::none(),
    )
    .expect("index");
    eprintln!(
        "built {n} candidates ({} vectors, {embedded} candidates embedded by the model) in {:.0} s, {:.1} MiB on disk",
        stats.vectors,
        started.elapsed().as_secs_f64(),
        stats.bytes_on_disk as f64 / (1024.0 * 1024.0)
    );
}

/// `v` plus Gaussian noise of norm about 0.4, renormalised: cosine about 0.93 to `v`.
fn noisy_copy(v: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
    let sigma = 0.4 / (v.len() as f64).sqrt();
    let mut out: Vec<f32> = v
        .iter()
        .map(|x| {
            // Box-Muller: one standard normal from two uniforms.
            let (u1, u2): (f64, f64) = (rng.r#gen::<f64>().max(1e-12), rng.r#gen());
            let g = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
            x + (g * sigma) as f32
        })
        .collect();
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt();
    out.iter_mut().for_each(|x| *x /= norm);
    out
}

/// Resident set size of this process (KiB), from /proc/self/status.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let i = ((values.len() as f64 - 1.0) * p).round() as usize;
    values.get(i).copied().unwrap_or(f64::NAN)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A step name and how to read its duration (ms) from the timings.
type Step = (&'static str, fn(&Timings) -> f64);

fn report(label: &str, timings: &[Timings]) {
    let steps: [Step; 8] = [
        ("embed", |t| ms(t.embed)),
        ("filter", |t| ms(t.filter)),
        ("keyword", |t| ms(t.keyword)),
        ("vector", |t| ms(t.vector)),
        ("fusion", |t| ms(t.fusion)),
        ("explain", |t| ms(t.explain)),
        ("all but embed", |t| ms(t.total) - ms(t.embed)),
        ("total", |t| ms(t.total)),
    ];
    println!("{label} ({} queries)", timings.len());
    for (name, get) in steps {
        let mut values: Vec<f64> = timings.iter().map(get).collect();
        println!(
            "  {name:<14} p50 {:>8.3} ms   p99 {:>8.3} ms",
            percentile(&mut values, 0.5),
            percentile(&mut values, 0.99)
        );
    }
}

fn run_queries(
    engine: &Engine,
    texts: &[String],
    semantic: f32,
    collector: KeywordCollector,
) -> Vec<Timings> {
    run_filtered(engine, texts, semantic, collector, &Filters::default())
}

fn run_filtered(
    engine: &Engine,
    texts: &[String],
    semantic: f32,
    collector: KeywordCollector,
    filters: &Filters,
) -> Vec<Timings> {
    texts
        .iter()
        .map(|text| {
            let query = Query {
                semantic: Some(semantic),
                collector,
                limit: 20,
                filters: filters.clone(),
                ..Query::text(text.clone())
            };
            let response: SearchResponse = engine.search(&query).expect("query");
            response.timings
        })
        .collect()
}

/// Recall@10 of the HNSW search against exact search, at the breadth a 20-result query uses
/// (`k = ef = 3 x depth`) and around it, with the time per search.
fn vector_recall(engine: &Engine, embedder: &Arc<Embedder>, texts: &[String]) {
    let snapshot = engine.snapshot().expect("snapshot");
    let vectors = snapshot.indexes.vectors();
    let queries = QueryEmbedder::new(Arc::clone(embedder), 0);
    let query_vectors: Vec<Arc<Vec<f32>>> = texts
        .iter()
        .take(100)
        .map(|text| {
            let (title, body) = search::split_title(text);
            queries.embed(title, body).expect("embed").vector
        })
        .collect();
    // The similarity of the exact 10th hit: an approximate hit as similar counts, since
    // duplicate passages (the same text twice) tie.
    let kth: Vec<f32> = query_vectors
        .iter()
        .map(|q| {
            vectors
                .exact_search(q, 10)
                .last()
                .map_or(f32::MIN, |h| h.similarity - 1e-6)
        })
        .collect();
    let used = search::depth_for(20) * search::semantic::PASSAGES_PER_OPPORTUNITY;
    for k in [used / 3, used / 2, used, used * 2] {
        let (mut found, mut wanted, mut missing) = (0usize, 0usize, 0usize);
        let started = Instant::now();
        for (query, &kth) in query_vectors.iter().zip(&kth) {
            let approx = vectors.search(query, k, k);
            let hits = approx
                .iter()
                .take(10)
                .filter(|h| h.similarity >= kth)
                .count();
            let want = 10.min(vectors.len());
            found += hits;
            wanted += want;
            missing += usize::from(hits < want);
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / query_vectors.len().max(1) as f64;
        let marker = if k == used {
            " (what a query uses)"
        } else {
            ""
        };
        println!(
            "vector recall@10, k = ef = {k:>3}: {:.4} ({missing} of {} queries miss some), {us:.0} us per search{marker}",
            found as f64 / wanted.max(1) as f64,
            query_vectors.len()
        );
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing and must stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("search bench: run with `cargo bench --bench search`");
        return;
    }
    let n = env_usize("BENCH_CANDIDATES", 10_000);
    let embedded = env_usize("BENCH_EMBEDDED", n.min(10_000));
    let queries = env_usize("BENCH_QUERIES", 200);
    let clients = env_usize("BENCH_CLIENTS", 4);
    let scratch = tempfile::tempdir().expect("temp dir");
    let data: PathBuf =
        std::env::var_os("BENCH_DIR").map_or_else(|| scratch.path().join("data"), PathBuf::from);
    std::fs::create_dir_all(&data).expect("data dir");
    let models = Embedder::default_models_dir();
    let embedder = Arc::new(
        Embedder::load(&models)
            .unwrap_or_else(|e| panic!("model needed at {}: {e}", models.display())),
    );
    if Indexes::current_generation(&data).ok().flatten().is_none() {
        build_pool(&data, n, embedded, &embedder);
    }
    let rss_before = rss_kib();
    let opened = Instant::now();
    let indexes = Indexes::open(&data).expect("indexes");
    let open_ms = ms(opened.elapsed());
    let stats = indexes.stats();
    println!(
        "reopen of the indexes: {open_ms:.1} ms, RSS +{} MiB ({} candidates, {} vectors, {:.1} MiB on disk)",
        rss_kib().saturating_sub(rss_before) / 1024,
        stats.candidates,
        stats.vectors,
        stats.bytes_on_disk as f64 / (1024.0 * 1024.0)
    );
    drop(indexes);
    let opened = Instant::now();
    let engine = Engine::open(&data, Some(Arc::clone(&embedder))).expect("engine");
    println!(
        "engine open (store + indexes, model already loaded): {:.1} ms",
        ms(opened.elapsed())
    );
    let rows = engine.snapshot().expect("snapshot").indexes.rows().len();
    println!("pool: {rows} candidates in {}", data.display());
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let postings: Vec<(String, String)> = (0..queries).map(|_| posting(&mut rng)).collect();
    let titles: Vec<String> = postings
        .iter()
        .enumerate()
        .map(|(i, (t, _))| format!("{t} {}", i % 7))
        .collect();
    let full: Vec<String> = postings.iter().map(|(t, b)| format!("{t}\n{b}")).collect();
    if std::env::var_os("BENCH_RECALL_ONLY").is_some() {
        vector_recall(&engine, &embedder, &full);
        return;
    }

    let filtered_only = std::env::var_os("BENCH_FILTERED_ONLY").is_some();
    for (label, texts) in [("short title", &titles), ("full posting", &full)] {
        if filtered_only && label == "short title" {
            continue;
        }
        report(
            &format!("{label}, first time (embedding computed)"),
            &run_queries(&engine, texts, 0.5, KeywordCollector::default()),
        );
        report(
            &format!("{label}, repeated (embedding cached)"),
            &run_queries(&engine, texts, 0.5, KeywordCollector::default()),
        );
    }
    // A restrictive filter (one city and one tag): the semantic side scores the allowed rows'
    // passages instead of searching the graph for them among all the others.
    let filters = Filters {
        location: Some(CITIES[0].to_owned()),
        tags: vec![FAMILIES[0].skills[0].to_lowercase()],
        ..Filters::default()
    };
    let allowed = {
        let snapshot = engine.snapshot().expect("snapshot");
        // The first filter on a location or tag builds the rows' columns; the queries below
        // find them built.
        let started = Instant::now();
        snapshot.indexes.row_columns();
        println!(
            "row columns for location and tag filters built on first use in {:.1} ms",
            ms(started.elapsed())
        );
        let rows = filters
            .resolve(snapshot.store.reference(), 1_700_000_000_000)
            .expect("filters");
        snapshot
            .indexes
            .rows()
            .iter()
            .filter(|r| rows.allows(r))
            .count()
    };
    report(
        &format!(
            "full posting, repeated, filtered to {} and tag {} ({allowed} of {rows} candidates)",
            CITIES[0], FAMILIES[0].skills[0]
        ),
        &run_filtered(&engine, &full, 0.5, KeywordCollector::default(), &filters),
    );
    if filtered_only {
        return;
    }
    for (label, collector) in [
        ("term at a time (default)", KeywordCollector::TermAtATime),
        (
            "document at a time, exhaustive",
            KeywordCollector::Exhaustive,
        ),
        ("TopDocs (block-max WAND)", KeywordCollector::TopDocsWand),
    ] {
        let mut keyword: Vec<f64> = run_queries(&engine, &full, 0.0, collector)
            .iter()
            .map(|t| ms(t.keyword))
            .collect();
        println!(
            "keyword side, full posting, {label}: p50 {:.3} ms  p99 {:.3} ms",
            percentile(&mut keyword, 0.5),
            percentile(&mut keyword, 0.99)
        );
    }

    vector_recall(&engine, &embedder, &full);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let engine = Arc::new(engine);
    let (qps, count) = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server =
            tokio::spawn(axum::serve(listener, app(AppState::new(engine, None))).into_future());
        let client = reqwest::Client::new();
        let started = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let client = client.clone();
            let texts: Vec<String> = full.iter().skip(c).step_by(clients).cloned().collect();
            tasks.push(tokio::spawn(async move {
                for text in &texts {
                    let response = client
                        .post(format!("http://{addr}/v1/match"))
                        .json(&serde_json::json!({"text": text, "limit": 20}))
                        .send()
                        .await
                        .expect("request");
                    assert!(response.status().is_success());
                    let _ = response.bytes().await;
                }
                texts.len()
            }));
        }
        let mut count = 0;
        for task in tasks {
            count += task.await.expect("client");
        }
        let qps = count as f64 / started.elapsed().as_secs_f64();
        server.abort();
        (qps, count)
    });
    println!(
        "HTTP: {clients} concurrent clients, {count} cached full postings: {qps:.0} queries/s"
    );
}
