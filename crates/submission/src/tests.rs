//! The submission handler against a real store: credentials, sender ownership, limits, where
//! each copy goes.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use postkeep_auth::Throttle;
use postkeep_delivery::{InboundMessage, Verdict};
use postkeep_smtp::MessageSink;
use postkeep_store::Account;

use super::*;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const PASSWORD: &str = "correct horse";

/// Records what was queued.
#[derive(Default)]
struct RecordingOutbox {
    queued: Mutex<Vec<(String, Vec<String>, AccountId)>>,
}

#[async_trait]
impl Outbox for RecordingOutbox {
    async fn enqueue(
        &self,
        sender: &str,
        recipients: &[String],
        _body: &MessageBytes,
        submitted_by: AccountId,
    ) -> Result<String, OutboxError> {
        let mut queued = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        queued.push((sender.to_owned(), recipients.to_vec(), submitted_by));
        Ok(format!("Q{}", queued.len()))
    }
}

/// Records `submitted_by` as later stages see it.
#[derive(Default)]
struct SeenBy(Mutex<Vec<Option<AccountId>>>);

/// The stage side of a shared [`SeenBy`].
struct SeenByStage(Arc<SeenBy>);

#[async_trait]
impl Stage for SeenByStage {
    fn name(&self) -> &'static str {
        "seen-by"
    }
    async fn process(&self, message: &mut InboundMessage) -> Verdict {
        let mut seen = self.0 .0.lock().unwrap_or_else(|e| e.into_inner());
        seen.push(message.submitted_by);
        Verdict::Continue
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<MailStore>,
    alice: Account,
    bob: Account,
    outbox: Arc<RecordingOutbox>,
    seen: Arc<SeenBy>,
}

impl Fixture {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = postkeep_store::testing::store_with_domain(dir.path(), "example.org").await;
        let hash = postkeep_auth::hash_password(PASSWORD).unwrap();
        let alice = store
            .create_account("alice@example.org", Some(&hash))
            .await
            .unwrap();
        let bob = store
            .create_account("bob@example.org", Some(&hash))
            .await
            .unwrap();
        store
            .meta()
            .add_alias("sales@example.org", alice.id)
            .await
            .unwrap();
        Self {
            _dir: dir,
            store,
            alice,
            bob,
            outbox: Arc::default(),
            seen: Arc::default(),
        }
    }

    fn handler(&self, settings: SubmissionSettings) -> Submission {
        self.handler_with(settings, self.outbox.clone())
    }

    fn handler_with(&self, settings: SubmissionSettings, outbox: Arc<dyn Outbox>) -> Submission {
        let auth = Arc::new(Authenticator::new(
            Arc::clone(&self.store),
            Throttle::default(),
        ));
        let stages: Vec<Arc<dyn Stage>> = vec![Arc::new(SeenByStage(Arc::clone(&self.seen)))];
        Submission::new(Arc::clone(&self.store), auth, outbox, stages, settings)
    }

    fn alice(&self) -> Authenticated {
        Authenticated {
            account_id: self.alice.id,
            address: self.alice.address.clone(),
        }
    }

    async fn count(&self, account: &Account, role: MailboxRole) -> usize {
        let mailbox = self.store.role_mailbox(account.id, role).await.unwrap();
        self.store
            .meta()
            .list_entries(mailbox.id)
            .await
            .unwrap()
            .len()
    }
}

fn envelope(user: Authenticated, from: &str, rcpts: &[&str]) -> Envelope {
    Envelope {
        mail_from: from.into(),
        rcpt_to: rcpts.iter().map(|r| r.to_string()).collect(),
        peer: "127.0.0.1:1".parse().unwrap(),
        helo: "client.test".into(),
        tls: true,
        smtputf8: false,
        authenticated: Some(user),
    }
}

async fn send(
    handler: &Submission,
    store: &Arc<MailStore>,
    env: &Envelope,
    raw: &str,
) -> DeliveryOutcome {
    let mut sink = SpoolSink::new(Arc::clone(store));
    sink.write(raw.as_bytes()).await.unwrap();
    handler.deliver(sink, env).await
}

const FROM_ALICE: &str = "From: Alice <alice@example.org>\r\nTo: x\r\nSubject: hi\r\n\r\nbody\r\n";

#[tokio::test]
async fn plain_and_login_with_password_or_app_password_authenticate() {
    let f = Fixture::new().await;
    let h = f.handler(SubmissionSettings::default());
    let plain = |s: &str| AuthRequest::Plain(Zeroizing::new(s.as_bytes().to_vec()));
    let ok = AuthVerdict::Success(f.alice());
    assert_eq!(
        h.authenticate(plain("\0alice@example.org\0correct horse"), IP)
            .await,
        ok
    );
    // authzid equal to the user is allowed; anyone else's is not (no proxy authorization).
    assert_eq!(
        h.authenticate(
            plain("alice@example.org\0ALICE@example.org\0correct horse"),
            IP
        )
        .await,
        ok
    );
    assert_eq!(
        h.authenticate(
            plain("bob@example.org\0alice@example.org\0correct horse"),
            IP
        )
        .await,
        AuthVerdict::Invalid
    );
    assert_eq!(
        h.authenticate(plain("no separators"), IP).await,
        AuthVerdict::Malformed
    );

    let app = postkeep_auth::generate_app_password().unwrap();
    let digest = postkeep_auth::login::app_password_key(&f.store)
        .await
        .unwrap()
        .digest(&app);
    f.store
        .meta()
        .add_app_password(f.alice.id, "phone", &digest)
        .await
        .unwrap();
    let login = AuthRequest::Login {
        username: "alice@example.org".into(),
        password: app,
    };
    assert_eq!(h.authenticate(login, IP).await, ok);
}

#[tokio::test]
async fn wrong_passwords_are_invalid_then_throttled() {
    let f = Fixture::new().await;
    let h = f.handler(SubmissionSettings::default());
    let mut verdicts = Vec::new();
    for _ in 0..8 {
        let wrong = AuthRequest::Login {
            username: "alice@example.org".into(),
            password: Zeroizing::new("guess".into()),
        };
        verdicts.push(h.authenticate(wrong, IP).await);
    }
    assert_eq!(verdicts[0], AuthVerdict::Invalid);
    assert_eq!(
        verdicts.last(),
        Some(&AuthVerdict::Throttled),
        "{verdicts:?}"
    );
}

#[tokio::test]
async fn sender_must_be_the_account_or_its_alias() {
    let f = Fixture::new().await;
    let h = f.handler(SubmissionSettings::default());
    let alice = f.alice();
    assert_eq!(
        h.check_sender("Alice@Example.org", &alice).await,
        SenderVerdict::Accept
    );
    assert_eq!(
        h.check_sender("sales@example.org", &alice).await,
        SenderVerdict::Accept
    );
    for spoofed in ["bob@example.org", "ceo@victim.test", ""] {
        let SenderVerdict::Refuse(code, esc, _) = h.check_sender(spoofed, &alice).await else {
            panic!("{spoofed:?} accepted");
        };
        assert_eq!((code, esc), (550, "5.7.1"), "{spoofed:?}");
    }
}

#[tokio::test]
async fn remote_recipients_are_accepted_and_unknown_local_ones_refused() {
    let f = Fixture::new().await;
    let h = f.handler(SubmissionSettings::default());
    assert_eq!(
        h.check_recipient("friend@remote.test").await,
        RcptVerdict::Accept
    );
    assert_eq!(
        h.check_recipient("bob@example.org").await,
        RcptVerdict::Accept
    );
    assert_eq!(
        h.check_recipient("nobody@example.org").await,
        RcptVerdict::UnknownUser
    );
}

#[tokio::test]
async fn a_submission_is_queued_filed_marked_and_copied_to_sent() {
    let f = Fixture::new().await;
    let h = f.handler(SubmissionSettings::default());
    let env = envelope(
        f.alice(),
        "alice@example.org",
        &["bob@example.org", "friend@remote.test"],
    );
    assert_eq!(
        send(&h, &f.store, &env, FROM_ALICE).await,
        DeliveryOutcome::Stored
    );
    assert_eq!(f.count(&f.bob, MailboxRole::Inbox).await, 1);
    assert_eq!(f.count(&f.alice, MailboxRole::Sent).await, 1);
    assert_eq!(f.count(&f.alice, MailboxRole::Inbox).await, 0);
    let queued = f.outbox.queued.lock().unwrap().clone();
    assert_eq!(
        queued,
        [(
            "alice@example.org".to_string(),
            vec!["friend@remote.test".to_string()],
            f.alice.id
        )]
    );
    // Later stages see the message as submitted by alice (inbound-auth skips such mail).
    assert_eq!(*f.seen.0.lock().unwrap(), [Some(f.alice.id)]);
    let sent = f
        .store
        .role_mailbox(f.alice.id, MailboxRole::Sent)
        .await
        .unwrap();
    let entries = f.store.meta().list_entries(sent.id).await.unwrap();
    assert_eq!(Flag::from_bits(entries[0].flags), [Flag::Seen]);
}

#[tokio::test]
async fn sent_copy_can_be_switched_off() {
    let f = Fixture::new().await;
    let h = f.handler(SubmissionSettings {
        sent_copy: false,
        ..SubmissionSettings::default()
    });
    let env = envelope(f.alice(), "alice@example.org", &["bob@example.org"]);
    assert_eq!(
        send(&h, &f.store, &env, FROM_ALICE).await,
        DeliveryOutcome::Stored
    );
    assert_eq!(f.count(&f.bob, MailboxRole::Inbox).await, 1);
    assert_eq!(f.count(&f.alice, MailboxRole::Sent).await, 0);
}

#[tokio::test]
async fn spoofed_from_headers_are_refused_and_nothing_is_stored() {
    let f = Fixture::new().await;
    let h = f.handler(SubmissionSettings::default());
    let env = envelope(f.alice(), "alice@example.org", &["bob@example.org"]);
    for raw in [
        "From: CEO <ceo@victim.test>\r\n\r\nbody\r\n",
        "From: bob@example.org\r\n\r\nbody\r\n",
        "From: alice@example.org\r\nFrom: ceo@victim.test\r\n\r\nbody\r\n",
        "From: alice@example.org\r\nSender: bob@example.org\r\n\r\nbody\r\n",
        "Subject: no from\r\n\r\nbody\r\n",
    ] {
        let outcome = send(&h, &f.store, &env, raw).await;
        assert!(
            matches!(outcome, DeliveryOutcome::Rejected(550, "5.7.1", _)),
            "{raw:?}: {outcome:?}"
        );
    }
    // An alias of alice is hers to use.
    let alias = "From: Sales <sales@example.org>\r\n\r\nbody\r\n";
    assert_eq!(
        send(&h, &f.store, &env, alias).await,
        DeliveryOutcome::Stored
    );
    assert_eq!(f.count(&f.bob, MailboxRole::Inbox).await, 1);
    assert_eq!(f.count(&f.alice, MailboxRole::Sent).await, 1);
}

#[tokio::test]
async fn a_refusing_outbox_defers_remote_mail_and_nothing_is_stored() {
    let f = Fixture::new().await;
    let h = f.handler_with(SubmissionSettings::default(), Arc::new(RefusingOutbox));
    let env = envelope(
        f.alice(),
        "alice@example.org",
        &["bob@example.org", "friend@remote.test"],
    );
    let outcome = send(&h, &f.store, &env, FROM_ALICE).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Rejected(451, "4.4.0", _)),
        "{outcome:?}"
    );
    assert_eq!(f.count(&f.bob, MailboxRole::Inbox).await, 0);
    assert_eq!(f.count(&f.alice, MailboxRole::Sent).await, 0);
    // A deferred message does not use up the hourly budget; local-only mail still works.
    let local = envelope(f.alice(), "alice@example.org", &["bob@example.org"]);
    assert_eq!(
        send(&h, &f.store, &local, FROM_ALICE).await,
        DeliveryOutcome::Stored
    );
}

#[tokio::test]
async fn hourly_limit_defers_at_mail_and_at_data() {
    let f = Fixture::new().await;
    let h = f.handler(SubmissionSettings {
        max_messages_per_hour: 1,
        ..SubmissionSettings::default()
    });
    let alice = f.alice();
    let env = envelope(alice.clone(), "alice@example.org", &["bob@example.org"]);
    assert_eq!(
        h.check_sender("alice@example.org", &alice).await,
        SenderVerdict::Accept
    );
    assert_eq!(
        send(&h, &f.store, &env, FROM_ALICE).await,
        DeliveryOutcome::Stored
    );
    let SenderVerdict::Refuse(code, esc, text) = h.check_sender("alice@example.org", &alice).await
    else {
        panic!("limit not applied at MAIL");
    };
    assert_eq!((code, esc), (451, "4.7.1"), "{text}");
    let outcome = send(&h, &f.store, &env, FROM_ALICE).await;
    assert!(
        matches!(outcome, DeliveryOutcome::Rejected(451, "4.7.1", _)),
        "{outcome:?}"
    );
    assert_eq!(f.count(&f.bob, MailboxRole::Inbox).await, 1);
}

#[tokio::test]
async fn unauthenticated_envelopes_are_never_delivered() {
    let f = Fixture::new().await;
    let h = f.handler(SubmissionSettings::default());
    let mut env = envelope(f.alice(), "alice@example.org", &["bob@example.org"]);
    env.authenticated = None;
    let outcome = send(&h, &f.store, &env, FROM_ALICE).await;
    assert!(matches!(
        outcome,
        DeliveryOutcome::Rejected(530, "5.7.0", _)
    ));
    assert_eq!(f.count(&f.bob, MailboxRole::Inbox).await, 0);
}

/// An outbox that cannot queue anything (its storage failing, say).
struct RefusingOutbox;

#[async_trait::async_trait]
impl Outbox for RefusingOutbox {
    async fn enqueue(
        &self,
        _sender: &str,
        _recipients: &[String],
        _body: &MessageBytes,
        _submitted_by: AccountId,
    ) -> Result<String, OutboxError> {
        Err(OutboxError("queue storage unavailable".into()))
    }
}
