//! The metadata backend trait. Backends see only plaintext that IMAP needs (ids, UIDs, flags,
//! sizes, dates) and opaque sealed bytes; sealing happens above them in [`crate::MailStore`], so
//! a new backend (PostgreSQL) never touches keys or message content.

use std::ops::RangeInclusive;

use async_trait::async_trait;

use crate::model::*;
use crate::outbound::QueueEntry;
use crate::StoreError;

#[async_trait]
pub trait MetadataStore: Send + Sync + 'static {
    // Domains
    async fn add_domain(&self, name: &str) -> Result<Domain, StoreError>;
    async fn list_domains(&self) -> Result<Vec<Domain>, StoreError>;
    async fn find_domain(&self, name: &str) -> Result<Option<Domain>, StoreError>;
    /// Refuses (StoreError::Conflict) while accounts or aliases of the domain exist.
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

    // Aliases: extra addresses delivering to an account. Addresses arrive normalised
    // (`crate::normalize_address`); matching is exact.
    /// `Conflict` if the address is an account's or already an alias.
    async fn add_alias(&self, address: &str, account_id: AccountId) -> Result<(), StoreError>;
    /// Every alias (or those whose address is in `domain`), sorted by address.
    async fn list_aliases(&self, domain: Option<&str>) -> Result<Vec<Alias>, StoreError>;
    /// `NotFound` if no alias has this address (an account's address is not an alias).
    async fn remove_alias(&self, address: &str) -> Result<(), StoreError>;
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

    // DKIM keys (RFC 6376) of hosted domains; private keys arrive already sealed.
    /// Every key of a domain, active and retired, oldest first.
    async fn dkim_keys(&self, domain_id: DomainId) -> Result<Vec<DkimKey>, StoreError>;
    /// Adds keys (signing or staged, as their `activated` says) in one transaction.
    /// `Conflict` if a selector is taken, or the domain already has a signing (or staged) key
    /// of the same algorithm, e.g. because another process created it first.
    async fn add_dkim_keys(&self, keys: &[DkimKey]) -> Result<(), StoreError>;
    /// Completes a staged rotation in one transaction: the signing keys are retired at `at`
    /// and the staged ones sign from `at`. `NotFound` if nothing is staged.
    async fn activate_dkim_keys(&self, domain_id: DomainId, at: i64) -> Result<(), StoreError>;
    /// Deletes a retired or staged key: `Conflict` for a signing one, `NotFound` for an
    /// unknown one.
    async fn remove_dkim_key(&self, domain_id: DomainId, selector: &str) -> Result<(), StoreError>;

    // Outbound queue (see `crate::outbound`): envelopes arrive sealed.
    /// Adds an entry in one durable transaction.
    async fn queue_insert(&self, entry: &QueueEntry) -> Result<(), StoreError>;
    /// Every entry, oldest first.
    async fn queue_entries(&self) -> Result<Vec<QueueEntry>, StoreError>;
    async fn queue_entry(&self, id: &str) -> Result<Option<QueueEntry>, StoreError>;
    /// Ids of up to `limit` entries due at `now` whose lease is free, soonest first.
    async fn queue_due(&self, now: i64, limit: u32) -> Result<Vec<String>, StoreError>;
    /// Takes (or renews) an entry's lease for `owner` until `until`, if it is free at `now`
    /// or already `owner`'s: one atomic compare-and-set, so two nodes never both hold it.
    /// Returns whether `owner` holds the lease now.
    async fn queue_lease(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError>;
    /// Replaces an entry's sealed envelope and next attempt, and with `release` frees its
    /// lease, only while `owner` holds it (one durable transaction). `false`: the lease was
    /// lost or the entry removed, and nothing changed.
    async fn queue_update(
        &self,
        id: &str,
        owner: &str,
        sealed_envelope: &[u8],
        next_attempt: i64,
        release: bool,
    ) -> Result<bool, StoreError>;
    /// Deletes an entry's row; with `owner`, only while that owner holds its lease.
    /// Returns whether a row was deleted.
    async fn queue_delete(&self, id: &str, owner: Option<&str>) -> Result<bool, StoreError>;
    /// Makes one entry (or, with `None`, every entry) due at `at`; returns how many.
    async fn queue_reschedule(&self, id: Option<&str>, at: i64) -> Result<u64, StoreError>;

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

    /// Creates a mailbox. `uid_validity` is a floor: the backend assigns at least one more than
    /// the last UIDVALIDITY given in the account, so a re-created name never reuses one
    /// (RFC 9051 §2.3.1.1). `Conflict` when the name or the role is taken (roles: RFC 6154).
    async fn create_mailbox(
        &self,
        account_id: AccountId,
        name: &str,
        role: Option<MailboxRole>,
        uid_validity: u32,
    ) -> Result<Mailbox, StoreError>;
    /// RFC 9051 §6.3.6 RENAME: `from` and its children (`from/...`) take the new name, keeping
    /// ids, object ids and UIDs. Renaming INBOX instead moves its messages into a new mailbox
    /// `to` and leaves INBOX empty (its children stay). Returns the renamed (or new) mailboxes.
    async fn rename_mailbox(
        &self,
        account_id: AccountId,
        from: &str,
        to: &str,
    ) -> Result<Vec<Mailbox>, StoreError>;
    /// Deletes one mailbox (not its children, RFC 9051 §6.3.5) and the messages only it held;
    /// returns their blob-store ids, to delete after commit. INBOX cannot be deleted.
    async fn delete_mailbox(&self, mailbox_id: MailboxId) -> Result<Vec<String>, StoreError>;
    async fn mailbox_by_name(
        &self,
        account_id: AccountId,
        name: &str,
    ) -> Result<Option<Mailbox>, StoreError>;
    async fn mailbox_by_id(&self, id: MailboxId) -> Result<Option<Mailbox>, StoreError>;
    /// RFC 9051 §6.3.7: subscriptions are names, which need not exist.
    async fn set_subscribed(
        &self,
        account_id: AccountId,
        name: &str,
        on: bool,
    ) -> Result<(), StoreError>;
    async fn subscriptions(&self, account_id: AccountId) -> Result<Vec<String>, StoreError>;
    async fn mailbox_counts(&self, mailbox_id: MailboxId) -> Result<MailboxCounts, StoreError>;
    /// HIGHESTMODSEQ of each existing mailbox among `ids`.
    async fn highest_modseqs(&self, ids: &[MailboxId])
        -> Result<Vec<(MailboxId, u64)>, StoreError>;
    /// A number that changes whenever a change may have been committed by another process
    /// (docs/imap-plan.md §2.2). Only equality between two calls means anything: compare it,
    /// never order it. [`crate::MailStore`] polls it while mailboxes are watched and then
    /// refreshes them with [`MetadataStore::highest_modseqs`].
    ///
    /// SQLite: `PRAGMA data_version`, which changes only when *another* connection commits, so
    /// it is always asked on one dedicated connection. PostgreSQL, later: a counter bumped by
    /// LISTEN/NOTIFY on a channel every writing transaction notifies.
    async fn change_counter(&self) -> Result<u64, StoreError>;

    // Messages
    /// Entries whose UID lies in any of `uids`, with their message rows, in UID order: one
    /// query, not one per message. A reversed range counts both ways round (RFC 9051 §9).
    async fn entry_records(
        &self,
        mailbox_id: MailboxId,
        uids: &[RangeInclusive<u32>],
        parts: RecordParts,
    ) -> Result<Vec<EntryRecord>, StoreError>;
    /// STORE: one new MODSEQ for the command, given only to entries that change; the
    /// UNCHANGEDSINCE test (RFC 7162 §3.1.3) runs in the same transaction.
    async fn update_flags(&self, change: &FlagChange<'_>) -> Result<FlagOutcome, StoreError>;
    /// EXPUNGE (RFC 9051 §6.4.3), UID EXPUNGE (RFC 4315 §2.1) when `uids` is given; only
    /// `\Deleted` entries if `require_deleted`. Records `vanished` rows (RFC 7162 §3.2.10).
    async fn expunge(
        &self,
        mailbox_id: MailboxId,
        uids: Option<&[u32]>,
        require_deleted: bool,
    ) -> Result<Expunged, StoreError>;
    /// COPY (RFC 9051 §6.4.7) within an account, or MOVE (RFC 6851) with `remove_source`:
    /// the message rows are shared, new UIDs are assigned in the target.
    async fn copy_entries(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove_source: bool,
    ) -> Result<Copied, StoreError>;
    /// Entries and vanished UIDs with a MODSEQ above `modseq`, read in one snapshot.
    async fn changes_since(
        &self,
        mailbox_id: MailboxId,
        modseq: u64,
    ) -> Result<Changes, StoreError>;
    /// RFC 9208 STORAGE and MESSAGE usage of an account, with its limit.
    async fn quota_usage(&self, account_id: AccountId) -> Result<QuotaUsage, StoreError>;
    async fn set_quota(&self, account_id: AccountId, bytes: Option<u64>) -> Result<(), StoreError>;

    /// Appends a batch in ONE durable transaction (group commit): assigns UIDs and MODSEQs,
    /// bumps UIDNEXT/HIGHESTMODSEQ, and returns only after the commit is on disk.
    async fn append_messages(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError>;
    /// Thread of the first message whose Message-ID hash is in `hashes` (a parent or sibling).
    async fn thread_for_hashes(
        &self,
        account_id: AccountId,
        hashes: &[Vec<u8>],
    ) -> Result<Option<String>, StoreError>;
    /// What opening a mailbox needs (IMAP SELECT), without loading every entry.
    async fn mailbox_snapshot(&self, mailbox_id: MailboxId) -> Result<MailboxSnapshot, StoreError>;
    /// Entries of a mailbox in UID order.
    async fn list_entries(&self, mailbox_id: MailboxId) -> Result<Vec<MessageEntry>, StoreError>;
    async fn message(&self, id: &str) -> Result<Option<MessageRecord>, StoreError>;
    /// Every message of an account, oldest first (by internal date, then insertion).
    async fn account_messages(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<MessageRecord>, StoreError>;
    /// The sealed blobs of inline messages (see `MessageRecord::inline`), by message id, in one
    /// query; ids without one are left out.
    async fn inline_blobs(
        &self,
        message_ids: &[&str],
    ) -> Result<Vec<(MessageId, Vec<u8>)>, StoreError>;
    /// Ids of every blob kept in the blob store (inline ones excluded), for orphan sweeps.
    async fn all_blob_ids(&self) -> Result<Vec<String>, StoreError>;
}
