//! A store with one account, messages appended to its INBOX, and FETCH run into a buffer.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use imap_codec::decode::Decoder;
use imap_codec::CommandCodec;
use imap_types::command::CommandBody;
use postkeep_imap_proto::ext::FetchExt;
use postkeep_store::{EntryRecord, Flag, FlagChange, FlagOp, MailStore, MailboxRole, RecordParts};
use tempfile::TempDir;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::fetch::{write_fetch, FetchError, FetchOptions, FetchRequest, Opened, Sink};

/// 2026-02-02 10:00:00 UTC.
pub(super) const INTERNAL_DATE: i64 = 1_770_026_400;

pub(super) struct Fixture {
    _dir: TempDir,
    pub(super) store: Arc<MailStore>,
    account_id: i64,
}

impl Fixture {
    pub(super) async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = postkeep_store::testing::store_with_domain(dir.path(), "example.org").await;
        let account = store
            .create_account("alice@example.org", None)
            .await
            .expect("account");
        Fixture {
            _dir: dir,
            store,
            account_id: account.id,
        }
    }

    /// Appends `raw` to INBOX with `flags` and `keywords`; returns its FETCH row, with the
    /// sealed summary and rendered envelope loaded.
    pub(super) async fn append(
        &self,
        raw: &[u8],
        flags: &[Flag],
        keywords: &[&str],
    ) -> EntryRecord {
        let done = self
            .store
            .append(
                self.account_id,
                MailboxRole::Inbox,
                raw.to_vec(),
                INTERNAL_DATE,
                flags,
            )
            .await
            .expect("append");
        if !keywords.is_empty() {
            let keywords: Vec<String> = keywords.iter().map(|k| k.to_string()).collect();
            self.store
                .update_flags(&FlagChange {
                    mailbox_id: done.mailbox_id,
                    uids: &[done.uid],
                    op: FlagOp::Add,
                    flags: 0,
                    keywords: &keywords,
                    unchanged_since: None,
                })
                .await
                .expect("keywords");
        }
        let mut rows = self
            .store
            .entry_records(
                done.mailbox_id,
                &[done.uid..=done.uid],
                RecordParts {
                    envelope: true,
                    ..RecordParts::SUMMARY
                },
            )
            .await
            .expect("entry records");
        rows.pop().expect("the appended row")
    }

    /// The whole summary of `item`, opened.
    pub(super) async fn summary(&self, item: &EntryRecord) -> Opened {
        Opened::Summary(Box::new(
            self.store.summary(&item.record).await.expect("summary"),
        ))
    }

    /// FETCH `items` (IMAP syntax, e.g. `(UID BODY[1])`) of `item` as message 1.
    pub(super) async fn fetch(
        &self,
        item: &EntryRecord,
        items: &str,
        opts: FetchOptions,
    ) -> Result<Vec<u8>, FetchError> {
        self.fetch_ext(item, items, Vec::new(), opts).await
    }

    pub(super) async fn fetch_ext(
        &self,
        item: &EntryRecord,
        items: &str,
        ext: Vec<FetchExt>,
        opts: FetchOptions,
    ) -> Result<Vec<u8>, FetchError> {
        let req = request(items, ext);
        let opened = Opened::load(&self.store, item, &req).await?;
        let mut out = Vec::new();
        fetch_into(&mut out, &self.store, item, &opened, &req, &opts).await?;
        Ok(out)
    }

    /// [`Fixture::fetch`] that must succeed, as text (lossy: for readable failures).
    pub(super) async fn text(&self, item: &EntryRecord, items: &str, opts: FetchOptions) -> String {
        let out = self.fetch(item, items, opts).await.expect("fetch");
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// [`write_fetch`] of `item` as message 1 into `out`, then what the sink held back, also after
/// an error, as the session writes it before its tagged reply.
pub(super) async fn fetch_into<W: AsyncWrite + Unpin + Send>(
    out: &mut W,
    store: &MailStore,
    item: &EntryRecord,
    opened: &Opened,
    req: &FetchRequest,
    opts: &FetchOptions,
) -> Result<(), FetchError> {
    let mut pending = Vec::new();
    let result = write_fetch(
        &mut Sink::new(out, &mut pending),
        store,
        1,
        item,
        opened,
        req,
        opts,
    )
    .await;
    out.write_all(&pending).await?;
    result
}

/// The request a client's `FETCH 1 <items>` makes.
pub(super) fn request(items: &str, ext: Vec<FetchExt>) -> FetchRequest {
    let line = format!("A FETCH 1 {items}\r\n");
    let (_, command) = CommandCodec::default()
        .decode_static(line.as_bytes())
        .expect("a FETCH command imap-codec parses");
    match command.body {
        CommandBody::Fetch {
            macro_or_item_names,
            ..
        } => FetchRequest::new(macro_or_item_names, ext),
        other => panic!("not a FETCH: {other:?}"),
    }
}

pub(super) fn plain() -> FetchOptions {
    FetchOptions::default()
}

pub(super) fn utf8() -> FetchOptions {
    FetchOptions {
        utf8: true,
        ..FetchOptions::default()
    }
}

/// An `AsyncWrite` that keeps only counts: how much was written, and the largest single write.
#[derive(Default)]
pub(super) struct CountingWriter {
    pub(super) total: u64,
    pub(super) largest: usize,
    pub(super) writes: u64,
    /// The first bytes written, to check the response's start.
    pub(super) head: Vec<u8>,
    /// The last bytes written, to check its end.
    pub(super) tail: Vec<u8>,
}

impl AsyncWrite for CountingWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        this.total += buf.len() as u64;
        this.largest = this.largest.max(buf.len());
        this.writes += 1;
        if this.head.len() < 256 {
            this.head.extend_from_slice(&buf[..buf.len().min(256)]);
        }
        this.tail.extend_from_slice(buf);
        let keep = this.tail.len().saturating_sub(256);
        this.tail.drain(..keep);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
