//! Message submission (RFC 6409) for postkeep: the [`MailHandler`] behind the `submission` and
//! `submissions` listeners, run by `postkeep-smtp` in [`postkeep_smtp::Mode::Submission`].
//!
//! ```text
//! AUTH ──► Authenticator (throttled like every login)
//! MAIL ──► sender owned? (account address or alias) ─ no ─► 550 5.7.1
//!          hourly limit left?                       ─ no ─► 451 4.7.1
//! RCPT ──► local: must exist (550 5.1.1); remote: accepted (the session is authenticated)
//! DATA ──► From/Sender owned? ─ no ─► 550 5.7.1
//!          Sent copy sealed ─► remote recipients to the Outbox ─► local ones through the
//!          Deliverer (marked submitted) ─► Sent copy committed ─► 250
//! ```
//! Enhanced status codes: 5.7.1 ("delivery not authorized", RFC 3463 §3.8) for a sender
//! address the user does not own, as Postfix's `reject_sender_login_mismatch` answers;
//! 4.7.1 for the hourly limit; 4.5.3 (too many recipients) comes from the session's
//! recipient limit, which the binary sets from `[submission] max_recipients`.
//!
//! Order of the durable steps: nothing is visible before the Outbox has the message; a failure
//! after that (local filing, Sent commit) answers 451 and a retry may queue the remote copy
//! twice. The Outbox goes first because it is the step most likely to refuse.
#![forbid(unsafe_code)]

mod limits;
mod sender;

pub use limits::{HourlyLimit, Reservation};
pub use sender::{authors, read_header, Authors, MAX_HEADER};

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use postkeep_auth::login::{Authenticator, LoginError};
use postkeep_delivery::{Deliverer, Outbox, OutboxError, ReceivedMessage, SpoolSink, Stage};
use postkeep_smtp::{
    AuthRequest, AuthVerdict, Authenticated, DeliveryOutcome, Envelope, MailHandler, RcptVerdict,
    SenderVerdict,
};
use postkeep_store::{
    AccountId, Flag, MailStore, MailboxRole, MessageBytes, Prepared, Recipient, StoreError,
};
use zeroize::Zeroizing;

/// What `[submission]` configures here (the recipient limit belongs to the SMTP session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmissionSettings {
    /// Messages one account may send per rolling hour.
    pub max_messages_per_hour: u32,
    /// Store a copy of each sent message in the account's Sent mailbox.
    pub sent_copy: bool,
}

impl Default for SubmissionSettings {
    fn default() -> Self {
        Self {
            max_messages_per_hour: 200,
            sent_copy: true,
        }
    }
}

/// The submission server's storage side.
pub struct Submission {
    store: Arc<MailStore>,
    auth: Arc<Authenticator>,
    outbox: Arc<dyn Outbox>,
    deliverer: Deliverer,
    settings: SubmissionSettings,
    limit: Arc<HourlyLimit>,
}

impl Submission {
    /// `stages` run on the copies for local recipients; the `Deliverer` marks them as
    /// submitted (`InboundMessage::submitted_by`), so stages that judge strangers' mail
    /// (inbound sender authentication) skip them.
    pub fn new(
        store: Arc<MailStore>,
        auth: Arc<Authenticator>,
        outbox: Arc<dyn Outbox>,
        stages: Vec<Arc<dyn Stage>>,
        settings: SubmissionSettings,
    ) -> Self {
        Self {
            deliverer: Deliverer::new(Arc::clone(&store), stages),
            limit: Arc::new(HourlyLimit::new(settings.max_messages_per_hour)),
            store,
            auth,
            outbox,
            settings,
        }
    }

    /// Whether `address` is the account's own address or one of its aliases.
    async fn owns(&self, account: AccountId, address: &str) -> Result<bool, StoreError> {
        Ok(self.store.resolve_recipient(address).await? == Recipient::Local(account))
    }

    fn limit_reply(&self, wait: std::time::Duration) -> (u16, &'static str, String) {
        let minutes = wait.as_secs().div_ceil(60).max(1);
        (
            451,
            "4.7.1",
            format!(
                "Sending limit of {} messages per hour reached, try again in {minutes} minutes",
                self.limit.max()
            ),
        )
    }

    /// 550 5.7.1 unless every From and Sender address belongs to `user`.
    async fn check_authors(
        &self,
        user: &Authenticated,
        raw: &MessageBytes,
    ) -> Result<(), DeliveryOutcome> {
        let source = raw.clone();
        let header = tokio::task::spawn_blocking(move || read_header(&source))
            .await
            .map_err(|e| DeliveryOutcome::TempFail(format!("header task failed: {e}")))?
            .map_err(|e| DeliveryOutcome::TempFail(format!("cannot read the message: {e}")))?;
        let refuse = |text: String| Err(DeliveryOutcome::Rejected(550, "5.7.1", text));
        match authors(header.as_deref()) {
            Authors::Addresses(addresses) => {
                for address in addresses {
                    match self.owns(user.account_id, &address).await {
                        Ok(true) => {}
                        Ok(false) => {
                            return refuse(format!(
                                "From/Sender address <{address}> not owned by user {}",
                                user.address
                            ))
                        }
                        Err(e) => return Err(DeliveryOutcome::TempFail(e.to_string())),
                    }
                }
                Ok(())
            }
            Authors::NoFrom => refuse("Message has no From header field".into()),
            Authors::Unparsable => {
                refuse("From/Sender header field names no address of yours".into())
            }
            Authors::HeaderTooLarge => Err(DeliveryOutcome::Rejected(
                552,
                "5.3.4",
                "Message header section too large".into(),
            )),
        }
    }

    /// Splits the (already approved) recipients into local and remote ones.
    async fn split_recipients(
        &self,
        rcpts: &[String],
    ) -> Result<(Vec<String>, Vec<String>), DeliveryOutcome> {
        let (mut local, mut remote) = (Vec::new(), Vec::new());
        for rcpt in rcpts {
            match self.store.resolve_recipient(rcpt).await {
                Ok(Recipient::Local(_)) => local.push(rcpt.clone()),
                Ok(Recipient::ForeignDomain) => remote.push(rcpt.clone()),
                Ok(Recipient::UnknownUser) => {
                    return Err(DeliveryOutcome::TempFail(
                        "recipient vanished during the transaction".into(),
                    ))
                }
                Err(e) => return Err(DeliveryOutcome::TempFail(e.to_string())),
            }
        }
        Ok((local, remote))
    }

    /// Seals the Sent copy (not yet visible); `None` when copies are off or the account has
    /// no Sent mailbox any more.
    async fn prepare_sent_copy(
        &self,
        account: AccountId,
        message: &ReceivedMessage,
    ) -> Result<Option<Prepared>, StoreError> {
        if !self.settings.sent_copy {
            return Ok(None);
        }
        let mailbox = match self.store.role_mailbox(account, MailboxRole::Sent).await {
            Ok(mailbox) => mailbox,
            Err(StoreError::NotFound(_)) => {
                tracing::warn!(account, "no Sent mailbox: no copy kept");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let now = chrono::Utc::now().timestamp();
        let prepared = self
            .store
            .prepare(
                account,
                mailbox.id,
                &message.bytes,
                &message.summary,
                now,
                &[Flag::Seen],
            )
            .await?;
        Ok(Some(prepared))
    }

    /// Everything after the checks: queue, file, copy (see the module docs for the order).
    async fn submit(
        &self,
        envelope: &Envelope,
        user: &Authenticated,
        message: &ReceivedMessage,
    ) -> DeliveryOutcome {
        let (local, remote) = match self.split_recipients(&envelope.rcpt_to).await {
            Ok(split) => split,
            Err(outcome) => return outcome,
        };
        let sent_copy = match self.prepare_sent_copy(user.account_id, message).await {
            Ok(copy) => copy,
            Err(e) => return storage_failure(&e),
        };
        if !remote.is_empty() {
            match self
                .outbox
                .enqueue(
                    &envelope.mail_from,
                    &remote,
                    &message.bytes,
                    user.account_id,
                )
                .await
            {
                Ok(id) => {
                    tracing::info!(queue_id = %id, rcpts = remote.len(), "queued for remote delivery")
                }
                Err(OutboxError(reason)) => {
                    tracing::warn!(%reason, "cannot queue for remote delivery");
                    return DeliveryOutcome::Rejected(451, "4.4.0", reason);
                }
            }
        }
        if !local.is_empty() {
            let local_envelope = Envelope {
                rcpt_to: local,
                ..envelope.clone()
            };
            let outcome = self
                .deliverer
                .deliver_message(
                    &local_envelope,
                    message.bytes.clone(),
                    message.summary.clone(),
                )
                .await;
            if outcome != DeliveryOutcome::Stored {
                return outcome;
            }
        }
        if let Some(copy) = sent_copy {
            if let Err(e) = self.store.commit(vec![copy]).await {
                return storage_failure(&e);
            }
        }
        DeliveryOutcome::Stored
    }

    async fn login(&self, request: AuthRequest, ip: IpAddr) -> Result<AuthVerdict, LoginError> {
        let (user, password) = match request {
            AuthRequest::Plain(raw) => match postkeep_auth::parse_sasl_plain(&raw) {
                Ok(plain) => {
                    // RFC 4616 §2: acting as someone else (authzid) is not supported.
                    let proxy = plain
                        .authzid
                        .as_deref()
                        .is_some_and(|z| !z.eq_ignore_ascii_case(&plain.authcid));
                    if proxy {
                        return Ok(AuthVerdict::Invalid);
                    }
                    (plain.authcid, plain.password)
                }
                Err(_) => return Ok(AuthVerdict::Malformed),
            },
            AuthRequest::Login { username, password } => (username, password),
        };
        let account = self
            .auth
            .login(&user, Zeroizing::clone(&password), ip)
            .await?;
        Ok(AuthVerdict::Success(Authenticated {
            account_id: account.id,
            address: account.address,
        }))
    }
}

fn storage_failure(e: &StoreError) -> DeliveryOutcome {
    tracing::error!(error = %e, "submission storage failed; client will retry");
    DeliveryOutcome::TempFail("storage temporarily unavailable".into())
}

#[async_trait]
impl MailHandler for Submission {
    type Sink = SpoolSink;

    async fn check_recipient(&self, rcpt: &str) -> RcptVerdict {
        // The session only asks after an authenticated MAIL FROM, so any domain may be named.
        match self.store.resolve_recipient(rcpt).await {
            Ok(Recipient::Local(_) | Recipient::ForeignDomain) => RcptVerdict::Accept,
            Ok(Recipient::UnknownUser) => RcptVerdict::UnknownUser,
            Err(e) => {
                tracing::error!(error = %e, "recipient lookup failed");
                RcptVerdict::TempFail
            }
        }
    }

    async fn authenticate(&self, request: AuthRequest, peer: IpAddr) -> AuthVerdict {
        match self.login(request, peer).await {
            Ok(verdict) => verdict,
            Err(LoginError::Invalid) => AuthVerdict::Invalid,
            Err(LoginError::Throttled(_)) => AuthVerdict::Throttled,
            Err(LoginError::Unavailable(e)) => {
                tracing::error!(error = %e, "authentication unavailable");
                AuthVerdict::Unavailable
            }
        }
    }

    async fn check_sender(&self, mail_from: &str, user: &Authenticated) -> SenderVerdict {
        if mail_from.is_empty() {
            return SenderVerdict::Refuse(
                550,
                "5.7.1",
                "Null sender not allowed for submission".into(),
            );
        }
        match self.owns(user.account_id, mail_from).await {
            Ok(true) => {}
            Ok(false) => {
                return SenderVerdict::Refuse(
                    550,
                    "5.7.1",
                    format!(
                        "<{mail_from}>: Sender address not owned by user {}",
                        user.address
                    ),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "sender lookup failed");
                return SenderVerdict::Refuse(451, "4.3.0", "Temporary lookup failure".into());
            }
        }
        match self.limit.check(user.account_id) {
            Ok(()) => SenderVerdict::Accept,
            Err(wait) => {
                let (code, esc, text) = self.limit_reply(wait);
                SenderVerdict::Refuse(code, esc, text)
            }
        }
    }

    async fn begin_message(&self) -> std::io::Result<SpoolSink> {
        Ok(SpoolSink::new(Arc::clone(&self.store)))
    }

    async fn deliver(&self, sink: SpoolSink, envelope: &Envelope) -> DeliveryOutcome {
        let Some(user) = envelope.authenticated.as_ref() else {
            // The session never lets an unauthenticated transaction get here.
            return DeliveryOutcome::Rejected(530, "5.7.0", "Authentication required".into());
        };
        // `message._spool` keeps a spool file alive until every copy is stored.
        let message = match sink.finish().await {
            Ok(message) => message,
            Err(e) => {
                tracing::error!(error = %e, "spooling the message failed");
                return DeliveryOutcome::TempFail("storage temporarily unavailable".into());
            }
        };
        if let Err(refusal) = self.check_authors(user, &message.bytes).await {
            return refusal;
        }
        let reservation = match self.limit.reserve(user.account_id) {
            Ok(reservation) => reservation,
            Err(wait) => {
                let (code, esc, text) = self.limit_reply(wait);
                return DeliveryOutcome::Rejected(code, esc, text);
            }
        };
        let outcome = self.submit(envelope, user, &message).await;
        if outcome == DeliveryOutcome::Stored {
            reservation.commit();
            tracing::info!(
                user = %user.address,
                rcpts = envelope.rcpt_to.len(),
                size = message.bytes.len(),
                "message submitted"
            );
        }
        outcome
    }
}

#[cfg(test)]
mod tests;
