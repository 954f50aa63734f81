//! Rewrites the extension syntax imap-codec 2.0.0-alpha.10 rejects into syntax it accepts, and
//! lifts what it cannot express into [`Ext`] (docs/imap-plan.md §1.2, §1.4).
//!
//! Runs only on a complete command that `CommandCodec` failed to decode. The command is split
//! into tokens (atoms, quoted strings, literals, parenthesised lists), the few known extension
//! forms are rewritten, and the result goes through imap-codec again: the shim never decides
//! that a command is valid, imap-codec does. The tokeniser insists on single spaces, so the
//! rewritten text differs from the original only where a rewrite happened.

use std::borrow::Cow;

use imap_codec::decode::Decoder;
use imap_codec::CommandCodec;
use imap_types::command::CommandBody;
use imap_types::status::StatusDataItemName;

use crate::ext::{Ext, ExtSearchKey, FetchExt, ListExt, Parsed, SearchReturn, StatusExt};

/// Why the shim could not turn a command into one imap-codec accepts. The messages are fixed
/// text, safe to send in a tagged BAD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShimError {
    /// Nothing the shim knows applies, or imap-codec rejects the rewritten command too.
    Syntax,
    /// RFC 5182 `$` used where no search result can have been saved.
    NoSavedResult,
    /// Recognised extension syntax with an invalid argument.
    Invalid(&'static str),
}

impl ShimError {
    /// Short text for "BAD ...".
    pub fn message(&self) -> &'static str {
        match self {
            ShimError::Syntax => "syntax error",
            ShimError::NoSavedResult => "no saved search result",
            ShimError::Invalid(message) => message,
        }
    }
}

/// Deepest parenthesis nesting the tokeniser accepts; imap-codec itself stops far earlier.
const MAX_DEPTH: usize = 32;

/// Commands (after an optional `UID`) that may carry syntax the shim rewrites.
const SHIM_COMMANDS: &[&str] = &[
    "FETCH", "STORE", "COPY", "MOVE", "EXPUNGE", "SEARCH", "SORT", "THREAD", "STATUS", "LIST",
    "CREATE",
];

/// Whether a command that imap-codec rejects so far (its text up to a literal) could still be
/// rescued by the shim, so its literals are worth receiving.
pub fn may_rewrite(prefix: &[u8]) -> bool {
    let line = prefix.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ').skip(1);
    let mut name = words.next().unwrap_or_default();
    if name.eq_ignore_ascii_case(b"UID") {
        name = words.next().unwrap_or_default();
    }
    SHIM_COMMANDS
        .iter()
        .any(|known| name.eq_ignore_ascii_case(known.as_bytes()))
}

/// Rewrites `command` (complete, literals included, ending with CRLF or LF) and decodes the
/// result with imap-codec.
pub fn decode(command: &[u8], saved: Option<&[u32]>) -> Result<Parsed, ShimError> {
    let (text, ext) = rewrite(command, saved)?.ok_or(ShimError::Syntax)?;
    match CommandCodec::new().decode_static(&text) {
        Ok(([], command)) => Ok(Parsed { command, ext }),
        _ => Err(ShimError::Syntax),
    }
}

/// The rewritten command text and what was lifted out of it; `Ok(None)` when the command holds
/// no syntax the shim knows (it is then left as it is).
pub fn rewrite(command: &[u8], saved: Option<&[u32]>) -> Result<Option<(Vec<u8>, Ext)>, ShimError> {
    let Some(mut toks) = tokenize(command) else {
        return Ok(None);
    };
    let mut ext = Ext::default();
    if !rewrite_command(&mut toks, saved, &mut ext)? {
        return Ok(None);
    }
    let mut text = Vec::with_capacity(command.len() + 16);
    serialize(&toks, &mut text);
    text.extend_from_slice(b"\r\n");
    Ok(Some((text, ext)))
}

// ----- tokens -------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok<'a> {
    Atom(Cow<'a, [u8]>),
    /// A quoted string or a literal: `raw` as written, `value` its content.
    Str {
        raw: Cow<'a, [u8]>,
        value: Cow<'a, [u8]>,
    },
    List(Vec<Tok<'a>>),
}

impl<'a> Tok<'a> {
    fn atom(text: impl Into<Vec<u8>>) -> Self {
        Tok::Atom(Cow::Owned(text.into()))
    }

    fn quoted(value: &str) -> Self {
        let mut raw = Vec::with_capacity(value.len() + 2);
        raw.push(b'"');
        for &b in value.as_bytes() {
            if b == b'"' || b == b'\\' {
                raw.push(b'\\');
            }
            raw.push(b);
        }
        raw.push(b'"');
        Tok::Str {
            raw: Cow::Owned(raw),
            value: Cow::Owned(value.as_bytes().to_vec()),
        }
    }

    fn as_atom(&self) -> Option<&[u8]> {
        match self {
            Tok::Atom(atom) => Some(atom),
            _ => None,
        }
    }

    fn is_atom(&self, word: &str) -> bool {
        self.as_atom()
            .is_some_and(|atom| atom.eq_ignore_ascii_case(word.as_bytes()))
    }

    /// The bytes of an astring-like token (atom, quoted string or literal).
    fn string_value(&self) -> Option<&[u8]> {
        match self {
            Tok::Atom(atom) => Some(atom),
            Tok::Str { value, .. } => Some(value),
            Tok::List(_) => None,
        }
    }
}

/// What may come next while tokenising.
#[derive(Clone, Copy, PartialEq)]
enum Expect {
    /// An element (start of the command or after a space).
    Element,
    /// An element or `)` (right after `(`).
    ElementOrClose,
    /// A space, `)` or the end of the line (after an element).
    Separator,
}

/// Splits a complete command into tokens; `None` when it is not even tokenisable.
fn tokenize(input: &[u8]) -> Option<Vec<Tok<'_>>> {
    let mut stack: Vec<Vec<Tok<'_>>> = vec![Vec::new()];
    let mut expect = Expect::Element;
    let mut i = 0;
    loop {
        let b = *input.get(i)?;
        match b {
            b'\r' | b'\n' => {
                let rest = &input[i..];
                let ends = rest == b"\r\n" || rest == b"\n";
                if !ends || expect != Expect::Separator || stack.len() != 1 {
                    return None;
                }
                return stack.pop();
            }
            b' ' => {
                if expect != Expect::Separator {
                    return None;
                }
                expect = Expect::Element;
                i += 1;
            }
            b'(' => {
                if expect == Expect::Separator || stack.len() > MAX_DEPTH {
                    return None;
                }
                stack.push(Vec::new());
                expect = Expect::ElementOrClose;
                i += 1;
            }
            b')' => {
                if expect == Expect::Element || stack.len() < 2 {
                    return None;
                }
                let list = stack.pop()?;
                stack.last_mut()?.push(Tok::List(list));
                expect = Expect::Separator;
                i += 1;
            }
            _ => {
                if expect == Expect::Separator {
                    return None;
                }
                let (tok, next) = element(input, i)?;
                stack.last_mut()?.push(tok);
                expect = Expect::Separator;
                i = next;
            }
        }
    }
}

/// One atom, quoted string or literal starting at `start`; returns it and the index after it.
fn element(input: &[u8], start: usize) -> Option<(Tok<'_>, usize)> {
    match input.get(start)? {
        b'"' => quoted(input, start),
        b'{' => literal(input, start, start),
        b'~' if input.get(start + 1) == Some(&b'{') => literal(input, start, start + 1),
        _ => atom(input, start),
    }
}

fn quoted(input: &[u8], start: usize) -> Option<(Tok<'_>, usize)> {
    let mut value = Vec::new();
    let mut i = start + 1;
    loop {
        match *input.get(i)? {
            b'"' => break,
            b'\\' => {
                let escaped = *input.get(i + 1)?;
                if matches!(escaped, b'\r' | b'\n' | 0) {
                    return None;
                }
                value.push(escaped);
                i += 2;
            }
            b'\r' | b'\n' | 0 => return None,
            other => {
                value.push(other);
                i += 1;
            }
        }
    }
    let tok = Tok::Str {
        raw: Cow::Borrowed(&input[start..=i]),
        value: Cow::Owned(value),
    };
    Some((tok, i + 1))
}

/// `{n}` / `{n+}` / `~{n}` CRLF, then n bytes (already received: the framer waited for them).
fn literal(input: &[u8], start: usize, brace: usize) -> Option<(Tok<'_>, usize)> {
    let digits = input[brace + 1..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 || digits > 10 {
        return None;
    }
    let length: usize = std::str::from_utf8(&input[brace + 1..brace + 1 + digits])
        .ok()?
        .parse()
        .ok()?;
    let mut i = brace + 1 + digits;
    if input.get(i) == Some(&b'+') {
        i += 1;
    }
    if input.get(i) != Some(&b'}') {
        return None;
    }
    i += 1;
    if input.get(i) == Some(&b'\r') {
        i += 1;
    }
    if input.get(i) != Some(&b'\n') {
        return None;
    }
    let data_start = i + 1;
    let end = data_start.checked_add(length)?;
    let tok = Tok::Str {
        raw: Cow::Borrowed(input.get(start..end)?),
        value: Cow::Borrowed(&input[data_start..end]),
    };
    Some((tok, end))
}

/// An atom in the loose sense: anything up to a space, parenthesis, quote, brace or line end.
/// A `[...]` section (e.g. `BODY[HEADER.FIELDS (A B)]<0.10>`) stays inside the atom.
fn atom(input: &[u8], start: usize) -> Option<(Tok<'_>, usize)> {
    let mut i = start;
    while let Some(&b) = input.get(i) {
        match b {
            b' ' | b'(' | b')' | b'"' | b'{' | b'\r' | b'\n' => break,
            b'[' => {
                let close = input[i..]
                    .iter()
                    .take_while(|&&c| c != b'\r' && c != b'\n')
                    .position(|&c| c == b']');
                i += close.unwrap_or(0) + 1;
            }
            0..=0x1f | 0x7f => return None,
            _ => i += 1,
        }
    }
    if i == start {
        return None;
    }
    Some((Tok::Atom(Cow::Borrowed(&input[start..i])), i))
}

fn serialize(toks: &[Tok<'_>], out: &mut Vec<u8>) {
    for (n, tok) in toks.iter().enumerate() {
        if n > 0 {
            out.push(b' ');
        }
        match tok {
            Tok::Atom(atom) => out.extend_from_slice(atom),
            Tok::Str { raw, .. } => out.extend_from_slice(raw),
            Tok::List(items) => {
                out.push(b'(');
                serialize(items, out);
                out.push(b')');
            }
        }
    }
}

// ----- commands -----------------------------------------------------------------------------

/// Applies the rewrites for this command; `Ok(false)` when there was nothing to rewrite.
fn rewrite_command(
    toks: &mut Vec<Tok<'_>>,
    saved: Option<&[u32]>,
    ext: &mut Ext,
) -> Result<bool, ShimError> {
    let uid = toks.get(1).is_some_and(|t| t.is_atom("UID"));
    let name_at = if uid { 2 } else { 1 };
    let Some(name) = toks.get(name_at).and_then(Tok::as_atom) else {
        return Ok(false);
    };
    let name = String::from_utf8_lossy(name).to_ascii_uppercase();
    let cmd = Cmd {
        uid,
        name_at,
        saved,
    };
    match (uid, name.as_str()) {
        (_, "FETCH") => fetch(toks, &cmd, ext),
        (_, "STORE" | "COPY" | "MOVE") | (true, "EXPUNGE") => cmd.saved_set(toks, name_at + 1),
        (_, "SEARCH") => search(toks, &cmd, ext),
        // RFC 5256: SORT (criteria) charset keys / THREAD algorithm charset keys.
        (_, "SORT" | "THREAD") => cmd.keys(toks, name_at + 3),
        (false, "STATUS") => status(toks, ext),
        (false, "LIST") => list(toks, ext),
        (false, "CREATE") => create(toks, ext),
        _ => Ok(false),
    }
}

/// Where the command name sits and what `$` stands for.
struct Cmd<'s> {
    uid: bool,
    name_at: usize,
    saved: Option<&'s [u32]>,
}

impl Cmd<'_> {
    fn saved_uids(&self) -> Result<String, ShimError> {
        self.saved.map(uid_set).ok_or(ShimError::NoSavedResult)
    }

    /// RFC 5182 §2: `$` as the sequence set at `at` becomes the saved UIDs, and the command
    /// becomes its UID variant.
    fn saved_set(&self, toks: &mut Vec<Tok<'_>>, at: usize) -> Result<bool, ShimError> {
        if !toks.get(at).is_some_and(|t| t.is_atom("$")) {
            return Ok(false);
        }
        toks[at] = Tok::atom(self.saved_uids()?);
        if !self.uid {
            toks.insert(self.name_at, Tok::atom("UID"));
        }
        Ok(true)
    }

    /// Rewrites the search keys from `at` to the end of the command.
    fn keys(&self, toks: &mut Vec<Tok<'_>>, at: usize) -> Result<bool, ShimError> {
        if toks.len() <= at {
            return Ok(false);
        }
        let keys = toks.split_off(at);
        let mut changed = false;
        let rewritten = self.rewrite_keys(keys, 0, &mut changed)?;
        toks.extend(rewritten);
        Ok(changed)
    }

    fn rewrite_keys<'a>(
        &self,
        keys: Vec<Tok<'a>>,
        depth: usize,
        changed: &mut bool,
    ) -> Result<Vec<Tok<'a>>, ShimError> {
        if depth > MAX_DEPTH {
            return Err(ShimError::Syntax);
        }
        let mut out = Vec::with_capacity(keys.len());
        let mut input = keys.into_iter();
        while let Some(key) = input.next() {
            self.rewrite_key(key, &mut input, &mut out, depth, changed)?;
        }
        Ok(out)
    }

    /// Copies one search key (with its arguments) from `input` to `out`, rewriting it if it is
    /// one imap-codec does not know. Knowing every key's arity is what keeps `SUBJECT EMAILID`
    /// or `SUBJECT $` (string arguments) from being mistaken for keys.
    fn rewrite_key<'a>(
        &self,
        key: Tok<'a>,
        input: &mut std::vec::IntoIter<Tok<'a>>,
        out: &mut Vec<Tok<'a>>,
        depth: usize,
        changed: &mut bool,
    ) -> Result<(), ShimError> {
        let name = match key {
            Tok::List(items) => {
                out.push(Tok::List(self.rewrite_keys(items, depth + 1, changed)?));
                return Ok(());
            }
            Tok::Str { .. } => return Err(ShimError::Syntax),
            Tok::Atom(ref atom) => String::from_utf8_lossy(atom).to_ascii_uppercase(),
        };
        match name.as_str() {
            "ALL" | "ANSWERED" | "DELETED" | "DRAFT" | "FLAGGED" | "NEW" | "OLD" | "RECENT"
            | "SEEN" | "UNANSWERED" | "UNDELETED" | "UNDRAFT" | "UNFLAGGED" | "UNSEEN" => {
                out.push(key);
            }
            "BCC" | "BEFORE" | "BODY" | "CC" | "FROM" | "KEYWORD" | "ON" | "SENTBEFORE"
            | "SENTON" | "SENTSINCE" | "SINCE" | "SUBJECT" | "TEXT" | "TO" | "UNKEYWORD"
            | "LARGER" | "SMALLER" | "OLDER" | "YOUNGER" => {
                out.push(key);
                out.push(scalar_arg(input)?);
            }
            "HEADER" => {
                out.push(key);
                out.push(scalar_arg(input)?);
                out.push(scalar_arg(input)?);
            }
            "UID" => {
                out.push(key);
                let set = scalar_arg(input)?;
                if set.is_atom("$") {
                    out.push(Tok::atom(self.saved_uids()?));
                    *changed = true;
                } else {
                    out.push(set);
                }
            }
            // RFC 7162 §3.1.5: MODSEQ [entry-name entry-type-req] mod-sequence-valzer
            "MODSEQ" => {
                out.push(key);
                let first = scalar_arg(input)?;
                let has_entry = matches!(first, Tok::Str { .. });
                out.push(first);
                if has_entry {
                    out.push(scalar_arg(input)?);
                    out.push(scalar_arg(input)?);
                }
            }
            "NOT" => {
                out.push(key);
                self.nested_key(input, out, depth, changed)?;
            }
            "OR" => {
                out.push(key);
                self.nested_key(input, out, depth, changed)?;
                self.nested_key(input, out, depth, changed)?;
            }
            // RFC 5182 §2.1: `$` as a key is the saved result, which holds UIDs.
            "$" => {
                out.push(Tok::atom("UID"));
                out.push(Tok::atom(self.saved_uids()?));
                *changed = true;
            }
            _ => {
                if let Some(ext_key) = ext_key(&name, input)? {
                    let (marker, arg) = ext_key.to_header();
                    out.push(Tok::atom("HEADER"));
                    out.push(Tok::quoted(&marker));
                    out.push(Tok::quoted(&arg));
                    *changed = true;
                } else if is_sequence_set(&name) {
                    out.push(key);
                } else {
                    return Err(ShimError::Syntax);
                }
            }
        }
        Ok(())
    }

    fn nested_key<'a>(
        &self,
        input: &mut std::vec::IntoIter<Tok<'a>>,
        out: &mut Vec<Tok<'a>>,
        depth: usize,
        changed: &mut bool,
    ) -> Result<(), ShimError> {
        if depth > MAX_DEPTH {
            return Err(ShimError::Syntax);
        }
        let key = input.next().ok_or(ShimError::Syntax)?;
        self.rewrite_key(key, input, out, depth + 1, changed)
    }
}

/// The next token, which must be an atom, quoted string or literal.
fn scalar_arg<'a>(input: &mut std::vec::IntoIter<Tok<'a>>) -> Result<Tok<'a>, ShimError> {
    match input.next() {
        Some(Tok::List(_)) | None => Err(ShimError::Syntax),
        Some(tok) => Ok(tok),
    }
}

/// RFC 8474 §6 and RFC 8514 §5 search keys, with their argument taken from `input`.
fn ext_key(
    name: &str,
    input: &mut std::vec::IntoIter<Tok<'_>>,
) -> Result<Option<ExtSearchKey>, ShimError> {
    let key = match name {
        "EMAILID" => ExtSearchKey::EmailId(object_id(input)?),
        "THREADID" => ExtSearchKey::ThreadId(object_id(input)?),
        "SAVEDBEFORE" => ExtSearchKey::SavedBefore(search_date(input)?),
        "SAVEDON" => ExtSearchKey::SavedOn(search_date(input)?),
        "SAVEDSINCE" => ExtSearchKey::SavedSince(search_date(input)?),
        "SAVEDATESUPPORTED" => ExtSearchKey::SaveDateSupported,
        _ => return Ok(None),
    };
    Ok(Some(key))
}

/// RFC 8474 §7: `objectid = 1*255(ALPHA / DIGIT / "_" / "-")`, an atom.
fn object_id(input: &mut std::vec::IntoIter<Tok<'_>>) -> Result<String, ShimError> {
    const INVALID: ShimError = ShimError::Invalid("invalid object id");
    let tok = input.next().ok_or(INVALID)?;
    let id = tok.as_atom().ok_or(INVALID)?;
    let valid = (1..=255).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(INVALID);
    }
    Ok(String::from_utf8_lossy(id).into_owned())
}

/// An IMAP `date` (RFC 9051 §9), validated by imap-codec through a probe `BEFORE` key.
fn search_date(input: &mut std::vec::IntoIter<Tok<'_>>) -> Result<String, ShimError> {
    const INVALID: ShimError = ShimError::Invalid("invalid date");
    let tok = input.next().ok_or(INVALID)?;
    let mut probe = b"x SEARCH BEFORE ".to_vec();
    serialize(std::slice::from_ref(&tok), &mut probe);
    probe.extend_from_slice(b"\r\n");
    match CommandCodec::new().decode(&probe) {
        Ok(([], _)) => {}
        _ => return Err(INVALID),
    }
    let value = tok.string_value().ok_or(INVALID)?;
    Ok(String::from_utf8_lossy(value).into_owned())
}

/// A sequence-set atom (`1:*,5`); imap-codec checks the details.
fn is_sequence_set(word: &str) -> bool {
    word.bytes()
        .next()
        .is_some_and(|b| b.is_ascii_digit() || b == b'*')
}

/// The saved UIDs in compact `a:b,c` form. An empty result becomes UID 4294967295, which no
/// message is given in practice, so the command matches nothing instead of failing.
fn uid_set(uids: &[u32]) -> String {
    let mut sorted: Vec<u32> = uids.iter().copied().filter(|&uid| uid != 0).collect();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while let Some(&first) = sorted.get(i) {
        let mut last = first;
        while sorted.get(i + 1) == Some(&last.wrapping_add(1)) {
            i += 1;
            last += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if first == last {
            out.push_str(&first.to_string());
        } else {
            out.push_str(&format!("{first}:{last}"));
        }
        i += 1;
    }
    if out.is_empty() {
        out.push_str(&u32::MAX.to_string());
    }
    out
}

/// FETCH: `$` (RFC 5182) and the RFC 8474 / RFC 8514 items imap-codec does not know.
fn fetch(toks: &mut Vec<Tok<'_>>, cmd: &Cmd<'_>, ext: &mut Ext) -> Result<bool, ShimError> {
    let items_at = cmd.name_at + 2;
    let mut changed = false;
    match toks.get_mut(items_at) {
        Some(Tok::Atom(item)) => {
            if let Some(lifted) = fetch_ext(item) {
                ext.fetch.push(lifted);
                *item = Cow::Borrowed(b"UID");
                changed = true;
            }
        }
        Some(Tok::List(items)) if !items.is_empty() => {
            let mut kept = Vec::with_capacity(items.len());
            for item in items.drain(..) {
                match item.as_atom().and_then(fetch_ext) {
                    Some(lifted) => ext.fetch.push(lifted),
                    None => kept.push(item),
                }
            }
            changed = !ext.fetch.is_empty();
            if kept.is_empty() {
                kept.push(Tok::atom("UID"));
            }
            *items = kept;
        }
        _ => {}
    }
    // After the item rewrite: turning FETCH into UID FETCH shifts the items.
    let set_changed = cmd.saved_set(toks, cmd.name_at + 1)?;
    Ok(changed || set_changed)
}

fn fetch_ext(item: &[u8]) -> Option<FetchExt> {
    [
        ("EMAILID", FetchExt::EmailId),
        ("THREADID", FetchExt::ThreadId),
        ("SAVEDATE", FetchExt::SaveDate),
    ]
    .into_iter()
    .find(|(name, _)| item.eq_ignore_ascii_case(name.as_bytes()))
    .map(|(_, lifted)| lifted)
}

/// SEARCH [RETURN (...)] [CHARSET x] keys (RFC 4731 §3.1, RFC 4466 §2.6).
fn search(toks: &mut Vec<Tok<'_>>, cmd: &Cmd<'_>, ext: &mut Ext) -> Result<bool, ShimError> {
    let mut at = cmd.name_at + 1;
    let mut changed = false;
    if toks.get(at).is_some_and(|t| t.is_atom("RETURN")) {
        let Some(Tok::List(options)) = toks.get(at + 1) else {
            return Err(ShimError::Syntax);
        };
        let options = options
            .iter()
            .map(search_return)
            .collect::<Result<Vec<_>, _>>()?;
        ext.search_return = Some(options);
        toks.drain(at..at + 2);
        changed = true;
    }
    if toks.get(at).is_some_and(|t| t.is_atom("CHARSET")) {
        at += 2;
    }
    Ok(cmd.keys(toks, at)? || changed)
}

fn search_return(option: &Tok<'_>) -> Result<SearchReturn, ShimError> {
    let word = option
        .as_atom()
        .map(|atom| String::from_utf8_lossy(atom).to_ascii_uppercase());
    Ok(match word.as_deref() {
        Some("MIN") => SearchReturn::Min,
        Some("MAX") => SearchReturn::Max,
        Some("ALL") => SearchReturn::All,
        Some("COUNT") => SearchReturn::Count,
        Some("SAVE") => SearchReturn::Save,
        _ => return Err(ShimError::Invalid("unknown RETURN option")),
    })
}

/// STATUS mailbox (items): lifts RFC 8474 MAILBOXID and RFC 7889 APPENDLIMIT.
fn status(toks: &mut [Tok<'_>], ext: &mut Ext) -> Result<bool, ShimError> {
    let Some(Tok::List(items)) = toks.get_mut(3) else {
        return Ok(false);
    };
    let (standard, lifted) = split_status_items(std::mem::take(items));
    *items = standard;
    ext.status = lifted;
    Ok(!ext.status.is_empty())
}

fn split_status_items(items: Vec<Tok<'_>>) -> (Vec<Tok<'_>>, Vec<StatusExt>) {
    let mut standard = Vec::with_capacity(items.len());
    let mut lifted = Vec::new();
    for item in items {
        if item.is_atom("MAILBOXID") {
            lifted.push(StatusExt::MailboxId);
        } else if item.is_atom("APPENDLIMIT") {
            lifted.push(StatusExt::AppendLimit);
        } else {
            standard.push(item);
        }
    }
    (standard, lifted)
}

/// RFC 5258 §3 LIST [(selection)] reference (pattern | (patterns)) [RETURN (options)], with
/// RFC 5819 STATUS and RFC 6154 SPECIAL-USE options. The rewritten command is a plain LIST of
/// the first pattern; everything else goes into `ext.list`.
fn list(toks: &mut Vec<Tok<'_>>, ext: &mut Ext) -> Result<bool, ShimError> {
    let mut rest = toks.split_off(2).into_iter();
    let mut parts: Vec<Tok<'_>> = Vec::with_capacity(4);
    let mut out = ListExt::default();
    let mut extended = false;

    let mut next = rest.next().ok_or(ShimError::Syntax)?;
    if let Tok::List(options) = &next {
        selection_options(options, &mut out)?;
        extended = true;
        next = rest.next().ok_or(ShimError::Syntax)?;
    }
    if matches!(next, Tok::List(_)) {
        return Err(ShimError::Syntax);
    }
    parts.push(next);

    match rest.next().ok_or(ShimError::Syntax)? {
        Tok::List(patterns) => {
            extended = true;
            let mut patterns = patterns.into_iter();
            let first = patterns.next().ok_or(ShimError::Syntax)?;
            out.patterns.push(pattern_value(&first)?);
            for pattern in patterns {
                out.patterns.push(pattern_value(&pattern)?);
            }
            parts.push(first);
        }
        single => {
            out.patterns.push(pattern_value(&single)?);
            parts.push(single);
        }
    }

    if let Some(word) = rest.next() {
        let options = rest.next();
        match (word.is_atom("RETURN"), options, rest.next()) {
            (true, Some(Tok::List(options)), None) => {
                return_options(&options, &mut out)?;
                extended = true;
            }
            _ => return Err(ShimError::Syntax),
        }
    }
    toks.extend(parts);
    if !extended {
        return Ok(false);
    }
    ext.list = Some(out);
    Ok(true)
}

fn pattern_value(tok: &Tok<'_>) -> Result<Vec<u8>, ShimError> {
    tok.string_value()
        .map(<[u8]>::to_vec)
        .ok_or(ShimError::Syntax)
}

fn upper_atom(tok: &Tok<'_>) -> Option<String> {
    tok.as_atom()
        .map(|atom| String::from_utf8_lossy(atom).to_ascii_uppercase())
}

fn selection_options(options: &[Tok<'_>], out: &mut ListExt) -> Result<(), ShimError> {
    for option in options {
        match upper_atom(option).as_deref() {
            Some("SUBSCRIBED") => out.select_subscribed = true,
            Some("REMOTE") => out.select_remote = true,
            Some("RECURSIVEMATCH") => out.select_recursive_match = true,
            Some("SPECIAL-USE") => out.select_special_use = true,
            _ => return Err(ShimError::Invalid("unknown LIST selection option")),
        }
    }
    // RFC 5258 §3: RECURSIVEMATCH alone (or only with REMOTE) is a BAD.
    if out.select_recursive_match && !out.select_subscribed && !out.select_special_use {
        return Err(ShimError::Invalid(
            "RECURSIVEMATCH needs another selection option",
        ));
    }
    Ok(())
}

fn return_options(options: &[Tok<'_>], out: &mut ListExt) -> Result<(), ShimError> {
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match upper_atom(option).as_deref() {
            Some("SUBSCRIBED") => out.return_subscribed = true,
            Some("CHILDREN") => out.return_children = true,
            Some("SPECIAL-USE") => out.return_special_use = true,
            // RFC 5819 §2: STATUS (status-att ...)
            Some("STATUS") => {
                let Some(Tok::List(items)) = options.next() else {
                    return Err(ShimError::Syntax);
                };
                out.return_status = Some(list_status_items(items.clone())?);
            }
            _ => return Err(ShimError::Invalid("unknown LIST return option")),
        }
    }
    Ok(())
}

/// Standard STATUS items are decoded by imap-codec through a probe STATUS command.
fn list_status_items(
    items: Vec<Tok<'_>>,
) -> Result<(Vec<StatusDataItemName>, Vec<StatusExt>), ShimError> {
    let (standard, lifted) = split_status_items(items);
    let mut probe = b"x STATUS INBOX ".to_vec();
    serialize(&[Tok::List(standard)], &mut probe);
    probe.extend_from_slice(b"\r\n");
    match CommandCodec::new().decode(&probe) {
        Ok(([], command)) => match command.body {
            CommandBody::Status { item_names, .. } => Ok((item_names.into_owned(), lifted)),
            _ => Err(ShimError::Syntax),
        },
        _ => Err(ShimError::Invalid("invalid STATUS item")),
    }
}

/// RFC 6154 §3 CREATE mailbox (USE (attributes)).
fn create(toks: &mut Vec<Tok<'_>>, ext: &mut Ext) -> Result<bool, ShimError> {
    if toks.len() != 4 {
        return Ok(false);
    }
    let Some(Tok::List(params)) = toks.last() else {
        return Ok(false);
    };
    let [keyword, Tok::List(attributes)] = params.as_slice() else {
        return Err(ShimError::Syntax);
    };
    if !keyword.is_atom("USE") || attributes.is_empty() {
        return Err(ShimError::Syntax);
    }
    let mut uses = Vec::with_capacity(attributes.len());
    for attribute in attributes {
        let name = attribute
            .as_atom()
            .filter(|atom| atom.len() > 1 && atom[0] == b'\\')
            .ok_or(ShimError::Invalid("invalid special-use attribute"))?;
        uses.push(String::from_utf8_lossy(name).into_owned());
    }
    toks.pop();
    ext.create_use = Some(uses);
    Ok(true)
}

#[cfg(test)]
mod tests;
