//! Unit tests of the store: commits, changes, resume after a kill, torn journals, compaction.

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
