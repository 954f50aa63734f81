//! Bytes in, events out: splits the client's byte stream into commands, literals, AUTHENTICATE
//! lines and IDLE's DONE (docs/imap-plan.md §1.4). Sans I/O: the server pushes what it read
//! and pulls events.
//!
//! Every decision about syntax is imap-codec's (`CommandCodec`, `AuthenticateDataCodec`,
//! `IdleDoneCodec`, then the shim); the framer only finds line ends and literal announcements
//! to know how many bytes make up a command. APPEND's message literal is streamed, never held.

use std::ops::Range;

use imap_codec::decode::{CommandDecodeError, Decoder};
use imap_codec::{AuthenticateDataCodec, CommandCodec, IdleDoneCodec};
use imap_types::auth::AuthenticateData;
use imap_types::command::CommandBody;
use imap_types::core::{LiteralMode, Tag};
use imap_types::datetime::DateTime;
use imap_types::extensions::binary::LiteralOrLiteral8;
use imap_types::flag::Flag;
use imap_types::mailbox::Mailbox;
use imap_types::IntoStatic;

use crate::ext::{Ext, Parsed};
use crate::shim;

/// Largest `AppendChunk`, and the capacity a partly consumed input buffer shrinks back to.
const CHUNK: usize = 64 * 1024;

/// Capacity an empty buffer may keep, so idle connections stay cheap.
const IDLE_KEEP: usize = 4 * 1024;

/// Most literals one command may carry. imap-codec re-reads the whole command at each literal,
/// so this bounds that work (to about this many times `max_command_literals`).
const MAX_LITERALS: usize = 128;

/// Size limits applied while framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramerLimits {
    /// The text of one command without its literals (all its lines together, CRLFs included).
    pub max_line: usize,
    /// Sum of all literals of one command other than APPEND's message.
    pub max_command_literals: u64,
    /// APPENDLIMIT (RFC 7889): largest APPEND message literal.
    pub max_append: u64,
}

impl Default for FramerLimits {
    fn default() -> Self {
        FramerLimits {
            max_line: 64 * 1024,
            max_command_literals: 1024 * 1024,
            max_append: 50 * 1024 * 1024,
        }
    }
}

/// What the next client line is. The server switches modes; the framer never does on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Command,
    /// After "+" for AUTHENTICATE: the next lines are SASL responses (RFC 9051 §6.2.2).
    AuthenticateData,
    /// After "+ idling": the next line should be DONE (RFC 2177).
    Idle,
}

// `Command` dominates the size; events are moved once each, and boxing it would change the API
// the server is written against.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Command(Parsed),
    /// A sync literal that is NOT an APPEND message literal and is within limits: the server must
    /// write "+ ..." now (RFC 9051 §7.5); the framer then waits for its bytes.
    ContinueLiteral,
    /// An APPEND whose message literal starts now. mailbox/flags/date were validated by
    /// decoding a copy of the command with the literal replaced (docs/imap-plan.md §1.4).
    /// For a sync literal the server writes "+" (or calls [`Framer::reject_append`] and answers
    /// NO) before pulling the next event.
    AppendStart {
        tag: Tag<'static>,
        mailbox: Mailbox<'static>,
        flags: Vec<Flag<'static>>,
        date: Option<DateTime>,
        length: u32,
        sync: bool,
        binary: bool,
    },
    /// Part of the APPEND message literal (≤ 64 KiB each), in order, `length` bytes in total.
    AppendChunk(Vec<u8>),
    /// The literal was fully received and the command line ended with CRLF.
    AppendDone,
    /// The command line after the APPEND literal was not a bare CRLF (MULTIAPPEND is not
    /// offered). The rest of the command has been skipped.
    AppendTrailingGarbage {
        tag: Tag<'static>,
    },
    /// Syntax error or unsupported command: the framer has already skipped the rest of the
    /// command (up to the CRLF that ends it, skipping announced non-sync literal bytes). `tag` is
    /// None when no valid tag could be read. `message` is short, safe to send in "BAD ...".
    /// In `Mode::AuthenticateData`, a line that is neither base64 nor "*".
    Bad {
        tag: Option<Tag<'static>>,
        message: String,
    },
    /// A literal over the limits (RFC 7889 TOOBIG / RFC 4469). For a sync literal the client will
    /// not send the bytes: `fatal: false`, the server answers "NO \[TOOBIG\]" (APPEND) or "BAD" and
    /// carries on. For a non-sync literal (LITERAL+, RFC 7888 §4) the bytes are coming anyway:
    /// `fatal: true`, the server answers and closes the connection (the framer stops).
    TooBig {
        tag: Option<Tag<'static>>,
        fatal: bool,
    },
    /// A line longer than max_line: fatal, the server sends BYE and closes (the framer stops).
    LineTooLong,
    /// Mode::AuthenticateData: one client line (base64 text, or "*" = cancel, RFC 9051 §6.2.2).
    AuthenticateData(AuthenticateData<'static>),
    /// Mode::Idle: "DONE" (RFC 2177).
    IdleDone,
    /// Mode::Idle: anything else than DONE.
    IdleBad,
}

#[derive(Debug)]
enum State {
    /// Reading a line: a new command, or the next line of `Framer::cmd` after a literal.
    Line,
    /// Copying a literal (not APPEND's message) into `Framer::cmd`.
    Literal { remaining: u64 },
    /// `AppendStart` was returned; the server may still call `reject_append`.
    AppendPending {
        tag: Tag<'static>,
        length: u32,
        sync: bool,
    },
    /// Streaming the APPEND message.
    AppendData { tag: Tag<'static>, remaining: u32 },
    /// Reading the line that must end the APPEND command.
    AppendTrailer { tag: Tag<'static> },
    /// Discarding `remaining` literal bytes, then lines up to the end of the command, then
    /// returning `then`.
    Skip {
        remaining: u64,
        then: Option<Box<Event>>,
    },
    /// After a fatal event: the connection is being closed, input is ignored.
    Dead,
}

/// A literal announcement (`{n}`, `{n+}`, `~{n}`) at the end of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Announce {
    /// Offset of `{` (or of `~`) in the buffer the line was found in.
    start: usize,
    length: u64,
    sync: bool,
    binary: bool,
}

/// What the part of an APPEND before its message literal says.
struct AppendHead {
    mailbox: Mailbox<'static>,
    flags: Vec<Flag<'static>>,
    date: Option<DateTime>,
    binary: bool,
}

#[allow(clippy::large_enum_variant)] // Carries an `Event`, see there.
enum Step {
    Emit(Event),
    NeedMore,
    Again,
}

enum LineRead {
    Line(Range<usize>),
    NeedMore,
    TooLong,
}

/// Splits the client's byte stream into [`Event`]s.
#[derive(Debug)]
pub struct Framer {
    limits: FramerLimits,
    mode: Mode,
    /// Received bytes; `input[pos..]` is not consumed yet.
    input: Vec<u8>,
    pos: usize,
    /// `input[pos..scanned]` holds no LF: where the search for a line end resumes.
    scanned: usize,
    /// The command being accumulated: its lines and literals so far.
    cmd: Vec<u8>,
    /// Bytes of `cmd` that are command text rather than literal data.
    cmd_text: usize,
    /// Literal bytes announced for this command so far.
    cmd_literals: u64,
    /// Literals of this command so far (see [`MAX_LITERALS`]).
    cmd_literal_count: usize,
    state: State,
}

impl Framer {
    pub fn new(limits: FramerLimits) -> Self {
        Framer {
            limits,
            mode: Mode::Command,
            input: Vec::new(),
            pos: 0,
            scanned: 0,
            cmd: Vec::new(),
            cmd_text: 0,
            cmd_literals: 0,
            cmd_literal_count: 0,
            state: State::Line,
        }
    }

    /// Takes effect at the next line that starts a command.
    pub fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
    }

    /// Appends received bytes (after TLS and inflate).
    pub fn push(&mut self, bytes: &[u8]) {
        if !matches!(self.state, State::Dead) {
            self.input.extend_from_slice(bytes);
        }
    }

    /// The next event, or `None` when more input is needed. `saved` is the RFC 5182 search
    /// result (UIDs) that `$` stands for; `None` when no mailbox is selected.
    pub fn next(&mut self, saved: Option<&[u32]>) -> Option<Event> {
        let event = loop {
            let step = match self.state {
                State::Line => self.step_line(saved),
                State::Literal { remaining } => self.step_literal(remaining),
                State::AppendPending { .. } => self.start_append_data(),
                State::AppendData { remaining, .. } => self.step_append_data(remaining),
                State::AppendTrailer { .. } => self.step_append_trailer(),
                State::Skip { remaining, .. } => self.step_skip(remaining),
                State::Dead => Step::NeedMore,
            };
            match step {
                Step::Emit(event) => break Some(event),
                Step::NeedMore => break None,
                Step::Again => {}
            }
        };
        self.compact();
        event
    }

    /// Whether unconsumed bytes or a partial command are held (RFC 9051 §6.2.1: nothing may
    /// follow STARTTLS in the same plaintext read).
    pub fn has_buffered_input(&self) -> bool {
        self.pos < self.input.len() || !self.cmd.is_empty() || !matches!(self.state, State::Line)
    }

    /// The bytes received but not yet consumed, removed from the framer: after COMPRESS they
    /// are compressed and must go through the inflater, then be pushed back.
    pub fn take_buffered(&mut self) -> Vec<u8> {
        let rest = self.input.split_off(self.pos);
        self.input = Vec::new();
        self.pos = 0;
        self.scanned = 0;
        rest
    }

    /// The server refused the APPEND announced by the last `AppendStart` (e.g. TRYCREATE,
    /// TOOBIG, OVERQUOTA). A sync literal was never sent: the command is dropped. A non-sync
    /// literal is coming anyway: its bytes and the rest of the command are skipped without
    /// events. Also accepted while the message is streaming (the rest is skipped).
    pub fn reject_append(&mut self) {
        self.state = match std::mem::replace(&mut self.state, State::Line) {
            State::AppendPending { sync: true, .. } => State::Line,
            State::AppendPending { length, .. } => State::Skip {
                remaining: u64::from(length),
                then: None,
            },
            State::AppendData { remaining, .. } => State::Skip {
                remaining: u64::from(remaining),
                then: None,
            },
            State::AppendTrailer { .. } => State::Skip {
                remaining: 0,
                then: None,
            },
            other => other,
        };
    }

    // ----- lines ----------------------------------------------------------------------------

    /// Finds the next line (LF-terminated, CR optional) of at most `budget` bytes.
    fn take_line(&mut self, budget: usize) -> LineRead {
        let from = self.scanned.max(self.pos);
        match self.input[from..].iter().position(|&b| b == b'\n') {
            Some(offset) => {
                let end = from + offset + 1;
                let line = self.pos..end;
                if line.len() > budget {
                    return LineRead::TooLong;
                }
                self.pos = end;
                self.scanned = end;
                LineRead::Line(line)
            }
            None => {
                self.scanned = self.input.len();
                if self.input.len() - self.pos > budget {
                    LineRead::TooLong
                } else {
                    LineRead::NeedMore
                }
            }
        }
    }

    fn step_line(&mut self, saved: Option<&[u32]>) -> Step {
        if self.cmd.is_empty() {
            match self.mode {
                Mode::Command => {}
                Mode::AuthenticateData => return self.step_authenticate_line(),
                Mode::Idle => return self.step_idle_line(),
            }
        }
        let budget = self.limits.max_line.saturating_sub(self.cmd_text);
        let line = match self.take_line(budget) {
            LineRead::Line(line) => line,
            LineRead::NeedMore => return Step::NeedMore,
            LineRead::TooLong => return self.fatal(Event::LineTooLong),
        };
        let line_start = self.cmd.len();
        self.cmd.extend_from_slice(&self.input[line]);
        self.cmd_text += self.cmd.len() - line_start;
        let announce = literal_at_end(&self.cmd[line_start..]).map(|a| Announce {
            start: line_start + a.start,
            ..a
        });
        self.classify(announce, saved)
    }

    /// RFC 9051 §6.2.2: one base64 line, or "*".
    fn step_authenticate_line(&mut self) -> Step {
        let line = match self.take_line(self.limits.max_line) {
            LineRead::Line(line) => line,
            LineRead::NeedMore => return Step::NeedMore,
            LineRead::TooLong => return self.fatal(Event::LineTooLong),
        };
        match AuthenticateDataCodec::new().decode_static(&self.input[line]) {
            Ok(([], data)) => Step::Emit(Event::AuthenticateData(data)),
            _ => Step::Emit(Event::Bad {
                tag: None,
                message: "invalid base64".to_owned(),
            }),
        }
    }

    /// RFC 2177: the only line allowed while idling is DONE.
    fn step_idle_line(&mut self) -> Step {
        let line = match self.take_line(self.limits.max_line) {
            LineRead::Line(line) => line,
            LineRead::NeedMore => return Step::NeedMore,
            LineRead::TooLong => return self.fatal(Event::LineTooLong),
        };
        match IdleDoneCodec::new().decode(&self.input[line]) {
            Ok(([], _)) => Step::Emit(Event::IdleDone),
            _ => Step::Emit(Event::IdleBad),
        }
    }

    // ----- commands -------------------------------------------------------------------------

    /// Decides what the command accumulated so far is, now that a line of it ended.
    fn classify(&mut self, announce: Option<Announce>, saved: Option<&[u32]>) -> Step {
        let decoded = match CommandCodec::new().decode(&self.cmd) {
            Ok(([], command)) => Ok(command.into_static()),
            Err(CommandDecodeError::LiteralFound { tag, length, mode }) => {
                Err(Some((tag.into_static(), length, mode)))
            }
            _ => Err(None),
        };
        match (decoded, announce) {
            (Ok(command), _) => {
                self.end_command();
                Step::Emit(Event::Command(Parsed {
                    command,
                    ext: Ext::default(),
                }))
            }
            (Err(Some((tag, length, mode))), Some(announce)) => {
                self.on_literal(tag, announce, length, mode == LiteralMode::Sync)
            }
            // imap-codec saw a literal where the framer did not: never expected, but answer it.
            (Err(Some((tag, ..))), None) => self.bad(Some(tag), None, "syntax error"),
            (Err(None), Some(announce)) => self.on_unparsed_literal(announce),
            (Err(None), None) => self.on_unparsed_command(saved),
        }
    }

    /// A literal imap-codec announced: APPEND's message, or a literal to collect.
    fn on_literal(
        &mut self,
        tag: Tag<'static>,
        announce: Announce,
        length: u32,
        sync: bool,
    ) -> Step {
        let Some(head) = self.append_probe(announce) else {
            let announce = Announce {
                length: u64::from(length),
                sync,
                ..announce
            };
            return self.accept_literal(Some(tag), announce);
        };
        if u64::from(length) > self.limits.max_append {
            return self.too_big(Some(tag), sync);
        }
        self.end_command();
        self.state = State::AppendPending {
            tag: tag.clone(),
            length,
            sync,
        };
        Step::Emit(Event::AppendStart {
            tag,
            mailbox: head.mailbox,
            flags: head.flags,
            date: head.date,
            length,
            sync,
            binary: head.binary,
        })
    }

    /// Whether the literal ending `cmd` is APPEND's message: a copy with the literal replaced by
    /// `{1}\r\nX` and the line ended decodes as APPEND (docs/imap-plan.md §1.4).
    fn append_probe(&self, announce: Announce) -> Option<AppendHead> {
        let mut probe = self.cmd[..announce.start].to_vec();
        let placeholder: &[u8] = if announce.binary {
            b"~{1}\r\nX\r\n"
        } else {
            b"{1}\r\nX\r\n"
        };
        probe.extend_from_slice(placeholder);
        match CommandCodec::new().decode(&probe) {
            Ok(([], command)) => match command.body {
                CommandBody::Append {
                    mailbox,
                    flags,
                    date,
                    message,
                } => Some(AppendHead {
                    mailbox: mailbox.into_static(),
                    flags: flags.into_static(),
                    date,
                    binary: matches!(message, LiteralOrLiteral8::Literal8(_)),
                }),
                _ => None,
            },
            _ => None,
        }
    }

    /// A literal of the command itself, counted against `max_command_literals`.
    fn accept_literal(&mut self, tag: Option<Tag<'static>>, announce: Announce) -> Step {
        let total = self.cmd_literals.saturating_add(announce.length);
        if total > self.limits.max_command_literals {
            return self.too_big(tag, announce.sync);
        }
        if self.cmd_literal_count >= MAX_LITERALS {
            return self.bad(tag, Some(announce), "too many literals");
        }
        self.cmd_literals = total;
        self.cmd_literal_count += 1;
        self.state = State::Literal {
            remaining: announce.length,
        };
        if announce.sync {
            Step::Emit(Event::ContinueLiteral)
        } else {
            Step::Again
        }
    }

    /// A literal in a command imap-codec already rejects: collected only if the shim may
    /// still rescue the command, otherwise the command is skipped.
    fn on_unparsed_literal(&mut self, announce: Announce) -> Step {
        let tag = tag_of(&self.cmd);
        let total = self.cmd_literals.saturating_add(announce.length);
        if total > self.limits.max_command_literals {
            return self.too_big(tag, announce.sync);
        }
        if tag.is_some() && !announce.binary && shim::may_rewrite(&self.cmd) {
            return self.accept_literal(tag, announce);
        }
        self.bad(tag, Some(announce), "syntax error")
    }

    /// A complete command imap-codec rejects: the shim's turn.
    fn on_unparsed_command(&mut self, saved: Option<&[u32]>) -> Step {
        let result = shim::decode(&self.cmd, saved);
        let tag = tag_of(&self.cmd);
        self.end_command();
        match result {
            Ok(parsed) => Step::Emit(Event::Command(parsed)),
            Err(error) => Step::Emit(Event::Bad {
                tag,
                message: error.message().to_owned(),
            }),
        }
    }

    /// Ends the command with BAD. A sync literal at the end of its last line will not be sent
    /// (the client waits for "+"); a non-sync one is skipped with the rest of the command first.
    fn bad(
        &mut self,
        tag: Option<Tag<'static>>,
        announce: Option<Announce>,
        message: &str,
    ) -> Step {
        let event = Event::Bad {
            tag: tag.clone(),
            message: message.to_owned(),
        };
        match announce {
            Some(announce) if !announce.sync => {
                let total = self.cmd_literals.saturating_add(announce.length);
                if total > self.limits.max_command_literals {
                    return self.too_big(tag, false);
                }
                self.end_command();
                self.cmd_literals = total;
                self.state = State::Skip {
                    remaining: announce.length,
                    then: Some(Box::new(event)),
                };
                Step::Again
            }
            _ => {
                self.end_command();
                Step::Emit(event)
            }
        }
    }

    /// RFC 7888 §4 / RFC 7889: a sync literal over the limit is refused and the client sends
    /// nothing; a non-sync one is on its way, so the connection has to go.
    fn too_big(&mut self, tag: Option<Tag<'static>>, sync: bool) -> Step {
        if sync {
            self.end_command();
            Step::Emit(Event::TooBig { tag, fatal: false })
        } else {
            self.fatal(Event::TooBig { tag, fatal: true })
        }
    }

    fn fatal(&mut self, event: Event) -> Step {
        self.end_command();
        self.state = State::Dead;
        self.input = Vec::new();
        self.pos = 0;
        self.scanned = 0;
        Step::Emit(event)
    }

    /// Forgets the command and returns to reading lines; a grown buffer is given back.
    fn end_command(&mut self) {
        self.cmd.clear();
        if self.cmd.capacity() > IDLE_KEEP {
            self.cmd = Vec::new();
        }
        self.cmd_text = 0;
        self.cmd_literals = 0;
        self.cmd_literal_count = 0;
        self.state = State::Line;
    }

    fn step_literal(&mut self, remaining: u64) -> Step {
        let n = self.available(remaining);
        self.cmd
            .extend_from_slice(&self.input[self.pos..self.pos + n]);
        self.pos += n;
        let remaining = remaining - n as u64;
        self.state = if remaining == 0 {
            State::Line
        } else {
            State::Literal { remaining }
        };
        if remaining == 0 {
            Step::Again
        } else {
            Step::NeedMore
        }
    }

    /// How many of `wanted` bytes are buffered.
    fn available(&self, wanted: u64) -> usize {
        let buffered = self.input.len() - self.pos;
        usize::try_from(wanted).map_or(buffered, |wanted| wanted.min(buffered))
    }

    // ----- APPEND ---------------------------------------------------------------------------

    /// The server did not reject the APPEND: its message follows.
    fn start_append_data(&mut self) -> Step {
        if let State::AppendPending { tag, length, .. } =
            std::mem::replace(&mut self.state, State::Line)
        {
            self.state = State::AppendData {
                tag,
                remaining: length,
            };
        }
        Step::Again
    }

    fn step_append_data(&mut self, remaining: u32) -> Step {
        if remaining == 0 {
            if let State::AppendData { tag, .. } = std::mem::replace(&mut self.state, State::Line) {
                self.state = State::AppendTrailer { tag };
            }
            return Step::Again;
        }
        let n = self.available(u64::from(remaining)).min(CHUNK);
        if n == 0 {
            return Step::NeedMore;
        }
        let chunk = self.input[self.pos..self.pos + n].to_vec();
        self.pos += n;
        if let State::AppendData { remaining, .. } = &mut self.state {
            // n ≤ remaining, which is a u32.
            *remaining -= n as u32;
        }
        Step::Emit(Event::AppendChunk(chunk))
    }

    /// The message literal must be followed by CRLF alone (no MULTIAPPEND, RFC 3502).
    fn step_append_trailer(&mut self) -> Step {
        let line = match self.take_line(self.limits.max_line) {
            LineRead::Line(line) => line,
            LineRead::NeedMore => return Step::NeedMore,
            LineRead::TooLong => return self.fatal(Event::LineTooLong),
        };
        let State::AppendTrailer { tag } = std::mem::replace(&mut self.state, State::Line) else {
            return Step::Again;
        };
        let text = &self.input[line];
        if text == b"\r\n" || text == b"\n" {
            return Step::Emit(Event::AppendDone);
        }
        let garbage = Event::AppendTrailingGarbage { tag };
        match literal_at_end(text) {
            Some(announce) if !announce.sync => self.skip_literal(announce.length, garbage),
            _ => Step::Emit(garbage),
        }
    }

    // ----- skipping -------------------------------------------------------------------------

    fn step_skip(&mut self, remaining: u64) -> Step {
        if remaining > 0 {
            let n = self.available(remaining);
            self.pos += n;
            let left = remaining - n as u64;
            if let State::Skip { remaining, .. } = &mut self.state {
                *remaining = left;
            }
            if left > 0 {
                return Step::NeedMore;
            }
        }
        let line = match self.take_line(self.limits.max_line) {
            LineRead::Line(line) => line,
            LineRead::NeedMore => return Step::NeedMore,
            LineRead::TooLong => return self.fatal(Event::LineTooLong),
        };
        let State::Skip { then, .. } = std::mem::replace(&mut self.state, State::Line) else {
            return Step::Again;
        };
        match literal_at_end(&self.input[line]) {
            Some(announce) if !announce.sync => match then {
                Some(event) => self.skip_literal(announce.length, *event),
                None => self.skip_literal_silently(announce.length),
            },
            // A sync literal is only sent after "+", which never comes: the command ends here.
            _ => {
                self.end_command();
                then.map_or(Step::Again, |event| Step::Emit(*event))
            }
        }
    }

    /// Skips a further non-sync literal of a command being discarded, then returns `then`.
    fn skip_literal(&mut self, length: u64, then: Event) -> Step {
        self.skip_next(length, Some(Box::new(then)))
    }

    fn skip_literal_silently(&mut self, length: u64) -> Step {
        self.skip_next(length, None)
    }

    fn skip_next(&mut self, length: u64, then: Option<Box<Event>>) -> Step {
        let total = self.cmd_literals.saturating_add(length);
        if total > self.limits.max_command_literals {
            return self.fatal(Event::TooBig {
                tag: None,
                fatal: true,
            });
        }
        self.cmd_literals = total;
        self.state = State::Skip {
            remaining: length,
            then,
        };
        Step::Again
    }

    /// Drops consumed input; a buffer that grew for a burst of input is given back.
    fn compact(&mut self) {
        if self.pos == self.input.len() {
            if self.input.capacity() > IDLE_KEEP {
                self.input = Vec::new();
            }
            self.input.clear();
            self.pos = 0;
            self.scanned = 0;
        } else if self.pos >= CHUNK && self.pos * 2 >= self.input.len() {
            self.input.drain(..self.pos);
            self.scanned -= self.pos.min(self.scanned);
            self.pos = 0;
        }
        if self.input.capacity() > CHUNK && self.input.len() <= CHUNK / 2 {
            self.input.shrink_to(CHUNK);
        }
    }

    #[cfg(test)]
    fn buffer_capacity(&self) -> usize {
        self.input.capacity() + self.cmd.capacity()
    }
}

/// The command's tag, if its first word is a valid one (for answering a command imap-codec
/// could not decode).
fn tag_of(cmd: &[u8]) -> Option<Tag<'static>> {
    let end = cmd.iter().position(|&b| b == b' ')?;
    Tag::try_from(cmd[..end].to_vec()).ok()
}

/// A literal announcement ending `line` (which includes its LF): `{n}`, `{n+}`, `~{n}` or
/// `~{n+}` (RFC 9051 §4.3, RFC 7888, RFC 3516). This only tells how many bytes follow the
/// line; whether the literal is allowed there is imap-codec's decision.
fn literal_at_end(line: &[u8]) -> Option<Announce> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_suffix(b"}")?;
    let (line, sync) = match line.strip_suffix(b"+") {
        Some(line) => (line, false),
        None => (line, true),
    };
    let digits = line.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let (line, number) = line.split_at(line.len() - digits);
    let line = line.strip_suffix(b"{")?;
    let length = number.iter().fold(0u64, |n, &d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    let (start, binary) = match line.strip_suffix(b"~") {
        Some(line) => (line.len(), true),
        None => (line.len(), false),
    };
    Some(Announce {
        start,
        length,
        sync,
        binary,
    })
}

#[cfg(test)]
mod tests;
