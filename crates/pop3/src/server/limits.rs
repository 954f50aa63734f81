//! Connection caps (total and per IP) and the per-mailbox session lock.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use postkeep_store::MailboxId;

/// Counts admitted connections; zero means "no limit" for either cap.
#[derive(Debug, Default)]
pub(crate) struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Held for the lifetime of an admitted connection.
#[derive(Debug)]
pub(crate) struct Permit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            counts: Mutex::default(),
        }
    }

    pub(crate) fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let mut counts = lock(&self.counts);
        let (total, per_ip) = &mut *counts;
        let from_ip = per_ip.get(&ip).copied().unwrap_or(0);
        if (self.max_total > 0 && *total >= self.max_total)
            || (self.max_per_ip > 0 && from_ip >= self.max_per_ip)
        {
            return None;
        }
        *total += 1;
        per_ip.insert(ip, from_ip + 1);
        Some(Permit {
            limits: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = lock(&self.limits.counts);
        let (total, per_ip) = &mut *counts;
        *total = total.saturating_sub(1);
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

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
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn per_ip_cap_refuses_then_releases() {
        let limits = Arc::new(ConnectionLimits::new(0, 1));
        let first = limits.try_acquire(A);
        assert!(first.is_some());
        assert!(limits.try_acquire(A).is_none());
        drop(first);
        assert!(limits.try_acquire(A).is_some());
    }

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
