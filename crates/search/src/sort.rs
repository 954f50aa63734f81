//! RFC 5256 §3 SORT, with the RFC 5957 DISPLAYFROM and DISPLAYTO keys.

use std::cmp::Ordering;

use postkeep_message::{Address, MessageSummary};
use postkeep_store::EntryRecord;

use crate::facts::addr_spec;
use crate::fold::fold;

/// A sort key (RFC 5256 §3, RFC 5957 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    /// INTERNALDATE.
    Arrival,
    /// The mailbox (local part) of the first Cc address.
    Cc,
    /// The sent date (RFC 5256 §2.2): the Date field, or INTERNALDATE without one.
    Date,
    /// The mailbox of the first From address.
    From,
    /// RFC822.SIZE.
    Size,
    /// The base subject (RFC 5256 §2.1).
    Subject,
    /// The mailbox of the first To address.
    To,
    /// The display name of the first From address, or its `mailbox@host` without one.
    DisplayFrom,
    /// The same for the first To address.
    DisplayTo,
}

impl SortKey {
    pub(crate) fn needs_summary(self) -> bool {
        !matches!(self, SortKey::Arrival | SortKey::Size)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortCriterion {
    pub key: SortKey,
    /// RFC 5256 REVERSE: this key descending.
    pub reverse: bool,
}

/// One message's value for one key. Strings are folded (Unicode lowercase), our stand-in for
/// the i;unicode-casemap collation RFC 5256 asks for; a missing field is the empty string, which
/// sorts first.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Value {
    Number(i64),
    Text(String),
}

/// Sorts `matched` (indices into `items`); `summaries[k]`, when given, belongs to
/// `matched[k]`. Ties keep sequence order, REVERSE or not (RFC 5256 §3).
pub(crate) fn sort_indices(
    items: &[EntryRecord],
    matched: &[usize],
    summaries: Option<&[MessageSummary]>,
    criteria: &[SortCriterion],
) -> Vec<usize> {
    let mut keyed: Vec<(usize, Vec<Value>)> = matched
        .iter()
        .enumerate()
        .filter_map(|(k, &index)| {
            let item = items.get(index)?;
            let summary = summaries.and_then(|s| s.get(k));
            let values = criteria
                .iter()
                .map(|c| value(c.key, item, summary))
                .collect();
            Some((index, values))
        })
        .collect();
    keyed.sort_by(|(a, a_values), (b, b_values)| {
        criteria
            .iter()
            .zip(a_values.iter().zip(b_values))
            .map(|(criterion, (x, y))| {
                let order = x.cmp(y);
                if criterion.reverse {
                    order.reverse()
                } else {
                    order
                }
            })
            .find(|order| *order != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
            .then(a.cmp(b))
    });
    keyed.into_iter().map(|(index, _)| index).collect()
}

fn value(key: SortKey, item: &EntryRecord, summary: Option<&MessageSummary>) -> Value {
    let record = &item.record;
    let envelope = summary.map(|s| &s.envelope);
    match key {
        SortKey::Arrival => Value::Number(record.internal_date),
        SortKey::Size => Value::Number(i64::try_from(record.wire_size).unwrap_or(i64::MAX)),
        SortKey::Date => Value::Number(
            summary
                .and_then(|s| s.sent_date)
                .unwrap_or(record.internal_date),
        ),
        SortKey::Subject => Value::Text(fold(
            summary
                .map(|s| s.thread_subject.as_str())
                .unwrap_or_default(),
        )),
        SortKey::From => mailbox(envelope.map(|e| e.from.as_slice())),
        SortKey::To => mailbox(envelope.map(|e| e.to.as_slice())),
        SortKey::Cc => mailbox(envelope.map(|e| e.cc.as_slice())),
        SortKey::DisplayFrom => display(envelope.map(|e| e.from.as_slice())),
        SortKey::DisplayTo => display(envelope.map(|e| e.to.as_slice())),
    }
}

/// The first real address; group markers are skipped, so a group sorts by its first member.
fn first(addresses: Option<&[Address]>) -> Option<&Address> {
    addresses?.iter().find(|a| !a.is_group_marker())
}

/// RFC 5256 §3: the addr-mailbox of the first address.
fn mailbox(addresses: Option<&[Address]>) -> Value {
    let mailbox = first(addresses).and_then(|a| a.mailbox.as_deref());
    Value::Text(fold(mailbox.unwrap_or_default()))
}

/// RFC 5957 §3: the display name of the first address, or its addr-spec if it has none.
fn display(addresses: Option<&[Address]>) -> Value {
    let Some(address) = first(addresses) else {
        return Value::Text(String::new());
    };
    match address.name.as_deref().map(str::trim) {
        Some(name) if !name.is_empty() => Value::Text(fold(name)),
        _ => Value::Text(fold(&addr_spec(address))),
    }
}
