//! What gets a vector: a profile passage (headline, titles, tags) and passages cut from the
//! resume text and from notes, each a window of at most the model's token limit, with a small
//! overlap so a sentence split by a window edge is whole in one of them.

use serde::{Deserialize, Serialize};

use super::Error;
use super::embed::Embedder;
use crate::domain::Candidate;

/// Tokens shared by two consecutive windows of the same text.
const OVERLAP_TOKENS: usize = 32;
/// Bytes of text per token to tokenize first (English prose runs at 4 to 6); a text that
/// yields fewer tokens is tokenized again from a longer prefix.
const BYTES_PER_TOKEN_GUESS: usize = 16;
/// Most resume windows per candidate: beyond this a resume is mostly repetition and the cost
/// of embedding it dominates the build.
pub const MAX_RESUME_CHUNKS: usize = 12;
/// Most windows per note.
const MAX_NOTE_CHUNKS: usize = 2;

/// Which text a passage comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkKind {
    /// Headline, position titles and employers, tags.
    Profile,
    /// A window of the resume text.
    Resume,
    /// A window of one note thread.
    Note,
}

/// One passage to embed: its kind, its byte range in the source text and the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    /// Source of the text.
    pub kind: ChunkKind,
    /// Byte offset of the passage in its source text.
    pub start: u32,
    /// Byte offset just past the passage in its source text.
    pub end: u32,
    /// The passage text.
    pub text: String,
}

/// The profile text: headline, then "title at employer" per position, then tags.
pub fn profile_text(candidate: &Candidate) -> String {
    let mut parts: Vec<String> = Vec::new();
    if !candidate.headline.trim().is_empty() {
        parts.push(candidate.headline.trim().to_owned());
    }
    let mut roles: Vec<String> = Vec::new();
    for p in candidate.resumes.iter().flat_map(|r| &r.positions) {
        let role = match (p.title.trim(), p.org.trim()) {
            ("", "") => continue,
            (t, "") => t.to_owned(),
            ("", o) => o.to_owned(),
            (t, o) => format!("{t} at {o}"),
        };
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    if !roles.is_empty() {
        parts.push(roles.join("; "));
    }
    if !candidate.tags.is_empty() {
        parts.push(candidate.tags.join(", "));
    }
    parts.join("\n")
}

/// Every passage of a candidate, profile first.
pub fn passages(candidate: &Candidate, embedder: &Embedder) -> Result<Vec<Passage>, Error> {
    let mut out = Vec::new();
    let profile = profile_text(candidate);
    if !profile.is_empty() {
        out.extend(windows(&profile, ChunkKind::Profile, embedder, 1)?);
    }
    if let Some(resume) = candidate.resume_text() {
        out.extend(windows(
            resume,
            ChunkKind::Resume,
            embedder,
            MAX_RESUME_CHUNKS,
        )?);
    }
    for note in &candidate.notes {
        let text = note.comments.join("\n");
        if !text.trim().is_empty() {
            out.extend(windows(&text, ChunkKind::Note, embedder, MAX_NOTE_CHUNKS)?);
        }
    }
    Ok(out)
}

/// Cuts `text` into windows of the model's content length (its limit minus `[CLS]`/`[SEP]`).
fn windows(
    text: &str,
    kind: ChunkKind,
    embedder: &Embedder,
    max_windows: usize,
) -> Result<Vec<Passage>, Error> {
    let width = embedder.max_tokens().saturating_sub(2).max(8);
    let overlap = OVERLAP_TOKENS.min(width / 4);
    // Only the first `max_windows` windows are kept, so only the text they cover is
    // tokenized: a prefix ending at whitespace (where the tokenizer splits anyway, so its
    // tokens are those of the whole text), widened until it holds every token they need. A
    // resume of megabytes would otherwise cost gigabytes of tokenizer memory.
    let needed = max_windows.saturating_sub(1) * (width - overlap) + width;
    let mut cap = needed.saturating_mul(BYTES_PER_TOKEN_GUESS);
    let spans = loop {
        let prefix = prefix_at_whitespace(text, cap);
        let spans = embedder.token_spans(prefix)?;
        if spans.len() >= needed || prefix.len() == text.len() {
            break spans;
        }
        cap = cap.saturating_mul(4);
    };
    Ok(window_ranges(&spans, width, overlap)
        .into_iter()
        .take(max_windows)
        .map(|(start, end)| Passage {
            kind,
            start: start as u32,
            end: end as u32,
            text: text[start..end].to_owned(),
        })
        .collect())
}

/// The longest prefix of `text` of at most `max` bytes that ends just before whitespace (the
/// whole text when it is short enough, or when no whitespace comes early enough).
fn prefix_at_whitespace(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    match text[..end].rfind(char::is_whitespace) {
        Some(cut) if cut > 0 => &text[..cut],
        _ => text,
    }
}

/// Byte ranges of windows of `width` tokens stepping by `width - overlap` tokens.
fn window_ranges(spans: &[(usize, usize)], width: usize, overlap: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let step = width - overlap;
    let mut first = 0;
    while first < spans.len() {
        let last = (first + width).min(spans.len()) - 1;
        out.push((spans[first].0, spans[last].1));
        if last + 1 == spans.len() {
            break;
        }
        first += step;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_overlap_and_cover_everything() {
        let spans: Vec<(usize, usize)> = (0..10).map(|i| (i * 2, i * 2 + 1)).collect();
        let w = window_ranges(&spans, 4, 1);
        assert_eq!(w, vec![(0, 7), (6, 13), (12, 19)]);
    }

    #[test]
    fn a_prefix_ends_before_whitespace_on_a_char_boundary() {
        assert_eq!(prefix_at_whitespace("short", 10), "short");
        assert_eq!(prefix_at_whitespace("one two three", 9), "one two");
        assert_eq!(prefix_at_whitespace("één twee drie", 9), "één");
        assert_eq!(prefix_at_whitespace("é x", 1), "é x");
        assert_eq!(prefix_at_whitespace("nowhitespace", 4), "nowhitespace");
    }

    #[test]
    fn short_text_is_one_window() {
        let spans = vec![(0, 3), (4, 8)];
        assert_eq!(window_ranges(&spans, 254, 32), vec![(0, 8)]);
        assert!(window_ranges(&[], 254, 32).is_empty());
    }

    #[test]
    fn profile_joins_headline_roles_and_tags() {
        let mut c = Candidate {
            headline: "Acme, MIT".into(),
            tags: vec!["rust".into(), "backend".into()],
            ..Candidate::default()
        };
        c.resumes.push(crate::domain::Resume {
            positions: vec![crate::domain::Position {
                org: "Acme".into(),
                title: "Engineer".into(),
                ..Default::default()
            }],
            ..Default::default()
        });
        assert_eq!(
            profile_text(&c),
            "Acme, MIT\nEngineer at Acme\nrust, backend"
        );
    }
}
