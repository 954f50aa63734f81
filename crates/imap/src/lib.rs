//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) for postkeep: imap-codec for the grammar, a
//! sans-I/O session core in `protocol`, and a tokio server on top.
#![forbid(unsafe_code)]
