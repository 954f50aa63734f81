"""The outbound path of the real binary, over real sockets, against real peers.

Three `postkeep serve` processes, each with its own data directory, ports and domain:
a.test (alice) and b.test (bob) send to each other; c.test (carol) sends to remote.test, whose
mail exchanger is a real Postfix (tests/postfix/postfix-mx.sh). An authoritative NSD
(tests/dns/authdns.py) publishes what `postkeep domain dns` prints for a.test, b.test and
c.test (MX, SPF, both DKIM keys, DMARC, with the host's A record added; DMARC p=reject
for b.test, p=quarantine for the others), and remote.test's MX. Every instance
resolves through NSD (`[dns]`), verifies inbound mail (`[inbound_auth]`), retries on a short
schedule, and reaches remote exchangers on the one port `[queue] remote_port` names: a's and
b's point at each other's MX listener, c's at Postfix. Both MX listeners are on 127.0.0.1, the
only address SPF (`mx`) allows; forgeries come from 127.0.0.2.

Checked: submission (587 STARTTLS and 465, AUTH) to the other postkeep arrives with
spf/dkim/dmarc=pass (RFC 8601 Authentication-Results), both ways; unauthenticated mail in
a.test's and b.test's name is filed into Junk (p=quarantine) or refused with 550 5.7.1
(p=reject); Postfix gets mail over STARTTLS with a DKIM signature that verifies; its 550
comes back as an RFC 3464 DSN; its 4xx is retried and `postkeep queue list` shows the wait;
after kill -9 of the sender, every queued message arrives exactly once.
"""

from __future__ import annotations

import calendar
import email
import email.policy
import email.utils
import re
import secrets
import smtplib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import dkim
import pytest

from conftest import (HOST, IO_TIMEOUT, PASSWORD, ServerPool, add_toml_value, auth_results,
                      free_ports, set_toml_value, smtps, starttls, wait_for, with_token)
from imap_helpers import mailbox_messages, wait_port

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "dns"))
sys.path.insert(0, str(TESTS / "postfix"))
from authdns import AuthoritativeDns, Zone  # noqa: E402
from postfixmx import PostfixMx  # noqa: E402

ALICE = "alice@a.test"
BOB = "bob@b.test"
CAROL = "carol@c.test"
# Mailboxes at Postfix: one for plain delivery, one behind a 4xx, one for the crash test.
RITA = "rita@remote.test"
ERIN = "erin@remote.test"
DAVE = "dave@remote.test"
NOBODY = "nobody@remote.test"
# The address forged mail comes from: on loopback, but not an MX host, so SPF fails.
FORGER_ADDRESS = "127.0.0.2"
# [queue]: the first retry after a second, then every two; the scheduler looks for due
# entries every few seconds, so a deferred message is tried again within seconds.
RETRY_BASE_SECS = 1
RETRY_MAX_SECS = 2
CRASH_MESSAGES = 6
# After kill -9 an entry caught mid-attempt waits out its lease (60 s) before it is retried.
AFTER_RESTART_TIMEOUT = 120.0


# --------------------------------------------------------------------------- the network


def host(domain: str) -> str:
    return f"mail.{domain}"


def published_zone(srv, dmarc_policy: str | None = None) -> Zone:
    """The records `postkeep domain dns` asks to publish for the server's domain, plus the A
    record of the MX host it names; `dmarc_policy` replaces the generated DMARC policy, so
    the tests do not depend on which one `domain dns` recommends."""
    domain = srv.domain
    records = srv.cli("domain", "dns", domain).stdout.decode()
    if dmarc_policy is not None:
        records, replaced = re.subn(r"(?m)^(_dmarc\.\S+\s.*\"v=DMARC1; )p=\w+",
                                    rf"\1p={dmarc_policy}", records)
        assert replaced == 1, f"no DMARC record with a policy in:\n{records}"
    return Zone(domain, f"{records}\n{host(domain)}. IN A 127.0.0.1")


def set_hostname(srv) -> None:
    """A host name under the server's domain, so the MX, SPF and HELO records that
    `postkeep domain dns` prints for it all live in the domain's zone."""
    srv.config_path.write_text(set_toml_value(srv.config_text(), None, "hostname",
                                              f'"{host(srv.domain)}"'))


def configure(srv, nameserver: str, remote_port: int) -> None:
    """NSD as the resolver, inbound authentication on, quick retries, and the port of the
    exchangers this instance delivers to."""
    text = srv.config_text()
    text = set_toml_value(text, "dns", "nameservers", f'["{nameserver}"]')
    text = set_toml_value(text, "dns", "timeout_secs", "2")
    text = set_toml_value(text, "inbound_auth", "enabled", "true")
    text = set_toml_value(text, "queue", "retry_base_secs", str(RETRY_BASE_SECS))
    text = set_toml_value(text, "queue", "retry_max_secs", str(RETRY_MAX_SECS))
    text = add_toml_value(text, "queue", "remote_port", str(remote_port))
    srv.config_path.write_text(text)


def start(srv) -> None:
    srv.start()
    for name in ("submission", "submissions", "imaps"):
        wait_port(srv.ports[name])


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    root = tmp_path_factory.mktemp("outbound")
    pool = ServerPool(root)
    a = pool.make(users=(ALICE,), domain="a.test", start=False)
    b = pool.make(users=(BOB,), domain="b.test", start=False)
    c = pool.make(users=(CAROL,), domain="c.test", start=False)
    for srv in (a, b, c):
        set_hostname(srv)  # before `domain dns`, which names it
    zones = [
        published_zone(a, dmarc_policy="quarantine"),
        published_zone(b, dmarc_policy="reject"),
        published_zone(c),
        Zone("remote.test", "@ IN MX 10 mx.remote.test.\nmx IN A 127.0.0.1"),
    ]
    dns = AuthoritativeDns(root / "nsd", zones, port=free_ports(1)[0])
    postfix = PostfixMx(free_ports(1)[0], ["remote.test"], users=[RITA, ERIN, DAVE])
    try:
        dns.start()
        postfix.start()
        configure(a, dns.address, remote_port=b.port)
        configure(b, dns.address, remote_port=a.port)
        configure(c, dns.address, remote_port=postfix.port)
        for srv in (a, b, c):
            start(srv)
        yield SimpleNamespace(a=a, b=b, c=c, dns=dns, postfix=postfix, pool=pool)
    finally:
        pool.cleanup()
        postfix.stop()
        dns.stop()


@pytest.fixture(autouse=True)
def report_logs(request, net):
    """A failing test's report ends with the logs of the three servers."""
    request.node.postkeep_servers = net.pool.servers


# --------------------------------------------------------------------------- mail


def message(token: str, sender: str, to: str) -> bytes:
    domain = sender.split("@")[1]
    headers = [f"From: <{sender}>", f"To: <{to}>", f"Subject: outbound {token}",
               f"Message-ID: <{token}@{domain}>", f"Date: {email.utils.formatdate()}"]
    return ("\r\n".join(headers) + "\r\n\r\nHello from " + sender + ".\r\n").encode()


def submit(client: smtplib.SMTP, sender: str, rcpts: list[str], raw: bytes) -> None:
    """AUTH as `sender`, then one transaction; every recipient must be accepted."""
    with client as s:
        s.login(sender, PASSWORD)
        refused = s.sendmail(sender, rcpts, raw)
    assert not refused, f"recipients refused: {refused}"


def forge(srv, mail_from: str, rcpt: str, raw: bytes) -> None:
    """Sends `raw` straight to `srv`'s MX listener from FORGER_ADDRESS, as a spoofer would."""
    with smtplib.SMTP(HOST, srv.port, local_hostname="forger.test", timeout=IO_TIMEOUT,
                      source_address=(FORGER_ADDRESS, 0)) as s:
        refused = s.sendmail(mail_from, [rcpt], raw)
    assert not refused, f"recipient refused: {refused}"


def arrived(srv, user: str, token: str) -> bytes:
    """Waits for the one message carrying `token` in `user`'s INBOX (read over IMAP)."""
    found = wait_for(lambda: with_token(mailbox_messages(srv, user, "INBOX"), token),
                     f"{token} in {user}'s INBOX", interval=0.3)
    assert len(found) == 1, f"{len(found)} copies of {token} in {user}'s INBOX"
    return found[0]


def our_auth_results(raw: bytes, authserv_id: str) -> list[tuple[str, str]]:
    """The results in the one Authentication-Results field that `authserv_id` wrote."""
    parsed = email.message_from_bytes(raw, policy=email.policy.compat32)
    fields = [re.sub(r"\r?\n[ \t]+", " ", str(v)).strip()
              for v in parsed.get_all("Authentication-Results") or []]
    ours = [f for f in fields if f.split(";")[0].strip().lower() == authserv_id]
    assert len(ours) == 1, f"expected one Authentication-Results by {authserv_id}: {fields}"
    return auth_results(ours[0])


def assert_authenticated(raw: bytes, receiver: str, sender: str, policy: str) -> None:
    """spf, every dkim signature and dmarc pass for `sender`'s domain."""
    domain = sender.split("@")[1]
    results = our_auth_results(raw, host(receiver))
    by_method: dict[str, list[str]] = {}
    for method, value in results:
        by_method.setdefault(method, []).append(value)
    assert by_method.get("spf") == [f"pass smtp.mailfrom={sender}"], results
    dkim_results = by_method.get("dkim", [])
    # postkeep signs twice (RFC 8463): ed25519 and RSA.
    assert len(dkim_results) == 2, results
    assert all(r.startswith(f"pass header.d={domain} ") for r in dkim_results), results
    assert by_method.get("dmarc") == [f"pass (p={policy}) header.from={domain}"], results


# --------------------------------------------------------------------------- queue list


@dataclass
class Queued:
    id: str
    sender: str
    attempts: int
    next_attempt: int  # unix time
    in_delivery: bool
    recipients: dict[str, tuple[str, str]] = field(default_factory=dict)  # status, reply


QUEUED_RE = re.compile(r"^(\S+)  \d+ bytes  from (\S+)  attempts (\d+)  "
                       r"next (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC( \(being delivered\))?$")
RECIPIENT_RE = re.compile(r"^    (\w+)  (\S+)  (.*)$")


def queue_list(srv) -> list[Queued]:
    """`postkeep queue list`, parsed (it runs beside the server, on the same store)."""
    out = srv.cli("queue", "list").stdout.decode()
    items: list[Queued] = []
    for line in out.splitlines():
        if line == "queue is empty":
            continue
        if m := QUEUED_RE.match(line):
            when = calendar.timegm(time.strptime(m.group(4), "%Y-%m-%d %H:%M:%S"))
            items.append(Queued(m.group(1), m.group(2), int(m.group(3)), when,
                                m.group(5) is not None))
        elif (m := RECIPIENT_RE.match(line)) and items:
            items[-1].recipients[m.group(2)] = (m.group(1), m.group(3))
        else:
            raise AssertionError(f"unexpected line in `queue list`: {line!r}\n{out}")
    return items


def queued_for(srv, rcpt: str) -> list[Queued]:
    return [item for item in queue_list(srv) if rcpt in item.recipients]


# --------------------------------------------------------------------------- Postfix


def message_ids(messages: list[bytes]) -> list[str]:
    return sorted(email.message_from_bytes(m)["Message-ID"] for m in messages)


def dkim_tag(signature: str, name: str) -> str | None:
    """The value of tag `name` in a DKIM-Signature field value (RFC 6376 §3.2)."""
    m = re.search(rf"(?:^|;)\s*{name}\s*=\s*([^;]*)", signature)
    return re.sub(r"\s+", "", m.group(1)) if m else None


def crlf(raw: bytes) -> bytes:
    """A Maildir file (LF line ends) as it was on the wire."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", raw)


# --------------------------------------------------------------------------- tests


def test_submitted_mail_reaches_the_other_domain_with_spf_dkim_and_dmarc_passing(net):
    # a.test -> b.test, submitted on 587 after STARTTLS.
    token = secrets.token_hex(8)
    submit(starttls(net.a), ALICE, [BOB], message(token, ALICE, BOB))
    assert_authenticated(arrived(net.b, BOB, token), "b.test", ALICE, "quarantine")

    # b.test -> a.test, submitted on 465 (implicit TLS).
    token = secrets.token_hex(8)
    submit(smtps(net.b), BOB, [ALICE], message(token, BOB, ALICE))
    assert_authenticated(arrived(net.a, ALICE, token), "a.test", BOB, "reject")


def test_forged_mail_from_a_p_reject_domain_is_refused_with_550_5_7_1(net):
    token = secrets.token_hex(8)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        forge(net.a, BOB, ALICE, message(token, BOB, ALICE))
    code, text = refused.value.smtp_code, refused.value.smtp_error.decode(errors="replace")
    assert code == 550 and text.startswith("5.7.1 "), f"expected 550 5.7.1, got {code} {text}"
    assert "b.test" in text and "DMARC" in text, text
    for mailbox in ("INBOX", "Junk"):
        assert not with_token(mailbox_messages(net.a, ALICE, mailbox), token), (
            f"the refused message was filed into {mailbox}")


def test_forged_mail_from_a_p_quarantine_domain_is_filed_into_junk(net):
    token = secrets.token_hex(8)
    forge(net.b, ALICE, BOB, message(token, ALICE, BOB))
    # Filed before the 250: no waiting.
    junk = with_token(mailbox_messages(net.b, BOB, "Junk"), token)
    assert len(junk) == 1, f"{len(junk)} copies in Junk"
    results = dict(our_auth_results(junk[0], host("b.test")))
    assert results["spf"] == f"fail smtp.mailfrom={ALICE}", results
    assert results["dkim"] == "none", results
    assert results["dmarc"] == "fail (p=quarantine) header.from=a.test", results
    assert not with_token(mailbox_messages(net.b, BOB, "INBOX"), token), (
        "the DMARC-failing p=quarantine message is in INBOX")


def test_mail_to_a_postfix_mx_goes_over_starttls_with_a_verifying_dkim_signature(net):
    token = secrets.token_hex(8)
    submit(smtps(net.c), CAROL, [RITA], message(token, CAROL, RITA))
    delivered = wait_for(lambda: with_token(net.postfix.maildir(RITA), token),
                         f"{token} in Postfix's Maildir of {RITA}")
    assert len(delivered) == 1, delivered
    raw = crlf(delivered[0])
    assert b"(using TLSv1." in raw, f"Postfix's Received: shows no TLS:\n{raw[:1500]!r}"
    assert "TLS connection established from" in net.postfix.log(), net.postfix.log()[-3000:]

    signatures = email.message_from_bytes(raw).get_all("DKIM-Signature") or []
    algorithms = [dkim_tag(s, "a") for s in signatures]
    assert sorted(algorithms) == ["ed25519-sha256", "rsa-sha256"], signatures
    assert all(dkim_tag(s, "d") == "c.test" for s in signatures), signatures
    # An independent verifier (dkimpy) with the key NSD publishes; without PyNaCl it
    # checks RSA only.
    rsa = algorithms.index("rsa-sha256")
    verified = dkim.DKIM(raw).verify(
        idx=rsa, dnsfunc=lambda name, timeout=5: net.dns.txt(name.decode()))
    assert verified, f"the RSA signature does not verify: {signatures[rsa]}"


def test_a_remote_550_comes_back_to_the_sender_as_an_rfc3464_dsn(net):
    token = secrets.token_hex(8)
    submit(starttls(net.c), CAROL, [RITA, NOBODY], message(token, CAROL, RITA))
    dsn = email.message_from_bytes(arrived(net.c, CAROL, token), policy=email.policy.default)
    assert dsn.get_content_type() == "multipart/report", dsn.get_content_type()
    assert dsn.get_param("report-type") == "delivery-status"
    assert "MAILER-DAEMON@mail.c.test" in dsn["From"], dsn["From"]
    parts = {part.get_content_type(): part for part in dsn.iter_parts()}
    status = parts["message/delivery-status"].get_payload()
    assert status[0]["Reporting-MTA"] == "dns; mail.c.test", status[0]
    recipients = {block["Final-Recipient"]: block for block in status[1:]}
    assert list(recipients) == [f"rfc822; {NOBODY}"], "only the refused recipient is reported"
    failed = recipients[f"rfc822; {NOBODY}"]
    assert (failed["Action"], failed["Status"]) == ("failed", "5.1.1"), failed
    assert failed["Remote-MTA"] == "dns; mx.remote.test", failed
    assert failed["Diagnostic-Code"].startswith("smtp; 550 5.1.1"), failed
    returned = parts["text/rfc822-headers"].get_content()
    assert f"Subject: outbound {token}" in returned, returned
    wait_for(lambda: with_token(net.postfix.maildir(RITA), token),
             f"{token} at {RITA}, the recipient Postfix accepted")


def test_a_remote_4xx_is_retried_on_the_configured_backoff_until_accepted(net):
    net.postfix.set_access([f"{ERIN} 450 4.2.1 Mailbox busy"])
    token = secrets.token_hex(8)
    submit(smtps(net.c), CAROL, [ERIN], message(token, CAROL, ERIN))

    def deferred_twice():
        items = queued_for(net.c, ERIN)
        assert len(items) <= 1, items
        if not items or items[0].attempts == 0:
            return None
        item = items[0]
        status, reply = item.recipients[ERIN]
        assert status == "pending" and reply.startswith("450 4.2.1"), item
        # The configured schedule, not the default 5 minutes (a second of rounding).
        assert item.next_attempt <= time.time() + RETRY_MAX_SECS + 1, item
        return item if item.attempts >= 2 else None

    item = wait_for(deferred_twice, "two deferred attempts listed by `postkeep queue list`")
    assert item.sender == CAROL, item
    rejects = net.postfix.log().count(f"450 4.2.1 <{ERIN}>")
    assert rejects >= 2, f"Postfix saw {rejects} attempts"
    assert not net.postfix.maildir(ERIN)

    net.postfix.set_access([])
    delivered = wait_for(lambda: with_token(net.postfix.maildir(ERIN), token),
                         f"{token} at {ERIN} once the 4xx is gone")
    wait_for(lambda: not queued_for(net.c, ERIN), "the delivered entry to leave the queue")
    assert len(with_token(net.postfix.maildir(ERIN), token)) == len(delivered) == 1
    assert not with_token(mailbox_messages(net.c, CAROL, "INBOX"), token), (
        "a delivered message was reported to its sender")


def test_messages_queued_at_a_kill_9_are_each_delivered_exactly_once_after_restart(net):
    net.postfix.set_access([f"{DAVE} 450 4.2.1 Try again later"])
    tokens = [secrets.token_hex(8) for _ in range(CRASH_MESSAGES)]
    with smtps(net.c) as s:
        s.login(CAROL, PASSWORD)
        for token in tokens:
            assert not s.sendmail(CAROL, [DAVE], message(token, CAROL, DAVE))

    def all_deferred() -> bool:
        # Refused once each and none in an attempt: the kill finds them all waiting.
        items = queued_for(net.c, DAVE)
        return len(items) == CRASH_MESSAGES and all(
            i.attempts >= 1 and not i.in_delivery for i in items)

    wait_for(all_deferred, f"{CRASH_MESSAGES} deferred entries in the queue")
    net.c.kill9()
    net.postfix.set_access([])
    assert not net.postfix.maildir(DAVE), "delivered before the crash"
    net.c.start()

    expected = sorted(f"<{token}@c.test>" for token in tokens)
    wait_for(lambda: len(net.postfix.maildir(DAVE)) >= CRASH_MESSAGES,
             f"{CRASH_MESSAGES} messages at {DAVE} after the restart",
             timeout=AFTER_RESTART_TIMEOUT)
    # Every entry done and everything Postfix accepted filed: a second copy would be there.
    wait_for(lambda: not queued_for(net.c, DAVE), "the queue to empty")
    wait_for(net.postfix.queue_is_empty, "Postfix to file what it accepted")
    assert message_ids(net.postfix.maildir(DAVE)) == expected
