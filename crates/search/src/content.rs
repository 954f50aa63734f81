//! Stage 4 of docs/imap-plan.md §3: the whole message parsed with mail-parser, for BODY and
//! TEXT (and HEADER when the message is parsed anyway).

use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::decoders::html::html_to_text;
use mail_parser::{Message, MessageParser, PartType};

use crate::fold::fold;
use crate::headers::{self, Field};

/// What BODY, TEXT and HEADER search in a parsed message, folded.
pub(crate) struct Content {
    /// The top-level header's fields.
    pub(crate) top_fields: Vec<Field>,
    /// Every header block as `name: value` lines: the message's, its MIME parts' and those of
    /// embedded messages (RFC 9051 §6.4.4 TEXT: "including MIME header fields").
    pub(crate) header_text: String,
    /// The decoded text of every text/* part, embedded messages included: transfer encoding and
    /// charset decoded by mail-parser, text/html reduced to its text content.
    pub(crate) body_text: String,
}

/// Parses a stored message. CPU-bound: call it from a blocking thread.
pub(crate) fn extract(raw: &[u8]) -> Content {
    let top_fields = headers::decoded_fields(raw);
    // mail-parser is third-party code fed hostile bytes: a panic degrades to the raw text.
    match catch_unwind(AssertUnwindSafe(|| parse(raw))) {
        Ok(Some((header_text, body_text))) => Content {
            top_fields,
            header_text,
            body_text,
        },
        Ok(None) => fallback(raw, top_fields),
        Err(_) => {
            tracing::warn!("mail-parser panicked; searching the message as raw text");
            fallback(raw, top_fields)
        }
    }
}

/// (header text, body text) of a message mail-parser can read.
///
/// TODO(search): two corpus messages (spamassassin `spam_2/00376…` and `spam/00039…`, both
/// multiparts whose text Dovecot finds) yield no body text here; a plain unterminated
/// multipart does work, so the cause is elsewhere in how mail-parser splits them. Found by
/// bench/imap_bench.py comparing SEARCH TEXT counts with Dovecot; investigate with those files.
fn parse(raw: &[u8]) -> Option<(String, String)> {
    let message = MessageParser::default().parse(raw)?;
    let mut header_text = String::new();
    let mut body_text = String::new();
    // Explicit stack: message/rfc822 nesting is unbounded.
    let mut pending = vec![&message];
    while let Some(current) = pending.pop() {
        for part in &current.parts {
            let start = part.offset_header as usize;
            let end = part.offset_body as usize;
            if let Some(block) = current.raw_message.get(start..end) {
                headers::push_header_text(block, &mut header_text);
            }
            match &part.body {
                PartType::Text(text) => push_line(&mut body_text, text),
                PartType::Html(html) => push_line(&mut body_text, &html_to_text(html)),
                PartType::Message(inner) => pending.push(inner),
                PartType::Binary(_) | PartType::InlineBinary(_) | PartType::Multipart(_) => {}
            }
        }
    }
    dismantle(message);
    Some((fold(&header_text), fold(&body_text)))
}

/// Parts are kept apart by a line break, so a match never spans two parts.
fn push_line(out: &mut String, text: &str) {
    out.push_str(text);
    out.push('\n');
}

/// A message without a header mail-parser accepts: its text after the first empty line.
fn fallback(raw: &[u8], top_fields: Vec<Field>) -> Content {
    let body = memchr::memmem::find(raw, b"\n\r\n")
        .map(|i| i + 3)
        .into_iter()
        .chain(memchr::memmem::find(raw, b"\n\n").map(|i| i + 2))
        .min()
        .and_then(|start| raw.get(start..))
        .unwrap_or(raw);
    let mut header_text = String::new();
    for field in &top_fields {
        header_text.push_str(&format!("{}: {}\n", fold(&field.name), field.value));
    }
    Content {
        top_fields,
        header_text,
        body_text: fold(&String::from_utf8_lossy(body)),
    }
}

/// Drops nested messages one level at a time: the derived drop of mail-parser's `Message`
/// recurses once per message/rfc822 level, which hostile input can make deep enough to overflow
/// the stack (same reason as in postkeep-message).
fn dismantle(message: Message<'_>) {
    let mut pending = vec![message];
    while let Some(mut message) = pending.pop() {
        for part in message.parts.drain(..) {
            if let PartType::Message(inner) = part.body {
                pending.push(inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_text_decodes_parts_and_header_text_covers_mime_headers() {
        let raw = b"Subject: outer\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
            --b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\r\nK=E4se\r\n\
            --b\r\nContent-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\nInner TEXT\r\n\
            --b--\r\n";
        let content = extract(raw);
        assert!(content.body_text.contains("käse"));
        assert!(content.body_text.contains("inner text"));
        assert!(!content.body_text.contains("subject"));
        assert!(content
            .header_text
            .contains("content-transfer-encoding: quoted-printable"));
        assert!(content.header_text.contains("subject: inner"));
        assert_eq!(content.top_fields[0].value, "outer");
    }

    #[test]
    fn html_is_searched_as_its_text() {
        let raw = b"Content-Type: text/html\r\n\r\n<p class=\"x\">Hello <b>World</b></p>";
        let content = extract(raw);
        assert!(content.body_text.contains("hello"));
        assert!(content.body_text.contains("world"));
        assert!(!content.body_text.contains("class"));
    }

    #[test]
    fn deeply_nested_messages_do_not_overflow_the_stack() {
        let mut raw = Vec::new();
        for _ in 0..20_000 {
            raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        raw.extend_from_slice(b"Subject: deep\r\n\r\nbottom words\r\n");
        let content = extract(&raw);
        assert!(content.body_text.contains("bottom words"));
    }
}
