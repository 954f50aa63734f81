//! Store groundwork for IMAP (docs/imap-plan.md §2): mailboxes, flags, expunge, copy/move,
//! CONDSTORE changes, quota and the change hub.

use std::sync::Arc;
use std::time::Duration;

use super::tests::{large_body, message, store_with_account, Fixture};
use super::*;

async fn inbox(store: &MailStore, account: &Account) -> Mailbox {
    store
        .role_mailbox(account.id, MailboxRole::Inbox)
        .await
        .unwrap()
}

async fn mailbox(store: &MailStore, id: MailboxId) -> Mailbox {
    store.meta().mailbox_by_id(id).await.unwrap().unwrap()
}

/// Appends `bodies` to INBOX; returns their UIDs.
async fn fill_inbox(store: &MailStore, account: &Account, bodies: &[&str]) -> Vec<u32> {
    let mut uids = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let raw = message(&format!("m{i}"), "", body);
        let done = store
            .append(account.id, MailboxRole::Inbox, raw, 0, &[])
            .await
            .unwrap();
        uids.push(done.uid);
    }
    uids
}

fn store_op<'a>(
    mailbox_id: MailboxId,
    uids: &'a [u32],
    op: FlagOp,
    flags: &[Flag],
) -> FlagChange<'a> {
    FlagChange {
        mailbox_id,
        uids,
        op,
        flags: Flag::to_bits(flags),
        keywords: &[],
        unchanged_since: None,
    }
}

#[tokio::test]
async fn create_mailbox_refuses_taken_names_and_roles() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let work = store
        .create_mailbox(account.id, "Work", None)
        .await
        .unwrap();
    assert_eq!(work.uid_next, 1);
    assert!(work.object_id.starts_with('M') && work.object_id.len() == 33);
    let err = |r: Result<Mailbox, StoreError>| matches!(r, Err(StoreError::Conflict(_)));
    assert!(err(store.create_mailbox(account.id, "Work", None).await));
    // INBOX is case-insensitive (RFC 9051 §5.1).
    assert!(err(store.create_mailbox(account.id, "inbox", None).await));
    // RFC 6154: one mailbox per role.
    assert!(err(store
        .create_mailbox(account.id, "Sent2", Some(MailboxRole::Sent))
        .await));
    assert!(matches!(
        store.create_mailbox(account.id, "a//b", None).await,
        Err(StoreError::Invalid(_))
    ));
    let found = store
        .meta()
        .mailbox_by_name(account.id, "Work")
        .await
        .unwrap();
    assert_eq!(found, Some(work));
}

#[tokio::test]
async fn recreated_mailbox_gets_a_new_uid_validity() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let first = store.create_mailbox(account.id, "Tmp", None).await.unwrap();
    store.delete_mailbox(first.id).await.unwrap();
    let again = store.create_mailbox(account.id, "Tmp", None).await.unwrap();
    // RFC 9051 §2.3.1.1: a re-created name must not reuse a UIDVALIDITY.
    assert!(again.uid_validity > first.uid_validity);
    assert_ne!(again.object_id, first.object_id);
}

#[tokio::test]
async fn rename_moves_children_and_keeps_ids_and_object_ids() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let a = store.create_mailbox(account.id, "a", None).await.unwrap();
    let ab = store.create_mailbox(account.id, "a/b", None).await.unwrap();
    let abc = store.create_mailbox(account.id, "abc", None).await.unwrap();
    let renamed = store.rename_mailbox(account.id, "a", "x/y").await.unwrap();
    let names: Vec<(&str, MailboxId, &str)> = renamed
        .iter()
        .map(|m| (m.name.as_str(), m.id, m.object_id.as_str()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("x/y", a.id, a.object_id.as_str()),
            ("x/y/b", ab.id, ab.object_id.as_str())
        ]
    );
    // A sibling that merely shares the prefix is not a child.
    assert_eq!(mailbox(&store, abc.id).await.name, "abc");
    assert!(matches!(
        store.rename_mailbox(account.id, "x/y", "abc").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.rename_mailbox(account.id, "x/y", "x/y/z").await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn rename_to_a_parent_name_shifts_a_subtree_without_unique_clashes() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    for name in ["p/q", "p/q/q", "p/q/q/r"] {
        store.create_mailbox(account.id, name, None).await.unwrap();
    }
    // New name "p/q/q" equals an old one of the moving subtree mid-way.
    let renamed = store.rename_mailbox(account.id, "p/q", "p").await.unwrap();
    let names: Vec<&str> = renamed.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, vec!["p", "p/q", "p/q/r"]);
}

#[tokio::test]
async fn rename_inbox_moves_its_messages_and_leaves_inbox_empty() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let inbox_before = inbox(&store, &account).await;
    let child = store
        .create_mailbox(account.id, "INBOX/keep", None)
        .await
        .unwrap();
    let uids = fill_inbox(&store, &account, &["one", "two"]).await;
    let mut watch = store.watch(inbox_before.id);
    let renamed = store
        .rename_mailbox(account.id, "inbox", "Old mail")
        .await
        .unwrap();
    assert_eq!(renamed.len(), 1);
    let target = &renamed[0];
    assert_ne!(target.id, inbox_before.id);
    assert_eq!(target.role, None);
    let moved: Vec<u32> = store
        .meta()
        .list_entries(target.id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(moved, uids);
    let inbox_after = inbox(&store, &account).await;
    assert_eq!(inbox_after.id, inbox_before.id);
    assert!(store
        .meta()
        .list_entries(inbox_after.id)
        .await
        .unwrap()
        .is_empty());
    // UIDs are never reused and INBOX sessions learn of the expunges.
    assert_eq!(inbox_after.uid_next, 3);
    let changes = store
        .meta()
        .changes_since(inbox_after.id, inbox_before.highest_modseq)
        .await
        .unwrap();
    assert_eq!(changes.vanished, uids);
    assert!(watch.has_changed().unwrap());
    assert_eq!(*watch.borrow_and_update(), inbox_after.highest_modseq);
    assert_eq!(mailbox(&store, child.id).await.name, "INBOX/keep");
}

#[tokio::test]
async fn delete_mailbox_removes_only_messages_no_one_else_holds_and_refuses_inbox() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let big = large_body();
    let uids = fill_inbox(&store, &account, &[&big, &big]).await;
    let inbox = inbox(&store, &account).await;
    let tmp = store.create_mailbox(account.id, "Tmp", None).await.unwrap();
    store
        .copy_entries(inbox.id, &uids, tmp.id, false)
        .await
        .unwrap();
    store
        .expunge(inbox.id, Some(&uids[..1]), false)
        .await
        .unwrap();
    assert_eq!(store.blobs().list(BlobArea::Mail).await.unwrap().len(), 2);
    let mut watch = store.watch(tmp.id);
    store.delete_mailbox(tmp.id).await.unwrap();
    // The first message lived only in Tmp; the second is still in INBOX.
    assert_eq!(store.blobs().list(BlobArea::Mail).await.unwrap().len(), 1);
    assert_eq!(store.account_messages(account.id).await.unwrap().len(), 1);
    assert_eq!(*watch.borrow_and_update(), MAILBOX_DELETED);
    assert!(store.meta().mailbox_by_id(tmp.id).await.unwrap().is_none());
    assert!(matches!(
        store.delete_mailbox(inbox.id).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn subscriptions_may_name_mailboxes_that_do_not_exist() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let meta = store.meta();
    meta.set_subscribed(account.id, "Ghost", true)
        .await
        .unwrap();
    meta.set_subscribed(account.id, "INBOX", true)
        .await
        .unwrap();
    meta.set_subscribed(account.id, "INBOX", true)
        .await
        .unwrap();
    assert_eq!(
        meta.subscriptions(account.id).await.unwrap(),
        vec!["Ghost".to_string(), "INBOX".to_string()]
    );
    meta.set_subscribed(account.id, "Ghost", false)
        .await
        .unwrap();
    assert_eq!(
        meta.subscriptions(account.id).await.unwrap(),
        vec!["INBOX".to_string()]
    );
}

#[tokio::test]
async fn mailbox_counts_report_unseen_deleted_and_size() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let uids = fill_inbox(&store, &account, &["a", "bb", "ccc"]).await;
    let inbox = inbox(&store, &account).await;
    store
        .update_flags(&store_op(inbox.id, &uids[..2], FlagOp::Add, &[Flag::Seen]))
        .await
        .unwrap();
    store
        .update_flags(&store_op(
            inbox.id,
            &uids[1..],
            FlagOp::Add,
            &[Flag::Deleted],
        ))
        .await
        .unwrap();
    let size: u64 = store
        .account_messages(account.id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.wire_size)
        .sum();
    let counts = store.meta().mailbox_counts(inbox.id).await.unwrap();
    assert_eq!(
        counts,
        MailboxCounts {
            messages: 3,
            unseen: 1,
            deleted: 2,
            size
        }
    );
}

#[tokio::test]
async fn entry_records_return_each_entry_once_for_overlapping_ranges() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    fill_inbox(&store, &account, &["a", "b", "c", "d", "e"]).await;
    let inbox = inbox(&store, &account).await;
    // RFC 9051 §9: `2:1` means `1:2`.
    let reversed = std::ops::RangeInclusive::new(2, 1);
    let rows = store
        .entry_records(
            inbox.id,
            &[4..=u32::MAX, 1..=1, 2..=2, reversed],
            RecordParts::SUMMARY,
        )
        .await
        .unwrap();
    let uids: Vec<u32> = rows.iter().map(|r| r.entry.uid).collect();
    assert_eq!(uids, vec![1, 2, 4, 5]);
    assert!(rows.iter().all(|r| r.record.id == r.entry.message_id));
    let summary = store.summary(&rows[0].record).await.unwrap();
    assert_eq!(summary.subject.as_deref(), Some("m0"));
    let envelope = store.envelope(&rows[0].record).await.unwrap();
    assert_eq!(envelope, summary.envelope);
    let bare = store
        .entry_records(inbox.id, &[1..=1], RecordParts::METADATA)
        .await
        .unwrap();
    assert!(bare[0].record.sealed_summary.is_empty());
    assert_eq!(bare[0].record.blob_id, rows[0].record.blob_id);
}

#[tokio::test]
async fn update_flags_gives_one_new_modseq_only_to_entries_that_change() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let uids = fill_inbox(&store, &account, &["a", "b", "c"]).await;
    let inbox_id = inbox(&store, &account).await.id;
    store
        .update_flags(&store_op(inbox_id, &uids[..1], FlagOp::Add, &[Flag::Seen]))
        .await
        .unwrap();
    let before = store.meta().list_entries(inbox_id).await.unwrap();
    let outcome = store
        .update_flags(&store_op(inbox_id, &uids, FlagOp::Add, &[Flag::Seen]))
        .await
        .unwrap();
    let changed: Vec<u32> = outcome.updated.iter().map(|e| e.uid).collect();
    assert_eq!(changed, vec![2, 3]);
    assert!(outcome
        .updated
        .iter()
        .all(|e| e.modseq == outcome.highest_modseq));
    let after = store.meta().list_entries(inbox_id).await.unwrap();
    assert_eq!(
        after[0].modseq, before[0].modseq,
        "unchanged entry kept its MODSEQ"
    );
    assert_eq!(
        mailbox(&store, inbox_id).await.highest_modseq,
        outcome.highest_modseq
    );
    // A no-op STORE allocates no MODSEQ at all.
    let noop = store
        .update_flags(&store_op(inbox_id, &uids, FlagOp::Add, &[Flag::Seen]))
        .await
        .unwrap();
    assert!(noop.updated.is_empty());
    assert_eq!(noop.highest_modseq, outcome.highest_modseq);
}

#[tokio::test]
async fn keywords_add_remove_and_replace_case_insensitively() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let uids = fill_inbox(&store, &account, &["a"]).await;
    let inbox_id = inbox(&store, &account).await.id;
    let kw = |list: &[&str]| list.iter().map(|k| k.to_string()).collect::<Vec<_>>();
    let run = |op: FlagOp, flags: u32, keywords: Vec<String>| {
        let store = &store;
        let uids = &uids;
        async move {
            let change = FlagChange {
                mailbox_id: inbox_id,
                uids,
                op,
                flags,
                keywords: &keywords,
                unchanged_since: None,
            };
            store.update_flags(&change).await.unwrap();
            let entries = store.meta().list_entries(inbox_id).await.unwrap();
            (entries[0].flags, entries[0].keywords.clone())
        }
    };
    let flagged = Flag::Flagged.bit();
    assert_eq!(
        run(FlagOp::Add, flagged, kw(&["$Forwarded", "Work"])).await,
        (flagged, kw(&["$Forwarded", "Work"]))
    );
    assert_eq!(
        run(FlagOp::Add, 0, kw(&["$forwarded", "Home"])).await,
        (flagged, kw(&["$Forwarded", "Work", "Home"]))
    );
    assert_eq!(
        run(FlagOp::Remove, flagged, kw(&["WORK"])).await,
        (0, kw(&["$Forwarded", "Home"]))
    );
    assert_eq!(
        run(FlagOp::Replace, Flag::Seen.bit(), kw(&["x", "X"])).await,
        (Flag::Seen.bit(), kw(&["x"]))
    );
    let bad = kw(&["two words"]);
    let change = FlagChange {
        mailbox_id: inbox_id,
        uids: &uids,
        op: FlagOp::Add,
        flags: 0,
        keywords: &bad,
        unchanged_since: None,
    };
    assert!(matches!(
        store.update_flags(&change).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn unchanged_since_skips_newer_entries_and_reports_them_modified() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let uids = fill_inbox(&store, &account, &["a", "b"]).await;
    let inbox_id = inbox(&store, &account).await.id;
    let seen_at = mailbox(&store, inbox_id).await.highest_modseq;
    store
        .update_flags(&store_op(
            inbox_id,
            &uids[1..],
            FlagOp::Add,
            &[Flag::Flagged],
        ))
        .await
        .unwrap();
    let change = FlagChange {
        unchanged_since: Some(seen_at),
        ..store_op(inbox_id, &uids, FlagOp::Add, &[Flag::Deleted])
    };
    let outcome = store.update_flags(&change).await.unwrap();
    // RFC 7162 §3.1.3: UID 2 changed after the client's MODSEQ.
    assert_eq!(outcome.modified, vec![uids[1]]);
    let updated: Vec<u32> = outcome.updated.iter().map(|e| e.uid).collect();
    assert_eq!(updated, vec![uids[0]]);
}

#[tokio::test]
async fn concurrent_unchanged_since_stores_let_exactly_one_win() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let uids = fill_inbox(&store, &account, &["a"]).await;
    let inbox_id = inbox(&store, &account).await.id;
    let since = mailbox(&store, inbox_id).await.highest_modseq;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for flag in [Flag::Seen, Flag::Flagged, Flag::Answered, Flag::Draft] {
        let store = Arc::clone(&store);
        let uids = uids.clone();
        tasks.push(tokio::spawn(async move {
            let change = FlagChange {
                unchanged_since: Some(since),
                ..store_op(inbox_id, &uids, FlagOp::Add, &[flag])
            };
            store.update_flags(&change).await.unwrap()
        }));
    }
    let mut winners = 0;
    for task in tasks {
        let outcome = task.await.unwrap();
        assert_eq!(outcome.updated.len() + outcome.modified.len(), 1);
        winners += outcome.updated.len();
    }
    assert_eq!(winners, 1);
    let entry = &store.meta().list_entries(inbox_id).await.unwrap()[0];
    assert_eq!(entry.flags.count_ones(), 1);
}

#[tokio::test]
async fn expunge_records_vanished_and_removes_the_unreferenced_blob() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let big = large_body();
    let uids = fill_inbox(&store, &account, &[&big, "small", "kept"]).await;
    let inbox_id = inbox(&store, &account).await.id;
    store
        .update_flags(&store_op(
            inbox_id,
            &uids[..2],
            FlagOp::Add,
            &[Flag::Deleted],
        ))
        .await
        .unwrap();
    let before = mailbox(&store, inbox_id).await.highest_modseq;
    let expunged = store.expunge(inbox_id, None, true).await.unwrap();
    assert_eq!(expunged.uids, uids[..2].to_vec());
    assert_eq!(expunged.modseq, before + 1);
    assert_eq!(
        expunged.orphan_blobs.len(),
        1,
        "inline blobs are not in the blob store"
    );
    assert!(store.blobs().list(BlobArea::Mail).await.unwrap().is_empty());
    assert_eq!(store.account_messages(account.id).await.unwrap().len(), 1);
    let changes = store.meta().changes_since(inbox_id, before).await.unwrap();
    assert_eq!(changes.vanished, uids[..2].to_vec());
    assert!(changes.changed.is_empty());
    // Nothing left to expunge: no new MODSEQ.
    let none = store.expunge(inbox_id, None, true).await.unwrap();
    assert!(none.uids.is_empty());
    assert_eq!(none.modseq, expunged.modseq);
}

#[tokio::test]
async fn uid_expunge_touches_only_the_given_uids() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let uids = fill_inbox(&store, &account, &["a", "b", "c"]).await;
    let inbox_id = inbox(&store, &account).await.id;
    // POP3 QUIT style: no \Deleted needed.
    let expunged = store
        .expunge(inbox_id, Some(&[uids[1], 99]), false)
        .await
        .unwrap();
    assert_eq!(expunged.uids, vec![uids[1]]);
    let left: Vec<u32> = store
        .meta()
        .list_entries(inbox_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(left, vec![uids[0], uids[2]]);
}

#[tokio::test]
async fn copy_shares_the_message_and_assigns_new_uids_with_flags() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let uids = fill_inbox(&store, &account, &["a", "b", "c"]).await;
    let inbox_id = inbox(&store, &account).await.id;
    store
        .update_flags(&store_op(
            inbox_id,
            &uids[2..],
            FlagOp::Add,
            &[Flag::Flagged],
        ))
        .await
        .unwrap();
    let archive = store
        .role_mailbox(account.id, MailboxRole::Archive)
        .await
        .unwrap();
    store
        .copy_entries(inbox_id, &uids[..1], archive.id, false)
        .await
        .unwrap();
    let copied = store
        .copy_entries(inbox_id, &[uids[2], uids[1], 77], archive.id, false)
        .await
        .unwrap();
    // RFC 4315 §3 COPYUID: pairs in source-UID order, target UIDs continuing UIDNEXT.
    assert_eq!(copied.pairs, vec![(uids[1], 2), (uids[2], 3)]);
    assert_eq!(copied.uid_validity, archive.uid_validity);
    assert!(copied.source_expunged.is_none());
    let source = store.meta().list_entries(inbox_id).await.unwrap();
    let target = store.meta().list_entries(archive.id).await.unwrap();
    assert_eq!(
        target[2].message_id, source[2].message_id,
        "EMAILID is shared"
    );
    assert_eq!(target[2].flags, Flag::Flagged.bit());
    assert!(target.iter().all(|e| e.modseq <= copied.dest_modseq));
    assert_eq!(store.account_messages(account.id).await.unwrap().len(), 3);
}

#[tokio::test]
async fn move_expunges_the_source_atomically_and_keeps_the_blob() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let big = large_body();
    let uids = fill_inbox(&store, &account, &[&big, "b"]).await;
    let inbox_id = inbox(&store, &account).await.id;
    let trash = store
        .role_mailbox(account.id, MailboxRole::Trash)
        .await
        .unwrap();
    let mut src_watch = store.watch(inbox_id);
    let mut dst_watch = store.watch(trash.id);
    let moved = store
        .copy_entries(inbox_id, &uids, trash.id, true)
        .await
        .unwrap();
    let expunged = moved.source_expunged.unwrap();
    assert_eq!(expunged.uids, uids);
    assert!(
        expunged.orphan_blobs.is_empty(),
        "moved messages are still referenced"
    );
    assert!(store
        .meta()
        .list_entries(inbox_id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.meta().list_entries(trash.id).await.unwrap().len(), 2);
    assert_eq!(store.blobs().list(BlobArea::Mail).await.unwrap().len(), 1);
    assert_eq!(*src_watch.borrow_and_update(), expunged.modseq);
    assert_eq!(*dst_watch.borrow_and_update(), moved.dest_modseq);
    let records = store.account_messages(account.id).await.unwrap();
    store.message_bytes(&records[0]).await.unwrap();
}

#[tokio::test]
async fn move_within_one_mailbox_renumbers_the_message() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let uids = fill_inbox(&store, &account, &["a"]).await;
    let inbox_id = inbox(&store, &account).await.id;
    let moved = store
        .copy_entries(inbox_id, &uids, inbox_id, true)
        .await
        .unwrap();
    assert_eq!(moved.pairs, vec![(1, 2)]);
    let left: Vec<u32> = store
        .meta()
        .list_entries(inbox_id)
        .await
        .unwrap()
        .iter()
        .map(|e| e.uid)
        .collect();
    assert_eq!(left, vec![2]);
    assert_eq!(store.account_messages(account.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn copy_across_accounts_is_refused() {
    let fx = Fixture::new();
    let (store, alice) = store_with_account(&fx).await;
    let bob = store.create_account("bob@example.org", None).await.unwrap();
    let uids = fill_inbox(&store, &alice, &["a"]).await;
    let from = inbox(&store, &alice).await.id;
    let to = inbox(&store, &bob).await.id;
    assert!(matches!(
        store.copy_entries(from, &uids, to, false).await,
        Err(StoreError::Invalid(_))
    ));
}

#[tokio::test]
async fn changes_since_reports_newer_entries_vanished_uids_and_uidnext() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let uids = fill_inbox(&store, &account, &["a", "b", "c"]).await;
    let inbox_id = inbox(&store, &account).await.id;
    let since = mailbox(&store, inbox_id).await.highest_modseq;
    store
        .update_flags(&store_op(inbox_id, &uids[..1], FlagOp::Add, &[Flag::Seen]))
        .await
        .unwrap();
    store
        .expunge(inbox_id, Some(&uids[2..]), false)
        .await
        .unwrap();
    fill_inbox(&store, &account, &["d"]).await;
    let changes = store.meta().changes_since(inbox_id, since).await.unwrap();
    let changed: Vec<u32> = changes.changed.iter().map(|e| e.uid).collect();
    assert_eq!(changed, vec![uids[0], 4]);
    assert_eq!(changes.vanished, vec![uids[2]]);
    assert_eq!(changes.uid_next, 5);
    assert_eq!(
        changes.highest_modseq,
        mailbox(&store, inbox_id).await.highest_modseq
    );
    let nothing = store
        .meta()
        .changes_since(inbox_id, changes.highest_modseq)
        .await
        .unwrap();
    assert!(nothing.changed.is_empty() && nothing.vanished.is_empty());
    // A client's MODSEQ beyond the SQL integer range is not an error.
    assert!(store.meta().changes_since(inbox_id, u64::MAX).await.is_ok());
}

#[tokio::test]
async fn quota_counts_copies_twice_and_the_limit_is_settable() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let empty = store.quota_usage(account.id).await.unwrap();
    assert_eq!(
        (empty.bytes, empty.messages, empty.limit_bytes),
        (0, 0, None)
    );
    let uids = fill_inbox(&store, &account, &["a", "bb"]).await;
    let size: u64 = store
        .account_messages(account.id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.wire_size)
        .sum();
    let inbox_id = inbox(&store, &account).await.id;
    let archive = store
        .role_mailbox(account.id, MailboxRole::Archive)
        .await
        .unwrap();
    store
        .copy_entries(inbox_id, &uids, archive.id, false)
        .await
        .unwrap();
    store.set_quota(account.id, Some(1 << 20)).await.unwrap();
    let usage = store.quota_usage(account.id).await.unwrap();
    // RFC 9208: STORAGE and MESSAGE count entries, so a copy counts again.
    assert_eq!(
        usage,
        QuotaUsage {
            bytes: 2 * size,
            messages: 4,
            limit_bytes: Some(1 << 20)
        }
    );
    store.set_quota(account.id, None).await.unwrap();
    assert_eq!(
        store.quota_usage(account.id).await.unwrap().limit_bytes,
        None
    );
    assert!(matches!(
        store.set_quota(account.id + 100, None).await,
        Err(StoreError::NotFound(_))
    ));
}

/// Usage summed from the account's entries, as QUOTA computed it before `account_usage`.
async fn usage_from_entries(fx: &Fixture, account: &Account) -> (u64, u64) {
    use sqlx::Row;
    let mut conn = fx.connect().await;
    let row = sqlx::query(
        "SELECT COUNT(e.uid) AS messages, COALESCE(SUM(m.wire_size), 0) AS bytes \
         FROM mailboxes b JOIN mailbox_entries e ON e.mailbox_id = b.id \
         JOIN messages m ON m.id = e.message_id WHERE b.account_id = ?",
    )
    .bind(account.id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let count = |name: &str| u64::try_from(row.get::<i64, _>(name)).unwrap();
    (count("messages"), count("bytes"))
}

#[tokio::test]
async fn usage_row_follows_append_copy_move_expunge_and_mailbox_delete() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let other = store.create_account("bob@example.org", None).await.unwrap();
    let check = |step: &'static str| {
        let (store, account, fx) = (&store, &account, &fx);
        async move {
            let usage = store.quota_usage(account.id).await.unwrap();
            assert_eq!(
                (usage.messages, usage.bytes),
                usage_from_entries(fx, account).await,
                "after {step}"
            );
            usage
        }
    };
    let uids = fill_inbox(&store, &account, &["a", "bb", "ccc", "dddd"]).await;
    fill_inbox(&store, &other, &["not alice's"]).await;
    assert_eq!(check("append").await.messages, 4);
    let inbox_id = inbox(&store, &account).await.id;
    let folder = store
        .create_mailbox(account.id, "Folder", None)
        .await
        .unwrap();
    store
        .copy_entries(inbox_id, &uids, folder.id, false)
        .await
        .unwrap();
    assert_eq!(check("copy").await.messages, 8);
    store
        .copy_entries(folder.id, &uids[..2], inbox_id, true)
        .await
        .unwrap();
    assert_eq!(check("move").await.messages, 8);
    store
        .expunge(inbox_id, Some(&uids[..1]), false)
        .await
        .unwrap();
    assert_eq!(check("expunge").await.messages, 7);
    store.delete_mailbox(folder.id).await.unwrap();
    assert_eq!(check("mailbox delete").await.messages, 5);
    let others = store.quota_usage(other.id).await.unwrap();
    assert_eq!(
        (others.messages, others.bytes),
        usage_from_entries(&fx, &other).await
    );
    assert_eq!(others.messages, 1);
}

#[tokio::test]
async fn watch_is_notified_after_group_committed_appends_and_stores() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let inbox_id = inbox(&store, &account).await.id;
    let mut watch = store.watch(inbox_id);
    assert!(!watch.has_changed().unwrap());
    let uids = fill_inbox(&store, &account, &["a"]).await;
    tokio::time::timeout(Duration::from_secs(1), watch.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *watch.borrow_and_update(),
        mailbox(&store, inbox_id).await.highest_modseq
    );
    let outcome = store
        .update_flags(&store_op(inbox_id, &uids, FlagOp::Add, &[Flag::Seen]))
        .await
        .unwrap();
    assert!(watch.has_changed().unwrap());
    assert_eq!(*watch.borrow_and_update(), outcome.highest_modseq);
    // A no-op STORE wakes nobody.
    store
        .update_flags(&store_op(inbox_id, &uids, FlagOp::Add, &[Flag::Seen]))
        .await
        .unwrap();
    assert!(!watch.has_changed().unwrap());
    assert_eq!(
        store.meta().highest_modseqs(&[inbox_id, -1]).await.unwrap(),
        vec![(inbox_id, outcome.highest_modseq)]
    );
}

#[tokio::test]
async fn change_hub_prunes_senders_nobody_listens_to() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let inbox_id = inbox(&store, &account).await.id;
    let watch = store.watch(inbox_id);
    assert_eq!(store.hub.watched(), 1);
    drop(watch);
    fill_inbox(&store, &account, &["a"]).await;
    assert_eq!(store.hub.watched(), 0);
}

#[tokio::test]
async fn mailbox_snapshot_lists_uids_first_unseen_and_keywords_in_use() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let inbox_id = inbox(&store, &account).await.id;
    assert_eq!(
        store.meta().mailbox_snapshot(inbox_id).await.unwrap(),
        MailboxSnapshot::default()
    );
    let uids = fill_inbox(&store, &account, &["a", "b", "c", "d"]).await;
    store
        .update_flags(&store_op(inbox_id, &uids[..2], FlagOp::Add, &[Flag::Seen]))
        .await
        .unwrap();
    let keywords = vec!["$Work".to_string(), "Urgent,Now".to_string()];
    store
        .update_flags(&FlagChange {
            keywords: &keywords,
            ..store_op(inbox_id, &uids[3..], FlagOp::Add, &[])
        })
        .await
        .unwrap();
    store
        .expunge(inbox_id, Some(&uids[..1]), false)
        .await
        .unwrap();

    let snapshot = store.meta().mailbox_snapshot(inbox_id).await.unwrap();
    assert_eq!(snapshot.uids, uids[1..].to_vec());
    assert_eq!(snapshot.first_unseen, Some(uids[2]));
    assert_eq!(snapshot.keywords.into_iter().collect::<Vec<_>>(), keywords);
}
