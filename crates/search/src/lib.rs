//! Searching a mailbox: a protocol-neutral [`Query`] evaluated over the encrypted store (RFC 9051
//! §6.4.4 semantics: case-insensitive substring matching), RFC 5256 SORT and THREAD.
//!
//! There is no index (docs/imap-plan.md §3): each message is opened only as far as its answer
//! needs, cheapest first. The database row answers UID, flag, keyword, date, size, MODSEQ and
//! object-id keys; the sealed summary answers FROM/TO/CC/BCC, SUBJECT and SENT*; HEADER reads
//! the header block from the blob; BODY and TEXT decrypt and parse the whole message with
//! mail-parser on a blocking thread (at most one per core across all searches). `And` and `Or`
//! stop as soon as they are decided, and each stage is loaded at most once per message.
#![forbid(unsafe_code)]

mod content;
mod exec;
mod facts;
mod fold;
mod headers;
mod query;
mod sort;
mod thread;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use postkeep_store::{EntryRecord, MailStore, StoreError};

pub use query::{DateCmp, Query};
pub use sort::{SortCriterion, SortKey};
pub use thread::{ThreadAlgorithm, ThreadNode, MAX_THREAD_DEPTH};

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cancel flag was set; whatever was running has been dropped.
    #[error("search cancelled")]
    Cancelled,
    /// A `matched` index does not point into `items`.
    #[error("message index {0} is out of range")]
    IndexOutOfRange(usize),
    /// A worker task failed (panicked or was cancelled by the runtime).
    #[error("search worker failed: {0}")]
    Worker(String),
}

/// Indices (into `items`, ascending) of the messages matching `query`. `items` are a mailbox's
/// entries in sequence order as returned by `MailStore::entry_records(.., RecordParts::SUMMARY)`.
///
/// `cancel` is checked between messages (and every 50 ms while waiting for workers); once set,
/// the search stops with [`SearchError::Cancelled`]. A message whose data has disappeared
/// meanwhile (expunged by another session) does not match.
pub async fn search(
    store: &Arc<MailStore>,
    items: &[EntryRecord],
    query: &Query,
    cancel: &AtomicBool,
) -> Result<Vec<usize>, SearchError> {
    exec::search(store, items, query::Node::compile(query), cancel).await
}

/// `matched` (indices into `items`) in RFC 5256 SORT order; ties keep sequence order. Only keys
/// other than ARRIVAL and SIZE open the summaries, each once.
pub async fn sort(
    store: &Arc<MailStore>,
    items: &[EntryRecord],
    matched: &[usize],
    criteria: &[SortCriterion],
) -> Result<Vec<usize>, SearchError> {
    if let Some(&bad) = matched.iter().find(|&&i| i >= items.len()) {
        return Err(SearchError::IndexOutOfRange(bad));
    }
    let summaries = if criteria.iter().any(|c| c.key.needs_summary()) {
        Some(exec::summaries(store, items, matched).await?)
    } else {
        None
    };
    Ok(sort::sort_indices(
        items,
        matched,
        summaries.as_deref(),
        criteria,
    ))
}

/// `matched` (indices into `items`) threaded by an RFC 5256 §4 algorithm; top-level threads
/// and siblings are in sent-date order.
pub async fn thread(
    store: &Arc<MailStore>,
    items: &[EntryRecord],
    matched: &[usize],
    algorithm: ThreadAlgorithm,
) -> Result<Vec<ThreadNode>, SearchError> {
    let summaries = exec::summaries(store, items, matched).await?;
    let messages = matched
        .iter()
        .zip(summaries)
        .filter_map(|(&index, summary)| {
            let item = items.get(index)?;
            Some(thread::ThreadMessage::new(index, item, summary))
        })
        .collect();
    Ok(match algorithm {
        ThreadAlgorithm::OrderedSubject => thread::ordered_subject(messages),
        ThreadAlgorithm::References => thread::references(messages),
    })
}
