//! Stage 4 of docs/imap-plan.md §3: the whole message parsed with mail-parser, for BODY and
//! TEXT (and HEADER when the message is parsed anyway).

use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders, PartType};

use crate::fold::fold;
use crate::headers::{self, Field};

mod decode;
mod html;

/// What BODY, TEXT and HEADER search in a parsed message, folded.
pub(crate) struct Content {
    /// The top-level header's fields.
    pub(crate) top_fields: Vec<Field>,
    /// Every header block as `name: value` lines: the message's, its MIME parts' and those of
    /// embedded messages (RFC 9051 §6.4.4 TEXT: "including MIME header fields").
    pub(crate) header_text: String,
    /// The decoded text of every text/* and message/* part, embedded messages included: transfer
    /// encoding and charset decoded (by mail-parser, or by `content::decode` where it gives up),
    /// text/html reduced to its text content.
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
/// RFC 9051 §6.4.4: BODY and TEXT search the body, so what counts is the decoded text a reader
/// sees. Three things need more than mail-parser's answer:
///
/// - Parts mail-parser could not decode (`is_encoding_problem`). Its base64 and
///   quoted-printable decoders give up on the first byte they do not expect and hand back the
///   raw, still encoded part as text/plain. In the SpamAssassin corpus that is 62 parts, most
///   of them base64 text at the end of a multipart that never closes: spam_2/00376… and
///   spam/00039… are `multipart/mixed` whose only part, base64 `text/html`, runs to the end of
///   the message without the closing `--boundary--`; the decoder, not finding it, fails. Others
///   are base64 followed by a mailing-list footer (spam/00313…) or quoted-printable with stray
///   `=` (hard_ham/00005…). Searching that raw text would miss the decoded words and match
///   inside the base64, so such a part is decoded again from its raw bytes by `decode`
///   (leniently) when its declared type is textual, and skipped when it is not (a broken
///   base64 attachment is no more text than an intact one).
/// - `message/*` parts other than embedded messages (`message/delivery-status`, RFC 3464):
///   textual, but mail-parser keeps them as binary.
/// - text/html: mail-parser's `html_to_text` loses all the text after a comment closed by
///   `--->` and all of a document whose `<head>` never closes; `html` repairs the markup first.
///
/// Compared with Dovecot over bench/imap_bench.py's 10,000 messages ("mortgage": 168 before
/// these fixes, 170 now, Dovecot 176), which searches the decoded source of every text/* and
/// message/* part, the differences left are by design. text/html is searched as the text a
/// reader sees, so words only in markup (URLs, attributes, comments), in the `<head>`
/// (`<title>`, `<style>`) or in a `<script>` are not found (all 6 for "mortgage", 15 of Dovecot's
/// 172 for "password", 83 of 5114 for "unsubscribe"), while words markup splits in the source
/// (`lo<!--x-->wer`) are; RFC 9051 does not say which of the two a search of HTML means. The
/// other way round, a multipart whose boundary never occurs is searched as text, as mail-parser
/// reads it (Dovecot skips it), and so is a part with an invalid Content-Type (`text/plain
/// charset=us-ascii`: RFC 2045 §5.2 recommends reading it as text/plain; Dovecot skips it).
fn parse(raw: &[u8]) -> Option<(String, String)> {
    // Header text comes from the raw blocks (`headers::push_header_text`): mail-parser only
    // needs the MIME fields that shape the body, so the others (Received above all, which it
    // would tokenize) are skipped unparsed.
    let message = MessageParser::new()
        .with_mime_headers()
        .default_header_ignore()
        .parse(raw)?;
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
            if part.is_encoding_problem {
                if let Some(text) = decoded_again(current, part) {
                    push_line(&mut body_text, &text);
                }
                continue;
            }
            match &part.body {
                PartType::Text(text) => push_line(&mut body_text, text),
                PartType::Html(html) => push_line(&mut body_text, &html::html_text(html)),
                PartType::Message(inner) => pending.push(inner),
                PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
                    if declared(part) == Declared::Text {
                        push_line(&mut body_text, &decode::charset_text(bytes, charset(part)));
                    }
                }
                PartType::Multipart(_) => {}
            }
        }
    }
    dismantle(message);
    Some((fold(&header_text), fold(&body_text)))
}

/// How a part's declared type is searched.
#[derive(PartialEq, Eq)]
enum Declared {
    /// text/* (text/html aside), message/*, or no Content-Type (RFC 2045 §5.2: text/plain).
    Text,
    Html,
    /// Not text (application/*, image/*, multipart/* without a boundary...): not searched.
    Other,
}

fn declared(part: &MessagePart<'_>) -> Declared {
    let Some(content_type) = part.content_type() else {
        return Declared::Text;
    };
    let ctype = content_type.ctype();
    if ctype.eq_ignore_ascii_case("text") {
        match content_type.subtype() {
            Some(subtype) if subtype.eq_ignore_ascii_case("html") => Declared::Html,
            _ => Declared::Text,
        }
    } else if ctype.eq_ignore_ascii_case("message") {
        Declared::Text
    } else {
        Declared::Other
    }
}

fn charset<'a>(part: &'a MessagePart<'_>) -> Option<&'a str> {
    part.content_type()?.attribute("charset")
}

/// The text of a part mail-parser could not decode, decoded from its raw bytes; `None` when the
/// part is not declared textual.
fn decoded_again(message: &Message<'_>, part: &MessagePart<'_>) -> Option<String> {
    let is_html = match declared(part) {
        Declared::Text => false,
        Declared::Html => true,
        Declared::Other => return None,
    };
    let raw = message
        .raw_message
        .get(part.offset_body as usize..part.offset_end as usize)?;
    let text = decode::body_text(raw, part.content_transfer_encoding(), charset(part));
    Some(if is_html {
        html::html_text(&text)
    } else {
        text
    })
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
    fn parts_mail_parser_cannot_decode_are_decoded_again_if_textual_and_skipped_if_not() {
        // The attachment's base64 has a stray `!`; the text part never meets a closing
        // boundary: mail-parser's decoder gives up on both.
        let raw = b"Content-Type: multipart/report; boundary=b\r\n\r\n\
            --b\r\nContent-Type: message/delivery-status\r\n\r\nAction: failed\r\n\
            --b\r\nContent-Type: application/octet-stream\r\n\
            Content-Transfer-Encoding: base64\r\n\r\nc2VjcmV0!\r\n\
            --b\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\
            Content-Transfer-Encoding: base64\r\n\r\nbW9ydGdhZ2UgZvxy\r\n";
        let content = extract(raw);
        assert!(content.body_text.contains("action: failed"));
        assert!(content.body_text.contains("mortgage für"));
        assert!(!content.body_text.contains("secret"));
        assert!(!content.body_text.contains("c2vj"));
        assert!(!content.body_text.contains("bw9y"));
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
