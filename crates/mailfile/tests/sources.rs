//! Format detection, the SpamAssassin corpus, bad-message reporting and streaming.

use std::fs;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use postkeep_mailfile::{open, MailfileError, MboxReader, MboxWriter, SourceKind};

/// /work/shared/data/spamassassin, i.e. `../shared/data` from the project root.
fn spamassassin() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/spamassassin");
    assert!(
        dir.join("easy_ham").is_dir(),
        "test corpus missing: {} (see shared/data/README)",
        dir.display()
    );
    dir
}

#[test]
fn easy_ham_folder_yields_2500_messages_and_no_bad_one() {
    let source = open(&spamassassin().join("easy_ham")).unwrap();
    assert_eq!(source.kind(), SourceKind::Folder);
    assert_eq!(source.len_hint(), Some(2500));
    let (mut good, mut dated) = (0, 0);
    for item in source {
        let m = item.unwrap_or_else(|bad| panic!("bad message: {bad}"));
        assert!(!m.raw.starts_with(b"From "), "{}: envelope kept", m.origin);
        assert!(m.origin.ends_with(".eml"));
        good += 1;
        dated += usize::from(m.internal_date.is_some());
    }
    assert_eq!(good, 2500);
    // 135 files of easy_ham have no envelope line; all the others carry a parseable date.
    assert_eq!(dated, 2500 - 135);
}

#[test]
fn whole_spamassassin_tree_reports_only_the_tsv_as_bad() {
    let source = open(&spamassassin()).unwrap();
    let total = source.len_hint().unwrap();
    let (mut good, mut bad) = (0, Vec::new());
    for item in source {
        match item {
            Ok(_) => good += 1,
            Err(b) => bad.push(b),
        }
    }
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(bad[0].origin.ends_with("ham_list_id.tsv"));
    assert_eq!(good, 2500 + 1400 + 250 + 500 + 1396);
    assert_eq!(good + 1, total);
}

#[test]
fn single_eml_file_is_one_message_without_envelope() {
    let path = spamassassin().join("easy_ham/00001.7c53336b37003a9286aba55d2945844c.eml");
    let source = open(&path).unwrap();
    assert_eq!(source.kind(), SourceKind::SingleFile);
    assert_eq!(source.len_hint(), Some(1));
    let got: Vec<_> = source.collect();
    assert_eq!(got.len(), 1);
    let m = got[0].as_ref().unwrap();
    let file = fs::read(&path).unwrap();
    let first_newline = file.iter().position(|b| *b == b'\n').unwrap();
    assert_eq!(m.raw, file[first_newline + 1..].to_vec());
}

#[test]
fn single_file_with_prose_from_line_after_blank_stays_one_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("msg.eml");
    let text = "From a@b  Thu Aug 22 12:36:23 2002\nSubject: ad\n\nintro\n\nFrom garage bands to big stages, it works\n";
    fs::write(&path, text).unwrap();
    let source = open(&path).unwrap();
    assert_eq!(source.kind(), SourceKind::SingleFile);
    let got: Vec<_> = source.map(Result::unwrap).collect();
    assert_eq!(got.len(), 1);
    assert!(got[0].raw.ends_with(b"it works\n"));
}

#[test]
fn junk_tsv_in_folder_is_reported_and_import_continues() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("a.eml"), "Subject: a\n\nA\n").unwrap();
    fs::write(root.join("b.tsv"), "file\tlist_id\na.eml\tlist\n").unwrap();
    fs::write(
        root.join("c.eml"),
        "From x@y Thu Aug 22 12:36:23 2002\nSubject: c\n\nC\n",
    )
    .unwrap();
    fs::write(root.join("d.eml"), "").unwrap();
    let items: Vec<_> = open(root).unwrap().collect();
    assert_eq!(items.len(), 4);
    assert_eq!(
        items[0].as_ref().unwrap().raw,
        b"Subject: a\n\nA\n".to_vec()
    );
    let bad = items[1].as_ref().unwrap_err();
    assert!(bad.origin.ends_with("b.tsv"), "{}", bad.origin);
    assert!(bad.reason.contains("not a header field"), "{}", bad.reason);
    let c = items[2].as_ref().unwrap();
    assert_eq!(c.raw, b"Subject: c\n\nC\n".to_vec());
    assert_eq!(
        c.internal_date,
        Utc.with_ymd_and_hms(2002, 8, 22, 12, 36, 23).single()
    );
    assert_eq!(items[3].as_ref().unwrap_err().reason, "empty message");
}

#[test]
fn three_concatenated_messages_are_detected_as_mbox() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("inbox");
    let mut data = Vec::new();
    for name in [
        "easy_ham/00001.7c53336b37003a9286aba55d2945844c.eml",
        "easy_ham/00002.9c4069e25e1ef370c078db7ee85ff9ac.eml",
        "easy_ham/00003.860e3c3cee1b42ead714c5c874fe25f7.eml",
    ] {
        data.extend(fs::read(spamassassin().join(name)).unwrap());
        data.push(b'\n');
    }
    fs::write(&path, &data).unwrap();
    let source = open(&path).unwrap();
    assert_eq!(source.kind(), SourceKind::Mbox);
    let got: Vec<_> = source.map(|r| r.unwrap()).collect();
    assert_eq!(got.len(), 3);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.origin, format!("mbox #{}", i + 1));
        assert!(m.internal_date.is_some());
        assert!(m.raw.starts_with(b"Return-Path: "));
    }
}

#[test]
fn missing_path_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = open(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, MailfileError::Io { .. }), "{err}");
}

/// Counts bytes handed to the BufReader, to prove the reader streams.
struct Counting<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

const MESSAGE_BODY_LINES: usize = 400;

fn generated_message(i: usize) -> Vec<u8> {
    let mut m = format!("Subject: message {i}\r\nFrom: a@b\r\n\r\n").into_bytes();
    for line in 0..MESSAGE_BODY_LINES {
        m.extend_from_slice(
            format!("From line {line} of message {i}, padded to length........\r\n").as_bytes(),
        );
    }
    m
}

#[test]
fn twenty_megabyte_mbox_is_read_message_by_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.mbox");
    let date = Utc.with_ymd_and_hms(2020, 1, 2, 3, 4, 5).unwrap();
    let file = io::BufWriter::new(fs::File::create(&path).unwrap());
    let mut w = MboxWriter::new(file);
    let mut count = 0;
    while w.get_ref().get_ref().metadata().unwrap().len() < 20 << 20 {
        w.write_message(&generated_message(count), "a@b", date)
            .unwrap();
        count += 1;
    }
    w.flush().unwrap();
    drop(w);
    let size = fs::metadata(&path).unwrap().len();
    assert!(size >= 20 << 20);

    let consumed = Arc::new(AtomicU64::new(0));
    let counting = Counting {
        inner: fs::File::open(&path).unwrap(),
        consumed: Arc::clone(&consumed),
    };
    let mut reader = MboxReader::new(BufReader::new(counting));
    let first = reader.next().unwrap().unwrap();
    assert_eq!(first.raw, generated_message(0));
    let after_first = consumed.load(Ordering::Relaxed);
    assert!(
        after_first < 256 * 1024,
        "read {after_first} of {size} bytes to yield the first message"
    );
    let mut n = 1;
    for item in reader.by_ref() {
        let m = item.unwrap();
        assert_eq!(m.raw, generated_message(n));
        n += 1;
    }
    assert_eq!(n, count);
    assert_eq!(consumed.load(Ordering::Relaxed), size);

    let source = open(&path).unwrap();
    assert_eq!(source.kind(), SourceKind::Mbox);
    assert_eq!(source.filter(Result::is_ok).count(), count);
}
