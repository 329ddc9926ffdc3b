//! Resume files rendered from plain text: a small valid PDF (Helvetica, wrapped lines, several
//! pages, exact xref), a DOCX (one `w:p` per line) and UTF-8 TXT.

use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;

use super::Error;

const PAGE_WIDTH: u32 = 612;
const PAGE_HEIGHT: u32 = 792;
const MARGIN: u32 = 54;
const FONT_SIZE: u32 = 10;
const LEADING: u32 = 13;
const CHARS_PER_LINE: usize = 95;

/// Content type and bytes of a resume file with extension `ext`.
pub(crate) fn render(ext: &str, text: &str) -> Result<(&'static str, Vec<u8>), Error> {
    match ext {
        "pdf" => Ok(("application/pdf", render_pdf(text))),
        "docx" => Ok((
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            render_docx(text)?,
        )),
        _ => Ok(("text/plain; charset=utf-8", text.as_bytes().to_vec())),
    }
}

/// A PDF showing `text` in 10 pt Helvetica (WinAnsi), wrapped and paginated.
pub fn render_pdf(text: &str) -> Vec<u8> {
    let lines = wrap(text, CHARS_PER_LINE);
    let per_page = ((PAGE_HEIGHT - 2 * MARGIN) / LEADING) as usize;
    let pages: Vec<&[String]> = if lines.is_empty() {
        vec![&[][..]]
    } else {
        lines.chunks(per_page).collect()
    };

    // Objects: 1 catalog, 2 page tree, 3 font, then a (page, content) pair per page.
    let mut objects: Vec<Vec<u8>> = Vec::new();
    let kids: Vec<String> = (0..pages.len())
        .map(|i| format!("{} 0 R", 4 + 2 * i))
        .collect();
    objects.push(b"<< /Type /Catalog /Pages 2 0 R >>".to_vec());
    objects.push(
        format!(
            "<< /Type /Pages /Kids [{}] /Count {} >>",
            kids.join(" "),
            pages.len()
        )
        .into_bytes(),
    );
    objects.push(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    );
    for (i, page) in pages.iter().enumerate() {
        let content_id = 5 + 2 * i;
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_WIDTH} {PAGE_HEIGHT}] /Resources << /Font << /F1 3 0 R >> >> /Contents {content_id} 0 R >>"
            )
            .into_bytes(),
        );
        let mut stream = format!(
            "BT\n/F1 {FONT_SIZE} Tf\n{LEADING} TL\n{MARGIN} {} Td\n",
            PAGE_HEIGHT - MARGIN
        )
        .into_bytes();
        for line in page.iter() {
            stream.push(b'(');
            stream.extend(pdf_string(line));
            stream.extend_from_slice(b") Tj T*\n");
        }
        stream.extend_from_slice(b"ET");
        let mut object = format!("<< /Length {} >>\nstream\n", stream.len()).into_bytes();
        object.extend(stream);
        object.extend_from_slice(b"\nendstream");
        objects.push(object);
    }

    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, object) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n", i + 1).into_bytes());
        out.extend(object);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).into_bytes());
    for offset in offsets {
        out.extend(format!("{offset:010} 00000 n \n").into_bytes());
    }
    out.extend(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            objects.len() + 1
        )
        .into_bytes(),
    );
    out
}

/// Escapes a line for a PDF string literal in WinAnsi: `(`, `)`, `\` escaped, Latin-1
/// characters as their byte, anything else as `?`.
fn pdf_string(line: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    for c in line.chars() {
        match c {
            '(' | ')' | '\\' => {
                out.push(b'\\');
                out.push(c as u8);
            }
            ' '..='~' => out.push(c as u8),
            '\u{a0}'..='\u{ff}' => out.push(c as u32 as u8),
            '\u{2013}' | '\u{2014}' => out.push(b'-'),
            '\u{2018}' | '\u{2019}' => out.push(b'\''),
            '\u{201c}' | '\u{201d}' => out.push(b'"'),
            '\t' => out.push(b' '),
            _ => out.push(b'?'),
        }
    }
    out
}

/// Splits into lines of at most `width` characters at spaces; blank lines are kept.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.lines() {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

/// A minimal Word document with one paragraph per line of `text`.
pub fn render_docx(text: &str) -> Result<Vec<u8>, Error> {
    let mut document = String::from(concat!(
        r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
        r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>"#
    ));
    for line in text.lines() {
        if line.is_empty() {
            document.push_str("<w:p/>");
        } else {
            document.push_str(r#"<w:p><w:r><w:t xml:space="preserve">"#);
            document.push_str(&xml_escape(line));
            document.push_str("</w:t></w:r></w:p>");
        }
    }
    document.push_str("</w:body></w:document>");
    let files: [(&str, &str); 3] = [
        (
            "[Content_Types].xml",
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
                r#"<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">"#,
                r#"<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>"#,
                r#"<Default Extension="xml" ContentType="application/xml"/>"#,
                r#"<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>"#,
                r#"</Types>"#
            ),
        ),
        (
            "_rels/.rels",
            concat!(
                r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>"#,
                r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">"#,
                r#"<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>"#,
                r#"</Relationships>"#
            ),
        ),
        ("word/document.xml", &document),
    ];
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    for (name, body) in files {
        zip.start_file(name, options)
            .map_err(|e| Error::Docx(e.to_string()))?;
        zip.write_all(body.as_bytes())
            .map_err(|e| Error::Docx(e.to_string()))?;
    }
    let cursor = zip.finish().map_err(|e| Error::Docx(e.to_string()))?;
    Ok(cursor.into_inner())
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if (c as u32) < 0x20 && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn pdf_round_trips_through_pdf_extract_over_several_pages() {
        let mut text = String::from("Dana (Okafor) \\ C++ & C# and .NET; node.js, CI/CD\n\n");
        for i in 0..120 {
            text.push_str(&format!("- Bullet number {i} about Kubernetes and k8s clusters, written long enough to wrap across the page width.\n"));
        }
        let pdf = render_pdf(&text);
        let extracted = pdf_extract::extract_text_from_mem(&pdf).unwrap();
        assert_eq!(words(&extracted), words(&text));
        assert!(String::from_utf8_lossy(&pdf).contains("/Count 5"));
    }

    #[test]
    fn docx_holds_one_paragraph_per_line() {
        let text = "Name <Dev> & Co\n\nSKILLS\nRust, C++";
        let bytes = render_docx(text).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        for name in ["[Content_Types].xml", "_rels/.rels"] {
            assert!(archive.by_name(name).is_ok(), "{name}");
        }
        let mut xml = String::new();
        archive
            .by_name("word/document.xml")
            .unwrap()
            .read_to_string(&mut xml)
            .unwrap();
        assert_eq!(
            xml.matches("<w:p>").count() + xml.matches("<w:p/>").count(),
            4
        );
        assert!(xml.contains("Name &lt;Dev&gt; &amp; Co"));
    }
}
