//! Running a search over many messages: bounded concurrency, blocking work off the runtime,
//! cancellation between messages.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use postkeep_message::MessageSummary;
use postkeep_store::{EntryRecord, MailStore, MessageRecord, StoreError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::facts::Facts;
use crate::query::{Node, Tri};
use crate::SearchError;

/// How often a search waiting on its workers looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// Messages one worker evaluates in turn; their small bodies come from one query, so that a
/// search of the whole mailbox is not a database round trip per message.
const CHUNK: usize = 32;

/// One worker per core (docs/imap-plan.md §3).
pub(crate) fn workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Process-wide permits for blocking work (decrypt, decompress, parse), shared by every search
/// so concurrent searches together use at most one thread per core.
fn blocking_permits() -> Arc<Semaphore> {
    static PERMITS: OnceLock<Arc<Semaphore>> = OnceLock::new();
    Arc::clone(PERMITS.get_or_init(|| Arc::new(Semaphore::new(workers()))))
}

/// Runs CPU-bound work on a blocking thread once a permit is free.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, SearchError> {
    let permit = blocking_permits()
        .acquire_owned()
        .await
        .map_err(|e| SearchError::Worker(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| SearchError::Worker(e.to_string()))
}

fn check(cancel: &AtomicBool) -> Result<(), SearchError> {
    if cancel.load(Ordering::Relaxed) {
        Err(SearchError::Cancelled)
    } else {
        Ok(())
    }
}

/// See [`crate::search`].
pub(crate) async fn search(
    store: &Arc<MailStore>,
    items: &[EntryRecord],
    node: Node,
    cancel: &AtomicBool,
) -> Result<Vec<usize>, SearchError> {
    let node = Arc::new(node);
    // Chunks in flight: twice the cores, so one chunk's reads (rows, blobs) overlap another's
    // parsing; the CPU-bound work itself never exceeds one thread per core (`blocking`).
    let limit = 2 * workers();
    let nothing = Facts::default();
    let mut matched = Vec::new();
    let mut running: JoinSet<Result<Vec<usize>, SearchError>> = JoinSet::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    for (index, item) in items.iter().enumerate() {
        check(cancel)?;
        match node.eval(item, &nothing) {
            Tri::Yes => matched.push(index),
            Tri::No => {}
            Tri::Needs(_) => chunk.push((index, item.clone())),
        }
        if chunk.len() == CHUNK || (index + 1 == items.len() && !chunk.is_empty()) {
            if running.len() >= limit {
                matched.extend(next_done(&mut running, cancel).await?);
            }
            let (store, node) = (Arc::clone(store), Arc::clone(&node));
            let chunk = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            running.spawn(evaluate_chunk(store, chunk, node));
        }
    }
    while !running.is_empty() {
        matched.extend(next_done(&mut running, cancel).await?);
    }
    matched.sort_unstable();
    Ok(matched)
}

/// Evaluates a chunk of `(index, message)` and returns the indexes that match.
async fn evaluate_chunk(
    store: Arc<MailStore>,
    mut chunk: Vec<(usize, EntryRecord)>,
    node: Arc<Node>,
) -> Result<Vec<usize>, SearchError> {
    if node.reads_message() {
        let mut records: Vec<_> = chunk.iter_mut().map(|(_, item)| &mut item.record).collect();
        store.attach_inline_blobs(&mut records).await?;
    }
    // The whole chunk on one blocking thread, so its messages' CPU work costs no thread handoff
    // each. What is still async (a data key's first use) is driven from here.
    let runtime = tokio::runtime::Handle::current();
    blocking(move || {
        runtime.block_on(async {
            let mut matched = Vec::new();
            for (index, item) in &chunk {
                if evaluate(&store, item, &node).await? {
                    matched.push(*index);
                }
            }
            Ok(matched)
        })
    })
    .await?
}

/// Waits for one worker, watching the cancel flag meanwhile. Returning early drops the
/// `JoinSet`, which aborts the other workers.
async fn next_done<T: 'static>(
    running: &mut JoinSet<Result<T, SearchError>>,
    cancel: &AtomicBool,
) -> Result<T, SearchError> {
    loop {
        check(cancel)?;
        tokio::select! {
            done = running.join_next() => {
                return match done {
                    Some(joined) => joined.map_err(|e| SearchError::Worker(e.to_string()))?,
                    None => Err(SearchError::Worker("no search worker left".into())),
                };
            }
            () = tokio::time::sleep(CANCEL_POLL) => {}
        }
    }
}

/// Loads stages of one message until the query is decided.
async fn evaluate(
    store: &Arc<MailStore>,
    item: &EntryRecord,
    node: &Node,
) -> Result<bool, SearchError> {
    let mut facts = Facts::default();
    loop {
        let stage = match node.eval(item, &facts) {
            Tri::Yes => return Ok(true),
            Tri::No => return Ok(false),
            Tri::Needs(stage) => stage,
        };
        match facts.load(store, &item.record, stage).await {
            Ok(()) => {}
            // Expunged by another session since `items` was read: it no longer matches.
            Err(SearchError::Store(StoreError::NotFound(what))) => {
                tracing::debug!(message = %item.record.id, %what, "message gone during search");
                return Ok(false);
            }
            Err(e) => return Err(e),
        }
    }
}

/// The summaries of `items[i]` for every `i` in `matched`, in that order, opened in parallel
/// (one chunk per core).
pub(crate) async fn summaries(
    store: &Arc<MailStore>,
    items: &[EntryRecord],
    matched: &[usize],
) -> Result<Vec<MessageSummary>, SearchError> {
    let records = matched
        .iter()
        .map(|&i| {
            items
                .get(i)
                .map(|item| item.record.clone())
                .ok_or(SearchError::IndexOutOfRange(i))
        })
        .collect::<Result<Vec<MessageRecord>, _>>()?;
    let chunk = records.len().div_ceil(workers()).max(1);
    let mut running = JoinSet::new();
    for (n, part) in records.chunks(chunk).enumerate() {
        let (store, part) = (Arc::clone(store), part.to_vec());
        running.spawn(async move {
            let mut opened = Vec::with_capacity(part.len());
            for record in &part {
                opened.push(store.summary(record).await?);
            }
            Ok::<_, StoreError>((n, opened))
        });
    }
    let mut chunks: Vec<(usize, Vec<MessageSummary>)> = Vec::new();
    while let Some(joined) = running.join_next().await {
        chunks.push(joined.map_err(|e| SearchError::Worker(e.to_string()))??);
    }
    chunks.sort_unstable_by_key(|(n, _)| *n);
    Ok(chunks.into_iter().flat_map(|(_, opened)| opened).collect())
}
