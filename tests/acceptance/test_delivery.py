"""Inbound delivery over SMTP: greeting, EHLO, STARTTLS, recipients, exact storage."""

import re
import secrets
import shutil
import smtplib
import subprocess

from conftest import (DOMAIN, SENDER, assert_reply, make_message, split_received, with_token)

ALICE, BOB, CAROL = (f"{u}@{DOMAIN}" for u in ("alice", "bob", "carol"))


def test_greeting_and_ehlo_advertise_the_promised_extensions(server):
    raw = server.raw()
    try:
        g = raw.greeting
        assert g.code == 220 and re.match(r"\S+ ESMTP postkeep\b", g.lines[0]), (
            f"greeting should be `220 <hostname> ESMTP postkeep`, got: {g}")
        r = raw.ehlo()
        keywords = {line.split()[0].upper() for line in r.lines[1:] if line.strip()}
        for ext in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES",
                    "CHUNKING", "STARTTLS"):
            assert ext in keywords, f"EHLO does not advertise {ext}: {r.lines}"
        assert_reply(raw.cmd("QUIT"), 221, what="QUIT")
    finally:
        raw.close()


def test_starttls_delivery_to_three_recipients_stores_one_exact_copy_each(server):
    token = secrets.token_hex(8)
    # Lines starting with "." exercise dot-stuffing; 8-bit UTF-8 exercises 8BITMIME.
    body = ("First line.\r\n.leading dot\r\n..two dots\r\n.\r\nnot the end\r\n"
            "Gr\u00fc\u00dfe \u2713\r\n")
    msg = make_message(token, "three recipients", body, to=f"{ALICE}, {BOB}, {CAROL}",
                       extra_headers=["Content-Type: text/plain; charset=utf-8",
                                      "Content-Transfer-Encoding: 8bit"])
    with server.smtp() as s:
        code, _ = s.ehlo()
        assert code == 250
        s.starttls(context=server.tls_context(verify=True))
        code, _ = s.ehlo()
        assert code == 250
        assert not s.has_extn("starttls"), "STARTTLS must not be advertised inside TLS (RFC 3207)"
        refused = s.sendmail(SENDER, [ALICE, BOB, CAROL], msg, mail_options=["BODY=8BITMIME"])
        assert refused == {}, f"recipients refused: {refused}"

    for rcpt in (ALICE, BOB, CAROL):
        found = with_token(server.export(rcpt), token)
        assert len(found) == 1, f"{rcpt} should hold the message exactly once, holds {len(found)}"
        split_received(found[0], msg)


def swaks(server, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("swaks")
    assert exe, "swaks is not installed (scripts/test installs it with apt-get)"
    cmd = [exe, "--server", f"127.0.0.1:{server.port}", "--from", SENDER,
           "--helo", "swaks.test", "--timeout", "60", *args]
    proc = subprocess.run(cmd, capture_output=True, timeout=180, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, (
        f"swaks failed ({proc.returncode}): {' '.join(cmd)}\n"
        f"{proc.stdout.decode(errors='replace')[-4000:]}\n{proc.stderr.decode(errors='replace')}")
    return proc


def test_swaks_starttls_delivery(server):
    token = secrets.token_hex(8)
    swaks(server, "--to", f"{ALICE},{BOB}", "--tls",
          "--header", f"Subject: swaks {token}", "--body", f"swaks body {token}")
    for rcpt in (ALICE, BOB):
        found = with_token(server.export(rcpt), token)
        assert len(found) == 1, f"{rcpt}: expected 1 swaks message, found {len(found)}"
        assert found[0].startswith(b"Received:"), found[0][:200]
        assert f"swaks body {token}".encode() in found[0]
    assert with_token(server.export(CAROL), token) == []


def test_swaks_pipelined_delivery(server):
    token = secrets.token_hex(8)
    proc = swaks(server, "--to", f"{ALICE},{CAROL}", "--tls", "--pipeline",
                 "--header", f"Subject: pipelined {token}", "--body", f"pipelined {token}")
    assert b"PIPELINING" in proc.stdout, "swaks saw no PIPELINING in EHLO"
    for rcpt in (ALICE, CAROL):
        found = with_token(server.export(rcpt), token)
        assert len(found) == 1, f"{rcpt}: expected 1 pipelined message, found {len(found)}"


def test_pipelined_envelope_over_raw_socket(server):
    """RFC 2920: the whole envelope in one write; replies come back in order."""
    token = secrets.token_hex(8)
    msg = make_message(token, "raw pipelining")
    raw = server.raw()
    try:
        raw.ehlo()
        raw.send(f"MAIL FROM:<{SENDER}>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\n"
                 "DATA\r\n".encode())
        for what, code in (("MAIL", 250), ("RCPT alice", 250), ("RCPT bob", 250),
                           ("DATA", 354)):
            assert_reply(raw.reply(), code, what=what)
        raw.send(msg + b".\r\nQUIT\r\n")
        assert_reply(raw.reply(), 250, what="end of data")
        assert_reply(raw.reply(), 221, what="QUIT")
    finally:
        raw.close()
    for rcpt in (ALICE, BOB):
        found = with_token(server.export(rcpt), token)
        assert len(found) == 1, f"{rcpt}: expected 1 message, found {len(found)}"
        split_received(found[0], msg)


def test_unknown_local_recipient_is_refused_with_5_1_1(server):
    with server.smtp() as s:
        s.ehlo()
        code, _ = s.mail(SENDER)
        assert code == 250
        code, text = s.rcpt(f"nobody@{DOMAIN}")
        assert code == 550 and text.startswith(b"5.1.1"), f"got {code} {text!r}"


def test_foreign_recipient_is_refused_no_open_relay(server):
    with server.smtp() as s:
        s.ehlo()
        s.mail(SENDER)
        code, text = s.rcpt("victim@foreign.example")
        assert code == 550 and text.startswith(b"5.7.1"), f"relay attempt got {code} {text!r}"


def test_mixed_recipients_deliver_only_to_the_good_one(server):
    token = secrets.token_hex(8)
    msg = make_message(token, "mixed")
    with server.smtp() as s:
        refused = s.sendmail(SENDER, [ALICE, f"ghost@{DOMAIN}", "victim@foreign.example"], msg)
    assert set(refused) == {f"ghost@{DOMAIN}", "victim@foreign.example"}, refused
    assert refused[f"ghost@{DOMAIN}"][0] == 550
    assert refused[f"ghost@{DOMAIN}"][1].startswith(b"5.1.1"), refused
    assert refused["victim@foreign.example"][0] == 550
    assert refused["victim@foreign.example"][1].startswith(b"5.7.1"), refused

    found = with_token(server.export(ALICE), token)
    assert len(found) == 1, f"alice should hold the message once, holds {len(found)}"
    split_received(found[0], msg)
    for other in (BOB, CAROL):
        assert with_token(server.export(other), token) == [], f"{other} got a copy"


def test_all_recipients_refused_means_data_is_refused(server):
    with server.smtp() as s:
        try:
            s.sendmail(SENDER, [f"ghost@{DOMAIN}"], make_message("x", "none"))
        except smtplib.SMTPRecipientsRefused as e:
            assert e.recipients[f"ghost@{DOMAIN}"][0] == 550
        else:
            raise AssertionError("sendmail to only unknown recipients did not fail")
        # RFC 5321 §3.3: DATA without any accepted recipient is a bad sequence.
        code, _ = s.docmd("DATA")
        assert code in (503, 554), f"DATA without recipients got {code}"
