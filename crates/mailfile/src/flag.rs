/// IMAP system flags (RFC 9051 §2.3.2), minus `\Recent` which is session state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    Seen,
    Answered,
    Flagged,
    Deleted,
    Draft,
}

impl Flag {
    /// All flags, in declaration order.
    pub const ALL: [Flag; 5] = [
        Flag::Seen,
        Flag::Answered,
        Flag::Flagged,
        Flag::Deleted,
        Flag::Draft,
    ];

    /// The Maildir info letter (cr.yp.to/proto/maildir.html, "2," semantics).
    pub fn maildir_char(self) -> char {
        match self {
            Flag::Draft => 'D',
            Flag::Flagged => 'F',
            Flag::Answered => 'R',
            Flag::Seen => 'S',
            Flag::Deleted => 'T',
        }
    }

    /// The flag for a Maildir info letter; other letters (keywords, `P` passed) have none.
    pub fn from_maildir_char(c: char) -> Option<Flag> {
        Flag::ALL.into_iter().find(|f| f.maildir_char() == c)
    }

    /// The IMAP spelling, e.g. `\Seen`.
    pub fn imap_name(self) -> &'static str {
        match self {
            Flag::Seen => "\\Seen",
            Flag::Answered => "\\Answered",
            Flag::Flagged => "\\Flagged",
            Flag::Deleted => "\\Deleted",
            Flag::Draft => "\\Draft",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maildir_letters_round_trip_and_unknown_letters_are_ignored() {
        for f in Flag::ALL {
            assert_eq!(Flag::from_maildir_char(f.maildir_char()), Some(f));
        }
        assert_eq!(Flag::from_maildir_char('P'), None);
        assert_eq!(Flag::from_maildir_char('a'), None);
    }
}
