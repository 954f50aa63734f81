"""The administrative CLI: init, users, domains, keys; usable while `serve` runs."""

import re
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (DOMAIN, HOST, SENDER, START_TIMEOUT, Server, assert_reply, child_env,
                      make_message, postkeep_bin, split_received, with_token)


def test_init_dev_creates_config_key_cert_and_demo_user(make_server):
    srv = make_server(users=(), start=False)
    for path in (srv.config_path, srv.master_key_path, srv.cert_path, srv.key_path):
        assert path.is_file(), f"init --dev did not create {path.relative_to(srv.data)}"
    assert srv.master_key_path.stat().st_mode & 0o777 == 0o600
    assert f"demo@{DOMAIN}" in srv.init_output, (
        f"init --dev should print the demo user and its password:\n{srv.init_output}")
    users = srv.cli("user", "list").stdout.decode().split()
    assert f"demo@{DOMAIN}" in users, f"`user list` lacks the demo user: {users}"


def test_user_and_domain_commands(make_server):
    srv = make_server(users=(), start=False)
    assert DOMAIN in srv.cli("domain", "list").stdout.decode().split()
    srv.cli("domain", "add", "other.test")
    assert "other.test" in srv.cli("domain", "list").stdout.decode().split()
    srv.add_user("zoe@other.test")
    srv.add_user(f"yann@{DOMAIN}")
    listed = srv.cli("user", "list").stdout.decode().splitlines()
    assert {"zoe@other.test", f"yann@{DOMAIN}"} <= set(listed), listed
    assert all(re.fullmatch(r"\S+@\S+", line) for line in listed), (
        f"`user list` should print one address per line: {listed}")
    srv.cli("user", "passwd", "zoe@other.test", "--password-stdin", input=b"new secret 123\n")
    srv.cli("user", "remove", "zoe@other.test")
    assert "zoe@other.test" not in srv.cli("user", "list").stdout.decode().split()
    srv.cli("domain", "remove", "other.test")
    assert "other.test" not in srv.cli("domain", "list").stdout.decode().split()


def test_app_passwords_are_generated_listed_and_revoked(make_server):
    srv = make_server(users=(f"yann@{DOMAIN}",), start=False)
    yann = f"yann@{DOMAIN}"
    out = srv.cli("user", "app-password", "add", yann, "phone").stdout.decode()
    secret = re.search(r"phone for \S+: (\S+)", out)
    assert secret, f"no app password printed: {out!r}"
    # At least 128 random bits: 32 base32 characters carry 160.
    assert len(secret.group(1).replace("-", "")) >= 26, secret.group(1)
    again = srv.cli("user", "app-password", "add", yann, "laptop").stdout.decode()
    assert secret.group(1) not in again, "app passwords must be fresh each time"
    listed = srv.cli("user", "app-password", "list", yann).stdout.decode()
    assert {line.split("\t")[0] for line in listed.splitlines()} == {"phone", "laptop"}, listed
    # The secret is never stored in clear.
    for path in srv.data.rglob("*"):
        if path.is_file():
            assert secret.group(1).encode() not in path.read_bytes(), f"app password in {path}"
    srv.cli("user", "app-password", "revoke", yann, "phone")
    listed = srv.cli("user", "app-password", "list", yann).stdout.decode()
    assert "phone" not in listed, listed
    refused = srv.cli("user", "app-password", "revoke", yann, "phone", check=False)
    assert refused.returncode != 0, "revoking a missing app password must fail"


def test_migrated_bcrypt_hash_is_accepted_by_user_add(make_server):
    srv = make_server(users=(), start=False)
    bcrypt_hash = "$2b$12$KIXQJKhV7JRbIwoK0l0ZoeBJc7rQm/8sdcw5gPu6Q2Ke7vB5UQG8u"
    srv.cli("user", "add", f"old@{DOMAIN}", "--password-hash-stdin",
            input=(bcrypt_hash + "\n").encode())
    assert f"old@{DOMAIN}" in srv.cli("user", "list").stdout.decode().split()
    bad = srv.cli("user", "add", f"bad@{DOMAIN}", "--password-hash-stdin",
                  input=b"plaintext-not-a-hash\n", check=False)
    assert bad.returncode != 0 and b"unsupported password hash" in bad.stderr


def rcpt_code(srv, address: str) -> tuple[int, str]:
    raw = srv.raw()
    try:
        raw.ehlo()
        assert_reply(raw.cmd(f"MAIL FROM:<{SENDER}>"), 250)
        r = raw.cmd(f"RCPT TO:<{address}>")
        return r.code, r.enhanced or ""
    finally:
        raw.close()


def eventually(fn, want, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while True:
        got = fn()
        if got == want or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_cli_changes_while_serving_take_effect(server):
    newbie = f"newbie@{DOMAIN}"
    assert rcpt_code(server, newbie) == (550, "5.1.1")
    server.add_user(newbie)  # while serve runs on the same data dir
    assert eventually(lambda: rcpt_code(server, newbie), (250, "2.1.5"))[0] == 250, (
        "a user added by the CLI while serving is not accepted within 10 s")
    token = secrets.token_hex(8)
    server.send([newbie], make_message(token, "for newbie", to=newbie))
    assert len(with_token(server.export(newbie), token)) == 1
    server.cli("user", "remove", newbie)
    assert eventually(lambda: rcpt_code(server, newbie), (550, "5.1.1")) == (550, "5.1.1"), (
        "a user removed by the CLI while serving is still accepted after 10 s")


def test_key_rotation_keeps_old_mail_readable(make_server):
    srv = make_server()
    alice = f"alice@{DOMAIN}"
    first = make_message(secrets.token_hex(8), "before rotation")
    srv.send([alice], first)
    srv.stop()
    old_key = srv.master_key_path.read_bytes()
    srv.cli("keys", "rotate")
    srv.cli("keys", "rotate-master")
    assert srv.master_key_path.read_bytes() != old_key, "rotate-master left master.key unchanged"
    assert srv.master_key_path.stat().st_mode & 0o777 == 0o600
    srv.start()
    second = make_message(secrets.token_hex(8), "after rotation")
    srv.send([alice], second)
    msgs = srv.export(alice)
    assert len(msgs) == 2, f"expected 2 messages after key rotation, got {len(msgs)}"
    for sent in (first, second):
        found = [m for m in msgs if m.endswith(sent)]
        assert len(found) == 1, "a message did not survive key rotation intact"
        split_received(found[0], sent)


def test_master_rotation_while_serving_keeps_delivering(make_server):
    """rotate-master runs online: the running server keeps reading old keys from its cache and
    picks the new master key up from the file for keys wrapped after the rotation."""
    srv = make_server()
    alice = f"alice@{DOMAIN}"
    first = make_message(secrets.token_hex(8), "before online rotation")
    srv.send([alice], first)
    old_key = srv.master_key_path.read_bytes()
    srv.cli("keys", "rotate-master")
    assert srv.master_key_path.read_bytes() != old_key, "rotate-master left master.key unchanged"
    # An account created after the rotation has a data key wrapped only by the new master key.
    newcomer = f"newcomer@{DOMAIN}"
    srv.add_user(newcomer)
    second = make_message(secrets.token_hex(8), "after online rotation")
    srv.send([alice, newcomer], second)
    alice_msgs = srv.export(alice)
    assert len(alice_msgs) == 2, f"alice: expected 2 messages, got {len(alice_msgs)}"
    newcomer_msgs = srv.export(newcomer)
    assert len(newcomer_msgs) == 1 and newcomer_msgs[0].endswith(second), "new account lost mail"


def dev_smtp_port(config: Path) -> int:
    m = re.search(r'^\s*smtp\s*=\s*"[^"]*:(\d+)"', config.read_text(), re.M)
    assert m, f"no smtp listener in {config}"
    return int(m.group(1))


def port_answers(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=5):
            return True
    except OSError:
        return False


def test_serve_dev_initialises_an_empty_data_dir(tmp_path):
    # The dev config has a fixed port. Learn it from a scratch init; if something else already
    # listens there (a developer's own `serve --dev`), this test cannot tell servers apart.
    scratch = Server(postkeep_bin(), tmp_path / "scratch")
    scratch.init(dev=True)
    port = dev_smtp_port(scratch.config_path)
    if port_answers(port):
        pytest.skip(f"default dev port {port} is taken by another process")

    data = tmp_path / "fresh"
    log_path = tmp_path / "serve.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([str(postkeep_bin()), "serve", "--dev", "--data", str(data)],
                            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=child_env())
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not port_answers(port):
            assert proc.poll() is None and time.monotonic() < deadline, (
                f"serve --dev did not come up (exit {proc.poll()}); log:\n"
                f"{log_path.read_bytes().decode(errors='replace')[-4000:]}")
            time.sleep(0.1)
        assert proc.poll() is None, "serve --dev exited right after listening"
        assert dev_smtp_port(data / "postkeep.toml") == port
        with socket.create_connection((HOST, port), timeout=30) as s:
            greeting = s.recv(512)
        assert greeting.startswith(b"220"), f"unexpected greeting {greeting!r}"
        assert (data / "master.key").is_file() and (data / "tls" / "cert.pem").is_file()
        fresh = Server(postkeep_bin(), tmp_path)
        fresh.data = data
        users = fresh.cli("user", "list").stdout.decode().split()
        assert f"demo@{DOMAIN}" in users, f"no demo user after serve --dev: {users}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        log.close()
