//! RFC 5256 §2.1 base subject extraction, used for THREAD=ORDEREDSUBJECT/REFERENCES and SORT.
//!
//! Works on the already RFC 2047 decoded subject (step 1). All matching is ASCII
//! case-insensitive, and every cut falls right after an ASCII byte, so slicing stays on UTF-8
//! character boundaries.

/// The RFC 5256 §2.1 base subject of a decoded subject. Case is preserved.
pub fn base_subject(decoded: &str) -> String {
    let mut s = collapse_whitespace(decoded);
    loop {
        strip_trailers(&mut s);
        strip_leaders_and_blobs(&mut s);
        // Step 6: "[fwd: ...]" wrapper, then back to step 2.
        if !unwrap_fwd(&mut s) {
            return s;
        }
    }
}

/// Step 1: tabs and line breaks become spaces, runs of spaces become one.
fn collapse_whitespace(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = false;
    for c in text.chars() {
        let c = if matches!(c, '\t' | '\r' | '\n') {
            ' '
        } else {
            c
        };
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
    out
}

/// Step 2: remove subj-trailer = "(fwd)" / WSP from the end, repeatedly.
fn strip_trailers(s: &mut String) {
    loop {
        if s.ends_with(is_wsp) {
            s.pop();
        } else if ends_with_ci(s, "(fwd)") {
            s.truncate(s.len() - "(fwd)".len());
        } else {
            return;
        }
    }
}

/// Steps 3 to 5.
fn strip_leaders_and_blobs(s: &mut String) {
    loop {
        let before = s.len();
        // Step 3: subj-leader, repeatedly.
        while let Some(n) = leader_len(s) {
            s.drain(..n);
        }
        // Step 4: one subj-blob if a non-empty subj-base remains after it.
        if let Some(n) = blob_len(s) {
            if s.get(n..).is_some_and(|rest| rest.contains(|c| !is_wsp(c))) {
                s.drain(..n);
            }
        }
        if s.len() == before {
            return;
        }
    }
}

/// Step 6: subj-fwd-hdr = "[fwd:" and subj-fwd-trl = "]".
fn unwrap_fwd(s: &mut String) -> bool {
    if starts_with_ci(s, "[fwd:") && s.ends_with(']') {
        s.pop();
        s.drain(.."[fwd:".len());
        true
    } else {
        false
    }
}

/// subj-leader = (*subj-blob subj-refwd) / WSP
fn leader_len(s: &str) -> Option<usize> {
    if s.starts_with(is_wsp) {
        return Some(1);
    }
    let mut pos = 0;
    while let Some(n) = s.get(pos..).and_then(blob_len) {
        pos += n;
    }
    Some(pos + s.get(pos..).and_then(refwd_len)?)
}

/// subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
fn refwd_len(s: &str) -> Option<usize> {
    let mut pos = if starts_with_ci(s, "re") {
        2
    } else if starts_with_ci(s, "fwd") {
        3
    } else if starts_with_ci(s, "fw") {
        2
    } else {
        return None;
    };
    pos += wsp_len(s.get(pos..)?);
    pos += s.get(pos..).and_then(blob_len).unwrap_or(0);
    s.get(pos..)?.starts_with(':').then_some(pos + 1)
}

/// subj-blob = "[" *BLOBCHAR "]" *WSP, BLOBCHAR being anything but "[" and "]".
fn blob_len(s: &str) -> Option<usize> {
    let inner = s.strip_prefix('[')?;
    let close = inner.find(['[', ']'])?;
    if !inner.get(close..)?.starts_with(']') {
        return None;
    }
    let pos = 1 + close + 1;
    Some(pos + wsp_len(s.get(pos..)?))
}

fn wsp_len(s: &str) -> usize {
    s.len() - s.trim_start_matches(is_wsp).len()
}

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()
            .get(s.len() - suffix.len()..)
            .is_some_and(|p| p.eq_ignore_ascii_case(suffix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::base_subject;

    #[test]
    fn strips_reply_and_forward_prefixes() {
        assert_eq!(base_subject("Re: hello"), "hello");
        assert_eq!(base_subject("RE: Fwd: FW: hello"), "hello");
        assert_eq!(base_subject("re[2]: hello"), "hello");
        assert_eq!(base_subject("Re : hello"), "hello");
    }

    #[test]
    fn strips_list_blobs_before_and_between_prefixes() {
        assert_eq!(base_subject("[list] Re: [list] Re: hello"), "hello");
        assert_eq!(base_subject("[PATCH 1/2] fix it"), "fix it");
    }

    #[test]
    fn keeps_a_blob_that_is_the_whole_subject() {
        assert_eq!(base_subject("[PATCH]"), "[PATCH]");
        assert_eq!(base_subject("Re: [PATCH]"), "[PATCH]");
    }

    #[test]
    fn strips_fwd_trailers_and_wrappers() {
        assert_eq!(base_subject("hello (fwd) (FWD)  "), "hello");
        assert_eq!(base_subject("[Fwd: Re: hello]"), "hello");
        assert_eq!(base_subject("Re: [fwd: [fwd: hello (fwd)]]"), "hello");
    }

    #[test]
    fn collapses_whitespace() {
        assert_eq!(base_subject("  a \t\r\n b  "), "a b");
        assert_eq!(base_subject(""), "");
        assert_eq!(base_subject("Re:"), "");
    }

    #[test]
    fn does_not_strip_words_that_merely_start_like_prefixes() {
        assert_eq!(base_subject("Report: numbers"), "Report: numbers");
        assert_eq!(base_subject("Fwdx: a"), "Fwdx: a");
        assert_eq!(base_subject("[unclosed Re: a"), "[unclosed Re: a");
    }

    #[test]
    fn handles_non_ascii_without_panicking() {
        assert_eq!(base_subject("Re: [é] Grüße"), "Grüße");
        assert_eq!(base_subject("Ré: x"), "Ré: x");
        assert_eq!(base_subject("[日本]"), "[日本]");
    }
}
