//! The reasons shown with each result: keyword rank with the matched terms and a highlighted
//! snippet, semantic rank with the best passage, and the person's history from the store.
//!
//! Everything here is read from the data (the index postings, the passage text, the stored
//! candidate); nothing is invented. The snippet is a window of the candidate's own text.

use std::borrow::Cow;

use crate::domain::{ArchiveReasonType, Candidate, Millis, ReferenceData};
use crate::index::{ChunkKind, analysis};

use super::terms::TermField;

/// Words in a snippet window.
const SNIPPET_WORDS: usize = 32;
/// Most bytes of a snippet: a window of long unbroken runs (a table or base64 from a PDF) is
/// narrowed to its matches, then cut.
const SNIPPET_MAX_BYTES: usize = 480;
/// Only this many bytes of a candidate's text are scanned for a snippet.
const SNIPPET_SCAN_BYTES: usize = 60_000;

/// Why a result was ranked where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The keyword side's view; `None` when the keyword side did not rank it.
    pub keyword: Option<KeywordReason>,
    /// The semantic side's view; `None` when the semantic side did not rank it.
    pub semantic: Option<SemanticReason>,
    /// Terms of the query that occur in the opportunity's indexed text (whatever the side).
    pub matched_terms: Vec<MatchedTerm>,
    /// A window of the candidate's text with the matched terms highlighted.
    pub snippet: Option<Snippet>,
    /// What happened with this person so far.
    pub history: History,
    /// What happened on the person's most recently active other opportunities (at most
    /// [`MAX_OTHER_HISTORIES`](super::MAX_OTHER_HISTORIES)), most recent first: the latest outcome
    /// may be there (withdrawn last month, hired since) rather than on the best-matching one.
    pub other_histories: Vec<OtherHistory>,
}

/// The history of one of the person's other opportunities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherHistory {
    /// The other opportunity.
    pub opportunity_id: String,
    /// What happened there.
    pub history: History,
}

/// Keyword-side provenance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeywordReason {
    /// Rank on the keyword side, from 1.
    pub rank: u32,
    /// BM25 score of the weighted query.
    pub score: f32,
}

/// A query term found in the candidate's indexed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedTerm {
    /// The word of the query, as the user wrote it (lowercased).
    pub word: String,
    /// The analysed token that matched in the index.
    pub token: String,
    /// Whether it matched in the exact-token field (`c++`) rather than the prose field.
    pub exact: bool,
}

/// Semantic-side provenance.
#[derive(Debug, Clone, PartialEq)]
pub struct SemanticReason {
    /// Rank on the semantic side, from 1.
    pub rank: u32,
    /// Cosine similarity of the best passage to the query.
    pub similarity: f32,
    /// The best matching passage, verbatim from the candidate's text.
    pub passage: String,
    /// Where the passage comes from.
    pub passage_source: PassageSource,
}

/// Where a passage was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassageSource {
    /// The profile (headline, positions, schools, tags).
    Profile,
    /// The resume text.
    Resume,
    /// A note or feedback.
    Note,
}

impl From<&ChunkKind> for PassageSource {
    fn from(kind: &ChunkKind) -> Self {
        match kind {
            ChunkKind::Profile => PassageSource::Profile,
            ChunkKind::Resume => PassageSource::Resume,
            ChunkKind::Note => PassageSource::Note,
        }
    }
}

/// A window of text with highlighted byte ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snippet {
    /// The text of the window.
    pub text: String,
    /// Byte ranges `[start, end)` of `text` to highlight.
    pub highlights: Vec<(usize, usize)>,
}

/// The person's history on this opportunity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct History {
    /// Name of the current stage.
    pub current_stage: Option<String>,
    /// Names of the stages reached, in pipeline order.
    pub stages_reached: Vec<String>,
    /// Why and when the opportunity was archived; `None` while active.
    pub archived: Option<ArchiveInfo>,
    /// Last activity on the profile.
    pub last_interaction_at: Option<Millis>,
    /// When the opportunity was created.
    pub created_at: Millis,
    /// Overall feedback ratings (1 strong no hire to 4 strong hire), oldest form first.
    pub feedback_ratings: Vec<u8>,
    /// How many note threads the opportunity has.
    pub notes: usize,
    /// Titles of the postings the opportunity applied to.
    pub applied_to: Vec<String>,
    /// The Lever profile link (`urls.show`).
    pub profile_url: String,
}

impl History {
    /// When anything last happened on the opportunity: its last interaction, its archiving or
    /// its creation, whichever is latest.
    pub fn last_activity_at(&self) -> Millis {
        let archived = self.archived.as_ref().map(|a| a.archived_at);
        [Some(self.created_at), self.last_interaction_at, archived]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.created_at)
    }
}

/// An archive reason as shown to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveInfo {
    /// The reason's text, or its id if unknown to the reference data.
    pub reason: String,
    /// Whether it is a hired-type reason.
    pub hired: bool,
    /// When the opportunity was archived.
    pub archived_at: Millis,
}

/// The history of an opportunity, read from the stored candidate and the reference data.
pub fn history(candidate: &Candidate, reference: &ReferenceData) -> History {
    let mut reached: Vec<(usize, String)> = Vec::new();
    let mut note_stage = |id: &str, fallback: u32| {
        let order = reference.stage_order(id).unwrap_or(fallback as usize);
        let name = reference
            .stage(id)
            .map_or_else(|| id.to_owned(), |s| s.text.clone());
        if !reached.iter().any(|(_, n)| *n == name) {
            reached.push((order, name));
        }
    };
    for change in &candidate.stage_changes {
        note_stage(&change.to_stage_id, change.to_stage_index);
    }
    if !candidate.stage_id.is_empty() {
        note_stage(&candidate.stage_id, u32::MAX);
    }
    reached.sort_by_key(|(order, _)| *order);
    let mut feedback: Vec<_> = candidate
        .feedback
        .iter()
        .filter(|f| f.rating.is_some())
        .collect();
    feedback.sort_by_key(|f| f.completed_at.unwrap_or(f.created_at));
    History {
        current_stage: reference.stage(&candidate.stage_id).map(|s| s.text.clone()),
        stages_reached: reached.into_iter().map(|(_, name)| name).collect(),
        archived: candidate.archived.as_ref().map(|a| {
            let reason = reference.archive_reason(&a.reason_id);
            ArchiveInfo {
                reason: match reason {
                    Some(r) => r.text.clone(),
                    None if a.reason_id.is_empty() => "reason unknown".to_owned(),
                    None => a.reason_id.clone(),
                },
                hired: reason.is_some_and(|r| r.reason_type == ArchiveReasonType::Hired),
                archived_at: a.archived_at,
            }
        }),
        last_interaction_at: candidate.last_interaction_at,
        created_at: candidate.created_at,
        feedback_ratings: feedback.iter().filter_map(|f| f.rating).collect(),
        notes: candidate.notes.len(),
        applied_to: candidate
            .posting_ids
            .iter()
            .filter_map(|id| reference.posting(id).map(|p| p.title.clone()))
            .collect(),
        profile_url: candidate.profile_url.clone(),
    }
}

/// The text a snippet is cut from: the resume when there is one, else the profile and notes.
pub fn snippet_source(candidate: &Candidate) -> Cow<'_, str> {
    if let Some(resume) = candidate.resume_text() {
        return Cow::Borrowed(resume);
    }
    let mut text = candidate.headline.trim().to_owned();
    // Pieces join as sentences, without doubling a full stop a piece already ends with.
    let mut sentence = |piece: &str| {
        let piece = piece.trim();
        if piece.is_empty() {
            return;
        }
        if !text.is_empty() {
            if !text.ends_with(['.', '!', '?']) {
                text.push('.');
            }
            text.push(' ');
        }
        text.push_str(piece);
    };
    for resume in &candidate.resumes {
        for p in &resume.positions {
            sentence(&match (p.title.trim(), p.org.trim()) {
                (title, "") | ("", title) => title.to_owned(),
                (title, org) => format!("{title} at {org}"),
            });
            sentence(&p.summary);
        }
    }
    for note in &candidate.notes {
        for comment in &note.comments {
            sentence(comment);
        }
    }
    Cow::Owned(text)
}

/// Finds the window of `text` holding the most distinct matched terms and highlights them.
///
/// A prose term (a stem) matches a word that starts with it; an exact term matches a word equal
/// to it once surrounding punctuation is trimmed. Returns `None` when nothing matches.
pub fn snippet(text: &str, terms: &[MatchedTerm]) -> Option<Snippet> {
    if terms.is_empty() {
        return None;
    }
    let scan = &text[..floor_char_boundary(text, SNIPPET_SCAN_BYTES)];
    let words: Vec<(usize, usize)> = word_spans(scan);
    let hits: Vec<Option<usize>> = words
        .iter()
        .map(|&(s, e)| {
            let dotted = s > 0 && scan.as_bytes()[s - 1] == b'.';
            matching_term(&scan[s..e], dotted, terms)
        })
        .collect();
    let (mut best_start, mut best_count) = (None, 0usize);
    let mut counts = vec![0u32; terms.len()];
    let mut distinct = 0usize;
    for i in 0..words.len() {
        if let Some(t) = hits[i] {
            counts[t] += 1;
            if counts[t] == 1 {
                distinct += 1;
            }
        }
        if i >= SNIPPET_WORDS
            && let Some(t) = hits[i - SNIPPET_WORDS]
        {
            counts[t] -= 1;
            if counts[t] == 0 {
                distinct -= 1;
            }
        }
        if distinct > best_count {
            best_count = distinct;
            best_start = Some((i + 1).saturating_sub(SNIPPET_WORDS));
        }
    }
    let mut first = best_start?;
    let mut last = (first + SNIPPET_WORDS).min(words.len()) - 1;
    // Narrow an overlong window from its ends towards the matches it holds.
    while words[last].1 - words[first].0 > SNIPPET_MAX_BYTES && first < last {
        if hits[first].is_none() {
            first += 1;
        } else if hits[last].is_none() {
            last -= 1;
        } else {
            break;
        }
    }
    let start = words[first].0;
    let end = floor_char_boundary(scan, words[last].1.min(start + SNIPPET_MAX_BYTES));
    let highlights = (first..=last)
        .filter(|&i| hits[i].is_some() && words[i].1 <= end)
        .map(|i| (words[i].0 - start, words[i].1 - start))
        .collect();
    Some(Snippet {
        text: scan[start..end].to_owned(),
        highlights,
    })
}

/// Byte spans of the whitespace-separated words, punctuation trimmed (but `+` and `#` kept).
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text
        .char_indices()
        .chain(std::iter::once((text.len(), ' ')))
    {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                let word = &text[s..i];
                let trimmed =
                    word.trim_matches(|c: char| !(c.is_alphanumeric() || c == '+' || c == '#'));
                if !trimmed.is_empty() {
                    let offset = word.find(trimmed).unwrap_or(0);
                    spans.push((s + offset, s + offset + trimmed.len()));
                }
                start = None;
            }
            _ => {}
        }
    }
    spans
}

fn matching_term(word: &str, dotted: bool, terms: &[MatchedTerm]) -> Option<usize> {
    // A stem is usually the start of its words, but not always: `reliability` stems to
    // `reliabl`. A word that shares a stem's first letters is stemmed to be sure (once).
    let stemmed = std::cell::OnceCell::new();
    let stems_to = |word: &str, token: &str| {
        let (w, t) = (word.as_bytes(), token.as_bytes());
        w.len() >= 3
            && t.len() >= 3
            && w[..3].eq_ignore_ascii_case(&t[..3])
            && stemmed.get_or_init(|| analysis::stem(&word.to_lowercase())) == token
    };
    if word.is_ascii() {
        // The common case, compared in place: tokens are lower case already.
        let bytes = word.as_bytes();
        return terms.iter().position(|t| {
            let token = t.token.as_bytes();
            if t.exact {
                exact_match(word, dotted, &t.token)
            } else {
                (bytes.len() >= token.len()
                    && bytes[..token.len()].eq_ignore_ascii_case(token)
                    && bytes[token.len()..].iter().all(u8::is_ascii_alphanumeric))
                    || stems_to(word, &t.token)
            }
        });
    }
    // As the index saw it: NFC, lower case, accents folded (`Müller` is `muller`).
    let folded = analysis::fold(word);
    terms.iter().position(|t| {
        if t.exact {
            exact_match(&folded, dotted, &t.token)
        } else {
            (folded.starts_with(&t.token)
                && folded[t.token.len()..].chars().all(char::is_alphanumeric))
                || stems_to(&folded, &t.token)
        }
    })
}

/// Whether a word (ASCII case aside) is an exact token, or that token with a version (`C++17`
/// for `c++`, which the index holds as both). A token's leading `.` (`.net`) is not compared:
/// words are cut without it.
/// Whether `word` (its leading `.` trimmed; `dotted` when the text has one before it) is the
/// exact token `token` or a version of it. A token led by `.` (`.net`) needs that dot: "net
/// revenue" is not `.NET`.
fn exact_match(word: &str, dotted: bool, token: &str) -> bool {
    let (token, needs_dot) = match token.strip_prefix('.') {
        Some(rest) => (rest, true),
        None => (token, false),
    };
    let word = word.strip_prefix('.').unwrap_or(word);
    (dotted || !needs_dot)
        && (word.eq_ignore_ascii_case(token) || analysis::is_versioned(word, token))
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    if at >= text.len() {
        return text.len();
    }
    (0..=at)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0)
}

/// Converts a term field to the `exact` flag of a matched term.
pub fn is_exact(field: TermField) -> bool {
    field == TermField::Exact
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ArchiveReason, Archived, Feedback, Note, Stage, StageChange};

    fn term(token: &str, exact: bool) -> MatchedTerm {
        MatchedTerm {
            word: token.into(),
            token: token.into(),
            exact,
        }
    }

    #[test]
    fn snippet_picks_the_densest_window_and_highlights_matches() {
        let filler = "lorem ipsum ".repeat(40);
        let text = format!("{filler} Built backend services in Rust with tokio, C++ too. {filler}");
        let s = snippet(
            &text,
            &[
                term("rust", false),
                term("backend", false),
                term("c++", true),
            ],
        )
        .unwrap();
        let marked: Vec<&str> = s.highlights.iter().map(|&(a, b)| &s.text[a..b]).collect();
        assert_eq!(marked, vec!["backend", "Rust", "C++"]);
    }

    #[test]
    fn stems_match_longer_words_only_at_word_start() {
        let s = snippet("an engineering lead; reengineered", &[term("engin", false)]).unwrap();
        let marked: Vec<&str> = s.highlights.iter().map(|&(a, b)| &s.text[a..b]).collect();
        assert_eq!(marked, vec!["engineering"]);
    }

    #[test]
    fn a_window_of_long_runs_is_narrowed_to_its_matches_and_cut() {
        let blob = "QUJD".repeat(1_500);
        for text in [
            format!("{blob} Kubernetes operators {blob} {blob}"),
            format!("Kubernetes {blob} operators"),
            format!("{blob}é{blob} Kubernetes"),
        ] {
            let s = snippet(
                &text,
                &[term("kubernetes", false), term("operators", false)],
            )
            .unwrap();
            assert!(s.text.len() <= SNIPPET_MAX_BYTES, "{} bytes", s.text.len());
            let marked: Vec<&str> = s.highlights.iter().map(|&(a, b)| &s.text[a..b]).collect();
            assert_eq!(marked.first(), Some(&"Kubernetes"), "{marked:?}");
        }
    }

    #[test]
    fn versioned_and_accented_words_are_highlighted_as_written() {
        let text =
            "Entwickler bei Müller GmbH: C++17, C#10 und .NET6; De\u{301}veloppeur à Straße 5.";
        let s = snippet(
            text,
            &[
                term("muller", false),
                term("c++", true),
                term("c#", true),
                term(".net", true),
                term("developp", false),
                term("strass", false),
            ],
        )
        .unwrap();
        let marked: Vec<&str> = s.highlights.iter().map(|&(a, b)| &s.text[a..b]).collect();
        assert_eq!(
            marked,
            vec![
                "Müller",
                "C++17",
                "C#10",
                "NET6",
                "De\u{301}veloppeur",
                "Straße"
            ]
        );
        // `.NET` needs its dot: "net revenue" is another word.
        let s = snippet("grew net revenue with .NET", &[term(".net", true)]).unwrap();
        let marked: Vec<&str> = s.highlights.iter().map(|&(a, b)| &s.text[a..b]).collect();
        assert_eq!(marked, ["NET"]);
        assert_eq!(&s.text[s.highlights[0].0 - 1..s.highlights[0].0], ".");
        // An exact token is not matched by a longer word that is not a version of it.
        assert!(snippet("C++x and C", &[term("c++", true)]).is_none());
    }

    #[test]
    fn a_profile_snippet_source_reads_as_sentences() {
        let candidate = Candidate {
            headline: "Led platform teams.".into(),
            resumes: vec![crate::domain::Resume {
                positions: vec![
                    crate::domain::Position {
                        title: "Engineer".into(),
                        org: "Acme".into(),
                        summary: "Built APIs.".into(),
                        ..Default::default()
                    },
                    crate::domain::Position {
                        title: "Intern".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Candidate::default()
        };
        assert_eq!(
            snippet_source(&candidate),
            "Led platform teams. Engineer at Acme. Built APIs. Intern"
        );
    }

    #[test]
    fn words_whose_stem_is_not_their_start_are_highlighted() {
        let s = snippet(
            "Site reliability engineer; scalability work",
            &[term("reliabl", false), term("scalabl", false)],
        )
        .unwrap();
        let marked: Vec<&str> = s.highlights.iter().map(|&(a, b)| &s.text[a..b]).collect();
        assert_eq!(marked, ["reliability", "scalability"]);
    }

    #[test]
    fn no_match_no_snippet() {
        assert!(snippet("nothing here", &[term("rust", false)]).is_none());
        assert!(snippet("nothing here", &[]).is_none());
    }

    #[test]
    fn history_names_stages_archive_ratings_and_notes() {
        let reference = ReferenceData {
            stages: vec![
                Stage {
                    id: "new".into(),
                    text: "New lead".into(),
                },
                Stage {
                    id: "phone".into(),
                    text: "Phone screen".into(),
                },
                Stage {
                    id: "onsite".into(),
                    text: "On-site".into(),
                },
            ],
            archive_reasons: vec![ArchiveReason {
                id: "r1".into(),
                text: "Hired".into(),
                reason_type: ArchiveReasonType::Hired,
                active: true,
            }],
            ..ReferenceData::default()
        };
        let candidate = Candidate {
            stage_id: "phone".into(),
            stage_changes: vec![
                StageChange {
                    to_stage_id: "new".into(),
                    to_stage_index: 0,
                    at: 1,
                },
                StageChange {
                    to_stage_id: "onsite".into(),
                    to_stage_index: 2,
                    at: 2,
                },
                StageChange {
                    to_stage_id: "phone".into(),
                    to_stage_index: 1,
                    at: 3,
                },
            ],
            archived: Some(Archived {
                reason_id: "r1".into(),
                archived_at: 9,
            }),
            feedback: vec![
                Feedback {
                    rating: Some(3),
                    created_at: 5,
                    ..Feedback::default()
                },
                Feedback {
                    rating: None,
                    created_at: 6,
                    ..Feedback::default()
                },
                Feedback {
                    rating: Some(4),
                    created_at: 4,
                    ..Feedback::default()
                },
            ],
            notes: vec![Note::default(), Note::default()],
            profile_url: "https://example.invalid/p/1".into(),
            ..Candidate::default()
        };
        let h = history(&candidate, &reference);
        assert_eq!(
            h.stages_reached,
            vec!["New lead", "Phone screen", "On-site"]
        );
        assert_eq!(h.current_stage.as_deref(), Some("Phone screen"));
        let archived = h.archived.unwrap();
        assert_eq!(
            (
                archived.reason.as_str(),
                archived.hired,
                archived.archived_at
            ),
            ("Hired", true, 9)
        );
        assert_eq!(h.feedback_ratings, vec![4, 3]);
        assert_eq!(h.notes, 2);
        assert_eq!(h.profile_url, "https://example.invalid/p/1");
    }
}
