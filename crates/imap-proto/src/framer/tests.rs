use imap_types::command::Command;
use imap_types::secret::Secret;

use super::*;
use crate::ext::FetchExt;

fn framer() -> Framer {
    Framer::new(FramerLimits::default())
}

fn tag(text: &str) -> Tag<'static> {
    Tag::try_from(text.to_owned()).expect("valid tag")
}

/// Every event available now.
fn drain(framer: &mut Framer, saved: Option<&[u32]>) -> Vec<Event> {
    let mut events = Vec::new();
    while let Some(event) = framer.next(saved) {
        events.push(event);
        assert!(
            events.len() < 100_000,
            "framer does not stop producing events"
        );
    }
    events
}

fn feed(framer: &mut Framer, bytes: &[u8]) -> Vec<Event> {
    framer.push(bytes);
    drain(framer, None)
}

fn command(event: &Event) -> &Command<'static> {
    match event {
        Event::Command(parsed) => &parsed.command,
        other => panic!("expected a command, got {other:?}"),
    }
}

fn bad(tag_text: Option<&str>, message: &str) -> Event {
    Event::Bad {
        tag: tag_text.map(tag),
        message: message.to_owned(),
    }
}

fn names(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|event| match event {
            Event::Command(parsed) => {
                format!("{} {}", parsed.command.tag.as_ref(), parsed.command.name())
            }
            other => format!("{other:?}"),
        })
        .collect()
}

// ----- commands ----------------------------------------------------------------------------

#[test]
fn single_command() {
    let events = feed(&mut framer(), b"a1 NOOP\r\n");
    assert_eq!(events.len(), 1);
    assert_eq!(command(&events[0]).body, CommandBody::Noop);
    assert_eq!(command(&events[0]).tag, tag("a1"));
    assert!(matches!(&events[0], Event::Command(Parsed { ext, .. }) if *ext == Ext::default()));
}

#[test]
fn partial_line_waits_for_more_input() {
    let mut framer = framer();
    assert!(feed(&mut framer, b"a NO").is_empty());
    assert!(feed(&mut framer, b"OP\r").is_empty());
    assert_eq!(names(&feed(&mut framer, b"\n")), ["a NOOP"]);
}

#[test]
fn pipelined_commands_come_out_in_order() {
    let events = feed(
        &mut framer(),
        b"a NOOP\r\nb CAPABILITY\r\nc SELECT INBOX\r\nd LOGOUT\r\n",
    );
    assert_eq!(
        names(&events),
        ["a NOOP", "b CAPABILITY", "c SELECT", "d LOGOUT"]
    );
}

#[test]
fn bare_lf_ends_a_line() {
    let events = feed(&mut framer(), b"a NOOP\nb LOGIN {3}\nbob x\n");
    assert_eq!(
        events[0],
        Event::Command(Parsed {
            command: Command::new("a", CommandBody::Noop).expect("command"),
            ext: Ext::default()
        })
    );
    assert_eq!(events[1], Event::ContinueLiteral);
    assert_eq!(names(&events[2..]), ["b LOGIN"]);
}

#[test]
fn sync_literals_ask_for_continuation_once_each() {
    let mut framer = framer();
    assert_eq!(
        feed(&mut framer, b"a LOGIN {5}\r\n"),
        [Event::ContinueLiteral]
    );
    assert!(feed(&mut framer, b"ali").is_empty());
    assert_eq!(feed(&mut framer, b"ce {6}\r\n"), [Event::ContinueLiteral]);
    let events = feed(&mut framer, b"secret\r\n");
    match &command(&events[0]).body {
        CommandBody::Login { username, password } => {
            assert_eq!(username.as_ref(), b"alice");
            assert_eq!(password.declassify().as_ref(), b"secret");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn literal_plus_needs_no_continuation() {
    let events = feed(
        &mut framer(),
        b"a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\nb NOOP\r\n",
    );
    assert_eq!(names(&events), ["a LOGIN", "b NOOP"]);
}

#[test]
fn literal_data_may_contain_crlf_and_braces() {
    let events = feed(&mut framer(), b"a SEARCH TEXT {9+}\r\nx\r\n{3}\r\n\r\n");
    assert_eq!(names(&events), ["a SEARCH"]);
}

#[test]
fn zero_length_literal() {
    let mut framer = framer();
    assert_eq!(
        feed(&mut framer, b"a LOGIN {0}\r\n"),
        [Event::ContinueLiteral]
    );
    assert_eq!(names(&feed(&mut framer, b" x\r\n")), ["a LOGIN"]);
}

#[test]
fn shimmed_command_carries_ext() {
    let events = feed(&mut framer(), b"a UID FETCH 1:* (FLAGS EMAILID)\r\n");
    match &events[..] {
        [Event::Command(parsed)] => assert_eq!(parsed.ext.fetch, vec![FetchExt::EmailId]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn shimmed_command_with_literal_is_collected() {
    let mut framer = framer();
    // imap-codec already rejects the prefix (RETURN), but the shim may rescue it.
    assert_eq!(
        feed(&mut framer, b"a SEARCH RETURN (COUNT) SUBJECT {3}\r\n"),
        [Event::ContinueLiteral]
    );
    let events = feed(&mut framer, b"abc EMAILID M1\r\n");
    match &events[..] {
        [Event::Command(parsed)] => {
            assert_eq!(
                parsed.ext.search_return,
                Some(vec![crate::ext::SearchReturn::Count])
            );
            assert!(matches!(parsed.command.body, CommandBody::Search { .. }));
        }
        other => panic!("{other:?}"),
    }
    let events = feed(&mut framer, b"b LIST \"\" {1+}\r\n* RETURN (CHILDREN)\r\n");
    match &events[..] {
        [Event::Command(parsed)] => assert_eq!(
            parsed.ext.list.as_ref().map(|l| l.patterns.clone()),
            Some(vec![b"*".to_vec()])
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dollar_uses_the_saved_result_given_to_next() {
    let mut framer = framer();
    framer.push(b"a FETCH $ FLAGS\r\nb FETCH $ FLAGS\r\n");
    assert_eq!(
        framer.next(None),
        Some(bad(Some("a"), "no saved search result"))
    );
    let event = framer.next(Some(&[3, 4])).expect("event");
    assert!(matches!(
        command(&event).body,
        CommandBody::Fetch { uid: true, .. }
    ));
}

// ----- bad input ---------------------------------------------------------------------------

#[test]
fn unknown_command_is_bad_with_its_tag() {
    let events = feed(&mut framer(), b"a FROBNICATE\r\nb NOOP\r\n");
    assert_eq!(events[0], bad(Some("a"), "syntax error"));
    assert_eq!(names(&events[1..]), ["b NOOP"]);
}

#[test]
fn bad_without_valid_tag() {
    let events = feed(&mut framer(), b"\r\n*** NOOP\r\nNOOP\r\n+ x\r\n");
    assert_eq!(
        events,
        [
            bad(None, "syntax error"),
            bad(None, "syntax error"),
            bad(None, "syntax error"),
            bad(None, "syntax error")
        ]
    );
}

#[test]
fn bad_command_with_sync_literal_gets_no_continuation() {
    let mut framer = framer();
    assert_eq!(
        feed(&mut framer, b"a FROB {5}\r\n"),
        [bad(Some("a"), "syntax error")]
    );
    // The client never sends the literal: the next line is a new command.
    assert_eq!(names(&feed(&mut framer, b"b NOOP\r\n")), ["b NOOP"]);
}

#[test]
fn bad_command_with_non_sync_literals_is_skipped_whole() {
    let events = feed(
        &mut framer(),
        b"a FROB {5+}\r\nb NOO more {3+}\r\n\r\n\n done\r\nc NOOP\r\n",
    );
    assert_eq!(events[0], bad(Some("a"), "syntax error"));
    assert_eq!(names(&events[1..]), ["c NOOP"]);
}

#[test]
fn literal8_outside_append_is_bad() {
    let events = feed(&mut framer(), b"a LOGIN ~{3+}\r\nbob x\r\nb NOOP\r\n");
    assert_eq!(events[0], bad(Some("a"), "syntax error"));
    assert_eq!(names(&events[1..]), ["b NOOP"]);
}

#[test]
fn unbalanced_parentheses_and_quotes_are_bad() {
    for line in [
        &b"a FETCH 1 (FLAGS\r\n"[..],
        b"a FETCH 1 FLAGS)\r\n",
        b"a FETCH 1 (FLAGS EMAILID\r\n",
        b"a FETCH 1 ((FLAGS)\r\n",
        b"a LOGIN \"abc\r\n",
        b"a LOGIN \"abc\\\" x\r\n",
        b"a SEARCH ((((\r\n",
        b"a SEARCH )\r\n",
        b"a LIST \"\" (\"a\" \"b\"\r\n",
        b"a SEARCH RETURN (MIN ALL\r\n",
    ] {
        let mut framer = framer();
        framer.push(line);
        framer.push(b"b NOOP\r\n");
        let events = drain(&mut framer, Some(&[1]));
        assert_eq!(
            events[0],
            bad(Some("a"), "syntax error"),
            "{}",
            String::from_utf8_lossy(line)
        );
        assert_eq!(names(&events[1..]), ["b NOOP"]);
    }
}

#[test]
fn nul_and_8bit_bytes_are_bad_not_a_panic() {
    let events = feed(&mut framer(), b"a LOGIN a\0b c\r\nb LOGIN {3+}\r\na\0b c\r\nc SELECT \xff\xfe\x80\r\n\xff\xff NOOP\r\nd NOOP\r\n");
    assert_eq!(events[0], bad(Some("a"), "syntax error"));
    assert_eq!(events[1], bad(Some("b"), "syntax error"));
    assert_eq!(events[2], bad(Some("c"), "syntax error"));
    assert_eq!(events[3], bad(None, "syntax error"));
    assert_eq!(names(&events[4..]), ["d NOOP"]);
}

#[test]
fn deeply_nested_search_is_bad() {
    let mut line = b"a SEARCH ".to_vec();
    line.extend(std::iter::repeat_n(b'(', 5000));
    line.extend_from_slice(b"ALL");
    line.extend(std::iter::repeat_n(b')', 5000));
    line.extend_from_slice(b"\r\nb NOOP\r\n");
    let events = feed(&mut framer(), &line);
    assert_eq!(events[0], bad(Some("a"), "syntax error"));
    assert_eq!(names(&events[1..]), ["b NOOP"]);
    let nots = format!("a SEARCH {}ALL\r\n", "NOT ".repeat(5000));
    assert_eq!(
        feed(&mut framer(), nots.as_bytes()),
        [bad(Some("a"), "syntax error")]
    );
}

#[test]
fn line_of_one_megabyte_is_fatal() {
    let mut framer = framer();
    let mut line = b"a LOGIN ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 1024 * 1024));
    // Detected before the line ends: nothing is buffered up to the end of the line.
    framer.push(&line[..100 * 1024]);
    assert_eq!(drain(&mut framer, None), [Event::LineTooLong]);
    assert!(feed(&mut framer, &line[100 * 1024..]).is_empty());
    assert!(feed(&mut framer, b"\r\nb NOOP\r\n").is_empty());
    assert_eq!(framer.buffer_capacity(), 0);
}

#[test]
fn line_limit_counts_the_whole_command_text() {
    let limits = FramerLimits {
        max_line: 40,
        ..FramerLimits::default()
    };
    let mut framer = Framer::new(limits);
    assert_eq!(
        feed(&mut framer, b"a LOGIN {5+}\r\nalice pass\r\n").len(),
        1
    );
    // Each line fits, the command text together does not.
    let events = feed(
        &mut framer,
        b"b SEARCH TEXT {1+}\r\nx TEXT {1+}\r\ny TEXT {1+}\r\nz\r\n",
    );
    assert_eq!(events, [Event::LineTooLong]);
}

// ----- literal limits ----------------------------------------------------------------------

#[test]
fn huge_sync_literal_is_too_big_and_not_fatal() {
    let mut framer = framer();
    let events = feed(&mut framer, b"a LOGIN {104857600}\r\nb NOOP\r\n");
    assert_eq!(
        events[0],
        Event::TooBig {
            tag: Some(tag("a")),
            fatal: false
        }
    );
    assert_eq!(names(&events[1..]), ["b NOOP"]);
}

#[test]
fn huge_non_sync_literal_is_fatal() {
    let mut framer = framer();
    let events = feed(&mut framer, b"a LOGIN {104857600+}\r\nxxxxxxxx");
    assert_eq!(
        events,
        [Event::TooBig {
            tag: Some(tag("a")),
            fatal: true
        }]
    );
    assert!(feed(&mut framer, b"\r\nb NOOP\r\n").is_empty());
}

#[test]
fn literal_announcement_beyond_u32_is_too_big() {
    for (line, fatal) in [
        (&b"a LOGIN {99999999999}\r\n"[..], false),
        (b"a LOGIN {99999999999999999999999+}\r\n", true),
    ] {
        let events = feed(&mut framer(), line);
        assert_eq!(
            events,
            [Event::TooBig {
                tag: Some(tag("a")),
                fatal
            }]
        );
    }
}

#[test]
fn command_literals_are_limited_together() {
    let mut framer = framer();
    assert_eq!(
        feed(&mut framer, b"a LOGIN {600000}\r\n"),
        [Event::ContinueLiteral]
    );
    framer.push(&vec![b'u'; 600_000]);
    let events = feed(&mut framer, b" {600000}\r\n");
    assert_eq!(
        events,
        [Event::TooBig {
            tag: Some(tag("a")),
            fatal: false
        }]
    );
    assert_eq!(names(&feed(&mut framer, b"b NOOP\r\n")), ["b NOOP"]);
    assert!(framer.buffer_capacity() <= 2 * IDLE_KEEP);
}

#[test]
fn too_many_literals_in_one_command_are_bad() {
    let mut input = b"a SEARCH".to_vec();
    for _ in 0..MAX_LITERALS {
        input.extend_from_slice(b" TEXT {1+}\r\nx");
    }
    input.extend_from_slice(b"\r\n");
    assert_eq!(names(&feed(&mut framer(), &input)), ["a SEARCH"]);
    let mut framer = framer();
    input.truncate(input.len() - 2);
    input.extend_from_slice(b" TEXT {1+}\r\nx TEXT {1}\r\nb NOOP\r\n");
    let events = feed(&mut framer, &input);
    assert_eq!(events[0], bad(Some("a"), "too many literals"));
    assert_eq!(names(&events[1..]), ["b NOOP"]);
}

#[test]
fn huge_literal_in_shim_command_is_too_big() {
    let events = feed(
        &mut framer(),
        b"a SEARCH RETURN (MIN) SUBJECT {104857600}\r\n",
    );
    assert_eq!(
        events,
        [Event::TooBig {
            tag: Some(tag("a")),
            fatal: false
        }]
    );
}

// ----- APPEND ------------------------------------------------------------------------------

fn append_start(event: &Event) -> (u32, bool, bool) {
    match event {
        Event::AppendStart {
            length,
            sync,
            binary,
            ..
        } => (*length, *sync, *binary),
        other => panic!("expected AppendStart, got {other:?}"),
    }
}

#[test]
fn append_streams_its_message() {
    let mut framer = framer();
    let events = feed(
        &mut framer,
        b"a APPEND INBOX (\\Seen $Junk) \"05-Feb-2026 10:00:00 +0100\" {11}\r\n",
    );
    match &events[..] {
        [Event::AppendStart {
            tag: t,
            mailbox,
            flags,
            date,
            length: 11,
            sync: true,
            binary: false,
        }] => {
            assert_eq!(*t, tag("a"));
            assert_eq!(*mailbox, Mailbox::Inbox);
            assert_eq!(flags.len(), 2);
            assert!(date.is_some());
        }
        other => panic!("{other:?}"),
    }
    let events = feed(&mut framer, b"hello world\r\nb NOOP\r\n");
    assert_eq!(events[0], Event::AppendChunk(b"hello world".to_vec()));
    assert_eq!(events[1], Event::AppendDone);
    assert_eq!(names(&events[2..]), ["b NOOP"]);
}

#[test]
fn append_literal8_and_non_sync() {
    let events = feed(&mut framer(), b"a APPEND Sent ~{3+}\r\na\0c\r\n");
    assert_eq!(append_start(&events[0]), (3, false, true));
    assert_eq!(
        &events[1..],
        [Event::AppendChunk(b"a\0c".to_vec()), Event::AppendDone]
    );
}

#[test]
fn append_mailbox_literal_is_a_normal_literal() {
    let mut framer = framer();
    assert_eq!(
        feed(&mut framer, b"a APPEND {4}\r\n"),
        [Event::ContinueLiteral]
    );
    let events = feed(&mut framer, b"Sent {2}\r\n");
    assert_eq!(append_start(&events[0]), (2, true, false));
    assert_eq!(
        feed(&mut framer, b"hi\r\n"),
        [Event::AppendChunk(b"hi".to_vec()), Event::AppendDone]
    );
}

#[test]
fn append_of_zero_bytes() {
    let events = feed(&mut framer(), b"a APPEND INBOX {0+}\r\n\r\n");
    assert_eq!(append_start(&events[0]), (0, false, false));
    assert_eq!(&events[1..], [Event::AppendDone]);
}

#[test]
fn append_with_invalid_flags_is_bad_not_streamed() {
    let events = feed(
        &mut framer(),
        b"a APPEND INBOX (\\Bogus( {3+}\r\nabc\r\nb NOOP\r\n",
    );
    assert_eq!(events[0], bad(Some("a"), "syntax error"));
    assert_eq!(names(&events[1..]), ["b NOOP"]);
}

#[test]
fn append_of_three_megabytes_keeps_memory_bounded() {
    let mut framer = framer();
    let size = 3 * 1024 * 1024;
    framer.push(format!("a APPEND INBOX {{{size}}}\r\n").as_bytes());
    assert_eq!(
        append_start(&framer.next(None).expect("start")),
        (size, true, false)
    );
    let message: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut received = Vec::with_capacity(message.len());
    let mut done = false;
    for piece in message.chunks(16 * 1024).chain([&b"\r\n"[..]]) {
        framer.push(piece);
        for event in drain(&mut framer, None) {
            match event {
                Event::AppendChunk(chunk) => {
                    assert!(chunk.len() <= CHUNK);
                    received.extend_from_slice(&chunk);
                }
                Event::AppendDone => done = true,
                other => panic!("{other:?}"),
            }
        }
        assert!(
            framer.buffer_capacity() <= 4 * CHUNK,
            "{}",
            framer.buffer_capacity()
        );
    }
    assert!(done);
    assert!(received == message);
}

#[test]
fn append_pushed_in_one_piece_gives_the_buffer_back() {
    let mut framer = framer();
    let size = 3 * 1024 * 1024;
    let mut input = format!("a APPEND INBOX {{{size}+}}\r\n").into_bytes();
    input.extend(std::iter::repeat_n(b'm', size as usize));
    input.extend_from_slice(b"\r\nb NOOP\r\n");
    framer.push(&input);
    drop(input);
    let events = drain(&mut framer, None);
    assert_eq!(append_start(&events[0]), (size, false, false));
    let chunks: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Event::AppendChunk(chunk) => Some(chunk.len()),
            _ => None,
        })
        .collect();
    assert!(chunks.iter().all(|&n| n <= CHUNK));
    assert_eq!(chunks.iter().sum::<usize>(), size as usize);
    assert_eq!(names(&events[events.len() - 2..]), ["AppendDone", "b NOOP"]);
    assert!(framer.buffer_capacity() <= 2 * IDLE_KEEP);
}

#[test]
fn append_over_appendlimit() {
    let mut framer = framer();
    let events = feed(&mut framer, b"a APPEND INBOX {104857600}\r\nb NOOP\r\n");
    assert_eq!(
        events[0],
        Event::TooBig {
            tag: Some(tag("a")),
            fatal: false
        }
    );
    assert_eq!(names(&events[1..]), ["b NOOP"]);
    let events = feed(&mut framer, b"c APPEND INBOX {104857600+}\r\n");
    assert_eq!(
        events,
        [Event::TooBig {
            tag: Some(tag("c")),
            fatal: true
        }]
    );
}

#[test]
fn rejected_sync_append_drops_the_command() {
    let mut framer = framer();
    framer.push(b"a APPEND Nowhere {5}\r\n");
    assert_eq!(
        append_start(&framer.next(None).expect("start")),
        (5, true, false)
    );
    framer.reject_append();
    assert_eq!(names(&feed(&mut framer, b"b NOOP\r\n")), ["b NOOP"]);
}

#[test]
fn rejected_non_sync_append_skips_the_message() {
    let mut framer = framer();
    framer.push(b"a APPEND Nowhere {8+}\r\nb NOOP\r\n\r\nc NOOP\r\n");
    assert_eq!(
        append_start(&framer.next(None).expect("start")),
        (8, false, false)
    );
    framer.reject_append();
    // "b NOOP\r\n" was the message; the empty line ended the command.
    assert_eq!(names(&drain(&mut framer, None)), ["c NOOP"]);
}

#[test]
fn rejected_non_sync_append_skips_split_input() {
    let mut framer = framer();
    framer.push(b"a APPEND Nowhere {10+}\r\n0123");
    assert_eq!(
        append_start(&framer.next(None).expect("start")),
        (10, false, false)
    );
    framer.reject_append();
    assert!(drain(&mut framer, None).is_empty());
    assert!(feed(&mut framer, b"456789\r").is_empty());
    assert_eq!(names(&feed(&mut framer, b"\nb NOOP\r\n")), ["b NOOP"]);
}

#[test]
fn append_rejected_while_streaming_skips_the_rest() {
    let mut framer = framer();
    framer.push(b"a APPEND INBOX {10}\r\n");
    append_start(&framer.next(None).expect("start"));
    assert_eq!(
        feed(&mut framer, b"0123"),
        [Event::AppendChunk(b"0123".to_vec())]
    );
    framer.reject_append();
    assert_eq!(
        names(&feed(&mut framer, b"456789\r\nb NOOP\r\n")),
        ["b NOOP"]
    );
}

#[test]
fn append_trailing_garbage() {
    let events = feed(&mut framer(), b"a APPEND INBOX {1+}\r\nX FOO\r\nb NOOP\r\n");
    assert_eq!(append_start(&events[0]), (1, false, false));
    assert_eq!(
        &events[1..3],
        [
            Event::AppendChunk(b"X".to_vec()),
            Event::AppendTrailingGarbage { tag: tag("a") }
        ]
    );
    assert_eq!(names(&events[3..]), ["b NOOP"]);
}

#[test]
fn multiappend_is_trailing_garbage_and_skipped() {
    let events = feed(
        &mut framer(),
        b"a APPEND INBOX {1+}\r\nX {3+}\r\nabc (\\Seen) {2+}\r\nyz\r\nb NOOP\r\n",
    );
    assert_eq!(
        names(&events[2..]),
        ["AppendTrailingGarbage { tag: Tag(\"a\") }", "b NOOP"]
    );
    // A sync second message is never sent (no "+"), so the command ends at its announcement.
    let events = feed(&mut framer(), b"a APPEND INBOX {1+}\r\nX {3}\r\nb NOOP\r\n");
    assert_eq!(
        names(&events[2..]),
        ["AppendTrailingGarbage { tag: Tag(\"a\") }", "b NOOP"]
    );
}

// ----- AUTHENTICATE, IDLE, STARTTLS, COMPRESS ----------------------------------------------

#[test]
fn authenticate_data_lines_and_cancel() {
    let mut framer = framer();
    let events = feed(&mut framer, b"a AUTHENTICATE PLAIN\r\n");
    assert_eq!(names(&events), ["a AUTHENTICATE"]);
    framer.set_mode(Mode::AuthenticateData);
    assert_eq!(
        feed(&mut framer, b"AGFsaWNlAHNlY3JldA==\r\n"),
        [Event::AuthenticateData(AuthenticateData::Continue(
            Secret::new(b"\0alice\0secret".to_vec().into())
        ))]
    );
    assert_eq!(
        feed(&mut framer, b"*\r\n"),
        [Event::AuthenticateData(AuthenticateData::Cancel)]
    );
    assert_eq!(
        feed(&mut framer, b"not base64!\r\n"),
        [bad(None, "invalid base64")]
    );
    framer.set_mode(Mode::Command);
    assert_eq!(names(&feed(&mut framer, b"b NOOP\r\n")), ["b NOOP"]);
}

#[test]
fn empty_authenticate_line_is_empty_data() {
    let mut framer = framer();
    framer.set_mode(Mode::AuthenticateData);
    assert_eq!(
        feed(&mut framer, b"\r\n"),
        [Event::AuthenticateData(AuthenticateData::Continue(
            Secret::new(Vec::new().into())
        ))]
    );
}

#[test]
fn idle_done_and_anything_else() {
    let mut framer = framer();
    framer.set_mode(Mode::Idle);
    assert_eq!(feed(&mut framer, b"DONE\r\n"), [Event::IdleDone]);
    assert_eq!(feed(&mut framer, b"done\n"), [Event::IdleDone]);
    assert_eq!(feed(&mut framer, b"a NOOP\r\n"), [Event::IdleBad]);
    assert_eq!(feed(&mut framer, b"DONE \r\n"), [Event::IdleBad]);
}

#[test]
fn command_pipelined_after_done_waits_for_the_mode_switch() {
    let mut framer = framer();
    framer.set_mode(Mode::Idle);
    framer.push(b"DONE\r\na NOOP\r\n");
    assert_eq!(framer.next(None), Some(Event::IdleDone));
    framer.set_mode(Mode::Command);
    assert_eq!(names(&drain(&mut framer, None)), ["a NOOP"]);
}

#[test]
fn input_pipelined_after_starttls_is_visible() {
    let mut framer = framer();
    framer.push(b"a STARTTLS\r\nb LOGIN x y\r\n");
    assert_eq!(names(&[framer.next(None).expect("event")]), ["a STARTTLS"]);
    assert!(framer.has_buffered_input());
    assert_eq!(framer.take_buffered(), b"b LOGIN x y\r\n");
    assert!(!framer.has_buffered_input());
    assert_eq!(framer.next(None), None);
}

#[test]
fn nothing_buffered_after_a_clean_command() {
    let mut framer = framer();
    assert!(!framer.has_buffered_input());
    framer.push(b"a NOOP\r\n");
    assert!(framer.has_buffered_input());
    framer.next(None);
    assert!(!framer.has_buffered_input());
    framer.push(b"b NO");
    assert!(framer.has_buffered_input());
}

#[test]
fn compressed_bytes_can_be_taken_and_pushed_back() {
    let mut framer = framer();
    framer.push(b"a COMPRESS DEFLATE\r\n\x78\x9c");
    assert_eq!(names(&[framer.next(None).expect("event")]), ["a COMPRESS"]);
    assert_eq!(framer.take_buffered(), b"\x78\x9c");
    // Stand-in for the inflated bytes.
    assert_eq!(names(&feed(&mut framer, b"b NOOP\r\n")), ["b NOOP"]);
}

// ----- split input -------------------------------------------------------------------------

/// A session's worth of input touching every framer path that does not depend on the server.
const SESSION: &[u8] = b"a NOOP\r\n\
b LOGIN {5}\r\nalice {6+}\r\nsecret\r\n\
c APPEND INBOX (\\Seen) {12}\r\nhello\r\nworld\r\n\
d APPEND Sent ~{4+}\r\n\0\x01\r\n\r\n\
e UID FETCH 1:* (FLAGS EMAILID)\r\n\
f FROB {3+}\r\nabc\r\n\
g SEARCH RETURN (MIN) SUBJECT {2}\r\nhi\r\n\
h APPEND INBOX {1+}\r\nX junk\r\n\
i FETCH $ (UID)\n\
j LOGIN {99999999}\r\n\
\r\n\
k LIST (SUBSCRIBED) \"\" (\"a\" {1+}\r\nb)\r\n\
l SEARCH (((\r\n\
m LOGOUT\r\n";

/// Events with adjacent APPEND chunks merged (chunking depends on how input arrives).
fn normalized(events: Vec<Event>) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::new();
    for event in events {
        if let (Some(Event::AppendChunk(last)), Event::AppendChunk(more)) = (out.last_mut(), &event)
        {
            last.extend_from_slice(more);
            continue;
        }
        out.push(event);
    }
    out
}

fn run_in_pieces(pieces: &[&[u8]]) -> Vec<Event> {
    let mut framer = framer();
    let mut events = Vec::new();
    for piece in pieces {
        framer.push(piece);
        events.extend(drain(&mut framer, Some(&[5, 6])));
    }
    normalized(events)
}

#[test]
fn session_produces_the_expected_events() {
    let events = run_in_pieces(&[SESSION]);
    assert_eq!(
        names(&events),
        [
            "a NOOP",
            "ContinueLiteral",
            "b LOGIN",
            "AppendStart { tag: Tag(\"c\"), mailbox: Inbox, flags: [Seen], date: None, length: 12, sync: true, binary: false }",
            "AppendChunk([104, 101, 108, 108, 111, 13, 10, 119, 111, 114, 108, 100])",
            "AppendDone",
            "AppendStart { tag: Tag(\"d\"), mailbox: Other(MailboxOther(Atom(AtomExt(\"Sent\")))), flags: [], date: None, length: 4, sync: false, binary: true }",
            "AppendChunk([0, 1, 13, 10])",
            "AppendDone",
            "e FETCH",
            "Bad { tag: Some(Tag(\"f\")), message: \"syntax error\" }",
            "ContinueLiteral",
            "g SEARCH",
            "AppendStart { tag: Tag(\"h\"), mailbox: Inbox, flags: [], date: None, length: 1, sync: false, binary: false }",
            "AppendChunk([88])",
            "AppendTrailingGarbage { tag: Tag(\"h\") }",
            "i FETCH",
            "TooBig { tag: Some(Tag(\"j\")), fatal: false }",
            "Bad { tag: None, message: \"syntax error\" }",
            "k LIST",
            "Bad { tag: Some(Tag(\"l\")), message: \"syntax error\" }",
            "m LOGOUT",
        ]
    );
}

#[test]
fn splitting_input_at_any_byte_gives_the_same_events() {
    let whole = run_in_pieces(&[SESSION]);
    for at in 0..=SESSION.len() {
        let (head, tail) = SESSION.split_at(at);
        assert_eq!(run_in_pieces(&[head, tail]), whole, "split at {at}");
    }
    let bytes: Vec<&[u8]> = SESSION.chunks(1).collect();
    assert_eq!(run_in_pieces(&bytes), whole, "byte by byte");
    let threes: Vec<&[u8]> = SESSION.chunks(3).collect();
    assert_eq!(run_in_pieces(&threes), whole, "three at a time");
}

// ----- random input ------------------------------------------------------------------------

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const CORPUS: &[&[u8]] = &[
    b"a NOOP\r\n",
    b"a LOGIN {5}\r\nalice {6+}\r\nsecret\r\n",
    b"a APPEND INBOX (\\Seen) {5}\r\nhello\r\n",
    b"a APPEND INBOX ~{3+}\r\nabc\r\n",
    b"a UID FETCH 1:* (FLAGS EMAILID BODY.PEEK[HEADER.FIELDS (SUBJECT)])\r\n",
    b"a FETCH $ (FLAGS THREADID)\r\n",
    b"a SEARCH RETURN (MIN MAX) OR (EMAILID M1 SEEN) NOT SAVEDBEFORE 1-Feb-2026\r\n",
    b"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"a\" \"b\") RETURN (CHILDREN STATUS (MESSAGES MAILBOXID))\r\n",
    b"a CREATE x (USE (\\Sent))\r\n",
    b"a STATUS INBOX (MESSAGES APPENDLIMIT)\r\n",
    b"a STORE $ +FLAGS (\\Seen)\r\n",
    b"a SEARCH CHARSET UTF-8 TEXT {4+}\r\ntest\r\n",
    b"a SELECT INBOX (QRESYNC (1 2))\r\n",
    b"a ID (\"name\" \"x\")\r\n",
    b"a AUTHENTICATE PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\n",
    b"a IDLE\r\nDONE\r\n",
];

/// Bytes the mutator likes to insert: they drive the framer's decisions.
const SPICE: &[&[u8]] = &[
    b"{",
    b"}",
    b"{5}\r\n",
    b"{3+}\r\n",
    b"~{2}\r\n",
    b"{999999999}\r\n",
    b"{4294967296+}\r\n",
    b"(",
    b")",
    b"\"",
    b"\\",
    b"\r",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff",
    b" ",
    b"$",
    b"*",
    b"[",
    b"]",
];

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for _ in 0..rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(6) {
            0 if !bytes.is_empty() => {
                let at = at.min(bytes.len() - 1);
                bytes[at] = rng.next() as u8;
            }
            1 if at < bytes.len() => {
                let end = (at + rng.below(8)).min(bytes.len());
                bytes.drain(at..end);
            }
            2 => {
                let spice = SPICE[rng.below(SPICE.len())];
                bytes.splice(at..at, spice.iter().copied());
            }
            3 => bytes.truncate(at),
            4 => {
                let other = CORPUS[rng.below(CORPUS.len())];
                bytes.splice(at..at, other.iter().copied());
            }
            _ => {
                let random: Vec<u8> = (0..rng.below(12)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, random);
            }
        }
    }
    bytes
}

impl Framer {
    /// The framer only waits when it really needs bytes it does not have.
    fn assert_waits_only_for_input(&self) {
        let unconsumed = &self.input[self.pos..];
        match self.state {
            State::Line | State::AppendTrailer { .. } => {
                assert!(
                    !unconsumed.contains(&b'\n'),
                    "a complete line is left unread"
                );
                assert!(unconsumed.len() <= self.limits.max_line + 2);
            }
            State::Skip { remaining, .. } => {
                assert!(remaining == 0 || unconsumed.is_empty());
                assert!(remaining > 0 || !unconsumed.contains(&b'\n'));
            }
            State::Literal { .. } | State::AppendData { .. } => assert!(unconsumed.is_empty()),
            State::AppendPending { .. } => {
                panic!("next() returned None before starting the APPEND")
            }
            State::Dead => assert!(unconsumed.is_empty()),
        }
    }
}

/// Drains events, playing a server: rejects some APPENDs and follows AUTHENTICATE and IDLE.
fn drain_as_server(framer: &mut Framer, rng: &mut Rng) -> usize {
    let mut count = 0;
    let saved: &[u32] = &[1, 2, 3];
    loop {
        let saved = if rng.below(4) == 0 { None } else { Some(saved) };
        let Some(event) = framer.next(saved) else {
            framer.assert_waits_only_for_input();
            return count;
        };
        count += 1;
        assert!(count < 100_000, "framer does not stop producing events");
        match event {
            Event::AppendStart { .. } if rng.below(3) == 0 => framer.reject_append(),
            Event::Command(parsed) => match parsed.command.body {
                CommandBody::Authenticate { .. } => framer.set_mode(Mode::AuthenticateData),
                CommandBody::Idle => framer.set_mode(Mode::Idle),
                _ => {}
            },
            Event::AuthenticateData(_) | Event::IdleDone | Event::IdleBad => {
                framer.set_mode(Mode::Command)
            }
            Event::AppendChunk(chunk) => assert!(!chunk.is_empty() && chunk.len() <= CHUNK),
            Event::Bad { message, .. } => {
                assert!(message.len() < 80 && message.is_ascii());
                // A failed AUTHENTICATE exchange ends it.
                framer.set_mode(Mode::Command);
            }
            _ => {}
        }
    }
}

#[test]
fn random_and_mutated_input_never_panics_and_always_progresses() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let limits = FramerLimits {
        max_line: 4096,
        max_command_literals: 64 * 1024,
        max_append: 1024 * 1024,
    };
    let mut session = Framer::new(limits);
    let mut events = 0;
    for case in 0..10_000 {
        let input = if case % 5 == 0 {
            (0..rng.below(200)).map(|_| rng.next() as u8).collect()
        } else {
            let base = CORPUS[rng.below(CORPUS.len())];
            mutate(&mut rng, base)
        };
        // Each case alone, fed in random pieces, ...
        let mut alone = Framer::new(limits);
        let mut rest = &input[..];
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(1 + rng.below(rest.len()));
            alone.push(piece);
            events += drain_as_server(&mut alone, &mut rng);
            rest = tail;
        }
        // ... and all cases back to back in one long session (restarted when it dies).
        session.push(&input);
        events += drain_as_server(&mut session, &mut rng);
        if matches!(session.state, State::Dead) {
            session = Framer::new(limits);
        }
    }
    assert!(events > 10_000, "too few events: {events}");
}

#[test]
fn valid_corpus_commands_parse() {
    let mut framer = framer();
    for command in CORPUS {
        framer.push(command);
        while let Some(event) = framer.next(Some(&[1])) {
            match event {
                Event::Command(parsed) => match parsed.command.body {
                    CommandBody::Authenticate { .. } => framer.set_mode(Mode::AuthenticateData),
                    CommandBody::Idle => framer.set_mode(Mode::Idle),
                    _ => {}
                },
                Event::AuthenticateData(_) | Event::IdleDone => framer.set_mode(Mode::Command),
                Event::ContinueLiteral
                | Event::AppendStart { .. }
                | Event::AppendChunk(_)
                | Event::AppendDone => {}
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(command)),
            }
        }
    }
    assert!(!framer.has_buffered_input());
}

#[test]
fn literal_at_end_finds_announcements() {
    let found = |line: &[u8]| literal_at_end(line).map(|a| (a.start, a.length, a.sync, a.binary));
    assert_eq!(found(b"a LOGIN {5}\r\n"), Some((8, 5, true, false)));
    assert_eq!(found(b"a LOGIN {5+}\n"), Some((8, 5, false, false)));
    assert_eq!(found(b"a APPEND x ~{12}\r\n"), Some((11, 12, true, true)));
    assert_eq!(found(b"{0}\r\n"), Some((0, 0, true, false)));
    assert_eq!(
        found(b"a {99999999999999999999999}\r\n"),
        Some((2, u64::MAX, true, false))
    );
    for line in [
        &b"a LOGIN {5}"[..],
        b"a {}\r\n",
        b"a {+}\r\n",
        b"a 5}\r\n",
        b"a {5 }\r\n",
        b"a {5}x\r\n",
        b"a {-5}\r\n",
        b"a {5++}\r\n",
    ] {
        assert_eq!(found(line), None, "{}", String::from_utf8_lossy(line));
    }
}
