//! The keyword side of a query: weighted terms of the posting as one tantivy `BooleanQuery`,
//! restricted by the optional Boolean keyword filter and the row filters, collected top-k.
//!
//! Free text is never parsed as query syntax: the query is built from analysed terms with
//! `TermQuery`. Only the user's keyword filter goes through `KeywordIndex::parse_boolean`.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, BoostQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, DocSet, Score, SegmentOrdinal, SegmentReader, Term};

use crate::index::KeywordIndex;

use super::Error;
use super::allowed::Allowed;
use super::terms::{self, AnalyzedText, TermField, TermOptions, WeightedTerm};

/// How much a term found in the title field adds, relative to the prose field.
const TITLE_FIELD_BOOST: f32 = 1.5;
/// At most this many words of a posting are scanned to name a stemmed term by a word.
const SURFACE_SCAN_WORDS: usize = 4_000;

/// How the keyword side collects its top hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeywordCollector {
    /// A custom collector that scores every matching document and keeps a top-k heap, checking
    /// the filters while collecting. Measured faster for long OR queries (see benches/search.rs).
    #[default]
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
    let title_clean = terms::without_stop_words(title);
    let body_clean = terms::without_stop_words(body);
    let analyze = |field: Field| {
        let title_tokens = index.analyze(field, &title_clean);
        let mut all = title_tokens.clone();
        all.extend(index.analyze(field, &body_clean));
        AnalyzedText {
            title: title_tokens,
            all,
        }
    };
    let searcher = index.searcher();
    let text = analyze(fields.text);
    let exact = analyze(fields.exact);
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
        let tokens = index.analyze(index.fields().text, word);
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
pub fn build_query(
    index: &KeywordIndex,
    terms: &[QueryTerm],
    filter: Option<Box<dyn Query>>,
) -> Option<Box<dyn Query>> {
    if terms.is_empty() {
        return None;
    }
    let fields = index.fields();
    let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 2);
    for QueryTerm { term, .. } in terms {
        let field = field_of(index, term.field);
        clauses.push((
            Occur::Should,
            boosted(Term::from_field_text(field, &term.token), term.boost),
        ));
        if term.field == TermField::Text {
            let title = Term::from_field_text(fields.title, &term.token);
            clauses.push((
                Occur::Should,
                boosted(title, term.boost * TITLE_FIELD_BOOST),
            ));
        }
    }
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

fn boosted(term: Term, boost: f32) -> Box<dyn Query> {
    let query = Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs));
    Box::new(BoostQuery::new(query, boost))
}

/// Runs the keyword query and returns the `depth` best allowed hits, best first.
pub fn search(
    index: &KeywordIndex,
    query: &dyn Query,
    allowed: &Arc<Allowed>,
    depth: usize,
    collector: KeywordCollector,
) -> Result<Vec<KeywordHit>, Error> {
    let searcher = index.searcher();
    let mut hits = match collector {
        KeywordCollector::Exhaustive => {
            let collector = FilteredTopK {
                depth,
                allowed: Arc::clone(allowed),
                ordinal_field: ordinal_field_name(index),
            };
            searcher.search(query, &collector).map_err(Error::keyword)?
        }
        KeywordCollector::TopDocsWand => {
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
        }
    };
    hits.truncate(depth);
    Ok(hits)
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
