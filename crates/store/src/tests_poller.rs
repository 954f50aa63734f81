//! The cross-process change poller (docs/imap-plan.md §2.2): two `MailStore`s on one data
//! directory stand in for two processes; each has its own hub, so only the poller can carry a
//! change from one to the other.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::tests::{message, Fixture};
use super::*;

/// A change must reach a watcher within this (plan target: 250 ms poll plus a query).
const DEADLINE: Duration = Duration::from_secs(2);

/// Opens store A through `MailStore::open` so the test keeps a handle on its metadata backend.
async fn open_with_meta(dir: &Path, fx: &Fixture) -> (MailStore, Arc<sqlite::SqliteMeta>) {
    let meta = Arc::new(
        sqlite::SqliteMeta::open(&dir.join("postkeep.db"))
            .await
            .unwrap(),
    );
    let blobs = Arc::new(LocalBlobStore::open(&dir.join("blobs")).unwrap());
    let store = MailStore::open(meta.clone(), blobs, KeyScope::Account, fx.loader())
        .await
        .unwrap();
    (store, meta)
}

/// Two stores on one directory, with an account created through the first.
async fn two_stores(
    fx: &Fixture,
    dir: &Path,
) -> (MailStore, Arc<sqlite::SqliteMeta>, MailStore, Account) {
    let (a, meta) = open_with_meta(dir, fx).await;
    a.add_domain("example.org").await.unwrap();
    let account = a.create_account("alice@example.org", None).await.unwrap();
    let b = MailStore::open_embedded(dir, KeyScope::Account, fx.loader())
        .await
        .unwrap();
    (a, meta, b, account)
}

/// Waits until the watcher has seen `modseq` (earlier, lower wake-ups are allowed).
async fn wait_for(watch: &mut watch::Receiver<u64>, modseq: u64) {
    let seen = tokio::time::timeout(DEADLINE, async {
        while *watch.borrow_and_update() < modseq {
            watch.changed().await.unwrap();
        }
    })
    .await;
    assert!(seen.is_ok(), "watcher did not see modseq {modseq} in time");
}

#[tokio::test]
async fn watch_sees_append_and_flag_change_committed_by_another_store() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let (a, _meta, b, account) = two_stores(&fx, dir.path()).await;
    let inbox = a
        .role_mailbox(account.id, MailboxRole::Inbox)
        .await
        .unwrap();
    let mut watch = a.watch(inbox.id);

    let appended = b
        .append(
            account.id,
            MailboxRole::Inbox,
            message("s", "", "b"),
            0,
            &[],
        )
        .await
        .unwrap();
    wait_for(&mut watch, appended.modseq).await;

    let uids = [appended.uid];
    let outcome = b
        .update_flags(&FlagChange {
            mailbox_id: inbox.id,
            uids: &uids,
            op: FlagOp::Add,
            flags: Flag::to_bits(&[Flag::Seen]),
            keywords: &[],
            unchanged_since: None,
        })
        .await
        .unwrap();
    assert!(outcome.highest_modseq > appended.modseq);
    wait_for(&mut watch, outcome.highest_modseq).await;
    // Never past what is stored: the poller publishes HIGHESTMODSEQ, not a guess.
    assert_eq!(*watch.borrow(), outcome.highest_modseq);
}

#[tokio::test]
async fn watch_sees_a_mailbox_deleted_by_another_store() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let (a, _meta, b, account) = two_stores(&fx, dir.path()).await;
    let tmp = a.create_mailbox(account.id, "Tmp", None).await.unwrap();
    let mut watch = a.watch(tmp.id);
    b.delete_mailbox(tmp.id).await.unwrap();
    wait_for(&mut watch, MAILBOX_DELETED).await;
}

#[tokio::test]
async fn dropping_the_store_stops_its_poller() {
    let fx = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let (a, meta, b, account) = two_stores(&fx, dir.path()).await;
    let inbox = a
        .role_mailbox(account.id, MailboxRole::Inbox)
        .await
        .unwrap();
    let mut watch = a.watch(inbox.id);
    // The poller is demonstrably running (and querying) before the drop.
    let appended = b
        .append(
            account.id,
            MailboxRole::Inbox,
            message("s", "", "b"),
            0,
            &[],
        )
        .await
        .unwrap();
    wait_for(&mut watch, appended.modseq).await;

    drop(a);
    // The hub dies with the store (the poller holds it only weakly), closing the channel...
    let closed =
        tokio::time::timeout(DEADLINE, async { while watch.changed().await.is_ok() {} }).await;
    assert!(closed.is_ok(), "hub outlived its store");
    // ...and every task that held the backend (poller, group committer) has let go of it.
    let released = tokio::time::timeout(DEADLINE, async {
        while Arc::strong_count(&meta) > 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(released.is_ok(), "a background task still holds the store");
}
