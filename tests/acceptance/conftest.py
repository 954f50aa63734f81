"""Harness for the acceptance tests: drives the real `postkeep` binary in throw-away data dirs.

Environment:
  POSTKEEP_BIN     the binary under test (default: target/debug/postkeep of this checkout)
  POSTKEEP_CORPUS  the SpamAssassin corpus (default: ../shared/data/spamassassin)

Every test gets its own data directory (under pytest's tmp_path) and its own ports.
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BIN = REPO / "target" / "debug" / "postkeep"
DEFAULT_CORPUS = REPO.parent / "shared" / "data" / "spamassassin"

DOMAIN = "example.test"
SENDER = "sender@remote.test"
PASSWORD = "correct horse battery staple"
HOST = "127.0.0.1"

# Generous: the suite must not flake on a loaded 2-core machine running a debug build.
START_TIMEOUT = 90.0
STOP_TIMEOUT = 60.0  # serve gives open sessions up to 30 s to finish
CLI_TIMEOUT = 900.0
IO_TIMEOUT = 60.0


# --------------------------------------------------------------------------- paths


def postkeep_bin() -> Path:
    path = Path(os.environ.get("POSTKEEP_BIN") or DEFAULT_BIN)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"postkeep binary not found or not executable at {path}: run `cargo build` "
            "or set POSTKEEP_BIN",
            pytrace=False,
        )
    return path


def corpus_dir() -> Path:
    return Path(os.environ.get("POSTKEEP_CORPUS") or DEFAULT_CORPUS)


def child_env(extra: dict | None = None) -> dict:
    """Environment for postkeep processes: no inherited master key or log filter, so the
    tests see the behaviour they configure and nothing from the caller's shell."""
    env = {k: v for k, v in os.environ.items() if k not in ("POSTKEEP_MASTER_KEY", "RUST_LOG")}
    env["RUST_BACKTRACE"] = "1"
    if extra:
        env.update(extra)
    return env


# Every port handed out in this test process. A port chosen for one server is not bound until
# that server starts, and the kernel would offer it again meanwhile: another server or a peer
# (Postfix, NSD) started first then took it ("Address already in use").
_HANDED_OUT: set[int] = set()


def free_ports(n: int) -> list[int]:
    """n free TCP ports on loopback, never one handed out before in this test process."""
    socks = []
    ports: list[int] = []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((HOST, 0))
            socks.append(s)
            port = s.getsockname()[1]
            if port not in _HANDED_OUT:
                _HANDED_OUT.add(port)
                ports.append(port)
        return ports
    finally:
        for s in socks:
            s.close()


# --------------------------------------------------------------------------- config editing


SECTION_RE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$")


def set_toml_value(text: str, section: str | None, key: str, literal: str) -> str:
    """Replaces `key = ...` inside `[section]` (None: the top level) with `key = literal` (a
    TOML literal)."""
    lines = text.splitlines(keepends=True)
    current, found = None, False
    for i, line in enumerate(lines):
        m = SECTION_RE.match(line)
        if m:
            current = m.group(1).strip()
            continue
        if current == section and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            lines[i] = f"{key} = {literal}\n"
            found = True
    if not found:
        raise AssertionError(f"no `{key}` under [{section}] in postkeep.toml:\n{text}")
    return "".join(lines)


def add_toml_value(text: str, section: str, key: str, literal: str) -> str:
    """Adds `key = literal` to `[section]` (for keys the generated config leaves out)."""
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        m = SECTION_RE.match(line)
        if m and m.group(1).strip() == section:
            lines.insert(i + 1, f"{key} = {literal}\n")
            return "".join(lines)
    raise AssertionError(f"no [{section}] section in postkeep.toml:\n{text}")


def line_of(text: str, section: str, key: str) -> int:
    """1-based line number of `key = ...` inside `[section]`."""
    current = None
    for i, line in enumerate(text.splitlines(), start=1):
        m = SECTION_RE.match(line)
        if m:
            current = m.group(1).strip()
            continue
        if current == section and re.match(rf"^\s*{re.escape(key)}\s*=", line):
            return i
    raise AssertionError(f"no `{key}` under [{section}] in postkeep.toml:\n{text}")


LISTEN_RE = re.compile(r'^(\s*)([A-Za-z0-9_-]+)(\s*=\s*")([^"]*):(\d+)(".*)$')


def rewrite_listen_ports(text: str) -> tuple[str, dict[str, int]]:
    """Gives every active listener under [listen] its own free loopback port."""
    lines = text.splitlines(keepends=True)
    targets = []
    current = None
    for i, line in enumerate(lines):
        m = SECTION_RE.match(line)
        if m:
            current = m.group(1).strip()
            continue
        if current == "listen" and LISTEN_RE.match(line.rstrip("\n")):
            targets.append(i)
    ports = free_ports(len(targets))
    assigned = {}
    for i, port in zip(targets, ports):
        m = LISTEN_RE.match(lines[i].rstrip("\n"))
        assert m is not None
        lines[i] = f"{m.group(1)}{m.group(2)}{m.group(3)}{HOST}:{port}{m.group(6)}\n"
        assigned[m.group(2)] = port
    if "smtp" not in assigned:
        raise AssertionError(f'no `smtp = "host:port"` line under [listen]:\n{text}')
    return "".join(lines), assigned


# --------------------------------------------------------------------------- mail files


FROM_QUOTED = re.compile(rb"^>+From ")


def parse_mboxrd(data: bytes) -> list[bytes]:
    """Splits an mboxrd file into exact message bytes.

    Each message starts after a `From ` line and is followed by exactly one "\\n" before the
    next `From ` line (or the end of the file); that one "\\n" is removed, and one `>` is
    removed from every `>*From ` line. Anything else is a malformed export and raises."""
    if not data:
        return []
    if not data.startswith(b"From "):
        raise AssertionError(f"mbox does not start with a `From ` line: {data[:80]!r}")
    messages: list[bytes] = []
    current: list[bytes] | None = None

    def finish(parts: list[bytes]) -> bytes:
        body = b"".join(parts)
        if not body.endswith(b"\n"):
            raise AssertionError(
                f"message #{len(messages) + 1} in mbox is not followed by the separating "
                f"newline; its end: {body[-80:]!r}"
            )
        return body[:-1]

    pos, n = 0, len(data)
    while pos < n:
        end = data.find(b"\n", pos)
        nxt = n if end < 0 else end + 1
        line = data[pos:nxt]
        pos = nxt
        if line.startswith(b"From "):
            if current is not None:
                messages.append(finish(current))
            current = []
            continue
        assert current is not None
        if FROM_QUOTED.match(line):
            line = line[1:]
        current.append(line)
    if current is not None:
        messages.append(finish(current))
    return messages


def read_maildir(root: Path) -> list[bytes]:
    """Contents of every message file in any cur/ or new/ below root, sorted by path."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.parent.name in ("cur", "new"))
    return [p.read_bytes() for p in files]


def strip_envelope(raw: bytes) -> bytes:
    """A corpus file minus its leading mbox `From ` envelope line, if it has one."""
    if raw.startswith(b"From "):
        nl = raw.find(b"\n")
        return b"" if nl < 0 else raw[nl + 1 :]
    return raw


def split_received(stored: bytes, original: bytes) -> bytes:
    """Asserts `stored` is one prepended Received: header followed by exactly `original`;
    returns the Received header."""
    assert stored.endswith(original), (
        "stored message does not end with the bytes that were sent.\n"
        f"sent (first 300): {original[:300]!r}\nstored (first 600): {stored[:600]!r}\n"
        f"sent (last 200): {original[-200:]!r}\nstored (last 200): {stored[-200:]!r}"
    )
    prefix = stored[: len(stored) - len(original)]
    assert prefix.startswith(b"Received:"), (
        f"stored message does not start with a Received: header: {stored[:300]!r}"
    )
    assert prefix.endswith(b"\n"), f"Received header not terminated by a newline: {prefix!r}"
    lines = prefix.split(b"\n")[:-1]
    for extra in lines[1:]:
        assert extra[:1] in (b" ", b"\t"), (
            f"more than one header was prepended (expected only Received:): {prefix!r}"
        )
    return prefix


def make_message(token: str, subject: str = "test", body: str | bytes = "Hello.\r\n",
                 to: str = f"alice@{DOMAIN}", extra_headers: list[str] | None = None) -> bytes:
    """A small RFC 5322 message with CRLF line ends; `token` goes into Subject and Message-ID
    so a test can find exactly this message in an export."""
    headers = [
        f"From: Sender <{SENDER}>",
        f"To: {to}",
        f"Subject: {subject} {token}",
        f"Message-ID: <{token}@remote.test>",
        "Date: Mon, 01 Jan 2024 10:00:00 +0000",
        *(extra_headers or []),
    ]
    body_bytes = body.encode() if isinstance(body, str) else body
    return ("\r\n".join(headers) + "\r\n\r\n").encode() + body_bytes


def with_token(messages: list[bytes], token: str) -> list[bytes]:
    t = token.encode()
    return [m for m in messages if t in m]


def auth_results(field: str) -> list[tuple[str, str]]:
    """The results of an unfolded Authentication-Results field (RFC 8601) in order, as
    (method, rest): ('dkim', 'pass header.d=a.test header.s=sel'); the authserv-id is left
    out, and semicolons inside quoted strings do not split."""
    specs, current, quoted, escaped = [], "", False, False
    for c in field:
        if c == ";" and not quoted:
            specs.append(current)
            current = ""
            continue
        current += c
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == '"':
            quoted = not quoted
    specs.append(current)
    results = []
    for spec in specs[1:]:
        name, _, value = spec.strip().partition("=")
        results.append((name, value))
    return results


def dot_stuff(message: bytes) -> bytes:
    """RFC 5321 §4.5.2 transparency plus the terminating CRLF.CRLF; message must end in CRLF."""
    assert message.endswith(b"\r\n")
    lines = message.split(b"\r\n")
    stuffed = b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)
    return stuffed + b".\r\n"


# --------------------------------------------------------------------------- waiting


def wait_for(check, what: str, timeout: float = IO_TIMEOUT, interval: float = 0.1):
    """Calls `check` until it returns something truthy and returns that; fails naming `what`
    (and the last value) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {got!r}")
        time.sleep(interval)


# --------------------------------------------------------------------------- raw SMTP


class ConnectionClosed(Exception):
    pass


ENHANCED_RE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)")


@dataclass
class Reply:
    code: int
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " | ".join(self.lines)

    @property
    def enhanced(self) -> str | None:
        m = ENHANCED_RE.match(self.lines[0]) if self.lines else None
        return ".".join(m.groups()) if m else None

    def __str__(self) -> str:
        return f"{self.code} {self.text}"


class RawSmtp:
    """A byte-exact SMTP client: sends exactly what a test gives it, reads replies."""

    def __init__(self, port: int, timeout: float = IO_TIMEOUT):
        self.sock = socket.create_connection((HOST, port), timeout=timeout)
        self.buf = b""
        self.greeting = self.reply()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def readline(self) -> bytes:
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionClosed(f"connection closed; unread: {self.buf!r}")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def reply(self) -> Reply:
        lines = []
        while True:
            line = self.readline()
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            if len(text) < 3 or not text[:3].isdigit() or text[3:4] not in ("", " ", "-"):
                raise AssertionError(f"malformed SMTP reply line: {line!r}")
            lines.append(text)
            if text[3:4] != "-":
                return Reply(int(text[:3]), [ln[4:] for ln in lines])

    def cmd(self, line: str | bytes) -> Reply:
        data = line.encode() if isinstance(line, str) else line
        self.send(data + b"\r\n")
        return self.reply()

    def ehlo(self, name: str = "client.test") -> Reply:
        r = self.cmd(f"EHLO {name}")
        assert r.code == 250, f"EHLO refused: {r}"
        return r

    def starttls(self, ctx: ssl.SSLContext, server_hostname: str = "localhost") -> None:
        r = self.cmd("STARTTLS")
        assert r.code == 220, f"STARTTLS refused: {r}"
        assert not self.buf, f"server sent data after 220 to STARTTLS: {self.buf!r}"
        self.sock = ctx.wrap_socket(self.sock, server_hostname=server_hostname)

    def pending(self, wait: float = 1.0) -> bytes:
        """Whatever the server sends unprompted within `wait` seconds (b"" if nothing)."""
        data = self.buf
        self.buf = b""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (socket.timeout, TimeoutError):
            pass
        finally:
            self.sock.settimeout(IO_TIMEOUT)
        return data

    def expect_closed(self, wait: float = 10.0) -> None:
        """Asserts the server closes the connection (EOF or reset) within `wait` seconds."""
        self.sock.settimeout(wait)
        try:
            extra = self.buf
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                extra += chunk
                assert len(extra) < 65536, f"server keeps talking instead of closing: {extra!r}"
        except (ConnectionResetError, BrokenPipeError):
            pass
        except (socket.timeout, TimeoutError):
            raise AssertionError(f"server did not close the connection within {wait}s") from None

    def transaction(self, rcpts: list[str], message: bytes, mail_from: str = SENDER) -> Reply:
        """MAIL/RCPT/DATA for a CRLF message; asserts the envelope is accepted and returns the
        reply to the end of data."""
        r = self.cmd(f"MAIL FROM:<{mail_from}>")
        assert r.code == 250, f"MAIL FROM refused: {r}"
        for rcpt in rcpts:
            r = self.cmd(f"RCPT TO:<{rcpt}>")
            assert r.code == 250, f"RCPT TO:<{rcpt}> refused: {r}"
        r = self.cmd("DATA")
        assert r.code == 354, f"DATA refused: {r}"
        self.send(dot_stuff(message))
        return self.reply()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def assert_reply(r: Reply, code: int, enhanced: str | None = None, what: str = "") -> None:
    ctx = f" ({what})" if what else ""
    assert r.code == code, f"expected {code}{ctx}, got: {r}"
    if enhanced is not None:
        assert r.enhanced == enhanced, f"expected enhanced code {enhanced}{ctx}, got: {r}"


# --------------------------------------------------------------------------- server


class Server:
    """One postkeep data directory and (at most) one `serve` process on it."""

    def __init__(self, binary: Path, root: Path, domain: str = DOMAIN):
        self.bin = binary
        self.root = root
        self.data = root / "data"
        self.domain = domain
        self.log_path = root / "server.log"
        self.exports = root / "exports"
        self.proc: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        self.serve_env: dict[str, str] = {}
        self._export_seq = 0
        self.init_output = ""

    # -- CLI

    def cli(self, *args: str, input: bytes | None = None, check: bool = True,
            timeout: float = CLI_TIMEOUT, env: dict | None = None) -> subprocess.CompletedProcess:
        """Runs `postkeep ARGS --data DIR`; with check, asserts exit 0 (showing the output)."""
        cmd = [str(self.bin), *args, "--data", str(self.data)]
        try:
            proc = subprocess.run(cmd, input=input if input is not None else b"",
                                  capture_output=True, timeout=timeout, env=child_env(env))
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"`{' '.join(cmd)}` did not finish within {timeout}s; "
                                 f"stderr so far: {e.stderr!r}") from None
        if check:
            assert proc.returncode == 0, (
                f"`{' '.join(cmd)}` exited {proc.returncode}\nstdout: "
                f"{proc.stdout.decode(errors='replace')[-3000:]}\nstderr: "
                f"{proc.stderr.decode(errors='replace')[-3000:]}"
            )
        return proc

    def init(self, dev: bool = True) -> None:
        args = ["init", "--domain", self.domain] + (["--dev"] if dev else [])
        out = self.cli(*args)
        self.init_output = (out.stdout + out.stderr).decode(errors="replace")
        assert self.config_path.is_file(), f"init wrote no {self.config_path}"

    def add_user(self, address: str, password: str = PASSWORD) -> None:
        self.cli("user", "add", address, "--password-stdin", input=(password + "\n").encode())

    # -- config

    @property
    def config_path(self) -> Path:
        return self.data / "postkeep.toml"

    @property
    def master_key_path(self) -> Path:
        return self.data / "master.key"

    @property
    def cert_path(self) -> Path:
        return self.data / "tls" / "cert.pem"

    @property
    def key_path(self) -> Path:
        return self.data / "tls" / "key.pem"

    def config_text(self) -> str:
        return self.config_path.read_text()

    def set_smtp(self, **settings: int) -> None:
        text = self.config_text()
        for key, value in settings.items():
            text = set_toml_value(text, "smtp", key, str(value))
        self.config_path.write_text(text)

    def assign_ports(self) -> None:
        text, self.ports = rewrite_listen_ports(self.config_text())
        self.config_path.write_text(text)

    @property
    def port(self) -> int:
        return self.ports["smtp"]

    # -- process

    def start(self, env: dict | None = None) -> None:
        assert self.proc is None or self.proc.poll() is not None, "server already running"
        if env is not None:
            self.serve_env = env
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== serve started {time.strftime('%H:%M:%S')} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [str(self.bin), "serve", "--data", str(self.data)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                env=child_env(self.serve_env),
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Waits until the SMTP listener answers with a 220 greeting."""
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"postkeep serve exited with {self.proc.returncode} before listening; "
                    f"log:\n{self.log_tail()}"
                )
            try:
                raw = RawSmtp(self.port, timeout=10)
            except (ConnectionRefusedError, ConnectionClosed, socket.timeout, TimeoutError,
                    ConnectionResetError) as e:
                last_error = e
                time.sleep(0.05)
                continue
            try:
                assert raw.greeting.code == 220, f"unexpected greeting: {raw.greeting}"
                try:
                    raw.cmd("QUIT")
                except (ConnectionClosed, OSError):
                    pass
            finally:
                raw.close()
            return
        raise AssertionError(f"postkeep serve not ready on port {self.port} after {timeout}s "
                             f"(last error: {last_error!r}); log:\n{self.log_tail()}")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM and wait; SIGKILL (and fail) if it does not stop in time."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise AssertionError(f"postkeep serve did not stop within {timeout}s of SIGTERM; "
                                 f"log:\n{self.log_tail()}") from None

    def kill9(self) -> None:
        assert self.proc is not None and self.proc.poll() is None, (
            f"server not running when about to be killed; log:\n{self.log_tail()}")
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def log_text(self) -> str:
        try:
            return self.log_path.read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 6000) -> str:
        return self.log_text()[-chars:]

    # -- clients

    def raw(self) -> RawSmtp:
        return RawSmtp(self.port)

    def smtp(self) -> smtplib.SMTP:
        # local_hostname avoids a slow reverse lookup of our own FQDN.
        return smtplib.SMTP(HOST, self.port, local_hostname="client.test", timeout=IO_TIMEOUT)

    def tls_context(self, verify: bool = True) -> ssl.SSLContext:
        if not verify:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        return ssl.create_default_context(cafile=str(self.cert_path))

    def send(self, rcpts: list[str], message: bytes, tls: bool = False) -> None:
        """Delivers with smtplib and asserts every recipient was accepted."""
        with self.smtp() as s:
            if tls:
                s.starttls(context=self.tls_context())
            # Test messages may carry UTF-8; declare it as RFC 6152 asks.
            refused = s.sendmail(SENDER, rcpts, message, mail_options=["BODY=8BITMIME"])
        assert not refused, f"recipients refused: {refused}"

    # -- export

    def export_path(self, address: str, fmt: str, env: dict | None = None) -> Path:
        self.exports.mkdir(parents=True, exist_ok=True)
        self._export_seq += 1
        out = self.exports / f"{self._export_seq:03d}-{address.replace('@', '_at_')}.{fmt}"
        self.cli("export", address, str(out), "--format", fmt, env=env)
        return out

    def export(self, address: str, env: dict | None = None) -> list[bytes]:
        """The account's messages, exactly as stored, from an mbox export."""
        out = self.export_path(address, "mbox", env=env)
        if not out.exists():
            return []
        return parse_mboxrd(out.read_bytes())

    def export_maildir(self, address: str) -> list[bytes]:
        out = self.export_path(address, "maildir")
        assert out.is_dir(), f"maildir export did not create the directory {out}"
        return read_maildir(out)


def smtps(srv: Server) -> smtplib.SMTP_SSL:
    """A client on `submissions` (implicit TLS), not logged in."""
    return smtplib.SMTP_SSL(HOST, srv.ports["submissions"], local_hostname="client.test",
                            context=srv.tls_context(), timeout=IO_TIMEOUT)


def starttls(srv: Server) -> smtplib.SMTP:
    """A client on `submission` after STARTTLS, not logged in."""
    s = smtplib.SMTP(HOST, srv.ports["submission"], local_hostname="client.test",
                     timeout=IO_TIMEOUT)
    s.starttls(context=srv.tls_context())
    return s


IMPORT_SUMMARY = re.compile(r"imported (\d+) messages?, (\d+) bad")


def import_summary(proc: subprocess.CompletedProcess) -> tuple[int, int]:
    """(imported, bad) from the summary line `imported N messages, M bad`."""
    text = (proc.stdout + proc.stderr).decode(errors="replace")
    m = IMPORT_SUMMARY.findall(text)
    assert m, f"no `imported N messages, M bad` summary in import output:\n{text[-3000:]}"
    imported, bad = m[-1]
    return int(imported), int(bad)


# --------------------------------------------------------------------------- fixtures


class ServerPool:
    """Servers in throw-away data dirs under `root`; `cleanup` kills whatever still runs."""

    def __init__(self, root: Path):
        self.binary = postkeep_bin()
        self.root = root
        self.servers: list[Server] = []

    def make(self, users=("alice", "bob", "carol"), smtp: dict | None = None,
             start: bool = True, domain: str = DOMAIN) -> Server:
        """A Server (running unless `start` is false): `postkeep init --dev` for `domain`,
        `users` (local parts or full addresses) added; `smtp` overrides [smtp] keys."""
        srv = Server(self.binary, self.root / f"srv{len(self.servers)}", domain)
        srv.root.mkdir(parents=True)
        self.servers.append(srv)
        srv.init(dev=True)
        if smtp:
            srv.set_smtp(**smtp)
        srv.assign_ports()
        for user in users:
            srv.add_user(user if "@" in user else f"{user}@{domain}")
        if start:
            srv.start()
        return srv

    def cleanup(self) -> None:
        for srv in self.servers:
            srv.cleanup()


@pytest.fixture
def make_server(request, tmp_path):
    """Factory: make_server(users=[...], smtp={...}, start=True) -> a running Server
    (see ServerPool.make); every server is killed after the test."""
    pool = ServerPool(tmp_path)
    request.node.postkeep_servers = pool.servers
    yield pool.make
    pool.cleanup()


@pytest.fixture
def server(make_server) -> Server:
    """A running server with alice, bob and carol @example.test."""
    return make_server()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attaches the tail of every server log to a failing test's report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when == "call" and rep.failed:
        for srv in getattr(item, "postkeep_servers", []):
            rep.sections.append((f"postkeep log {srv.root.name}", srv.log_tail()))
