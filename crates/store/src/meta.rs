//! The metadata backend trait. Backends see only plaintext that IMAP needs (ids, UIDs, flags,
//! sizes, dates) and opaque sealed bytes; sealing happens above them in [`crate::MailStore`], so
//! a new backend (PostgreSQL) never touches keys or message content.

use async_trait::async_trait;

use crate::model::*;
use crate::StoreError;

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    // Domains
    async fn add_domain(&self, name: &str) -> Result<Domain, StoreError>;
    async fn list_domains(&self) -> Result<Vec<Domain>, StoreError>;
    async fn find_domain(&self, name: &str) -> Result<Option<Domain>, StoreError>;
    /// Refuses (StoreError::Conflict) while accounts of the domain exist.
    async fn remove_domain(&self, name: &str) -> Result<(), StoreError>;

    // Accounts: creating one also creates its special-use mailboxes, in one transaction.
    async fn create_account(
        &self,
        domain_id: DomainId,
        address: &str,
        password_hash: Option<&str>,
        uid_validity: u32,
    ) -> Result<Account, StoreError>;
    async fn find_account(&self, address: &str) -> Result<Option<Account>, StoreError>;
    async fn account_by_id(&self, id: AccountId) -> Result<Option<Account>, StoreError>;
    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError>;
    async fn set_password_hash(&self, id: AccountId, hash: &str) -> Result<(), StoreError>;
    /// Removes the account's rows and returns the ids of its blobs in the blob store, which
    /// must now be deleted.
    async fn remove_account(&self, id: AccountId) -> Result<Vec<String>, StoreError>;

    // Aliases: extra addresses delivering to an account.
    async fn add_alias(&self, address: &str, account_id: AccountId) -> Result<(), StoreError>;
    async fn resolve_address(&self, address: &str) -> Result<Option<AccountId>, StoreError>;

    // App passwords
    async fn add_app_password(
        &self,
        account_id: AccountId,
        name: &str,
        digest: &[u8],
    ) -> Result<AppPassword, StoreError>;
    async fn list_app_passwords(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<AppPassword>, StoreError>;
    async fn revoke_app_password(
        &self,
        account_id: AccountId,
        name: &str,
    ) -> Result<bool, StoreError>;

    // Key table
    async fn insert_key(&self, key: &WrappedKey) -> Result<(), StoreError>;
    async fn list_keys(&self) -> Result<Vec<WrappedKey>, StoreError>;
    async fn find_key(&self, id: &str) -> Result<Option<WrappedKey>, StoreError>;
    /// The newest key of a scope (the one new data is sealed with).
    async fn current_key(&self, scope: &str) -> Result<Option<WrappedKey>, StoreError>;
    /// Replaces every wrapped key in one transaction (master key rotation) and records the new
    /// master key fingerprint. All or nothing.
    async fn rewrap_keys(&self, keys: &[WrappedKey], master_id: &str) -> Result<(), StoreError>;
    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError>;
    async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError>;

    // Mailboxes
    async fn list_mailboxes(&self, account_id: AccountId) -> Result<Vec<Mailbox>, StoreError>;
    async fn mailbox_by_role(
        &self,
        account_id: AccountId,
        role: MailboxRole,
    ) -> Result<Option<Mailbox>, StoreError>;

    // Messages
    /// Appends a batch in ONE durable transaction (group commit): assigns UIDs and MODSEQs,
    /// bumps UIDNEXT/HIGHESTMODSEQ, and returns only after the commit is on disk.
    async fn append_messages(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError>;
    /// Thread of the first message whose Message-ID hash is in `hashes` (a parent or sibling).
    async fn thread_for_hashes(
        &self,
        account_id: AccountId,
        hashes: &[Vec<u8>],
    ) -> Result<Option<String>, StoreError>;
    /// Entries of a mailbox in UID order.
    async fn list_entries(&self, mailbox_id: MailboxId) -> Result<Vec<MessageEntry>, StoreError>;
    async fn message(&self, id: &str) -> Result<Option<MessageRecord>, StoreError>;
    /// Every message of an account, oldest first (by internal date, then insertion).
    async fn account_messages(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// The sealed blob stored in a message row (see `MessageRecord::inline`).
    async fn inline_blob(&self, message_id: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Ids of every blob kept in the blob store (inline ones excluded), for orphan sweeps.
    async fn all_blob_ids(&self) -> Result<Vec<String>, StoreError>;
}
