//! postkeep's mail store: the data model, the storage traits and their embedded backends, and
//! [`MailStore`], the one place where message data is sealed before it reaches a backend.
//!
//! ```text
//!             MailStore  (seals blobs + summary columns, group commit, threading)
//!            /         \
//!  MetadataStore      BlobStore          <- traits; a PostgreSQL + S3 pair plugs in here
//!   SqliteMeta      LocalBlobStore       <- the embedded default
//! ```
#![forbid(unsafe_code)]

pub mod blob;
mod bytes;
mod commit;
mod dkim;
mod hub;
pub mod keyring;
pub mod meta;
pub mod model;
mod outbound;
mod poller;
pub mod sqlite;

use std::io::Read;
use std::ops::{Range, RangeInclusive};
use std::path::Path;
use std::sync::Arc;

use postkeep_crypto::blob::{BlobReader, BlobWriter};
use postkeep_crypto::DataKey;
use postkeep_imap_proto::RenderedEnvelope;
use postkeep_message::wire::WireReader;
use postkeep_message::{Envelope, MessageSummary};

pub use blob::{BlobArea, BlobStore, LocalBlobStore};
pub use bytes::{MessageBytes, OpenSpool};
pub use dkim::NewDkimKey;
pub use hub::MAILBOX_DELETED;
pub use keyring::{KeyScope, Keyring, MasterLoader};
pub use meta::MetadataStore;
pub use model::*;
pub use outbound::QueueEntry;

/// Errors from the store. Backend-specific errors are flattened to text so no backend type
/// leaks to callers.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("metadata backend error: {0}")]
    Backend(String),
    #[error("storage I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Key(#[from] postkeep_crypto::KeyError),
    #[error("stored data failed to decrypt: {0}")]
    Sealed(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

impl StoreError {
    /// Maps a unique-constraint violation to `Conflict(message)`, anything else to `Backend`.
    fn conflict_or(e: sqlx::Error, message: String) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message),
            _ => e.into(),
        }
    }
}

/// What an address means to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Local(AccountId),
    /// One of our domains, but no such account or alias.
    UnknownUser,
    /// Not a domain we accept mail for.
    ForeignDomain,
}

/// A message sealed for one account, blob already written, ready to be committed.
pub struct Prepared {
    new: NewMessage,
}

impl Prepared {
    pub fn message_id(&self) -> &str {
        &self.new.record.id
    }

    /// Sets the IMAP keywords the message is filed with (APPEND's flag list, RFC 9051 §6.3.12).
    pub fn with_keywords(mut self, keywords: Vec<String>) -> Self {
        self.new.keywords = keywords;
        self
    }
}

/// Associated data binding a blob to its account and id.
fn blob_aad(account_id: AccountId, blob_id: &str) -> Vec<u8> {
    format!("postkeep blob v1|account:{account_id}|{blob_id}").into_bytes()
}

/// Associated data binding a sealed summary to its account and message.
fn summary_aad(account_id: AccountId, message_id: &str) -> Vec<u8> {
    format!("postkeep summary v1|account:{account_id}|{message_id}").into_bytes()
}

/// Associated data binding a sealed rendered envelope to its account and message.
fn envelope_aad(account_id: AccountId, message_id: &str) -> Vec<u8> {
    format!("postkeep envelope v1|account:{account_id}|{message_id}").into_bytes()
}

const MESSAGE_ID_INDEX: &[u8] = b"message-id blind index v1";

/// Messages up to this size keep their sealed blob in the metadata row: most mail is small,
/// and one database commit (shared by a whole group) is then the only durable write.
pub const INLINE_MAX: u64 = 64 * 1024;

/// Lowercases and checks an address (`local@domain`); returns it and its domain.
pub fn normalize_address(address: &str) -> Result<(String, String), StoreError> {
    let address = address.trim().to_lowercase();
    let invalid = || StoreError::Invalid(format!("invalid address {address:?}"));
    let (local, domain) = address.rsplit_once('@').ok_or_else(invalid)?;
    if local.is_empty()
        || local.len() > 64
        || address.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid());
    }
    let domain = normalize_domain(domain)?;
    Ok((format!("{local}@{domain}"), domain))
}

/// Lowercases and checks a domain name (RFC 5321 §4.1.2 Domain, RFC 1035 label limits).
pub fn normalize_domain(domain: &str) -> Result<String, StoreError> {
    let domain = domain.trim().trim_end_matches('.').to_lowercase();
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    if domain.is_empty() || domain.len() > 253 || !domain.split('.').all(label_ok) {
        return Err(StoreError::Invalid(format!("invalid domain {domain:?}")));
    }
    Ok(domain)
}

/// Checks a mailbox name and returns its canonical form: INBOX in any case is INBOX (RFC 9051
/// §5.1). Names hold no control characters (the store's rename relies on it) and no empty
/// hierarchy level (RFC 9051 §5.1.1: `/` separates levels).
pub fn normalize_mailbox_name(name: &str) -> Result<String, StoreError> {
    let invalid = || StoreError::Invalid(format!("invalid mailbox name {name:?}"));
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(invalid());
    }
    if name.split(HIERARCHY_SEPARATOR).any(str::is_empty) {
        return Err(invalid());
    }
    Ok(if name.eq_ignore_ascii_case("INBOX") {
        "INBOX".to_string()
    } else {
        name.to_string()
    })
}

pub struct MailStore {
    meta: Arc<dyn MetadataStore>,
    blobs: Arc<dyn BlobStore>,
    keyring: Keyring,
    scope: KeyScope,
    committer: commit::GroupCommitter,
    hub: Arc<hub::ChangeHub>,
    /// Wakes watchers on changes committed by other processes; stops when the store drops.
    _poller: poller::ChangePoller,
}

impl MailStore {
    /// The embedded default: `<dir>/postkeep.db` (SQLite) and `<dir>/blobs/` (local files).
    pub async fn open_embedded(
        dir: &Path,
        scope: KeyScope,
        master: MasterLoader,
    ) -> Result<Self, StoreError> {
        let meta = Arc::new(sqlite::SqliteMeta::open(&dir.join("postkeep.db")).await?);
        let blobs = Arc::new(LocalBlobStore::open(&dir.join("blobs"))?);
        Self::open(meta, blobs, scope, master).await
    }

    /// Any pair of backends.
    pub async fn open(
        meta: Arc<dyn MetadataStore>,
        blobs: Arc<dyn BlobStore>,
        scope: KeyScope,
        master: MasterLoader,
    ) -> Result<Self, StoreError> {
        let keyring = Keyring::open(Arc::clone(&meta), master).await?;
        let committer = commit::GroupCommitter::spawn(Arc::clone(&meta), Arc::clone(&blobs));
        let hub = Arc::new(hub::ChangeHub::default());
        let poller = poller::ChangePoller::spawn(Arc::clone(&meta), Arc::downgrade(&hub));
        Ok(Self {
            meta,
            blobs,
            keyring,
            scope,
            committer,
            hub,
            _poller: poller,
        })
    }

    pub fn meta(&self) -> &dyn MetadataStore {
        self.meta.as_ref()
    }

    pub fn blobs(&self) -> &dyn BlobStore {
        self.blobs.as_ref()
    }

    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    pub async fn add_domain(&self, name: &str) -> Result<Domain, StoreError> {
        self.meta.add_domain(&normalize_domain(name)?).await
    }

    /// Creates an account (and its special-use mailboxes and data key) in an existing domain.
    pub async fn create_account(
        &self,
        address: &str,
        password_hash: Option<&str>,
    ) -> Result<Account, StoreError> {
        let (address, domain) = normalize_address(address)?;
        let domain = self
            .meta
            .find_domain(&domain)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("domain {domain} (add it first)")))?;
        let mut validity = [0u8; 4];
        postkeep_crypto::random_bytes(&mut validity);
        // RFC 9051 §2.3.1.1: a non-zero 32-bit UIDVALIDITY.
        let uid_validity = u32::from_be_bytes(validity).max(1);
        let account = self
            .meta
            .create_account(domain.id, &address, password_hash, uid_validity)
            .await?;
        self.keyring
            .current(&self.scope.scope_for(account.domain_id, account.id))
            .await?;
        Ok(account)
    }

    /// Adds an alias of `account_id`, normalised as RCPT TO resolution looks it up. Its domain
    /// must be one of ours: resolution finds an alias before it looks at the domain, so an
    /// alias in someone else's domain would take their mail here and let the account send as
    /// them.
    pub async fn add_alias(
        &self,
        address: &str,
        account_id: AccountId,
    ) -> Result<String, StoreError> {
        let (address, domain) = normalize_address(address)?;
        if self.meta.find_domain(&domain).await?.is_none() {
            return Err(StoreError::NotFound(format!(
                "domain {domain}: not one of our domains (add it first)"
            )));
        }
        self.meta.add_alias(&address, account_id).await?;
        Ok(address)
    }

    pub async fn find_account(&self, address: &str) -> Result<Option<Account>, StoreError> {
        let (address, _) = normalize_address(address)?;
        self.meta.find_account(&address).await
    }

    /// Removes an account with all its messages and blobs.
    pub async fn remove_account(&self, address: &str) -> Result<(), StoreError> {
        let account = self
            .find_account(address)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
        for blob_id in self.meta.remove_account(account.id).await? {
            self.blobs.delete(BlobArea::Mail, &blob_id).await?;
        }
        Ok(())
    }

    /// Decides what an RCPT TO address means (accounts and aliases, case-insensitive).
    pub async fn resolve_recipient(&self, address: &str) -> Result<Recipient, StoreError> {
        let Ok((address, domain)) = normalize_address(address) else {
            return Ok(Recipient::UnknownUser);
        };
        if let Some(account) = self.meta.resolve_address(&address).await? {
            return Ok(Recipient::Local(account));
        }
        Ok(match self.meta.find_domain(&domain).await? {
            Some(_) => Recipient::UnknownUser,
            None => Recipient::ForeignDomain,
        })
    }

    async fn account(&self, id: AccountId) -> Result<Account, StoreError> {
        self.meta
            .account_by_id(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("account #{id}")))
    }

    async fn account_key(&self, account: &Account) -> Result<Arc<DataKey>, StoreError> {
        self.keyring
            .current(&self.scope.scope_for(account.domain_id, account.id))
            .await
    }

    /// Seals `raw` for one account into `mailbox` (or the role's mailbox): writes the blob
    /// durably and returns what [`MailStore::commit`] needs. Nothing is visible until then.
    pub async fn prepare(
        &self,
        account_id: AccountId,
        mailbox_id: MailboxId,
        raw: &MessageBytes,
        summary: &MessageSummary,
        internal_date: i64,
        flags: &[Flag],
    ) -> Result<Prepared, StoreError> {
        let account = self.account(account_id).await?;
        let key = self.account_key(&account).await?;
        let message_id = postkeep_crypto::random_id();
        let blob_id = postkeep_crypto::random_id();
        let size = raw.len();
        let wire_size = raw.wire_len();
        let inline_blob = self.seal_blob(&key, account.id, &blob_id, raw).await?;

        let summary_json =
            serde_json::to_vec(summary).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let sealed_summary = key.seal(&summary_aad(account.id, &message_id), &summary_json);
        let sealed_envelope = RenderedEnvelope::render(&summary.envelope)
            .map(|rendered| key.seal(&envelope_aad(account.id, &message_id), &rendered));
        let index = self
            .keyring
            .index_key(&self.scope.scope_for(account.domain_id, account.id))
            .await?;
        let hash = |msgid: &str| {
            let input = format!("{}|{}", account.id, msgid.trim().to_lowercase());
            index
                .keyed_hash(MESSAGE_ID_INDEX, input.as_bytes())
                .to_vec()
        };
        let parents: Vec<Vec<u8>> = summary
            .in_reply_to
            .iter()
            .chain(summary.references.iter().rev())
            .map(|id| hash(id))
            .collect();
        let thread_id = match self.meta.thread_for_hashes(account.id, &parents).await? {
            Some(thread) => thread,
            None => message_id.clone(),
        };
        Ok(Prepared {
            new: NewMessage {
                record: MessageRecord {
                    id: message_id,
                    account_id: account.id,
                    blob_id,
                    inline: inline_blob.is_some(),
                    key_id: key.id().to_string(),
                    internal_date,
                    size,
                    wire_size,
                    thread_id,
                    sealed_summary,
                    sealed_envelope,
                    inline_blob: inline_blob.map(Arc::from),
                },
                mailbox_id,
                flags: Flag::to_bits(flags),
                keywords: Vec::new(),
                message_id_hash: summary.message_id.as_deref().map(hash),
            },
        })
    }

    /// Compresses and seals a message. A small one is sealed into memory and returned, to be
    /// stored in its metadata row; a larger one is streamed into a durable blob-store file
    /// (`None`), reading its source as it goes.
    async fn seal_blob(
        &self,
        key: &Arc<DataKey>,
        account_id: AccountId,
        blob_id: &str,
        raw: &MessageBytes,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let aad = blob_aad(account_id, blob_id);
        let key = Arc::clone(key);
        let source = raw.clone();
        let seal = move |out: &mut dyn std::io::Write| -> std::io::Result<()> {
            let mut writer = BlobWriter::new(&key, &aad, out)?;
            std::io::copy(&mut source.open()?, &mut writer)?;
            writer.finish().map(|_| ())
        };
        let inline = matches!(raw, MessageBytes::Memory(_)) && raw.len() <= INLINE_MAX;
        if !inline {
            self.blobs
                .put(BlobArea::Mail, blob_id, Box::new(seal))
                .await?;
            return Ok(None);
        }
        tokio::task::spawn_blocking(move || {
            let mut sealed = Vec::new();
            seal(&mut sealed).map(|()| sealed)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map(Some)
        .map_err(StoreError::Io)
    }

    /// Commits prepared messages durably, batched with whatever other deliveries are in flight
    /// (group commit). Returns after the data is on disk.
    pub async fn commit(&self, prepared: Vec<Prepared>) -> Result<Vec<Appended>, StoreError> {
        let batch: Vec<NewMessage> = prepared.into_iter().map(|p| p.new).collect();
        let result = self.committer.commit(batch.clone()).await;
        match &result {
            Ok(appended) => {
                for done in appended {
                    self.hub.notify(done.mailbox_id, done.modseq);
                }
            }
            Err(_) => {
                // Nothing refers to these blobs: do not leave them behind.
                for new in batch.iter().filter(|new| !new.record.inline) {
                    let _ = self.blobs.delete(BlobArea::Mail, &new.record.blob_id).await;
                }
            }
        }
        result
    }

    /// Summarises and stores one message into the mailbox with `role` of an account.
    pub async fn append(
        &self,
        account_id: AccountId,
        role: MailboxRole,
        raw: Vec<u8>,
        internal_date: i64,
        flags: &[Flag],
    ) -> Result<Appended, StoreError> {
        let prepared = self
            .prepare_for_role(account_id, role, raw, internal_date, flags)
            .await?;
        let mut appended = self.commit(vec![prepared]).await?;
        appended
            .pop()
            .ok_or_else(|| StoreError::Backend("append returned no result".into()))
    }

    /// [`MailStore::prepare`] for the mailbox with `role`, computing the summary.
    pub async fn prepare_for_role(
        &self,
        account_id: AccountId,
        role: MailboxRole,
        raw: Vec<u8>,
        internal_date: i64,
        flags: &[Flag],
    ) -> Result<Prepared, StoreError> {
        let mailbox = self.role_mailbox(account_id, role).await?;
        let raw = Arc::new(raw);
        let summary = Self::summarize(Arc::clone(&raw)).await?;
        let raw = MessageBytes::Memory(raw);
        self.prepare(account_id, mailbox.id, &raw, &summary, internal_date, flags)
            .await
    }

    /// The account's mailbox with a special-use role (every account has one of each).
    pub async fn role_mailbox(
        &self,
        account_id: AccountId,
        role: MailboxRole,
    ) -> Result<Mailbox, StoreError> {
        self.meta
            .mailbox_by_role(account_id, role)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("{} mailbox", role.as_str())))
    }

    /// Parses a message into its summary on a blocking thread (parsing is CPU-bound). The
    /// summary is of the CRLF wire form, so its offsets, sizes and line counts are what IMAP
    /// serves (docs/imap-plan.md §2.3).
    pub async fn summarize(raw: Arc<Vec<u8>>) -> Result<MessageSummary, StoreError> {
        tokio::task::spawn_blocking(move || postkeep_message::wire::summarize_wire(&raw))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))
    }

    /// A streaming reader of a stored message (blocking reads: use from a blocking context).
    pub async fn message_reader(
        &self,
        record: &MessageRecord,
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        let key = self.keyring.key(&record.key_id).await?;
        let sealed: Box<dyn Read + Send> = if let Some(bytes) = &record.inline_blob {
            Box::new(std::io::Cursor::new(Arc::clone(bytes)))
        } else if record.inline {
            let (_, bytes) = self
                .meta
                .inline_blobs(&[&record.id])
                .await?
                .pop()
                .ok_or_else(|| {
                    StoreError::NotFound(format!("inline blob of message {}", record.id))
                })?;
            Box::new(std::io::Cursor::new(bytes))
        } else {
            self.blobs.open(BlobArea::Mail, &record.blob_id)?
        };
        let reader = BlobReader::new(&key, &blob_aad(record.account_id, &record.blob_id), sealed)?;
        Ok(Box::new(reader))
    }

    /// Gives every inline record without its sealed blob the blob, in one query, so that
    /// reading many small messages costs no round trip each. Records whose message is gone
    /// (expunged meanwhile) stay without: reading them reports `NotFound` as before.
    pub async fn attach_inline_blobs(
        &self,
        records: &mut [&mut MessageRecord],
    ) -> Result<(), StoreError> {
        let wanted: Vec<&str> = records
            .iter()
            .filter(|r| r.inline && r.inline_blob.is_none())
            .map(|r| r.id.as_str())
            .collect();
        let mut found: std::collections::HashMap<MessageId, Vec<u8>> =
            self.meta.inline_blobs(&wanted).await?.into_iter().collect();
        for record in records.iter_mut() {
            if let Some(sealed) = found.remove(&record.id) {
                record.inline_blob = Some(Arc::from(sealed));
            }
        }
        Ok(())
    }

    /// A streaming reader of the CRLF wire form of a stored message, or of the wire offsets
    /// `range` of it (IMAP `BODY[...]<partial>`, a part at its summary offsets): what IMAP and
    /// POP3 serve (docs/imap-plan.md §2.3). Blocking reads, like [`MailStore::message_reader`];
    /// a range is skipped to on the first read, in one pass.
    pub async fn wire_reader(
        &self,
        record: &MessageRecord,
        range: Option<Range<u64>>,
    ) -> Result<Box<dyn Read + Send>, StoreError> {
        let raw = self.message_reader(record).await?;
        Ok(match range {
            // No bare LF: the wire form is the stored bytes.
            Some(range) if record.wire_size == record.size => {
                Box::new(bytes::Ranged::new(raw, range))
            }
            None if record.wire_size == record.size => raw,
            Some(range) => Box::new(WireReader::with_range(raw, range)),
            None => Box::new(WireReader::new(raw)),
        })
    }

    /// The whole message as stored, not in wire form (for callers that need it in memory,
    /// e.g. export of one message).
    pub async fn message_bytes(&self, record: &MessageRecord) -> Result<Vec<u8>, StoreError> {
        let mut reader = self.message_reader(record).await?;
        let capacity = usize::try_from(record.size).unwrap_or(0);
        tokio::task::spawn_blocking(move || {
            let mut raw = Vec::with_capacity(capacity);
            reader.read_to_end(&mut raw).map(|_| raw)
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))?
        .map_err(|e| StoreError::Sealed(e.to_string()))
    }

    /// The parsed summary cached at ingest (envelope, bodystructure, ...).
    pub async fn summary(&self, record: &MessageRecord) -> Result<MessageSummary, StoreError> {
        self.open_summary(record).await
    }

    /// The summary's envelope alone (IMAP FETCH ENVELOPE): the other fields are skipped
    /// without being built.
    pub async fn envelope(&self, record: &MessageRecord) -> Result<Envelope, StoreError> {
        #[derive(serde::Deserialize)]
        struct EnvelopeOnly {
            envelope: Envelope,
        }
        Ok(self.open_summary::<EnvelopeOnly>(record).await?.envelope)
    }

    /// The ENVELOPE rendered at ingest, when the record carries it
    /// ([`RecordParts::envelope`]); `None` for a message stored before it existed.
    pub async fn rendered_envelope(
        &self,
        record: &MessageRecord,
    ) -> Result<Option<RenderedEnvelope>, StoreError> {
        let Some(sealed) = &record.sealed_envelope else {
            return Ok(None);
        };
        let key = self.keyring.key(&record.key_id).await?;
        let stored = key
            .open(&envelope_aad(record.account_id, &record.id), sealed)
            .map_err(|e| StoreError::Sealed(e.to_string()))?;
        RenderedEnvelope::from_stored(stored)
            .map(Some)
            .ok_or_else(|| StoreError::Sealed("unreadable rendered envelope".to_owned()))
    }

    async fn open_summary<T: serde::de::DeserializeOwned>(
        &self,
        record: &MessageRecord,
    ) -> Result<T, StoreError> {
        let key = self.keyring.key(&record.key_id).await?;
        let json = key
            .open(
                &summary_aad(record.account_id, &record.id),
                &record.sealed_summary,
            )
            .map_err(|e| StoreError::Sealed(e.to_string()))?;
        serde_json::from_slice(&json).map_err(|e| StoreError::Sealed(e.to_string()))
    }

    /// Every message of an account in the order it was stored.
    pub async fn account_messages(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        self.meta.account_messages(account_id).await
    }

    /// New data keys for every scope in use (or one scope); old keys stay readable.
    pub async fn rotate_keys(&self, only: Option<&str>) -> Result<Vec<String>, StoreError> {
        let scopes = match only {
            Some(scope) => vec![scope.to_string()],
            None => self.keyring.scopes().await?,
        };
        let mut rotated = Vec::new();
        for scope in scopes {
            rotated.push(self.keyring.rotate(&scope).await?);
        }
        Ok(rotated)
    }

    /// Deletes mail blobs no message refers to and older than `min_age`: left behind when a
    /// process died between writing a blob and committing its row (the row is never committed
    /// without its blob, so the reverse cannot happen). The age guard spares blobs of
    /// deliveries still in flight in this or another process.
    pub async fn remove_orphan_blobs(
        &self,
        min_age: std::time::Duration,
    ) -> Result<usize, StoreError> {
        let now = std::time::SystemTime::now();
        let candidates: Vec<String> = self
            .blobs
            .list(BlobArea::Mail)
            .await?
            .into_iter()
            .filter(|(_, modified)| now.duration_since(*modified).unwrap_or_default() >= min_age)
            .map(|(id, _)| id)
            .collect();
        if candidates.is_empty() {
            return Ok(0);
        }
        let referenced: std::collections::HashSet<String> =
            self.meta.all_blob_ids().await?.into_iter().collect();
        let mut removed = 0;
        for id in candidates.iter().filter(|id| !referenced.contains(*id)) {
            self.blobs.delete(BlobArea::Mail, id).await?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Notified with the mailbox's HIGHESTMODSEQ after every change committed through this
    /// `MailStore` ([`MAILBOX_DELETED`] when it is deleted), and within about 250 ms of one
    /// committed by another process on the same data (a background poll of
    /// [`MetadataStore::change_counter`], running only while something is watched). A wake-up
    /// may be spurious: ask the store what changed. See [`hub`](crate::hub).
    pub fn watch(&self, mailbox_id: MailboxId) -> tokio::sync::watch::Receiver<u64> {
        self.hub.watch(mailbox_id)
    }

    /// Deletes blobs of expunged messages after their rows are gone. A failure only leaves an
    /// orphan for [`MailStore::remove_orphan_blobs`]; the expunge itself has happened.
    async fn delete_blobs(&self, blob_ids: &[String]) {
        for id in blob_ids {
            if let Err(e) = self.blobs.delete(BlobArea::Mail, id).await {
                tracing::warn!(blob = %id, error = %e, "could not delete an expunged blob");
            }
        }
    }

    /// RFC 9051 §6.3.4 CREATE, with an optional RFC 6154 role (`Conflict` if taken). A new
    /// mailbox gets a UIDVALIDITY of at least the current time, above every earlier one.
    pub async fn create_mailbox(
        &self,
        account_id: AccountId,
        name: &str,
        role: Option<MailboxRole>,
    ) -> Result<Mailbox, StoreError> {
        let name = normalize_mailbox_name(name)?;
        let floor = u32::try_from(chrono::Utc::now().timestamp()).unwrap_or(1);
        self.meta
            .create_mailbox(account_id, &name, role, floor)
            .await
    }

    /// RFC 9051 §6.3.6 RENAME (see [`MetadataStore::rename_mailbox`]).
    pub async fn rename_mailbox(
        &self,
        account_id: AccountId,
        from: &str,
        to: &str,
    ) -> Result<Vec<Mailbox>, StoreError> {
        let (from, to) = (normalize_mailbox_name(from)?, normalize_mailbox_name(to)?);
        let renamed = self.meta.rename_mailbox(account_id, &from, &to).await?;
        if from == "INBOX" {
            // INBOX was emptied: its sessions must see the expunges.
            if let Some(inbox) = self.meta.mailbox_by_name(account_id, "INBOX").await? {
                self.hub.notify(inbox.id, inbox.highest_modseq);
            }
        }
        Ok(renamed)
    }

    /// RFC 9051 §6.3.5 DELETE: removes the mailbox and the messages only it held, then their
    /// blobs; sessions watching it receive [`MAILBOX_DELETED`].
    pub async fn delete_mailbox(&self, mailbox_id: MailboxId) -> Result<(), StoreError> {
        let orphans = self.meta.delete_mailbox(mailbox_id).await?;
        self.hub.notify(mailbox_id, MAILBOX_DELETED);
        self.delete_blobs(&orphans).await;
        Ok(())
    }

    /// STORE (see [`MetadataStore::update_flags`]).
    pub async fn update_flags(&self, change: &FlagChange<'_>) -> Result<FlagOutcome, StoreError> {
        let outcome = self.meta.update_flags(change).await?;
        if !outcome.updated.is_empty() {
            self.hub.notify(change.mailbox_id, outcome.highest_modseq);
        }
        Ok(outcome)
    }

    /// EXPUNGE (see [`MetadataStore::expunge`]); blobs are deleted after the commit, and a
    /// reader that already opened one keeps reading the unlinked file.
    pub async fn expunge(
        &self,
        mailbox_id: MailboxId,
        uids: Option<&[u32]>,
        require_deleted: bool,
    ) -> Result<Expunged, StoreError> {
        let expunged = self.meta.expunge(mailbox_id, uids, require_deleted).await?;
        self.settle_expunge(mailbox_id, &expunged).await;
        Ok(expunged)
    }

    /// COPY, or MOVE with `remove_source` (see [`MetadataStore::copy_entries`]).
    pub async fn copy_entries(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove_source: bool,
    ) -> Result<Copied, StoreError> {
        let copied = self
            .meta
            .copy_entries(from, uids, to, remove_source)
            .await?;
        if !copied.pairs.is_empty() {
            self.hub.notify(to, copied.dest_modseq);
        }
        if let Some(expunged) = &copied.source_expunged {
            self.settle_expunge(from, expunged).await;
        }
        Ok(copied)
    }

    /// After a committed expunge: wake the mailbox's watchers, delete blobs nothing uses.
    async fn settle_expunge(&self, mailbox_id: MailboxId, expunged: &Expunged) {
        if !expunged.uids.is_empty() {
            self.hub.notify(mailbox_id, expunged.modseq);
        }
        self.delete_blobs(&expunged.orphan_blobs).await;
    }

    /// FETCH rows for UID ranges (see [`MetadataStore::entry_records`]).
    pub async fn entry_records(
        &self,
        mailbox_id: MailboxId,
        uids: &[RangeInclusive<u32>],
        parts: RecordParts,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        self.meta.entry_records(mailbox_id, uids, parts).await
    }

    /// RFC 9208 usage and limit of an account.
    pub async fn quota_usage(&self, account_id: AccountId) -> Result<QuotaUsage, StoreError> {
        self.meta.quota_usage(account_id).await
    }

    /// Sets (or with `None` lifts) an account's storage limit in bytes.
    pub async fn set_quota(
        &self,
        account_id: AccountId,
        bytes: Option<u64>,
    ) -> Result<(), StoreError> {
        self.meta.set_quota(account_id, bytes).await
    }

    /// The key scope of an account under the configured scoping.
    pub fn scope_of(&self, account: &Account) -> String {
        self.scope.scope_for(account.domain_id, account.id)
    }
}

/// Helpers for the tests of crates built on the store (feature `test-util`).
#[cfg(any(test, feature = "test-util"))]
pub mod testing {
    use std::path::Path;
    use std::sync::Arc;

    use postkeep_crypto::MasterKey;

    use crate::{KeyScope, MailStore, MasterLoader};

    /// An embedded store in `dir` under a fresh random master key, with `domain` added.
    pub async fn store_with_domain(dir: &Path, domain: &str) -> Arc<MailStore> {
        let hex = MasterKey::generate().to_hex().to_string();
        let loader: MasterLoader = Arc::new(move || MasterKey::from_hex(&hex, "test"));
        let store = MailStore::open_embedded(dir, KeyScope::Account, loader)
            .await
            .expect("open a test store");
        store.add_domain(domain).await.expect("add the test domain");
        Arc::new(store)
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_dkim;
#[cfg(test)]
mod tests_imap;
#[cfg(test)]
mod tests_outbound;
#[cfg(test)]
mod tests_poller;
#[cfg(test)]
mod tests_wire;
