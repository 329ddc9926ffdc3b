//! Picks the terms of a long posting that carry weight, for the keyword side of a query.
//!
//! A posting has hundreds of words; sending them all as one OR query is slow and noisy. This
//! module scores each analysed token by `tf * idf` against the index, drops stop words, numbers
//! and tokens the index has never seen, boosts the title's terms and keeps the top few dozen.
//! It is pure: the caller tokenises with the index's own analyser and passes a `doc_freq`
//! closure, so it is testable without an index.

use std::collections::HashMap;

/// The index field a term is looked up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TermField {
    /// The English-stemmed prose field.
    Text,
    /// The exact-token field (`c++`, `c#`, `.net`, `node.js`, `ci/cd`).
    Exact,
}

/// The analysed tokens of a posting for one field, title and body apart.
#[derive(Debug, Clone, Default)]
pub struct AnalyzedText {
    /// Tokens of the title (already stop-word free and analysed by the field's tokenizer).
    pub title: Vec<String>,
    /// Tokens of the title and the body together.
    pub all: Vec<String>,
}

/// How many terms to keep and how much the title counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TermOptions {
    /// At most this many terms are kept.
    pub max_terms: usize,
    /// Factor applied to the weight of a term that occurs in the title.
    pub title_boost: f32,
}

impl Default for TermOptions {
    fn default() -> Self {
        TermOptions {
            max_terms: 28,
            title_boost: 2.0,
        }
    }
}

/// A term chosen for the keyword query.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedTerm {
    /// Field the term belongs to.
    pub field: TermField,
    /// The analysed token (stemmed for [`TermField::Text`]).
    pub token: String,
    /// How often it occurs in the posting.
    pub tf: u32,
    /// Whether it occurs in the title.
    pub in_title: bool,
    /// `tf * idf * title boost`: what the terms were ranked by.
    pub selection_score: f32,
    /// Query-time boost: `(1 + ln tf) * title boost`; BM25 adds the idf itself.
    pub boost: f32,
}

/// Chooses the weighted terms of a posting.
///
/// `fields` gives each field's analysed tokens; `doc_freq(field, token)` and `num_docs` describe
/// the index. Tokens of [`TermField::Exact`] are kept only when they hold a symbol (`c++`,
/// `node.js`), because plain words are already covered by the text field. The result is sorted
/// by selection score, best first, ties by token, and holds at most `options.max_terms` terms.
pub fn select_terms(
    fields: &[(TermField, &AnalyzedText)],
    num_docs: u64,
    doc_freq: impl Fn(TermField, &str) -> u64,
    options: TermOptions,
) -> Vec<WeightedTerm> {
    let mut chosen = Vec::new();
    for &(field, analyzed) in fields {
        let mut tf: HashMap<&str, u32> = HashMap::new();
        for token in &analyzed.all {
            if keeps(field, token) {
                *tf.entry(token.as_str()).or_default() += 1;
            }
        }
        for (token, count) in tf {
            let df = doc_freq(field, token);
            if df == 0 {
                continue;
            }
            let in_title = analyzed.title.iter().any(|t| t == token);
            let title_factor = if in_title { options.title_boost } else { 1.0 };
            let tf_part = 1.0 + (count as f32).ln();
            let score = tf_part * idf(df, num_docs) * title_factor;
            chosen.push(WeightedTerm {
                field,
                token: token.to_owned(),
                tf: count,
                in_title,
                selection_score: score,
                boost: tf_part * title_factor,
            });
        }
    }
    chosen.sort_by(|a, b| {
        b.selection_score
            .total_cmp(&a.selection_score)
            .then_with(|| a.field.cmp(&b.field))
            .then_with(|| a.token.cmp(&b.token))
    });
    chosen.truncate(options.max_terms);
    chosen
}

/// BM25's inverse document frequency: always positive, highest for rare terms.
pub fn idf(doc_freq: u64, num_docs: u64) -> f32 {
    let n = num_docs.max(doc_freq) as f32;
    let df = doc_freq as f32;
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

fn keeps(field: TermField, token: &str) -> bool {
    if token.chars().count() < 2 || token.chars().all(|c| c.is_ascii_digit()) {
        return false;
    }
    if is_stop_word(token) {
        return false;
    }
    match field {
        TermField::Text => true,
        TermField::Exact => token.chars().any(|c| !c.is_alphanumeric()),
    }
}

/// Replaces the English stop words of `text` with spaces, keeping everything else as it is.
///
/// Run before the analyser, because a stemmer turns `this` into `thi` and the list would no
/// longer match.
pub fn without_stop_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() || c == '\'' {
            word_start.get_or_insert(i);
            continue;
        }
        if let Some(start) = word_start.take() {
            push_word(&mut out, &text[start..i]);
        }
        out.push(c);
    }
    if let Some(start) = word_start {
        push_word(&mut out, &text[start..]);
    }
    out
}

/// `text` with the words that only the exact field reads whole blanked out: those holding `+`
/// or `#` (`C++`, `C#`), led by a `.` (`.NET`), or joining letters or digits with a `.`
/// (`node.js`, `asp.net`). Sentence punctuation around a word does not count. Words joined by
/// `/` stay (`sales/marketing` is two ordinary words far more often than a name like `CI/CD`).
pub fn without_symbol_words(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(end);
        if is_symbol_word(word) {
            out.extend(std::iter::repeat_n(' ', word.chars().count()));
        } else {
            out.push_str(word);
        }
        let spaces = tail.len() - tail.trim_start().len();
        out.push_str(&tail[..spaces]);
        rest = &tail[spaces..];
    }
    out
}

/// Whether a whitespace-separated word is one the exact field keeps whole, see
/// [`without_symbol_words`].
fn is_symbol_word(word: &str) -> bool {
    let word = word.trim_start_matches(['(', '[', '"', '\'']);
    let word = word.trim_end_matches([',', ';', ':', ')', ']', '"', '\'', '!', '?']);
    let word = word.strip_suffix('.').unwrap_or(word);
    let chars: Vec<char> = word.chars().collect();
    let led_by_dot = chars.len() > 1 && chars[0] == '.' && chars[1].is_alphanumeric();
    let joined =
        (chars.windows(3)).any(|w| w[1] == '.' && w[0].is_alphanumeric() && w[2].is_alphanumeric());
    let has_symbol =
        chars.iter().any(|&c| c == '+' || c == '#') && chars.iter().any(|c| c.is_alphabetic());
    led_by_dot || joined || has_symbol
}

fn push_word(out: &mut String, word: &str) {
    if is_stop_word(&word.to_lowercase()) {
        out.extend(std::iter::repeat_n(' ', word.chars().count()));
    } else {
        out.push_str(word);
    }
}

/// Whether a lowercase word is an English stop word (or a posting filler word with no signal).
pub fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.binary_search(&word).is_ok()
}

/// Sorted English stop words: function words plus fillers common to every job posting.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "could",
    "did",
    "do",
    "does",
    "doing",
    "down",
    "during",
    "each",
    "etc",
    "few",
    "for",
    "from",
    "further",
    "had",
    "has",
    "have",
    "having",
    "he",
    "her",
    "here",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "i",
    "if",
    "in",
    "including",
    "into",
    "is",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "may",
    "me",
    "more",
    "most",
    "must",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "only",
    "or",
    "other",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "per",
    "same",
    "shall",
    "she",
    "should",
    "so",
    "some",
    "such",
    "than",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "these",
    "they",
    "this",
    "those",
    "through",
    "to",
    "too",
    "under",
    "until",
    "up",
    "us",
    "very",
    "via",
    "was",
    "we",
    "well",
    "were",
    "what",
    "when",
    "where",
    "which",
    "while",
    "who",
    "whom",
    "why",
    "will",
    "with",
    "within",
    "would",
    "you",
    "you'll",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn analyzed(title: &str, body: &str) -> AnalyzedText {
        let split =
            |s: &str| -> Vec<String> { s.split_whitespace().map(|w| w.to_lowercase()).collect() };
        let mut all = split(title);
        all.extend(split(body));
        AnalyzedText {
            title: split(title),
            all,
        }
    }

    #[test]
    fn symbol_words_are_left_to_the_exact_field() {
        let text = "Senior .NET, C++ and C# (node.js) on CI/CD. Net revenue!";
        let kept = without_symbol_words(text);
        assert_eq!(kept.chars().count(), text.chars().count(), "{kept:?}");
        assert_eq!(
            kept.split_whitespace().collect::<Vec<_>>(),
            ["Senior", "and", "on", "CI/CD.", "Net", "revenue!"]
        );
        for plain in [
            "net",
            "e-mail",
            "3",
            "24",
            "24/7",
            "sales/marketing",
            "well-known",
            "end.",
            "(rust)",
            "+",
            "#",
        ] {
            assert_eq!(without_symbol_words(plain), plain, "{plain}");
        }
    }

    #[test]
    fn stop_word_list_is_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn rare_and_repeated_terms_win_common_ones_lose() {
        let text = analyzed(
            "engineer",
            "rust rust rust tokio experience experience team",
        );
        let df = |_: TermField, t: &str| match t {
            "rust" => 5,
            "tokio" => 2,
            "experience" => 900,
            "team" => 950,
            "engineer" => 300,
            _ => 0,
        };
        let terms = select_terms(
            &[(TermField::Text, &text)],
            1000,
            df,
            TermOptions::default(),
        );
        let order: Vec<&str> = terms.iter().map(|t| t.token.as_str()).collect();
        assert_eq!(order[0], "rust", "{order:?}");
        assert_eq!(order[1], "tokio", "{order:?}");
        let pos = |w: &str| order.iter().position(|t| *t == w).unwrap();
        assert!(pos("experience") > pos("tokio"));
        assert!(pos("team") > pos("experience"));
    }

    #[test]
    fn title_terms_are_boosted() {
        let text = analyzed("golang", "kotlin");
        let df = |_: TermField, _: &str| 10;
        let terms = select_terms(
            &[(TermField::Text, &text)],
            1000,
            df,
            TermOptions::default(),
        );
        assert_eq!(terms[0].token, "golang");
        assert!(terms[0].in_title);
        assert!((terms[0].boost - 2.0).abs() < 1e-6);
        assert!((terms[1].boost - 1.0).abs() < 1e-6);
    }

    #[test]
    fn unknown_stop_and_numeric_tokens_are_dropped() {
        let text = analyzed("", "the 2024 zzzunknown x backend");
        let df = |_: TermField, t: &str| if t == "zzzunknown" { 0 } else { 4 };
        let terms = select_terms(&[(TermField::Text, &text)], 100, df, TermOptions::default());
        let tokens: Vec<&str> = terms.iter().map(|t| t.token.as_str()).collect();
        assert_eq!(tokens, vec!["backend"]);
    }

    #[test]
    fn exact_field_keeps_only_symbol_tokens() {
        let text = analyzed("", "c++ node.js python");
        let terms = select_terms(
            &[(TermField::Exact, &text)],
            100,
            |_, _| 3,
            TermOptions::default(),
        );
        let mut tokens: Vec<&str> = terms.iter().map(|t| t.token.as_str()).collect();
        tokens.sort();
        assert_eq!(tokens, vec!["c++", "node.js"]);
    }

    #[test]
    fn at_most_max_terms_are_kept() {
        let body: String = (0..100).map(|i| format!("word{i} ")).collect();
        let text = analyzed("", &body);
        let options = TermOptions {
            max_terms: 24,
            ..TermOptions::default()
        };
        let terms = select_terms(&[(TermField::Text, &text)], 1000, |_, _| 7, options);
        assert_eq!(terms.len(), 24);
    }

    #[test]
    fn stop_words_are_blanked_before_analysis() {
        assert_eq!(
            without_stop_words("The Rust and Go team"),
            "    Rust     Go team"
        );
        assert_eq!(without_stop_words("C++, of course."), "C++,    course.");
    }

    #[test]
    fn idf_is_positive_and_decreasing() {
        assert!(idf(1, 1000) > idf(10, 1000));
        assert!(idf(1000, 1000) > 0.0);
    }
}
