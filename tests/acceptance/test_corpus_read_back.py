"""The SpamAssassin corpus, imported with `postkeep import`, reads back byte for byte over IMAP
(imaplib, `UID FETCH ... BODY.PEEK[]`) and POP3 (poplib `RETR`).

Both protocols serve the CRLF *wire form* (docs/imap-plan.md §2.3): the stored bytes with every
LF not preceded by CR turned into CRLF. The corpus is imported once for the module."""

from __future__ import annotations

import hashlib
import imaplib
import poplib
import re

import pytest

from conftest import DOMAIN, HOST, PASSWORD, Server, import_summary, postkeep_bin, strip_envelope
from imap_helpers import check, enable_listeners, wait_port
from test_import_export import CORPUS_FOLDERS, CORPUS_TOTAL, corpus

OWNER = f"corpus@{DOMAIN}"
BARE_LF = re.compile(rb"(?<!\r)\n")
FETCH_BATCH = 500
# poplib refuses lines over 2048 bytes (its `_MAXLINE`); the corpus has lines of up to 48 kB, and
# RFC 1939 sets no line limit on message content.
POP3_MAX_LINE = 1 << 20


def wire_form(message: bytes) -> bytes:
    return BARE_LF.sub(b"\r\n", message)


def digest(message: bytes) -> str:
    return hashlib.sha256(message).hexdigest()


@pytest.fixture(scope="module")
def corpus_server(tmp_path_factory):
    """A running server whose OWNER holds the whole corpus, and [(corpus file, wire form)]."""
    root = corpus()
    srv = Server(postkeep_bin(), tmp_path_factory.mktemp("corpus"))
    srv.init(dev=True)
    srv.assign_ports()  # as make_server does; enable_listeners adds only what is still missing
    enable_listeners(srv, "imaps", "pop3s")
    srv.add_user(OWNER)
    originals: list[tuple[str, bytes]] = []
    for folder in CORPUS_FOLDERS:
        files = sorted(p for p in (root / folder).iterdir() if p.is_file())
        originals += [(f"{folder}/{p.name}", wire_form(strip_envelope(p.read_bytes())))
                      for p in files]
        imported = import_summary(srv.cli("import", OWNER, str(root / folder)))
        assert imported == (len(files), 0), f"importing {folder}: (imported, bad) = {imported}"
    assert len(originals) == CORPUS_TOTAL
    try:
        srv.start()
        wait_port(srv.ports["imaps"])
        wait_port(srv.ports["pop3s"])
        yield srv, originals
    finally:
        srv.cleanup()


def compare(expected: list[tuple[str, bytes]], got: list[bytes], what: str) -> None:
    """Asserts `got` is exactly the multiset of expected messages, byte for byte."""
    remaining: dict[str, list[str]] = {}
    for name, message in expected:
        remaining.setdefault(digest(message), []).append(name)
    unexpected = []
    for message in got:
        names = remaining.get(digest(message))
        if names:
            names.pop()
        else:
            unexpected.append(message)
    missing = sorted(name for names in remaining.values() for name in names)
    assert not missing and not unexpected, (
        f"{what}: {len(got)} messages read, {len(expected)} expected; {len(missing)} corpus "
        f"files not read back byte for byte (e.g. {missing[:5]}); {len(unexpected)} messages "
        f"that match no file (first starts {unexpected[:1]!r:.400})")


FETCH_HEAD = re.compile(rb"^\d+ \(.*\bUID (\d+)\b.*\bRFC822\.SIZE (\d+)\b.*BODY\[\] \{(\d+)\}$")


def fetch_all(client: imaplib.IMAP4) -> list[bytes]:
    """Every message of the selected mailbox, in UID batches; checks RFC822.SIZE per message."""
    uids = [int(u) for u in check(client.uid("SEARCH", "ALL"))[0].split()]
    messages = []
    for start in range(0, len(uids), FETCH_BATCH):
        batch = uids[start:start + FETCH_BATCH]
        data = check(client.uid("FETCH", f"{batch[0]}:{batch[-1]}", "(RFC822.SIZE BODY.PEEK[])"))
        parts = [item for item in data if isinstance(item, tuple)]
        assert len(parts) == len(batch), (
            f"UID FETCH {batch[0]}:{batch[-1]} returned {len(parts)} messages, not {len(batch)}: "
            f"{data[:3]!r:.600}")
        for head, body in parts:
            m = FETCH_HEAD.match(head)
            assert m, f"unexpected FETCH response line: {head!r}"
            uid, size, literal = (int(g) for g in m.groups())
            assert size == literal == len(body), (
                f"UID {uid}: RFC822.SIZE {size}, literal {{{literal}}}, {len(body)} bytes read")
            messages.append(body)
    return messages


@pytest.mark.timeout(600)
def test_imap_uid_fetch_returns_every_corpus_message_in_wire_form(corpus_server, request):
    srv, originals = corpus_server
    request.node.postkeep_servers = [srv]
    client = imaplib.IMAP4_SSL(HOST, srv.ports["imaps"], ssl_context=srv.tls_context(),
                               timeout=120)
    try:
        check(client.login(OWNER, PASSWORD))
        exists = int(check(client.select("INBOX", readonly=True))[0])
        assert exists == CORPUS_TOTAL, f"INBOX has {exists} messages, not {CORPUS_TOTAL}"
        got = fetch_all(client)
    finally:
        client.logout()
    assert len(got) == CORPUS_TOTAL
    compare(originals, got, "IMAP UID FETCH BODY.PEEK[]")


def pop3_form(wire: bytes) -> bytes:
    """What an un-stuffed RETR yields: a multi-line response ends with CRLF "." CRLF (RFC 1939
    §3), so a message whose last line lacks its CRLF gets one (one corpus file ends so)."""
    return wire if wire.endswith(b"\r\n") else wire + b"\r\n"


@pytest.mark.timeout(600)
def test_pop3_retr_returns_every_corpus_message_in_wire_form(corpus_server, request, monkeypatch):
    srv, originals = corpus_server
    request.node.postkeep_servers = [srv]
    monkeypatch.setattr(poplib, "_MAXLINE", POP3_MAX_LINE)
    pop = poplib.POP3_SSL(HOST, srv.ports["pop3s"], context=srv.tls_context(), timeout=120)
    got = []
    try:
        pop.user(OWNER)
        pop.pass_(PASSWORD)
        count, _ = pop.stat()
        assert count == CORPUS_TOTAL, f"STAT says {count} messages, not {CORPUS_TOTAL}"
        sizes = sorted(int(line.split()[1]) for line in pop.list()[1])
        assert sizes == sorted(len(wire) for _, wire in originals), (
            "LIST sizes are not the wire-form sizes of the corpus files")
        for n in range(1, count + 1):
            _, lines, _ = pop.retr(n)  # poplib removes the dot-stuffing
            got.append(b"\r\n".join(lines) + b"\r\n")
    finally:
        pop.quit()
    compare([(name, pop3_form(wire)) for name, wire in originals], got, "POP3 RETR")
