//! What the queue is told: its schedule and limits (`[queue]`).

use std::time::Duration;

/// The queue's schedule, limits and identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSettings {
    /// Our host name: EHLO, `Reporting-MTA` of DSNs, their `From: MAILER-DAEMON@...`.
    pub hostname: String,
    /// Wait after the first failed attempt; doubled after each further one.
    pub retry_base: Duration,
    /// Longest wait between attempts.
    pub retry_max: Duration,
    /// How long a message is retried before it bounces.
    pub lifetime: Duration,
    /// When the sender is told of a delay, once; `None`: never.
    pub delay_notice: Option<Duration>,
    /// Deliveries in progress at once.
    pub concurrency: usize,
    /// Port of remote mail exchangers (25; tests use another).
    pub remote_port: u16,
    /// How long one delivery attempt holds its entry without renewing the lease: after a
    /// crash, another attempt starts at most this long later.
    pub lease: Duration,
    /// How often due entries are looked for when nothing wakes the queue.
    pub poll_interval: Duration,
    /// Connecting to one address of a remote host.
    pub connect_timeout: Duration,
    /// Waiting for the greeting and for each reply but the final one (RFC 5321 §4.5.3.2: 5
    /// minutes).
    pub command_timeout: Duration,
    /// Waiting for the reply to the end of DATA (RFC 5321 §4.5.3.2.6: 10 minutes).
    pub data_timeout: Duration,
}

impl QueueSettings {
    /// The settings of `[queue]`, with `hostname` the server's.
    pub fn new(hostname: impl Into<String>, queue: &postkeep_config::Queue) -> Self {
        Self {
            hostname: hostname.into(),
            retry_base: queue.retry_base(),
            retry_max: queue.retry_max(),
            lifetime: queue.lifetime(),
            delay_notice: queue.delay_notice(),
            concurrency: usize::try_from(queue.concurrency).unwrap_or(usize::MAX),
            remote_port: queue.remote_port,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(300),
            data_timeout: Duration::from_secs(600),
        }
    }

    /// The wait after the `attempts`-th failed attempt: `retry_base` doubled `attempts - 1`
    /// times, capped at `retry_max`, never under a second.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(32);
        let wait = self
            .retry_base
            .checked_mul(1u32 << doublings.min(31))
            .unwrap_or(self.retry_max);
        wait.min(self.retry_max).max(Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(base: u64, max: u64) -> QueueSettings {
        let config = postkeep_config::Queue {
            retry_base_secs: base,
            retry_max_secs: max,
            ..Default::default()
        };
        QueueSettings::new("mx.example.org", &config)
    }

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let s = settings(300, 3600);
        let waits: Vec<u64> = (1..=7).map(|n| s.backoff(n).as_secs()).collect();
        assert_eq!(waits, [300, 600, 1200, 2400, 3600, 3600, 3600]);
        assert_eq!(s.backoff(0).as_secs(), 300, "before any attempt: the base");
    }

    #[test]
    fn backoff_never_overflows_and_never_drops_under_a_second() {
        let s = settings(1, u64::MAX / 2);
        assert!(s.backoff(u32::MAX) >= Duration::from_secs(1 << 31));
        let mut zero = settings(1, 1);
        zero.retry_base = Duration::ZERO;
        assert_eq!(zero.backoff(5), Duration::from_secs(1));
    }

    #[test]
    fn defaults_follow_the_config_file() {
        let s = QueueSettings::new("h", &postkeep_config::Queue::default());
        assert_eq!(s.lifetime, Duration::from_secs(5 * 24 * 3600));
        assert_eq!(s.delay_notice, Some(Duration::from_secs(4 * 3600)));
        assert_eq!(s.remote_port, 25);
        assert_eq!(s.concurrency, 16);
    }
}
