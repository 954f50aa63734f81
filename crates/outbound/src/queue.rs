//! The queue: accepting messages ([`Outbox`]), the delivery workers, the operator's view.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use postkeep_delivery::{Deliverer, Outbox, OutboxError};
use postkeep_net::dns::Resolver;
use postkeep_smtp::{Authenticated, DeliveryOutcome, Envelope as SmtpEnvelope};
use postkeep_store::{AccountId, MailStore, MessageBytes, QueueEntry, Recipient};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

use crate::client::{Client, HostOutcome, MessageSource, Transaction};
use crate::dsn::{self, Kind, Report};
use crate::envelope::{Clock, Envelope, Outcome, Reply, Status};
use crate::mx::{MxResolver, Route};
use crate::settings::QueueSettings;
use crate::QueueError;

/// Most of a queued message's header returned in a DSN.
const MAX_RETURNED_HEADER: u64 = 256 * 1024;
/// How long a stopping queue lets attempts in progress finish; an interrupted attempt is
/// taken up again after its lease runs out.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Orphan blobs (a crash between blob and row) are swept when this old.
const ORPHAN_AGE: Duration = Duration::from_secs(3600);

/// One queued message as `postkeep queue list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    pub id: String,
    /// Envelope sender; empty for a DSN.
    pub sender: String,
    pub recipients: Vec<ItemRecipient>,
    pub size: u64,
    /// Unix times.
    pub created: i64,
    pub next_attempt: i64,
    pub attempts: u32,
    /// A delivery attempt holds the entry now.
    pub in_delivery: bool,
    /// Why the entry's envelope cannot be read (it is then never delivered: remove it).
    pub unreadable: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRecipient {
    pub address: String,
    pub status: Status,
    /// The last reply about it (the reason it is still pending or failed).
    pub reply: Option<String>,
}

/// The outbound queue. See the crate documentation.
pub struct Queue {
    store: Arc<MailStore>,
    deliverer: Arc<Deliverer>,
    settings: QueueSettings,
    resolver: MxResolver,
    client: Client,
    /// This process, in lease owners: `<hostname>:<pid>`.
    node: String,
    /// Wakes the scheduler: a message was queued or an attempt ended.
    wake: Notify,
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

impl Queue {
    /// Opens the queue on `store`: local recipients are filed through `deliverer`, remote
    /// ones delivered per `settings`, MX records looked up through `dns`. Sweeps message
    /// blobs a crash left without an entry. Start delivering with [`Queue::run`].
    pub async fn open(
        store: Arc<MailStore>,
        deliverer: Arc<Deliverer>,
        settings: QueueSettings,
        dns: &Resolver,
    ) -> Result<Arc<Self>, QueueError> {
        let resolver = MxResolver::new(dns);
        let mut client = Client::new(settings.hostname.clone(), settings.remote_port)
            .map_err(|e| QueueError::Tls(e.to_string()))?;
        client.connect_timeout = settings.connect_timeout;
        client.command_timeout = settings.command_timeout;
        client.data_timeout = settings.data_timeout;
        let swept = store.remove_orphan_queue_blobs(ORPHAN_AGE).await?;
        if swept > 0 {
            tracing::info!(swept, "removed queue blobs left by an interrupted enqueue");
        }
        let node = format!("{}:{}", settings.hostname, std::process::id());
        Ok(Arc::new(Self {
            store,
            deliverer,
            settings,
            resolver,
            client,
            node,
            wake: Notify::new(),
        }))
    }

    /// Queues a message (see [`Outbox::enqueue`]), DKIM-signed for the `From:` domain (or
    /// else the sender's) when it is one of ours. Returns the queue id.
    pub async fn enqueue_message(
        &self,
        sender: &str,
        recipients: &[String],
        body: &MessageBytes,
        account: AccountId,
    ) -> Result<String, QueueError> {
        if recipients.is_empty() {
            return Err(QueueError::Invalid("no recipients".into()));
        }
        if !sender.is_empty() {
            postkeep_store::normalize_address(sender)
                .map_err(|_| QueueError::Invalid("invalid sender address".into()))?;
        }
        let mut cleaned = Vec::with_capacity(recipients.len());
        for rcpt in recipients {
            postkeep_store::normalize_address(rcpt)
                .map_err(|_| QueueError::Invalid("invalid recipient address".into()))?;
            cleaned.push(rcpt.trim().to_string());
        }
        let signature = self.sign(sender, body).await?;
        let envelope = Envelope::new(sender, &cleaned);
        let json = serde_json::to_vec(&envelope).map_err(|e| QueueError::Invalid(e.to_string()))?;
        let entry = self
            .store
            .queue_add(account, signature.as_bytes(), body, &json, unix_now())
            .await?;
        tracing::info!(queue_id = %entry.id, recipients = envelope.recipients.len(),
            size = entry.size, signed = !signature.is_empty(), "message queued");
        self.wake.notify_one();
        Ok(entry.id)
    }

    /// DKIM signature header fields (RFC 6376) for the message, or `""` when neither its
    /// `From:` domain nor the sender's is ours (logged).
    async fn sign(&self, sender: &str, body: &MessageBytes) -> Result<String, QueueError> {
        let raw = read_bytes(body).await?;
        let mut domains: Vec<String> = Vec::new();
        let from = from_domain(&raw);
        let envelope = sender.rsplit_once('@').map(|(_, d)| d.to_ascii_lowercase());
        for domain in [from, envelope].into_iter().flatten() {
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
        for domain in &domains {
            let Some(signers) = postkeep_dkim::Signers::load(&self.store, domain)
                .await
                .map_err(|e| QueueError::Dkim(e.to_string()))?
            else {
                continue;
            };
            // Signed as it goes on the wire: CRLF line ends (the client sends them so).
            return tokio::task::spawn_blocking(move || {
                let wire = postkeep_message::wire::to_wire(&raw);
                signers.sign(&wire)
            })
            .await
            .map_err(|e| QueueError::Dkim(e.to_string()))?
            .map_err(|e| QueueError::Dkim(e.to_string()));
        }
        tracing::info!("no domain of ours to sign for: the message is sent without DKIM");
        Ok(String::new())
    }

    /// The delivery workers: runs until `shutdown` turns true (or its sender is dropped),
    /// at most `concurrency` attempts at once. Attempts in progress then get a short grace
    /// period; one cut off is taken up again after its lease ends.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
        let mut tasks = JoinSet::new();
        let batch = u32::try_from(self.settings.concurrency.saturating_mul(2)).unwrap_or(u32::MAX);
        loop {
            if *shutdown.borrow() {
                break;
            }
            while tasks.try_join_next().is_some() {}
            match self.store.meta().queue_due(unix_now(), batch).await {
                Ok(ids) => {
                    for id in ids {
                        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                            break;
                        };
                        if !lock(&in_flight).insert(id.clone()) {
                            continue;
                        }
                        let queue = Arc::clone(&self);
                        let in_flight = Arc::clone(&in_flight);
                        tasks.spawn(async move {
                            queue.attempt(&id).await;
                            lock(&in_flight).remove(&id);
                            drop(permit);
                            queue.wake.notify_one();
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the queue"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                changed = shutdown.changed() => if changed.is_err() { break },
            }
        }
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::info!("stopping with deliveries in progress; they resume after restart");
        }
    }

    /// One delivery attempt of one entry, under a lease renewed while it runs.
    async fn attempt(self: &Arc<Self>, id: &str) {
        let suffix = postkeep_crypto::random_id();
        let owner = format!("{}:{}", self.node, suffix.get(..8).unwrap_or(&suffix));
        let now = unix_now();
        let lease = secs(self.settings.lease).max(1);
        match self
            .store
            .meta()
            .queue_lease(id, &owner, now, now.saturating_add(lease))
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::error!(queue_id = %id, error = %e, "cannot lease a queue entry");
                return;
            }
        }
        let _heartbeat = self.heartbeat(id, &owner);
        if let Err(e) = self.attempt_leased(id, &owner).await {
            // The lease runs out and the entry is tried again then.
            tracing::error!(queue_id = %id, error = %e, "delivery attempt failed");
        }
    }

    /// Renews the lease every third of its length until dropped.
    fn heartbeat(&self, id: &str, owner: &str) -> AbortOnDrop {
        let store = Arc::clone(&self.store);
        let (id, owner) = (id.to_string(), owner.to_string());
        let lease = self.settings.lease.max(Duration::from_secs(1));
        AbortOnDrop(tokio::spawn(async move {
            let mut tick = tokio::time::interval(lease / 3);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = unix_now();
                match store
                    .meta()
                    .queue_lease(&id, &owner, now, now.saturating_add(secs(lease)))
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(queue_id = %id, "lost the lease of a queue entry");
                        return;
                    }
                    Err(e) => tracing::warn!(queue_id = %id, error = %e, "cannot renew a lease"),
                }
            }
        }))
    }

    async fn attempt_leased(self: &Arc<Self>, id: &str, owner: &str) -> Result<(), QueueError> {
        let Some(entry) = self.store.meta().queue_entry(id).await? else {
            return Ok(()); // removed meanwhile
        };
        let mut envelope = self.open_envelope(&entry).await?;
        for group in self.groups(&envelope).await {
            let outcomes = match group {
                Group::Decided(outcomes) => outcomes,
                Group::Local(indexes) => self.deliver_local(&entry, &envelope, &indexes).await,
                Group::Remote(domain, indexes) => {
                    self.deliver_remote(&entry, &envelope, &domain, &indexes)
                        .await
                }
            };
            let settled = outcomes
                .iter()
                .any(|(_, outcome)| !matches!(outcome, Outcome::Deferred(_)));
            envelope.apply(outcomes);
            // Right after a server's 250: recorded at once, so a crash later in the attempt
            // does not send this part again.
            if settled && !self.save(&entry, &envelope, owner, false).await? {
                tracing::warn!(queue_id = %id, "lease lost during delivery; stopping");
                return Ok(());
            }
        }
        let queue = Arc::clone(self);
        let owner = owner.to_string();
        // Its own task: the outcome is recorded even if this attempt is cancelled.
        tokio::spawn(async move { queue.finish(entry, envelope, &owner).await })
            .await
            .map_err(|e| QueueError::Invalid(e.to_string()))?
    }

    async fn open_envelope(&self, entry: &QueueEntry) -> Result<Envelope, QueueError> {
        let json = self.store.queue_open_envelope(entry).await?;
        serde_json::from_slice(&json)
            .map_err(|e| QueueError::Corrupt(entry.id.clone(), e.to_string()))
    }

    /// Seals and stores the envelope under the lease; `release` ends the lease (last
    /// write of an attempt). `false`: the lease was lost.
    async fn save(
        &self,
        entry: &QueueEntry,
        envelope: &Envelope,
        owner: &str,
        release: bool,
    ) -> Result<bool, QueueError> {
        self.save_at(entry, envelope, owner, entry.next_attempt, release)
            .await
    }

    async fn save_at(
        &self,
        entry: &QueueEntry,
        envelope: &Envelope,
        owner: &str,
        next_attempt: i64,
        release: bool,
    ) -> Result<bool, QueueError> {
        let json = serde_json::to_vec(envelope).map_err(|e| QueueError::Invalid(e.to_string()))?;
        let sealed = self.store.queue_seal_envelope(entry, &json).await?;
        Ok(self
            .store
            .meta()
            .queue_update(&entry.id, owner, &sealed, next_attempt, release)
            .await?)
    }

    /// Ends an attempt: expiry, DSNs, then the entry is removed (all done) or rescheduled.
    async fn finish(
        &self,
        entry: QueueEntry,
        mut envelope: Envelope,
        owner: &str,
    ) -> Result<(), QueueError> {
        let clock = self.clock(&entry);
        envelope.end_attempt(clock);
        self.report(&entry, &mut envelope, clock).await;
        let delivered = envelope
            .recipients
            .iter()
            .filter(|r| r.status == Status::Delivered)
            .count();
        if envelope.finished() {
            if self.store.queue_remove(&entry.id, Some(owner)).await? {
                tracing::info!(queue_id = %entry.id, delivered,
                    failed = envelope.recipients.len() - delivered, "queue entry done");
            } else {
                tracing::warn!(queue_id = %entry.id, "lease lost before the entry was removed");
            }
            return Ok(());
        }
        let wait = secs(self.settings.backoff(envelope.attempts));
        let next = clock.now.saturating_add(wait);
        if self.save_at(&entry, &envelope, owner, next, true).await? {
            tracing::info!(queue_id = %entry.id, attempts = envelope.attempts,
                pending = envelope.pending().len(), retry_in_secs = wait, "delivery deferred");
        } else {
            tracing::warn!(queue_id = %entry.id, "lease lost before the attempt was recorded");
        }
        Ok(())
    }

    fn clock(&self, entry: &QueueEntry) -> Clock {
        Clock {
            now: unix_now(),
            created: entry.created,
            lifetime_secs: secs(self.settings.lifetime),
            delay_notice_secs: self.settings.delay_notice.map(secs),
        }
    }

    /// Sends the failure report and the delay notice that are due. A report that could not
    /// be handed on is tried again at the next attempt (the entry stays until it is).
    async fn report(&self, entry: &QueueEntry, envelope: &mut Envelope, clock: Clock) {
        let failed = envelope.failures_to_report();
        if !failed.is_empty()
            && self
                .send_report(entry, envelope, Kind::Failed, &failed)
                .await
        {
            envelope.mark_reported(&failed);
        }
        let delayed = envelope.delay_to_report(clock);
        if !delayed.is_empty() {
            let retry_until = entry.created.saturating_add(clock.lifetime_secs);
            let kind = Kind::Delayed { retry_until };
            if self.send_report(entry, envelope, kind, &delayed).await {
                envelope.delay_notified = true;
            }
        }
    }

    /// Renders a DSN about `indexes` and hands it to the sender: filed locally when the
    /// sender is ours, queued with the null sender otherwise. `true` once handed on (or when
    /// it never can be: the sender's account is gone).
    async fn send_report(
        &self,
        entry: &QueueEntry,
        envelope: &Envelope,
        kind: Kind,
        indexes: &[usize],
    ) -> bool {
        let header = match self.read_header(entry).await {
            Ok(header) => header,
            Err(e) => {
                tracing::error!(queue_id = %entry.id, error = %e, "cannot read a message to report on");
                return false;
            }
        };
        let report = Report {
            kind,
            reporting_mta: &self.settings.hostname,
            sender: &envelope.sender,
            arrival: entry.created,
            now: unix_now(),
            recipients: indexes
                .iter()
                .filter_map(|&i| envelope.recipients.get(i))
                .collect(),
            original_headers: &header,
        };
        let message = dsn::render(&report);
        let handed = match self.store.resolve_recipient(&envelope.sender).await {
            Ok(Recipient::Local(_)) => {
                let smtp = self.local_envelope("", vec![envelope.sender.clone()], entry);
                match self.deliverer.deliver_raw(&smtp, message).await {
                    DeliveryOutcome::Stored => true,
                    DeliveryOutcome::Rejected(code, ..) => {
                        tracing::warn!(queue_id = %entry.id, code, "the sender's mailbox refused a DSN");
                        true
                    }
                    DeliveryOutcome::TempFail(reason) => {
                        tracing::warn!(queue_id = %entry.id, %reason, "DSN not filed yet");
                        false
                    }
                }
            }
            Ok(Recipient::UnknownUser) => {
                tracing::warn!(queue_id = %entry.id, "the sender's account is gone: DSN dropped");
                true
            }
            Ok(Recipient::ForeignDomain) => {
                let body = MessageBytes::Memory(Arc::new(message));
                let sender = vec![envelope.sender.clone()];
                match self
                    .enqueue_message("", &sender, &body, entry.account_id)
                    .await
                {
                    Ok(_) => true,
                    Err(e) => {
                        tracing::warn!(queue_id = %entry.id, error = %e, "DSN not queued yet");
                        false
                    }
                }
            }
            Err(e) => {
                tracing::warn!(queue_id = %entry.id, error = %e, "cannot look up the sender");
                false
            }
        };
        if handed {
            tracing::info!(queue_id = %entry.id, kind = ?kind, recipients = indexes.len(),
                "delivery status notification sent");
        }
        handed
    }

    /// Pending recipients sorted into what to do with them: decided at once, local, or one
    /// group per remote domain.
    async fn groups(&self, envelope: &Envelope) -> Vec<Group> {
        let mut decided = Vec::new();
        let mut local = Vec::new();
        let mut remote: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for index in envelope.pending() {
            let Some(address) = envelope.recipients.get(index).map(|r| r.address.as_str()) else {
                continue;
            };
            match self.store.resolve_recipient(address).await {
                Ok(Recipient::Local(_)) => local.push(index),
                Ok(Recipient::UnknownUser) => decided.push((
                    index,
                    Outcome::Failed(Reply::local(550, "5.1.1", "no such user here")),
                )),
                Ok(Recipient::ForeignDomain) => match address.rsplit_once('@') {
                    Some((_, domain)) => remote
                        .entry(domain.to_ascii_lowercase())
                        .or_default()
                        .push(index),
                    None => decided.push((
                        index,
                        Outcome::Failed(Reply::local(553, "5.1.3", "invalid address")),
                    )),
                },
                Err(e) => decided.push((
                    index,
                    Outcome::Deferred(Reply::local(451, "4.3.0", format!("lookup failed: {e}"))),
                )),
            }
        }
        let mut groups = Vec::new();
        if !decided.is_empty() {
            groups.push(Group::Decided(decided));
        }
        if !local.is_empty() {
            groups.push(Group::Local(local));
        }
        groups.extend(remote.into_iter().map(|(d, i)| Group::Remote(d, i)));
        groups
    }

    /// Files copies for our own recipients through the delivery pipeline: no network.
    async fn deliver_local(
        &self,
        entry: &QueueEntry,
        envelope: &Envelope,
        indexes: &[usize],
    ) -> Vec<(usize, Outcome)> {
        let all = |outcome: Outcome| indexes.iter().map(|&i| (i, outcome.clone())).collect();
        let raw = match self.read_message(entry).await {
            Ok(raw) => raw,
            Err(e) => {
                return all(Outcome::Deferred(Reply::local(
                    451,
                    "4.3.0",
                    format!("cannot read the queued message: {e}"),
                )))
            }
        };
        let rcpts = indexes
            .iter()
            .filter_map(|&i| envelope.recipients.get(i))
            .map(|r| r.address.clone())
            .collect();
        let smtp = self.local_envelope(&envelope.sender, rcpts, entry);
        all(match self.deliverer.deliver_raw(&smtp, raw).await {
            DeliveryOutcome::Stored => {
                Outcome::Delivered(Reply::local(250, "2.0.0", "delivered to a local mailbox"))
            }
            DeliveryOutcome::Rejected(code, status, text) => {
                Outcome::Failed(Reply::local(code, status, text))
            }
            DeliveryOutcome::TempFail(reason) => {
                Outcome::Deferred(Reply::local(451, "4.3.0", reason))
            }
        })
    }

    /// The envelope a local copy is filed with: from this host, marked as submitted by the
    /// queuing account, so sender verification does not judge our own mail.
    fn local_envelope(
        &self,
        sender: &str,
        rcpt_to: Vec<String>,
        entry: &QueueEntry,
    ) -> SmtpEnvelope {
        SmtpEnvelope {
            mail_from: sender.to_string(),
            smtputf8: !sender.is_ascii() || rcpt_to.iter().any(|r| !r.is_ascii()),
            rcpt_to,
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            helo: self.settings.hostname.clone(),
            tls: false,
            authenticated: Some(Authenticated {
                account_id: entry.account_id,
                address: sender.to_string(),
            }),
        }
    }

    /// Delivers to one remote domain: its mail exchangers in order until one decides.
    async fn deliver_remote(
        &self,
        entry: &QueueEntry,
        envelope: &Envelope,
        domain: &str,
        indexes: &[usize],
    ) -> Vec<(usize, Outcome)> {
        let all = |outcome: Outcome| indexes.iter().map(|&i| (i, outcome.clone())).collect();
        let hosts = match self.resolver.route(domain).await {
            Route::Hosts(hosts) => hosts,
            Route::Unreachable(reply) if reply.is_permanent() => {
                return all(Outcome::Failed(reply))
            }
            Route::Unreachable(reply) => return all(Outcome::Deferred(reply)),
        };
        let recipients: Vec<String> = indexes
            .iter()
            .filter_map(|&i| envelope.recipients.get(i))
            .map(|r| r.address.clone())
            .collect();
        let tx = Transaction {
            sender: &envelope.sender,
            recipients: &recipients,
        };
        let source = QueuedSource {
            store: &self.store,
            entry,
        };
        let mut last = Reply::local(451, "4.4.4", format!("no mail exchanger for {domain}"));
        for host in &hosts {
            match self.client.deliver(host, &tx, &source).await {
                HostOutcome::Replied(replies) => {
                    return indexes
                        .iter()
                        .zip(replies)
                        .map(|(&i, reply)| (i, outcome_of(reply)))
                        .collect();
                }
                HostOutcome::Unusable(reply) => last = reply,
            }
        }
        // RFC 5321 §4.5.4.1: no exchanger could take it now: retry later.
        all(Outcome::Deferred(Reply {
            code: last.code.min(499),
            ..last
        }))
    }

    async fn read_message(&self, entry: &QueueEntry) -> Result<Vec<u8>, QueueError> {
        let reader = self.store.queue_message_reader(entry).await?;
        read_all(reader, entry.size).await
    }

    /// The queued message's header (with our DKIM signature), at most
    /// [`MAX_RETURNED_HEADER`] octets of it.
    async fn read_header(&self, entry: &QueueEntry) -> Result<Vec<u8>, QueueError> {
        let reader = self.store.queue_message_reader(entry).await?;
        let head = read_all(
            Box::new(reader.take(MAX_RETURNED_HEADER)),
            MAX_RETURNED_HEADER,
        )
        .await?;
        Ok(dsn::header_of(&head).to_vec())
    }

    /// Every queued message with its per-recipient state, oldest first (`postkeep queue
    /// list`). Needs no running queue: works from the CLI on the store. An entry whose
    /// envelope cannot be opened is listed with the reason in `unreadable`, so the operator
    /// can remove it.
    pub async fn list(store: &MailStore) -> Result<Vec<QueueItem>, QueueError> {
        let now = unix_now();
        let mut items = Vec::new();
        for entry in store.meta().queue_entries().await? {
            let opened = match store.queue_open_envelope(&entry).await {
                Ok(json) => serde_json::from_slice::<Envelope>(&json).map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let (envelope, unreadable) = match opened {
                Ok(envelope) => (envelope, None),
                Err(reason) => (Envelope::new("", &[]), Some(reason)),
            };
            items.push(QueueItem {
                recipients: envelope
                    .recipients
                    .into_iter()
                    .map(|r| ItemRecipient {
                        address: r.address,
                        status: r.status,
                        reply: r.reply.map(|reply| reply.to_string()),
                    })
                    .collect(),
                sender: envelope.sender,
                attempts: envelope.attempts,
                in_delivery: entry.lease_owner.is_some() && entry.lease_until > now,
                unreadable,
                id: entry.id,
                size: entry.size,
                created: entry.created,
                next_attempt: entry.next_attempt,
            });
        }
        Ok(items)
    }

    /// Makes one entry (or every entry) due now (`postkeep queue retry`); returns how many.
    /// A running queue picks them up within its poll interval.
    pub async fn retry(store: &MailStore, id: Option<&str>) -> Result<u64, QueueError> {
        Ok(store.meta().queue_reschedule(id, unix_now()).await?)
    }

    /// Deletes an entry without delivering or reporting it (`postkeep queue remove`);
    /// `false` when there is no such entry. An attempt in progress finishes its current
    /// transaction but can no longer record anything.
    pub async fn remove(store: &MailStore, id: &str) -> Result<bool, QueueError> {
        Ok(store.queue_remove(id, None).await?)
    }
}

#[async_trait]
impl Outbox for Queue {
    async fn enqueue(
        &self,
        sender: &str,
        recipients: &[String],
        body: &MessageBytes,
        submitted_by: AccountId,
    ) -> Result<String, OutboxError> {
        self.enqueue_message(sender, recipients, body, submitted_by)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "cannot queue a message");
                OutboxError(e.to_string())
            })
    }
}

enum Group {
    /// Outcomes known without delivering (unknown local user, bad address).
    Decided(Vec<(usize, Outcome)>),
    Local(Vec<usize>),
    Remote(String, Vec<usize>),
}

fn outcome_of(reply: Reply) -> Outcome {
    match reply.code / 100 {
        2 => Outcome::Delivered(reply),
        5 => Outcome::Failed(reply),
        _ => Outcome::Deferred(reply),
    }
}

/// The sealed queued message, read for each transaction.
struct QueuedSource<'a> {
    store: &'a MailStore,
    entry: &'a QueueEntry,
}

#[async_trait]
impl MessageSource for QueuedSource<'_> {
    async fn open(&self) -> std::io::Result<Box<dyn Read + Send>> {
        self.store
            .queue_message_reader(self.entry)
            .await
            .map_err(std::io::Error::other)
    }

    fn len(&self) -> u64 {
        self.entry.size
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking holder cannot leave a set of ids inconsistent: keep using it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn read_all(reader: Box<dyn Read + Send>, size_hint: u64) -> Result<Vec<u8>, QueueError> {
    let capacity = usize::try_from(size_hint.min(64 * 1024 * 1024)).unwrap_or(0);
    tokio::task::spawn_blocking(move || {
        let mut reader = reader;
        let mut out = Vec::with_capacity(capacity);
        reader.read_to_end(&mut out).map(|_| out)
    })
    .await
    .map_err(|e| QueueError::Invalid(e.to_string()))?
    .map_err(|e| QueueError::Store(postkeep_store::StoreError::Sealed(e.to_string())))
}

/// The message of a `MessageBytes` in memory (a spooled one is read).
async fn read_bytes(body: &MessageBytes) -> Result<Arc<Vec<u8>>, QueueError> {
    if let MessageBytes::Memory(raw) = body {
        return Ok(Arc::clone(raw));
    }
    let spooled = body.clone();
    let capacity = usize::try_from(body.len().min(64 * 1024 * 1024)).unwrap_or(0);
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(capacity);
        spooled.open()?.read_to_end(&mut out).map(|_| Arc::new(out))
    })
    .await
    .map_err(|e| QueueError::Invalid(e.to_string()))?
    .map_err(|e| QueueError::Store(postkeep_store::StoreError::Io(e)))
}

/// The domain of the first `From:` address (RFC 5322 §3.6.2), lowercased.
fn from_domain(raw: &[u8]) -> Option<String> {
    let header = dsn::header_of(raw);
    let message = mail_parser::MessageParser::default().parse_headers(header)?;
    let address = message.from()?.first()?.address()?;
    let (_, domain) = address.rsplit_once('@')?;
    Some(domain.trim().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_domain_reads_the_header_not_the_body() {
        assert_eq!(
            from_domain(b"Subject: x\r\nFrom: Alice <alice@Example.ORG>\r\n\r\nFrom: a@b.c\r\n"),
            Some("example.org".into())
        );
        assert_eq!(from_domain(b"Subject: x\r\n\r\nFrom: a@b.c\r\n"), None);
        assert_eq!(from_domain(b"From: no address here\r\n\r\n"), None);
        assert_eq!(from_domain(b""), None);
    }

    #[test]
    fn replies_map_to_outcomes_by_class() {
        let reply = |code| Reply::local(code, "x.0.0", "");
        assert!(matches!(outcome_of(reply(250)), Outcome::Delivered(_)));
        assert!(matches!(outcome_of(reply(452)), Outcome::Deferred(_)));
        assert!(matches!(outcome_of(reply(550)), Outcome::Failed(_)));
        assert!(matches!(outcome_of(reply(354)), Outcome::Deferred(_)));
    }
}
