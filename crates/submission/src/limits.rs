//! Per-account sending limit: messages per rolling hour, counted in this process.
//!
//! A message is counted when its delivery starts ([`HourlyLimit::reserve`]) and uncounted if the
//! delivery fails ([`Reservation`] dropped without `commit`), so a client that retries after a
//! temporary failure is not charged twice. Counts start from zero at a restart; a persistent
//! count would need the store.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postkeep_store::AccountId;

/// The rolling window.
pub const WINDOW: Duration = Duration::from_secs(3600);

/// Send times per account within the last [`WINDOW`].
#[derive(Debug)]
pub struct HourlyLimit {
    max: usize,
    sent: Mutex<HashMap<AccountId, VecDeque<Instant>>>,
}

impl HourlyLimit {
    /// At most `max` messages per account and hour.
    pub fn new(max: u32) -> Self {
        Self {
            max: usize::try_from(max).unwrap_or(usize::MAX),
            sent: Mutex::new(HashMap::new()),
        }
    }

    /// The configured maximum.
    pub fn max(&self) -> usize {
        self.max
    }

    /// `Err(wait)` while `account` has used up its messages for the hour.
    pub fn check(&self, account: AccountId) -> Result<(), Duration> {
        self.check_at(account, Instant::now())
    }

    fn check_at(&self, account: AccountId, now: Instant) -> Result<(), Duration> {
        let mut sent = self.lock();
        let times = sent.entry(account).or_default();
        prune(times, now);
        if times.len() < self.max {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        Err(WINDOW.saturating_sub(now.saturating_duration_since(oldest)))
    }

    /// Counts one message for `account` if the limit allows it.
    pub fn reserve(self: &Arc<Self>, account: AccountId) -> Result<Reservation, Duration> {
        self.reserve_at(account, Instant::now())
    }

    fn reserve_at(
        self: &Arc<Self>,
        account: AccountId,
        now: Instant,
    ) -> Result<Reservation, Duration> {
        self.check_at(account, now)?;
        self.lock().entry(account).or_default().push_back(now);
        Ok(Reservation {
            limit: Arc::clone(self),
            account,
            at: now,
            committed: false,
        })
    }

    fn release(&self, account: AccountId, at: Instant) {
        let mut sent = self.lock();
        if let Some(times) = sent.get_mut(&account) {
            if let Some(i) = times.iter().rposition(|&t| t == at) {
                times.remove(i);
            }
            if times.is_empty() {
                sent.remove(&account);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AccountId, VecDeque<Instant>>> {
        // The map stays consistent even if a holder panicked: every update is one push/remove.
        self.sent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn prune(times: &mut VecDeque<Instant>, now: Instant) {
    while times
        .front()
        .is_some_and(|&t| now.saturating_duration_since(t) >= WINDOW)
    {
        times.pop_front();
    }
}

/// One counted message; uncounted when dropped without [`Reservation::commit`].
#[derive(Debug)]
pub struct Reservation {
    limit: Arc<HourlyLimit>,
    account: AccountId,
    at: Instant,
    committed: bool,
}

impl Reservation {
    /// The message was accepted: it stays counted.
    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.committed {
            self.limit.release(self.account, self.at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_counts_committed_messages_per_account_for_an_hour() {
        let limit = Arc::new(HourlyLimit::new(2));
        let t0 = Instant::now();
        limit.reserve_at(1, t0).unwrap().commit();
        limit.reserve_at(1, t0).unwrap().commit();
        let wait = limit.reserve_at(1, t0).unwrap_err();
        assert_eq!(wait, WINDOW);
        // Another account has its own budget.
        assert!(limit.check_at(2, t0).is_ok());
        // An hour later the first messages no longer count.
        assert!(limit.check_at(1, t0 + WINDOW).is_ok());
    }

    #[test]
    fn failed_deliveries_are_not_counted() {
        let limit = Arc::new(HourlyLimit::new(1));
        let t0 = Instant::now();
        drop(limit.reserve_at(1, t0).unwrap());
        limit.reserve_at(1, t0).unwrap().commit();
        assert!(limit.check_at(1, t0).is_err());
    }
}
