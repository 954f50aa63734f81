//! The outbound queue: mail submitted by our users for other servers (and the reports about
//! it), kept durably until it is delivered or returned.
//!
//! ```text
//! submission ──Outbox::enqueue──► DKIM-sign ──► sealed blob (smtp-outgoing) + sealed envelope row ──► 250
//!                                                        │
//!  Queue::run: due entries ──lease──► per recipient: ours → Deliverer (no network)
//!                                                    theirs → MX (hickory) → SMTP client (STARTTLS if offered)
//!              2xx delivered · 4xx retried (exponential backoff, lifetime) · 5xx failed → DSN (RFC 3464)
//! ```
//!
//! * **Durability.** [`Queue::enqueue_message`] (and [`Outbox::enqueue`]) returns only after
//!   the message blob is fsync'd and its row committed (`MailStore::queue_add`); the row's
//!   envelope (sender, recipients, their states and the remote replies) is sealed with the
//!   submitting account's data key. Why a table and not files: see `postkeep_store`'s
//!   `outbound` module.
//! * **One delivery at a time.** An attempt first takes a lease on the entry (an atomic
//!   compare-and-set in the store), renews it every third of [`QueueSettings::lease`] while it
//!   runs, and every write it makes is fenced by it. After a crash the lease runs out and the
//!   next attempt (this node after restart, or another) takes over.
//! * **Exactly once, and its limit.** After each server's (or the local mailbox's) verdict the
//!   recipients it decided are recorded at once, in one transaction, in a task of their own so
//!   cancelling the attempt cannot skip it. A crash in the moment between a remote `250` and
//!   that commit makes the message go to those recipients again later: the window SMTP itself
//!   has (RFC 1047), kept to one database write.
//! * **Retries.** 4xx (and unusable hosts: no connection, refused greeting) are retried after
//!   [`QueueSettings::backoff`] until [`QueueSettings::lifetime`]; then the recipients fail
//!   with `4.4.7`. One delay notice (`Action: delayed`) goes out after
//!   [`QueueSettings::delay_notice`]. 5xx fail at once. Failures are reported in one RFC 3464
//!   DSN per attempt, with the null sender; nothing is ever reported about a null-sender
//!   message. A DSN for one of our users is filed locally, one for a remote sender is queued.
//! * **Routing.** Recipients of our own domains are filed through the `Deliverer` without a
//!   network hop. Others are grouped by domain; the MX records are asked of the `[dns]`
//!   resolver (`postkeep_net::dns`, shared with inbound authentication) and tried by
//!   preference; without MX the domain's own address records (RFC 5321 §5.1); a null MX
//!   (RFC 7505) fails at once.
//! * **TLS.** Opportunistic STARTTLS: used whenever offered, certificate not verified (no
//!   MTA-STS or DANE yet, see `client`), plaintext when the server offers none or the
//!   handshake fails.
//! * **DKIM.** Signed once, at enqueue, for the `From:` domain (else the envelope sender's)
//!   when it is ours (`postkeep_dkim::Signers`); otherwise sent unsigned and logged.
//!
//! Wiring: [`Queue::open`], then `tokio::spawn(queue.clone().run(shutdown))`, and hand the
//! `Arc<Queue>` to the submission server as its `Arc<dyn Outbox>`. The operator's commands
//! are [`Queue::list`], [`Queue::retry`] and [`Queue::remove`], which work on a store without
//! a running queue.
#![forbid(unsafe_code)]

mod client;
mod dsn;
mod envelope;
mod mx;
mod queue;
mod settings;

pub use envelope::Status;
pub use queue::{ItemRecipient, Queue, QueueItem};
pub use settings::QueueSettings;

/// Why the queue could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(transparent)]
    Store(#[from] postkeep_store::StoreError),
    #[error("TLS client setup: {0}")]
    Tls(String),
    #[error("DKIM signing failed: {0}")]
    Dkim(String),
    #[error("queue entry {0} cannot be read: {1}")]
    Corrupt(String, String),
    #[error("{0}")]
    Invalid(String),
}
