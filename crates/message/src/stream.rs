//! [`StreamingSummarizer`]: the [`MessageSummary`] computed from the message in chunks, with
//! memory bounded by header sizes and nesting depth. [`crate::summarize`] wraps it.
//!
//! The structure scan replays, byte by byte, the part-splitting rules of mail-parser 0.11's
//! whole-message parser (the reference, [`crate::summarize_with_mail_parser`], tested equal on
//! the SpamAssassin and phishing_pot corpora); only header blocks are buffered and handed to
//! mail-parser. Those rules are looser than RFC 2046 §5.1.1 in the same way in both paths:
//! a delimiter is `--boundary` found anywhere (not only at a line start), a nested multipart
//! that is never closed runs to the end of the message, and a message/rfc822 part ends at the
//! line break before the enclosing boundary.
//!
//! Known divergences from the reference (pathological input only; none in the corpora):
//! - a header block over [`MAX_HEADER_BLOCK`] bytes is parsed from its first
//!   [`MAX_HEADER_BLOCK`] bytes;
//! - more than [`MAX_FRAMES`] open multipart/message levels, or boundaries longer than
//!   [`MAX_BOUNDARY`] bytes: the excess structure is read as an opaque leaf;
//! - more than [`MAX_WAITERS`] nested multiparts whose first boundary is still unseen: the
//!   newest ones are taken as never found;
//! - a message/rfc822 part whose content is itself an unencoded message/rfc822, closed by the
//!   enclosing multipart's final delimiter right after the inner message: mail-parser mislabels
//!   a part there; this path closes the message normally;
//! - inputs on which mail-parser's body decoders panic (the reference then falls back to
//!   a one-part summary; e.g. a debug-build overflow in its quoted-printable decoder) are
//!   summarised normally.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use mail_parser::{Header, HeaderName, HeaderValue, MessageParser};

use crate::body::{self, DefaultType};
use crate::model::{BodyPart, EmbeddedMessage, Envelope, MessageSummary};
use crate::{envelope, MAX_DEPTH, MAX_PARTS};

/// Header bytes kept per header block; further bytes of the block are counted only.
pub const MAX_HEADER_BLOCK: usize = 256 * 1024;
/// Open multipart/message levels tracked; deeper structure is read as an opaque leaf.
pub const MAX_FRAMES: usize = 4096;
/// Longest boundary followed; RFC 2046 §5.1.1 allows 70 characters.
pub const MAX_BOUNDARY: usize = 4000;
/// Multiparts whose first boundary may still appear later, tracked at once.
pub const MAX_WAITERS: usize = 4;

/// mail-parser confirmations of a header block's end, per block.
const MAX_HEADER_CHECKS: usize = 16;
/// Recent bytes kept so offsets just before a boundary can be resolved. Power of two.
const HIST: usize = 8192;
/// Recent line breaks remembered (a boundary may itself contain line breaks).
const LINE_BREAKS: usize = 8;

/// A position in the input with what line counting needs there.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Mark {
    off: u64,
    /// LFs before `off`.
    lfs: u64,
    /// The byte before `off` is an LF.
    prev_lf: bool,
}

/// Input position, counters and a little history, shared by all speculative branches.
struct Stream {
    pos: u64,
    lfs: u64,
    prev1: u8,
    prev2: u8,
    hist: Vec<u8>,
    /// Last line breaks: (LF position, mark at the line break's first byte, CR or LF).
    breaks: [(u64, Mark); LINE_BREAKS],
    breaks_seen: u64,
    /// For the fallback summary: start of the current line and the first blank line's end.
    line_start: u64,
    first_blank: Option<Mark>,
}

impl Stream {
    fn new() -> Self {
        Stream {
            pos: 0,
            lfs: 0,
            prev1: 0,
            prev2: 0,
            hist: vec![0; HIST],
            breaks: [(0, Mark::default()); LINE_BREAKS],
            breaks_seen: 0,
            line_start: 0,
            first_blank: None,
        }
    }

    #[inline]
    fn advance(&mut self, c: u8) {
        if let Some(slot) = self.hist.get_mut(self.pos as usize & (HIST - 1)) {
            *slot = c;
        }
        if c == b'\n' {
            self.line_break();
        }
        self.pos += 1;
        self.prev2 = self.prev1;
        self.prev1 = c;
    }

    /// [`Stream::advance`] over bytes known to hold no LF.
    fn advance_plain(&mut self, run: &[u8]) {
        let tail = run
            .get(run.len().saturating_sub(HIST)..)
            .unwrap_or_default();
        let mut at = (self.pos + (run.len() - tail.len()) as u64) as usize & (HIST - 1);
        let mut left = tail;
        while !left.is_empty() {
            let room = (HIST - at).min(left.len());
            let (now, later) = left.split_at(room);
            if let Some(dst) = self.hist.get_mut(at..at + room) {
                dst.copy_from_slice(now);
            }
            left = later;
            at = 0;
        }
        self.pos += run.len() as u64;
        match run {
            [.., a, b] => {
                self.prev2 = *a;
                self.prev1 = *b;
            }
            [b] => {
                self.prev2 = self.prev1;
                self.prev1 = *b;
            }
            [] => {}
        }
    }

    fn line_break(&mut self) {
        let mark = if self.prev1 == b'\r' && self.pos > 0 {
            Mark {
                off: self.pos - 1,
                lfs: self.lfs,
                prev_lf: self.prev2 == b'\n',
            }
        } else {
            Mark {
                off: self.pos,
                lfs: self.lfs,
                prev_lf: self.prev1 == b'\n',
            }
        };
        if let Some(slot) = self
            .breaks
            .get_mut((self.breaks_seen % LINE_BREAKS as u64) as usize)
        {
            *slot = (self.pos, mark);
        }
        self.breaks_seen += 1;
        // raw::header_end: the first line that is empty or a lone CR.
        let len = self.pos - self.line_start;
        if self.first_blank.is_none() && (len == 0 || (len == 1 && self.prev1 == b'\r')) {
            self.first_blank = Some(Mark {
                off: self.pos + 1,
                lfs: self.lfs + 1,
                prev_lf: true,
            });
        }
        self.lfs += 1;
        self.line_start = self.pos + 1;
    }

    fn now(&self) -> Mark {
        Mark {
            off: self.pos,
            lfs: self.lfs,
            prev_lf: self.prev1 == b'\n',
        }
    }

    fn byte_at(&self, off: u64) -> Option<u8> {
        if off >= self.pos || self.pos - off > HIST as u64 {
            return None;
        }
        self.hist.get(off as usize & (HIST - 1)).copied()
    }

    /// Mark of a recent position (within the history window; best effort beyond it).
    fn mark_at(&self, off: u64) -> Mark {
        let off = off.min(self.pos);
        let back = (off..self.pos)
            .filter(|&i| self.byte_at(i) == Some(b'\n'))
            .count() as u64;
        Mark {
            off,
            lfs: self.lfs.saturating_sub(back),
            prev_lf: off > 0 && self.byte_at(off - 1) == Some(b'\n'),
        }
    }

    /// The last line break whose LF lies in `from..before`, as mail-parser's scanners record
    /// it: the CR of a CRLF, else the LF.
    fn line_break_in(&self, from: u64, before: u64) -> Option<Mark> {
        let kept = self.breaks_seen.min(LINE_BREAKS as u64);
        (1..=kept)
            .filter_map(|back| {
                let i = (self.breaks_seen - back) % LINE_BREAKS as u64;
                self.breaks.get(i as usize).copied()
            })
            .find(|(lf, _)| *lf < before)
            .filter(|(lf, _)| *lf >= from)
            .map(|(_, mark)| mark)
    }
}

/// `--boundary` with its KMP failure table, shared by every scan for it.
struct Pattern {
    bytes: Vec<u8>,
    fail: Vec<usize>,
}

impl Pattern {
    fn new(boundary: &[u8]) -> Arc<Pattern> {
        let mut bytes = b"--".to_vec();
        bytes.extend_from_slice(boundary);
        let mut fail = vec![0; bytes.len()];
        let mut k = 0;
        for i in 1..bytes.len() {
            while k > 0 && bytes.get(i) != bytes.get(k) {
                k = fail.get(k - 1).copied().unwrap_or(0);
            }
            if bytes.get(i) == bytes.get(k) {
                k += 1;
            }
            if let Some(f) = fail.get_mut(i) {
                *f = k;
            }
        }
        Arc::new(Pattern { bytes, fail })
    }
}

/// Finds the first `--boundary` at or after the position it was created at (mail-parser
/// looks for the delimiter anywhere, not only at line starts).
#[derive(Clone)]
struct Matcher {
    pat: Arc<Pattern>,
    state: usize,
}

impl Matcher {
    fn new(pat: &Arc<Pattern>) -> Self {
        Matcher {
            pat: Arc::clone(pat),
            state: 0,
        }
    }

    /// Feeds one byte; true when it completes a match.
    #[inline]
    fn step(&mut self, c: u8) -> bool {
        if self.state == 0 && c != b'-' {
            return false;
        }
        let bytes = &self.pat.bytes;
        while self.state > 0 && bytes.get(self.state) != Some(&c) {
            self.state = self.pat.fail.get(self.state - 1).copied().unwrap_or(0);
        }
        if bytes.get(self.state) == Some(&c) {
            self.state += 1;
            if self.state == bytes.len() {
                self.state = 0;
                return true;
            }
        }
        false
    }
}

/// What mail-parser made of a part's content (its `PartType`, as far as the tree cares).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Multipart,
    Message,
    Other,
}

/// A part that will appear in the summary, with raw offsets; clamping and exposure are
/// decided at the end, as the reference tree builder does.
#[derive(Clone)]
struct Node {
    part: BodyPart,
    depth: usize,
    header: Mark,
    body: Mark,
    end: Option<Mark>,
    kind: Kind,
    children: Vec<usize>,
    /// For a message part: its root, when that is part of the summary.
    root: Option<usize>,
    /// For a nested message's root: that message's envelope.
    envelope: Option<Envelope>,
}

/// One level of mail-parser's parser state stack.
#[derive(Clone)]
struct Frame {
    /// A (nested or top-level) message; otherwise a multipart.
    message: bool,
    /// multipart/digest: parts without Content-Type are messages (RFC 2046 §5.1.5).
    digest: bool,
    boundary: Option<Arc<Pattern>>,
    /// The frame's own part in the summary (`None` for the top level or hidden parts).
    node: Option<usize>,
    /// Message frames: the root part has been read.
    has_root: bool,
}

#[derive(Clone)]
enum Mode {
    /// Collecting a header block.
    Headers,
    /// After a multipart's first delimiter: rest of that line (mail-parser `skip_crlf`).
    SkipCrlf,
    /// A leaf's content, up to the enclosing delimiter (or the end when there is none).
    Leaf {
        matcher: Option<Matcher>,
        start: Mark,
        node: Option<usize>,
    },
    /// Right after a delimiter: `--` closes the multipart, anything else starts a part.
    AfterDelimiter { start: Mark, first: Option<u8> },
    /// A multipart was closed: skip to the enclosing multipart's next delimiter.
    SeekAncestor {
        matcher: Matcher,
        start: Mark,
        node: Option<usize>,
    },
    /// mail-parser stopped reading at this mark; the rest is epilogue.
    Done(Mark),
}

#[derive(Clone, Copy)]
enum HeaderState {
    /// At a line start; `in_field`: right after a field value, which WSP would continue.
    LineStart {
        in_field: bool,
    },
    /// Skipping whitespace before a field name or the blank line's LF.
    Blank {
        after_value: bool,
    },
    Name {
        token: bool,
    },
    Value,
}

/// Parser state that a speculative branch can copy.
#[derive(Clone)]
struct Machine {
    mode: Mode,
    frames: Vec<Frame>,
    nodes: Vec<Node>,
    budget: usize,
    header: Vec<u8>,
    header_state: HeaderState,
    header_start: Mark,
    /// mail-parser end-of-block confirmations spent on the current block.
    header_checks: usize,
    /// Start offset of the last delimiter matched.
    last_match: u64,
    top: Option<MessageSummary>,
    /// mail-parser (a third-party parser fed hostile bytes) panicked on a header block.
    poisoned: bool,
}

/// A multipart whose first delimiter has not been seen yet: if it appears, the parse restarts
/// from `snapshot` with the multipart open; until then the part is read as a leaf.
struct Waiter {
    matcher: Matcher,
    snapshot: Machine,
    frame: Frame,
}

/// Builds a [`MessageSummary`] from a message fed in chunks of any size; chunking never
/// changes the result. Equal to the mail-parser reference on the concatenated input except
/// for the rare pathological cases listed in the module notes. Retains at most one header
/// block (256 KiB), a fixed 8 KiB history, and one entry per open multipart/message level
/// besides the summary itself.
pub struct StreamingSummarizer {
    st: Stream,
    m: Machine,
    waiters: Vec<Waiter>,
    parser: MessageParser,
}

impl Default for StreamingSummarizer {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamingSummarizer {
    pub fn new() -> Self {
        StreamingSummarizer {
            st: Stream::new(),
            m: Machine {
                mode: Mode::Headers,
                frames: vec![Frame {
                    message: true,
                    digest: false,
                    boundary: None,
                    node: None,
                    has_root: false,
                }],
                nodes: Vec::new(),
                budget: MAX_PARTS,
                header: Vec::new(),
                header_state: HeaderState::LineStart { in_field: false },
                header_start: Mark::default(),
                header_checks: 0,
                last_match: 0,
                top: None,
                poisoned: false,
            },
            waiters: Vec::new(),
            parser: MessageParser::default(),
        }
    }

    /// Feeds the next bytes of the message. Any chunking gives the same result.
    pub fn feed(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while let Some((&c, tail)) = rest.split_first() {
            let plain = self.plain_run(rest);
            if plain > 0 {
                let (run, after) = rest.split_at(plain.min(rest.len()));
                self.st.advance_plain(run);
                rest = after;
                continue;
            }
            rest = tail;
            self.st.advance(c);
            if !self.waiters.is_empty() && self.wake_waiter(c) {
                continue;
            }
            self.byte(c);
        }
    }

    /// Length of the leading run of `bytes` that cannot change any state but the position:
    /// content bytes that are neither an LF nor the start of a delimiter.
    fn plain_run(&self, bytes: &[u8]) -> usize {
        if !self.waiters.is_empty() {
            return 0;
        }
        let dash_matters = match &self.m.mode {
            Mode::Leaf { matcher: None, .. } | Mode::Done(_) => false,
            Mode::Leaf {
                matcher: Some(m), ..
            }
            | Mode::SeekAncestor { matcher: m, .. } => {
                if m.state != 0 {
                    return 0;
                }
                true
            }
            _ => return 0,
        };
        bytes
            .iter()
            .position(|&b| b == b'\n' || (dash_matters && b == b'-'))
            .unwrap_or(bytes.len())
    }

    /// Bytes held by the summarizer's working buffers (header block, history, boundaries,
    /// speculative copies), excluding the summary being built. Stays small whatever the
    /// body size.
    pub fn retained_bytes(&self) -> usize {
        let machine = |m: &Machine| {
            m.header.capacity()
                + m.frames.len() * std::mem::size_of::<Frame>()
                + m.frames
                    .iter()
                    .filter_map(|f| f.boundary.as_ref())
                    .map(|p| p.bytes.len() * (1 + std::mem::size_of::<usize>()))
                    .sum::<usize>()
        };
        self.st.hist.len()
            + machine(&self.m)
            + self
                .waiters
                .iter()
                .map(|w| machine(&w.snapshot))
                .sum::<usize>()
    }

    /// The summary of everything fed.
    pub fn finish(mut self) -> MessageSummary {
        let end = self.st.now();
        let at = match std::mem::replace(&mut self.m.mode, Mode::Done(end)) {
            Mode::Done(at) => at,
            Mode::Leaf { node, .. } => {
                // No delimiter: the leaf runs to the end (mail-parser `seek_part_end`).
                self.set_end(node, end);
                end
            }
            Mode::SeekAncestor { node, start, .. } => {
                self.set_end(node, start);
                start
            }
            Mode::Headers => {
                if self.m.frames.len() == 1 && !self.top_frame().has_root {
                    return self.headers_only(end);
                }
                end
            }
            Mode::SkipCrlf | Mode::AfterDelimiter { .. } => end,
        };
        if self.m.poisoned {
            return self.fallback(end);
        }
        self.recover(at);
        self.assemble(end)
    }

    fn top_frame(&self) -> &Frame {
        // The top-level frame is never popped.
        self.m.frames.last().unwrap_or_else(|| unreachable_frame())
    }

    #[inline]
    fn byte(&mut self, c: u8) {
        match &mut self.m.mode {
            Mode::Leaf { matcher, .. } => {
                if let Some(m) = matcher {
                    if m.step(c) {
                        self.leaf_end();
                    }
                }
            }
            Mode::Headers => {
                if let Some(after_value) = self.header_byte(c) {
                    self.block_end(after_value);
                }
            }
            Mode::SkipCrlf => match c {
                b'\r' | b' ' | b'\t' => {}
                b'\n' => self.start_headers(self.st.now()),
                _ => {
                    self.start_headers(self.before_now());
                    self.byte(c);
                }
            },
            Mode::AfterDelimiter { start, first } => {
                let (start, first) = (*start, *first);
                self.after_delimiter(start, first, c);
            }
            Mode::SeekAncestor { matcher, .. } => {
                if matcher.step(c) {
                    self.ancestor_found();
                }
            }
            Mode::Done(_) => {}
        }
    }

    fn before_now(&self) -> Mark {
        self.st.mark_at(self.st.pos.saturating_sub(1))
    }

    // ---- header blocks (mail-parser `parse_headers` line rules) ----

    fn start_headers(&mut self, start: Mark) {
        self.m.mode = Mode::Headers;
        self.m.header.clear();
        self.m.header_state = HeaderState::LineStart { in_field: false };
        self.m.header_start = start;
        self.m.header_checks = 0;
    }

    /// One header byte; `Some(after_value)` when it may end the block (a blank line's LF).
    #[inline]
    fn header_byte(&mut self, c: u8) -> Option<bool> {
        if self.m.header.len() < MAX_HEADER_BLOCK {
            self.m.header.push(c);
        }
        let state = match self.m.header_state {
            // A field value continues on lines starting with WSP (RFC 5322 §2.2.3).
            HeaderState::LineStart { in_field: true } if c == b' ' || c == b'\t' => {
                HeaderState::Value
            }
            HeaderState::LineStart {
                in_field: after_value,
            }
            | HeaderState::Blank { after_value } => match c {
                b'\n' => return Some(after_value),
                _ if c.is_ascii_whitespace() => HeaderState::Blank { after_value },
                _ => HeaderState::Name { token: c != b':' },
            },
            HeaderState::Name { token } => match c {
                b':' if token => HeaderState::Value,
                b'\n' => HeaderState::LineStart { in_field: false },
                _ => HeaderState::Name {
                    token: token || (c != b':' && !c.is_ascii_whitespace()),
                },
            },
            HeaderState::Value if c == b'\n' => HeaderState::LineStart { in_field: true },
            HeaderState::Value => HeaderState::Value,
        };
        self.m.header_state = state;
        None
    }

    /// A blank line ends the block by the line rules. Right after a field value, confirm it
    /// with mail-parser itself (whose field parsers occasionally read past a line break, e.g.
    /// the obsolete-zone Date parser after "UT"), in the same pass that parses the fields.
    /// Confirmations per block are capped so a hostile block costs linear time.
    fn block_end(&mut self, after_value: bool) {
        let mut block = std::mem::take(&mut self.m.header);
        let len = block.len();
        let verify =
            after_value && self.m.header_checks < MAX_HEADER_CHECKS && len < MAX_HEADER_BLOCK;
        if verify {
            self.m.header_checks += 1;
            // A non-blank byte after the block: mail-parser's end test never looks at it.
            block.push(b'X');
        }
        let parser = &self.parser;
        let parsed = catch_unwind(AssertUnwindSafe(|| {
            if verify {
                parser.parse(&block)
            } else {
                parser.parse_headers(&block)
            }
        }));
        let headers = match parsed {
            Ok(Some(mut message)) => {
                let first = message.parts.drain(..).next();
                if verify
                    && first
                        .as_ref()
                        .is_some_and(|p| p.offset_body as usize != len)
                {
                    // Not the end for mail-parser: the field goes on past this line.
                    drop(first);
                    drop(message);
                    block.truncate(len);
                    self.m.header = block;
                    self.m.header_state = HeaderState::LineStart { in_field: true };
                    return;
                }
                first.map(|p| p.headers).unwrap_or_default()
            }
            Ok(None) => Vec::new(),
            Err(_) => {
                self.m.poisoned = true;
                Vec::new()
            }
        };
        self.headers_done(block.get(..len).unwrap_or_default(), &headers);
        drop(headers);
        block.clear();
        if block.capacity() <= 16 * 1024 {
            self.m.header = block;
        }
    }

    fn parse_block<'b>(&mut self, block: &'b [u8]) -> Vec<Header<'b>> {
        let parser = &self.parser;
        match catch_unwind(AssertUnwindSafe(|| parser.parse_headers(block))) {
            Ok(Some(mut message)) => message
                .parts
                .drain(..)
                .next()
                .map(|p| p.headers)
                .unwrap_or_default(),
            Ok(None) => Vec::new(),
            Err(_) => {
                self.m.poisoned = true;
                Vec::new()
            }
        }
    }

    /// A complete header block: mail-parser's per-part decisions.
    fn headers_done(&mut self, block: &[u8], headers: &[Header<'_>]) {
        let body = self.st.now();
        let node = self.new_part(block, headers, body);

        let ct = headers
            .iter()
            .rev()
            .find(|h| h.name == HeaderName::ContentType)
            .and_then(|h| h.value.as_content_type());
        let parent_digest = self.top_frame().digest;
        let (multipart, mut message, digest) = match ct {
            Some(ct) => match ct.ctype() {
                "multipart" => (true, false, ct.subtype() == Some("digest")),
                "message" => (
                    false,
                    matches!(ct.subtype(), Some("rfc822" | "global")),
                    false,
                ),
                _ => (false, false, false),
            },
            None => (false, parent_digest, false),
        };
        if multipart {
            let boundary = ct.and_then(|c| c.attribute("boundary")).map(str::as_bytes);
            if let Some(boundary) = boundary.filter(|b| !b.is_empty()) {
                self.wait_for_first_delimiter(boundary, digest, node);
            }
            message = false;
        }
        let encoded = matches!(
            headers.iter().rev().find(|h| h.name == HeaderName::ContentTransferEncoding)
                .map(|h| &h.value),
            Some(HeaderValue::Text(e)) if e.eq_ignore_ascii_case("base64")
                || e.eq_ignore_ascii_case("quoted-printable")
        );
        if message && !encoded && self.m.frames.len() < MAX_FRAMES {
            let boundary = self.m.frames.last_mut().and_then(|f| f.boundary.take());
            self.m.frames.push(Frame {
                message: true,
                digest: false,
                boundary,
                node,
                has_root: false,
            });
            self.start_headers(body);
            return;
        }
        let matcher = self.top_frame().boundary.as_ref().map(Matcher::new);
        self.m.mode = Mode::Leaf {
            matcher,
            start: body,
            node,
        };
    }

    /// Registers the part whose header block just ended; returns its node when it will
    /// appear in the summary (pre-order, as the reference spends its part budget).
    fn new_part(&mut self, block: &[u8], headers: &[Header<'_>], body: Mark) -> Option<usize> {
        let frames = self.m.frames.len();
        let frame = self.m.frames.last_mut()?;
        let in_message = frame.message;
        let is_root = in_message && !frame.has_root;
        let top_root = is_root && frames == 1;
        if is_root {
            frame.has_root = true;
        }
        let parent = frame.node;
        if top_root {
            self.m.top = Some(crate::header_fields(block, headers));
        }
        let (depth, default) = if top_root {
            (0, DefaultType::Text)
        } else {
            let parent_node = self.m.nodes.get(parent?)?;
            // A nested message shows only its root, and only when its bytes are the raw
            // message (identity encoding); a multipart shows every part.
            let shown = if in_message {
                is_root && body::is_identity_encoding(&parent_node.part.encoding)
            } else {
                true
            };
            if !shown || parent_node.depth >= MAX_DEPTH {
                return None;
            }
            let default = if !in_message && parent_node.part.subtype == "DIGEST" {
                DefaultType::Message
            } else {
                DefaultType::Text
            };
            (parent_node.depth + 1, default)
        };
        self.m.budget = self.m.budget.checked_sub(1)?;
        let id = self.m.nodes.len();
        self.m.nodes.push(Node {
            part: body::leaf(block, headers, default),
            depth,
            header: self.m.header_start,
            body,
            end: None,
            kind: Kind::Other,
            children: Vec::new(),
            root: None,
            envelope: (is_root && !top_root).then(|| envelope::envelope(block, headers)),
        });
        if let Some(parent) = parent.and_then(|p| self.m.nodes.get_mut(p)) {
            if is_root {
                parent.root = Some(id);
            } else {
                parent.children.push(id);
            }
        }
        Some(id)
    }

    /// Top-level header block without a blank line: mail-parser's "message without a body".
    fn headers_only(mut self, end: Mark) -> MessageSummary {
        let block = std::mem::take(&mut self.m.header);
        let headers = self.parse_block(&block);
        if headers.is_empty() || self.m.poisoned {
            return self.fallback(end);
        }
        let mut summary = crate::header_fields(&block, &headers);
        let mut part = body::leaf(&block, &headers, DefaultType::Text);
        if body::is_multipart(&part) || body::is_message(&part) {
            body::make_opaque(&mut part);
        }
        part.body_offset = end.off;
        part.end_offset = end.off;
        if part.content_type == "TEXT" {
            part.lines = Some(0);
        }
        summary.body = part;
        summary
    }

    fn fallback(&self, end: Mark) -> MessageSummary {
        let body = self.st.first_blank.unwrap_or(end);
        crate::fallback_summary(body.off, end.off, lines(body, end))
    }

    // ---- multipart delimiters ----

    fn wait_for_first_delimiter(&mut self, boundary: &[u8], digest: bool, node: Option<usize>) {
        if boundary.len() > MAX_BOUNDARY
            || self.waiters.len() >= MAX_WAITERS
            || self.m.frames.len() >= MAX_FRAMES
        {
            return;
        }
        let pat = Pattern::new(boundary);
        if let Some(n) = node.and_then(|n| self.m.nodes.get_mut(n)) {
            n.kind = Kind::Multipart;
        }
        let snapshot = self.m.clone();
        if let Some(n) = node.and_then(|n| self.m.nodes.get_mut(n)) {
            n.kind = Kind::Other;
        }
        self.waiters.push(Waiter {
            matcher: Matcher::new(&pat),
            frame: Frame {
                message: false,
                digest,
                boundary: Some(pat),
                node,
                has_root: false,
            },
            snapshot,
        });
    }

    /// Steps every waiter; the oldest that matches wins and later branches are dropped.
    fn wake_waiter(&mut self, c: u8) -> bool {
        let mut found = None;
        for (i, w) in self.waiters.iter_mut().enumerate() {
            if w.matcher.step(c) && found.is_none() {
                found = Some(i);
            }
        }
        let Some(i) = found else {
            return false;
        };
        let mut rest = self.waiters.split_off(i);
        let Some(w) = rest.drain(..).next() else {
            return false;
        };
        self.m = w.snapshot;
        self.m.frames.push(w.frame);
        self.m.mode = Mode::SkipCrlf;
        true
    }

    /// The leaf's delimiter matched: its end is the line break before `--` when the
    /// delimiter starts a line, else the `--` itself (mail-parser `mime_part`).
    fn leaf_end(&mut self) {
        let Mode::Leaf { start, node, .. } = self.m.mode.clone() else {
            return;
        };
        let s = self.match_start();
        let end = if s <= start.off {
            start
        } else if self.st.byte_at(s - 1) == Some(b'\n') {
            self.st.line_break_in(start.off, s).unwrap_or(start)
        } else {
            self.st.mark_at(s)
        };
        self.set_end(node, end);
        self.delimiter_done();
    }

    fn match_start(&mut self) -> u64 {
        let len = self
            .top_frame()
            .boundary
            .as_ref()
            .map_or(0, |p| p.bytes.len());
        let s = self.st.pos.saturating_sub(len as u64);
        self.m.last_match = s;
        s
    }

    /// mail-parser's inner loop after a delimiter: a message frame ends there, then the
    /// delimiter's suffix decides between next part and close.
    fn delimiter_done(&mut self) {
        if self.top_frame().message && self.m.frames.len() > 1 {
            self.pop_message();
        }
        self.m.mode = Mode::AfterDelimiter {
            start: self.st.now(),
            first: None,
        };
    }

    /// Ends a nested message at the line break before the delimiter that ended its content.
    fn pop_message(&mut self) {
        let Some(frame) = self.m.frames.pop() else {
            return;
        };
        let s = self.m.last_match;
        let end = if s >= 2 && self.st.byte_at(s - 2) == Some(b'\r') {
            s - 2
        } else {
            s.saturating_sub(1)
        };
        let end = self.st.mark_at(end);
        self.close_message(&frame, end);
        if let Some(parent) = self.m.frames.last_mut() {
            parent.boundary = frame.boundary;
        }
    }

    fn close_message(&mut self, frame: &Frame, end: Mark) {
        if let Some(n) = frame.node.and_then(|n| self.m.nodes.get_mut(n)) {
            n.end = Some(end);
            n.kind = if frame.has_root {
                Kind::Message
            } else {
                Kind::Other
            };
        }
    }

    /// mail-parser `is_multipart_end`: looks at up to two bytes after a delimiter.
    fn after_delimiter(&mut self, start: Mark, first: Option<u8>, c: u8) {
        match (first, c) {
            (None, b'\r' | b'-') => {
                self.m.mode = Mode::AfterDelimiter {
                    start,
                    first: Some(c),
                };
            }
            (None, b'\n') => self.start_headers(self.st.now()),
            (None, _) if c.is_ascii_whitespace() => {
                self.m.mode = Mode::SkipCrlf;
            }
            (None, _) => {
                self.start_headers(start);
                self.byte(c);
            }
            (Some(b'\r'), b'\n') => self.start_headers(self.st.now()),
            (Some(b'\r'), _) => {
                // A lone CR is whitespace: skip_crlf from this byte.
                self.m.mode = Mode::SkipCrlf;
                self.byte(c);
            }
            (Some(_), b'-') => self.close_multipart(),
            (Some(first), _) => {
                // Not a close: the next part's headers start at the first byte.
                self.start_headers(start);
                self.byte(first);
                self.byte(c);
            }
        }
    }

    /// `--boundary--`: the multipart ends at the enclosing multipart's next delimiter.
    fn close_multipart(&mut self) {
        if self.top_frame().message || self.m.frames.len() < 2 {
            // Only the quirk in the module notes leads here; close the message instead.
            self.pop_message();
            self.m.mode = Mode::Done(self.st.now());
            return;
        }
        let Some(frame) = self.m.frames.pop() else {
            return;
        };
        let now = self.st.now();
        match self.top_frame().boundary.as_ref().map(Matcher::new) {
            Some(matcher) => {
                self.m.mode = Mode::SeekAncestor {
                    matcher,
                    start: now,
                    node: frame.node,
                };
            }
            None => {
                self.set_end(frame.node, now);
                self.m.mode = Mode::Done(now);
            }
        }
    }

    /// mail-parser `seek_next_part_offset`: the closed multipart ends at the last line
    /// break before the enclosing delimiter (or where the scan began).
    fn ancestor_found(&mut self) {
        let Mode::SeekAncestor { start, node, .. } = self.m.mode.clone() else {
            return;
        };
        let s = self.match_start();
        let end = self.st.line_break_in(start.off, s).unwrap_or(start);
        self.set_end(node, end);
        self.delimiter_done();
    }

    fn set_end(&mut self, node: Option<usize>, end: Mark) {
        if let Some(n) = node.and_then(|n| self.m.nodes.get_mut(n)) {
            n.end = Some(end);
        }
    }

    /// mail-parser's recovery for a truncated structure: everything still open ends at `at`.
    fn recover(&mut self, at: Mark) {
        while self.m.frames.len() > 1 {
            let Some(frame) = self.m.frames.pop() else {
                break;
            };
            if frame.message {
                self.close_message(&frame, at);
            } else {
                self.set_end(frame.node, at);
            }
        }
    }

    fn assemble(mut self, end: Mark) -> MessageSummary {
        let Some(mut summary) = self.m.top.take() else {
            return self.fallback(end);
        };
        if let Some(root) = self.m.nodes.first_mut() {
            root.end = Some(end);
        }
        let start = Mark::default();
        match resolve(&mut self.m.nodes, 0, start, end) {
            Some((body, _)) => summary.body = body,
            None => return self.fallback(end),
        }
        summary
    }
}

fn unreachable_frame() -> &'static Frame {
    static TOP: Frame = Frame {
        message: true,
        digest: false,
        boundary: None,
        node: None,
        has_root: true,
    };
    &TOP
}

/// RFC 9051 §7.5.2 body-fld-lines between two marks (as `raw::LineIndex::lines`).
fn lines(start: Mark, end: Mark) -> u64 {
    if end.off <= start.off {
        return 0;
    }
    let lfs = end.lfs.saturating_sub(start.lfs);
    if end.prev_lf {
        lfs
    } else {
        lfs + 1
    }
}

/// `v` kept within `lo..=max(hi, lo)` (as `body::clamp_offsets`).
fn clamp(v: Mark, lo: Mark, hi: Mark) -> Mark {
    let hi = if hi.off < lo.off { lo } else { hi };
    if v.off < lo.off {
        lo
    } else if v.off > hi.off {
        hi
    } else {
        v
    }
}

/// Turns node `id` into its BodyPart within the parent's body bounds, as the reference tree
/// builder does: clamp offsets, expose or make opaque, count lines.
fn resolve(nodes: &mut [Node], id: usize, lo: Mark, hi: Mark) -> Option<(BodyPart, Envelope)> {
    let node = nodes.get_mut(id)?;
    let mut part = std::mem::take(&mut node.part);
    let header = clamp(node.header, lo, hi);
    let body = clamp(node.body, header, hi);
    let end = clamp(node.end.unwrap_or(hi), body, hi);
    let (kind, children, root) = (node.kind, std::mem::take(&mut node.children), node.root);
    let envelope = node.envelope.take().unwrap_or_default();
    part.header_offset = header.off;
    part.body_offset = body.off;
    part.end_offset = end.off;
    let exposed = match kind {
        Kind::Multipart => {
            for child in children {
                if let Some((c, _)) = resolve(nodes, child, body, end) {
                    part.children.push(c);
                }
            }
            let any = !part.children.is_empty();
            if any && part.content_type != "MULTIPART" {
                part.content_type = "MULTIPART".into();
                part.subtype = "MIXED".into();
            }
            any
        }
        Kind::Message => match root.and_then(|r| resolve(nodes, r, body, end)) {
            Some((inner, envelope)) => {
                if !body::is_message(&part) {
                    part.content_type = "MESSAGE".into();
                    part.subtype = "RFC822".into();
                }
                part.embedded = Some(Box::new(EmbeddedMessage {
                    envelope,
                    body: inner,
                }));
                true
            }
            None => false,
        },
        Kind::Other => !body::is_multipart(&part) && !body::is_message(&part),
    };
    if !exposed {
        body::make_opaque(&mut part);
    }
    if part.content_type == "TEXT" || part.embedded.is_some() {
        part.lines = Some(lines(body, end));
    }
    Some((part, envelope))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matcher_finds_delimiters_that_overlap_a_false_start() {
        let pat = Pattern::new(b"-ab");
        let mut m = Matcher::new(&pat);
        let hits: Vec<usize> = b"x----ab--ab-ab"
            .iter()
            .enumerate()
            .filter_map(|(i, c)| m.step(*c).then_some(i))
            .collect();
        // "---ab" ends at index 6; "--ab" alone is not "---ab".
        assert_eq!(hits, vec![6]);
    }

    #[test]
    fn lines_counts_a_final_unterminated_line() {
        let at = |off, lfs, prev_lf| Mark { off, lfs, prev_lf };
        assert_eq!(lines(at(0, 0, false), at(0, 0, false)), 0);
        assert_eq!(lines(at(0, 0, false), at(3, 1, true)), 1);
        assert_eq!(lines(at(0, 0, false), at(4, 1, false)), 2);
    }
}
