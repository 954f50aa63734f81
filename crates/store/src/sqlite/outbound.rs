//! The outbound queue's rows (see `crate::outbound`). Envelopes arrive sealed.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::{to_i64, to_u64, SqliteMeta};
use crate::outbound::QueueEntry;
use crate::StoreError;

const COLUMNS: &str =
    "id, account_id, key_id, size, created, next_attempt, lease_owner, lease_until, envelope";

fn entry_from(row: &SqliteRow) -> Result<QueueEntry, StoreError> {
    Ok(QueueEntry {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        key_id: row.try_get("key_id")?,
        size: to_u64(row.try_get("size")?, "size")?,
        created: row.try_get("created")?,
        next_attempt: row.try_get("next_attempt")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        sealed_envelope: row.try_get("envelope")?,
    })
}

pub(super) async fn insert(meta: &SqliteMeta, entry: &QueueEntry) -> Result<(), StoreError> {
    let mut tx = meta.begin_write().await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO outbound_queue ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )))
    .bind(&entry.id)
    .bind(entry.account_id)
    .bind(&entry.key_id)
    .bind(to_i64(entry.size, "size")?)
    .bind(entry.created)
    .bind(entry.next_attempt)
    .bind(&entry.lease_owner)
    .bind(entry.lease_until)
    .bind(&entry.sealed_envelope)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn entries(meta: &SqliteMeta) -> Result<Vec<QueueEntry>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbound_queue ORDER BY created, id"
    )))
    .fetch_all(&meta.pool)
    .await?
    .iter()
    .map(entry_from)
    .collect()
}

pub(super) async fn entry(meta: &SqliteMeta, id: &str) -> Result<Option<QueueEntry>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbound_queue WHERE id = ?"
    )))
    .bind(id)
    .fetch_optional(&meta.pool)
    .await?
    .as_ref()
    .map(entry_from)
    .transpose()
}

pub(super) async fn due(
    meta: &SqliteMeta,
    now: i64,
    limit: u32,
) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM outbound_queue WHERE next_attempt <= ? AND lease_until <= ? \
         ORDER BY next_attempt, id LIMIT ?",
    )
    .bind(now)
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(&meta.pool)
    .await?)
}

pub(super) async fn lease(
    meta: &SqliteMeta,
    id: &str,
    owner: &str,
    now: i64,
    until: i64,
) -> Result<bool, StoreError> {
    // One statement: SQLite runs it atomically, so two nodes cannot both take a free lease.
    let done = sqlx::query(
        "UPDATE outbound_queue SET lease_owner = ?, lease_until = ? \
         WHERE id = ? AND (lease_until <= ? OR lease_owner = ?)",
    )
    .bind(owner)
    .bind(until)
    .bind(id)
    .bind(now)
    .bind(owner)
    .execute(&meta.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn update(
    meta: &SqliteMeta,
    id: &str,
    owner: &str,
    sealed_envelope: &[u8],
    next_attempt: i64,
    release: bool,
) -> Result<bool, StoreError> {
    let sql = if release {
        "UPDATE outbound_queue SET envelope = ?, next_attempt = ?, lease_owner = NULL, \
         lease_until = 0 WHERE id = ? AND lease_owner = ?"
    } else {
        "UPDATE outbound_queue SET envelope = ?, next_attempt = ? WHERE id = ? AND lease_owner = ?"
    };
    let done = sqlx::query(sql)
        .bind(sealed_envelope)
        .bind(next_attempt)
        .bind(id)
        .bind(owner)
        .execute(&meta.pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

pub(super) async fn delete(
    meta: &SqliteMeta,
    id: &str,
    owner: Option<&str>,
) -> Result<bool, StoreError> {
    let done = match owner {
        Some(owner) => {
            sqlx::query("DELETE FROM outbound_queue WHERE id = ? AND lease_owner = ?")
                .bind(id)
                .bind(owner)
                .execute(&meta.pool)
                .await?
        }
        None => {
            sqlx::query("DELETE FROM outbound_queue WHERE id = ?")
                .bind(id)
                .execute(&meta.pool)
                .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

pub(super) async fn reschedule(
    meta: &SqliteMeta,
    id: Option<&str>,
    at: i64,
) -> Result<u64, StoreError> {
    let done = match id {
        Some(id) => {
            sqlx::query("UPDATE outbound_queue SET next_attempt = ? WHERE id = ?")
                .bind(at)
                .bind(id)
                .execute(&meta.pool)
                .await?
        }
        None => {
            sqlx::query("UPDATE outbound_queue SET next_attempt = ?")
                .bind(at)
                .execute(&meta.pool)
                .await?
        }
    };
    Ok(done.rows_affected())
}
