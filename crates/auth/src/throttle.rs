//! In-memory throttling of repeated authentication failures, per account and per client network.
//!
//! Two counters are kept for every failure: one for the account (distributed guessing from many
//! addresses) and one for the client address (password spraying across many accounts). IPv6
//! clients are counted per /64, the smallest block an end site is normally given (RFC 6177), so
//! rotating through one's own addresses does not help. A lockout on either counter refuses the
//! attempt before any password is checked.
//!
//! Trade-off: an account lockout also refuses the legitimate owner, so delays are capped
//! (`max_delay`, one minute by default) rather than permanent.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Throttling parameters. The same limits apply to the account and the address counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures allowed without any delay.
    pub free_failures: u32,
    /// Lockout after the first failure beyond `free_failures`; doubles with each further one.
    pub base_delay: Duration,
    /// Upper bound on a single lockout.
    pub max_delay: Duration,
    /// A counter is forgotten once this long has passed since its last failure.
    pub window: Duration,
    /// Upper bound on tracked counters (at least 2); the oldest are evicted beyond it.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            window: Duration::from_secs(15 * 60),
            max_entries: 100_000,
        }
    }
}

/// What a counter is about. Accounts are stored as a keyed 64-bit hash so that every entry has
/// a fixed size however long the names an attacker sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Account(u64),
    V4(u32),
    V6Net(u64),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    /// Lockout length, counted from `last_failure`.
    delay: Duration,
    /// For address counters: the account all failures were for, `None` once there were several.
    /// A success may then clear the address counter only if it was that account's own typos.
    sole_account: Option<u64>,
}

impl Entry {
    fn fresh(now: Instant, account: u64) -> Self {
        Self {
            failures: 0,
            last_failure: now,
            delay: Duration::ZERO,
            sole_account: Some(account),
        }
    }

    fn remaining(&self, now: Instant) -> Duration {
        self.delay
            .saturating_sub(now.saturating_duration_since(self.last_failure))
    }

    fn expired(&self, now: Instant, window: Duration) -> bool {
        now.saturating_duration_since(self.last_failure) >= window.max(self.delay)
    }
}

/// Failure counters shared by all connections of a process.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    /// Random per process, so nobody can pick account names that collide.
    hasher: RandomState,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(ThrottleConfig::default())
    }
}

impl Throttle {
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            hasher: RandomState::new(),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` while `account` or `ip` is locked out: refuse without checking the
    /// password.
    pub fn check(&self, account: &str, ip: IpAddr) -> Result<(), Duration> {
        self.check_at(account, ip, Instant::now())
    }

    pub fn check_at(&self, account: &str, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let (account_key, ip_key, _) = self.keys(account, ip);
        let mut entries = self.lock();
        let mut wait = Duration::ZERO;
        for key in [account_key, ip_key] {
            let Some(entry) = entries.get(&key) else {
                continue;
            };
            if entry.expired(now, self.config.window) {
                entries.remove(&key);
            } else {
                wait = wait.max(entry.remaining(now));
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(wait)
        }
    }

    pub fn record_failure(&self, account: &str, ip: IpAddr) {
        self.record_failure_at(account, ip, Instant::now());
    }

    pub fn record_failure_at(&self, account: &str, ip: IpAddr, now: Instant) {
        let (account_key, ip_key, account_hash) = self.keys(account, ip);
        let mut entries = self.lock();
        self.make_room(&mut entries, [account_key, ip_key], now);
        for key in [account_key, ip_key] {
            let entry = entries
                .entry(key)
                .or_insert_with(|| Entry::fresh(now, account_hash));
            self.bump(entry, account_hash, now);
        }
    }

    /// Clears the account's counter, and the address's counter unless that address also failed
    /// on other accounts (a sprayer must not reset its counter by logging into its own account).
    pub fn record_success(&self, account: &str, ip: IpAddr) {
        let (account_key, ip_key, account_hash) = self.keys(account, ip);
        let mut entries = self.lock();
        entries.remove(&account_key);
        if entries
            .get(&ip_key)
            .is_some_and(|e| e.sole_account == Some(account_hash))
        {
            entries.remove(&ip_key);
        }
    }

    /// Number of counters currently held (expired ones included until they are purged).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Entry>> {
        // The map holds plain counters, valid even if a holder panicked: keep going.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn keys(&self, account: &str, ip: IpAddr) -> (Key, Key, u64) {
        let account_hash = self.hasher.hash_one(account.trim().to_lowercase());
        let ip_key = match ip.to_canonical() {
            IpAddr::V4(v4) => Key::V4(u32::from(v4)),
            IpAddr::V6(v6) => Key::V6Net((u128::from(v6) >> 64) as u64),
        };
        (Key::Account(account_hash), ip_key, account_hash)
    }

    fn bump(&self, entry: &mut Entry, account_hash: u64, now: Instant) {
        if entry.expired(now, self.config.window) {
            *entry = Entry::fresh(now, account_hash);
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.sole_account != Some(account_hash) {
            entry.sole_account = None;
        }
        entry.delay = self.delay_for(entry.failures);
    }

    /// Zero up to `free_failures`, then `base_delay`, doubling per failure, capped at `max_delay`.
    fn delay_for(&self, failures: u32) -> Duration {
        let Some(beyond) = failures.checked_sub(self.config.free_failures) else {
            return Duration::ZERO;
        };
        let Some(exponent) = beyond.checked_sub(1) else {
            return Duration::ZERO;
        };
        let factor = 1u32.checked_shl(exponent).unwrap_or(u32::MAX);
        self.config
            .base_delay
            .checked_mul(factor)
            .unwrap_or(self.config.max_delay)
            .min(self.config.max_delay)
    }

    /// Keeps the map within `max_entries` once `keep` are present: purge expired counters, then
    /// evict the oldest eighth in one go so the O(n) scan is paid rarely.
    fn make_room(&self, entries: &mut HashMap<Key, Entry>, keep: [Key; 2], now: Instant) {
        let cap = self.config.max_entries.max(keep.len());
        let missing = keep.iter().filter(|k| !entries.contains_key(k)).count();
        if entries.len() + missing <= cap {
            return;
        }
        let window = self.config.window;
        entries.retain(|k, e| keep.contains(k) || !e.expired(now, window));
        let needed = (entries.len() + missing).saturating_sub(cap);
        if needed == 0 {
            return;
        }
        let mut by_age: Vec<(Instant, Key)> = entries
            .iter()
            .filter(|(k, _)| !keep.contains(k))
            .map(|(k, e)| (e.last_failure, *k))
            .collect();
        let evict = needed.max(cap / 8).min(by_age.len());
        if evict < by_age.len() {
            by_age.select_nth_unstable_by_key(evict, |(t, _)| *t);
        }
        for (_, key) in by_age.iter().take(evict) {
            entries.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const S: Duration = Duration::from_secs(1);

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn fail(t: &Throttle, account: &str, addr: &str, n: u32, now: Instant) {
        for _ in 0..n {
            t.record_failure_at(account, ip(addr), now);
        }
    }

    #[test]
    fn free_failures_do_not_lock() {
        let t = Throttle::default();
        let now = Instant::now();
        fail(&t, "alice", "192.0.2.1", 5, now);
        assert_eq!(t.check_at("alice", ip("192.0.2.1"), now), Ok(()));
    }

    #[test]
    fn lockout_starts_after_free_failures_then_doubles_and_caps() {
        let t = Throttle::default();
        let now = Instant::now();
        fail(&t, "alice", "192.0.2.1", 6, now);
        assert_eq!(t.check_at("alice", ip("192.0.2.1"), now), Err(S));
        fail(&t, "alice", "192.0.2.1", 1, now);
        assert_eq!(t.check_at("alice", ip("192.0.2.1"), now), Err(2 * S));
        fail(&t, "alice", "192.0.2.1", 1, now);
        assert_eq!(t.check_at("alice", ip("192.0.2.1"), now), Err(4 * S));
        fail(&t, "alice", "192.0.2.1", 100, now);
        assert_eq!(t.check_at("alice", ip("192.0.2.1"), now), Err(60 * S));
    }

    #[test]
    fn lockout_ends_when_its_delay_has_passed() {
        let t = Throttle::default();
        let now = Instant::now();
        fail(&t, "alice", "192.0.2.1", 7, now);
        assert_eq!(
            t.check_at("alice", ip("192.0.2.1"), now + S),
            Err(S),
            "half-way through a 2 s lockout"
        );
        assert_eq!(t.check_at("alice", ip("192.0.2.1"), now + 2 * S), Ok(()));
        // The counter survives the lockout: the next failure doubles again.
        fail(&t, "alice", "192.0.2.1", 1, now + 2 * S);
        assert_eq!(
            t.check_at("alice", ip("192.0.2.1"), now + 2 * S),
            Err(4 * S)
        );
    }

    #[test]
    fn counters_expire_after_window_without_failures() {
        let t = Throttle::default();
        let now = Instant::now();
        fail(&t, "alice", "192.0.2.1", 5, now);
        let later = now + Duration::from_secs(15 * 60);
        fail(&t, "alice", "192.0.2.1", 1, later);
        assert_eq!(t.check_at("alice", ip("192.0.2.1"), later), Ok(()));
        // Just inside the window the counter would have locked.
        let t = Throttle::default();
        fail(&t, "alice", "192.0.2.1", 5, now);
        let inside = later - S;
        fail(&t, "alice", "192.0.2.1", 1, inside);
        assert_eq!(t.check_at("alice", ip("192.0.2.1"), inside), Err(S));
    }

    #[test]
    fn success_clears_account_and_address() {
        let t = Throttle::default();
        let now = Instant::now();
        fail(&t, "alice", "192.0.2.1", 5, now);
        t.record_success("alice", ip("192.0.2.1"));
        assert!(t.is_empty());
        fail(&t, "alice", "192.0.2.1", 5, now);
        assert_eq!(t.check_at("alice", ip("192.0.2.1"), now), Ok(()));
    }

    #[test]
    fn address_limit_applies_across_accounts() {
        let t = Throttle::default();
        let now = Instant::now();
        for name in ["a", "b", "c", "d", "e", "f"] {
            fail(&t, name, "192.0.2.9", 1, now);
        }
        assert_eq!(t.check_at("zed", ip("192.0.2.9"), now), Err(S));
        assert_eq!(t.check_at("zed", ip("192.0.2.10"), now), Ok(()));
    }

    #[test]
    fn account_limit_applies_across_addresses() {
        let t = Throttle::default();
        let now = Instant::now();
        for host in 1..=6 {
            fail(&t, "alice", &format!("198.51.100.{host}"), 1, now);
        }
        assert_eq!(t.check_at("alice", ip("203.0.113.7"), now), Err(S));
        assert_eq!(t.check_at("bob", ip("203.0.113.7"), now), Ok(()));
    }

    #[test]
    fn account_names_are_case_insensitive() {
        let t = Throttle::default();
        let now = Instant::now();
        for (i, name) in ["Alice", "ALICE", "alice", " alice", "aLiCe", "alicE"]
            .iter()
            .enumerate()
        {
            fail(&t, name, &format!("198.51.100.{i}"), 1, now);
        }
        assert_eq!(t.check_at("alice", ip("203.0.113.7"), now), Err(S));
    }

    #[test]
    fn ipv6_addresses_are_grouped_by_64() {
        let t = Throttle::default();
        let now = Instant::now();
        for host in 1..=6 {
            fail(
                &t,
                &format!("user{host}"),
                &format!("2001:db8:0:0::{host}"),
                1,
                now,
            );
        }
        assert_eq!(
            t.check_at("new", ip("2001:db8::ffff:ffff:ffff:ffff"), now),
            Err(S)
        );
        assert_eq!(t.check_at("new", ip("2001:db8:0:1::1"), now), Ok(()));
    }

    #[test]
    fn ipv4_mapped_ipv6_counts_as_ipv4() {
        let t = Throttle::default();
        let now = Instant::now();
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        for name in ["a", "b", "c", "d", "e", "f"] {
            t.record_failure_at(name, mapped, now);
        }
        assert_eq!(t.check_at("zed", ip("192.0.2.1"), now), Err(S));
    }

    #[test]
    fn sprayer_cannot_reset_address_counter_with_own_login() {
        let t = Throttle::default();
        let now = Instant::now();
        for name in ["a", "b", "c", "d", "e", "f"] {
            fail(&t, name, "192.0.2.66", 1, now);
        }
        t.record_success("mallory", ip("192.0.2.66"));
        assert_eq!(t.check_at("g", ip("192.0.2.66"), now), Err(S));
    }

    #[test]
    fn memory_is_bounded_and_newest_counters_survive() {
        let config = ThrottleConfig {
            max_entries: 64,
            ..ThrottleConfig::default()
        };
        let t = Throttle::new(config);
        let start = Instant::now();
        for i in 0..2_000u32 {
            let addr = IpAddr::V6(Ipv6Addr::from(u128::from(i) << 64));
            t.record_failure_at(
                &format!("user{i}"),
                addr,
                start + Duration::from_millis(i.into()),
            );
            assert!(t.len() <= 64, "{} entries after {i}", t.len());
        }
        let last = start + Duration::from_millis(1_999);
        let newest = IpAddr::V6(Ipv6Addr::from(1_999u128 << 64));
        for _ in 0..6 {
            t.record_failure_at("user1999", newest, last);
        }
        assert_eq!(t.check_at("user1999", newest, last), Err(2 * S));
    }

    #[test]
    fn full_map_drops_stale_counters_and_keeps_active_lockouts() {
        let config = ThrottleConfig {
            max_entries: 4,
            ..ThrottleConfig::default()
        };
        let t = Throttle::new(config);
        let now = Instant::now();
        fail(&t, "old", "192.0.2.1", 1, now);
        fail(&t, "locked", "192.0.2.2", 6, now + 60 * 60 * S);
        fail(&t, "new", "192.0.2.3", 1, now + 60 * 60 * S);
        assert_eq!(t.len(), 4);
        assert_eq!(
            t.check_at("locked", ip("192.0.2.9"), now + 60 * 60 * S),
            Err(S)
        );
    }
}
