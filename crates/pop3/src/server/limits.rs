//! The per-mailbox session lock (connection caps are `postkeep_net::ConnectionLimits`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use postkeep_store::MailboxId;

/// Mailboxes some session has open (RFC 1939 §8: an exclusive-access lock on the maildrop).
#[derive(Debug, Default)]
pub(crate) struct MaildropLocks {
    held: Mutex<HashSet<MailboxId>>,
}

/// Releases the maildrop when the session ends, however it ends.
#[derive(Debug)]
pub(crate) struct MaildropLock {
    locks: Arc<MaildropLocks>,
    mailbox: MailboxId,
}

impl MaildropLocks {
    pub(crate) fn try_lock(self: &Arc<Self>, mailbox: MailboxId) -> Option<MaildropLock> {
        lock(&self.held).insert(mailbox).then(|| MaildropLock {
            locks: Arc::clone(self),
            mailbox,
        })
    }
}

impl Drop for MaildropLock {
    fn drop(&mut self) {
        lock(&self.locks.held).remove(&self.mailbox);
    }
}

/// The guarded data are plain counters and ids, consistent even after a panic elsewhere.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildrop_lock_is_exclusive_until_dropped() {
        let locks = Arc::new(MaildropLocks::default());
        let held = locks.try_lock(7);
        assert!(held.is_some());
        assert!(locks.try_lock(7).is_none());
        assert!(locks.try_lock(8).is_some());
        drop(held);
        assert!(locks.try_lock(7).is_some());
    }
}
