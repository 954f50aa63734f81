//! Mailbox commands: SELECT/EXAMINE (RFC 9051 §6.3.2–3, RFC 7162 CONDSTORE/QRESYNC), CREATE
//! (RFC 6154 USE), DELETE, RENAME, (UN)SUBSCRIBE, LIST/LSUB (RFC 5258 LIST-EXTENDED, RFC 5819
//! LIST-STATUS, RFC 6154 SPECIAL-USE), STATUS (RFC 8438 SIZE, RFC 8474 MAILBOXID, RFC 7889
//! APPENDLIMIT), CLOSE/UNSELECT and QUOTA (RFC 9208).

use std::collections::BTreeSet;

use imap_types::command::SelectParameter;
use imap_types::mailbox::{ListMailbox, Mailbox as WireMailbox};
use imap_types::status::StatusDataItemName;
use postkeep_imap_proto::ext::{ListExt, StatusExt};
use postkeep_store::{
    Flag, FlagChange, Mailbox, MailboxRole, MailboxSnapshot, RecordParts, StoreError,
    HIERARCHY_SEPARATOR,
};
use tracing::warn;

use super::sync::{report_expunges, write_flags_fetch};
use super::{Reply, Selected, Session, View};
use crate::names;
use crate::respond;

/// Keywords every mailbox offers in FLAGS even before any message carries them.
const COMMON_KEYWORDS: [&str; 5] = ["$Forwarded", "$Junk", "$NotJunk", "$MDNSent", "$Phishing"];

impl Session {
    pub(super) fn mailbox_name(&self, name: &WireMailbox<'_>) -> Result<String, Reply> {
        names::decode(name, self.enabled.utf8).map_err(|bad| Reply::bad(bad.0))
    }

    pub(super) async fn find_mailbox(&self, name: &str) -> Result<Mailbox, Reply> {
        match self
            .store()
            .meta()
            .mailbox_by_name(self.account_id(), name)
            .await
        {
            Ok(Some(mailbox)) => Ok(mailbox),
            Ok(None) => Err(Reply::no("Mailbox does not exist").code("NONEXISTENT")),
            Err(err) => Err(store_failure(&err)),
        }
    }

    pub(super) async fn select(
        &mut self,
        name: &WireMailbox<'_>,
        params: Vec<SelectParameter>,
        read_only: bool,
    ) -> Reply {
        // RFC 9051 §6.3.2: the current mailbox is deselected even if the new SELECT fails.
        if self.selected.take().is_some() {
            respond::line_with_code(
                &mut self.out,
                None,
                "OK",
                "CLOSED",
                "Previous mailbox closed",
            );
        }
        let name = match self.mailbox_name(name) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        let mut qresync = None;
        for param in params {
            match param {
                SelectParameter::CondStore => self.enabled.condstore = true,
                SelectParameter::QResync {
                    uid_validity,
                    mod_sequence_value,
                    known_uids,
                    ..
                } => {
                    if !self.enabled.qresync {
                        return Reply::bad("ENABLE QRESYNC first (RFC 7162 section 3.2.5)");
                    }
                    qresync = Some((uid_validity.get(), mod_sequence_value.get(), known_uids));
                }
            }
        }
        let mut mailbox = match self.find_mailbox(&name).await {
            Ok(mailbox) => mailbox,
            Err(reply) => return reply,
        };
        // Subscribe before reading, and read the mailbox row before its entries: a change
        // committed in between is then reported by the next sync rather than lost.
        let watch = self.store().watch(mailbox.id);
        if let Ok(Some(fresh)) = self.store().meta().mailbox_by_id(mailbox.id).await {
            mailbox = fresh;
        }
        let snapshot = match self.store().meta().mailbox_snapshot(mailbox.id).await {
            Ok(snapshot) => snapshot,
            Err(err) => return store_failure(&err),
        };
        self.write_select_data(&mailbox, &snapshot, read_only);
        let view = View::new(snapshot.uids);
        let mut selected = Selected {
            known_modseq: mailbox.highest_modseq,
            mailbox,
            read_only,
            view,
            watch,
            saved: None,
            own_modseqs: Vec::new(),
            deferred_expunges: Vec::new(),
        };
        if let Some((validity, since, known)) = qresync {
            if validity == selected.mailbox.uid_validity {
                self.qresync_select(&mut selected, since, known.as_ref())
                    .await;
            }
        }
        self.selected = Some(selected);
        if read_only {
            Reply::ok("EXAMINE completed").code("READ-ONLY")
        } else {
            Reply::ok("SELECT completed").code("READ-WRITE")
        }
    }

    fn write_select_data(
        &mut self,
        mailbox: &Mailbox,
        snapshot: &MailboxSnapshot,
        read_only: bool,
    ) {
        let mut keywords: BTreeSet<&str> = COMMON_KEYWORDS.into_iter().collect();
        keywords.extend(snapshot.keywords.iter().map(String::as_str));
        let keywords: Vec<&str> = keywords.into_iter().collect();
        let system = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
        let out = &mut self.out;
        out.extend_from_slice(format!("* {} EXISTS\r\n", snapshot.uids.len()).as_bytes());
        if !self.enabled.rev2 {
            out.extend_from_slice(b"* 0 RECENT\r\n");
        }
        out.extend_from_slice(format!("* FLAGS ({system} {})\r\n", keywords.join(" ")).as_bytes());
        let permanent = if read_only {
            String::new()
        } else {
            format!("{system} {} \\*", keywords.join(" "))
        };
        respond::line_with_code(
            out,
            None,
            "OK",
            &format!("PERMANENTFLAGS ({permanent})"),
            "Flags permitted",
        );
        if !self.enabled.rev2 {
            let first_unseen = snapshot
                .first_unseen
                .and_then(|uid| snapshot.uids.binary_search(&uid).ok());
            if let Some(index) = first_unseen {
                let code = format!("UNSEEN {}", index + 1);
                respond::line_with_code(out, None, "OK", &code, "First unseen");
            }
        }
        let lines = [
            format!("UIDVALIDITY {}", mailbox.uid_validity),
            format!("UIDNEXT {}", mailbox.uid_next),
            format!("HIGHESTMODSEQ {}", mailbox.highest_modseq.max(1)),
            format!("MAILBOXID ({})", mailbox.object_id),
        ];
        for code in lines {
            respond::line_with_code(out, None, "OK", &code, "Ok");
        }
        if self.enabled.rev2 {
            // RFC 9051 §6.3.2: the canonical name in a LIST response.
            out.extend_from_slice(b"* LIST () \"/\" ");
            respond::astring(out, names::encode(&mailbox.name, true).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// RFC 7162 §3.2.5.1: VANISHED (EARLIER) and changed flags since the client's MODSEQ.
    async fn qresync_select(
        &mut self,
        selected: &mut Selected,
        since: u64,
        known: Option<&imap_types::sequence::SequenceSet>,
    ) {
        let changes = match self
            .store()
            .meta()
            .changes_since(selected.mailbox.id, since)
            .await
        {
            Ok(changes) => changes,
            Err(err) => {
                warn!(error = %err, "QRESYNC: cannot read changes");
                return;
            }
        };
        let vanished: Vec<u32> = match known {
            Some(set) => {
                let ranges = crate::query::uid_ranges(set, u32::MAX);
                changes
                    .vanished
                    .iter()
                    .copied()
                    .filter(|uid| ranges.iter().any(|r| r.contains(uid)))
                    .collect()
            }
            None => changes.vanished.clone(),
        };
        if !vanished.is_empty() {
            self.out.extend_from_slice(
                format!(
                    "* VANISHED (EARLIER) {}\r\n",
                    respond::number_set(&vanished)
                )
                .as_bytes(),
            );
        }
        for entry in &changes.changed {
            if let Some(seq) = selected.view.seq_of(entry.uid) {
                write_flags_fetch(&mut self.out, seq, entry, true);
            }
        }
    }

    pub(super) async fn create(
        &mut self,
        name: &WireMailbox<'_>,
        uses: Option<Vec<String>>,
    ) -> Reply {
        let name = match self.mailbox_name(name) {
            Ok(name) => name.trim_end_matches(HIERARCHY_SEPARATOR).to_owned(),
            Err(reply) => return reply,
        };
        if name.eq_ignore_ascii_case("INBOX") {
            return Reply::no("INBOX always exists").code("ALREADYEXISTS");
        }
        let role = match uses.as_deref() {
            None | Some([]) => None,
            Some([one]) => match role_of(one) {
                Some(role) => Some(role),
                None => return Reply::no("Unsupported special-use attribute").code("USEATTR"),
            },
            Some(_) => return Reply::no("One special-use attribute per mailbox").code("USEATTR"),
        };
        if let Ok(Some(_)) = self
            .store()
            .meta()
            .mailbox_by_name(self.account_id(), &name)
            .await
        {
            return Reply::no("Mailbox already exists").code("ALREADYEXISTS");
        }
        // RFC 9051 §6.3.4: create the superior hierarchy the name needs.
        if let Err(reply) = self.create_parents(&name).await {
            return reply;
        }
        match self
            .store()
            .create_mailbox(self.account_id(), &name, role)
            .await
        {
            Ok(_) => Reply::ok("CREATE completed"),
            Err(StoreError::Conflict(_)) if role.is_some() => {
                Reply::no("Another mailbox already has that special use").code("USEATTR")
            }
            Err(StoreError::Conflict(_)) => {
                Reply::no("Mailbox already exists").code("ALREADYEXISTS")
            }
            Err(StoreError::Invalid(_)) => Reply::no("Invalid mailbox name").code("CANNOT"),
            Err(err) => store_failure(&err),
        }
    }

    async fn create_parents(&self, name: &str) -> Result<(), Reply> {
        for parent in names::ancestors(name) {
            let exists = self
                .store()
                .meta()
                .mailbox_by_name(self.account_id(), parent)
                .await
                .map_err(|err| store_failure(&err))?
                .is_some();
            if !exists {
                match self
                    .store()
                    .create_mailbox(self.account_id(), parent, None)
                    .await
                {
                    Ok(_) | Err(StoreError::Conflict(_)) => {}
                    Err(err) => return Err(store_failure(&err)),
                }
            }
        }
        Ok(())
    }

    pub(super) async fn delete(&mut self, name: &WireMailbox<'_>) -> Reply {
        let name = match self.mailbox_name(name) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        if name == "INBOX" {
            return Reply::no("INBOX cannot be deleted").code("CANNOT");
        }
        let mailbox = match self.find_mailbox(&name).await {
            Ok(mailbox) => mailbox,
            Err(reply) => return reply,
        };
        if self
            .selected
            .as_ref()
            .is_some_and(|s| s.mailbox.id == mailbox.id)
        {
            self.selected = None;
        }
        match self.store().delete_mailbox(mailbox.id).await {
            Ok(()) => Reply::ok("DELETE completed"),
            Err(err) => store_failure(&err),
        }
    }

    pub(super) async fn rename(&mut self, from: &WireMailbox<'_>, to: &WireMailbox<'_>) -> Reply {
        let (from, to) = match (self.mailbox_name(from), self.mailbox_name(to)) {
            (Ok(from), Ok(to)) => (from, to.trim_end_matches(HIERARCHY_SEPARATOR).to_owned()),
            (Err(reply), _) | (_, Err(reply)) => return reply,
        };
        if let Err(reply) = self.find_mailbox(&from).await {
            return reply;
        }
        if to == "INBOX"
            || matches!(
                self.store()
                    .meta()
                    .mailbox_by_name(self.account_id(), &to)
                    .await,
                Ok(Some(_))
            )
        {
            return Reply::no("Target mailbox already exists").code("ALREADYEXISTS");
        }
        if let Err(reply) = self.create_parents(&to).await {
            return reply;
        }
        match self
            .store()
            .rename_mailbox(self.account_id(), &from, &to)
            .await
        {
            Ok(_) => Reply::ok("RENAME completed"),
            Err(StoreError::Conflict(_)) => {
                Reply::no("Target mailbox already exists").code("ALREADYEXISTS")
            }
            Err(StoreError::Invalid(_)) => {
                Reply::no("Cannot rename a mailbox into itself").code("CANNOT")
            }
            Err(err) => store_failure(&err),
        }
    }

    pub(super) async fn subscribe(&mut self, name: &WireMailbox<'_>, on: bool) -> Reply {
        let name = match self.mailbox_name(name) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        match self
            .store()
            .meta()
            .set_subscribed(self.account_id(), &name, on)
            .await
        {
            Ok(()) => Reply::ok(if on {
                "SUBSCRIBE completed"
            } else {
                "UNSUBSCRIBE completed"
            }),
            Err(err) => store_failure(&err),
        }
    }

    /// LIST (with RFC 5258 options when `ext` is set) or LSUB.
    pub(super) async fn list(
        &mut self,
        reference: &WireMailbox<'_>,
        pattern: &ListMailbox<'_>,
        ext: Option<ListExt>,
        lsub: bool,
    ) -> Reply {
        let utf8 = self.enabled.utf8;
        let decode_raw =
            |bytes: &[u8]| names::decode_text(bytes, utf8).map_err(|bad| Reply::bad(bad.0));
        let reference = match reference {
            WireMailbox::Inbox => "INBOX".to_owned(),
            WireMailbox::Other(other) => match decode_raw(other.as_ref()) {
                Ok(text) => text,
                Err(reply) => return reply,
            },
        };
        let ext = ext.unwrap_or_default();
        let raw_patterns: Vec<Vec<u8>> = if ext.patterns.is_empty() {
            vec![list_pattern_bytes(pattern)]
        } else {
            ext.patterns.clone()
        };
        let mut patterns = Vec::new();
        for raw in &raw_patterns {
            match decode_raw(raw) {
                Ok(text) => patterns.push(text),
                Err(reply) => return reply,
            }
        }
        // RFC 9051 §6.3.9: an empty pattern asks for the hierarchy delimiter.
        if patterns.len() == 1 && patterns[0].is_empty() {
            let verb = if lsub { "LSUB" } else { "LIST" };
            self.out
                .extend_from_slice(format!("* {verb} (\\Noselect) \"/\" \"\"\r\n").as_bytes());
            return Reply::ok(format!("{verb} completed"));
        }
        let account = self.account_id();
        let (mailboxes, subscribed) = match (
            self.store().meta().list_mailboxes(account).await,
            self.store().meta().subscriptions(account).await,
        ) {
            (Ok(m), Ok(s)) => (m, s.into_iter().collect::<BTreeSet<String>>()),
            (Err(err), _) | (_, Err(err)) => return store_failure(&err),
        };
        let listing = Listing::new(&mailboxes, &subscribed);
        let full: Vec<String> = patterns
            .iter()
            .map(|p| names::join_reference(&reference, p))
            .collect();
        let matches_any = |name: &str| full.iter().any(|p| names::matches(p, name));
        let only_subscribed = lsub || ext.select_subscribed;
        let mut status_targets = Vec::new();
        for name in listing.all_names() {
            let exists = listing.exists(name);
            let is_subscribed = subscribed.contains(name);
            let mut childinfo = false;
            if only_subscribed && !is_subscribed {
                // RFC 5258 §3.5 RECURSIVEMATCH: a matching parent of a subscribed child.
                if ext.select_recursive_match
                    && matches_any(name)
                    && listing.has_subscribed_descendant(name)
                {
                    childinfo = true;
                } else {
                    continue;
                }
            }
            if !matches_any(name) {
                continue;
            }
            let mailbox = listing.mailbox(name);
            if ext.select_special_use
                && mailbox
                    .and_then(|m| m.role)
                    .is_none_or(|r| r == MailboxRole::Inbox)
            {
                continue;
            }
            let mut attrs: Vec<&str> = Vec::new();
            if !exists {
                attrs.push(if self.enabled.rev2 {
                    "\\NonExistent"
                } else {
                    "\\Noselect"
                });
            }
            if !lsub {
                attrs.push(if listing.has_children(name) {
                    "\\HasChildren"
                } else {
                    "\\HasNoChildren"
                });
            }
            if (ext.return_subscribed || ext.select_subscribed) && is_subscribed && !lsub {
                attrs.push("\\Subscribed");
            }
            if let Some(role) = mailbox.and_then(|m| m.role) {
                if !role.special_use().is_empty() {
                    attrs.push(role.special_use());
                }
            }
            let verb = if lsub { "LSUB" } else { "LIST" };
            self.out
                .extend_from_slice(format!("* {verb} ({}) \"/\" ", attrs.join(" ")).as_bytes());
            respond::astring(&mut self.out, names::encode(name, utf8).as_bytes());
            if childinfo {
                self.out
                    .extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            self.out.extend_from_slice(b"\r\n");
            if exists {
                status_targets.push(name.to_owned());
            }
        }
        // RFC 5819 §2: a STATUS response follows each selectable mailbox listed.
        if let Some((items, extra)) = &ext.return_status {
            for name in status_targets {
                if let Ok(mailbox) = self.find_mailbox(&name).await {
                    if let Err(reply) = self.write_status(&mailbox, items, extra).await {
                        return reply;
                    }
                }
            }
        }
        Reply::ok(if lsub {
            "LSUB completed"
        } else {
            "LIST completed"
        })
    }

    pub(super) async fn status(
        &mut self,
        name: &WireMailbox<'_>,
        items: &[StatusDataItemName],
        extra: &[StatusExt],
    ) -> Reply {
        let name = match self.mailbox_name(name) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        let mailbox = match self.find_mailbox(&name).await {
            Ok(mailbox) => mailbox,
            Err(reply) => return reply,
        };
        match self.write_status(&mailbox, items, extra).await {
            Ok(()) => Reply::ok("STATUS completed"),
            Err(reply) => reply,
        }
    }

    async fn write_status(
        &mut self,
        mailbox: &Mailbox,
        items: &[StatusDataItemName],
        extra: &[StatusExt],
    ) -> Result<(), Reply> {
        let counts = self
            .store()
            .meta()
            .mailbox_counts(mailbox.id)
            .await
            .map_err(|err| store_failure(&err))?;
        let mut parts = Vec::new();
        for item in items {
            parts.push(match item {
                StatusDataItemName::Messages => format!("MESSAGES {}", counts.messages),
                StatusDataItemName::UidNext => format!("UIDNEXT {}", mailbox.uid_next),
                StatusDataItemName::UidValidity => format!("UIDVALIDITY {}", mailbox.uid_validity),
                StatusDataItemName::Unseen => format!("UNSEEN {}", counts.unseen),
                StatusDataItemName::Deleted => format!("DELETED {}", counts.deleted),
                StatusDataItemName::DeletedStorage => {
                    format!("DELETED-STORAGE {}", self.deleted_storage(mailbox).await?)
                }
                StatusDataItemName::Recent => "RECENT 0".to_owned(),
                StatusDataItemName::Size => format!("SIZE {}", counts.size),
                StatusDataItemName::HighestModSeq => {
                    format!("HIGHESTMODSEQ {}", mailbox.highest_modseq.max(1))
                }
            });
        }
        for item in extra {
            parts.push(match item {
                StatusExt::MailboxId => format!("MAILBOXID ({})", mailbox.object_id),
                StatusExt::AppendLimit => {
                    format!("APPENDLIMIT {}", self.server.settings.append_limit)
                }
            });
        }
        self.out.extend_from_slice(b"* STATUS ");
        respond::astring(
            &mut self.out,
            names::encode(&mailbox.name, self.enabled.utf8).as_bytes(),
        );
        self.out
            .extend_from_slice(format!(" ({})\r\n", parts.join(" ")).as_bytes());
        Ok(())
    }

    /// RFC 9208 §4.2 DELETED-STORAGE: KiB an EXPUNGE would free.
    async fn deleted_storage(&self, mailbox: &Mailbox) -> Result<u64, Reply> {
        let records = self
            .store()
            .entry_records(mailbox.id, &[1..=u32::MAX], RecordParts::METADATA)
            .await
            .map_err(|err| store_failure(&err))?;
        let bytes: u64 = records
            .iter()
            .filter(|r| r.entry.flags & Flag::Deleted.bit() != 0)
            .map(|r| r.record.wire_size)
            .sum();
        Ok(bytes.div_ceil(1024))
    }

    /// CLOSE (expunging \Deleted silently when read-write, RFC 9051 §6.4.1) or UNSELECT
    /// (RFC 3691).
    pub(super) async fn close(&mut self, expunge: bool) -> Reply {
        let Some(selected) = self.selected.take() else {
            return Reply::bad("No mailbox selected");
        };
        if expunge && !selected.read_only {
            if let Err(err) = self.store().expunge(selected.mailbox.id, None, true).await {
                return store_failure(&err);
            }
        }
        Reply::ok(if expunge {
            "CLOSE completed"
        } else {
            "UNSELECT completed"
        })
    }

    /// RFC 9208 §4.3: one root, "", for the whole account.
    pub(super) async fn get_quota_root(&mut self, name: &WireMailbox<'_>) -> Reply {
        let name = match self.mailbox_name(name) {
            Ok(name) => name,
            Err(reply) => return reply,
        };
        let mailbox = match self.find_mailbox(&name).await {
            Ok(mailbox) => mailbox,
            Err(reply) => return reply,
        };
        let usage = match self.store().quota_usage(self.account_id()).await {
            Ok(usage) => usage,
            Err(err) => return store_failure(&err),
        };
        self.out.extend_from_slice(b"* QUOTAROOT ");
        respond::astring(
            &mut self.out,
            names::encode(&mailbox.name, self.enabled.utf8).as_bytes(),
        );
        if let Some(limit) = usage.limit_bytes {
            self.out.extend_from_slice(b" \"\"\r\n");
            self.write_quota(usage.bytes, limit);
        } else {
            self.out.extend_from_slice(b"\r\n");
        }
        Reply::ok("GETQUOTAROOT completed")
    }

    pub(super) async fn get_quota(&mut self, root: &[u8]) -> Reply {
        if !root.is_empty() {
            return Reply::no("No such quota root").code("NONEXISTENT");
        }
        match self.store().quota_usage(self.account_id()).await {
            Ok(usage) => match usage.limit_bytes {
                Some(limit) => {
                    self.write_quota(usage.bytes, limit);
                    Reply::ok("GETQUOTA completed")
                }
                None => Reply::no("No quota set for this account").code("NONEXISTENT"),
            },
            Err(err) => store_failure(&err),
        }
    }

    /// STORAGE is in units of 1024 octets (RFC 9208 §5.1).
    fn write_quota(&mut self, used: u64, limit: u64) {
        self.out.extend_from_slice(
            format!(
                "* QUOTA \"\" (STORAGE {} {})\r\n",
                used.div_ceil(1024),
                limit / 1024
            )
            .as_bytes(),
        );
    }

    /// Sets \Seen for FETCH of a body (RFC 9051 §6.4.5), returning the entries it changed.
    pub(super) async fn mark_seen(&mut self, uids: &[u32]) -> Vec<postkeep_store::MessageEntry> {
        let Some(selected) = self.selected.as_ref().filter(|s| !s.read_only) else {
            return Vec::new();
        };
        let change = FlagChange {
            mailbox_id: selected.mailbox.id,
            uids,
            op: postkeep_store::FlagOp::Add,
            flags: Flag::Seen.bit(),
            keywords: &[],
            unchanged_since: None,
        };
        match self.store().update_flags(&change).await {
            Ok(outcome) => {
                if let Some(selected) = self.selected.as_mut() {
                    selected.own_modseqs.push(outcome.highest_modseq);
                }
                outcome.updated
            }
            Err(err) => {
                warn!(error = %err, "cannot set \\Seen");
                Vec::new()
            }
        }
    }

    /// Expunges reported right away (EXPUNGE, MOVE): renumbers the view.
    pub(super) fn report_own_expunges(&mut self, uids: &[u32]) {
        let qresync = self.enabled.qresync;
        if let Some(selected) = self.selected.as_mut() {
            report_expunges(&mut self.out, &mut selected.view, uids, qresync);
        }
    }
}

/// Mailboxes and subscriptions of an account, with the names LIST must also show: parents that
/// do not exist but have children, and subscribed names (RFC 9051 §6.3.9).
struct Listing<'a> {
    by_name: std::collections::BTreeMap<&'a str, &'a Mailbox>,
    names: BTreeSet<&'a str>,
    subscribed: &'a BTreeSet<String>,
}

impl<'a> Listing<'a> {
    fn new(mailboxes: &'a [Mailbox], subscribed: &'a BTreeSet<String>) -> Self {
        let by_name: std::collections::BTreeMap<&str, &Mailbox> =
            mailboxes.iter().map(|m| (m.name.as_str(), m)).collect();
        let mut names: BTreeSet<&str> = by_name.keys().copied().collect();
        for name in by_name.keys() {
            names.extend(names::ancestors(name));
        }
        for name in subscribed {
            names.insert(name.as_str());
            names.extend(names::ancestors(name));
        }
        Self {
            by_name,
            names,
            subscribed,
        }
    }

    /// INBOX first, then by name: the order clients display.
    fn all_names(&self) -> Vec<&'a str> {
        let mut names: Vec<&str> = self.names.iter().copied().collect();
        names.sort_by_key(|name| (*name != "INBOX", *name));
        names
    }

    fn exists(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    fn mailbox(&self, name: &str) -> Option<&'a Mailbox> {
        self.by_name.get(name).copied()
    }

    fn has_children(&self, name: &str) -> bool {
        // Names are sorted: the first one at or after `name/` is a child if any is.
        let prefix = format!("{name}{HIERARCHY_SEPARATOR}");
        self.by_name
            .range::<str, _>((
                std::ops::Bound::Included(prefix.as_str()),
                std::ops::Bound::Unbounded,
            ))
            .next()
            .is_some_and(|(n, _)| n.starts_with(&prefix))
    }

    fn has_subscribed_descendant(&self, name: &str) -> bool {
        let prefix = format!("{name}{HIERARCHY_SEPARATOR}");
        self.subscribed.iter().any(|s| s.starts_with(&prefix))
    }
}

/// The raw bytes of a LIST pattern as sent.
fn list_pattern_bytes(pattern: &ListMailbox<'_>) -> Vec<u8> {
    match pattern {
        ListMailbox::Token(token) => token.as_ref().to_vec(),
        ListMailbox::String(string) => string.as_ref().to_vec(),
    }
}

/// RFC 6154 §2 attribute → role.
fn role_of(attribute: &str) -> Option<MailboxRole> {
    MailboxRole::ALL.into_iter().find(|role| {
        role != &MailboxRole::Inbox && role.special_use().eq_ignore_ascii_case(attribute)
    })
}

/// A store failure as the client sees it: no internals, a code it can act on.
pub(super) fn store_failure(err: &StoreError) -> Reply {
    warn!(error = %err, "store error");
    Reply::no("Temporary server failure; try again").code("SERVERBUG")
}
