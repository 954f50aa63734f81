use imap_types::command::Command;
use imap_types::core::AString;
use imap_types::mailbox::ListMailbox;
use imap_types::search::SearchKey;

use super::*;

const SAVED: &[u32] = &[7, 1, 2, 3, 9, 3];

/// The rewritten text (without CRLF) and what was lifted.
fn rewritten(command: &str, saved: Option<&[u32]>) -> (String, Ext) {
    let (text, ext) = rewrite(format!("{command}\r\n").as_bytes(), saved)
        .expect("rewrite failed")
        .expect("nothing rewritten");
    let text = String::from_utf8(text).expect("rewritten text is UTF-8");
    (text.trim_end_matches("\r\n").to_owned(), ext)
}

fn parsed(command: &str, saved: Option<&[u32]>) -> Parsed {
    decode(format!("{command}\r\n").as_bytes(), saved).expect("shim decode failed")
}

fn shim_error(command: &str, saved: Option<&[u32]>) -> ShimError {
    decode(format!("{command}\r\n").as_bytes(), saved).expect_err("shim accepted")
}

fn astring_bytes(value: &AString<'_>) -> Vec<u8> {
    value.as_ref().to_vec()
}

/// The extension search keys found (recursively) in a decoded SEARCH.
fn ext_keys(command: &Command<'_>) -> Vec<ExtSearchKey> {
    fn walk(key: &SearchKey<'_>, out: &mut Vec<ExtSearchKey>) {
        match key {
            SearchKey::Header(name, value) => {
                out.extend(ExtSearchKey::from_header(
                    &astring_bytes(name),
                    &astring_bytes(value),
                ));
            }
            SearchKey::Not(inner) => walk(inner, out),
            SearchKey::Or(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            SearchKey::And(keys) => keys.as_ref().iter().for_each(|k| walk(k, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    let criteria = match &command.body {
        CommandBody::Search { criteria, .. } => criteria,
        CommandBody::Sort {
            search_criteria, ..
        } => search_criteria,
        other => panic!("not a search: {other:?}"),
    };
    criteria.as_ref().iter().for_each(|k| walk(k, &mut out));
    out
}

// ----- FETCH ---------------------------------------------------------------------------------

#[test]
fn fetch_lifts_emailid_threadid_savedate_from_the_item_list() {
    let (text, ext) = rewritten(
        "a FETCH 1:* (FLAGS EMAILID threadid BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.10> SaveDate)",
        None,
    );
    assert_eq!(
        text,
        "a FETCH 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)]<0.10>)"
    );
    assert_eq!(
        ext.fetch,
        vec![FetchExt::EmailId, FetchExt::ThreadId, FetchExt::SaveDate]
    );
    assert!(matches!(
        parsed("a FETCH 1:* (FLAGS EMAILID)", None).command.body,
        CommandBody::Fetch { uid: false, .. }
    ));
}

#[test]
fn fetch_list_of_only_ext_items_becomes_uid() {
    let (text, ext) = rewritten("a UID FETCH 5 (EMAILID THREADID)", None);
    assert_eq!(text, "a UID FETCH 5 (UID)");
    assert_eq!(ext.fetch, vec![FetchExt::EmailId, FetchExt::ThreadId]);
}

#[test]
fn fetch_single_bare_ext_item_becomes_uid() {
    let (text, ext) = rewritten("a FETCH 1 EMAILID", None);
    assert_eq!(text, "a FETCH 1 UID");
    assert_eq!(ext.fetch, vec![FetchExt::EmailId]);
    parsed("a FETCH 1 SAVEDATE", None);
}

#[test]
fn fetch_keeps_condstore_modifiers() {
    let (text, _) = rewritten("a UID FETCH 1:* (FLAGS EMAILID) (CHANGEDSINCE 12345)", None);
    assert_eq!(text, "a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)");
    parsed("a UID FETCH 1:* (FLAGS EMAILID) (CHANGEDSINCE 12345)", None);
}

#[test]
fn fetch_ext_item_inside_a_section_is_not_lifted() {
    // Valid as sent: a header field named EMAILID.
    let command = b"a FETCH 1 (BODY[HEADER.FIELDS (EMAILID)])\r\n";
    assert!(CommandCodec::new().decode(command).is_ok());
    assert_eq!(rewrite(command, None), Ok(None));
}

#[test]
fn fetch_with_unknown_item_stays_bad() {
    assert_eq!(
        shim_error("a FETCH 1 (FLAGS EMAILID BOGUS)", None),
        ShimError::Syntax
    );
    assert_eq!(shim_error("a FETCH 1 (BOGUS)", None), ShimError::Syntax);
}

// ----- $ (RFC 5182) ------------------------------------------------------------------------

#[test]
fn dollar_fetch_becomes_uid_fetch_of_the_saved_set() {
    let (text, _) = rewritten("a FETCH $ (FLAGS)", Some(SAVED));
    assert_eq!(text, "a UID FETCH 1:3,7,9 (FLAGS)");
    let command = parsed("a FETCH $ (FLAGS EMAILID)", Some(SAVED)).command;
    assert!(matches!(command.body, CommandBody::Fetch { uid: true, .. }));
}

#[test]
fn dollar_uid_fetch_stays_uid_fetch() {
    let (text, _) = rewritten("a UID FETCH $ FLAGS", Some(&[4]));
    assert_eq!(text, "a UID FETCH 4 FLAGS");
}

#[test]
fn dollar_store_copy_move_expunge() {
    let saved = Some(&[5u32, 6][..]);
    assert_eq!(
        rewritten("a STORE $ +FLAGS (\\Seen)", saved).0,
        "a UID STORE 5:6 +FLAGS (\\Seen)"
    );
    assert_eq!(rewritten("a COPY $ Trash", saved).0, "a UID COPY 5:6 Trash");
    assert_eq!(rewritten("a MOVE $ Trash", saved).0, "a UID MOVE 5:6 Trash");
    assert_eq!(
        rewritten("a UID MOVE $ Trash", saved).0,
        "a UID MOVE 5:6 Trash"
    );
    assert_eq!(rewritten("a UID EXPUNGE $", saved).0, "a UID EXPUNGE 5:6");
    for command in [
        "a STORE $ +FLAGS (\\Seen)",
        "a COPY $ Trash",
        "a MOVE $ Trash",
        "a UID EXPUNGE $",
    ] {
        parsed(command, saved);
    }
}

#[test]
fn dollar_with_empty_saved_result_matches_nothing() {
    assert_eq!(
        rewritten("a FETCH $ FLAGS", Some(&[])).0,
        "a UID FETCH 4294967295 FLAGS"
    );
    assert_eq!(
        rewritten("a SEARCH $", Some(&[])).0,
        "a SEARCH UID 4294967295"
    );
}

#[test]
fn dollar_without_saved_result_is_bad() {
    for command in [
        "a FETCH $ FLAGS",
        "a STORE $ +FLAGS (\\Seen)",
        "a COPY $ x",
        "a MOVE $ x",
        "a SEARCH $",
        "a UID SEARCH UID $",
    ] {
        assert_eq!(
            shim_error(command, None),
            ShimError::NoSavedResult,
            "{command}"
        );
        assert_eq!(ShimError::NoSavedResult.message(), "no saved search result");
    }
}

#[test]
fn dollar_search_key_becomes_uid_key() {
    assert_eq!(
        rewritten("a SEARCH $", Some(SAVED)).0,
        "a SEARCH UID 1:3,7,9"
    );
    assert_eq!(
        rewritten("a UID SEARCH $ UNSEEN", Some(SAVED)).0,
        "a UID SEARCH UID 1:3,7,9 UNSEEN"
    );
    assert_eq!(
        rewritten("a SEARCH UID $", Some(SAVED)).0,
        "a SEARCH UID 1:3,7,9"
    );
    assert_eq!(
        rewritten("a SEARCH OR $ (NOT $) SEEN", Some(&[2])).0,
        "a SEARCH OR UID 2 (NOT UID 2) SEEN"
    );
    parsed("a SEARCH OR $ (NOT $) SEEN", Some(&[2]));
}

#[test]
fn dollar_as_a_string_argument_is_not_substituted() {
    for command in [
        "a SEARCH SUBJECT $\r\n",
        "a SELECT $\r\n",
        "a COPY 1 $\r\n",
        "a LIST \"\" $\r\n",
    ] {
        assert!(
            CommandCodec::new().decode(command.as_bytes()).is_ok(),
            "{command}"
        );
        assert_eq!(
            rewrite(command.as_bytes(), Some(SAVED)),
            Ok(None),
            "{command}"
        );
    }
}

#[test]
fn dollar_mixed_into_a_set_is_bad() {
    assert_eq!(
        shim_error("a FETCH 1,$ FLAGS", Some(SAVED)),
        ShimError::Syntax
    );
}

#[test]
fn uid_set_is_compact() {
    assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8, 0, 8]), "1:3,5,7:8");
    assert_eq!(uid_set(&[u32::MAX - 1, u32::MAX]), "4294967294:4294967295");
    assert_eq!(uid_set(&[]), "4294967295");
}

// ----- STATUS ------------------------------------------------------------------------------

#[test]
fn status_lifts_mailboxid_and_appendlimit() {
    let (text, ext) = rewritten(
        "a STATUS INBOX (MESSAGES MAILBOXID UIDNEXT APPENDLIMIT)",
        None,
    );
    assert_eq!(text, "a STATUS INBOX (MESSAGES UIDNEXT)");
    assert_eq!(
        ext.status,
        vec![StatusExt::MailboxId, StatusExt::AppendLimit]
    );
    let command = parsed("a STATUS INBOX (MESSAGES MAILBOXID)", None).command;
    assert!(matches!(command.body, CommandBody::Status { .. }));
}

#[test]
fn status_of_only_ext_items_leaves_an_empty_list() {
    let (text, ext) = rewritten("a STATUS Sent (mailboxid)", None);
    assert_eq!(text, "a STATUS Sent ()");
    assert_eq!(ext.status, vec![StatusExt::MailboxId]);
    match parsed("a STATUS Sent (MAILBOXID)", None).command.body {
        CommandBody::Status { item_names, .. } => assert!(item_names.is_empty()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn status_with_unknown_item_stays_bad() {
    assert_eq!(
        shim_error("a STATUS INBOX (MAILBOXID BOGUS)", None),
        ShimError::Syntax
    );
}

// ----- SEARCH ------------------------------------------------------------------------------

#[test]
fn search_return_is_cut_out() {
    let (text, ext) = rewritten("a SEARCH RETURN (MIN MAX COUNT) UNSEEN", None);
    assert_eq!(text, "a SEARCH UNSEEN");
    assert_eq!(
        ext.search_return,
        Some(vec![
            SearchReturn::Min,
            SearchReturn::Max,
            SearchReturn::Count
        ])
    );
    let (text, ext) = rewritten(
        "a UID SEARCH RETURN (save all) CHARSET UTF-8 SUBJECT hello",
        None,
    );
    assert_eq!(text, "a UID SEARCH CHARSET UTF-8 SUBJECT hello");
    assert_eq!(
        ext.search_return,
        Some(vec![SearchReturn::Save, SearchReturn::All])
    );
    assert!(matches!(
        parsed("a UID SEARCH RETURN (COUNT) ALL", None).command.body,
        CommandBody::Search { uid: true, .. }
    ));
}

#[test]
fn search_return_empty_means_all() {
    let (_, ext) = rewritten("a SEARCH RETURN () ALL", None);
    assert_eq!(ext.search_return, Some(vec![]));
}

#[test]
fn search_return_malformed_is_bad() {
    assert_eq!(
        shim_error("a SEARCH RETURN (PARTIAL 1:10) ALL", None),
        ShimError::Invalid("unknown RETURN option")
    );
    assert_eq!(
        shim_error("a SEARCH RETURN MIN ALL", None),
        ShimError::Syntax
    );
    assert_eq!(shim_error("a SEARCH RETURN (MIN)", None), ShimError::Syntax);
    assert_eq!(
        shim_error("a SEARCH RETURN ((MIN)) ALL", None).message(),
        "unknown RETURN option"
    );
}

#[test]
fn search_ext_keys_become_marked_header_keys() {
    let command = parsed(
        "a SEARCH EMAILID M6d99ac3275bb4e THREADID T64b478a75b7ea9 SAVEDBEFORE 1-Feb-2026 \
         SAVEDON \"2-Feb-2026\" SAVEDSINCE 3-Mar-2025 SAVEDATESUPPORTED",
        None,
    )
    .command;
    assert_eq!(
        ext_keys(&command),
        vec![
            ExtSearchKey::EmailId("M6d99ac3275bb4e".into()),
            ExtSearchKey::ThreadId("T64b478a75b7ea9".into()),
            ExtSearchKey::SavedBefore("1-Feb-2026".into()),
            ExtSearchKey::SavedOn("2-Feb-2026".into()),
            ExtSearchKey::SavedSince("3-Mar-2025".into()),
            ExtSearchKey::SaveDateSupported,
        ]
    );
}

#[test]
fn search_ext_keys_work_nested_in_or_not_and_parens() {
    let (text, _) = rewritten("a UID SEARCH OR (EMAILID M1 SEEN) NOT THREADID T2", None);
    assert_eq!(
        text,
        "a UID SEARCH OR (HEADER \"postkeep:emailid\" \"M1\" SEEN) NOT HEADER \"postkeep:threadid\" \"T2\""
    );
    let command = parsed("a SEARCH NOT (OR SAVEDON 1-Jan-2026 NOT EMAILID x_1)", None).command;
    assert_eq!(
        ext_keys(&command),
        vec![
            ExtSearchKey::SavedOn("1-Jan-2026".into()),
            ExtSearchKey::EmailId("x_1".into()),
        ]
    );
}

#[test]
fn search_ext_keys_in_sort() {
    let command = parsed("a UID SORT (DATE) UTF-8 EMAILID M1", None).command;
    assert_eq!(ext_keys(&command), vec![ExtSearchKey::EmailId("M1".into())]);
}

#[test]
fn search_ext_key_names_as_string_arguments_are_not_rewritten() {
    let command = b"a SEARCH SUBJECT EMAILID HEADER X-Thread THREADID\r\n";
    assert!(CommandCodec::new().decode(command).is_ok());
    assert_eq!(rewrite(command, None), Ok(None));
    // Failing for another reason: the arguments stay arguments.
    let (text, ext) = rewritten("a SEARCH RETURN (MIN) SUBJECT EMAILID", None);
    assert_eq!(text, "a SEARCH SUBJECT EMAILID");
    assert_eq!(ext.search_return, Some(vec![SearchReturn::Min]));
}

#[test]
fn search_ext_keys_malformed_are_bad() {
    let invalid_id = ShimError::Invalid("invalid object id");
    let invalid_date = ShimError::Invalid("invalid date");
    assert_eq!(shim_error("a SEARCH EMAILID", None), invalid_id);
    assert_eq!(shim_error("a SEARCH EMAILID \"M1\"", None), invalid_id);
    assert_eq!(shim_error("a SEARCH EMAILID a.b", None), invalid_id);
    assert_eq!(shim_error("a SEARCH THREADID (T1)", None), invalid_id);
    let long = format!("a SEARCH EMAILID {}", "x".repeat(256));
    assert_eq!(shim_error(&long, None), invalid_id);
    assert_eq!(
        shim_error("a SEARCH SAVEDBEFORE 31-Foo-2026", None),
        invalid_date
    );
    assert_eq!(shim_error("a SEARCH SAVEDSINCE", None), invalid_date);
    assert_eq!(
        shim_error("a SEARCH SAVEDON 2026-02-01", None),
        invalid_date
    );
    assert_eq!(
        shim_error("a SEARCH OR EMAILID M1", None),
        ShimError::Syntax
    );
    assert_eq!(shim_error("a SEARCH (EMAILID M1", None), ShimError::Syntax);
    assert_eq!(shim_error("a SEARCH EMAILID M1)", None), ShimError::Syntax);
    assert_eq!(
        shim_error("a SEARCH BOGUS EMAILID M1", None),
        ShimError::Syntax
    );
}

#[test]
fn search_modseq_with_entry_is_walked_with_its_arity() {
    let (text, _) = rewritten(
        "a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338 EMAILID M1",
        None,
    );
    assert_eq!(
        text,
        "a SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338 HEADER \"postkeep:emailid\" \"M1\""
    );
}

#[test]
fn deeply_nested_search_is_bad_without_overflowing() {
    let deep = format!("a SEARCH {}EMAILID M1{}", "(".repeat(500), ")".repeat(500));
    assert_eq!(shim_error(&deep, None), ShimError::Syntax);
    let nots = format!("a SEARCH {}EMAILID M1", "NOT ".repeat(500));
    assert_eq!(shim_error(&nots, None), ShimError::Syntax);
}

// ----- LIST --------------------------------------------------------------------------------

#[test]
fn list_selection_options() {
    let (text, ext) = rewritten("a LIST (SUBSCRIBED RECURSIVEMATCH remote) \"\" \"*\"", None);
    assert_eq!(text, "a LIST \"\" \"*\"");
    let list = ext.list.expect("list ext");
    assert!(list.select_subscribed && list.select_recursive_match && list.select_remote);
    assert!(!list.select_special_use);
    assert_eq!(list.patterns, vec![b"*".to_vec()]);
    assert!(matches!(
        parsed("a LIST (SPECIAL-USE) \"\" \"*\"", None).command.body,
        CommandBody::List { .. }
    ));
}

#[test]
fn list_empty_selection_options_is_extended() {
    let (text, ext) = rewritten("a LIST () \"\" %", None);
    assert_eq!(text, "a LIST \"\" %");
    assert_eq!(
        ext.list,
        Some(ListExt {
            patterns: vec![b"%".to_vec()],
            ..ListExt::default()
        })
    );
}

#[test]
fn list_several_patterns() {
    let (text, ext) = rewritten("a LIST \"\" (\"INBOX\" Sent/% \"Tom \\\"x\\\"\")", None);
    assert_eq!(text, "a LIST \"\" \"INBOX\"");
    assert_eq!(
        ext.list.expect("list ext").patterns,
        vec![b"INBOX".to_vec(), b"Sent/%".to_vec(), b"Tom \"x\"".to_vec()]
    );
    match parsed("a LIST \"\" (foo bar)", None).command.body {
        CommandBody::List {
            mailbox_wildcard, ..
        } => assert_eq!(
            mailbox_wildcard,
            ListMailbox::try_from("foo").expect("valid")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn list_return_options() {
    let (text, ext) = rewritten(
        "a LIST \"\" % RETURN (CHILDREN SUBSCRIBED SPECIAL-USE STATUS (MESSAGES UNSEEN MAILBOXID))",
        None,
    );
    assert_eq!(text, "a LIST \"\" %");
    let list = ext.list.expect("list ext");
    assert!(list.return_children && list.return_subscribed && list.return_special_use);
    assert_eq!(
        list.return_status,
        Some((
            vec![StatusDataItemName::Messages, StatusDataItemName::Unseen],
            vec![StatusExt::MailboxId]
        ))
    );
    let (_, ext) = rewritten("a LIST \"\" % RETURN ()", None);
    assert_eq!(ext.list.expect("list ext").patterns, vec![b"%".to_vec()]);
}

#[test]
fn list_with_literal_pattern_keeps_the_literal() {
    let command = b"a LIST (SUBSCRIBED) \"\" {3}\r\nS/% RETURN (CHILDREN)\r\n";
    let (text, ext) = rewrite(command, None).expect("rewrite").expect("changed");
    assert_eq!(text, b"a LIST \"\" {3}\r\nS/%\r\n");
    assert_eq!(ext.list.expect("list ext").patterns, vec![b"S/%".to_vec()]);
    decode(command, None).expect("decodes");
}

#[test]
fn list_recursivematch_alone_is_bad() {
    let message = "RECURSIVEMATCH needs another selection option";
    assert_eq!(
        shim_error("a LIST (RECURSIVEMATCH) \"\" *", None).message(),
        message
    );
    assert_eq!(
        shim_error("a LIST (REMOTE RECURSIVEMATCH) \"\" *", None).message(),
        message
    );
}

#[test]
fn list_malformed_is_bad() {
    assert_eq!(
        shim_error("a LIST (BOGUS) \"\" *", None),
        ShimError::Invalid("unknown LIST selection option")
    );
    assert_eq!(
        shim_error("a LIST \"\" * RETURN (BOGUS)", None),
        ShimError::Invalid("unknown LIST return option")
    );
    assert_eq!(shim_error("a LIST \"\" ()", None), ShimError::Syntax);
    assert_eq!(shim_error("a LIST \"\" * RETURN", None), ShimError::Syntax);
    assert_eq!(
        shim_error("a LIST \"\" * RETURN (CHILDREN) x", None),
        ShimError::Syntax
    );
    assert_eq!(
        shim_error("a LIST \"\" * RETURN (STATUS)", None),
        ShimError::Syntax
    );
    assert_eq!(
        shim_error("a LIST \"\" * RETURN (STATUS (BOGUS))", None),
        ShimError::Invalid("invalid STATUS item")
    );
    assert_eq!(
        shim_error("a LIST (SUBSCRIBED) \"\"", None),
        ShimError::Syntax
    );
    assert_eq!(
        shim_error("a LIST (SUBSCRIBED) (x) *", None),
        ShimError::Syntax
    );
}

// ----- CREATE ------------------------------------------------------------------------------

#[test]
fn create_use_is_lifted() {
    let (text, ext) = rewritten("a CREATE Archive/Sent (USE (\\Sent \\Archive))", None);
    assert_eq!(text, "a CREATE Archive/Sent");
    assert_eq!(
        ext.create_use,
        Some(vec!["\\Sent".to_owned(), "\\Archive".to_owned()])
    );
    assert!(matches!(
        parsed("a CREATE \"My Sent\" (use (\\Sent))", None)
            .command
            .body,
        CommandBody::Create { .. }
    ));
}

#[test]
fn create_use_malformed_is_bad() {
    assert_eq!(shim_error("a CREATE x (USE ())", None), ShimError::Syntax);
    assert_eq!(
        shim_error("a CREATE x (USE (Sent))", None),
        ShimError::Invalid("invalid special-use attribute")
    );
    assert_eq!(
        shim_error("a CREATE x (FOO (\\Sent))", None),
        ShimError::Syntax
    );
    assert_eq!(
        shim_error("a CREATE x (USE \\Sent)", None),
        ShimError::Syntax
    );
    assert_eq!(shim_error("a CREATE x ()", None), ShimError::Syntax);
}

// ----- general -----------------------------------------------------------------------------

#[test]
fn other_rejected_commands_stay_bad() {
    for command in [
        "a BOGUS",
        "a NOOP extra",
        "a FETCH",
        "a FETCH 1",
        "a  FETCH 1 (EMAILID)",
        "a FETCH 1  (EMAILID)",
        "a FETCH 1 ( EMAILID)",
        "a FETCH 1 (EMAILID )",
        "a FETCH 1 (EMAILID) ",
        "a FETCH 1 (EMAILID))",
        "a FETCH 1 \"EMAILID\"",
        "a STATUS INBOX MAILBOXID",
        "a SELECT INBOX (EMAILID)",
        "a FETCH 1 (EMAILID)\0",
        "a FETCH 1 (EMAILID\t)",
        "",
    ] {
        assert!(
            decode(format!("{command}\r\n").as_bytes(), Some(SAVED)).is_err(),
            "{command:?}"
        );
    }
}

#[test]
fn tokenizer_rejects_malformed_literals_and_quotes() {
    for command in [
        &b"a LIST \"\" {5}\r\nabc\r\n"[..],
        b"a LIST \"\" {x}\r\nabc\r\n",
        b"a LIST \"\" {99999999999}\r\nabc\r\n",
        b"a LIST \"\" \"abc\r\n",
        b"a LIST \"\" \"ab\\",
        b"a LIST () \"\" *",
        b"a LIST () \"\" *\r\nextra",
    ] {
        assert!(
            tokenize(command).is_none(),
            "{:?}",
            String::from_utf8_lossy(command)
        );
    }
}

#[test]
fn lf_only_line_end_is_accepted() {
    let parsed = decode(b"a FETCH 1 (EMAILID)\n", None).expect("decodes");
    assert_eq!(parsed.ext.fetch, vec![FetchExt::EmailId]);
}

#[test]
fn may_rewrite_knows_the_shim_commands() {
    assert!(may_rewrite(b"a SEARCH RETURN (MIN) SUBJECT {3}\r\n"));
    assert!(may_rewrite(b"a uid search x {3}\r\n"));
    assert!(!may_rewrite(b"a LOGIN x {3}\r\n"));
    assert!(!may_rewrite(b"a UID {3}\r\n"));
    assert!(!may_rewrite(b""));
}

/// Commands imap-codec accepts as sent: the shim must leave every one of them alone.
const VALID: &[&str] = &[
    "a CAPABILITY",
    "a NOOP",
    "a LOGOUT",
    "a STARTTLS",
    "a LOGIN alice secret",
    "a LOGIN \"alice\" {6}\r\nsecret",
    "a AUTHENTICATE PLAIN",
    "a ENABLE IMAP4rev2 QRESYNC",
    "a SELECT INBOX",
    "a SELECT INBOX (CONDSTORE)",
    "a EXAMINE \"Sent Items\"",
    "a CREATE Archive",
    "a CREATE &ZeVnLIqe-",
    "a DELETE Archive",
    "a RENAME a b",
    "a SUBSCRIBE Sent",
    "a UNSUBSCRIBE Sent",
    "a LIST \"\" *",
    "a LIST \"\" %",
    "a LIST INBOX/ \"$\"",
    "a LSUB \"\" *",
    "a NAMESPACE",
    "a STATUS INBOX (MESSAGES UIDNEXT UIDVALIDITY UNSEEN DELETED SIZE HIGHESTMODSEQ)",
    "a STATUS INBOX ()",
    "a APPEND INBOX {3}\r\nabc",
    "a APPEND INBOX (\\Seen) \"01-Jan-2020 10:00:00 +0000\" ~{3}\r\na\0c",
    "a CHECK",
    "a CLOSE",
    "a UNSELECT",
    "a EXPUNGE",
    "a UID EXPUNGE 1:5",
    "a SEARCH ALL",
    "a SEARCH UNSEEN SUBJECT \"EMAILID\"",
    "a SEARCH CHARSET UTF-8 TEXT {4}\r\ntest",
    "a SEARCH OR (FROM alice SEEN) NOT (TO bob) HEADER Message-ID <x@y>",
    "a SEARCH 1:5,7 UID 3:* LARGER 100 SMALLER 500",
    "a SEARCH SINCE 1-Feb-2026 BEFORE \"2-Feb-2026\" SENTON 3-Feb-2026",
    "a SEARCH MODSEQ 5",
    "a UID SEARCH KEYWORD $Forwarded",
    "a SEARCH SUBJECT $",
    "a SORT (REVERSE DATE) UTF-8 ALL",
    "a UID THREAD REFERENCES UTF-8 SUBJECT x",
    "a FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)",
    "a FETCH 1 ALL",
    "a FETCH 1 FULL",
    "a UID FETCH 1:* (FLAGS) (CHANGEDSINCE 5 VANISHED)",
    "a FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT EMAILID)]<0.100> BINARY[1] BINARY.SIZE[1])",
    "a FETCH 1 (BODY[1.2.MIME] MODSEQ)",
    "a STORE 1:3 +FLAGS.SILENT (\\Seen $Junk)",
    "a UID STORE 1 (UNCHANGEDSINCE 5) FLAGS ()",
    "a COPY 1:* Archive",
    "a UID COPY 1 \"$\"",
    "a MOVE 2 Trash",
    "a UID MOVE 2:4 Trash",
    "a IDLE",
    "a COMPRESS DEFLATE",
    "a GETQUOTAROOT INBOX",
    "a ID (\"name\" \"x\")",
    "a ID NIL",
];

#[test]
fn commands_imap_codec_accepts_are_never_rewritten() {
    for command in VALID {
        let bytes = format!("{command}\r\n");
        assert!(
            CommandCodec::new().decode(bytes.as_bytes()).is_ok(),
            "imap-codec rejects {command:?}"
        );
        for saved in [None, Some(SAVED), Some(&[][..])] {
            assert_eq!(rewrite(bytes.as_bytes(), saved), Ok(None), "{command:?}");
        }
    }
}
