//! Integration tests: index. The embedder against independent reference vectors, and the
//! keyword + vector index through build, search, incremental update, reopen and crash recovery.

use std::path::PathBuf;
use std::sync::OnceLock;

use rediscover::index::Embedder;

/// The models folder of this checkout; CI runs `models/fetch.sh` before the tests.
fn models_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models");
    assert!(
        dir.join("model.onnx").exists() && dir.join("libonnxruntime.so.1.31.1").exists(),
        "model files missing in {}: run models/fetch.sh first",
        dir.display()
    );
    dir
}

/// One embedder shared by every test of this binary (loading takes a moment).
fn embedder() -> &'static Embedder {
    static EMBEDDER: OnceLock<Embedder> = OnceLock::new();
    EMBEDDER.get_or_init(|| match Embedder::load(&models_dir()) {
        Ok(e) => e,
        Err(e) => panic!("cannot load the embedder ({e}): run models/fetch.sh"),
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[derive(serde::Deserialize)]
struct Reference {
    model_sha256: String,
    texts: Vec<String>,
    tokens: Vec<usize>,
    vectors: Vec<Vec<f32>>,
}

#[test]
fn embeddings_match_python_onnxruntime_reference() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/embeddings/reference.json");
    let reference: Reference = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let e = embedder();
    assert_eq!(
        e.model_sha256(),
        reference.model_sha256,
        "model file differs"
    );
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let got = e.embed_passages(&texts).unwrap();
    assert!(reference.tokens.iter().any(|&t| t == e.max_tokens()));
    for (i, (g, r)) in got.iter().zip(&reference.vectors).enumerate() {
        assert_eq!(g.len(), r.len());
        let diff = g
            .iter()
            .zip(r)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-4, "text {i}: max abs diff {diff}");
    }
    // The query path (single text, no batching) agrees with the batched path.
    let q = e.embed_query(texts[2]).unwrap();
    let diff = q
        .iter()
        .zip(&got[2])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(diff <= 1e-4, "query vs passage diff {diff}");
}

#[test]
fn embeddings_are_semantically_sane() {
    let e = embedder();
    let v = e
        .embed_passages(&["software engineer", "programmer", "registered nurse"])
        .unwrap();
    for x in &v {
        let norm = cosine(x, x).sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]));
}

#[test]
fn token_counts_include_special_tokens_and_are_not_truncated() {
    let e = embedder();
    assert_eq!(e.count_tokens("software engineer").unwrap(), 4);
    let long = "word ".repeat(600);
    assert_eq!(e.count_tokens(&long).unwrap(), 602);
}

pub(crate) mod build {
    use std::path::Path;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rediscover::domain::{
        ArchiveReason, ArchiveReasonType, Archived, Candidate, Note, Position, ReferenceData,
        Resume, Stage, StageChange, TextStatus,
    };
    use rediscover::index::{self, Indexes, Progress};
    use tantivy::collector::TopDocs;

    use super::embedder;

    pub(crate) fn reference() -> ReferenceData {
        ReferenceData {
            stages: ["lead-new", "phone-screen", "onsite", "offer"]
                .iter()
                .map(|s| Stage {
                    id: (*s).into(),
                    text: s.replace('-', " "),
                })
                .collect(),
            archive_reasons: vec![
                ArchiveReason {
                    id: "hired".into(),
                    text: "Hired".into(),
                    reason_type: ArchiveReasonType::Hired,
                    active: true,
                },
                ArchiveReason {
                    id: "timing".into(),
                    text: "Timing".into(),
                    reason_type: ArchiveReasonType::NonHired,
                    active: true,
                },
            ],
            ..ReferenceData::default()
        }
    }

    fn candidate(id: &str, title: &str, resume: &str) -> Candidate {
        Candidate {
            id: id.into(),
            contact_id: format!("contact-{id}"),
            name: "Private Person".into(),
            emails: vec!["private@example.com".into()],
            headline: title.into(),
            location: "Berlin".into(),
            tags: vec!["Backend".into()],
            stage_id: "lead-new".into(),
            resumes: vec![Resume {
                id: format!("resume-{id}"),
                text: Some(resume.into()),
                text_status: TextStatus::Extracted,
                positions: vec![Position {
                    org: "Acme".into(),
                    title: title.into(),
                    ..Position::default()
                }],
                ..Resume::default()
            }],
            ..Candidate::default()
        }
    }

    /// A handful of hand-made candidates plus filler drawn with a fixed seed.
    pub(crate) fn pool() -> Vec<Candidate> {
        let mut pool = vec![
            candidate(
                "opp-cpp",
                "Senior C++ Engineer",
                "Ten years of C++ on low-latency trading systems. CI/CD with GitLab.",
            ),
            candidate(
                "opp-dotnet",
                "Backend Developer",
                "Built .NET services and node.js APIs for payments.",
            ),
            candidate(
                "opp-nurse",
                "Registered Nurse",
                "ICU nurse caring for critically ill patients; BLS and ACLS certified.",
            ),
        ];
        pool[0].archived = Some(Archived {
            reason_id: "hired".into(),
            archived_at: 1,
        });
        pool[0].stage_changes.push(StageChange {
            to_stage_id: "onsite".into(),
            to_stage_index: 2,
            at: 1,
        });
        pool[2].notes.push(Note {
            id: "note-1".into(),
            comments: vec!["Great bedside manner, wants night shifts.".into()],
            ..Note::default()
        });
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let words = [
            "sales",
            "marketing",
            "finance",
            "design",
            "support",
            "logistics",
        ];
        for i in 0..12 {
            let w = words[rng.gen_range(0..words.len())];
            pool.push(candidate(
                &format!("opp-filler-{i}"),
                &format!("{w} specialist"),
                &format!("Worked in {w} for {} years.", rng.gen_range(1..20)),
            ));
        }
        pool
    }

    fn build(data: &Path) -> index::IndexStats {
        index::rebuild(
            data,
            1,
            pool().into_iter(),
            &reference(),
            embedder(),
            &Progress::none(),
        )
        .unwrap()
    }

    fn keyword_ids(ix: &Indexes, query: &str) -> Vec<String> {
        let kw = ix.keyword();
        let q = kw.parse_boolean(query).unwrap();
        let hits = kw
            .searcher()
            .search(&q, &TopDocs::with_limit(10).order_by_score())
            .unwrap();
        hits.into_iter()
            .map(|(_, addr)| {
                let row = &ix.rows()[kw.ordinal_of(addr) as usize];
                assert!(!row.deleted);
                row.opportunity_id.clone()
            })
            .collect()
    }

    fn vector_ids(ix: &Indexes, query: &str) -> Vec<String> {
        let q = embedder().embed_query(query).unwrap();
        let mut ids = Vec::new();
        for hit in ix.vectors().search(&q, 10, index::DEFAULT_EF) {
            let row = &ix.rows()[ix.vectors().chunk(hit.chunk).ordinal as usize];
            assert!(!row.deleted, "a tombstoned row was returned");
            if !ids.contains(&row.opportunity_id) {
                ids.push(row.opportunity_id.clone());
            }
        }
        ids
    }

    #[test]
    fn build_then_search_keyword_and_vector() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = build(tmp.path());
        assert_eq!(stats.generation, 1);
        assert_eq!(stats.candidates, 15);
        assert!(stats.vectors >= 30, "profile + resume per candidate");
        let ix = Indexes::open(tmp.path()).unwrap();
        assert_eq!(ix.generation(), 1);
        assert_eq!(Indexes::current_generation(tmp.path()).unwrap(), Some(1));
        assert_eq!(ix.stats().candidates, 15);
        assert!(ix.stats().bytes_on_disk > 0);
        assert_eq!(index::current_stats(tmp.path()).unwrap(), Some(ix.stats()));

        // Stemming on prose, rows filled from the reference data.
        assert_eq!(keyword_ids(&ix, "trading systems"), vec!["opp-cpp"]);
        assert_eq!(keyword_ids(&ix, "nurses AND patient"), vec!["opp-nurse"]);
        let cpp = &ix.rows()[ix.ordinal("opp-cpp").unwrap() as usize];
        assert!(cpp.archived && cpp.hired);
        assert_eq!(cpp.furthest_stage_order, Some(2));
        assert_eq!(cpp.location, "berlin");
        assert_eq!(cpp.contact_id, "contact-opp-cpp");

        // Meaning, not words.
        assert_eq!(vector_ids(&ix, "hospital intensive care")[0], "opp-nurse");
        let hit = ix
            .vectors()
            .search(&embedder().embed_query("ICU nurse").unwrap(), 1, 64)[0];
        let text = ix.vectors().chunk_text(hit.chunk);
        assert!(!text.is_empty());
        assert!(hit.similarity > 0.3 && hit.similarity <= 1.0001);

        // Personal data is not searchable.
        assert!(keyword_ids(&ix, "private").is_empty());
        assert!(keyword_ids(&ix, "\"private@example.com\"").is_empty());
    }

    #[test]
    fn exact_tokens_find_cpp_and_dotnet() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let ix = Indexes::open(tmp.path()).unwrap();
        assert_eq!(keyword_ids(&ix, "C++"), vec!["opp-cpp"]);
        assert_eq!(keyword_ids(&ix, ".NET"), vec!["opp-dotnet"]);
        assert_eq!(keyword_ids(&ix, "node.js"), vec!["opp-dotnet"]);
        assert_eq!(keyword_ids(&ix, "CI/CD"), vec!["opp-cpp"]);
        let kw = ix.keyword();
        assert_eq!(
            kw.analyze(kw.fields().exact, "C#, .NET"),
            vec!["c#", ".net"]
        );
        assert_eq!(kw.doc_freq(kw.fields().exact, "c++"), 1);
        assert!(kw.parse_boolean("(unclosed").is_err());
    }

    #[test]
    fn update_replaces_changed_and_removes_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let mut changed = pool()[1].clone();
        changed.resumes[0].text =
            Some("Now a Kubernetes platform engineer running Terraform.".into());
        let stats = index::update(
            tmp.path(),
            2,
            std::iter::once(changed),
            &["opp-nurse".to_string()],
            &reference(),
            embedder(),
            &Progress::none(),
        )
        .unwrap();
        assert_eq!(stats.generation, 2);
        assert_eq!(stats.candidates, 14);
        assert!(stats.tombstones > 0);
        let ix = Indexes::open(tmp.path()).unwrap();
        assert_eq!(ix.generation(), 2);
        assert_eq!(ix.ordinal("opp-nurse"), None);
        assert!(keyword_ids(&ix, "nurse").is_empty());
        assert!(!vector_ids(&ix, "hospital intensive care").contains(&"opp-nurse".to_string()));
        assert_eq!(keyword_ids(&ix, "kubernetes"), vec!["opp-dotnet"]);
        assert!(keyword_ids(&ix, "payments").is_empty(), "old text is gone");
        assert_eq!(
            vector_ids(&ix, "cloud infrastructure Kubernetes")[0],
            "opp-dotnet"
        );
        // Only the new generation directory is left.
        let gens = std::fs::read_dir(tmp.path().join("index"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("gen-")
            })
            .count();
        assert_eq!(gens, 1);
    }

    #[test]
    fn update_compacts_when_tombstones_pile_up() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let deleted: Vec<String> = (0..5).map(|i| format!("opp-filler-{i}")).collect();
        let stats = index::update(
            tmp.path(),
            2,
            std::iter::empty(),
            &deleted,
            &reference(),
            embedder(),
            &Progress::none(),
        )
        .unwrap();
        assert_eq!(stats.candidates, 10);
        assert_eq!(stats.tombstones, 0, "compacted");
        let ix = Indexes::open(tmp.path()).unwrap();
        assert_eq!(vector_ids(&ix, "hospital intensive care")[0], "opp-nurse");
        for hit in ix
            .vectors()
            .search(&embedder().embed_query("sales").unwrap(), 10, 64)
        {
            let row = &ix.rows()[ix.vectors().chunk(hit.chunk).ordinal as usize];
            assert!(!row.deleted && !deleted.contains(&row.opportunity_id));
        }
    }

    #[test]
    fn a_crash_mid_build_leaves_the_previous_generation_current() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        // A half-written generation: directory and some files, but CURRENT never switched.
        let partial = tmp.path().join("index/gen-000000000009-dead-1");
        std::fs::create_dir_all(partial.join("keyword")).unwrap();
        std::fs::write(partial.join("rows.bin"), b"garbage").unwrap();
        let ix = Indexes::open(tmp.path()).unwrap();
        assert_eq!(ix.generation(), 1);
        assert_eq!(keyword_ids(&ix, "C++"), vec!["opp-cpp"]);
        drop(ix);
        // The next successful build removes it.
        build(tmp.path());
        assert!(!partial.exists());
    }

    #[test]
    fn missing_and_incompatible_indexes_are_user_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Indexes::open(tmp.path()).unwrap_err();
        assert!(err.is_user_error());
        assert!(err.to_string().contains("rediscover index"), "{err}");
        build(tmp.path());
        let name = std::fs::read_to_string(tmp.path().join("index/CURRENT")).unwrap();
        let meta_path = tmp.path().join("index").join(name.trim()).join("meta.json");
        let meta = std::fs::read_to_string(&meta_path).unwrap();
        std::fs::write(
            &meta_path,
            meta.replace("\"format_version\": 1", "\"format_version\": 99"),
        )
        .unwrap();
        let err = Indexes::open(tmp.path()).unwrap_err();
        assert!(err.is_user_error());
        assert!(err.to_string().contains("run `rediscover index`"), "{err}");
    }
}

mod cli {
    use std::process::Command;

    use rediscover::index::Indexes;
    use rediscover::store::{Store, SyncState};

    use super::models_dir;
    use crate::index::build::{pool, reference};

    #[test]
    fn index_command_rebuilds_from_the_store() {
        let tmp = tempfile::tempdir().unwrap();
        let mut batch = Store::begin(tmp.path()).unwrap();
        for c in pool() {
            batch.upsert(c).unwrap();
        }
        batch.set_reference(reference()).unwrap();
        let commit = batch.commit(SyncState::default()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_rediscover"))
            .args(["index", "--data"])
            .arg(tmp.path())
            .arg("--models")
            .arg(models_dir())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("indexed 15 candidates"), "{stdout}");
        let ix = Indexes::open(tmp.path()).unwrap();
        assert_eq!(ix.generation(), commit.generation);
        assert_eq!(ix.stats().candidates, 15);
    }
}

#[test]
fn index_types_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Embedder>();
    shared::<rediscover::index::Indexes>();
}
