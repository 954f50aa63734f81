//! RFC 9051 §6.4.4 search keys → the protocol-neutral [`postkeep_search::Query`].

use std::ops::RangeInclusive;

use imap_types::search::SearchKey;
use imap_types::sequence::SequenceSet;
use postkeep_imap_proto::ext::ExtSearchKey;
use postkeep_search::{DateCmp, Query};
use postkeep_store::Flag;

use crate::session::view::View;

/// Why a search cannot run; becomes a tagged BAD.
#[derive(Debug, PartialEq, Eq)]
pub struct BadSearch(pub &'static str);

/// What a query needs beyond the database row.
pub struct Converted {
    pub query: Query,
    /// A MODSEQ key was used: the result carries `(MODSEQ n)` (RFC 7162 §3.1.5).
    pub uses_modseq: bool,
}

pub fn convert(keys: &[SearchKey<'_>], view: &View) -> Result<Converted, BadSearch> {
    let mut converter = Converter {
        view,
        uses_modseq: false,
    };
    let query = converter.all(keys)?;
    Ok(Converted {
        query,
        uses_modseq: converter.uses_modseq,
    })
}

struct Converter<'v> {
    view: &'v View,
    uses_modseq: bool,
}

impl Converter<'_> {
    fn all(&mut self, keys: &[SearchKey<'_>]) -> Result<Query, BadSearch> {
        let mut parts = keys
            .iter()
            .map(|key| self.key(key))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Query::And(parts)
        })
    }

    /// Search text is UTF-8: the caller refused every other CHARSET (RFC 9051 §6.4.4).
    fn text(&self, value: &[u8]) -> Result<String, BadSearch> {
        String::from_utf8(value.to_vec()).map_err(|_| BadSearch("search text is not UTF-8"))
    }

    fn key(&mut self, key: &SearchKey<'_>) -> Result<Query, BadSearch> {
        use SearchKey as K;
        let flag = |f: Flag| Query::HasFlags(f.bit());
        let no_flag = |f: Flag| Query::LacksFlags(f.bit());
        Ok(match key {
            K::And(keys) => self.all(keys.as_ref())?,
            K::SequenceSet(set) => Query::Uids(self.view.seq_set_to_uid_ranges(set)?),
            K::Uid(set) => Query::Uids(self.view.uid_set_to_ranges(set)),
            K::All => Query::All,
            K::Answered => flag(Flag::Answered),
            K::Deleted => flag(Flag::Deleted),
            K::Draft => flag(Flag::Draft),
            K::Flagged => flag(Flag::Flagged),
            K::Seen => flag(Flag::Seen),
            // No message is ever \Recent here, so every message is OLD (RFC 3501 §6.4.4).
            K::Old => Query::All,
            K::Unanswered => no_flag(Flag::Answered),
            K::Undeleted => no_flag(Flag::Deleted),
            K::Undraft => no_flag(Flag::Draft),
            K::Unflagged => no_flag(Flag::Flagged),
            K::Unseen => no_flag(Flag::Seen),
            // \Recent does not exist in IMAP4rev2 and is never set here (RFC 9051 §2.3.2).
            K::New | K::Recent => Query::Not(Box::new(Query::All)),
            K::Keyword(atom) => Query::Keyword(atom.as_ref().to_owned()),
            K::Unkeyword(atom) => Query::NoKeyword(atom.as_ref().to_owned()),
            K::Bcc(v) => Query::Bcc(self.text(v.as_ref())?),
            K::Cc(v) => Query::Cc(self.text(v.as_ref())?),
            K::From(v) => Query::From(self.text(v.as_ref())?),
            K::To(v) => Query::To(self.text(v.as_ref())?),
            K::Subject(v) => Query::Subject(self.text(v.as_ref())?),
            K::Body(v) => Query::Body(self.text(v.as_ref())?),
            K::Text(v) => Query::Text(self.text(v.as_ref())?),
            K::Header(name, value) => self.header(name.as_ref(), value.as_ref())?,
            K::Before(d) => Query::Received(DateCmp::Before(*d.as_ref())),
            K::On(d) => Query::Received(DateCmp::On(*d.as_ref())),
            K::Since(d) => Query::Received(DateCmp::Since(*d.as_ref())),
            K::SentBefore(d) => Query::Sent(DateCmp::Before(*d.as_ref())),
            K::SentOn(d) => Query::Sent(DateCmp::On(*d.as_ref())),
            K::SentSince(d) => Query::Sent(DateCmp::Since(*d.as_ref())),
            K::Larger(n) => Query::Larger(u64::from(*n)),
            K::Smaller(n) => Query::Smaller(u64::from(*n)),
            K::Not(inner) => Query::Not(Box::new(self.key(inner)?)),
            K::Or(a, b) => Query::Or(Box::new(self.key(a)?), Box::new(self.key(b)?)),
            K::ModSequence { modseq, .. } => {
                self.uses_modseq = true;
                Query::ModSeqAtLeast(*modseq)
            }
        })
    }

    fn header(&self, name: &[u8], value: &[u8]) -> Result<Query, BadSearch> {
        let Some(ext) = ExtSearchKey::from_header(name, value) else {
            let name = String::from_utf8(name.to_vec())
                .map_err(|_| BadSearch("header field name is not UTF-8"))?;
            return Ok(Query::Header(name, self.text(value)?));
        };
        Ok(match ext {
            ExtSearchKey::EmailId(id) => Query::EmailId(id),
            ExtSearchKey::ThreadId(id) => Query::ThreadId(id),
            ExtSearchKey::SavedBefore(d) => Query::Saved(DateCmp::Before(imap_date(&d)?)),
            ExtSearchKey::SavedOn(d) => Query::Saved(DateCmp::On(imap_date(&d)?)),
            ExtSearchKey::SavedSince(d) => Query::Saved(DateCmp::Since(imap_date(&d)?)),
            // Every message here has a save date (RFC 8514 §5).
            ExtSearchKey::SaveDateSupported => Query::All,
        })
    }
}

/// RFC 9051 `date-text`: `1-Feb-2026`.
fn imap_date(text: &str) -> Result<chrono::NaiveDate, BadSearch> {
    chrono::NaiveDate::parse_from_str(text, "%d-%b-%Y").map_err(|_| BadSearch("invalid date"))
}

/// Ranges of a UID set against the largest UID in use (`*`, RFC 9051 §6.4.8).
pub fn uid_ranges(set: &SequenceSet, largest: u32) -> Vec<RangeInclusive<u32>> {
    set.0
        .as_ref()
        .iter()
        .map(|seq| {
            let (a, b) = bounds(seq, largest);
            a.min(b)..=a.max(b)
        })
        .collect()
}

/// The two ends of one sequence, `*` resolved to `largest`.
pub fn bounds(seq: &imap_types::sequence::Sequence, largest: u32) -> (u32, u32) {
    use imap_types::sequence::{SeqOrUid, Sequence};
    let value = |v: &SeqOrUid| match v {
        SeqOrUid::Value(n) => n.get(),
        SeqOrUid::Asterisk => largest,
    };
    match seq {
        Sequence::Single(v) => (value(v), value(v)),
        Sequence::Range(a, b) => (value(a), value(b)),
    }
}

/// True when evaluating `query` may open the sealed summary (address, subject, date and
/// content keys): the entries are then loaded with it.
pub fn needs_summary(query: &Query) -> bool {
    match query {
        Query::And(parts) => parts.iter().any(needs_summary),
        Query::Or(a, b) => needs_summary(a) || needs_summary(b),
        Query::Not(inner) => needs_summary(inner),
        Query::All
        | Query::Uids(_)
        | Query::HasFlags(_)
        | Query::LacksFlags(_)
        | Query::Keyword(_)
        | Query::NoKeyword(_)
        | Query::Received(_)
        | Query::Saved(_)
        | Query::Larger(_)
        | Query::Smaller(_)
        | Query::ModSeqAtLeast(_)
        | Query::EmailId(_)
        | Query::ThreadId(_) => false,
        _ => true,
    }
}
