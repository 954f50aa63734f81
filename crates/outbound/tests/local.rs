//! The queue without a network: our own recipients go through the delivery pipeline, bad
//! input is refused, null-sender mail is never reported on.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postkeep_delivery::Outbox;
use postkeep_net::dns::DnsSettings;
use postkeep_outbound::Queue;
use postkeep_store::MessageBytes;
use support::*;
use tokio::sync::watch;

/// Nothing answers here: any DNS lookup (or connection) fails at once.
fn no_dns() -> DnsSettings {
    DnsSettings {
        nameservers: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
        timeout: Duration::from_secs(1),
    }
}

async fn alice_id(fx: &Fixture) -> i64 {
    fx.store.find_account(ALICE).await.unwrap().unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_recipients_are_filed_without_a_network_hop_and_unknown_ones_reported() {
    let fx = Fixture::new().await;
    fx.store
        .create_account("bob@example.org", None)
        .await
        .unwrap();
    let queue = fx.queue(settings(9), no_dns()).await;
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(Arc::clone(&queue).run(shutdown));

    // A spooled body takes the streaming path of signing and sealing.
    let raw = Arc::new(message("bob@example.org", "local-1"));
    let spool = Arc::clone(&raw);
    let body = MessageBytes::Spooled {
        len: raw.len() as u64,
        wire_len: raw.len() as u64,
        open: Arc::new(move || {
            Ok(Box::new(std::io::Cursor::new(spool.as_ref().clone())) as Box<dyn Read + Send>)
        }),
    };
    let rcpts = vec!["Bob@example.org".to_string(), "zz@example.org".to_string()];
    queue
        .enqueue(ALICE, &rcpts, &body, alice_id(&fx).await)
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), "the queue to empty", || async {
        fx.queue_is_empty().await.then_some(())
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();

    let bob = fx.inbox("bob@example.org").await;
    assert_eq!(bob.len(), 1);
    let text = String::from_utf8_lossy(&bob[0]);
    assert!(
        text.starts_with("DKIM-Signature: "),
        "signed at enqueue:\n{text}"
    );
    assert!(text.contains("Message-ID: <local-1@example.org>"));
    let alice = fx.inbox(ALICE).await;
    assert_eq!(alice.len(), 1, "one report, for zz only");
    let report = String::from_utf8_lossy(&alice[0]);
    assert!(
        report.contains(
            "Final-Recipient: rfc822; zz@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        ),
        "{report}"
    );
    assert!(!report.contains("rfc822; Bob@example.org"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_sender_failure_is_dropped_without_a_report() {
    let fx = Fixture::new().await;
    let queue = fx.queue(settings(9), no_dns()).await;
    let (stop, shutdown) = watch::channel(false);
    let task = tokio::spawn(Arc::clone(&queue).run(shutdown));
    let body = MessageBytes::Memory(Arc::new(b"Subject: a report\r\n\r\nx\r\n".to_vec()));
    queue
        .enqueue(
            "",
            &["zz@example.org".to_string()],
            &body,
            alice_id(&fx).await,
        )
        .await
        .unwrap();
    wait_for(Duration::from_secs(30), "the queue to empty", || async {
        fx.queue_is_empty().await.then_some(())
    })
    .await;
    let _ = stop.send(true);
    task.await.unwrap();
    assert!(
        fx.inbox(ALICE).await.is_empty(),
        "a DSN is never reported on"
    );
}

#[tokio::test]
async fn bad_envelopes_are_refused_before_anything_is_stored() {
    let fx = Fixture::new().await;
    let queue = fx.queue(settings(9), no_dns()).await;
    let body = MessageBytes::Memory(Arc::new(b"Subject: x\r\n\r\ny\r\n".to_vec()));
    let id = alice_id(&fx).await;
    for (sender, rcpts) in [
        (ALICE, vec![]),
        (ALICE, vec!["no-at-sign".to_string()]),
        (ALICE, vec!["a@b.test\r\nRCPT TO:<x@y.test>".to_string()]),
        ("not an address", vec!["a@b.test".to_string()]),
    ] {
        assert!(
            queue.enqueue(sender, &rcpts, &body, id).await.is_err(),
            "{sender:?} {rcpts:?}"
        );
    }
    assert!(fx.queue_is_empty().await);
    assert!(Queue::list(&fx.store).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_queued_message_survives_reopening_and_is_listed_with_its_recipients() {
    let mut fx = Fixture::new().await;
    let queue = fx.queue(settings(9), no_dns()).await;
    let body = MessageBytes::Memory(Arc::new(message("x@remote.test", "durable-1")));
    let id = queue
        .enqueue(
            ALICE,
            &["x@remote.test".into(), "y@remote.test".into()],
            &body,
            alice_id(&fx).await,
        )
        .await
        .unwrap();
    drop(queue);
    fx.reopen().await;
    let items = Queue::list(&fx.store).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id, id);
    assert_eq!(items[0].attempts, 0);
    let rcpts: Vec<&str> = items[0]
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(rcpts, ["x@remote.test", "y@remote.test"]);
    assert!(
        items[0].size > body.len(),
        "the DKIM signature is part of it"
    );
    assert_eq!(items[0].unreadable, None);

    // A damaged envelope is shown, not fatal to the listing, and can be removed.
    let meta = fx.store.meta();
    assert!(meta.queue_lease(&id, "test", 0, 1).await.unwrap());
    assert!(meta
        .queue_update(&id, "test", b"garbage", 0, true)
        .await
        .unwrap());
    let items = Queue::list(&fx.store).await.unwrap();
    assert!(items[0].unreadable.is_some(), "{:?}", items[0]);
    assert!(Queue::remove(&fx.store, &id).await.unwrap());
    assert!(fx.queue_is_empty().await);
}
