//! Message commands: FETCH (streamed), STORE (RFC 7162 UNCHANGEDSINCE), EXPUNGE and UID
//! EXPUNGE (RFC 4315), COPY/MOVE (RFC 4315 COPYUID, RFC 6851), SEARCH (RFC 4731 ESEARCH,
//! RFC 5182 SEARCHRES), SORT and THREAD (RFC 5256), and APPEND streamed into the spool.

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use imap_types::command::{FetchModifier, StoreModifier};
use imap_types::core::{Charset, Tag};
use imap_types::datetime::DateTime;
use imap_types::extensions::sort::SortCriterion;
use imap_types::extensions::thread::ThreadingAlgorithm;
use imap_types::fetch::MacroOrMessageDataItemNames;
use imap_types::flag::{Flag as WireFlag, StoreResponse, StoreType};
use imap_types::mailbox::Mailbox as WireMailbox;
use imap_types::search::SearchKey;
use imap_types::sequence::SequenceSet;
use postkeep_delivery::SpoolSink;
use postkeep_imap_proto::ext::{FetchExt, SearchReturn};
use postkeep_search::{SortCriterion as SortBy, SortKey, ThreadAlgorithm, ThreadNode};
use postkeep_smtp::MessageSink;
use postkeep_store::{
    EntryRecord, Flag, FlagChange, FlagOp, MailStore, MailboxId, MessageEntry, RecordParts,
    StoreError,
};
use tokio::task::JoinHandle;
use tracing::warn;

use super::mailboxes::store_failure;
use super::sync::write_flags_fetch;
use super::{Flow, Reply, Session};
use crate::fetch::{write_fetch, FetchError, FetchOptions, FetchRequest, Opened, Sink};
use crate::query::{convert, BadSearch};
use crate::respond;

/// Messages loaded per store round trip while answering FETCH: bounds memory on `1:*`.
const FETCH_BATCH: usize = 256;

/// The first batches are smaller, so that writing starts early and overlaps loading the rest
/// even when a FETCH names only a few dozen messages.
const FETCH_FIRST_BATCHES: [usize; 3] = [16, 64, 128];

/// Batches a FETCH loads ahead of the one being written.
const FETCH_LOAD_AHEAD: usize = 2;

/// An APPEND whose message literal is arriving.
pub(crate) struct Append {
    tag: Tag<'static>,
    mailbox: postkeep_store::Mailbox,
    flags: u32,
    keywords: Vec<String>,
    internal_date: i64,
    sink: SpoolSink,
    failed: bool,
}

/// The framer's `AppendStart`, unpacked.
pub(crate) struct AppendStart {
    pub tag: Tag<'static>,
    pub mailbox: WireMailbox<'static>,
    pub flags: Vec<WireFlag<'static>>,
    pub date: Option<DateTime>,
    pub length: u32,
    pub sync: bool,
    pub binary: bool,
}

impl From<BadSearch> for Reply {
    fn from(bad: BadSearch) -> Self {
        Reply::bad(bad.0)
    }
}

impl Session {
    fn selected_id(&self) -> postkeep_store::MailboxId {
        self.selected.as_ref().map_or(0, |s| s.mailbox.id)
    }

    fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<u32>, Reply> {
        let Some(selected) = self.selected.as_ref() else {
            return Err(Reply::bad("No mailbox selected"));
        };
        selected.view.resolve(set, uid).map_err(Reply::from)
    }

    pub(super) async fn fetch(
        &mut self,
        set: &SequenceSet,
        items: MacroOrMessageDataItemNames<'static>,
        uid: bool,
        modifiers: &[FetchModifier],
        ext: Vec<FetchExt>,
    ) -> io::Result<Reply> {
        let uids = match self.resolve(set, uid) {
            Ok(uids) => uids,
            Err(reply) => return Ok(reply),
        };
        let mut changed_since = None;
        let mut vanished = false;
        for modifier in modifiers {
            match modifier {
                FetchModifier::ChangedSince(since) => changed_since = Some(since.get()),
                FetchModifier::Vanished => vanished = true,
            }
        }
        if vanished && (!uid || !self.enabled.qresync || changed_since.is_none()) {
            return Ok(Reply::bad(
                "VANISHED needs UID FETCH, CHANGEDSINCE and QRESYNC",
            ));
        }
        if changed_since.is_some() {
            // RFC 7162 §3.1: CHANGEDSINCE is a CONDSTORE-enabling command.
            self.enabled.condstore = true;
        }
        let request = Arc::new(FetchRequest::new(items, ext));
        let request_with_flags = request.with_flags();
        let options = FetchOptions {
            uid,
            modseq: self.enabled.condstore,
            utf8: self.enabled.utf8,
        };
        if let (true, Some(since)) = (vanished, changed_since) {
            self.report_vanished_earlier(set, since).await;
        }
        let newly_seen: Vec<u32> = if request.sets_seen() {
            self.mark_seen(&uids).await.iter().map(|e| e.uid).collect()
        } else {
            Vec::new()
        };
        self.flush().await?;
        let load = FetchLoad {
            store: Arc::clone(self.store()),
            mailbox: self.selected_id(),
            request: Arc::clone(&request),
            changed_since,
        };
        let mut batches = fetch_batches(&uids);
        // The next batches load while this one is written, each on its own database
        // connection: loading (the database thread, opening sealed data) costs more than
        // writing, so two loads side by side keep the writer busy on a multi-core machine.
        let mut loading: VecDeque<_> = batches
            .by_ref()
            .take(FETCH_LOAD_AHEAD)
            .map(|batch| load.spawn(batch))
            .collect();
        while let Some(batch) = loading.pop_front() {
            let loaded = match batch.await {
                Ok(Ok(loaded)) => loaded,
                Ok(Err(err)) => return Ok(store_failure(&err)),
                Err(err) => return Ok(store_failure(&StoreError::Backend(err.to_string()))),
            };
            loading.extend(batches.next().map(|batch| load.spawn(batch)));
            for (record, opened) in &loaded {
                let Some(seq) = self
                    .selected
                    .as_ref()
                    .and_then(|s| s.view.seq_of(record.entry.uid))
                else {
                    continue;
                };
                let req = if newly_seen.binary_search(&record.entry.uid).is_ok()
                    && !request.has_flags()
                {
                    &request_with_flags
                } else {
                    &request
                };
                if let Err(reply) = self.fetch_one(seq, record, opened, req, &options).await? {
                    return Ok(reply);
                }
            }
        }
        Ok(Reply::ok(if uid {
            "UID FETCH completed"
        } else {
            "FETCH completed"
        }))
    }

    /// Streams one message's FETCH response; `Ok(Err(reply))` ends the command early.
    async fn fetch_one(
        &mut self,
        seq: u32,
        record: &EntryRecord,
        opened: &Opened,
        request: &FetchRequest,
        options: &FetchOptions,
    ) -> io::Result<Result<(), Reply>> {
        let store = Arc::clone(self.store());
        // Responses collect in `out` like any other and go out a chunk at a time; what is left
        // goes with the tagged reply.
        let mut sink = Sink::new(&mut self.io, &mut self.out);
        match write_fetch(&mut sink, &store, seq, record, opened, request, options).await {
            Ok(()) => Ok(Ok(())),
            // Part of the response may be out: the connection cannot continue.
            Err(FetchError::Io(err)) => Err(err),
            Err(FetchError::Store(err)) => Ok(Err(store_failure(&err))),
            Err(FetchError::UnknownCte) => Ok(Err(Reply::no(
                "Cannot decode a part's content transfer encoding",
            )
            .code("UNKNOWN-CTE"))),
        }
    }

    /// RFC 7162 §3.2.6: `* VANISHED (EARLIER)` for UIDs of the set expunged since `since`.
    async fn report_vanished_earlier(&mut self, set: &SequenceSet, since: u64) {
        let max = self.selected.as_ref().map_or(0, |s| s.view.max_uid());
        let ranges = crate::query::uid_ranges(set, max);
        match self
            .store()
            .meta()
            .changes_since(self.selected_id(), since)
            .await
        {
            Ok(changes) => {
                let vanished: Vec<u32> = changes
                    .vanished
                    .into_iter()
                    .filter(|uid| ranges.iter().any(|r| r.contains(uid)))
                    .collect();
                if !vanished.is_empty() {
                    let line = format!(
                        "* VANISHED (EARLIER) {}\r\n",
                        respond::number_set(&vanished)
                    );
                    self.out.extend_from_slice(line.as_bytes());
                }
            }
            Err(err) => warn!(error = %err, "cannot read vanished UIDs"),
        }
    }

    pub(super) async fn store_flags(
        &mut self,
        set: &SequenceSet,
        kind: StoreType,
        response: StoreResponse,
        flags: &[WireFlag<'_>],
        uid: bool,
        modifiers: &[StoreModifier],
    ) -> Reply {
        let uids = match self.resolve(set, uid) {
            Ok(uids) => uids,
            Err(reply) => return reply,
        };
        if self.selected.as_ref().is_some_and(|s| s.read_only) {
            return Reply::no("Mailbox is read-only").code("READ-ONLY");
        }
        let (bits, keywords) = match split_flags(flags) {
            Ok(split) => split,
            Err(message) => return Reply::bad(message),
        };
        let unchanged_since = modifiers
            .iter()
            .map(|StoreModifier::UnchangedSince(since)| *since)
            .next();
        if unchanged_since.is_some() {
            self.enabled.condstore = true;
        }
        let change = FlagChange {
            mailbox_id: self.selected_id(),
            uids: &uids,
            op: match kind {
                StoreType::Add => FlagOp::Add,
                StoreType::Remove => FlagOp::Remove,
                StoreType::Replace => FlagOp::Replace,
            },
            flags: bits,
            keywords: &keywords,
            unchanged_since,
        };
        let outcome = match self.store().update_flags(&change).await {
            Ok(outcome) => outcome,
            Err(err) => return store_failure(&err),
        };
        if let Some(selected) = self.selected.as_mut() {
            selected.own_modseqs.push(outcome.highest_modseq);
        }
        let silent = matches!(response, StoreResponse::Silent);
        let condstore = self.enabled.condstore;
        if !silent || condstore {
            // Non-silent: every message of the set with its flags (RFC 9051 §6.4.6); silent under
            // CONDSTORE: the changed ones with their new MODSEQ (RFC 7162 §3.1.3).
            let shown: Vec<MessageEntry> = if silent {
                outcome.updated.clone()
            } else {
                let ranges: Vec<_> = uids.iter().map(|&u| u..=u).collect();
                match self
                    .store()
                    .entry_records(self.selected_id(), &ranges, RecordParts::METADATA)
                    .await
                {
                    Ok(records) => records
                        .into_iter()
                        .filter(|r| !outcome.modified.contains(&r.entry.uid))
                        .map(|r| r.entry)
                        .collect(),
                    Err(err) => return store_failure(&err),
                }
            };
            for entry in &shown {
                if let Some(seq) = self
                    .selected
                    .as_ref()
                    .and_then(|s| s.view.seq_of(entry.uid))
                {
                    write_flags_fetch(&mut self.out, seq, entry, condstore);
                }
            }
        }
        let done = if uid {
            "UID STORE completed"
        } else {
            "STORE completed"
        };
        if outcome.modified.is_empty() {
            return Reply::ok(done);
        }
        // RFC 7162 §3.1.3: UIDs for UID STORE, sequence numbers otherwise.
        let modified: Vec<u32> = if uid {
            outcome.modified.clone()
        } else {
            let view = self.selected.as_ref().map(|s| &s.view);
            outcome
                .modified
                .iter()
                .filter_map(|&u| view.and_then(|v| v.seq_of(u)))
                .collect()
        };
        Reply::ok("Some messages were modified meanwhile")
            .code(format!("MODIFIED {}", respond::number_set(&modified)))
    }

    pub(super) async fn expunge(&mut self, set: Option<&SequenceSet>) -> Reply {
        if self.selected.as_ref().is_some_and(|s| s.read_only) {
            return Reply::no("Mailbox is read-only").code("READ-ONLY");
        }
        let uids = match set {
            Some(set) => match self.resolve(set, true) {
                Ok(uids) => Some(uids),
                Err(reply) => return reply,
            },
            None => None,
        };
        let expunged = match self
            .store()
            .expunge(self.selected_id(), uids.as_deref(), true)
            .await
        {
            Ok(expunged) => expunged,
            Err(err) => return store_failure(&err),
        };
        self.report_own_expunges(&expunged.uids);
        Reply::ok(if set.is_some() {
            "UID EXPUNGE completed"
        } else {
            "EXPUNGE completed"
        })
    }

    pub(super) async fn copy(
        &mut self,
        set: &SequenceSet,
        target: &WireMailbox<'_>,
        uid: bool,
        remove_source: bool,
    ) -> Reply {
        let verb = match (uid, remove_source) {
            (false, false) => "COPY",
            (true, false) => "UID COPY",
            (false, true) => "MOVE",
            (true, true) => "UID MOVE",
        };
        let uids = match self.resolve(set, uid) {
            Ok(uids) => uids,
            Err(reply) => return reply,
        };
        if remove_source && self.selected.as_ref().is_some_and(|s| s.read_only) {
            return Reply::no("Mailbox is read-only").code("READ-ONLY");
        }
        let name = match self.mailbox_name(target) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        let destination = match self.find_mailbox(&name).await {
            Ok(mailbox) => mailbox,
            // RFC 9051 §6.4.7: TRYCREATE tells the client that CREATE would help.
            Err(reply) if reply.code.as_deref() == Some("NONEXISTENT") => {
                return Reply::no("Target mailbox does not exist").code("TRYCREATE")
            }
            Err(reply) => return reply,
        };
        if uids.is_empty() {
            return Reply::ok(format!("{verb} completed (no messages)"));
        }
        if let Err(reply) = self.check_quota(0).await {
            return reply;
        }
        let copied = match self
            .store()
            .copy_entries(self.selected_id(), &uids, destination.id, remove_source)
            .await
        {
            Ok(copied) => copied,
            Err(err) => return store_failure(&err),
        };
        let (source, dest): (Vec<u32>, Vec<u32>) = copied.pairs.iter().copied().unzip();
        let code = format!(
            "COPYUID {} {} {}",
            copied.uid_validity,
            respond::number_set(&source),
            respond::number_set(&dest)
        );
        if let Some(expunged) = &copied.source_expunged {
            // RFC 6851 §4.3: COPYUID in an untagged OK before the expunges.
            respond::line_with_code(&mut self.out, None, "OK", &code, "Moved");
            self.report_own_expunges(&expunged.uids);
            return Reply::ok(format!("{verb} completed"));
        }
        Reply::ok(format!("{verb} completed")).code(code)
    }

    /// RFC 9208 §5.1: refuse when the account is (or `adding` would put it) over its limit.
    async fn check_quota(&self, adding: u64) -> Result<(), Reply> {
        let usage = self
            .store()
            .quota_usage(self.account_id())
            .await
            .map_err(|err| store_failure(&err))?;
        match usage.limit_bytes {
            Some(limit) if usage.bytes.saturating_add(adding) > limit => {
                Err(Reply::no("Quota exceeded").code("OVERQUOTA"))
            }
            _ => Ok(()),
        }
    }

    /// Runs a search over the selected mailbox: the matching entries in sequence order.
    /// `with_summary`: load the sealed summaries even if the query does not need them (SORT
    /// and THREAD read them).
    async fn run_search(
        &mut self,
        charset: Option<&Charset<'_>>,
        keys: &[SearchKey<'_>],
        with_summary: bool,
    ) -> Result<(Vec<EntryRecord>, Vec<usize>, bool), Reply> {
        if let Some(charset) = charset {
            let name = charset_name(charset);
            if !name.eq_ignore_ascii_case("UTF-8") && !name.eq_ignore_ascii_case("US-ASCII") {
                return Err(Reply::no("Unsupported charset").code("BADCHARSET (UTF-8 US-ASCII)"));
            }
        }
        let Some(selected) = self.selected.as_ref() else {
            return Err(Reply::bad("No mailbox selected"));
        };
        let converted = convert(keys, &selected.view)?;
        let parts = RecordParts {
            summary: with_summary || crate::query::needs_summary(&converted.query),
            ..RecordParts::METADATA
        };
        let all = vec![1..=u32::MAX];
        let records = self
            .store()
            .entry_records(selected.mailbox.id, &all, parts)
            .await
            .map_err(|err| store_failure(&err))?;
        // Only what this session has been told about exists for it (RFC 9051 §7.5.1).
        let records: Vec<EntryRecord> = records
            .into_iter()
            .filter(|r| selected.view.contains(r.entry.uid))
            .collect();
        let cancel = AtomicBool::new(false);
        let matched = postkeep_search::search(self.store(), &records, &converted.query, &cancel)
            .await
            .map_err(|err| {
                warn!(error = %err, "search failed");
                Reply::no("Search failed; try again").code("SERVERBUG")
            })?;
        Ok((records, matched, converted.uses_modseq))
    }

    pub(super) async fn search(
        &mut self,
        charset: Option<&Charset<'_>>,
        keys: &[SearchKey<'_>],
        uid: bool,
        returns: Option<Vec<SearchReturn>>,
    ) -> Reply {
        let (records, matched, uses_modseq) = match self.run_search(charset, keys, false).await {
            Ok(result) => result,
            Err(reply) => return reply,
        };
        let matched_uids: Vec<u32> = matched.iter().map(|&i| records[i].entry.uid).collect();
        let numbers = self.numbers(&matched_uids, uid);
        let highest_modseq = matched.iter().map(|&i| records[i].entry.modseq).max();
        let done = if uid {
            "UID SEARCH completed"
        } else {
            "SEARCH completed"
        };
        let Some(mut returns) = returns else {
            let mut line = String::from("* SEARCH");
            for n in &numbers {
                line.push_str(&format!(" {n}"));
            }
            if let (true, Some(modseq)) = (uses_modseq, highest_modseq) {
                line.push_str(&format!(" (MODSEQ {modseq})"));
            }
            self.out.extend_from_slice(line.as_bytes());
            self.out.extend_from_slice(b"\r\n");
            return Reply::ok(done);
        };
        // RFC 4731 §3.1: RETURN () means ALL.
        if returns.is_empty() {
            returns.push(SearchReturn::All);
        }
        if returns.contains(&SearchReturn::Save) {
            if let Some(selected) = self.selected.as_mut() {
                selected.saved = Some(matched_uids.clone());
            }
            // RFC 5182 §2.1: SAVE alone returns no ESEARCH response.
            if returns.len() == 1 {
                return Reply::ok(done);
            }
        }
        self.write_esearch(
            &numbers,
            &returns,
            uid,
            uses_modseq.then_some(highest_modseq).flatten(),
        );
        Reply::ok(done)
    }

    /// Sequence numbers (or UIDs) of matched UIDs, ascending.
    fn numbers(&self, uids: &[u32], uid: bool) -> Vec<u32> {
        if uid {
            return uids.to_vec();
        }
        let Some(selected) = self.selected.as_ref() else {
            return Vec::new();
        };
        uids.iter()
            .filter_map(|&u| selected.view.seq_of(u))
            .collect()
    }

    /// RFC 4731 §3.1 `* ESEARCH (TAG "t") [UID] MIN n MAX n COUNT n ALL set`; the tag is the
    /// current command's, written by the caller's reply, so it is looked up here.
    fn write_esearch(
        &mut self,
        numbers: &[u32],
        returns: &[SearchReturn],
        uid: bool,
        modseq: Option<u64>,
    ) {
        let mut line = String::from("* ESEARCH");
        if let Some(tag) = &self.current_tag {
            line.push_str(&format!(" (TAG \"{tag}\")"));
        }
        if uid {
            line.push_str(" UID");
        }
        for ret in returns {
            match ret {
                SearchReturn::Min => {
                    if let Some(min) = numbers.first() {
                        line.push_str(&format!(" MIN {min}"));
                    }
                }
                SearchReturn::Max => {
                    if let Some(max) = numbers.last() {
                        line.push_str(&format!(" MAX {max}"));
                    }
                }
                SearchReturn::Count => line.push_str(&format!(" COUNT {}", numbers.len())),
                SearchReturn::All => {
                    if !numbers.is_empty() {
                        line.push_str(&format!(" ALL {}", respond::number_set(numbers)));
                    }
                }
                SearchReturn::Save => {}
            }
        }
        if let Some(modseq) = modseq {
            line.push_str(&format!(" MODSEQ {modseq}"));
        }
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    pub(super) async fn sort(
        &mut self,
        criteria: &[SortCriterion],
        charset: &Charset<'_>,
        keys: &[SearchKey<'_>],
        uid: bool,
    ) -> Reply {
        let (records, matched, _) = match self.run_search(Some(charset), keys, true).await {
            Ok(result) => result,
            Err(reply) => return reply,
        };
        let by: Vec<SortBy> = criteria
            .iter()
            .map(|c| SortBy {
                key: sort_key(&c.key),
                reverse: c.reverse,
            })
            .collect();
        let sorted = match postkeep_search::sort(self.store(), &records, &matched, &by).await {
            Ok(sorted) => sorted,
            Err(err) => {
                warn!(error = %err, "sort failed");
                return Reply::no("Sort failed; try again").code("SERVERBUG");
            }
        };
        let mut line = String::from("* SORT");
        for index in sorted {
            let number = self.number_of(records[index].entry.uid, uid);
            line.push_str(&format!(" {number}"));
        }
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        Reply::ok(if uid {
            "UID SORT completed"
        } else {
            "SORT completed"
        })
    }

    fn number_of(&self, message_uid: u32, uid: bool) -> u32 {
        if uid {
            return message_uid;
        }
        self.selected
            .as_ref()
            .and_then(|s| s.view.seq_of(message_uid))
            .unwrap_or(0)
    }

    pub(super) async fn thread(
        &mut self,
        algorithm: &ThreadingAlgorithm<'_>,
        charset: &Charset<'_>,
        keys: &[SearchKey<'_>],
        uid: bool,
    ) -> Reply {
        let algorithm = match algorithm {
            ThreadingAlgorithm::OrderedSubject => ThreadAlgorithm::OrderedSubject,
            ThreadingAlgorithm::References => ThreadAlgorithm::References,
            ThreadingAlgorithm::Other(_) => return Reply::bad("Unsupported threading algorithm"),
        };
        let (records, matched, _) = match self.run_search(Some(charset), keys, true).await {
            Ok(result) => result,
            Err(reply) => return reply,
        };
        let threads =
            match postkeep_search::thread(self.store(), &records, &matched, algorithm).await {
                Ok(threads) => threads,
                Err(err) => {
                    warn!(error = %err, "thread failed");
                    return Reply::no("Threading failed; try again").code("SERVERBUG");
                }
            };
        let mut line = String::from("* THREAD ");
        for node in &threads {
            let number = |index: usize| self.number_of(records[index].entry.uid, uid);
            line.push('(');
            render_thread(node, &number, &mut line);
            line.push(')');
        }
        self.out.extend_from_slice(line.trim_end().as_bytes());
        self.out.extend_from_slice(b"\r\n");
        Reply::ok(if uid {
            "UID THREAD completed"
        } else {
            "THREAD completed"
        })
    }

    /// RFC 9051 §6.3.12 APPEND, streamed: the literal goes through a [`SpoolSink`] (memory up
    /// to 1 MiB, then a sealed spool file), summarised as it arrives.
    pub(super) async fn append_start(&mut self, start: AppendStart) -> io::Result<Flow> {
        let refuse = |session: &mut Self, reply: Reply| {
            session.framer.reject_append();
            let Reply { kind, code, text } = reply;
            match code {
                Some(code) => {
                    respond::line_with_code(&mut session.out, Some(&start.tag), kind, &code, &text)
                }
                None => respond::tagged(
                    &mut session.out,
                    Some(&start.tag),
                    super::kind_of(kind),
                    None,
                    &text,
                ),
            }
            Ok(Flow::Continue)
        };
        if self.account.is_none() {
            return refuse(self, Reply::bad("Log in first"));
        }
        let name = match self.mailbox_name(&start.mailbox) {
            Ok(name) => name,
            Err(reply) => return refuse(self, reply),
        };
        let mailbox = match self.find_mailbox(&name).await {
            Ok(mailbox) => mailbox,
            Err(reply) if reply.code.as_deref() == Some("NONEXISTENT") => {
                return refuse(self, Reply::no("Mailbox does not exist").code("TRYCREATE"))
            }
            Err(reply) => return refuse(self, reply),
        };
        if u64::from(start.length) > self.server.settings.append_limit {
            return refuse(self, Reply::no("Message too large").code("TOOBIG"));
        }
        if let Err(reply) = self.check_quota(u64::from(start.length)).await {
            return refuse(self, reply);
        }
        let (flags, keywords) = match split_flags(&start.flags) {
            Ok(split) => split,
            Err(message) => return refuse(self, Reply::bad(message)),
        };
        let internal_date = start
            .date
            .map(|d| d.as_ref().timestamp())
            .unwrap_or_else(|| chrono::Utc::now().timestamp());
        let _ = start.binary;
        self.append = Some(Append {
            tag: start.tag,
            mailbox,
            flags,
            keywords,
            internal_date,
            sink: SpoolSink::new(Arc::clone(self.store())),
            failed: false,
        });
        if start.sync {
            self.out.extend_from_slice(b"+ Ready for literal data\r\n");
            self.flush().await?;
        }
        Ok(Flow::Continue)
    }

    pub(super) async fn append_chunk(&mut self, bytes: &[u8]) -> io::Result<Flow> {
        if let Some(append) = self.append.as_mut().filter(|a| !a.failed) {
            if let Err(err) = append.sink.write(bytes).await {
                warn!(error = %err, "APPEND spool failed");
                append.failed = true;
            }
        }
        Ok(Flow::Continue)
    }

    pub(super) async fn append_done(&mut self) -> io::Result<Flow> {
        let Some(append) = self.append.take() else {
            return Ok(Flow::Continue);
        };
        let tag = append.tag.clone();
        let reply = self.finish_append(append).await;
        self.finish(&tag, reply, true).await
    }

    async fn finish_append(&mut self, append: Append) -> Reply {
        if append.failed {
            return Reply::no("Cannot store the message; try again").code("SERVERBUG");
        }
        let received = match append.sink.finish().await {
            Ok(received) => received,
            Err(err) => {
                warn!(error = %err, "APPEND spool failed");
                return Reply::no("Cannot store the message; try again").code("SERVERBUG");
            }
        };
        let store = self.store();
        let flags = Flag::from_bits(append.flags);
        let prepared = match store
            .prepare(
                self.account_id(),
                append.mailbox.id,
                &received.bytes,
                &received.summary,
                append.internal_date,
                &flags,
            )
            .await
        {
            Ok(prepared) => prepared.with_keywords(append.keywords),
            Err(err) => return store_failure(&err),
        };
        match store.commit(vec![prepared]).await {
            Ok(appended) => match appended.first() {
                Some(done) => Reply::ok("APPEND completed").code(format!(
                    "APPENDUID {} {}",
                    append.mailbox.uid_validity, done.uid
                )),
                None => Reply::no("Cannot store the message; try again").code("SERVERBUG"),
            },
            Err(err) => store_failure(&err),
        }
    }
}

/// RFC 9051 §2.3.2: system flags as bits, keywords as given; `\Recent` and unknown system
/// flags cannot be stored.
fn split_flags(flags: &[WireFlag<'_>]) -> Result<(u32, Vec<String>), &'static str> {
    let mut bits = 0;
    let mut keywords: Vec<String> = Vec::new();
    for flag in flags {
        match flag {
            WireFlag::Seen => bits |= Flag::Seen.bit(),
            WireFlag::Answered => bits |= Flag::Answered.bit(),
            WireFlag::Flagged => bits |= Flag::Flagged.bit(),
            WireFlag::Deleted => bits |= Flag::Deleted.bit(),
            WireFlag::Draft => bits |= Flag::Draft.bit(),
            WireFlag::Keyword(atom) => {
                let keyword = atom.as_ref();
                if !keywords.iter().any(|k| k.eq_ignore_ascii_case(keyword)) {
                    keywords.push(keyword.to_owned());
                }
            }
            WireFlag::Extension(_) => return Err("Unknown system flag"),
        }
    }
    Ok((bits, keywords))
}

fn charset_name(charset: &Charset<'_>) -> String {
    match charset {
        Charset::Atom(atom) => atom.as_ref().to_owned(),
        Charset::Quoted(quoted) => quoted.as_ref().to_owned(),
    }
}

fn sort_key(key: &imap_types::extensions::sort::SortKey) -> SortKey {
    use imap_types::extensions::sort::SortKey as K;
    match key {
        K::Arrival => SortKey::Arrival,
        K::Cc => SortKey::Cc,
        K::Date => SortKey::Date,
        K::From => SortKey::From,
        K::Size => SortKey::Size,
        K::Subject => SortKey::Subject,
        K::To => SortKey::To,
        K::DisplayFrom => SortKey::DisplayFrom,
        K::DisplayTo => SortKey::DisplayTo,
    }
}

/// RFC 5256 §4 thread syntax: a chain of single children as `a b c`, several children as
/// nested `(..)(..)`; dummy nodes (missing parents) print nothing of their own.
fn render_thread(node: &ThreadNode, number: &dyn Fn(usize) -> u32, out: &mut String) {
    let mut node = node;
    loop {
        if let Some(index) = node.item {
            if !out.ends_with('(') {
                out.push(' ');
            }
            out.push_str(&number(index).to_string());
        }
        match node.children.as_slice() {
            [] => return,
            [only] if node.item.is_some() => node = only,
            children => {
                if !out.ends_with('(') {
                    out.push(' ');
                }
                for child in children {
                    out.push('(');
                    render_thread(child, number, out);
                    out.push(')');
                }
                return;
            }
        }
    }
}

/// `uids` in the batches a FETCH loads them in: [`FETCH_FIRST_BATCHES`], then [`FETCH_BATCH`].
fn fetch_batches(uids: &[u32]) -> impl Iterator<Item = &[u32]> {
    let mut rest = uids;
    let mut sizes = FETCH_FIRST_BATCHES.into_iter();
    std::iter::from_fn(move || {
        let size = sizes.next().unwrap_or(FETCH_BATCH).min(rest.len());
        let (batch, after) = rest.split_at(size);
        rest = after;
        (!batch.is_empty()).then_some(batch)
    })
}

/// One FETCH command's loading of messages, batch by batch.
struct FetchLoad {
    store: Arc<MailStore>,
    mailbox: MailboxId,
    request: Arc<FetchRequest>,
    changed_since: Option<u64>,
}

/// A batch's records, each with what the request reads of its summary.
type LoadedBatch = Vec<(EntryRecord, Opened)>;

impl FetchLoad {
    /// Loads one batch on its own task, so it proceeds while the previous batch is written.
    fn spawn(&self, uids: &[u32]) -> JoinHandle<Result<LoadedBatch, StoreError>> {
        let (store, request) = (Arc::clone(&self.store), Arc::clone(&self.request));
        let (mailbox, changed_since) = (self.mailbox, self.changed_since);
        let ranges: Vec<_> = uids.iter().map(|&u| u..=u).collect();
        tokio::spawn(async move {
            let records = store
                .entry_records(mailbox, &ranges, request.record_parts())
                .await?;
            let mut loaded = Vec::with_capacity(records.len());
            // RFC 7162 §3.1.4.1: CHANGEDSINCE leaves out what has not changed since.
            for record in records
                .into_iter()
                .filter(|r| changed_since.is_none_or(|since| r.entry.modseq > since))
            {
                let opened = Opened::load(&store, &record, &request).await?;
                loaded.push((record, opened));
            }
            Ok(loaded)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(item: usize) -> ThreadNode {
        ThreadNode {
            item: Some(item),
            children: Vec::new(),
        }
    }

    fn render(nodes: &[ThreadNode]) -> String {
        let mut out = String::new();
        for node in nodes {
            out.push('(');
            render_thread(node, &|i| u32::try_from(i).unwrap(), &mut out);
            out.push(')');
        }
        out
    }

    #[test]
    fn fetch_batches_start_small_and_cover_every_uid_once_in_order() {
        let uids: Vec<u32> = (1..=1000).collect();
        let sizes: Vec<usize> = fetch_batches(&uids).map(<[u32]>::len).collect();
        assert_eq!(sizes, [16, 64, 128, 256, 256, 256, 24]);
        assert_eq!(
            fetch_batches(&uids).flatten().copied().collect::<Vec<_>>(),
            uids
        );
        assert_eq!(
            fetch_batches(&uids[..20])
                .map(<[u32]>::len)
                .collect::<Vec<_>>(),
            [16, 4]
        );
        assert_eq!(fetch_batches(&[]).count(), 0);
    }

    #[test]
    fn thread_syntax_matches_rfc_5256_examples() {
        // RFC 5256 §4: (2)(3 6 (4 23)(44 7 96))
        let tree = ThreadNode {
            item: Some(3),
            children: vec![ThreadNode {
                item: Some(6),
                children: vec![
                    ThreadNode {
                        item: Some(4),
                        children: vec![leaf(23)],
                    },
                    ThreadNode {
                        item: Some(44),
                        children: vec![ThreadNode {
                            item: Some(7),
                            children: vec![leaf(96)],
                        }],
                    },
                ],
            }],
        };
        assert_eq!(render(&[leaf(2), tree]), "(2)(3 6 (4 23)(44 7 96))");
    }

    #[test]
    fn dummy_parent_prints_only_its_children() {
        let dummy = ThreadNode {
            item: None,
            children: vec![leaf(3), leaf(5)],
        };
        assert_eq!(render(&[dummy]), "((3)(5))");
    }

    #[test]
    fn recent_and_unknown_system_flags_are_refused() {
        let flags = [
            WireFlag::Seen,
            WireFlag::Keyword("$Junk".try_into().unwrap()),
        ];
        assert_eq!(
            split_flags(&flags).unwrap(),
            (Flag::Seen.bit(), vec!["$Junk".to_owned()])
        );
        let recent = [WireFlag::try_from("\\Recent").unwrap()];
        assert!(split_flags(&recent).is_err());
    }
}
