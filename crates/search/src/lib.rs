//! Searching a mailbox: a protocol-neutral [`Query`] evaluated over the encrypted store (RFC 9051
//! §6.4.4 semantics: case-insensitive substring matching), RFC 5256 SORT and THREAD.
#![forbid(unsafe_code)]
