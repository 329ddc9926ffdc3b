//! Integration tests: search. A small hand-made pool is written through the store, indexed with
//! the real model, and queried through the library, the HTTP router and the CLI binary.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use rediscover::api::http::{AppState, MatchResponse, app};
use rediscover::domain::{
    ArchiveReason, ArchiveReasonType, Archived, Candidate, Feedback, Note, Position, Posting,
    ReferenceData, Resume, Stage, StageChange, TextStatus,
};
use rediscover::engine::Engine;
use rediscover::index::{self, Embedder};
use rediscover::search::{self, Context, Filters, Query, QueryEmbedder, SearchResponse};
use rediscover::store::{Store, SyncState};
use tower::ServiceExt;

const DAY: i64 = 86_400_000;
/// "Now" for the recency filter: day 20,000 since the epoch (2024-10-04).
const NOW: i64 = 20_000 * DAY;

const RUST_POSTING: &str = "Senior Backend Engineer (Rust)\n\
    We are looking for a backend engineer to build and operate our Rust services. You will design \
    APIs with tokio and PostgreSQL, run them on Kubernetes and keep latency low.";
/// Worded with no word in common with the physician's profile below.
const SYNONYM_POSTING: &str =
    "Physician\nWe are hiring a physician to treat patients at our hospital.";

// ---- the pool ------------------------------------------------------------------------------

fn reference() -> ReferenceData {
    let stage = |id: &str, text: &str| Stage {
        id: id.into(),
        text: text.into(),
    };
    let reason = |id: &str, text: &str, t| ArchiveReason {
        id: id.into(),
        text: text.into(),
        reason_type: t,
        active: true,
    };
    ReferenceData {
        stages: vec![
            stage("lead-new", "New lead"),
            stage("phone", "Phone screen"),
            stage("onsite", "On-site interview"),
            stage("offer", "Offer"),
        ],
        archive_reasons: vec![
            reason("timing", "Timing", ArchiveReasonType::NonHired),
            reason("hired", "Hired", ArchiveReasonType::Hired),
        ],
        postings: vec![Posting {
            id: "post-rust".into(),
            title: "Senior Backend Engineer (Rust)".into(),
            state: "published".into(),
            description: RUST_POSTING.lines().skip(1).collect::<Vec<_>>().join(" "),
            ..Posting::default()
        }],
        ..ReferenceData::default()
    }
}

struct Person<'a> {
    id: &'a str,
    contact: &'a str,
    headline: &'a str,
    title: &'a str,
    resume: &'a str,
    location: &'a str,
    tags: &'a [&'a str],
    stages: &'a [(&'a str, u32)],
    archived: Option<&'a str>,
    rating: Option<u8>,
    notes: usize,
    last_interaction_days: i64,
}

fn candidate(p: &Person<'_>) -> Candidate {
    Candidate {
        id: p.id.into(),
        contact_id: p.contact.into(),
        name: format!("Person {}", p.id),
        headline: p.headline.into(),
        location: p.location.into(),
        tags: p.tags.iter().map(|t| t.to_string()).collect(),
        stage_id: p.stages.last().map_or("lead-new", |s| s.0).into(),
        stage_changes: p
            .stages
            .iter()
            .enumerate()
            .map(|(i, (id, index))| StageChange {
                to_stage_id: (*id).into(),
                to_stage_index: *index,
                at: i as i64,
            })
            .collect(),
        archived: p.archived.map(|r| Archived {
            reason_id: r.into(),
            archived_at: NOW - 30 * DAY,
        }),
        created_at: NOW - 400 * DAY,
        last_interaction_at: Some(NOW - p.last_interaction_days * DAY),
        profile_url: format!("https://hire.example.invalid/candidates/{}", p.contact),
        resumes: vec![Resume {
            id: format!("res-{}", p.id),
            text: Some(p.resume.into()),
            text_status: TextStatus::Extracted,
            positions: vec![Position {
                title: p.title.into(),
                org: "Acme".into(),
                ..Position::default()
            }],
            ..Resume::default()
        }],
        notes: (0..p.notes)
            .map(|i| Note {
                id: format!("n{i}"),
                comments: vec!["Spoke on the phone.".into()],
                ..Note::default()
            })
            .collect(),
        feedback: p.rating.map_or_else(Vec::new, |r| {
            vec![Feedback {
                id: "f1".into(),
                rating: Some(r),
                ..Feedback::default()
            }]
        }),
        ..Candidate::default()
    }
}

fn pool() -> Vec<Candidate> {
    let base = Person {
        id: "",
        contact: "",
        headline: "",
        title: "",
        resume: "",
        location: "",
        tags: &[],
        stages: &[("lead-new", 0)],
        archived: Some("timing"),
        rating: None,
        notes: 0,
        last_interaction_days: 100,
    };
    let people = [
        Person {
            id: "rust-ada",
            contact: "c-ada",
            headline: "Senior Rust backend engineer",
            title: "Backend Engineer",
            resume: "Built backend services in Rust with tokio and PostgreSQL. Designed gRPC APIs, ran them on Kubernetes, used Kafka for events. Reviewed books for O'Reilly.",
            location: "Berlin, Germany",
            tags: &["rust", "backend"],
            stages: &[("lead-new", 0), ("phone", 1), ("onsite", 2)],
            rating: Some(4),
            notes: 2,
            last_interaction_days: 5,
            ..base
        },
        Person {
            id: "rust-ada-old",
            contact: "c-ada",
            headline: "Rust developer",
            title: "Software Engineer",
            resume: "Wrote Rust command line tools and backend APIs with tokio.",
            location: "Berlin, Germany",
            tags: &["rust"],
            ..base
        },
        Person {
            id: "rust-bo",
            contact: "c-bo",
            headline: "Backend developer (Rust, Go)",
            title: "Backend Developer",
            resume: "Rust microservices and backend APIs, async tokio, PostgreSQL, Linux, low latency systems.",
            location: "Remote",
            tags: &["backend"],
            stages: &[("lead-new", 0), ("phone", 1)],
            rating: Some(3),
            notes: 1,
            last_interaction_days: 40,
            ..base
        },
        Person {
            id: "rust-hired",
            contact: "c-hired",
            headline: "Rust backend engineer",
            title: "Backend Engineer",
            resume: "Rust backend services with tokio and PostgreSQL on Kubernetes.",
            location: "Paris, France",
            tags: &["rust"],
            stages: &[("lead-new", 0), ("offer", 3)],
            archived: Some("hired"),
            ..base
        },
        Person {
            id: "rust-hired-before",
            contact: "c-hired",
            headline: "Rust developer",
            title: "Software Engineer",
            resume: "Rust backend services with tokio.",
            location: "Paris, France",
            tags: &["rust"],
            ..base
        },
        Person {
            id: "rust-active",
            contact: "c-active",
            headline: "Rust engineer",
            title: "Backend Engineer",
            resume: "Backend engineering in Rust, tokio, APIs and PostgreSQL.",
            location: "Lisbon, Portugal",
            archived: None,
            ..base
        },
        Person {
            id: "front-cy",
            contact: "c-cy",
            headline: "Frontend developer",
            title: "Frontend Developer",
            resume: "React and TypeScript single page applications, CSS design systems, accessibility.",
            location: "Berlin, Germany",
            tags: &["frontend"],
            ..base
        },
        Person {
            id: "nurse-di",
            contact: "c-di",
            headline: "Registered nurse",
            title: "Nurse",
            resume: "Intensive care unit nursing, wound dressing, medication rounds.",
            ..base
        },
        Person {
            id: "doctor-ed",
            contact: "c-ed",
            headline: "Doctor of medicine",
            title: "General practitioner",
            resume: "Clinical practice in internal medicine. Diagnosing illness, prescribing medication, consulting sick people.",
            ..base
        },
        Person {
            id: "chef-fa",
            contact: "c-fa",
            headline: "Pastry chef",
            title: "Chef",
            resume: "Croissants, sourdough bread, plated desserts for a busy restaurant.",
            ..base
        },
        Person {
            id: "acct-gu",
            contact: "c-gu",
            headline: "Accountant",
            title: "Accountant",
            resume: "Financial reporting, IFRS, audits, month-end close and tax filings.",
            ..base
        },
        Person {
            id: "rust-gone",
            contact: "c-gone",
            headline: "Rust backend engineer with tokio and PostgreSQL",
            title: "Backend Engineer (Rust)",
            resume: "Rust backend engineer: tokio, PostgreSQL, Kubernetes, gRPC, Kafka, backend APIs in Rust.",
            ..base
        },
    ];
    people.iter().map(candidate).collect()
}

fn embedder() -> Arc<Embedder> {
    let dir = Embedder::default_models_dir();
    match Embedder::load(&dir) {
        Ok(e) => Arc::new(e),
        Err(err) => panic!(
            "the embedding model is needed at {} (run models/fetch.sh): {err}",
            dir.display()
        ),
    }
}

/// Writes the pool through the store, indexes it, then deletes `rust-gone` (store and index).
fn build_pool(data: &Path, embedder: &Embedder) {
    let mut batch = Store::begin(data).unwrap();
    for c in pool() {
        batch.upsert(c).unwrap();
    }
    batch.set_reference(reference()).unwrap();
    let first = batch.commit(SyncState::default()).unwrap();
    let store = Store::open(data).unwrap();
    let all: Vec<Candidate> = store.candidates().map(Result::unwrap).collect();
    index::rebuild(
        data,
        first.generation,
        all.into_iter(),
        store.reference(),
        embedder,
        &index::Progress::none(),
    )
    .unwrap();

    let mut batch = Store::begin(data).unwrap();
    batch.delete("rust-gone").unwrap();
    let second = batch.commit(SyncState::default()).unwrap();
    let store = Store::open(data).unwrap();
    index::update(
        data,
        second.generation,
        std::iter::empty(),
        &second.deleted,
        store.reference(),
        embedder,
        None,
        &index::Progress::none(),
    )
    .unwrap();
}

struct Fixture {
    _dir: tempfile::TempDir,
    data: std::path::PathBuf,
    embedder: Arc<Embedder>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let embedder = embedder();
        build_pool(&data, &embedder);
        Fixture {
            _dir: dir,
            data,
            embedder,
        }
    }

    fn engine(&self) -> Engine {
        Engine::open(&self.data, Some(Arc::clone(&self.embedder)))
            .unwrap()
            .with_reload_check(Duration::ZERO)
    }

    /// An engine and its first snapshot, or the error that stops a query.
    fn engine_result(&self) -> rediscover::Result<std::sync::Arc<rediscover::engine::Snapshot>> {
        Engine::open(&self.data, Some(Arc::clone(&self.embedder)))?.snapshot()
    }
}

fn query(text: &str) -> Query {
    Query {
        now: Some(NOW),
        ..Query::text(text)
    }
}

fn ids(response: &SearchResponse) -> Vec<&str> {
    response
        .hits
        .iter()
        .map(|h| h.opportunity_id.as_str())
        .collect()
}

// ---- ranking -------------------------------------------------------------------------------

#[test]
fn rust_posting_ranks_rust_backend_people_first() {
    let fx = Fixture::new();
    let engine = fx.engine();
    for semantic in [0.0, 0.5, 1.0] {
        let response = engine
            .search(&Query {
                semantic: Some(semantic),
                ..query(RUST_POSTING)
            })
            .unwrap();
        let got = ids(&response);
        let rust_people = ["rust-ada", "rust-bo", "rust-hired", "rust-active"];
        let first_other = got
            .iter()
            .position(|id| !rust_people.contains(id))
            .unwrap_or(got.len());
        let last_rust = got.iter().rposition(|id| rust_people.contains(id)).unwrap();
        assert!(
            last_rust < first_other,
            "W={semantic}: Rust people must come first, got {got:?}"
        );
        assert_eq!(
            got.iter().filter(|id| rust_people.contains(id)).count(),
            4,
            "W={semantic}: {got:?}"
        );
        assert!(response.degraded.is_none());
    }
}

/// A stored record that no longer reads back (a failed checksum) leaves its person out of
/// the answers; every other person is still ranked and explained.
#[test]
fn a_damaged_stored_record_leaves_its_person_out_instead_of_failing_the_query() {
    let fx = Fixture::new();
    let before = ids(&fx.engine().search(&query(RUST_POSTING)).unwrap())
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert!(before.contains(&"rust-bo".to_string()), "{before:?}");
    crate::util::corrupt_stored_record(&fx.data, "rust-bo");
    let response = fx.engine().search(&query(RUST_POSTING)).unwrap();
    let after = ids(&response);
    let expected: Vec<&str> = before
        .iter()
        .map(String::as_str)
        .filter(|id| *id != "rust-bo")
        .collect();
    assert_eq!(after, expected);
}

#[test]
fn without_a_weight_a_title_leans_semantic_and_a_posting_keyword() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let weight = |q: Query| engine.search(&q).unwrap().semantic_weight;
    assert_eq!(weight(query("Rust engineer")), search::SHORT_QUERY_SEMANTIC);
    assert_eq!(weight(query(RUST_POSTING)), search::DEFAULT_SEMANTIC);
    let chosen = Query {
        semantic: Some(0.3),
        ..query("Rust engineer")
    };
    assert_eq!(weight(chosen), 0.3);
    // The synonym posting ranks the physician through the semantic side at the title's weight.
    let response = engine.search(&query("Physician")).unwrap();
    assert_eq!(
        ids(&response).first(),
        Some(&"doctor-ed"),
        "{:?}",
        ids(&response)
    );
}

#[test]
fn posting_id_query_uses_the_synced_posting() {
    let fx = Fixture::new();
    let response = fx
        .engine()
        .search(&Query {
            now: Some(NOW),
            ..Query::posting("post-rust")
        })
        .unwrap();
    assert!(
        ["rust-ada", "rust-bo", "rust-hired", "rust-active"]
            .contains(&response.hits[0].opportunity_id.as_str())
    );
    let err = fx.engine().search(&Query::posting("nope")).unwrap_err();
    assert!(
        err.is_user_error() && err.to_string().contains("nope"),
        "{err}"
    );
}

#[test]
fn synonym_posting_finds_the_doctor_through_the_semantic_side_only() {
    let fx = Fixture::new();
    let response = fx.engine().search(&query(SYNONYM_POSTING)).unwrap();
    let doctor = response
        .hits
        .iter()
        .find(|h| h.opportunity_id == "doctor-ed")
        .expect("doctor found");
    assert!(
        doctor.rank <= 2,
        "doctor ranked {}: {:?}",
        doctor.rank,
        ids(&response)
    );
    assert!(
        doctor.explanation.keyword.is_none(),
        "no keyword overlap by construction"
    );
    assert!(doctor.explanation.matched_terms.is_empty());
    assert!(doctor.explanation.semantic.is_some());
    let keyword_only = fx
        .engine()
        .search(&Query {
            semantic: Some(0.0),
            ..query(SYNONYM_POSTING)
        })
        .unwrap();
    assert!(
        !ids(&keyword_only).contains(&"doctor-ed"),
        "keyword side alone cannot find it"
    );
}

#[test]
fn a_person_appears_once_with_the_other_opportunity_listed() {
    let fx = Fixture::new();
    let response = fx.engine().search(&query(RUST_POSTING)).unwrap();
    let ada: Vec<_> = response
        .hits
        .iter()
        .filter(|h| h.contact_id == "c-ada")
        .collect();
    assert_eq!(ada.len(), 1, "{:?}", ids(&response));
    let other = if ada[0].opportunity_id == "rust-ada" {
        "rust-ada-old"
    } else {
        "rust-ada"
    };
    assert_eq!(ada[0].other_opportunity_ids, vec![other.to_owned()]);
    // What happened on the other opportunity is shown too, not only its id.
    let histories = &ada[0].explanation.other_histories;
    assert_eq!(histories.len(), 1, "{histories:?}");
    assert_eq!(histories[0].opportunity_id, other);
    let stages = if other == "rust-ada" { 3 } else { 1 };
    assert_eq!(histories[0].history.stages_reached.len(), stages);
    // The hired person's latest outcome (the hire) shows under whichever opportunity matched.
    let hired = (response.hits.iter())
        .find(|h| h.contact_id == "c-hired")
        .expect("the hired person ranks for a Rust posting");
    let hired_anywhere = hired
        .explanation
        .history
        .archived
        .as_ref()
        .is_some_and(|a| a.hired)
        || (hired.explanation.other_histories.iter())
            .any(|o| o.history.archived.as_ref().is_some_and(|a| a.hired));
    assert!(hired_anywhere, "{hired:?}");
    let ranks: Vec<u32> = response.hits.iter().map(|h| h.rank).collect();
    assert_eq!(ranks, (1..=response.hits.len() as u32).collect::<Vec<_>>());
}

#[test]
fn a_damaged_index_pointer_leaves_a_loaded_generation_serving() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let before = ids(&engine.search(&query(RUST_POSTING)).unwrap())
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    for damage in [&b"garbage"[..], b"\xfe\xfegen", b"gen-000000000009-gone"] {
        std::fs::write(fx.data.join("index").join("CURRENT"), damage).unwrap();
        let response = engine.search(&query(RUST_POSTING)).unwrap();
        assert_eq!(ids(&response), before, "{damage:?}");
    }
    // A fresh process has nothing loaded: it names the damage.
    assert!(fx.engine_result().is_err());
}

#[test]
fn a_deleted_candidate_never_appears() {
    let fx = Fixture::new();
    let engine = fx.engine();
    for semantic in [0.0, 0.5, 1.0] {
        let response = engine
            .search(&Query {
                semantic: Some(semantic),
                limit: 200,
                ..query(RUST_POSTING)
            })
            .unwrap();
        assert!(!ids(&response).contains(&"rust-gone"), "W={semantic}");
        let filtered = engine
            .search(&Query {
                semantic: Some(semantic),
                keywords: Some("kafka".into()),
                ..query(RUST_POSTING)
            })
            .unwrap();
        assert!(!ids(&filtered).contains(&"rust-gone"), "W={semantic}");
    }
    assert!(engine.candidate("rust-gone").unwrap_err().is_user_error());
}

// ---- filters -------------------------------------------------------------------------------

fn filtered(engine: &Engine, filters: Filters) -> Vec<String> {
    let response = engine
        .search(&Query {
            filters,
            limit: 200,
            ..query(RUST_POSTING)
        })
        .unwrap();
    let mut got: Vec<String> = response
        .hits
        .iter()
        .map(|h| h.opportunity_id.clone())
        .collect();
    got.sort();
    got
}

#[test]
fn every_filter_restricts_correctly() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let all = filtered(&engine, Filters::default());
    assert!(all.contains(&"rust-active".to_owned()) && all.contains(&"rust-hired".to_owned()));

    let archived = filtered(
        &engine,
        Filters {
            archived_only: true,
            ..Filters::default()
        },
    );
    assert!(!archived.contains(&"rust-active".to_owned()) && !archived.is_empty());

    let not_hired = filtered(
        &engine,
        Filters {
            exclude_hired: true,
            ..Filters::default()
        },
    );
    assert!(
        !not_hired.contains(&"rust-hired".to_owned()) && not_hired.contains(&"rust-bo".to_owned())
    );
    // Hired once is hired: the person's other opportunity does not bring them back.
    assert!(
        !not_hired.contains(&"rust-hired-before".to_owned()),
        "{not_hired:?}"
    );

    let berlin = filtered(
        &engine,
        Filters {
            location: Some("BERLIN".into()),
            ..Filters::default()
        },
    );
    assert!(
        berlin
            .iter()
            .all(|id| ["rust-ada", "rust-ada-old", "front-cy"].contains(&id.as_str())),
        "{berlin:?}"
    );
    assert!(!berlin.is_empty());

    let tagged = filtered(
        &engine,
        Filters {
            tags: vec!["rust".into(), "backend".into()],
            ..Filters::default()
        },
    );
    assert_eq!(tagged, vec!["rust-ada"]);

    let onsite = filtered(
        &engine,
        Filters {
            min_stage: Some("On-site interview".into()),
            ..Filters::default()
        },
    );
    assert_eq!(
        onsite,
        vec!["rust-ada", "rust-hired"],
        "offer (3) is past on-site (2)"
    );

    let recent = filtered(
        &engine,
        Filters {
            interacted_within_days: Some(10),
            ..Filters::default()
        },
    );
    assert_eq!(recent, vec!["rust-ada"]);

    let rated = filtered(
        &engine,
        Filters {
            min_rating: Some(4),
            ..Filters::default()
        },
    );
    assert_eq!(rated, vec!["rust-ada"]);
}

#[test]
fn keyword_filter_restricts_while_ranking_stays_hybrid() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let kafka = engine
        .search(&Query {
            keywords: Some("kafka".into()),
            limit: 200,
            ..query(RUST_POSTING)
        })
        .unwrap();
    assert_eq!(ids(&kafka), vec!["rust-ada"]);
    assert!(
        kafka.hits[0].explanation.semantic.is_some(),
        "the semantic side still ranks"
    );

    let kept = |filter: &str| -> Vec<String> {
        let response = engine
            .search(&Query {
                keywords: Some(filter.into()),
                limit: 200,
                ..query(RUST_POSTING)
            })
            .unwrap();
        ids(&response).iter().map(|id| id.to_string()).collect()
    };
    let has = |ids: &[String], id: &str| ids.iter().any(|i| i == id);
    for filter in [
        "rust AND NOT kafka",
        "rust NOT kafka",
        "rust -kafka",
        "NOT kafka AND rust",
        "rust AND (NOT kafka)",
        "(NOT kafka) rust",
    ] {
        let not = kept(filter);
        assert!(
            !has(&not, "rust-ada") && has(&not, "rust-bo"),
            "{filter}: {not:?}"
        );
        assert!(!has(&not, "front-cy"));
    }
    // Only exclusions: everyone but those.
    for filter in ["NOT kafka", "-kafka", "NOT (kafka OR ifrs)"] {
        let not = kept(filter);
        assert!(
            !has(&not, "rust-ada") && has(&not, "rust-bo") && has(&not, "front-cy"),
            "{filter}: {not:?}"
        );
    }

    // Words holding characters of tantivy's own grammar are searched as written.
    assert_eq!(kept("O'Reilly"), vec!["rust-ada"]);
    assert_eq!(kept("kafka: AND tokio"), vec!["rust-ada"]);
    assert!(kept("[kafka TO tokio]").is_empty(), "no one wrote that");

    let mut got = kept("\"pastry chef\" OR IFRS");
    got.sort();
    assert_eq!(got, vec!["acct-gu", "chef-fa"]);

    let err = engine
        .search(&Query {
            keywords: Some("rust AND (".into()),
            ..query(RUST_POSTING)
        })
        .unwrap_err();
    assert!(err.is_user_error(), "{err}");
}

#[test]
fn keyword_collectors_agree_on_hits_and_scores() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let keyword_hits = |text: &str, keywords: Option<&str>, collector| {
        let response = engine
            .search(&Query {
                semantic: Some(0.0),
                limit: 200,
                keywords: keywords.map(str::to_owned),
                collector,
                ..query(text)
            })
            .unwrap();
        response
            .hits
            .iter()
            .map(|h| {
                let score = h.explanation.keyword.as_ref().map(|k| k.score).unwrap();
                let words: Vec<String> = h
                    .explanation
                    .matched_terms
                    .iter()
                    .map(|t| t.token.clone())
                    .collect();
                (h.opportunity_id.clone(), score, words)
            })
            .collect::<Vec<_>>()
    };
    let texts = [
        RUST_POSTING,
        SYNONYM_POSTING,
        "Pastry chef with IFRS and C++ experience",
    ];
    for text in texts {
        for keywords in [None, Some("rust OR chef OR nurse")] {
            let taat = keyword_hits(text, keywords, search::KeywordCollector::TermAtATime);
            let daat = keyword_hits(text, keywords, search::KeywordCollector::Exhaustive);
            let wand = keyword_hits(text, keywords, search::KeywordCollector::TopDocsWand);
            assert!(!taat.is_empty() || text == SYNONYM_POSTING, "{text}");
            assert!(taat.iter().all(|(id, ..)| id != "rust-gone"), "deleted");
            for other in [&daat, &wand] {
                assert_eq!(taat.len(), other.len(), "{text} {keywords:?}");
                for ((a, x, m), (b, y, n)) in taat.iter().zip(other.iter()) {
                    assert_eq!(a, b, "{text} {keywords:?}: {taat:?} vs {other:?}");
                    assert!((x - y).abs() <= 1e-4 * x.abs().max(1.0), "{a}: {x} vs {y}");
                    // Recorded while scoring, or looked up in the postings afterwards.
                    assert_eq!(m, n, "{a}: matched terms");
                }
            }
        }
    }
    let rust = keyword_hits(RUST_POSTING, None, search::KeywordCollector::TermAtATime);
    assert!(
        rust.len() >= 4 && rust[0].1 > rust[rust.len() - 1].1,
        "{rust:?}"
    );
    assert!(rust[0].2.iter().any(|t| t == "rust"), "{rust:?}");
}

// ---- reasons -------------------------------------------------------------------------------

fn all_text(c: &Candidate) -> String {
    let mut parts = vec![c.headline.clone(), c.location.clone()];
    parts.extend(c.tags.iter().cloned());
    for r in &c.resumes {
        parts.extend(r.text.iter().cloned());
        for p in &r.positions {
            parts.extend([p.title.clone(), p.org.clone(), p.summary.clone()]);
        }
    }
    for n in &c.notes {
        parts.extend(n.comments.iter().cloned());
    }
    parts.join("\n")
}

#[test]
fn every_reason_is_present_and_true_to_the_data() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let snapshot = engine.snapshot().unwrap();
    let keyword = snapshot.indexes.keyword();
    let vectors = snapshot.indexes.vectors();
    let response = engine.search(&query(RUST_POSTING)).unwrap();
    assert!(!response.terms.is_empty());
    for hit in &response.hits {
        let stored = snapshot.store.get(&hit.opportunity_id).unwrap().unwrap();
        let e = &hit.explanation;
        let text = all_text(&stored);
        let text_tokens = keyword.analyze(keyword.fields().text, &text);
        let exact_tokens = keyword.analyze(keyword.fields().exact, &text);
        for m in &e.matched_terms {
            let tokens = if m.exact { &exact_tokens } else { &text_tokens };
            assert!(
                tokens.contains(&m.token),
                "{}: {:?} is not in its text",
                hit.opportunity_id,
                m.token
            );
        }
        if e.keyword.is_some() {
            assert!(
                !e.matched_terms.is_empty(),
                "{}: keyword hit without matched terms",
                hit.opportunity_id
            );
            let snippet = e.snippet.as_ref().expect("keyword hit has a snippet");
            assert!(
                text.contains(&snippet.text),
                "snippet is the candidate's own text"
            );
            assert!(!snippet.highlights.is_empty());
        }
        if let Some(s) = &e.semantic {
            let ordinal = snapshot.indexes.ordinal(&hit.opportunity_id).unwrap();
            let theirs = (0..vectors.len() as u32)
                .any(|c| vectors.chunk(c).ordinal == ordinal && vectors.chunk_text(c) == s.passage);
            assert!(
                theirs,
                "{}: the passage is one of their own chunks",
                hit.opportunity_id
            );
            assert!(s.similarity > 0.0 && s.rank >= 1);
        }
        assert!(e.keyword.is_some() || e.semantic.is_some());
        let h = &e.history;
        assert_eq!(h.profile_url, stored.profile_url);
        assert_eq!(h.notes, stored.notes.len());
        assert_eq!(
            h.feedback_ratings,
            stored
                .feedback
                .iter()
                .filter_map(|f| f.rating)
                .collect::<Vec<_>>()
        );
        assert_eq!(h.last_interaction_at, stored.last_interaction_at);
        assert_eq!(h.archived.is_some(), stored.archived.is_some());
    }
    let ada = response
        .hits
        .iter()
        .find(|h| h.opportunity_id == "rust-ada")
        .expect("ada ranked");
    let h = &ada.explanation.history;
    assert_eq!(
        h.stages_reached,
        vec!["New lead", "Phone screen", "On-site interview"]
    );
    let archived = h.archived.as_ref().unwrap();
    assert_eq!(
        (archived.reason.as_str(), archived.hired),
        ("Timing", false)
    );
    assert_eq!(h.feedback_ratings, vec![4]);
    assert_eq!(h.notes, 2);
    let words: Vec<&str> = ada
        .explanation
        .matched_terms
        .iter()
        .map(|m| m.word.as_str())
        .collect();
    assert!(
        words.contains(&"rust") && words.contains(&"tokio"),
        "{words:?}"
    );
    let hired = response
        .hits
        .iter()
        .find(|h| h.opportunity_id == "rust-hired")
        .unwrap();
    assert!(hired.explanation.history.archived.as_ref().unwrap().hired);
}

#[test]
fn repeated_query_is_not_embedded_again_and_missing_model_degrades() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let first = engine.search(&query(RUST_POSTING)).unwrap();
    let second = engine.search(&query(RUST_POSTING)).unwrap();
    assert!(!first.timings.embed_cached && second.timings.embed_cached);
    assert_eq!(ids(&first), ids(&second));

    let snapshot = engine.snapshot().unwrap();
    let ctx = Context {
        indexes: &snapshot.indexes,
        store: &snapshot.store,
        embedder: None,
        people: None,
        term_cache: None,
        hidden: &[],
    };
    let degraded = search::search(ctx, &query(RUST_POSTING)).unwrap();
    assert!(degraded.degraded.is_some());
    assert!(
        !degraded.hits.is_empty()
            && degraded
                .hits
                .iter()
                .all(|h| h.explanation.semantic.is_none())
    );
    let keyword_only = engine
        .search(&Query {
            semantic: Some(0.0),
            ..query(RUST_POSTING)
        })
        .unwrap();
    assert_eq!(ids(&degraded), ids(&keyword_only));
    let _ = QueryEmbedder::new(Arc::clone(&fx.embedder), 1);
}

#[test]
fn engine_picks_up_a_new_generation_without_restart() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let before = engine.snapshot().unwrap().generation();
    let newcomer = candidate(&Person {
        id: "cobol-ho",
        contact: "c-ho",
        headline: "COBOL mainframe programmer",
        title: "Mainframe Programmer",
        resume: "COBOL, JCL and CICS on IBM z/OS mainframes.",
        location: "",
        tags: &[],
        stages: &[("lead-new", 0)],
        archived: Some("timing"),
        rating: None,
        notes: 0,
        last_interaction_days: 1,
    });
    let mut batch = Store::begin(&fx.data).unwrap();
    batch.upsert(newcomer.clone()).unwrap();
    let commit = batch.commit(SyncState::default()).unwrap();
    let store = Store::open(&fx.data).unwrap();
    index::update(
        &fx.data,
        commit.generation,
        std::iter::once(newcomer),
        &[],
        store.reference(),
        &fx.embedder,
        None,
        &index::Progress::none(),
    )
    .unwrap();
    let response = engine.search(&query("COBOL mainframe programmer")).unwrap();
    assert_eq!(response.hits[0].opportunity_id, "cobol-ho");
    assert!(response.generation > before);
}

/// `rediscover index` rebuilds the same store generation into a new directory (and removes
/// the one served): the engine must move to it.
#[test]
fn engine_picks_up_a_rebuild_of_the_same_generation() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let before = engine.snapshot().unwrap();
    let store = Store::open(&fx.data).unwrap();
    rediscover::pipeline::rebuild(&fx.data, &store, &fx.embedder, &index::Progress::none())
        .unwrap();
    let after = engine.snapshot().unwrap();
    assert_eq!(after.generation(), before.generation());
    assert_ne!(
        after.indexes.dir(),
        before.indexes.dir(),
        "still on the removed directory"
    );
    assert!(after.indexes.dir().exists());
    assert!(!engine.search(&query(RUST_POSTING)).unwrap().hits.is_empty());
}

/// An index built by another model than the one loaded is searched by keyword only, and the
/// answer says why (a query vector of one model against vectors of another ranks nonsense).
#[test]
fn an_index_of_another_model_degrades_to_keyword_results() {
    let fx = Fixture::new();
    let dir = fx.engine().snapshot().unwrap().indexes.dir().to_owned();
    let meta_path = dir.join("meta.json");
    let meta = std::fs::read_to_string(&meta_path).unwrap();
    let sha = fx.embedder.model_sha256();
    assert!(meta.contains(sha));
    std::fs::write(&meta_path, meta.replace(sha, &"0".repeat(64))).unwrap();
    let response = fx.engine().search(&query(RUST_POSTING)).unwrap();
    let reason = response.degraded.expect("degraded");
    assert!(reason.contains("another model"), "{reason}");
    assert!(!response.hits.is_empty(), "keyword results still come");
}

/// The same model file with another tokenizer or settings makes other vectors too: queries
/// degrade to keyword results, and an index step with nothing to commit rebuilds the index
/// instead of calling it up to date.
#[test]
fn an_index_of_other_embedding_settings_is_not_searched_by_vector_and_is_rebuilt() {
    let fx = Fixture::new();
    let dir = fx.engine().snapshot().unwrap().indexes.dir().to_owned();
    let meta_path = dir.join("meta.json");
    let mut meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta_path).unwrap()).unwrap();
    assert_eq!(
        meta["embedding_settings"].as_str(),
        Some(fx.embedder.settings_sha256())
    );
    meta["embedding_settings"] = "0".repeat(64).into();
    std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
    let response = fx.engine().search(&query(RUST_POSTING)).unwrap();
    let reason = response.degraded.expect("degraded");
    assert!(reason.contains("tokenizer or settings"), "{reason}");

    let store = rediscover::store::Store::open(&fx.data).unwrap();
    let outcome = rediscover::pipeline::bring_up_to_date(
        &fx.data,
        &store,
        None,
        &fx.embedder,
        None,
        &index::Progress::none(),
    )
    .unwrap();
    assert_eq!(outcome.action, rediscover::pipeline::IndexAction::Rebuilt);
    let response = fx.engine().search(&query(RUST_POSTING)).unwrap();
    assert_eq!(response.degraded, None);
}

/// With the store ahead of the index (`sync --no-index`), an opportunity gone from the store is
/// left out before the page is cut: the page stays full.
#[test]
fn a_store_ahead_of_the_index_still_fills_the_page() {
    let fx = Fixture::new();
    let five = |engine: &Engine| {
        let response = engine
            .search(&Query {
                limit: 5,
                ..query(RUST_POSTING)
            })
            .unwrap();
        ids(&response)
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let before = five(&fx.engine());
    assert_eq!(before.len(), 5);
    let mut batch = Store::begin(&fx.data).unwrap();
    batch.delete(&before[0]).unwrap();
    batch.commit(SyncState::default()).unwrap();
    let after = five(&fx.engine());
    assert_eq!(after.len(), 5, "{after:?}");
    assert!(!after.contains(&before[0]));
    // The others keep their places; the gone opportunity's person may stay through another.
    assert!(before[1..].iter().all(|id| after.contains(id)), "{after:?}");
}

/// A person with more opportunities than a side returns at first (a recruiter re-adds the
/// same strong applicant for every opening) does not leave the page short: the sides are asked
/// for more until the page has its people.
#[test]
fn a_person_with_many_opportunities_does_not_leave_the_page_short() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let embedder = embedder();
    let person = |id: String, contact: &str, headline: &str, resume: &str| {
        candidate(&Person {
            id: &id,
            contact,
            headline,
            title: "Backend Engineer",
            resume,
            location: "",
            tags: &[],
            stages: &[("lead-new", 0)],
            archived: None,
            rating: None,
            notes: 0,
            last_interaction_days: 1,
        })
    };
    let mut batch = Store::begin(&data).unwrap();
    let strong = "Rust, Tokio, Axum, PostgreSQL and Kafka: backend services in Rust for years.";
    let many = rediscover::search::depth_for(3) + 5;
    for i in 0..many {
        batch
            .upsert(person(
                format!("strong-{i:03}"),
                "c-strong",
                "Rust backend engineer",
                strong,
            ))
            .unwrap();
    }
    for (i, contact) in ["c-one", "c-two", "c-three"].into_iter().enumerate() {
        batch
            .upsert(person(
                format!("other-{i}"),
                contact,
                "Java developer",
                "Some Rust, mostly Java and Spring.",
            ))
            .unwrap();
    }
    batch.set_reference(reference()).unwrap();
    let commit = batch.commit(SyncState::default()).unwrap();
    let store = Store::open(&data).unwrap();
    index::rebuild(
        &data,
        commit.generation,
        store.candidates().map(Result::unwrap),
        store.reference(),
        &embedder,
        &index::Progress::none(),
    )
    .unwrap();
    let engine = Engine::open(&data, Some(Arc::clone(&embedder))).unwrap();
    for semantic in [0.0, 0.5, 1.0] {
        let response = engine
            .search(&Query {
                limit: 3,
                semantic: Some(semantic),
                ..query("Rust backend engineer")
            })
            .unwrap();
        let contacts: Vec<&str> = response
            .hits
            .iter()
            .map(|h| h.contact_id.as_str())
            .collect();
        assert_eq!(contacts.len(), 3, "W={semantic}: {contacts:?}");
        assert_eq!(contacts[0], "c-strong", "W={semantic}");
        assert_eq!(response.hits[0].other_opportunity_ids.len(), many - 1);
    }
}

/// An index run holding a store opened before a sync committed (`rediscover index` loads its
/// model after opening the store) indexes the committed store, so it never publishes a
/// generation that brings back what the newer commit purged.
#[test]
fn an_index_run_on_a_store_opened_before_a_commit_indexes_the_commit() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let gone = ids(&engine.search(&query(RUST_POSTING)).unwrap())[0].to_owned();
    let stale = Store::open(&fx.data).unwrap();
    let mut batch = Store::begin(&fx.data).unwrap();
    batch.delete(&gone).unwrap();
    let commit = batch.commit(SyncState::default()).unwrap();
    let purged = |engine: &Engine| {
        let snapshot = engine.snapshot().unwrap();
        assert_eq!(snapshot.generation(), commit.generation);
        snapshot
            .indexes
            .ordinal(&gone)
            .is_none_or(|o| snapshot.indexes.rows()[o as usize].deleted)
    };
    // A full rebuild on the stale store.
    let stats =
        rediscover::pipeline::rebuild(&fx.data, &stale, &fx.embedder, &index::Progress::none())
            .unwrap();
    assert_eq!(stats.generation, commit.generation);
    assert!(
        purged(&engine),
        "the deleted candidate is back in the index"
    );
    // An index step on the stale store after the newer commit was indexed: nothing to do.
    let outcome = rediscover::pipeline::bring_up_to_date(
        &fx.data,
        &stale,
        None,
        &fx.embedder,
        None,
        &index::Progress::none(),
    )
    .unwrap();
    assert_eq!(outcome.action, rediscover::pipeline::IndexAction::UpToDate);
    assert_eq!(outcome.generation, Some(commit.generation));
    assert!(purged(&engine), "the index went back a generation");
}

/// A long-running engine follows the store too, not only the index: after `sync --no-index`
/// (or a failed index step) a candidate deleted in Lever is gone from every answer.
#[test]
fn engine_follows_a_store_that_moved_without_a_new_index() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let gone = ids(&engine.search(&query(RUST_POSTING)).unwrap())[0].to_owned();
    assert!(engine.candidate(&gone).is_ok());
    let mut batch = Store::begin(&fx.data).unwrap();
    batch.delete(&gone).unwrap();
    let commit = batch.commit(SyncState::default()).unwrap();
    let snapshot = engine.snapshot().unwrap();
    assert_eq!(snapshot.store.generation(), commit.generation);
    assert!(!ids(&engine.search(&query(RUST_POSTING)).unwrap()).contains(&gone.as_str()));
    assert!(engine.candidate(&gone).unwrap_err().is_user_error());
}

/// `/healthz` tells a monitor when a sync committed but did not index (`--no-index`, a failed
/// or killed index step), so the answers miss what the store added.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_when_the_store_moved_past_the_index() {
    let fx = tokio::task::spawn_blocking(Fixture::new).await.unwrap();
    let router = app(AppState::new(Arc::new(fx.engine()), None));
    let (_, json) = call(&router, "GET", "/healthz", None, None).await;
    assert_eq!(json["index_behind_store"], false, "{json}");
    let data = fx.data.clone();
    tokio::task::spawn_blocking(move || {
        let mut batch = Store::begin(&data).unwrap();
        batch.delete("rust-bo").unwrap();
        batch.commit(SyncState::default()).unwrap();
    })
    .await
    .unwrap();
    let (status, json) = call(&router, "GET", "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["index_behind_store"], true, "{json}");
}

/// Commits new reference data with one candidate changed, as a sync would.
fn commit_reference(fx: &Fixture, reference: ReferenceData) -> rediscover::store::Commit {
    let store = Store::open(&fx.data).unwrap();
    let changed = store.candidates().next().unwrap().unwrap();
    let mut batch = Store::begin(&fx.data).unwrap();
    batch.set_reference(reference).unwrap();
    batch.upsert(changed).unwrap();
    batch.commit(SyncState::default()).unwrap()
}

/// The index step of a sync after `commit`.
fn index_commit(
    fx: &Fixture,
    commit: &rediscover::store::Commit,
) -> rediscover::pipeline::IndexOutcome {
    let store = Store::open(&fx.data).unwrap();
    rediscover::pipeline::bring_up_to_date(
        &fx.data,
        &store,
        Some(commit),
        &fx.embedder,
        None,
        &index::Progress::none(),
    )
    .unwrap()
}

/// Rows hold a stage position in Lever's list; when the list changes, the next sync rebuilds
/// rather than mix positions of two lists, and the minimum-stage filter stays right.
#[test]
fn a_changed_stage_list_rebuilds_and_the_stage_filter_stays_right() {
    let fx = Fixture::new();
    let onsite = |engine: &Engine| {
        filtered(
            engine,
            Filters {
                min_stage: Some("On-site interview".into()),
                ..Filters::default()
            },
        )
    };
    let before = onsite(&fx.engine());
    assert!(!before.is_empty());
    // An admin adds a stage before the on-site one; one candidate changes in the same sync.
    let mut reference = reference();
    reference.stages.insert(
        2,
        rediscover::domain::Stage {
            id: "tech".into(),
            text: "Technical screen".into(),
        },
    );
    let commit = commit_reference(&fx, reference);
    // The store is ahead of the index: stages resolve in the index's own list.
    assert_eq!(onsite(&fx.engine()), before);
    let err = fx
        .engine()
        .search(&Query {
            filters: Filters {
                min_stage: Some("Technical screen".into()),
                ..Filters::default()
            },
            ..query(RUST_POSTING)
        })
        .unwrap_err();
    assert!(
        err.is_user_error() && err.to_string().contains("newer than the index"),
        "{err}"
    );
    assert_eq!(
        index_commit(&fx, &commit).action,
        rediscover::pipeline::IndexAction::Rebuilt
    );
    assert_eq!(onsite(&fx.engine()), before);
}

/// Rows and keyword documents copy the archive reasons' names: when Lever renames one, the
/// next sync rebuilds, so the new name finds every candidate archived with it, not only those
/// that changed since.
#[test]
fn a_renamed_archive_reason_rebuilds_and_finds_every_candidate() {
    let fx = Fixture::new();
    let by_reason = |engine: &Engine, name: &str| {
        let response = engine
            .search(&Query {
                keywords: Some(name.into()),
                limit: 200,
                ..query(RUST_POSTING)
            })
            .unwrap();
        let mut found: Vec<String> = ids(&response).iter().map(|s| s.to_string()).collect();
        found.sort();
        found
    };
    let timing = by_reason(&fx.engine(), "timing");
    assert!(timing.len() >= 2, "{timing:?}");
    let mut reference = reference();
    reference.archive_reasons[0].text = "Bad timing for relocation".into();
    let commit = commit_reference(&fx, reference);
    assert_eq!(
        index_commit(&fx, &commit).action,
        rediscover::pipeline::IndexAction::Rebuilt
    );
    assert_eq!(by_reason(&fx.engine(), "relocation"), timing);
}

/// A released deletion notice keeps its candidate hidden from a snapshot older than the
/// generation that purged it (a query running while the engine has not reloaded yet).
#[test]
fn a_released_deletion_stays_hidden_until_the_purging_generation_is_served() {
    use rediscover::sync::inbox::{DELETED_EVENT, Inbox, Notice};
    let fx = Fixture::new();
    // Checks for new generations only hourly: it keeps serving the snapshot it opened.
    let engine = Engine::open(&fx.data, Some(Arc::clone(&fx.embedder)))
        .unwrap()
        .with_reload_check(Duration::from_secs(3600));
    let served = engine.snapshot().unwrap().generation();
    let answered = |engine: &Engine| {
        let response = engine.search(&query(RUST_POSTING)).unwrap();
        ids(&response)
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let before = answered(&engine);
    let (victim, bystander) = (before[0].clone(), before[1].clone());

    let inbox = Inbox::new(&fx.data);
    inbox
        .append(&Notice {
            event: DELETED_EVENT.into(),
            opportunity_id: victim.clone(),
            triggered_at: Some(1),
        })
        .unwrap();
    engine.refresh_pending_deletions();
    assert!(!answered(&engine).contains(&victim), "hidden on arrival");

    // A sync purges it and publishes the next generation, then releases the notice.
    let mut batch = Store::begin(&fx.data).unwrap();
    batch.delete(&victim).unwrap();
    let commit = batch.commit(SyncState::default()).unwrap();
    let store = Store::open(&fx.data).unwrap();
    index::update(
        &fx.data,
        commit.generation,
        std::iter::empty(),
        &commit.deleted,
        store.reference(),
        &fx.embedder,
        None,
        &index::Progress::none(),
    )
    .unwrap();
    let pending = inbox.read().unwrap();
    inbox.consume(&pending, |_| false).unwrap();
    engine.refresh_pending_deletions();

    assert_eq!(
        engine.snapshot().unwrap().generation(),
        served,
        "not reloaded"
    );
    let after = answered(&engine);
    assert!(!after.contains(&victim), "the old snapshot shows it again");
    assert!(after.contains(&bystander));
    assert!(engine.candidate(&victim).unwrap_err().is_user_error());

    // A notice released without a purge (the sync found the candidate alive) hides no more.
    inbox
        .append(&Notice {
            event: DELETED_EVENT.into(),
            opportunity_id: bystander.clone(),
            triggered_at: Some(2),
        })
        .unwrap();
    engine.refresh_pending_deletions();
    assert!(!answered(&engine).contains(&bystander));
    let pending = inbox.read().unwrap();
    inbox.consume(&pending, |_| false).unwrap();
    let fresh = fx.engine();
    assert!(answered(&fresh).contains(&bystander));
    assert!(!answered(&fresh).contains(&victim));
}

// ---- bad input: library --------------------------------------------------------------------

#[test]
fn bad_input_gives_clear_user_errors() {
    let fx = Fixture::new();
    let engine = fx.engine();
    let cases: Vec<(Query, &str)> = vec![
        (query("   "), "empty"),
        (query(&"rust ".repeat(220_000)), "bytes"),
        (
            Query {
                limit: 0,
                ..query("rust")
            },
            "limit",
        ),
        (
            Query {
                limit: 10_000,
                ..query("rust")
            },
            "limit",
        ),
        (
            Query {
                semantic: Some(2.0),
                ..query("rust")
            },
            "semantic",
        ),
        (
            Query {
                keywords: Some("(rust".into()),
                ..query("rust")
            },
            "",
        ),
        (Query::posting("no-such-posting"), "no-such-posting"),
        (
            Query {
                filters: Filters {
                    min_stage: Some("Nowhere".into()),
                    ..Filters::default()
                },
                ..query("rust")
            },
            "Nowhere",
        ),
    ];
    for (q, needle) in cases {
        let err = engine.search(&q).unwrap_err();
        assert!(err.is_user_error(), "{err}");
        assert!(
            err.to_string().contains(needle),
            "{err:?} should mention {needle:?}"
        );
    }
    assert!(
        engine.search(&query("rust")).is_ok(),
        "still answers after bad input"
    );

    let empty = tempfile::tempdir().unwrap();
    let no_index = Engine::open(empty.path(), None).unwrap();
    let err = no_index.search(&query("rust")).unwrap_err();
    assert!(
        err.is_user_error() && err.to_string().contains("rediscover index"),
        "{err}"
    );
}

// ---- HTTP ----------------------------------------------------------------------------------

async fn call(
    router: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<String>,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(t) = token {
        request = request.header("authorization", format!("Bearer {t}"));
    }
    let request = match body {
        Some(b) => request
            .header("content-type", "application/json")
            .body(Body::from(b)),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_match_postings_candidates_health_and_errors() {
    let fx = tokio::task::spawn_blocking(Fixture::new).await.unwrap();
    let engine = Arc::new(fx.engine());
    let router = app(AppState::new(engine, Some("s3cret".into())));
    let tok = Some("s3cret");

    let body =
        serde_json::json!({"text": RUST_POSTING, "limit": 3, "filters": {"exclude_hired": true}})
            .to_string();
    let (status, json) = call(&router, "POST", "/v1/match", Some(body.clone()), tok).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let parsed: MatchResponse = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(parsed.results.len(), 3);
    for (i, r) in parsed.results.iter().enumerate() {
        assert_eq!(r.rank as usize, i + 1);
        assert!(!r.opportunity_id.is_empty() && !r.contact_id.is_empty());
        assert_ne!(r.opportunity_id, "rust-hired");
        let mut others: Vec<&str> = (r.reasons.other_opportunities.iter())
            .map(|o| o.opportunity_id.as_str())
            .collect();
        let mut ids: Vec<&str> = r.other_opportunity_ids.iter().map(String::as_str).collect();
        others.sort_unstable();
        ids.sort_unstable();
        assert_eq!(others, ids, "each other opportunity has its history");
    }
    assert!(
        (parsed.results.iter()).any(|r| !r.reasons.other_opportunities.is_empty()),
        "{json}"
    );
    assert!(json["results"][0]["reasons"]["history"]["profile_url"].is_string());
    assert!(json["took_ms"].is_number());

    let (status, _) = call(&router, "POST", "/v1/match", Some(body.clone()), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = call(
        &router,
        "POST",
        "/v1/match",
        Some(body.clone()),
        Some("wrong"),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let bad: Vec<(serde_json::Value, StatusCode)> = vec![
        (serde_json::json!({"text": ""}), StatusCode::BAD_REQUEST),
        (
            serde_json::json!({"text": "rust", "limit": 0}),
            StatusCode::BAD_REQUEST,
        ),
        (
            serde_json::json!({"text": "rust", "limit": 10000}),
            StatusCode::BAD_REQUEST,
        ),
        (
            serde_json::json!({"text": "rust", "keywords": "rust AND ("}),
            StatusCode::BAD_REQUEST,
        ),
        (
            serde_json::json!({"posting_id": "nope"}),
            StatusCode::NOT_FOUND,
        ),
        (
            serde_json::json!({"text": "a", "posting_id": "b"}),
            StatusCode::BAD_REQUEST,
        ),
        (serde_json::json!({"txt": "typo"}), StatusCode::BAD_REQUEST),
        (
            serde_json::json!({"text": "rust", "limit": -1}),
            StatusCode::BAD_REQUEST,
        ),
        (
            serde_json::json!({"text": "x".repeat(100_000)}),
            StatusCode::BAD_REQUEST,
        ),
        (
            serde_json::json!({"text": "x".repeat(1_000_000)}),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (request, expected) in bad {
        let (status, json) =
            call(&router, "POST", "/v1/match", Some(request.to_string()), tok).await;
        assert_eq!(status, expected, "{json}");
        assert!(
            json["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{json}"
        );
    }
    let (status, json) = call(&router, "POST", "/v1/match", Some("{not json".into()), tok).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(json["error"].is_string());
    let (_, json) = call(
        &router,
        "POST",
        "/v1/match",
        Some(serde_json::json!({"text": "rust", "limit": -1}).to_string()),
        tok,
    )
    .await;
    let error = json["error"].as_str().unwrap();
    assert!(
        error.contains("whole number from 1 to 200") && !error.contains("usize"),
        "{error}"
    );
    // `"filters": null` means no filters, as `"limit": null` means the default.
    let (status, json) = call(
        &router,
        "POST",
        "/v1/match",
        Some(r#"{"text": "rust", "filters": null, "limit": null}"#.into()),
        tok,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let (status, json) = call(
        &router,
        "POST",
        "/v1/match",
        Some(
            r#"{"text": "rust", "filters": {"tags": null, "archived_only": null, "exclude_hired": null}}"#
                .into(),
        ),
        tok,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    // A wrong method gets a JSON answer too.
    let (status, json) = call(&router, "GET", "/v1/match", None, tok).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(json["error"].is_string(), "{json}");
    // The scheme of the Authorization header is case-insensitive.
    let request = Request::builder()
        .method("GET")
        .uri("/v1/postings")
        .header("authorization", "bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let (status, _) = call(&router, "POST", "/v1/match", Some(body.clone()), tok).await;
    assert_eq!(status, StatusCode::OK, "still serving after bad requests");

    let (status, json) = call(&router, "GET", "/v1/postings", None, tok).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["postings"][0]["id"], "post-rust");
    let (status, json) = call(
        &router,
        "POST",
        "/v1/match",
        Some(r#"{"posting_id": "post-rust", "limit": 1}"#.into()),
        tok,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{json}");

    let (status, json) = call(&router, "GET", "/v1/candidates/rust-ada", None, tok).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json["other_opportunity_ids"],
        serde_json::json!(["rust-ada-old"])
    );
    assert_eq!(json["history"]["notes"], 2);
    assert!(
        json.get("emails").is_none(),
        "contact details are not served"
    );
    let (status, json) = call(&router, "GET", "/v1/candidates/rust-gone", None, tok).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    // An id that is not UTF-8 gets the API's JSON error like any other bad request.
    let (status, json) = call(&router, "GET", "/v1/candidates/%FF%FE", None, tok).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("opportunity id")),
        "{json}"
    );

    let (status, json) = call(&router, "GET", "/healthz", None, None).await;
    assert_eq!(
        (status, json["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    assert_eq!(json["index_behind_store"], false, "{json}");
    let (status, spec) = call(&router, "GET", "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    // Every answer has the shape the description gives it: no field missing that it requires,
    // none that it does not declare.
    for (method, path, body, schema) in [
        ("POST", "/v1/match", Some(body.clone()), "MatchResponse"),
        ("GET", "/v1/postings", None, "Postings"),
        ("GET", "/v1/candidates/rust-ada", None, "Candidate"),
        ("GET", "/v1/candidates/rust-gone", None, "Error"),
        ("GET", "/healthz", None, "Health"),
    ] {
        let (_, json) = call(&router, method, path, body, tok).await;
        let schema = serde_json::json!({"$ref": format!("#/components/schemas/{schema}")});
        if let Err(e) = conforms(&spec, &json, &schema, path) {
            panic!("{method} {path} does not match /openapi.json: {e}\n{json}");
        }
    }
}

/// Whether `value` has the shape `schema` (a part of the OpenAPI `spec`) describes: types,
/// required properties, no undeclared ones, nullable, enums, recursively.
fn conforms(
    spec: &serde_json::Value,
    value: &serde_json::Value,
    schema: &serde_json::Value,
    at: &str,
) -> Result<(), String> {
    use serde_json::Value;
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        let named = &spec["components"]["schemas"][name];
        if !named.is_object() {
            return Err(format!("{at}: no schema {name}"));
        }
        return conforms(spec, value, named, at);
    }
    if value.is_null() {
        return match schema["nullable"].as_bool() {
            Some(true) => Ok(()),
            _ => Err(format!("{at} is null")),
        };
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at} = {value} is not one of {allowed:?}"));
    }
    let typed = match (schema["type"].as_str(), value) {
        (Some("object"), Value::Object(fields)) => {
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap_or_default();
                if !fields.contains_key(name) {
                    return Err(format!("{at}.{name} is missing"));
                }
            }
            if let Some(declared) = schema["properties"].as_object() {
                for (name, field) in fields {
                    let Some(field_schema) = declared.get(name) else {
                        return Err(format!("{at}.{name} is not declared"));
                    };
                    conforms(spec, field, field_schema, &format!("{at}.{name}"))?;
                }
            }
            true
        }
        (Some("array"), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                conforms(spec, item, &schema["items"], &format!("{at}[{i}]"))?;
            }
            true
        }
        (Some("string"), Value::String(_)) | (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Some("number"), Value::Number(_)) => true,
        (None, _) => true,
        _ => false,
    };
    if typed {
        Ok(())
    } else {
        Err(format!("{at} = {value} is not of type {}", schema["type"]))
    }
}

/// A delivery body as Lever signs it (§9.3) with `signature_token`, about `opportunity_id`
/// (none: a test ping's empty `data`).
/// A signed delivery triggered a minute ago, with a token of its own.
fn delivery(signature_token: &str, event: &str, opportunity_id: Option<&str>) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let at = rediscover::index::generation::now_ms() - 60_000;
    delivery_at(
        signature_token,
        event,
        opportunity_id,
        &format!("{n:048}"),
        at,
    )
}

fn delivery_at(
    signature_token: &str,
    event: &str,
    opportunity_id: Option<&str>,
    token: &str,
    at: i64,
) -> String {
    let data = match opportunity_id {
        Some(id) => serde_json::json!({"opportunityId": id, "candidateId": id}),
        None => serde_json::json!({}),
    };
    serde_json::json!({"event": event, "triggeredAt": at, "token": token, "data": data,
        "signature": rediscover::lever::webhook::sign(signature_token, token, at)})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_webhooks_are_verified_queued_and_hide_a_deletion_at_once() {
    use rediscover::sync::inbox::{Inbox, TOKENS_FILE};
    let fx = tokio::task::spawn_blocking(Fixture::new).await.unwrap();
    let engine = Arc::new(fx.engine());
    let router = app(AppState::new(engine, Some("s3cret".into())));
    let tok = Some("s3cret");
    let match_body = serde_json::json!({"text": RUST_POSTING, "limit": 20}).to_string();
    let matched = |json: &serde_json::Value| -> Vec<String> {
        json["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["opportunity_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, before) = call(&router, "POST", "/v1/match", Some(match_body.clone()), tok).await;
    let before = matched(&before);
    let (victim, bystander) = (before[0].clone(), before[1].clone());
    let hook = |body: String| call(&router, "POST", "/webhooks/lever", Some(body), None);

    // Not set up yet: nothing is accepted.
    let (status, json) = hook(delivery("tok-b", "candidateDeleted", Some(&victim))).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{json}");
    assert!(json["error"].as_str().unwrap().contains(TOKENS_FILE));

    std::fs::write(
        fx.data.join(TOKENS_FILE),
        "# one per webhook\ntok-a\n\ntok-b\n",
    )
    .unwrap();
    let (status, _) = hook(delivery("tok-x", "candidateDeleted", Some(&victim))).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a foreign key");
    let at = rediscover::index::generation::now_ms();
    let tampered = delivery_at("tok-b", "candidateDeleted", Some(&victim), "t1", at)
        .replace(&at.to_string(), &(at + 1).to_string());
    let (status, _) = hook(tampered).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a changed triggeredAt");
    let unsigned =
        serde_json::json!({"event": "candidateDeleted", "data": {"opportunityId": victim}});
    let (status, _) = hook(unsigned.to_string()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "no signature");
    let (status, _) = hook("not json".into()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, json) = hook(delivery("tok-a", "candidateHired", None)).await;
    assert_eq!(
        (status, json["queued"].as_bool()),
        (StatusCode::OK, Some(false)),
        "a test ping"
    );
    let inbox = Inbox::new(&fx.data);
    assert!(inbox.read().unwrap().notices.is_empty());
    // A signed delivery with an event name or an id that cannot be Lever's is not queued.
    let huge_event = "candidateHired".repeat(10);
    let (status, json) = hook(delivery("tok-a", &huge_event, Some(&bystander))).await;
    assert_eq!(
        (status, json["ignored"].as_str()),
        (StatusCode::OK, Some("malformed")),
        "{json}"
    );
    let (status, json) = hook("x".repeat(4_000_000)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{json}");
    assert!(json["error"].is_string(), "a JSON error: {json}");
    let huge_id = "x".repeat(5_000);
    let (_, json) = hook(delivery("tok-a", "candidateHired", Some(&huge_id))).await;
    assert_eq!(json["ignored"].as_str(), Some("malformed"), "{json}");
    assert!(inbox.read().unwrap().notices.is_empty());

    // Signed deliveries are queued; a deletion is hidden from the next answer.
    let (status, json) = hook(delivery("tok-a", "candidateStageChange", Some(&bystander))).await;
    assert_eq!(
        (status, json["queued"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, json) = hook(delivery("tok-b", "candidateDeleted", Some(&victim))).await;
    assert_eq!(
        (status, json["queued"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    assert_eq!(inbox.read().unwrap().notices.len(), 2);

    // Lever signs only the token and the time: a captured delivery sent again, even rewritten
    // to delete another candidate, is not queued; nor is one older than the window.
    let at = rediscover::index::generation::now_ms() - 1_000;
    let first = delivery_at("tok-a", "candidateStageChange", Some(&bystander), "t2", at);
    let (_, json) = hook(first.clone()).await;
    assert_eq!(json["queued"].as_bool(), Some(true), "{json}");
    let (status, json) = hook(first).await;
    assert_eq!(
        (status, json["queued"].as_bool(), json["ignored"].as_str()),
        (StatusCode::OK, Some(false), Some("repeat")),
        "a retry of a kept delivery"
    );
    let forged = delivery_at("tok-a", "candidateDeleted", Some(&bystander), "t2", at);
    let (_, json) = hook(forged).await;
    assert_eq!(
        json["ignored"].as_str(),
        Some("repeat"),
        "a rewritten replay"
    );
    let old = rediscover::index::generation::now_ms() - rediscover::sync::replay::WINDOW_MS - 1;
    let stale = delivery_at("tok-b", "candidateDeleted", Some(&bystander), "t3", old);
    let (_, json) = hook(stale).await;
    assert_eq!(json["ignored"].as_str(), Some("stale"));
    assert_eq!(inbox.read().unwrap().notices.len(), 3);
    let (_, after) = call(&router, "POST", "/v1/match", Some(match_body.clone()), tok).await;
    let after = matched(&after);
    assert!(
        !after.contains(&victim),
        "a deleted candidate is still answered"
    );
    assert!(after.contains(&bystander), "only the deletion hides");
    let uri = format!("/v1/candidates/{victim}");
    let (status, _) = call(&router, "GET", &uri, None, tok).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Hiding lasts as long as the notice waits: once a sync has acted on it, the index decides.
    let pending = inbox.read().unwrap();
    inbox.consume(&pending, |_| false).unwrap();
    let (status, _) = call(&router, "GET", &uri, None, tok).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_missing_index_is_503_json() {
    let empty = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::open(empty.path(), None).unwrap());
    let router = app(AppState::new(engine, None));
    let (status, json) = call(
        &router,
        "POST",
        "/v1/match",
        Some(r#"{"text": "rust"}"#.into()),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(json["error"].as_str().unwrap().contains("rediscover index"));
    let (_, json) = call(&router, "GET", "/healthz", None, None).await;
    assert_eq!(json["status"], "no_index");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_server_answers_concurrent_clients() {
    let fx = tokio::task::spawn_blocking(Fixture::new).await.unwrap();
    let engine = Arc::new(fx.engine());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server =
        tokio::spawn(axum::serve(listener, app(AppState::new(engine, None))).into_future());
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = client.clone();
        let text = if i % 2 == 0 {
            RUST_POSTING
        } else {
            SYNONYM_POSTING
        };
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(format!("http://{addr}/v1/match"))
                .json(&serde_json::json!({"text": text, "limit": 5}))
                .send()
                .await
                .unwrap();
            (
                response.status(),
                response.json::<MatchResponse>().await.unwrap(),
            )
        }));
    }
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, reqwest::StatusCode::OK);
        assert!(!body.results.is_empty());
    }
    server.abort();
}

// ---- CLI -----------------------------------------------------------------------------------

fn cli(args: &[&str], stdin: Option<&[u8]>) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rediscover"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        let _ = pipe.write_all(bytes);
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

#[test]
fn cli_match_json_table_batch_and_errors() {
    let fx = Fixture::new();
    let data = fx.data.to_str().unwrap();

    let out = cli(
        &[
            "match",
            "--data",
            data,
            "--text",
            RUST_POSTING,
            "--limit",
            "3",
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: MatchResponse = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(parsed.results.len(), 3);

    let out = cli(
        &["match", "--data", data, "-", "--limit", "2"],
        Some(RUST_POSTING.as_bytes()),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("  1. ") && table.contains("why:") && table.contains("history:"),
        "{table}"
    );

    let batch = fx.data.join("batch.jsonl");
    let run_batch = || {
        cli(
            &[
                "match",
                "--data",
                data,
                "--batch",
                batch.to_str().unwrap(),
                "--limit",
                "2",
            ],
            None,
        )
    };
    std::fs::write(
        &batch,
        format!(
            "{}\n{}\n",
            serde_json::json!({"id": 1, "text": RUST_POSTING}),
            serde_json::json!({"id": "b", "text": SYNONYM_POSTING})
        ),
    )
    .unwrap();
    let out = run_batch();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], 1);
    assert_eq!(lines[1]["id"], "b");
    assert_eq!(lines[1]["results"].as_array().unwrap().len(), 2);
    assert!(lines[0]["results"][0]["opportunity_id"].is_string());

    // A bad line is reported in place, like an empty text; the lines after it still run.
    std::fs::write(
        &batch,
        format!(
            "{}\nnot json at all\n{}\n{}\n{}\n",
            serde_json::json!({"id": 1, "text": RUST_POSTING}),
            serde_json::json!({"id": 3, "text": ""}),
            serde_json::json!({"text": "rust"}),
            serde_json::json!({"id": 5, "text": SYNONYM_POSTING})
        ),
    )
    .unwrap();
    let out = run_batch();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("3 queries of the batch failed"), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(lines[0]["results"].as_array().unwrap().len(), 2);
    assert_eq!(lines[1]["line"], 2);
    assert!(lines[1]["id"].is_null());
    assert!(lines[1]["error"].as_str().unwrap().contains("not JSON"));
    assert_eq!(
        (&lines[2]["id"], &lines[2]["line"]),
        (&serde_json::json!(3), &serde_json::json!(3))
    );
    assert!(lines[2]["error"].is_string());
    assert!(lines[3]["error"].as_str().unwrap().contains("id"));
    assert_eq!(lines[4]["id"], 5);
    assert_eq!(lines[4]["results"].as_array().unwrap().len(), 2);

    let big = fx.data.join("big.txt");
    std::fs::write(&big, "rust ".repeat(200_000)).unwrap();
    let empty_dir = tempfile::tempdir().unwrap();
    let bad: Vec<(Vec<&str>, &str)> = vec![
        (vec!["match", "--data", data, "--text", ""], "empty"),
        (
            vec!["match", "--data", data, "--file", big.to_str().unwrap()],
            "longer than",
        ),
        (
            vec![
                "match",
                "--data",
                data,
                "--text",
                "rust",
                "--keywords",
                "rust AND (",
            ],
            "rust",
        ),
        (
            vec!["match", "--data", data, "--posting-id", "nope"],
            "nope",
        ),
        (
            vec!["match", "--data", data, "--text", "rust", "--limit", "0"],
            "limit",
        ),
        (
            vec![
                "match", "--data", data, "--text", "rust", "--limit", "10000",
            ],
            "limit",
        ),
        (
            vec![
                "match",
                "--data",
                empty_dir.path().to_str().unwrap(),
                "--text",
                "rust",
            ],
            "rediscover sync",
        ),
    ];
    for (args, needle) in bad {
        let out = cli(&args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(
            stderr.contains("rediscover:") && stderr.contains(needle),
            "{args:?}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn cli_serve_refuses_public_address_without_token_and_serves_on_loopback() {
    use std::io::BufRead;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rediscover"))
        .args([
            "serve",
            "--data",
            "unused",
            "--listen",
            "0.0.0.0:0",
            "--no-model",
        ])
        .env_remove("REDISCOVER_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("REDISCOVER_TOKEN"), "{stderr}");

    let fx = Fixture::new();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rediscover"))
        .args([
            "serve",
            "--data",
            fx.data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--no-model",
        ])
        .env("REDISCOVER_TOKEN", "tok")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let response = runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{url}/v1/match"))
            .bearer_auth("tok")
            .json(&serde_json::json!({"text": RUST_POSTING, "limit": 2}))
            .send()
            .await?;
        let status = response.status();
        Ok::<_, reqwest::Error>((status, response.json::<MatchResponse>().await?))
    });
    let _ = child.kill();
    let _ = child.wait();
    let (status, body) = response.unwrap();
    assert_eq!(status, reqwest::StatusCode::OK);
    assert!(
        body.degraded,
        "--no-model serves keyword results, marked degraded"
    );
    assert_eq!(body.results.len(), 2);
}
