//! The keyword index: a tantivy index with one document per opportunity, an English-stemmed
//! prose field, an exact-token field that keeps `C++`, `C#`, `.NET`, `node.js`, `CI/CD`, a
//! title field for boosting, and fast fields for filters. Both text analyzers normalise
//! Unicode and fold accents, and the exact one indexes `C++17` as `c++` too (see
//! [`super::analysis`]).
//!
//! Names, emails and phones are neither indexed nor stored: display data comes from the store.

use std::path::Path;

use tantivy::collector::Count;
use tantivy::columnar::Column;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, QueryParserError};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::TokenizerManager;
use tantivy::{
    DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term,
};

use super::Error;
use super::analysis::{self, EXACT_TOKENIZER, PROSE_TOKENIZER};
use crate::domain::{Candidate, ReferenceData};

/// Memory budget of the tantivy writer.
const WRITER_MEMORY: usize = 64 * 1024 * 1024;
/// Memory budget of the writer that only merges (tantivy's minimum per thread).
const MERGE_WRITER_MEMORY: usize = 15_000_000;

/// The fields of the keyword index.
#[derive(Debug, Clone, Copy)]
pub struct KeywordFields {
    /// u64 fast + indexed: the `CandidateRow` ordinal.
    pub ordinal: Field,
    /// English-stemmed prose: headline, titles, employers, schools, resume, notes, feedback,
    /// tags (but not those Lever copies from the applied-to posting), sources, location, stage,
    /// archive reason.
    pub text: Field,
    /// The same content as exact lowercase tokens (`c++`, `c#`, `.net`, `node.js`, `ci/cd`).
    pub exact: Field,
    /// Headline and position titles (stemmed), for boosting.
    pub title: Field,
    /// bool fast: archived.
    pub archived: Field,
    /// bool fast: archived with a hired-type reason.
    pub hired: Field,
    /// Raw string, indexed + fast: location, lowercase.
    pub location: Field,
    /// i64 fast: last interaction time (ms); absent when unknown.
    pub last_interaction_at: Field,
    /// u64 fast: pipeline order of the furthest stage reached; absent when unknown.
    pub furthest_stage: Field,
    /// u64 fast: best overall feedback rating 1..=4; absent when none.
    pub best_rating: Field,
}

impl KeywordFields {
    fn schema() -> (Schema, KeywordFields) {
        let mut b = Schema::builder();
        let prose = |tokenizer: &str| {
            TextOptions::default().set_indexing_options(
                TextFieldIndexing::default()
                    .set_tokenizer(tokenizer)
                    .set_index_option(IndexRecordOption::WithFreqsAndPositions),
            )
        };
        let fields = KeywordFields {
            ordinal: b.add_u64_field("ordinal", INDEXED | FAST),
            text: b.add_text_field("text", prose(PROSE_TOKENIZER)),
            exact: b.add_text_field("exact", prose(EXACT_TOKENIZER)),
            title: b.add_text_field("title", prose(PROSE_TOKENIZER)),
            archived: b.add_bool_field("archived", INDEXED | FAST),
            hired: b.add_bool_field("hired", INDEXED | FAST),
            location: b.add_text_field("location", STRING | FAST),
            last_interaction_at: b.add_i64_field("last_interaction_at", FAST),
            furthest_stage: b.add_u64_field("furthest_stage", INDEXED | FAST),
            best_rating: b.add_u64_field("best_rating", INDEXED | FAST),
        };
        (b.build(), fields)
    }
}

/// An opened keyword index (read-only, one generation).
pub struct KeywordIndex {
    index: Index,
    reader: IndexReader,
    fields: KeywordFields,
    /// The analyzers queries are read with (see [`analysis::query_manager`]).
    query_tokenizers: TokenizerManager,
    /// The `ordinal` fast-field column of each segment, by segment ordinal.
    ordinals: Vec<Column<u64>>,
}

impl std::fmt::Debug for KeywordIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeywordIndex")
            .field("docs", &self.num_docs())
            .finish()
    }
}

impl KeywordIndex {
    /// Opens the keyword index in `dir` (memory-mapped), every segment file included, without
    /// writing anything there (a read-only data folder can be searched). A file that is
    /// missing, truncated or unreadable as an index is [`Error::Corrupt`].
    pub fn open(dir: &Path) -> Result<KeywordIndex, Error> {
        let err = |e: tantivy::TantivyError| {
            if is_damage(&e) {
                Error::Corrupt {
                    path: dir.to_path_buf(),
                    reason: format!("keyword index unreadable: {e}"),
                }
            } else {
                keyword_error(dir)(e)
            }
        };
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| err(tantivy::TantivyError::from(e)))?;
        let index = Index::open(Immutable(directory)).map_err(err)?;
        register_tokenizers(&index)?;
        let fields = fields_of(&index.schema(), dir)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(err)?;
        let searcher = reader.searcher();
        let ordinals = searcher
            .segment_readers()
            .iter()
            .map(|s| s.fast_fields().u64("ordinal"))
            .collect::<tantivy::Result<Vec<_>>>()
            .map_err(err)?;
        let query_tokenizers = analysis::query_manager().map_err(err)?;
        Ok(KeywordIndex {
            index,
            reader,
            fields,
            query_tokenizers,
            ordinals,
        })
    }

    /// A searcher over this generation (cheap; share freely).
    pub fn searcher(&self) -> Searcher {
        self.reader.searcher()
    }

    /// The index's fields.
    pub fn fields(&self) -> &KeywordFields {
        &self.fields
    }

    /// The tantivy index (schema, tokenizers).
    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Tokens of `text` as `field`'s own analyzer indexes them (empty for non-text fields).
    pub fn analyze(&self, field: Field, text: &str) -> Vec<String> {
        analyze_with(self.index.tokenizers(), &self.index.schema(), field, text)
    }

    /// Tokens of `text` as a query on `field` is analysed: as [`KeywordIndex::analyze`], but
    /// without the version bases the exact field adds (`C++17` is `c++17` only).
    pub fn analyze_query(&self, field: Field, text: &str) -> Vec<String> {
        analyze_with(&self.query_tokenizers, &self.index.schema(), field, text)
    }

    /// Live documents containing `token` (an analyzed token) in `field`.
    pub fn doc_freq(&self, field: Field, token: &str) -> u64 {
        let term = Term::from_field_text(field, token);
        let query = tantivy::query::TermQuery::new(term, IndexRecordOption::Basic);
        // Counting through a query skips deleted documents, which `Searcher::doc_freq` does not.
        self.searcher()
            .search(&query, &Count)
            .map(|n| n as u64)
            .unwrap_or(0)
    }

    /// Live documents in the index.
    pub fn num_docs(&self) -> u64 {
        self.searcher().num_docs()
    }

    /// Parses a boolean query (`AND`, `OR`, `NOT`, `-term`, `"phrases"`) over the prose, exact
    /// and title fields; terms are required unless joined by `OR`. Words such as `C++` or
    /// `.NET` are quoted first so the query grammar does not read `+` or `.` as syntax.
    pub fn parse_boolean(&self, query: &str) -> Result<Box<dyn Query>, Error> {
        // The query grammar recurses once per parenthesis and per `NOT`: a deep nest would
        // overflow the stack.
        if nesting_depth(query) > MAX_NESTING {
            return Err(Error::BadQuery {
                reason: format!("parentheses and NOTs nested more than {MAX_NESTING} deep"),
            });
        }
        let mut parser = QueryParser::new(
            self.index.schema(),
            vec![self.fields.text, self.fields.exact, self.fields.title],
            self.query_tokenizers.clone(),
        );
        parser.set_conjunction_by_default();
        let query = quote_special_words(query);
        if !query.chars().any(char::is_alphanumeric) {
            return Err(Error::BadQuery {
                reason: "the keyword filter has no word to search for".into(),
            });
        }
        let parsed = match parser.parse_query(&query) {
            // Only exclusions (`NOT java`, `-java`): everything but those. tantivy refuses
            // them, but its lenient parse excludes them from everything.
            Err(QueryParserError::AllButQueryForbidden) => {
                match parser.parse_query_lenient(&query) {
                    (parsed, errors)
                        if errors
                            .iter()
                            .all(|e| matches!(e, QueryParserError::AllButQueryForbidden)) =>
                    {
                        Ok(parsed)
                    }
                    _ => Err(QueryParserError::AllButQueryForbidden),
                }
            }
            other => other,
        };
        parsed
            .map(negations_exclude_from_everything)
            .map_err(|e| Error::BadQuery {
                reason: e.to_string(),
            })
    }

    /// The `CandidateRow` ordinal of a document.
    pub fn ordinal_of(&self, doc: DocAddress) -> u32 {
        self.ordinals
            .get(doc.segment_ord as usize)
            .and_then(|c| c.first(doc.doc_id))
            .map_or(u32::MAX, |o| o as u32)
    }
}

/// Gives every group of only excluding clauses (`NOT java AND python` parses as
/// `+(-java) +python`) something to exclude from: everything. tantivy matches nothing for such
/// a group, so the whole conjunction would silently match nothing.
fn negations_exclude_from_everything(query: Box<dyn Query>) -> Box<dyn Query> {
    let Some(boolean) = query.downcast_ref::<BooleanQuery>() else {
        return query;
    };
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = boolean
        .clauses()
        .iter()
        .map(|(occur, clause)| {
            (
                *occur,
                negations_exclude_from_everything(clause.box_clone()),
            )
        })
        .collect();
    if !clauses.is_empty() && clauses.iter().all(|(occur, _)| *occur == Occur::MustNot) {
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
    Box::new(BooleanQuery::new(clauses))
}

/// Deepest parenthesis nesting a boolean keyword query may use.
const MAX_NESTING: usize = 16;

/// How deep the grammar would recurse on `query`: its parentheses' nesting (unbalanced
/// closing ones ignored) plus its `NOT`s, each of which the grammar also recurses on.
fn nesting_depth(query: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    for c in query.chars() {
        match c {
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest + query.split_whitespace().filter(|w| *w == "NOT").count()
}

/// Rewrites `AND NOT` as `NOT` (see below) and turns bare words holding `+`, `#`, `/` or an inner or leading `.` into exact-field phrases
/// (`C++` -> `exact:"C++"`): the stemmed fields would reduce them to `c` or `net`.
/// Characters of tantivy's query grammar that the keyword filter's syntax does not use.
const GRAMMAR_CHARS: [char; 16] = [
    ':', '\'', '^', '~', '*', '!', '\\', '{', '}', '[', ']', '<', '>', '=', '(', ')',
];

fn quote_special_words(query: &str) -> String {
    let mut out = Vec::new();
    let mut in_phrase = false;
    for word in query.split_whitespace() {
        let quotes = word.matches('"').count();
        if in_phrase || quotes > 0 {
            if quotes % 2 == 1 {
                in_phrase = !in_phrase;
            }
            out.push(word.to_owned());
            continue;
        }
        let (op, rest) = match word.strip_prefix(['-', '+']) {
            Some(rest) if !rest.is_empty() => (&word[..1], rest),
            _ => ("", word),
        };
        let mut open = rest.len() - rest.trim_start_matches('(').len();
        let mut close = rest.len() - rest.trim_end_matches(')').len();
        // A bracket inside the word (`sql(postgres)`) keeps its partner: it is not a group.
        let inner = &rest[open..rest.len() - close];
        let depth = inner.matches('(').count() as isize - inner.matches(')').count() as isize;
        if depth > 0 {
            close -= close.min(depth as usize);
        } else if depth < 0 {
            open -= open.min(depth.unsigned_abs());
        }
        let core = &rest[open..rest.len() - close];
        // After the first character (which may take several bytes: `Øyvind`).
        let tail = core.char_indices().nth(1).map_or("", |(i, _)| &core[i..]);
        let special = !tail.is_empty()
            && (core.starts_with('.') || tail.contains(['+', '#', '/', '.']))
            && !core.contains(':');
        let (before, after) = (&rest[..open], &rest[rest.len() - close..]);
        if op.is_empty() && matches!(core, "AND" | "OR" | "NOT") && open + close > 0 {
            // `(NOT`: the operator stands alone, so `drop_dangling` can see it.
            out.extend(before.chars().map(String::from));
            out.push(core.to_owned());
            out.extend(after.chars().map(String::from));
        } else if special {
            out.push(format!("{op}{before}exact:\"{core}\"{after}"));
        } else if core.contains(GRAMMAR_CHARS) {
            // `O'Reilly`, `skills:`, `[a`: characters the query grammar would read as field
            // names, ranges, boosts or wildcards. The filter's syntax has none of those, so
            // the word is searched as written: a phrase of its tokens, or nothing when it
            // holds no letter or digit.
            let words: String = core
                .chars()
                .map(|c| if c == '\\' { ' ' } else { c })
                .collect();
            if words.chars().any(char::is_alphanumeric) {
                out.push(format!("{op}{before}\"{words}\"{after}"));
            } else {
                // Only its brackets stay; `drop_dangling` then removes what leaned on it.
                out.extend(before.chars().chain(after.chars()).map(String::from));
            }
        } else if word == "NOT" && out.last().is_some_and(|w| w == "AND") {
            // tantivy reads `a AND NOT b` as `+a +(-b)`, and a clause that only excludes
            // matches nothing; `a NOT b` means what the user meant.
            out.pop();
            out.push(word.to_owned());
        } else {
            out.push(word.to_owned());
        }
    }
    drop_dangling(out).join(" ")
}

/// Removes the operators and empty brackets left without a word beside them once words
/// without letters or digits were dropped (`rust OR *` is `rust`, `(go OR ')` is `(go)`).
fn drop_dangling(words: Vec<String>) -> Vec<String> {
    let is_operator = |w: &str| matches!(w, "AND" | "OR" | "NOT");
    let mut kept: Vec<String> = Vec::with_capacity(words.len());
    for word in words {
        match word.as_str() {
            ")" => {
                while kept.last().is_some_and(|w| is_operator(w)) {
                    kept.pop();
                }
                if kept.last().is_some_and(|w| w == "(") {
                    kept.pop();
                } else {
                    kept.push(word);
                }
            }
            "AND" | "OR"
                if kept
                    .last()
                    .is_none_or(|w| is_operator(w) || w.ends_with('(')) => {}
            // `NOT NOT x` is `x`, `NOT -x` too (the grammar takes one negation at a time).
            "NOT" if kept.last().is_some_and(|w| w == "NOT") => {
                kept.pop();
            }
            w if w.len() > 1
                && w.starts_with(['-', '+'])
                && kept.last().is_some_and(|l| l == "NOT") =>
            {
                kept.pop();
                kept.push(match w.strip_prefix('-') {
                    Some(positive) => positive.to_owned(),
                    None => format!("-{}", &w[1..]),
                });
            }
            _ => kept.push(word),
        }
    }
    while kept.last().is_some_and(|w| is_operator(w)) {
        kept.pop();
    }
    kept
}

fn analyze_with(
    tokenizers: &TokenizerManager,
    schema: &Schema,
    field: Field,
    text: &str,
) -> Vec<String> {
    let tantivy::schema::FieldType::Str(options) = schema.get_field_entry(field).field_type()
    else {
        return Vec::new();
    };
    let Some(mut analyzer) = options
        .get_indexing_options()
        .and_then(|indexing| tokenizers.get(indexing.tokenizer()))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    stream.process(&mut |t| out.push(t.text.clone()));
    out
}

/// Whether a tantivy error opening an index means its files are damaged (missing, truncated,
/// not an index), rather than that the machine could not read them now (permissions, too many
/// open files): damage is repaired by a rebuild, the rest is not.
fn is_damage(e: &tantivy::TantivyError) -> bool {
    use tantivy::directory::error::{OpenDirectoryError, OpenReadError};
    let damaged_io = |io: &std::io::Error| {
        matches!(
            io.kind(),
            std::io::ErrorKind::InvalidData
                | std::io::ErrorKind::UnexpectedEof
                | std::io::ErrorKind::NotFound
        )
    };
    match e {
        tantivy::TantivyError::DataCorruption(_) => true,
        tantivy::TantivyError::OpenReadError(read) => match read {
            OpenReadError::FileDoesNotExist(_) | OpenReadError::IncompatibleIndex(_) => true,
            OpenReadError::IoError { io_error, .. } => damaged_io(io_error),
        },
        tantivy::TantivyError::OpenDirectoryError(open) => {
            matches!(open, OpenDirectoryError::DoesNotExist(_))
        }
        tantivy::TantivyError::IoError(io) => damaged_io(io),
        _ => false,
    }
}

/// A published generation's keyword directory, read as it is: its files never change, so
/// readers skip tantivy's meta lock, which its reader otherwise creates as a file while it
/// opens the segments (failing in a read-only data folder). Every other lock is taken as
/// usual.
#[derive(Debug, Clone)]
struct Immutable(tantivy::directory::MmapDirectory);

impl tantivy::Directory for Immutable {
    fn get_file_handle(
        &self,
        path: &Path,
    ) -> Result<
        std::sync::Arc<dyn tantivy::directory::FileHandle>,
        tantivy::directory::error::OpenReadError,
    > {
        self.0.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), tantivy::directory::error::DeleteError> {
        self.0.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, tantivy::directory::error::OpenReadError> {
        self.0.exists(path)
    }

    fn open_write(
        &self,
        path: &Path,
    ) -> Result<tantivy::directory::WritePtr, tantivy::directory::error::OpenWriteError> {
        self.0.open_write(path)
    }

    fn atomic_read(
        &self,
        path: &Path,
    ) -> Result<Vec<u8>, tantivy::directory::error::OpenReadError> {
        self.0.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> std::io::Result<()> {
        self.0.atomic_write(path, data)
    }

    fn sync_directory(&self) -> std::io::Result<()> {
        self.0.sync_directory()
    }

    fn acquire_lock(
        &self,
        lock: &tantivy::directory::Lock,
    ) -> Result<tantivy::directory::DirectoryLock, tantivy::directory::error::LockError> {
        if lock.filepath == tantivy::directory::META_LOCK.filepath {
            Ok(tantivy::directory::DirectoryLock::from(Box::new(())))
        } else {
            self.0.acquire_lock(lock)
        }
    }

    fn watch(
        &self,
        watch_callback: tantivy::directory::WatchCallback,
    ) -> tantivy::Result<tantivy::directory::WatchHandle> {
        self.0.watch(watch_callback)
    }
}

fn keyword_error(dir: &Path) -> impl Fn(tantivy::TantivyError) -> Error + '_ {
    move |e| Error::Keyword {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    }
}

fn register_tokenizers(index: &Index) -> Result<(), Error> {
    analysis::register(index.tokenizers()).map_err(|e| Error::Keyword {
        path: Default::default(),
        reason: e.to_string(),
    })
}

fn fields_of(schema: &Schema, dir: &Path) -> Result<KeywordFields, Error> {
    let (expected, _) = KeywordFields::schema();
    let get = |name: &str| {
        schema.get_field(name).map_err(|_| Error::Corrupt {
            path: dir.to_path_buf(),
            reason: format!("keyword index has no field {name}"),
        })
    };
    if expected.fields().count() != schema.fields().count() {
        return Err(Error::Corrupt {
            path: dir.to_path_buf(),
            reason: "keyword schema differs from this version's".to_owned(),
        });
    }
    Ok(KeywordFields {
        ordinal: get("ordinal")?,
        text: get("text")?,
        exact: get("exact")?,
        title: get("title")?,
        archived: get("archived")?,
        hired: get("hired")?,
        location: get("location")?,
        last_interaction_at: get("last_interaction_at")?,
        furthest_stage: get("furthest_stage")?,
        best_rating: get("best_rating")?,
    })
}

/// Writes one generation's keyword index: created fresh, or continuing a copy of the previous
/// generation's files.
pub struct KeywordWriter {
    writer: IndexWriter,
    fields: KeywordFields,
    dir: std::path::PathBuf,
    /// [`posting_categories`] of the reference data of the first document (one build, one
    /// reference), so a document looks its postings up instead of scanning them.
    posting_categories: std::sync::OnceLock<PostingCategories>,
}

impl KeywordWriter {
    /// Creates an empty keyword index in `dir`.
    pub fn create(dir: &Path) -> Result<KeywordWriter, Error> {
        let (schema, fields) = KeywordFields::schema();
        let index = Index::create_in_dir(dir, schema).map_err(keyword_error(dir))?;
        Self::with_index(index, fields, dir)
    }

    /// Continues the keyword index already in `dir` (a copy of the previous generation's).
    pub fn continue_in(dir: &Path) -> Result<KeywordWriter, Error> {
        let index = Index::open_in_dir(dir).map_err(keyword_error(dir))?;
        let fields = fields_of(&index.schema(), dir)?;
        Self::with_index(index, fields, dir)
    }

    fn with_index(index: Index, fields: KeywordFields, dir: &Path) -> Result<Self, Error> {
        register_tokenizers(&index)?;
        let writer = index.writer(WRITER_MEMORY).map_err(keyword_error(dir))?;
        Ok(KeywordWriter {
            writer,
            fields,
            dir: dir.to_path_buf(),
            posting_categories: std::sync::OnceLock::new(),
        })
    }

    /// Adds one candidate's document under `ordinal`.
    pub fn add(
        &self,
        ordinal: u32,
        candidate: &Candidate,
        reference: &ReferenceData,
        row: &super::CandidateRow,
    ) -> Result<(), Error> {
        let categories = (self.posting_categories).get_or_init(|| posting_categories(reference));
        let doc = document(&self.fields, ordinal, candidate, reference, categories, row);
        self.writer
            .add_document(doc)
            .map(|_| ())
            .map_err(keyword_error(&self.dir))
    }

    /// Deletes the document of `ordinal`.
    pub fn delete(&self, ordinal: u32) {
        self.writer.delete_term(Term::from_field_u64(
            self.fields.ordinal,
            u64::from(ordinal),
        ));
    }

    /// Commits and waits for merges, then merges away every segment that still holds deleted
    /// documents (see `purge_deleted`), leaving a complete index in the directory.
    pub fn finish(mut self) -> Result<(), Error> {
        let err = keyword_error(&self.dir);
        self.writer.commit().map_err(&err)?;
        let index = self.writer.index().clone();
        self.writer.wait_merging_threads().map_err(&err)?;
        purge_deleted(&index, &self.dir)
    }
}

/// Merges the segments that hold deleted documents, so their terms, positions and fast-field
/// values (a deleted or replaced candidate's words, location) leave the index: tantivy only
/// marks a deleted document in a `.del` file until its segment is merged. The merge writes new
/// segment files and tantivy removes the old ones from this directory; the previous
/// generation's directory, which shares them by hard links, is removed after the switch.
///
/// A merge rewrites the segments it takes: an update that deletes anything costs a rewrite of
/// the segments its deleted documents were in.
fn purge_deleted(index: &Index, dir: &Path) -> Result<(), Error> {
    let err = keyword_error(dir);
    let with_deletes: Vec<tantivy::index::SegmentId> = index
        .searchable_segment_metas()
        .map_err(&err)?
        .iter()
        .filter(|meta| meta.has_deletes())
        .map(|meta| meta.id())
        .collect();
    if with_deletes.is_empty() {
        return Ok(());
    }
    let mut writer: IndexWriter = index
        .writer_with_num_threads(1, MERGE_WRITER_MEMORY)
        .map_err(&err)?;
    writer.merge(&with_deletes).wait().map_err(&err)?;
    writer.wait_merging_threads().map_err(&err)?;
    let left = index
        .searchable_segment_metas()
        .map_err(&err)?
        .iter()
        .filter(|meta| meta.has_deletes())
        .count();
    if left > 0 {
        return Err(Error::Keyword {
            path: dir.to_path_buf(),
            reason: format!("{left} segments still hold deleted documents after merging"),
        });
    }
    Ok(())
}

/// Each posting's categories that Lever copies into its applicants' tags (title, team,
/// department, location, commitment), lowercase, by posting id.
type PostingCategories = std::collections::HashMap<String, Vec<String>>;

fn posting_categories(reference: &ReferenceData) -> PostingCategories {
    (reference.postings.iter())
        .map(|p| {
            let categories = [&p.title, &p.team, &p.department, &p.location, &p.commitment]
                .into_iter()
                .map(|category| category.trim().to_lowercase())
                .filter(|category| !category.is_empty())
                .collect();
            (p.id.clone(), categories)
        })
        .collect()
}

/// The tantivy document of one candidate.
fn document(
    f: &KeywordFields,
    ordinal: u32,
    c: &Candidate,
    reference: &ReferenceData,
    posting_categories: &PostingCategories,
    row: &super::CandidateRow,
) -> TantivyDocument {
    let mut doc = TantivyDocument::default();
    doc.add_u64(f.ordinal, u64::from(ordinal));
    let mut prose: Vec<&str> = vec![c.headline.as_str()];
    let mut titles: Vec<&str> = vec![c.headline.as_str()];
    for r in &c.resumes {
        for p in &r.positions {
            prose.extend([p.title.as_str(), p.org.as_str(), p.summary.as_str()]);
            titles.push(p.title.as_str());
        }
        for s in &r.schools {
            prose.extend([
                s.org.as_str(),
                s.degree.as_str(),
                s.field.as_str(),
                s.summary.as_str(),
            ]);
        }
    }
    if let Some(text) = c.resume_text() {
        prose.push(text);
    }
    for n in &c.notes {
        prose.extend(n.comments.iter().map(String::as_str));
    }
    for fb in &c.feedback {
        prose.push(fb.title.as_str());
        prose.extend(fb.answers.iter().map(|a| a.answer.as_str()));
    }
    // Lever adds the applied-to posting's title, team, department, location and commitment as
    // tags: they say what the person applied for, not what they know, so they are not searched
    // (the history shows the posting; the tag filters still read every tag from the rows).
    // Postings are not in the reference checksum that forces a rebuild: after a posting is
    // renamed, documents built before keep the old rule's result until the next rebuild.
    let posting_tags: Vec<&String> = (c.posting_ids.iter())
        .filter_map(|id| posting_categories.get(id))
        .flatten()
        .collect();
    prose.extend(
        (c.tags.iter())
            .filter(|tag| !posting_tags.contains(&&tag.trim().to_lowercase()))
            .map(String::as_str),
    );
    prose.extend(c.sources.iter().map(String::as_str));
    prose.push(c.location.as_str());
    if let Some(stage) = reference.stage(&c.stage_id) {
        prose.push(stage.text.as_str());
    }
    if let Some(reason) = c
        .archived
        .as_ref()
        .and_then(|a| reference.archive_reason(&a.reason_id))
    {
        prose.push(reason.text.as_str());
    }
    for text in prose.iter().filter(|t| !t.trim().is_empty()) {
        doc.add_text(f.text, text);
        doc.add_text(f.exact, text);
    }
    for title in titles.iter().filter(|t| !t.trim().is_empty()) {
        doc.add_text(f.title, title);
    }
    doc.add_bool(f.archived, row.archived);
    doc.add_bool(f.hired, row.hired);
    doc.add_text(f.location, &row.location);
    if let Some(t) = row.last_interaction_at {
        doc.add_i64(f.last_interaction_at, t);
    }
    if let Some(s) = row.furthest_stage_order {
        doc.add_u64(f.furthest_stage, u64::from(s));
    }
    if let Some(r) = row.best_rating {
        doc.add_u64(f.best_rating, u64::from(r));
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact_tokens(text: &str) -> Vec<String> {
        let (schema, fields) = KeywordFields::schema();
        let index = Index::create_in_ram(schema);
        register_tokenizers(&index).unwrap();
        analyze_with(index.tokenizers(), &index.schema(), fields.exact, text)
    }

    #[test]
    fn exact_tokens_keep_programming_names() {
        assert_eq!(
            exact_tokens("Senior C++ and C# dev (.NET, node.js), CI/CD. Kubernetes."),
            vec![
                "senior",
                "c++",
                "and",
                "c#",
                "dev",
                ".net",
                "node.js",
                "ci/cd",
                "kubernetes"
            ]
        );
    }

    #[test]
    fn tags_echoing_the_applied_posting_are_not_searched() {
        let (_, fields) = KeywordFields::schema();
        let reference = ReferenceData {
            postings: vec![crate::domain::Posting {
                id: "p1".into(),
                title: "Senior Rust Backend Engineer".into(),
                team: "Platform".into(),
                commitment: "Full-time".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let candidate = Candidate {
            id: "o1".into(),
            posting_ids: vec!["p1".into()],
            tags: vec![
                "senior rust backend engineer".into(),
                "Platform".into(),
                "Full-time".into(),
                "Kafka expert".into(),
            ],
            ..Default::default()
        };
        let row = super::super::CandidateRow::new(&candidate, &reference);
        let categories = posting_categories(&reference);
        let doc = document(&fields, 0, &candidate, &reference, &categories, &row);
        let texts: Vec<&str> = doc
            .get_all(fields.text)
            .filter_map(|v| tantivy::schema::Value::as_str(&v))
            .collect();
        assert_eq!(texts, ["Kafka expert"]);
    }

    #[test]
    fn special_words_are_quoted_for_the_parser() {
        assert_eq!(
            quote_special_words("C++ AND (.NET OR node.js) -C# \"a b\" rust"),
            "exact:\"C++\" AND (exact:\".NET\" OR exact:\"node.js\") -exact:\"C#\" \"a b\" rust"
        );
    }

    #[test]
    fn words_starting_with_a_multibyte_letter_are_read_whole() {
        assert_eq!(
            quote_special_words("Øyvind Ärzte (日本 Zoë/x é.net"),
            "Øyvind Ärzte (日本 exact:\"Zoë/x\" exact:\"é.net\""
        );
    }

    #[test]
    fn grammar_characters_in_a_word_are_searched_as_written() {
        assert_eq!(
            quote_special_words("O'Reilly AND -(skills: rust) [a TO z] * \"it's\""),
            "\"O'Reilly\" AND -(\"skills:\" rust) \"[a\" TO \"z]\" \"it's\""
        );
        let dir = tempfile::tempdir().unwrap();
        KeywordWriter::create(dir.path()).unwrap().finish().unwrap();
        let reader = KeywordIndex::open(dir.path()).unwrap();
        for query in [
            "O'Reilly",
            "women's AND rust's",
            "skills: rust",
            "skills:rust",
            "[a TO z]",
            "{a TO z}",
            "rust^2",
            "rust~1",
            "ru*",
            "!rust",
            "a\\b",
            "x>1 AND y<=2",
            "(rust OR go) AND 'kafka'",
            "rust ' * ^ !",
        ] {
            assert!(reader.parse_boolean(query).is_ok(), "{query}");
        }
        for query in ["' * ^ ( ! )", "", "  ", "-"] {
            let err = reader.parse_boolean(query).expect_err(query);
            assert!(
                err.to_string().contains("no word to search for"),
                "{query}: {err}"
            );
        }
    }

    /// Any filter built from words (however odd) with the documented syntax (AND, OR, NOT,
    /// `-`, parentheses, phrases) parses, or has no word at all to search for.
    #[test]
    fn every_well_formed_filter_parses() {
        use rand::{Rng, SeedableRng};
        const WORDS: [&str; 18] = [
            "rust",
            "C++",
            ".NET",
            "O'Reilly",
            "*",
            "'",
            "skills:",
            "sql(postgres)",
            "[a",
            "z]",
            "\"event sourcing\"",
            "-kafka",
            "ru*",
            "x^2",
            "!",
            "日本",
            "a\\b",
            "-*",
        ];
        fn expr(rng: &mut rand_chacha::ChaCha8Rng, depth: u32) -> String {
            match rng.gen_range(0..if depth > 3 { 1 } else { 5 }) {
                0 => WORDS[rng.gen_range(0..WORDS.len())].to_owned(),
                1 => format!("{} AND {}", expr(rng, depth + 1), expr(rng, depth + 1)),
                2 => format!("{} OR {}", expr(rng, depth + 1), expr(rng, depth + 1)),
                3 => format!("({})", expr(rng, depth + 1)),
                _ => format!("NOT {}", expr(rng, depth + 1)),
            }
        }
        let dir = tempfile::tempdir().unwrap();
        KeywordWriter::create(dir.path()).unwrap().finish().unwrap();
        let reader = KeywordIndex::open(dir.path()).unwrap();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut parsed = 0;
        for _ in 0..600 {
            let query = expr(&mut rng, 0);
            match reader.parse_boolean(&query) {
                Ok(_) => parsed += 1,
                Err(e) => assert!(
                    e.to_string().contains("no word to search for"),
                    "{query:?} -> {:?}: {e}",
                    quote_special_words(&query)
                ),
            }
        }
        assert!(parsed > 400, "{parsed}");
    }

    #[test]
    fn deeply_nested_queries_are_refused_not_recursed() {
        let dir = tempfile::tempdir().unwrap();
        KeywordWriter::create(dir.path()).unwrap().finish().unwrap();
        assert_eq!(nesting_depth("(a OR (b AND c)) ) (d"), 2);
        assert_eq!(nesting_depth("(a NOT b) NOT c"), 3);
        let reader = KeywordIndex::open(dir.path()).unwrap();
        let deep = format!("{}rust{}", "(".repeat(2000), ")".repeat(2000));
        assert!(matches!(
            reader.parse_boolean(&deep),
            Err(Error::BadQuery { .. })
        ));
        assert!(reader.parse_boolean("((rust OR go) AND linux)").is_ok());
        let nots = format!("rust {}go", "NOT ".repeat(1000));
        assert!(matches!(
            reader.parse_boolean(&nots),
            Err(Error::BadQuery { .. })
        ));
    }
}
