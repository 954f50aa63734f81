//! The queue against real peers: Postfix as the remote MX (STARTTLS, 550, 450), NSD as the
//! authoritative DNS of the remote domains, a real store for the local sender.

mod support;

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::{AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters};
use mail_auth::{ResolverCache, Txt};
use mail_parser::{MessageParser, MimeHeaders};
use postkeep_delivery::Outbox;
use postkeep_outbound::{Queue, QueueSettings, Status};
use postkeep_store::{BlobArea, MessageBytes};
use support::*;
use tokio::sync::watch;

const MX_DOMAINS: [&str; 4] = ["remote.test", "backup.test", "implicit.test", "slow.test"];

/// The test zones: a plain MX, an MX whose preferred host is dead, no MX at all (implicit
/// MX, RFC 5321 §5.1), a null MX (RFC 7505), and an MX whose preferred host never answers.
fn zones() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "remote.test",
            "@ IN MX 10 mx.remote.test.\nmx IN A 127.0.0.1",
        ),
        (
            "backup.test",
            "@ IN MX 20 mx.backup.test.\n@ IN MX 10 dead.backup.test.\n\
             dead IN A 127.0.0.2\nmx IN A 127.0.0.1",
        ),
        ("implicit.test", "@ IN A 127.0.0.1"),
        ("nullmx.test", "@ IN MX 0 ."),
        (
            "slow.test",
            "@ IN MX 10 stall.slow.test.\n@ IN MX 20 mx.slow.test.\n\
             stall IN A 127.0.0.3\nmx IN A 127.0.0.1",
        ),
    ]
}

/// A running queue, stopped (gracefully) by `stop`.
struct Running {
    queue: Arc<Queue>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(fx: &Fixture, settings: QueueSettings, nsd: &Nsd) -> Self {
        let queue = fx.queue(settings, nsd.settings()).await;
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(Arc::clone(&queue).run(shutdown));
        Self { queue, stop, task }
    }

    async fn send(&self, fx: &Fixture, to: &[&str], body: Vec<u8>) -> String {
        let account = fx.store.find_account(ALICE).await.unwrap().unwrap();
        let to: Vec<String> = to.iter().map(|r| r.to_string()).collect();
        self.queue
            .enqueue(
                ALICE,
                &to,
                &MessageBytes::Memory(Arc::new(body)),
                account.id,
            )
            .await
            .expect("queued")
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.expect("the queue stops");
    }
}

async fn wait_until_empty(fx: &Fixture, limit: Duration) {
    wait_for(limit, "the queue to empty", || async {
        fx.queue_is_empty().await.then_some(())
    })
    .await;
}

/// The `message/delivery-status` part of a DSN, and the DSN parsed.
fn delivery_status(dsn: &[u8]) -> String {
    let parsed = MessageParser::default().parse(dsn).expect("a DSN parses");
    let content_type = parsed.content_type().expect("a content type");
    assert_eq!(
        (content_type.ctype(), content_type.subtype()),
        ("multipart", Some("report"))
    );
    assert_eq!(
        content_type.attribute("report-type"),
        Some("delivery-status")
    );
    parsed
        .parts
        .iter()
        .find(|p| p.content_type().and_then(|c| c.subtype()) == Some("delivery-status"))
        .map(|p| String::from_utf8_lossy(p.contents()).into_owned())
        .expect("a delivery-status part")
}

#[derive(Default)]
struct TxtCache(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for TxtCache {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

/// mail-auth's DKIM verdicts on `message`, with the public keys the store publishes.
async fn verify_dkim(fx: &Fixture, message: &[u8]) -> Vec<DkimResult> {
    let domain = fx.store.meta().find_domain(DOMAIN).await.unwrap().unwrap();
    let cache = TxtCache::default();
    for key in fx.store.dkim_keys(&domain).await.unwrap() {
        let name = format!(
            "{}.",
            postkeep_dkim::record_name(&key.selector, DOMAIN).trim_end_matches('.')
        );
        let record = DomainKey::parse(postkeep_dkim::record_text(&key).as_bytes()).unwrap();
        cache.insert(name.into(), record.into(), Instant::now());
    }
    // Never queried: the cache answers every lookup.
    let resolver = MessageAuthenticator::new_cloudflare().unwrap();
    let wire = postkeep_message::wire::to_wire(message);
    let parsed = AuthenticatedMessage::parse(&wire).expect("the delivered message parses");
    resolver
        .verify_dkim(Parameters::new(&parsed).with_txt_cache(&cache))
        .await
        .iter()
        .map(|output| output.result().clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_over_starttls_by_mx_preference_with_a_verifying_dkim_signature() {
    let postfix = Postfix::start(
        &MX_DOMAINS,
        &["bob@remote.test", "amy@backup.test", "dan@implicit.test"],
        &[],
    );
    let nsd = Nsd::start(&zones()).await;
    let fx = Fixture::new().await;
    let running = Running::start(&fx, settings(postfix.port), &nsd).await;
    running
        .send(
            &fx,
            &["bob@remote.test", "amy@backup.test", "dan@implicit.test"],
            message("bob@remote.test", "tls-1"),
        )
        .await;
    wait_until_empty(&fx, Duration::from_secs(60)).await;
    running.stop().await;

    // backup.test: the preferred exchanger refuses connections; the second one took it.
    for rcpt in ["bob@remote.test", "amy@backup.test", "dan@implicit.test"] {
        assert_eq!(
            postfix.wait_maildir(rcpt, 1).await.len(),
            1,
            "{rcpt}: one copy"
        );
    }
    let delivered = postfix.maildir("bob@remote.test").remove(0);
    let text = String::from_utf8_lossy(&delivered);
    assert!(
        text.contains("(using TLSv1."),
        "Received: shows TLS:\n{text}"
    );
    assert!(
        text.contains("\n.leading dot\n"),
        "dot-stuffing undone:\n{text}"
    );
    let log = postfix.log();
    assert!(
        log.contains("TLS connection established from"),
        "Postfix logged no TLS session:\n{log}"
    );
    assert_eq!(
        header(&delivered, "Message-ID").as_deref(),
        Some("<tls-1@example.org>")
    );

    let results = verify_dkim(&fx, &delivered).await;
    assert_eq!(
        results.len(),
        2,
        "an RSA and an ed25519 signature: {results:?}"
    );
    assert!(
        results.iter().all(|r| *r == DkimResult::Pass),
        "{results:?}"
    );
    assert!(fx.inbox(ALICE).await.is_empty(), "no report on a success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_550_and_a_null_mx_come_back_to_the_local_sender_in_one_dsn() {
    let postfix = Postfix::start(&MX_DOMAINS, &["bob@remote.test"], &[]);
    let nsd = Nsd::start(&zones()).await;
    let fx = Fixture::new().await;
    let running = Running::start(&fx, settings(postfix.port), &nsd).await;
    running
        .send(
            &fx,
            &["bob@remote.test", "nobody@remote.test", "x@nullmx.test"],
            message("bob@remote.test", "bounce-1"),
        )
        .await;
    wait_until_empty(&fx, Duration::from_secs(60)).await;
    running.stop().await;

    assert_eq!(postfix.wait_maildir("bob@remote.test", 1).await.len(), 1);
    let inbox = fx.inbox(ALICE).await;
    assert_eq!(inbox.len(), 1, "one DSN for both failures");
    let dsn = &inbox[0];
    assert_eq!(
        header(dsn, "From").as_deref(),
        Some("Mail Delivery System <MAILER-DAEMON@mx.example.org>")
    );
    let status = delivery_status(dsn);
    for field in [
        "Reporting-MTA: dns; mx.example.org",
        "Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Remote-MTA: dns; mx.remote.test\r\nDiagnostic-Code: smtp; 550 5.1.1 <nobody@remote.test>",
        "Final-Recipient: rfc822; x@nullmx.test\r\nAction: failed\r\nStatus: 5.1.10\r\n",
    ] {
        assert!(status.contains(field), "{field:?} not in:\n{status}");
    }
    assert!(
        !status.contains("bob@remote.test"),
        "delivered: not reported"
    );
    let text = String::from_utf8_lossy(dsn);
    assert!(text.contains("text/rfc822-headers"), "{text}");
    assert!(
        text.contains("Subject: test bounce-1"),
        "original header returned"
    );
    assert!(!text.contains("Hello bounce-1"), "no body returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_retried_on_the_backoff_schedule_with_one_delay_notice_then_delivered() {
    let busy = "carol@remote.test 450 4.2.1 Mailbox busy";
    let postfix = Postfix::start(&MX_DOMAINS, &["carol@remote.test"], &[busy]);
    let nsd = Nsd::start(&zones()).await;
    let fx = Fixture::new().await;
    let mut s = settings(postfix.port);
    s.delay_notice = Some(Duration::from_secs(2));
    let running = Running::start(&fx, s.clone(), &nsd).await;
    let id = running
        .send(
            &fx,
            &["carol@remote.test"],
            message("carol@remote.test", "retry-1"),
        )
        .await;

    // When each attempt is recorded.
    let mut seen: Vec<Instant> = Vec::new();
    while seen.len() < 5 {
        let attempts = wait_for(Duration::from_secs(30), "the next attempt", || async {
            let items = Queue::list(&fx.store).await.unwrap();
            let attempts = items.first().map(|i| i.attempts as usize).unwrap_or(0);
            (attempts > seen.len()).then_some(attempts)
        })
        .await;
        assert_eq!(attempts, seen.len() + 1, "an attempt was missed");
        seen.push(Instant::now());
    }
    // Waits after attempts 1..4: base 1 s doubled, capped at 4 s. Times are whole seconds
    // in the store: a wait may come out up to a second short.
    for (n, pair) in seen.windows(2).enumerate() {
        let gap = pair[1].duration_since(pair[0]).as_secs_f64();
        let want = s.backoff(n as u32 + 1).as_secs_f64();
        assert!(
            gap > want - 1.0 && gap < want + 1.0,
            "wait after attempt {}: {gap:.2} s, expected about {want} s",
            n + 1
        );
    }
    let items = Queue::list(&fx.store).await.unwrap();
    assert_eq!(items.len(), 1);
    let item = &items[0];
    assert_eq!(
        (item.id.as_str(), item.sender.as_str()),
        (id.as_str(), ALICE)
    );
    assert_eq!(item.recipients[0].status, Status::Pending);
    let reply = item.recipients[0].reply.clone().unwrap_or_default();
    assert!(
        reply.starts_with("450 4.2.1") && reply.contains("Mailbox busy"),
        "{reply}"
    );
    let rejects = postfix
        .log()
        .matches("450 4.2.1 <carol@remote.test>")
        .count();
    assert_eq!(rejects, 5, "one RCPT per attempt");

    // The delay notice, once.
    let inbox = fx.inbox(ALICE).await;
    assert_eq!(inbox.len(), 1, "exactly one delay notice");
    let status = delivery_status(&inbox[0]);
    assert!(
        status.contains("Action: delayed\r\nStatus: 4.2.1\r\n"),
        "{status}"
    );
    assert!(status.contains("Will-Retry-Until: "), "{status}");

    // The mailbox frees up; the operator asks for a retry now instead of in 4 s.
    postfix.set_access(&[]);
    assert_eq!(Queue::retry(&fx.store, Some(&id)).await.unwrap(), 1);
    let asked = Instant::now();
    wait_until_empty(&fx, Duration::from_secs(30)).await;
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "retry was not immediate"
    );
    running.stop().await;
    assert_eq!(postfix.wait_maildir("carol@remote.test", 1).await.len(), 1);
    assert_eq!(
        fx.inbox(ALICE).await.len(),
        1,
        "no failure report after delivery"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_deferred_past_its_lifetime_is_returned_with_4_4_7() {
    let busy = "carol@remote.test 450 4.2.1 Mailbox busy";
    let postfix = Postfix::start(&MX_DOMAINS, &["carol@remote.test"], &[busy]);
    let nsd = Nsd::start(&zones()).await;
    let fx = Fixture::new().await;
    let mut s = settings(postfix.port);
    s.lifetime = Duration::from_secs(3);
    let running = Running::start(&fx, s, &nsd).await;
    running
        .send(
            &fx,
            &["carol@remote.test"],
            message("carol@remote.test", "expire-1"),
        )
        .await;
    wait_until_empty(&fx, Duration::from_secs(30)).await;
    running.stop().await;

    assert!(postfix.maildir("carol@remote.test").is_empty());
    assert!(
        postfix
            .log()
            .matches("450 4.2.1 <carol@remote.test>")
            .count()
            >= 2
    );
    let inbox = fx.inbox(ALICE).await;
    assert_eq!(inbox.len(), 1, "one failure report, no delay notice (off)");
    let status = delivery_status(&inbox[0]);
    assert!(
        status.contains(
            "Final-Recipient: rfc822; carol@remote.test\r\nAction: failed\r\nStatus: 4.4.7\r\n"
        ),
        "{status}"
    );
    let text = String::from_utf8_lossy(&inbox[0]);
    assert!(
        text.contains("expired") && text.contains("Mailbox busy"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_entry_is_neither_delivered_nor_reported() {
    let busy = "carol@remote.test 450 4.2.1 Mailbox busy";
    let postfix = Postfix::start(&MX_DOMAINS, &["carol@remote.test"], &[busy]);
    let nsd = Nsd::start(&zones()).await;
    let fx = Fixture::new().await;
    let running = Running::start(&fx, settings(postfix.port), &nsd).await;
    let id = running
        .send(
            &fx,
            &["carol@remote.test"],
            message("carol@remote.test", "remove-1"),
        )
        .await;
    wait_for(Duration::from_secs(30), "a first attempt", || async {
        let items = Queue::list(&fx.store).await.unwrap();
        items.first().is_some_and(|i| i.attempts >= 1).then_some(())
    })
    .await;
    assert!(Queue::remove(&fx.store, &id).await.unwrap());
    assert!(
        !Queue::remove(&fx.store, &id).await.unwrap(),
        "already gone"
    );
    postfix.set_access(&[]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    running.stop().await;
    assert!(fx.queue_is_empty().await);
    assert!(fx
        .store
        .blobs()
        .list(BlobArea::SmtpOutgoing)
        .await
        .unwrap()
        .is_empty());
    assert!(postfix.maildir("carol@remote.test").is_empty());
    assert!(fx.inbox(ALICE).await.is_empty());
}

/// Accepts connections on `addr` and never says a word: a server that hangs.
async fn black_hole(
    addr: std::net::SocketAddr,
) -> (tokio::task::JoinHandle<()>, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind 127.0.0.3");
    let accepted = Arc::new(Mutex::new(0));
    let count = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
            *count.lock().unwrap() += 1;
        }
    });
    (task, accepted)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_crashed_queue_are_delivered_exactly_once_after_restart() {
    let postfix = Postfix::start(&MX_DOMAINS, &["bob@remote.test", "eve@slow.test"], &[]);
    let nsd = Nsd::start(&zones()).await;
    let mut fx = Fixture::new().await;
    let mut s = settings(postfix.port);
    s.concurrency = 8;
    let first = Running::start(&fx, s.clone(), &nsd).await;

    // Delivered before the crash: must not go out again.
    for n in 0..3 {
        first
            .send(
                &fx,
                &["bob@remote.test"],
                message("bob@remote.test", &format!("before-{n}")),
            )
            .await;
    }
    wait_until_empty(&fx, Duration::from_secs(60)).await;
    assert_eq!(postfix.wait_maildir("bob@remote.test", 3).await.len(), 3);

    // In the middle of delivery at the crash: slow.test's preferred exchanger hangs.
    let (hole, accepted) = black_hole(([127, 0, 0, 3], postfix.port).into()).await;
    for n in 0..5 {
        first
            .send(
                &fx,
                &["eve@slow.test"],
                message("eve@slow.test", &format!("crash-{n}")),
            )
            .await;
    }
    wait_for(Duration::from_secs(30), "five stuck deliveries", || async {
        let items = Queue::list(&fx.store).await.unwrap();
        (*accepted.lock().unwrap() == 5 && items.iter().filter(|i| i.in_delivery).count() == 5)
            .then_some(())
    })
    .await;

    // kill -9: the workers stop dead, nothing is cleaned up, the store is opened anew.
    first.task.abort();
    let _ = first.task.await;
    drop(first.queue);
    hole.abort();
    let _ = hole.await;
    fx.reopen().await;

    let second = Running::start(&fx, s, &nsd).await;
    wait_until_empty(&fx, Duration::from_secs(60)).await;
    second.stop().await;
    postfix.wait_maildir("eve@slow.test", 5).await;
    // Anything delivered twice would be filed by now too.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let ids = |address: &str| -> Vec<String> {
        let mut ids: Vec<String> = postfix
            .maildir(address)
            .iter()
            .map(|m| header(m, "Message-ID").unwrap_or_default())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids("eve@slow.test"),
        (0..5)
            .map(|n| format!("<crash-{n}@example.org>"))
            .collect::<Vec<_>>(),
        "each interrupted message delivered exactly once"
    );
    assert_eq!(ids("bob@remote.test").len(), 3, "nothing delivered twice");
    assert!(fx.inbox(ALICE).await.is_empty(), "no reports");
}
