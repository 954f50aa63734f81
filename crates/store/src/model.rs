//! The data model shared by every backend. Designed for IMAP4rev2 (RFC 9051), POP3 (RFC 1939)
//! and JMAP (RFC 8621): stable message ids, per-mailbox UIDs, MODSEQs, flags and keywords.

use serde::{Deserialize, Serialize};

pub type DomainId = i64;
pub type AccountId = i64;
pub type MailboxId = i64;

/// Stable internal message id (32 hex chars, random): the JMAP `emailId` / IMAP OBJECTID
/// EMAILID (RFC 8474). Random rather than sequential so it says nothing about volume.
pub type MessageId = String;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub id: DomainId,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub domain_id: DomainId,
    /// Full address, lowercase: `local@domain`.
    pub address: String,
    /// PHC string (argon2id) or an imported bcrypt hash awaiting upgrade.
    pub password_hash: Option<String>,
}

/// An extra address delivering to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// Full address, lowercase: `local@domain`, in one of our domains.
    pub address: String,
    pub account_id: AccountId,
    /// The address of the account it delivers to.
    pub account: String,
}

/// RFC 6154 special-use roles, created for every new account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MailboxRole {
    Inbox,
    Sent,
    Drafts,
    Junk,
    Trash,
    Archive,
}

impl MailboxRole {
    pub const ALL: [MailboxRole; 6] = [
        MailboxRole::Inbox,
        MailboxRole::Sent,
        MailboxRole::Drafts,
        MailboxRole::Junk,
        MailboxRole::Trash,
        MailboxRole::Archive,
    ];

    /// Default mailbox name for the role (INBOX is special in IMAP: RFC 9051 §5.1).
    pub fn default_name(self) -> &'static str {
        match self {
            MailboxRole::Inbox => "INBOX",
            MailboxRole::Sent => "Sent",
            MailboxRole::Drafts => "Drafts",
            MailboxRole::Junk => "Junk",
            MailboxRole::Trash => "Trash",
            MailboxRole::Archive => "Archive",
        }
    }

    /// Stable token stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            MailboxRole::Inbox => "inbox",
            MailboxRole::Sent => "sent",
            MailboxRole::Drafts => "drafts",
            MailboxRole::Junk => "junk",
            MailboxRole::Trash => "trash",
            MailboxRole::Archive => "archive",
        }
    }

    pub fn parse(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == token)
    }

    /// RFC 6154 attribute, e.g. `\Sent`.
    pub fn special_use(self) -> &'static str {
        match self {
            MailboxRole::Inbox => "",
            MailboxRole::Sent => "\\Sent",
            MailboxRole::Drafts => "\\Drafts",
            MailboxRole::Junk => "\\Junk",
            MailboxRole::Trash => "\\Trash",
            MailboxRole::Archive => "\\Archive",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub account_id: AccountId,
    /// Name in UTF-8 (IMAP4rev2 uses UTF-8 names; modified UTF-7 is converted at the edge).
    pub name: String,
    pub role: Option<MailboxRole>,
    /// RFC 9051 §2.3.1.1: changes only if UIDs are reassigned.
    pub uid_validity: u32,
    pub uid_next: u32,
    /// RFC 7162 CONDSTORE: the highest MODSEQ of any change in this mailbox.
    pub highest_modseq: u64,
    /// RFC 8474 MAILBOXID: random, and kept across RENAME.
    pub object_id: String,
}

/// The IMAP hierarchy separator (RFC 9051 §5.1.1): `a/b` is a child of `a`.
pub const HIERARCHY_SEPARATOR: char = '/';

/// IMAP system flags (RFC 9051 §2.3.2), stored as a bitmask because IMAP needs them in clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
}

impl Flag {
    pub const ALL: [Flag; 5] = [
        Flag::Seen,
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Draft,
    ];

    /// Every system-flag bit; anything outside it is not a flag.
    pub const ALL_BITS: u32 = 31;

    pub fn bit(self) -> u32 {
        match self {
            Flag::Seen => 1,
            Flag::Answered => 2,
            Flag::Flagged => 4,
            Flag::Deleted => 8,
            Flag::Draft => 16,
        }
    }

    pub fn to_bits(flags: &[Flag]) -> u32 {
        flags.iter().fold(0, |acc, flag| acc | flag.bit())
    }

    pub fn from_bits(bits: u32) -> Vec<Flag> {
        Self::ALL
            .into_iter()
            .filter(|flag| bits & flag.bit() != 0)
            .collect()
    }
}

/// One message as it sits in one mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageEntry {
    pub message_id: MessageId,
    pub mailbox_id: MailboxId,
    pub uid: u32,
    pub modseq: u64,
    pub flags: u32,
    /// IMAP keywords / JMAP keywords (e.g. `$Forwarded`, `$Junk`).
    pub keywords: Vec<String>,
    /// RFC 8514 SAVEDATE (unix seconds).
    pub save_date: i64,
}

/// Per-message facts stored once, whatever mailbox holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub id: MessageId,
    pub account_id: AccountId,
    pub blob_id: String,
    /// True when the sealed blob is kept in the metadata row instead of the blob store:
    /// small messages then cost one durable write (the commit) instead of three.
    pub inline: bool,
    /// Data key that sealed the blob and the summary.
    pub key_id: String,
    /// RFC 9051 INTERNALDATE (unix seconds).
    pub internal_date: i64,
    /// Octets of the message as stored (what export returns).
    pub size: u64,
    /// RFC822.SIZE: octets of the CRLF wire form IMAP and POP3 serve (docs/imap-plan.md §2.3;
    /// `== size` unless the message has bare LFs). The sealed summary's offsets are wire offsets.
    pub wire_size: u64,
    /// RFC 8474 THREADID.
    pub thread_id: String,
    /// The sealed [`postkeep_message::MessageSummary`] (envelope, bodystructure, ...).
    pub sealed_summary: Vec<u8>,
    /// The sealed ENVELOPE in IMAP syntax (`postkeep_imap_proto::RenderedEnvelope`) when
    /// loaded ([`RecordParts::envelope`]) or about to be appended. `None` also for messages
    /// stored before it existed: read their envelope from the summary.
    pub sealed_envelope: Option<Vec<u8>>,
    /// The sealed blob of an `inline` message when it came with the record: loaded by
    /// [`RecordParts::inline_blob`], or about to be appended. `None`: read on demand.
    pub inline_blob: Option<std::sync::Arc<[u8]>>,
}

/// A mailbox's entries as SELECT sees them (RFC 9051 §6.3.2), read in one snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxSnapshot {
    /// Every UID, ascending: the message sequence numbers are their positions plus one.
    pub uids: Vec<u32>,
    /// The lowest UID without `\Seen` (IMAP4rev1's `UNSEEN` response code).
    pub first_unseen: Option<u32>,
    /// Every keyword set on some entry.
    pub keywords: std::collections::BTreeSet<String>,
}

/// What [`crate::MetadataStore::entry_records`] loads besides entry and message metadata:
/// the larger columns, only for the commands that read them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordParts {
    /// [`MessageRecord::sealed_summary`] (left empty otherwise).
    pub summary: bool,
    /// [`MessageRecord::sealed_envelope`]; where a message has none, the sealed summary
    /// instead (even without [`RecordParts::summary`]), so ENVELOPE can always be answered.
    pub envelope: bool,
    /// [`MessageRecord::inline_blob`] of inline messages, so that reading many small bodies
    /// costs one query instead of one per message.
    pub inline_blob: bool,
}

impl RecordParts {
    /// Entry and message metadata only.
    pub const METADATA: Self = Self {
        summary: false,
        envelope: false,
        inline_blob: false,
    };
    /// With the sealed summary.
    pub const SUMMARY: Self = Self {
        summary: true,
        envelope: false,
        inline_blob: false,
    };
}

/// What a backend needs to append one message to one mailbox. UID and MODSEQ are assigned by
/// the backend inside its transaction.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub record: MessageRecord,
    pub mailbox_id: MailboxId,
    pub flags: u32,
    pub keywords: Vec<String>,
    /// Keyed hash of the Message-ID header (a blind index): lets replies find their thread
    /// without the header being stored in clear.
    pub message_id_hash: Option<Vec<u8>>,
}

/// Where an appended message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub mailbox_id: MailboxId,
    pub uid: u32,
    pub modseq: u64,
}

/// A data key as stored: only ever wrapped by the master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedKey {
    /// `<scope>:v<version>`, e.g. `account:7:v2`.
    pub id: String,
    /// `deployment`, `domain:<id>` or `account:<id>`.
    pub scope: String,
    pub version: i64,
    pub wrapped: Vec<u8>,
    /// Fingerprint of the master key that wrapped it.
    pub master_id: String,
    pub created: i64,
}

/// Named, revocable app password for mail clients; only a keyed digest is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppPassword {
    pub id: i64,
    pub account_id: AccountId,
    pub name: String,
    pub digest: Vec<u8>,
    pub created: i64,
}

/// STATUS-style counters of one mailbox (RFC 9051 §6.3.11, RFC 8438 SIZE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MailboxCounts {
    pub messages: u32,
    /// Entries without `\Seen`.
    pub unseen: u32,
    /// Entries with `\Deleted` (RFC 9051 STATUS DELETED).
    pub deleted: u32,
    /// Sum of the entries' wire sizes (RFC 8438 STATUS SIZE: the sum of RFC822.SIZE).
    pub size: u64,
}

/// How STORE changes flags (RFC 9051 §6.4.6: `+FLAGS`, `-FLAGS`, `FLAGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// One STORE command over a set of UIDs.
#[derive(Debug, Clone)]
pub struct FlagChange<'a> {
    pub mailbox_id: MailboxId,
    pub uids: &'a [u32],
    pub op: FlagOp,
    /// System-flag bits ([`Flag::to_bits`]).
    pub flags: u32,
    pub keywords: &'a [String],
    /// RFC 7162 §3.1.3 UNCHANGEDSINCE.
    pub unchanged_since: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagOutcome {
    /// Entries whose flags changed, as they are now (all with the command's one new MODSEQ).
    pub updated: Vec<MessageEntry>,
    /// UIDs refused by UNCHANGEDSINCE: the `[MODIFIED ...]` set (RFC 7162 §3.1.3).
    pub modified: Vec<u32>,
    pub highest_modseq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expunged {
    /// Expunged UIDs, ascending.
    pub uids: Vec<u32>,
    /// The MODSEQ recorded for them in `vanished` (the mailbox's HIGHESTMODSEQ if none).
    pub modseq: u64,
    /// Blob-store ids of messages nothing references any more: delete them after commit.
    pub orphan_blobs: Vec<String>,
}

/// Result of COPY/MOVE, enough for `[COPYUID validity src dst]` (RFC 4315 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    /// UIDVALIDITY of the target mailbox.
    pub uid_validity: u32,
    /// (source UID, target UID), ascending by source UID.
    pub pairs: Vec<(u32, u32)>,
    pub dest_modseq: u64,
    /// `Some` for MOVE (RFC 6851).
    pub source_expunged: Option<Expunged>,
}

/// What changed in a mailbox after a MODSEQ (RFC 7162 CHANGEDSINCE / QRESYNC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Entries with `modseq > since`, ascending by UID.
    pub changed: Vec<MessageEntry>,
    /// UIDs expunged with `modseq > since`, ascending.
    pub vanished: Vec<u32>,
    pub highest_modseq: u64,
    pub uid_next: u32,
}

/// An entry with its message row, for FETCH. Without the summary, `record.sealed_summary` is
/// empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    pub entry: MessageEntry,
    pub record: MessageRecord,
}

/// RFC 9208 usage of one account: STORAGE counts every entry's wire size, so copies count
/// twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaUsage {
    pub bytes: u64,
    pub messages: u64,
    /// `None`: no limit.
    pub limit_bytes: Option<u64>,
}

/// A DKIM signing algorithm: `rsa-sha256` (RFC 6376 §3.3) or `ed25519-sha256` (RFC 8463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DkimAlgorithm {
    Ed25519,
    Rsa,
}

impl DkimAlgorithm {
    pub const ALL: [DkimAlgorithm; 2] = [DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa];

    /// Stable token stored in the database; also the key record's `k=` tag (RFC 6376 §3.6.1).
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Ed25519 => "ed25519",
            DkimAlgorithm::Rsa => "rsa",
        }
    }

    pub fn parse(token: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == token)
    }
}

/// One DKIM key of a hosted domain. The private key (PKCS#8 DER) is sealed by a data key; the
/// public key is published in DNS anyway, so it is kept in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimKey {
    pub domain_id: DomainId,
    /// RFC 6376 §3.1: the key record lives at `<selector>._domainkey.<domain>`.
    pub selector: String,
    pub algorithm: DkimAlgorithm,
    /// The record's `p=` bytes: the raw 32-byte Ed25519 key (RFC 8463 §4.2) or an RSA
    /// SubjectPublicKeyInfo (RFC 6376 §3.6.1).
    pub public_key: Vec<u8>,
    /// The data key that sealed `sealed_private_key`.
    pub key_id: String,
    pub sealed_private_key: Vec<u8>,
    pub created: i64,
    /// When it started signing; `None` while a rotation is staged: the key is published but
    /// does not sign until it is activated, so no message is signed before DNS has its record.
    pub activated: Option<i64>,
    /// When a newer key replaced it. A retired key signs no more but stays published, so mail
    /// it signed still verifies, until it is removed.
    pub retired: Option<i64>,
}

impl DkimKey {
    /// Whether it signs new mail.
    pub fn signing(&self) -> bool {
        self.activated.is_some() && self.retired.is_none()
    }

    /// Whether it waits for activation (a staged rotation).
    pub fn pending(&self) -> bool {
        self.activated.is_none()
    }
}
