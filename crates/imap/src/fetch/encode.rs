//! Assembling one FETCH response: imap-codec's encoding with each placeholder literal's `{1}`
//! patched to the real literal header and the real bytes streamed in its place, and the items
//! imap-codec does not encode (extension items, an ENVELOPE rendered at ingest) spliced in before
//! the closing parenthesis.

use std::io;
use std::num::NonZeroU32;

use imap_codec::encode::{Encoder, Fragment};
use imap_codec::ResponseCodec;
use imap_types::core::Vec1;
use imap_types::fetch::MessageDataItem;
use imap_types::response::{Data, Response};
use postkeep_imap_proto::ext::FetchExt;
use postkeep_store::{EntryRecord, MailStore, MessageRecord};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::convert;
use super::literal::{BodyData, CHUNK, PLACEHOLDER};
use super::FetchError;

/// How imap-codec writes the header of a one-byte literal.
const PLACEHOLDER_HEADER: &[u8] = b"{1}\r\n";

/// How an encoded response ends.
const RESPONSE_END: &[u8] = b")\r\n";

/// Collects small pieces in the caller's buffer and writes [`CHUNK`] bytes at a time. What is
/// left in the buffer stays there for the next response: one write per message would cost a
/// TLS record and a system call each.
pub struct Sink<'w, W> {
    out: &'w mut W,
    buf: &'w mut Vec<u8>,
}

impl<'w, W: AsyncWrite + Unpin + Send> Sink<'w, W> {
    pub fn new(out: &'w mut W, buf: &'w mut Vec<u8>) -> Self {
        Sink { out, buf }
    }

    pub(super) async fn push(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = CHUNK.saturating_sub(self.buf.len());
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.buf.extend_from_slice(now);
            bytes = rest;
            if self.buf.len() >= CHUNK {
                self.out.write_all(self.buf).await?;
                self.buf.clear();
            }
        }
        Ok(())
    }
}

/// Encodes and writes the response. `bodies` holds one entry per placeholder in `items`, in
/// order; `spliced` is the text of the items imap-codec did not encode, space-separated.
pub(super) async fn write_response<W: AsyncWrite + Unpin + Send>(
    sink: &mut Sink<'_, W>,
    store: &MailStore,
    record: &MessageRecord,
    seq: NonZeroU32,
    items: Vec<MessageDataItem<'static>>,
    bodies: Vec<BodyData>,
    spliced: &[u8],
) -> Result<(), FetchError> {
    let Ok(items) = Vec1::try_from(items) else {
        // Only spliced items were asked for (ENVELOPE alone, say). With none at all there is
        // nothing to say: msg-att holds at least one item (RFC 9051 §9).
        if !spliced.is_empty() {
            sink.push(format!("* {seq} FETCH (").as_bytes()).await?;
            sink.push(spliced).await?;
            sink.push(RESPONSE_END).await?;
        }
        return Ok(());
    };
    let response = Response::Data(Data::Fetch { seq, items });
    let mut fragments = ResponseCodec::default().encode(&response).peekable();
    let mut bodies = bodies.into_iter();
    while let Some(fragment) = fragments.next() {
        match fragment {
            Fragment::Line { mut data } if fragments.peek().is_some_and(is_placeholder) => {
                fragments.next();
                let body = bodies.next().ok_or_else(|| internal("placeholder"))?;
                literal_header(&mut data, &body)?;
                sink.push(&data).await?;
                body.write(store, record, sink).await?;
            }
            Fragment::Line { data } if fragments.peek().is_none() && !spliced.is_empty() => {
                // The spliced items go before the `)` that closes the response.
                let items = data
                    .strip_suffix(RESPONSE_END)
                    .ok_or_else(|| internal("response end"))?;
                for piece in [items, b" ", spliced, RESPONSE_END] {
                    sink.push(piece).await?;
                }
            }
            Fragment::Line { data } => sink.push(&data).await?,
            // A literal of the encoding itself (an 8-bit string in an envelope, say).
            Fragment::Literal { data, .. } => sink.push(&data).await?,
        }
    }
    Ok(())
}

/// Appends the RFC 8474 EMAILID/THREADID and RFC 8514 SAVEDATE items to `spliced`,
/// space-separated.
pub(super) fn ext_items(ext: &[FetchExt], item: &EntryRecord, spliced: &mut Vec<u8>) {
    let items = ext.iter().filter_map(|ext| match ext {
        // RFC 8474 §5.1: never NIL; our ids are always valid objectids.
        FetchExt::EmailId => objectid(&item.record.id).map(|id| format!("EMAILID ({id})")),
        // RFC 8474 §5.2: NIL when the server does not thread the message.
        FetchExt::ThreadId => Some(match objectid(&item.record.thread_id) {
            Some(id) => format!("THREADID ({id})"),
            None => "THREADID NIL".to_owned(),
        }),
        // RFC 8514 §4: a date-time, or NIL when there is none.
        FetchExt::SaveDate => Some(match convert::save_date(item.entry.save_date) {
            Some(date) => format!("SAVEDATE \"{date}\""),
            None => "SAVEDATE NIL".to_owned(),
        }),
    });
    for item in items {
        if !spliced.is_empty() {
            spliced.push(b' ');
        }
        spliced.extend_from_slice(item.as_bytes());
    }
}

/// RFC 8474 §4 objectid: 1*255(ALPHA / DIGIT / "_" / "-").
fn objectid(id: &str) -> Option<&str> {
    let valid = (1..=255).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    valid.then_some(id)
}

fn is_placeholder(fragment: &Fragment) -> bool {
    matches!(fragment, Fragment::Literal { data, .. } if data.as_slice() == [PLACEHOLDER])
}

/// Replaces the `{1}\r\n` that ends `line` with the body's real literal header: `{n}\r\n`,
/// `~{n}\r\n` for literal8 (RFC 3516 §4.3), or `""` when empty; inserts a BINARY origin.
fn literal_header(line: &mut Vec<u8>, body: &BodyData) -> Result<(), FetchError> {
    let head = line
        .len()
        .checked_sub(PLACEHOLDER_HEADER.len())
        .filter(|&at| line.get(at..) == Some(PLACEHOLDER_HEADER))
        .ok_or_else(|| internal("literal header"))?;
    line.truncate(head);
    if let Some(origin) = body.binary_origin {
        // imap-codec wrote `BINARY[section] `; the origin goes after the section.
        if line.pop() != Some(b' ') {
            return Err(internal("BINARY item"));
        }
        line.extend_from_slice(format!("<{origin}> ").as_bytes());
    }
    let header = match (body.len, body.literal8) {
        (0, _) => "\"\"".to_owned(),
        (len, true) => format!("~{{{len}}}\r\n"),
        (len, false) => format!("{{{len}}}\r\n"),
    };
    line.extend_from_slice(header.as_bytes());
    Ok(())
}

/// imap-codec did not encode the response the way this module relies on.
fn internal(what: &str) -> FetchError {
    FetchError::Io(io::Error::other(format!(
        "unexpected FETCH encoding: {what}"
    )))
}
