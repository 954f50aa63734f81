//! Planning each FETCH data item of one message, and streaming body literals.
//!
//! Planning decides everything that could fail before the response starts: unknown transfer
//! encodings, decoded and filtered sizes (a first pass that keeps the output when it is small),
//! and opening the message. Writing then streams each literal from the store on a blocking
//! thread through a small channel, as POP3's RETR does.

use std::io::{self, Read};
use std::num::{NonZeroU32, NonZeroU64};
use std::ops::Range;

use imap_types::core::{IString, Literal, NString, NString8};
use imap_types::fetch::{MessageDataItem, MessageDataItemName, Section};
use postkeep_message::MessageSummary;
use postkeep_store::{MailStore, MessageEntry, MessageRecord};
use tokio::sync::mpsc;

use super::convert;
use super::decode::Transform;
use super::section::{self, Target};
use super::FetchError;

/// Bytes read from the store, and written to the client, at a time.
pub(super) const CHUNK: usize = 64 * 1024;

/// Chunks in flight between the reading thread and the writer.
const STREAM_DEPTH: usize = 4;

/// Transformed bytes (decoded BINARY, filtered headers) one message's response may hold in
/// memory. Beyond it, data is measured in a first pass and streamed in a second, so a request
/// naming many sections cannot make the server hold many copies of a message.
pub(super) const MEMORY_BUDGET: usize = 1024 * 1024;

/// The byte the placeholder literals carry. Every other literal in a response is a UTF-8
/// string, and a lone 0xFF is never UTF-8, so placeholders cannot be confused with them.
pub(super) const PLACEHOLDER: u8 = 0xFF;

/// The literal of one body item, decided before anything is written.
pub(super) struct BodyData {
    pub(super) len: u64,
    /// Send as RFC 3516 literal8 (`~{n}`): BINARY data containing NUL.
    pub(super) literal8: bool,
    /// The `<origin>` of a partial BINARY, which imap-types cannot express.
    pub(super) binary_origin: Option<u32>,
    pub(super) content: Content,
}

pub(super) enum Content {
    Memory(Vec<u8>),
    Stream(Stream),
}

/// Wire bytes to read again and transform, skipping `skip` bytes of output, `len` bytes sent.
pub(super) struct Stream {
    range: Range<u64>,
    transform: Transform,
    skip: u64,
    /// Replace NUL by 0x80: a literal may not contain NUL (RFC 9051 §4.3, CHAR8).
    map_nul: bool,
    /// The reader, when it was opened while planning.
    reader: Option<Box<dyn Read + Send>>,
}

/// The output of a first pass over transformed data.
struct Measured {
    size: u64,
    has_nul: bool,
    /// The output itself, when it fitted the memory budget.
    data: Option<Vec<u8>>,
}

/// Plans the items of one message.
pub(super) struct Planner<'a> {
    store: &'a MailStore,
    record: &'a MessageRecord,
    summary: &'a MessageSummary,
    budget: usize,
    /// First passes over BINARY parts, by section: BINARY and BINARY.SIZE of the same part
    /// share one.
    decoded: Vec<(Vec<NonZeroU32>, Measured)>,
}

impl<'a> Planner<'a> {
    pub(super) fn new(
        store: &'a MailStore,
        record: &'a MessageRecord,
        summary: &'a MessageSummary,
    ) -> Self {
        Planner {
            store,
            record,
            summary,
            budget: MEMORY_BUDGET,
            decoded: Vec::new(),
        }
    }

    /// The response item for one requested item, with a placeholder literal and its body data
    /// for the items that carry message text.
    pub(super) async fn plan(
        &mut self,
        name: &MessageDataItemName<'static>,
        entry: &MessageEntry,
        utf8: bool,
    ) -> Result<(MessageDataItem<'static>, Option<BodyData>), FetchError> {
        use MessageDataItem as D;
        use MessageDataItemName as N;
        let summary = self.summary;
        let item = match name {
            N::Flags => D::Flags(convert::flags(entry)),
            N::Uid => D::Uid(NonZeroU32::new(entry.uid).unwrap_or(NonZeroU32::MIN)),
            N::InternalDate => D::InternalDate(convert::date_time(self.record.internal_date)),
            N::Rfc822Size => D::Rfc822Size(convert::saturate(self.record.wire_size)),
            N::Envelope => D::Envelope(convert::envelope(&summary.envelope, utf8)),
            N::Body => D::Body(convert::body_structure(&summary.body, false, utf8)),
            N::BodyStructure => {
                D::BodyStructure(convert::body_structure(&summary.body, true, utf8))
            }
            N::ModSeq => D::ModSeq(NonZeroU64::new(entry.modseq).unwrap_or(NonZeroU64::MIN)),
            N::BinarySize { section } => D::BinarySize {
                section: section.clone(),
                size: convert::saturate(self.binary_size(section).await?),
            },
            N::BodyExt {
                section, partial, ..
            } => {
                let body = self.section(section.as_ref(), *partial).await?;
                let item = D::BodyExt {
                    section: section.clone(),
                    origin: partial.map(|(origin, _)| origin),
                    data: placeholder(),
                };
                return Ok((item, Some(body)));
            }
            N::Rfc822 => return self.whole(None, D::Rfc822(placeholder())).await,
            N::Rfc822Header => {
                let header = Section::Header(None);
                return self
                    .whole(Some(&header), D::Rfc822Header(placeholder()))
                    .await;
            }
            N::Rfc822Text => {
                let text = Section::Text(None);
                return self.whole(Some(&text), D::Rfc822Text(placeholder())).await;
            }
            N::Binary {
                section, partial, ..
            } => {
                let body = self.binary(section, *partial).await?;
                let item = D::Binary {
                    section: section.clone(),
                    value: NString8::NString(placeholder()),
                };
                return Ok((item, Some(body)));
            }
        };
        Ok((item, None))
    }

    /// Opens the first streamed literal's reader now, so a message that cannot be read fails
    /// before its response starts. The others open as they are written: a request naming many
    /// sections must not hold many readers (and inline blobs) at once.
    pub(super) async fn open_first(&self, bodies: &mut [BodyData]) -> Result<(), FetchError> {
        let first = bodies.iter_mut().find_map(|body| match &mut body.content {
            Content::Stream(stream) => Some(stream),
            Content::Memory(_) => None,
        });
        if let Some(stream) = first {
            stream.reader = Some(open(self.store, self.record, &stream.range).await?);
        }
        Ok(())
    }

    async fn whole(
        &mut self,
        section: Option<&Section<'static>>,
        item: MessageDataItem<'static>,
    ) -> Result<(MessageDataItem<'static>, Option<BodyData>), FetchError> {
        let body = self.section(section, None).await?;
        Ok((item, Some(body)))
    }

    /// `BODY[section]<partial>` (RFC 9051 §6.4.5).
    async fn section(
        &mut self,
        section: Option<&Section<'static>>,
        partial: Option<(u32, NonZeroU32)>,
    ) -> Result<BodyData, FetchError> {
        Ok(
            match section::body(section, self.summary, self.record.wire_size) {
                Target::Missing => BodyData::empty(),
                Target::Bytes(range) => {
                    let range = window(range, partial);
                    let len = range.end - range.start;
                    BodyData::stream(len, range, Transform::Identity, 0, true)
                }
                Target::Fields {
                    range,
                    names,
                    exclude,
                } => {
                    let transform = Transform::fields(names, exclude);
                    let measured = self.measure(range.clone(), transform.clone()).await?;
                    transformed(&measured, range, transform, partial, true)
                }
            },
        )
    }

    /// `BINARY[section]<partial>` (RFC 3516 §4.2): the part with its transfer encoding undone.
    async fn binary(
        &mut self,
        section: &[NonZeroU32],
        partial: Option<(u32, NonZeroU32)>,
    ) -> Result<BodyData, FetchError> {
        let Some((range, transform)) = self.binary_source(section)? else {
            return Ok(BodyData::empty());
        };
        let measured = self
            .decoded(section, range.clone(), transform.clone())
            .await?;
        let mut body = transformed(measured, range, transform, partial, false);
        body.binary_origin = partial.map(|(origin, _)| origin);
        Ok(body)
    }

    /// `BINARY.SIZE[section]` (RFC 3516 §4.2): the decoded size.
    async fn binary_size(&mut self, section: &[NonZeroU32]) -> Result<u64, FetchError> {
        let Some((range, transform)) = self.binary_source(section)? else {
            return Ok(0);
        };
        if matches!(transform, Transform::Identity) {
            return Ok(range.end - range.start);
        }
        Ok(self.decoded(section, range, transform).await?.size)
    }

    /// The part's wire bytes and its decoder; `None` for a part that does not exist.
    fn binary_source(
        &self,
        section: &[NonZeroU32],
    ) -> Result<Option<(Range<u64>, Transform)>, FetchError> {
        let Some((range, encoding)) = section::binary(section, self.summary, self.record.wire_size)
        else {
            return Ok(None);
        };
        let transform = match encoding {
            None => Transform::Identity,
            Some(encoding) => Transform::for_encoding(encoding).ok_or(FetchError::UnknownCte)?,
        };
        Ok(Some((range, transform)))
    }

    /// The first pass over a BINARY part, shared by every item naming it.
    async fn decoded(
        &mut self,
        section: &[NonZeroU32],
        range: Range<u64>,
        transform: Transform,
    ) -> Result<&Measured, FetchError> {
        let at = match self.decoded.iter().position(|(s, _)| s == section) {
            Some(at) => at,
            None => {
                let measured = self.measure(range, transform).await?;
                self.decoded.push((section.to_vec(), measured));
                self.decoded.len() - 1
            }
        };
        Ok(&self.decoded[at].1)
    }

    /// Reads `range` through `transform` once, keeping the output if it fits the budget.
    async fn measure(
        &mut self,
        range: Range<u64>,
        mut transform: Transform,
    ) -> Result<Measured, FetchError> {
        let mut reader = open(self.store, self.record, &range).await?;
        let (cap, input_len) = (self.budget, range.end - range.start);
        let measured = blocking(move || {
            let mut measured = Measured {
                size: 0,
                has_nul: false,
                data: Some(Vec::new()),
            };
            pump(&mut reader, &mut transform, input_len, |out| {
                measured.add(out, cap);
                true
            })?;
            Ok(measured)
        })
        .await?;
        self.budget -= measured.data.as_ref().map_or(0, Vec::len);
        Ok(measured)
    }
}

impl Measured {
    fn add(&mut self, out: &[u8], cap: usize) {
        self.size += out.len() as u64;
        self.has_nul |= memchr::memchr(0, out).is_some();
        let fits = self
            .data
            .as_ref()
            .is_some_and(|data| data.len() + out.len() <= cap);
        match &mut self.data {
            Some(data) if fits => data.extend_from_slice(out),
            _ => self.data = None,
        }
    }
}

impl BodyData {
    fn empty() -> Self {
        BodyData {
            len: 0,
            literal8: false,
            binary_origin: None,
            content: Content::Memory(Vec::new()),
        }
    }

    fn stream(len: u64, range: Range<u64>, transform: Transform, skip: u64, map_nul: bool) -> Self {
        if len == 0 {
            return BodyData::empty();
        }
        BodyData {
            len,
            literal8: false,
            binary_origin: None,
            content: Content::Stream(Stream {
                range,
                transform,
                skip,
                map_nul,
                reader: None,
            }),
        }
    }

    /// Writes this literal's bytes.
    pub(super) async fn write<W>(
        self,
        store: &MailStore,
        record: &MessageRecord,
        sink: &mut super::encode::Sink<'_, W>,
    ) -> Result<(), FetchError>
    where
        W: tokio::io::AsyncWrite + Unpin + Send,
    {
        let mut stream = match self.content {
            Content::Memory(data) => return Ok(sink.push(&data).await?),
            Content::Stream(stream) => stream,
        };
        let reader = match stream.reader.take() {
            Some(reader) => reader,
            // Part of the response may be out already: an I/O error says the connection
            // cannot go on.
            None => store
                .wire_reader(record, Some(stream.range.clone()))
                .await
                .map_err(io::Error::other)?,
        };
        let len = self.len;
        let mut sent = 0u64;
        if record.inline {
            // At most INLINE_MAX octets, already in memory: decoding them here costs less than
            // handing them to a blocking thread and back.
            let mut chunks = Vec::new();
            produce(reader, stream, len, |chunk| {
                chunks.push(chunk);
                true
            })?;
            for chunk in chunks {
                sent += chunk.len() as u64;
                sink.push(&chunk).await?;
            }
        } else {
            let (tx, mut rx) = mpsc::channel::<io::Result<Vec<u8>>>(STREAM_DEPTH);
            let producer = tokio::task::spawn_blocking(move || {
                let sent = produce(reader, stream, len, |chunk| {
                    // A send fails only when the writer has gone: stop reading.
                    tx.blocking_send(Ok(chunk)).is_ok()
                });
                if let Err(err) = sent {
                    let _ = tx.blocking_send(Err(err));
                }
            });
            while let Some(chunk) = rx.recv().await {
                let chunk = chunk?;
                sent += chunk.len() as u64;
                sink.push(&chunk).await?;
            }
            producer.await.map_err(io::Error::other)?;
        }
        if sent != len {
            // The literal's length is already on the wire: the connection cannot recover.
            return Err(FetchError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "message data ended before its recorded size",
            )));
        }
        Ok(())
    }
}

/// The body data of transformed output: a slice of what the first pass kept, or a second
/// pass.
fn transformed(
    measured: &Measured,
    range: Range<u64>,
    transform: Transform,
    partial: Option<(u32, NonZeroU32)>,
    map_nul: bool,
) -> BodyData {
    let window = window(0..measured.size, partial);
    let len = window.end - window.start;
    match &measured.data {
        Some(data) => {
            let start = usize::try_from(window.start).unwrap_or(usize::MAX);
            let end = usize::try_from(window.end).unwrap_or(usize::MAX);
            let mut data = data.get(start..end).unwrap_or_default().to_vec();
            let literal8 = !map_nul && memchr::memchr(0, &data).is_some();
            if map_nul {
                replace_nul(&mut data);
            }
            BodyData {
                len,
                literal8,
                binary_origin: None,
                content: Content::Memory(data),
            }
        }
        None => BodyData {
            literal8: !map_nul && measured.has_nul,
            ..BodyData::stream(len, range, transform, window.start, map_nul)
        },
    }
}

/// The part of `range` a partial fetch `<origin.count>` covers (RFC 9051 §6.4.5): empty when
/// the origin is past the end, truncated at the end.
fn window(range: Range<u64>, partial: Option<(u32, NonZeroU32)>) -> Range<u64> {
    let Some((origin, count)) = partial else {
        return range;
    };
    let start = range.start.saturating_add(u64::from(origin)).min(range.end);
    let end = start.saturating_add(u64::from(count.get())).min(range.end);
    start..end
}

fn placeholder() -> NString<'static> {
    NString(Some(IString::Literal(Literal::unvalidated(vec![
        PLACEHOLDER,
    ]))))
}

async fn open(
    store: &MailStore,
    record: &MessageRecord,
    range: &Range<u64>,
) -> Result<Box<dyn Read + Send>, FetchError> {
    Ok(store.wire_reader(record, Some(range.clone())).await?)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T, FetchError> {
    let result = tokio::task::spawn_blocking(work)
        .await
        .map_err(io::Error::other)?;
    Ok(result?)
}

/// Reads `reader` (`input_len` octets) to its end through `transform`, handing each piece of
/// output to `each`, which returns false to stop early.
fn pump(
    reader: &mut dyn Read,
    transform: &mut Transform,
    input_len: u64,
    mut each: impl FnMut(&mut Vec<u8>) -> bool,
) -> io::Result<()> {
    // Small messages are the common case: no 64 KiB buffers for them.
    let chunk = usize::try_from(input_len).map_or(CHUNK, |len| len.clamp(1, CHUNK));
    let mut buf = Vec::new();
    let mut out = Vec::with_capacity(chunk);
    loop {
        let n = match transform {
            // Nothing to transform: read straight into the output.
            Transform::Identity => read_chunk(reader, chunk, &mut out)?,
            _ => {
                buf.clear();
                let n = read_chunk(reader, chunk, &mut buf)?;
                match n {
                    0 => transform.finish(&mut out),
                    _ => transform.feed(&buf, &mut out),
                }
                n
            }
        };
        if !each(&mut out) || n == 0 {
            return Ok(());
        }
        out.clear();
    }
}

/// Appends up to `max` octets of `reader` to `buf` (fewer only at its end).
fn read_chunk(reader: &mut dyn Read, max: usize, buf: &mut Vec<u8>) -> io::Result<usize> {
    reader.take(max as u64).read_to_end(buf)
}

/// Reads a streamed literal (blocking reads): skips `skip` bytes of output and hands the next
/// `left` to `send` chunk by chunk, stopping early when `send` returns false.
fn produce(
    mut reader: Box<dyn Read + Send>,
    stream: Stream,
    mut left: u64,
    mut send: impl FnMut(Vec<u8>) -> bool,
) -> io::Result<()> {
    let (mut transform, mut skip, map_nul) = (stream.transform, stream.skip, stream.map_nul);
    let input_len = stream.range.end - stream.range.start;
    pump(&mut reader, &mut transform, input_len, |out| {
        let skipped = usize::try_from(skip).unwrap_or(usize::MAX).min(out.len());
        out.drain(..skipped);
        skip -= skipped as u64;
        out.truncate(usize::try_from(left).unwrap_or(usize::MAX));
        left -= out.len() as u64;
        if map_nul {
            replace_nul(out);
        }
        (out.is_empty() || send(std::mem::take(out))) && left > 0
    })
}

/// NUL cannot be sent in a literal: 0x80 takes its place, which keeps the size (what Dovecot
/// reportedly does, docs/imap-plan.md §2.3).
fn replace_nul(data: &mut [u8]) {
    let mut from = 0;
    while let Some(at) = data.get(from..).and_then(|rest| memchr::memchr(0, rest)) {
        data[from + at] = 0x80;
        from += at + 1;
    }
}
