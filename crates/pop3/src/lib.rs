//! POP3 (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH PLAIN) for postkeep over implicit TLS
//! (`pop3s`) and with STLS (RFC 2595) on the plain `pop3` port: a sans-I/O core in
//! [`protocol`] and a tokio server on top.
//!
//! Each session serves the account's INBOX as it was at login (a snapshot in UID order) and
//! holds an in-process lock on it, so two sessions never delete under each other.
#![forbid(unsafe_code)]

pub mod protocol;
mod server;

pub use server::{Pop3Server, Pop3Settings, Security};
