"""`postkeep import` / `postkeep export`: real-world mail survives a round trip byte for byte."""

import collections
import hashlib
from pathlib import Path

import pytest

from conftest import (DOMAIN, corpus_dir, import_summary, parse_mboxrd, read_maildir,
                      strip_envelope)

CORPUS_FOLDERS = ("easy_ham", "easy_ham_2", "hard_ham", "spam", "spam_2")
CORPUS_TOTAL = 6046


def corpus() -> Path:
    root = corpus_dir()
    missing = [f for f in CORPUS_FOLDERS if not (root / f).is_dir()]
    if missing:
        pytest.fail(f"SpamAssassin corpus not found at {root} (missing {', '.join(missing)}); "
                    "set POSTKEEP_CORPUS or put shared/ beside the checkout", pytrace=False)
    return root


def originals(folder: Path) -> dict[str, bytes]:
    """file name -> message bytes as postkeep should store them."""
    return {p.name: strip_envelope(p.read_bytes())
            for p in sorted(folder.iterdir()) if p.is_file()}


def digest_counts(messages) -> collections.Counter:
    return collections.Counter(hashlib.sha256(m).hexdigest() for m in messages)


def assert_same_multiset(expected: dict[str, bytes], got: list[bytes], what: str) -> None:
    want = digest_counts(expected.values())
    have = digest_counts(got)
    if want == have:
        return
    by_digest = {hashlib.sha256(m).hexdigest(): name for name, m in expected.items()}
    missing = [by_digest[d] for d in (want - have)]
    unexpected = [m for m in got if hashlib.sha256(m).hexdigest() in (have - want)]
    raise AssertionError(
        f"{what}: {len(got)} messages, expected {len(expected)}; "
        f"{len(missing)} originals not found byte-for-byte (e.g. {missing[:5]}), "
        f"{len(unexpected)} unexpected messages (first starts {unexpected[:1]!r:.300})")


def first_difference(a: list[bytes], b: list[bytes]) -> str:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            j = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]), min(len(x), len(y)))
            return (f"message #{i} differs at byte {j}: {x[max(0, j - 40):j + 40]!r} vs "
                    f"{y[max(0, j - 40):j + 40]!r}")
    return f"lengths differ: {len(a)} vs {len(b)}"


@pytest.mark.timeout(2400)
def test_spamassassin_corpus_round_trips_through_import_and_export(make_server):
    root = corpus()
    srv = make_server(users=["a", "b"], start=False)
    a, b = f"a@{DOMAIN}", f"b@{DOMAIN}"

    expected: dict[str, bytes] = {}
    for folder in CORPUS_FOLDERS:
        files = originals(root / folder)
        expected.update({f"{folder}/{name}": data for name, data in files.items()})
        imported, bad = import_summary(srv.cli("import", a, str(root / folder)))
        assert (imported, bad) == (len(files), 0), (
            f"importing {folder}: expected {len(files)} imported, 0 bad; got {imported}, {bad}")
    assert len(expected) == CORPUS_TOTAL, f"corpus has {len(expected)} files, not {CORPUS_TOTAL}"

    mbox_a = srv.export_path(a, "mbox")
    export_a = parse_mboxrd(mbox_a.read_bytes())
    assert len(export_a) == CORPUS_TOTAL, f"export of A has {len(export_a)} messages"
    assert_same_multiset(expected, export_a, "export of A against the corpus files")

    imported, bad = import_summary(srv.cli("import", b, str(mbox_a)))
    assert (imported, bad) == (CORPUS_TOTAL, 0), f"re-import of A's mbox: {imported}, {bad} bad"
    export_b = parse_mboxrd(srv.export_path(b, "mbox").read_bytes())
    assert len(export_b) == CORPUS_TOTAL, f"export of B has {len(export_b)} messages"
    assert export_a == export_b, (
        "export -> import -> export changed the messages or their order: "
        + first_difference(export_a, export_b))


@pytest.mark.timeout(900)
def test_maildir_export_and_import_preserve_bytes(make_server):
    folder = corpus() / "hard_ham"
    srv = make_server(users=["c", "d"], start=False)
    c, d = f"c@{DOMAIN}", f"d@{DOMAIN}"
    expected = originals(folder)
    assert import_summary(srv.cli("import", c, str(folder))) == (len(expected), 0)

    maildir = srv.export_path(c, "maildir")
    assert maildir.is_dir(), f"maildir export did not create {maildir}"
    for sub in ("cur", "new", "tmp"):
        assert list(maildir.rglob(sub)), f"maildir export has no {sub}/ directory"
    assert_same_multiset(expected, read_maildir(maildir), "maildir export of hard_ham")

    assert import_summary(srv.cli("import", d, str(maildir))) == (len(expected), 0)
    assert_same_multiset(expected, srv.export(d), "mbox export after maildir import")


def test_import_reports_bad_files_and_imports_the_good_ones(make_server, tmp_path):
    srv = make_server(users=["e"], start=False)
    e = f"e@{DOMAIN}"
    folder = tmp_path / "mixed"
    (folder / "sub").mkdir(parents=True)
    good1 = (b"From: Alice <alice@remote.test>\r\nTo: e@example.test\r\nSubject: good one\r\n"
             b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-ID: <good1@remote.test>\r\n"
             b"\r\nFirst good message.\r\n")
    good2 = (b"From: Bob <bob@remote.test>\nTo: e@example.test\nSubject: good two\n"
             b"Date: Tue, 02 Jan 2024 11:00:00 +0000\nMessage-ID: <good2@remote.test>\n"
             b"\nSecond good message, LF line ends, in a subfolder.\n")
    (folder / "good1.eml").write_bytes(good1)
    (folder / "sub" / "good2.eml").write_bytes(good2)
    (folder / "list_ids.tsv").write_bytes(
        b"file\tlist_id\n00001.eml\t<exmh-workers.redhat.com>\n"
        b"00002.eml\t<spamassassin-talk.lists.sourceforge.net>\n")

    proc = srv.cli("import", e, str(folder))
    assert import_summary(proc) == (2, 1), (
        f"expected `imported 2 messages, 1 bad`; output:\n{(proc.stdout + proc.stderr)!r}")
    assert b"list_ids.tsv" in proc.stderr, (
        f"the bad file is not named on stderr: {proc.stderr.decode(errors='replace')}")
    assert_same_multiset({"good1": good1, "good2": good2}, srv.export(e),
                         "export after importing a folder with one junk file")


def test_import_of_a_single_message_file_and_of_an_mbox(make_server, tmp_path):
    srv = make_server(users=["f"], start=False)
    f = f"f@{DOMAIN}"
    single = tmp_path / "one.eml"
    one = b"From: x@remote.test\r\nSubject: single\r\n\r\nFrom here on, a body line.\r\n"
    single.write_bytes(one)
    assert import_summary(srv.cli("import", f, str(single))) == (1, 0)
    # mboxrd: a body line `From ...` is stored quoted as `>From ...`; `>From` as `>>From`.
    mbox = tmp_path / "in.mbox"
    two = b"Subject: two\n\nFrom the start\n>From quoted\nend\n"
    three = b"Subject: three\n\nno final newline"
    mbox.write_bytes(b"From a@b Mon Jan  1 00:00:00 2024\n" + two.replace(b"\nFrom ", b"\n>From ")
                     .replace(b"\n>From quoted", b"\n>>From quoted") + b"\n"
                     + b"From a@b Mon Jan  1 00:00:01 2024\n" + three + b"\n")
    assert import_summary(srv.cli("import", f, str(mbox))) == (2, 0)
    assert_same_multiset({"one": one, "two": two, "three": three}, srv.export(f),
                         "single file + mboxrd import")
