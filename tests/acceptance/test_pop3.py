"""POP3 over implicit TLS (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH PLAIN) with Python's poplib
against the real binary: retrieval equals the stored wire form, DELE only takes effect at QUIT,
the maildrop lock, UIDL stability and the TLS 1.3-only listener."""

import base64
import poplib
import ssl
import time

import pytest

from conftest import DOMAIN, HOST, PASSWORD, make_message, with_token
from imap_helpers import enable_listeners

ALICE = f"alice@{DOMAIN}"
LOGIN_RETRY = 15.0


def enable_pop3s(srv) -> None:
    """Makes sure `pop3s` is on (the dev config has it; older configs may not)."""
    enable_listeners(srv, "pop3s")


@pytest.fixture
def pop_server(make_server):
    srv = make_server(start=False)
    enable_pop3s(srv)
    srv.start()
    return srv


def connect(srv, ctx: ssl.SSLContext | None = None) -> poplib.POP3_SSL:
    ctx = ctx or srv.tls_context()
    deadline = time.monotonic() + 30
    while True:
        try:
            return poplib.POP3_SSL(HOST, srv.ports["pop3s"], context=ctx, timeout=60)
        except ConnectionRefusedError:
            # serve binds pop3s just after the SMTP listener the harness waits for.
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def login(srv, user: str = ALICE, password: str = PASSWORD) -> poplib.POP3_SSL:
    """USER/PASS; retries while a just-dropped session still holds the maildrop lock."""
    deadline = time.monotonic() + LOGIN_RETRY
    while True:
        p = connect(srv)
        p.user(user)
        try:
            p.pass_(password)
            return p
        except poplib.error_proto as e:
            p.close()
            if b"[IN-USE]" not in e.args[0] or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def stored(srv, token: str) -> bytes:
    found = with_token(srv.export(ALICE), token)
    assert len(found) == 1, f"expected one stored message with {token}, got {len(found)}"
    return found[0]


def test_retr_top_stat_list_uidl_serve_the_stored_message(pop_server):
    body = b"first line\r\n.starts with a dot\r\n..two dots\r\nlast\r\n"
    pop_server.send([ALICE], make_message("pop-retr", body=body))
    original = stored(pop_server, "pop-retr")
    p = login(pop_server)
    try:
        assert p.stat() == (1, len(original))
        _, listing, _ = p.list()
        assert listing == [f"1 {len(original)}".encode()]
        assert p.list(1).split()[1:] == [b"1", str(len(original)).encode()]
        _, uidls, _ = p.uidl()
        assert len(uidls) == 1 and len(uidls[0].split()[1]) == 16

        _, lines, _ = p.retr(1)  # poplib removes the dot-stuffing
        assert b"\r\n".join(lines) + b"\r\n" == original

        header, _, rest = original.partition(b"\r\n\r\n")
        _, top0, _ = p.top(1, 0)
        assert b"\r\n".join(top0) == header + b"\r\n"
        _, top2, _ = p.top(1, 2)
        assert top2[-2:] == [b"first line", b".starts with a dot"]
        assert len(top2) == len(top0) + 2
    finally:
        p.quit()


def test_dele_quit_removes_and_dropped_session_keeps(pop_server):
    for token in ("pop-keep", "pop-gone"):
        pop_server.send([ALICE], make_message(token))
    # DELE, then drop the connection without QUIT: nothing may be removed (RFC 1939 §6).
    p = login(pop_server)
    assert p.stat()[0] == 2
    p.dele(1)
    p.dele(2)
    p.close()  # closes the socket without QUIT
    assert len(pop_server.export(ALICE)) == 2

    p = login(pop_server)
    _, lines, _ = p.retr(2)
    assert b"pop-gone" in b"\r\n".join(lines)
    p.dele(2)
    assert p.stat()[0] == 1
    assert p.quit().startswith(b"+OK")
    remaining = pop_server.export(ALICE)
    assert len(remaining) == 1 and b"pop-keep" in remaining[0]


def test_rset_undoes_dele(pop_server):
    pop_server.send([ALICE], make_message("pop-rset"))
    p = login(pop_server)
    p.dele(1)
    p.rset()
    p.quit()
    assert len(with_token(pop_server.export(ALICE), "pop-rset")) == 1


def test_second_concurrent_login_gets_in_use(pop_server):
    first = login(pop_server)
    try:
        second = connect(pop_server)
        second.user(ALICE)
        with pytest.raises(poplib.error_proto, match=r"\[IN-USE\]"):
            second.pass_(PASSWORD)
        second.close()
    finally:
        first.quit()
    login(pop_server).quit()  # released at QUIT


def test_wrong_password_and_unknown_user_fail_alike(pop_server):
    replies = []
    for user, password in ((ALICE, "wrong"), (f"nobody@{DOMAIN}", PASSWORD)):
        p = connect(pop_server)
        p.user(user)
        with pytest.raises(poplib.error_proto) as err:
            p.pass_(password)
        replies.append(err.value.args[0])
        p.close()
    assert replies[0] == replies[1] == b"-ERR [AUTH] Authentication failed"


def test_uidl_unique_and_stable_across_restart(pop_server):
    for i in range(3):
        pop_server.send([ALICE], make_message(f"pop-uidl-{i}"))
    p = login(pop_server)
    before = p.uidl()[1]
    p.quit()
    assert len({line.split()[1] for line in before}) == 3
    pop_server.stop()
    pop_server.start()
    p = login(pop_server)
    assert p.uidl()[1] == before
    p.quit()


def test_auth_plain_with_initial_response_and_continuation(pop_server):
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    p = connect(pop_server)
    assert p._shortcmd(f"AUTH PLAIN {token}").startswith(b"+OK")
    p.quit()

    p = connect(pop_server)
    p._putcmd("AUTH PLAIN")
    assert p._getline()[0] == b"+ "
    assert p._shortcmd(token).startswith(b"+OK")
    assert p.stat() == (0, 0)
    p.quit()

    p = connect(pop_server)
    bad = base64.b64encode(f"\0{ALICE}\0nope".encode()).decode()
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        p._shortcmd(f"AUTH PLAIN {bad}")
    p.close()


def test_capa_advertises_rfc_2449_capabilities(pop_server):
    p = connect(pop_server)
    caps = p.capa()
    for cap in ("TOP", "UIDL", "USER", "SASL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"):
        assert cap in caps, caps
    assert caps["SASL"] == ["PLAIN"]
    p.quit()


def test_pop3s_refuses_tls_1_2(pop_server):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        connect(pop_server, ctx)


def test_overlong_command_gets_err_not_a_crash(pop_server):
    p = connect(pop_server)
    with pytest.raises(poplib.error_proto):
        p._shortcmd("NOOP " + "x" * 400)
    assert p.capa()  # still serving
    p.quit()
