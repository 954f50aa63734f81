//! DKIM keys of hosted domains (RFC 6376). Rows arrive with the private key already sealed.

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::SqliteMeta;
use crate::model::*;
use crate::StoreError;

const COLUMNS: &str = "domain_id, selector, algorithm, public_key, key_id, sealed_private_key, \
                       created, activated, retired";

fn key_from(row: &SqliteRow) -> Result<DkimKey, StoreError> {
    let algorithm: String = row.try_get("algorithm")?;
    Ok(DkimKey {
        domain_id: row.try_get("domain_id")?,
        selector: row.try_get("selector")?,
        algorithm: DkimAlgorithm::parse(&algorithm).ok_or_else(|| {
            StoreError::Invalid(format!("unknown DKIM algorithm {algorithm:?} in dkim_keys"))
        })?,
        public_key: row.try_get("public_key")?,
        key_id: row.try_get("key_id")?,
        sealed_private_key: row.try_get("sealed_private_key")?,
        created: row.try_get("created")?,
        activated: row.try_get("activated")?,
        retired: row.try_get("retired")?,
    })
}

pub(super) async fn keys(
    meta: &SqliteMeta,
    domain_id: DomainId,
) -> Result<Vec<DkimKey>, StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM dkim_keys WHERE domain_id = ? ORDER BY created, selector"
    )))
    .bind(domain_id)
    .fetch_all(&meta.pool)
    .await?
    .iter()
    .map(key_from)
    .collect()
}

async fn insert(conn: &mut SqliteConnection, key: &DkimKey) -> Result<(), StoreError> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO dkim_keys ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )))
    .bind(key.domain_id)
    .bind(&key.selector)
    .bind(key.algorithm.as_str())
    .bind(&key.public_key)
    .bind(&key.key_id)
    .bind(&key.sealed_private_key)
    .bind(key.created)
    .bind(key.activated)
    .bind(key.retired)
    .execute(&mut *conn)
    .await
    .map_err(|e| {
        StoreError::conflict_or(
            e,
            format!(
                "DKIM selector {} or a {} {} key already exists for this domain",
                key.selector,
                if key.pending() { "staged" } else { "signing" },
                key.algorithm.as_str()
            ),
        )
    })?;
    Ok(())
}

pub(super) async fn add(meta: &SqliteMeta, keys: &[DkimKey]) -> Result<(), StoreError> {
    let mut tx = meta.begin_write().await?;
    for key in keys {
        insert(&mut tx, key).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub(super) async fn activate(
    meta: &SqliteMeta,
    domain_id: DomainId,
    at: i64,
) -> Result<(), StoreError> {
    let mut tx = meta.begin_write().await?;
    let staged: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM dkim_keys WHERE domain_id = ? AND activated IS NULL",
    )
    .bind(domain_id)
    .fetch_one(&mut *tx)
    .await?;
    if staged == 0 {
        return Err(StoreError::NotFound(
            "staged DKIM keys (rotate first)".to_string(),
        ));
    }
    sqlx::query(
        "UPDATE dkim_keys SET retired = ? \
         WHERE domain_id = ? AND activated IS NOT NULL AND retired IS NULL",
    )
    .bind(at)
    .bind(domain_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE dkim_keys SET activated = ? WHERE domain_id = ? AND activated IS NULL")
        .bind(at)
        .bind(domain_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn remove(
    meta: &SqliteMeta,
    domain_id: DomainId,
    selector: &str,
) -> Result<(), StoreError> {
    let mut tx = meta.begin_write().await?;
    let signing: Option<bool> = sqlx::query_scalar(
        "SELECT activated IS NOT NULL AND retired IS NULL FROM dkim_keys \
         WHERE domain_id = ? AND selector = ?",
    )
    .bind(domain_id)
    .bind(selector)
    .fetch_optional(&mut *tx)
    .await?;
    match signing {
        None => return Err(StoreError::NotFound(format!("DKIM selector {selector}"))),
        Some(true) => {
            return Err(StoreError::Conflict(format!(
                "DKIM selector {selector} still signs new mail; rotate the keys first"
            )))
        }
        Some(false) => {}
    }
    sqlx::query("DELETE FROM dkim_keys WHERE domain_id = ? AND selector = ?")
        .bind(domain_id)
        .bind(selector)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}
