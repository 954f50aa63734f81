//! One IMAP connection: the framer's events in, responses out, the store in between.
//!
//! The I/O stack is `TCP → [TLS] → [DEFLATE] → BufWriter`, boxed so STARTTLS (RFC 9051 §6.2.1)
//! and COMPRESS (RFC 4978) can swap layers in mid-session. Responses are collected in `out`
//! and written when the framer has no complete command left, so pipelined commands share
//! one write; FETCH responses go through `out` too but are written every 64 KiB, so a large
//! body streams to the socket instead of collecting in memory.

mod auth;
mod mailboxes;
mod messages;
mod sync;
pub(crate) mod view;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use imap_types::command::CommandBody;
use imap_types::core::Tag;
use postkeep_imap_proto::ext::Parsed;
use postkeep_imap_proto::framer::{Event, Framer, FramerLimits, Mode};
use postkeep_store::{Account, Mailbox};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{debug, info};

use crate::compress::DeflateStream;
use crate::respond;
use crate::server::ImapServer;
use view::View;

/// Anything the session can talk through.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

type Io = BufWriter<Box<dyn Stream>>;

/// Socket read size; also the bound on what one read adds to the framer.
const READ_CHUNK: usize = 8 * 1024;
/// Write buffer in front of the socket (TLS records are at most 16 KiB).
const WRITE_BUFFER: usize = 8 * 1024;

pub(crate) async fn run(
    server: Arc<ImapServer>,
    tcp: TcpStream,
    peer: SocketAddr,
    implicit_tls: bool,
    shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    let limit = server.settings.login_timeout;
    let io: Box<dyn Stream> = if implicit_tls {
        match postkeep_net::tls_handshake(&server.tls, tcp, limit).await {
            Some(tls) => Box::new(tls),
            None => return Ok(()),
        }
    } else {
        Box::new(tcp)
    };
    let mut session = Session::new(server, io, peer, implicit_tls, shutdown);
    let result = session.drive().await;
    let _ = tokio::time::timeout(limit, session.io.shutdown()).await;
    result
}

/// ENABLEd extensions (RFC 5161) and what they switch on.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Enabled {
    /// IMAP4rev2 (RFC 9051 §6.3.1): no RECENT, UTF-8 names, LIST in SELECT.
    pub rev2: bool,
    /// UTF8=ACCEPT (RFC 6855) or IMAP4rev2: mailbox names and strings in UTF-8.
    pub utf8: bool,
    /// RFC 7162 CONDSTORE: MODSEQ in every FETCH.
    pub condstore: bool,
    /// RFC 7162 QRESYNC: VANISHED instead of EXPUNGE.
    pub qresync: bool,
}

/// The selected mailbox (RFC 9051 §3.3).
pub(crate) struct Selected {
    pub mailbox: Mailbox,
    pub read_only: bool,
    pub view: View,
    /// HIGHESTMODSEQ up to which changes have been reported.
    pub known_modseq: u64,
    pub watch: watch::Receiver<u64>,
    /// RFC 5182 SEARCHRES: UIDs of the last `SEARCH RETURN (SAVE)`.
    pub saved: Option<Vec<u32>>,
    /// MODSEQs this session's own STOREs produced: already reported, skipped by the next sync.
    pub own_modseqs: Vec<u64>,
    /// Expunges seen while EXPUNGE responses were not allowed (RFC 9051 §7.5.1).
    pub deferred_expunges: Vec<u32>,
}

/// A command's tagged completion; untagged updates are sent before it.
pub(crate) struct Reply {
    kind: &'static str,
    code: Option<String>,
    text: String,
}

impl Reply {
    pub fn ok(text: impl Into<String>) -> Self {
        Self {
            kind: "OK",
            code: None,
            text: text.into(),
        }
    }
    pub fn no(text: impl Into<String>) -> Self {
        Self {
            kind: "NO",
            code: None,
            text: text.into(),
        }
    }
    pub fn bad(text: impl Into<String>) -> Self {
        Self {
            kind: "BAD",
            code: None,
            text: text.into(),
        }
    }
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
}

/// After a command: keep reading, or close (LOGOUT, fatal errors, shutdown).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
}

enum Input {
    Data,
    Eof,
    Timeout,
    Shutdown,
    /// The watched mailbox changed (only while idling).
    Changed,
}

pub(crate) struct Session {
    server: Arc<ImapServer>,
    io: Io,
    framer: Framer,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    tls: bool,
    compressed: bool,
    account: Option<Account>,
    selected: Option<Selected>,
    enabled: Enabled,
    errors: u32,
    out: Vec<u8>,
    append: Option<messages::Append>,
    /// The tag of the command being answered, for ESEARCH's `(TAG "...")` (RFC 4731 §3.1).
    current_tag: Option<String>,
}

impl Session {
    fn new(
        server: Arc<ImapServer>,
        io: Box<dyn Stream>,
        peer: SocketAddr,
        tls: bool,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let framer = Framer::new(FramerLimits {
            max_append: server.settings.append_limit,
            ..FramerLimits::default()
        });
        Self {
            io: BufWriter::with_capacity(WRITE_BUFFER, io),
            server,
            framer,
            peer,
            shutdown,
            tls,
            compressed: false,
            account: None,
            selected: None,
            enabled: Enabled::default(),
            errors: 0,
            out: Vec::new(),
            append: None,
            current_tag: None,
        }
    }

    async fn drive(&mut self) -> io::Result<()> {
        let greeting = format!("[CAPABILITY {}] postkeep ready", self.capabilities());
        respond::untagged_ok(&mut self.out, None, &greeting);
        loop {
            while let Some(event) = self.next_framed() {
                if self.on_event(event).await? == Flow::Close {
                    return self.flush().await;
                }
            }
            self.flush().await?;
            match self.read_input(None).await? {
                Input::Data | Input::Changed => {}
                Input::Eof => return Ok(()),
                Input::Timeout => return self.close_with("Autologout; idle for too long").await,
                Input::Shutdown => return self.close_with("Server shutting down").await,
            }
        }
    }

    fn next_framed(&mut self) -> Option<Event> {
        let saved = self.selected.as_ref().and_then(|s| s.saved.as_deref());
        self.framer.next(saved)
    }

    async fn close_with(&mut self, message: &str) -> io::Result<()> {
        respond::bye(&mut self.out, message);
        self.flush().await
    }

    /// Writes what is pending and flushes through every layer (TLS, DEFLATE sync flush).
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.io.write_all(&self.out).await?;
            self.out.clear();
            // An idle session keeps a small buffer, not what its last FETCH needed.
            if self.out.capacity() > 16 * 1024 {
                self.out.shrink_to(4 * 1024);
            }
        }
        self.io.flush().await
    }

    /// Reads more input into the framer, or says why there is none. `watch`: also wake when
    /// the selected mailbox changes (IDLE).
    async fn read_input(&mut self, watch: Option<&mut watch::Receiver<u64>>) -> io::Result<Input> {
        if *self.shutdown.borrow() {
            return Ok(Input::Shutdown);
        }
        let limit = if self.account.is_some() {
            self.server.settings.idle_timeout
        } else {
            self.server.settings.login_timeout
        };
        let mut buf = [0u8; READ_CHUNK];
        let changed = async {
            match watch {
                Some(watch) => watch.changed().await.is_ok(),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = self.io.read(&mut buf) => match read {
                Ok(0) => Ok(Input::Eof),
                Ok(n) => {
                    self.framer.push(&buf[..n]);
                    Ok(Input::Data)
                }
                Err(err) if is_disconnect(&err) => Ok(Input::Eof),
                Err(err) => Err(err),
            },
            _ = tokio::time::sleep(limit) => Ok(Input::Timeout),
            _ = self.shutdown.changed() => Ok(Input::Shutdown),
            alive = changed => Ok(if alive { Input::Changed } else { Input::Shutdown }),
        }
    }

    /// Waits for the next framed event (AUTHENTICATE continuation, APPEND data); `None` when the
    /// connection ended, timed out or the server is shutting down.
    async fn next_event(&mut self) -> io::Result<Option<Event>> {
        loop {
            if let Some(event) = self.framer.next(None) {
                return Ok(Some(event));
            }
            self.flush().await?;
            match self.read_input(None).await? {
                Input::Data | Input::Changed => {}
                Input::Eof | Input::Timeout | Input::Shutdown => return Ok(None),
            }
        }
    }

    async fn on_event(&mut self, event: Event) -> io::Result<Flow> {
        match event {
            Event::Command(parsed) => self.command(parsed).await,
            Event::ContinueLiteral => {
                self.out.extend_from_slice(b"+ Ready for literal data\r\n");
                self.flush().await?;
                Ok(Flow::Continue)
            }
            Event::AppendStart {
                tag,
                mailbox,
                flags,
                date,
                length,
                sync,
                binary,
            } => {
                let start = messages::AppendStart {
                    tag,
                    mailbox,
                    flags,
                    date,
                    length,
                    sync,
                    binary,
                };
                self.append_start(start).await
            }
            Event::AppendChunk(bytes) => self.append_chunk(&bytes).await,
            Event::AppendDone => self.append_done().await,
            Event::AppendTrailingGarbage { tag } => {
                self.append = None;
                respond::bad(
                    &mut self.out,
                    Some(&tag),
                    "Unexpected data after the message literal",
                );
                Ok(self.count_error())
            }
            Event::Bad { tag, message } => {
                debug!(%message, "bad command");
                respond::bad(&mut self.out, tag.as_ref(), &message);
                Ok(self.count_error())
            }
            Event::TooBig { tag, fatal } => {
                let tag_text = tag.as_ref().map_or("*", |t| t.as_ref());
                respond::line_with_code(
                    &mut self.out,
                    tag.as_ref(),
                    if tag.is_some() { "NO" } else { "BAD" },
                    "TOOBIG",
                    "Literal too large",
                );
                debug!(tag = tag_text, fatal, "literal over the limit");
                if fatal {
                    respond::bye(&mut self.out, "Literal too large");
                    return Ok(Flow::Close);
                }
                Ok(self.count_error())
            }
            Event::LineTooLong => {
                respond::bye(&mut self.out, "Command line too long");
                Ok(Flow::Close)
            }
            Event::AuthenticateData(_) | Event::IdleDone | Event::IdleBad => {
                respond::bad(&mut self.out, None, "Unexpected continuation");
                Ok(self.count_error())
            }
        }
    }

    /// Counts a BAD; too many close the connection (RFC 9051 §7.1.5 lets the server BYE).
    fn count_error(&mut self) -> Flow {
        self.errors += 1;
        let max = self.server.settings.max_errors;
        if max != 0 && self.errors >= max {
            respond::bye(&mut self.out, "Too many errors");
            return Flow::Close;
        }
        Flow::Continue
    }

    async fn command(&mut self, parsed: Parsed) -> io::Result<Flow> {
        let Parsed { command, ext } = parsed;
        let tag = command.tag;
        let body = command.body;
        self.current_tag = Some(tag.as_ref().to_owned());
        let name = body.name();
        debug!(command = name, "command");
        let needs_selected = matches!(
            body,
            CommandBody::Check
                | CommandBody::Close
                | CommandBody::Unselect
                | CommandBody::Expunge
                | CommandBody::ExpungeUid { .. }
                | CommandBody::Search { .. }
                | CommandBody::Sort { .. }
                | CommandBody::Thread { .. }
                | CommandBody::Fetch { .. }
                | CommandBody::Store { .. }
                | CommandBody::Copy { .. }
                | CommandBody::Move { .. }
        );
        let any_state = matches!(
            body,
            CommandBody::Capability
                | CommandBody::Noop
                | CommandBody::Logout
                | CommandBody::Id { .. }
        );
        let not_authenticated = matches!(
            body,
            CommandBody::StartTLS | CommandBody::Authenticate { .. } | CommandBody::Login { .. }
        );
        if !any_state {
            if not_authenticated && self.account.is_some() {
                return self
                    .finish(&tag, Reply::bad("Already authenticated"), false)
                    .await;
            }
            if !not_authenticated && self.account.is_none() {
                return self.finish(&tag, Reply::bad("Log in first"), false).await;
            }
            if needs_selected && self.selected.is_none() {
                return self
                    .finish(&tag, Reply::bad("No mailbox selected"), false)
                    .await;
            }
        }
        // RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH (UID variants may).
        let expunge_ok = !matches!(
            body,
            CommandBody::Fetch { uid: false, .. }
                | CommandBody::Store { uid: false, .. }
                | CommandBody::Search { uid: false, .. }
                | CommandBody::Sort { uid: false, .. }
                | CommandBody::Thread { uid: false, .. }
        );
        let reply = match body {
            CommandBody::Capability => {
                let caps = self.capabilities();
                self.out
                    .extend_from_slice(format!("* CAPABILITY {caps}\r\n").as_bytes());
                Reply::ok("CAPABILITY completed")
            }
            CommandBody::Noop | CommandBody::Check => Reply::ok(format!("{name} completed")),
            CommandBody::Logout => {
                respond::bye(&mut self.out, "Logging out");
                respond::ok(&mut self.out, &tag, None, "LOGOUT completed");
                return Ok(Flow::Close);
            }
            CommandBody::Id { .. } => {
                // RFC 2971: identify the software only; never versions or hosts.
                self.out
                    .extend_from_slice(b"* ID (\"name\" \"postkeep\")\r\n");
                Reply::ok("ID completed")
            }
            CommandBody::StartTLS => return self.starttls(&tag).await,
            CommandBody::Login { username, password } => {
                let user = String::from_utf8_lossy(username.as_ref()).into_owned();
                let secret = zeroize::Zeroizing::new(
                    String::from_utf8_lossy(password.declassify().as_ref()).into_owned(),
                );
                self.login(&user, secret).await
            }
            CommandBody::Authenticate {
                mechanism,
                initial_response,
            } => {
                let initial = initial_response
                    .map(|secret| zeroize::Zeroizing::new(secret.declassify().to_vec()));
                match self.authenticate(&mechanism, initial).await? {
                    Some(reply) => reply,
                    None => return Ok(Flow::Close),
                }
            }
            CommandBody::Enable { capabilities } => self.enable(capabilities.as_ref()),
            CommandBody::Compress { .. } => return self.compress(&tag).await,
            CommandBody::Idle => return self.idle(&tag).await,
            CommandBody::Namespace => {
                self.out
                    .extend_from_slice(b"* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n");
                Reply::ok("NAMESPACE completed")
            }
            other => self.dispatch(other, ext).await?,
        };
        self.finish(&tag, reply, expunge_ok).await
    }

    /// Mailbox and message commands (authenticated or selected state).
    async fn dispatch(
        &mut self,
        body: CommandBody<'static>,
        ext: postkeep_imap_proto::ext::Ext,
    ) -> io::Result<Reply> {
        Ok(match body {
            CommandBody::Select {
                mailbox,
                parameters,
            } => self.select(&mailbox, parameters, false).await,
            CommandBody::Examine {
                mailbox,
                parameters,
            } => self.select(&mailbox, parameters, true).await,
            CommandBody::Create { mailbox } => self.create(&mailbox, ext.create_use).await,
            CommandBody::Delete { mailbox } => self.delete(&mailbox).await,
            CommandBody::Rename { from, to } => self.rename(&from, &to).await,
            CommandBody::Subscribe { mailbox } => self.subscribe(&mailbox, true).await,
            CommandBody::Unsubscribe { mailbox } => self.subscribe(&mailbox, false).await,
            CommandBody::List {
                reference,
                mailbox_wildcard,
            } => {
                self.list(&reference, &mailbox_wildcard, ext.list, false)
                    .await
            }
            CommandBody::Lsub {
                reference,
                mailbox_wildcard,
            } => self.list(&reference, &mailbox_wildcard, None, true).await,
            CommandBody::Status {
                mailbox,
                item_names,
            } => {
                self.status(&mailbox, item_names.as_ref(), &ext.status)
                    .await
            }
            CommandBody::GetQuota { root } => self.get_quota(root.as_ref()).await,
            CommandBody::GetQuotaRoot { mailbox } => self.get_quota_root(&mailbox).await,
            CommandBody::SetQuota { .. } => Reply::no("Quotas are set by the administrator"),
            CommandBody::Close => self.close(true).await,
            CommandBody::Unselect => self.close(false).await,
            CommandBody::Expunge => self.expunge(None).await,
            CommandBody::ExpungeUid { sequence_set } => self.expunge(Some(&sequence_set)).await,
            CommandBody::Fetch {
                sequence_set,
                macro_or_item_names,
                uid,
                modifiers,
            } => {
                self.fetch(
                    &sequence_set,
                    macro_or_item_names,
                    uid,
                    &modifiers,
                    ext.fetch,
                )
                .await?
            }
            CommandBody::Store {
                sequence_set,
                kind,
                response,
                flags,
                uid,
                modifiers,
            } => {
                self.store_flags(&sequence_set, kind, response, &flags, uid, &modifiers)
                    .await
            }
            CommandBody::Copy {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(&sequence_set, &mailbox, uid, false).await,
            CommandBody::Move {
                sequence_set,
                mailbox,
                uid,
            } => self.copy(&sequence_set, &mailbox, uid, true).await,
            CommandBody::Search {
                charset,
                criteria,
                uid,
            } => {
                self.search(charset.as_ref(), criteria.as_ref(), uid, ext.search_return)
                    .await
            }
            CommandBody::Sort {
                sort_criteria,
                charset,
                search_criteria,
                uid,
            } => {
                self.sort(
                    sort_criteria.as_ref(),
                    &charset,
                    search_criteria.as_ref(),
                    uid,
                )
                .await
            }
            CommandBody::Thread {
                algorithm,
                charset,
                search_criteria,
                uid,
            } => {
                self.thread(&algorithm, &charset, search_criteria.as_ref(), uid)
                    .await
            }
            CommandBody::Append { .. } => {
                // The framer turns every APPEND into a streamed AppendStart.
                Reply::bad("APPEND without a message literal")
            }
            _ => Reply::bad("Command not supported"),
        })
    }

    /// Reports pending changes of the selected mailbox, then the tagged reply.
    async fn finish(&mut self, tag: &Tag<'_>, reply: Reply, expunge_ok: bool) -> io::Result<Flow> {
        if self.selected.is_some() {
            if let Err(flow) = self.sync(expunge_ok).await {
                return Ok(flow);
            }
        }
        let Reply { kind, code, text } = reply;
        match code {
            Some(code) => respond::line_with_code(&mut self.out, Some(tag), kind, &code, &text),
            None => respond::tagged(&mut self.out, Some(tag), kind_of(kind), None, &text),
        }
        Ok(if kind == "BAD" {
            self.count_error()
        } else {
            Flow::Continue
        })
    }

    /// The CAPABILITY list for the session's state (RFC 9051 §7.2.2): nothing that needs TLS or
    /// authentication before it is available, and only what works.
    fn capabilities(&self) -> String {
        let mut caps = vec![
            "IMAP4rev1",
            "IMAP4rev2",
            "LITERAL+",
            "SASL-IR",
            "ID",
            "ENABLE",
        ];
        if !self.tls {
            caps.extend(["STARTTLS", "LOGINDISABLED"]);
            return caps.join(" ");
        }
        if self.account.is_none() {
            caps.push("AUTH=PLAIN");
        }
        caps.extend([
            "IDLE",
            "NAMESPACE",
            "UNSELECT",
            "UIDPLUS",
            "MOVE",
            "CONDSTORE",
            "QRESYNC",
            "CHILDREN",
            "SPECIAL-USE",
            "CREATE-SPECIAL-USE",
            "LIST-EXTENDED",
            "LIST-STATUS",
            "ESEARCH",
            "SEARCHRES",
            "SORT",
            "SORT=DISPLAY",
            "THREAD=REFERENCES",
            "THREAD=ORDEREDSUBJECT",
            "STATUS=SIZE",
            "OBJECTID",
            "SAVEDATE",
            "QUOTA",
            "QUOTA=RES-STORAGE",
            "BINARY",
            "UTF8=ACCEPT",
        ]);
        if !self.compressed {
            caps.push("COMPRESS=DEFLATE");
        }
        let mut caps = caps.join(" ");
        caps.push_str(&format!(
            " APPENDLIMIT={}",
            self.server.settings.append_limit
        ));
        caps
    }

    /// RFC 5161 ENABLE.
    fn enable(&mut self, names: &[imap_types::extensions::enable::CapabilityEnable<'_>]) -> Reply {
        let mut newly = Vec::new();
        for name in names {
            let name = name.to_string().to_ascii_uppercase();
            let (flag, label): (&mut bool, &str) = match name.as_str() {
                "IMAP4REV2" => (&mut self.enabled.rev2, "IMAP4rev2"),
                "UTF8=ACCEPT" => (&mut self.enabled.utf8, "UTF8=ACCEPT"),
                "CONDSTORE" => (&mut self.enabled.condstore, "CONDSTORE"),
                "QRESYNC" => (&mut self.enabled.qresync, "QRESYNC"),
                _ => continue,
            };
            if !*flag {
                *flag = true;
                newly.push(label);
            }
        }
        if self.enabled.rev2 {
            self.enabled.utf8 = true;
        }
        if self.enabled.qresync && !self.enabled.condstore {
            // RFC 7162 §3.2.3: QRESYNC implies CONDSTORE.
            self.enabled.condstore = true;
        }
        self.out.extend_from_slice(
            format!("* ENABLED {}\r\n", newly.join(" "))
                .trim_end()
                .as_bytes(),
        );
        self.out.extend_from_slice(b"\r\n");
        Reply::ok("ENABLE completed")
    }

    /// RFC 9051 §6.2.1. Plaintext pipelined behind STARTTLS could be injected by an attacker
    /// (CVE-2011-0411 style), so it closes the connection.
    async fn starttls(&mut self, tag: &Tag<'_>) -> io::Result<Flow> {
        if self.tls {
            respond::bad(&mut self.out, Some(tag), "TLS is already active");
            return Ok(self.count_error());
        }
        respond::ok(&mut self.out, tag, None, "Begin TLS negotiation now");
        self.flush().await?;
        if self.framer.has_buffered_input() {
            info!("plaintext pipelined after STARTTLS; closing");
            return Ok(Flow::Close);
        }
        let inner = self.take_io().into_inner();
        let limit = self.server.settings.login_timeout;
        match tokio::time::timeout(limit, self.server.tls.accept(inner)).await {
            Ok(Ok(tls)) => {
                self.io = BufWriter::with_capacity(WRITE_BUFFER, Box::new(tls));
                self.tls = true;
                Ok(Flow::Continue)
            }
            Ok(Err(err)) => {
                info!(error = %err, "STARTTLS handshake failed");
                Ok(Flow::Close)
            }
            Err(_) => {
                info!("STARTTLS handshake timed out");
                Ok(Flow::Close)
            }
        }
    }

    /// RFC 4978 COMPRESS=DEFLATE: everything after the tagged OK is raw DEFLATE both ways.
    async fn compress(&mut self, tag: &Tag<'_>) -> io::Result<Flow> {
        if self.compressed {
            respond::line_with_code(
                &mut self.out,
                Some(tag),
                "NO",
                "COMPRESSIONACTIVE",
                "DEFLATE is already active",
            );
            return Ok(Flow::Continue);
        }
        respond::ok(&mut self.out, tag, None, "DEFLATE active");
        self.flush().await?;
        let already_read = self.framer.take_buffered();
        let inner = self.take_io().into_inner();
        self.io = BufWriter::with_capacity(
            WRITE_BUFFER,
            Box::new(DeflateStream::new(inner, already_read)),
        );
        self.compressed = true;
        Ok(Flow::Continue)
    }

    /// Moves the stream out so a layer can be added around it.
    fn take_io(&mut self) -> Io {
        let (placeholder, _) = tokio::io::duplex(1);
        let placeholder: Box<dyn Stream> = Box::new(placeholder);
        std::mem::replace(&mut self.io, BufWriter::new(placeholder))
    }

    /// RFC 2177 IDLE: changes are pushed as they happen until DONE.
    async fn idle(&mut self, tag: &Tag<'_>) -> io::Result<Flow> {
        if self.selected.is_some() {
            if let Err(flow) = self.sync(true).await {
                return Ok(flow);
            }
        }
        self.out.extend_from_slice(b"+ idling\r\n");
        self.flush().await?;
        self.framer.set_mode(Mode::Idle);
        let mut watch = self.selected.as_ref().map(|s| s.watch.clone());
        let outcome = loop {
            if let Some(event) = self.framer.next(None) {
                break match event {
                    Event::IdleDone => Some(true),
                    _ => Some(false),
                };
            }
            self.flush().await?;
            match self.read_input(watch.as_mut()).await? {
                Input::Data => {}
                Input::Changed => {
                    if let Err(flow) = self.sync(true).await {
                        self.framer.set_mode(Mode::Command);
                        return Ok(flow);
                    }
                }
                Input::Eof => return Ok(Flow::Close),
                Input::Timeout => {
                    respond::bye(&mut self.out, "Autologout; idle for too long");
                    break None;
                }
                Input::Shutdown => {
                    respond::bye(&mut self.out, "Server shutting down");
                    break None;
                }
            }
        };
        self.framer.set_mode(Mode::Command);
        match outcome {
            Some(true) => self.finish(tag, Reply::ok("IDLE terminated"), true).await,
            Some(false) => self.finish(tag, Reply::bad("Expected DONE"), true).await,
            None => Ok(Flow::Close),
        }
    }

    pub(crate) fn store(&self) -> &Arc<postkeep_store::MailStore> {
        &self.server.store
    }

    /// The logged-in account (every caller runs in authenticated state).
    pub(crate) fn account_id(&self) -> postkeep_store::AccountId {
        self.account.as_ref().map_or(0, |a| a.id)
    }
}

fn kind_of(kind: &str) -> imap_types::response::StatusKind {
    use imap_types::response::StatusKind;
    match kind {
        "OK" => StatusKind::Ok,
        "NO" => StatusKind::No,
        _ => StatusKind::Bad,
    }
}

fn is_disconnect(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// Upper bound on a pre-authentication session (RFC 9051 §5.4 leaves it to the server).
pub(crate) const DEFAULT_LOGIN_TIMEOUT: Duration = Duration::from_secs(60);
