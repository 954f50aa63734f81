//! The FETCH response writer (RFC 9051 §6.4.5, §7.5.2): one `* <seq> FETCH (...)` response per
//! message, with body literals streamed from the store (docs/imap-plan.md §1.4).
//!
//! Everything imap-codec can express is encoded by it. Each body item is encoded as a one-byte
//! placeholder literal whose `{1}` is then patched to the real length (`~{n}` for a BINARY
//! literal8, `""` when empty) while the real bytes are streamed from
//! [`MailStore::wire_reader`]. RFC 8474 EMAILID/THREADID and RFC 8514 SAVEDATE, which imap-codec
//! cannot encode, are spliced in before the closing parenthesis, as is an ENVELOPE rendered at
//! ingest ([`RenderedEnvelope`]) when the request reads nothing else from the summary.
//!
//! Every decision that could fail (an unknown transfer encoding, decoded sizes, opening the
//! message) is made before the first byte of a message's response is written, so an error leaves
//! the connection in a clean state and can become a tagged NO.
//!
//! This module depends on nothing else in the crate: the session code calls [`write_fetch`] once
//! per message.

mod convert;
mod decode;
mod encode;
mod literal;
mod request;
mod section;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_types::fetch::MessageDataItemName;
use postkeep_imap_proto::RenderedEnvelope;
use postkeep_message::MessageSummary;
use postkeep_store::{EntryRecord, MailStore, StoreError};

pub use encode::Sink;
pub use request::FetchRequest;

/// Session state that changes what a FETCH response contains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchOptions {
    /// UID FETCH: the UID item is always included (RFC 9051 §6.4.9). Also for the unsolicited
    /// FETCH responses of a CONDSTORE session, which RFC 7162 wants to carry UID and MODSEQ.
    pub uid: bool,
    /// CONDSTORE enabled for the session: MODSEQ is always included (RFC 7162 §3.1.4.1).
    pub modseq: bool,
    /// UTF8=ACCEPT enabled (RFC 6855) or IMAP4rev2: non-ASCII may be sent as UTF-8 quoted
    /// strings. Otherwise non-ASCII ENVELOPE display names are re-encoded as RFC 2047
    /// encoded-words and other 8-bit strings are sent as literals.
    pub utf8: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("I/O error while writing a FETCH response: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// BINARY of a part whose Content-Transfer-Encoding cannot be decoded: the command gets
    /// `NO [UNKNOWN-CTE]` (RFC 3516 §4.3).
    #[error("unknown Content-Transfer-Encoding")]
    UnknownCte,
}

/// What is opened of a message's sealed summary before its response is written.
#[derive(Debug)]
pub enum Opened {
    /// The request reads nothing from the summary.
    Nothing,
    Summary(Box<MessageSummary>),
    /// ENVELOPE is the only summary item: its rendering from ingest, written as it is.
    Envelope(RenderedEnvelope),
}

impl Opened {
    /// Opens what `req` reads of `item`, which was loaded with [`FetchRequest::record_parts`].
    pub async fn load(
        store: &MailStore,
        item: &EntryRecord,
        req: &FetchRequest,
    ) -> Result<Self, StoreError> {
        if !req.needs_summary() {
            return Ok(Opened::Nothing);
        }
        if !req.needs_only_envelope() {
            return Ok(Opened::Summary(Box::new(
                store.summary(&item.record).await?,
            )));
        }
        Ok(match store.rendered_envelope(&item.record).await? {
            Some(rendered) => Opened::Envelope(rendered),
            // Stored before envelopes were rendered at ingest.
            None => Opened::Summary(Box::new(MessageSummary {
                envelope: store.envelope(&item.record).await?,
                ..MessageSummary::default()
            })),
        })
    }
}

/// Writes one complete `* <seq> FETCH (...)\r\n` response for one message, streaming body
/// literals from the store. A whole message is never read into memory: BINARY decoding and
/// HEADER.FIELDS filtering keep at most 1 MiB of output per message and otherwise measure in a
/// first pass and stream in a second.
///
/// `opened` is what [`Opened::load`] returned for this request.
///
/// [`FetchError::Store`] and [`FetchError::UnknownCte`] come before anything is written, so the
/// command can end with a tagged NO. [`FetchError::Io`] may come after part of the response was
/// written (a failed write, or message data that cannot be read mid-stream): close the
/// connection. An empty item list writes nothing. What the sink holds back is the caller's to
/// write (see [`Sink`]).
pub async fn write_fetch<W: tokio::io::AsyncWrite + Unpin + Send>(
    sink: &mut Sink<'_, W>,
    store: &MailStore,
    seq: u32,
    item: &EntryRecord,
    opened: &Opened,
    req: &FetchRequest,
    opts: &FetchOptions,
) -> Result<(), FetchError> {
    let seq = NonZeroU32::new(seq).ok_or_else(|| {
        FetchError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "message sequence numbers start at 1",
        ))
    })?;
    let (summary, rendered) = match opened {
        Opened::Summary(summary) => (Cow::Borrowed(&**summary), None),
        Opened::Envelope(rendered) => (Cow::Owned(MessageSummary::default()), Some(rendered)),
        // Nothing requested reads it: the items that do are exactly `needs_summary`.
        Opened::Nothing => (Cow::Owned(MessageSummary::default()), None),
    };
    let mut planner = literal::Planner::new(store, &item.record, &summary);
    let mut items = Vec::new();
    let mut bodies = Vec::new();
    let (uid, modseq) = (MessageDataItemName::Uid, MessageDataItemName::ModSeq);
    let added_uid = (opts.uid && !req.has(&uid)).then_some(&uid);
    let added_modseq = (opts.modseq && !req.has(&modseq)).then_some(&modseq);
    let mut spliced = Vec::new();
    for name in added_uid.into_iter().chain(req.items()).chain(added_modseq) {
        if let (MessageDataItemName::Envelope, Some(rendered)) = (name, rendered) {
            spliced.extend_from_slice(b"ENVELOPE ");
            spliced.extend_from_slice(rendered.for_session(opts.utf8));
            continue;
        }
        let (data_item, body) = planner.plan(name, &item.entry, opts.utf8).await?;
        items.push(data_item);
        bodies.extend(body);
    }
    planner.open_first(&mut bodies).await?;
    encode::ext_items(req.ext(), item, &mut spliced);
    encode::write_response(sink, store, &item.record, seq, items, bodies, &spliced).await
}
