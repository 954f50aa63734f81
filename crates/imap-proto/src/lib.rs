//! The IMAP grammar side of postkeep, sans I/O: a framer that splits the byte stream into
//! commands and literals (streaming APPEND's message instead of buffering it), a shim for the
//! extension syntax imap-codec does not parse yet, and modified UTF-7 mailbox names.
//!
//! imap-codec (pinned exactly, see docs/imap-plan.md §1.1) parses and serialises everything it
//! knows; the server in `postkeep-imap` never hand-parses a command.
#![forbid(unsafe_code)]

pub mod ext;
