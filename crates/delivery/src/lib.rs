//! The delivery pipeline: what happens to a message between "accepted by SMTP" and "filed".
//!
//! ```text
//! SMTP DATA ──► Deliverer ──► summarize once ──► stages (in order) ──► seal + store per recipient ──► 250
//!                                               │ today: inbound authentication, FileInto(Inbox)
//!                                               │ later: Sentinel, classifier, user rules
//! ```
//! A [`Stage`] sees the parsed message and every recipient's filing decision, and may change
//! the decisions, edit the top-level header ([`InboundMessage::edit_header`]) or reject the
//! whole message. Stages run before anything is stored, so a rejection never leaves a partial
//! delivery behind.
#![forbid(unsafe_code)]

mod header;
mod outbox;
mod spool;

pub use header::{HeaderField, FIELD_PREFIX_MAX};
pub use outbox::{Outbox, OutboxError};
// The result types live with the summary they are stored in; re-exported for the stages.
pub use postkeep_message::{
    ArcCheck, AuthResult, DkimCheck, DmarcCheck, DmarcPolicy, SenderAuthentication, SpfCheck,
    SpfIdentity,
};
pub use spool::{ReceivedMessage, SpoolSink, SPILL_AT};

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use postkeep_message::MessageSummary;
use postkeep_smtp::{DeliveryOutcome, Envelope, MailHandler, RcptVerdict};
use postkeep_store::{AccountId, Flag, MailStore, MailboxRole, MessageBytes, Recipient};

/// Where one recipient's copy goes, as decided by the stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filing {
    pub account_id: AccountId,
    /// `None` until a stage chooses; the pipeline's last step files undecided copies in INBOX.
    pub mailbox: Option<MailboxRole>,
    pub flags: Vec<Flag>,
}

/// A message on its way through the pipeline.
pub struct InboundMessage {
    pub envelope: Envelope,
    /// The message as received (in memory or spooled; `open()` reads it either way), plus
    /// whatever header edits stages made.
    pub raw: MessageBytes,
    /// The summary of `raw`: offsets follow header edits.
    pub summary: MessageSummary,
    pub filings: Vec<Filing>,
    /// What SPF, DKIM, ARC and DMARC found, once the inbound-auth stage has run; `None` when
    /// it is off or skipped the message. For the stages after it; stored with every copy as
    /// [`MessageSummary::authentication`] for the organizer.
    pub authentication: Option<SenderAuthentication>,
    /// The account of an authenticated submission session (RFC 6409) that handed in this
    /// message; `None` for mail received as MX. Sender verification skips submitted mail:
    /// the submission listener (not built yet) sets it.
    pub submitted_by: Option<AccountId>,
}

/// A stage's decision about the whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// Permanent rejection: SMTP code, enhanced status code, text.
    Reject(u16, &'static str, String),
    /// Temporary failure; the sender retries.
    Defer(String),
}

/// One step of the pipeline (authentication checks, the organizer, user rules, ...).
#[async_trait]
pub trait Stage: Send + Sync {
    fn name(&self) -> &'static str;
    async fn process(&self, message: &mut InboundMessage) -> Verdict;
}

/// Files every copy no earlier stage placed into the recipient's INBOX.
pub struct FileIntoInbox;

#[async_trait]
impl Stage for FileIntoInbox {
    fn name(&self) -> &'static str {
        "file-into-inbox"
    }

    async fn process(&self, message: &mut InboundMessage) -> Verdict {
        for filing in &mut message.filings {
            filing.mailbox.get_or_insert(MailboxRole::Inbox);
        }
        Verdict::Continue
    }
}

/// The SMTP server's storage side: recipient checks, buffering, the stages, durable filing.
pub struct Deliverer {
    store: Arc<MailStore>,
    stages: Vec<Arc<dyn Stage>>,
}

impl Deliverer {
    /// A pipeline running `stages` in order, then filing undecided copies into INBOX.
    pub fn new(store: Arc<MailStore>, mut stages: Vec<Arc<dyn Stage>>) -> Self {
        stages.push(Arc::new(FileIntoInbox));
        Self { store, stages }
    }

    async fn filings(&self, envelope: &Envelope) -> Result<Vec<Filing>, String> {
        let mut filings: Vec<Filing> = Vec::new();
        for rcpt in &envelope.rcpt_to {
            match self.store.resolve_recipient(rcpt).await {
                // An alias and its account named in one transaction get one copy.
                Ok(Recipient::Local(account_id)) => {
                    if !filings.iter().any(|f| f.account_id == account_id) {
                        filings.push(Filing {
                            account_id,
                            mailbox: None,
                            flags: Vec::new(),
                        });
                    }
                }
                Ok(_) => return Err("recipient vanished during the transaction".into()),
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(filings)
    }

    /// [`Deliverer::deliver_message`] for a message in memory, parsed here.
    pub async fn deliver_raw(&self, envelope: &Envelope, raw: Vec<u8>) -> DeliveryOutcome {
        let raw = Arc::new(raw);
        match MailStore::summarize(Arc::clone(&raw)).await {
            Ok(summary) => {
                self.deliver_message(envelope, MessageBytes::Memory(raw), summary)
                    .await
            }
            Err(e) => DeliveryOutcome::TempFail(format!("parse task failed: {e}")),
        }
    }

    /// Runs the pipeline and stores every copy; the whole message or nothing.
    pub async fn deliver_message(
        &self,
        envelope: &Envelope,
        raw: MessageBytes,
        summary: MessageSummary,
    ) -> DeliveryOutcome {
        let filings = match self.filings(envelope).await {
            Ok(filings) => filings,
            Err(reason) => return DeliveryOutcome::TempFail(reason),
        };
        let mut message = InboundMessage {
            envelope: envelope.clone(),
            raw,
            summary,
            filings,
            authentication: None,
            // Mail from an authenticated session (submission, the outbound queue's local
            // copies and DSNs) is ours, not a stranger's.
            submitted_by: envelope.authenticated.as_ref().map(|user| user.account_id),
        };
        for stage in &self.stages {
            match stage.process(&mut message).await {
                Verdict::Continue => {}
                Verdict::Reject(code, status, text) => {
                    tracing::info!(stage = stage.name(), code, "message rejected");
                    return DeliveryOutcome::Rejected(code, status, text);
                }
                Verdict::Defer(reason) => return DeliveryOutcome::TempFail(reason),
            }
        }
        // Sealed with each copy, so the organizer reads the results without parsing headers.
        // Copied after the last stage: `InboundMessage::authentication` is the one place
        // stages write them.
        message
            .summary
            .authentication
            .clone_from(&message.authentication);
        match self.store_copies(&message).await {
            Ok(copies) => {
                tracing::info!(copies, size = message.raw.len(), "message delivered");
                DeliveryOutcome::Stored
            }
            Err(e) => {
                tracing::error!(error = %e, "delivery failed; sender will retry");
                DeliveryOutcome::TempFail("storage temporarily unavailable".into())
            }
        }
    }

    async fn store_copies(
        &self,
        message: &InboundMessage,
    ) -> Result<usize, postkeep_store::StoreError> {
        let now = chrono::Utc::now().timestamp();
        let mut prepared = Vec::with_capacity(message.filings.len());
        for filing in &message.filings {
            let role = filing.mailbox.unwrap_or(MailboxRole::Inbox);
            let mailbox = match self.store.role_mailbox(filing.account_id, role).await {
                Ok(mailbox) => mailbox,
                // The user deleted (say) Junk: mail still arrives, in INBOX, as Dovecot does
                // when a Sieve fileinto target is missing.
                Err(postkeep_store::StoreError::NotFound(_)) if role != MailboxRole::Inbox => {
                    self.store
                        .role_mailbox(filing.account_id, MailboxRole::Inbox)
                        .await?
                }
                Err(e) => return Err(e),
            };
            prepared.push(
                self.store
                    .prepare(
                        filing.account_id,
                        mailbox.id,
                        &message.raw,
                        &message.summary,
                        now,
                        &filing.flags,
                    )
                    .await?,
            );
        }
        Ok(self.store.commit(prepared).await?.len())
    }
}

#[async_trait]
impl MailHandler for Deliverer {
    type Sink = SpoolSink;

    async fn check_recipient(&self, rcpt: &str) -> RcptVerdict {
        match self.store.resolve_recipient(rcpt).await {
            Ok(Recipient::Local(_)) => RcptVerdict::Accept,
            Ok(Recipient::UnknownUser) => RcptVerdict::UnknownUser,
            Ok(Recipient::ForeignDomain) => RcptVerdict::RelayDenied,
            Err(e) => {
                tracing::error!(error = %e, "recipient lookup failed");
                RcptVerdict::TempFail
            }
        }
    }

    async fn begin_message(&self) -> io::Result<SpoolSink> {
        Ok(SpoolSink::new(Arc::clone(&self.store)))
    }

    async fn deliver(&self, sink: SpoolSink, envelope: &Envelope) -> DeliveryOutcome {
        match sink.finish().await {
            Ok(ReceivedMessage {
                bytes,
                summary,
                _spool,
            }) => {
                // `_spool` keeps a spool file alive until every copy is stored.
                self.deliver_message(envelope, bytes, summary).await
            }
            Err(e) => {
                tracing::error!(error = %e, "spooling the message failed");
                DeliveryOutcome::TempFail("storage temporarily unavailable".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct RejectAll;

    #[async_trait]
    impl Stage for RejectAll {
        fn name(&self) -> &'static str {
            "reject-all"
        }
        async fn process(&self, _: &mut InboundMessage) -> Verdict {
            Verdict::Reject(550, "5.7.1", "policy".into())
        }
    }

    struct FileIntoJunk;

    #[async_trait]
    impl Stage for FileIntoJunk {
        fn name(&self) -> &'static str {
            "junk"
        }
        async fn process(&self, message: &mut InboundMessage) -> Verdict {
            for filing in &mut message.filings {
                filing.mailbox = Some(MailboxRole::Junk);
            }
            Verdict::Continue
        }
    }

    /// Prepends a field and drops `X-Forged:`, as the inbound-auth stage does with its header.
    struct StampHeader;

    #[async_trait]
    impl Stage for StampHeader {
        fn name(&self) -> &'static str {
            "stamp"
        }
        async fn process(&self, message: &mut InboundMessage) -> Verdict {
            let drop_forged =
                |field: &HeaderField<'_>| field.name.eq_ignore_ascii_case(b"x-forged");
            match message.edit_header("X-Stamp: yes\r\n", drop_forged).await {
                Ok(()) => Verdict::Continue,
                Err(e) => Verdict::Defer(e.to_string()),
            }
        }
    }

    async fn store(dir: &std::path::Path) -> Arc<MailStore> {
        let store = postkeep_store::testing::store_with_domain(dir, "example.org").await;
        store.create_account("a@example.org", None).await.unwrap();
        store.create_account("b@example.org", None).await.unwrap();
        store
    }

    fn envelope(rcpts: &[&str]) -> Envelope {
        Envelope {
            mail_from: "x@remote.test".into(),
            rcpt_to: rcpts.iter().map(|r| r.to_string()).collect(),
            peer: "127.0.0.1:1".parse().unwrap(),
            helo: "remote.test".into(),
            tls: false,
            smtputf8: false,
            authenticated: None,
        }
    }

    async fn count(store: &MailStore, address: &str, role: MailboxRole) -> usize {
        let account = store.find_account(address).await.unwrap().unwrap();
        let mailbox = store
            .meta()
            .mailbox_by_role(account.id, role)
            .await
            .unwrap()
            .unwrap();
        store.meta().list_entries(mailbox.id).await.unwrap().len()
    }

    #[tokio::test]
    async fn each_recipient_gets_one_copy_in_inbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let deliverer = Deliverer::new(Arc::clone(&store), Vec::new());
        let outcome = deliverer
            .deliver_raw(
                &envelope(&["a@example.org", "B@example.org", "a@example.org"]),
                b"Subject: hi\r\n\r\nbody\r\n".to_vec(),
            )
            .await;
        assert_eq!(outcome, DeliveryOutcome::Stored);
        assert_eq!(count(&store, "a@example.org", MailboxRole::Inbox).await, 1);
        assert_eq!(count(&store, "b@example.org", MailboxRole::Inbox).await, 1);
    }

    #[tokio::test]
    async fn a_stage_can_refile_or_reject_before_anything_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let junk = Deliverer::new(Arc::clone(&store), vec![Arc::new(FileIntoJunk)]);
        let raw = b"Subject: x\r\n\r\ny\r\n".to_vec();
        let env = envelope(&["a@example.org"]);
        assert_eq!(
            junk.deliver_raw(&env, raw.clone()).await,
            DeliveryOutcome::Stored
        );
        assert_eq!(count(&store, "a@example.org", MailboxRole::Junk).await, 1);
        assert_eq!(count(&store, "a@example.org", MailboxRole::Inbox).await, 0);

        let reject = Deliverer::new(Arc::clone(&store), vec![Arc::new(RejectAll)]);
        assert!(matches!(
            reject.deliver_raw(&env, raw).await,
            DeliveryOutcome::Rejected(550, "5.7.1", _)
        ));
        assert_eq!(count(&store, "a@example.org", MailboxRole::Inbox).await, 0);
        // Nothing of the rejected message was stored, not even an unreferenced copy.
        let account = store.find_account("a@example.org").await.unwrap().unwrap();
        assert_eq!(store.account_messages(account.id).await.unwrap().len(), 1);
        assert!(store
            .blobs()
            .list(postkeep_store::BlobArea::Mail)
            .await
            .unwrap()
            .is_empty());
    }

    #[tokio::test]
    async fn copies_for_a_deleted_role_mailbox_land_in_inbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let account = store.find_account("a@example.org").await.unwrap().unwrap();
        let junk = store
            .role_mailbox(account.id, MailboxRole::Junk)
            .await
            .unwrap();
        store.delete_mailbox(junk.id).await.unwrap();
        let deliverer = Deliverer::new(Arc::clone(&store), vec![Arc::new(FileIntoJunk)]);
        let outcome = deliverer
            .deliver_raw(
                &envelope(&["a@example.org"]),
                b"Subject: x\r\n\r\ny\r\n".to_vec(),
            )
            .await;
        assert_eq!(outcome, DeliveryOutcome::Stored);
        assert_eq!(count(&store, "a@example.org", MailboxRole::Inbox).await, 1);
    }

    #[tokio::test]
    async fn header_edit_of_a_spooled_message_is_stored_with_a_matching_summary() {
        use postkeep_smtp::MessageSink;
        use std::io::Read;

        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        let mut raw = b"Received: from x\r\nX-Forged: drop me\r\nSubject: big\r\n\
                        Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
            .to_vec();
        while raw.len() <= 2 * SPILL_AT {
            raw.extend_from_slice(b"a line of a long body\n");
        }
        raw.extend_from_slice(b"--b--\r\n");
        let mut sink = SpoolSink::new(Arc::clone(&store));
        for chunk in raw.chunks(65_521) {
            sink.write(chunk).await.unwrap();
        }
        let deliverer = Deliverer::new(Arc::clone(&store), vec![Arc::new(StampHeader)]);
        let outcome = deliverer.deliver(sink, &envelope(&["a@example.org"])).await;
        assert_eq!(outcome, DeliveryOutcome::Stored);

        let mut expected = b"X-Stamp: yes\r\nReceived: from x\r\n".to_vec();
        expected.extend_from_slice(&raw[raw.windows(9).position(|w| w == b"Subject: ").unwrap()..]);
        let account = store.find_account("a@example.org").await.unwrap().unwrap();
        let record = store.account_messages(account.id).await.unwrap().remove(0);
        let mut stored = Vec::new();
        let mut reader = store.message_reader(&record).await.unwrap();
        tokio::task::spawn_blocking(move || reader.read_to_end(&mut stored).map(|_| stored))
            .await
            .unwrap()
            .map(|stored| assert!(stored == expected, "stored bytes differ"))
            .unwrap();
        let wire = postkeep_message::wire::to_wire(&expected);
        assert_eq!(record.size, expected.len() as u64);
        assert_eq!(record.wire_size, wire.len() as u64);
        assert_eq!(
            store.summary(&record).await.unwrap(),
            postkeep_message::wire::summarize_wire(&expected)
        );
    }

    #[tokio::test]
    async fn recipient_verdicts_follow_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let deliverer = Deliverer::new(store(dir.path()).await, Vec::new());
        assert_eq!(
            deliverer.check_recipient("a@example.org").await,
            RcptVerdict::Accept
        );
        assert_eq!(
            deliverer.check_recipient("zz@example.org").await,
            RcptVerdict::UnknownUser
        );
        assert_eq!(
            deliverer.check_recipient("a@other.test").await,
            RcptVerdict::RelayDenied
        );
    }
}
