//! What every listener shares, whatever its protocol (SMTP, POP3, IMAP later): admission
//! control by connection counts.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// A total cap and a per-IP cap on open connections; a [`Permit`] releases its slot on drop.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Held for the lifetime of an admitted connection.
#[derive(Debug)]
pub struct Permit {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
}

impl ConnectionLimits {
    /// Zero means "no limit" for either cap.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            counts: Mutex::new(Counts::default()),
        }
    }

    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<Permit> {
        let mut counts = self.lock();
        let from_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        let over_total = self.max_total > 0 && counts.total >= self.max_total;
        let over_ip = self.max_per_ip > 0 && from_ip >= self.max_per_ip;
        if over_total || over_ip {
            return None;
        }
        counts.total += 1;
        counts.per_ip.insert(ip, from_ip + 1);
        Some(Permit {
            limits: Arc::clone(self),
            ip,
        })
    }

    fn release(&self, ip: IpAddr) {
        let mut counts = self.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }

    /// A panic elsewhere must not wedge admission: the counts stay consistent under poisoning
    /// because every critical section is a few plain integer updates.
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limits.release(self.ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn per_ip_cap_counts_each_address_separately_and_releases() {
        let limits = Arc::new(ConnectionLimits::new(10, 2));
        let a1 = limits.try_acquire(A);
        let _a2 = limits.try_acquire(A);
        assert!(a1.is_some());
        assert!(limits.try_acquire(A).is_none());
        assert!(limits.try_acquire(B).is_some());
        drop(a1);
        assert!(limits.try_acquire(A).is_some());
    }

    #[test]
    fn total_cap_applies_across_addresses() {
        let limits = Arc::new(ConnectionLimits::new(1, 0));
        let first = limits.try_acquire(A);
        assert!(first.is_some());
        assert!(limits.try_acquire(B).is_none());
        drop(first);
        assert!(limits.try_acquire(B).is_some());
    }
}
