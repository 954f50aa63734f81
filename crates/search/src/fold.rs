//! Case-insensitive substring matching. RFC 9051 §6.4.4 asks for case-insensitive substring
//! search; we lowercase both sides the same way and search bytes with `memmem`.

use memchr::memmem::Finder;

/// Unicode lowercase of `text`, one character at a time. Per character (unlike
/// `str::to_lowercase`, which lowercases a word-final `Σ` to `ς`) so the needle and the text fold
/// the same way wherever a letter stands; `ς` is then folded to `σ` too, for the same reason.
/// No other normalisation.
pub(crate) fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            'ς' => out.push('σ'),
            c => out.extend(c.to_lowercase()),
        }
    }
    out
}

/// A folded search string, ready to be found in folded text.
pub(crate) struct Needle {
    finder: Finder<'static>,
}

impl Needle {
    pub(crate) fn new(text: &str) -> Self {
        Self {
            finder: Finder::new(fold(text).as_bytes()).into_owned(),
        }
    }

    /// The empty string, which every text contains.
    pub(crate) fn is_empty(&self) -> bool {
        self.finder.needle().is_empty()
    }

    /// True if `folded` (already passed through [`fold`]) contains the needle.
    pub(crate) fn in_folded(&self, folded: &str) -> bool {
        self.finder.find(folded.as_bytes()).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_per_character_so_sigma_matches_anywhere() {
        assert_eq!(fold("ÄPFEL"), "äpfel");
        assert_eq!(fold("ΟΔΟΣ"), "οδοσ");
        assert!(Needle::new("ΟΔΟΣ").in_folded(&fold("οδοστρωμα")));
        assert!(Needle::new("οδοσ").in_folded(&fold("στην οδος")));
    }

    #[test]
    fn needle_finds_folded_substrings_only() {
        let needle = Needle::new("Straße");
        assert!(needle.in_folded(&fold("DIE STRAßENBAHN")));
        assert!(!needle.in_folded(&fold("strasse")));
        assert!(Needle::new("").is_empty());
        assert!(Needle::new("").in_folded(""));
    }
}
