//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) for postkeep.
//!
//! - [`postkeep_imap_proto`] frames the byte stream into commands (imap-codec does the grammar)
//!   and streams APPEND literals;
//! - `session` runs one connection: state, the selected mailbox's view, every command;
//! - `fetch` writes FETCH responses, streaming bodies from the store;
//! - [`postkeep_search`] evaluates SEARCH/SORT/THREAD over the encrypted store;
//! - `server` accepts connections on `imaps` and `imap` (STARTTLS).
#![forbid(unsafe_code)]

mod compress;
pub mod fetch;
mod names;
mod query;
mod respond;
mod server;
mod session;

pub use server::{ImapServer, ImapSettings, Security};
