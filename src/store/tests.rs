//! Unit tests of the store: commits, changes, resume after a kill, torn journals, purging of
//! deleted and replaced records.

use super::*;
use crate::domain::{Note, Posting, Resume, TextStatus};

fn candidate(id: &str, contact: &str, text: &str) -> Candidate {
    Candidate {
        id: id.into(),
        contact_id: contact.into(),
        headline: format!("headline of {id}"),
        resumes: vec![Resume {
            id: format!("r-{id}"),
            text: Some(text.into()),
            text_status: TextStatus::Extracted,
            ..Resume::default()
        }],
        notes: vec![Note {
            id: format!("n-{id}"),
            comments: vec!["a note".into()],
            ..Note::default()
        }],
        ..Candidate::default()
    }
}

fn reference() -> ReferenceData {
    ReferenceData {
        postings: vec![Posting {
            id: "p1".into(),
            title: "Engineer".into(),
            ..Posting::default()
        }],
        ..ReferenceData::default()
    }
}

fn commit_all(dir: &Path, candidates: &[Candidate]) -> Commit {
    let mut batch = Store::begin(dir).expect("begin");
    for c in candidates {
        batch.upsert(c.clone()).expect("upsert");
    }
    batch.commit(SyncState::default()).expect("commit")
}

#[test]
fn a_missing_store_opens_empty_without_creating_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.generation(), 0);
    assert!(store.is_empty());
    assert!(!store_dir(tmp.path()).exists());
}

#[test]
fn a_commit_publishes_records_counts_and_reference() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut batch = Store::begin(tmp.path()).expect("begin");
    batch.upsert(candidate("b", "c1", "rust")).expect("upsert");
    batch.upsert(candidate("a", "c1", "go")).expect("upsert");
    batch.set_reference(reference()).expect("reference");
    let sync = SyncState {
        last_run_started_at: Some(5),
        runs: 1,
        ..SyncState::default()
    };
    let commit = batch.commit(sync.clone()).expect("commit");
    assert_eq!(commit.generation, 1);
    assert_eq!(commit.changed, vec!["a".to_string(), "b".to_string()]);

    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.generation(), 1);
    assert_eq!(store.ids().collect::<Vec<_>>(), vec!["a", "b"]);
    assert_eq!(
        store.get("b").expect("get"),
        Some(candidate("b", "c1", "rust"))
    );
    assert_eq!(store.get("zz").expect("get"), None);
    assert_eq!(store.contact_of("a"), Some("c1"));
    assert_eq!(store.reference(), &reference());
    assert_eq!(store.sync_state(), &sync);
    let counts = store.counts();
    assert_eq!(
        (
            counts.opportunities,
            counts.contacts,
            counts.resumes_with_text,
            counts.notes,
            counts.postings
        ),
        (2, 1, 2, 2, 1)
    );
}

#[test]
fn identical_upserts_are_not_changes_and_deletes_are_reported() {
    let tmp = tempfile::tempdir().expect("tempdir");
    commit_all(
        tmp.path(),
        &[
            candidate("a", "c1", "x"),
            candidate("b", "c2", "y"),
            candidate("c", "c3", "z"),
        ],
    );
    let mut batch = Store::begin(tmp.path()).expect("begin");
    batch.upsert(candidate("a", "c1", "x")).expect("same");
    batch
        .upsert(candidate("b", "c2", "changed"))
        .expect("changed");
    batch.delete("c").expect("delete");
    batch.delete("never-existed").expect("delete unknown");
    let commit = batch.commit(SyncState::default()).expect("commit");
    assert_eq!(commit.generation, 2);
    assert_eq!(commit.changed, vec!["b".to_string()]);
    assert_eq!(commit.deleted, vec!["c".to_string()]);
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.len(), 2);
    assert_eq!(
        store.get("b").expect("get"),
        Some(candidate("b", "c2", "changed"))
    );
    assert_eq!(store.get("c").expect("get"), None);
}

#[test]
fn a_commit_without_changes_keeps_the_generation_but_saves_the_sync_state() {
    let tmp = tempfile::tempdir().expect("tempdir");
    commit_all(tmp.path(), &[candidate("a", "c1", "x")]);
    let mut batch = Store::begin(tmp.path()).expect("begin");
    batch.upsert(candidate("a", "c1", "x")).expect("same");
    let sync = SyncState {
        runs: 2,
        ..SyncState::default()
    };
    let commit = batch.commit(sync.clone()).expect("commit");
    assert_eq!(commit.generation, 1);
    assert!(commit.changed.is_empty());
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.sync_state(), &sync);
    assert_eq!(
        store.get("a").expect("get"),
        Some(candidate("a", "c1", "x"))
    );
}

#[test]
fn an_interrupted_run_is_invisible_then_resumes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    commit_all(tmp.path(), &[candidate("a", "c1", "x")]);
    {
        let mut batch = Store::begin(tmp.path()).expect("begin");
        batch
            .set_checkpoint("run_started_at", "42".into())
            .expect("checkpoint");
        batch.upsert(candidate("b", "c2", "y")).expect("upsert");
        batch.delete("a").expect("delete");
        // Dropped without commit: as if the process was killed.
    }
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(
        store.ids().collect::<Vec<_>>(),
        vec!["a"],
        "readers never see staged work"
    );

    let mut batch = Store::begin(tmp.path()).expect("begin again");
    assert!(batch.resumed());
    assert!(batch.is_staged("b") && batch.is_staged("a"));
    assert_eq!(batch.checkpoint("run_started_at"), Some("42"));
    batch.upsert(candidate("c", "c3", "z")).expect("upsert");
    let commit = batch.commit(SyncState::default()).expect("commit");
    assert_eq!(commit.changed, vec!["b".to_string(), "c".to_string()]);
    assert_eq!(commit.deleted, vec!["a".to_string()]);
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.ids().collect::<Vec<_>>(), vec!["b", "c"]);
}

#[test]
fn a_torn_journal_tail_is_dropped_on_resume() {
    let tmp = tempfile::tempdir().expect("tempdir");
    {
        let mut batch = Store::begin(tmp.path()).expect("begin");
        batch.upsert(candidate("a", "c1", "x")).expect("upsert");
        batch.upsert(candidate("b", "c2", "y")).expect("upsert");
    }
    let journal = segment_path(&store_dir(tmp.path()), 1);
    let len = fs::metadata(&journal).expect("journal").len();
    // Tear the last record in half and add noise, as a kill during a write could.
    let file = OpenOptions::new()
        .write(true)
        .open(&journal)
        .expect("open journal");
    file.set_len(len - 10).expect("truncate");
    drop(file);
    let mut bytes = fs::read(&journal).expect("read");
    bytes.extend_from_slice(&[0xAB; 5]);
    fs::write(&journal, bytes).expect("write");

    let batch = Store::begin(tmp.path()).expect("begin again");
    assert!(batch.is_staged("a"));
    assert!(!batch.is_staged("b"), "the torn record is dropped");
    batch.commit(SyncState::default()).expect("commit");
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.ids().collect::<Vec<_>>(), vec!["a"]);
}

use std::fs::OpenOptions;

#[test]
fn a_second_writer_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let _first = Store::begin(tmp.path()).expect("begin");
    match Store::begin(tmp.path()) {
        Err(Error::Locked { .. }) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn discard_forgets_the_run() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut batch = Store::begin(tmp.path()).expect("begin");
    batch.upsert(candidate("a", "c1", "x")).expect("upsert");
    batch.discard().expect("discard");
    let batch = Store::begin(tmp.path()).expect("begin");
    assert!(!batch.resumed());
    assert!(!batch.is_staged("a"));
}

#[test]
fn rewrites_are_compacted_and_stay_readable() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let big = "word ".repeat(60_000);
    for round in 0..4 {
        let candidates: Vec<_> = (0..30)
            .map(|i| candidate(&format!("id{i:02}"), "c", &format!("{round} {big}")))
            .collect();
        commit_all(tmp.path(), &candidates);
    }
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.generation(), 4);
    let on_disk: u64 = fs::read_dir(store_dir(tmp.path()))
        .expect("dir")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();
    let live: u64 = store.catalog.iter().map(|e| u64::from(e.len)).sum();
    assert!(
        on_disk <= 2 * live + 1024,
        "segments {on_disk} B for {live} live B"
    );
    for c in store.candidates() {
        let c = c.expect("readable");
        assert!(
            c.resumes[0]
                .text
                .as_deref()
                .is_some_and(|t| t.starts_with("3 "))
        );
    }
}

#[test]
fn a_corrupt_record_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    commit_all(tmp.path(), &[candidate("a", "c1", "some resume text")]);
    let segment = segment_path(&store_dir(tmp.path()), 1);
    let mut bytes = fs::read(&segment).expect("read");
    let last = bytes.len() - 3;
    bytes[last] ^= 0xFF;
    fs::write(&segment, bytes).expect("write");
    let store = Store::open(tmp.path()).expect("open");
    assert!(matches!(store.get("a"), Err(Error::Corrupt { .. })));
}

#[test]
fn a_truncated_segment_loses_only_the_records_it_cut() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (a, b) = (
        candidate("a", "c1", "first"),
        candidate("b", "c2", "second"),
    );
    commit_all(tmp.path(), &[a.clone(), b.clone()]);
    let (path, cut) = {
        let store = Store::open(tmp.path()).expect("open");
        let last = store
            .catalog
            .iter()
            .max_by_key(|e| e.offset)
            .expect("a record");
        (
            segment_path(&store_dir(tmp.path()), last.segment),
            last.id.clone(),
        )
    };
    let len = fs::metadata(&path).expect("stat").len();
    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len(len - 10))
        .expect("truncate");
    // The store opens; the cut record reads as corrupt, the other one reads back.
    let store = Store::open(tmp.path()).expect("a truncated segment still opens");
    assert!(matches!(store.get(&cut), Err(Error::Corrupt { .. })));
    let kept = if cut == "a" { &b } else { &a };
    assert_eq!(store.get(&kept.id).expect("readable").as_ref(), Some(kept));
    drop(store);
    // A commit that changes another record rewrites the truncated segment: the cut record is
    // dropped and reported deleted (so the sync fetches it again), and the commit succeeds.
    let commit = commit_all(tmp.path(), &[candidate("c", "c3", "third")]);
    assert_eq!(commit.deleted, std::slice::from_ref(&cut));
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.get(&cut).expect("readable"), None);
    for candidate in store.candidates() {
        candidate.expect("every published record reads back");
    }
    drop(store);
    // The next sync's upsert of the cut record brings it back.
    let again = if cut == "a" { &a } else { &b };
    let commit = commit_all(tmp.path(), std::slice::from_ref(again));
    assert_eq!(commit.changed, std::slice::from_ref(&cut));
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.get(&cut).expect("readable").as_ref(), Some(again));
}

/// Flips the last byte of the stored record of `id`, so its checksum fails.
fn corrupt_record(dir: &Path, id: &str) {
    let (path, at) = {
        let store = Store::open(dir).expect("open");
        let entry = &store.catalog[store.by_id[id]];
        (
            segment_path(&store_dir(dir), entry.segment),
            entry.offset as usize + format::HEADER_LEN + entry.len as usize - 1,
        )
    };
    let mut bytes = fs::read(&path).expect("read");
    bytes[at] ^= 0xFF;
    fs::write(&path, bytes).expect("write");
}

#[test]
fn a_corrupt_record_is_dropped_not_copied_when_its_segment_is_rewritten() {
    let tmp = tempfile::tempdir().expect("tempdir");
    commit_all(
        tmp.path(),
        &[
            candidate("a", "c1", "first"),
            candidate("b", "c2", "second"),
            candidate("c", "c3", "third"),
        ],
    );
    corrupt_record(tmp.path(), "b");
    let mut batch = Store::begin(tmp.path()).expect("begin");
    batch.delete("a").expect("delete");
    assert_eq!(batch.staged_deletes().collect::<Vec<_>>(), ["a"]);
    let commit = batch.commit(SyncState::default()).expect("commit");
    assert_eq!(commit.deleted, ["a", "b"]);
    assert!(commit.changed.is_empty());
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.ids().collect::<Vec<_>>(), ["c"]);
    for candidate in store.candidates() {
        candidate.expect("every published record reads back");
    }
}

#[test]
fn an_identical_upsert_replaces_a_stored_copy_that_no_longer_reads_back() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let a = candidate("a", "c1", "first");
    commit_all(tmp.path(), &[a.clone(), candidate("b", "c2", "second")]);
    corrupt_record(tmp.path(), "a");
    assert!(Store::open(tmp.path()).expect("open").get("a").is_err());
    let commit = commit_all(tmp.path(), std::slice::from_ref(&a));
    assert_eq!(commit.changed, ["a"]);
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.get("a").expect("readable"), Some(a));
    assert!(store.get("b").expect("readable").is_some());
}

/// Files under `dir` (recursively) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if fs::read(&path)
                .expect("read file")
                .windows(needle.len())
                .any(|w| w == needle.as_bytes())
            {
                found.push(path);
            }
        }
    }
    found
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(store_dir(dir))
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("seg-"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_deleted_candidate_leaves_no_bytes_in_a_small_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut gone = candidate("gone", "c1", "resume of Quentin Zabriskie-Gone");
    gone.emails = vec!["quentin.gone@example.org".into()];
    commit_all(
        tmp.path(),
        &[gone, candidate("kept", "c2", "resume of Ottilie Keptwell")],
    );
    assert!(!files_containing(tmp.path(), "Zabriskie-Gone").is_empty());

    let mut batch = Store::begin(tmp.path()).expect("begin");
    batch.delete("gone").expect("delete");
    let commit = batch.commit(SyncState::default()).expect("commit");
    assert_eq!(commit.deleted, vec!["gone".to_string()]);

    for needle in ["Zabriskie-Gone", "quentin.gone@example.org"] {
        assert_eq!(
            files_containing(tmp.path(), needle),
            Vec::<PathBuf>::new(),
            "{needle} is still on disk"
        );
    }
    assert!(!files_containing(tmp.path(), "Ottilie Keptwell").is_empty());
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.ids().collect::<Vec<_>>(), vec!["kept"]);
    assert_eq!(
        store.get("kept").expect("get"),
        Some(candidate("kept", "c2", "resume of Ottilie Keptwell"))
    );
}

#[test]
fn replaced_versions_and_unchanged_copies_of_a_deleted_candidate_are_purged() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Run 1: the first version, next to a live candidate.
    commit_all(
        tmp.path(),
        &[
            candidate("gone", "c1", "old resume Xanthippe-Version-One"),
            candidate("kept", "c2", "resume of Ottilie Keptwell"),
        ],
    );
    // Run 2: a new version (an anonymisation, say) next to another live candidate.
    commit_all(
        tmp.path(),
        &[
            candidate("gone", "c1", "new resume Xanthippe-Version-Two"),
            candidate("other", "c3", "resume of Bartholomew Otherly"),
        ],
    );
    assert_eq!(
        files_containing(tmp.path(), "Xanthippe-Version-One"),
        Vec::<PathBuf>::new(),
        "the replaced version is purged"
    );
    // Run 3: the same version again (not a change) while something else changes.
    commit_all(
        tmp.path(),
        &[
            candidate("gone", "c1", "new resume Xanthippe-Version-Two"),
            candidate("other", "c3", "resume of Bartholomew Otherly, updated"),
        ],
    );
    assert_eq!(
        files_containing(tmp.path(), "Xanthippe-Version-Two").len(),
        1
    );
    // Run 4: deleted.
    let mut batch = Store::begin(tmp.path()).expect("begin");
    batch.delete("gone").expect("delete");
    batch.commit(SyncState::default()).expect("commit");

    assert_eq!(
        files_containing(tmp.path(), "Xanthippe"),
        Vec::<PathBuf>::new()
    );
    assert!(!files_containing(tmp.path(), "Ottilie Keptwell").is_empty());
    assert!(!files_containing(tmp.path(), "Otherly, updated").is_empty());
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.ids().collect::<Vec<_>>(), vec!["kept", "other"]);
    for c in store.candidates() {
        c.expect("readable");
    }
}

#[test]
fn a_candidate_upserted_then_deleted_in_one_run_leaves_no_bytes() {
    let tmp = tempfile::tempdir().expect("tempdir");
    commit_all(tmp.path(), &[candidate("kept", "c2", "resume of Ottilie")]);
    let mut batch = Store::begin(tmp.path()).expect("begin");
    batch
        .set_checkpoint("run_started_at", "42".into())
        .expect("checkpoint");
    batch
        .upsert(candidate("gone", "c1", "Yevgenia-Fleeting"))
        .expect("upsert");
    batch
        .upsert(candidate("new", "c3", "resume of Newcomb"))
        .expect("upsert");
    batch.delete("gone").expect("delete");
    batch.commit(SyncState::default()).expect("commit");
    assert_eq!(
        files_containing(tmp.path(), "Yevgenia-Fleeting"),
        Vec::<PathBuf>::new()
    );
    assert!(!files_containing(tmp.path(), "resume of Newcomb").is_empty());
}

#[test]
fn published_segments_hold_live_records_only_and_stay_bounded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let big = "word ".repeat(600_000); // 3 MB per record
    let candidates: Vec<_> = (0..6)
        .map(|i| candidate(&format!("id{i}"), "c", &format!("{i} {big}")))
        .collect();
    commit_all(tmp.path(), &candidates);
    let store = Store::open(tmp.path()).expect("open");
    let live: u64 = store
        .catalog
        .iter()
        .map(|e| (format::HEADER_LEN as u64) + u64::from(e.len))
        .sum();
    let on_disk: u64 = segment_files(tmp.path())
        .iter()
        .map(|n| {
            fs::metadata(store_dir(tmp.path()).join(n))
                .expect("meta")
                .len()
        })
        .sum();
    assert_eq!(on_disk, live, "no byte but live records");
    // 18 MB of records cut at about 8 MiB: two records per segment.
    assert_eq!(segment_files(tmp.path()).len(), 3);
    drop(store);

    // Deleting one record rewrites its segment only.
    let before = segment_files(tmp.path());
    let mut batch = Store::begin(tmp.path()).expect("begin");
    batch.delete("id5").expect("delete");
    batch.commit(SyncState::default()).expect("commit");
    let after = segment_files(tmp.path());
    let kept: Vec<_> = before.iter().filter(|n| after.contains(n)).collect();
    assert_eq!(kept.len(), 2, "{before:?} -> {after:?}");
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.len(), 5);
    for c in store.candidates() {
        c.expect("readable");
    }
}

#[test]
fn segments_left_by_a_commit_killed_before_publishing_are_harmless() {
    let tmp = tempfile::tempdir().expect("tempdir");
    commit_all(
        tmp.path(),
        &[
            candidate("gone", "c1", "Zebulon-Crashed"),
            candidate("kept", "c2", "Ottilie"),
        ],
    );
    let mut batch = Store::begin(tmp.path()).expect("begin");
    batch.delete("gone").expect("delete");
    drop(batch);
    // A rewritten segment of a commit killed before its manifest: garbage no one names.
    let dir = store_dir(tmp.path());
    let next = Store::open(tmp.path()).expect("open").manifest.next_segment;
    fs::write(segment_path(&dir, next + 1), b"half a segment").expect("write");
    fs::write(segment_path(&dir, next + 5), b"more").expect("write");
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.ids().collect::<Vec<_>>(), vec!["gone", "kept"]);

    let batch = Store::begin(tmp.path()).expect("resume");
    assert!(batch.resumed());
    batch.commit(SyncState::default()).expect("commit");
    let store = Store::open(tmp.path()).expect("open");
    assert_eq!(store.ids().collect::<Vec<_>>(), vec!["kept"]);
    assert_eq!(
        files_containing(tmp.path(), "Zebulon-Crashed"),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        segment_files(tmp.path()).len(),
        store.manifest.segments.len()
    );
}

/// The data folder holds candidate data: a sync leaves no access to it for other users.
#[cfg(unix)]
#[test]
fn the_data_folder_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).expect("mkdir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    commit_all(&data, &[]);
    let mode = std::fs::metadata(&data).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}
