//! The hand-off from submission to the outbound queue: a message accepted from an authenticated
//! user for recipients elsewhere. The queue (crate `postkeep-outbound`) implements it; the
//! submission server uses it without knowing how delivery works.

use async_trait::async_trait;
use postkeep_store::{AccountId, MessageBytes};

/// Why a message could not be queued; the submission server answers 451 and the client retries.
#[derive(Debug, thiserror::Error)]
#[error("cannot queue the message: {0}")]
pub struct OutboxError(pub String);

#[async_trait]
pub trait Outbox: Send + Sync {
    /// Stores the message durably for delivery to `recipients` (all remote) and returns its
    /// queue id. Only after this returns may the submission server answer 250: the queue must
    /// then deliver or bounce it even across crashes (sealed and fsync'd before returning).
    /// `sender` is the envelope sender (`""` = null sender); `submitted_by` the account.
    async fn enqueue(
        &self,
        sender: &str,
        recipients: &[String],
        body: &MessageBytes,
        submitted_by: AccountId,
    ) -> Result<String, OutboxError>;
}
