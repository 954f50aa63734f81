//! Mailbox names at the protocol edge: modified UTF-7 for IMAP4rev1 clients, UTF-8 once a
//! client enabled IMAP4rev2 or UTF8=ACCEPT (RFC 9051 §5.1, RFC 6855 §3), and LIST pattern
//! matching (RFC 9051 §6.3.9).

use imap_types::mailbox::Mailbox as WireMailbox;
use postkeep_store::HIERARCHY_SEPARATOR;

/// Why a client's mailbox name cannot be used.
#[derive(Debug, PartialEq, Eq)]
pub struct BadName(pub &'static str);

/// Decodes a mailbox name as sent. `utf8`: the session enabled UTF-8 names.
pub fn decode(name: &WireMailbox<'_>, utf8: bool) -> Result<String, BadName> {
    let bytes: &[u8] = match name {
        WireMailbox::Inbox => return Ok("INBOX".to_owned()),
        WireMailbox::Other(other) => other.as_ref(),
    };
    let text = decode_text(bytes, utf8)?;
    postkeep_store::normalize_mailbox_name(&text).map_err(|_| BadName("invalid mailbox name"))
}

/// The text of a name or LIST pattern as sent, not yet checked as a mailbox name: UTF-8 when
/// the session enabled it, modified UTF-7 otherwise.
pub fn decode_text(bytes: &[u8], utf8: bool) -> Result<String, BadName> {
    if utf8 {
        String::from_utf8(bytes.to_vec()).map_err(|_| BadName("mailbox name is not UTF-8"))
    } else {
        postkeep_imap_proto::mutf7::decode(bytes).map_err(|_| {
            BadName("mailbox name is not valid modified UTF-7 (RFC 3501 section 5.1.3)")
        })
    }
}

/// Encodes a stored name for the client.
pub fn encode(name: &str, utf8: bool) -> String {
    if utf8 || name.is_ascii() && !name.contains('&') {
        name.to_owned()
    } else {
        postkeep_imap_proto::mutf7::encode(name)
    }
}

/// A LIST pattern joined to its reference (RFC 9051 §6.3.9: "the reference name and the
/// mailbox name are interpreted together").
pub fn join_reference(reference: &str, pattern: &str) -> String {
    if reference.is_empty() || pattern.starts_with(HIERARCHY_SEPARATOR) {
        return pattern.to_owned();
    }
    format!("{reference}{pattern}")
}

/// RFC 9051 §6.3.9: `*` matches anything, `%` anything but the hierarchy separator. The INBOX
/// prefix is matched case-insensitively (INBOX is case-insensitive, §5.1).
pub fn matches(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (canonical_inbox(pattern), canonical_inbox(name));
    wildcard(pattern.as_bytes(), name.as_bytes())
}

/// `inbox/x` → `INBOX/x`, so INBOX and its children compare case-insensitively.
fn canonical_inbox(text: &str) -> std::borrow::Cow<'_, str> {
    let Some((head, rest)) = text.split_at_checked(5) else {
        return std::borrow::Cow::Borrowed(text);
    };
    let is_inbox = head.eq_ignore_ascii_case("INBOX")
        && (rest.is_empty() || rest.starts_with(HIERARCHY_SEPARATOR));
    if is_inbox && head != "INBOX" {
        std::borrow::Cow::Owned(format!("INBOX{rest}"))
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Wildcard matching as a set of reachable pattern positions (an NFA walk): O(pattern × name),
/// no recursion and no backtracking, so a hostile pattern cannot blow the stack or the clock.
fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    let sep = HIERARCHY_SEPARATOR as u8;
    let mut reachable = vec![false; pattern.len() + 1];
    let mut next = vec![false; pattern.len() + 1];
    reachable[0] = true;
    close_over_wildcards(pattern, &mut reachable);
    for &c in name {
        next.iter_mut().for_each(|slot| *slot = false);
        for (at, _) in reachable.iter().enumerate().filter(|(_, on)| **on) {
            match pattern.get(at) {
                Some(b'*') => next[at] = true,
                Some(b'%') if c != sep => next[at] = true,
                Some(&literal) if literal == c => next[at + 1] = true,
                _ => {}
            }
        }
        close_over_wildcards(pattern, &mut next);
        std::mem::swap(&mut reachable, &mut next);
        if !reachable.contains(&true) {
            return false;
        }
    }
    reachable[pattern.len()]
}

/// A wildcard may match nothing: whoever reaches it also reaches the position after it.
fn close_over_wildcards(pattern: &[u8], reachable: &mut [bool]) {
    for at in 0..pattern.len() {
        if reachable[at] && matches!(pattern[at], b'*' | b'%') {
            reachable[at + 1] = true;
        }
    }
}

/// Every ancestor of a name: `a/b/c` → `a`, `a/b`.
pub fn ancestors(name: &str) -> impl Iterator<Item = &str> {
    name.match_indices(HIERARCHY_SEPARATOR)
        .map(|(at, _)| &name[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_matches_across_levels_percent_does_not() {
        assert!(matches("*", "a/b/c"));
        assert!(matches("a/*", "a/b/c"));
        assert!(!matches("%", "a/b"));
        assert!(matches("%", "a"));
        assert!(matches("a/%", "a/b"));
        assert!(!matches("a/%", "a/b/c"));
        assert!(matches("a/%/c", "a/b/c"));
        assert!(matches("*c", "a/b/c"));
        assert!(!matches("b", "a/b"));
        assert!(matches("", "") && !matches("", "a"));
    }

    #[test]
    fn inbox_prefix_is_case_insensitive() {
        assert!(matches("inbox", "INBOX"));
        assert!(matches("Inbox/%", "INBOX/x"));
        assert!(!matches("inboxes", "INBOX"));
    }

    #[test]
    fn mixed_wildcards_backtrack_correctly() {
        assert!(matches("*/%", "a/b/c"));
        assert!(matches("%a%b", "xaab"));
        assert!(!matches("%/%", "a/b/c"));
        assert!(matches("*%", "a/b"));
    }

    #[test]
    fn hostile_pattern_is_fast() {
        let pattern = "*a".repeat(2000);
        let name = "a".repeat(5000) + "b";
        assert!(!matches(&pattern, &name));
    }

    #[test]
    fn reference_is_joined_to_the_pattern() {
        assert_eq!(join_reference("", "%"), "%");
        assert_eq!(join_reference("a/", "%"), "a/%");
        assert_eq!(join_reference("a/", "/x"), "/x");
    }

    #[test]
    fn ancestors_are_listed_outermost_first() {
        assert_eq!(ancestors("a/b/c").collect::<Vec<_>>(), ["a", "a/b"]);
        assert_eq!(ancestors("a").count(), 0);
    }
}
