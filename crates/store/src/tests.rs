use std::sync::Arc;

use postkeep_crypto::MasterKey;

use super::*;

pub(crate) struct Fixture {
    dir: tempfile::TempDir,
    master_hex: String,
}

impl Fixture {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            master_hex: MasterKey::generate().to_hex().to_string(),
        }
    }

    pub(crate) fn loader(&self) -> MasterLoader {
        let hex = self.master_hex.clone();
        Arc::new(move || MasterKey::from_hex(&hex, "test"))
    }

    pub(crate) async fn open(&self, scope: KeyScope) -> MailStore {
        MailStore::open_embedded(self.dir.path(), scope, self.loader())
            .await
            .unwrap()
    }

    /// A connection of its own to the database, for what the store's API cannot do (turning
    /// the schema back, removing rows behind the store's back).
    pub(crate) async fn connect(&self) -> sqlx::SqliteConnection {
        use sqlx::ConnectOptions;
        sqlx::sqlite::SqliteConnectOptions::new()
            .filename(self.dir.path().join("postkeep.db"))
            .connect()
            .await
            .unwrap()
    }
}

pub(crate) async fn store_with_account(fx: &Fixture) -> (MailStore, Account) {
    let store = fx.open(KeyScope::Account).await;
    store.add_domain("Example.ORG").await.unwrap();
    let account = store
        .create_account("Alice@example.org", Some("$argon2id$stub"))
        .await
        .unwrap();
    (store, account)
}

/// A body big enough that its sealed blob goes to the blob store, not the metadata row.
pub(crate) fn large_body() -> String {
    "x".repeat(usize::try_from(INLINE_MAX).unwrap() + 1)
}

pub(crate) fn message(subject: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Bob <bob@remote.test>\r\nTo: alice@example.org\r\nSubject: {subject}\r\n\
         {extra_headers}\r\n{body}\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn new_account_gets_special_use_mailboxes() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    assert_eq!(account.address, "alice@example.org");
    let boxes = store.meta().list_mailboxes(account.id).await.unwrap();
    let roles: Vec<_> = boxes.iter().filter_map(|m| m.role).collect();
    assert_eq!(roles, MailboxRole::ALL.to_vec());
    assert!(boxes
        .iter()
        .all(|m| m.uid_next == 1 && m.uid_validity > 0 && m.highest_modseq == 1));
}

#[tokio::test]
async fn appended_message_reads_back_byte_for_byte_with_summary() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let raw = message(
        "Hello there",
        "Message-ID: <m1@remote.test>\r\n",
        "Body text",
    );
    let first = store
        .append(
            account.id,
            MailboxRole::Inbox,
            raw.clone(),
            1_700_000_000,
            &[Flag::Seen],
        )
        .await
        .unwrap();
    let second = store
        .append(
            account.id,
            MailboxRole::Inbox,
            raw.clone(),
            1_700_000_001,
            &[],
        )
        .await
        .unwrap();
    assert_eq!((first.uid, second.uid), (1, 2));
    assert!(second.modseq > first.modseq);

    let records = store.account_messages(account.id).await.unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(store.message_bytes(&records[0]).await.unwrap(), raw);
    assert_eq!(records[0].size, raw.len() as u64);
    let summary = store.summary(&records[0]).await.unwrap();
    assert_eq!(summary.message_id.as_deref(), Some("m1@remote.test"));

    let inbox = store
        .meta()
        .mailbox_by_role(account.id, MailboxRole::Inbox)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(inbox.uid_next, 3);
    let entries = store.meta().list_entries(inbox.id).await.unwrap();
    assert_eq!(Flag::from_bits(entries[0].flags), vec![Flag::Seen]);
}

#[tokio::test]
async fn replies_join_the_thread_of_their_parent() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let parent = message("Plan", "Message-ID: <p@x.test>\r\n", "a");
    let reply = message(
        "Re: Plan",
        "Message-ID: <r@x.test>\r\nIn-Reply-To: <p@x.test>\r\nReferences: <p@x.test>\r\n",
        "b",
    );
    let other = message("Other", "Message-ID: <o@x.test>\r\n", "c");
    for raw in [parent, reply, other] {
        store
            .append(account.id, MailboxRole::Inbox, raw, 0, &[])
            .await
            .unwrap();
    }
    let records = store.account_messages(account.id).await.unwrap();
    assert_eq!(records[1].thread_id, records[0].thread_id);
    assert_ne!(records[2].thread_id, records[0].thread_id);
}

#[tokio::test]
async fn canary_is_nowhere_on_disk() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let canary = "CANARY-q8Zr3kP0wLx7VbN2";
    let raw = message(canary, &format!("X-Tag: {canary}\r\n"), &canary.repeat(100));
    store
        .append(account.id, MailboxRole::Inbox, raw, 0, &[])
        .await
        .unwrap();
    drop(store);
    let mut stack = vec![fx.dir.path().to_path_buf()];
    let mut files = 0;
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files += 1;
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "canary found in {}",
                path.display()
            );
        }
    }
    assert!(files >= 2, "expected database and blob files, saw {files}");
}

#[tokio::test]
async fn sealed_summary_cannot_be_moved_to_another_message() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    for subject in ["one", "two"] {
        store
            .append(
                account.id,
                MailboxRole::Inbox,
                message(subject, "", "x"),
                0,
                &[],
            )
            .await
            .unwrap();
    }
    let records = store.account_messages(account.id).await.unwrap();
    let mut swapped = records[1].clone();
    swapped.sealed_summary = records[0].sealed_summary.clone();
    assert!(matches!(
        store.summary(&swapped).await,
        Err(StoreError::Sealed(_))
    ));
    let mut moved = records[1].clone();
    moved.blob_id = records[0].blob_id.clone();
    moved.account_id += 1;
    assert!(store.message_bytes(&moved).await.is_err());
}

#[tokio::test]
async fn rotated_key_seals_new_data_and_old_stays_readable() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    store
        .append(
            account.id,
            MailboxRole::Inbox,
            message("old", "", "x"),
            0,
            &[],
        )
        .await
        .unwrap();
    let rotated = store.rotate_keys(None).await.unwrap();
    assert_eq!(rotated, vec![format!("account:{}:v2", account.id)]);
    store
        .append(
            account.id,
            MailboxRole::Inbox,
            message("new", "", "y"),
            0,
            &[],
        )
        .await
        .unwrap();
    let records = store.account_messages(account.id).await.unwrap();
    assert_eq!(records[0].key_id, format!("account:{}:v1", account.id));
    assert_eq!(records[1].key_id, format!("account:{}:v2", account.id));
    for record in &records {
        store.message_bytes(record).await.unwrap();
    }
}

#[tokio::test]
async fn master_rotation_rewraps_keys_and_old_master_is_refused() {
    let mut fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let raw = message("keep me", "", "z");
    store
        .append(account.id, MailboxRole::Inbox, raw.clone(), 0, &[])
        .await
        .unwrap();
    let new_master = MasterKey::generate();
    assert_eq!(store.keyring().rotate_master(&new_master).await.unwrap(), 1);
    drop(store);

    let old = MailStore::open_embedded(fx.dir.path(), KeyScope::Account, fx.loader()).await;
    assert!(matches!(old, Err(StoreError::Invalid(_))));

    fx.master_hex = new_master.to_hex().to_string();
    let store = fx.open(KeyScope::Account).await;
    let records = store.account_messages(account.id).await.unwrap();
    assert_eq!(store.message_bytes(&records[0]).await.unwrap(), raw);
}

#[tokio::test]
async fn domain_scope_shares_one_key_per_domain() {
    let fx = Fixture::new();
    let store = fx.open(KeyScope::Domain).await;
    let domain = store.add_domain("example.org").await.unwrap();
    let a = store.create_account("a@example.org", None).await.unwrap();
    let b = store.create_account("b@example.org", None).await.unwrap();
    assert_eq!(store.scope_of(&a), store.scope_of(&b));
    assert_eq!(store.scope_of(&a), format!("domain:{}", domain.id));
    assert_eq!(store.keyring().scopes().await.unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_appends_are_group_committed_without_losing_any() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let store = Arc::new(store);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store
                .append(
                    account.id,
                    MailboxRole::Inbox,
                    message(&format!("m{i}"), "", "x"),
                    0,
                    &[],
                )
                .await
                .unwrap()
                .uid
        }));
    }
    let mut uids = Vec::new();
    for task in tasks {
        uids.push(task.await.unwrap());
    }
    uids.sort_unstable();
    assert_eq!(uids, (1..=64).collect::<Vec<u32>>());
}

#[tokio::test]
async fn recipients_resolve_case_insensitively_and_foreign_domains_are_not_ours() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    store
        .meta()
        .add_alias("postmaster@example.org", account.id)
        .await
        .unwrap();
    assert_eq!(
        store.resolve_recipient("ALICE@Example.org").await.unwrap(),
        Recipient::Local(account.id)
    );
    assert_eq!(
        store
            .resolve_recipient("postmaster@example.org")
            .await
            .unwrap(),
        Recipient::Local(account.id)
    );
    assert_eq!(
        store.resolve_recipient("nobody@example.org").await.unwrap(),
        Recipient::UnknownUser
    );
    assert_eq!(
        store.resolve_recipient("x@elsewhere.test").await.unwrap(),
        Recipient::ForeignDomain
    );
}

fn alias_addresses(aliases: &[Alias]) -> Vec<&str> {
    aliases.iter().map(|a| a.address.as_str()).collect()
}

#[tokio::test]
async fn aliases_are_listed_sorted_with_their_account_and_filtered_by_exact_domain() {
    let fx = Fixture::new();
    let (store, alice) = store_with_account(&fx).await;
    for domain in ["other.org", "myexample.org"] {
        store.add_domain(domain).await.unwrap();
    }
    let bob = store.create_account("bob@other.org", None).await.unwrap();
    for (address, account) in [
        ("sales@other.org", &bob),
        ("postmaster@example.org", &alice),
        ("info@myexample.org", &alice),
        ("abuse@example.org", &bob),
    ] {
        store.meta().add_alias(address, account.id).await.unwrap();
    }
    let all = store.meta().list_aliases(None).await.unwrap();
    assert_eq!(
        alias_addresses(&all),
        [
            "abuse@example.org",
            "info@myexample.org",
            "postmaster@example.org",
            "sales@other.org"
        ]
    );
    assert_eq!(
        all[0],
        Alias {
            address: "abuse@example.org".into(),
            account_id: bob.id,
            account: "bob@other.org".into(),
        }
    );
    // A domain matches whole: example.org is not the tail of myexample.org's aliases.
    let ours = store
        .meta()
        .list_aliases(Some("example.org"))
        .await
        .unwrap();
    assert_eq!(
        alias_addresses(&ours),
        ["abuse@example.org", "postmaster@example.org"]
    );
    let other = store.meta().list_aliases(Some("other.org")).await.unwrap();
    assert_eq!(alias_addresses(&other), ["sales@other.org"]);
}

#[tokio::test]
async fn alias_cannot_shadow_an_account_or_another_alias() {
    let fx = Fixture::new();
    let (store, alice) = store_with_account(&fx).await;
    let bob = store.create_account("bob@example.org", None).await.unwrap();
    assert!(matches!(
        store.meta().add_alias("bob@example.org", alice.id).await,
        Err(StoreError::Conflict(_))
    ));
    store
        .meta()
        .add_alias("sales@example.org", alice.id)
        .await
        .unwrap();
    assert!(matches!(
        store.meta().add_alias("sales@example.org", bob.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.create_account("sales@example.org", None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.resolve_recipient("sales@example.org").await.unwrap(),
        Recipient::Local(alice.id)
    );
}

#[tokio::test]
async fn removed_alias_no_longer_resolves_and_unknown_ones_are_not_found() {
    let fx = Fixture::new();
    let (store, alice) = store_with_account(&fx).await;
    let meta = store.meta();
    meta.add_alias("postmaster@example.org", alice.id)
        .await
        .unwrap();
    meta.remove_alias("postmaster@example.org").await.unwrap();
    assert_eq!(
        store
            .resolve_recipient("postmaster@example.org")
            .await
            .unwrap(),
        Recipient::UnknownUser
    );
    assert!(meta.list_aliases(None).await.unwrap().is_empty());
    assert!(matches!(
        meta.remove_alias("postmaster@example.org").await,
        Err(StoreError::NotFound(_))
    ));
    // An account's address is not an alias: removing it as one leaves the account alone.
    assert!(matches!(
        meta.remove_alias("alice@example.org").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.resolve_recipient("alice@example.org").await.unwrap(),
        Recipient::Local(alice.id)
    );
}

#[tokio::test]
async fn domain_with_aliases_cannot_be_removed() {
    let fx = Fixture::new();
    let (store, alice) = store_with_account(&fx).await;
    store.add_domain("other.org").await.unwrap();
    store
        .meta()
        .add_alias("sales@other.org", alice.id)
        .await
        .unwrap();
    assert!(matches!(
        store.meta().remove_domain("other.org").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.resolve_recipient("sales@other.org").await.unwrap(),
        Recipient::Local(alice.id)
    );
    store.meta().remove_alias("sales@other.org").await.unwrap();
    store.meta().remove_domain("other.org").await.unwrap();
}

#[tokio::test]
async fn domain_with_accounts_cannot_be_removed_and_account_removal_deletes_blobs() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    store
        .append(
            account.id,
            MailboxRole::Inbox,
            message("x", "", &large_body()),
            0,
            &[],
        )
        .await
        .unwrap();
    assert!(matches!(
        store.meta().remove_domain("example.org").await,
        Err(StoreError::Conflict(_))
    ));
    store.remove_account("alice@example.org").await.unwrap();
    assert!(store.blobs().list(BlobArea::Mail).await.unwrap().is_empty());
    store.meta().remove_domain("example.org").await.unwrap();
}

#[tokio::test]
async fn orphan_blobs_are_swept_and_referenced_ones_kept() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    store
        .append(
            account.id,
            MailboxRole::Inbox,
            message("kept", "", &large_body()),
            0,
            &[],
        )
        .await
        .unwrap();
    // A blob written by a delivery that died before its commit.
    store
        .prepare_for_role(
            account.id,
            MailboxRole::Inbox,
            message("lost", "", &large_body()),
            0,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(store.blobs().list(BlobArea::Mail).await.unwrap().len(), 2);
    let young = std::time::Duration::from_secs(3600);
    assert_eq!(
        store.remove_orphan_blobs(young).await.unwrap(),
        0,
        "too young to sweep"
    );
    assert_eq!(
        store
            .remove_orphan_blobs(std::time::Duration::ZERO)
            .await
            .unwrap(),
        1
    );
    let records = store.account_messages(account.id).await.unwrap();
    assert_eq!(records.len(), 1);
    store.message_bytes(&records[0]).await.unwrap();
}

#[tokio::test]
async fn small_messages_live_in_the_database_and_large_ones_in_the_blob_store() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let small = message("small", "", "tiny");
    let large = message("large", "", &large_body());
    let other = message("other", "", "also tiny");
    for raw in [small.clone(), large.clone(), other] {
        store
            .append(account.id, MailboxRole::Inbox, raw, 0, &[])
            .await
            .unwrap();
    }
    let records = store.account_messages(account.id).await.unwrap();
    assert!(records[0].inline && !records[1].inline && records[2].inline);
    assert_eq!(store.blobs().list(BlobArea::Mail).await.unwrap().len(), 1);
    assert_eq!(store.message_bytes(&records[0]).await.unwrap(), small);
    assert_eq!(store.message_bytes(&records[1]).await.unwrap(), large);
    // An inline blob is bound to its blob id like a file blob: reading another row's sealed
    // bytes under this record's identity fails authentication.
    let mut forged = records[0].clone();
    forged.id = records[2].id.clone();
    assert!(matches!(
        store.message_bytes(&forged).await,
        Err(StoreError::Sealed(_))
    ));
}

#[tokio::test]
async fn schema_1_database_with_inline_blobs_in_messages_is_migrated_and_reads_back() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let small = message("small", "", "tiny");
    let large = message("large", "", &large_body());
    for raw in [small.clone(), large.clone()] {
        store
            .append(account.id, MailboxRole::Inbox, raw, 0, &[])
            .await
            .unwrap();
    }
    drop(store);
    // Turn the database back into schema 1's layout: the small blob in messages.inline_blob.
    let mut conn = fx.connect().await;
    sqlx::raw_sql(
        "ALTER TABLE messages ADD COLUMN inline_blob BLOB; \
         UPDATE messages SET inline_blob = \
           (SELECT sealed FROM inline_blobs WHERE message_id = messages.id); \
         DELETE FROM inline_blobs; \
         ALTER TABLE messages DROP COLUMN inline; \
         ALTER TABLE messages DROP COLUMN envelope; \
         UPDATE settings SET value = '1' WHERE name = 'schema_version';",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);

    let store = fx.open(KeyScope::Account).await;
    let records = store.account_messages(account.id).await.unwrap();
    assert!(records[0].inline && !records[1].inline);
    assert_eq!(store.message_bytes(&records[0]).await.unwrap(), small);
    assert_eq!(store.message_bytes(&records[1]).await.unwrap(), large);
    assert_eq!(
        store.meta().get_setting("schema_version").await.unwrap(),
        Some("3".to_string())
    );
}

#[tokio::test]
async fn schema_2_database_is_migrated_with_usage_counted_and_old_envelopes_from_summaries() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let raw = message("old", "", "stored under schema 2");
    store
        .append(account.id, MailboxRole::Inbox, raw.clone(), 0, &[])
        .await
        .unwrap();
    drop(store);
    let mut conn = fx.connect().await;
    sqlx::raw_sql(
        "ALTER TABLE messages DROP COLUMN envelope; \
         DROP TABLE account_usage; \
         UPDATE settings SET value = '2' WHERE name = 'schema_version';",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);

    let store = fx.open(KeyScope::Account).await;
    assert_eq!(
        store.meta().get_setting("schema_version").await.unwrap(),
        Some("3".to_string())
    );
    let wire = store.account_messages(account.id).await.unwrap()[0].wire_size;
    let usage = store.quota_usage(account.id).await.unwrap();
    assert_eq!((usage.messages, usage.bytes), (1, wire));
    store
        .append(account.id, MailboxRole::Inbox, raw, 0, &[])
        .await
        .unwrap();
    assert_eq!(store.quota_usage(account.id).await.unwrap().messages, 2);
    let inbox = store
        .role_mailbox(account.id, MailboxRole::Inbox)
        .await
        .unwrap();
    let envelope_only = RecordParts {
        envelope: true,
        ..RecordParts::METADATA
    };
    let loaded = store
        .entry_records(inbox.id, &[1..=2], envelope_only)
        .await
        .unwrap();
    let (old, new) = (&loaded[0].record, &loaded[1].record);
    // The old message comes with its summary, the new one with its rendered envelope only.
    assert!(old.sealed_envelope.is_none() && !old.sealed_summary.is_empty());
    assert!(new.sealed_envelope.is_some() && new.sealed_summary.is_empty());
    let rendered = store.rendered_envelope(new).await.unwrap().unwrap();
    assert!(rendered.for_session(false).starts_with(b"("));
    assert_eq!(store.rendered_envelope(old).await.unwrap(), None);
    assert_eq!(
        store.envelope(old).await.unwrap().subject.as_deref(),
        Some("old")
    );
}

#[tokio::test]
async fn entry_records_with_inline_blobs_read_small_bodies_without_another_query() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let small = message("small", "", "tiny");
    let large = message("large", "", &large_body());
    for raw in [small.clone(), large.clone()] {
        store
            .append(account.id, MailboxRole::Inbox, raw, 0, &[])
            .await
            .unwrap();
    }
    let inbox = store
        .role_mailbox(account.id, MailboxRole::Inbox)
        .await
        .unwrap();
    let parts = RecordParts {
        inline_blob: true,
        ..RecordParts::METADATA
    };
    let loaded = store
        .entry_records(inbox.id, &[1..=2], parts)
        .await
        .unwrap();
    let bare = store
        .entry_records(inbox.id, &[1..=1], RecordParts::METADATA)
        .await
        .unwrap();
    assert!(loaded[0].record.inline_blob.is_some() && loaded[1].record.inline_blob.is_none());
    assert!(bare[0].record.inline && bare[0].record.inline_blob.is_none());
    assert_eq!(store.message_bytes(&loaded[1].record).await.unwrap(), large);

    // With its row gone, only the record that carries the sealed blob can still be read.
    let mut conn = fx.connect().await;
    sqlx::query("DELETE FROM inline_blobs")
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(store.message_bytes(&loaded[0].record).await.unwrap(), small);
    assert!(matches!(
        store.message_bytes(&bare[0].record).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn attach_inline_blobs_fills_small_records_and_skips_large_or_missing_ones() {
    let fx = Fixture::new();
    let (store, account) = store_with_account(&fx).await;
    let bodies = [
        message("a", "", "one"),
        message("b", "", &large_body()),
        message("c", "", "three"),
    ];
    for raw in &bodies {
        store
            .append(account.id, MailboxRole::Inbox, raw.clone(), 0, &[])
            .await
            .unwrap();
    }
    let mut records = store.account_messages(account.id).await.unwrap();
    let gone = records[2].id.clone();
    let mut conn = fx.connect().await;
    sqlx::query("DELETE FROM inline_blobs WHERE message_id = ?")
        .bind(&gone)
        .execute(&mut conn)
        .await
        .unwrap();
    store
        .attach_inline_blobs(&mut records.iter_mut().collect::<Vec<_>>())
        .await
        .unwrap();
    assert!(records[0].inline_blob.is_some());
    assert!(records[1].inline_blob.is_none() && records[2].inline_blob.is_none());
    assert_eq!(store.message_bytes(&records[0]).await.unwrap(), bodies[0]);
    assert_eq!(store.message_bytes(&records[1]).await.unwrap(), bodies[1]);
}

#[tokio::test]
async fn add_alias_normalises_the_address_and_refuses_foreign_domains() {
    let fx = Fixture::new();
    let (store, alice) = store_with_account(&fx).await;
    assert_eq!(
        store
            .add_alias("Sales@Example.ORG", alice.id)
            .await
            .unwrap(),
        "sales@example.org"
    );
    assert_eq!(
        store.resolve_recipient("SALES@example.org").await.unwrap(),
        Recipient::Local(alice.id)
    );
    assert!(matches!(
        store.add_alias("sales@elsewhere.test", alice.id).await,
        Err(StoreError::NotFound(_))
    ));
}
