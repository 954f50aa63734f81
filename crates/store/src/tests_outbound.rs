//! The outbound queue's storage: sealing, durability across reopening, leases.

use std::io::Read;
use std::sync::Arc;

use crate::tests::{store_with_account, Fixture};
use crate::*;

async fn read_message(store: &MailStore, entry: &QueueEntry) -> Vec<u8> {
    let mut reader = store.queue_message_reader(entry).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    })
    .await
    .unwrap()
    .unwrap()
}

fn body(text: &str) -> MessageBytes {
    MessageBytes::Memory(Arc::new(text.as_bytes().to_vec()))
}

#[tokio::test]
async fn queued_message_and_envelope_are_sealed_and_survive_reopening() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let entry = store
        .queue_add(
            account.id,
            b"DKIM-Signature: x\r\n",
            &body("Subject: secret subject\r\n\r\nhi\r\n"),
            b"{\"to\":\"bob@remote.test\"}",
            100,
        )
        .await
        .unwrap();
    assert_eq!(entry.size, 19 + 31);
    drop(store);

    let store = fx.open(KeyScope::Account).await;
    let listed = store.meta().queue_entries().await.unwrap();
    assert_eq!(listed, vec![entry.clone()]);
    assert!(
        !listed[0].sealed_envelope.windows(6).any(|w| w == b"remote"),
        "the envelope is stored in clear"
    );
    assert_eq!(
        store.queue_open_envelope(&entry).await.unwrap(),
        b"{\"to\":\"bob@remote.test\"}"
    );
    assert_eq!(
        read_message(&store, &entry).await,
        b"DKIM-Signature: x\r\nSubject: secret subject\r\n\r\nhi\r\n"
    );
    let mut raw = Vec::new();
    store
        .blobs()
        .open(BlobArea::SmtpOutgoing, &entry.id)
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    assert!(!raw.windows(6).any(|w| w == b"secret"));
}

#[tokio::test]
async fn an_envelope_cannot_be_moved_to_another_entry() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let a = store
        .queue_add(account.id, b"", &body("a\r\n"), b"A", 0)
        .await
        .unwrap();
    let mut b = store
        .queue_add(account.id, b"", &body("b\r\n"), b"B", 0)
        .await
        .unwrap();
    b.sealed_envelope = a.sealed_envelope.clone();
    assert!(matches!(
        store.queue_open_envelope(&b).await,
        Err(StoreError::Sealed(_))
    ));
}

#[tokio::test]
async fn one_lease_holder_at_a_time_and_updates_are_fenced_by_the_lease() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let entry = store
        .queue_add(account.id, b"", &body("x\r\n"), b"v1", 10)
        .await
        .unwrap();
    let meta = store.meta();
    assert!(meta.queue_due(9, 10).await.unwrap().is_empty());
    assert_eq!(
        meta.queue_due(10, 10).await.unwrap(),
        vec![entry.id.clone()]
    );

    assert!(meta.queue_lease(&entry.id, "node-a", 10, 70).await.unwrap());
    assert!(!meta.queue_lease(&entry.id, "node-b", 20, 80).await.unwrap());
    assert!(meta.queue_due(20, 10).await.unwrap().is_empty(), "leased");
    // Renewal by the holder.
    assert!(meta
        .queue_lease(&entry.id, "node-a", 60, 120)
        .await
        .unwrap());
    // Expired: another node may take over, and the old holder can no longer write.
    assert!(meta
        .queue_lease(&entry.id, "node-b", 120, 180)
        .await
        .unwrap());
    let sealed = store.queue_seal_envelope(&entry, b"v2").await.unwrap();
    assert!(!meta
        .queue_update(&entry.id, "node-a", &sealed, 500, true)
        .await
        .unwrap());
    assert!(!store.queue_remove(&entry.id, Some("node-a")).await.unwrap());
    // Saving progress keeps the lease; the last update frees it.
    assert!(meta
        .queue_update(&entry.id, "node-b", &sealed, 400, false)
        .await
        .unwrap());
    assert!(!meta
        .queue_lease(&entry.id, "node-c", 130, 190)
        .await
        .unwrap());
    assert!(meta
        .queue_update(&entry.id, "node-b", &sealed, 500, true)
        .await
        .unwrap());
    let now = meta.queue_entry(&entry.id).await.unwrap().unwrap();
    assert_eq!((now.next_attempt, now.lease_owner.as_deref()), (500, None));
    assert_eq!(store.queue_open_envelope(&now).await.unwrap(), b"v2");

    assert_eq!(meta.queue_reschedule(None, 7).await.unwrap(), 1);
    assert_eq!(meta.queue_due(7, 10).await.unwrap(), vec![entry.id.clone()]);
    assert!(store.queue_remove(&entry.id, None).await.unwrap());
    assert!(meta.queue_entry(&entry.id).await.unwrap().is_none());
    assert!(store
        .blobs()
        .list(BlobArea::SmtpOutgoing)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn orphan_queue_blobs_are_swept_and_live_ones_kept() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let live = store
        .queue_add(account.id, b"", &body("x\r\n"), b"e", 0)
        .await
        .unwrap();
    store
        .blobs()
        .put(
            BlobArea::SmtpOutgoing,
            "orphan01",
            Box::new(|w| w.write_all(b"left by a crash")),
        )
        .await
        .unwrap();
    let removed = store
        .remove_orphan_queue_blobs(std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(removed, 1);
    let left = store.blobs().list(BlobArea::SmtpOutgoing).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].0, live.id);
}
