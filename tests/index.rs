//! Integration tests: index. The embedder against independent reference vectors, and the
//! keyword + vector index through build, search, incremental update, reopen and crash recovery.

use std::path::PathBuf;
use std::sync::OnceLock;

use rediscover::index::embed::Graph;
use rediscover::index::fused_model::Fused;
use rediscover::index::{self, Embedder};

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

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
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
        let diff = max_abs_diff(g, r);
        assert!(diff <= 1e-4, "text {i}: max abs diff {diff}");
    }
    // The query path (single text, no batching) agrees with the batched path.
    let q = e.embed_query(texts[2]).unwrap();
    let diff = max_abs_diff(&q, &got[2]);
    assert!(diff <= 1e-4, "query vs passage diff {diff}");
}

#[test]
fn the_fused_graph_gives_the_shipped_graphs_vectors() {
    let fused = Embedder::load_graph(&models_dir(), 2, Graph::FusedFp32).unwrap();
    assert_eq!(
        fused.fused(),
        Fused {
            attention: 6,
            gelu: 6,
            rounded_products: 0
        },
        "the load-time rewrite no longer matches every block of the shipped model"
    );
    let shipped = Embedder::load_graph(&models_dir(), 1, Graph::AsShipped).unwrap();
    assert_eq!(shipped.fused(), Fused::default());
    let texts = varied_texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = shipped.embed_passages(&texts).unwrap();
    let got = fused.embed_passages(&texts).unwrap();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let diff = max_abs_diff(g, w);
        assert!(diff <= 1e-5, "text {i}: max abs diff {diff}");
    }
    let query = fused.embed_query(texts[1]).unwrap();
    let diff = max_abs_diff(&query, &want[1]);
    assert!(diff <= 1e-5, "query session: max abs diff {diff}");
}

#[test]
fn rounded_products_stay_within_their_bound_of_the_shipped_graphs_vectors() {
    let rounded = embedder();
    let expected = if index::matmul16::simd_available() {
        18
    } else {
        0
    };
    assert_eq!(
        rounded.fused(),
        Fused {
            attention: 6,
            gelu: 6,
            rounded_products: expected
        },
        "the default graph no longer rounds every product with int8 weights"
    );
    let shipped = Embedder::load_graph(&models_dir(), 1, Graph::AsShipped).unwrap();
    let texts = varied_texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = shipped.embed_passages(&texts).unwrap();
    let got = rounded.embed_passages(&texts).unwrap();
    // Measured: at most 2.2e-5 over 499 resume passages and job titles; the Python
    // reference test allows 1e-4.
    let mut worst = 0f32;
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let diff = max_abs_diff(g, w);
        worst = worst.max(diff);
        assert!(diff <= 5e-5, "text {i}: max abs diff {diff}");
    }
    let query = rounded.embed_query(texts[1]).unwrap();
    let diff = max_abs_diff(&query, &want[1]);
    assert!(diff <= 5e-5, "query session: max abs diff {diff}");
    if expected > 0 {
        // The rounding is really there: the vectors are not the fp32 ones bit for bit.
        assert!(worst > 0.0);
    }
}

/// Lengths from 1 to 256 tokens in one batch, so padding and the attention mask matter, and
/// text with numbers, symbols and other scripts.
fn varied_texts() -> Vec<String> {
    vec![
        "nurse".to_owned(),
        "Senior C++ developer with CI/CD and .NET experience in Berlin".to_owned(),
        "Kubernetes platform engineer, on call for payments. ".repeat(40),
        "Buchhalterin (m/w/d) – Lohn- und Finanzbuchhaltung, DATEV, 12 Jahre Erfahrung".to_owned(),
        "Led 14 engineers; cut p99 latency 38% (412 ms → 255 ms); $2.4M ARR pipeline; 日本語 OK"
            .to_owned(),
        "ICU registered nurse, BLS/ACLS, charge nurse on night shifts. ".repeat(12),
    ]
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
        pool[2].resumes[0].schools.push(rediscover::domain::School {
            org: "Northside College".into(),
            summary: "Thesis on sepsis triage in rural clinics.".into(),
            ..rediscover::domain::School::default()
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
        // A school's summary is searched like a position's.
        assert_eq!(keyword_ids(&ix, "sepsis"), vec!["opp-nurse"]);

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
        update_and_check(tmp.path());
    }

    /// Replaces opp-dotnet's resume and deletes opp-nurse, then checks what the new generation
    /// returns and what it holds on disk.
    fn update_and_check(data: &Path) {
        let mut changed = pool()[1].clone();
        changed.resumes[0].text =
            Some("Now a Kubernetes platform engineer running Terraform.".into());
        let stats = index::update(
            data,
            2,
            std::iter::once(changed),
            &["opp-nurse".to_string()],
            &reference(),
            embedder(),
            None,
            &Progress::none(),
        )
        .unwrap();
        assert_eq!(stats.generation, 2);
        assert_eq!(stats.candidates, 14);
        assert!(stats.tombstones > 0);
        let ix = Indexes::open(data).unwrap();
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
        // Every other candidate is still found by meaning.
        assert_eq!(vector_ids(&ix, "low-latency trading in C++")[0], "opp-cpp");
        // The new generation: current format, vectors stored once (no hnsw_rs dump).
        crate::index::flat::assert_no_hnsw_dump(ix.dir());
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(ix.dir().join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["format_version"], index::FORMAT_VERSION);
        assert!(meta["hnsw_basename"].is_null());
        // Only the new generation directory is left.
        let gens = std::fs::read_dir(data.join("index"))
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
    fn a_format_2_generation_is_not_searched_but_gives_its_vectors_to_the_rebuild() {
        use hnsw_rs::prelude::{AnnT, DistDot, Hnsw};

        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let dir = Indexes::open(tmp.path()).unwrap().dir().to_path_buf();
        // Make it what format 2 wrote: the same files plus an hnsw_rs dump named in meta.json.
        let rows: Vec<Vec<f32>> = std::fs::read(dir.join("vectors.f32"))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect::<Vec<f32>>()
            .chunks_exact(embedder().dimension())
            .map(<[f32]>::to_vec)
            .collect();
        let hnsw: Hnsw<f32, DistDot> = Hnsw::new(24, rows.len(), 16, 200, DistDot);
        for (id, row) in rows.iter().enumerate() {
            hnsw.insert((row.as_slice(), id));
        }
        let name = hnsw.file_dump(&dir, "vectors").unwrap();
        assert!(dir.join(format!("{name}.hnsw.graph")).exists());
        let meta_path = dir.join("meta.json");
        let mut meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
        meta["format_version"] = 2.into();
        meta["hnsw_basename"] = name.into();
        std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();

        // Its keyword index is of the previous analysis: neither searched nor updated...
        let err = Indexes::open(tmp.path()).unwrap_err();
        assert!(
            matches!(err, index::Error::VersionMismatch { found: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("run `rediscover index`"), "{err}");
        let err = index::update(
            tmp.path(),
            2,
            pool().into_iter().take(1),
            &[],
            &reference(),
            embedder(),
            None,
            &Progress::none(),
        )
        .unwrap_err();
        assert!(matches!(err, index::Error::VersionMismatch { .. }), "{err}");
        // ...but its vectors are reused by the rebuild, which then updates as usual.
        let cache = index::VectorCache::new(embedder());
        assert_eq!(cache.add_current_generation(tmp.path()), rows.len());
        index::try_rebuild(
            tmp.path(),
            1,
            pool().into_iter().map(Ok::<_, std::convert::Infallible>),
            &reference(),
            embedder(),
            Some(&cache),
            &Progress::none(),
        )
        .unwrap();
        let ix = Indexes::open(tmp.path()).unwrap();
        assert_eq!(vector_ids(&ix, "hospital intensive care")[0], "opp-nurse");
        drop(ix);
        update_and_check(tmp.path());
    }

    /// A resume of megabytes is cut into the same passages as its opening pages: only the
    /// text the kept windows cover is tokenized.
    #[test]
    fn a_huge_resume_gives_the_passages_of_its_opening() {
        let mut candidate = pool().into_iter().find(|c| c.id == "opp-nurse").unwrap();
        let sentence = "Registered nurse in intensive care, ventilators and triage, night shifts. ";
        let huge = sentence.repeat(40_000);
        let opening: String = huge.chars().take(60_000).collect();
        let passages = |text: &str, candidate: &mut rediscover::domain::Candidate| {
            candidate.resumes[0].text = Some(text.to_owned());
            index::chunk::passages(candidate, embedder()).unwrap()
        };
        let from_opening = passages(&opening, &mut candidate);
        let from_huge = passages(&huge, &mut candidate);
        let resume = |p: &Vec<index::chunk::Passage>| -> Vec<(u32, u32, String)> {
            p.iter()
                .filter(|p| p.kind == index::chunk::ChunkKind::Resume)
                .map(|p| (p.start, p.end, p.text.clone()))
                .collect()
        };
        assert_eq!(resume(&from_huge).len(), index::chunk::MAX_RESUME_CHUNKS);
        assert_eq!(resume(&from_huge), resume(&from_opening));
    }

    /// Vectors depend on the tokenizer and the manifest's settings too: an embedder of the same
    /// model file with another passage prefix neither updates an index of the other's vectors
    /// (the sync rebuilds instead) nor reuses them.
    #[test]
    fn other_embedding_settings_rebuild_rather_than_mix_vectors() {
        let tmp = tempfile::tempdir().unwrap();
        build(tmp.path());
        let shipped = super::models_dir().canonicalize().unwrap();
        let models = tempfile::tempdir().unwrap();
        let mut manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(shipped.join("manifest.json")).unwrap()).unwrap();
        for key in ["model", "tokenizer", "runtime_library"] {
            let file = manifest[key].as_str().unwrap();
            std::os::unix::fs::symlink(shipped.join(file), models.path().join(file)).unwrap();
        }
        manifest["passage_prefix"] = "passage: ".into();
        std::fs::write(
            models.path().join("manifest.json"),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        let other = index::Embedder::load_with_sessions(models.path(), 1).unwrap();
        assert_eq!(other.model_sha256(), embedder().model_sha256());
        assert_ne!(other.settings_sha256(), embedder().settings_sha256());

        let changed = pool().into_iter().take(1);
        let err = index::update(
            tmp.path(),
            2,
            changed,
            &[],
            &reference(),
            &other,
            None,
            &Progress::none(),
        )
        .unwrap_err();
        assert!(matches!(err, index::Error::ModelChanged { .. }), "{err}");
        assert_eq!(
            index::VectorCache::new(&other).add_current_generation(tmp.path()),
            0
        );
        assert!(index::VectorCache::new(embedder()).add_current_generation(tmp.path()) > 0);
    }

    #[test]
    fn vectors_embedded_ahead_are_used_instead_of_embedding_again() {
        let tmp = tempfile::tempdir().unwrap();
        let pool = pool();
        let nurse = pool.iter().find(|c| c.id == "opp-nurse").unwrap();
        let passages = index::chunk::passages(nurse, embedder()).unwrap();
        // A vector no embedding of this text would give: the build must take it from the cache.
        let mut marker = vec![0.0f32; embedder().dimension()];
        marker[0] = 1.0;
        let cache = index::VectorCache::new(embedder());
        cache.insert(&passages[0].text, marker.clone()).unwrap();
        let stats = index::try_rebuild(
            tmp.path(),
            1,
            pool.clone()
                .into_iter()
                .map(Ok::<_, std::convert::Infallible>),
            &reference(),
            embedder(),
            Some(&cache),
            &Progress::none(),
        )
        .unwrap();
        assert_eq!(stats.candidates, 15);
        let ix = Indexes::open(tmp.path()).unwrap();
        let top = ix.vectors().exact_search(&marker, 1);
        assert!((top[0].similarity - 1.0).abs() < 1e-6);
        let ordinal = ix.vectors().chunk(top[0].chunk).ordinal;
        assert_eq!(ix.rows()[ordinal as usize].opportunity_id, "opp-nurse");
        // Every other passage was embedded as usual.
        assert_eq!(
            vector_ids(&ix, "C++ low-latency trading engineer")[0],
            "opp-cpp"
        );

        // A cache made for another model is ignored.
        let foreign = index::VectorCache::for_model("another-model", embedder().dimension());
        foreign.insert(&passages[0].text, marker.clone()).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        index::try_rebuild(
            tmp.path(),
            1,
            pool.into_iter().map(Ok::<_, std::convert::Infallible>),
            &reference(),
            embedder(),
            Some(&foreign),
            &Progress::none(),
        )
        .unwrap();
        let ix = Indexes::open(tmp.path()).unwrap();
        assert!(ix.vectors().exact_search(&marker, 1)[0].similarity < 0.9);
    }

    #[test]
    fn a_rebuild_reuses_the_vectors_of_the_current_generation() {
        let tmp = tempfile::tempdir().unwrap();
        let stats = build(tmp.path());
        let cache = index::VectorCache::new(embedder());
        assert_eq!(
            cache.add_current_generation(tmp.path()),
            stats.vectors as usize
        );
        for candidate in pool() {
            for passage in index::chunk::passages(&candidate, embedder()).unwrap() {
                assert!(cache.contains(&passage.text), "{} not reused", candidate.id);
            }
        }
        // Another model's cache takes nothing; a folder without an index gives nothing.
        let foreign = index::VectorCache::for_model("another-model", embedder().dimension());
        assert_eq!(foreign.add_current_generation(tmp.path()), 0);
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(cache.add_current_generation(empty.path()), 0);
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
            None,
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
        let current = format!("\"format_version\": {}", rediscover::index::FORMAT_VERSION);
        assert!(
            meta.contains(&current),
            "meta.json names its format version"
        );
        std::fs::write(&meta_path, meta.replace(&current, "\"format_version\": 99")).unwrap();
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

/// A candidate deleted (or anonymised) in Lever leaves no byte behind in the data folder: not in
/// the store's segments, the index rows, the passage texts, the vectors, nor the keyword index's
/// terms.
mod purge {
    use std::path::{Path, PathBuf};

    use rediscover::domain::{Candidate, Resume, TextStatus};
    use rediscover::index::{Indexes, Progress};
    use rediscover::pipeline::{self, IndexAction};
    use rediscover::store::{Commit, Store, SyncState};
    use tantivy::Term;
    use tantivy::schema::Field;

    use super::embedder;
    use crate::index::build::{pool, reference};

    fn person(id: &str, word: &str) -> Candidate {
        Candidate {
            id: id.into(),
            contact_id: format!("contact-{id}"),
            name: format!("{word} Person"),
            emails: vec![format!("{}@example.org", word.to_lowercase())],
            headline: "Fermentation chemist".into(),
            location: format!("{word}stadt"),
            tags: vec![format!("{word}tag")],
            stage_id: "lead-new".into(),
            resumes: vec![Resume {
                id: format!("resume-{id}"),
                text: Some(format!(
                    "Ran the {word} brewery lab for six years, scaling lager yeast propagation."
                )),
                text_status: TextStatus::Extracted,
                ..Resume::default()
            }],
            ..Candidate::default()
        }
    }

    /// Files under `dir` (recursively) whose bytes contain `needle`.
    fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
        files_containing_bytes(dir, needle.as_bytes())
    }

    /// The live vector rows (as little-endian bytes) of the passages of `opportunity`, or of
    /// every opportunity.
    fn vector_rows(ix: &Indexes, opportunity: Option<&str>) -> Vec<Vec<u8>> {
        let ordinal = opportunity.map(|id| ix.ordinal(id).unwrap());
        let vectors = ix.vectors();
        (0..vectors.len() as u32)
            .filter(|&c| !vectors.is_tombstoned(c))
            .filter(|&c| ordinal.is_none_or(|o| vectors.chunk(c).ordinal == o))
            .map(|c| {
                let row = vectors.vector(c).unwrap();
                row.iter().flat_map(|x| x.to_le_bytes()).collect()
            })
            .collect()
    }

    /// Files under `dir` (recursively) whose bytes contain `needle`.
    fn files_containing_bytes(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if std::fs::read(&path)
                    .unwrap()
                    .windows(needle.len())
                    .any(|w| w == needle)
                {
                    found.push(path);
                }
            }
        }
        found
    }

    /// Segments of the keyword index holding `token` in `field`, deleted documents included.
    fn segments_with_term(ix: &Indexes, field: Field, token: &str) -> usize {
        let term = Term::from_field_text(field, token);
        ix.keyword()
            .searcher()
            .segment_readers()
            .iter()
            .filter(|s| {
                s.inverted_index(field)
                    .unwrap()
                    .get_term_info(&term)
                    .unwrap()
                    .is_some()
            })
            .count()
    }

    fn commit(data: &Path, upserts: Vec<Candidate>, deletes: &[&str]) -> Commit {
        let mut batch = Store::begin(data).unwrap();
        for c in upserts {
            batch.upsert(c).unwrap();
        }
        for id in deletes {
            batch.delete(id).unwrap();
        }
        batch.set_reference(reference()).unwrap();
        batch.commit(SyncState::default()).unwrap()
    }

    fn index(data: &Path, commit: &Commit) -> IndexAction {
        let store = Store::open(data).unwrap();
        pipeline::bring_up_to_date(
            data,
            &store,
            Some(commit),
            embedder(),
            None,
            &Progress::none(),
        )
        .unwrap()
        .action
    }

    /// A sync that commits without indexing (`--no-index`, killed or refused in its index
    /// step), then one that finds nothing new: the second's commit names no change, yet the
    /// indexes must still take in the first one's.
    #[test]
    fn an_empty_commit_after_an_unindexed_one_still_brings_its_changes_in() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        let mut first = pool();
        first.push(person("opp-gone", "Quxborough"));
        let first = commit(data, first, &[]);
        assert_eq!(index(data, &first), IndexAction::Rebuilt);

        let unindexed = commit(data, vec![person("opp-new", "Zephyrgate")], &["opp-gone"]);
        let quiet = commit(data, Vec::new(), &[]);
        assert_eq!(quiet.generation, unindexed.generation);
        assert!(quiet.changed.is_empty() && quiet.deleted.is_empty());
        assert_eq!(index(data, &quiet), IndexAction::Rebuilt);

        let ix = Indexes::open(data).unwrap();
        assert_eq!(ix.generation(), unindexed.generation);
        assert!(
            ix.ordinal("opp-new").is_some(),
            "the unindexed change is in"
        );
        assert!(
            ix.ordinal("opp-gone").is_none(),
            "the unindexed deletion is out"
        );
        assert!(files_containing(data, "Quxborough").is_empty());
        // Once caught up, the next quiet sync has nothing to do.
        assert_eq!(
            index(data, &commit(data, Vec::new(), &[])),
            IndexAction::UpToDate
        );
    }

    #[test]
    fn a_deleted_and_an_anonymised_candidate_leave_no_bytes_in_the_data_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path();
        let mut first = pool();
        first.push(person("opp-gone", "Quxborough"));
        first.push(person("opp-anon", "Vexmoorfield"));
        first.push(person("opp-kept", "Kestrelwyck"));
        let first = commit(data, first, &[]);
        assert_eq!(index(data, &first), IndexAction::Rebuilt);
        // The scan finds what it looks for.
        for word in ["Quxborough", "Vexmoorfield", "opp-gone"] {
            assert!(!files_containing(data, word).is_empty(), "{word}");
        }
        let (gone_rows, anon_rows, kept_rows) = {
            let ix = Indexes::open(data).unwrap();
            let rows = |id| vector_rows(&ix, Some(id));
            (rows("opp-gone"), rows("opp-anon"), rows("opp-kept"))
        };
        for row in gone_rows.iter().chain(&anon_rows).chain(&kept_rows) {
            assert!(!files_containing_bytes(data, row).is_empty());
        }

        // Lever deletes one candidate and anonymises another (a new version without the data).
        let anonymised = person("opp-anon", "Anonymous");
        let second = commit(data, vec![anonymised], &["opp-gone"]);
        assert_eq!(second.deleted, vec!["opp-gone".to_string()]);
        assert_eq!(index(data, &second), IndexAction::Updated);

        // Store segments, index rows, passage texts, fast fields: no byte of either is left.
        for word in ["Quxborough", "quxborough", "Vexmoorfield", "vexmoorfield"] {
            assert_eq!(
                files_containing(data, word),
                Vec::<PathBuf>::new(),
                "{word}"
            );
        }
        assert_eq!(files_containing(data, "opp-gone"), Vec::<PathBuf>::new());
        // Nor their embeddings: their points left the graph and their rows are zeros. (A
        // passage whose text a live candidate shares, like the common headline, has the same
        // vector and stays.)
        let live = vector_rows(&Indexes::open(data).unwrap(), None);
        for rows in [&gone_rows, &anon_rows] {
            let own: Vec<_> = rows.iter().filter(|r| !live.contains(r)).collect();
            assert!(!own.is_empty(), "each had a passage of its own");
            for row in own {
                assert_eq!(files_containing_bytes(data, row), Vec::<PathBuf>::new());
            }
        }
        for row in &kept_rows {
            assert!(!files_containing_bytes(data, row).is_empty());
        }
        // The live candidates are all still there.
        for word in [
            "Kestrelwyck",
            "kestrelwyck",
            "Anonymous",
            "opp-anon",
            "opp-nurse",
        ] {
            assert!(!files_containing(data, word).is_empty(), "{word}");
        }

        let ix = Indexes::open(data).unwrap();
        assert_eq!(ix.ordinal("opp-gone"), None);
        assert!(ix.ordinal("opp-anon").is_some() && ix.ordinal("opp-kept").is_some());
        // Tombstoned rows keep their ordinal and nothing else; no lookup finds them.
        let tombstones: Vec<_> = ix.rows().iter().filter(|r| r.deleted).collect();
        assert_eq!(tombstones.len(), 2);
        assert!(
            tombstones
                .iter()
                .all(|r| **r == rediscover::index::CandidateRow::tombstone())
        );
        assert_eq!(ix.ordinal(""), None);
        // Tombstoned passages are blank.
        let vectors = ix.vectors();
        for chunk in (0..vectors.len() as u32).filter(|&c| vectors.is_tombstoned(c)) {
            assert_eq!(vectors.chunk_text(chunk), "");
        }
        // The keyword index holds no deleted document and none of their terms (its term
        // dictionary is an FST, which a byte scan would not see).
        let searcher = ix.keyword().searcher();
        assert!(
            searcher
                .segment_readers()
                .iter()
                .all(|s| s.num_deleted_docs() == 0)
        );
        let fields = *ix.keyword().fields();
        for (field, token) in [
            (fields.exact, "quxborough"),
            (fields.exact, "vexmoorfield"),
            (fields.exact, "quxboroughstadt"),
            (fields.location, "quxboroughstadt"),
            (fields.location, "vexmoorfieldstadt"),
        ] {
            assert_eq!(segments_with_term(&ix, field, token), 0, "{token}");
        }
        assert_eq!(segments_with_term(&ix, fields.exact, "kestrelwyck"), 1);
        assert_eq!(
            segments_with_term(&ix, fields.location, "kestrelwyckstadt"),
            1
        );
        assert_eq!(segments_with_term(&ix, fields.exact, "anonymous"), 1);
        // Only the new generation is left.
        let generations = std::fs::read_dir(data.join("index"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("gen-"))
            .count();
        assert_eq!(generations, 1);
    }
}

#[test]
fn index_types_can_be_shared_across_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Embedder>();
    shared::<rediscover::index::Indexes>();
}

/// The flat, memory-mapped HNSW read path on random unit vectors (no model needed).
mod flat {
    use std::path::Path;

    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use rediscover::index::chunk::{ChunkKind, Passage};
    use rediscover::index::vector::{VectorIndex, VectorWriter};
    use rediscover::index::{Error, VectorHit};

    const DIM: usize = 384;
    const PER_ORDINAL: usize = 3;

    fn unit(rng: &mut ChaCha8Rng) -> Vec<f32> {
        let mut v: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }

    /// A query near a stored vector: the vector plus as much noise, renormalised.
    fn near(v: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
        let noise = unit(rng);
        let mut q: Vec<f32> = v.iter().zip(&noise).map(|(a, b)| a + b).collect();
        let norm = q.iter().map(|x| x * x).sum::<f32>().sqrt();
        q.iter_mut().for_each(|x| *x /= norm);
        q
    }

    fn passages(ordinal: u32) -> Vec<Passage> {
        (0..PER_ORDINAL)
            .map(|i| {
                let text = format!("passage {i} of {ordinal}");
                Passage {
                    kind: ChunkKind::Resume,
                    start: 0,
                    end: text.len() as u32,
                    text,
                }
            })
            .collect()
    }

    /// Writes `vectors` (grouped `PER_ORDINAL` to an ordinal).
    fn write(dir: &Path, vectors: &[Vec<f32>]) {
        let mut w = VectorWriter::create(dir, vectors.len()).unwrap();
        for (ordinal, group) in vectors.chunks(PER_ORDINAL).enumerate() {
            w.add(
                ordinal as u32,
                &passages(ordinal as u32)[..group.len()],
                group.to_vec(),
            )
            .unwrap();
        }
        w.finish().unwrap();
        assert_no_hnsw_dump(dir);
    }

    /// The vectors are stored once: no hnsw_rs dump next to the flat graph.
    pub(crate) fn assert_no_hnsw_dump(dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let name = entry.unwrap().file_name();
            let name = name.to_string_lossy();
            assert!(!name.contains(".hnsw."), "{name} in {}", dir.display());
        }
    }

    fn ids(hits: &[VectorHit]) -> Vec<u32> {
        hits.iter().map(|h| h.chunk).collect()
    }

    /// Share of `truth` found in `got`.
    fn overlap(got: &[u32], truth: &[u32]) -> f64 {
        truth.iter().filter(|t| got.contains(t)).count() as f64 / truth.len().max(1) as f64
    }

    /// Filtered to a few rows, the semantic side scores each of their passages: every allowed
    /// row comes back (none other), scored by its best passage exactly, best first; a
    /// replaced row's old passages are not scored.
    #[test]
    fn semantic_search_over_a_few_allowed_rows_is_exact() {
        use rediscover::search::Allowed;
        use rediscover::search::semantic;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let vectors: Vec<Vec<f32>> = (0..3000).map(|_| unit(&mut rng)).collect();
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), &vectors);
        let rows = vectors.len() / PER_ORDINAL;
        let wanted = [3u32, 99, 400, 401, 777, 998];
        let allowed = Allowed::from_fn(rows, |o| wanted.contains(&o));
        let best = |ix: &VectorIndex, q: &[f32], o: u32| {
            (0..PER_ORDINAL)
                .map(|i| o as usize * PER_ORDINAL + i)
                .filter(|&c| !ix.is_tombstoned(c as u32))
                .map(|c| dot(q, &vectors[c]))
                .fold(f32::NEG_INFINITY, f32::max)
        };
        let ix = VectorIndex::open(tmp.path()).unwrap();
        let q = near(&vectors[400 * PER_ORDINAL + 1], &mut rng);
        let hits = semantic::search(&ix, &q, &allowed, 20);
        let mut found: Vec<u32> = hits.iter().map(|h| h.ordinal).collect();
        assert_eq!(hits[0].ordinal, 400);
        assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));
        for h in &hits {
            assert!((h.similarity - best(&ix, &q, h.ordinal)).abs() < 1e-5);
            assert_eq!(ix.chunk(h.chunk).ordinal, h.ordinal);
        }
        found.sort_unstable();
        assert_eq!(found, wanted);
        assert_eq!(semantic::search(&ix, &q, &allowed, 2).len(), 2);

        // Row 400 replaced by a later generation: its old passages are tombstoned.
        let next = tempfile::tempdir().unwrap();
        let (w, _) =
            VectorWriter::continue_from(tmp.path(), next.path(), &|o| o == 400, 0.9).unwrap();
        w.finish().unwrap();
        let ix = VectorIndex::open(next.path()).unwrap();
        let hits = semantic::search(&ix, &q, &allowed, 20);
        assert!(hits.iter().all(|h| h.ordinal != 400), "{hits:?}");
        assert_eq!(hits.len(), wanted.len() - 1);
    }

    fn dot(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    #[test]
    fn flat_search_matches_exact_search() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let vectors: Vec<Vec<f32>> = (0..3000).map(|_| unit(&mut rng)).collect();
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), &vectors);
        let ix = VectorIndex::open(tmp.path()).unwrap();
        assert_eq!(ix.len(), 3000);

        let queries: Vec<Vec<f32>> = (0..60)
            .map(|i| near(&vectors[(i * 47) % vectors.len()], &mut rng))
            .collect();
        let exact: Vec<Vec<VectorHit>> = queries.iter().map(|q| ix.exact_search(q, 10)).collect();
        let truths: Vec<Vec<u32>> = exact.iter().map(|e| ids(e)).collect();
        assert!(truths.iter().all(|t| t.len() == 10));
        // Random 384-d vectors are the hard case for HNSW (neighbours are barely nearer than
        // the rest): at ef 64 the search misses a few. The comparison with hnsw_rs searching
        // the same graph is a unit test of `vector::search`.
        for ef in [64, 128] {
            let mut flat = 0.0;
            for ((q, truth), exact) in queries.iter().zip(&truths).zip(&exact) {
                let hits = ix.search(q, 10, ef);
                assert!(hits.windows(2).all(|w| w[0].similarity >= w[1].similarity));
                if hits[0].chunk == exact[0].chunk {
                    assert!((hits[0].similarity - exact[0].similarity).abs() < 1e-5);
                }
                flat += overlap(&ids(&hits), truth);
            }
            let flat = flat / 60.0;
            eprintln!("ef {ef}: flat recall@10 {flat:.3}");
            if ef == 128 {
                assert!(flat >= 0.98, "ef {ef}: flat recall@10 {flat:.3}");
            }
        }
        // A stored vector finds itself first, with similarity 1.
        let own = ix.search(&vectors[1234], 10, 64)[0];
        assert_eq!(own.chunk, 1234);
        assert!((own.similarity - 1.0).abs() < 1e-5);
        // Texts and chunk table still line up.
        assert_eq!(ix.chunk_text(1234), "passage 1 of 411");
        assert_eq!(ix.chunk(1234).ordinal, 411);
        // A query of another dimension finds nothing rather than failing.
        assert!(ix.search(&[1.0; 8], 10, 64).is_empty());
    }

    #[test]
    fn tombstones_are_never_returned_and_update_reopens() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let vectors: Vec<Vec<f32>> = (0..900).map(|_| unit(&mut rng)).collect();
        let first = tempfile::tempdir().unwrap();
        write(first.path(), &vectors);
        // Drop every fifth ordinal (below the compaction ratio) and add one new candidate.
        let second = tempfile::tempdir().unwrap();
        let gone = |o: u32| o.is_multiple_of(5);
        let (mut w, compacted) =
            VectorWriter::continue_from(first.path(), second.path(), &gone, 0.5).unwrap();
        assert!(!compacted);
        let added: Vec<Vec<f32>> = (0..PER_ORDINAL).map(|_| unit(&mut rng)).collect();
        w.add(300, &passages(300), added.clone()).unwrap();
        w.finish().unwrap();
        assert_no_hnsw_dump(second.path());
        let ix = VectorIndex::open(second.path()).unwrap();
        assert_eq!(ix.len(), 900 + PER_ORDINAL);
        assert_eq!(ix.tombstones(), 60 * PER_ORDINAL);
        for (id, v) in vectors.iter().enumerate().step_by(7) {
            let dead = gone((id / PER_ORDINAL) as u32);
            assert_eq!(ix.is_tombstoned(id as u32), dead);
            // A tombstoned point has left the graph: its row is zeros.
            let row = ix.vector(id as u32).unwrap();
            assert_eq!(row.iter().all(|&x| x == 0.0), dead, "row {id}");
            let hits = ix.search(v, 10, 64);
            assert_eq!(hits.len(), 10, "tombstones are not counted");
            assert!(hits.iter().all(|h| !ix.is_tombstoned(h.chunk)));
            assert!(
                ix.exact_search(v, 10)
                    .iter()
                    .all(|h| !ix.is_tombstoned(h.chunk))
            );
            if !dead {
                assert_eq!(hits[0].chunk, id as u32);
            }
        }
        for (i, v) in added.iter().enumerate() {
            let hit = ix.search(v, 1, 64)[0];
            assert_eq!(hit.chunk as usize, 900 + i);
            assert_eq!(ix.chunk(hit.chunk).ordinal, 300);
        }
        // Compaction copies the live rows from the flat vectors and renumbers them.
        let third = tempfile::tempdir().unwrap();
        let (w, compacted) =
            VectorWriter::continue_from(second.path(), third.path(), &|_| false, 0.1).unwrap();
        assert!(compacted);
        w.finish().unwrap();
        assert_no_hnsw_dump(third.path());
        let ix = VectorIndex::open(third.path()).unwrap();
        assert_eq!((ix.len(), ix.tombstones()), (720 + PER_ORDINAL, 0));
        // Ordinal 0 was dropped: vector 3 (ordinal 1) is now chunk 0.
        let hit = ix.search(&vectors[3], 1, 64)[0];
        assert_eq!((hit.chunk, ix.chunk(hit.chunk).ordinal), (0, 1));
    }

    #[test]
    fn damaged_graph_files_are_errors_not_panics() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let vectors: Vec<Vec<f32>> = (0..300).map(|_| unit(&mut rng)).collect();
        let tmp = tempfile::tempdir().unwrap();
        write(tmp.path(), &vectors);
        let graph = tmp.path().join("graph.bin");
        let rows = tmp.path().join("vectors.f32");
        let (graph_bytes, row_bytes) = (
            std::fs::read(&graph).unwrap(),
            std::fs::read(&rows).unwrap(),
        );
        let damaged = |file: &Path, bytes: &[u8]| {
            std::fs::write(file, bytes).unwrap();
            let err = VectorIndex::open(tmp.path()).unwrap_err();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
            assert!(err.to_string().contains("rediscover index"), "{err}");
            let next = tempfile::tempdir().unwrap();
            let err = VectorWriter::continue_from(tmp.path(), next.path(), &|_| false, 0.5)
                .err()
                .unwrap();
            assert!(matches!(err, Error::Corrupt { .. }), "{err}");
        };
        damaged(&graph, &graph_bytes[..graph_bytes.len() - 8]);
        damaged(&graph, &graph_bytes[..20]);
        damaged(&graph, b"");
        let mut flipped = graph_bytes.clone();
        flipped[..8].copy_from_slice(b"NOTAGRPH");
        damaged(&graph, &flipped);
        let mut bad_points = graph_bytes.clone();
        bad_points[16..20].copy_from_slice(&299u32.to_le_bytes());
        damaged(&graph, &bad_points);
        std::fs::write(&graph, &graph_bytes).unwrap();
        damaged(&rows, &row_bytes[..row_bytes.len() - 4]);
        std::fs::write(&rows, &row_bytes).unwrap();
        assert_eq!(VectorIndex::open(tmp.path()).unwrap().len(), 300);
        // Garbage inside layer 0 (read lazily: offsets and neighbour ids out of range)
        // degrades results, never panics.
        let layers = u32::from_le_bytes(graph_bytes[32..36].try_into().unwrap()) as usize;
        let offsets = 40 + layers * 16 + 304;
        let mut wild = graph_bytes.clone();
        wild[offsets + 80..offsets + 160].fill(0xff);
        let neighbours = offsets + 301 * 8;
        wild[neighbours + 100..neighbours + 900].fill(0xff);
        std::fs::write(&graph, &wild).unwrap();
        let ix = VectorIndex::open(tmp.path()).unwrap();
        for v in vectors.iter().step_by(10) {
            assert!(ix.search(v, 10, 64).len() <= 10);
        }
        // Extending the graph reads all of layer 0: the garbage is found, not inserted into.
        let next = tempfile::tempdir().unwrap();
        let err = VectorWriter::continue_from(tmp.path(), next.path(), &|_| false, 0.5)
            .err()
            .unwrap();
        assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    }
}
