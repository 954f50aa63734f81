"""POP3 (RFC 1939, RFC 2449 CAPA, RFC 5034 AUTH PLAIN) with Python's poplib and curl against the
real binary, over implicit TLS (`pop3s`) and STLS (RFC 2595 §4) on the plain `pop3` port:
retrieval equals the stored wire form, DELE only takes effect at QUIT, the maildrop lock, UIDL
stability, the TLS 1.3-only listener, no login before STLS, no plaintext command injection
behind STLS, and the refusal of connections over the cap."""

import base64
import poplib
import re
import socket
import ssl
import time

import pytest

from conftest import DOMAIN, HOST, PASSWORD, make_message, set_toml_value, wait_for, with_token
from imap_helpers import enable_listeners
from test_imap_clients import curl

ALICE = f"alice@{DOMAIN}"
LOGIN_RETRY = 15.0
STLS_REQUIRED = rb"^-ERR \[AUTH\] .*STLS"


def start_pop_server(make_server, pop3: dict | None = None):
    """A running server with `pop3s` and `pop3` on (the dev config has both; older configs may
    not); `pop3` overrides [pop3] keys."""
    srv = make_server(start=False)
    enable_listeners(srv, "pop3s", "pop3")
    text = srv.config_text()
    for key, value in (pop3 or {}).items():
        text = set_toml_value(text, "pop3", key, str(value))
    srv.config_path.write_text(text)
    srv.start()
    return srv


@pytest.fixture
def pop_server(make_server):
    return start_pop_server(make_server)


def until_listening(open_connection):
    """serve binds the POP3 listeners just after the SMTP one the harness waits for."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return open_connection()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def connect(srv, ctx: ssl.SSLContext | None = None) -> poplib.POP3_SSL:
    ctx = ctx or srv.tls_context()
    return until_listening(lambda: poplib.POP3_SSL(HOST, srv.ports["pop3s"], context=ctx,
                                                   timeout=60))


def connect_plain(srv) -> poplib.POP3:
    return until_listening(lambda: poplib.POP3(HOST, srv.ports["pop3"], timeout=60))


def connect_stls(srv) -> poplib.POP3:
    """The plain port, upgraded with STLS (poplib checks that CAPA offers it)."""
    p = connect_plain(srv)
    assert p.stls(srv.tls_context()).startswith(b"+OK")
    return p


def login(srv, user: str = ALICE, password: str = PASSWORD, via=connect) -> poplib.POP3:
    """USER/PASS on a connection from `via`; retries while a just-dropped session still holds
    the maildrop lock."""
    deadline = time.monotonic() + LOGIN_RETRY
    while True:
        p = via(srv)
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
    assert "STLS" not in caps, caps  # already TLS
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


# ----------------------------------------------------------------------------- STLS (RFC 2595)


def test_stls_then_user_pass_retr_serves_the_stored_message(pop_server):
    body = b"over STLS\r\n.a dot line\r\nend\r\n"
    pop_server.send([ALICE], make_message("pop-stls", body=body))
    original = stored(pop_server, "pop-stls")
    plain = connect_plain(pop_server)
    before = plain.capa()
    # Only STLS is offered for logging in (as Dovecot with disable_plaintext_auth).
    assert "STLS" in before and "USER" not in before and "SASL" not in before, before
    assert plain.stls(pop_server.tls_context()).startswith(b"+OK")
    after = plain.capa()
    assert "STLS" not in after and "USER" in after and after.get("SASL") == ["PLAIN"], after
    with pytest.raises(poplib.error_proto, match="already active"):
        plain._shortcmd("STLS")
    plain.quit()

    p = login(pop_server, via=connect_stls)
    try:
        assert p.stat() == (1, len(original))
        _, lines, _ = p.retr(1)  # poplib removes the dot-stuffing
        assert b"\r\n".join(lines) + b"\r\n" == original
    finally:
        p.quit()


def test_plain_pop3_refuses_every_login_before_stls(pop_server):
    p = connect_plain(pop_server)
    token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
    for command in (f"USER {ALICE}", f"PASS {PASSWORD}", f"AUTH PLAIN {token}", "AUTH PLAIN",
                    f"APOP {ALICE} c4c9334bac560ecc979e58001b3e22fb"):
        with pytest.raises(poplib.error_proto) as refused:
            p._shortcmd(command)
        assert re.match(STLS_REQUIRED, refused.value.args[0]), (command, refused.value.args)
    # The refusals are policy, not a broken session: STLS and a login still work after them.
    assert p.stls(pop_server.tls_context()).startswith(b"+OK")
    p.user(ALICE)
    assert p.pass_(PASSWORD).startswith(b"+OK")
    p.quit()


def read_line(sock: socket.socket) -> bytes:
    """One CRLF line, read byte by byte so nothing after it is consumed."""
    line = b""
    while not line.endswith(b"\r\n"):
        byte = sock.recv(1)
        assert byte, f"connection closed after {line!r}"
        line += byte
    return line


def read_to_eof(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def test_plaintext_pipelined_after_stls_is_discarded_not_run_over_tls(pop_server):
    """CVE-2011-0411: a man in the middle appends a command to the client's STLS in the same
    plaintext segment; the server must not answer it once TLS is up."""
    sock = until_listening(
        lambda: socket.create_connection((HOST, pop_server.ports["pop3"]), timeout=60))
    try:
        assert read_line(sock).startswith(b"+OK")
        sock.sendall(b"STLS\r\nCAPA\r\n")  # one write: one read on the server
        assert read_line(sock) == b"+OK Begin TLS negotiation\r\n"
        tls = pop_server.tls_context().wrap_socket(sock, server_hostname="localhost")
        tls.sendall(b"QUIT\r\n")
        # An executed CAPA would put its listing over TLS before the reply to QUIT.
        assert read_to_eof(tls) == b"+OK Bye\r\n"
    finally:
        sock.close()


def test_curl_pop3_with_stls_lists_and_retrieves(pop_server):
    pop_server.send([ALICE], make_message("curl-stls"))
    original = stored(pop_server, "curl-stls")
    until_listening(lambda: socket.create_connection((HOST, pop_server.ports["pop3"])).close())
    base = f"pop3://localhost:{pop_server.ports['pop3']}"
    listing = curl(pop_server, f"{base}/", "--ssl-reqd")
    assert re.search(rb"^> STLS\r?$", listing.stderr, re.M), listing.stderr
    assert listing.stdout.splitlines() == [f"1 {len(original)}".encode()], listing.stdout
    retr = curl(pop_server, f"{base}/1", "--ssl-reqd")
    assert retr.stdout == original


# ----------------------------------------------------------------------------- connection caps


def first_bytes(srv, listener: str) -> tuple[socket.socket, bytes]:
    """A TCP connection to `listener` and what the server sent first (b"" if it closed)."""
    sock = until_listening(lambda: socket.create_connection((HOST, srv.ports[listener]),
                                                            timeout=30))
    try:
        return sock, sock.recv(1024)
    except ConnectionResetError:
        return sock, b""


def greeted_plain_pop3(srv) -> socket.socket | None:
    """A plaintext connection the server admitted (greeted with +OK), or None if refused."""
    sock, first = first_bytes(srv, "pop3")
    if first.startswith(b"+OK"):
        return sock
    sock.close()
    return None


def test_connection_over_the_cap_is_told_on_pop3_and_closed_silently_on_pop3s(make_server):
    """[pop3] max_connections_per_ip = 1, shared by both listeners: with one plain connection
    open, another on pop3 is told why (RFC 3206 SYS/TEMP) and one on pop3s is closed before
    any TLS, which a refused connection is not worth."""
    srv = start_pop_server(make_server, pop3={"max_connections_per_ip": 1})
    held = wait_for(lambda: greeted_plain_pop3(srv), "a first POP3 connection admitted")
    try:
        sock, first = first_bytes(srv, "pop3")
        refusal = first + read_to_eof(sock)
        sock.close()
        assert refusal == b"-ERR [SYS/TEMP] Too many connections\r\n", refusal
        sock, first = first_bytes(srv, "pop3s")
        sock.close()
        assert first == b"", f"pop3s over the cap sent {first!r}"
        # Closing the held one frees its slot: the refusal was the cap, not a broken listener.
        held.close()
        held = wait_for(lambda: greeted_plain_pop3(srv), "a slot freed by a closed connection")
    finally:
        held.close()
