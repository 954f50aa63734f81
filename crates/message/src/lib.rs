#![forbid(unsafe_code)]
//! Parses a raw RFC 5322 message once, at ingest, into a [`MessageSummary`] that is stored
//! (encrypted) next to the message, so IMAP FETCH ENVELOPE / BODYSTRUCTURE / BODY\[section\]
//! and threading never parse the message again.
//!
//! - ENVELOPE: [`Envelope`], RFC 9051 §7.5.2. Sender/Reply-To defaulting is done here.
//! - BODYSTRUCTURE: [`BodyPart`] tree with byte offsets into the raw message for every part.
//! - Threading: Message-ID, In-Reply-To, References, Date and the RFC 5256 base subject.
//! - Content: [`TransferDecoder`], streaming lenient base64 and quoted-printable (RFC 2045 §6),
//!   for IMAP BINARY and SEARCH.
//!
//! [`summarize`] is a thin wrapper over [`StreamingSummarizer`], which reads the message in
//! chunks and keeps only header blocks and per-level state, so ingest never needs the whole
//! message in memory; mail-parser parses the header blocks only.
//!
//! Input is untrusted: [`summarize`] never panics and caps the tree at [`MAX_DEPTH`] levels
//! and [`MAX_PARTS`] parts. It summarises the bytes exactly as given: strip an mbox `From `
//! line first. A message IMAP will serve is summarised in its CRLF [`wire`] form
//! ([`wire::summarize_wire`]), because IMAP sizes and offsets are of CRLF text.

mod authentication;
mod body;
mod envelope;
mod model;
mod raw;
mod stream;
mod subject;
mod transfer;
pub mod wire;

use std::panic::{catch_unwind, AssertUnwindSafe};

use mail_parser::{Message, MessageParser, PartType};

pub use authentication::{
    ArcCheck, AuthResult, DkimCheck, DmarcCheck, DmarcPolicy, SenderAuthentication, SpfCheck,
    SpfIdentity,
};
pub use body::{MAX_DEPTH, MAX_PARTS};
pub use model::{Address, BodyPart, EmbeddedMessage, Envelope, MessageSummary};
pub use stream::StreamingSummarizer;
pub use subject::base_subject;
pub use transfer::{Base64Decoder, Base64Leniency, QuotedPrintableDecoder, TransferDecoder};

/// Summarises a raw RFC 5322 message. Best effort on malformed input; never panics.
/// Same as feeding `raw` to a [`StreamingSummarizer`] in one chunk.
pub fn summarize(raw: &[u8]) -> MessageSummary {
    let mut s = StreamingSummarizer::new();
    s.feed(raw);
    s.finish()
}

/// Reference implementation: the whole message through mail-parser, as `summarize` worked
/// before streaming. Needs the message in memory; kept only as the oracle the streaming path
/// is tested against (tests/streaming.rs). Not for production use.
#[doc(hidden)]
pub fn summarize_with_mail_parser(raw: &[u8]) -> MessageSummary {
    // Defence in depth: mail-parser is third-party code fed hostile bytes. A panic in it
    // degrades to the minimal summary instead of taking down ingest.
    catch_unwind(AssertUnwindSafe(|| parse(raw)))
        .ok()
        .flatten()
        .unwrap_or_else(|| fallback(raw))
}

fn parse(raw: &[u8]) -> Option<MessageSummary> {
    let message = MessageParser::default().parse(raw)?;
    let summary = from_message(raw, &message);
    dismantle(message);
    summary
}

fn from_message(raw: &[u8], message: &Message<'_>) -> Option<MessageSummary> {
    let headers = &message.parts.first()?.headers;
    let body = body::TreeBuilder::new(raw).message_body(message)?;
    Some(MessageSummary {
        body,
        ..header_fields(raw, headers)
    })
}

/// Everything a summary takes from the top-level header block (`raw` is the buffer the
/// headers' offsets point into). Shared by [`summarize`] and [`StreamingSummarizer`].
pub(crate) fn header_fields(raw: &[u8], headers: &[mail_parser::Header<'_>]) -> MessageSummary {
    let subject = envelope::decoded_subject(headers);
    MessageSummary {
        envelope: envelope::envelope(raw, headers),
        body: BodyPart::default(),
        message_id: envelope::ids(headers, &mail_parser::HeaderName::MessageId)
            .into_iter()
            .next(),
        in_reply_to: envelope::ids(headers, &mail_parser::HeaderName::InReplyTo),
        references: envelope::ids(headers, &mail_parser::HeaderName::References),
        sent_date: envelope::sent_date(headers),
        thread_subject: base_subject(subject.as_deref().unwrap_or_default()),
        subject,
        // Not in the message: the delivery pipeline fills it in.
        authentication: None,
    }
}

/// Drops nested messages one level at a time. The derived drop of mail-parser's `Message`
/// recurses once per message/rfc822 level, and mail-parser nests those without limit, so a
/// message of a few MB could overflow the stack just being freed.
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

/// Summary for input mail-parser cannot read: no envelope, one TEXT/PLAIN part after the
/// first blank line (or an empty body when there is none, everything being header).
fn fallback(raw: &[u8]) -> MessageSummary {
    let body_offset = raw::header_end(raw);
    let content = raw.get(body_offset..).unwrap_or_default();
    fallback_summary(
        body_offset as u64,
        raw.len() as u64,
        raw::count_lines(content),
    )
}

/// The fallback summary's shape, shared with the streaming path.
pub(crate) fn fallback_summary(body_offset: u64, end_offset: u64, lines: u64) -> MessageSummary {
    MessageSummary {
        body: BodyPart {
            content_type: "TEXT".into(),
            subtype: "PLAIN".into(),
            params: vec![("charset".into(), "us-ascii".into())],
            encoding: "7BIT".into(),
            lines: Some(lines),
            header_offset: 0,
            body_offset,
            end_offset,
            ..BodyPart::default()
        },
        ..MessageSummary::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_without_headers_gets_the_fallback_summary() {
        let raw = b"just some words\r\nno header here\r\n";
        let s = summarize(raw);
        assert_eq!(s.body.content_type, "TEXT");
        assert_eq!(s.body.end_offset, raw.len() as u64);
        assert!(s.body.body_offset <= s.body.end_offset);
        assert_eq!(s.envelope, Envelope::default());
    }

    #[test]
    fn empty_input_is_an_empty_text_part() {
        let s = summarize(b"");
        assert_eq!(
            (s.body.header_offset, s.body.body_offset, s.body.end_offset),
            (0, 0, 0)
        );
        assert_eq!(s.body.lines, Some(0));
    }
}
