//! Mailbox lifecycle: CREATE, RENAME, DELETE (RFC 9051 §6.3.4–6.3.6) and subscriptions.

use std::collections::HashSet;

use sqlx::SqliteConnection;

use super::{mailbox_from, now, to_i64, SqliteMeta, MAILBOX_COLUMNS};
use crate::model::*;
use crate::StoreError;

/// A mailbox row about to be inserted.
pub(super) struct NewMailbox<'a> {
    pub name: &'a str,
    pub role: Option<MailboxRole>,
    pub uid_validity: u32,
    pub uid_next: u32,
    pub highest_modseq: u64,
}

impl<'a> NewMailbox<'a> {
    pub fn empty(name: &'a str, role: Option<MailboxRole>, uid_validity: u32) -> Self {
        Self {
            name,
            role,
            uid_validity,
            uid_next: 1,
            highest_modseq: 1,
        }
    }
}

/// RFC 8474 MAILBOXID. The letter prefix keeps it a valid JMAP id that never starts with a
/// digit (RFC 8620 §1.2).
fn new_object_id() -> String {
    format!("M{}", postkeep_crypto::random_id())
}

pub(super) async fn insert(
    conn: &mut SqliteConnection,
    account_id: AccountId,
    new: &NewMailbox<'_>,
) -> Result<Mailbox, StoreError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO mailboxes (account_id, name, role, uid_validity, uid_next, highest_modseq, \
         object_id) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {MAILBOX_COLUMNS}"
    )))
    .bind(account_id)
    .bind(new.name)
    .bind(new.role.map(MailboxRole::as_str))
    .bind(i64::from(new.uid_validity))
    .bind(i64::from(new.uid_next))
    .bind(to_i64(new.highest_modseq, "highest_modseq")?)
    .bind(new_object_id())
    .fetch_one(&mut *conn)
    .await
    .map_err(|e| StoreError::conflict_or(e, format!("mailbox {} already exists", new.name)))?;
    mailbox_from(&row)
}

pub(super) async fn by_name(
    conn: &mut SqliteConnection,
    account_id: AccountId,
    name: &str,
) -> Result<Option<Mailbox>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = ? AND name = ?"
    )))
    .bind(account_id)
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(mailbox_from)
    .transpose()
}

pub(super) async fn by_id(
    conn: &mut SqliteConnection,
    id: MailboxId,
) -> Result<Option<Mailbox>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .as_ref()
    .map(mailbox_from)
    .transpose()
}

pub(super) async fn require(
    conn: &mut SqliteConnection,
    id: MailboxId,
) -> Result<Mailbox, StoreError> {
    by_id(conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox #{id}")))
}

/// Hands out the account's next UIDVALIDITY: at least `floor` and above every earlier one, so
/// a re-created name never repeats one (RFC 9051 §2.3.1.1). After u32::MAX it restarts at
/// `floor`.
async fn next_uid_validity(
    conn: &mut SqliteConnection,
    account_id: AccountId,
    floor: u32,
) -> Result<u32, StoreError> {
    let last: i64 = sqlx::query_scalar("SELECT last_uid_validity FROM accounts WHERE id = ?")
        .bind(account_id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("account #{account_id}")))?;
    let next = u32::try_from(last)
        .ok()
        .and_then(|last| last.checked_add(1))
        .map_or(floor, |next| next.max(floor))
        .max(1);
    sqlx::query("UPDATE accounts SET last_uid_validity = ? WHERE id = ?")
        .bind(i64::from(next))
        .bind(account_id)
        .execute(&mut *conn)
        .await?;
    Ok(next)
}

pub(super) async fn create(
    meta: &SqliteMeta,
    account_id: AccountId,
    name: &str,
    role: Option<MailboxRole>,
    uid_validity: u32,
) -> Result<Mailbox, StoreError> {
    let mut tx = meta.begin_write().await?;
    if by_name(&mut tx, account_id, name).await?.is_some() {
        return Err(StoreError::Conflict(format!(
            "mailbox {name} already exists"
        )));
    }
    if let Some(role) = role {
        let taken = sqlx::query("SELECT 1 FROM mailboxes WHERE account_id = ? AND role = ?")
            .bind(account_id)
            .bind(role.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if taken.is_some() {
            // RFC 6154 §5.3: the session answers NO [USEATTR].
            return Err(StoreError::Conflict(format!(
                "the account already has a {} mailbox",
                role.as_str()
            )));
        }
    }
    let uid_validity = next_uid_validity(&mut tx, account_id, uid_validity).await?;
    let mailbox = insert(
        &mut tx,
        account_id,
        &NewMailbox::empty(name, role, uid_validity),
    )
    .await?;
    tx.commit().await?;
    Ok(mailbox)
}

fn is_self_or_child(name: &str, parent: &str) -> bool {
    name.strip_prefix(parent)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(HIERARCHY_SEPARATOR))
}

pub(super) async fn rename(
    meta: &SqliteMeta,
    account_id: AccountId,
    from: &str,
    to: &str,
) -> Result<Vec<Mailbox>, StoreError> {
    let mut tx = meta.begin_write().await?;
    let source = by_name(&mut tx, account_id, from)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {from}")))?;
    if source.role == Some(MailboxRole::Inbox) {
        let moved = rename_inbox(&mut tx, &source, to).await?;
        tx.commit().await?;
        return Ok(vec![moved]);
    }
    if is_self_or_child(to, from) {
        return Err(StoreError::Invalid(format!(
            "cannot rename {from} to itself or below itself"
        )));
    }
    let all = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = ?"
    )))
    .bind(account_id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(mailbox_from)
    .collect::<Result<Vec<_>, _>>()?;
    // RFC 9051 §6.3.6: inferior names are renamed too.
    let (moving, staying): (Vec<Mailbox>, Vec<Mailbox>) = all
        .into_iter()
        .partition(|m| is_self_or_child(&m.name, from));
    let taken: HashSet<&str> = staying.iter().map(|m| m.name.as_str()).collect();
    let renames: Vec<(MailboxId, String)> = moving
        .iter()
        .map(|m| {
            (
                m.id,
                format!("{to}{}", m.name.strip_prefix(from).unwrap_or_default()),
            )
        })
        .collect();
    if let Some((_, name)) = renames
        .iter()
        .find(|(_, name)| taken.contains(name.as_str()))
    {
        return Err(StoreError::Conflict(format!(
            "mailbox {name} already exists"
        )));
    }
    // Two passes, so a new name may equal another moving mailbox's old one mid-way without
    // tripping UNIQUE (account_id, name). Names never hold control characters.
    for (id, _) in &renames {
        set_name(&mut tx, *id, &format!("\u{1}{id}")).await?;
    }
    for (id, name) in &renames {
        set_name(&mut tx, *id, name).await?;
    }
    let mut renamed = Vec::with_capacity(renames.len());
    for (id, _) in &renames {
        renamed.push(require(&mut tx, *id).await?);
    }
    tx.commit().await?;
    renamed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(renamed)
}

async fn set_name(
    conn: &mut SqliteConnection,
    id: MailboxId,
    name: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE mailboxes SET name = ? WHERE id = ?")
        .bind(name)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(|e| StoreError::conflict_or(e, format!("mailbox {name} already exists")))?;
    Ok(())
}

/// RFC 9051 §6.3.6: renaming INBOX moves its messages into a new mailbox and leaves INBOX
/// empty; INBOX's children are unaffected. The new mailbox keeps the UIDs under a new
/// UIDVALIDITY; INBOX records the moved UIDs as vanished under one new MODSEQ.
async fn rename_inbox(
    conn: &mut SqliteConnection,
    inbox: &Mailbox,
    to: &str,
) -> Result<Mailbox, StoreError> {
    if by_name(conn, inbox.account_id, to).await?.is_some() {
        return Err(StoreError::Conflict(format!("mailbox {to} already exists")));
    }
    let floor = u32::try_from(now()).unwrap_or(1);
    let uid_validity = next_uid_validity(conn, inbox.account_id, floor).await?;
    let target = insert(
        conn,
        inbox.account_id,
        &NewMailbox {
            name: to,
            role: None,
            uid_validity,
            uid_next: inbox.uid_next,
            highest_modseq: inbox.highest_modseq,
        },
    )
    .await?;
    let moved: Vec<i64> = sqlx::query_scalar(
        "UPDATE mailbox_entries SET mailbox_id = ? WHERE mailbox_id = ? RETURNING uid",
    )
    .bind(target.id)
    .bind(inbox.id)
    .fetch_all(&mut *conn)
    .await?;
    if !moved.is_empty() {
        let modseq = to_i64(inbox.highest_modseq, "highest_modseq")?.saturating_add(1);
        let uids = serde_json::to_string(&moved).map_err(|e| StoreError::Backend(e.to_string()))?;
        sqlx::query(
            "INSERT OR REPLACE INTO vanished (mailbox_id, uid, modseq) \
             SELECT ?1, value, ?2 FROM json_each(?3)",
        )
        .bind(inbox.id)
        .bind(modseq)
        .bind(uids)
        .execute(&mut *conn)
        .await?;
        sqlx::query("UPDATE mailboxes SET highest_modseq = ? WHERE id = ?")
            .bind(modseq)
            .bind(inbox.id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(target)
}

pub(super) async fn delete(
    meta: &SqliteMeta,
    mailbox_id: MailboxId,
) -> Result<Vec<String>, StoreError> {
    let mut tx = meta.begin_write().await?;
    let mailbox = require(&mut tx, mailbox_id).await?;
    if mailbox.role == Some(MailboxRole::Inbox) {
        return Err(StoreError::Invalid(
            "INBOX cannot be deleted (RFC 9051 §6.3.5)".into(),
        ));
    }
    let held: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT message_id FROM mailbox_entries WHERE mailbox_id = ?")
            .bind(mailbox_id)
            .fetch_all(&mut *tx)
            .await?;
    // Cascades remove the entries and vanished rows.
    sqlx::query("DELETE FROM mailboxes WHERE id = ?")
        .bind(mailbox_id)
        .execute(&mut *tx)
        .await?;
    let orphans = super::entries::remove_unreferenced(&mut tx, &held).await?;
    tx.commit().await?;
    Ok(orphans)
}

pub(super) async fn set_subscribed(
    meta: &SqliteMeta,
    account_id: AccountId,
    name: &str,
    on: bool,
) -> Result<(), StoreError> {
    let sql = if on {
        "INSERT OR IGNORE INTO subscriptions (account_id, name) VALUES (?, ?)"
    } else {
        "DELETE FROM subscriptions WHERE account_id = ? AND name = ?"
    };
    let mut tx = meta.begin_write().await?;
    sqlx::query(sql)
        .bind(account_id)
        .bind(name)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
