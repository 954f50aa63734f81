//! A session's view of its selected mailbox: the UIDs it has announced, in sequence order
//! (sequence number = index + 1). It changes only when the session reports a change to its
//! client, which is what keeps sequence numbers in step (RFC 9051 §7.5.1).

use std::ops::RangeInclusive;

use imap_types::sequence::SequenceSet;

use crate::query::{bounds, uid_ranges, BadSearch};

#[derive(Debug, Default, Clone)]
pub struct View {
    /// Ascending.
    uids: Vec<u32>,
}

impl View {
    pub fn new(uids: Vec<u32>) -> Self {
        debug_assert!(uids.windows(2).all(|w| w[0] < w[1]));
        Self { uids }
    }

    pub fn len(&self) -> u32 {
        u32::try_from(self.uids.len()).unwrap_or(u32::MAX)
    }

    pub fn max_uid(&self) -> u32 {
        self.uids.last().copied().unwrap_or(0)
    }

    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        let index = self.uids.binary_search(&uid).ok()?;
        u32::try_from(index + 1).ok()
    }

    pub fn contains(&self, uid: u32) -> bool {
        self.uids.binary_search(&uid).is_ok()
    }

    /// Appends newly announced UIDs (all above the current maximum).
    pub fn extend(&mut self, uids: impl IntoIterator<Item = u32>) {
        for uid in uids {
            if uid > self.max_uid() {
                self.uids.push(uid);
            }
        }
    }

    /// Removes one UID; its sequence number before removal.
    pub fn remove(&mut self, uid: u32) -> Option<u32> {
        let index = self.uids.binary_search(&uid).ok()?;
        self.uids.remove(index);
        u32::try_from(index + 1).ok()
    }

    /// The UIDs a command's set names, ascending and without duplicates. Sequence numbers past
    /// the end are an error (RFC 9051 §9 `seq-number`); UIDs not in the mailbox are skipped.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<u32>, BadSearch> {
        let ranges = if uid {
            self.uid_set_to_ranges(set)
        } else {
            self.seq_set_to_uid_ranges(set)?
        };
        Ok(self.uids_in(&ranges))
    }

    /// The announced UIDs inside `ranges`, ascending, each once.
    pub fn uids_in(&self, ranges: &[RangeInclusive<u32>]) -> Vec<u32> {
        let mut out = Vec::new();
        for range in ranges {
            let start = self.uids.partition_point(|&u| u < *range.start());
            out.extend(
                self.uids[start..]
                    .iter()
                    .take_while(|&&u| u <= *range.end())
                    .copied(),
            );
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    pub fn uid_set_to_ranges(&self, set: &SequenceSet) -> Vec<RangeInclusive<u32>> {
        uid_ranges(set, self.max_uid())
    }

    /// Sequence ranges turned into the UID ranges they cover.
    pub fn seq_set_to_uid_ranges(
        &self,
        set: &SequenceSet,
    ) -> Result<Vec<RangeInclusive<u32>>, BadSearch> {
        let len = self.len();
        let mut out = Vec::new();
        for seq in set.0.as_ref() {
            let (a, b) = bounds(seq, len);
            let (lo, hi) = (a.min(b), a.max(b));
            if lo == 0 || hi > len {
                return Err(BadSearch("invalid message sequence number"));
            }
            out.push(self.uids[lo as usize - 1]..=self.uids[hi as usize - 1]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imap_types::sequence::SequenceSet;

    fn set(text: &str) -> SequenceSet {
        SequenceSet::try_from(text).unwrap()
    }

    #[test]
    fn sequence_numbers_follow_removals() {
        let mut view = View::new(vec![3, 5, 9]);
        assert_eq!(view.seq_of(9), Some(3));
        assert_eq!(view.remove(5), Some(2));
        assert_eq!(view.seq_of(9), Some(2));
        assert_eq!(view.remove(5), None);
    }

    #[test]
    fn star_and_reversed_ranges_resolve() {
        let view = View::new(vec![3, 5, 9]);
        assert_eq!(view.resolve(&set("2:*"), false).unwrap(), vec![5, 9]);
        assert_eq!(view.resolve(&set("*:1"), false).unwrap(), vec![3, 5, 9]);
        assert_eq!(view.resolve(&set("4:*"), true).unwrap(), vec![5, 9]);
        // RFC 9051 §6.4.8: n:* includes the last UID even when n is above it.
        assert_eq!(view.resolve(&set("100:*"), true).unwrap(), vec![9]);
        assert_eq!(view.resolve(&set("1,3,3"), true).unwrap(), vec![3]);
    }

    #[test]
    fn sequence_number_past_the_end_is_an_error() {
        let view = View::new(vec![3]);
        assert!(view.resolve(&set("2"), false).is_err());
        assert!(View::new(vec![]).resolve(&set("1:*"), false).is_err());
    }
}
