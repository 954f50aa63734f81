"""Real mail clients against the real binary: curl (imaps, imap + STARTTLS, pop3s), mbsync,
offlineimap, fetchmail, getmail6 and the npm client imapflow (tests/clients). `scripts/test`
installs them all; a missing one fails its test rather than skipping it.

IMAP and POP3 serve the CRLF wire form (docs/imap-plan.md §2.3); mail delivered over SMTP is
already CRLF, so the wire form of such a message is exactly what `postkeep export` returns."""

from __future__ import annotations

import getpass
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import PASSWORD, REPO, make_message, with_token
from imap_helpers import ALICE, check, enable_listeners, login, wait_port

CLIENTS_DIR = REPO / "tests" / "clients"
CLIENT_TIMEOUT = 120.0
# Lines a POP3 or IMAP client must carry through untouched: dot-stuffing and mbox quoting.
TRICKY_BODY = b"From the start of a line\r\n.one dot\r\n..two dots\r\n.\r\nend\r\n"


@pytest.fixture
def mail_server(make_server):
    """A running server with imaps, imap (STARTTLS) and pop3s listeners."""
    srv = make_server(start=False)
    enable_listeners(srv, "imaps", "imap", "pop3s")
    srv.start()
    for name in ("imaps", "imap", "pop3s"):
        wait_port(srv.ports[name])
    return srv


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is not installed: run scripts/test, which installs the client "
                    "tools", pytrace=False)
    return path


def run(cmd: list[str], *, env: dict | None = None, cwd: Path | None = None,
        ok: tuple[int, ...] = (0,), timeout: float = CLIENT_TIMEOUT) -> subprocess.CompletedProcess:
    """Runs a client; on an unexpected exit code fails with everything it printed (its protocol
    trace, when run verbose)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, env={**os.environ, **(env or {})},
                              cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"`{' '.join(cmd)}` did not finish in {timeout}s\nstdout: "
                             f"{e.stdout!r:.4000}\nstderr: {e.stderr!r:.8000}") from None
    assert proc.returncode in ok, (
        f"`{' '.join(cmd)}` exited {proc.returncode}\n--- stdout\n"
        f"{proc.stdout.decode(errors='replace')[-6000:]}\n--- stderr\n"
        f"{proc.stderr.decode(errors='replace')[-12000:]}")
    return proc


def deliver(srv, token: str, rcpt: str = ALICE, body: bytes = TRICKY_BODY) -> bytes:
    """Delivers one message over SMTP and returns it as stored (= its wire form)."""
    srv.send([rcpt], make_message(token, body=body))
    found = with_token(srv.export(rcpt), token)
    assert len(found) == 1, f"expected one stored message with {token}, got {len(found)}"
    return found[0]


def uid_of(srv, token: str, mailbox: str = "INBOX") -> int:
    """The UID of the one message whose Message-ID contains token (found with imaplib)."""
    client = login(srv)
    try:
        check(client.select(mailbox, readonly=True))
        uids = check(client.uid("SEARCH", "HEADER", "Message-ID", token))[0].split()
    finally:
        client.logout()
    assert len(uids) == 1, f"UID SEARCH for {token} in {mailbox}: {uids}"
    return int(uids[0])


def lf(message: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n")


# ----------------------------------------------------------------------------- curl


def curl(srv, url: str, *args: str) -> subprocess.CompletedProcess:
    return run([tool("curl"), "-q", "-sS", "-v", "--cacert", str(srv.cert_path),
                "-u", f"{ALICE}:{PASSWORD}", *args, url])


def test_curl_imaps_list_and_uid_fetch_with_sasl_ir(mail_server):
    deliver(mail_server, "curl-imap-1")
    stored = deliver(mail_server, "curl-imap-2")
    base = f"imaps://localhost:{mail_server.ports['imaps']}"

    listing = curl(mail_server, f"{base}/", "--sasl-ir", "--login-options", "AUTH=PLAIN")
    assert re.search(rb"^> \S+ AUTHENTICATE PLAIN \S+", listing.stderr, re.M), (
        f"curl did not send AUTHENTICATE PLAIN with an initial response:\n"
        f"{listing.stderr.decode(errors='replace')}")
    for name in ("INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"):
        assert re.search(rf'^\* LIST \([^)]*\) "/" "?{name}"?\r?$'.encode(), listing.stdout,
                         re.M), listing.stdout

    uid = uid_of(mail_server, "curl-imap-2")
    fetched = curl(mail_server, f"{base}/INBOX/;UID={uid}")
    assert fetched.stdout == stored


def test_curl_imap_starttls_required(mail_server):
    deliver(mail_server, "curl-starttls")
    url = f"imap://localhost:{mail_server.ports['imap']}/"
    listing = curl(mail_server, url, "--ssl-reqd")
    assert re.search(rb"^> \S+ STARTTLS", listing.stderr, re.M), listing.stderr
    assert re.search(rb'^\* LIST \([^)]*\) "/" "?INBOX"?\r?$', listing.stdout, re.M), listing.stdout
    status = curl(mail_server, url, "--ssl-reqd", "-X", "STATUS INBOX (MESSAGES)")
    assert re.search(rb"^\* STATUS \"?INBOX\"? \(MESSAGES 1\)", status.stdout, re.M), status.stdout


def test_curl_pop3s_list_and_retr(mail_server):
    first = deliver(mail_server, "curl-pop-1")
    second = deliver(mail_server, "curl-pop-2")
    base = f"pop3s://localhost:{mail_server.ports['pop3s']}"

    listing = curl(mail_server, f"{base}/")
    assert listing.stdout.splitlines() == [f"1 {len(first)}".encode(),
                                           f"2 {len(second)}".encode()], listing.stdout
    # curl un-stuffs the RETR response (RFC 1939 §3) as a client must.
    retr = curl(mail_server, f"{base}/2", "--sasl-ir", "--login-options", "AUTH=PLAIN")
    assert re.search(rb"^> AUTH PLAIN \S+", retr.stderr, re.M), retr.stderr
    assert retr.stdout == second


# ----------------------------------------------------------------------------- POP3 clients


def file_writer(home: Path, outdir: Path) -> Path:
    """An MDA script: writes the message on its stdin to a new file in outdir."""
    script = home / "deliver.sh"
    script.write_text(f'#!/bin/sh\nexec cat > "$(mktemp -p "{outdir}" msg.XXXXXX)"\n')
    script.chmod(0o755)
    return script


def fetchmail(srv, home: Path, outdir: Path, *flags: str) -> subprocess.CompletedProcess:
    """One fetchmail poll over pop3s verifying the server against the dev certificate, each
    message handed unchanged (invisible, no stripcr, no rewrite) to an MDA writing one file."""
    rc = home / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        "set invisible\n"
        f"poll localhost with proto POP3 port {srv.ports['pop3s']}\n"
        f'  user "{ALICE}" there with password "{PASSWORD}" is "{getpass.getuser()}" here\n'
        f'  ssl sslcertck sslcertfile "{srv.cert_path}" sslproto "TLS1.3+"\n'
        "  keep no stripcr no rewrite\n"
        f'  mda "{file_writer(home, outdir)}"\n')
    rc.chmod(0o600)  # fetchmail refuses a readable rc file holding a password
    # Exit 1 is fetchmail's "no mail".
    return run([tool("fetchmail"), "-f", str(rc), "-v", "--nodetach", *flags],
               env={"FETCHMAILHOME": str(home), "HOME": str(home)}, ok=(0, 1))


def files_in(folder: Path) -> list[bytes]:
    return sorted(p.read_bytes() for p in folder.iterdir() if p.is_file())


def test_fetchmail_pop3s_keep_then_delete(mail_server, tmp_path):
    home, out = tmp_path / "fetchmail", tmp_path / "delivered"
    home.mkdir()
    out.mkdir()
    first = [deliver(mail_server, f"fm-{i}") for i in (1, 2)]

    fetchmail(mail_server, home, out)  # keep: the server keeps them, .fetchids remembers them
    assert files_in(out) == sorted(first)
    assert len(mail_server.export(ALICE)) == 2

    third = deliver(mail_server, "fm-3")
    poll = fetchmail(mail_server, home, out)
    assert files_in(out) == sorted(first + [third]), poll.stderr.decode(errors="replace")

    for p in out.iterdir():
        p.unlink()
    fetchmail(mail_server, home, out, "--nokeep", "--all")
    assert files_in(out) == sorted(first + [third])
    assert mail_server.export(ALICE) == [], "fetchmail --nokeep left messages on the server"


def test_getmail_pop3s_verifies_the_certificate_and_reads_new_mail_once(mail_server, tmp_path):
    home, out = tmp_path / "getmail", tmp_path / "delivered"
    home.mkdir()
    out.mkdir()
    stored = [deliver(mail_server, f"gm-{i}") for i in (1, 2)]
    rc = home / "getmailrc"
    rc.write_text(
        "[retriever]\n"
        "type = SimplePOP3SSLRetriever\n"
        "server = localhost\n"
        f"port = {mail_server.ports['pop3s']}\n"
        f"username = {ALICE}\n"
        f"password = {PASSWORD}\n"
        f"ca_certs = {mail_server.cert_path}\n"
        "\n[destination]\n"
        "type = MDA_external\n"
        f"path = {file_writer(home, out)}\n"
        "allow_root_commands = true\n"
        "unixfrom = false\n"
        "\n[options]\n"
        "read_all = false\n"
        "delete = false\n"
        "delivered_to = false\n"
        "received = false\n"
        "verbose = 2\n")
    args = [tool("getmail"), f"--rcfile={rc}", f"--getmaildir={home}"]
    first = run(args)
    assert b"2 messages" in first.stdout + first.stderr, first.stdout
    # getmail writes LF line ends and adds the Return-Path it cannot learn over POP3; the rest
    # must be the message as served.
    assert files_in(out) == sorted(b"Return-Path: <unknown>\n" + lf(m) for m in stored)
    again = run(args)
    assert b"0 messages" in again.stdout + again.stderr, again.stdout
    assert len(files_in(out)) == 2
    assert len(mail_server.export(ALICE)) == 2


# ----------------------------------------------------------------------------- IMAP sync clients


def append(srv, mailbox: str, message: bytes) -> None:
    client = login(srv)
    try:
        typ, data = client.append(mailbox, None, None, message)
        assert typ == "OK", data
    finally:
        client.logout()


def maildir_files(folder: Path) -> dict[str, bytes]:
    """{file name relative to the Maildir folder: content} for cur/ and new/."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for sub in ("cur", "new") if (folder / sub).is_dir()
            for p in sorted((folder / sub).iterdir()) if p.is_file()}


def imap_messages(srv, mailbox: str) -> dict[int, tuple[bytes, bytes]]:
    """{UID: (FLAGS item, BODY[])} of a mailbox, read with imaplib."""
    client = login(srv)
    try:
        check(client.select(mailbox, readonly=True))
        data = check(client.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])"))
    finally:
        client.logout()
    out = {}
    for item in data:
        if isinstance(item, tuple):
            head, body = item
            uid = int(re.search(rb"\bUID (\d+)", head).group(1))
            flags = re.search(rb"FLAGS \(([^)]*)\)", head).group(1)
            out[uid] = (flags, body)
    return out


X_TUID = re.compile(rb"^X-TUID: [^\r\n]*\r?\n", re.M)


def without_tuid(message: bytes) -> bytes:
    """mbsync adds an `X-TUID:` header to every message it copies, in either direction, to find
    it again after the copy; everything else must arrive unchanged."""
    return X_TUID.sub(b"", message, count=1)


# A command in mbsync's trace that moves a message or a flag; pipelined ones carry a prefix.
MBSYNC_CHANGES = re.compile(
    rb"^(?:\(\d+ in progress\) )?>>> \d+ (?:UID STORE|APPEND|UID FETCH [^\r\n]*BODY)", re.M)


def mbsync(config: Path) -> subprocess.CompletedProcess:
    """`mbsync -a` with the network trace (-Dn: commands and responses, no message bodies)."""
    return run([tool("mbsync"), "-c", str(config), "-a", "-Dn"])


def test_mbsync_pulls_pushes_both_ways_then_has_nothing_to_do(mail_server, tmp_path):
    local = tmp_path / "mbsync-mail"
    local.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        "IMAPAccount postkeep\n"
        "Host localhost\n"
        f"Port {mail_server.ports['imaps']}\n"
        f"User {ALICE}\n"
        f'Pass "{PASSWORD}"\n'
        "SSLType IMAPS\n"
        "SSLVersions TLSv1.3\n"
        "SystemCertificates no\n"
        f"CertificateFile {mail_server.cert_path}\n"
        "AuthMechs PLAIN\n"
        "\n"
        "IMAPStore far\n"
        "Account postkeep\n"
        "\n"
        "MaildirStore near\n"
        f"Path {local}/\n"
        f"Inbox {local}/INBOX\n"
        "SubFolders Verbatim\n"
        "\n"
        "Channel postkeep\n"
        "Far :far:\n"
        "Near :near:\n"
        "Patterns INBOX Archive\n"
        "Create Both\n"
        "Expunge Both\n"
        "Sync All\n"
        "SyncState *\n")
    inbox = [deliver(mail_server, f"mb-{i}") for i in (1, 2)]
    archived = make_message("mb-archived", body=b"filed away\r\n")
    append(mail_server, "Archive", archived)

    # Run 1: pull. mbsync keeps Maildir files with LF line ends (it converts from the wire's CRLF).
    mbsync(config)
    pulled = maildir_files(local / "INBOX")
    assert sorted(map(without_tuid, pulled.values())) == sorted(lf(m) for m in inbox)
    assert [without_tuid(m) for m in maildir_files(local / "Archive").values()] == [lf(archived)]

    # Changes on both sides: a new local message and a local \Flagged; a new delivery and a \Seen
    # set by another IMAP client.
    by_token = {b"mb-1": None, b"mb-2": None}
    for name, content in pulled.items():
        by_token[next(t for t in by_token if t in content)] = local / "INBOX" / name
    flagged = by_token[b"mb-1"]
    base = flagged.name.split(":2,")[0]
    flagged.rename(local / "INBOX" / "cur" / f"{base}:2,F")
    written_locally = lf(make_message("mb-local", body=b"written offline\r\n.with a dot\r\n"))
    (local / "INBOX" / "new" / "1700000000.mbsync-test.localhost").write_bytes(written_locally)
    third = deliver(mail_server, "mb-3")
    client = login(mail_server)
    check(client.select("INBOX"))
    check(client.uid("STORE", str(uid_of(mail_server, "mb-2")), "+FLAGS", "(\\Seen)"))
    client.logout()

    # Run 2: both ways.
    second = mbsync(config)
    # The trace shows the transfers, which is what run 3 must not have.
    transfers = b" ".join(MBSYNC_CHANGES.findall(second.stdout + second.stderr))
    for command in (b"APPEND", b"UID STORE", b"BODY"):
        assert command in transfers, f"no {command!r} in run 2's trace: {transfers!r}"
    on_server = imap_messages(mail_server, "INBOX")
    assert len(on_server) == 4, second.stderr.decode(errors="replace")[-6000:]
    pushed = [(flags, body) for flags, body in on_server.values() if b"mb-local" in body]
    assert len(pushed) == 1
    assert without_tuid(pushed[0][1]) == written_locally.replace(b"\n", b"\r\n")
    flags_of = {next(t for t in (b"mb-1", b"mb-2", b"mb-3") if t in body): flags
                for flags, body in on_server.values() if b"mb-local" not in body}
    assert b"\\Flagged" in flags_of[b"mb-1"], flags_of
    local_now = maildir_files(local / "INBOX")
    assert len(local_now) == 4, local_now.keys()
    assert lf(third) in map(without_tuid, local_now.values())
    seen_name = next(n for n, c in local_now.items() if b"mb-2" in c)
    assert "S" in seen_name.rsplit(":2,", 1)[-1], f"\\Seen did not reach the Maildir: {seen_name}"

    # Run 3: nothing changed on either side, so nothing may be transferred.
    before = (maildir_files(local / "INBOX"), maildir_files(local / "Archive"))
    server_before = imap_messages(mail_server, "INBOX")
    third_run = mbsync(config)
    changes = MBSYNC_CHANGES.findall(third_run.stdout + third_run.stderr)
    assert not changes, (
        f"run 3 (nothing to do) transferred: {changes}\n"
        f"{third_run.stdout.decode(errors='replace')}")
    assert (maildir_files(local / "INBOX"), maildir_files(local / "Archive")) == before
    assert imap_messages(mail_server, "INBOX") == server_before


# A command in offlineimap's protocol trace (imaplib2's "writer >" lines) that moves a message
# or a flag.
OFFLINEIMAP_CHANGES = re.compile(
    rb"writer > b'\S+ (?:UID )?(?:STORE|APPEND|COPY|MOVE|EXPUNGE|FETCH [^'\r\n]*BODY)[^'\r\n]*")


def offlineimap(config: Path) -> subprocess.CompletedProcess:
    """One offlineimap pass (-o) with its plain UI and the IMAP protocol trace (-d imap)."""
    return run([tool("offlineimap"), "-c", str(config), "-o", "-u", "basic", "-d", "imap"])


def test_offlineimap_syncs_to_maildir_and_resyncs_with_no_changes(mail_server, tmp_path):
    local, meta = tmp_path / "offlineimap-mail", tmp_path / "offlineimap-meta"
    config = tmp_path / "offlineimaprc"
    config.write_text(
        "[general]\n"
        "accounts = postkeep\n"
        f"metadata = {meta}\n"
        "\n[Account postkeep]\n"
        "localrepository = local\n"
        "remoterepository = remote\n"
        "\n[Repository local]\n"
        "type = Maildir\n"
        f"localfolders = {local}\n"
        "\n[Repository remote]\n"
        "type = IMAP\n"
        "remotehost = localhost\n"
        f"remoteport = {mail_server.ports['imaps']}\n"
        "ssl = yes\n"
        f"sslcacertfile = {mail_server.cert_path}\n"
        f"remoteuser = {ALICE}\n"
        f"remotepass = {PASSWORD}\n"
        "folderfilter = lambda name: name in ('INBOX', 'Archive')\n")
    inbox = [deliver(mail_server, f"oi-{i}") for i in (1, 2)]
    archived = make_message("oi-archived", body=b"filed away\r\n")
    append(mail_server, "Archive", archived)

    first = offlineimap(config)
    got_inbox = maildir_files(local / "INBOX")
    # offlineimap writes LF line ends into the Maildir.
    assert sorted(got_inbox.values()) == sorted(lf(m) for m in inbox), (
        first.stderr.decode(errors="replace")[-6000:])
    assert list(maildir_files(local / "Archive").values()) == [lf(archived)]
    copies = OFFLINEIMAP_CHANGES.findall(first.stdout + first.stderr)
    assert len(copies) == 3, f"expected 3 BODY fetches in run 1's trace, got {copies}"

    again = offlineimap(config)
    changes = OFFLINEIMAP_CHANGES.findall(again.stdout + again.stderr)
    assert not changes, f"the second run transferred: {changes}\n{again.stdout!r:.6000}"
    assert maildir_files(local / "INBOX") == got_inbox


# ----------------------------------------------------------------------------- imapflow (node)


class NodeClient:
    """tests/clients/imapflow-check.mjs running one scenario; reads its JSON lines as they come."""

    def __init__(self, srv, scenario: str, tmp_path: Path):
        node = tool("node")
        if not (CLIENTS_DIR / "node_modules" / "imapflow").is_dir():
            pytest.fail(f"imapflow is not installed in {CLIENTS_DIR}: run scripts/test (npm ci)",
                        pytrace=False)
        self.stderr_path = tmp_path / f"imapflow-{scenario}.log"
        self.stderr = open(self.stderr_path, "wb")
        env = {**os.environ, "PK_PORT": str(srv.ports["imaps"]), "PK_CA": str(srv.cert_path),
               "PK_USER": ALICE, "PK_PASS": PASSWORD}
        self.proc = subprocess.Popen([node, "imapflow-check.mjs", scenario], cwd=CLIENTS_DIR,
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def trace(self) -> str:
        """imapflow's protocol log so far (the child writes the file directly)."""
        return self.stderr_path.read_text(errors="replace")[-12000:]

    def event(self, timeout: float = CLIENT_TIMEOUT) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"imapflow sent nothing for {timeout}s; its log:\n"
                                 f"{self.trace()}") from None
        if line is None:
            code = self.proc.wait(30)
            raise AssertionError(f"imapflow exited {code} early; its log:\n{self.trace()}")
        return json.loads(line)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def finish(self) -> None:
        code = self.proc.wait(CLIENT_TIMEOUT)
        self.stderr.close()
        assert code == 0, f"imapflow exited {code}; its log:\n{self.trace()}"

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.stderr.close()


@pytest.fixture
def imapflow(mail_server, tmp_path):
    started: list[NodeClient] = []

    def start(scenario: str) -> NodeClient:
        client = NodeClient(mail_server, scenario, tmp_path)
        started.append(client)
        return client

    yield start
    for client in started:
        client.kill()


def test_imapflow_idle_sees_an_smtp_delivery_within_a_second(mail_server, imapflow):
    deliver(mail_server, "flow-idle-0")
    node = imapflow("idle")
    assert node.event() == {"event": "idling", "exists": 1}
    mail_server.send([ALICE], make_message("flow-idle-1"))
    sent = time.monotonic()
    event = node.event(timeout=10)
    latency = time.monotonic() - sent
    assert event == {"event": "exists", "count": 2, "prevCount": 1}, event
    assert latency < 1.0, f"EXISTS reached imapflow {latency:.3f}s after the SMTP 250"
    node.finish()


def test_imapflow_qresync_reconnect_reports_vanished_and_changed_flags(mail_server, imapflow):
    for i in (1, 2, 3):
        deliver(mail_server, f"flow-qr-{i}")
    flag_uid, expunge_uid = (uid_of(mail_server, f"flow-qr-{i}") for i in (1, 2))
    node = imapflow("qresync")
    state = node.event()
    assert "QRESYNC" in state["enabled"] and "CONDSTORE" in state["enabled"], state
    node.send(f"{flag_uid} {expunge_uid}")  # done by a second connection while this one is away
    done = node.event()
    node.finish()
    assert done["qresync"] is True, done
    assert done["uidValidity"] == state["uidValidity"]
    assert int(done["highestModseq"]) > int(state["highestModseq"]), (state, done)
    assert done["exists"] == 2
    vanished = [{"uid": expunge_uid, "earlier": True, "vanished": True}]
    # RFC 7162 §3.2.5.1 (SELECT) and §3.2.6 (FETCH with the VANISHED modifier).
    assert done["vanishedOnSelect"] == vanished, f"{done}\n{node.trace()}"
    assert done["vanishedOnFetch"] == vanished, f"{done}\n{node.trace()}"
    flagged = [(flag_uid, True)]
    assert [(f["uid"], "\\Flagged" in f["flags"]) for f in done["flags"]] == flagged, done
    # FETCH (CHANGEDSINCE) of 1:* returns only what changed after the remembered modseq.
    assert [(c["uid"], "\\Flagged" in c["flags"]) for c in done["changed"]] == flagged, done
    assert all(int(c["modseq"]) > int(state["highestModseq"]) for c in done["changed"]), done


def test_imapflow_move_returns_the_uid_map(mail_server, imapflow):
    for i in (1, 2, 3):
        deliver(mail_server, f"flow-mv-{i}")
    node = imapflow("move")
    result = node.event()
    node.finish()
    assert "MOVE" in result["capabilities"] and "UIDPLUS" in result["capabilities"], result
    before = {int(k): v for k, v in result["before"].items()}
    archived = {int(k): v for k, v in result["archived"].items()}
    uid_map = {int(k): v for k, v in (result["uidMap"] or {}).items()}
    assert sorted(uid_map) == result["moved"], result
    for source, target in uid_map.items():
        assert archived[target] == before[source], result
    assert sorted(archived.values()) == sorted(before[u] for u in result["moved"])
    left = {int(k): v for k, v in result["left"].items()}
    assert left == {u: m for u, m in before.items() if u not in uid_map}, result
