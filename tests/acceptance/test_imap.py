"""IMAP4rev2/rev1 against the real binary with Python's imaplib and raw sockets: login paths and
TLS, mailboxes, FETCH byte for byte, STORE/CONDSTORE, COPY/MOVE/EXPUNGE, APPEND, SEARCH, IDLE,
two sessions seeing each other, COMPRESS, and hostile input."""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
import time
import zlib

import pytest

from conftest import DOMAIN, HOST, PASSWORD, make_message, wait_for, with_token
from imap_helpers import ALICE, BOB, check, connect, login, start_imap_server


@pytest.fixture
def imap_server(make_server):
    return start_imap_server(make_server)


class RawImap:
    """A line-level IMAP client for what imaplib cannot express (SASL-IR, IDLE, COMPRESS,
    pipelining, hostile input)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""
        self.inflater = None
        self.deflater = None

    @classmethod
    def tls(cls, srv, port_name: str = "imaps") -> "RawImap":
        ctx = srv.tls_context()
        sock = ctx.wrap_socket(socket.create_connection((HOST, srv.ports[port_name]), timeout=30),
                               server_hostname="localhost")
        raw = cls(sock)
        assert raw.line().startswith(b"* OK")
        return raw

    def send(self, data: bytes) -> None:
        if self.deflater:
            data = self.deflater.compress(data) + self.deflater.flush(zlib.Z_SYNC_FLUSH)
        self.sock.sendall(data)

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("connection closed")
        self.buf += self.inflater.decompress(chunk) if self.inflater else chunk

    def line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, tag: bytes) -> tuple[list[bytes], bytes]:
        """Lines (literals inlined) up to and including the tagged completion."""
        lines = []
        while True:
            line = self.line()
            m = re.search(rb"\{(\d+)\}$", line)
            while m:
                line += b"\r\n" + self.read_exact(int(m.group(1)))
                line += self.line()
                m = re.search(rb"\{(\d+)\}$", line)
            if line.startswith(tag + b" "):
                return lines, line
            lines.append(line)

    def cmd(self, tag: str, command: str | bytes) -> tuple[list[bytes], bytes]:
        command = command.encode() if isinstance(command, str) else command
        self.send(tag.encode() + b" " + command + b"\r\n")
        return self.response(tag.encode())

    def login(self, user: str = ALICE, password: str = PASSWORD) -> None:
        _, done = self.cmd("L", f'LOGIN "{user}" "{password}"')
        assert done.startswith(b"L OK"), done

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def deliver(srv, token: str, rcpt: str = ALICE, **kwargs) -> bytes:
    srv.send([rcpt], make_message(token, **kwargs))
    found = with_token(srv.export(rcpt), token)
    assert len(found) == 1
    return found[0]


# ----------------------------------------------------------------------------- login and TLS


def test_login_and_capabilities_after_tls(imap_server):
    client = connect(imap_server)
    caps = client.capabilities
    for cap in ("IMAP4REV1", "IMAP4REV2", "AUTH=PLAIN", "IDLE", "MOVE", "CONDSTORE", "QRESYNC",
                "UIDPLUS", "ESEARCH", "LITERAL+", "COMPRESS=DEFLATE", "SPECIAL-USE"):
        assert cap in caps, caps
    assert "LOGINDISABLED" not in caps and "STARTTLS" not in caps
    check(client.login(ALICE, PASSWORD))
    client.logout()


def test_failed_login_does_not_reveal_whether_the_account_exists(imap_server):
    replies = []
    for user in (ALICE, f"nobody@{DOMAIN}"):
        client = connect(imap_server)
        with pytest.raises(imaplib.IMAP4.error) as err:
            client.login(user, "wrong password")
        replies.append(str(err.value))
        client.logout()
    assert replies[0] == replies[1]
    assert "AUTHENTICATIONFAILED" in replies[0]


def test_imaps_refuses_tls_1_2(imap_server):
    ctx = imap_server.tls_context()
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionError)):
        connect(imap_server, ctx)


def test_starttls_is_required_before_login(imap_server):
    client = imaplib.IMAP4(HOST, imap_server.ports["imap"], timeout=30)
    assert "LOGINDISABLED" in client.capabilities and "STARTTLS" in client.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        client.login(ALICE, PASSWORD)
    check(client.starttls(ssl_context=imap_server.tls_context()))
    check(client.login(ALICE, PASSWORD))
    client.logout()


def test_plaintext_pipelined_after_starttls_closes_the_connection(imap_server):
    sock = socket.create_connection((HOST, imap_server.ports["imap"]), timeout=30)
    sock.recv(4096)
    sock.sendall(b"a STARTTLS\r\nb LOGIN alice pw\r\n")
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data.startswith(b"a OK"), data
    sock.close()


def test_authenticate_plain_with_and_without_initial_response(imap_server):
    import base64

    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    raw = RawImap.tls(imap_server)
    _, done = raw.cmd("a", f"AUTHENTICATE PLAIN {token}")
    assert done.startswith(b"a OK"), done
    raw.close()

    client = connect(imap_server)
    check(client.authenticate("PLAIN", lambda _: f"\0{ALICE}\0{PASSWORD}".encode()))
    client.logout()


# ----------------------------------------------------------------------------- mailboxes


def test_select_list_create_rename_delete(imap_server):
    deliver(imap_server, "sel-1")
    client = login(imap_server)
    typ, data = client.select("INBOX")
    assert typ == "OK" and data == [b"1"]
    assert client.response("UIDVALIDITY")[1][0].isdigit()
    listing = b"\n".join(check(client.list()))
    for name, attr in ((b"Sent", rb"\Sent"), (b"Junk", rb"\Junk"), (b"Trash", rb"\Trash")):
        assert name in listing and attr in listing, listing
    check(client.create("Projects/2026"))  # the parent is created too (RFC 9051 §6.3.4)
    listing = b"\n".join(check(client.list('""', "Projects*")))
    assert b"HasChildren" in listing and b"Projects/2026" in listing
    check(client.rename("Projects/2026", "Projects/Done"))
    assert b"Projects/Done" in b"\n".join(check(client.list('""', "*")))
    check(client.delete("Projects/Done"))
    typ, data = client.select("Projects/Done")
    assert typ == "NO"
    client.logout()


def test_non_ascii_names_use_modified_utf7_in_rev1_and_utf8_when_enabled(imap_server):
    client = login(imap_server)
    check(client.create("&ZeVnLIqe-"))  # 日本語 in modified UTF-7 (RFC 3501 §5.1.3)
    assert b'"&ZeVnLIqe-"' in b"\n".join(check(client.list('""', "*")))
    with pytest.raises(imaplib.IMAP4.error, match="modified UTF-7"):
        client.create("&Jjo-bad&")  # unterminated shift
    client.logout()

    raw = RawImap.tls(imap_server)
    raw.login()
    _, done = raw.cmd("e", "ENABLE UTF8=ACCEPT")
    assert done.startswith(b"e OK")
    lines, done = raw.cmd("l", 'LIST "" "*"')
    assert any("日本語".encode() in line for line in lines), lines
    raw.close()


def test_status_and_special_use_create(imap_server):
    deliver(imap_server, "st-1")
    client = login(imap_server)
    data = check(client.status("INBOX", "(MESSAGES UNSEEN UIDNEXT SIZE HIGHESTMODSEQ)"))
    assert re.search(rb"MESSAGES 1 UNSEEN 1 UIDNEXT 2 SIZE \d+ HIGHESTMODSEQ \d+", data[0]), data
    client.logout()
    raw = RawImap.tls(imap_server)
    raw.login()
    lines, done = raw.cmd("s", "STATUS INBOX (MESSAGES MAILBOXID APPENDLIMIT)")
    assert done.startswith(b"s OK") and b"MAILBOXID (" in lines[0] and b"APPENDLIMIT " in lines[0]
    _, done = raw.cmd("c", 'CREATE "Old Sent" (USE (\\Sent))')
    assert b"USEATTR" in done, done  # Sent already has \Sent
    _, done = raw.cmd("c2", 'CREATE "Archive2" (USE (\\Flagged))')
    assert b"USEATTR" in done, done
    lines, done = raw.cmd("x", 'LIST (SPECIAL-USE) "" "*" RETURN (STATUS (MESSAGES))')
    assert done.startswith(b"x OK")
    assert all(b"\\" in line for line in lines if line.startswith(b"* LIST"))
    assert any(line.startswith(b"* STATUS") for line in lines)
    raw.close()


# ----------------------------------------------------------------------------- messages


def test_fetch_body_is_the_stored_message_and_peek_does_not_set_seen(imap_server):
    stored = deliver(imap_server, "fetch-1", body="line one\r\nline two\r\n")
    client = login(imap_server)
    check(client.select("INBOX"))
    data = check(client.fetch("1", "(UID RFC822.SIZE BODY.PEEK[])"))
    assert data[0][1] == stored
    assert f"RFC822.SIZE {len(stored)}".encode() in data[0][0]
    flags = check(client.fetch("1", "(FLAGS)"))
    assert b"\\Seen" not in flags[0]
    data = check(client.fetch("1", "(BODY[TEXT])"))
    assert data[0][1] == stored.split(b"\r\n\r\n", 1)[1]
    flags = check(client.fetch("1", "(FLAGS)"))
    assert b"\\Seen" in flags[0]
    data = check(client.fetch("1", "(ENVELOPE BODYSTRUCTURE INTERNALDATE)"))
    assert b"ENVELOPE (" in data[0] and b"BODYSTRUCTURE (" in data[0]
    client.logout()


def test_store_flags_and_unchangedsince(imap_server):
    deliver(imap_server, "store-1")
    client = login(imap_server)
    check(client.select("INBOX"))
    data = check(client.store("1", "+FLAGS", "(\\Flagged $Work)"))
    assert b"\\Flagged" in data[0] and b"$Work" in data[0]
    raw = RawImap.tls(imap_server)
    raw.login()
    raw.cmd("s", "SELECT INBOX (CONDSTORE)")
    lines, done = raw.cmd("f", "FETCH 1 (MODSEQ)")
    modseq = int(re.search(rb"MODSEQ \((\d+)\)", lines[0]).group(1))
    _, done = raw.cmd("u", f"STORE 1 (UNCHANGEDSINCE {modseq - 1}) +FLAGS (\\Seen)")
    assert b"[MODIFIED 1]" in done, done
    lines, done = raw.cmd("u2", f"STORE 1 (UNCHANGEDSINCE {modseq}) +FLAGS (\\Seen)")
    assert done.startswith(b"u2 OK") and b"MODIFIED" not in done
    raw.close()
    client.logout()


def test_copy_move_expunge_report_uids(imap_server):
    for token in ("cp-1", "cp-2", "cp-3"):
        deliver(imap_server, token)
    client = login(imap_server)
    check(client.select("INBOX"))
    typ, data = client.copy("1:2", "Archive")
    assert typ == "OK"
    assert re.search(rb"\[COPYUID \d+ 1:2 1:2\]", data[0]), data
    raw = RawImap.tls(imap_server)
    raw.login()
    raw.cmd("s", "SELECT INBOX")
    lines, done = raw.cmd("m", "UID MOVE 3 Trash")
    assert done.startswith(b"m OK")
    assert any(b"COPYUID" in line for line in lines), lines
    assert any(line.endswith(b"EXPUNGE") for line in lines), lines
    raw.cmd("st", "STORE 1 +FLAGS (\\Deleted)")
    lines, done = raw.cmd("x", "EXPUNGE")
    assert lines == [b"* 1 EXPUNGE"], lines
    lines, _ = raw.cmd("c", "STATUS Archive (MESSAGES)")
    assert b"MESSAGES 2" in lines[0]
    raw.close()
    client.logout()


def test_append_with_flags_and_date_reads_back_byte_for_byte(imap_server):
    message = make_message("append-1", body="appended body\r\n")
    client = login(imap_server)
    typ, data = client.append("Drafts", "(\\Draft $Custom)", '"01-Feb-2026 10:00:00 +0000"', message)
    assert typ == "OK" and b"APPENDUID" in data[0], data
    check(client.select("Drafts"))
    data = check(client.fetch("1", "(FLAGS INTERNALDATE BODY.PEEK[])"))
    assert data[0][1] == message
    assert b"\\Draft" in data[0][0] and b"$Custom" in data[0][0]
    assert b"01-Feb-2026 10:00:00 +0000" in data[0][0]
    typ, data = client.append("Nowhere", None, None, message)
    assert typ == "NO" and b"TRYCREATE" in data[0]
    client.logout()


def test_search_text_and_esearch_and_searchres(imap_server):
    deliver(imap_server, "srch-1", body="the quick brown fox\r\n")
    deliver(imap_server, "srch-2", body="lazy dogs only\r\n")
    client = login(imap_server)
    check(client.select("INBOX"))
    assert check(client.search(None, "BODY", "brown")) == [b"1"]
    assert check(client.search(None, "TEXT", "srch-2")) == [b"2"]
    assert check(client.search(None, "NOT", "BODY", "brown")) == [b"2"]
    client.logout()
    raw = RawImap.tls(imap_server)
    raw.login()
    raw.cmd("s", "SELECT INBOX")
    lines, done = raw.cmd("e", "UID SEARCH RETURN (MIN MAX COUNT) ALL")
    assert lines == [b'* ESEARCH (TAG "e") UID MIN 1 MAX 2 COUNT 2'], lines
    _, done = raw.cmd("v", "SEARCH RETURN (SAVE) BODY lazy")
    assert done.startswith(b"v OK")
    lines, done = raw.cmd("f", "FETCH $ (UID)")
    assert done.startswith(b"f OK") and len(lines) == 1 and b"UID 2" in lines[0], lines
    raw.close()


# ----------------------------------------------------------------------------- sessions, IDLE


def test_two_sessions_see_each_others_changes(imap_server):
    for token in ("two-1", "two-2"):
        deliver(imap_server, token)
    a, b = RawImap.tls(imap_server), RawImap.tls(imap_server)
    for raw in (a, b):
        raw.login()
        raw.cmd("s", "SELECT INBOX")
    a.cmd("f", "STORE 1 +FLAGS (\\Flagged)")
    lines, _ = b.cmd("n", "NOOP")
    assert any(b"FETCH" in line and b"\\Flagged" in line for line in lines), lines
    a.cmd("d", "STORE 2 +FLAGS (\\Deleted)")
    a.cmd("x", "EXPUNGE")
    lines, _ = b.cmd("n2", "NOOP")
    assert b"* 2 EXPUNGE" in lines, lines
    deliver(imap_server, "two-3")
    lines, _ = b.cmd("n3", "NOOP")
    assert b"* 2 EXISTS" in lines, lines
    a.close()
    b.close()


def test_idle_reports_a_new_delivery_within_a_second(imap_server):
    raw = RawImap.tls(imap_server)
    raw.login()
    raw.cmd("s", "SELECT INBOX")
    raw.send(b"i IDLE\r\n")
    assert raw.line().startswith(b"+")
    start = time.monotonic()
    imap_server.send([ALICE], make_message("idle-1"))
    sent = time.monotonic()
    raw.sock.settimeout(10)
    line = raw.line()
    arrived = time.monotonic()
    assert line == b"* 1 EXISTS", line
    assert arrived - sent < 1.0, f"EXISTS {arrived - sent:.3f}s after the 250 ({sent - start:.3f}s SMTP)"
    raw.send(b"DONE\r\n")
    assert raw.line().startswith(b"i OK")
    raw.close()


def test_qresync_select_reports_vanished(imap_server):
    for token in ("qr-1", "qr-2", "qr-3"):
        deliver(imap_server, token)
    raw = RawImap.tls(imap_server)
    raw.login()
    raw.cmd("e", "ENABLE QRESYNC")
    lines, _ = raw.cmd("s", "SELECT INBOX")
    validity = int(re.search(rb"UIDVALIDITY (\d+)", b"\n".join(lines)).group(1))
    modseq = int(re.search(rb"HIGHESTMODSEQ (\d+)", b"\n".join(lines)).group(1))
    raw.cmd("d", "UID STORE 2 +FLAGS (\\Deleted)")
    lines, _ = raw.cmd("x", "UID EXPUNGE 2")
    assert b"* VANISHED 2" in lines, lines
    raw.cmd("u", "UNSELECT")
    lines, done = raw.cmd("q", f"SELECT INBOX (QRESYNC ({validity} {modseq} 1:3))")
    assert done.startswith(b"q OK")
    assert b"* VANISHED (EARLIER) 2" in lines, lines
    raw.close()


# ----------------------------------------------------------------------------- COMPRESS, quota


def test_compress_deflate_round_trip(imap_server):
    deliver(imap_server, "z-1", body="compressible " * 200 + "\r\n")
    raw = RawImap.tls(imap_server)
    raw.login()
    _, done = raw.cmd("z", "COMPRESS DEFLATE")
    assert done.startswith(b"z OK")
    raw.inflater = zlib.decompressobj(-15)
    raw.deflater = zlib.compressobj(6, zlib.DEFLATED, -15)
    raw.cmd("s", "SELECT INBOX")
    lines, done = raw.cmd("f", "FETCH 1 (BODY.PEEK[TEXT])")
    assert done.startswith(b"f OK") and b"compressible compressible" in lines[0]
    raw.close()


# ----------------------------------------------------------------------------- hostile input


def test_hostile_input_gets_clean_errors_and_the_session_survives(imap_server):
    raw = RawImap.tls(imap_server)
    raw.login()
    _, done = raw.cmd("a", "SELECT ((((")
    assert done.startswith(b"a BAD")
    raw.send(b"b APPEND INBOX {104857600}\r\n")  # 100 MB announced, sync literal: no "+"
    lines, done = raw.response(b"b")
    assert done.startswith(b"b NO") and b"TOOBIG" in done, done
    _, done = raw.cmd("c", "SEARCH " + "NOT (" * 200 + "ALL" + ")" * 200)
    assert done.startswith(b"c BAD") or done.startswith(b"c NO"), done
    _, done = raw.cmd("d", b'CREATE "\xff\xfe"')
    assert done.startswith(b"d BAD"), done
    _, done = raw.cmd("e", "FETCH 1:* (FLAGS)")  # nothing selected
    assert done.startswith(b"e BAD")
    _, done = raw.cmd("f", "NOOP")
    assert done.startswith(b"f OK")
    raw.close()


def test_deeply_nested_message_gets_a_bounded_bodystructure(imap_server):
    depth = 300
    body = b""
    for level in range(depth):
        body += f"--b{level}\r\nContent-Type: multipart/mixed; boundary=\"b{level + 1}\"\r\n\r\n".encode()
    body += f"--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n--b{depth}--\r\n".encode()
    for level in reversed(range(depth)):
        body += f"--b{level}--\r\n".encode()
    message = make_message("deep-1", body=body,
                           extra_headers=["MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="b0"'])
    client = login(imap_server)
    check(client.append("INBOX", None, None, message))
    check(client.select("INBOX"))
    data = check(client.fetch("1", "(BODYSTRUCTURE BODY.PEEK[])"))
    assert data[0][1] == message
    client.logout()


def test_large_append_is_streamed_and_reads_back(imap_server):
    """A 45 MB APPEND goes through the spool in chunks and FETCH streams it back identical.
    The server's peak memory grows by a fixed overhead (compression contexts, TLS and spool
    buffers: about 15-22 MB measured for both 32 MB and 48 MB messages), not by the message."""
    from test_large import attachment_body, peak_rss_bytes

    size = 45 * 1024 * 1024
    message = make_message("big-append", body=attachment_body(size),
                           extra_headers=["MIME-Version: 1.0", 'Content-Type: multipart/mixed; boundary="b1"'])
    client = login(imap_server)  # first: a login's argon2 memory is kept for the next one
    before = peak_rss_bytes(imap_server.proc.pid)
    typ, data = client.append("INBOX", None, None, message)
    assert typ == "OK", data
    check(client.select("INBOX"))
    fetched = check(client.fetch("1", "(BODY.PEEK[])"))
    assert fetched[0][1] == message
    client.logout()
    grew = peak_rss_bytes(imap_server.proc.pid) - before
    assert grew < len(message) * 6 // 10, f"peak RSS grew by {grew} bytes for a {len(message)}-byte APPEND"


def test_every_rfc9051_search_key_parses_and_selects_the_right_messages(imap_server):
    deliver(imap_server, "keys-1", subject="alpha report", body="first body text\r\n",
            extra_headers=["Cc: Carol <carol@remote.test>", "X-Tag: blue"])
    deliver(imap_server, "keys-2", subject="beta notes", body="second body " + "x" * 5000 + "\r\n")
    raw = RawImap.tls(imap_server)
    raw.login()
    raw.cmd("s", "SELECT INBOX")
    raw.cmd("f", "STORE 1 +FLAGS (\\Flagged \\Answered $Blue)")
    lines, _ = raw.cmd("e", "FETCH 1:2 (EMAILID THREADID)")
    emailid = re.search(rb"EMAILID \(([^)]+)\)", lines[0]).group(1).decode()
    threadid = re.search(rb"THREADID \(([^)]+)\)", lines[1]).group(1).decode()
    today = time.strftime("%d-%b-%Y", time.gmtime())
    expectations = {
        "ALL": "1 2", "ANSWERED": "1", "UNANSWERED": "2", "FLAGGED": "1", "UNFLAGGED": "2",
        "DELETED": "", "UNDELETED": "1 2", "DRAFT": "", "UNDRAFT": "1 2", "SEEN": "",
        "UNSEEN": "1 2", "NEW": "", "OLD": "1 2", "RECENT": "", "KEYWORD $Blue": "1",
        "UNKEYWORD $Blue": "2", "LARGER 4000": "2", "SMALLER 4000": "1",
        f"SINCE {today}": "1 2", f"ON {today}": "1 2", f"BEFORE {today}": "",
        "SENTON 1-Jan-2024": "1 2", "SENTBEFORE 1-Jan-2024": "", "SENTSINCE 2-Jan-2024": "",
        "FROM sender@remote": "1 2", "TO alice": "1 2", "CC carol": "1", "BCC carol": "",
        "SUBJECT ALPHA": "1", 'HEADER X-Tag "blue"': "1", 'HEADER X-Tag ""': "1",
        "BODY second": "2", "TEXT x-tag": "1", "UID 2": "2", "2": "2", "1:*": "1 2",
        "OR SUBJECT alpha SUBJECT beta": "1 2", "NOT SUBJECT alpha": "2",
        "(FLAGGED SUBJECT alpha)": "1", "MODSEQ 1": "1 2", f"EMAILID {emailid}": "1",
        f"THREADID {threadid}": "2", f"SAVEDSINCE {today}": "1 2", f"SAVEDBEFORE {today}": "",
        "SAVEDATESUPPORTED": "1 2",
    }
    for i, (key, expected) in enumerate(expectations.items()):
        lines, done = raw.cmd(f"k{i}", f"SEARCH {key}")
        assert done.startswith(f"k{i} OK".encode()), (key, done)
        found = re.sub(rb" \(MODSEQ \d+\)", b"", lines[0])[len(b"* SEARCH"):].decode().strip()
        assert found == expected, f"SEARCH {key}: {found!r}, expected {expected!r}"
    raw.close()


def test_sort_thread_and_quota_root(imap_server):
    deliver(imap_server, "thr-1", subject="plan")
    deliver(imap_server, "thr-2", subject="Re: plan",
            extra_headers=["In-Reply-To: <thr-1@remote.test>", "References: <thr-1@remote.test>"])
    deliver(imap_server, "thr-3", subject="another topic")
    raw = RawImap.tls(imap_server)
    raw.login()
    raw.cmd("s", "SELECT INBOX")
    # thr-2 has two more header fields, thr-3 a longer subject than thr-1.
    lines, done = raw.cmd("o", "SORT (REVERSE SIZE) UTF-8 ALL")
    assert done.startswith(b"o OK") and lines == [b"* SORT 2 3 1"], lines
    lines, done = raw.cmd("o2", "UID SORT (SUBJECT) UTF-8 ALL")
    assert lines == [b"* SORT 3 1 2"], (lines, done)  # "another topic", then "plan" (base subject) by date
    lines, done = raw.cmd("t", "THREAD REFERENCES UTF-8 ALL")
    assert done.startswith(b"t OK") and lines == [b"* THREAD (1 2)(3)"], lines
    # A fourth message with thr-1's base subject and no references: ORDEREDSUBJECT groups by
    # base subject only (RFC 5256 §4), so it joins thr-1 while thr-2 ("plan thr-2") does not.
    reply = make_message("thr-4").replace(b"Subject: test thr-4", b"Subject: Re: plan thr-1")
    imap_server.send([ALICE], reply)
    raw.cmd("n", "NOOP")
    lines, done = raw.cmd("t2", "THREAD ORDEREDSUBJECT UTF-8 ALL")
    assert lines == [b"* THREAD (1 4)(2)(3)"], lines
    lines, done = raw.cmd("q", "GETQUOTAROOT INBOX")
    assert done.startswith(b"q OK") and lines == [b'* QUOTAROOT "INBOX"'], lines  # no limit set
    raw.close()


def first_bytes_on_plain_imap(srv) -> tuple[socket.socket, bytes]:
    """Connects to the STARTTLS listener and returns the socket with what the server sent
    first: a greeting line, or b"" when it closed the connection without one."""
    sock = socket.create_connection((HOST, srv.ports["imap"]), timeout=30)
    try:
        return sock, sock.recv(1024)
    except ConnectionResetError:
        return sock, b""


def greeted_plain_imap(srv) -> socket.socket | None:
    """A plaintext connection the server admitted (greeted with `* OK`), or None if refused."""
    sock, first = first_bytes_on_plain_imap(srv)
    if first.startswith(b"* OK"):
        return sock
    sock.close()
    return None


def test_connections_over_configured_per_ip_cap_are_refused(make_server):
    """[imap] max_connections_per_ip = 2 (default 50) reaches the server: with one imaps and
    one imap connection open, a third from the same address is turned away: told why on the
    plain port, closed before any TLS on imaps."""
    srv = start_imap_server(make_server, imap={"max_connections_per_ip": 2})
    held = [RawImap.tls(srv).sock]
    try:
        # Retried: the listener probe of start_imap_server holds a slot until the server has
        # seen it close.
        held.append(wait_for(lambda: greeted_plain_imap(srv), "a second IMAP connection admitted"))
        extra, first = first_bytes_on_plain_imap(srv)
        extra.close()
        # RFC 9051 §7.1.5: a BYE greeting refuses the connection; RFC 5530: temporarily.
        assert first == b"* BYE [UNAVAILABLE] Too many connections\r\n", (
            f"3rd connection with max_connections_per_ip=2 got: {first!r}")
        # A TLS handshake for a refused connection would be work an attacker could cause.
        extra = socket.create_connection((HOST, srv.ports["imaps"]), timeout=30)
        try:
            assert extra.recv(1024) == b"", "imaps over the cap must close without a word"
        except ConnectionResetError:
            pass
        finally:
            extra.close()
        # Closing one frees its slot: the refusal was the cap, not a broken listener.
        held.pop().close()
        held.append(wait_for(lambda: greeted_plain_imap(srv), "a slot freed by a closed connection"))
    finally:
        for sock in held:
            sock.close()
