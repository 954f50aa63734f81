//! The embedded metadata backend: SQLite in WAL mode with `synchronous=FULL`, so a committed
//! transaction is on disk (RFC-level "250 means stored"). Nothing SQLite-specific leaves this file.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Row};

mod dkim;
mod entries;
mod mailboxes;
mod outbound;

use std::ops::RangeInclusive;

use crate::meta::MetadataStore;
use crate::model::*;
use crate::outbound::QueueEntry;
use crate::StoreError;

const SCHEMA_VERSION: &str = "3";

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS domains (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    domain_id INTEGER NOT NULL REFERENCES domains(id),
    address TEXT NOT NULL UNIQUE,
    password_hash TEXT,
    -- RFC 9208 STORAGE limit in bytes; NULL: unlimited.
    quota_bytes INTEGER,
    -- The last UIDVALIDITY handed out, so a re-created mailbox gets a new one (RFC 9051 §2.3.1.1).
    last_uid_validity INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS aliases (
    address TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS app_passwords (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    digest BLOB NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (account_id, name)
);
CREATE TABLE IF NOT EXISTS data_keys (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    master_id TEXT NOT NULL,
    created INTEGER NOT NULL,
    UNIQUE (scope, version)
);
CREATE TABLE IF NOT EXISTS mailboxes (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    role TEXT,
    uid_validity INTEGER NOT NULL,
    uid_next INTEGER NOT NULL,
    highest_modseq INTEGER NOT NULL,
    -- RFC 8474 MAILBOXID.
    object_id TEXT NOT NULL UNIQUE,
    UNIQUE (account_id, name)
);
-- RFC 6154: one mailbox per special-use role and account.
CREATE UNIQUE INDEX IF NOT EXISTS mailboxes_by_role ON mailboxes (account_id, role)
    WHERE role IS NOT NULL;
-- RFC 9051 §6.3.7: names, which need not exist.
CREATE TABLE IF NOT EXISTS subscriptions (
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    PRIMARY KEY (account_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    blob_id TEXT NOT NULL,
    -- 1: the sealed blob is small and kept in inline_blobs; 0: it is in the blob store.
    inline INTEGER NOT NULL DEFAULT 0,
    key_id TEXT NOT NULL,
    internal_date INTEGER NOT NULL,
    size INTEGER NOT NULL,
    -- Octets of the CRLF wire form IMAP/POP3 serve (docs/imap-plan.md §2.3).
    wire_size INTEGER NOT NULL,
    thread_id TEXT NOT NULL,
    summary BLOB NOT NULL,
    -- The sealed ENVELOPE pre-rendered in IMAP syntax (postkeep_imap_proto::RenderedEnvelope);
    -- NULL for messages stored before schema 3, whose FETCH reads the summary instead.
    envelope BLOB,
    msgid_hash BLOB
);
CREATE INDEX IF NOT EXISTS messages_by_account ON messages (account_id);
-- Small sealed blobs, apart from `messages`: with a body in the row, reading any column after
-- it (the summary of FETCH ENVELOPE, the sizes of SELECT) walked the body's overflow pages.
CREATE TABLE IF NOT EXISTS inline_blobs (
    message_id TEXT PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    sealed BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_by_msgid ON messages (account_id, msgid_hash);
CREATE TABLE IF NOT EXISTS mailbox_entries (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    modseq INTEGER NOT NULL,
    flags INTEGER NOT NULL,
    keywords TEXT NOT NULL DEFAULT '',
    save_date INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS entries_by_message ON mailbox_entries (message_id);
-- RFC 7162 CHANGEDSINCE / QRESYNC read entries by MODSEQ.
CREATE INDEX IF NOT EXISTS entries_by_modseq ON mailbox_entries (mailbox_id, modseq);
-- RFC 7162 §3.2.10: expunged UIDs with their MODSEQ, for VANISHED under QRESYNC.
CREATE TABLE IF NOT EXISTS vanished (
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vanished_by_modseq ON vanished (mailbox_id, modseq);
-- RFC 9208 STORAGE and MESSAGE usage per account, counted per entry (a copy counts again), kept
-- by the triggers below inside every transaction that adds or removes entries, so QUOTA and
-- each APPEND/COPY/MOVE check read one row instead of summing the account's entries.
CREATE TABLE IF NOT EXISTS account_usage (
    account_id INTEGER PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    messages INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0
);
CREATE TRIGGER IF NOT EXISTS account_usage_row AFTER INSERT ON accounts BEGIN
    INSERT INTO account_usage (account_id) VALUES (NEW.id);
END;
-- By the message's account: a message row outlives its entries (remove_unreferenced deletes
-- it after them), while a mailbox deleted with its entries is already gone when its entries'
-- cascaded deletes fire these.
CREATE TRIGGER IF NOT EXISTS account_usage_entry_added AFTER INSERT ON mailbox_entries BEGIN
    UPDATE account_usage SET messages = messages + 1, bytes = bytes + m.wire_size
    FROM messages m WHERE m.id = NEW.message_id AND account_usage.account_id = m.account_id;
END;
CREATE TRIGGER IF NOT EXISTS account_usage_entry_removed AFTER DELETE ON mailbox_entries BEGIN
    UPDATE account_usage SET messages = messages - 1, bytes = bytes - m.wire_size
    FROM messages m WHERE m.id = OLD.message_id AND account_usage.account_id = m.account_id;
END;
-- DKIM keys (RFC 6376): private keys sealed (PKCS#8), public keys as published in DNS.
CREATE TABLE IF NOT EXISTS dkim_keys (
    domain_id INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    selector TEXT NOT NULL,
    algorithm TEXT NOT NULL,
    public_key BLOB NOT NULL,
    key_id TEXT NOT NULL,
    sealed_private_key BLOB NOT NULL,
    created INTEGER NOT NULL,
    -- When it started signing; NULL while a rotation is staged (published, not signing).
    activated INTEGER,
    -- When a newer key replaced it (still published until removed).
    retired INTEGER,
    PRIMARY KEY (domain_id, selector)
) WITHOUT ROWID;
-- One signing and one staged key per algorithm and domain: concurrent first uses or
-- rotations cannot both create one.
CREATE UNIQUE INDEX IF NOT EXISTS dkim_keys_signing ON dkim_keys (domain_id, algorithm)
    WHERE activated IS NOT NULL AND retired IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS dkim_keys_pending ON dkim_keys (domain_id, algorithm)
    WHERE activated IS NULL;
-- The outbound queue: the message is the sealed blob `id` in the smtp-outgoing area; the
-- envelope (sender, recipients and their delivery state) is sealed. No foreign key: mail
-- already accepted is still delivered or bounced after its account is removed.
CREATE TABLE IF NOT EXISTS outbound_queue (
    id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    created INTEGER NOT NULL,
    next_attempt INTEGER NOT NULL,
    -- The delivering node's lease: nobody else delivers the entry before lease_until.
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    envelope BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS outbound_queue_due ON outbound_queue (next_attempt);
"#;

pub struct SqliteMeta {
    pool: SqlitePool,
    options: SqliteConnectOptions,
    /// The one connection `PRAGMA data_version` is asked on (see `change_counter`): the value
    /// is per connection, so a pooled connection would compare unrelated numbers. Opened on
    /// first use, so processes that never watch (CLI commands) do not hold it.
    version_conn: tokio::sync::Mutex<Option<SqliteConnection>>,
}

impl SqliteMeta {
    /// Opens (creating if needed) the database file and applies the schema.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        // SQLite gives its -wal and -shm files the database file's mode: create it 0600 first.
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: the WAL is fsync'd at every commit, so a commit survives power loss.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // The server and CLI commands (import, user add) may write concurrently.
            .busy_timeout(Duration::from_secs(30))
            // Rows a query's worker thread may queue ahead of the reader (sqlx's default: 50).
            // With room for a whole FETCH or SEARCH batch the two trade places less often:
            // FETCH 1:* of 10,000 messages went from about 6,000 context switches to 2,500.
            .row_buffer_size(1024);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone())
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        let meta = Self {
            pool,
            options,
            version_conn: tokio::sync::Mutex::new(None),
        };
        match meta.get_setting("schema_version").await? {
            None => meta.set_setting("schema_version", SCHEMA_VERSION).await?,
            Some(v) if v == SCHEMA_VERSION => {}
            Some(v) if v == "1" => {
                meta.migrate_from_1().await?;
                meta.migrate_from_2().await?;
            }
            Some(v) if v == "2" => meta.migrate_from_2().await?,
            Some(v) => {
                return Err(StoreError::Invalid(format!(
                    "database schema version {v} is not supported by this postkeep \
                     (expects {SCHEMA_VERSION})"
                )))
            }
        }
        Ok(meta)
    }

    /// `PRAGMA data_version` on the dedicated connection. After an error the connection is
    /// dropped and reopened next time; the new connection's value differs, which only costs
    /// the caller one refresh.
    async fn data_version(&self) -> Result<u64, StoreError> {
        let mut slot = self.version_conn.lock().await;
        let conn = match slot.as_mut() {
            Some(conn) => conn,
            None => slot.insert(self.options.connect().await?),
        };
        match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
            .fetch_one(&mut *conn)
            .await
        {
            Ok(version) => to_u64(version, "data_version"),
            Err(e) => {
                *slot = None;
                Err(e.into())
            }
        }
    }

    /// Schema 1 kept small sealed blobs in a `messages.inline_blob` column; schema 2 moves
    /// them to `inline_blobs` (created by SCHEMA). One transaction, re-checked inside it, so
    /// a second process opening the same old database at once waits and then does nothing.
    async fn migrate_from_1(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let version: Option<String> =
            sqlx::query_scalar("SELECT value FROM settings WHERE name = 'schema_version'")
                .fetch_optional(&mut *tx)
                .await?;
        if version.as_deref() == Some("1") {
            sqlx::raw_sql(
                "ALTER TABLE messages ADD COLUMN inline INTEGER NOT NULL DEFAULT 0; \
                 INSERT INTO inline_blobs (message_id, sealed) \
                   SELECT id, inline_blob FROM messages WHERE inline_blob IS NOT NULL; \
                 UPDATE messages SET inline = 1 WHERE inline_blob IS NOT NULL; \
                 ALTER TABLE messages DROP COLUMN inline_blob; \
                 UPDATE settings SET value = '2' WHERE name = 'schema_version';",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Schema 3 adds `messages.envelope` and `account_usage`. Existing messages keep the
    /// envelope NULL and are served from their summaries, as before; usage is counted once
    /// here, and from then on by the triggers SCHEMA created. Re-checked inside the
    /// transaction like `migrate_from_1`.
    async fn migrate_from_2(&self) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let version: Option<String> =
            sqlx::query_scalar("SELECT value FROM settings WHERE name = 'schema_version'")
                .fetch_optional(&mut *tx)
                .await?;
        if version.as_deref() == Some("2") {
            sqlx::raw_sql(
                "ALTER TABLE messages ADD COLUMN envelope BLOB; \
                 INSERT OR REPLACE INTO account_usage (account_id, messages, bytes) \
                   SELECT a.id, COUNT(e.uid), COALESCE(SUM(m.wire_size), 0) FROM accounts a \
                   LEFT JOIN mailboxes b ON b.account_id = a.id \
                   LEFT JOIN mailbox_entries e ON e.mailbox_id = b.id \
                   LEFT JOIN messages m ON m.id = e.message_id \
                   GROUP BY a.id; \
                 UPDATE settings SET value = '3' WHERE name = 'schema_version';",
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StoreError> {
        // IMMEDIATE takes the write lock up front, so a concurrent writer waits (busy_timeout)
        // instead of failing with SQLITE_BUSY when a read transaction tries to upgrade.
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

fn to_u32(value: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} out of range: {value}")))
}

fn to_u64(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} out of range: {value}")))
}

fn to_i64(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid(format!("{what} out of range: {value}")))
}

fn domain_from(row: &SqliteRow) -> Result<Domain, StoreError> {
    Ok(Domain {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
    })
}

fn account_from(row: &SqliteRow) -> Result<Account, StoreError> {
    Ok(Account {
        id: row.try_get("id")?,
        domain_id: row.try_get("domain_id")?,
        address: row.try_get("address")?,
        password_hash: row.try_get("password_hash")?,
    })
}

fn mailbox_from(row: &SqliteRow) -> Result<Mailbox, StoreError> {
    let role: Option<String> = row.try_get("role")?;
    Ok(Mailbox {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        role: role.as_deref().and_then(MailboxRole::parse),
        uid_validity: to_u32(row.try_get("uid_validity")?, "uid_validity")?,
        uid_next: to_u32(row.try_get("uid_next")?, "uid_next")?,
        highest_modseq: to_u64(row.try_get("highest_modseq")?, "highest_modseq")?,
        object_id: row.try_get("object_id")?,
    })
}

fn key_from(row: &SqliteRow) -> Result<WrappedKey, StoreError> {
    Ok(WrappedKey {
        id: row.try_get("id")?,
        scope: row.try_get("scope")?,
        version: row.try_get("version")?,
        wrapped: row.try_get("wrapped")?,
        master_id: row.try_get("master_id")?,
        created: row.try_get("created")?,
    })
}

fn record_from(row: &SqliteRow) -> Result<MessageRecord, StoreError> {
    Ok(MessageRecord {
        sealed_summary: row.try_get("summary")?,
        ..record_metadata(row)?
    })
}

/// A message row without its sealed columns (left empty).
fn record_metadata(row: &SqliteRow) -> Result<MessageRecord, StoreError> {
    Ok(MessageRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        blob_id: row.try_get("blob_id")?,
        inline: row.try_get("inline")?,
        key_id: row.try_get("key_id")?,
        internal_date: row.try_get("internal_date")?,
        size: to_u64(row.try_get("size")?, "size")?,
        wire_size: to_u64(row.try_get("wire_size")?, "wire_size")?,
        thread_id: row.try_get("thread_id")?,
        sealed_summary: Vec::new(),
        sealed_envelope: None,
        inline_blob: None,
    })
}

fn entry_from(row: &SqliteRow) -> Result<MessageEntry, StoreError> {
    entry_of(row, row.try_get("mailbox_id")?, row.try_get("message_id")?)
}

/// An entry row whose mailbox and message the caller knows.
fn entry_of(
    row: &SqliteRow,
    mailbox_id: MailboxId,
    message_id: MessageId,
) -> Result<MessageEntry, StoreError> {
    let keywords: String = row.try_get("keywords")?;
    Ok(MessageEntry {
        message_id,
        mailbox_id,
        uid: to_u32(row.try_get("uid")?, "uid")?,
        modseq: to_u64(row.try_get("modseq")?, "modseq")?,
        flags: to_u32(row.try_get("flags")?, "flags")?,
        keywords: keywords.split_whitespace().map(str::to_string).collect(),
        save_date: row.try_get("save_date")?,
    })
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

const MAILBOX_COLUMNS: &str =
    "id, account_id, name, role, uid_validity, uid_next, highest_modseq, object_id";

/// Whether `aliases.address` is in the domain bound as `?1`: it ends in `@` and the domain
/// (domains hold no `@`, so that `@` is the one separating the domain).
const ALIAS_IN_DOMAIN: &str = "substr(aliases.address, -length(?1) - 1) = '@' || ?1";

const MESSAGE_COLUMNS: &str =
    "id, account_id, blob_id, inline, key_id, internal_date, size, wire_size, thread_id, \
     summary";

#[async_trait]
impl MetadataStore for SqliteMeta {
    async fn add_domain(&self, name: &str) -> Result<Domain, StoreError> {
        let row = sqlx::query("INSERT INTO domains (name) VALUES (?) RETURNING id, name")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| StoreError::conflict_or(e, format!("domain {name} already exists")))?;
        domain_from(&row)
    }

    async fn list_domains(&self) -> Result<Vec<Domain>, StoreError> {
        sqlx::query("SELECT id, name FROM domains ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(domain_from)
            .collect()
    }

    async fn find_domain(&self, name: &str) -> Result<Option<Domain>, StoreError> {
        sqlx::query("SELECT id, name FROM domains WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(domain_from)
            .transpose()
    }

    async fn remove_domain(&self, name: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let users: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM accounts a JOIN domains d ON a.domain_id = d.id WHERE d.name = ?",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        // An alias outliving its domain would still resolve, so mail for a domain that is no
        // longer ours would be accepted.
        let aliases: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM aliases WHERE {ALIAS_IN_DOMAIN}"
        )))
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if users > 0 || aliases > 0 {
            return Err(StoreError::Conflict(format!(
                "domain {name} still has {users} account(s) and {aliases} alias(es); \
                 remove them first"
            )));
        }
        let done = sqlx::query("DELETE FROM domains WHERE name = ?")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("domain {name}")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn create_account(
        &self,
        domain_id: DomainId,
        address: &str,
        password_hash: Option<&str>,
        uid_validity: u32,
    ) -> Result<Account, StoreError> {
        let mut tx = self.begin_write().await?;
        let taken: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM aliases WHERE address = ?")
            .bind(address)
            .fetch_one(&mut *tx)
            .await?;
        if taken > 0 {
            return Err(StoreError::Conflict(format!("{address} is an alias")));
        }
        let row = sqlx::query(
            "INSERT INTO accounts (domain_id, address, password_hash) VALUES (?, ?, ?) \
             RETURNING id, domain_id, address, password_hash",
        )
        .bind(domain_id)
        .bind(address)
        .bind(password_hash)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_or(e, format!("account {address} already exists")))?;
        let account = account_from(&row)?;
        sqlx::query("UPDATE accounts SET last_uid_validity = ? WHERE id = ?")
            .bind(i64::from(uid_validity))
            .bind(account.id)
            .execute(&mut *tx)
            .await?;
        for role in MailboxRole::ALL {
            let new = mailboxes::NewMailbox::empty(role.default_name(), Some(role), uid_validity);
            mailboxes::insert(&mut tx, account.id, &new).await?;
        }
        tx.commit().await?;
        Ok(account)
    }

    async fn find_account(&self, address: &str) -> Result<Option<Account>, StoreError> {
        sqlx::query("SELECT id, domain_id, address, password_hash FROM accounts WHERE address = ?")
            .bind(address)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(account_from)
            .transpose()
    }

    async fn account_by_id(&self, id: AccountId) -> Result<Option<Account>, StoreError> {
        sqlx::query("SELECT id, domain_id, address, password_hash FROM accounts WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(account_from)
            .transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        sqlx::query("SELECT id, domain_id, address, password_hash FROM accounts ORDER BY address")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(account_from)
            .collect()
    }

    async fn set_password_hash(&self, id: AccountId, hash: &str) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE accounts SET password_hash = ? WHERE id = ?")
            .bind(hash)
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account #{id}")));
        }
        Ok(())
    }

    async fn remove_account(&self, id: AccountId) -> Result<Vec<String>, StoreError> {
        let mut tx = self.begin_write().await?;
        let blobs: Vec<String> =
            sqlx::query_scalar("SELECT blob_id FROM messages WHERE account_id = ? AND NOT inline")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        // Cascades remove mailboxes, entries, aliases and app passwords.
        let done = sqlx::query("DELETE FROM accounts WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account #{id}")));
        }
        tx.commit().await?;
        Ok(blobs)
    }

    async fn add_alias(&self, address: &str, account_id: AccountId) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        if sqlx::query("SELECT 1 FROM accounts WHERE address = ?")
            .bind(address)
            .fetch_optional(&mut *tx)
            .await?
            .is_some()
        {
            return Err(StoreError::Conflict(format!(
                "{address} is an account, so it cannot be an alias"
            )));
        }
        sqlx::query("INSERT INTO aliases (address, account_id) VALUES (?, ?)")
            .bind(address)
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_or(e, format!("alias {address} already exists")))?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_aliases(&self, domain: Option<&str>) -> Result<Vec<Alias>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT aliases.address, aliases.account_id, accounts.address AS account \
             FROM aliases JOIN accounts ON accounts.id = aliases.account_id \
             WHERE ?1 IS NULL OR {ALIAS_IN_DOMAIN} ORDER BY aliases.address"
        )))
        .bind(domain)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok(Alias {
                address: row.try_get("address")?,
                account_id: row.try_get("account_id")?,
                account: row.try_get("account")?,
            })
        })
        .collect()
    }

    async fn remove_alias(&self, address: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM aliases WHERE address = ?")
            .bind(address)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("alias {address}")));
        }
        Ok(())
    }

    async fn resolve_address(&self, address: &str) -> Result<Option<AccountId>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM accounts WHERE address = ?1 \
             UNION ALL SELECT account_id FROM aliases WHERE address = ?1 LIMIT 1",
        )
        .bind(address)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn add_app_password(
        &self,
        account_id: AccountId,
        name: &str,
        digest: &[u8],
    ) -> Result<AppPassword, StoreError> {
        let row = sqlx::query(
            "INSERT INTO app_passwords (account_id, name, digest, created) VALUES (?, ?, ?, ?) \
             RETURNING id, account_id, name, digest, created",
        )
        .bind(account_id)
        .bind(name)
        .bind(digest)
        .bind(now())
        .fetch_one(&self.pool)
        .await
        .map_err(|e| StoreError::conflict_or(e, format!("app password {name} already exists")))?;
        app_password_from(&row)
    }

    async fn list_app_passwords(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<AppPassword>, StoreError> {
        sqlx::query(
            "SELECT id, account_id, name, digest, created FROM app_passwords \
             WHERE account_id = ? ORDER BY name",
        )
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(app_password_from)
        .collect()
    }

    async fn revoke_app_password(
        &self,
        account_id: AccountId,
        name: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM app_passwords WHERE account_id = ? AND name = ?")
            .bind(account_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_key(&self, key: &WrappedKey) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO data_keys (id, scope, version, wrapped, master_id, created) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.scope)
        .bind(key.version)
        .bind(&key.wrapped)
        .bind(&key.master_id)
        .bind(key.created)
        .execute(&self.pool)
        .await
        .map_err(|e| StoreError::conflict_or(e, format!("data key {} already exists", key.id)))?;
        Ok(())
    }

    async fn list_keys(&self) -> Result<Vec<WrappedKey>, StoreError> {
        sqlx::query(
            "SELECT id, scope, version, wrapped, master_id, created FROM data_keys \
             ORDER BY scope, version",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(key_from)
        .collect()
    }

    async fn find_key(&self, id: &str) -> Result<Option<WrappedKey>, StoreError> {
        sqlx::query(
            "SELECT id, scope, version, wrapped, master_id, created FROM data_keys WHERE id = ?",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(key_from)
        .transpose()
    }

    async fn current_key(&self, scope: &str) -> Result<Option<WrappedKey>, StoreError> {
        sqlx::query(
            "SELECT id, scope, version, wrapped, master_id, created FROM data_keys \
             WHERE scope = ? ORDER BY version DESC LIMIT 1",
        )
        .bind(scope)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(key_from)
        .transpose()
    }

    async fn rewrap_keys(&self, keys: &[WrappedKey], master_id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_keys")
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(stored).ok() != Some(keys.len()) {
            // A key was added since the caller listed them: it would stay under the old master.
            return Err(StoreError::Conflict(
                "data keys changed during master key rotation; run it again".into(),
            ));
        }
        for key in keys {
            sqlx::query("UPDATE data_keys SET wrapped = ?, master_id = ? WHERE id = ?")
                .bind(&key.wrapped)
                .bind(master_id)
                .bind(&key.id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ('master_key_id', ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(master_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_setting(&self, name: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn set_setting(&self, name: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_mailboxes(&self, account_id: AccountId) -> Result<Vec<Mailbox>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = ? ORDER BY id"
        )))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(mailbox_from)
        .collect()
    }

    async fn mailbox_by_role(
        &self,
        account_id: AccountId,
        role: MailboxRole,
    ) -> Result<Option<Mailbox>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MAILBOX_COLUMNS} FROM mailboxes WHERE account_id = ? AND role = ?"
        )))
        .bind(account_id)
        .bind(role.as_str())
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(mailbox_from)
        .transpose()
    }

    async fn create_mailbox(
        &self,
        account_id: AccountId,
        name: &str,
        role: Option<MailboxRole>,
        uid_validity: u32,
    ) -> Result<Mailbox, StoreError> {
        mailboxes::create(self, account_id, name, role, uid_validity).await
    }

    async fn rename_mailbox(
        &self,
        account_id: AccountId,
        from: &str,
        to: &str,
    ) -> Result<Vec<Mailbox>, StoreError> {
        mailboxes::rename(self, account_id, from, to).await
    }

    async fn delete_mailbox(&self, mailbox_id: MailboxId) -> Result<Vec<String>, StoreError> {
        mailboxes::delete(self, mailbox_id).await
    }

    async fn mailbox_by_name(
        &self,
        account_id: AccountId,
        name: &str,
    ) -> Result<Option<Mailbox>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        mailboxes::by_name(&mut conn, account_id, name).await
    }

    async fn mailbox_by_id(&self, id: MailboxId) -> Result<Option<Mailbox>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        mailboxes::by_id(&mut conn, id).await
    }

    async fn set_subscribed(
        &self,
        account_id: AccountId,
        name: &str,
        on: bool,
    ) -> Result<(), StoreError> {
        mailboxes::set_subscribed(self, account_id, name, on).await
    }

    async fn subscriptions(&self, account_id: AccountId) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT name FROM subscriptions WHERE account_id = ? ORDER BY name")
                .bind(account_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn mailbox_counts(&self, mailbox_id: MailboxId) -> Result<MailboxCounts, StoreError> {
        entries::counts(self, mailbox_id).await
    }

    async fn highest_modseqs(
        &self,
        ids: &[MailboxId],
    ) -> Result<Vec<(MailboxId, u64)>, StoreError> {
        entries::highest_modseqs(self, ids).await
    }

    async fn change_counter(&self) -> Result<u64, StoreError> {
        self.data_version().await
    }

    async fn entry_records(
        &self,
        mailbox_id: MailboxId,
        uids: &[RangeInclusive<u32>],
        parts: RecordParts,
    ) -> Result<Vec<EntryRecord>, StoreError> {
        entries::records(self, mailbox_id, uids, parts).await
    }

    async fn update_flags(&self, change: &FlagChange<'_>) -> Result<FlagOutcome, StoreError> {
        entries::update_flags(self, change).await
    }

    async fn expunge(
        &self,
        mailbox_id: MailboxId,
        uids: Option<&[u32]>,
        require_deleted: bool,
    ) -> Result<Expunged, StoreError> {
        let mut tx = self.begin_write().await?;
        let expunged = entries::expunge_in(&mut tx, mailbox_id, uids, require_deleted).await?;
        tx.commit().await?;
        Ok(expunged)
    }

    async fn copy_entries(
        &self,
        from: MailboxId,
        uids: &[u32],
        to: MailboxId,
        remove_source: bool,
    ) -> Result<Copied, StoreError> {
        entries::copy(self, from, uids, to, remove_source).await
    }

    async fn changes_since(
        &self,
        mailbox_id: MailboxId,
        modseq: u64,
    ) -> Result<Changes, StoreError> {
        entries::changes_since(self, mailbox_id, modseq).await
    }

    async fn quota_usage(&self, account_id: AccountId) -> Result<QuotaUsage, StoreError> {
        entries::quota_usage(self, account_id).await
    }

    async fn set_quota(&self, account_id: AccountId, bytes: Option<u64>) -> Result<(), StoreError> {
        let bytes = bytes.map(|b| to_i64(b, "quota")).transpose()?;
        let done = sqlx::query("UPDATE accounts SET quota_bytes = ? WHERE id = ?")
            .bind(bytes)
            .bind(account_id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("account #{account_id}")));
        }
        Ok(())
    }

    async fn append_messages(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut appended = Vec::with_capacity(batch.len());
        for new in batch {
            appended.push(append_one(&mut tx, new).await?);
        }
        // One commit, one WAL fsync, for the whole batch (group commit).
        tx.commit().await?;
        Ok(appended)
    }

    async fn thread_for_hashes(
        &self,
        account_id: AccountId,
        hashes: &[Vec<u8>],
    ) -> Result<Option<String>, StoreError> {
        for hash in hashes {
            let thread: Option<String> = sqlx::query_scalar(
                "SELECT thread_id FROM messages WHERE account_id = ? AND msgid_hash = ? LIMIT 1",
            )
            .bind(account_id)
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?;
            if thread.is_some() {
                return Ok(thread);
            }
        }
        Ok(None)
    }

    async fn mailbox_snapshot(&self, mailbox_id: MailboxId) -> Result<MailboxSnapshot, StoreError> {
        entries::snapshot(self, mailbox_id).await
    }

    async fn list_entries(&self, mailbox_id: MailboxId) -> Result<Vec<MessageEntry>, StoreError> {
        sqlx::query(
            "SELECT mailbox_id, uid, message_id, modseq, flags, keywords, save_date \
             FROM mailbox_entries WHERE mailbox_id = ? ORDER BY uid",
        )
        .bind(mailbox_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(entry_from)
        .collect()
    }

    async fn message(&self, id: &str) -> Result<Option<MessageRecord>, StoreError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(record_from)
        .transpose()
    }

    async fn account_messages(
        &self,
        account_id: AccountId,
    ) -> Result<Vec<MessageRecord>, StoreError> {
        // rowid order is insertion order, so export → import → export keeps the order.
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE account_id = ? ORDER BY rowid"
        )))
        .bind(account_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(record_from)
        .collect()
    }

    async fn inline_blobs(
        &self,
        message_ids: &[&str],
    ) -> Result<Vec<(MessageId, Vec<u8>)>, StoreError> {
        entries::inline_blobs(self, message_ids).await
    }

    async fn all_blob_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT blob_id FROM messages WHERE NOT inline")
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn dkim_keys(&self, domain_id: DomainId) -> Result<Vec<DkimKey>, StoreError> {
        dkim::keys(self, domain_id).await
    }

    async fn add_dkim_keys(&self, keys: &[DkimKey]) -> Result<(), StoreError> {
        dkim::add(self, keys).await
    }

    async fn activate_dkim_keys(&self, domain_id: DomainId, at: i64) -> Result<(), StoreError> {
        dkim::activate(self, domain_id, at).await
    }

    async fn remove_dkim_key(&self, domain_id: DomainId, selector: &str) -> Result<(), StoreError> {
        dkim::remove(self, domain_id, selector).await
    }

    async fn queue_insert(&self, entry: &QueueEntry) -> Result<(), StoreError> {
        outbound::insert(self, entry).await
    }

    async fn queue_entries(&self) -> Result<Vec<QueueEntry>, StoreError> {
        outbound::entries(self).await
    }

    async fn queue_entry(&self, id: &str) -> Result<Option<QueueEntry>, StoreError> {
        outbound::entry(self, id).await
    }

    async fn queue_due(&self, now: i64, limit: u32) -> Result<Vec<String>, StoreError> {
        outbound::due(self, now, limit).await
    }

    async fn queue_lease(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, StoreError> {
        outbound::lease(self, id, owner, now, until).await
    }

    async fn queue_update(
        &self,
        id: &str,
        owner: &str,
        sealed_envelope: &[u8],
        next_attempt: i64,
        release: bool,
    ) -> Result<bool, StoreError> {
        outbound::update(self, id, owner, sealed_envelope, next_attempt, release).await
    }

    async fn queue_delete(&self, id: &str, owner: Option<&str>) -> Result<bool, StoreError> {
        outbound::delete(self, id, owner).await
    }

    async fn queue_reschedule(&self, id: Option<&str>, at: i64) -> Result<u64, StoreError> {
        outbound::reschedule(self, id, at).await
    }
}

fn app_password_from(row: &SqliteRow) -> Result<AppPassword, StoreError> {
    Ok(AppPassword {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        digest: row.try_get("digest")?,
        created: row.try_get("created")?,
    })
}

async fn append_one(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    new: &NewMessage,
) -> Result<Appended, StoreError> {
    let record = &new.record;
    sqlx::query(
        "INSERT INTO messages (id, account_id, blob_id, inline, key_id, internal_date, size, \
         wire_size, thread_id, summary, msgid_hash, envelope) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&record.id)
    .bind(record.account_id)
    .bind(&record.blob_id)
    .bind(record.inline)
    .bind(&record.key_id)
    .bind(record.internal_date)
    .bind(to_i64(record.size, "size")?)
    .bind(to_i64(record.wire_size, "wire_size")?)
    .bind(&record.thread_id)
    .bind(&record.sealed_summary)
    .bind(&new.message_id_hash)
    .bind(&record.sealed_envelope)
    .execute(&mut **tx)
    .await?;
    if let Some(sealed) = &record.inline_blob {
        sqlx::query("INSERT INTO inline_blobs (message_id, sealed) VALUES (?, ?)")
            .bind(&record.id)
            .bind(&sealed[..])
            .execute(&mut **tx)
            .await?;
    }
    // RFC 9051 §2.3.1.1: UIDs strictly ascend; RFC 7162 §3.1: every change gets a new MODSEQ.
    let row = sqlx::query(
        "UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = highest_modseq + 1 \
         WHERE id = ? AND account_id = ? RETURNING uid_next - 1 AS uid, highest_modseq",
    )
    .bind(new.mailbox_id)
    .bind(record.account_id)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| StoreError::NotFound(format!("mailbox #{}", new.mailbox_id)))?;
    let uid: i64 = row.try_get("uid")?;
    let modseq: i64 = row.try_get("highest_modseq")?;
    sqlx::query(
        "INSERT INTO mailbox_entries (mailbox_id, uid, message_id, modseq, flags, keywords, \
         save_date) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(new.mailbox_id)
    .bind(uid)
    .bind(&record.id)
    .bind(modseq)
    .bind(i64::from(new.flags))
    .bind(new.keywords.join(" "))
    .bind(now())
    .execute(&mut **tx)
    .await?;
    Ok(Appended {
        mailbox_id: new.mailbox_id,
        uid: to_u32(uid, "uid")?,
        modseq: to_u64(modseq, "modseq")?,
    })
}
