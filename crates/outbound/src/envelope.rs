//! A queue entry's envelope and per-recipient state, and how one delivery attempt changes it.
//! Stored as sealed JSON in the entry's row; nothing here does I/O.

use serde::{Deserialize, Serialize};

/// An SMTP-style reply to one recipient: from a remote server, or made up by us for local
/// results and errors that never reached a server (DNS, connection, expiry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub code: u16,
    /// RFC 3463 enhanced status code, e.g. `5.1.1`.
    pub status: String,
    pub text: String,
    /// The server that gave it (`Remote-MTA` of a DSN); `None` for our own verdicts.
    pub remote: Option<String>,
}

impl Reply {
    /// A verdict of ours (not a remote server's).
    pub fn local(code: u16, status: &str, text: impl Into<String>) -> Self {
        Self {
            code,
            status: status.to_string(),
            text: text.into(),
            remote: None,
        }
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.code, self.status, self.text)
    }
}

/// Where one recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not delivered yet; retried.
    Pending,
    Delivered,
    /// Permanently failed (or expired); the sender is told.
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Delivered => "delivered",
            Status::Failed => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientState {
    pub address: String,
    pub status: Status,
    /// The last reply about this recipient (the deferral reason while pending).
    pub reply: Option<Reply>,
    /// A failure DSN covering this recipient was handed on (or none is due: null sender).
    pub notified: bool,
}

/// What an attempt found for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered(Reply),
    /// A temporary failure: retry later.
    Deferred(Reply),
    Failed(Reply),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The reverse-path; empty for the null sender (DSNs), which is never notified.
    pub sender: String,
    pub recipients: Vec<RecipientState>,
    /// Attempts made so far.
    pub attempts: u32,
    /// The delay notice has been sent (at most one per message).
    pub delay_notified: bool,
}

/// Timing that decides expiry and the delay notice, in Unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: i64,
    /// When the message was queued.
    pub created: i64,
    pub lifetime_secs: i64,
    /// `None`: no delay notices.
    pub delay_notice_secs: Option<i64>,
}

impl Envelope {
    /// A new envelope: every recipient pending, duplicates (case-insensitive) dropped.
    pub fn new(sender: &str, recipients: &[String]) -> Self {
        let mut unique: Vec<RecipientState> = Vec::with_capacity(recipients.len());
        for address in recipients {
            if !unique
                .iter()
                .any(|r| r.address.eq_ignore_ascii_case(address))
            {
                unique.push(RecipientState {
                    address: address.clone(),
                    status: Status::Pending,
                    reply: None,
                    notified: false,
                });
            }
        }
        Self {
            sender: sender.to_string(),
            recipients: unique,
            attempts: 0,
            delay_notified: false,
        }
    }

    /// Indexes of the recipients still to deliver.
    pub fn pending(&self) -> Vec<usize> {
        self.indexes(|r| r.status == Status::Pending)
    }

    fn indexes(&self, keep: impl Fn(&RecipientState) -> bool) -> Vec<usize> {
        (0..self.recipients.len())
            .filter(|&i| self.recipients.get(i).is_some_and(&keep))
            .collect()
    }

    /// Records outcomes (by recipient index; unknown indexes are ignored). A final recipient
    /// never changes again.
    pub fn apply(&mut self, outcomes: Vec<(usize, Outcome)>) {
        for (index, outcome) in outcomes {
            let Some(recipient) = self.recipients.get_mut(index) else {
                continue;
            };
            if recipient.status != Status::Pending {
                continue;
            }
            let (status, reply) = match outcome {
                Outcome::Delivered(reply) => (Status::Delivered, reply),
                Outcome::Deferred(reply) => (Status::Pending, reply),
                Outcome::Failed(reply) => (Status::Failed, reply),
            };
            recipient.status = status;
            recipient.reply = Some(reply);
        }
    }

    /// Closes an attempt: counts it, and expires what is still pending once the lifetime is
    /// over (RFC 5321 §4.5.4.1): those recipients fail with `4.4.7` (RFC 3463: delivery time
    /// expired), keeping the last reason in the text.
    pub fn end_attempt(&mut self, clock: Clock) {
        self.attempts = self.attempts.saturating_add(1);
        if clock.now.saturating_sub(clock.created) >= clock.lifetime_secs {
            for recipient in &mut self.recipients {
                if recipient.status == Status::Pending {
                    recipient.status = Status::Failed;
                    let last = recipient
                        .reply
                        .take()
                        .map(|r| format!("; last error: {r}"))
                        .unwrap_or_default();
                    recipient.reply = Some(Reply {
                        code: 554,
                        status: "4.4.7".into(),
                        text: format!("message expired, not delivered in time{last}"),
                        remote: None,
                    });
                }
            }
        }
        if self.sender.is_empty() {
            // RFC 3464 §2: nothing is ever reported about a null-sender message.
            for recipient in &mut self.recipients {
                recipient.notified |= recipient.status == Status::Failed;
            }
        }
    }

    /// [`Envelope::apply`] then [`Envelope::end_attempt`].
    #[cfg(test)]
    fn record(&mut self, outcomes: Vec<(usize, Outcome)>, clock: Clock) {
        self.apply(outcomes);
        self.end_attempt(clock);
    }

    /// Failed recipients whose sender has not been told yet.
    pub fn failures_to_report(&self) -> Vec<usize> {
        self.indexes(|r| r.status == Status::Failed && !r.notified)
    }

    pub fn mark_reported(&mut self, indexes: &[usize]) {
        for &i in indexes {
            if let Some(recipient) = self.recipients.get_mut(i) {
                recipient.notified = true;
            }
        }
    }

    /// Pending recipients to name in a delay notice now: once, after the configured delay,
    /// never for a null sender.
    pub fn delay_to_report(&self, clock: Clock) -> Vec<usize> {
        let Some(after) = clock.delay_notice_secs else {
            return Vec::new();
        };
        if self.delay_notified
            || self.sender.is_empty()
            || clock.now.saturating_sub(clock.created) < after
        {
            return Vec::new();
        }
        self.pending()
    }

    /// Nothing is left to do: every recipient is final and every failure was reported.
    pub fn finished(&self) -> bool {
        self.recipients
            .iter()
            .all(|r| r.status == Status::Delivered || (r.status == Status::Failed && r.notified))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(now: i64) -> Clock {
        Clock {
            now,
            created: 1000,
            lifetime_secs: 100,
            delay_notice_secs: Some(30),
        }
    }

    fn remote(code: u16, status: &str) -> Reply {
        Reply {
            code,
            status: status.into(),
            text: "says the server".into(),
            remote: Some("mx.remote.test".into()),
        }
    }

    fn envelope() -> Envelope {
        Envelope::new(
            "alice@example.org",
            &[
                "a@remote.test".into(),
                "b@remote.test".into(),
                "A@REMOTE.test".into(),
                "c@remote.test".into(),
            ],
        )
    }

    #[test]
    fn duplicate_recipients_are_queued_once() {
        let env = envelope();
        let addresses: Vec<&str> = env.recipients.iter().map(|r| r.address.as_str()).collect();
        assert_eq!(
            addresses,
            ["a@remote.test", "b@remote.test", "c@remote.test"]
        );
        assert_eq!(env.pending(), [0, 1, 2]);
    }

    #[test]
    fn each_recipient_keeps_its_own_outcome() {
        let mut env = envelope();
        env.record(
            vec![
                (0, Outcome::Delivered(remote(250, "2.0.0"))),
                (1, Outcome::Failed(remote(550, "5.1.1"))),
                (2, Outcome::Deferred(remote(451, "4.3.0"))),
                (9, Outcome::Failed(remote(550, "5.1.1"))),
            ],
            clock(1010),
        );
        let statuses: Vec<Status> = env.recipients.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [Status::Delivered, Status::Failed, Status::Pending]
        );
        assert_eq!(env.attempts, 1);
        assert_eq!(env.failures_to_report(), [1]);
        assert!(!env.finished());
        env.mark_reported(&[1]);
        assert!(env.failures_to_report().is_empty());
        assert!(!env.finished(), "c is still pending");

        // A later outcome never changes a final recipient.
        env.record(
            vec![
                (0, Outcome::Failed(remote(550, "5.0.0"))),
                (2, Outcome::Delivered(remote(250, "2.0.0"))),
            ],
            clock(1020),
        );
        assert_eq!(env.recipients[0].status, Status::Delivered);
        assert!(env.finished());
    }

    #[test]
    fn pending_recipients_expire_with_the_lifetime_keeping_the_last_error() {
        let mut env = envelope();
        env.record(
            vec![(0, Outcome::Deferred(remote(451, "4.3.0")))],
            clock(1099),
        );
        assert_eq!(env.pending(), [0, 1, 2]);
        env.record(
            vec![(0, Outcome::Deferred(remote(451, "4.3.0")))],
            clock(1100),
        );
        assert!(env.pending().is_empty());
        assert_eq!(env.failures_to_report(), [0, 1, 2]);
        let reply = env.recipients[0].reply.as_ref().unwrap();
        assert_eq!(reply.status, "4.4.7");
        assert!(
            reply.text.contains("451 4.3.0 says the server"),
            "{reply:?}"
        );
    }

    #[test]
    fn delay_notice_is_due_once_after_the_configured_delay() {
        let mut env = envelope();
        assert!(env.delay_to_report(clock(1029)).is_empty());
        assert_eq!(env.delay_to_report(clock(1030)), [0, 1, 2]);
        env.delay_notified = true;
        assert!(env.delay_to_report(clock(1050)).is_empty());
        let off = Clock {
            delay_notice_secs: None,
            ..clock(1090)
        };
        assert!(envelope().delay_to_report(off).is_empty());
    }

    #[test]
    fn a_null_sender_message_is_never_reported_on() {
        let mut env = Envelope::new("", &["a@remote.test".into()]);
        assert!(env.delay_to_report(clock(1050)).is_empty());
        env.record(
            vec![(0, Outcome::Failed(remote(550, "5.1.1")))],
            clock(1010),
        );
        assert!(env.failures_to_report().is_empty());
        assert!(env.finished());
    }

    #[test]
    fn envelope_round_trips_through_json() {
        let mut env = envelope();
        env.record(
            vec![(1, Outcome::Failed(remote(550, "5.1.1")))],
            clock(1001),
        );
        let json = serde_json::to_vec(&env).unwrap();
        assert_eq!(serde_json::from_slice::<Envelope>(&json).unwrap(), env);
        assert!(serde_json::from_slice::<Envelope>(b"{\"sender\":1}").is_err());
    }
}
