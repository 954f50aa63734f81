"""Message submission (RFC 6409) on `submission` (587-style, STARTTLS required) and
`submissions` (465-style, implicit TLS 1.3, RFC 8314): AUTH PLAIN/LOGIN with passwords and app
passwords, sender ownership, per-account limits, the Sent copy, and real clients (swaks, Python
smtplib, curl, nodemailer)."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import smtplib
import ssl
import subprocess
from base64 import b64encode
from pathlib import Path

import pytest

from conftest import (DOMAIN, HOST, IO_TIMEOUT, PASSWORD, RawSmtp, assert_reply, dot_stuff,
                      set_toml_value, smtps, starttls)
from imap_helpers import login, mailbox_messages, wait_port
from test_canary import make_canary, needles, scan

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"
CLIENTS_DIR = Path(__file__).resolve().parents[1] / "clients"


# --------------------------------------------------------------------------- helpers


def start_submission_server(make_server, submission: dict | None = None):
    """A server with alice, bob and carol; the dev config serves submission, submissions and
    imaps. `submission` overrides keys of [submission]."""
    srv = make_server(start=False)
    for name in ("submission", "submissions", "imaps"):
        assert re.search(rf'(?m)^{name} = "', srv.config_text()), f"dev config lacks {name}"
    if submission:
        text = srv.config_text()
        for key, value in submission.items():
            text = set_toml_value(text, "submission", key, value)
        srv.config_path.write_text(text)
    srv.start()
    for name in ("submission", "submissions", "imaps"):
        wait_port(srv.ports[name])
    return srv


@pytest.fixture
def sub(make_server):
    return start_submission_server(make_server)


def message(token: str, sender: str = ALICE, to: str = BOB, body: str = "Hello.\r\n",
            extra: list[str] | None = None) -> bytes:
    headers = [f"From: <{sender}>", f"To: <{to}>", f"Subject: submitted {token}",
               f"Message-ID: <{token}@{DOMAIN}>", "Date: Mon, 01 Jan 2024 10:00:00 +0000",
               *(extra or [])]
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode()


def plain(user: str, password: str) -> str:
    return b64encode(f"\0{user}\0{password}".encode()).decode()


def raw_tls(srv) -> RawSmtp:
    """A byte-exact client on the submission port, after STARTTLS and EHLO."""
    raw = RawSmtp(srv.ports["submission"])
    raw.ehlo()
    raw.starttls(srv.tls_context())
    raw.ehlo()
    return raw


def raw_authenticated(srv, user: str = ALICE, password: str = PASSWORD) -> RawSmtp:
    raw = raw_tls(srv)
    assert_reply(raw.cmd(f"AUTH PLAIN {plain(user, password)}"), 235, "2.7.0")
    return raw


def with_token(messages: list[bytes], token: str) -> list[bytes]:
    return [m for m in messages if token.encode() in m]


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (scripts/test installs the client tools)",
                    pytrace=False)
    return path


# --------------------------------------------------------------------------- the protocol


def test_auth_is_offered_only_after_starttls_and_required_for_mail(sub):
    raw = RawSmtp(sub.ports["submission"])
    ehlo = raw.ehlo()
    assert "STARTTLS" in ehlo.lines and not any(l.startswith("AUTH") for l in ehlo.lines), ehlo
    # No password may cross the wire in clear: AUTH is refused before TLS, whatever the mechanism.
    assert_reply(raw.cmd(f"AUTH PLAIN {plain(ALICE, PASSWORD)}"), 538, "5.7.11")
    assert_reply(raw.cmd("AUTH LOGIN"), 538, "5.7.11")
    assert_reply(raw.cmd(f"MAIL FROM:<{ALICE}>"), 530, "5.7.0")
    raw.starttls(sub.tls_context())
    ehlo = raw.ehlo()
    assert "AUTH PLAIN LOGIN" in ehlo.lines and "STARTTLS" not in ehlo.lines, ehlo
    # Under TLS but not logged in: still no relaying, and no local delivery either.
    assert_reply(raw.cmd(f"MAIL FROM:<{ALICE}>"), 530, "5.7.0")
    assert_reply(raw.cmd("RCPT TO:<someone@remote.test>"), 503, "5.5.1")
    raw.close()


def test_implicit_tls_port_refuses_tls_1_2(sub):
    ctx = sub.tls_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        smtplib.SMTP_SSL(HOST, sub.ports["submissions"], context=ctx, timeout=IO_TIMEOUT)
    # TLS 1.3 on the same port works.
    with smtps(sub) as s:
        assert s.sock.version() == "TLSv1.3"
        assert s.noop()[0] == 250


def test_smtplib_plain_and_login_deliver_and_keep_an_encrypted_sent_copy(sub):
    canary = make_canary()
    t1, t2 = secrets.token_hex(6), secrets.token_hex(6)
    with smtps(sub) as s:
        s.ehlo("client.test")
        assert s.has_extn("auth") and "PLAIN" in s.esmtp_features["auth"].split()
        assert s.login(ALICE, PASSWORD)[0] == 235  # smtplib picks PLAIN
        refused = s.sendmail(ALICE, [BOB], message(t1, body=f"The word is {canary}.\r\n"))
        assert not refused
    with starttls(sub) as s:
        s.ehlo("client.test")
        s.user, s.password = ALICE, PASSWORD
        code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        assert code == 235
        assert not s.sendmail(ALICE, [BOB], message(t2))

    inbox = mailbox_messages(sub, BOB, "INBOX")
    assert len(with_token(inbox, t1)) == 1 and len(with_token(inbox, t2)) == 1
    sent = mailbox_messages(sub, ALICE, "Sent")
    assert len(with_token(sent, t1)) == 1 and len(with_token(sent, t2)) == 1, sent
    assert canary.encode() in with_token(sent, t1)[0]
    # The sender's own INBOX gets nothing: the copy is in Sent only.
    assert not with_token(mailbox_messages(sub, ALICE, "INBOX"), t1)
    received = with_token(inbox, t1)[0].split(b"\r\n\r\n", 1)[0]
    assert b" with ESMTPSA id " in received, received

    # Encrypted at rest: the canary is nowhere in the data directory or the log.
    sub.stop()
    table = needles(canary)
    problems = []
    for path in sorted(p for p in sub.data.rglob("*") if p.is_file()) + [sub.log_path]:
        problems += scan(path.read_bytes(), table, str(path.relative_to(sub.root)))
    assert not problems, f"canary {canary} found in clear:\n  " + "\n  ".join(problems[:20])


def test_app_password_authenticates_and_wrong_password_is_535_then_throttled(sub):
    out = sub.cli("user", "app-password", "add", ALICE, "phone").stdout.decode()
    m = re.search(rf"app password phone for {re.escape(ALICE)}: (\S+)", out)
    assert m, out
    token = secrets.token_hex(6)
    with smtps(sub) as s:
        s.login(ALICE, m.group(1))
        assert not s.sendmail(ALICE, [BOB], message(token))
    assert with_token(mailbox_messages(sub, BOB, "INBOX"), token)

    raw = raw_tls(sub)
    replies = []
    for _ in range(8):
        r = raw.cmd(f"AUTH PLAIN {plain(ALICE, 'wrong password')}")
        replies.append(r)
        if r.code != 535:
            break
    assert_reply(replies[0], 535, "5.7.8")
    assert_reply(replies[-1], 454, "4.7.0", "repeated failures must be throttled")
    raw.close()


def test_spoofed_envelope_sender_is_refused_with_550(sub):
    raw = raw_authenticated(sub)
    for spoofed in (BOB, "ceo@victim.test", ""):
        r = raw.cmd(f"MAIL FROM:<{spoofed}>")
        assert_reply(r, 550, "5.7.1", f"MAIL FROM:<{spoofed}>")
    assert "not owned by user" in raw.cmd(f"MAIL FROM:<{BOB}>").text
    assert_reply(raw.cmd(f"MAIL FROM:<{ALICE}>"), 250)
    raw.close()


def test_spoofed_from_header_is_refused_with_550_and_nothing_is_delivered(sub):
    raw = raw_authenticated(sub)
    token = secrets.token_hex(6)
    r = raw.transaction([BOB], message(token, sender="ceo@victim.test"), mail_from=ALICE)
    assert_reply(r, 550, "5.7.1")
    # A second From field cannot smuggle a foreign address past the first.
    r = raw.transaction([BOB], message(token, extra=[f"From: <{BOB}>"]), mail_from=ALICE)
    assert_reply(r, 550, "5.7.1")
    raw.close()
    with smtps(sub) as s:
        s.login(ALICE, PASSWORD)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            s.sendmail(ALICE, [BOB], message(token, sender=BOB))
        assert refused.value.smtp_code == 550
    assert not with_token(mailbox_messages(sub, BOB, "INBOX"), token)
    assert not with_token(mailbox_messages(sub, ALICE, "Sent"), token)


def test_an_alias_of_the_account_may_be_the_sender(sub):
    alias = f"sales@{DOMAIN}"
    sub.cli("alias", "add", alias, ALICE)  # while serve runs
    token = secrets.token_hex(6)
    raw = raw_authenticated(sub)
    assert_reply(raw.transaction([BOB], message(token, sender=alias), mail_from=alias), 250,
                 "2.0.0")
    raw.close()
    assert with_token(mailbox_messages(sub, BOB, "INBOX"), token)
    assert with_token(mailbox_messages(sub, ALICE, "Sent"), token)


def test_limits_answer_4xx_and_lose_nothing(make_server):
    srv = start_submission_server(make_server, {"max_recipients": "2",
                                                "max_messages_per_hour": "2"})
    carol = f"carol@{DOMAIN}"
    raw = raw_authenticated(srv)
    assert_reply(raw.cmd(f"MAIL FROM:<{ALICE}>"), 250)
    assert_reply(raw.cmd(f"RCPT TO:<{BOB}>"), 250)
    assert_reply(raw.cmd(f"RCPT TO:<{carol}>"), 250)
    assert_reply(raw.cmd("RCPT TO:<dave@remote.test>"), 452, "4.5.3")
    assert_reply(raw.cmd("DATA"), 354)
    token = secrets.token_hex(6)
    raw.send(dot_stuff(message(token)))
    assert_reply(raw.reply(), 250, "2.0.0")
    assert_reply(raw.transaction([BOB], message(token + "b"), mail_from=ALICE), 250, "2.0.0")
    # The third message of the hour is deferred at MAIL, before the client sends its body.
    r = raw.cmd(f"MAIL FROM:<{ALICE}>")
    assert_reply(r, 451, "4.7.1")
    assert "per hour" in r.text
    raw.close()
    # Other accounts have their own budget.
    with smtps(srv) as s:
        s.login(BOB, PASSWORD)
        assert not s.sendmail(BOB, [ALICE], message(token + "c", sender=BOB, to=ALICE))
    assert len(with_token(mailbox_messages(srv, BOB, "INBOX"), token)) == 2
    assert len(with_token(mailbox_messages(srv, carol, "INBOX"), token)) == 1


def test_remote_recipients_are_queued_and_the_operator_sees_them(make_server):
    """Mail for elsewhere is queued durably before the 250, the local and Sent copies are
    filed, and `postkeep queue list` shows the remote recipient pending (this server's DNS
    never answers, so delivery is retried) until `queue remove` drops it."""
    srv = make_server(start=False)
    text = set_toml_value(srv.config_text(), "dns", "nameservers", '["127.0.0.1:9"]')
    srv.config_path.write_text(set_toml_value(text, "dns", "timeout_secs", "1"))
    srv.start()
    wait_port(srv.ports["submissions"])
    raw = raw_authenticated(srv)
    token = secrets.token_hex(6)
    assert_reply(raw.cmd(f"MAIL FROM:<{ALICE}>"), 250)
    assert_reply(raw.cmd(f"RCPT TO:<{BOB}>"), 250)
    assert_reply(raw.cmd("RCPT TO:<friend@remote.test>"), 250)
    assert_reply(raw.cmd("DATA"), 354)
    raw.send(dot_stuff(message(token)))
    assert_reply(raw.reply(), 250)
    raw.close()
    assert with_token(mailbox_messages(srv, BOB, "INBOX"), token)
    assert with_token(mailbox_messages(srv, ALICE, "Sent"), token)
    listing = srv.cli("queue", "list").stdout.decode()
    assert re.search(r"(?m)^\s+pending\s+friend@remote\.test", listing), listing
    assert BOB not in listing, listing
    queue_id = listing.split()[0]
    assert srv.cli("queue", "remove", queue_id).returncode == 0
    assert "queue is empty" in srv.cli("queue", "list").stdout.decode()


# --------------------------------------------------------------------------- real clients


def test_swaks_implicit_tls_plain_and_starttls_login(sub):
    tokens = []
    for port, tls_flag, mech in ((sub.ports["submissions"], "--tls-on-connect", "PLAIN"),
                                 (sub.ports["submission"], "--tls", "LOGIN")):
        token = secrets.token_hex(6)
        tokens.append(token)
        proc = subprocess.run(
            [tool("swaks"), "--server", f"{HOST}:{port}", tls_flag, "--auth", mech,
             "--auth-user", ALICE, "--auth-password", PASSWORD, "--from", ALICE, "--to", BOB,
             "--helo", "client.test", "--header", f"Subject: swaks {token}",
             "--body", f"sent by swaks {token}"],
            capture_output=True, timeout=120)
        out = proc.stdout.decode(errors="replace")
        assert proc.returncode == 0, out + proc.stderr.decode(errors="replace")
        assert "235 2.7.0" in out and "250 2.0.0 Ok: queued as" in out, out
    inbox = mailbox_messages(sub, BOB, "INBOX")
    for token in tokens:
        assert len(with_token(inbox, token)) == 1


def test_swaks_spoofing_another_address_is_refused(sub):
    proc = subprocess.run(
        [tool("swaks"), "--server", f"{HOST}:{sub.ports['submissions']}", "--tls-on-connect",
         "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", PASSWORD,
         "--from", BOB, "--to", BOB, "--helo", "client.test"],
        capture_output=True, timeout=120)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode != 0, out
    assert "550 5.7.1" in out, out


def test_curl_smtps_upload(sub, tmp_path):
    token = secrets.token_hex(6)
    eml = tmp_path / "message.eml"
    eml.write_bytes(message(token, body="sent by curl\r\n"))
    proc = subprocess.run(
        [tool("curl"), "--silent", "--show-error", "--cacert", str(sub.cert_path),
         f"smtps://{HOST}:{sub.ports['submissions']}/client.test",
         "--user", f"{ALICE}:{PASSWORD}", "--mail-from", ALICE, "--mail-rcpt", BOB,
         "--upload-file", str(eml)],
        capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    assert with_token(mailbox_messages(sub, BOB, "INBOX"), token)
    assert with_token(mailbox_messages(sub, ALICE, "Sent"), token)


def nodemailer(srv, secure: bool, sender: str, token: str) -> dict:
    node = tool("node")
    if not (CLIENTS_DIR / "node_modules" / "nodemailer").is_dir():
        pytest.fail(f"nodemailer is not installed in {CLIENTS_DIR}: run scripts/test (npm ci)",
                    pytrace=False)
    env = {**os.environ,
           "PK_PORT": str(srv.ports["submissions" if secure else "submission"]),
           "PK_SECURE": "1" if secure else "0", "PK_CA": str(srv.cert_path),
           "PK_USER": ALICE, "PK_PASS": PASSWORD, "PK_FROM": sender, "PK_TO": BOB,
           "PK_SUBJECT": f"nodemailer {token}", "PK_TEXT": f"sent by nodemailer {token}"}
    proc = subprocess.run([node, "nodemailer-send.mjs"], cwd=CLIENTS_DIR, env=env,
                          capture_output=True, timeout=120)
    log = proc.stderr.decode(errors="replace")
    assert proc.returncode == 0, log
    lines = proc.stdout.decode().strip().splitlines()
    assert lines, log
    return json.loads(lines[-1])


def test_nodemailer_sends_over_both_ports_and_is_refused_when_spoofing(sub):
    tokens = [secrets.token_hex(6), secrets.token_hex(6)]
    for secure, token in zip((True, False), tokens):
        result = nodemailer(sub, secure, ALICE, token)
        assert result["ok"] and result["accepted"] == [BOB], result
    inbox = mailbox_messages(sub, BOB, "INBOX")
    for token in tokens:
        assert len(with_token(inbox, token)) == 1
    spoof = secrets.token_hex(6)
    result = nodemailer(sub, True, BOB, spoof)
    assert not result["ok"] and result["responseCode"] == 550, result
    assert "5.7.1" in result["response"], result
    assert not with_token(mailbox_messages(sub, BOB, "INBOX"), spoof)
