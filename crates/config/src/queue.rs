//! `[queue]`: the outbound queue's retry schedule, lifetime and concurrency.

use std::time::Duration;

use serde::Deserialize;

/// How long and how often the outbound queue tries a message that a remote server deferred.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Queue {
    /// Wait before the second attempt; each later wait doubles, up to `retry_max_secs`.
    pub retry_base_secs: u64,
    /// Longest wait between two attempts.
    pub retry_max_secs: u64,
    /// How long a message is retried before it bounces (RFC 5321 §4.5.4.1: at least 4-5 days).
    pub lifetime_secs: u64,
    /// After this long undelivered, the sender gets one delay notice (RFC 3464
    /// `Action: delayed`); 0 turns delay notices off.
    pub delay_notice_secs: u64,
    /// Deliveries in progress at once.
    pub concurrency: u32,
    /// TCP port of remote mail exchangers. Always 25 on the Internet; tests point it at a
    /// local server.
    pub remote_port: u16,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            retry_base_secs: 5 * 60,
            retry_max_secs: 60 * 60,
            lifetime_secs: 5 * 24 * 60 * 60,
            delay_notice_secs: 4 * 60 * 60,
            concurrency: 16,
            remote_port: 25,
        }
    }
}

impl Queue {
    /// [`Queue::retry_base_secs`] as a duration.
    pub fn retry_base(&self) -> Duration {
        Duration::from_secs(self.retry_base_secs)
    }

    /// [`Queue::retry_max_secs`] as a duration.
    pub fn retry_max(&self) -> Duration {
        Duration::from_secs(self.retry_max_secs)
    }

    /// [`Queue::lifetime_secs`] as a duration.
    pub fn lifetime(&self) -> Duration {
        Duration::from_secs(self.lifetime_secs)
    }

    /// [`Queue::delay_notice_secs`] as a duration; `None` when delay notices are off.
    pub fn delay_notice(&self) -> Option<Duration> {
        (self.delay_notice_secs > 0).then(|| Duration::from_secs(self.delay_notice_secs))
    }
}
