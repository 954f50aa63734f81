//! Message bodies as they arrive over SMTP: small ones in memory, large ones streamed into the
//! `smtp-incoming` blob area, so a 50 MB message never needs 50 MB of RAM. The summary
//! (envelope, body structure) and the wire length are computed on the fly from the CRLF wire
//! form (docs/imap-plan.md §2.3; BDAT and APPEND may carry bare LFs), so the body is never
//! read back just to parse or measure it.
//!
//! A spooled body is sealed with an ephemeral key that exists only in this process's memory:
//! whatever a crash leaves in `smtp-incoming` is unreadable ciphertext, swept at the next start.

use std::io::{self, Write};
use std::sync::Arc;

use async_trait::async_trait;
use postkeep_crypto::blob::{BlobReader, BlobWriter};
use postkeep_crypto::DataKey;
use postkeep_message::wire::CrlfNormalizer;
use postkeep_message::{MessageSummary, StreamingSummarizer};
use postkeep_smtp::MessageSink;
use postkeep_store::{BlobArea, MailStore, MessageBytes, OpenSpool, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Bodies up to this size stay in memory; larger ones go to the spool.
pub const SPILL_AT: usize = 1024 * 1024;
/// Bytes handed to the spool writer at a time.
const SPOOL_CHUNK: usize = 256 * 1024;

fn spool_aad(id: &str) -> Vec<u8> {
    format!("postkeep spool v1|{id}").into_bytes()
}

/// Collects one message body (see the module docs).
pub struct SpoolSink {
    store: Arc<MailStore>,
    memory: Vec<u8>,
    spill: Option<Spill>,
    summarizer: StreamingSummarizer,
    /// Turns what the summarizer sees into the wire form; `wire` holds converted chunks.
    normalizer: CrlfNormalizer,
    wire: Vec<u8>,
    len: u64,
    wire_len: u64,
}

/// The spool file being written by a background task.
struct Spill {
    id: String,
    key: Arc<DataKey>,
    chunks: Option<mpsc::Sender<Vec<u8>>>,
    writer: Option<JoinHandle<Result<u64, StoreError>>>,
}

/// A finished body: its bytes (in memory or spooled), its summary, and the spool file that is
/// deleted when this is dropped.
pub struct ReceivedMessage {
    pub bytes: MessageBytes,
    pub summary: MessageSummary,
    /// Deletes the spool file (if any) when the message is dropped.
    pub _spool: Option<SpoolFile>,
}

impl SpoolSink {
    pub fn new(store: Arc<MailStore>) -> Self {
        Self {
            store,
            memory: Vec::with_capacity(64 * 1024),
            spill: None,
            summarizer: StreamingSummarizer::new(),
            normalizer: CrlfNormalizer::new(),
            wire: Vec::new(),
            len: 0,
            wire_len: 0,
        }
    }

    /// Starts the spool writer and hands it what was buffered so far.
    fn start_spill(&mut self) -> Spill {
        let id = postkeep_crypto::random_id();
        let key = Arc::new(DataKey::generate("spool"));
        let (chunks, mut incoming) = mpsc::channel::<Vec<u8>>(4);
        let (store, writer_key, writer_id) =
            (Arc::clone(&self.store), Arc::clone(&key), id.clone());
        let writer = tokio::spawn(async move {
            let aad = spool_aad(&writer_id);
            let fill = move |out: &mut dyn Write| -> io::Result<()> {
                let mut sealed = BlobWriter::new(&writer_key, &aad, out)?;
                // Runs on a blocking thread: waiting for the next chunk is fine here.
                while let Some(chunk) = incoming.blocking_recv() {
                    sealed.write_all(&chunk)?;
                }
                sealed.finish().map(|_| ())
            };
            store
                .blobs()
                .put(BlobArea::SmtpIncoming, &writer_id, Box::new(fill))
                .await
        });
        Spill {
            id,
            key,
            chunks: Some(chunks),
            writer: Some(writer),
        }
    }

    async fn send_to_spool(&mut self) -> io::Result<()> {
        let chunk = std::mem::replace(&mut self.memory, Vec::with_capacity(SPOOL_CHUNK));
        let Some(sender) = self.spill.as_ref().and_then(|spill| spill.chunks.as_ref()) else {
            return Err(io::Error::other("spool writer is gone"));
        };
        sender
            .send(chunk)
            .await
            .map_err(|_| io::Error::other("spool writer stopped"))
    }

    /// Ends the body: waits for the spool to be complete and returns the message.
    pub async fn finish(mut self) -> io::Result<ReceivedMessage> {
        let summary = std::mem::replace(&mut self.summarizer, StreamingSummarizer::new()).finish();
        if self.spill.is_none() {
            return Ok(ReceivedMessage {
                bytes: MessageBytes::Memory(Arc::new(std::mem::take(&mut self.memory))),
                summary,
                _spool: None,
            });
        }
        if !self.memory.is_empty() {
            self.send_to_spool().await?;
        }
        let Some(mut spill) = self.spill.take() else {
            return Err(io::Error::other("spool vanished"));
        };
        // From here the guard owns the file: it is deleted on every path once unneeded.
        let spool = SpoolFile {
            store: Arc::clone(&self.store),
            id: spill.id.clone(),
        };
        // Closing the channel lets the writer seal the last chunk and sync the file.
        spill.chunks = None;
        if let Some(writer) = spill.writer.take() {
            writer
                .await
                .map_err(io::Error::other)?
                .map_err(io::Error::other)?;
        }
        let open = open_spool(
            Arc::clone(&self.store),
            spill.id.clone(),
            Arc::clone(&spill.key),
        );
        Ok(ReceivedMessage {
            bytes: MessageBytes::Spooled {
                len: self.len,
                wire_len: self.wire_len,
                open,
            },
            summary,
            _spool: Some(spool),
        })
    }
}

fn open_spool(store: Arc<MailStore>, id: String, key: Arc<DataKey>) -> OpenSpool {
    Arc::new(move || {
        let sealed = store
            .blobs()
            .open(BlobArea::SmtpIncoming, &id)
            .map_err(io::Error::other)?;
        let reader = BlobReader::new(&key, &spool_aad(&id), sealed)?;
        Ok(Box::new(reader) as Box<dyn io::Read + Send>)
    })
}

#[async_trait]
impl MessageSink for SpoolSink {
    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let wire = self.normalizer.normalize(bytes, &mut self.wire);
        self.summarizer.feed(wire);
        self.wire_len += wire.len() as u64;
        self.len += bytes.len() as u64;
        self.memory.extend_from_slice(bytes);
        if self.spill.is_none() && self.memory.len() > SPILL_AT {
            let spill = self.start_spill();
            self.spill = Some(spill);
        }
        if self.spill.is_some() && self.memory.len() >= SPOOL_CHUNK {
            self.send_to_spool().await?;
        }
        Ok(())
    }
}

impl Drop for SpoolSink {
    /// A body that was never finished (aborted transaction, rejected message): let its writer
    /// end and delete what it wrote.
    fn drop(&mut self) {
        let Some(mut spill) = self.spill.take() else {
            return;
        };
        spill.chunks = None;
        let (Some(writer), Ok(runtime)) =
            (spill.writer.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let store = Arc::clone(&self.store);
        runtime.spawn(async move {
            let _ = writer.await;
            let _ = store
                .blobs()
                .delete(BlobArea::SmtpIncoming, &spill.id)
                .await;
        });
    }
}

/// Deletes a finished spool file when the message no longer needs it.
pub struct SpoolFile {
    store: Arc<MailStore>,
    id: String,
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (store, id) = (Arc::clone(&self.store), std::mem::take(&mut self.id));
            runtime.spawn(async move {
                if let Err(e) = store.blobs().delete(BlobArea::SmtpIncoming, &id).await {
                    tracing::warn!(error = %e, "could not delete a spool file");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use postkeep_message::wire;

    use super::*;

    /// An LF-only message (as BDAT or an import may bring) of `body_lines` body lines.
    fn lf_message(body_lines: usize) -> Vec<u8> {
        let mut raw = b"Subject: lf only\nContent-Type: multipart/mixed; boundary=b\n\n--b\n\
                        Content-Type: text/plain\n\n"
            .to_vec();
        for i in 0..body_lines {
            raw.extend_from_slice(format!("line {i} of a long body\n").as_bytes());
        }
        raw.extend_from_slice(b"--b--\n");
        raw
    }

    async fn received(raw: &[u8], dir: &std::path::Path) -> ReceivedMessage {
        let store = postkeep_store::testing::store_with_domain(dir, "example.org").await;
        let mut sink = SpoolSink::new(store);
        // Odd chunk sizes, so CR/LF pairs of the input fall on chunk boundaries.
        for chunk in raw.chunks(7919) {
            sink.write(chunk).await.unwrap();
        }
        sink.finish().await.unwrap()
    }

    #[tokio::test]
    async fn spooled_lf_message_carries_wire_length_and_wire_summary() {
        let dir = tempfile::tempdir().unwrap();
        let raw = lf_message(60_000);
        assert!(raw.len() > SPILL_AT, "the message must spill to the spool");
        let message = received(&raw, dir.path()).await;
        let MessageBytes::Spooled { len, wire_len, .. } = &message.bytes else {
            panic!("expected a spooled message, got {:?}", message.bytes);
        };
        assert_eq!(*len, raw.len() as u64);
        assert_eq!(*wire_len, wire::wire_len(&raw));
        assert_eq!(message.summary, wire::summarize_wire(&raw));
        assert_eq!(message.summary.body.end_offset, *wire_len);
        // The spool keeps the bytes as received: the wire form is derived, never stored.
        let mut stored = Vec::new();
        message
            .bytes
            .open()
            .unwrap()
            .read_to_end(&mut stored)
            .unwrap();
        assert!(stored == raw, "spooled bytes differ from the input");
    }

    #[tokio::test]
    async fn small_lf_message_stays_raw_in_memory_with_wire_summary() {
        let dir = tempfile::tempdir().unwrap();
        let raw = lf_message(3);
        let message = received(&raw, dir.path()).await;
        assert!(matches!(&message.bytes, MessageBytes::Memory(bytes) if **bytes == raw));
        assert_eq!(message.bytes.wire_len(), wire::to_wire(&raw).len() as u64);
        assert_eq!(message.summary, wire::summarize_wire(&raw));
    }
}
