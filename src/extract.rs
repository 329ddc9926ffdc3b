//! Plain text from resume files: PDF (pdf-extract, panics contained), DOCX (the zip's
//! `word/document.xml`: `w:t` runs, `w:p` paragraphs, `w:tab` and `w:br`) and TXT (UTF-8, lossy).
//! Corrupt input gives a typed error, never a panic; [`extract_within`] also bounds the time and
//! gives deeply nested files a large stack, and [`worker`] runs it all in a child process whose
//! memory is limited, so a hostile file can only kill that child.

pub mod worker;
pub use worker::{Isolation, Worker, serve_worker};

use std::io::Read;
use std::time::Duration;

use quick_xml::events::Event;

/// Largest decompressed `word/document.xml` read, against zip bombs.
const MAX_DOCX_XML_BYTES: u64 = 64 * 1024 * 1024;
/// Most bytes of text kept from one file (a long academic CV is about 150 KB of text). A
/// 200 KB DOCX of repeated runs unpacks to tens of MB, all of it stored and keyword-indexed.
pub const MAX_TEXT_BYTES: usize = 2 * 1024 * 1024;
/// Longest one file's extraction may take in [`extract_within`]. A PDF whose page tree loops
/// keeps the parser busy forever; a real 25 MB resume takes seconds.
pub const EXTRACTION_DEADLINE: Duration = Duration::from_secs(120);
/// Stack of an extraction thread: the PDF parser recurses once per nesting level, and a file of
/// 200,000 nested arrays overflowed the 2 MiB of a worker thread (which aborts the process; no
/// `catch_unwind` contains it). [`MAX_PDF_NESTING`] refuses such files before parsing; this
/// stack holds far deeper nesting, for what the raw bytes hide (compressed streams: 300,000
/// levels overflowed 256 MiB). Only the pages it touches are backed by memory, and a sync runs
/// one extraction per core.
const EXTRACTION_STACK_BYTES: usize = 1 << 30;
/// Deepest nesting of arrays and dictionaries in a PDF's bytes that is parsed at all (real
/// files nest a few levels; random bytes of compressed streams drift to a few hundred).
const MAX_PDF_NESTING: usize = 10_000;

/// A file format rediscover extracts text from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Portable Document Format.
    Pdf,
    /// Office Open XML word processing document.
    Docx,
    /// Plain text.
    Txt,
}

impl Format {
    /// The format for a file extension (case-insensitive, leading dot allowed).
    pub fn from_ext(ext: &str) -> Option<Format> {
        match ext.trim_start_matches('.').to_ascii_lowercase().as_str() {
            "pdf" => Some(Format::Pdf),
            "docx" => Some(Format::Docx),
            "txt" | "text" | "md" => Some(Format::Txt),
            _ => None,
        }
    }

    /// The format's usual extension, lowercase (`pdf`, `docx`, `txt`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Txt => "txt",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why text could not be extracted. Messages never quote the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum Error {
    /// The PDF could not be parsed.
    #[error("unreadable pdf: {0}")]
    Pdf(String),
    /// The PDF parser panicked on this file (malformed structure).
    #[error("unreadable pdf: the parser gave up on a malformed structure")]
    PdfPanic,
    /// The DOCX container or its XML is broken.
    #[error("unreadable docx: {0}")]
    Docx(String),
    /// The file's bytes do not match its declared format.
    #[error("the file is not a {expected} file")]
    WrongFormat {
        /// The declared format.
        expected: Format,
    },
    /// The extraction did not end within its deadline (a malformed structure that loops).
    #[error("extraction took longer than {seconds} s and was abandoned")]
    TimedOut {
        /// The deadline, in seconds.
        seconds: u64,
    },
    /// No thread could be started for the extraction (out of memory or threads).
    #[error("no thread could be started for the extraction")]
    NoThread,
    /// The child process extracting the file could not be started or fed (see [`Worker`]).
    #[error("the extraction process could not run: {0}")]
    NoWorker(String),
    /// The child process extracting the file died without an answer: the file exhausted the
    /// child's memory limit or stack, or crashed its parser.
    #[error(
        "the extraction process died ({0}): the file needs more memory than allowed or crashes the parser"
    )]
    Crashed(String),
}

/// Extracts plain text from `bytes` in `format`. The result has `\n` line ends, no trailing
/// spaces, and at most one blank line in a row, and holds at most [`MAX_TEXT_BYTES`] (cut at a
/// character boundary).
pub fn extract(format: Format, bytes: &[u8]) -> Result<String, Error> {
    let raw = match format {
        Format::Pdf => pdf(bytes)?,
        Format::Docx => docx(bytes)?,
        Format::Txt => txt(bytes),
    };
    let mut text = tidy(&raw);
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Ok(text)
}

/// [`extract`] on a thread of its own with a large stack, given up after `deadline`. A file the
/// parser loops on leaves its thread running until the process ends; the caller gets
/// [`Error::TimedOut`] and should not try that file again.
pub async fn extract_within(
    format: Format,
    bytes: Vec<u8>,
    deadline: Duration,
) -> Result<String, Error> {
    run_within(deadline, move || extract(format, &bytes))
        .await
        .and_then(|result| result)
}

/// [`extract`] on a thread of its own with a large stack, waited for without a deadline: for the
/// child process of [`Worker`], whose parent keeps the time.
fn extract_on_large_stack(format: Format, bytes: Vec<u8>) -> Result<String, Error> {
    spawn_on_large_stack(move || extract(format, &bytes))?
        .join()
        // The thread panicked outside the PDF parser's guard.
        .unwrap_or(Err(Error::PdfPanic))
}

/// Starts `work` on a thread named `extract` with [`EXTRACTION_STACK_BYTES`] of stack.
fn spawn_on_large_stack<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<std::thread::JoinHandle<T>, Error> {
    std::thread::Builder::new()
        .name("extract".into())
        .stack_size(EXTRACTION_STACK_BYTES)
        .spawn(work)
        .map_err(|_| Error::NoThread)
}

/// Runs `work` on a new thread with [`EXTRACTION_STACK_BYTES`] of stack and waits at most
/// `deadline` for it.
async fn run_within<T: Send + 'static>(
    deadline: Duration,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    let (done, result) = tokio::sync::oneshot::channel();
    spawn_on_large_stack(move || {
        let _ = done.send(work());
    })?;
    match tokio::time::timeout(deadline, result).await {
        Ok(Ok(value)) => Ok(value),
        // The thread ended without an answer: it panicked outside the PDF parser's guard.
        Ok(Err(_)) => Err(Error::PdfPanic),
        Err(_) => Err(Error::TimedOut {
            seconds: deadline.as_secs(),
        }),
    }
}

fn pdf(bytes: &[u8]) -> Result<String, Error> {
    if !bytes.starts_with(b"%PDF") && !bytes.windows(5).take(1024).any(|w| w == b"%PDF-") {
        return Err(Error::WrongFormat {
            expected: Format::Pdf,
        });
    }
    if nesting_exceeds(bytes, MAX_PDF_NESTING) {
        return Err(Error::Pdf("nesting too deep".to_owned()));
    }
    // pdf-extract panics on some malformed files; contain it and report it as an error.
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pdf_extract::extract_text_from_mem(bytes)
    }));
    match outcome {
        Ok(Ok(text)) => Ok(text),
        Ok(Err(e)) => Err(Error::Pdf(pdf_error_kind(&e).to_owned())),
        Err(_) => Err(Error::PdfPanic),
    }
}

/// Whether `[` / `<<` open more than `max` levels before their `]` / `>>` close them anywhere
/// in `bytes`: the parser recurses once per level, and no stack holds millions. Stream data,
/// `(strings)` and `%` comments are skipped: brackets there are not structure.
fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut i = 0;
    while i < bytes.len() {
        let pair = |c: u8| bytes.get(i + 1) == Some(&c);
        let starts_stream = bytes[i..].starts_with(b"stream")
            && i.checked_sub(1)
                .is_none_or(|p| bytes[p].is_ascii_whitespace() || bytes[p] == b'>')
            && matches!(bytes.get(i + 6), Some(b'\r' | b'\n'));
        if starts_stream {
            match find(&bytes[i + 6..], b"endstream") {
                Some(at) => {
                    i += 6 + at + 9;
                    continue;
                }
                None => return false,
            }
        }
        match bytes[i] {
            b'(' => {
                i = string_end(bytes, i);
                continue;
            }
            b'%' => {
                while i < bytes.len() && !matches!(bytes[i], b'\r' | b'\n') {
                    i += 1;
                }
                continue;
            }
            b'[' => depth += 1,
            b']' => depth = depth.saturating_sub(1),
            b'<' if pair(b'<') => {
                depth += 1;
                i += 1;
            }
            b'>' if pair(b'>') => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            _ => {}
        }
        if depth > max {
            return true;
        }
        i += 1;
    }
    false
}

/// Where `needle` first starts in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The index after the literal string opening at `start` (`(` ... `)`, with nested pairs and
/// backslash escapes), or the end of `bytes`.
fn string_end(bytes: &[u8], start: usize) -> usize {
    let mut open = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 1,
            b'(' => open += 1,
            b')' => {
                open -= 1;
                if open == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    bytes.len()
}

fn pdf_error_kind(e: &pdf_extract::OutputError) -> &'static str {
    match e {
        pdf_extract::OutputError::FormatError(_) => "formatting failed",
        pdf_extract::OutputError::IoError(_) => "read failed",
        pdf_extract::OutputError::PdfError(_) => "malformed pdf structure",
    }
}

fn docx(bytes: &[u8]) -> Result<String, Error> {
    if !bytes.starts_with(b"PK") {
        return Err(Error::WrongFormat {
            expected: Format::Docx,
        });
    }
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|_| Error::Docx("not a readable zip archive".into()))?;
    let mut xml = Vec::new();
    {
        let entry = archive
            .by_name("word/document.xml")
            .map_err(|_| Error::Docx("no word/document.xml in the archive".into()))?;
        entry
            .take(MAX_DOCX_XML_BYTES)
            .read_to_end(&mut xml)
            .map_err(|_| Error::Docx("word/document.xml does not decompress".into()))?;
    }
    document_xml_text(&xml)
}

/// The text of a WordprocessingML body: runs in order, paragraphs and breaks as new lines,
/// tabs and table cells as tabs.
fn document_xml_text(xml: &[u8]) -> Result<String, Error> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut out = String::new();
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(|e| {
            Error::Docx(format!(
                "malformed xml at byte {}",
                xml_error_position(&reader, &e)
            ))
        })?;
        match event {
            Event::Start(e) => match e.local_name().as_ref() {
                b"t" => in_text = true,
                b"tab" => out.push('\t'),
                b"br" | b"cr" => out.push('\n'),
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                b"tab" => out.push('\t'),
                b"br" | b"cr" => out.push('\n'),
                b"p" => out.push('\n'),
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                b"t" => in_text = false,
                b"p" => out.push('\n'),
                b"tc" => out.push('\t'),
                _ => {}
            },
            Event::Text(t) if in_text => {
                let text = t
                    .unescape()
                    .map_err(|_| Error::Docx("bad character reference".into()))?;
                out.push_str(&text);
            }
            Event::CData(t) if in_text => out.push_str(&String::from_utf8_lossy(&t)),
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Ok(out)
}

fn xml_error_position(reader: &quick_xml::Reader<&[u8]>, _e: &quick_xml::Error) -> u64 {
    reader.buffer_position()
}

fn txt(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    String::from_utf8_lossy(bytes).into_owned()
}

/// Normalises line ends and whitespace: trims line ends, keeps at most one blank line in a row,
/// drops NUL and other control characters except tab and newline.
fn tidy(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank_run = 0;
    for line in raw.replace("\r\n", "\n").replace('\r', "\n").lines() {
        let line: String = line
            .chars()
            .filter(|c| !c.is_control() || *c == '\t')
            .collect();
        let line = line.trim_end();
        if line.trim().is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
            out.push('\n');
        } else {
            blank_run = 0;
            out.push_str(line);
            out.push('\n');
        }
    }
    out.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A one-page PDF (with its cross-reference table) whose catalog holds `depth` nested
    /// arrays.
    fn deeply_nested_pdf(depth: usize) -> Vec<u8> {
        let catalog = format!(
            "<< /Type /Catalog /Pages 2 0 R /X {}{} >>",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let objects = [
            catalog.as_str(),
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        ];
        let mut pdf = b"%PDF-1.4\n".to_vec();
        let mut offsets = Vec::new();
        for (i, body) in objects.iter().enumerate() {
            offsets.push(pdf.len());
            pdf.extend_from_slice(format!("{} 0 obj\n{body}\nendobj\n", i + 1).as_bytes());
        }
        let xref = pdf.len();
        pdf.extend_from_slice(b"xref\n0 4\n0000000000 65535 f \n");
        for offset in offsets {
            pdf.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
        }
        pdf.extend_from_slice(
            format!("trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
        );
        pdf
    }

    #[tokio::test]
    async fn a_deeply_nested_pdf_is_refused_or_survived_never_an_abort() {
        // 200,000 levels on a worker thread's 2 MiB stack aborted the whole process.
        let outcome = extract(Format::Pdf, &deeply_nested_pdf(200_000));
        assert_eq!(outcome, Err(Error::Pdf("nesting too deep".into())));
        // Below the refusal, the extraction thread's stack holds the parser's recursion.
        let outcome = extract_within(
            Format::Pdf,
            deeply_nested_pdf(MAX_PDF_NESTING - 1),
            Duration::from_secs(60),
        )
        .await;
        assert!(
            !matches!(outcome, Err(Error::TimedOut { .. }) | Err(Error::NoThread)),
            "{outcome:?}"
        );
        assert!(!nesting_exceeds(
            b"<< /A [1 2 [3]] /B << /C >> >> ]]]] [[",
            3
        ));
        assert!(nesting_exceeds(b"[[[[", 3));
        assert!(nesting_exceeds(b"<<<<<<[[", 3));
        // Brackets in stream data, strings and comments are not structure.
        assert!(!nesting_exceeds(
            b"<< /Length 9 >>\nstream\n[[[[[[[[[\nendstream [",
            3
        ));
        assert!(!nesting_exceeds(b"[ (a [[[[ \\) (b) [[[[) ]", 3));
        assert!(!nesting_exceeds(b"% [[[[[[\n[ ]", 3));
        assert!(nesting_exceeds(b"[ (ok) [[[", 3));
    }

    #[tokio::test]
    async fn work_past_the_deadline_is_abandoned_with_a_typed_error() {
        let started = std::time::Instant::now();
        let outcome = run_within(Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(3));
        })
        .await;
        assert_eq!(outcome, Err(Error::TimedOut { seconds: 0 }));
        assert!(started.elapsed() < Duration::from_secs(2));
        // Work that ends in time gives its answer, and a panic is a typed error.
        assert_eq!(run_within(Duration::from_secs(5), || 7).await, Ok(7));
        let panicked: Result<(), Error> =
            run_within(Duration::from_secs(5), || panic!("parser bug")).await;
        assert_eq!(panicked, Err(Error::PdfPanic));
    }

    fn make_docx(document_xml: &str) -> Vec<u8> {
        let mut cursor = std::io::Cursor::new(Vec::new());
        {
            let mut zip = zip::ZipWriter::new(&mut cursor);
            let options = zip::write::SimpleFileOptions::default();
            zip.start_file("word/document.xml", options).expect("start");
            zip.write_all(document_xml.as_bytes()).expect("write");
            zip.finish().expect("finish");
        }
        cursor.into_inner()
    }

    #[test]
    fn docx_paragraphs_tabs_and_breaks() {
        let xml = r#"<?xml version="1.0"?><w:document xmlns:w="x"><w:body>
            <w:p><w:r><w:t>Senior</w:t></w:r><w:r><w:t xml:space="preserve"> Engineer &amp; Lead</w:t></w:r></w:p>
            <w:p><w:r><w:t>Rust</w:t><w:tab/><w:t>Go</w:t><w:br/><w:t>Kafka</w:t></w:r></w:p>
            <w:p/><w:p><w:r><w:t>End</w:t></w:r></w:p></w:body></w:document>"#;
        let text = extract(Format::Docx, &make_docx(xml)).expect("text");
        assert_eq!(text, "Senior Engineer & Lead\nRust\tGo\nKafka\n\nEnd");
    }

    #[test]
    fn corrupt_files_are_errors_not_panics() {
        assert!(matches!(
            extract(Format::Docx, b"PK\x03\x04garbage"),
            Err(Error::Docx(_))
        ));
        assert!(matches!(
            extract(Format::Docx, b"hello"),
            Err(Error::WrongFormat {
                expected: Format::Docx,
            })
        ));
        let broken_xml = make_docx("<w:document><w:p><w:t>unclosed</w:document>");
        assert!(extract(Format::Docx, &broken_xml).is_err());
        assert!(
            extract(
                Format::Pdf,
                b"%PDF-1.4\n1 0 obj <</Type /Catalog>>\ntrailer garbage"
            )
            .is_err()
        );
        assert!(matches!(
            extract(Format::Pdf, b"not a pdf"),
            Err(Error::WrongFormat {
                expected: Format::Pdf,
            })
        ));
        let mut truncated = b"%PDF-1.5\n".to_vec();
        truncated.extend(std::iter::repeat_n(0xffu8, 300));
        assert!(extract(Format::Pdf, &truncated).is_err());
    }

    #[test]
    fn txt_is_lossy_utf8_and_tidied() {
        let text = extract(
            Format::Txt,
            b"\xEF\xBB\xBFline one  \r\n\r\n\r\n\xffline two\x00",
        )
        .expect("txt");
        assert_eq!(text, "line one\n\n\u{FFFD}line two");
        assert_eq!(Format::from_ext(".PDF"), Some(Format::Pdf));
        assert_eq!(Format::from_ext("doc"), None);
    }

    #[test]
    fn text_past_the_cap_is_cut_at_a_character_boundary() {
        // A small DOCX whose runs unpack to more text than any resume holds. The first line of
        // 25 letters puts byte 2 MiB inside a two-byte letter, where `String::truncate` would
        // panic: the cut must step back to the letter's start.
        let run = "<w:p><w:r><w:t>Zoë ünïcode text that repeats</w:t></w:r></w:p>";
        let xml = format!(
            "<w:document><w:body><w:p><w:r><w:t>{}</w:t></w:r></w:p>{}</w:body></w:document>",
            "x".repeat(25),
            run.repeat(90_000)
        );
        let docx = make_docx(&xml);
        assert!(docx.len() < 200_000, "{} bytes", docx.len());
        let text = extract(Format::Docx, &docx).expect("docx");
        assert_eq!(text.len(), MAX_TEXT_BYTES - 1);
        assert!(text.starts_with("xxxxxxxxxxxxxxxxxxxxxxxxx\nZoë ünïcode"));
    }
}
