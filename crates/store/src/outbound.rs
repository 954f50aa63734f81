//! The outbound queue's storage: mail an authenticated user submitted for other servers,
//! kept until it is delivered or bounced. The queue logic lives in `postkeep-outbound`; the
//! store keeps its entries safe and durable.
//!
//! An entry is a metadata row ([`QueueEntry`]: plaintext scheduling columns and the sealed
//! envelope, which names sender and recipients and so is mail-derived) plus the message as a
//! sealed blob named by the entry id in [`BlobArea::SmtpOutgoing`]. Both are sealed with the
//! current data key of the submitting account's scope, bound by their associated data to the
//! account and the entry id. A row is committed only after its blob is durable, so a crash
//! leaves at most an orphan blob ([`MailStore::remove_orphan_queue_blobs`]).
//!
//! Why a table rather than envelope files in the area: delivery takes a *lease* on an entry
//! with a compare-and-set ([`crate::MetadataStore::queue_lease`]) and records per-recipient
//! results in one transaction fenced by that lease, while `postkeep queue remove|retry` runs in
//! another process; files offer no atomic compare-and-set, SQLite (and PostgreSQL later) do.

use std::io::Read;

use postkeep_crypto::blob::{BlobReader, BlobWriter};

use crate::model::AccountId;
use crate::{BlobArea, MailStore, MessageBytes, StoreError};

/// One message in the outbound queue, as the metadata backend keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    /// Random id; also the name of the sealed message blob in the smtp-outgoing area.
    pub id: String,
    /// The account that submitted it: its key scope seals blob and envelope.
    pub account_id: AccountId,
    /// The data key that sealed both.
    pub key_id: String,
    /// Octets of the queued message (DKIM signature included).
    pub size: u64,
    /// Unix time it was queued.
    pub created: i64,
    /// Unix time of the next delivery attempt.
    pub next_attempt: i64,
    /// Who is delivering it now (see [`crate::MetadataStore::queue_lease`]).
    pub lease_owner: Option<String>,
    /// Unix time the lease ends; 0 when none was ever taken.
    pub lease_until: i64,
    /// The envelope and per-recipient state, sealed; its format belongs to the queue.
    pub sealed_envelope: Vec<u8>,
}

fn blob_aad(account_id: AccountId, entry_id: &str) -> Vec<u8> {
    format!("postkeep outbound v1|account:{account_id}|{entry_id}").into_bytes()
}

fn envelope_aad(account_id: AccountId, entry_id: &str) -> Vec<u8> {
    format!("postkeep outbound envelope v1|account:{account_id}|{entry_id}").into_bytes()
}

impl MailStore {
    /// Queues a message durably: seals `prefix` followed by `body` into a blob in the
    /// smtp-outgoing area (fsync'd, name synced), then commits the row with the sealed
    /// `envelope`. When this returns the entry survives a crash.
    pub async fn queue_add(
        &self,
        account_id: AccountId,
        prefix: &[u8],
        body: &MessageBytes,
        envelope: &[u8],
        next_attempt: i64,
    ) -> Result<QueueEntry, StoreError> {
        let account = self.account(account_id).await?;
        let key = self.account_key(&account).await?;
        let id = postkeep_crypto::random_id();
        let aad = blob_aad(account_id, &id);
        let seal_key = std::sync::Arc::clone(&key);
        let head = prefix.to_vec();
        let source = body.clone();
        let fill = move |out: &mut dyn std::io::Write| -> std::io::Result<()> {
            let mut writer = BlobWriter::new(&seal_key, &aad, out)?;
            std::io::copy(&mut head.as_slice().chain(source.open()?), &mut writer)?;
            writer.finish().map(|_| ())
        };
        self.blobs
            .put(BlobArea::SmtpOutgoing, &id, Box::new(fill))
            .await?;
        self.blobs
            .sync(BlobArea::SmtpOutgoing, std::slice::from_ref(&id))
            .await?;
        let entry = QueueEntry {
            sealed_envelope: key.seal(&envelope_aad(account_id, &id), envelope),
            id,
            account_id,
            key_id: key.id().to_string(),
            size: prefix.len() as u64 + body.len(),
            created: chrono::Utc::now().timestamp(),
            next_attempt,
            lease_owner: None,
            lease_until: 0,
        };
        if let Err(e) = self.meta.queue_insert(&entry).await {
            let _ = self.blobs.delete(BlobArea::SmtpOutgoing, &entry.id).await;
            return Err(e);
        }
        Ok(entry)
    }

    /// The plaintext envelope of an entry.
    pub async fn queue_open_envelope(&self, entry: &QueueEntry) -> Result<Vec<u8>, StoreError> {
        let key = self.keyring.key(&entry.key_id).await?;
        key.open(
            &envelope_aad(entry.account_id, &entry.id),
            &entry.sealed_envelope,
        )
        .map_err(|e| StoreError::Sealed(format!("queue entry {}: {e}", entry.id)))
    }

    /// Seals a new envelope for an entry (with the key that sealed its message), for
    /// [`crate::MetadataStore::queue_update`].
    pub async fn queue_seal_envelope(
        &self,
        entry: &QueueEntry,
        envelope: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        let key = self.keyring.key(&entry.key_id).await?;
        Ok(key.seal(&envelope_aad(entry.account_id, &entry.id), envelope))
    }

    /// A streaming reader of a queued message (blocking reads: use from a blocking context).
    pub async fn queue_message_reader(
        &self,
        entry: &QueueEntry,
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        let key = self.keyring.key(&entry.key_id).await?;
        let sealed = self.blobs.open(BlobArea::SmtpOutgoing, &entry.id)?;
        let reader = BlobReader::new(&key, &blob_aad(entry.account_id, &entry.id), sealed)?;
        Ok(Box::new(reader))
    }

    /// Removes an entry and then its blob: with `owner`, only while that lease holder has it
    /// (see [`crate::MetadataStore::queue_delete`]). Returns whether it was removed.
    pub async fn queue_remove(&self, id: &str, owner: Option<&str>) -> Result<bool, StoreError> {
        if !self.meta.queue_delete(id, owner).await? {
            return Ok(false);
        }
        if let Err(e) = self.blobs.delete(BlobArea::SmtpOutgoing, id).await {
            // Only an orphan is left; the entry itself is gone.
            tracing::warn!(entry = %id, error = %e, "could not delete a queue blob");
        }
        Ok(true)
    }

    /// Deletes smtp-outgoing blobs no queue entry refers to and older than `min_age`: left by
    /// a crash between writing the blob and committing its row.
    pub async fn remove_orphan_queue_blobs(
        &self,
        min_age: std::time::Duration,
    ) -> Result<usize, StoreError> {
        let now = std::time::SystemTime::now();
        let old: Vec<String> = self
            .blobs
            .list(BlobArea::SmtpOutgoing)
            .await?
            .into_iter()
            .filter(|(_, modified)| now.duration_since(*modified).unwrap_or_default() >= min_age)
            .map(|(id, _)| id)
            .collect();
        if old.is_empty() {
            return Ok(0);
        }
        let live: std::collections::HashSet<String> = self
            .meta
            .queue_entries()
            .await?
            .into_iter()
            .map(|entry| entry.id)
            .collect();
        let mut removed = 0;
        for id in old.iter().filter(|id| !live.contains(*id)) {
            self.blobs.delete(BlobArea::SmtpOutgoing, id).await?;
            removed += 1;
        }
        Ok(removed)
    }
}
