//! Telling a session what other sessions (and deliveries) changed in its selected mailbox:
//! EXISTS, FETCH FLAGS, and EXPUNGE or VANISHED (RFC 9051 §7.5.1, RFC 7162 §3.2.10).

use postkeep_store::{Flag, MessageEntry};
use tracing::warn;

use super::{Flow, Session};
use crate::respond;

impl Session {
    /// Reports every change since the last report. `expunge_ok` is false while answering a
    /// FETCH, STORE or SEARCH: expunges are then remembered and reported later. `Err` when the
    /// mailbox is gone (deleted by another session) and the connection must close.
    pub(super) async fn sync(&mut self, expunge_ok: bool) -> Result<(), Flow> {
        let Some(selected) = self.selected.as_mut() else {
            return Ok(());
        };
        // The hub wakes the watch on every commit to this mailbox (and the poller on other
        // processes' commits): unchanged means nothing to report, without a query. Marking it
        // seen before querying loses nothing: a later commit changes it again.
        let pending = !selected.deferred_expunges.is_empty() && expunge_ok;
        if !selected.watch.has_changed().unwrap_or(true) && !pending {
            return Ok(());
        }
        selected.watch.borrow_and_update();
        let (mailbox_id, since) = (selected.mailbox.id, selected.known_modseq);
        let changes = match self.store().meta().changes_since(mailbox_id, since).await {
            Ok(changes) => changes,
            Err(postkeep_store::StoreError::NotFound(_)) => {
                respond::bye(&mut self.out, "Selected mailbox was deleted");
                return Err(Flow::Close);
            }
            Err(err) => {
                // A transient store error: report nothing now, try again at the next command.
                warn!(error = %err, "cannot read mailbox changes");
                return Ok(());
            }
        };
        let (qresync, condstore) = (self.enabled.qresync, self.enabled.condstore);
        let Some(selected) = self.selected.as_mut() else {
            return Ok(());
        };
        selected.known_modseq = selected.known_modseq.max(changes.highest_modseq);
        let mut gone: Vec<u32> = std::mem::take(&mut selected.deferred_expunges);
        gone.extend(
            changes
                .vanished
                .iter()
                .copied()
                .filter(|&uid| selected.view.contains(uid)),
        );
        gone.sort_unstable();
        gone.dedup();

        let known_max = selected.view.max_uid();
        let mut flag_updates: Vec<&MessageEntry> = Vec::new();
        let mut new_uids = Vec::new();
        for entry in &changes.changed {
            if entry.uid > known_max {
                new_uids.push(entry.uid);
            } else if selected.view.contains(entry.uid)
                && !selected.own_modseqs.contains(&entry.modseq)
                && gone.binary_search(&entry.uid).is_err()
            {
                flag_updates.push(entry);
            }
        }
        selected.own_modseqs.clear();

        let out = &mut self.out;
        if expunge_ok {
            report_expunges(out, &mut selected.view, &gone, qresync);
        } else {
            selected.deferred_expunges = gone;
        }
        for entry in flag_updates {
            if let Some(seq) = selected.view.seq_of(entry.uid) {
                write_flags_fetch(out, seq, entry, condstore);
            }
        }
        if !new_uids.is_empty() {
            selected.view.extend(new_uids);
            out.extend_from_slice(format!("* {} EXISTS\r\n", selected.view.len()).as_bytes());
        }
        Ok(())
    }
}

/// EXPUNGE responses renumber as they go (RFC 9051 §7.5.1); VANISHED lists UIDs (RFC 7162).
pub(super) fn report_expunges(
    out: &mut Vec<u8>,
    view: &mut super::View,
    uids: &[u32],
    qresync: bool,
) {
    if uids.is_empty() {
        return;
    }
    if qresync {
        for uid in uids {
            view.remove(*uid);
        }
        out.extend_from_slice(format!("* VANISHED {}\r\n", respond::number_set(uids)).as_bytes());
        return;
    }
    for uid in uids {
        if let Some(seq) = view.remove(*uid) {
            out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
        }
    }
}

/// `* n FETCH (UID u FLAGS (...) [MODSEQ (m)])`: the UID is always included, as QRESYNC
/// requires (RFC 7162 §3.2.4) and every client accepts.
pub(super) fn write_flags_fetch(out: &mut Vec<u8>, seq: u32, entry: &MessageEntry, modseq: bool) {
    out.extend_from_slice(format!("* {seq} FETCH (UID {} FLAGS (", entry.uid).as_bytes());
    out.extend_from_slice(flag_list(entry.flags, &entry.keywords).as_bytes());
    out.push(b')');
    if modseq {
        out.extend_from_slice(format!(" MODSEQ ({})", entry.modseq).as_bytes());
    }
    out.extend_from_slice(b")\r\n");
}

/// System flags then keywords, space separated (RFC 9051 §2.3.2).
pub(crate) fn flag_list(bits: u32, keywords: &[String]) -> String {
    let mut parts: Vec<&str> = Flag::from_bits(bits)
        .into_iter()
        .map(|flag| match flag {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
        })
        .collect();
    parts.extend(keywords.iter().map(String::as_str));
    parts.join(" ")
}
