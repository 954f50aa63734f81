//! The protocol-neutral query and its evaluation in stages, cheapest first
//! (docs/imap-plan.md §3): a three-valued evaluation says either the answer or the cheapest
//! stage that could decide it, so a message is only opened as far as its answer needs.

use std::ops::RangeInclusive;

use chrono::{DateTime, NaiveDate};
use postkeep_store::EntryRecord;

use crate::facts::{AddressField, Facts};
use crate::fold::Needle;

/// A search over one mailbox (RFC 9051 §6.4.4 semantics). String keys are case-insensitive
/// substring matches (both sides Unicode-lowercased); an empty string matches every message,
/// except for [`Query::Header`], where it asks whether the field exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    All,
    And(Vec<Query>),
    Or(Box<Query>, Box<Query>),
    Not(Box<Query>),
    /// UIDs; the caller resolves sequence sets and `*`.
    Uids(Vec<RangeInclusive<u32>>),
    /// Every bit set ([`postkeep_store::Flag`] bits).
    HasFlags(u32),
    /// Every bit clear.
    LacksFlags(u32),
    /// IMAP keyword, compared case-insensitively (RFC 9051 §2.3.2).
    Keyword(String),
    NoKeyword(String),
    /// INTERNALDATE.
    Received(DateCmp),
    /// The Date header field; a message without one matches no `Sent` key.
    Sent(DateCmp),
    /// RFC 8514 SAVEDATE.
    Saved(DateCmp),
    /// RFC822.SIZE (the wire size) greater than.
    Larger(u64),
    /// RFC822.SIZE smaller than.
    Smaller(u64),
    /// RFC 7162 §3.1.5 MODSEQ.
    ModSeqAtLeast(u64),
    /// RFC 8474 §6 EMAILID (the message's id, exact).
    EmailId(String),
    /// RFC 8474 §6 THREADID (exact).
    ThreadId(String),
    /// Address fields: display names (decoded) and `mailbox@host` of the envelope.
    From(String),
    To(String),
    Cc(String),
    Bcc(String),
    /// The decoded subject.
    Subject(String),
    /// Field name, value: the value is searched in the RFC 2047-decoded values of every
    /// occurrence of the field in the message header; `""` means the field exists.
    Header(String, String),
    /// The decoded text of the text/* parts (text/html as its text content).
    Body(String),
    /// The header text (field names and decoded values of every header, MIME parts and
    /// embedded messages included) and the body as [`Query::Body`] sees it.
    Text(String),
}

/// A date comparison, in UTC, disregarding time (RFC 9051 §6.4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateCmp {
    Before(NaiveDate),
    On(NaiveDate),
    Since(NaiveDate),
}

impl DateCmp {
    /// Whether the UTC date of `secs` (unix seconds) satisfies the comparison.
    pub(crate) fn matches(self, secs: i64) -> bool {
        let Some(date) = DateTime::from_timestamp(secs, 0).map(|t| t.date_naive()) else {
            return false;
        };
        match self {
            DateCmp::Before(day) => date < day,
            DateCmp::On(day) => date == day,
            DateCmp::Since(day) => date >= day,
        }
    }
}

/// The stages a key may need beyond the database row, cheapest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// The sealed summary: one AES-GCM open and a JSON parse.
    Summary,
    /// The top-level header block, read from the blob.
    Header,
    /// The whole message, decrypted and parsed.
    Content,
}

/// The outcome of evaluating with what is known so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tri {
    Yes,
    No,
    /// Undecided; loading this stage may decide it.
    Needs(Stage),
}

impl Tri {
    fn from_bool(value: bool) -> Self {
        if value {
            Tri::Yes
        } else {
            Tri::No
        }
    }

    fn not(self) -> Self {
        match self {
            Tri::Yes => Tri::No,
            Tri::No => Tri::Yes,
            needs => needs,
        }
    }
}

/// A compiled [`Query`]: needles folded once, trivial keys decided up front.
pub(crate) enum Node {
    Const(bool),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Row(RowKey),
    Address(AddressField, Needle),
    Subject(Needle),
    Sent(DateCmp),
    /// Field name and value; `None` asks whether the field exists.
    Header(String, Option<Needle>),
    Body(Needle),
    Text(Needle),
}

/// Keys the database row answers.
pub(crate) enum RowKey {
    Uids(Vec<RangeInclusive<u32>>),
    HasFlags(u32),
    LacksFlags(u32),
    Keyword(String),
    Received(DateCmp),
    Saved(DateCmp),
    Larger(u64),
    Smaller(u64),
    ModSeqAtLeast(u64),
    EmailId(String),
    ThreadId(String),
}

impl Node {
    pub(crate) fn compile(query: &Query) -> Node {
        match query {
            Query::All => Node::Const(true),
            Query::And(all) => Node::And(all.iter().map(Node::compile).collect()),
            Query::Or(a, b) => Node::Or(vec![Node::compile(a), Node::compile(b)]),
            Query::Not(inner) => Node::Not(Box::new(Node::compile(inner))),
            Query::Uids(ranges) => Node::Row(RowKey::Uids(ranges.clone())),
            Query::HasFlags(bits) => Node::Row(RowKey::HasFlags(*bits)),
            Query::LacksFlags(bits) => Node::Row(RowKey::LacksFlags(*bits)),
            Query::Keyword(k) => Node::Row(RowKey::Keyword(k.clone())),
            Query::NoKeyword(k) => Node::Not(Box::new(Node::Row(RowKey::Keyword(k.clone())))),
            Query::Received(cmp) => Node::Row(RowKey::Received(*cmp)),
            Query::Saved(cmp) => Node::Row(RowKey::Saved(*cmp)),
            Query::Larger(n) => Node::Row(RowKey::Larger(*n)),
            Query::Smaller(n) => Node::Row(RowKey::Smaller(*n)),
            Query::ModSeqAtLeast(n) => Node::Row(RowKey::ModSeqAtLeast(*n)),
            Query::EmailId(id) => Node::Row(RowKey::EmailId(id.clone())),
            Query::ThreadId(id) => Node::Row(RowKey::ThreadId(id.clone())),
            Query::Sent(cmp) => Node::Sent(*cmp),
            Query::From(s) => text(s, |n| Node::Address(AddressField::From, n)),
            Query::To(s) => text(s, |n| Node::Address(AddressField::To, n)),
            Query::Cc(s) => text(s, |n| Node::Address(AddressField::Cc, n)),
            Query::Bcc(s) => text(s, |n| Node::Address(AddressField::Bcc, n)),
            Query::Subject(s) => text(s, Node::Subject),
            Query::Body(s) => text(s, Node::Body),
            Query::Text(s) => text(s, Node::Text),
            Query::Header(name, value) => {
                let value = (!value.is_empty()).then(|| Needle::new(value));
                Node::Header(name.clone(), value)
            }
        }
    }

    /// True when a key reads the message itself (header block or content), not only the row
    /// and the summary.
    pub(crate) fn reads_message(&self) -> bool {
        match self {
            Node::And(all) | Node::Or(all) => all.iter().any(Node::reads_message),
            Node::Not(inner) => inner.reads_message(),
            Node::Header(..) | Node::Body(_) | Node::Text(_) => true,
            Node::Const(_)
            | Node::Row(_)
            | Node::Address(..)
            | Node::Subject(_)
            | Node::Sent(_) => false,
        }
    }

    /// Evaluates against the row and whatever stages `facts` holds. `And` and `Or` stop at the
    /// first child that decides them; otherwise the cheapest stage any undecided child needs is
    /// asked for.
    pub(crate) fn eval(&self, item: &EntryRecord, facts: &Facts) -> Tri {
        match self {
            Node::Const(value) => Tri::from_bool(*value),
            Node::And(all) => combine(all, item, facts, Tri::No),
            Node::Or(any) => combine(any, item, facts, Tri::Yes),
            Node::Not(inner) => inner.eval(item, facts).not(),
            Node::Row(key) => Tri::from_bool(key.matches(item)),
            Node::Address(field, needle) => match &facts.summary {
                Some(summary) => Tri::from_bool(needle.in_folded(summary.address(*field))),
                None => Tri::Needs(Stage::Summary),
            },
            Node::Subject(needle) => match &facts.summary {
                Some(summary) => Tri::from_bool(needle.in_folded(&summary.subject)),
                None => Tri::Needs(Stage::Summary),
            },
            Node::Sent(cmp) => match &facts.summary {
                Some(summary) => Tri::from_bool(summary.sent.is_some_and(|t| cmp.matches(t))),
                None => Tri::Needs(Stage::Summary),
            },
            Node::Header(name, value) => match facts.fields() {
                Some(fields) => Tri::from_bool(fields.iter().any(|field| {
                    field.name.eq_ignore_ascii_case(name)
                        && value.as_ref().is_none_or(|v| v.in_folded(&field.value))
                })),
                None => Tri::Needs(Stage::Header),
            },
            Node::Body(needle) => match &facts.content {
                Some(content) => Tri::from_bool(needle.in_folded(&content.body_text)),
                None => Tri::Needs(Stage::Content),
            },
            Node::Text(needle) => match &facts.content {
                Some(content) => Tri::from_bool(
                    needle.in_folded(&content.header_text) || needle.in_folded(&content.body_text),
                ),
                None => Tri::Needs(Stage::Content),
            },
        }
    }
}

/// A string key; the empty string is in every text, so it is decided without reading anything.
fn text(value: &str, node: impl FnOnce(Needle) -> Node) -> Node {
    let needle = Needle::new(value);
    if needle.is_empty() {
        Node::Const(true)
    } else {
        node(needle)
    }
}

/// `And` (`decisive` = No) or `Or` (`decisive` = Yes) in three-valued logic.
fn combine(children: &[Node], item: &EntryRecord, facts: &Facts, decisive: Tri) -> Tri {
    let mut needs: Option<Stage> = None;
    for child in children {
        match child.eval(item, facts) {
            Tri::Needs(stage) => needs = Some(needs.map_or(stage, |s| s.min(stage))),
            outcome if outcome == decisive => return decisive,
            _ => {}
        }
    }
    match needs {
        Some(stage) => Tri::Needs(stage),
        None => decisive.not(),
    }
}

impl RowKey {
    fn matches(&self, item: &EntryRecord) -> bool {
        let (entry, record) = (&item.entry, &item.record);
        match self {
            RowKey::Uids(ranges) => ranges.iter().any(|r| r.contains(&entry.uid)),
            RowKey::HasFlags(bits) => entry.flags & bits == *bits,
            RowKey::LacksFlags(bits) => entry.flags & bits == 0,
            RowKey::Keyword(k) => entry
                .keywords
                .iter()
                .any(|have| have.eq_ignore_ascii_case(k)),
            RowKey::Received(cmp) => cmp.matches(record.internal_date),
            RowKey::Saved(cmp) => cmp.matches(entry.save_date),
            RowKey::Larger(n) => record.wire_size > *n,
            RowKey::Smaller(n) => record.wire_size < *n,
            RowKey::ModSeqAtLeast(n) => entry.modseq >= *n,
            RowKey::EmailId(id) => record.id == *id,
            RowKey::ThreadId(id) => record.thread_id == *id,
        }
    }
}
