//! A real store with one account for the search tests.

use std::ops::RangeInclusive;
use std::sync::Arc;

use postkeep_store::{EntryRecord, Flag, MailStore, MailboxId, MailboxRole, RecordParts};

pub struct Mailbox {
    // Kept alive for the store's files.
    _dir: tempfile::TempDir,
    pub store: Arc<MailStore>,
    pub mailbox_id: MailboxId,
    account_id: i64,
}

impl Mailbox {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = postkeep_store::testing::store_with_domain(dir.path(), "example.org").await;
        let account = store
            .create_account("owner@example.org", None)
            .await
            .expect("create account");
        let inbox = store
            .role_mailbox(account.id, MailboxRole::Inbox)
            .await
            .expect("inbox");
        Self {
            _dir: dir,
            store,
            mailbox_id: inbox.id,
            account_id: account.id,
        }
    }

    /// Appends to INBOX; returns the UID.
    pub async fn append(&self, raw: Vec<u8>, internal_date: i64, flags: &[Flag]) -> u32 {
        self.store
            .append(
                self.account_id,
                MailboxRole::Inbox,
                raw,
                internal_date,
                flags,
            )
            .await
            .expect("append")
            .uid
    }

    /// Every entry, in sequence order, with summaries: what a session searches.
    pub async fn items(&self) -> Vec<EntryRecord> {
        let all: [RangeInclusive<u32>; 1] = [1..=u32::MAX];
        self.store
            .entry_records(self.mailbox_id, &all, RecordParts::SUMMARY)
            .await
            .expect("entry records")
    }
}
