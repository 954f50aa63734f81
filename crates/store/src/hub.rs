//! ChangeHub (docs/imap-plan.md §2.2): one `watch` channel per mailbox carrying its
//! HIGHESTMODSEQ, so IDLE and selected sessions learn of changes made by other sessions of
//! this process. `watch` merges bursts and always keeps the latest value. Changes committed
//! by other processes reach it through the [`poller`](crate::poller).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::watch;

use crate::model::MailboxId;

/// Sent when a mailbox is deleted: sessions that have it selected say BYE.
pub const MAILBOX_DELETED: u64 = u64::MAX;

#[derive(Default)]
pub(crate) struct ChangeHub {
    senders: Mutex<HashMap<MailboxId, watch::Sender<u64>>>,
}

impl ChangeHub {
    fn senders(&self) -> MutexGuard<'_, HashMap<MailboxId, watch::Sender<u64>>> {
        // A panic while holding this lock cannot leave the map inconsistent (every operation
        // is one insert, remove or send), so a poisoned lock is still usable.
        self.senders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver for the mailbox. Its first value is the last one notified in this process
    /// (0 if none): treat a change as a wake-up and ask the store what changed.
    pub(crate) fn watch(&self, mailbox_id: MailboxId) -> watch::Receiver<u64> {
        let mut senders = self.senders();
        // Pruning here keeps the map bounded by the mailboxes someone is watching.
        senders.retain(|_, sender| sender.receiver_count() > 0);
        senders
            .entry(mailbox_id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Publishes a new HIGHESTMODSEQ; values never go backwards.
    pub(crate) fn notify(&self, mailbox_id: MailboxId, modseq: u64) {
        let mut senders = self.senders();
        let Some(sender) = senders.get(&mailbox_id) else {
            return;
        };
        if sender.receiver_count() == 0 {
            senders.remove(&mailbox_id);
            return;
        }
        sender.send_if_modified(|current| {
            let newer = modseq > *current;
            if newer {
                *current = modseq;
            }
            newer
        });
    }

    /// The mailboxes someone is watching (senders nobody listens to are pruned on the way).
    pub(crate) fn watched_ids(&self) -> Vec<MailboxId> {
        let mut senders = self.senders();
        senders.retain(|_, sender| sender.receiver_count() > 0);
        senders.keys().copied().collect()
    }

    #[cfg(test)]
    pub(crate) fn watched(&self) -> usize {
        self.senders().len()
    }
}
