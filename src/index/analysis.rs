//! Text analysis of the keyword index: the prose and exact-token analyzers, written so that the
//! same word matches whatever its accents, Unicode form or version suffix.
//!
//! - Text is NFC-normalised before it is tokenized ([`Nfc`]): a PDF's decomposed
//!   `De\u{301}veloppeur` is one word, as typed.
//! - Accents are folded (`Müller` -> `muller`, `Straße` -> `strasse`) in both fields, for
//!   documents and queries alike, so an accented and an unaccented query find both forms.
//! - In the exact field, a symbol-bearing token followed by a version (`c++17`, `c#10`,
//!   `.net6`, `c++/17`) is indexed together with its base at the same position ([`VersionBase`]):
//!   `C++` finds `C++17`, while `C++17` still only finds `C++17` (queries are not expanded).
//!
//! Only the analysis changes: stored text is kept as written, and snippets highlight the
//! original words ([`fold`] compares a word as the analyzers see it).

use std::borrow::Cow;
use std::cell::RefCell;

use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RawTokenizer, RegexTokenizer, RemoveLongFilter,
    SimpleTokenizer, Stemmer, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
    TokenizerManager,
};
use unicode_normalization::{IsNormalized, UnicodeNormalization, is_nfc_quick};

/// Name of the stemmed prose analyzer (text and title fields).
pub const PROSE_TOKENIZER: &str = "rediscover_prose";
/// Name of the exact-token analyzer.
pub const EXACT_TOKENIZER: &str = "rediscover_exact";
/// An exact token: letters and digits, optionally led by `.` (`.net`), joined by `.`, `/`, `-`
/// or `_` when followed by a letter or digit (`node.js`, `ci/cd`), and keeping `+` and `#`
/// (`c++`, `c#`). Trailing sentence punctuation is left out.
const EXACT_PATTERN: &str = r"\.?[\p{L}\p{N}](?:[\p{L}\p{N}+#]|[./_\-][\p{L}\p{N}])*";
/// Longest prose token kept (tantivy's `en_stem` limit).
const PROSE_MAX_BYTES: usize = 40;
/// Longest exact token kept.
const EXACT_MAX_BYTES: usize = 64;

/// Registers the analyzers documents are indexed with in `manager`.
pub fn register(manager: &TokenizerManager) -> Result<(), tantivy::TantivyError> {
    manager.register(PROSE_TOKENIZER, prose());
    manager.register(EXACT_TOKENIZER, exact(true)?);
    Ok(())
}

/// The analyzers a query is read with: the index's, except that the exact field does not add
/// version bases (a query for `C++17` means `C++17`, not every `C++`).
pub fn query_manager() -> Result<TokenizerManager, tantivy::TantivyError> {
    let manager = TokenizerManager::default();
    manager.register(PROSE_TOKENIZER, prose());
    manager.register(EXACT_TOKENIZER, exact(false)?);
    Ok(manager)
}

fn prose() -> TextAnalyzer {
    TextAnalyzer::builder(Nfc::new(SimpleTokenizer::default()))
        .filter(RemoveLongFilter::limit(PROSE_MAX_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter)
        .filter(Stemmer::new(Language::English))
        .build()
}

fn exact(version_bases: bool) -> Result<TextAnalyzer, tantivy::TantivyError> {
    let builder = TextAnalyzer::builder(Nfc::new(RegexTokenizer::new(EXACT_PATTERN)?))
        .filter(RemoveLongFilter::limit(EXACT_MAX_BYTES))
        .filter(LowerCaser)
        .filter(AsciiFoldingFilter);
    Ok(if version_bases {
        builder.filter(VersionBase).build()
    } else {
        builder.build()
    })
}

/// `text` in NFC (borrowed when it already is, as all ASCII text).
pub fn nfc(text: &str) -> Cow<'_, str> {
    if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.nfc().collect())
    }
}

/// A word as the analyzers compare it before stemming: NFC, lowercase, accents folded.
pub fn fold(word: &str) -> String {
    thread_local! {
        static FOLDER: RefCell<TextAnalyzer> = RefCell::new(
            TextAnalyzer::builder(Nfc::new(RawTokenizer::default()))
                .filter(LowerCaser)
                .filter(AsciiFoldingFilter)
                .build(),
        );
    }
    FOLDER.with(|folder| {
        let mut folded = String::with_capacity(word.len());
        folder
            .borrow_mut()
            .token_stream(word)
            .process(&mut |t| folded.push_str(&t.text));
        folded
    })
}

/// The prose field's stem of one word already folded ([`fold`]): `reliability` -> `reliabl`.
pub fn stem(folded_word: &str) -> String {
    thread_local! {
        static STEMMER: RefCell<TextAnalyzer> = RefCell::new(
            TextAnalyzer::builder(RawTokenizer::default())
                .filter(Stemmer::new(Language::English))
                .build(),
        );
    }
    STEMMER.with(|stemmer| {
        let mut stem = String::new();
        stemmer
            .borrow_mut()
            .token_stream(folded_word)
            .process(&mut |t| stem.push_str(&t.text));
        stem
    })
}

/// The base of a versioned exact token (`c++17` -> `c++`, `.net6.0` -> `.net`, `c++/17` ->
/// `c++`), or `None` when the token has no version suffix or its base holds no symbol (`python3`
/// and `x86` stay whole: the prose field already has such words).
pub fn version_base(token: &str) -> Option<&str> {
    let bytes = token.as_bytes();
    if !bytes.last().is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let mut start = token.len();
    while start > 0 && (bytes[start - 1].is_ascii_digit() || bytes[start - 1] == b'.') {
        start -= 1;
    }
    // The version starts with a digit: `e.164` has the base `e.`, which is refused below.
    while bytes.get(start) == Some(&b'.') {
        start += 1;
    }
    let base = &token[..start];
    let base = base.strip_suffix(['/', '-', '_']).unwrap_or(base);
    let last = base.chars().next_back()?;
    let symbol = |c: char| !c.is_alphanumeric();
    let ends_well = last.is_alphanumeric() || last == '+' || last == '#';
    (ends_well && base.chars().any(char::is_alphabetic) && base.chars().any(symbol)).then_some(base)
}

/// Whether `word` is `base` followed by a version (`C++17` for `c++`), comparing lower case.
pub fn is_versioned(word: &str, base: &str) -> bool {
    let Some(rest) = word
        .get(..base.len())
        .filter(|head| head.eq_ignore_ascii_case(base))
        .map(|_| &word[base.len()..])
    else {
        return false;
    };
    let rest = rest.strip_prefix(['/', '-', '_']).unwrap_or(rest);
    rest.starts_with(|c: char| c.is_ascii_digit())
        && rest.ends_with(|c: char| c.is_ascii_digit())
        && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

/// A tokenizer that NFC-normalises its text first (text already in NFC, such as all ASCII, is
/// not copied). Token offsets then refer to the normalised text; nothing here reads them.
#[derive(Clone)]
pub struct Nfc<T> {
    inner: T,
    buffer: String,
}

impl<T> Nfc<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Nfc<T> {
        Nfc {
            inner,
            buffer: String::new(),
        }
    }
}

impl<T: Tokenizer> Tokenizer for Nfc<T> {
    type TokenStream<'a> = T::TokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        let Nfc { inner, buffer } = self;
        if text.is_ascii() || is_nfc_quick(text.chars()) == IsNormalized::Yes {
            return inner.token_stream(text);
        }
        buffer.clear();
        buffer.extend(text.nfc());
        let normalized: &'a String = buffer;
        inner.token_stream(normalized)
    }
}

/// A token filter that follows each versioned symbol token (`c++17`) by its base (`c++`) at the
/// same position, see [`version_base`].
#[derive(Clone, Copy, Debug)]
pub struct VersionBase;

impl TokenFilter for VersionBase {
    type Tokenizer<T: Tokenizer> = VersionBaseFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> VersionBaseFilter<T> {
        VersionBaseFilter {
            inner: tokenizer,
            base: Token::default(),
        }
    }
}

/// [`VersionBase`] around a tokenizer.
#[derive(Clone)]
pub struct VersionBaseFilter<T> {
    inner: T,
    base: Token,
}

impl<T: Tokenizer> Tokenizer for VersionBaseFilter<T> {
    type TokenStream<'a> = VersionBaseStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        VersionBaseStream {
            tail: self.inner.token_stream(text),
            base: &mut self.base,
            state: State::Tail,
        }
    }
}

/// Which token a [`VersionBaseStream`] is on.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// The inner stream's token, with no base to follow.
    Tail,
    /// The inner stream's token; its base comes next.
    BaseNext,
    /// The base of the inner stream's token.
    Base,
}

/// The token stream of a [`VersionBaseFilter`].
pub struct VersionBaseStream<'a, T> {
    tail: T,
    base: &'a mut Token,
    state: State,
}

impl<T: TokenStream> TokenStream for VersionBaseStream<'_, T> {
    fn advance(&mut self) -> bool {
        if self.state == State::BaseNext {
            self.state = State::Base;
            return true;
        }
        self.state = State::Tail;
        if !self.tail.advance() {
            return false;
        }
        let token = self.tail.token();
        if let Some(base) = version_base(&token.text) {
            self.base.text.clear();
            self.base.text.push_str(base);
            self.base.offset_from = token.offset_from;
            self.base.offset_to = token.offset_to;
            self.base.position = token.position;
            self.base.position_length = token.position_length;
            self.state = State::BaseNext;
        }
        true
    }

    fn token(&self) -> &Token {
        match self.state {
            State::Base => self.base,
            State::Tail | State::BaseNext => self.tail.token(),
        }
    }

    fn token_mut(&mut self) -> &mut Token {
        match self.state {
            State::Base => self.base,
            State::Tail | State::BaseNext => self.tail.token_mut(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<(String, usize)> {
        let mut out = Vec::new();
        analyzer
            .token_stream(text)
            .process(&mut |t| out.push((t.text.clone(), t.position)));
        out
    }

    fn texts(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
        tokens(analyzer, text).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn versioned_symbol_tokens_add_their_base_at_the_same_position() {
        let mut exact = exact(true).unwrap();
        assert_eq!(
            tokens(&mut exact, "C++17, C#10 and .NET6 with c++/17"),
            vec![
                ("c++17".to_owned(), 0),
                ("c++".to_owned(), 0),
                ("c#10".to_owned(), 1),
                ("c#".to_owned(), 1),
                ("and".to_owned(), 2),
                (".net6".to_owned(), 3),
                (".net".to_owned(), 3),
                ("with".to_owned(), 4),
                ("c++/17".to_owned(), 5),
                ("c++".to_owned(), 5),
            ]
        );
        // Unversioned and plain tokens are left alone.
        assert_eq!(
            texts(&mut exact, "C++ node.js python3 x86 e.164 1.2.3 covid-19"),
            vec![
                "c++", "node.js", "python3", "x86", "e.164", "1.2.3", "covid-19"
            ]
        );
        // The query side does not expand: `C++17` means `C++17`.
        let mut query = super::exact(false).unwrap();
        assert_eq!(texts(&mut query, "C++17 .NET8.0"), vec!["c++17", ".net8.0"]);
    }

    #[test]
    fn version_bases_need_a_symbol_and_a_letter() {
        assert_eq!(version_base("c++17"), Some("c++"));
        assert_eq!(version_base(".net6.0"), Some(".net"));
        assert_eq!(version_base("asp.net8"), Some("asp.net"));
        assert_eq!(version_base("c++-20"), Some("c++"));
        for plain in ["c++", "python3", "v1.2", "e.164", "1.5", "c++17a", "", "."] {
            assert_eq!(version_base(plain), None, "{plain}");
        }
        assert!(is_versioned("C++17", "c++"));
        assert!(is_versioned("c++/17", "c++"));
        assert!(is_versioned("NET6.0", "net"));
        assert!(!is_versioned("C++", "c++"));
        assert!(!is_versioned("C++x", "c++"));
        assert!(!is_versioned("C", "c++"));
    }

    #[test]
    fn accents_fold_in_both_fields() {
        let mut prose = prose();
        let mut exact = exact(true).unwrap();
        assert_eq!(
            texts(&mut prose, "Développeur Müller café Straße"),
            texts(&mut prose, "developpeur muller cafe strasse")
        );
        assert_eq!(
            texts(&mut exact, "Développeur Müller café Straße"),
            vec!["developpeur", "muller", "cafe", "strasse"]
        );
    }

    #[test]
    fn decomposed_text_is_one_word() {
        let decomposed = "De\u{301}veloppeur Mu\u{308}ller";
        let mut prose = prose();
        let mut exact = exact(true).unwrap();
        assert_eq!(
            texts(&mut prose, decomposed),
            texts(&mut prose, "Développeur Müller")
        );
        assert_eq!(texts(&mut exact, decomposed), vec!["developpeur", "muller"]);
        assert_eq!(fold("De\u{301}veloppeur"), "developpeur");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("C++17"), "c++17");
    }
}
