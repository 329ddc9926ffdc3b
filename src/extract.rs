//! Plain text from resume files: PDF (pdf-extract, panics contained), DOCX (the zip's
//! `word/document.xml`: `w:t` runs, `w:p` paragraphs, `w:tab` and `w:br`) and TXT (UTF-8, lossy).
//! Corrupt input gives a typed error, never a panic.

use std::io::Read;

use quick_xml::events::Event;

/// Largest decompressed `word/document.xml` read, against zip bombs.
const MAX_DOCX_XML_BYTES: u64 = 64 * 1024 * 1024;

/// A file format rediscover extracts text from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
}

/// Why text could not be extracted. Messages never quote the document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
        expected: &'static str,
    },
}

/// Extracts plain text from `bytes` in `format`. The result has `\n` line ends, no trailing
/// spaces, and at most one blank line in a row.
pub fn extract(format: Format, bytes: &[u8]) -> Result<String, Error> {
    let raw = match format {
        Format::Pdf => pdf(bytes)?,
        Format::Docx => docx(bytes)?,
        Format::Txt => txt(bytes),
    };
    Ok(tidy(&raw))
}

fn pdf(bytes: &[u8]) -> Result<String, Error> {
    if !bytes.starts_with(b"%PDF") && !bytes.windows(5).take(1024).any(|w| w == b"%PDF-") {
        return Err(Error::WrongFormat { expected: "pdf" });
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

fn pdf_error_kind(e: &pdf_extract::OutputError) -> &'static str {
    match e {
        pdf_extract::OutputError::FormatError(_) => "formatting failed",
        pdf_extract::OutputError::IoError(_) => "read failed",
        pdf_extract::OutputError::PdfError(_) => "malformed pdf structure",
    }
}

fn docx(bytes: &[u8]) -> Result<String, Error> {
    if !bytes.starts_with(b"PK") {
        return Err(Error::WrongFormat { expected: "docx" });
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
            Err(Error::WrongFormat { expected: "docx" })
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
            Err(Error::WrongFormat { expected: "pdf" })
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
}
