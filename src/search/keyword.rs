//! The keyword side of a query: the weighted terms of the posting, scored with BM25 a term at
//! a time (or, to compare, as one tantivy `BooleanQuery`), restricted by the row filters (which
//! include the optional Boolean keyword filter), the best kept.
//!
//! Free text is never parsed as query syntax: the query is built from analysed terms. Only the
//! user's keyword filter goes through `KeywordIndex::parse_boolean`.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use tantivy::collector::{Collector, SegmentCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::fieldnorm::FieldNormReader;
use tantivy::query::{
    Bm25Weight, BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, DocSet, Score, SegmentOrdinal, SegmentReader, Term};

use crate::index::{KeywordIndex, analysis};

use super::Error;
use super::allowed::Allowed;
use super::lru::Lru;
use super::terms::{self, AnalyzedText, TermField, TermOptions, WeightedTerm};

/// How much a term found in the title field adds, relative to the prose field.
const TITLE_FIELD_BOOST: f32 = 1.5;
/// At most this many words of a posting are scanned to name a stemmed term by a word.
const SURFACE_SCAN_WORDS: usize = 4_000;

/// How the keyword side scores and collects its top hits. All three give the same BM25 scores
/// (up to float rounding); benches/search.rs measures them on long postings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeywordCollector {
    /// Term at a time: each term's postings are read block by block and their BM25 scores added
    /// into one dense array per segment, then the best allowed documents are picked from it.
    /// No merging of posting lists and no per-document dispatch: the fastest for a posting's
    /// few dozen weighted terms, several of them common.
    #[default]
    TermAtATime,
    /// Document at a time through tantivy's `BooleanQuery` scorer, into a custom collector that
    /// keeps a top-k heap and checks the filters while collecting.
    Exhaustive,
    /// tantivy's `TopDocs`, which prunes with block-max WAND; filters are applied afterwards.
    TopDocsWand,
}

/// A term of the keyword query and the word of the posting it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryTerm {
    /// The weighted, analysed term.
    pub term: WeightedTerm,
    /// A word of the posting that analyses to this term, for display.
    pub word: String,
}

/// One keyword hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeywordHit {
    /// Row ordinal of the opportunity.
    pub ordinal: u32,
    /// BM25 score of the weighted query.
    pub score: f32,
    /// Where the document lives in the keyword index.
    pub doc: DocAddress,
}

/// Chooses the weighted terms of a posting against the keyword index.
pub fn choose_terms(
    index: &KeywordIndex,
    title: &str,
    body: &str,
    options: TermOptions,
) -> Vec<QueryTerm> {
    let fields = index.fields();
    // In NFC first, so a decomposed accent does not cut a word before the stop words go.
    let (title, body) = (analysis::nfc(title), analysis::nfc(body));
    let (title, body) = (title.as_ref(), body.as_ref());
    let title_clean = terms::without_stop_words(title);
    let body_clean = terms::without_stop_words(body);
    let analyze = |field: Field, title: &str, body: &str| {
        let title_tokens = index.analyze_query(field, title);
        let mut all = title_tokens.clone();
        all.extend(index.analyze_query(field, body));
        AnalyzedText {
            title: title_tokens,
            all,
        }
    };
    let searcher = index.searcher();
    // `.NET`, `C++` and `node.js` are searched in the exact field only: the prose field would
    // cut them into `net`, `c`, `node` and `js`, and "net revenue" is no .NET.
    let text = analyze(
        fields.text,
        &terms::without_symbol_words(&title_clean),
        &terms::without_symbol_words(&body_clean),
    );
    let exact = analyze(fields.exact, &title_clean, &body_clean);
    let chosen = terms::select_terms(
        &[(TermField::Text, &text), (TermField::Exact, &exact)],
        index.num_docs(),
        |field, token| doc_freq(&searcher, field_of(index, field), token),
        options,
    );
    let surfaces = surface_words(index, &chosen, title, body);
    chosen
        .into_iter()
        .map(|term| {
            let word = surfaces
                .get(&(term.field, term.token.clone()))
                .cloned()
                .unwrap_or_else(|| term.token.clone());
            QueryTerm { term, word }
        })
        .collect()
}

/// How many postings' chosen terms a [`TermCache`] remembers.
const TERM_CACHE: usize = 512;

/// The terms chosen for recent postings, for one index generation (document frequencies
/// change with the index), so a posting queried again skips term selection: analysing the
/// posting and a dictionary lookup per distinct word and segment.
pub struct TermCache {
    lru: Mutex<Lru<Arc<Vec<QueryTerm>>>>,
}

impl std::fmt::Debug for TermCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TermCache").finish_non_exhaustive()
    }
}

impl Default for TermCache {
    fn default() -> Self {
        TermCache {
            lru: Mutex::new(Lru::new(TERM_CACHE)),
        }
    }
}

impl TermCache {
    /// [`choose_terms`], remembered by title, body and options.
    pub fn choose(
        &self,
        index: &KeywordIndex,
        title: &str,
        body: &str,
        options: TermOptions,
    ) -> Arc<Vec<QueryTerm>> {
        let key = {
            let mut hasher = DefaultHasher::new();
            (
                title,
                body,
                options.max_terms,
                options.title_boost.to_bits(),
            )
                .hash(&mut hasher);
            hasher.finish()
        };
        // A poisoned lock only means another query panicked; the map is still whole.
        let cached = self.lru.lock().unwrap_or_else(|p| p.into_inner()).get(key);
        cached.unwrap_or_else(|| {
            let terms = Arc::new(choose_terms(index, title, body, options));
            self.lru
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .put(key, Arc::clone(&terms));
            terms
        })
    }
}

/// Documents holding `token` in `field`, read from the term dictionaries (a lookup per segment;
/// deleted documents still count, which is close enough for an idf).
fn doc_freq(searcher: &tantivy::Searcher, field: Field, token: &str) -> u64 {
    let term = Term::from_field_text(field, token);
    searcher
        .segment_readers()
        .iter()
        .filter_map(|reader| reader.inverted_index(field).ok())
        .filter_map(|inverted| inverted.doc_freq(&term).ok())
        .map(u64::from)
        .sum()
}

/// Names each stemmed term by the first word of the posting that analyses to it.
fn surface_words(
    index: &KeywordIndex,
    chosen: &[WeightedTerm],
    title: &str,
    body: &str,
) -> HashMap<(TermField, String), String> {
    let mut missing: HashMap<&str, ()> = chosen
        .iter()
        .filter(|t| t.field == TermField::Text)
        .map(|t| (t.token.as_str(), ()))
        .collect();
    let mut found = HashMap::new();
    let words = title
        .split(|c: char| !c.is_alphanumeric())
        .chain(body.split(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .take(SURFACE_SCAN_WORDS);
    for word in words {
        if missing.is_empty() {
            break;
        }
        let tokens = index.analyze_query(index.fields().text, word);
        if let [token] = tokens.as_slice()
            && missing.remove(token.as_str()).is_some()
        {
            found.insert((TermField::Text, token.clone()), word.to_lowercase());
        }
    }
    found
}

fn field_of(index: &KeywordIndex, field: TermField) -> Field {
    match field {
        TermField::Text => index.fields().text,
        TermField::Exact => index.fields().exact,
    }
}

/// Builds the weighted OR query of the terms, intersected with the keyword filter if any.
///
/// Returns `None` when there are no terms: nothing can match on the keyword side.
fn build_query(
    index: &KeywordIndex,
    terms: &[QueryTerm],
    filter: Option<Box<dyn Query>>,
) -> Option<Box<dyn Query>> {
    if terms.is_empty() {
        return None;
    }
    let clauses: Vec<(Occur, Box<dyn Query>)> = clauses(index, terms)
        .into_iter()
        .map(|clause| (Occur::Should, boosted(clause.term, clause.boost)))
        .collect();
    let weighted: Box<dyn Query> = Box::new(BooleanQuery::new(clauses));
    Some(match filter {
        None => weighted,
        Some(filter) => Box::new(BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(ConstScoreQuery::new(filter, 0.0)) as Box<dyn Query>,
            ),
            (Occur::Must, weighted),
        ])),
    })
}

/// One weighted clause of the query.
struct Clause {
    term: Term,
    boost: f32,
    /// The index of the query term when this is the term in its own field (what
    /// [`matched_terms`] looks at); `None` for the title-field copy.
    own: Option<usize>,
}

/// The weighted clauses of the query: each term in its field, and a text term in the title
/// field as well, boosted by [`TITLE_FIELD_BOOST`].
fn clauses(index: &KeywordIndex, terms: &[QueryTerm]) -> Vec<Clause> {
    let fields = index.fields();
    let mut clauses = Vec::with_capacity(terms.len() * 2);
    for (i, QueryTerm { term, .. }) in terms.iter().enumerate() {
        let field = field_of(index, term.field);
        clauses.push(Clause {
            term: Term::from_field_text(field, &term.token),
            boost: term.boost,
            own: Some(i),
        });
        if term.field == TermField::Text {
            clauses.push(Clause {
                term: Term::from_field_text(fields.title, &term.token),
                boost: term.boost * TITLE_FIELD_BOOST,
                own: None,
            });
        }
    }
    clauses
}

/// Most query terms whose matches the term-at-a-time search records (one bit each).
const MAX_RECORDED_TERMS: usize = 32;

/// Which query terms each document of the index contains, recorded by the term-at-a-time
/// search while it scores, so explaining a hit needs no further posting lookups.
#[derive(Debug, Clone, Default)]
pub struct TermMatches {
    /// Per segment, per document: bit `t` is set when the document holds query term `t`.
    masks: Vec<Vec<u32>>,
}

impl TermMatches {
    /// The indexes of the query terms `doc` contains, in order.
    pub fn of(&self, doc: DocAddress) -> Vec<usize> {
        let mask = self
            .masks
            .get(doc.segment_ord as usize)
            .and_then(|masks| masks.get(doc.doc_id as usize))
            .copied()
            .unwrap_or(0);
        (0..MAX_RECORDED_TERMS)
            .filter(|t| mask & (1 << t) != 0)
            .collect()
    }
}

/// What the keyword side found.
#[derive(Debug, Clone, Default)]
pub struct KeywordResult {
    /// The best allowed hits, best first.
    pub hits: Vec<KeywordHit>,
    /// The terms every document contains, when the search recorded them.
    pub matches: Option<TermMatches>,
}

/// The [`KeywordCollector::TermAtATime`] search: for each segment, every clause's postings
/// add `boost * BM25` into a dense score array (the weights are tantivy's, from the same
/// index-wide statistics, so the scores are those of the `BooleanQuery`) and set the term's
/// bit in the document's mask; then the best live, allowed documents are kept. Postings are
/// read block by block, with no merging of posting lists and no dispatch per document.
fn term_at_a_time(
    index: &KeywordIndex,
    terms: &[QueryTerm],
    allowed: &Allowed,
    depth: usize,
) -> Result<KeywordResult, Error> {
    if depth == 0 || terms.is_empty() {
        return Ok(KeywordResult::default());
    }
    let searcher = index.searcher();
    let record = terms.len() <= MAX_RECORDED_TERMS;
    let weighted: Vec<(Clause, Bm25Weight)> = clauses(index, terms)
        .into_iter()
        .map(|clause| {
            let weight = Bm25Weight::for_terms(&searcher, std::slice::from_ref(&clause.term))?;
            let boost = clause.boost;
            Ok((clause, weight.boost_by(boost)))
        })
        .collect::<tantivy::Result<_>>()
        .map_err(Error::keyword)?;
    let ordinal_field = ordinal_field_name(index);
    // Segments are scored in parallel: a thread that finished its side of the query (or
    // another segment) takes the next one.
    let per_segment: Vec<(Vec<Ranked>, Vec<u32>)> = searcher
        .segment_readers()
        .par_iter()
        .enumerate()
        .map(|(segment, reader)| {
            let segment = segment as SegmentOrdinal;
            let scan = SegmentScan {
                weighted: &weighted,
                ordinal_field: &ordinal_field,
                allowed,
                depth,
                record,
            };
            scan.run(segment, reader)
        })
        .collect::<Result<_, Error>>()?;
    let mut hits: Vec<Ranked> = Vec::with_capacity(depth * per_segment.len());
    let mut matches = TermMatches::default();
    for (best, masks) in per_segment {
        hits.extend(best);
        matches.masks.push(masks);
    }
    hits.sort_unstable_by(|a, b| b.cmp(a));
    hits.truncate(depth);
    Ok(KeywordResult {
        hits: hits.into_iter().map(|r| r.0).collect(),
        matches: record.then_some(matches),
    })
}

/// The term-at-a-time scoring of one segment.
struct SegmentScan<'a> {
    weighted: &'a [(Clause, Bm25Weight)],
    ordinal_field: &'a str,
    allowed: &'a Allowed,
    depth: usize,
    /// Whether to keep each document's mask of matched terms.
    record: bool,
}

impl SegmentScan<'_> {
    /// The segment's `depth` best live, allowed documents, and the term masks of all its
    /// documents (empty unless recording).
    fn run(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> Result<(Vec<Ranked>, Vec<u32>), Error> {
        // Per document: the score so far and the bits of the terms seen, side by side.
        let mut acc: Vec<(Score, u32)> = vec![(0.0, 0); reader.max_doc() as usize];
        for (clause, weight) in self.weighted {
            let bit = match clause.own {
                Some(t) if self.record => 1u32 << t,
                _ => 0,
            };
            let field = clause.term.field();
            let inverted = reader.inverted_index(field).map_err(Error::keyword)?;
            let postings = inverted
                .read_block_postings(&clause.term, IndexRecordOption::WithFreqs)
                .map_err(|e| Error::keyword(e.into()))?;
            let Some(mut postings) = postings else {
                continue;
            };
            let norms = match reader
                .fieldnorms_readers()
                .get_field(field)
                .map_err(Error::keyword)?
            {
                Some(norms) => norms,
                None => FieldNormReader::constant(reader.max_doc(), 1),
            };
            while !postings.docs().is_empty() {
                for (&doc, &freq) in postings.docs().iter().zip(postings.freqs()) {
                    if let Some((total, mask)) = acc.get_mut(doc as usize) {
                        *total += weight.score(norms.fieldnorm_id(doc), freq);
                        *mask |= bit;
                    }
                }
                postings.advance();
            }
        }
        let ordinals = reader
            .fast_fields()
            .u64(self.ordinal_field)
            .map_err(Error::keyword)?;
        let alive = reader.alive_bitset();
        let depth = self.depth;
        let mut heap: BinaryHeap<Reverse<Ranked>> = BinaryHeap::with_capacity(depth + 1);
        for (doc, &(score, _)) in acc.iter().enumerate() {
            if score <= 0.0
                || (heap.len() >= depth && heap.peek().is_some_and(|Reverse(w)| score <= w.0.score))
            {
                continue;
            }
            let doc = doc as DocId;
            if alive.is_some_and(|bits| !bits.is_alive(doc)) {
                continue;
            }
            let Some(ordinal) = ordinals.first(doc) else {
                continue;
            };
            let ordinal = ordinal as u32;
            if !self.allowed.contains(ordinal) {
                continue;
            }
            heap.push(Reverse(Ranked(KeywordHit {
                ordinal,
                score,
                doc: DocAddress::new(segment, doc),
            })));
            if heap.len() > depth {
                heap.pop();
            }
        }
        let masks = if self.record {
            acc.into_iter().map(|(_, mask)| mask).collect()
        } else {
            Vec::new()
        };
        Ok((heap.into_iter().map(|Reverse(r)| r).collect(), masks))
    }
}

fn boosted(term: Term, boost: f32) -> Box<dyn Query> {
    let query = Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
    Box::new(BoostQuery::new(query, boost))
}

/// Runs the weighted query of `terms` and returns the `depth` best allowed hits, best first.
///
/// `allowed` must already exclude what the keyword filter rejects: the term-at-a-time path
/// scores the terms alone, and the tantivy paths intersect `filter` as well.
pub fn search(
    index: &KeywordIndex,
    terms: &[QueryTerm],
    filter: Option<Box<dyn Query>>,
    allowed: &Arc<Allowed>,
    depth: usize,
    collector: KeywordCollector,
) -> Result<KeywordResult, Error> {
    let wand = match collector {
        KeywordCollector::TermAtATime => return term_at_a_time(index, terms, allowed, depth),
        KeywordCollector::Exhaustive => false,
        KeywordCollector::TopDocsWand => true,
    };
    let Some(query) = build_query(index, terms, filter) else {
        return Ok(KeywordResult::default());
    };
    let query = query.as_ref();
    let searcher = index.searcher();
    let mut hits = if wand {
        // WAND cannot see the row filters: over-fetch, then filter.
        let fetch = if allowed.is_everything() {
            depth
        } else {
            depth.saturating_mul(4)
        };
        let top = searcher
            .search(query, &TopDocs::with_limit(fetch.max(1)).order_by_score())
            .map_err(Error::keyword)?;
        top.into_iter()
            .map(|(score, doc)| KeywordHit {
                ordinal: index.ordinal_of(doc),
                score,
                doc,
            })
            .filter(|hit| allowed.contains(hit.ordinal))
            .collect()
    } else {
        let collector = FilteredTopK {
            depth,
            allowed: Arc::clone(allowed),
            ordinal_field: ordinal_field_name(index),
        };
        searcher.search(query, &collector).map_err(Error::keyword)?
    };
    hits.truncate(depth);
    Ok(KeywordResult {
        hits,
        matches: None,
    })
}

fn ordinal_field_name(index: &KeywordIndex) -> String {
    index
        .searcher()
        .schema()
        .get_field_name(index.fields().ordinal)
        .to_owned()
}

/// The ordinals of the rows a keyword filter query matches.
pub fn matching_ordinals(
    index: &KeywordIndex,
    filter: &dyn Query,
    rows: usize,
) -> Result<Allowed, Error> {
    let collector = OrdinalSet {
        rows,
        ordinal_field: ordinal_field_name(index),
    };
    let parts = index
        .searcher()
        .search(filter, &collector)
        .map_err(Error::keyword)?;
    let mut set = Allowed::none(rows);
    for ordinals in parts {
        for ordinal in ordinals {
            set.insert(ordinal);
        }
    }
    Ok(set)
}

/// For each document, the indexes of the terms that its indexed text really contains.
pub fn matched_terms(
    index: &KeywordIndex,
    docs: &[DocAddress],
    terms: &[QueryTerm],
) -> Result<Vec<Vec<usize>>, Error> {
    let searcher = index.searcher();
    let mut matched = vec![Vec::new(); docs.len()];
    let mut by_segment: HashMap<SegmentOrdinal, Vec<(DocId, usize)>> = HashMap::new();
    for (i, doc) in docs.iter().enumerate() {
        by_segment
            .entry(doc.segment_ord)
            .or_default()
            .push((doc.doc_id, i));
    }
    for (segment, mut docs) in by_segment {
        docs.sort_unstable();
        let reader = searcher.segment_reader(segment);
        for (t, QueryTerm { term, .. }) in terms.iter().enumerate() {
            let field = field_of(index, term.field);
            let inverted = reader.inverted_index(field).map_err(Error::keyword)?;
            let postings = inverted
                .read_postings(
                    &Term::from_field_text(field, &term.token),
                    IndexRecordOption::Basic,
                )
                .map_err(|e| Error::keyword(e.into()))?;
            let Some(mut postings) = postings else {
                continue;
            };
            for &(doc, i) in &docs {
                if postings.doc() > doc {
                    continue;
                }
                if postings.seek(doc) == doc {
                    matched[i].push(t);
                }
            }
        }
    }
    Ok(matched)
}

/// The keyword-index address of the document of each ordinal (via the indexed ordinal field).
pub fn doc_addresses(
    index: &KeywordIndex,
    ordinals: &[u32],
) -> Result<Vec<Option<DocAddress>>, Error> {
    let searcher = index.searcher();
    let field = index.fields().ordinal;
    let mut out = vec![None; ordinals.len()];
    for (segment, reader) in searcher.segment_readers().iter().enumerate() {
        let inverted = reader.inverted_index(field).map_err(Error::keyword)?;
        for (i, &ordinal) in ordinals.iter().enumerate() {
            if out[i].is_some() {
                continue;
            }
            let term = Term::from_field_u64(field, u64::from(ordinal));
            let postings = inverted
                .read_postings(&term, IndexRecordOption::Basic)
                .map_err(|e| Error::keyword(e.into()))?;
            if let Some(postings) = postings {
                let doc = postings.doc();
                let alive = reader.alive_bitset().is_none_or(|bits| bits.is_alive(doc));
                if doc != tantivy::TERMINATED && alive {
                    out[i] = Some(DocAddress::new(segment as SegmentOrdinal, doc));
                }
            }
        }
    }
    Ok(out)
}

/// Scores every matching document and keeps the best `depth` allowed ones.
struct FilteredTopK {
    depth: usize,
    allowed: Arc<Allowed>,
    ordinal_field: String,
}

/// A heap entry ordered by score, then by ordinal (lower ordinal wins a tie).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ranked(KeywordHit);

impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .score
            .total_cmp(&other.0.score)
            .then_with(|| other.0.ordinal.cmp(&self.0.ordinal))
    }
}

struct FilteredTopKSegment {
    segment: SegmentOrdinal,
    depth: usize,
    allowed: Arc<Allowed>,
    ordinals: Column<u64>,
    heap: BinaryHeap<Reverse<Ranked>>,
}

impl Collector for FilteredTopK {
    type Fruit = Vec<KeywordHit>;
    type Child = FilteredTopKSegment;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(FilteredTopKSegment {
            segment,
            depth: self.depth,
            allowed: Arc::clone(&self.allowed),
            ordinals: reader.fast_fields().u64(&self.ordinal_field)?,
            heap: BinaryHeap::with_capacity(self.depth + 1),
        })
    }

    fn requires_scoring(&self) -> bool {
        true
    }

    fn merge_fruits(&self, fruits: Vec<Vec<KeywordHit>>) -> tantivy::Result<Vec<KeywordHit>> {
        let mut all: Vec<Ranked> = fruits.into_iter().flatten().map(Ranked).collect();
        all.sort_unstable_by(|a, b| b.cmp(a));
        all.truncate(self.depth);
        Ok(all.into_iter().map(|r| r.0).collect())
    }
}

impl SegmentCollector for FilteredTopKSegment {
    type Fruit = Vec<KeywordHit>;

    fn collect(&mut self, doc: DocId, score: Score) {
        if self.depth == 0 {
            return;
        }
        if let Some(Reverse(worst)) = self.heap.peek()
            && self.heap.len() >= self.depth
            && score <= worst.0.score
        {
            return;
        }
        let Some(ordinal) = self.ordinals.first(doc) else {
            return;
        };
        let ordinal = ordinal as u32;
        if !self.allowed.contains(ordinal) {
            return;
        }
        let hit = KeywordHit {
            ordinal,
            score,
            doc: DocAddress::new(self.segment, doc),
        };
        self.heap.push(Reverse(Ranked(hit)));
        if self.heap.len() > self.depth {
            self.heap.pop();
        }
    }

    fn harvest(self) -> Vec<KeywordHit> {
        self.heap.into_iter().map(|Reverse(r)| r.0).collect()
    }
}

/// Collects the ordinals of all matching documents, without scoring.
struct OrdinalSet {
    rows: usize,
    ordinal_field: String,
}

struct OrdinalSetSegment {
    rows: usize,
    ordinals: Column<u64>,
    found: Vec<u32>,
}

impl Collector for OrdinalSet {
    type Fruit = Vec<Vec<u32>>;
    type Child = OrdinalSetSegment;

    fn for_segment(
        &self,
        _segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<Self::Child> {
        Ok(OrdinalSetSegment {
            rows: self.rows,
            ordinals: reader.fast_fields().u64(&self.ordinal_field)?,
            found: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<u32>>) -> tantivy::Result<Vec<Vec<u32>>> {
        Ok(fruits)
    }
}

impl SegmentCollector for OrdinalSetSegment {
    type Fruit = Vec<u32>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(ordinal) = self.ordinals.first(doc)
            && (ordinal as usize) < self.rows
        {
            self.found.push(ordinal as u32);
        }
    }

    fn harvest(self) -> Vec<u32> {
        self.found
    }
}
