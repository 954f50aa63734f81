"""Shared by the IMAP acceptance tests: a server with the `imaps` and `imap` listeners on, and
connected, logged-in imaplib clients."""

from __future__ import annotations

import imaplib
import socket
import ssl
import time

from conftest import DOMAIN, HOST, PASSWORD, SECTION_RE, set_toml_value

ALICE = f"alice@{DOMAIN}"
BOB = f"bob@{DOMAIN}"


def enable_listeners(srv, *names: str) -> None:
    """Makes sure the listeners are on: adds `name = "127.0.0.1:0"` lines under [listen] for
    those the config lacks, and gives every listener a free port."""
    missing = [name for name in names if name not in srv.ports]
    lines = srv.config_text().splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = SECTION_RE.match(line)
        if m and m.group(1).strip() == "listen":
            for name in missing:
                lines.insert(i + 1, f'{name} = "{HOST}:0"\n')
            break
    else:
        raise AssertionError("no [listen] section in postkeep.toml")
    srv.config_path.write_text("".join(lines))
    srv.assign_ports()
    for name in names:
        assert name in srv.ports, srv.config_text()


def start_imap_server(make_server, imap: dict | None = None, **kwargs):
    """A running server with both IMAP listeners on; `imap` overrides [imap] keys."""
    srv = make_server(start=False, **kwargs)
    enable_listeners(srv, "imaps", "imap")
    text = srv.config_text()
    for key, value in (imap or {}).items():
        text = set_toml_value(text, "imap", key, str(value))
    srv.config_path.write_text(text)
    srv.start()
    wait_port(srv.ports["imaps"])
    return srv


def wait_port(port: int, timeout: float = 30.0) -> None:
    """serve binds the IMAP listeners just after the SMTP one the harness waits for."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def connect(srv, ctx: ssl.SSLContext | None = None) -> imaplib.IMAP4_SSL:
    return imaplib.IMAP4_SSL(HOST, srv.ports["imaps"], ssl_context=ctx or srv.tls_context(), timeout=60)


def login(srv, user: str = ALICE, password: str = PASSWORD) -> imaplib.IMAP4_SSL:
    client = connect(srv)
    typ, _ = client.login(user, password)
    assert typ == "OK"
    return client


def check(result):
    """Asserts an imaplib (typ, data) result is OK and returns data."""
    typ, data = result
    assert typ == "OK", data
    return data


def untagged(client: imaplib.IMAP4, name: str) -> list:
    """Pops the untagged responses of one kind that imaplib collected."""
    return client.response(name)[1]


def mailbox_messages(srv, user: str, mailbox: str) -> list[bytes]:
    """Every message of a mailbox, read over IMAP (imaps)."""
    client = login(srv, user)
    try:
        check(client.select(f'"{mailbox}"', readonly=True))
        data = check(client.uid("FETCH", "1:*", "(BODY.PEEK[])"))
        return [part[1] for part in data if isinstance(part, tuple)]
    finally:
        client.logout()
