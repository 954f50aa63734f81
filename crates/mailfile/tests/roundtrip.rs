//! Byte-exact round trips through MboxWriter/MboxReader and MaildirWriter/open.

use std::collections::HashMap;
use std::io::BufReader;

use chrono::{DateTime, TimeZone, Utc};
use postkeep_mailfile::{
    open, open_mbox, Flag, ImportedMessage, MaildirWriter, MboxReader, MboxWriter, SourceKind,
};

/// Messages that stress mbox framing and quoting.
fn tricky_messages() -> Vec<Vec<u8>> {
    let cases: &[&[u8]] = &[
        b"Subject: no trailing newline\n\nbody",
        b"Subject: crlf\r\n\r\nbody\r\n",
        b"Subject: crlf no end\r\n\r\nbody",
        b"Subject: quoting\n\nFrom x\n>From y\n>>From z\n",
        b"Subject: quoting crlf\r\n\r\nFrom x\r\n>From y\r\n>>From z\r\n",
        b"Subject: empty lines at end\n\nbody\n\n\n",
        b"Subject: crlf empty lines at end\r\n\r\nbody\r\n\r\n\r\n",
        b"Subject: bare From\n\nFrom\nmiddle\nFrom",
        b"Subject: From with space last\n\n\nFrom ",
        b"Subject: quoted From last\n\n>>From ",
        b"Subject: envelope-looking body line\n\nFrom a@b Thu Aug 22 12:36:23 2002\nx\n",
        b"Subject: envelope-looking after blank\n\n\nFrom a@b Thu Aug 22 12:36:23 2002\n\n",
        b"Subject: bare CR end\n\nline\r",
        b"Subject: lone quotes\n\n>\n>>\n> From\n",
        b"From: header first\n\n",
        b"Subject: only header\n",
        b"Subject: only header no newline",
        b"Subject: binary\n\n\x00\xff\xfe\n\x80From \n",
        b"Subject: mid-line From\n\nsay From me\n  From indented\n",
    ];
    cases.iter().map(|c| c.to_vec()).collect()
}

fn date(n: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_000_000_000 + n * 86_461, 0).unwrap()
}

fn write_mbox(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut w = MboxWriter::new(Vec::new());
    for (i, m) in messages.iter().enumerate() {
        w.write_message(m, "sender@example.org", date(i as i64))
            .unwrap();
    }
    w.into_inner()
}

fn read_mbox(data: &[u8]) -> Vec<ImportedMessage> {
    MboxReader::new(data)
        .map(|r| r.unwrap_or_else(|bad| panic!("unexpected bad message: {bad}")))
        .collect()
}

fn assert_mbox_round_trip(messages: &[Vec<u8>]) {
    let data = write_mbox(messages);
    let got = read_mbox(&data);
    let raws: Vec<&Vec<u8>> = got.iter().map(|m| &m.raw).collect();
    let want: Vec<&Vec<u8>> = messages.iter().collect();
    assert_eq!(raws, want, "mbox was:\n{}", String::from_utf8_lossy(&data));
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.internal_date, Some(date(i as i64)));
    }
}

#[test]
fn mbox_round_trip_each_tricky_message_alone() {
    for m in tricky_messages() {
        assert_mbox_round_trip(&[m]);
    }
}

#[test]
fn mbox_round_trip_every_ordered_pair_of_tricky_messages() {
    let all = tricky_messages();
    for a in &all {
        for b in &all {
            assert_mbox_round_trip(&[a.clone(), b.clone()]);
        }
    }
}

#[test]
fn mbox_round_trip_all_tricky_messages_in_one_file() {
    let mut all = tricky_messages();
    assert_mbox_round_trip(&all);
    all.reverse();
    assert_mbox_round_trip(&all);
}

/// Small deterministic PRNG (xorshift) so the property loop needs no extra dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// A header line then random body lines built from framing-sensitive fragments.
fn random_message(rng: &mut Rng) -> Vec<u8> {
    const LINES: &[&[u8]] = &[
        b"",
        b"From ",
        b"From",
        b">From ",
        b">>From x",
        b">",
        b"From a@b Thu Aug 22 12:36:23 2002",
        b"From someone",
        b"text",
        b" From",
        b"\r",
        b">>>",
        b"From: y",
    ];
    const ENDINGS: &[&[u8]] = &[b"\n", b"\r\n"];
    let mut m = b"Subject: random".to_vec();
    m.extend_from_slice(rng.pick(ENDINGS));
    let lines = rng.next() % 8;
    for i in 0..lines {
        m.extend_from_slice(rng.pick(LINES));
        let last = i + 1 == lines;
        if !last || rng.next().is_multiple_of(2) {
            m.extend_from_slice(rng.pick(ENDINGS));
        }
    }
    m
}

#[test]
fn mbox_round_trip_random_messages_property_loop() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..500 {
        let count = 1 + rng.next() % 4;
        let messages: Vec<Vec<u8>> = (0..count).map(|_| random_message(&mut rng)).collect();
        assert_mbox_round_trip(&messages);
    }
}

#[test]
fn single_message_mbox_round_trips_through_open_mbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.mbox");
    let msg = b"Subject: one\n\nFrom here\n".to_vec();
    std::fs::write(&path, write_mbox(std::slice::from_ref(&msg))).unwrap();
    let got: Vec<_> = open_mbox(&path).unwrap().collect();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].as_ref().unwrap().raw, msg);
}

#[test]
fn mbox_file_round_trip_through_open_detects_mbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.mbox");
    let all = tricky_messages();
    let file = std::fs::File::create(&path).unwrap();
    let mut w = MboxWriter::new(std::io::BufWriter::new(file));
    for (i, m) in all.iter().enumerate() {
        w.write_message(m, "a@b", date(i as i64)).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    let source = open(&path).unwrap();
    assert_eq!(source.kind(), SourceKind::Mbox);
    assert_eq!(source.len_hint(), None);
    let raws: Vec<Vec<u8>> = source.map(|r| r.unwrap().raw).collect();
    assert_eq!(raws, all);
}

/// Flags and internal date expected back for a message.
type Expected = (Vec<Flag>, Option<DateTime<Utc>>);

#[test]
fn maildir_round_trip_keeps_bytes_flags_and_date() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("Maildir");
    let writer = MaildirWriter::create(&root).unwrap();
    for sub in ["cur", "new", "tmp"] {
        assert!(root.join(sub).is_dir(), "{sub}/ missing");
    }
    let mut want: HashMap<Vec<u8>, Expected> = HashMap::new();
    for (i, m) in tricky_messages().into_iter().enumerate() {
        // Every subset of the five flags shows up across the messages, in scrambled order.
        let mut flags: Vec<Flag> = Flag::ALL
            .into_iter()
            .enumerate()
            .filter(|(bit, _)| i & (1 << bit) != 0)
            .map(|(_, f)| f)
            .rev()
            .collect();
        let when = (i % 3 != 0).then(|| date(i as i64));
        let path = writer.write_message(&m, &flags, when).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let letters = name.rsplit_once(":2,").unwrap().1.to_owned();
        let mut sorted: Vec<char> = letters.chars().collect();
        sorted.sort_unstable();
        assert_eq!(
            letters,
            sorted.into_iter().collect::<String>(),
            "flags not ASCII-sorted"
        );
        assert!(name.contains(&format!("P{}Q", std::process::id())));
        assert!(name.ends_with(&format!(".postkeep:2,{letters}")));
        flags.sort();
        want.insert(m, (flags, when));
    }
    assert_eq!(
        std::fs::read_dir(root.join("tmp")).unwrap().count(),
        0,
        "tmp/ not emptied"
    );

    let source = open(&root).unwrap();
    assert_eq!(source.kind(), SourceKind::Maildir);
    assert_eq!(source.len_hint(), Some(want.len()));
    let mut seen = 0;
    for item in source {
        let m = item.unwrap();
        let (flags, when) = want.get(&m.raw).expect("message bytes changed");
        assert_eq!(&m.flags, flags);
        if let Some(when) = when {
            assert_eq!(m.internal_date.as_ref(), Some(when));
        }
        seen += 1;
    }
    assert_eq!(seen, want.len());
}

#[test]
fn maildir_reader_reads_new_and_cur_and_parses_foreign_flags() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("cur")).unwrap();
    std::fs::create_dir_all(root.join("new")).unwrap();
    std::fs::write(root.join("new/1000.M1P1.host"), "Subject: new\n").unwrap();
    std::fs::write(root.join("cur/1001.M1P1.host:2,FRSa"), "Subject: cur\n").unwrap();
    std::fs::write(root.join("cur/.hidden"), "junk").unwrap();
    let got: Vec<ImportedMessage> = open(root).unwrap().map(Result::unwrap).collect();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].raw, b"Subject: new\n".to_vec());
    assert!(got[0].flags.is_empty());
    assert!(
        got[0].internal_date.is_some(),
        "mtime should give the internal date"
    );
    assert_eq!(
        got[1].flags,
        vec![Flag::Seen, Flag::Answered, Flag::Flagged]
    );
}

#[test]
fn reader_over_buffered_file_matches_reader_over_slice() {
    let data = write_mbox(&tricky_messages());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m");
    std::fs::write(&path, &data).unwrap();
    // A tiny buffer forces lines to span many refills.
    let file = BufReader::with_capacity(7, std::fs::File::open(&path).unwrap());
    let from_file: Vec<Vec<u8>> = MboxReader::new(file).map(|r| r.unwrap().raw).collect();
    assert_eq!(from_file, tricky_messages());
}
