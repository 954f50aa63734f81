#![forbid(unsafe_code)]
//! Reading and writing mailbox files for `postkeep import` / `postkeep export`.
//!
//! * [`open`] auto-detects Maildir, a folder of message files, an mbox file or a single
//!   message file, and returns a streaming [`Source`] of messages.
//! * [`MboxWriter`] writes the mboxrd dialect; [`MboxReader`] reads it back byte for byte.
//! * [`MaildirWriter`] writes a Maildir (`cur/ new/ tmp/`).
//!
//! Everything is synchronous std I/O; an mbox is read message by message, never whole.

mod envelope;
mod error;
mod escape;
mod files;
mod flag;
mod header;
mod maildir;
mod mbox;
mod source;

pub use error::MailfileError;
pub use flag::Flag;
pub use maildir::MaildirWriter;
pub use mbox::{MboxReader, MboxWriter};
pub use source::{open, open_mbox, Source, SourceKind};

use chrono::{DateTime, Utc};

/// One message read from a mailbox file, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedMessage {
    /// The RFC 5322 message exactly as stored (mbox envelope line removed, mboxrd unescaped).
    pub raw: Vec<u8>,
    /// IMAP system flags (from the Maildir file name; empty for other formats).
    pub flags: Vec<Flag>,
    /// Maildir file mtime, or the date of the mbox `From ` envelope line when parseable.
    pub internal_date: Option<DateTime<Utc>>,
    /// Where the message came from, for error reports: a file path or `mbox #N`.
    pub origin: String,
}

/// A message that could not be imported; the import goes on with the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadMessage {
    /// A file path or `mbox #N`.
    pub origin: String,
    /// Human-readable reason.
    pub reason: String,
}

impl std::fmt::Display for BadMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.origin, self.reason)
    }
}
