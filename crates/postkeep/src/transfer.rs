//! `postkeep import` and `postkeep export`.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use postkeep_mailfile::{BadMessage, ImportedMessage, MaildirWriter, MboxWriter};
use postkeep_store::{Flag, MailStore, MailboxRole, Prepared, StoreError};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::datadir::DataDir;
use crate::ExportFormat;

/// Messages sealed concurrently while importing (their order is kept).
const IMPORT_PARALLELISM: usize = 8;
/// Messages per commit while importing.
const IMPORT_BATCH: usize = 128;

type Item = Result<ImportedMessage, BadMessage>;

fn to_store_flag(flag: postkeep_mailfile::Flag) -> Flag {
    match flag {
        postkeep_mailfile::Flag::Seen => Flag::Seen,
        postkeep_mailfile::Flag::Answered => Flag::Answered,
        postkeep_mailfile::Flag::Flagged => Flag::Flagged,
        postkeep_mailfile::Flag::Deleted => Flag::Deleted,
        postkeep_mailfile::Flag::Draft => Flag::Draft,
    }
}

fn to_file_flag(flag: Flag) -> postkeep_mailfile::Flag {
    match flag {
        Flag::Seen => postkeep_mailfile::Flag::Seen,
        Flag::Answered => postkeep_mailfile::Flag::Answered,
        Flag::Flagged => postkeep_mailfile::Flag::Flagged,
        Flag::Deleted => postkeep_mailfile::Flag::Deleted,
        Flag::Draft => postkeep_mailfile::Flag::Draft,
    }
}

fn progress(len: Option<usize>) -> ProgressBar {
    let bar = match len {
        Some(len) => ProgressBar::new(len as u64),
        None => ProgressBar::new_spinner(),
    };
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} {per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

pub async fn import(data: &Path, address: &str, path: &Path) -> anyhow::Result<()> {
    let store = Arc::new(DataDir::load(data)?.open_store().await?);
    let account = store
        .find_account(address)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account {address}"))?;
    let source =
        postkeep_mailfile::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let bar = progress(source.len_hint());

    // Reading files is blocking I/O: a thread feeds the async sealing pipeline.
    let (feed, mut items) = mpsc::channel::<Item>(IMPORT_PARALLELISM * 2);
    let reader = tokio::task::spawn_blocking(move || {
        for item in source {
            if feed.blocking_send(item).is_err() {
                break;
            }
        }
    });

    let mut in_flight: VecDeque<JoinHandle<Result<Prepared, StoreError>>> = VecDeque::new();
    let mut batch = Vec::with_capacity(IMPORT_BATCH);
    let (mut imported, mut bad) = (0usize, 0usize);
    loop {
        let next = if in_flight.len() < IMPORT_PARALLELISM {
            items.recv().await
        } else {
            None
        };
        let exhausted = next.is_none();
        match next {
            Some(Ok(message)) => in_flight.push_back(spawn_prepare(&store, account.id, message)),
            Some(Err(bad_message)) => {
                bar.suspend(|| eprintln!("skipped {bad_message}"));
                bar.inc(1);
                bad += 1;
            }
            None => {}
        }
        if exhausted || in_flight.len() >= IMPORT_PARALLELISM {
            let Some(task) = in_flight.pop_front() else {
                break;
            };
            batch.push(task.await.context("import task failed")??);
            bar.inc(1);
            if batch.len() >= IMPORT_BATCH {
                imported += store.commit(std::mem::take(&mut batch)).await?.len();
            }
        }
    }
    if !batch.is_empty() {
        imported += store.commit(batch).await?.len();
    }
    reader.await.context("reader task failed")?;
    bar.finish_and_clear();
    println!("imported {imported} messages, {bad} bad");
    Ok(())
}

fn spawn_prepare(
    store: &Arc<MailStore>,
    account_id: i64,
    message: ImportedMessage,
) -> JoinHandle<Result<Prepared, StoreError>> {
    let store = Arc::clone(store);
    tokio::spawn(async move {
        let date = message
            .internal_date
            .map_or_else(|| chrono::Utc::now().timestamp(), |d| d.timestamp());
        let flags: Vec<Flag> = message.flags.iter().copied().map(to_store_flag).collect();
        store
            .prepare_for_role(account_id, MailboxRole::Inbox, message.raw, date, &flags)
            .await
    })
}

/// Flags of each message (from the first mailbox holding it).
async fn flags_by_message(
    store: &MailStore,
    account_id: i64,
) -> anyhow::Result<HashMap<String, u32>> {
    let mut flags = HashMap::new();
    for mailbox in store.meta().list_mailboxes(account_id).await? {
        for entry in store.meta().list_entries(mailbox.id).await? {
            flags.entry(entry.message_id).or_insert(entry.flags);
        }
    }
    Ok(flags)
}

pub async fn export(
    data: &Path,
    address: &str,
    path: &Path,
    format: ExportFormat,
) -> anyhow::Result<()> {
    let store = DataDir::load(data)?.open_store().await?;
    let account = store
        .find_account(address)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no account {address}"))?;
    let records = store.account_messages(account.id).await?;
    let flags = flags_by_message(&store, account.id).await?;
    let bar = progress(Some(records.len()));
    let mut sink = ExportSink::create(path, format)?;
    for record in &records {
        let raw = store.message_bytes(record).await?;
        let date = chrono::DateTime::from_timestamp(record.internal_date, 0).unwrap_or_default();
        let message_flags: Vec<_> = Flag::from_bits(flags.get(&record.id).copied().unwrap_or(0))
            .into_iter()
            .map(to_file_flag)
            .collect();
        let sender = envelope_sender(&store, record).await;
        sink.write(&raw, &sender, date, &message_flags)
            .with_context(|| format!("cannot write to {}", path.display()))?;
        bar.inc(1);
    }
    sink.finish()?;
    bar.finish_and_clear();
    println!("exported {} messages to {}", records.len(), path.display());
    Ok(())
}

/// The From address for the mbox separator line (informational; MAILER-DAEMON if unknown).
async fn envelope_sender(store: &MailStore, record: &postkeep_store::MessageRecord) -> String {
    let summary = store.summary(record).await.ok();
    summary
        .and_then(|s| s.envelope.from.into_iter().next())
        .and_then(|a| Some(format!("{}@{}", a.mailbox?, a.host?)))
        .unwrap_or_else(|| "MAILER-DAEMON".to_string())
}

enum ExportSink {
    Mbox(MboxWriter<BufWriter<File>>),
    Maildir(MaildirWriter),
}

impl ExportSink {
    fn create(path: &Path, format: ExportFormat) -> anyhow::Result<Self> {
        Ok(match format {
            ExportFormat::Mbox => {
                let file = File::options()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .with_context(|| {
                        format!("cannot create {} (it must not exist)", path.display())
                    })?;
                ExportSink::Mbox(MboxWriter::new(BufWriter::new(file)))
            }
            ExportFormat::Maildir => ExportSink::Maildir(
                MaildirWriter::create(path)
                    .with_context(|| format!("cannot create Maildir {}", path.display()))?,
            ),
        })
    }

    fn write(
        &mut self,
        raw: &[u8],
        sender: &str,
        date: chrono::DateTime<chrono::Utc>,
        flags: &[postkeep_mailfile::Flag],
    ) -> std::io::Result<()> {
        match self {
            ExportSink::Mbox(writer) => writer.write_message(raw, sender, date),
            ExportSink::Maildir(writer) => writer.write_message(raw, flags, Some(date)).map(|_| ()),
        }
    }

    fn finish(self) -> anyhow::Result<()> {
        if let ExportSink::Mbox(writer) = self {
            let file = writer
                .into_inner()
                .into_inner()
                .map_err(|e| e.into_error())
                .context("cannot flush the export")?;
            file.sync_all().context("cannot sync the export")?;
        }
        Ok(())
    }
}
